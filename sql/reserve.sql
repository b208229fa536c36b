-- Reservations: sourcing, splits, idempotency, refusals, backorders, pick,
-- ship, pick short, release, expiry, kits, lots, the velocity buffer,
-- exceptions, and every error with its SQLSTATE.
CREATE EXTENSION inventory_events;
SET search_path = inventory_events, public;

CREATE FUNCTION pg_temp.try(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

-- avail(sku): available / reserved / picked per location, one line.
CREATE FUNCTION pg_temp.avail(s text) RETURNS text LANGUAGE sql AS $$
    SELECT string_agg(format('%s:%s/%s/%s', location, available, reserved, picked), ' ' ORDER BY location)
      FROM (SELECT location, sum(available) available, sum(reserved) reserved, sum(picked) picked
              FROM inventory_events.stock WHERE sku = s GROUP BY location) x $$;

INSERT INTO item (sku) VALUES ('TEE'), ('MUG'), ('CAP'), ('HAT'), ('GIFT'), ('DUO');
INSERT INTO item (sku, lot_controlled) VALUES ('VIT', true);
INSERT INTO lot (sku, lot, expires_on) VALUES
    ('VIT', 'OLD', '2000-01-01'), ('VIT', 'SOON', '2098-01-01'), ('VIT', 'LATE', '2099-01-01'), ('VIT', 'NOEXP', NULL);
INSERT INTO kit_component (kit, component, qty) VALUES ('GIFT', 'TEE', 1), ('GIFT', 'MUG', 2),
                                                      ('DUO', 'MUG', 1), ('DUO', 'CAP', 1);
INSERT INTO location (code) VALUES ('DAL'), ('RNO'), ('ATL');
-- web: splits allowed (the default), DAL first then RNO and ATL (same priority).
INSERT INTO channel (code, kind) VALUES ('web', 'storefront');
-- edi: no splits, backorders.
INSERT INTO channel (code, kind, allow_split, allow_backorders) VALUES ('edi', 'edi_partner', false, true);
-- amz: half of the pool.
INSERT INTO channel (code, kind, allocation_pct) VALUES ('amz', 'marketplace', 50);
INSERT INTO channel_location (channel, location, priority) VALUES
    ('web', 'DAL', 1), ('web', 'RNO', 2), ('web', 'ATL', 2),
    ('edi', 'DAL', 1), ('edi', 'RNO', 1),
    ('amz', 'DAL', 1), ('amz', 'RNO', 1);
SELECT append('TEE', 'DAL', 'received', 5), append('TEE', 'RNO', 'received', 10), append('TEE', 'ATL', 'received', 20);
SELECT append('MUG', 'DAL', 'received', 9), append('CAP', 'RNO', 'received', 3);

-- Priority first: DAL (5), then the rest by most available: ATL (20) before RNO (10).
SELECT reservation_id, status, sku, location, qty, replayed FROM reserve('web', 'TEE', 12, 'A-1');
SELECT pg_temp.avail('TEE');
-- A retry (same ref, so the same default idempotency key) returns what was reserved and applies nothing.
SELECT reservation_id, status, location, qty, replayed FROM reserve('web', 'TEE', 12, 'A-1');
SELECT pg_temp.avail('TEE');
-- The same key with a different line; the same line under another key.
SELECT pg_temp.try($$SELECT * FROM reserve('web', 'TEE', 13, 'A-1')$$);
SELECT pg_temp.try($$SELECT * FROM reserve('web', 'TEE', 1, 'A-1', idempotency_key => 'other')$$);
-- Explicit source and key.
SELECT status, location, qty FROM reserve('web', 'TEE', 1, 'A-2', source => 'oms', idempotency_key => 'k-2');
SELECT status, location, qty, replayed FROM reserve('web', 'TEE', 1, 'A-2', source => 'oms', idempotency_key => 'k-2');

-- A named location, which must source the channel.
SELECT status, location, qty FROM reserve('web', 'TEE', 2, 'A-3', location => 'RNO');
SELECT pg_temp.try($$SELECT * FROM reserve('amz', 'TEE', 1, 'A-4', location => 'ATL')$$);
SELECT pg_temp.try($$SELECT * FROM reserve('web', 'TEE', 9, 'A-5', location => 'RNO')$$);

-- Never beyond what the channel shows: amz shows half of DAL+RNO.
SELECT channel_availability('amz', 'TEE') AS amz_shows, pg_temp.avail('TEE');
SELECT pg_temp.try($$SELECT * FROM reserve('amz', 'TEE', 5, 'B-1')$$);
SELECT status, location, qty FROM reserve('amz', 'TEE', 4, 'B-1');
SELECT channel_availability('amz', 'TEE') AS amz_shows;
-- Nothing of a refused line was applied.
SELECT count(*) AS refused_lines_recorded FROM reservation WHERE ref = 'A-5';

-- No splits: one location must hold the whole line; otherwise backordered (edi allows it).
SELECT pg_temp.avail('TEE');
SELECT reservation_id, status, location, qty FROM reserve('edi', 'TEE', 6, 'E-1');
SELECT reservation_id, status, location, qty FROM reserve('edi', 'TEE', 4, 'E-2');
SELECT id, ref, qty, backordered FROM reservation WHERE channel = 'edi' ORDER BY id;
-- Stock arrives: backorders fill first come first served, in the receipt's
-- transaction. Without splits a line is served from one location: E-1 got
-- its first units at RNO and waits for RNO; E-2 has none yet and takes
-- what arrives at DAL, then waits for DAL.
SELECT append('TEE', 'DAL', 'received', 3) > 0 AS received;
SELECT id, ref, backordered FROM reservation WHERE channel = 'edi' ORDER BY id;
SELECT append('TEE', 'DAL', 'received', 4) > 0 AS received;
SELECT id, ref, backordered FROM reservation WHERE channel = 'edi' ORDER BY id;
SELECT append('TEE', 'RNO', 'received', 2) > 0 AS received;
SELECT id, ref, backordered FROM reservation WHERE channel = 'edi' ORDER BY id;
SELECT r.ref, a.location, a.qty, a.reserved FROM allocation a JOIN reservation r ON r.id = a.reservation_id
 WHERE r.channel = 'edi' ORDER BY a.id;
SELECT pg_temp.avail('TEE');

-- Pick, ship, pick short, release.
SELECT event_type, location, qty FROM pick('web', 'A-1', 6);
SELECT event_type, location, qty FROM ship('web', 'A-1', 4);
SELECT status, reserved, picked, shipped FROM reservation_status WHERE ref = 'A-1';
SELECT pg_temp.try($$SELECT * FROM ship('web', 'A-1', 5)$$);
SELECT pg_temp.try($$SELECT * FROM pick('web', 'A-1', 7)$$);
SELECT pg_temp.try($$SELECT * FROM pick('web', 'A-1', 1, location => 'DAL')$$);
SELECT event_type, location, qty FROM pick_short('web', 'A-1', 2, reason => 'bin empty');
SELECT kind, sku, location, channel, ref, detail FROM exception WHERE kind = 'pick_short';
SELECT status, reserved, picked, shipped, short FROM reservation_status WHERE ref = 'A-1';
SELECT event_type, location, qty FROM release('web', 'A-1', 1);
SELECT event_type, location, qty FROM release('web', 'A-1');
SELECT status, qty, reserved, picked, shipped, released, short FROM reservation_status WHERE ref = 'A-1';
SELECT event_type, location, qty FROM ship('web', 'A-1');
SELECT status FROM reservation_status WHERE ref = 'A-1';
-- Idempotent operations: a retried pick under the same key picks nothing more.
SELECT status, location, qty FROM reserve('web', 'TEE', 2, 'A-6');
SELECT event_type, qty FROM pick('web', 'A-6', 1, idempotency_key => 'pick-A-6');
SELECT event_type, qty FROM pick('web', 'A-6', 1, idempotency_key => 'pick-A-6');
SELECT reserved, picked FROM reservation_status WHERE ref = 'A-6';
SELECT pg_temp.try($$SELECT * FROM pick('web', 'NOPE')$$);
-- The same key for another operation, another order line or an append is
-- a conflict (IE003), not a retry answered with the first call's events.
SELECT status, location, qty FROM reserve('web', 'TEE', 2, 'A-7');
SELECT pg_temp.try($$SELECT * FROM release('web', 'A-6', 1, idempotency_key => 'pick-A-6')$$);
SELECT pg_temp.try($$SELECT * FROM ship('web', 'A-6', idempotency_key => 'pick-A-6')$$);
SELECT pg_temp.try($$SELECT * FROM pick('web', 'A-7', 1, idempotency_key => 'pick-A-6')$$);
SELECT pg_temp.try($$SELECT * FROM pick_short('web', 'A-7', 1, idempotency_key => 'pick-A-6')$$);
SELECT append('TEE', 'DAL', 'received', 1, idempotency_key => 'rcv-1') > 0 AS received;
SELECT pg_temp.try($$SELECT * FROM pick('web', 'A-7', 1, idempotency_key => 'rcv-1')$$);
SELECT ref, reserved, picked, shipped, released, short FROM reservation_status WHERE ref IN ('A-6', 'A-7') ORDER BY ref;
SELECT count(*) AS released FROM release('web', 'A-7');
SELECT append('TEE', 'DAL', 'adjusted', -1) > 0 AS adjusted;

-- A pick short on a backorder channel backorders the shortfall and refills it at once.
SELECT append('TEE', 'DAL', 'received', 4) > 0 AS received;
SELECT status, location, qty FROM reserve('edi', 'TEE', 2, 'E-3');
SELECT event_type, location, qty FROM pick_short('edi', 'E-3', 2);
SELECT ref, backordered, reserved, short FROM reservation_status WHERE ref = 'E-3';

-- Release cancels the backorder first.
SELECT status, qty FROM reserve('edi', 'TEE', 100, 'E-4');
SELECT backordered FROM reservation WHERE ref = 'E-4';
SELECT event_type, qty FROM release('edi', 'E-4', 90);
SELECT backordered, cancelled, reserved, released FROM reservation_status WHERE ref = 'E-4';
SELECT event_type, qty FROM release('edi', 'E-4');
SELECT status, backordered, cancelled, reserved, released FROM reservation_status WHERE ref = 'E-4';

-- A release with a key that only cancels backordered units records no event:
-- its key is kept in operation_key, and a retry changes nothing.
SELECT status, qty FROM reserve('edi', 'TEE', 50, 'E-5');
SELECT backordered, cancelled FROM reservation WHERE ref = 'E-5';
SELECT count(*) AS movements FROM release('edi', 'E-5', 10, source => 'oms', idempotency_key => 'cancel-E-5-1');
SELECT count(*) AS movements FROM release('edi', 'E-5', 10, source => 'oms', idempotency_key => 'cancel-E-5-1');
SELECT backordered, cancelled FROM reservation WHERE ref = 'E-5';
SELECT source, idempotency_key, operation, qty FROM operation_key;
-- A new key cancels again; without a key nothing is recorded.
SELECT count(*) AS movements FROM release('edi', 'E-5', 10, source => 'oms', idempotency_key => 'cancel-E-5-2');
-- That key given to the release of another order line: a conflict (IE003).
SELECT pg_temp.try($$SELECT * FROM release('edi', 'E-4', 1, source => 'oms', idempotency_key => 'cancel-E-5-2')$$);
-- So is a pick, ship or pick_short under it, of that line too: the key
-- stays the release's (before, the pick was taken, and the release's retry
-- then failed with IE003).
SELECT pg_temp.try($$SELECT * FROM pick('edi', 'E-5', 1, source => 'oms', idempotency_key => 'cancel-E-5-2')$$);
SELECT pg_temp.try($$SELECT * FROM ship('edi', 'E-5', 1, source => 'oms', idempotency_key => 'cancel-E-5-2')$$);
SELECT pg_temp.try($$SELECT * FROM pick_short('edi', 'E-5', 1, source => 'oms', idempotency_key => 'cancel-E-5-2')$$);
-- And so is an event appended or ingested under it (before, the receipt was
-- applied, and the release's retry then failed with IE003).
SELECT pg_temp.try($$SELECT append('TEE', 'DAL', 'received', 5, source => 'oms', idempotency_key => 'cancel-E-5-2')$$);
SELECT ordinal, status, sqlstate FROM ingest('[{"sku": "TEE", "location": "DAL", "event_type": "received", "qty": 5, "source": "oms", "idempotency_key": "cancel-E-5-2"}]');
SELECT count(*) AS events_under_it FROM event_key WHERE idempotency_key = 'cancel-E-5-2';
SELECT count(*) AS movements FROM release('edi', 'E-5', 10, source => 'oms', idempotency_key => 'cancel-E-5-2');
SELECT count(*) AS movements FROM release('edi', 'E-5', 5);
SELECT backordered, cancelled FROM reservation WHERE ref = 'E-5';
SELECT count(*) AS keys FROM operation_key;
SELECT event_type, qty FROM release('edi', 'E-5');

-- Expiry: expired reservations and backorders are released with reason expired.
SELECT status, qty FROM reserve('web', 'TEE', 1, 'X-1', expires_at => now() - interval '1 minute');
SELECT status, qty FROM reserve('edi', 'TEE', 50, 'X-2', expires_at => now() - interval '1 minute');
SELECT status, qty FROM reserve('web', 'TEE', 1, 'X-3', expires_at => now() + interval '1 day');
SELECT expire_reservations();
SELECT ref, status, cancelled, released FROM reservation_status WHERE ref LIKE 'X-%' ORDER BY ref;
SELECT DISTINCT reason FROM event WHERE ref IN ('X-1', 'X-2') AND event_type = 'released';
SELECT expire_reservations();
-- An expired backorder is not filled.
SELECT status, qty FROM reserve('edi', 'CAP', 5, 'X-4', expires_at => now() - interval '1 minute');
SELECT append('CAP', 'RNO', 'received', 10) > 0;
SELECT backordered FROM reservation WHERE ref = 'X-4';

-- Kits: availability is the least a component supplies; all components or nothing.
SELECT channel_availability('web', 'GIFT') AS gift, channel_availability('web', 'MUG') AS mug;
SELECT * FROM channel_position('web', 'GIFT');
SELECT status, sku, location, qty FROM reserve('web', 'GIFT', 2, 'K-1');
SELECT pg_temp.try($$SELECT * FROM reserve('web', 'GIFT', 3, 'K-2')$$);
SELECT pg_temp.avail('MUG');
SELECT event_type, sku, qty FROM pick('web', 'K-1', 1);
SELECT a.sku, a.reserved, a.picked FROM allocation a JOIN reservation r ON r.id = a.reservation_id WHERE r.ref = 'K-1' ORDER BY a.sku, a.id;
-- A kit is never backordered, even where the channel allows backorders.
SELECT pg_temp.try($$SELECT * FROM reserve('edi', 'DUO', 50, 'K-3')$$);

-- Lots: first expiry first out; expired lots are never reserved.
INSERT INTO channel_location (channel, location, priority) VALUES ('web', 'ATL', 2) ON CONFLICT DO NOTHING;
SELECT append('VIT', 'DAL', 'received', 5, lot => 'OLD') > 0, append('VIT', 'DAL', 'received', 3, lot => 'LATE') > 0,
       append('VIT', 'DAL', 'received', 2, lot => 'SOON') > 0, append('VIT', 'DAL', 'received', 4, lot => 'NOEXP') > 0;
SELECT channel_availability('web', 'VIT') AS vit;
SELECT status, location, lot, qty FROM reserve('web', 'VIT', 6, 'L-1');
SELECT pg_temp.try($$SELECT * FROM reserve('web', 'VIT', 4, 'L-2')$$);

-- reserve_lines: several lines, locks taken together; a shortage is a refused line and an exception.
SELECT ordinal, status, sku, location, qty, sqlstate, message
  FROM reserve_lines('[{"channel": "web", "sku": "CAP", "qty": 2, "ref": "M-1"},
                       {"channel": "web", "sku": "TEE", "qty": 1000, "ref": "M-2"},
                       {"channel": "web", "sku": "CAP", "qty": 1, "ref": "M-3", "expires_at": "2099-01-01 00:00+00"}]');
SELECT kind, sku, channel, ref, detail FROM exception WHERE kind = 'oversell_refused';
SELECT ref, expires_at FROM reservation WHERE ref = 'M-3';
SELECT pg_temp.try($$SELECT * FROM reserve_lines('[{"channel": "web", "sku": "CAP", "qty": 1, "ref": "M-4", "colour": "red"}]')$$);
SELECT pg_temp.try($$SELECT * FROM reserve_lines('[{"channel": "web", "sku": "CAP", "qty": 1.5, "ref": "M-4"}]')$$);
SELECT pg_temp.try($$SELECT * FROM reserve_lines('[{"channel": "web", "sku": "CAP", "ref": "M-4"}]')$$);
-- The same field parser as ingest(): a qty as a string of digits, a null as absent.
SELECT pg_temp.try($$SELECT * FROM reserve_lines('[{"channel": "web", "sku": "CAP", "qty": "x", "ref": "M-4"}]')$$);
SELECT pg_temp.try($$SELECT * FROM reserve_lines('[{"channel": "web", "sku": "CAP", "qty": null, "ref": "M-4"}]')$$);
SELECT ordinal, status, qty FROM reserve_lines('[{"channel": "web", "sku": "CAP", "qty": "1", "ref": "M-5", "location": null}]');
SELECT pg_temp.try($$SELECT * FROM reserve_lines('{"channel": "web"}')$$);
SELECT pg_temp.try($$SELECT * FROM reserve_lines('[1]')$$);
SELECT count(*) FROM reserve_lines('[]');

-- The velocity buffer: ceil(units of the sku reserved within velocity_window
-- x publish_interval / velocity_window): 8 in the last hour, published every
-- 15 minutes: ceil(8 x 15 / 60) = 2.
INSERT INTO channel (code, kind, publish_interval, velocity_buffer, velocity_window)
VALUES ('slow', 'edi_partner', '15 minutes', true, '1 hour');
INSERT INTO channel_location (channel, location, priority) VALUES ('slow', 'ATL', 1);
SELECT append('HAT', 'ATL', 'received', 40) > 0;
SELECT * FROM channel_position('slow', 'HAT');
SELECT status, qty FROM reserve('web', 'HAT', 5, 'V-1');
SELECT status, qty FROM reserve('web', 'HAT', 3, 'V-2');
SELECT * FROM channel_position('slow', 'HAT');
SELECT channel, sku, pool, velocity_buffer, available FROM channel_stock WHERE sku = 'HAT' ORDER BY channel;
-- Reservations older than the window do not count.
UPDATE channel SET velocity_window = '1 microsecond' WHERE code = 'slow';
SELECT * FROM channel_position('slow', 'HAT');
UPDATE channel SET velocity_buffer = false, velocity_window = '1 hour' WHERE code = 'slow';
SELECT * FROM channel_position('slow', 'HAT');

-- Errors.
SELECT pg_temp.try($$SELECT * FROM reserve('web', 'TEE', 0, 'Z-1')$$);
SELECT pg_temp.try($$SELECT * FROM reserve('web', 'TEE', NULL, 'Z-1')$$);
SELECT pg_temp.try($$SELECT * FROM reserve('web', 'TEE', 1, NULL)$$);
SELECT pg_temp.try($$SELECT * FROM reserve('nope', 'TEE', 1, 'Z-1')$$);
SELECT pg_temp.try($$SELECT * FROM reserve('web', 'NOPE', 1, 'Z-1')$$);
SELECT pg_temp.try($$SELECT * FROM release('web', 'A-6', 0)$$);
SELECT pg_temp.try($$SELECT * FROM pick_short('web', 'A-6', NULL)$$);

-- Expiry isolates each reservation: one whose release fails in the middle
-- of writing (a DBA's CHECK on stock, enforced by the stock trigger) is
-- rolled back alone and recorded in worker_error; the next one, in the same
-- transaction and through the same writers, is released, and so is a later
-- append. Nothing leaks (a leak would be a WARNING at COMMIT).
INSERT INTO item (sku) VALUES ('EXP-A'), ('EXP-B');
INSERT INTO channel (code) VALUES ('exp-a'), ('exp-b');
INSERT INTO channel_location (channel, location) VALUES ('exp-a', 'DAL'), ('exp-b', 'DAL');
SELECT append('EXP-A', 'DAL', 'received', 3) > 0 AND append('EXP-B', 'DAL', 'received', 3) > 0 AS received;
SELECT count(*) FROM reserve('exp-a', 'EXP-A', 2, 'EX-1', expires_at => now() - interval '1 minute');
SELECT count(*) FROM reserve('exp-b', 'EXP-B', 2, 'EX-2', expires_at => now() - interval '1 minute');
BEGIN;
ALTER TABLE stock ADD CONSTRAINT no_more_a CHECK (sku <> 'EXP-A' OR available < 3) NOT VALID;
SELECT expire_reservations() AS expired;
SELECT ref, reserved, released FROM reservation_status WHERE ref IN ('EX-1', 'EX-2') ORDER BY ref;
SELECT task, channel, sqlstate, message, detail FROM worker_error WHERE task = 'expire' AND cleared_at IS NULL;
SELECT append('EXP-B', 'DAL', 'received', 1) > 0 AS appended_after;
ALTER TABLE stock DROP CONSTRAINT no_more_a;
COMMIT;
SELECT sku, available, reserved FROM stock WHERE sku LIKE 'EXP-%' ORDER BY sku;
SELECT expire_reservations() AS expired_once_allowed;
SELECT count(*) AS open_expiry_errors FROM worker_error WHERE task = 'expire' AND cleared_at IS NULL;

-- A DBA's trigger on the log that catches an error of its own (a
-- subtransaction that aborts while append() is writing the event) leaves the
-- append's writer alone: the events and their stock are written, nothing
-- leaks (a leak would be a WARNING at COMMIT).
CREATE FUNCTION public.catching() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    BEGIN
        PERFORM 1 / 0;
    EXCEPTION WHEN division_by_zero THEN
        NULL;
    END;
    RETURN NULL;
END $$;
CREATE TRIGGER catching AFTER INSERT ON event FOR EACH ROW EXECUTE FUNCTION public.catching();
BEGIN;
SELECT append('EXP-B', 'DAL', 'received', 1) > 0 AND append('EXP-B', 'DAL', 'received', 1) > 0 AS appended;
SELECT count(*) FROM reserve('exp-b', 'EXP-B', 1, 'EX-3');
SELECT event_type, qty FROM pick('exp-b', 'EX-3');
COMMIT;
DROP TRIGGER catching ON event;
DROP FUNCTION public.catching();
SELECT sku, available, version FROM stock WHERE sku = 'EXP-B';

-- Every event above kept the books: positions equal their events.
SELECT count(*) AS inconsistent_streams FROM verify();
-- Allocations agree with the stock: reserved and picked per stream.
SELECT a.sku, a.location, a.lot, sum(a.reserved) AS alloc_reserved, s.reserved AS stock_reserved
  FROM allocation a JOIN stock s USING (sku, location, lot)
 GROUP BY a.sku, a.location, a.lot, s.reserved
HAVING sum(a.reserved) <> s.reserved;

-- Exceptions: aging and resolving.
SELECT kind, count(*) FROM exception_aging GROUP BY kind ORDER BY kind;
SELECT DISTINCT age_bucket FROM exception_aging;
SELECT resolve_exception(min(id)) FROM exception;
SELECT resolve_exception(min(id)) FROM exception;
SELECT count(*) AS open_exceptions FROM exception_aging;

DROP EXTENSION inventory_events;
