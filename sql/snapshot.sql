-- Stream snapshots: every reader of a stream's history folds from its newest
-- snapshot that applies; verify() proves the newest, verify_snapshots()
-- every one. Then the retention of the operational logs.
CREATE EXTENSION inventory_events;
SET search_path = inventory_events, public;
SET timezone = 'UTC';

INSERT INTO item (sku) VALUES ('A'), ('B'), ('F');
INSERT INTO item (sku, lot_controlled) VALUES ('L', true);
INSERT INTO lot (sku, lot) VALUES ('L', 'L1');
INSERT INTO location (code) VALUES ('W1'), ('W2');

-- A: twenty receipts an hour apart in March, a safety stock, a reservation.
SELECT count(*) FROM (SELECT append('A', 'W1', 'received', g, occurred_at => '2026-03-01'::timestamptz + g * interval '1 hour')
                        FROM generate_series(1, 20) g) x;
SELECT append('A', 'W1', 'safety_stock_set', 4, occurred_at => '2026-03-02 00:00Z') > 0;
SELECT append_lifecycle('A', 'W1', 'reserved', 5, occurred_at => '2026-03-02 01:00Z') > 0;
SELECT count(*) FROM (SELECT append('L', 'W1', 'received', 2, lot => 'L1', occurred_at => '2026-03-01'::timestamptz + g * interval '1 day')
                        FROM generate_series(1, 6) g) x;
SELECT append('B', 'W2', 'received', 3, occurred_at => '2026-03-01 00:00Z') > 0;

-- Nothing is snapshotted below min_events; A (22 events) and L (6) at 5.
SELECT take_snapshots(100);
SELECT take_snapshots(5);
SELECT sku, location, lot, version, event_id = (SELECT max(id) FROM event e WHERE e.sku = s.sku AND e.lot = s.lot) AS last_event,
       "position", safety_stock, occurred_max
  FROM stream_snapshot s ORDER BY 1, 2, 3, 4;
-- Again at once: nobody has 5 new events.
SELECT take_snapshots(5);

-- After the snapshot: two receipts, one back-dated into the snapshot's
-- hours (occurred before its occurred_max), and a count.
SELECT append('A', 'W1', 'received', 100, occurred_at => '2026-03-01 05:30Z') > 0;
SELECT append('A', 'W1', 'received', 1000, occurred_at => '2026-03-03 00:00Z') > 0;
SELECT append('A', 'W1', 'counted', 1300, occurred_at => '2026-03-03 12:00Z') > 0;

-- A fold reads only the events after the snapshot.
SELECT base_version, events_read, events, version, "position", safety_stock FROM stream_fold('A', 'W1');
-- Questions about a time at or after the snapshot's occurred_max start from
-- it; earlier ones from the beginning. Both equal a fold of the whole
-- history at every hour of March, the back-dated receipt included.
SELECT t, (stream_fold('A', 'W1', '', t)).base_version AS base, position_as_of('A', 'W1', t)
  FROM unnest('{2026-03-01 05:00Z, 2026-03-01 06:00Z, 2026-03-02 00:30Z, 2026-03-02 02:00Z, 2026-03-04 00:00Z}'::timestamptz[]) t;
SELECT count(*) AS hours,
       count(*) FILTER (WHERE a."position" OPERATOR(inventory_events.<>) b."position" OR a.events <> b.events
                           OR a.safety_stock <> b.safety_stock OR a.version <> b.version) AS differ,
       count(*) FILTER (WHERE a.base_version > 0) AS from_snapshot
  FROM generate_series('2026-02-28'::timestamptz, '2026-03-05', '1 hour') t
 CROSS JOIN LATERAL stream_fold('A', 'W1', '', t) a
 CROSS JOIN LATERAL stream_fold('A', 'W1', '', t, NULL, false) b;
SELECT * FROM sku_position_as_of('A', '2026-03-02 00:30Z');
SELECT * FROM sku_position_as_of('L', '2026-03-04');
SELECT * FROM sku_position_as_of('L', '2026-02-01');

-- A late count (dated before later movements) resolves its delta from the
-- snapshot too: L counted 60 on the 8th of March (12 there then, all in the
-- snapshot; the receipt of the 10th after it). To show that the snapshot is
-- what it reads, L's is made to say 10 first: the count's delta is then 50,
-- not 48 (and verify() reports the snapshot).
SELECT append('L', 'W1', 'received', 1, lot => 'L1', occurred_at => '2026-03-10') > 0;
UPDATE stream_snapshot SET "position" = stock_position(available => 10) WHERE sku = 'L';
SELECT append('L', 'W1', 'counted', 60, lot => 'L1', occurred_at => '2026-03-08') > 0;
SELECT qty, effect FROM event WHERE sku = 'L' ORDER BY version DESC LIMIT 1;
SELECT sku, problem FROM verify();
DELETE FROM stream_snapshot WHERE sku = 'L';
SELECT take_snapshots(5);
SELECT on_hand FROM stock WHERE sku = 'L';

-- verify() is clean, and rebuild() repairs from the snapshots.
SELECT * FROM verify();
UPDATE stock SET available = 0, version = 3 WHERE sku = 'A';
SELECT problem FROM verify();
SELECT rebuild();
SELECT * FROM verify();

-- A future-dated event: the snapshot taken after it applies only from its
-- date on; before that an older snapshot (or none) is used, and the answer is
-- the same.
SELECT append('F', 'W1', 'received', 1, occurred_at => '2026-01-01') > 0,
       append('F', 'W1', 'received', 2, occurred_at => '2026-01-02') > 0,
       append('F', 'W1', 'inbound_expected', 9, occurred_at => '2099-01-01') > 0,
       append('F', 'W1', 'received', 4, occurred_at => '2026-01-03') > 0;
SELECT take_snapshots(2);
SELECT version, occurred_max FROM stream_snapshot WHERE sku = 'F';
SELECT (stream_fold('F', 'W1', '', '2026-06-01')).base_version, position_as_of('F', 'W1', '2026-06-01'),
       (stream_fold('F', 'W1', '', '2099-06-01')).base_version, position_as_of('F', 'W1', '2099-06-01');

-- A damaged snapshot: verify() reports the newest against its predecessor,
-- verify_snapshots() every one.
SELECT take_snapshots(1);
SELECT sku, count(*) FROM stream_snapshot GROUP BY 1 ORDER BY 1;
UPDATE stream_snapshot SET "position" = stock_position(available => 1)
 WHERE (sku, version) IN (('A', 22), ('A', 25));
SELECT sku, location, lot, stored_version, problem FROM verify();
SELECT sku, version, problem FROM verify_snapshots();
DELETE FROM stream_snapshot WHERE sku = 'A';
SELECT take_snapshots(1);
SELECT * FROM verify_snapshots();

-- History rewritten by a superuser drops the stream's snapshots; a stream
-- whose versions then have a gap gets none (verify() reports it).
SET client_min_messages = error;
SET inventory_events.allow_history_rewrite = on;
DELETE FROM event WHERE sku = 'L' AND version = 2;
RESET inventory_events.allow_history_rewrite;
RESET client_min_messages;
SELECT count(*) FROM stream_snapshot WHERE sku = 'L';
SELECT take_snapshots(1);
SELECT count(*) FROM stream_snapshot WHERE sku = 'L';
SELECT sku, problem FROM verify();

-- Bad input.
SELECT stream_fold(NULL, 'W1');
SELECT stream_fold('A', 'W1', '', NULL, 0);
SELECT take_snapshots(0);
SELECT take_snapshots(1, 0);
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT take_snapshots(1);
ROLLBACK;

-- A bucket's total must fit, not each partial sum: -9e18 then back, with a
-- snapshot in between.
INSERT INTO item (sku) VALUES ('BIG');
SELECT append('BIG', 'W1', 'adjusted', -9000000000000000000) > 0;
SELECT take_snapshots(1) > 0;
SELECT append('BIG', 'W1', 'adjusted', 9000000000000000000) > 0,
       append('BIG', 'W1', 'received', 5) > 0;
SELECT "position" FROM stream_fold('BIG', 'W1');
SELECT count(*) FROM verify() WHERE sku = 'BIG';

-- Retention. Rows are aged by hand (a superuser); the settings are the
-- defaults first (30, 90, 90, 400 days): nothing here is that old.
SELECT * FROM apply_retention();
INSERT INTO channel (code) VALUES ('web');
INSERT INTO channel_location (channel, location) VALUES ('web', 'W1');
SELECT publications > 0 FROM publish();
SELECT append('B', 'W1', 'received', 1) > 0;
SELECT publications FROM publish();
UPDATE publication SET published_at = published_at - interval '40 days';
SELECT count(*), max(seq) FROM publication;
SELECT status FROM ingest('[{"sku": "NOPE", "location": "W1", "event_type": "received", "qty": 1}]');
UPDATE dead_letter SET failed_at = failed_at - interval '100 days';
UPDATE exception SET created_at = created_at - interval '100 days' WHERE kind = 'dead_letter';
INSERT INTO exception (kind, detail, created_at, resolved_at)
VALUES ('pick_short', 'old, resolved', now() - interval '200 days', now() - interval '100 days'),
       ('pick_short', 'old, open', now() - interval '200 days', NULL),
       ('pick_short', 'recent, resolved', now() - interval '2 days', now() - interval '1 day');
INSERT INTO recon_source (code) VALUES ('wms');
-- Three partial runs: the first with a line beyond tolerance left open.
SELECT reconcile('wms', now() - interval '2 minutes', '[{"sku": "A", "location": "W1", "qty": 2}]', "full" => false) > 0;
SELECT reconcile('wms', now() - interval '1 minute', '[{"sku": "B", "location": "W2", "qty": 3}]', "full" => false) > 0;
SELECT reconcile('wms', now(), '[{"sku": "B", "location": "W2", "qty": 3}]', "full" => false) > 0;
SELECT min(id) AS first_run FROM recon_run \gset
SELECT r.id - :first_run AS run, l.sku, l.status, l.exceeds_tolerance, l.resolved_at IS NULL AS open
  FROM recon_run r JOIN recon_line l ON l.run_id = r.id AND l.current ORDER BY r.id;
UPDATE recon_run SET created_at = created_at - interval '500 days';
SET inventory_events.retain_resolved_exceptions = -1;
SELECT * FROM apply_retention();
-- Each sku's newest publication stays (seq goes on from it); open and
-- recent exceptions stay; the source's newest run stays, and the one with
-- an open line beyond tolerance.
SELECT count(*), max(seq) FROM publication;
-- The dead letter stays while its exception is open.
SELECT count(*) FROM dead_letter;
SELECT detail FROM exception WHERE kind = 'pick_short' ORDER BY detail;
SELECT id - :first_run AS run FROM recon_run ORDER BY id;
SELECT resolve_exception(id) FROM exception WHERE kind = 'dead_letter';
SELECT * FROM apply_retention() WHERE kind = 'dead_letters';
RESET inventory_events.retain_resolved_exceptions;
SELECT * FROM apply_retention() WHERE deleted > 0;
SELECT detail FROM exception WHERE kind = 'pick_short' ORDER BY detail;
SELECT append('B', 'W1', 'received', 1) > 0;
SELECT publications FROM publish();
SELECT min(seq), max(seq) FROM publication;
SET inventory_events.retain_publications = -2;
SET inventory_events.retain_publications = '1 year';
SHOW inventory_events.retain_publications;
SELECT * FROM verify();
DROP EXTENSION inventory_events;
