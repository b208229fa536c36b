-- ---------------------------------------------------------------------------
-- Metrics for Prometheus (monitoring/queries.yaml, doc/reference.md#metrics)
-- ---------------------------------------------------------------------------

-- The current value of every metric, one row per metric name and label set.
-- The publisher worker refreshes it (refresh_metrics(), every
-- inventory_events.maintenance_interval); a scrape of the postgres exporter
-- reads only this table, so its cost does not grow with the log. Not dumped:
-- it describes this server, and the next refresh fills it again.
CREATE TABLE inventory_events.metric (
    name          text NOT NULL CHECK (name ~ '^inventory_events_[a-z0-9_]+$'),
    labels        jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(labels) = 'object'),
    value         double precision NOT NULL,
    refreshed_at  timestamptz NOT NULL,
    PRIMARY KEY (name, labels)
);
COMMENT ON TABLE inventory_events.metric IS
  'Prometheus metrics (full name, labels, value) as of their last refresh by the worker; what the exporter reads';

-- Counts and ages the worker keeps current: every source read here is an
-- index or a table whose size follows the catalog (stock rows, channels,
-- sources, open exceptions, open lines of the latest runs), never the log;
-- the two counters are the high-water marks of the log's and the dead
-- letters' id sequences. Fill rates come from kpi_fill_rate (when installed)
-- over the last 7 days, recomputed when older than fill_rate_every. The
-- verify() metrics are written by record_verify() and kept here. Returns the
-- number of metric rows written.
CREATE FUNCTION inventory_events.refresh_metrics(fill_rate_every interval DEFAULT '5 minutes')
RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t         timestamptz := clock_timestamp();
    n         integer;
    fill_due  boolean;
BEGIN
    PERFORM inventory_events.require_writable('inventory_events.refresh_metrics()');
    -- One refresh at a time (the worker, or someone by hand).
    PERFORM pg_advisory_xact_lock('inventory_events.metric'::regclass::oid::bigint);
    fill_due := NOT EXISTS (SELECT FROM inventory_events.metric m
                             WHERE m.name = 'inventory_events_fill_rate_ratio'
                               AND m.refreshed_at > t - fill_rate_every)
                OR to_regclass('inventory_events.kpi_fill_rate') IS NULL;
    DELETE FROM inventory_events.metric m
     WHERE m.name NOT LIKE 'inventory_events\_verify\_%'
       AND (fill_due OR m.name <> 'inventory_events_fill_rate_ratio');

    INSERT INTO inventory_events.metric (name, labels, value, refreshed_at)
    -- Counters: ids handed out by the sequences (ids of rolled-back appends
    -- and batches included: the sequence never goes back).
    SELECT 'inventory_events_events_appended_total', '{}'::jsonb,
           (SELECT CASE WHEN s.is_called THEN s.last_value ELSE 0 END FROM inventory_events.event_id_seq s), t
    UNION ALL
    SELECT 'inventory_events_dead_letters_total', '{}',
           (SELECT CASE WHEN s.is_called THEN s.last_value ELSE 0 END FROM inventory_events.dead_letter_id_seq s), t
    UNION ALL
    SELECT 'inventory_events_metrics_refreshed_timestamp_seconds', '{}', extract(epoch FROM t), t
    -- Open exceptions by kind and age bucket (every kind, zeros included).
    UNION ALL
    -- The buckets are exception_aging's, under label values fit for Prometheus.
    SELECT 'inventory_events_exceptions_open', jsonb_build_object('kind', k.kind, 'age', b.age),
           count(x.id), t
      FROM (SELECT unnest(ARRAY['pick_short', 'oversell_refused', 'negative_available', 'dead_letter',
                                'recon_variance', 'channel_drift']) AS kind
            UNION SELECT DISTINCT x.kind FROM inventory_events.exception x WHERE x.resolved_at IS NULL) k
     CROSS JOIN (VALUES ('lt_1h', 'under 1 hour'), ('lt_1d', 'under 1 day'),
                        ('lt_7d', 'under 7 days'), ('ge_7d', '7 days or more')) b(age, bucket)
      LEFT JOIN inventory_events.exception_aging x ON x.kind = k.kind AND x.age_bucket = b.bucket
     GROUP BY k.kind, b.age
    UNION ALL
    SELECT 'inventory_events_exceptions_oldest_age_seconds', jsonb_build_object('kind', k.kind),
           coalesce(extract(epoch FROM t - min(x.created_at)), 0), t
      FROM (SELECT unnest(ARRAY['pick_short', 'oversell_refused', 'negative_available', 'dead_letter',
                                'recon_variance', 'channel_drift']) AS kind
            UNION SELECT DISTINCT x.kind FROM inventory_events.exception x WHERE x.resolved_at IS NULL) k
      LEFT JOIN inventory_events.exception x ON x.resolved_at IS NULL AND x.kind = k.kind
     GROUP BY k.kind
    -- Publication per channel: lag and pending skus (channel_health), and
    -- the publications made (the channel's gap-free sequence).
    UNION ALL
    SELECT 'inventory_events_publication_lag_seconds', jsonb_build_object('channel', h.channel), h.lag_seconds, t
      FROM inventory_events.channel_health h
    UNION ALL
    SELECT 'inventory_events_publication_pending_skus', jsonb_build_object('channel', h.channel), h.pending_skus, t
      FROM inventory_events.channel_health h
    UNION ALL
    SELECT 'inventory_events_publications_total', jsonb_build_object('channel', ch.code), coalesce(p.last_seq, 0), t
      FROM inventory_events.channel ch
      LEFT JOIN inventory_events.channel_publisher p ON p.channel = ch.code
    -- Orders: units reserved and picked not yet shipped, per location (the
    -- stock rows), and open backorders per channel (a partial index).
    UNION ALL
    SELECT 'inventory_events_order_backlog_units', jsonb_build_object('location', s.location, 'stage', st.stage),
           sum(CASE st.stage WHEN 'reserved' THEN s.reserved ELSE s.picked END), t
      FROM inventory_events.stock s CROSS JOIN (VALUES ('reserved'), ('picked')) st(stage)
     GROUP BY s.location, st.stage
    UNION ALL
    SELECT 'inventory_events_backorders_open_lines', jsonb_build_object('channel', ch.code), count(r.id), t
      FROM inventory_events.channel ch
      LEFT JOIN inventory_events.reservation r ON r.channel = ch.code AND r.backordered > 0
     GROUP BY ch.code
    UNION ALL
    SELECT 'inventory_events_backorders_open_units', jsonb_build_object('channel', ch.code), coalesce(sum(r.backordered), 0), t
      FROM inventory_events.channel ch
      LEFT JOIN inventory_events.reservation r ON r.channel = ch.code AND r.backordered > 0
     GROUP BY ch.code
    -- Worker tasks failing now (an open worker_error streak), per task.
    UNION ALL
    SELECT 'inventory_events_worker_errors', jsonb_build_object('task', k.task), count(w.task), t
      FROM unnest(ARRAY['publish', 'expire', 'metrics', 'reconcile']) k(task)
      LEFT JOIN inventory_events.worker_error w ON w.task = k.task AND w.cleared_at IS NULL
     GROUP BY k.task;

    -- Reconciliation, over the latest run of each source (the run
    -- recon_reevaluate() keeps current): its cut-off, and its open lines
    -- beyond tolerance (not yet resolved, or awaiting a recount).
    INSERT INTO inventory_events.metric (name, labels, value, refreshed_at)
    WITH lr AS (
        SELECT s.code AS source, s.measure, s.channel, r.id AS run_id, r.as_of
          FROM inventory_events.recon_source s
          LEFT JOIN LATERAL (SELECT r.id, r.as_of FROM inventory_events.recon_run r WHERE r.source = s.code
                              ORDER BY r.as_of DESC, r.id DESC LIMIT 1) r ON true
    )
    SELECT 'inventory_events_recon_last_cutoff_timestamp_seconds', jsonb_build_object('source', lr.source),
           coalesce(extract(epoch FROM lr.as_of), 0), t
      FROM lr
    UNION ALL
    SELECT 'inventory_events_recon_out_of_tolerance_lines',
           jsonb_build_object('source', lr.source, 'location', l.location, 'severity', l.severity,
                              'item_group', CASE WHEN i.regulated THEN 'regulated'
                                                 WHEN i.lot_controlled THEN 'lot_controlled'
                                                 WHEN i.high_value THEN 'high_value'
                                                 WHEN i.abc_class IS NOT NULL THEN 'class_' || lower(i.abc_class)
                                                 ELSE 'unclassified' END),
           count(*), t
      FROM lr
      JOIN inventory_events.recon_line l ON l.run_id = lr.run_id AND l.current AND l.exceeds_tolerance
      LEFT JOIN inventory_events.item i ON i.sku = l.sku
     WHERE l.resolution IS NULL OR l.resolution = 'recount'
     GROUP BY 2
    UNION ALL
    SELECT 'inventory_events_channel_drift_persistent_lines', jsonb_build_object('source', lr.source, 'channel', lr.channel),
           count(l.id), t
      FROM lr
      LEFT JOIN inventory_events.recon_line l
             ON l.run_id = lr.run_id AND l.current AND l.exceeds_tolerance AND l.streak >= 2
            AND (l.resolution IS NULL OR l.resolution = 'recount')
     WHERE lr.measure = 'channel'
     GROUP BY lr.source, lr.channel;

    -- Fill rates of the last 7 days per channel (kpi_fill_rate): units,
    -- lines and orders filled over those ordered.
    IF fill_due AND to_regclass('inventory_events.kpi_fill_rate') IS NOT NULL THEN
        EXECUTE $q$
        INSERT INTO inventory_events.metric (name, labels, value, refreshed_at)
        SELECT 'inventory_events_fill_rate_ratio', jsonb_build_object('channel', f.channel, 'measure', m.measure),
               m.ratio, $1
          FROM (SELECT k.channel,
                       sum(k.units_shipped)::float8 / nullif(sum(k.units_ordered), 0) AS unit,
                       sum(k.line_fill_rate * k.lines)::float8 / nullif(sum(k.lines), 0) AS line,
                       sum(k.order_fill_rate * k.orders)::float8 / nullif(sum(k.orders), 0) AS "order"
                  FROM inventory_events.kpi_fill_rate k
                 WHERE k.day > current_date - 7
                 GROUP BY k.channel) f
         CROSS JOIN LATERAL (VALUES ('unit', f.unit), ('line', f.line), ('order', f."order")) m(measure, ratio)
         WHERE m.ratio IS NOT NULL
        $q$ USING t;
    END IF;

    -- Never verified: the time is 0 (an alert asks for a schedule), the
    -- streams found wrong unknown (NaN).
    INSERT INTO inventory_events.metric (name, labels, value, refreshed_at)
    VALUES ('inventory_events_verify_last_run_timestamp_seconds', '{}', 0, t),
           ('inventory_events_verify_drifted_streams', '{}', 'NaN', t)
    ON CONFLICT DO NOTHING;

    SELECT count(*)::integer INTO n FROM inventory_events.metric;
    RETURN n;
END;
$$;
COMMENT ON FUNCTION inventory_events.refresh_metrics(interval) IS
  'Refreshes inventory_events.metric without reading the log (the worker calls it every maintenance_interval)';

-- Runs verify() and records its result for Prometheus: the streams found
-- wrong, when, and how long it took. verify() reads the whole log, so it is
-- not part of refresh_metrics(): schedule this (cron, nightly). Returns the
-- number of streams found wrong.
CREATE FUNCTION inventory_events.record_verify()
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t0  timestamptz := clock_timestamp();
    n   bigint;
BEGIN
    PERFORM inventory_events.require_writable('inventory_events.record_verify()');
    SELECT count(*) INTO n FROM inventory_events.verify();
    INSERT INTO inventory_events.metric AS m (name, labels, value, refreshed_at)
    VALUES ('inventory_events_verify_drifted_streams', '{}', n, clock_timestamp()),
           ('inventory_events_verify_last_run_timestamp_seconds', '{}', extract(epoch FROM t0), clock_timestamp()),
           ('inventory_events_verify_duration_seconds', '{}', extract(epoch FROM clock_timestamp() - t0), clock_timestamp())
    ON CONFLICT (name, labels) DO UPDATE SET value = excluded.value, refreshed_at = excluded.refreshed_at;
    RETURN n;
END;
$$;
COMMENT ON FUNCTION inventory_events.record_verify() IS
  'Runs verify() and records the streams it finds wrong in inventory_events.metric (schedule it; it reads the log)';
