# The publisher part of test/bench/run.sh: the cost of the wake-up on the
# append path: append() throughput with the publisher running and with it
# stopped (publisher_stop()), alternately (target running / stopped >= 0.95).
# (The latency a channel sees, commit to connector: the connector part.)

part_publisher() {
	local r on off
	cat > "$IE_WORK/append.sql" <<SQL
\\set s random(1, $bench_skus)
\\set l random(1, 3)
SELECT inventory_events.append('SKU' || :s, 'W' || :l, 'received', 1);
SQL
	chmod 644 "$IE_WORK/append.sql"
	for r in $(seq 1 "$bench_rounds"); do
		psql_ -c "SELECT inventory_events.publisher_stop()" -c "SELECT pg_sleep(0.5)" >/dev/null
		off=$(pgb_ "$IE_WORK/append.sql" 2 "$bench_seconds")
		psql_ -c "SELECT inventory_events.publisher_start()" -c "SELECT pg_sleep(1.5)" >/dev/null
		on=$(pgb_ "$IE_WORK/append.sql" 2 "$bench_seconds")
		record publisher "append(), 2 clients, 1/tx" "publisher running / stopped, events/s" "$r" "$on" "$off" ">= 0.95"
	done
}
