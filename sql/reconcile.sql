-- Reconciliation: snapshots compared with our positions as of their cut-off,
-- statuses, tolerances, hints with evidence, late events, resolution,
-- channel drift, idempotency and bad input (doc/reconciliation.md).
CREATE EXTENSION inventory_events;
SET search_path = inventory_events, public;

CREATE FUNCTION pg_temp.try(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

-- The report of a run without its time-dependent parts: the hints' kinds,
-- what each explains, and the events behind them as event types.
CREATE FUNCTION pg_temp.report(run bigint) RETURNS TABLE (line integer, v integer, key text, ours bigint, theirs bigint,
    variance bigint, status inventory_events.recon_status, explained bigint, residual bigint, value numeric,
    severity text, streak integer, hints text)
LANGUAGE sql AS $$
    SELECT r.line_no, r.version, r.sku || coalesce('/' || r.location, '') || coalesce(' lot ' || r.lot, ''),
           r.ours, r.theirs, r.variance, r.status, r.explained, r.residual, r.value, r.severity, r.streak,
           (SELECT string_agg(format('%s%s%s[%s]', h->>'hint', coalesce(':' || (h->>'bucket'), ':' || (h->>'detail'), ''),
                                     CASE WHEN (h->>'explains')::boolean THEN '=' || (h->>'qty') ELSE '' END,
                                     coalesce((SELECT string_agg(e.event_type::text, ',' ORDER BY e.id)
                                                 FROM jsonb_array_elements_text(h->'events') x(id)
                                                 JOIN inventory_events.event e ON e.id = x.id::bigint),
                                              'line ' || (h->>'line_no'), '')), ' ' ORDER BY n)
              FROM jsonb_array_elements(r.hints) WITH ORDINALITY h(h, n))
      FROM inventory_events.recon_variance(run) r $$;

INSERT INTO item (sku, abc_class, unit_cost) VALUES
    ('TEE', 'C', 4), ('MUG', 'B', 6), ('CAP', 'A', 20), ('HAT', 'C', 5), ('BAG', 'C', 9), ('PEN', NULL, 1);
INSERT INTO item (sku, lot_controlled) VALUES ('VIT', true);
INSERT INTO item (sku, regulated, abc_class) VALUES ('RX', true, 'C');
INSERT INTO item_uom (sku, uom, factor) VALUES ('MUG', 'CS', 12), ('HAT', 'BX', 10);
INSERT INTO lot (sku, lot) VALUES ('VIT', 'L1'), ('VIT', 'L2');
INSERT INTO location (code) VALUES ('DAL'), ('RNO');
INSERT INTO channel (code) VALUES ('web');
INSERT INTO channel_location (channel, location) VALUES ('web', 'DAL');

-- Before the cut-off.
SELECT count(*) FROM (VALUES
    (append('TEE', 'DAL', 'received', 100)), (append('MUG', 'DAL', 'received', 60)),
    (append('CAP', 'DAL', 'received', 50)), (append('HAT', 'DAL', 'received', 40)),
    (append('BAG', 'DAL', 'received', 30)), (append('PEN', 'DAL', 'received', 10)),
    (append('VIT', 'DAL', 'received', 10, lot => 'L1')), (append('VIT', 'DAL', 'received', 5, lot => 'L2')),
    (append('RX', 'DAL', 'received', 8)), (append('TEE', 'RNO', 'received', 7))) x;
-- A pick in flight at the cut-off: 4 TEE reserved and picked, not shipped.
SELECT status, qty FROM reserve('web', 'TEE', 4, 'SO-1');
SELECT count(*) FROM pick('web', 'SO-1');
SELECT clock_timestamp() AS cutoff \gset
-- After the cut-off: neither counts.
SELECT append('TEE', 'DAL', 'received', 1000), append('BAG', 'DAL', 'adjusted', -5);
-- Before the cut-off, recorded after it: counts.
SELECT append('PEN', 'DAL', 'received', 3, occurred_at => :'cutoff'::timestamptz - interval '1 minute');

-- Positions as of the cut-off, and now.
SELECT sku, location, lot, on_hand FROM stock ORDER BY 1, 2, 3;

INSERT INTO recon_source (code, description) VALUES ('wms', 'the warehouse management system');
-- The WMS snapshot: TEE already shipped in the WMS (a pick in flight),
-- MUG counted in cases as eaches, CAP short by 1 (class A: 1 % of 50 is
-- 0.5), HAT short 1 of 40 (class C: within 5 %), BAG right (its
-- adjustment came after the cut-off), PEN right with
-- the late receipt, VIT lots swapped by one, RX short (regulated: no
-- tolerance), a sku and a location we do not know; RNO is not listed.
SELECT reconcile('wms', :'cutoff', '[
  {"sku": "TEE", "location": "DAL", "qty": 96},
  {"sku": "MUG", "location": "DAL", "qty": 5, "uom": "EA"},
  {"sku": "CAP", "location": "DAL", "qty": 49},
  {"sku": "HAT", "location": "DAL", "qty": 39},
  {"sku": "BAG", "location": "DAL", "qty": 30},
  {"sku": "PEN", "location": "DAL", "qty": 13},
  {"sku": "VIT", "location": "DAL", "lot": "L1", "qty": 9},
  {"sku": "VIT", "location": "DAL", "lot": "L2", "qty": 6},
  {"sku": "RX", "location": "DAL", "qty": 7},
  {"sku": "NOPE", "location": "DAL", "qty": 1},
  {"sku": "TEE", "location": "NOWHERE", "qty": 1}
]') AS run1 \gset
SELECT * FROM pg_temp.report(:run1);
SELECT kind, sku, location, ref FROM exception WHERE kind = 'recon_variance' ORDER BY id;

-- The same snapshot again: the same run, nothing new.
SELECT reconcile('wms', :'cutoff', '[
  {"sku": "TEE", "location": "DAL", "qty": 96},
  {"sku": "MUG", "location": "DAL", "qty": 5, "uom": "EA"},
  {"sku": "CAP", "location": "DAL", "qty": 49},
  {"sku": "HAT", "location": "DAL", "qty": 39},
  {"sku": "BAG", "location": "DAL", "qty": 30},
  {"sku": "PEN", "location": "DAL", "qty": 13},
  {"sku": "VIT", "location": "DAL", "lot": "L1", "qty": 9},
  {"sku": "VIT", "location": "DAL", "lot": "L2", "qty": 6},
  {"sku": "RX", "location": "DAL", "qty": 7},
  {"sku": "NOPE", "location": "DAL", "qty": 1},
  {"sku": "TEE", "location": "NOWHERE", "qty": 1}
]') = :run1 AS same_run;
SELECT count(*) AS runs FROM recon_run;

-- A late event: a CAP damage write-off that occurred before the cut-off is
-- recorded now. The worker (here by hand) re-evaluates the line: a new
-- version, the old one kept; the exception closes.
SELECT append('CAP', 'DAL', 'adjusted', -1, occurred_at => :'cutoff'::timestamptz - interval '1 hour') AS late_event;
SELECT recon_reevaluate() AS new_versions;
SELECT line_no, version, current, reason, ours, theirs, status FROM recon_line WHERE run_id = :run1 AND sku = 'CAP' ORDER BY version;
SELECT ref, resolved_at IS NOT NULL AS resolved FROM exception WHERE ref = 'recon:' || :run1 || ':3';
-- An event after the cut-off changes nothing.
SELECT append('CAP', 'DAL', 'adjusted', -1) IS NOT NULL AS appended;
SELECT recon_reevaluate() AS new_versions;

-- Resolution. RX (regulated): adjust, a counted event as of the cut-off that
-- refers to the line; the line's new version matches.
SELECT id AS rx_line FROM recon_line WHERE run_id = :run1 AND sku = 'RX' AND current \gset
SELECT resolve_recon_line(:rx_line, 'adjust', 'shrink found') AS adjustment \gset
SELECT e.event_type, e.qty, on_hand(e.effect) AS delta, e.occurred_at = :'cutoff'::timestamptz AS as_of_cutoff,
       e.source, e.ref, e.correlation_id = r.correlation_id AS run_correlation,
       e.causation_id = l.line_uuid AS line_causation, e.payload->>'resolution' AS resolution
  FROM event e, recon_line l, recon_run r
 WHERE e.id = :adjustment AND l.id = :rx_line AND r.id = l.run_id;
SELECT version, current, reason, ours, theirs, status, resolution FROM recon_line WHERE run_id = :run1 AND sku = 'RX' ORDER BY version;
SELECT on_hand FROM stock WHERE sku = 'RX';
SELECT pg_temp.try(format('SELECT resolve_recon_line(%s, ''adjust'')', :rx_line));
-- Explained lines have nothing to adjust; a match nothing to resolve.
SELECT pg_temp.try(format('SELECT resolve_recon_line(%s, ''adjust'')',
                          (SELECT id FROM recon_line WHERE run_id = :run1 AND sku = 'TEE' AND location = 'DAL' AND current)));
SELECT pg_temp.try(format('SELECT resolve_recon_line(%s, ''accept'')',
                          (SELECT id FROM recon_line WHERE run_id = :run1 AND sku = 'BAG' AND current)));
SELECT pg_temp.try(format('SELECT resolve_recon_line(%s, ''ignore'')', :rx_line));
SELECT pg_temp.try('SELECT resolve_recon_line(999999, ''accept'')');
-- A line summing two lots cannot be adjusted by one count.
SELECT id AS vit_line FROM recon_line WHERE run_id = :run1 AND sku = 'VIT' AND lot = 'L1' AND current \gset
SELECT resolve_recon_line(:vit_line, 'dispute', 'the WMS swapped the labels');
SELECT ref, resolved_at IS NOT NULL AS resolved FROM exception WHERE ref = 'recon:' || :run1 || ':7';

-- Recounts are capped (max_recounts 2 by default): a cycle count of VIT L2
-- twice more, each superseding the last; then the line needs approval.
SELECT id AS l2 FROM recon_line WHERE run_id = :run1 AND sku = 'VIT' AND lot = 'L2' AND current \gset
SELECT resolve_recon_line(:l2, 'recount');
SELECT reconcile('wms', :'cutoff', '[{"sku": "VIT", "location": "DAL", "lot": "L2", "qty": 6}]', "full" => false,
                 external_id => 'recount-1') AS run2 \gset
SELECT * FROM pg_temp.report(:run2);
SELECT resolution FROM recon_line WHERE id = :l2;
SELECT id AS l2 FROM recon_line WHERE run_id = :run2 AND current \gset
SELECT resolve_recon_line(:l2, 'recount');
SELECT reconcile('wms', :'cutoff', '[{"sku": "VIT", "location": "DAL", "lot": "L2", "qty": 6}]', "full" => false,
                 external_id => 'recount-2') AS run3 \gset
SELECT id AS l2 FROM recon_line WHERE run_id = :run3 AND current \gset
SELECT recounts, streak, severity FROM recon_line WHERE id = :l2;
SELECT pg_temp.try(format('SELECT resolve_recon_line(%s, ''recount'')', :l2));
SELECT pg_temp.try(format('SELECT resolve_recon_line(%s, ''adjust'')', :l2));
SELECT pg_temp.try(format('SELECT approve_recon_line(%s, NULL)', :l2));
SELECT approve_recon_line(:l2, 'checked by the supervisor') IS NOT NULL AS approved;
SELECT resolution, resolved_by IS NOT NULL AS by FROM recon_line WHERE id = :l2;
SELECT on_hand FROM stock WHERE sku = 'VIT' AND lot = 'L2';

-- An external id sent again with other content is refused.
SELECT pg_temp.try(format($$SELECT reconcile('wms', %L, '[{"sku": "VIT", "location": "DAL", "lot": "L2", "qty": 7}]', false, 'recount-1')$$, :'cutoff'));

-- Tolerances: precedence sku, class, location, default, built-in.
SELECT sku, pct, units, value, zero_tolerance, policy FROM item i, recon_tolerance_of(i.sku, 'DAL') ORDER BY sku;
INSERT INTO recon_tolerance (abc_class, pct, auto_adjust_units) VALUES ('C', 10, 2);
INSERT INTO recon_tolerance (sku, units) VALUES ('HAT', 0);
INSERT INTO recon_tolerance (location, units) VALUES ('DAL', 3);
INSERT INTO recon_tolerance (value) VALUES (10);
SELECT sku, pct, units, value, auto_adjust_units, policy FROM item i, recon_tolerance_of(i.sku, 'DAL') ORDER BY sku;
SELECT pg_temp.try($$INSERT INTO recon_tolerance (sku, abc_class) VALUES ('TEE', 'C')$$);
SELECT pg_temp.try($$INSERT INTO recon_tolerance (abc_class, pct) VALUES ('C', 1)$$);
-- Value: 6 PEN of 1.00 within a value limit of 10 (and no other limit).
SELECT recon_within(6, 100, 1, NULL, NULL, 10), recon_within(11, 100, 1, NULL, NULL, 10),
       recon_within(1, 100, NULL, NULL, NULL, NULL), recon_within(0, 0, NULL, NULL, NULL, NULL);
DELETE FROM recon_tolerance WHERE sku = 'HAT' OR location = 'DAL' OR num_nonnulls(sku, abc_class, location) = 0;

-- Automatic adjustment: only within the auto-adjust policy (class C: 10 %,
-- up to 2 units), never a zero-tolerance item. A partial count.
UPDATE recon_source SET auto_adjust = true WHERE code = 'wms';
SELECT reconcile('wms', clock_timestamp(), '[
  {"sku": "HAT", "location": "DAL", "qty": 38},
  {"sku": "BAG", "location": "DAL", "qty": 20},
  {"sku": "RX", "location": "DAL", "qty": 6}
]', "full" => false) AS run4 \gset
SELECT * FROM pg_temp.report(:run4);
SELECT sku, on_hand FROM stock WHERE sku IN ('HAT', 'BAG', 'RX') ORDER BY sku;
SELECT count(*) AS auto_adjustments FROM event WHERE source = 'reconciliation' AND payload->>'resolution' = 'auto_adjusted';
UPDATE recon_source SET auto_adjust = false WHERE code = 'wms';

-- A source whose books are right: its differences are disputed, never adjusted.
INSERT INTO recon_source (code, authoritative, snapshot) VALUES ('3pl', 'ours', 'partial');
SELECT reconcile('3pl', clock_timestamp(), '[{"sku": "PEN", "location": "DAL", "qty": 1}]') AS run5 \gset
SELECT "full" FROM recon_run WHERE id = :run5;
SELECT pg_temp.try(format('SELECT resolve_recon_line(%s, ''adjust'')', (SELECT id FROM recon_line WHERE run_id = :run5)));

-- The available measure: a WMS that counts reserved stock as available.
INSERT INTO recon_source (code, measure, snapshot) VALUES ('exec', 'available', 'partial');
SELECT status, qty FROM reserve('web', 'BAG', 2, 'SO-2');
SELECT reconcile('exec', clock_timestamp(), '[{"sku": "BAG", "location": "DAL", "qty": 25}]') AS run6 \gset
SELECT * FROM pg_temp.report(:run6);

-- Channel drift: the web channel's shown quantities against what was
-- published to it as of the cut-off.
INSERT INTO recon_source (code, measure, channel) VALUES ('web-shown', 'channel', 'web');
SELECT events > 0 AS published FROM publish();
SELECT clock_timestamp() AS chcut \gset
SELECT sku, available FROM channel_shown WHERE channel = 'web' ORDER BY sku;
SELECT reconcile('web-shown', :'chcut', '[
  {"sku": "TEE", "qty": 1092},
  {"sku": "MUG", "qty": 61},
  {"sku": "CAP", "qty": 48}
]', external_id => 'shopify-1') AS run7 \gset
SELECT * FROM pg_temp.report(:run7);
SELECT kind, sku, channel FROM exception WHERE kind = 'channel_drift' AND resolved_at IS NULL ORDER BY sku;
SELECT republish_drift(:run7) AS republished;
SELECT events >= 0 AS ran FROM publish();
SELECT p.sku, p.available FROM publication p WHERE p.channel = 'web' AND p.seq > (SELECT max(seq) FROM publication WHERE published_at <= :'chcut') ORDER BY p.sku;
SELECT count(*) AS open_drift FROM exception WHERE kind = 'channel_drift' AND resolved_at IS NULL;
SELECT pg_temp.try(format('SELECT resolve_recon_line(%s, ''adjust'')', (SELECT min(id) FROM recon_line WHERE run_id = :run7 AND status <> 'match')));

-- The COPY path: lines staged and reconciled in one transaction.
BEGIN;
COPY recon_staging (sku, location, lot, qty, uom) FROM stdin;
TEE	DAL	\N	1092	\N
MUG	DAL	\N	60	\N
\.
SELECT reconcile_staged('wms', clock_timestamp(), false) AS run8 \gset
COMMIT;
SELECT line, key, ours, theirs, status FROM pg_temp.report(:run8);
-- The same lines sent as JSON are the same snapshot: the same run.
SELECT reconcile('wms', (SELECT as_of FROM recon_run WHERE id = :run8),
                 '[{"sku": "TEE", "location": "DAL", "qty": 1092}, {"sku": "MUG", "location": "DAL", "qty": 60}]',
                 false) = :run8 AS same_run;
SELECT count(*) AS staged_left FROM recon_staging;
SELECT pg_temp.try($$SELECT reconcile_staged('wms', now())$$);
BEGIN;
SELECT pg_temp.try($$COPY recon_staging (sku, location, qty) FROM PROGRAM 'echo TEE,DAL,-1' WITH (FORMAT csv)$$);
ROLLBACK;

-- Bad input: each refused whole with its SQLSTATE; nothing applied.
SELECT count(*) AS runs_before FROM recon_run \gset
SELECT pg_temp.try($$SELECT reconcile('nosuch', now(), '[]')$$);
SELECT regexp_replace(pg_temp.try($$SELECT reconcile('wms', now() + interval '1 day', '[]')$$), 'cut-off .* is', 'cut-off ... is');
SELECT regexp_replace(pg_temp.try($$SELECT reconcile('wms', '1990-01-01', '[]')$$), 'cut-off .* is', 'cut-off ... is');
SELECT pg_temp.try($$SELECT reconcile('wms', NULL, '[]')$$);
SELECT pg_temp.try($$SELECT reconcile('wms', now(), '{"sku": "TEE"}')$$);
SELECT pg_temp.try($$SELECT reconcile('wms', now(), '[{"sku": "TEE", "location": "DAL", "qty": -1}]')$$);
SELECT pg_temp.try($$SELECT reconcile('wms', now(), '[{"sku": "TEE", "location": "DAL", "qty": 1.5}]')$$);
SELECT pg_temp.try($$SELECT reconcile('wms', now(), '[{"sku": "TEE", "location": "DAL", "qty": "7"}]')$$);
SELECT pg_temp.try($$SELECT reconcile('wms', now(), '[{"sku": "TEE", "location": "DAL", "qty": 1}, {"location": "DAL", "qty": 1}]')$$);
SELECT pg_temp.try($$SELECT reconcile('wms', now(), '[{"sku": "TEE", "location": "DAL", "qty": 1e30}]')$$);
SELECT pg_temp.try($$SELECT reconcile('wms', now(), '[]', external_id => repeat('x', 1001))$$);
SELECT count(*) = :runs_before AS nothing_applied, (SELECT count(*) FROM recon_staging) AS staged FROM recon_run;
-- A unit of measure the item does not have, and duplicate lines: reported.
SELECT reconcile('wms', clock_timestamp(), '[
  {"sku": "TEE", "location": "DAL", "qty": 3, "uom": "PALLET"},
  {"sku": "MUG", "location": "DAL", "qty": 60},
  {"sku": "MUG", "location": "DAL", "qty": 60}
]', false) AS run9 \gset
SELECT line, key, ours, theirs, status, severity FROM pg_temp.report(:run9);

-- The same snapshot from a session in another time zone is the same run.
SET TimeZone = 'Asia/Tokyo';
SELECT reconcile('wms', :'cutoff', '[
  {"sku": "TEE", "location": "DAL", "qty": 96},
  {"sku": "MUG", "location": "DAL", "qty": 5, "uom": "EA"},
  {"sku": "CAP", "location": "DAL", "qty": 49},
  {"sku": "HAT", "location": "DAL", "qty": 39},
  {"sku": "BAG", "location": "DAL", "qty": 30},
  {"sku": "PEN", "location": "DAL", "qty": 13},
  {"sku": "VIT", "location": "DAL", "lot": "L1", "qty": 9},
  {"sku": "VIT", "location": "DAL", "lot": "L2", "qty": 6},
  {"sku": "RX", "location": "DAL", "qty": 7},
  {"sku": "NOPE", "location": "DAL", "qty": 1},
  {"sku": "TEE", "location": "NOWHERE", "qty": 1}
]') = :run1 AS same_run;
RESET TimeZone;

-- A late event re-evaluates a key's line in the source's latest run that
-- lists it: VIT L1 was last counted in the first run (the later cycle
-- counts listed other keys), and a write-off of one before the cut-off now
-- makes it match.
SELECT append('VIT', 'DAL', 'adjusted', -1, lot => 'L1', occurred_at => :'cutoff'::timestamptz - interval '2 hours') > 0 AS late;
SELECT recon_reevaluate() AS new_versions;
SELECT run_id = :run1 AS first_run, version, reason, ours, theirs, status, resolution
  FROM recon_line WHERE sku = 'VIT' AND lot = 'L1' ORDER BY version;

-- An adjustment is refused while a late event the worker has not seen yet
-- moves ours as of the cut-off (its residual would be stale).
INSERT INTO recon_source (code, snapshot) VALUES ('cycle', 'partial');
SELECT reconcile('cycle', :'cutoff', '[{"sku": "PEN", "location": "DAL", "qty": 10}]') AS run10 \gset
SELECT append('PEN', 'DAL', 'adjusted', -3, occurred_at => :'cutoff'::timestamptz - interval '3 hours') > 0 AS late;
SELECT pg_temp.try(format('SELECT resolve_recon_line(%s, ''adjust'')', (SELECT id FROM recon_line WHERE run_id = :run10)));
SELECT recon_reevaluate() AS new_versions;
SELECT version, reason, ours, theirs, status FROM recon_line WHERE run_id = :run10 ORDER BY version;

-- A line awaiting its recount keeps its exception open through a new version.
SELECT reconcile('cycle', :'cutoff', '[{"sku": "HAT", "location": "DAL", "qty": 30}]') AS run11 \gset
SELECT resolve_recon_line((SELECT id FROM recon_line WHERE run_id = :run11), 'recount');
SELECT append('HAT', 'DAL', 'adjusted', -1, occurred_at => :'cutoff'::timestamptz - interval '3 hours') > 0 AS late;
SELECT recon_reevaluate() AS new_versions;
SELECT version, ours, theirs, status, resolution FROM recon_line WHERE run_id = :run11 ORDER BY version;
SELECT count(*) AS open_exceptions FROM exception WHERE ref = 'recon:' || :run11 || ':1' AND resolved_at IS NULL;

-- By lot, a line without a lot is the stream without one (lot ''), not all
-- lots summed, in every version.
SELECT reconcile('cycle', :'cutoff', '[{"sku": "VIT", "location": "DAL", "lot": "L1", "qty": 8},
                                       {"sku": "VIT", "location": "DAL", "qty": 2}]') AS run12 \gset
SELECT append('VIT', 'DAL', 'adjusted', -1, lot => 'L1', occurred_at => :'cutoff'::timestamptz - interval '3 hours') > 0 AS late;
SELECT recon_reevaluate() AS new_versions;
SELECT line_no, version, quote_nullable(lot) AS lot, ours, theirs, status FROM recon_line WHERE run_id = :run12 ORDER BY line_no, version;

-- Everything still adds up.
SELECT count(*) AS drifted_streams FROM verify();

-- A snapshot too large for JSON is refused (COPY it instead), whole.
SELECT count(*) AS runs_before FROM recon_run \gset
SELECT pg_temp.try($$SELECT reconcile('wms', now(), (SELECT jsonb_agg(jsonb_build_object('sku', 'TEE', 'location', 'DAL', 'qty', g, 'lot', repeat('x', 60)))
                                                        FROM generate_series(1, 700000) g))$$);
SELECT count(*) = :runs_before AS nothing_applied FROM recon_run;

DROP FUNCTION pg_temp.report(bigint);
DROP EXTENSION inventory_events;
