#!/usr/bin/env bash
# Reservation throughput, side by side in one invocation on one throw-away
# cluster, 8 clients: inventory_events.reserve_lines() (one line per call)
# against baseline.reserve(), the same check-and-reserve in PL/pgSQL with
# SELECT ... FOR UPDATE (test/bench/reserve_baselines.sql). Two workloads:
# skus drawn uniformly from 1,000, and Zipf-hot (random_zipfian, s = 1.2).
# Stock is limited (BENCH_UNITS per sku and location) so hot skus sell out
# and refusals are exercised; every run starts from the same stock and is
# checked for oversell afterwards (both sides must show zero).
#
# Then channel_availability() for one sku with 10 thousand and with 1 million
# events in the log, against summing that sku's events.
#
#   bash test/bench/reserve.sh
#   BENCH_SECONDS=10 BENCH_CLIENTS=8 BENCH_ROUNDS=3 BENCH_UNITS=2000 BENCH_LOG_EVENTS=1000000
#   (about 15 minutes; growing the log to a million events takes half of it;
#   BENCH_LOG_EVENTS=0 runs the reservations only)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

seconds=${BENCH_SECONDS:-10}
clients=${BENCH_CLIENTS:-8}
rounds=${BENCH_ROUNDS:-3}
units=${BENCH_UNITS:-2000}
log_events=${BENCH_LOG_EVENTS:-1000000}

bench_start
psql_ -c "CREATE EXTENSION inventory_events" \
	-c "INSERT INTO inventory_events.item (sku) SELECT 'SKU' || g FROM generate_series(1, 1000) g" \
	-c "INSERT INTO inventory_events.location (code) VALUES ('W1'), ('W2'), ('W3')" \
	-c "INSERT INTO inventory_events.channel (code) VALUES ('web')" \
	-c "INSERT INTO inventory_events.channel_location (channel, location, priority) VALUES ('web', 'W1', 1), ('web', 'W2', 2), ('web', 'W3', 2)"
psql_ -f "$IE_WORK/src/test/bench/reserve_baselines.sql"

script() {	# $1: sku draw, $2: call template with @S@ (sku) and @R@ (ref)
	echo "\\set s $1"
	echo '\set q random(1, 4)'
	echo "$2" | sed "s/@S@/('SKU' || :s::int)/g; s/@R@/gen_random_uuid()::text/g"
}
ext_call="SELECT status FROM inventory_events.reserve_lines(jsonb_build_array(jsonb_build_object('channel', 'web', 'sku', @S@, 'qty', :q::bigint, 'ref', @R@)));"
base_call="SELECT baseline.reserve('web', @S@, :q, @R@);"

for workload in uniform zipf; do
	draw='random(1, 1000)'
	[ "$workload" = zipf ] && draw='random_zipfian(1, 1000, 1.2)'
	script "$draw" "$ext_call" > "$IE_WORK/ext.sql"
	script "$draw" "$base_call" > "$IE_WORK/base.sql"
	chmod 644 "$IE_WORK/ext.sql" "$IE_WORK/base.sql"
	echo
	echo "reserve, $workload skus: $clients clients, ${seconds}s per run, $units units per sku and location, reservations/s"
	printf '%-6s %14s %14s %7s %14s %14s %7s %10s %10s\n' round "(b) FOR UPDATE" "(e) extension" "e/b" \
		"b accepted/s" "e accepted/s" "e/b" "b oversold" "e oversold"
	all=() acc=()
	for r in $(seq 1 "$rounds"); do
		psql_ -c "SELECT baseline.reset($units)" >/dev/null
		b=$(pgb_ "$IE_WORK/base.sql" "$clients" "$seconds")
		e=$(pgb_ "$IE_WORK/ext.sql" "$clients" "$seconds")
		read -r ba ea bo eo <<<"$(psql_ -At -F ' ' -c "SELECT (SELECT count(*) FROM baseline.reservation) / $seconds.0,
			(SELECT count(*) FROM inventory_events.reservation) / $seconds.0,
			baseline.oversold('baseline'), baseline.oversold('extension')")"
		all+=("$(ratio "$e" "$b")"); acc+=("$(ratio "$ea" "$ba")")
		printf '%-6s %14.0f %14.0f %7s %14.0f %14.0f %7s %10s %10s\n' "$r" "$b" "$e" "${all[-1]}" "$ba" "$ea" "${acc[-1]}" "$bo" "$eo"
	done
	echo "median e/b = $(median "${all[@]}") calls, $(median "${acc[@]}") accepted reservations (target >= 1.5; oversold must be 0 on both sides)"
done
psql_ -At -c "SELECT 'consistency: ' || CASE WHEN count(*) = 0 THEN 'verify() clean' ELSE count(*) || ' streams differ' END FROM inventory_events.verify()"

if [ "$log_events" -le 10000 ]; then	# BENCH_LOG_EVENTS=0: reservations only
	bench_stop
	exit 0
fi

# channel_availability at two log sizes. The measured sku, HOT, is a hot one:
# a tenth of the log's events are its own (receipts and reservations at the
# channel's locations), the rest spread over the other skus.
psql_ -c "INSERT INTO inventory_events.item (sku) VALUES ('HOT')"
grow_log() {	# $1: events in the log afterwards
	psql_ -o /dev/null -c "SELECT count(inventory_events.append(CASE WHEN g % 10 = 0 THEN 'HOT' ELSE 'SKU' || (1 + g % 1000) END,
	                                            'W' || (1 + g % 3),
	                                            (CASE WHEN g % 2 = 0 THEN 'received' ELSE 'adjusted' END)::inventory_events.event_type, 1))
	            FROM generate_series((SELECT count(*) FROM inventory_events.event) + 1, $1) g"
}
cat > "$IE_WORK/avail.sql" <<'SQL'
SELECT inventory_events.channel_availability('web', 'HOT');
SQL
cat > "$IE_WORK/sum.sql" <<'SQL'
SELECT greatest(sum(inventory_events.available(e.effect)), 0)
  FROM inventory_events.event e
  JOIN inventory_events.channel_location cl ON cl.location = e.location AND cl.channel = 'web'
 WHERE e.sku = 'HOT';
SQL
chmod 644 "$IE_WORK/avail.sql" "$IE_WORK/sum.sql"
psql_ -c "SELECT baseline.reset(0)" >/dev/null
echo
echo "channel_availability('web', 'HOT'): 1 client, ${seconds}s per run, calls/s"
printf '%-10s %10s %14s %14s %16s\n' "log" "HOT events" "availability" "sum of events" "avail/sum"
declare -A tps
for size in 10000 "$log_events"; do
	grow_log "$size"
	psql_ -c "VACUUM ANALYZE inventory_events.event"
	hot=$(psql_ -At -c "SELECT count(*) FROM inventory_events.event WHERE sku = 'HOT'")
	a=(); s=()
	for r in $(seq 1 "$rounds"); do
		a+=("$(pgb_ "$IE_WORK/avail.sql" 1 "$seconds")"); s+=("$(pgb_ "$IE_WORK/sum.sql" 1 "$seconds")")
	done
	tps[$size]=$(median "${a[@]}")
	sm=$(median "${s[@]}")
	printf '%-10s %10s %14.0f %14.1f %16s\n' "$size" "$hot" "${tps[$size]}" "$sm" "$(ratio "${tps[$size]}" "$sm")"
done
echo "availability calls/s at 10,000 / at $log_events events = $(ratio "${tps[10000]}" "${tps[$log_events]}") (target <= 1.2: flat); avail/sum at $log_events (target >= 100)"
bench_stop
