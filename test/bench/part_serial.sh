# The serial part of test/bench/run.sh: appends of a serialized item against
# the same appends of an item without serials, side by side. Receipts of 1
# and of 10 units per event (so 1 and 10 serials), uniform over 1,000 skus
# of each kind and 3 warehouses, 2 clients, CPU-bound (synchronous_commit
# off). Every serial is new (drawn from a sequence); the baseline builds the
# same array and stores it as the event's payload, so both statements do the
# same work but moving the serials. No target (issue 15: "benchmarked on their own"): the ratio is the
# cost of carrying serials, and items without serials pay nothing for it
# (make bench-versions).

part_serial() {
	local units r plain serialized
	psql_ -c "CREATE SCHEMA IF NOT EXISTS bench" -c "CREATE SEQUENCE IF NOT EXISTS bench.serial_seq" \
		-c "INSERT INTO inventory_events.item (sku, serialized)
		    SELECT 'SER' || g, true FROM generate_series(1, 1000) g ON CONFLICT DO NOTHING" \
		-c "ALTER SYSTEM SET synchronous_commit = off" -c "SELECT pg_reload_conf()" >/dev/null
	for units in 1 10; do
		{
			echo '\set s random(1, 1000)'
			echo '\set l random(1, 3)'
			echo "SELECT inventory_events.append('SER' || :s, 'W' || :l, 'received', $units, ref => n::text, serials => ARRAY(SELECT 'SN' || n || '-' || g FROM generate_series(1, $units) g)) FROM nextval('bench.serial_seq') n;"
		} > "$IE_WORK/b.sql"
		{
			echo '\set s random(1, 1000)'
			echo '\set l random(1, 3)'
			echo "SELECT inventory_events.append('SKU' || :s, 'W' || :l, 'received', $units, ref => n::text, payload => to_jsonb(ARRAY(SELECT 'SN' || n || '-' || g FROM generate_series(1, $units) g))) FROM nextval('bench.serial_seq') n;"
		} > "$IE_WORK/c.sql"
		chmod 644 "$IE_WORK"/[bc].sql
		for r in $(seq 1 "$bench_rounds"); do
			plain=$(pgb_ "$IE_WORK/c.sql" 2 "$bench_seconds")
			serialized=$(pgb_ "$IE_WORK/b.sql" 2 "$bench_seconds")
			record serial "receipts of $units, 2 clients, sync_commit off" \
				"serialized append() / the same without serials, events/s" "$r" "$serialized" "$plain" ""
		done
	done
	psql_ -c "ALTER SYSTEM RESET synchronous_commit" -c "SELECT pg_reload_conf()" >/dev/null
	record serial "after the part" "serials where the stock disagrees (serial_drift rows)" 1 \
		"$(psql_ -At -c "SELECT count(*) FROM inventory_events.serial_drift")" "" "= 0"
	consistency serial
}
