# The append part of test/bench/run.sh: append() against (a) a bare INSERT
# into an event table with the same columns and indexes and no derived
# state, (b) an INSERT whose PL/pgSQL trigger maintains the same stock
# positions, and (c) the floor in SQL: one statement that updates a
# pre-created stock row and inserts the event with its version
# (append_baselines.sql); uniform and Zipf-hot skus, 1 and 10 events per
# transaction, in two settings: CPU-bound (synchronous_commit off, set for
# the server while they run) and with every commit flushed (the server's
# default); then ingest() of 1,000-event batches against COPY of the same
# rows into (a). The publisher is stopped meanwhile: this part measures the
# append path, which the baselines share with it; what the publisher costs
# appenders is the publisher part.

# A pgbench script, $1 events per transaction, sku draw $2 ("uniform" or
# "zipf"), statement template $3 with @S@ @L@. The i-th event's sku comes from
# the i-th of n slices of the skus, so every transaction takes its skus in
# ascending order, as the reference advises (random orders deadlock every
# contender now and then, and pgbench drops a client at its first error).
append_script() {
	local n=$1 i lo hi
	echo '\set q random(1, 7)'
	[ "$n" -gt 1 ] && echo 'BEGIN;'
	for i in $(seq 1 "$n"); do
		lo=$(( (i - 1) * bench_skus / n + 1 )); hi=$(( i * bench_skus / n ))
		if [ "$2" = zipf ]; then echo "\\set s$i random_zipfian($lo, $hi, 1.2)"; else echo "\\set s$i random($lo, $hi)"; fi
		echo "\\set l$i random(1, 3)"
		echo "$3" | sed "s/@S@/:s$i/g; s/@L@/:l$i/g"
	done
	[ "$n" -gt 1 ] && echo 'COMMIT;'
	return 0
}

part_append() {
	local bare_sql plpgsql_sql append_sql floor_sql workload per_tx r a b c d
	psql_ -f "$IE_WORK/src/test/bench/append_baselines.sql" >/dev/null
	psql_ -c "SELECT inventory_events.publisher_stop()" -c "SELECT pg_sleep(0.5)" >/dev/null
	bare_sql="INSERT INTO bench.bare_event (sku, location, lot, version, event_type, to_bucket, qty, uom, uom_qty, effect, occurred_at, correlation_id, causation_id) VALUES ('SKU' || @S@, 'W' || @L@, '', nextval('bench.bare_version'), 'received', 'available', :q, 'EA', :q, inventory_events.stock_position(available => :q), now(), gen_random_uuid(), gen_random_uuid());"
	plpgsql_sql="INSERT INTO bench.plpgsql_event (sku, location, lot, event_type, to_bucket, qty, uom, uom_qty, occurred_at, correlation_id, causation_id) VALUES ('SKU' || @S@, 'W' || @L@, '', 'received', 'available', :q, 'EA', :q, now(), gen_random_uuid(), gen_random_uuid());"
	append_sql="SELECT inventory_events.append('SKU' || @S@, 'W' || @L@, 'received', :q);"
	floor_sql="WITH s AS (UPDATE bench.sql_stock SET available = available + :q, on_hand = on_hand + :q, version = version + 1, updated_at = now() WHERE sku = 'SKU' || @S@ AND location = 'W' || @L@ AND lot = '' RETURNING version) INSERT INTO bench.sql_event (sku, location, lot, version, event_type, to_bucket, qty, uom, uom_qty, effect, occurred_at, correlation_id, causation_id) SELECT 'SKU' || @S@, 'W' || @L@, '', s.version, 'received', 'available', :q, 'EA', :q, inventory_events.stock_position(available => :q), now(), gen_random_uuid(), gen_random_uuid() FROM s;"
	local setting label bare_target
	for setting in cpu flush; do
		if [ "$setting" = cpu ]; then
			psql_ -c "ALTER SYSTEM SET synchronous_commit = off" -c "SELECT pg_reload_conf()" >/dev/null
			label="sync_commit off"; bare_target=">= 0.8"
		else
			psql_ -c "ALTER SYSTEM RESET synchronous_commit" -c "SELECT pg_reload_conf()" >/dev/null
			label="fsync on"; bare_target=">= 0.9"
		fi
		for workload in "uniform 1" "zipf 1" "uniform 10"; do
			set -- $workload
			per_tx=$2
			# Every commit flushed: the fsync dominates, the sku draw matters little.
			[ "$setting" = flush ] && [ "$1" = zipf ] && continue
			append_script "$per_tx" "$1" "$bare_sql" > "$IE_WORK/a.sql"
			append_script "$per_tx" "$1" "$plpgsql_sql" > "$IE_WORK/b.sql"
			append_script "$per_tx" "$1" "$append_sql" > "$IE_WORK/c.sql"
			append_script "$per_tx" "$1" "$floor_sql" > "$IE_WORK/d.sql"
			chmod 644 "$IE_WORK"/[abcd].sql
			for r in $(seq 1 "$bench_rounds"); do
				a=$(echo "$(pgb_ "$IE_WORK/a.sql" 2 "$bench_seconds") * $per_tx" | bc)
				b=$(echo "$(pgb_ "$IE_WORK/b.sql" 2 "$bench_seconds") * $per_tx" | bc)
				d=$(echo "$(pgb_ "$IE_WORK/d.sql" 2 "$bench_seconds") * $per_tx" | bc)
				c=$(echo "$(pgb_ "$IE_WORK/c.sql" 2 "$bench_seconds") * $per_tx" | bc)
				record append "$1 skus, $per_tx/tx, 2 clients, $label" "append() / bare INSERT, events/s" "$r" "$c" "$a" "$bare_target"
				if [ "$setting" = cpu ]; then
					record append "$1 skus, $per_tx/tx, 2 clients, $label" "append() / one-statement SQL floor, events/s" "$r" "$c" "$d" ">= 1.1"
					record append "$1 skus, $per_tx/tx, 2 clients, $label" "append() / PL/pgSQL trigger, events/s" "$r" "$c" "$b" ">= 1.45"
				else
					record append "$1 skus, $per_tx/tx, 2 clients, $label" "append() / one-statement SQL floor, events/s" "$r" "$c" "$d" ""
					record append "$1 skus, $per_tx/tx, 2 clients, $label" "append() / PL/pgSQL trigger, events/s" "$r" "$c" "$b" ""
				fi
			done
		done
	done
	consistency append

	# Batch: ingest() of 1,000 events per call against COPY of 1,000 rows into (a).
	psql_ -c "ALTER TABLE bench.bare_event DROP CONSTRAINT bare_event_sku_location_lot_version_key" \
		-c "ALTER TABLE bench.bare_event ADD UNIQUE (sku, location, lot, version, id)" \
		-c "COPY (SELECT 'SKU' || (1 + i % 10000), 'W' || (1 + i % 3), '', i, 'received', 'available', 1 + i % 7, 'EA',
	                 1 + i % 7, inventory_events.stock_position(available => 1 + i % 7), now(),
	                 gen_random_uuid(), gen_random_uuid()
	            FROM generate_series(1, 1000) i) TO '$IE_WORK/copy.csv' (FORMAT csv)" >/dev/null
	local copy_script=$IE_WORK/copy.psql ingest_script=$IE_WORK/ingest.psql n tc ti
	: > "$copy_script"
	: > "$ingest_script"
	for n in $(seq 1 "$bench_batches"); do
		echo "\\copy bench.bare_event (sku, location, lot, version, event_type, to_bucket, qty, uom, uom_qty, effect, occurred_at, correlation_id, causation_id) FROM '$IE_WORK/copy.csv' (FORMAT csv)" >> "$copy_script"
		echo "SELECT count(*) FROM inventory_events.ingest((SELECT events FROM bench.payload WHERE n = $n));" >> "$ingest_script"
	done
	chmod 644 "$copy_script" "$ingest_script"
	for r in $(seq 1 "$bench_rounds"); do
		tc=$(timed_psql "$copy_script"); ti=$(timed_psql "$ingest_script")
		record append "batches of 1,000 events" "ingest() / COPY, events/s" "$r" \
			"$(echo "scale=0; $bench_batches * 1000 / $ti" | bc)" "$(echo "scale=0; $bench_batches * 1000 / $tc" | bc)" ">= 0.7"
	done
	consistency append
	psql_ -c "SELECT inventory_events.publisher_start()" >/dev/null
}

timed_psql() { local t0 t1; t0=$(date +%s.%N); psql_ -o /dev/null -f "$1"; t1=$(date +%s.%N); echo "$t1 - $t0" | bc; }

# verify() over the extension's streams: any difference is recorded (target 0).
consistency() {
	record "$1" "after the part" "streams verify() finds wrong" 1 \
		"$(psql_ -At -c "SELECT count(*) FROM inventory_events.verify()")" "" "= 0"
}
