-- Serial numbers: a serialized item names one serial per base unit on every
-- event that moves units; a serial is in one place and bucket at a time;
-- counts can list serials; a serial's history is one query, its trail one
-- call. Bad input is refused with a documented SQLSTATE and nothing applied.
CREATE EXTENSION inventory_events;
SET search_path = inventory_events, public;
\set VERBOSITY default

INSERT INTO item (sku, serialized) VALUES ('PHONE', true);
INSERT INTO item (sku) VALUES ('CABLE');
INSERT INTO item_uom (sku, uom, factor) VALUES ('PHONE', 'PK2', 2);
INSERT INTO location (code) VALUES ('W1'), ('W2');
INSERT INTO channel (code) VALUES ('web');
INSERT INTO channel_location (channel, location) VALUES ('web', 'W1');

-- Receipts: one serial per base unit (a pack of two: two serials).
SELECT append('PHONE', 'W1', 'received', 3, ref => 'PO-1', source => 'wms', serials => ARRAY['S1', 'S2', 'S3']) AS e1;
SELECT append('PHONE', 'W1', 'received', 1, uom => 'PK2', serials => ARRAY['S4', 'S5']) AS e2;

-- Bad input: nothing is applied.
SELECT append('PHONE', 'W1', 'received', 1, serials => ARRAY['S1']);            -- received twice: IE009
SELECT append('PHONE', 'W1', 'received', 2);                                      -- no serials: 22023
SELECT append('PHONE', 'W1', 'received', 2, serials => ARRAY['S6']);             -- too few: 22023
SELECT append('PHONE', 'W1', 'received', 1, serials => ARRAY['S6', 'S7']);       -- one too many: 22023
SELECT append('PHONE', 'W1', 'received', 2, serials => ARRAY['S6', 'S6']);       -- twice in the list: 22023
SELECT append('PHONE', 'W1', 'received', 1, serials => ARRAY[NULL]::text[]);     -- 22004
SELECT append('PHONE', 'W1', 'received', 1, serials => ARRAY['']);              -- 22023
SELECT append('CABLE', 'W1', 'received', 1, serials => ARRAY['C1']);             -- not serialized: 22023
SELECT append('PHONE', 'W1', 'damaged', 1, serials => ARRAY['S9']);              -- unknown serial: IE009
SELECT append('PHONE', 'W2', 'damaged', 1, serials => ARRAY['S1']);              -- not at W2: IE001 first (no stock)
SELECT append('PHONE', 'W1', 'safety_stock_set', 1, serials => ARRAY['S1']);     -- moves no unit: 22023
SELECT count(*) AS events, (SELECT count(*) FROM serial) AS serials, (SELECT count(*) FROM serial_event) AS moves FROM event;

-- Retrying a receipt with its idempotency key returns the first event.
SELECT append('PHONE', 'W1', 'received', 1, source => 'wms', idempotency_key => 'r6', serials => ARRAY['S6']) AS e3;
SELECT append('PHONE', 'W1', 'received', 1, source => 'wms', idempotency_key => 'r6', serials => ARRAY['S6']) AS e3_again;

-- Damage names the unit; a pick names the serials picked, a ship without
-- serials ships those its order line picked.
SELECT append('PHONE', 'W1', 'damaged', 1, serials => ARRAY['S5']) > 0 AS damaged;
SELECT (reserve('web', 'PHONE', 2, 'o1')).status;
SELECT (reserve('web', 'PHONE', 1, 'o2')).status;
SELECT event_type, qty FROM pick('web', 'o1', serials => ARRAY['S2']);             -- 1 of 2: 22023
SELECT event_type, qty FROM pick('web', 'o1', serials => ARRAY['S5', 'S2']);       -- S5 is damaged: IE009
SELECT event_type, qty FROM pick('web', 'o1', serials => ARRAY['S2', 'S3', 'S4']); -- one too many: 22023
SELECT event_type, qty FROM pick('web', 'o1', serials => ARRAY['S2', 'S3']);
SELECT event_type, qty FROM pick('web', 'o2', serials => ARRAY['S2']);             -- picked already: IE009
SELECT event_type, qty FROM pick('web', 'o2');                                      -- no serials: 22023
SELECT serial, location, bucket, ref FROM serial ORDER BY serial;
SELECT event_type, qty FROM ship('web', 'o1', 1, serials => ARRAY['S1']);           -- on the shelf: IE009
SELECT event_type, qty FROM ship('web', 'o1', 1, serials => ARRAY['S3']);
SELECT event_type, qty FROM ship('web', 'o1');
SELECT serial, location, bucket, ref FROM serial ORDER BY serial;
-- An order line is its channel's ref: two channels' o9 each ship the
-- serials their own line picked.
BEGIN;
INSERT INTO channel (code) VALUES ('amz');
INSERT INTO channel_location (channel, location) VALUES ('amz', 'W1');
SELECT (reserve('amz', 'PHONE', 1, 'o9')).status;
SELECT (reserve('web', 'PHONE', 1, 'o9')).status;
SELECT event_type, qty FROM pick('amz', 'o9', serials => ARRAY['S4']);
SELECT event_type, qty FROM pick('web', 'o9', serials => ARRAY['S6']);
SELECT event_type, qty FROM ship('web', 'o9');
SELECT serial, bucket, channel, ref FROM serial WHERE ref = 'o9' ORDER BY serial;
ROLLBACK;
-- A ship that names serials names all it ships: over two locations too
-- (only a call that names none takes those its line picked).
BEGIN;
INSERT INTO channel_location (channel, location, priority) VALUES ('web', 'W2', 1);
SELECT append('PHONE', 'W2', 'received', 1, serials => ARRAY['S30']) > 0 AS received;
SELECT location, qty FROM reserve('web', 'PHONE', 3, 'o8') ORDER BY location;
SELECT event_type, location, qty FROM pick('web', 'o8', serials => ARRAY['S1', 'S4', 'S30']) ORDER BY location;
SAVEPOINT named;
SELECT event_type, location, qty FROM ship('web', 'o8', serials => ARRAY['S1', 'S4']);   -- S30 not named: 22023
ROLLBACK TO named;
SELECT event_type, location, qty FROM ship('web', 'o8') ORDER BY location;
ROLLBACK;
-- A kit's pick gives the serials of its serialized components; the others
-- move without.
BEGIN;
INSERT INTO item (sku) VALUES ('BUNDLE');
INSERT INTO kit_component (kit, component, qty) VALUES ('BUNDLE', 'CABLE', 1), ('BUNDLE', 'PHONE', 1);
SELECT append('CABLE', 'W1', 'received', 1) > 0 AS received;
SELECT (reserve('web', 'BUNDLE', 1, 'k1')).status;
SELECT event_type, sku, qty FROM pick('web', 'k1', serials => ARRAY['S4']);
SELECT serial, bucket, ref FROM serial WHERE ref = 'k1';
ROLLBACK;

-- A pick short does not know which serials are missing: they stay on the
-- shelf and serial_drift shows the difference until a count with serials
-- settles it. A count lists every serial at the location (S5 in damaged
-- too, which stays there); the shelf's unlisted serials leave (S4), and
-- serials it lists that were outside come in (S7).
SELECT event_type, qty FROM pick_short('web', 'o2', 1);
SELECT * FROM serial_drift ORDER BY sku, location, bucket;
SELECT append('PHONE', 'W1', 'counted', 3, serials => ARRAY['S1', 'S6']);          -- 2 listed for 3: 22023
SELECT append('PHONE', 'W1', 'counted', 2, serials => ARRAY['S1', 'S6']);          -- S5 not listed: IE009
SELECT append('PHONE', 'W1', 'counted', 3, serials => ARRAY['S1', 'S5', 'S6']) > 0 AS counted;
SELECT * FROM serial_drift ORDER BY sku, location, bucket;
SELECT append('PHONE', 'W1', 'counted', 4, serials => ARRAY['S1', 'S5', 'S6', 'S7']) > 0 AS counted;
SELECT serial, location, bucket FROM serial ORDER BY serial;
SELECT * FROM serial_drift ORDER BY sku, location, bucket;
-- A count with serials says where they are now: it is refused when dated
-- before a later movement of its stream, whose serials it would take back
-- (a late count of the quantity alone is not).
BEGIN;
SELECT append('PHONE', 'W1', 'received', 1, occurred_at => now() + interval '1 hour',
              serials => ARRAY['S20']) > 0 AS received_later;
SELECT append('PHONE', 'W1', 'counted', 4, serials => ARRAY['S1', 'S5', 'S6', 'S7']);  -- IE009
ROLLBACK;
BEGIN;
SELECT append('PHONE', 'W1', 'received', 1, occurred_at => now() + interval '1 hour',
              serials => ARRAY['S20']) > 0 AS received_later;
SELECT append('PHONE', 'W1', 'counted', 4) > 0 AS counted;
ROLLBACK;

-- A transfer names its serials; receiving it takes those in transit under its ref.
SELECT event_type, location, qty FROM transfer('PHONE', 'W1', 'W2', 1, 'T-1', serials => ARRAY['S9']);  -- unknown: IE009
SELECT event_type, location, qty FROM transfer('PHONE', 'W1', 'W2', 1, 'T-1', serials => ARRAY['S7']);
-- A count lists the units on hand: not those in transit to the location,
-- which stay in transit and cannot be listed.
BEGIN;
SELECT append('PHONE', 'W2', 'counted', 1, serials => ARRAY['S8']) > 0 AS counted;
SELECT available, in_transit, on_hand FROM stock WHERE sku = 'PHONE' AND location = 'W2';
SELECT serial, bucket FROM serial WHERE location = 'W2' ORDER BY serial;
SELECT append('PHONE', 'W2', 'counted', 2, serials => ARRAY['S8', 'S7']);          -- S7 is in transit: IE009
ROLLBACK;
SELECT receive_transfer('PHONE', 'W2', 1, 'T-1', serials => ARRAY['S1']);          -- not in transit: IE009
SELECT receive_transfer('PHONE', 'W2', 1, 'T-1') > 0 AS received;
-- A count at W2 that lists a serial in stock at W1: IE009.
SELECT append('PHONE', 'W2', 'counted', 2, serials => ARRAY['S7', 'S6']);          -- S6 is at W1: IE009

-- Purchase orders and returns.
SELECT append('PHONE', 'W2', 'inbound_expected', 2, ref => 'PO-2', expected_date => '2026-12-24') > 0 AS expected;
SELECT event_type, qty FROM receive_po('PHONE', 'W2', 2, 'PO-2', serials => ARRAY['S10', 'S11']);
SELECT receive_return('PHONE', 'W1', 1, 'RMA-1', channel => 'web', serials => ARRAY['S1']);  -- in stock: IE009
SELECT receive_return('PHONE', 'W1', 1, 'RMA-1', channel => 'web', serials => ARRAY['S2']) > 0 AS returned;
SELECT dispose_return('PHONE', 'W1', 1, 'restock', ref => 'RMA-1') > 0 AS restocked;
-- Both also take the serials by name: a second return, written off by serial.
SELECT receive_return('PHONE', 'W1', 1, 'RMA-2', serials => ARRAY['S3']) > 0 AS returned;
SELECT dispose_return('PHONE', 'W1', 1, 'write_off', serials => ARRAY['S2']);        -- on the shelf: IE009
SELECT dispose_return('PHONE', 'W1', 1, 'write_off', serials => ARRAY['S3']) > 0 AS written_off;
SELECT serial, location, bucket, ref FROM serial ORDER BY serial;

-- A batch: bad serials dead-letter their element only; staged rows too.
SELECT ordinal, status, sqlstate, message FROM ingest('[
  {"sku": "PHONE", "location": "W2", "event_type": "received", "qty": 1, "serials": ["S12"]},
  {"sku": "PHONE", "location": "W2", "event_type": "received", "qty": 1, "serials": ["S12"]},
  {"sku": "PHONE", "location": "W2", "event_type": "received", "qty": 1, "serials": "S13"},
  {"sku": "PHONE", "location": "W2", "event_type": "received", "qty": 1, "serials": [13]}
]');
INSERT INTO event_staging (sku, location, event_type, qty, serials) VALUES
    ('PHONE', 'W2', 'adjusted', -1, ARRAY['S12']), ('PHONE', 'W2', 'adjusted', -1, ARRAY['S12']);
SELECT status, sqlstate, message FROM ingest_staged();

-- A serial's history in one query, and its trail for a recall.
SELECT version, event_type, location, bucket, ref, channel FROM serial_history
 WHERE sku = 'PHONE' AND serial = 'S2' ORDER BY version;
SELECT section, location, bucket, qty, event_type, ref, channel, source FROM serial_trace('PHONE', 'S2');
SELECT section, location, bucket, event_type, ref FROM serial_trace('PHONE', 'S7');
SELECT * FROM serial_trace('PHONE', 'NOPE');                                       -- IE009

-- Reconciliation lines can list serials: the WMS counted 3 at W2 (as we
-- have), but S99 instead of S11. The quantities agree; the line names the
-- difference and carries a hint. The COPY path takes them too.
INSERT INTO recon_source (code, snapshot) VALUES ('wms-w2', 'partial');
SELECT reconcile('wms-w2', now(), '[{"sku": "PHONE", "location": "W2", "qty": 3, "serials": ["S7", "S10", "S99"]}]') AS run \gset
SELECT line_no, ours, theirs, status, serials_missing, serials_unexpected, hints FROM recon_line WHERE run_id = :run;
BEGIN;
INSERT INTO recon_staging (sku, location, qty, serials) VALUES ('PHONE', 'W2', 3, ARRAY['S7', 'S10', 'S11']);
SELECT reconcile_staged('wms-w2', now()) AS run \gset
COMMIT;
SELECT line_no, ours, theirs, status, serials_missing, serials_unexpected, hints FROM recon_line WHERE run_id = :run;
-- A serial in transit to W2 is not on hand there: a snapshot of what is on
-- hand at W2 does not miss it.
BEGIN;
SELECT event_type, location, qty FROM transfer('PHONE', 'W1', 'W2', 1, 'T-2', serials => ARRAY['S6']);
SELECT reconcile('wms-w2', now(), '[{"sku": "PHONE", "location": "W2", "qty": 3, "serials": ["S7", "S10", "S11"]}]') AS run \gset
SELECT line_no, ours, theirs, status, serials_missing, serials_unexpected, hints FROM recon_line WHERE run_id = :run;
ROLLBACK;
SELECT reconcile('wms-w2', now(), '[{"sku": "PHONE", "location": "W2", "qty": 1, "serials": "S7"}]');   -- 22023
SELECT reconcile('wms-w2', now(), '[{"sku": "PHONE", "location": "W2", "qty": 1, "serials": [7]}]');    -- 22023

-- A count with an empty list says "none here": W2's shelf is emptied, its
-- serials leave the books with the stock (a count without a list would
-- leave them on the shelf, and serial_drift would show it).
SELECT append('PHONE', 'W2', 'counted', 1, serials => ARRAY[]::text[]);           -- 0 listed for 1: 22023
SELECT append('PHONE', 'W2', 'counted', 0, serials => ARRAY[]::text[]) > 0 AS counted;
SELECT serial, bucket FROM serial WHERE location = 'W2' ORDER BY serial;
SELECT available, on_hand FROM stock WHERE sku = 'PHONE' AND location = 'W2';

-- The flag changes only while the item has no stock.
UPDATE item SET serialized = false WHERE sku = 'PHONE';                             -- 55000
UPDATE item SET serialized = true WHERE sku = 'CABLE';

SELECT * FROM serial_drift ORDER BY sku, location, bucket;
SELECT count(*) AS unverified FROM verify();
-- Too few serials for a pick over two streams (two lots) is 22023 whichever
-- serial is left out (the serial of the other lot was IE009 "not available").
BEGIN;
INSERT INTO item (sku, serialized, lot_controlled) VALUES ('LPHONE', true, true);
INSERT INTO lot (sku, lot, expires_on) VALUES ('LPHONE', 'A', '2030-01-01'), ('LPHONE', 'B', '2031-01-01');
SELECT append('LPHONE', 'W1', 'received', 1, lot => 'A', serials => ARRAY['LA1']) > 0 AS received;
SELECT append('LPHONE', 'W1', 'received', 1, lot => 'B', serials => ARRAY['LB1']) > 0 AS received;
SELECT lot, qty FROM reserve('web', 'LPHONE', 2, 'lo1') ORDER BY lot;
SAVEPOINT s;
SELECT event_type, qty FROM pick('web', 'lo1', serials => ARRAY['LA1']);           -- 1 of 2: 22023
ROLLBACK TO s;
SELECT event_type, qty FROM pick('web', 'lo1', serials => ARRAY['LB1']);           -- 1 of 2: 22023
ROLLBACK TO s;
SELECT event_type, lot, qty FROM pick('web', 'lo1', serials => ARRAY['LB1', 'LA1']) ORDER BY lot;
ROLLBACK;

DROP EXTENSION inventory_events;
