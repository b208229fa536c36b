-- KPI views (doc/kpis.md): each one on data whose figures are worked out by
-- hand in the comments, so a changed formula fails here.
CREATE EXTENSION inventory_events;
SET search_path = inventory_events, public;

INSERT INTO item (sku, abc_class) VALUES ('TEE', 'A'), ('HAT', 'A'), ('MUG', 'B'), ('CAP', 'C');
INSERT INTO item (sku) VALUES ('PEN'), ('GIFT');
INSERT INTO kit_component (kit, component, qty) VALUES ('GIFT', 'TEE', 1), ('GIFT', 'MUG', 2);
INSERT INTO location (code) VALUES ('DAL'), ('RNO'), ('ATL'), ('SEA');
-- web, edi (backorders) and b2b sell from DAL; shop from SEA.
INSERT INTO channel (code) VALUES ('web'), ('b2b'), ('shop');
INSERT INTO channel (code, kind, allow_backorders) VALUES ('edi', 'edi_partner', true);
INSERT INTO channel_location (channel, location) VALUES ('web', 'DAL'), ('edi', 'DAL'), ('b2b', 'DAL'), ('shop', 'SEA');

SELECT count(*) FROM (
    SELECT append('TEE', 'DAL', 'received', 20), append('MUG', 'DAL', 'received', 20), append('CAP', 'DAL', 'received', 5),
           append('TEE', 'SEA', 'received', 100), append('MUG', 'SEA', 'received', 50),
           append('CAP', 'SEA', 'received', 20), append('HAT', 'SEA', 'received', 10),
           append('PEN', 'RNO', 'received', 10)) x;

-- ---------------------------------------------------------------------------
-- Fill rates. An order is the ref up to its last '/'.
-- ---------------------------------------------------------------------------
-- edi: E-1 (two lines), E-2 (backordered in part), E-3 (no '/': one line).
SELECT status, qty FROM reserve('edi', 'TEE', 4, 'E-1/1');
SELECT status, qty FROM reserve('edi', 'MUG', 6, 'E-1/2');
SELECT status, qty FROM reserve('edi', 'CAP', 8, 'E-2/1') ORDER BY status;   -- 5 reserved, 3 backordered
SELECT status, qty FROM reserve('edi', 'TEE', 2, 'E-3');
-- The backorder is filled later, in another transaction: not first-time.
SELECT append('CAP', 'DAL', 'received', 3);
SELECT sum(qty) FROM pick('edi', 'E-1/1');
SELECT sum(qty) FROM ship('edi', 'E-1/1');                                   -- 4 of 4
SELECT sum(qty) FROM pick('edi', 'E-1/2', 4);
SELECT sum(qty) FROM ship('edi', 'E-1/2');                                   -- 4 of 6
SELECT sum(qty) FROM release('edi', 'E-1/2');                                -- the other 2 cancelled
SELECT sum(qty) FROM pick('edi', 'E-2/1');
SELECT sum(qty) FROM ship('edi', 'E-2/1');                                   -- 8 of 8
-- E-3 stays reserved: open.
-- web: W-1 a kit line (2 GIFT = 2 TEE + 4 MUG) and a MUG line; W-2 cancelled.
SELECT sku, qty FROM reserve('web', 'GIFT', 2, 'W-1/1') ORDER BY sku;
SELECT status, qty FROM reserve('web', 'MUG', 1, 'W-1/2');
SELECT status, qty FROM reserve('web', 'TEE', 1, 'W-2/1');
SELECT sum(qty) FROM pick('web', 'W-1/1');
SELECT sum(qty) FROM ship('web', 'W-1/1');
SELECT sum(qty) FROM pick('web', 'W-1/2');
SELECT sum(qty) FROM ship('web', 'W-1/2');
SELECT sum(qty) FROM release('web', 'W-2/1');
-- The lines as the views read them (kit: units of GIFT, its least filled component).
SELECT channel, ref, order_ref, qty, first_units, shipped_units, open
  FROM kpi_order_line WHERE channel IN ('edi', 'web') ORDER BY channel, ref;
-- edi: 3 orders, 4 lines, 20 units ordered (4+6+8+2), 16 shipped (4+4+8+0): 0.8.
--   lines shipped in full: E-1/1, E-2/1: 2/4; orders: E-2 only: 1/3.
--   first time: 17 units (4+6+5+2): 0.85; lines E-1/1, E-1/2, E-3: 3/4;
--   orders E-1, E-3: 2/3. E-3 is open (final rates provisional).
-- web: 2 orders, 3 lines, 4 units (2+1+1), 3 shipped: 0.75; lines 2/3;
--   orders W-1: 1/2; everything allocated at once: 1, 1, 1.
SELECT channel, day = current_date AS today, orders, lines, units_ordered, units_shipped,
       unit_fill_rate, line_fill_rate, order_fill_rate,
       first_time_unit_fill_rate, first_time_line_fill_rate, first_time_order_fill_rate,
       units_filled_first_time, open_lines, open_orders
  FROM kpi_fill_rate WHERE channel IN ('edi', 'web') ORDER BY channel;
-- The columns the metrics helper reads, by name and type.
SELECT attnum, attname, format_type(atttypid, atttypmod)
  FROM pg_attribute WHERE attrelid = 'kpi_fill_rate'::regclass AND attnum > 0 ORDER BY attnum;

-- ---------------------------------------------------------------------------
-- Order latency: reservation (first line) to shipment (last shipped event).
-- ---------------------------------------------------------------------------
SELECT count(*) FROM (SELECT * FROM reserve('b2b', 'TEE', 1, 'B-1/1')
                      UNION ALL SELECT * FROM reserve('b2b', 'MUG', 1, 'B-1/2')
                      UNION ALL SELECT * FROM reserve('b2b', 'MUG', 2, 'B-2/1')
                      UNION ALL SELECT * FROM reserve('b2b', 'TEE', 1, 'B-3/1')) x;
SELECT count(*) FROM (SELECT * FROM pick('b2b', 'B-1/1') UNION ALL SELECT * FROM pick('b2b', 'B-1/2')
                      UNION ALL SELECT * FROM pick('b2b', 'B-2/1')) x;
SELECT sum(qty) FROM ship('b2b', 'B-1/1');
SELECT sum(qty) FROM ship('b2b', 'B-1/2');
SELECT sum(qty) FROM ship('b2b', 'B-2/1');
-- B-3 is not shipped: open, no latency. Move the reservations back in time:
-- B-1 placed 2 hours before its last shipment (its second line 1 hour), B-2
-- 1 hour before.
WITH last_ship AS (
    SELECT split_part(ref, '/', 1) AS ord, max(occurred_at) AS t
      FROM event WHERE channel = 'b2b' AND event_type = 'shipped' GROUP BY 1)
UPDATE reservation r
   SET created_at = s.t - CASE r.ref WHEN 'B-1/1' THEN interval '2 hours' ELSE interval '1 hour' END
  FROM last_ship s WHERE r.channel = 'b2b' AND split_part(r.ref, '/', 1) = s.ord;
UPDATE allocation a SET created_at = r.created_at FROM reservation r WHERE a.reservation_id = r.id AND r.channel = 'b2b';
-- 7200 s and 3600 s: p50 5400, p95 3600 + 0.95 x 3600 = 7020, avg 5400, max 7200.
SELECT channel, day = current_date AS today, orders, p50_seconds, p95_seconds, avg_seconds, max_seconds
  FROM kpi_order_latency WHERE channel = 'b2b';
-- Every edi and web order that is closed has a latency (E-1, E-2, W-1, W-2 has
-- no shipment); shipped in the same minute as reserved.
SELECT channel, orders, p95_seconds < 60 AS under_a_minute FROM kpi_order_latency WHERE channel <> 'b2b' ORDER BY channel;

-- ---------------------------------------------------------------------------
-- Shipment-confirmation timeliness: recorded_at - occurred_at of shipped events.
-- ---------------------------------------------------------------------------
-- ship() records a shipment when it is called (0 s). A shipment confirmed
-- late carries the time it occurred: two of them on b2b, 30 minutes and
-- 2 hours late (through the internal append_lifecycle(), not granted).
SELECT count(*) FROM (
    SELECT append_lifecycle('PEN', 'RNO', 'reserved', 3, channel => 'b2b', ref => 'LATE-1'),
           append_lifecycle('PEN', 'RNO', 'picked', 3, channel => 'b2b', ref => 'LATE-1')) x;
SELECT count(*) FROM (
    SELECT append_lifecycle('PEN', 'RNO', 'shipped', 1, channel => 'b2b', ref => 'LATE-1', occurred_at => now() - interval '30 minutes'),
           append_lifecycle('PEN', 'RNO', 'shipped', 2, channel => 'b2b', ref => 'LATE-1', occurred_at => now() - interval '2 hours')) x;
-- b2b: 5 shipped events, delays 0, 0, 0, 1800, 7200: p50 0, p95 1800 + 0.8 x
-- 5400 = 6120, max 7200, 4 of 5 within the hour. edi: 4 events (E-2/1 shipped
-- from two allocations), 16 units; web: 3 events, 7 units (the kit's 2 TEE and
-- 4 MUG, and 1 MUG).
SELECT channel, day = current_date AS today, shipments, units, p50_seconds, p95_seconds, max_seconds,
       target, within_target, within_target_share
  FROM kpi_shipment_timeliness ORDER BY channel;

-- ---------------------------------------------------------------------------
-- Oversell refusals.
-- ---------------------------------------------------------------------------
SELECT ordinal, status, sqlstate FROM reserve_lines(
    '[{"channel": "web", "sku": "CAP", "qty": 100, "ref": "W-3/1"},
      {"channel": "web", "sku": "TEE", "qty": 50, "ref": "W-3/2"}]') ORDER BY ordinal;
-- reserve() refuses with an error (IE005) and leaves no record.
DO $$ BEGIN PERFORM * FROM inventory_events.reserve('web', 'TEE', 500, 'W-4/1');
EXCEPTION WHEN SQLSTATE 'IE005' THEN RAISE NOTICE 'refused: IE005'; END $$;
-- 2 refusals of order W-3: 150 units of 2 skus.
SELECT channel, day = current_date AS today, refusals, units_refused, skus, orders, open FROM kpi_oversell_refusals;
-- Refused lines are not order lines: W-3 is in no fill rate.
SELECT count(*) FROM kpi_order_line WHERE order_ref = 'W-3';

-- ---------------------------------------------------------------------------
-- Inventory record accuracy, and the share of manual adjustments.
-- ---------------------------------------------------------------------------
-- ATL: PEN received 10, adjusted -2 by hand, counted 7 (was 8: -1) by a cycle
-- count; CAP received 4, 1 of it damaged (on-hand unchanged).
SELECT count(*) FROM (
    SELECT append('PEN', 'ATL', 'received', 10, source => 'wms'), append('CAP', 'ATL', 'received', 4, source => 'wms')) x;
SELECT append('PEN', 'ATL', 'adjusted', -2, source => 'ops') > 0;
SELECT append('PEN', 'ATL', 'counted', 7, source => 'cycle') > 0;
SELECT append('CAP', 'ATL', 'damaged', 1, source => 'wms') > 0;
SELECT publications > 0 AS published FROM publish();
INSERT INTO recon_source (code) VALUES ('wms');
INSERT INTO recon_source (code, measure, channel, snapshot) VALUES ('shopfeed', 'channel', 'shop', 'partial');
-- An earlier run of wms: not the latest, not counted (it would be all misses).
SELECT reconcile('wms', now(), '[{"sku": "TEE", "location": "SEA", "qty": 1}]', "full" => false) > 0 AS run;
-- The latest run of wms (full: HAT at SEA is not listed).
SELECT reconcile('wms', now(), '[
    {"sku": "PEN", "location": "ATL", "qty": 5},
    {"sku": "CAP", "location": "ATL", "qty": 4},
    {"sku": "TEE", "location": "SEA", "qty": 99},
    {"sku": "MUG", "location": "SEA", "qty": 52},
    {"sku": "CAP", "location": "SEA", "qty": 20},
    {"sku": "NOPE", "location": "SEA", "qty": 3}]') > 0 AS run;
SELECT reconcile('shopfeed', now(), '[{"sku": "TEE", "qty": 100}, {"sku": "MUG", "qty": 45}]') > 0 AS run;
SELECT s.code, v.sku, v.location, v.ours, v.theirs, v.residual, v.status
  FROM recon_source s CROSS JOIN LATERAL (SELECT max(id) AS id FROM recon_run r WHERE r.source = s.code) r
  CROSS JOIN LATERAL recon_variance(r.id) v
 ORDER BY s.code, v.line_no;
-- PEN at ATL is adjusted: a counted event of source reconciliation. The
-- line's new version matches; accuracy keeps what the count found.
SELECT resolve_recon_line(l.id, 'adjust') > 0 AS adjusted
  FROM recon_line l WHERE l.current AND l.sku = 'PEN' AND l.location = 'ATL';
SELECT sku, version, reason, current, status FROM recon_line WHERE sku = 'PEN' ORDER BY version;
-- Hits (match, within_tolerance, timing, uom_suspect, status_mapping) over
-- compared lines (not unmapped or duplicate); quantity accuracy
-- 1 - sum|residual| / sum max(|ours|, |theirs|):
--   location ATL: PEN miss (res 2, 7), CAP match (0, 4): 1/2, 1 - 2/11 = 0.8182
--   location SEA: TEE within (1, 100), MUG out (2, 52), CAP match (0, 20),
--     HAT missing in source (10, 10), NOPE unmapped: 2/4, 1 - 13/182 = 0.9286
--   class A: TEE, HAT: 1/2, 1 - 11/110 = 0.9; B: MUG: 0/1, 1 - 2/52 = 0.9615;
--   C: CAP twice: 2/2, 1; none: PEN (NOPE not compared): 0/1, 1 - 2/7 = 0.7143
--   channel shop: TEE match (0, 100), MUG drift (5, 50): 1/2, 1 - 5/150 = 0.9667
SELECT dimension, key, sources, lines, compared_lines, hit_lines, hit_rate, abs_residual, abs_quantity,
       quantity_accuracy
  FROM kpi_record_accuracy ORDER BY dimension, key;

-- Manual adjustments at ATL: 5 events changed on-hand (2 receipts, adjusted,
-- counted, reconciliation's counted -2; damaged did not): 2 manual (0.4), 1 by
-- reconciliation; units 10 + 4 + 2 + 1 + 2 = 19, manual 3 (0.1579).
SELECT day = current_date AS today, location, stock_events, manual_adjustments, reconciliation_adjustments,
       manual_share, stock_units, manual_units, manual_unit_share
  FROM kpi_manual_adjustments WHERE location = 'ATL';
-- Elsewhere: no manual adjustment; every location's events are counted.
SELECT location, stock_events, manual_adjustments FROM kpi_manual_adjustments WHERE location <> 'ATL' ORDER BY location;
SELECT (SELECT sum(stock_events) FROM kpi_manual_adjustments)
     = (SELECT count(*) FROM event WHERE on_hand(effect) <> 0) AS all_counted;

-- ---------------------------------------------------------------------------
-- Exception resolution time and aging.
-- ---------------------------------------------------------------------------
-- pick_short: resolved after 1 h, 2 h and 10 h (p50 7200, p95 2 h + 0.9 x 8 h
-- = 33120); one resolved 40 days ago is outside the window; open ones 30
-- minutes, 5 hours, 3 days and 10 days old (p50 (5 h + 3 d) / 2 = 138600).
-- One transaction: the ages are measured from the same now().
BEGIN;
INSERT INTO exception (kind, detail, created_at, resolved_at) VALUES
    ('pick_short', 'a', now() - interval '3 hours', now() - interval '2 hours'),
    ('pick_short', 'b', now() - interval '5 hours', now() - interval '3 hours'),
    ('pick_short', 'c', now() - interval '12 hours', now() - interval '2 hours'),
    ('pick_short', 'old', now() - interval '41 days', now() - interval '40 days'),
    ('pick_short', 'd', now() - interval '30 minutes', NULL),
    ('pick_short', 'e', now() - interval '5 hours', NULL),
    ('pick_short', 'f', now() - interval '3 days', NULL),
    ('pick_short', 'g', now() - interval '10 days', NULL);
SELECT kind, resolved, resolution_p50_seconds, resolution_p95_seconds, open, oldest_open_seconds,
       open_age_p50_seconds, open_under_1_hour, open_under_1_day, open_under_7_days, open_7_days_or_more
  FROM kpi_exception_resolution WHERE kind = 'pick_short';
COMMIT;
-- The other kinds: 2 refusals open; reconciliation opened 3 (PEN, MUG, HAT;
-- PEN resolved by its adjustment) and one channel drift.
SELECT kind, resolved, open FROM kpi_exception_resolution WHERE kind <> 'pick_short' ORDER BY kind;

-- ---------------------------------------------------------------------------
-- Message throughput and dead letters.
-- ---------------------------------------------------------------------------
SELECT status FROM ingest('[{"sku": "TEE", "location": "DAL", "event_type": "received", "qty": 1},
                            {"sku": "NOPE", "location": "DAL", "event_type": "received", "qty": 1}]') ORDER BY ordinal;
SELECT count(*) AS days, count(*) FILTER (WHERE events_appended + publications + dead_letters > 0) AS busy_days,
       min(day) = current_date - 29 AS from_day, max(day) = current_date AS to_day
  FROM kpi_throughput;
SELECT events_appended = (SELECT count(*) FROM event) AS events,
       publications = (SELECT count(*) FROM publication) AND publications > 0 AS publications,
       channels_published, dead_letters,
       dead_letter_share = round(1 / (events_appended + 1.0), 4) AS share
  FROM kpi_throughput WHERE day = current_date;

-- ---------------------------------------------------------------------------
-- Windows: nothing older than 30 days is read, and nobody but the readers of
-- the extension may look.
-- ---------------------------------------------------------------------------
UPDATE reservation SET created_at = created_at - interval '31 days' WHERE channel = 'web';
SELECT DISTINCT channel FROM kpi_fill_rate ORDER BY channel;
SELECT c.relname, has_table_privilege('public', c.oid, 'SELECT') AS public_reads
  FROM pg_class c WHERE c.relnamespace = 'inventory_events'::regnamespace AND c.relname LIKE 'kpi%' ORDER BY 1;
SELECT c.relname, obj_description(c.oid, 'pg_class') IS NOT NULL AS commented
  FROM pg_class c WHERE c.relnamespace = 'inventory_events'::regnamespace AND c.relname LIKE 'kpi%' ORDER BY 1;

-- verify(): the data of this test is consistent.
SELECT count(*) AS damaged_streams FROM verify();
DROP EXTENSION inventory_events;
