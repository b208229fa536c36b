# The log growth part of test/bench/run.sh: the event log grown from 10
# thousand to bench_growth_sizes events (a tenth of them HOT's, the rest over
# the catalog), and at every size:
#   - append() latency, 1 client, one event per transaction (flat: latency at
#     this size / at 10 thousand, target <= 1.2);
#   - channel_availability('shopify', 'HOT') latency (flat likewise), and
#     against the baseline that sums HOT's events at the channel's
#     locations (target: at least 100x faster at a million events);
#   - channel_availability('by-node', 'HOT') latency (flat likewise): a
#     channel that sources from a node of the location hierarchy (a region
#     above the three warehouses, made here for this part);
#   - position_as_of('HOT', 'W1', now()) latency (flat likewise), the stream
#     snapshotted by take_snapshots(1000) after each step, and against the
#     same fold of the whole history (stream_fold(..., use_snapshots =>
#     false)): the curve of what snapshots save, growing with the history;
#   - once per size: verify() of the whole log, its time against the events
#     it reads (after the predecessor of each stream's newest snapshot: the
#     events after the snapshot and its proof) and the streams; disk bytes per
#     event of the log's table and its indexes;
#   - from 100 thousand on, the time to archive: each step's events (the
#     measured appends too, on inventory_events.clock) are recorded in a
#     month of their own (2020-01 on, partitions made for it),
#     and archive_before() detaches every month but the newest (after
#     take_snapshots(min_events => 1), timed apart), then attach_archived()
#     puts them back for the next step.
# Latency targets: <= 1.2 (bench_growth_target; make bench-growth: <= 1.1).
# The log is grown by one INSERT ... SELECT per step with the stock trigger
# disabled, then rebuild() derives the stock rows (appending millions of
# events one by one would take most of an hour); the measured appends go
# through append() as always. growth.csv holds the figures for the chart.

grow_log() {	# $1: events in the log afterwards, $2: the month they are recorded in
	psql_ -c "SELECT count(*) FROM inventory_events.create_partitions('$2', 0)" \
		-c "ALTER TABLE inventory_events.event DISABLE TRIGGER event_stock" \
		-c "INSERT INTO inventory_events.event (sku, location, lot, version, event_type, to_bucket, qty, uom, uom_qty,
		                                      effect, occurred_at, recorded_at, correlation_id, causation_id)
		    SELECT x.sku, x.location, '', coalesce(s.version, 0) + row_number() OVER (PARTITION BY x.sku, x.location ORDER BY x.g),
		           'received', 'available', 1, 'EA', 1, inventory_events.stock_position(available => 1), x.t, x.t,
		           '00000000-0000-0000-0000-000000000000', '00000000-0000-0000-0000-000000000000'
		      FROM (SELECT g, CASE WHEN g % 10 = 0 THEN 'HOT' ELSE 'SKU' || (1 + g % $bench_skus) END AS sku,
		                   'W' || (1 + g % 3) AS location, '$2'::timestamptz + (g % 2000000) * interval '1 second' AS t
		              FROM generate_series((SELECT count(*) FROM inventory_events.event) + 1, $1) g) x
		      LEFT JOIN inventory_events.stock s ON s.sku = x.sku AND s.location = x.location AND s.lot = ''" \
		-c "ALTER TABLE inventory_events.event ENABLE ALWAYS TRIGGER event_stock" \
		-c "SET client_min_messages = warning" -c "SELECT inventory_events.rebuild(1000000)" \
		-c "SELECT inventory_events.take_snapshots(1000)" \
		-c "VACUUM ANALYZE inventory_events.event" -c "VACUUM ANALYZE inventory_events.stock" >/dev/null
}

part_growth() {
	local size r out tps lat atp_tps atp_lat sum_tps sum_lat
	local -A base_append base_atp base_node
	local node_tps node_lat asof_tps asof_lat full_tps full_lat
	local -A base_asof
	local target=${bench_growth_target:-<= 1.2} verify_ms since streams step=0 month archived archive_ms snap_ms attach_ms
	# The reset truncates the log: not while the publisher may be reading it
	# (a publisher step that has a table the TRUNCATE wants, and waits for
	# one the TRUNCATE holds, is a deadlock).
	psql_ -c "SELECT inventory_events.publisher_stop()" -c "SELECT pg_sleep(0.5)" >/dev/null
	reset_stock 0
	psql_ -c "SELECT inventory_events.publisher_start()" >/dev/null
	psql_ -c "INSERT INTO inventory_events.location (code, kind) VALUES ('REGION', 'region') ON CONFLICT DO NOTHING" \
		-c "UPDATE inventory_events.location SET parent = 'REGION' WHERE code IN ('W1', 'W2', 'W3')" \
		-c "INSERT INTO inventory_events.channel (code) VALUES ('by-node') ON CONFLICT DO NOTHING" \
		-c "INSERT INTO inventory_events.channel_location (channel, location) VALUES ('by-node', 'REGION')
		    ON CONFLICT DO NOTHING" >/dev/null
	cat > "$IE_WORK/avail.sql" <<'SQL'
SELECT inventory_events.channel_availability('shopify', 'HOT');
SQL
	cat > "$IE_WORK/node.sql" <<'SQL'
SELECT inventory_events.channel_availability('by-node', 'HOT');
SQL
	cat > "$IE_WORK/sum.sql" <<'SQL'
SELECT greatest(sum(inventory_events.available(e.effect)), 0)
  FROM inventory_events.event e
  JOIN inventory_events.channel_location cl ON cl.location = e.location AND cl.channel = 'shopify'
 WHERE e.sku = 'HOT';
SQL
	cat > "$IE_WORK/asof.sql" <<'SQL'
SELECT inventory_events.position_as_of('HOT', 'W1', now());
SQL
	cat > "$IE_WORK/asof_full.sql" <<'SQL'
SELECT (inventory_events.stream_fold('HOT', 'W1', '', now(), NULL, false)).position;
SQL
	chmod 644 "$IE_WORK"/avail.sql "$IE_WORK"/node.sql "$IE_WORK"/sum.sql \
		"$IE_WORK"/asof.sql "$IE_WORK"/asof_full.sql
	ie_run sh -c "echo 'events,append_tps,append_ms,atp_tps,atp_ms,sum_tps,sum_ms' > '$IE_WORK/growth.csv'"
	# The appends measured below are recorded now: their partitions too.
	psql_ -c "SELECT count(*) FROM inventory_events.create_partitions()" >/dev/null
	for size in $bench_growth_sizes; do
		month=$(psql_ -At -c "SELECT to_char(timestamptz '2020-01-01 00:00+00' + interval '1 month' * $step, 'YYYY-MM-DD') || ' 00:00+00'")
		step=$((step + 1))
		grow_log "$size" "$month"
		# The measured appends are recorded in the step's month too, after its
		# events (a later month's events then take later versions: archivable).
		cat > "$IE_WORK/append.sql" <<SQL
SET inventory_events.clock = '$(psql_ -At -c "SELECT ('$month'::timestamptz + interval '25 days')::text")';
\\set s random(1, $bench_skus)
\\set l random(1, 3)
SELECT inventory_events.append('SKU' || :s, 'W' || :l, 'received', 1);
SQL
		chmod 644 "$IE_WORK/append.sql"
		verify_ms=$(psql_ -At -c "
			SELECT round(extract(epoch FROM clock_timestamp() - a.t0) * 1000)
			  FROM (SELECT clock_timestamp() AS t0) a, LATERAL (SELECT count(*) FROM inventory_events.verify()) v")
		# What verify() reads per stream besides one descent: the events after
		# the predecessor of its newest snapshot (those after the newest, and
		# the proof of the newest).
		IFS='|' read -r since streams < <(psql_ -At -c "
			SELECT sum(s.version - coalesce((SELECT x.version FROM inventory_events.stream_snapshot x
			                                  WHERE x.sku = s.sku AND x.location = s.location AND x.lot = s.lot
			                                  ORDER BY x.version DESC OFFSET 1 LIMIT 1), 0)),
			       count(*)
			  FROM inventory_events.stock s")
		record growth "$size events" "verify() of the log, ms" 1 "$verify_ms" "" ""
		record growth "$size events" "verify() per event it reads (after the newest snapshot and its proof) and per stream, us" 1 \
			"$(echo "scale=2; $verify_ms * 1000 / ($since + $streams)" | bc | sed 's/^\./0./')" "" ""
		record growth "$size events" "disk bytes per event, event table" 1 \
			"$(psql_ -At -c "SELECT round((SELECT sum(pg_table_size(t.relid)) FROM pg_partition_tree('inventory_events.event') t)
			                              / count(*)) FROM inventory_events.event")" "" ""
		record growth "$size events" "disk bytes per event, event indexes" 1 \
			"$(psql_ -At -c "SELECT round((SELECT sum(pg_indexes_size(t.relid)) FROM pg_partition_tree('inventory_events.event') t)
			                              / count(*)) FROM inventory_events.event")" "" ""
		for r in $(seq 1 "$bench_rounds"); do
			read -r tps lat <<<"$(pgb_latency_ "$IE_WORK/append.sql" 1 "$bench_seconds")"
			read -r atp_tps atp_lat <<<"$(pgb_latency_ "$IE_WORK/avail.sql" 1 "$bench_seconds")"
			read -r node_tps node_lat <<<"$(pgb_latency_ "$IE_WORK/node.sql" 1 "$bench_seconds")"
			read -r sum_tps sum_lat <<<"$(pgb_latency_ "$IE_WORK/sum.sql" 1 "$bench_seconds")"
			read -r asof_tps asof_lat <<<"$(pgb_latency_ "$IE_WORK/asof.sql" 1 "$bench_seconds")"
			read -r full_tps full_lat <<<"$(pgb_latency_ "$IE_WORK/asof_full.sql" 1 "$bench_seconds")"
			[ "$size" = 10000 ] && { base_append[$r]=$lat; base_atp[$r]=$atp_lat; base_node[$r]=$node_lat; base_asof[$r]=$asof_lat; }
			record growth "$size events" "append() latency / at 10k events" "$r" "$lat" "${base_append[$r]}" "$target"
			record growth "$size events" "channel_availability() latency / at 10k" "$r" "$atp_lat" "${base_atp[$r]}" "$target"
			record growth "$size events" "channel_availability() over a node, latency / at 10k" "$r" "$node_lat" \
				"${base_node[$r]}" "$target"
			record growth "$size events" "sum of events / channel_availability(), latency" "$r" "$sum_lat" "$atp_lat" \
				"$([ "$size" -ge 1000000 ] && echo '>= 100')"
			record growth "$size events" "position_as_of() from a snapshot, latency / at 10k" "$r" "$asof_lat" \
				"${base_asof[$r]}" "$target"
			record growth "$size events" "whole-history fold / position_as_of() from a snapshot, latency" "$r" \
				"$full_lat" "$asof_lat" ""
			ie_run sh -c "echo '$size,$tps,$lat,$atp_tps,$atp_lat,$sum_tps,$sum_lat' >> '$IE_WORK/growth.csv'"
		done
		# Archiving every month but the newest, then attaching them again.
		[ "$step" -gt 1 ] || continue
		snap_ms=$(psql_ -At -c "
			SELECT round(extract(epoch FROM clock_timestamp() - a.t0) * 1000)
			  FROM (SELECT clock_timestamp() AS t0) a, LATERAL (SELECT inventory_events.take_snapshots(1, 1000000000)) v")
		IFS='|' read -r archive_ms archived < <(psql_ -At -c "
			SELECT round(extract(epoch FROM clock_timestamp() - a.t0) * 1000), v.events
			  FROM (SELECT clock_timestamp() AS t0) a,
			       LATERAL (SELECT sum(x.events) AS events FROM inventory_events.archive_before('$month') x) v")
		attach_ms=$(psql_ -At -c "
			SELECT round(extract(epoch FROM clock_timestamp() - a.t0) * 1000)
			  FROM (SELECT clock_timestamp() AS t0) a,
			       LATERAL (SELECT count(inventory_events.attach_archived(x.partition::regclass))
			                  FROM (SELECT partition FROM inventory_events.event_archive ORDER BY recorded_to) x) v")
		record growth "$size events" "archive_before() of the months before the newest, events archived" 1 "$archived" "" ""
		record growth "$size events" "take_snapshots(1) before it, ms" 1 "$snap_ms" "" ""
		record growth "$size events" "archive_before(), ms" 1 "$archive_ms" "" ""
		record growth "$size events" "archive_before() per million events archived, ms" 1 \
			"$(echo "scale=1; $archive_ms * 1000000 / $archived" | bc)" "" ""
		record growth "$size events" "attach_archived() of them again, ms" 1 "$attach_ms" "" ""
	done
}
