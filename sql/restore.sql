-- What a restore does to the log, simulated in one database: a bulk load out
-- of version order derives the same stock; a restore (as pg_restore's COPY
-- loads it, or one INSERT per row as pg_dump --inserts writes it) derives
-- nothing, and loads the stock rows; the log's home, its adoption after a move (also after a
-- failed first write), and catch-up checkpoints across it; functions that
-- change stock in a read-only transaction. (pg_dump, pg_restore, other
-- clusters, subscribers and standbys: TAP tests 007 to 010.)
CREATE EXTENSION inventory_events;
SET search_path = inventory_events, public;

CREATE FUNCTION pg_temp.try(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

INSERT INTO item (sku) VALUES ('A'), ('B');
INSERT INTO location (code) VALUES ('W1'), ('W2');
SELECT count(*) FROM (
    SELECT append('A', 'W1', 'received', 10), append('A', 'W1', 'damaged', 2),
           append('A', 'W1', 'safety_stock_set', 3), append('A', 'W1', 'received', 5),
           append('A', 'W1', 'safety_stock_set', 1), append('A', 'W1', 'adjusted', -4),
           append('B', 'W1', 'received', 7), append('A', 'W2', 'inbound_expected', 9),
           append('B', 'W1', 'damaged', 1), append('B', 'W2', 'received', 1)) x;
CREATE TEMP TABLE saved_event AS SELECT * FROM event;
CREATE TEMP TABLE saved_stock AS SELECT * FROM stock;

-- A bulk load into a database that has written to the log (a superuser's
-- INSERT; a replication subscriber's apply likewise): the log loaded again in
-- reverse version order, then shuffled (after-row triggers fire after the
-- whole statement, as after a COPY): a stream's first version takes every
-- later one present, the others were counted by that.
SET inventory_events.allow_history_rewrite = on;
TRUNCATE event, stock;
INSERT INTO event SELECT * FROM saved_event ORDER BY version DESC;
SELECT s.sku, s.location, s.version, s.on_hand, s.safety_stock, s.last_event_id,
       (s.available, s.reserved, s.picked, s.damaged, s.quarantine, s.in_transit, s.inbound, s.on_hand,
        s.safety_stock, s.version, s.last_event_id)
       = (o.available, o.reserved, o.picked, o.damaged, o.quarantine, o.in_transit, o.inbound, o.on_hand,
          o.safety_stock, o.version, o.last_event_id) AS same_row
  FROM stock s JOIN saved_stock o USING (sku, location, lot) ORDER BY 1, 2;
SELECT count(*) AS streams_wrong FROM verify();
TRUNCATE event, stock;
SELECT setseed(0.42);
INSERT INTO event SELECT * FROM saved_event ORDER BY random();
SELECT count(*) AS rows_differing FROM (
    SELECT sku, location, lot, available, reserved, picked, damaged, quarantine, in_transit, inbound,
           on_hand, safety_stock, version, last_event_id FROM stock
    EXCEPT SELECT sku, location, lot, available, reserved, picked, damaged, quarantine, in_transit, inbound,
           on_hand, safety_stock, version, last_event_id FROM saved_stock) d;
SELECT count(*) AS streams_wrong FROM verify();

-- A restore: a load into a database that has not written to the log since
-- (log_home_written is not dumped) derives nothing. pg_dump wrote the stock
-- rows and the idempotency keys with the log, from the same snapshot, and
-- the restore loads them (the log's partitions it creates get their indexes
-- only after their rows). Here one INSERT per row, newest version first, as
-- pg_dump --inserts writes a log whose rows lie out of version order.
DELETE FROM log_home_written;
TRUNCATE event, stock;
INSERT INTO stock SELECT * FROM saved_stock;
DO $$
DECLARE
    e inventory_events.event;
BEGIN
    FOR e IN SELECT * FROM saved_event ORDER BY version DESC, id LOOP
        INSERT INTO inventory_events.event SELECT e.*;
    END LOOP;
END;
$$;
SELECT count(*) AS rows_differing FROM (
    SELECT sku, location, lot, available, reserved, picked, damaged, quarantine, in_transit, inbound,
           on_hand, safety_stock, version, last_event_id FROM stock
    EXCEPT SELECT sku, location, lot, available, reserved, picked, damaged, quarantine, in_transit, inbound,
           on_hand, safety_stock, version, last_event_id FROM saved_stock) d;
SELECT count(*) AS streams_wrong FROM verify();

-- A stream with a missing version: verify() shows it until the missing
-- event comes.
TRUNCATE event;
INSERT INTO event SELECT * FROM saved_event WHERE NOT (sku = 'A' AND location = 'W1' AND version = 3) ORDER BY version;
SELECT sku, location, stored_version, derived_version, problem FROM verify();
INSERT INTO event SELECT * FROM saved_event WHERE sku = 'A' AND location = 'W1' AND version = 3;
SELECT count(*) AS streams_wrong FROM verify();
-- A log restored without its stock rows (a dump of 0.2.0, which derived
-- them while restoring; or events loaded before the first write): the first
-- write is refused until rebuild() has derived them.
TRUNCATE stock;
SELECT pg_temp.try($$SELECT append('A', 'W2', 'received', 1)$$);
SELECT rebuild() AS repaired;
SELECT count(*) AS streams_wrong FROM verify();
-- Once the database has written to the log (its first write since the
-- restore adds a row to log_home_written), a gap is refused and nothing of
-- the statement is applied.
INSERT INTO log_home_written VALUES (now(), pg_backend_pid());
SELECT pg_temp.try($$INSERT INTO event (id, sku, location, lot, version, event_type, qty, uom, uom_qty, effect,
                                        occurred_at, correlation_id, causation_id)
                     VALUES (nextval('event_id_seq'), 'B', 'W2', '', 9, 'received', 1, 'EA', 1,
                             stock_position(available => 1), now(), gen_random_uuid(), gen_random_uuid())$$);
SELECT count(*) AS streams_wrong FROM verify();
RESET inventory_events.allow_history_rewrite;

-- The log's home: CREATE EXTENSION recorded this database as home 0, with no
-- offset. At home, a log transaction id is the transaction id itself.
SELECT home, system_identifier = (SELECT system_identifier FROM pg_control_system()) AS this_cluster,
       database_oid = (SELECT oid FROM pg_database WHERE datname = current_database()) AS this_database,
       xid_offset FROM log_home;
SELECT log_adopted();
BEGIN;
SELECT log_xid() = pg_current_xact_id() AS no_offset;
ROLLBACK;
SELECT log_xmin() = pg_snapshot_xmin(pg_current_snapshot()) AS horizon_is_xmin;

-- A restore from another cluster, simulated: the source's home 0 arrives, and
-- events written there with transaction ids far above this cluster's.
SELECT next_checkpoint AS before_move FROM events_after('0:0') ORDER BY id DESC LIMIT 1 \gset
SET inventory_events.allow_history_rewrite = on;
INSERT INTO log_home VALUES (0, 1234, 99999, 0, '1000000000000', now());
INSERT INTO event (id, sku, location, lot, version, event_type, qty, uom, uom_qty, effect, occurred_at,
                   correlation_id, causation_id, xid)
SELECT nextval('event_id_seq'), 'B', 'W2', '', 2, 'received', 4, 'EA', 4, stock_position(available => 4), now(),
       gen_random_uuid(), gen_random_uuid(), '1000000000005';
RESET inventory_events.allow_history_rewrite;
SELECT next_checkpoint AS restored FROM events_after('0:0') ORDER BY id DESC LIMIT 1 \gset
-- Not at home: nothing is written by the publisher, every stored event is read.
SELECT log_adopted();
-- A first write that fails (here a DBA's check constraint on the log) adopts
-- nothing: the next one adopts the log again.
ALTER TABLE event ADD CONSTRAINT no_97 CHECK (qty <> 97);
SELECT pg_temp.try($$SELECT append('A', 'W2', 'received', 97)$$);
ALTER TABLE event DROP CONSTRAINT no_97;
SELECT count(*) AS homes, log_adopted() FROM log_home;
SELECT * FROM publish();
SELECT count(*) AS after_old_checkpoint FROM events_after(:'before_move');
SELECT log_xmin() > '1000000000005'::xid8 AS horizon_above_every_event;
-- The first write adopts the log as home 1: an offset puts it above every
-- stored log transaction id, so checkpoints taken before the move still work.
SELECT append('A', 'W2', 'received', 1) > 0 AS appended;
SELECT home, xid_offset > 1000000000000 - 1000000 AS big_offset, first_xid > '1000000000005'::xid8 AS above
  FROM log_home WHERE home = 1;
SELECT (SELECT xid FROM event ORDER BY id DESC LIMIT 1) >= first_xid AS written_with_the_home_offset
  FROM log_home WHERE home = 1;
SELECT log_adopted();
SELECT sku, location, qty, split_part(next_checkpoint, ':', 1)::xid8 > '1000000000005'::xid8 AS above_restored
  FROM events_after(:'restored');
SELECT count(*) AS after_old_checkpoint FROM events_after(:'before_move');
BEGIN;
SELECT log_xid() > '1000000000005'::xid8 AS above;
ROLLBACK;
-- A direct insert (superuser) takes the offset too, through the column default.
SET inventory_events.allow_history_rewrite = on;
INSERT INTO event (id, sku, location, lot, version, event_type, qty, uom, uom_qty, effect, occurred_at,
                   correlation_id, causation_id)
SELECT nextval('event_id_seq'), 'B', 'W2', '', 3, 'received', 1, 'EA', 1, stock_position(available => 1), now(),
       gen_random_uuid(), gen_random_uuid();
RESET inventory_events.allow_history_rewrite;
SELECT sku, version, xid > '1000000000005'::xid8 AS above FROM event WHERE sku = 'B' AND location = 'W2' ORDER BY version;
SELECT count(*) AS streams_wrong FROM verify();
-- The publisher writes again.
SELECT events > 0 AS read_events FROM publish();

-- Functions that change stock refuse in a read-only transaction (SQLSTATE
-- 25006), before they lock or read anything; readers work.
BEGIN READ ONLY;
SELECT pg_temp.try($$SELECT append('A', 'W1', 'received', 1)$$);
ROLLBACK;
BEGIN READ ONLY;
SELECT pg_temp.try($$SELECT * FROM reserve('web', 'A', 1, 'o-1')$$);
ROLLBACK;
BEGIN READ ONLY;
SELECT pg_temp.try($$SELECT * FROM pick('web', 'o-1')$$);
ROLLBACK;
BEGIN READ ONLY;
SELECT pg_temp.try($$SELECT * FROM publish()$$);
ROLLBACK;
BEGIN READ ONLY;
SELECT pg_temp.try($$SELECT receive_return('A', 'W1', 1, 'rma-1')$$);
ROLLBACK;
BEGIN READ ONLY;
SELECT pg_temp.try($$SELECT * FROM ingest_staged()$$);
ROLLBACK;
BEGIN READ ONLY;
SELECT on_hand FROM stock_by_sku WHERE sku = 'A';
SELECT count(*) > 0 AS read FROM events_after('0:0');
ROLLBACK;

-- verify() sums each bucket exactly, so the order in which it meets a
-- stream's events does not matter: a stream that went to -9.2e18 and back
-- (every prefix in range, as append() checked), loaded in reverse order, so
-- that a running sum in that order leaves bigint, verifies clean.
RESET inventory_events.allow_history_rewrite;
INSERT INTO item (sku) VALUES ('HUGE');
SELECT count(*) FROM (VALUES (append('HUGE', 'W1', 'adjusted', -9223372036854775807)),
                             (append('HUGE', 'W1', 'received', 9223372036854775807)),
                             (append('HUGE', 'W1', 'adjusted', 9223372036854775806))) x;
SELECT count(*) AS streams_wrong FROM verify();
CREATE TEMP TABLE saved_huge AS SELECT * FROM event WHERE sku = 'HUGE';
SET inventory_events.allow_history_rewrite = on;
DELETE FROM event WHERE sku = 'HUGE';
DELETE FROM stock WHERE sku = 'HUGE';
INSERT INTO event SELECT * FROM saved_huge ORDER BY version DESC;
RESET inventory_events.allow_history_rewrite;
SELECT available, version FROM stock WHERE sku = 'HUGE';
SELECT count(*) AS streams_wrong FROM verify();

DROP TABLE saved_event, saved_stock, saved_huge;
DROP EXTENSION inventory_events;
