-- The reconciliation part of test/bench/run.sh (part_recon.sh): a catalog of
-- 30,000 skus at the three warehouses (a ninth of them lot-controlled, two
-- lots each: 99,999 streams), an event log built by INSERT ... SELECT, a WMS
-- snapshot of every stream as of a cut-off, and the SQL a team would write
-- instead of reconcile_staged().
--
-- The log. Event g (1, 2, ...) goes to stream ((g - 1) * 7919) % 99999, a
-- permutation of the streams within every block of 99,999 events, so its
-- version is exactly (g - 1) / 99999 + 1 and every stream has the same
-- number of events (one more for some). A stream opens with a receipt, then
-- cycles: picked q (available to picked), shipped q (out of picked),
-- received q; so a third of the streams hold picked stock at any time.
--   history  events 1 .. history: recorded over the year before the cut-off,
--            in insert order; occurred seconds before recorded, 1 % hours
--            before (recorded late);
--   after    the events after the cut-off: recorded from a minute after it,
--            one every 6 ms, in insert order; 5 % of them occurred before the
--            cut-off (late postings: they count in ours as of it), the rest
--            seconds before they were recorded.
-- The stock trigger is off while they go in; the stock rows are derived
-- from the events at the end of every step, so verify() passes.
CREATE SCHEMA bench_recon;

CREATE TABLE bench_recon.stream (s integer PRIMARY KEY, sku text, location text, lot text);
INSERT INTO bench_recon.stream
SELECT row_number() OVER (ORDER BY g, l, lot) - 1, 'SKU' || g, 'W' || l, lot
  FROM generate_series(1, 30000) g, generate_series(1, 3) l,
       LATERAL unnest(CASE WHEN g % 9 = 0 THEN ARRAY['L1', 'L2'] ELSE ARRAY[''] END) lot;

-- The log's parameters: the cut-off, the history's size, and how many events
-- after the cut-off have been added.
CREATE TABLE bench_recon.log (cutoff timestamptz, history bigint, after bigint);

-- The team's result table (the baseline writes its comparison here, as
-- reconcile_staged() writes recon_line).
CREATE TABLE bench_recon.team_result (sku text, location text, lot text, ours bigint, theirs bigint,
                                      variance bigint, status text);
-- The snapshot as the WMS sends it (COPYed out to a file by part_recon.sh).
CREATE TABLE bench_recon.snapshot (sku text, location text, lot text, qty bigint);

CREATE FUNCTION bench_recon.setup() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO inventory_events.item (sku, description)
    SELECT 'SKU' || g, 'catalog item ' || g FROM generate_series(1, 30000) g
    ON CONFLICT DO NOTHING;
    -- ABC classes (A 10 %, B 20 %, C 70 %: the built-in tolerances), a cost,
    -- lot-controlled skus (zero tolerance), a few high-value ones, and a case
    -- of 12 for a quarter of them (the unit-of-measure hints).
    UPDATE inventory_events.item i
       SET abc_class = CASE WHEN x.g % 10 = 0 THEN 'A' WHEN x.g % 10 IN (1, 2) THEN 'B' ELSE 'C' END,
           unit_cost = 1 + x.g % 50, lot_controlled = x.g % 9 = 0, high_value = x.g % 97 = 0
      FROM (SELECT sku, substr(sku, 4)::integer AS g FROM inventory_events.item WHERE sku ~ '^SKU[0-9]+$') x
     WHERE x.sku = i.sku AND x.g <= 30000;
    INSERT INTO inventory_events.item_uom (sku, uom, factor)
    SELECT 'SKU' || g, 'CS', 12 FROM generate_series(4, 30000, 4) g ON CONFLICT DO NOTHING;
    INSERT INTO inventory_events.recon_source (code, measure, authoritative, snapshot, locations, auto_adjust)
    VALUES ('bench-wms', 'on_hand', 'source', 'full', '{W1,W2,W3}', false) ON CONFLICT DO NOTHING;
END $$;

-- Back to the catalog of catalog.sql (the other parts).
CREATE FUNCTION bench_recon.teardown() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM bench_recon.clear_runs();
    SET LOCAL inventory_events.allow_history_rewrite = on;
    TRUNCATE inventory_events.event, inventory_events.stock;
    DELETE FROM inventory_events.recon_source WHERE code = 'bench-wms';
    DELETE FROM inventory_events.item_uom WHERE sku ~ '^SKU[0-9]+$';
    DELETE FROM inventory_events.item WHERE sku ~ '^SKU[0-9]+$' AND substr(sku, 4)::integer > 10000;
    UPDATE inventory_events.item SET abc_class = NULL, unit_cost = NULL, lot_controlled = false, high_value = false;
    TRUNCATE bench_recon.log;
END $$;

CREATE FUNCTION bench_recon.clear_runs() RETURNS void LANGUAGE sql AS $$
    TRUNCATE inventory_events.recon_line, inventory_events.recon_run, inventory_events.recon_checkpoint,
             inventory_events.exception, inventory_events.recon_staging, bench_recon.team_result;
$$;

-- Events g = first .. last, with the log's cut-off.
CREATE FUNCTION bench_recon.insert_events(first bigint, last bigint) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    lg  bench_recon.log := (SELECT x FROM bench_recon.log x);
BEGIN
    INSERT INTO inventory_events.event (sku, location, lot, version, event_type, from_bucket, to_bucket, qty, uom,
                                        uom_qty, effect, occurred_at, recorded_at, correlation_id, causation_id)
    SELECT st.sku, st.location, st.lot, y.v,
           CASE WHEN y.v = 1 OR y.v % 3 = 1 THEN 'received' WHEN y.v % 3 = 2 THEN 'picked' ELSE 'shipped' END
               ::inventory_events.event_type,
           CASE WHEN y.v = 1 THEN NULL WHEN y.v % 3 = 2 THEN 'available' WHEN y.v % 3 = 0 THEN 'picked' END
               ::inventory_events.bucket,
           CASE WHEN y.v = 1 OR y.v % 3 = 1 THEN 'available' WHEN y.v % 3 = 2 THEN 'picked' END::inventory_events.bucket,
           y.q, 'EA', y.q,
           CASE WHEN y.v = 1 OR y.v % 3 = 1 THEN inventory_events.stock_position(available => y.q)
                WHEN y.v % 3 = 2 THEN inventory_events.stock_position(available => -y.q, picked => y.q)
                ELSE inventory_events.stock_position(picked => -y.q) END,
           CASE WHEN y.g > lg.history AND y.g % 20 = 7
                     THEN lg.cutoff - make_interval(mins => 1 + (y.g % 180)::integer)  -- a late posting
                WHEN y.g <= lg.history AND y.g % 100 = 37
                     THEN y.recorded_at - make_interval(hours => 1 + (y.g % 12)::integer)  -- recorded late
                ELSE y.recorded_at - make_interval(secs => y.g % 60) END,
           y.recorded_at,
           '00000000-0000-0000-0000-000000000000', '00000000-0000-0000-0000-000000000000'
      FROM (SELECT x.*,
                   CASE WHEN x.v = 1 THEN 300 + x.s % 500 ELSE 1 + (x.s + (x.v - 2) / 3) % 9 END AS q,
                   CASE WHEN x.g <= lg.history
                        THEN lg.cutoff - make_interval(secs => 31536000 - 31535999.0 * x.g / lg.history)
                        ELSE lg.cutoff + interval '1 minute' + interval '6 milliseconds' * (x.g - lg.history) END AS recorded_at
              FROM (SELECT g, ((g - 1) * 7919) % 99999 AS s, (g - 1) / 99999 + 1 AS v
                      FROM generate_series(first, last) g) x) y
      JOIN bench_recon.stream st ON st.s = y.s
     ORDER BY y.g;
END $$;

-- The stock rows: derived from the events (what rebuild() writes, in one
-- statement; rebuild() loops over the streams).
CREATE FUNCTION bench_recon.derive_stock() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE inventory_events.stock;
    INSERT INTO inventory_events.stock (sku, location, lot, available, reserved, picked, damaged, quarantine,
                                        in_transit, inbound, on_hand, safety_stock, version, last_event_id, updated_at)
    SELECT d.sku, d.location, d.lot, inventory_events.available(d.position), inventory_events.reserved(d.position),
           inventory_events.picked(d.position), inventory_events.damaged(d.position),
           inventory_events.quarantine(d.position), inventory_events.in_transit(d.position),
           inventory_events.inbound(d.position), inventory_events.on_hand(d.position), d.safety_stock, d.version,
           d.last_event_id, now()
      FROM inventory_events.stream_derived d;
END $$;

-- A log of `history` events before the cut-off (and none after it yet).
CREATE FUNCTION bench_recon.build(history bigint) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM bench_recon.clear_runs();
    SET LOCAL inventory_events.allow_history_rewrite = on;
    TRUNCATE inventory_events.event, inventory_events.stock, bench_recon.log;
    -- The after-cut-off events, at most a million, fit between it and now.
    INSERT INTO bench_recon.log VALUES (date_trunc('minute', now()) - interval '2 hours', history, 0);
    ALTER TABLE inventory_events.event DISABLE TRIGGER event_stock;
    PERFORM bench_recon.insert_events(1, history);
    ALTER TABLE inventory_events.event ENABLE ALWAYS TRIGGER event_stock;
    PERFORM bench_recon.derive_stock();
END $$;

-- Events after the cut-off up to `after` in all; the stock rows follow them.
CREATE FUNCTION bench_recon.add_after(after bigint) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    lg  bench_recon.log := (SELECT x FROM bench_recon.log x);
BEGIN
    IF after <= lg.after THEN
        RETURN;
    END IF;
    ALTER TABLE inventory_events.event DISABLE TRIGGER event_stock;
    PERFORM bench_recon.insert_events(lg.history + lg.after + 1, lg.history + after);
    ALTER TABLE inventory_events.event ENABLE ALWAYS TRIGGER event_stock;
    UPDATE inventory_events.stock s
       SET available = s.available + inventory_events.available(d.delta),
           picked = s.picked + inventory_events.picked(d.delta),
           on_hand = s.on_hand + inventory_events.on_hand(d.delta),
           version = d.version, last_event_id = d.last_event_id
      FROM (SELECT e.sku, e.location, e.lot, inventory_events.sum(e.effect) AS delta, max(e.version) AS version,
                   max(e.id) AS last_event_id
              FROM inventory_events.event e
             WHERE e.recorded_at > lg.cutoff + interval '1 minute' + interval '6 milliseconds' * lg.after
             GROUP BY 1, 2, 3) d
     WHERE d.sku = s.sku AND d.location = s.location AND d.lot = s.lot;
    UPDATE bench_recon.log SET after = add_after.after;
END $$;

-- The WMS's snapshot: every stream's on-hand as of the cut-off (the current
-- stock minus what occurred after it), one line per stream (by lot for the
-- lot-controlled skus), `differ_pct` % of them different: 4 in 10 by a few
-- units, 3 in 10 by 10 to 99 units, 2 in 10 by the picked stock (the WMS
-- counting picks as gone: timing), 1 in 10 not listed.
CREATE FUNCTION bench_recon.make_snapshot(differ_pct integer) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    lg  bench_recon.log := (SELECT x FROM bench_recon.log x);
    n   bigint;
BEGIN
    TRUNCATE bench_recon.snapshot;
    INSERT INTO bench_recon.snapshot
    SELECT st.sku, st.location, nullif(st.lot, ''),
           greatest(0, CASE WHEN NOT x.differs THEN inventory_events.on_hand(x.pos)
                            WHEN x.kind < 4 THEN inventory_events.on_hand(x.pos) + CASE WHEN st.s % 2 = 0 THEN 1 ELSE -1 END * (1 + st.s % 3)
                            WHEN x.kind < 7 THEN inventory_events.on_hand(x.pos) + CASE WHEN st.s % 2 = 0 THEN 1 ELSE -1 END * (10 + st.s % 90)
                            WHEN inventory_events.picked(x.pos) > 0 THEN inventory_events.on_hand(x.pos) - inventory_events.picked(x.pos)
                            ELSE inventory_events.on_hand(x.pos) - 1 END)
      FROM bench_recon.stream st
      JOIN inventory_events.stock s ON s.sku = st.sku AND s.location = st.location AND s.lot = st.lot
      LEFT JOIN (SELECT e.sku, e.location, e.lot, inventory_events.sum(e.effect) AS delta
                   FROM inventory_events.event e
                  WHERE e.recorded_at > lg.cutoff AND e.occurred_at > lg.cutoff
                  GROUP BY 1, 2, 3) a ON a.sku = st.sku AND a.location = st.location AND a.lot = st.lot
      CROSS JOIN LATERAL (SELECT inventory_events.position_of(s.*) OPERATOR(inventory_events.-)
                                     coalesce(a.delta, inventory_events.stock_position()) AS pos,
                                 abs(hashint4(st.s)) % 1000 < differ_pct * 10 AS differs,
                                 abs(hashint4(st.s + 7)) % 10 AS kind) x
     WHERE NOT (x.differs AND x.kind = 9)
     ORDER BY st.s;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END $$;
