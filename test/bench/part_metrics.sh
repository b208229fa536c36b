# The metrics part of test/bench/run.sh: a Prometheus scrape with the log
# grown to bench_metrics_events (10 million in both modes).
#   - the exporter's scrape: Debian's prometheus-postgres-exporter with
#     monitoring/queries.yaml, GET /metrics timed end to end (target <= 50 ms);
#   - the same queries through pgbench, one transaction per scrape;
#   - refresh_metrics(), which the worker runs every maintenance_interval
#     (it must not read the log either: against its time at the start);
#   - record_verify() once (it reads the whole log: why the worker does not
#     run it).
# The log is grown by one INSERT ... SELECT with the stock trigger disabled
# and the stock rows derived in the same statement from the rows it inserted
# (each stream's count and last id), so neither rebuild() nor anything else
# reads the log afterwards: 10 million events load in a few minutes.

metrics_grow_log() {	# $1: events in the log afterwards
	psql_ -c "ALTER TABLE inventory_events.event DISABLE TRIGGER event_stock" \
		-c "SET work_mem = '256MB'" \
		-c "WITH ins AS (
		      INSERT INTO inventory_events.event (sku, location, lot, version, event_type, to_bucket, qty, uom, uom_qty,
		                                          effect, occurred_at, correlation_id, causation_id)
		      SELECT x.sku, x.location, '', coalesce(s.version, 0) + row_number() OVER (PARTITION BY x.sku, x.location ORDER BY x.g),
		             'received', 'available', 1, 'EA', 1, inventory_events.stock_position(available => 1), now(),
		             '00000000-0000-0000-0000-000000000000', '00000000-0000-0000-0000-000000000000'
		        FROM (SELECT g, 'SKU' || (1 + g % $bench_skus) AS sku, 'W' || (1 + g % 3) AS location
		                FROM generate_series((SELECT count(*) FROM inventory_events.event) + 1, $1) g) x
		        LEFT JOIN inventory_events.stock s ON s.sku = x.sku AND s.location = x.location AND s.lot = ''
		      RETURNING sku, location, lot, id
		    ), d AS (
		      SELECT sku, location, lot, count(*) AS n, max(id) AS last_id FROM ins GROUP BY 1, 2, 3
		    ), upd AS (
		      UPDATE inventory_events.stock s
		         SET available = s.available + d.n, on_hand = s.on_hand + d.n, version = s.version + d.n,
		             last_event_id = greatest(s.last_event_id, d.last_id), updated_at = now()
		        FROM d WHERE s.sku = d.sku AND s.location = d.location AND s.lot = d.lot
		      RETURNING s.sku, s.location, s.lot
		    )
		    INSERT INTO inventory_events.stock (sku, location, lot, available, on_hand, version, last_event_id)
		    SELECT d.sku, d.location, d.lot, d.n, d.n, d.n, d.last_id FROM d
		     WHERE NOT EXISTS (SELECT FROM upd u WHERE u.sku = d.sku AND u.location = d.location AND u.lot = d.lot)" \
		-c "ALTER TABLE inventory_events.event ENABLE ALWAYS TRIGGER event_stock" \
		-c "VACUUM ANALYZE inventory_events.event" -c "VACUUM ANALYZE inventory_events.stock" >/dev/null
}

# The SQL of monitoring/queries.yaml as one pgbench transaction.
metrics_scrape_script() {
	python3 - "$IE_WORK/src/monitoring/queries.yaml" > "$IE_WORK/scrape.sql" <<'PY'
import sys, yaml
for key, q in yaml.safe_load(open(sys.argv[1])).items():
    print(' '.join(q['query'].split()) + ';')
PY
	chmod 644 "$IE_WORK/scrape.sql"
}

part_metrics() {
	local r t0 t1 events port out curl_ms refresh_base refresh_ms scrape_ms verify_s exporter_pid
	metrics_scrape_script
	cat > "$IE_WORK/refresh.sql" <<'SQL'
SELECT inventory_events.refresh_metrics();
SQL
	chmod 644 "$IE_WORK/refresh.sql"
	# Some state for the metrics to show: a reconciliation source and run, exceptions.
	psql_ -c "INSERT INTO inventory_events.recon_source (code) VALUES ('bench_wms') ON CONFLICT DO NOTHING" >/dev/null
	read -r _ refresh_base <<<"$(pgb_latency_ "$IE_WORK/refresh.sql" 1 "$bench_seconds")"

	t0=$(date +%s)
	metrics_grow_log "$bench_metrics_events"
	t1=$(date +%s)
	events=$(psql_ -At -c "SELECT count(*) FROM inventory_events.event")
	ie_log "metrics: the log holds $events events (grown in $((t1 - t0)) s)"
	psql_ -c "SELECT inventory_events.reconcile('bench_wms', now(),
	            (SELECT jsonb_agg(jsonb_build_object('sku', sku, 'location', location, 'qty', on_hand + (g % 3)))
	               FROM (SELECT sku, location, on_hand, row_number() OVER () AS g FROM inventory_events.stock LIMIT 1000) s))" \
		-c "SELECT inventory_events.refresh_metrics()" >/dev/null

	port=$(( 20000 + RANDOM % 20000 ))
	ie_run sh -c "DATA_SOURCE_NAME='host=$IE_WORK/sock port=5432 user=postgres dbname=postgres sslmode=disable' \
		prometheus-postgres-exporter --extend.query-path='$IE_WORK/src/monitoring/queries.yaml' \
		--disable-default-metrics --disable-settings-metrics --no-collector.database --no-collector.bgwriter \
		--web.listen-address=127.0.0.1:$port > '$IE_WORK/exporter.log' 2>&1 & echo \$! > '$IE_WORK/exporter.pid'"
	exporter_pid=$(cat "$IE_WORK/exporter.pid")
	for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$port/metrics" >/dev/null && break; sleep 0.2; done
	for r in $(seq 1 "$bench_rounds"); do
		# The median of 20 scrapes, end to end over HTTP (the exporter's
		# connection is open after the first).
		out=()
		for _ in $(seq 1 20); do
			out+=("$(curl -s -o /dev/null -w '%{time_total}' "http://127.0.0.1:$port/metrics" | awk '{printf "%.3f", $1 * 1000}')")
		done
		curl_ms=$(median "${out[@]}")
		record metrics "$events events" "exporter scrape over HTTP, ms" "$r" "$curl_ms" "" "<= 50"
		read -r _ scrape_ms <<<"$(pgb_latency_ "$IE_WORK/scrape.sql" 1 "$bench_seconds")"
		record metrics "$events events" "queries.yaml through pgbench, ms per scrape" "$r" "$scrape_ms" "" "<= 50"
		read -r _ refresh_ms <<<"$(pgb_latency_ "$IE_WORK/refresh.sql" 1 "$bench_seconds")"
		record metrics "$events events" "refresh_metrics() latency / before the growth" "$r" "$refresh_ms" "$refresh_base" "<= 1.5"
	done
	if ! curl -s "http://127.0.0.1:$port/metrics" | grep -q '^pg_exporter_last_scrape_error 0'; then
		echo "warning: the exporter reports a failed query: see $IE_WORK/exporter.log" >&2
	fi
	kill "$exporter_pid" 2>/dev/null || true
	verify_s=$(psql_ -At -c "SELECT inventory_events.record_verify()" \
		-c "SELECT value FROM inventory_events.metric WHERE name = 'inventory_events_verify_duration_seconds'" | tail -1)
	record metrics "$events events" "record_verify() (verify() of the whole log), s" 1 "$verify_s" "" ""
	record metrics "$events events" "streams verify() finds wrong" 1 \
		"$(psql_ -At -c "SELECT value FROM inventory_events.metric WHERE name = 'inventory_events_verify_drifted_streams'")" "" "= 0"
}
