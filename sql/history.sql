-- Temporal queries, verify/rebuild, and the catch-up read.
CREATE EXTENSION inventory_events;
SET search_path = inventory_events, public;

INSERT INTO item (sku) VALUES ('A');
INSERT INTO item (sku, lot_controlled) VALUES ('L', true);
INSERT INTO lot (sku, lot) VALUES ('L', 'L1'), ('L', 'L2');
INSERT INTO location (code) VALUES ('W1'), ('W2');

SELECT append('A', 'W1', 'received', 10, occurred_at => '2026-03-01 08:00Z');
SELECT append_lifecycle('A', 'W1', 'reserved', 4, occurred_at => '2026-03-01 12:00Z');
SELECT append('A', 'W2', 'received', 7, occurred_at => '2026-03-02 08:00Z');
SELECT append_lifecycle('A', 'W1', 'shipped', 1, occurred_at => '2026-03-03 08:00Z') IS NULL;
SELECT append_lifecycle('A', 'W1', 'picked', 4, occurred_at => '2026-03-03 08:00Z');
SELECT append('L', 'W1', 'received', 5, lot => 'L1', occurred_at => '2026-03-01 09:00Z');
SELECT append('L', 'W1', 'received', 6, lot => 'L2', occurred_at => '2026-03-04 09:00Z');

-- Position of a stream as of any time.
SELECT t, position_as_of('A', 'W1', t)
  FROM unnest('{2026-02-28 00:00Z, 2026-03-01 08:00Z, 2026-03-01 13:00Z, 2026-03-10 00:00Z}'::timestamptz[]) t;
SELECT position_as_of('L', 'W1', '2026-03-05', 'L2');
-- All streams of a sku as of a time.
SELECT * FROM sku_position_as_of('A', '2026-03-01 23:59Z');
SELECT * FROM sku_position_as_of('L', '2026-03-05');
SELECT * FROM sku_position_as_of('A', '2000-01-01');

-- verify() finds nothing; damage the derived state and it finds every kind.
SELECT * FROM verify();
UPDATE stock SET available = available + 1 WHERE sku = 'A' AND location = 'W1';
UPDATE stock SET version = 9 WHERE sku = 'A' AND location = 'W2';
UPDATE stock SET safety_stock = 3 WHERE sku = 'L' AND lot = 'L1';
DELETE FROM stock WHERE lot = 'L2';
INSERT INTO stock (sku, location, lot, available, on_hand, version) VALUES ('A', 'W2', 'X', 1, 1, 1);
SELECT sku, location, lot, stored, derived, stored_version, derived_version, problem FROM verify();
-- rebuild() repairs them all and reports progress.
SELECT rebuild(progress_every => 2);
SELECT * FROM verify();
SELECT rebuild();
-- The progress shows as the session's query in pg_stat_activity.
DO $$
DECLARE q text;
BEGIN
    PERFORM report_progress('inventory_events.rebuild(): 2 of 4 streams checked, 1 repaired');
    SELECT query INTO q FROM pg_stat_activity WHERE pid = pg_backend_pid();
    RAISE NOTICE 'pg_stat_activity.query: %', q;
END $$;

-- Catch-up: events after a checkpoint, with the next checkpoint.
SELECT id, sku, event_type, qty FROM events_after() ORDER BY id;
SELECT next_checkpoint AS cp FROM events_after(max_events => 2) ORDER BY id DESC LIMIT 1 \gset
SELECT id FROM events_after(:'cp') ORDER BY id;
SELECT count(*) FROM events_after(:'cp', 1);
SELECT next_checkpoint AS last FROM events_after() ORDER BY id DESC LIMIT 1 \gset
SELECT count(*) AS nothing_new FROM events_after(:'last');
SELECT * FROM events_after('garbage');
SELECT * FROM events_after(NULL);
-- Events of the reader's own open transaction are not below the horizon yet.
BEGIN;
SELECT append('A', 'W2', 'received', 1) > 0;
SELECT count(*) AS own_uncommitted_not_read FROM events_after(:'last');
COMMIT;
SELECT count(*) AS read_after_commit FROM events_after(:'last');

-- A lot's trail for a recall: its receipts (origin, with their documents),
-- where its units are now per location and bucket, returns and shipments.
INSERT INTO channel (code) VALUES ('web');
SELECT append('L', 'W2', 'received', 3, lot => 'L1', source => 'erp', ref => 'PO-9',
              occurred_at => '2026-03-02 10:00Z') > 0 AS received;
SELECT append_lifecycle('L', 'W1', 'reserved', 4, lot => 'L1', occurred_at => '2026-03-05 08:00Z') > 0 AS reserved;
SELECT append_lifecycle('L', 'W1', 'picked', 4, lot => 'L1', occurred_at => '2026-03-05 09:00Z') > 0 AS picked;
SELECT append_lifecycle('L', 'W1', 'shipped', 3, lot => 'L1', ref => 'SO-77', channel => 'web',
                        occurred_at => '2026-03-05 10:00Z') > 0 AS shipped;
SELECT append('L', 'W1', 'returned', 1, lot => 'L1', ref => 'RMA-5', occurred_at => '2026-03-07 10:00Z') > 0 AS returned;
SELECT section, location, bucket, qty, event_type, ref, channel, source, occurred_at
  FROM lot_trace('L', 'L1');
SELECT section, location, bucket, qty FROM lot_trace('L', 'L2');
SELECT * FROM lot_trace('L', 'L9');
SELECT * FROM lot_trace('A', 'L1');
-- The lot's events come from its own index, not a scan of the log.
SET enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT id FROM event e WHERE e.sku = 'L' AND e.lot = 'L1' AND e.lot <> '';
RESET enable_seqscan;

DROP EXTENSION inventory_events;
