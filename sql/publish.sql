-- Channel publication: publish() reads the event log from its checkpoint,
-- keeps a gap-free sequence per channel, sends only what changed, coalesces,
-- honours publish_interval, marks kits, splits NOTIFY payloads; and
-- publications_since() for a listener that missed some. (The background
-- worker that calls publish() is tested by TAP.)
CREATE EXTENSION inventory_events;
SET search_path = inventory_events, public;

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

-- After a rule change (no event moves), republish() marks the channel's skus.
UPDATE channel SET buffer_fixed = 3 WHERE code = 'web';
SELECT republish('web') > 0;
SELECT events, publications FROM publish();
SELECT sku, available FROM channel_shown WHERE channel = 'web' ORDER BY sku;

-- Payloads: JSON arrays of [sku, available, seq], each under 8000 bytes, together all.
INSERT INTO item (sku) SELECT 'SKU-WITH-A-LONG-NAME-' || lpad(g::text, 40, '0') FROM generate_series(1, 300) g;
SELECT count(append('SKU-WITH-A-LONG-NAME-' || lpad(g::text, 40, '0'), 'W1', 'received', g)) FROM generate_series(1, 300) g;
SELECT last_seq AS before FROM channel_publisher WHERE channel = 'web' \gset
SELECT events, publications FROM publish();
SELECT count(*) AS payloads, max(octet_length(p)) < 8000 AS all_under_8000,
       sum(jsonb_array_length(p::jsonb)) AS entries
  FROM publication_payloads('web', :before) p;
SELECT p::jsonb -> 0 AS first_entry FROM publication_payloads('web', :before) p LIMIT 1;
-- Small limits split finely; an entry that fits no payload is left to publications_since().
SELECT count(*) FROM publication_payloads('web', 0, 100);
SELECT count(*) FROM publication_payloads('web', 0, 10);

-- Events committed out of order are not skipped: publish() reads below the
-- snapshot's xmin (events_after), so the checkpoint never passes a running
-- transaction's events (see the catch_up isolation spec).
SELECT checkpoint <> '0:0' AS advanced FROM publisher_checkpoint;

-- The publisher worker of this server serves the database(s) of inventory_events.database.
SELECT database, enabled FROM publisher_status();

DROP EXTENSION inventory_events;
