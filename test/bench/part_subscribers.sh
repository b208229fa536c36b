# The subscribers part of test/bench/run.sh: many logical decoding clients at
# once. For 0, 1, 4 and 8 slots of the inventory_events plugin, each
# streamed by its own pg_recvlogical (the suite's memory walsender, niced,
# runs beside them throughout), two pgbench clients append for
# bench_seconds (one event per transaction, every commit flushed); then:
#   - the appenders' events/s against the same run with no extra slot;
#   - the decode rate per slot: the run's events over the time until every
#     slot has confirmed them (the run plus its catch-up), and that catch-up
#     (how far behind the slots were when the appenders stopped);
#   - the walsenders' peak VmHWM (shared buffers included) and RssAnon.
# The publisher is stopped: what slots cost appenders is measured alone.

part_subscribers() {
	local r n i tps base lsn_end t0 caught secs rate hwm anon events
	cat > "$IE_WORK/sub_append.sql" <<SQL
\\set s random(1, $bench_skus)
\\set l random(1, 3)
SELECT inventory_events.append('SKU' || :s, 'W' || :l, 'received', 1);
SQL
	chmod 644 "$IE_WORK/sub_append.sql"
	for r in $(seq 1 "$bench_rounds"); do
		for n in 0 1 4 8; do
			for i in $(seq 1 "$n"); do
				psql_ -c "SELECT pg_create_logical_replication_slot('sub_$i', 'inventory_events')" >/dev/null
				ie_run sh -c "pg_recvlogical -U postgres -p 5432 -d postgres --slot sub_$i --start -f /dev/null \
					-F 0 --status-interval 1 --no-loop >/dev/null 2>&1 & echo \$! > '$IE_WORK/sub_$i.pid'"
			done
			[ "$n" -gt 0 ] && for i in $(seq 1 100); do
				[ "$(psql_ -At -c "SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE 'sub\\_%' AND active")" = "$n" ] && break
				sleep 0.1
			done
			events=$(psql_ -At -c "SELECT count(*) FROM inventory_events.event")
			t0=$(date +%s.%N)
			tps=$(pgb_ "$IE_WORK/sub_append.sql" 2 "$bench_seconds")
			events=$(( $(psql_ -At -c "SELECT count(*) FROM inventory_events.event") - events ))
			lsn_end=$(psql_ -At -c "SELECT pg_current_wal_lsn()")
			[ "$n" = 0 ] && base=$tps
			record subscribers "$n slots, 2 appenders, fsync on" "append() with the slots / with none, events/s" "$r" "$tps" "$base" ""
			if [ "$n" -gt 0 ]; then
				caught=0
				for i in $(seq 1 600); do
					# A commit after the run, so that every slot has one to confirm past it.
					caught=$(psql_ -At -c "SELECT pg_logical_emit_message(true, 'bench', 'tick') IS NOT NULL" \
						-c "SELECT count(*) FROM pg_replication_slots
						     WHERE slot_name LIKE 'sub\\_%' AND confirmed_flush_lsn >= '$lsn_end'" | tail -1)
					[ "$caught" = "$n" ] && break
					sleep 0.1
				done
				secs=$(echo "$(date +%s.%N) - $t0" | bc)
				record subscribers "$n slots, 2 appenders, fsync on" "catch-up after the appenders stopped, s" "$r" \
					"$(echo "$secs - $bench_seconds" | bc)" "" ""
				rate=$(echo "scale=0; $events / $secs" | bc)
				read -r hwm anon <<<"$(for p in $(psql_ -At -c "SELECT active_pid FROM pg_replication_slots WHERE slot_name LIKE 'sub\\_%'"); do
					awk '/^VmHWM:/ {h=$2} /^RssAnon:/ {a=$2} END {print h, a}' "/proc/$p/status"; done | sort -n | tail -1)"
				record subscribers "$n slots, 2 appenders, fsync on" "decode rate per slot (run and catch-up), events/s" "$r" "$rate" "" ""
				record subscribers "$n slots, 2 appenders, fsync on" "walsender peak VmHWM (shared buffers included), kB" "$r" "${hwm:-0}" "" ""
				record subscribers "$n slots, 2 appenders, fsync on" "walsender RssAnon at the end, kB" "$r" "${anon:-0}" "" ""
				[ "$caught" = "$n" ] || echo "warning: $(( n - caught )) of $n slots did not catch up in 60 s" >&2
			fi
			for i in $(seq 1 "$n"); do
				kill "$(cat "$IE_WORK/sub_$i.pid")" 2>/dev/null || true
			done
			for i in $(seq 1 "$n"); do
				for t in $(seq 1 50); do
					[ "$(psql_ -At -c "SELECT active FROM pg_replication_slots WHERE slot_name = 'sub_$i'")" = f ] && break
					sleep 0.1
				done
				psql_ -c "SELECT pg_drop_replication_slot('sub_$i')" >/dev/null
			done
		done
	done
	consistency subscribers
}
