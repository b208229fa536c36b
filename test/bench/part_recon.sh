# The reconciliation part of test/bench/run.sh (issue 13, "Performance"): a
# full WMS snapshot of 99,999 lines (every stream of 30,000 skus at three
# warehouses, a ninth of them lot-controlled with two lots) reconciled as of
# a cut-off against a log of bench_recon_log events, by
#   contender  COPY into inventory_events.recon_staging + reconcile_staged(),
#              one transaction (the run: lines, statuses, tolerances, hints,
#              exceptions);
#   baseline   the same COPY + the SQL a team would write: the staged lines
#              full-joined with sum(on_hand(effect)) of the events that
#              occurred up to the cut-off, per sku/location/lot, written to a
#              table, one transaction.
# Both figures are wall-clock seconds of the whole transaction, the COPY
# counted in both (its time alone is a figure of its own). Snapshots with 2 %
# of the lines differing (a realistic WMS) and with 20 %.
# Then the curve: the run's time against the history (bench_recon_histories,
# with bench_recon_fixed_after events after the cut-off) and against the
# events after the cut-off (bench_recon_afters, at bench_recon_log), 2 %.
# The log (test/bench/recon.sql): INSERT ... SELECT with the stock trigger
# off, times over the year before the cut-off in insert order (1 % recorded
# hours late), then the events after the cut-off (5 % of them late postings
# that occurred before it); the stock rows derived from the events in one
# statement (rebuild() loops over the streams); verify() must find nothing.
# recon.csv holds the curve.

recon_dir=

# recon_snapshot pct: the snapshot file of the current log, pct % differing.
recon_snapshot() {
	psql_ -At -c "SELECT bench_recon.make_snapshot($1)" \
		-c "\\copy bench_recon.snapshot TO '$recon_dir/snapshot.csv' WITH (FORMAT csv)" >/dev/null
}

# recon_time script [keep]: wall-clock seconds of one psql run of a script
# (the runs of earlier rounds and the team's result table cleared first,
# unless keep).
recon_time() {
	local t0 t1
	[ -n "${2:-}" ] || psql_ -c "SELECT bench_recon.clear_runs()" >/dev/null
	t0=$(date +%s%N)
	psql_ -f "$1" >/dev/null
	t1=$(date +%s%N)
	echo "scale=3; ($t1 - $t0) / 1000000000" | bc | sed 's/^\./0./'
}

recon_scripts() {	# the scripts of the current log's cut-off
	local cutoff
	cutoff=$(psql_ -At -c "SELECT cutoff FROM bench_recon.log")
	ie_run sh -c "cat > '$recon_dir/copy.sql'" <<SQL
BEGIN;
\\copy inventory_events.recon_staging (sku, location, lot, qty) FROM '$recon_dir/snapshot.csv' WITH (FORMAT csv)
DELETE FROM inventory_events.recon_staging s WHERE s.load_xid = pg_current_xact_id();
COMMIT;
SQL
	ie_run sh -c "cat > '$recon_dir/contender.sql'" <<SQL
BEGIN;
\\copy inventory_events.recon_staging (sku, location, lot, qty) FROM '$recon_dir/snapshot.csv' WITH (FORMAT csv)
SELECT inventory_events.reconcile_staged('bench-wms', '$cutoff', true, 'bench-' || clock_timestamp());
COMMIT;
SQL
	# The team's SQL: ours as of the cut-off summed from the log, compared.
	ie_run sh -c "cat > '$recon_dir/baseline.sql'" <<SQL
BEGIN;
\\copy inventory_events.recon_staging (sku, location, lot, qty) FROM '$recon_dir/snapshot.csv' WITH (FORMAT csv)
INSERT INTO bench_recon.team_result (sku, location, lot, ours, theirs, variance, status)
SELECT coalesce(t.sku, o.sku), coalesce(t.location, o.location), coalesce(t.lot, nullif(o.lot, '')),
       coalesce(o.qty, 0), coalesce(t.qty, 0), coalesce(t.qty, 0) - coalesce(o.qty, 0),
       CASE WHEN t.sku IS NULL THEN 'missing_in_source' WHEN o.sku IS NULL THEN 'missing_here'
            WHEN t.qty = o.qty THEN 'match' ELSE 'differs' END
  FROM (SELECT s.sku, s.location, s.lot, coalesce(s.lot, '') AS lot_key, s.qty
          FROM inventory_events.recon_staging s WHERE s.load_xid = pg_current_xact_id()) t
  FULL JOIN (SELECT e.sku, e.location, e.lot, sum(inventory_events.on_hand(e.effect)) AS qty
               FROM inventory_events.event e
              WHERE e.occurred_at <= '$cutoff' AND e.location IN ('W1', 'W2', 'W3')
              GROUP BY 1, 2, 3) o
    ON o.sku = t.sku AND o.location = t.location AND o.lot = t.lot_key
 WHERE t.sku IS NOT NULL OR o.qty <> 0;
DELETE FROM inventory_events.recon_staging s WHERE s.load_xid = pg_current_xact_id();
COMMIT;
SQL
}

# Both sides must find the same differences: the (sku, location) pairs with
# a line that is not a match, and ours and theirs in all. (A lot-controlled
# pair the snapshot leaves out entirely is one line of the run, its lots
# summed, and one line per lot of the team's.)
recon_check() {
	local q='SELECT count(DISTINCT (sku, location)) FILTER (WHERE status <> '"'match'"') || '"'/'"' || sum(ours) || '"'/'"' || sum(theirs) FROM'
	local ours team
	ours=$(psql_ -At -c "$q inventory_events.recon_line")
	team=$(psql_ -At -c "$q bench_recon.team_result")
	[ "$ours" = "$team" ] || echo "warning: recon: the run has $ours pairs differing/ours/theirs, the team's SQL $team" >&2
}

recon_log() {	# $1: history, $2: after (0: a new log of $1 events)
	if [ "$2" = 0 ]; then
		psql_ -c "SELECT bench_recon.build($1)" >/dev/null
	else
		psql_ -c "SELECT bench_recon.add_after($2)" >/dev/null
	fi
	psql_ -c "VACUUM ANALYZE inventory_events.event" -c "VACUUM ANALYZE inventory_events.stock" >/dev/null
}

part_recon() {
	local r h a t c b last afters
	local -A base_h base_a
	recon_dir=$IE_WORK/recon
	ie_run mkdir -p "$recon_dir"
	psql_ -f "$IE_WORK/src/test/bench/recon.sql" >/dev/null
	psql_ -c "SELECT bench_recon.setup()" >/dev/null
	ie_run sh -c "echo 'history,after,seconds' > '$IE_WORK/recon.csv'"
	last=${bench_recon_histories##* }
	for h in $bench_recon_histories; do
		t=$(date +%s)
		recon_log "$h" 0
		ie_log "recon: a log of $h events built in $(( $(date +%s) - t )) s"
		# The largest log goes through the after-cut-off curve (ascending,
		# bench_recon_fixed_after among them); the others only that point.
		afters=$bench_recon_fixed_after
		[ "$h" = "$last" ] && afters=$bench_recon_afters
		for a in $afters; do
			recon_log "$h" "$a"
			recon_snapshot 2
			recon_scripts
			for r in $(seq 1 "$bench_recon_rounds"); do
				c=$(recon_time "$recon_dir/contender.sql")
				if [ "$a" = "$bench_recon_fixed_after" ]; then
					b=$(recon_time "$recon_dir/baseline.sql" keep)
					[ "$r" = 1 ] && recon_check
					[ "$h" = "${bench_recon_histories%% *}" ] && base_h[$r]=$c
					record recon "$h events, $a after cut-off, 2 % differ" "team SQL / reconcile_staged(), s" "$r" "$b" "$c" \
						"$([ "$h" -ge 10000000 ] && echo '>= 10')"
					record recon "$h events, $a after cut-off, 2 % differ" \
						"reconcile_staged() s / at ${bench_recon_histories%% *} events" "$r" "$c" "${base_h[$r]}" ""
				fi
				if [ "$h" = "$last" ]; then
					[ "$a" = "${bench_recon_afters%% *}" ] && base_a[$r]=$c
					record recon "$h events, $a after cut-off, 2 % differ" \
						"reconcile_staged() s / at ${bench_recon_afters%% *} after" "$r" "$c" "${base_a[$r]}" ""
				fi
				ie_run sh -c "echo '$h,$a,$c' >> '$IE_WORK/recon.csv'"
			done
			if [ "$h" = "$last" ] && [ "$a" = "$bench_recon_fixed_after" ]; then
				# 20 % differing, and the COPY alone.
				recon_snapshot 20
				for r in $(seq 1 "$bench_recon_rounds"); do
					c=$(recon_time "$recon_dir/contender.sql")
					b=$(recon_time "$recon_dir/baseline.sql" keep)
					[ "$r" = 1 ] && recon_check
					record recon "$h events, $a after cut-off, 20 % differ" "team SQL / reconcile_staged(), s" "$r" "$b" "$c" \
						"$([ "$h" -ge 10000000 ] && echo '>= 10')"
					t=$(recon_time "$recon_dir/copy.sql")
					record recon "$h events, snapshot of $(wc -l < "$recon_dir/snapshot.csv") lines" \
						"the COPY alone (counted in both), s" "$r" "$t" "" ""
				done
			fi
		done
	done
	# The stock rows the runs read are those of the log.
	record recon "$h events, $a after cut-off" "verify() rows" 1 "$(psql_ -At -c 'SELECT count(*) FROM inventory_events.verify()')" "" "= 0"
	psql_ -c "SELECT bench_recon.teardown()" >/dev/null
}
