# The reservation parts of test/bench/run.sh: inventory_events against the
# same operations in PL/pgSQL with SELECT ... FOR UPDATE
# (reserve_baselines.sql), each round from the same stock (reset_stock), and
# afterwards counted for oversell (both sides must show zero).
#   reserve   one line per call, 8 clients, uniform and Zipf-hot skus, then
#             uniform CPU-bound (2 clients, synchronous_commit off): the line
#             as a one-element reserve_lines() array, and through reserve()
#             (the baseline's shape: one line, scalar arguments)
#   burst     peak order burst: 16 clients, 3-line orders of Zipf-hot skus
#   channels  concurrent inventory updates across the four channels: 8
#             clients, a quarter receipts, the rest reservations on a random
#             channel
#   wave      a warehouse wave release: a few thousand reserved lines picked
#             in a few transactions

# Both sides back to the same stock; the publisher catches up before anything is timed.
reset_stock() { psql_ -c "SELECT baseline.reset($1)" -c "SELECT count(*) FROM inventory_events.publish(1000000)" >/dev/null; }

reserve_round() {	# $1 part, $2 workload, $3 round, $4 clients, $5 ext script, $6 baseline script
	#                 [$7: the same line through reserve() instead of reserve_lines(), timed too]
	local b e ba ea bo eo s so
	if [ -n "${7:-}" ]; then
		reset_stock "$bench_units"
		s=$(pgb_ "$7" "$4" "$bench_seconds")
		so=$(psql_ -At -c "SELECT baseline.oversold('extension')")
	fi
	reset_stock "$bench_units"
	b=$(pgb_ "$6" "$4" "$bench_seconds")
	e=$(pgb_ "$5" "$4" "$bench_seconds")
	read -r ba ea bo eo <<<"$(psql_ -At -F ' ' -c "SELECT (SELECT count(*) FROM baseline.reservation) / $bench_seconds.0,
		(SELECT count(*) FROM inventory_events.reservation) / $bench_seconds.0,
		baseline.oversold('baseline'), baseline.oversold('extension')")"
	record "$1" "$2" "extension / FOR UPDATE, transactions/s" "$3" "$e" "$b" ">= 2"
	record "$1" "$2" "extension / FOR UPDATE, accepted lines/s" "$3" "$ea" "$ba" ""
	record "$1" "$2" "oversold streams, FOR UPDATE" "$3" "$bo" "" "= 0"
	record "$1" "$2" "oversold streams, extension" "$3" "$eo" "" "= 0"
	if [ -n "${7:-}" ]; then
		record "$1" "$2" "reserve() / FOR UPDATE, transactions/s" "$3" "$s" "$b" ">= 2"
		record "$1" "$2" "oversold streams, reserve()" "$3" "$so" "" "= 0"
	fi
}

part_reserve() {
	local workload draw r
	local clients label
	# The last pass is CPU-bound, as the append part's first rows
	# (synchronous_commit off, 2 clients): what each side's own work costs,
	# without the commit's flush and the scheduling of 8 clients on the
	# machine's cores, which both sides pay alike and which compress the
	# ratio of the passes before (doc/development.md).
	for workload in uniform zipf uniform-cpu; do
		draw="random(1, $bench_skus)" clients=8 label="${workload} skus, 1 line, 8 clients"
		[ "$workload" = zipf ] && draw="random_zipfian(1, $bench_skus, 1.2)"
		if [ "$workload" = uniform-cpu ]; then
			clients=2 label="uniform skus, 1 line, 2 clients, sync_commit off"
			psql_ -c "ALTER SYSTEM SET synchronous_commit = off" -c "SELECT pg_reload_conf()" >/dev/null
		fi
		cat > "$IE_WORK/ext.sql" <<SQL
\\set s $draw
\\set q random(1, 4)
SELECT status FROM inventory_events.reserve_lines(jsonb_build_array(jsonb_build_object('channel', 'shopify', 'sku', 'SKU' || :s, 'qty', :q::bigint, 'ref', gen_random_uuid()::text)));
SQL
		cat > "$IE_WORK/one.sql" <<SQL
\\set s $draw
\\set q random(1, 4)
SELECT status FROM inventory_events.reserve('shopify', 'SKU' || :s, :q::bigint, gen_random_uuid()::text);
SQL
		cat > "$IE_WORK/base.sql" <<SQL
\\set s $draw
\\set q random(1, 4)
SELECT baseline.reserve('shopify', 'SKU' || :s, :q, gen_random_uuid()::text);
SQL
		chmod 644 "$IE_WORK/ext.sql" "$IE_WORK/one.sql" "$IE_WORK/base.sql"
		for r in $(seq 1 "$bench_rounds"); do
			reserve_round reserve "$label" "$r" "$clients" "$IE_WORK/ext.sql" "$IE_WORK/base.sql" "$IE_WORK/one.sql"
		done
	done
	psql_ -c "ALTER SYSTEM RESET synchronous_commit" -c "SELECT pg_reload_conf()" >/dev/null
	consistency reserve
}

part_burst() {
	local r third=$(( bench_skus / 3 ))
	# Lines of an order in ascending sku order (one slice of the skus each).
	cat > "$IE_WORK/ext.sql" <<SQL
\\set a random_zipfian(1, $third, 1.2)
\\set b random_zipfian($(( third + 1 )), $(( 2 * third )), 1.2)
\\set c random_zipfian($(( 2 * third + 1 )), $bench_skus, 1.2)
\\set q random(1, 3)
SELECT count(*) FROM inventory_events.reserve_lines(jsonb_build_array(
    jsonb_build_object('channel', 'shopify', 'sku', 'SKU' || :a, 'qty', :q::bigint, 'ref', 'o' || :client_id || '-' || random() || '/1'),
    jsonb_build_object('channel', 'shopify', 'sku', 'SKU' || :b, 'qty', 1, 'ref', 'o' || :client_id || '-' || random() || '/2'),
    jsonb_build_object('channel', 'shopify', 'sku', 'SKU' || :c, 'qty', 1, 'ref', 'o' || :client_id || '-' || random() || '/3')));
SQL
	cat > "$IE_WORK/base.sql" <<SQL
\\set a random_zipfian(1, $third, 1.2)
\\set b random_zipfian($(( third + 1 )), $(( 2 * third )), 1.2)
\\set c random_zipfian($(( 2 * third + 1 )), $bench_skus, 1.2)
\\set q random(1, 3)
BEGIN;
SELECT baseline.reserve('shopify', 'SKU' || :a, :q, 'o' || :client_id || '-' || random() || '/1');
SELECT baseline.reserve('shopify', 'SKU' || :b, 1, 'o' || :client_id || '-' || random() || '/2');
SELECT baseline.reserve('shopify', 'SKU' || :c, 1, 'o' || :client_id || '-' || random() || '/3');
COMMIT;
SQL
	chmod 644 "$IE_WORK/ext.sql" "$IE_WORK/base.sql"
	for r in $(seq 1 "$bench_rounds"); do
		reserve_round burst "3-line orders, Zipf, 16 clients" "$r" 16 "$IE_WORK/ext.sql" "$IE_WORK/base.sql"
	done
	consistency burst
}

part_channels() {
	local r
	cat > "$IE_WORK/ext.sql" <<SQL
\\set s random_zipfian(1, $bench_skus, 1.1)
\\set k random(1, 4)
\\set l random(1, 3)
\\if :k = 1
SELECT inventory_events.append('SKU' || :s, 'W' || :l, 'received', 4);
\\else
SELECT status FROM inventory_events.reserve_lines(jsonb_build_array(jsonb_build_object('channel', (ARRAY['shopify', 'amazon', 'edi', 'b2b'])[1 + :client_id % 4], 'sku', 'SKU' || :s, 'qty', 1, 'ref', gen_random_uuid()::text)));
\\endif
SQL
	cat > "$IE_WORK/base.sql" <<SQL
\\set s random_zipfian(1, $bench_skus, 1.1)
\\set k random(1, 4)
\\set l random(1, 3)
\\if :k = 1
SELECT baseline.receive('SKU' || :s, 'W' || :l, 4);
\\else
SELECT baseline.reserve((ARRAY['shopify', 'amazon', 'edi', 'b2b'])[1 + :client_id % 4], 'SKU' || :s, 1, gen_random_uuid()::text);
\\endif
SQL
	chmod 644 "$IE_WORK/ext.sql" "$IE_WORK/base.sql"
	for r in $(seq 1 "$bench_rounds"); do
		reserve_round channels "receipts + 4 channels, 8 clients" "$r" 8 "$IE_WORK/ext.sql" "$IE_WORK/base.sql"
	done
	consistency channels
}

# A wave: bench_wave lines reserved on shopify (untimed), then picked and
# shipped in transactions of bench_wave / 4 lines: pick() and ship() per line
# against baseline.pick() and baseline.ship() (PL/pgSQL, SELECT ... FOR UPDATE).
part_wave() {
	local r per=$(( bench_wave / 4 )) tb te
	for r in $(seq 1 "$bench_rounds"); do
		reset_stock "$bench_units"
		# The orders came in separately: 500 lines per reserve_lines() call.
		psql_ -c "SELECT sum((SELECT count(*) FROM inventory_events.reserve_lines((SELECT jsonb_agg(jsonb_build_object(
		              'channel', 'shopify', 'sku', 'SKU' || (1 + g * 7 % $bench_skus), 'qty', 2, 'ref', 'wave-' || g))
		            FROM generate_series(c * 500 + 1, least((c + 1) * 500, $bench_wave)) g))))
		            FROM generate_series(0, ($bench_wave - 1) / 500) c" \
			-c "SELECT count(baseline.reserve('shopify', 'SKU' || (1 + g * 7 % $bench_skus), 2, 'wave-' || g))
		            FROM generate_series(1, $bench_wave) g" >/dev/null
		: > "$IE_WORK/wave_ext.psql"; : > "$IE_WORK/wave_base.psql"
		for w in 0 1 2 3; do
			echo "SELECT count(*) FROM (SELECT inventory_events.pick('shopify', 'wave-' || g) FROM generate_series($(( w * per + 1 )), $(( (w + 1) * per ))) g) x;" >> "$IE_WORK/wave_ext.psql"
			echo "SELECT count(*) FROM (SELECT inventory_events.ship('shopify', 'wave-' || g) FROM generate_series($(( w * per + 1 )), $(( (w + 1) * per ))) g) x;" >> "$IE_WORK/wave_ext.psql"
			echo "SELECT count(baseline.pick('shopify', 'wave-' || g)) FROM generate_series($(( w * per + 1 )), $(( (w + 1) * per ))) g;" >> "$IE_WORK/wave_base.psql"
			echo "SELECT count(baseline.ship('shopify', 'wave-' || g)) FROM generate_series($(( w * per + 1 )), $(( (w + 1) * per ))) g;" >> "$IE_WORK/wave_base.psql"
		done
		chmod 644 "$IE_WORK"/wave_*.psql
		tb=$(timed_psql "$IE_WORK/wave_base.psql"); te=$(timed_psql "$IE_WORK/wave_ext.psql")
		record wave "$bench_wave lines in 4 transactions" "pick() + ship() / FOR UPDATE, lines/s" "$r" \
			"$(echo "scale=0; $bench_wave / $te" | bc)" "$(echo "scale=0; $bench_wave / $tb" | bc)" ">= 1.5"
		record wave "$bench_wave lines in 4 transactions" "lines left unshipped, extension" "$r" \
			"$(psql_ -At -c "SELECT count(*) FROM inventory_events.allocation WHERE reserved > 0 OR picked > 0")" "" "= 0"
	done
	consistency wave
}
