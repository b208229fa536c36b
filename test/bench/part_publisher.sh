# The publisher part of test/bench/run.sh:
# 1. Commit-to-notification latency: a real LISTEN client (listen.pl, Perl
#    DBD::Pg) on the shopify channel while pgbench appends one event per
#    transaction at a steady rate. For each event, the time from its
#    transaction's start (recorded_at; an upper bound of its commit) to the
#    client's receipt of the first publication of its sku made after it.
#    p50 and p99 (target p99 < 100 ms; shopify has no interval).
# 2. The cost of the wake-up on the append path: append() throughput with the
#    publisher running and with it stopped (publisher_stop()), alternately
#    (target running / stopped >= 0.95).

part_publisher() {
	local r start listener p50 p99 heard events on off
	cat > "$IE_WORK/append.sql" <<SQL
\\set s random(1, $bench_skus)
\\set l random(1, 3)
SELECT inventory_events.append('SKU' || :s, 'W' || :l, 'received', 1);
SQL
	chmod 644 "$IE_WORK/append.sql"
	cp "$IE_WORK/src/test/bench/listen.pl" "$IE_WORK/listen.pl"
	chmod 644 "$IE_WORK/listen.pl"
	psql_ -c "SELECT count(*) FROM inventory_events.publish()" >/dev/null	# the current state, published
	for r in $(seq 1 "$bench_rounds"); do
		ie_run sh -c "perl '$IE_WORK/listen.pl' 'dbi:Pg:dbname=postgres;host=$IE_WORK/sock;port=5432' \
			inventory_events.shopify $((bench_seconds + 3)) > '$IE_WORK/heard.tsv'" &
		listener=$!
		sleep 1
		start=$(psql_ -At -c "SELECT clock_timestamp()")
		ie_run pgbench -n -M prepared -U postgres -p 5432 -c 2 -j 2 -R 200 -T "$bench_seconds" -f "$IE_WORK/append.sql" postgres >/dev/null 2>&1
		wait "$listener"
		read -r events heard p50 p99 <<<"$(psql_ -At -F ' ' -c "CREATE TEMP TABLE heard (seq bigint, received double precision)" \
			-c "\\copy heard FROM '$IE_WORK/heard.tsv' WITH (FORMAT text)" -c "
			WITH e AS (
			    SELECT e.id, e.sku, e.recorded_at FROM inventory_events.event e
			     WHERE e.recorded_at >= '$start' AND e.event_type = 'received'
			), lat AS (
			    SELECT extract(epoch FROM to_timestamp(h.received) - e.recorded_at) * 1000 AS ms
			      FROM e
			      CROSS JOIN LATERAL (SELECT min(p.seq) AS seq FROM inventory_events.publication p
			                           WHERE p.channel = 'shopify' AND p.sku = e.sku AND p.published_at >= e.recorded_at) first
			      JOIN heard h ON h.seq = first.seq
			)
			SELECT (SELECT count(*) FROM e), count(*),
			       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 1),
			       round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 1)
			  FROM lat")"
		record publisher "200 appends/s, LISTEN client" "commit-to-notification p50, ms" "$r" "$p50" "" ""
		record publisher "200 appends/s, LISTEN client" "commit-to-notification p99, ms" "$r" "$p99" "" "<= 100"
		record publisher "200 appends/s, LISTEN client" "events not heard" "$r" "$(( events - heard ))" "" "= 0"
	done
	for r in $(seq 1 "$bench_rounds"); do
		psql_ -c "SELECT inventory_events.publisher_stop()" -c "SELECT pg_sleep(0.5)" >/dev/null
		off=$(pgb_ "$IE_WORK/append.sql" 2 "$bench_seconds")
		psql_ -c "SELECT inventory_events.publisher_start()" -c "SELECT pg_sleep(1.5)" >/dev/null
		on=$(pgb_ "$IE_WORK/append.sql" 2 "$bench_seconds")
		record publisher "append(), 2 clients, 1/tx" "publisher running / stopped, events/s" "$r" "$on" "$off" ">= 0.95"
	done
}
