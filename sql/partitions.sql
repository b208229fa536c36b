-- The partitioned log: partitions made ahead of need across a month boundary
-- (on a clock the test sets), routing, idempotency across partitions and its
-- retention window, the default partition, and archiving: the refusal of an
-- uncovered partition, the archive boundary, and attaching again.
CREATE EXTENSION inventory_events;
SET search_path = inventory_events, public;
SET timezone = 'UTC';
SET client_min_messages = warning;

CREATE FUNCTION pg_temp.try(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
CREATE FUNCTION pg_temp.hint(sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    h text;
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS h = PG_EXCEPTION_HINT;
    RETURN SQLSTATE || ': ' || SQLERRM || ' / ' || h;
END $$;

INSERT INTO item (sku) VALUES ('A'), ('B');
INSERT INTO location (code) VALUES ('W1');

-- A fresh install has the default partition only.
SELECT partition, recorded_from, recorded_to, is_default FROM event_partitions();

-- Monthly partitions from the month of the (test) clock, three ahead.
SET inventory_events.clock = '2026-05-31 23:59:59.5+00';
SELECT * FROM create_partitions();
SELECT * FROM create_partitions();  -- idempotent
SELECT partition, recorded_from, recorded_to, is_default FROM event_partitions();

-- Across the month boundary: each event goes to the partition of its
-- transaction's recording time.
SELECT append('A', 'W1', 'received', 10, source => 'erp', idempotency_key => 'k-may') AS may_event;
SET inventory_events.clock = '2026-06-01 00:00:00.25+00';
SELECT append('A', 'W1', 'received', 5, source => 'erp', idempotency_key => 'k-june') AS june_event;
SELECT append('B', 'W1', 'received', 7) AS june_b;
SELECT tableoid::regclass AS partition, id, sku, version, recorded_at, occurred_at FROM event ORDER BY id;

-- Idempotency stays global: a retry in a later month finds the May event, a
-- different event under its key is refused.
SET inventory_events.clock = '2026-07-10 08:00+00';
SELECT append('A', 'W1', 'received', 10, source => 'erp', idempotency_key => 'k-may') AS retried;
SELECT pg_temp.try($$SELECT append('A', 'W1', 'received', 11, source => 'erp', idempotency_key => 'k-may')$$);
SELECT source, idempotency_key, event_id, version FROM event_key ORDER BY event_id;

-- Past the last partition (the worker away longer than its premade
-- partitions): the event lands in the default partition, never lost; the
-- next create_partitions() starts that month's partition after it.
SET inventory_events.clock = '2026-10-03 12:00+00';
SELECT append('B', 'W1', 'received', 1) AS october_event;
SELECT tableoid::regclass AS partition, id FROM event WHERE recorded_at >= '2026-10-01' ORDER BY id;
SELECT * FROM create_partitions(ahead => 0);
SELECT partition, recorded_from, recorded_to FROM event_partitions() WHERE recorded_from >= '2026-09-01';
SET inventory_events.clock = '2026-10-03 12:00:01+00';
SELECT append('B', 'W1', 'received', 1) > 0 AS appended;
SELECT tableoid::regclass AS partition, id FROM event WHERE recorded_at >= '2026-10-01' ORDER BY id;

-- A second event of a stream version, loaded past append(), is refused
-- (no unique index can span the partitions: the stock trigger checks).
SET inventory_events.allow_history_rewrite = on;
SELECT pg_temp.try($$INSERT INTO event (sku, location, version, event_type, qty, uom, uom_qty, effect, occurred_at,
                                        correlation_id, causation_id)
                     VALUES ('A', 'W1', 1, 'received', 1, 'EA', 1, stock_position(available => 1), now(),
                             gen_random_uuid(), gen_random_uuid())$$);
-- A partition's own TRUNCATE trigger guards it too.
RESET inventory_events.allow_history_rewrite;
SELECT pg_temp.try($$TRUNCATE inventory_events.event_p20260601$$);

-- Versions are ordered by the stream's lock, not by recording time: a
-- transaction that started before a boundary may take the next version after
-- one that started after it. Readers merge the partitions in version order:
-- the safety stock is the later version's, 9, not the later partition's.
INSERT INTO item (sku) VALUES ('C');
SET inventory_events.clock = '2026-07-01 00:00:01+00';
SELECT append('C', 'W1', 'safety_stock_set', 5, occurred_at => '2026-06-30 23:00+00') > 0 AS v1_in_july;
SET inventory_events.clock = '2026-06-30 23:59:59+00';
SELECT append('C', 'W1', 'safety_stock_set', 9) > 0 AS v2_in_june;
SELECT tableoid::regclass AS partition, version, qty FROM event WHERE sku = 'C' ORDER BY version;
SELECT safety_stock, version FROM stock WHERE sku = 'C';
SELECT version, safety_stock FROM stream_fold('C', 'W1');

-- Positions and verify() read every partition.
SELECT sku, available, version FROM stock ORDER BY sku;
SELECT count(*) AS problems FROM verify();

-- Archiving. Refused while a stream of the partition has no snapshot at or
-- after its last version there; a time in the future is refused too.
SET inventory_events.clock = '2026-10-20 00:00+00';
SELECT pg_temp.hint($$SELECT * FROM archive_before('2026-07-01')$$);
SELECT pg_temp.try($$SELECT * FROM archive_before('2027-01-01')$$);
SELECT take_snapshots(min_events => 1);
SELECT partition, recorded_from, recorded_to, events, streams, dropped FROM archive_before('2026-07-01');
SELECT partition, events, streams, dropped FROM event_archive ORDER BY recorded_to;
SELECT partition, recorded_from FROM event_partitions() ORDER BY recorded_from NULLS LAST LIMIT 2;
SELECT sku, version, sealed FROM stream_snapshot ORDER BY sku, version;

-- After it: positions, verify() and as-of answers from the boundary on are
-- intact; a question before it is refused with the boundary in its hint.
SELECT sku, available, version FROM stock ORDER BY sku;
SELECT count(*) AS problems FROM verify();
SELECT count(*) AS unproven FROM verify_snapshots();
SELECT available(position_as_of('A', 'W1', '2026-07-01')) AS a_july, available(position_as_of('B', 'W1', '2026-12-01')) AS b_now;
SELECT pg_temp.hint($$SELECT position_as_of('A', 'W1', '2026-06-15')$$);
-- A retry of an archived event's key, within the retention window, is still
-- a retry (its content can no longer be compared).
SELECT append('A', 'W1', 'received', 5, source => 'erp', idempotency_key => 'k-june') AS retried_archived;
SELECT count(*) AS events FROM event WHERE idempotency_key = 'k-june';
-- New events after the archive: the sealed snapshot is their base.
SELECT append('A', 'W1', 'received', 2) > 0 AS appended;
SELECT base_version, events_read, available("position") FROM stream_fold('A', 'W1');
SELECT count(*) AS problems FROM verify();

-- Attached again: the partitions come back at their ranges, and the history
-- before the boundary answers again.
SELECT pg_temp.try($$SELECT attach_archived('inventory_events.stock')$$);
SELECT attach_archived('inventory_events.event_p20260501');
SELECT pg_temp.hint($$SELECT position_as_of('A', 'W1', '2026-06-15')$$);
SELECT attach_archived('inventory_events.event_p20260601');
SELECT available(position_as_of('A', 'W1', '2026-06-15')) AS a_june, available(position_as_of('A', 'W1', '2026-05-31 23:59:59.5+00')) AS a_may;
SELECT count(*) AS archived FROM event_archive;
SELECT count(*) AS problems FROM verify();

-- The key retention window: once the key is past it, apply_retention()
-- deletes it and the key may name a new event.
SET inventory_events.retain_keys = '30d';
SELECT kind, deleted FROM apply_retention() WHERE kind = 'keys';
SELECT idempotency_key FROM event_key ORDER BY 1;
RESET inventory_events.clock;
SELECT append('A', 'W1', 'received', 3, source => 'erp', idempotency_key => 'k-may') > 1 AS new_event_under_old_key;
SELECT count(*) AS events_under_k_may FROM event WHERE idempotency_key = 'k-may';

-- Archiving refused: an open transfer (a receipt sums its ref's events),
-- then an event dated after the boundary; nothing is archived.
INSERT INTO location (code) VALUES ('W2');
SET inventory_events.clock = '2026-10-10 00:00+00';
SELECT count(*) FROM transfer('B', 'W1', 'W2', 1, 'T-1');
SELECT take_snapshots(min_events => 1) > 0 AS taken;
SET inventory_events.clock = '2026-12-01 00:00+00';
SELECT pg_temp.hint($$SELECT * FROM archive_before('2026-11-01')$$);
SELECT count(*) FROM receive_transfer('B', 'W2', 1, 'T-1');
SET inventory_events.clock = '2026-10-11 00:00+00';
SELECT append('B', 'W1', 'received', 1, occurred_at => '2027-01-01 00:00+00') > 0 AS future_dated;
SELECT take_snapshots(min_events => 1) > 0 AS taken;
SET inventory_events.clock = '2026-12-01 00:00+00';
SELECT pg_temp.hint($$SELECT * FROM archive_before('2026-11-01')$$);
SELECT count(*) AS archived FROM event_archive;

-- A transfer sent in one month and received in the next: archiving the
-- first month keeps what its events put in transit (event_archive_ref), so
-- that the receipt's month can be archived in its turn.
SELECT count(*) FROM create_partitions('2027-01-01', 1);
SET inventory_events.clock = '2027-01-10 00:00+00';
SELECT count(*) FROM transfer('A', 'W1', 'W2', 2, 'T-2');
SET inventory_events.clock = '2027-02-10 00:00+00';
SELECT count(*) FROM receive_transfer('A', 'W2', 2, 'T-2');
SELECT take_snapshots(min_events => 1) > 0 AS taken;
SET inventory_events.clock = '2027-03-15 00:00+00';
SELECT partition, events, dropped FROM archive_before('2027-02-01', drop_partitions => true) ORDER BY recorded_to;
SELECT sku, location, ref, in_transit, inbound FROM event_archive_ref;
SELECT partition, events, dropped FROM archive_before('2027-03-01', drop_partitions => true);
SELECT count(*) AS refs_kept FROM event_archive_ref;
SELECT pg_temp.try($$SELECT receive_transfer('A', 'W2', 1, 'T-2')$$);
SELECT count(*) AS problems FROM verify();

-- Bad settings.
SELECT pg_temp.try($$SET inventory_events.partition_interval = '1 month 2 days'$$);
SELECT pg_temp.try($$SET inventory_events.partition_interval = '10 minutes'$$);
SELECT pg_temp.try($$SELECT create_partitions(ahead => -1)$$);
-- Daily partitions: aligned to days, named with the date.
SET inventory_events.partition_interval = '1 day';
SELECT * FROM create_partitions('2027-03-30 15:00+00', 1);

DROP EXTENSION inventory_events;
