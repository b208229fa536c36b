-- Channel publication: publish() reads the event log from its checkpoint,
-- keeps a gap-free sequence per channel, sends only what changed, coalesces,
-- honours publish_interval, marks kits, isolates a failing channel; and
-- publications_since() for a listener that missed some. (The background
-- worker that calls publish() is tested by TAP.)
CREATE EXTENSION inventory_events;
SET search_path = inventory_events, public;
CREATE FUNCTION pg_temp.try(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

INSERT INTO item (sku) VALUES ('A'), ('B'), ('C'), ('KIT');
INSERT INTO kit_component (kit, component, qty) VALUES ('KIT', 'A', 1), ('KIT', 'B', 1);
INSERT INTO location (code) VALUES ('W1'), ('W2');
INSERT INTO channel (code) VALUES ('web');
INSERT INTO channel (code, allocation_pct) VALUES ('half', 50);
INSERT INTO channel (code, publish_interval) VALUES ('slow', '1 hour');
INSERT INTO channel_location (channel, location) VALUES ('web', 'W1'), ('half', 'W1'), ('slow', 'W1');
SELECT notify_channel('web');

-- Nothing yet.
SELECT * FROM publish();
SELECT append('A', 'W1', 'received', 10) > 0, append('B', 'W1', 'received', 4) > 0, append('C', 'W2', 'received', 7) > 0;
-- Each channel is sent every sku it has not been sent yet (C, stocked only
-- at W2, which no channel sources, as 0); the kit is marked when a
-- component moves.
SELECT events, publications FROM publish();
SELECT channel, seq, sku, available FROM publication ORDER BY channel, seq;
SELECT channel, last_seq FROM channel_publisher ORDER BY channel;

-- Changes coalesce: three events on A, one publication per channel, the latest value.
SELECT count(*) FROM reserve('web', 'A', 2, 'o-1');
SELECT count(*) FROM reserve('web', 'A', 1, 'o-2');
SELECT append('A', 'W1', 'received', 1) > 0;
SELECT events, publications FROM publish();
SELECT channel, seq, sku, available FROM publication WHERE channel <> 'slow' AND seq > 3 ORDER BY channel, seq;
-- A change that does not change what a channel shows is not sent to it:
-- half shows floor(8 x 50%) = 4, and floor(9 x 50%) = 4 after one more unit.
SELECT append('A', 'W1', 'received', 1) > 0;
SELECT events, publications FROM publish();
SELECT channel, sku, available FROM channel_shown WHERE sku = 'A' ORDER BY channel;

-- The throttled channel collected A and is due in about an hour; none is lost.
SELECT channel, sku FROM publication_pending ORDER BY channel, sku;
SELECT next_due_ms BETWEEN 3500000 AND 3600000 AS due_in_an_hour FROM publish();
UPDATE channel_publisher SET last_published_at = now() - interval '2 hours' WHERE channel = 'slow';
SELECT events, publications FROM publish();
SELECT seq, sku, available FROM publications_since('slow', 0);
SELECT count(*) AS pending FROM publication_pending;

-- A listener that missed something reads it by sequence number; gap-free per channel.
SELECT seq, sku, available FROM publications_since('web', 3);
SELECT channel, count(*) = max(seq) AS gap_free FROM publication GROUP BY channel ORDER BY channel;
SELECT count(*) FROM publications_since('web', 1000);

-- A rule change moves no event: the change itself marks the channel's skus
-- pending (republish() finds nothing left to mark), and the next step
-- publishes what differs. A new description marks nothing.
SELECT count(*) AS pending_before FROM publication_pending;
UPDATE channel SET description = 'the web shop' WHERE code = 'web';
SELECT count(*) AS pending_after_description FROM publication_pending;
UPDATE channel SET buffer_fixed = 3 WHERE code = 'web';
SELECT count(*) > 0 AS web_marked, bool_and(channel = 'web') AS only_web FROM publication_pending;
SELECT republish('web') AS left_to_mark;
SELECT events, publications FROM publish();
SELECT sku, available FROM channel_shown WHERE channel = 'web' ORDER BY sku;
-- So do a change of sourcing and of a kit's bill of materials.
BEGIN;
DELETE FROM channel_location WHERE channel = 'web';
SELECT count(*) > 0 AS web_marked, bool_and(channel = 'web') AS only_web FROM publication_pending;
ROLLBACK;
BEGIN;
INSERT INTO item (sku) VALUES ('PAIR');
DELETE FROM publication_pending;
INSERT INTO kit_component (kit, component, qty) SELECT 'PAIR', min(sku), 2 FROM item WHERE sku <> 'PAIR';
SELECT DISTINCT sku FROM publication_pending;
SELECT count(*) = (SELECT count(*) FROM channel) AS every_channel FROM publication_pending;
ROLLBACK;

-- Many skus in one step: all logged, one wake-up per channel whatever their
-- number (the NOTIFY carries only the latest sequence number).
INSERT INTO item (sku) SELECT 'SKU-WITH-A-LONG-NAME-' || lpad(g::text, 40, '0') FROM generate_series(1, 300) g;
SELECT count(append('SKU-WITH-A-LONG-NAME-' || lpad(g::text, 40, '0'), 'W1', 'received', g)) FROM generate_series(1, 300) g;
SELECT last_seq AS before FROM channel_publisher WHERE channel = 'web' \gset
SELECT events, publications FROM publish();
SELECT count(*) AS read_since FROM publications_since('web', :before);

-- Events committed out of order are not skipped: publish() reads below the
-- snapshot's xmin (events_after), so the checkpoint never passes a running
-- transaction's events (see the catch_up isolation spec).
SELECT checkpoint <> '0:0' AS advanced FROM publisher_checkpoint;

-- A failing channel is isolated: its publication runs in a subtransaction,
-- the failure is recorded in worker_error and retried after a backoff, its
-- pending skus stay pending, and every other channel goes on.
-- (The publisher writes publications without SQL: a DBA's CHECK is enforced,
-- triggers on the table do not fire.)
ALTER TABLE publication ADD CONSTRAINT connector_table_broken CHECK (channel <> 'web') NOT VALID;
SELECT append('A', 'W1', 'received', 1) > 0;
UPDATE channel_publisher SET last_published_at = now() - interval '2 hours' WHERE channel = 'slow';
SELECT events, publications FROM publish();
SELECT channel, sku FROM publication_pending ORDER BY channel, sku;
SELECT task, channel, sqlstate, message, failures, retry_at > last_seen AS backing_off FROM worker_error;
SELECT channel, pending_skus, lag_seconds >= 0 AS lagging, last_error_sqlstate, failures
  FROM channel_health ORDER BY channel;
-- Tried again before its retry time: skipped, and the step says when it is due.
SELECT events, publications, next_due_ms BETWEEN 0 AND 1000 AS due_within_a_second FROM publish();
-- The second failure doubles the backoff; a success clears the streak.
UPDATE worker_error SET retry_at = now() - interval '1 second';
SELECT events, publications FROM publish();
SELECT failures, retry_at - last_seen AS backoff FROM worker_error;
ALTER TABLE publication DROP CONSTRAINT connector_table_broken;
UPDATE worker_error SET retry_at = now() - interval '1 second';
SELECT events, publications FROM publish();
SELECT channel, pending_skus, failures, last_error_sqlstate, last_error IS NOT NULL AS error_kept
  FROM channel_health ORDER BY channel;
SELECT channel, count(*) = max(seq) AS gap_free FROM publication GROUP BY channel ORDER BY channel;
-- A channel code must fit a NOTIFY channel name.
SELECT pg_temp.try($$INSERT INTO channel (code) VALUES (repeat('x', 47))$$);

-- The publisher worker of this server serves the database(s) of inventory_events.database.
SELECT database, enabled FROM publisher_status();

DROP EXTENSION inventory_events;
