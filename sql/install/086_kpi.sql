-- ---------------------------------------------------------------------------
-- KPI views (doc/kpis.md has the formula of every column)
-- ---------------------------------------------------------------------------

-- Conventions of every view here:
--   * a day is a calendar day in the session's TimeZone (timestamptz::date);
--   * the per-day views read the last 30 calendar days, today included: rows
--     whose time is at or after midnight of current_date - 29. On the event
--     log the block range index on recorded_at keeps that a scan of the
--     window's blocks, not of the history;
--   * rates are between 0 and 1, rounded to 4 decimals, null when there is
--     nothing to rate; durations are seconds (numeric, 3 decimals);
--   * an order is (channel, order ref): a reservation's ref up to its last
--     '/' ('SO-1001/2' is line 2 of order 'SO-1001'); a ref without '/' is
--     an order of one line.

-- Windows read by date, not by a row at a time.
CREATE INDEX reservation_created_at_brin ON inventory_events.reservation USING brin (created_at);
CREATE INDEX publication_published_at_brin ON inventory_events.publication USING brin (published_at);

-- Inventory record accuracy of the latest run of every reconciliation source.
CREATE VIEW inventory_events.kpi_record_accuracy AS
WITH latest AS (
    SELECT DISTINCT ON (r.source) r.id, r.source, r.measure, r.as_of, s.channel
      FROM inventory_events.recon_run r
      JOIN inventory_events.recon_source s ON s.code = r.source
     ORDER BY r.source, r.as_of DESC, r.id DESC
), judged AS (
    -- Each line as the count found it: its latest version before any
    -- adjustment of ours (late events re-judge a line; an adjustment makes
    -- it match, and would hide the miss it corrected). Per run, through the
    -- index on (run_id, line_no, version).
    SELECT lt.source, lt.measure, lt.channel, lt.as_of, j.location, j.sku, j.status, j.residual, j.ours, j.theirs
      FROM latest lt
     CROSS JOIN LATERAL (
        SELECT DISTINCT ON (v.line_no) v.*
          FROM (SELECT l.line_no, l.version, l.location, l.sku, l.status, l.residual, l.ours, l.theirs,
                       min(l.version) FILTER (WHERE l.reason = 'adjusted') OVER (PARTITION BY l.line_no) AS adjusted_from
                  FROM inventory_events.recon_line l
                 WHERE l.run_id = lt.id) v
         WHERE v.adjusted_from IS NULL OR v.version < v.adjusted_from
         ORDER BY v.line_no, v.version DESC) j
), line AS (
    SELECT j.source, j.measure, j.channel, j.as_of, j.location, i.abc_class,
           j.status NOT IN ('unmapped', 'duplicate') AS compared,
           j.status IN ('match', 'within_tolerance', 'timing', 'uom_suspect', 'status_mapping') AS hit,
           abs(coalesce(j.residual, 0)) AS abs_residual,
           greatest(abs(coalesce(j.ours, 0)), abs(coalesce(j.theirs, 0))) AS abs_quantity
      FROM judged j
      LEFT JOIN inventory_events.item i ON i.sku = j.sku
), keyed AS (
    SELECT 'location' AS dimension, ln.location AS key, ln.source, ln.as_of, ln.compared, ln.hit,
           ln.abs_residual, ln.abs_quantity
      FROM line ln WHERE ln.measure <> 'channel'
    UNION ALL
    SELECT 'abc_class', coalesce(ln.abc_class, 'none'), ln.source, ln.as_of, ln.compared, ln.hit,
           ln.abs_residual, ln.abs_quantity
      FROM line ln WHERE ln.measure <> 'channel'
    UNION ALL
    SELECT 'channel', ln.channel, ln.source, ln.as_of, ln.compared, ln.hit, ln.abs_residual, ln.abs_quantity
      FROM line ln WHERE ln.measure = 'channel'
)
SELECT k.dimension, k.key,
       count(DISTINCT k.source) AS sources,
       max(k.as_of) AS latest_as_of,
       count(*) AS lines,
       count(*) FILTER (WHERE k.compared) AS compared_lines,
       count(*) FILTER (WHERE k.compared AND k.hit) AS hit_lines,
       round(count(*) FILTER (WHERE k.compared AND k.hit)::numeric
             / nullif(count(*) FILTER (WHERE k.compared), 0), 4) AS hit_rate,
       coalesce(sum(k.abs_residual) FILTER (WHERE k.compared), 0)::bigint AS abs_residual,
       coalesce(sum(k.abs_quantity) FILTER (WHERE k.compared), 0)::bigint AS abs_quantity,
       round(1 - sum(k.abs_residual) FILTER (WHERE k.compared)
                 / nullif(sum(k.abs_quantity) FILTER (WHERE k.compared), 0), 4) AS quantity_accuracy
  FROM keyed k
 GROUP BY k.dimension, k.key;
COMMENT ON VIEW inventory_events.kpi_record_accuracy IS
  'Inventory record accuracy of the latest run of each reconciliation source, by location, ABC class and channel: hit rate within tolerance and quantity-weighted accuracy 1 - sum|residual| / sum max(|ours|, |theirs|)';

-- Order lines of the window with what was filled at once and what shipped.
-- An internal view of kpi_fill_rate and kpi_order_latency (not a KPI).
CREATE VIEW inventory_events.kpi_order_line AS
SELECT r.id, r.channel, r.ref,
       CASE WHEN strpos(r.ref, '/') > 0 THEN left(r.ref, length(r.ref) - strpos(reverse(r.ref), '/'))
            ELSE r.ref END AS order_ref,
       r.sku, r.qty, r.created_at,
       coalesce(f.first_units, 0)::bigint AS first_units,
       coalesce(f.shipped_units, 0)::bigint AS shipped_units,
       r.backordered > 0 OR coalesce(f.open_units, 0) > 0 AS open
  FROM inventory_events.reservation r
  LEFT JOIN LATERAL (
      -- In units of the ordered sku: a kit line is as filled as its least
      -- filled component (component units / units per kit, rounded down).
      SELECT min(c.first_units) AS first_units, min(c.shipped_units) AS shipped_units,
             sum(c.open_units) AS open_units
        FROM (SELECT floor(coalesce(sum(a.qty) FILTER (WHERE a.created_at <= r.created_at), 0) / a.per_unit) AS first_units,
                     floor(sum(a.shipped) / a.per_unit) AS shipped_units,
                     sum(a.reserved + a.picked) AS open_units
                FROM inventory_events.allocation a
               WHERE a.reservation_id = r.id
               GROUP BY a.sku, a.per_unit) c) f ON true
 WHERE r.created_at >= current_date - 29;
COMMENT ON VIEW inventory_events.kpi_order_line IS
  'Order lines reserved in the last 30 days: order ref, units allocated at reservation, units shipped, still open (used by kpi_fill_rate and kpi_order_latency)';

CREATE VIEW inventory_events.kpi_fill_rate AS
WITH ord AS (
    SELECT l.channel, l.order_ref, min(l.created_at)::date AS day,
           count(*) AS lines,
           sum(l.qty) AS units_ordered,
           sum(least(l.shipped_units, l.qty)) AS units_shipped,
           sum(least(l.first_units, l.qty)) AS units_first,
           count(*) FILTER (WHERE l.shipped_units >= l.qty) AS lines_shipped,
           count(*) FILTER (WHERE l.first_units >= l.qty) AS lines_first,
           count(*) FILTER (WHERE l.open) AS open_lines
      FROM inventory_events.kpi_order_line l
     GROUP BY l.channel, l.order_ref
)
SELECT o.channel, o.day,
       count(*)::bigint AS orders,
       sum(o.lines)::bigint AS lines,
       sum(o.units_ordered)::bigint AS units_ordered,
       sum(o.units_shipped)::bigint AS units_shipped,
       round(sum(o.units_shipped) / nullif(sum(o.units_ordered), 0), 4) AS unit_fill_rate,
       round(sum(o.lines_shipped) / nullif(sum(o.lines), 0), 4) AS line_fill_rate,
       round(count(*) FILTER (WHERE o.lines_shipped = o.lines) / nullif(count(*), 0)::numeric, 4) AS order_fill_rate,
       round(sum(o.units_first) / nullif(sum(o.units_ordered), 0), 4) AS first_time_unit_fill_rate,
       round(sum(o.lines_first) / nullif(sum(o.lines), 0), 4) AS first_time_line_fill_rate,
       round(count(*) FILTER (WHERE o.lines_first = o.lines) / nullif(count(*), 0)::numeric, 4) AS first_time_order_fill_rate,
       sum(o.units_first)::bigint AS units_filled_first_time,
       sum(o.open_lines)::bigint AS open_lines,
       count(*) FILTER (WHERE o.open_lines > 0)::bigint AS open_orders
  FROM ord o
 GROUP BY o.channel, o.day;
COMMENT ON VIEW inventory_events.kpi_fill_rate IS
  'Unit, line and order fill rate per channel and day the order was placed (last 30 days): final (shipped / ordered) and first-time (allocated at reservation / ordered)';

CREATE VIEW inventory_events.kpi_order_latency AS
WITH shipped AS (
    SELECT e.channel, e.ref, max(e.occurred_at) AS shipped_at
      FROM inventory_events.event e
     WHERE e.recorded_at >= current_date - 29 AND e.event_type = 'shipped'
     GROUP BY e.channel, e.ref
), ord AS (
    SELECT l.channel, l.order_ref, min(l.created_at) AS placed_at, max(s.shipped_at) AS shipped_at,
           bool_or(l.open) AS open
      FROM inventory_events.kpi_order_line l
      LEFT JOIN shipped s ON s.channel = l.channel AND s.ref = l.ref
     GROUP BY l.channel, l.order_ref
), done AS (
    SELECT o.channel, o.shipped_at::date AS day,
           extract(epoch FROM o.shipped_at - o.placed_at)::float8 AS seconds
      FROM ord o
     WHERE NOT o.open AND o.shipped_at IS NOT NULL
)
SELECT d.channel, d.day,
       count(*) AS orders,
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY d.seconds)::numeric, 3) AS p50_seconds,
       round(percentile_cont(0.95) WITHIN GROUP (ORDER BY d.seconds)::numeric, 3) AS p95_seconds,
       round(avg(d.seconds)::numeric, 3) AS avg_seconds,
       round(max(d.seconds)::numeric, 3) AS max_seconds
  FROM done d
 GROUP BY d.channel, d.day;
COMMENT ON VIEW inventory_events.kpi_order_latency IS
  'Order latency from reservation (first line) to shipment (last shipped event), p50 and p95 in seconds, per channel and day of the last shipment (orders placed in the last 30 days and closed)';

CREATE VIEW inventory_events.kpi_shipment_timeliness AS
SELECT e.channel, e.recorded_at::date AS day,
       count(*) AS shipments,
       sum(e.qty)::bigint AS units,
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM e.recorded_at - e.occurred_at)::float8)::numeric, 3) AS p50_seconds,
       round(percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM e.recorded_at - e.occurred_at)::float8)::numeric, 3) AS p95_seconds,
       round(max(extract(epoch FROM e.recorded_at - e.occurred_at)), 3) AS max_seconds,
       interval '1 hour' AS target,
       count(*) FILTER (WHERE e.recorded_at - e.occurred_at <= interval '1 hour') AS within_target,
       round(count(*) FILTER (WHERE e.recorded_at - e.occurred_at <= interval '1 hour')::numeric / count(*), 4)
           AS within_target_share
  FROM inventory_events.event e
 WHERE e.recorded_at >= current_date - 29 AND e.event_type = 'shipped'
 GROUP BY e.channel, e.recorded_at::date;
COMMENT ON VIEW inventory_events.kpi_shipment_timeliness IS
  'Shipment-confirmation timeliness per channel and day recorded (last 30 days): recorded_at - occurred_at of shipped events, p50, p95 and the share within the 1 hour target';

CREATE VIEW inventory_events.kpi_oversell_refusals AS
SELECT x.channel, x.created_at::date AS day,
       count(*) AS refusals,
       sum(substring(x.detail FROM '^reservation of ([0-9]+) ')::bigint)::bigint AS units_refused,
       count(DISTINCT x.sku) AS skus,
       count(DISTINCT CASE WHEN strpos(x.ref, '/') > 0 THEN left(x.ref, length(x.ref) - strpos(reverse(x.ref), '/'))
                           ELSE x.ref END) AS orders,
       count(*) FILTER (WHERE x.resolved_at IS NULL) AS open
  FROM inventory_events.exception x
 WHERE x.kind = 'oversell_refused' AND x.created_at >= current_date - 29
 GROUP BY x.channel, x.created_at::date;
COMMENT ON VIEW inventory_events.kpi_oversell_refusals IS
  'Order lines refused because they would oversell (oversell_refused exceptions), per channel and day (last 30 days)';

CREATE VIEW inventory_events.kpi_exception_resolution AS
SELECT x.kind,
       count(*) FILTER (WHERE x.resolved_at IS NOT NULL) AS resolved,
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM x.resolved_at - x.created_at)::float8)
             FILTER (WHERE x.resolved_at IS NOT NULL)::numeric, 3) AS resolution_p50_seconds,
       round(percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM x.resolved_at - x.created_at)::float8)
             FILTER (WHERE x.resolved_at IS NOT NULL)::numeric, 3) AS resolution_p95_seconds,
       count(*) FILTER (WHERE x.resolved_at IS NULL) AS open,
       round(max(extract(epoch FROM now() - x.created_at)) FILTER (WHERE x.resolved_at IS NULL), 3) AS oldest_open_seconds,
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM now() - x.created_at)::float8)
             FILTER (WHERE x.resolved_at IS NULL)::numeric, 3) AS open_age_p50_seconds,
       count(*) FILTER (WHERE x.resolved_at IS NULL AND now() - x.created_at < interval '1 hour') AS open_under_1_hour,
       count(*) FILTER (WHERE x.resolved_at IS NULL AND now() - x.created_at >= interval '1 hour'
                                                    AND now() - x.created_at < interval '1 day') AS open_under_1_day,
       count(*) FILTER (WHERE x.resolved_at IS NULL AND now() - x.created_at >= interval '1 day'
                                                    AND now() - x.created_at < interval '7 days') AS open_under_7_days,
       count(*) FILTER (WHERE x.resolved_at IS NULL AND now() - x.created_at >= interval '7 days') AS open_7_days_or_more
  FROM inventory_events.exception x
 WHERE x.resolved_at IS NULL OR x.resolved_at >= current_date - 29
 GROUP BY x.kind;
COMMENT ON VIEW inventory_events.kpi_exception_resolution IS
  'Per exception kind: resolution time (resolved_at - created_at, p50/p95 of those resolved in the last 30 days) and the aging of the open ones';

CREATE VIEW inventory_events.kpi_manual_adjustments AS
WITH ev AS (
    -- A reconciliation's adjustment is the event a line names as its
    -- resolution (a writer could give any event the source name).
    SELECT e.recorded_at::date AS day, e.location,
           abs(inventory_events.on_hand(e.effect)) AS units,
           e.event_type IN ('adjusted', 'counted') AND r.event_id IS NULL AS manual,
           e.event_type IN ('adjusted', 'counted') AND r.event_id IS NOT NULL AS reconciliation
      FROM inventory_events.event e
      LEFT JOIN (SELECT DISTINCT l.resolution_event_id AS event_id FROM inventory_events.recon_line l
                  WHERE l.resolution_event_id IS NOT NULL) r ON r.event_id = e.id
     WHERE e.recorded_at >= current_date - 29
)
SELECT ev.day, ev.location,
       count(*) AS stock_events,
       count(*) FILTER (WHERE ev.manual) AS manual_adjustments,
       count(*) FILTER (WHERE ev.reconciliation) AS reconciliation_adjustments,
       round(count(*) FILTER (WHERE ev.manual)::numeric / count(*), 4) AS manual_share,
       sum(ev.units)::bigint AS stock_units,
       coalesce(sum(ev.units) FILTER (WHERE ev.manual), 0)::bigint AS manual_units,
       round(coalesce(sum(ev.units) FILTER (WHERE ev.manual), 0) / sum(ev.units), 4) AS manual_unit_share
  FROM ev
 WHERE ev.units <> 0
 GROUP BY ev.day, ev.location;
COMMENT ON VIEW inventory_events.kpi_manual_adjustments IS
  'Share of manual adjustments (adjusted or counted events not made by reconciliation) among the events that changed on-hand, per day recorded and location (last 30 days)';

CREATE VIEW inventory_events.kpi_throughput AS
WITH days AS (
    SELECT d::date AS day FROM generate_series(current_date - 29, current_date, interval '1 day') d
), ev AS (
    SELECT e.recorded_at::date AS day, count(*) AS n
      FROM inventory_events.event e WHERE e.recorded_at >= current_date - 29 GROUP BY 1
), pub AS (
    SELECT p.published_at::date AS day, count(*) AS n, count(DISTINCT p.channel) AS channels
      FROM inventory_events.publication p WHERE p.published_at >= current_date - 29 GROUP BY 1
), dl AS (
    SELECT d.failed_at::date AS day, count(*) AS n
      FROM inventory_events.dead_letter d WHERE d.failed_at >= current_date - 29 GROUP BY 1
)
SELECT days.day,
       coalesce(ev.n, 0) AS events_appended,
       coalesce(pub.n, 0) AS publications,
       coalesce(pub.channels, 0) AS channels_published,
       coalesce(dl.n, 0) AS dead_letters,
       round(coalesce(dl.n, 0)::numeric / nullif(coalesce(ev.n, 0) + coalesce(dl.n, 0), 0), 4) AS dead_letter_share
  FROM days
  LEFT JOIN ev ON ev.day = days.day
  LEFT JOIN pub ON pub.day = days.day
  LEFT JOIN dl ON dl.day = days.day;
COMMENT ON VIEW inventory_events.kpi_throughput IS
  'Message throughput per day (last 30 days, one row per day): events appended, publications sent, dead letters';
