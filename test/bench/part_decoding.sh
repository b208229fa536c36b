# The decoding part of test/bench/run.sh: the same WAL decoded by three
# output plugins, side by side: inventory_events, wal2json (format-version 2)
# and test_decoding. Three slots are created, then bench_decode_events events
# are appended (append() with its stock updates, ten per transaction); each
# round peeks every slot once, in turn (pg_logical_slot_peek_changes, so that
# rounds repeat on the same WAL).
#
# The contenders carry the same information where they can:
#   inventory_events  include-xact: begin/commit with xid, LSNs, commit time;
#                     events and publications with their LSN
#   wal2json          format-version 2, add-tables for the event log's
#                     partitions and the publication log, include-xids, include-lsn,
#                     include-timestamp; otherwise its defaults (column types on)
#   wal2json lean     the same with include-types off: the smallest output a
#                     wal2json user can ask for
#   test_decoding     its defaults; it cannot filter by table, so its figures
#                     include the stock rows
#   pgoutput floor    pgoutput with a publication of no tables: the WAL is read,
#                     reordered and decoded, and nothing is written; the floor
#                     of any output plugin (target: ours within 1.5x of it)

part_decoding() {
	local r c m l b
	psql_ -c "CREATE FUNCTION bench_peek(slot name, VARIADIC options text[])
		RETURNS TABLE (ms numeric, lines bigint, bytes bigint) LANGUAGE plpgsql AS \$\$
		DECLARE t0 timestamptz := clock_timestamp();
		BEGIN
		    SELECT count(*), coalesce(sum(octet_length(data)), 0) INTO lines, bytes
		      FROM pg_logical_slot_peek_changes(slot, NULL, NULL, VARIADIC options);
		    ms := round(extract(epoch FROM clock_timestamp() - t0)::numeric * 1000, 1);
		    RETURN NEXT;
		END \$\$" \
		-c "CREATE FUNCTION bench_peek_binary(slot name, VARIADIC options text[])
		RETURNS TABLE (ms numeric, lines bigint, bytes bigint) LANGUAGE plpgsql AS \$\$
		DECLARE t0 timestamptz := clock_timestamp();
		BEGIN
		    SELECT count(*), coalesce(sum(octet_length(data)), 0) INTO lines, bytes
		      FROM pg_logical_slot_peek_binary_changes(slot, NULL, NULL, VARIADIC options);
		    ms := round(extract(epoch FROM clock_timestamp() - t0)::numeric * 1000, 1);
		    RETURN NEXT;
		END \$\$" \
		-c "CREATE PUBLICATION bench_none" \
		-c "SELECT pg_create_logical_replication_slot('bench_po', 'pgoutput')" \
		-c "SELECT pg_create_logical_replication_slot('bench_ie', 'inventory_events')" \
		-c "SELECT pg_create_logical_replication_slot('bench_w2j', 'wal2json')" \
		-c "SELECT pg_create_logical_replication_slot('bench_td', 'test_decoding')" >/dev/null
	psql_ -c "DO \$\$
		BEGIN
		    FOR t IN 0 .. $bench_decode_events / 10 - 1 LOOP
		        PERFORM inventory_events.append('SKU' || (1 + (t * 10 + e) * 7919 % $bench_skus), 'W' || (1 + e % 3), 'received', 1 + e)
		           FROM generate_series(0, 9) e;
		        COMMIT;
		    END LOOP;
		END \$\$"
	# wal2json filters by the table a change is logged for: the log's
	# partitions (from 0.3.0), not the partitioned table, which it never sees.
	local tables
	tables=$(psql_ -At -c "SELECT string_agg(c.oid::regclass::text, ',' ORDER BY c.relname)
		FROM pg_class c
		WHERE c.oid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = 'inventory_events.event'::regclass)
		   OR c.oid IN ('inventory_events.event'::regclass, 'inventory_events.publication'::regclass)")
	local -A options=(
		[inventory_events]="'bench_ie', 'include-xact', 'on'"
		[wal2json]="'bench_w2j', 'format-version', '2', 'add-tables', '$tables', 'include-xids', '1', 'include-lsn', '1', 'include-timestamp', '1'"
		[wal2json_lean]="'bench_w2j', 'format-version', '2', 'add-tables', '$tables', 'include-xids', '1', 'include-lsn', '1', 'include-timestamp', '1', 'include-types', '0'"
		[test_decoding]="'bench_td', 'include-timestamp', 'on'"
	)
	local -A ms bytes
	local label="$bench_decode_events events, 10/tx"
	for r in $(seq 1 "$bench_rounds"); do
		for c in inventory_events wal2json wal2json_lean test_decoding; do
			IFS='|' read -r m l b < <(psql_ -At -c "SELECT * FROM bench_peek(${options[$c]})")
			ms[$c]=$m; bytes[$c]=$b
		done
		IFS='|' read -r m l b < <(psql_ -At -c "SELECT * FROM bench_peek_binary('bench_po', 'proto_version', '1', 'publication_names', 'bench_none')")
		ms[pgoutput]=$m
		record decoding "$label" "inventory_events / pgoutput floor (no tables), time" "$r" "${ms[inventory_events]}" "${ms[pgoutput]}" "<= 1.5"
		record decoding "$label" "wal2json / inventory_events, time" "$r" "${ms[wal2json]}" "${ms[inventory_events]}" ">= 1.5"
		record decoding "$label" "wal2json lean / inventory_events, time" "$r" "${ms[wal2json_lean]}" "${ms[inventory_events]}" ""
		record decoding "$label" "test_decoding / inventory_events, time" "$r" "${ms[test_decoding]}" "${ms[inventory_events]}" ""
		record decoding "$label" "inventory_events / wal2json, bytes" "$r" "${bytes[inventory_events]}" "${bytes[wal2json]}" "<= 0.5"
		record decoding "$label" "inventory_events / wal2json lean, bytes" "$r" "${bytes[inventory_events]}" "${bytes[wal2json_lean]}" ""
		record decoding "$label" "inventory_events / test_decoding, bytes" "$r" "${bytes[inventory_events]}" "${bytes[test_decoding]}" ""
	done
	psql_ -c "SELECT pg_drop_replication_slot(s) FROM unnest(ARRAY['bench_ie', 'bench_w2j', 'bench_td', 'bench_po']) s" \
		-c "DROP PUBLICATION bench_none" >/dev/null
}
