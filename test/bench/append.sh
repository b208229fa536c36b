#!/usr/bin/env bash
# Append throughput, side by side in one invocation on one throw-away cluster:
#   (a) bare INSERT into an event table with the same columns and indexes,
#       no derived state;
#   (b) INSERT with a PL/pgSQL trigger maintaining the same stock positions;
#   (c) inventory_events.append();
# with 1 and with 10 events per transaction, and batch ingest (1,000 events
# per ingest() call) against COPY of the same rows into (a). Prints events/s
# and the ratios. Same durability for all: fsync and synchronous_commit on.
# A benchmark, not a timed test.
#
#   bash test/bench/append.sh
#   BENCH_SECONDS=15 BENCH_CLIENTS=2 BENCH_ROUNDS=3 BENCH_BATCHES=20 BENCH_EVENTS_PER_TX="1 10"
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

seconds=${BENCH_SECONDS:-15}
clients=${BENCH_CLIENTS:-2}
rounds=${BENCH_ROUNDS:-3}
batches=${BENCH_BATCHES:-20}

bench_start

psql_ -c "CREATE EXTENSION inventory_events" \
	-c "INSERT INTO inventory_events.item (sku) SELECT 'SKU' || g FROM generate_series(1, 1000) g" \
	-c "INSERT INTO inventory_events.location (code) VALUES ('W1'), ('W2'), ('W3')"
psql_ -f "$IE_WORK/src/test/bench/append_baselines.sql"

# One pgbench script per contender, $1 events per transaction.
make_script() {	# $1: events per transaction, $2: statement template with @S@ @L@
	local n=$1 i
	echo '\set q random(1, 7)'
	[ "$n" -gt 1 ] && echo 'BEGIN;'
	# The i-th event's sku comes from the i-th of n slices of the 1,000 skus, so
	# every transaction touches its skus in ascending order, as the reference
	# advises (random orders deadlock every contender now and then, and
	# pgbench drops a client at its first error).
	for i in $(seq 1 "$n"); do
		echo "\\set s$i random($(( (i - 1) * 1000 / n + 1 )), $(( i * 1000 / n )))"
		echo "\\set l$i random(1, 3)"
		echo "$2" | sed "s/@S@/:s$i/g; s/@L@/:l$i/g"
	done
	[ "$n" -gt 1 ] && echo 'COMMIT;'
	return 0
}
bare_sql="INSERT INTO bench.bare_event (sku, location, lot, version, event_type, to_bucket, qty, uom, uom_qty, effect, occurred_at, correlation_id, causation_id) VALUES ('SKU' || @S@, 'W' || @L@, '', nextval('bench.bare_version'), 'received', 'available', :q, 'EA', :q, inventory_events.stock_position(available => :q), now(), gen_random_uuid(), gen_random_uuid());"
plpgsql_sql="INSERT INTO bench.plpgsql_event (sku, location, lot, event_type, to_bucket, qty, uom, uom_qty, occurred_at, correlation_id, causation_id) VALUES ('SKU' || @S@, 'W' || @L@, '', 'received', 'available', :q, 'EA', :q, now(), gen_random_uuid(), gen_random_uuid());"
append_sql="SELECT inventory_events.append('SKU' || @S@, 'W' || @L@, 'received', :q);"

eps() {	# $1: script, $2: events per transaction; prints events per second
	echo "$(pgb_ "$1" "$clients" "$seconds") * $2" | bc
}
consistency() {
	psql_ -At -c "SELECT 'consistency: ' || CASE WHEN count(*) = 0 THEN 'verify() clean' ELSE count(*) || ' streams differ' END FROM inventory_events.verify()"
}

for per_tx in ${BENCH_EVENTS_PER_TX:-1 10}; do
	make_script "$per_tx" "$bare_sql" > "$IE_WORK/a.sql"
	make_script "$per_tx" "$plpgsql_sql" > "$IE_WORK/b.sql"
	make_script "$per_tx" "$append_sql" > "$IE_WORK/c.sql"
	chmod 644 "$IE_WORK"/[abc].sql
	echo
	echo "append: $clients clients, $per_tx event(s) per transaction, ${seconds}s per run, events/s"
	printf '%-6s %12s %12s %12s %8s %8s\n' round "(a) bare" "(b) plpgsql" "(c) append" "c/a" "c/b"
	ca_all=() cb_all=() ab_all=()
	for r in $(seq 1 "$rounds"); do
		a=$(eps "$IE_WORK/a.sql" "$per_tx"); b=$(eps "$IE_WORK/b.sql" "$per_tx"); c=$(eps "$IE_WORK/c.sql" "$per_tx")
		ca=$(echo "scale=3; $c / $a" | bc); cb=$(echo "scale=3; $c / $b" | bc)
		ca_all+=("$ca"); cb_all+=("$cb"); ab_all+=("$(echo "scale=3; $a / $b" | bc)")
		printf '%-6s %12.0f %12.0f %12.0f %8s %8s\n' "$r" "$a" "$b" "$c" "$ca" "$cb"
	done
	echo "median c/a = $(median "${ca_all[@]}") (target >= 0.8); median c/b = $(median "${cb_all[@]}") (target >= 1.6)"
	# Derived state cannot be cheaper than none: c <= a, so c/b can be at most a/b.
	echo "median a/b = $(median "${ab_all[@]}"): the most c/b could be even if append() cost no more than a bare insert"
done
consistency

# Batch: ingest() of 1,000 events per call against COPY of 1,000 rows into (a).
psql_ -c "ALTER TABLE bench.bare_event DROP CONSTRAINT bare_event_sku_location_lot_version_key" \
	-c "ALTER TABLE bench.bare_event ADD UNIQUE (sku, location, lot, version, id)" \
	-c "COPY (SELECT 'SKU' || (1 + i % 1000), 'W' || (1 + i % 3), '', i, 'received', 'available', 1 + i % 7, 'EA',
                 1 + i % 7, inventory_events.stock_position(available => 1 + i % 7), now(),
                 gen_random_uuid(), gen_random_uuid()
            FROM generate_series(1, 1000) i) TO '$IE_WORK/copy.csv' (FORMAT csv)"
copy_script=$IE_WORK/copy.psql
ingest_script=$IE_WORK/ingest.psql
: > "$copy_script"
: > "$ingest_script"
for n in $(seq 1 "$batches"); do
	echo "\\copy bench.bare_event (sku, location, lot, version, event_type, to_bucket, qty, uom, uom_qty, effect, occurred_at, correlation_id, causation_id) FROM '$IE_WORK/copy.csv' (FORMAT csv)" >> "$copy_script"
	echo "SELECT count(*) FROM inventory_events.ingest((SELECT events FROM bench.payload WHERE n = $n));" >> "$ingest_script"
done
chmod 644 "$copy_script" "$ingest_script"
timed() { local t0 t1; t0=$(date +%s.%N); psql_ -o /dev/null -f "$1"; t1=$(date +%s.%N); echo "$t1 - $t0" | bc; }
echo
echo "batch ingest: $batches calls of 1,000 events, rows/s"
printf '%-6s %12s %12s %12s\n' round "COPY (a)" "ingest()" "ingest/COPY"
ratio_all=()
for r in $(seq 1 "$rounds"); do
	tc=$(timed "$copy_script"); ti=$(timed "$ingest_script")
	rc=$(echo "scale=0; $batches * 1000 / $tc" | bc); ri=$(echo "scale=0; $batches * 1000 / $ti" | bc)
	ratio=$(echo "scale=3; $ri / $rc" | bc); ratio_all+=("$ratio")
	printf '%-6s %12s %12s %12s\n' "$r" "$rc" "$ri" "$ratio"
done
echo "median ingest/COPY = $(median "${ratio_all[@]}") (target >= 0.5)"
consistency
bench_stop
