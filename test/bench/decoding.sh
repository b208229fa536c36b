#!/usr/bin/env bash
# Logical decoding of the same WAL by three output plugins, side by side on
# one throw-away cluster: inventory_events, wal2json (format-version 2) and
# test_decoding. The workload is append() with its stock updates, ten events
# per transaction; the slots are created before it, so every contender reads
# exactly the same changes. Each round peeks every slot once, in turn
# (pg_logical_slot_peek_changes, so that rounds repeat), and the median of the
# rounds is reported: time, lines and bytes of output, and our figures over
# wal2json's (targets: wal2json's time / ours >= 1.5, our bytes / wal2json's
# <= 0.5).
#
# Contenders carry the same information where they can:
#   inventory_events  include-xact: begin/commit with xid, LSNs, commit time;
#                     events and publications with their LSN
#   wal2json          format-version 2, add-tables for the event and
#                     publication logs, include-xids, include-lsn,
#                     include-timestamp; otherwise its defaults (column types on)
#   wal2json lean     the same with include-types off: the smallest output a
#                     wal2json user can ask for
#   test_decoding     its defaults; it cannot filter by table, so its figures
#                     include the stock rows
#
#   bash test/bench/decoding.sh
#   BENCH_EVENTS=100000 BENCH_ROUNDS=3
IE_EXTRA_PACKAGES="postgresql-15-wal2json"
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

events=${BENCH_EVENTS:-100000}
rounds=${BENCH_ROUNDS:-3}

bench_start
psql_ -c "CREATE EXTENSION inventory_events" \
	-c "SELECT inventory_events.publisher_stop()" \
	-c "INSERT INTO inventory_events.item (sku) SELECT 'SKU' || g FROM generate_series(1, 1000) g" \
	-c "INSERT INTO inventory_events.location (code) VALUES ('W1'), ('W2'), ('W3')" >/dev/null

psql_ -c "CREATE FUNCTION bench_peek(slot name, VARIADIC options text[])
	RETURNS TABLE (ms numeric, lines bigint, bytes bigint) LANGUAGE plpgsql AS \$\$
	DECLARE t0 timestamptz := clock_timestamp();
	BEGIN
	    SELECT count(*), coalesce(sum(octet_length(data)), 0) INTO lines, bytes
	      FROM pg_logical_slot_peek_changes(slot, NULL, NULL, VARIADIC options);
	    ms := round(extract(epoch FROM clock_timestamp() - t0)::numeric * 1000, 1);
	    RETURN NEXT;
	END \$\$" \
	-c "SELECT pg_create_logical_replication_slot('bench_ie', 'inventory_events')" \
	-c "SELECT pg_create_logical_replication_slot('bench_w2j', 'wal2json')" \
	-c "SELECT pg_create_logical_replication_slot('bench_td', 'test_decoding')" >/dev/null

psql_ -c "DO \$\$
	BEGIN
	    FOR t IN 0 .. $events / 10 - 1 LOOP
	        PERFORM inventory_events.append('SKU' || (1 + (t * 10 + e) * 7919 % 1000), 'W' || (1 + e % 3), 'received', 1 + e)
	           FROM generate_series(0, 9) e;
	        COMMIT;
	    END LOOP;
	END \$\$"

declare -A options=(
	[inventory_events]="'bench_ie', 'include-xact', 'on'"
	[wal2json]="'bench_w2j', 'format-version', '2', 'add-tables', 'inventory_events.event,inventory_events.publication', 'include-xids', '1', 'include-lsn', '1', 'include-timestamp', '1'"
	[wal2json_lean]="'bench_w2j', 'format-version', '2', 'add-tables', 'inventory_events.event,inventory_events.publication', 'include-xids', '1', 'include-lsn', '1', 'include-timestamp', '1', 'include-types', '0'"
	[test_decoding]="'bench_td', 'include-timestamp', 'on'"
)
contenders=(inventory_events wal2json wal2json_lean test_decoding)
declare -A ms lines bytes
for r in $(seq 1 "$rounds"); do
	for c in "${contenders[@]}"; do
		IFS='|' read -r m l b < <(psql_ -At -c "SELECT * FROM bench_peek(${options[$c]})")
		ms[$c]="${ms[$c]:-} $m"
		lines[$c]=$l
		bytes[$c]=$b
	done
done

echo
echo "decoding $events events (append() with stock updates, 10 per transaction), median of $rounds rounds"
printf '%-17s %10s %10s %12s %10s %10s\n' plugin ms lines bytes "time/ours" "bytes/ours"
# shellcheck disable=SC2086
ours_ms=$(median ${ms[inventory_events]})
for c in "${contenders[@]}"; do
	# shellcheck disable=SC2086
	m=$(median ${ms[$c]})
	printf '%-17s %10.1f %10s %12s %10s %10s\n' "$c" "$m" "${lines[$c]}" "${bytes[$c]}" \
		"$(ratio "$m" "$ours_ms")" "$(ratio "${bytes[$c]}" "${bytes[inventory_events]}")"
done
# shellcheck disable=SC2086
echo "wal2json time / ours = $(ratio "$(median ${ms[wal2json]})" "$ours_ms") (target >= 1.5)"
echo "our bytes / wal2json's = $(ratio "${bytes[inventory_events]}" "${bytes[wal2json]}") (target <= 0.5);" \
	"/ wal2json lean = $(ratio "${bytes[inventory_events]}" "${bytes[wal2json_lean]}")"
bench_stop
