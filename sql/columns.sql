-- The C code finds the columns it reads and writes by name: a column a DBA
-- adds to one of the extension's tables, or one dropped and added again
-- (which moves it to the end), changes nothing it does. Added columns get
-- their defaults (and stored generated columns their values) in the rows C
-- writes, and keep their values when C updates a row.
CREATE EXTENSION inventory_events;
SET search_path = inventory_events, public;

INSERT INTO item (sku) VALUES ('A'), ('B');
INSERT INTO location (code) VALUES ('W1'), ('W2');
INSERT INTO channel (code) VALUES ('web');
INSERT INTO channel_location (channel, location) VALUES ('web', 'W1');
SELECT append('A', 'W1', 'received', 10) > 0 AS appended;

-- The output plugin decodes what follows.
SELECT 'init' FROM pg_create_logical_replication_slot('columns', 'inventory_events');

-- A column moved to the end (dropped and added again), on the log and the
-- channel table. (The stock table's row type is used by functions: its
-- columns cannot be dropped.)
ALTER TABLE event DROP COLUMN reason;
ALTER TABLE event ADD COLUMN reason text;
ALTER TABLE channel DROP COLUMN description;
ALTER TABLE channel ADD COLUMN description text;
-- Columns of the DBA's own: with a default (NOT NULL), generated, plain.
ALTER TABLE event ADD COLUMN tenant text NOT NULL DEFAULT 'north';
ALTER TABLE event ADD COLUMN ref_length integer GENERATED ALWAYS AS (length(ref)) STORED;
ALTER TABLE stock ADD COLUMN bin text;
ALTER TABLE reservation ADD COLUMN priority integer NOT NULL DEFAULT 5;
ALTER TABLE allocation ADD COLUMN scratch integer;
ALTER TABLE allocation DROP COLUMN scratch;
ALTER TABLE allocation ADD COLUMN wave text DEFAULT 'none';
SELECT attname, attnum FROM pg_attribute
 WHERE attrelid = 'inventory_events.event'::regclass AND attnum > 20 AND NOT attisdropped ORDER BY attnum;

-- Appends: every column where it is now.
SELECT append('A', 'W1', 'received', 5, reason => 'cycle', ref => 'PO-7') > 0 AS appended;
SELECT sku, location, event_type, qty, reason, ref, tenant, ref_length FROM event ORDER BY id;
SELECT sku, location, available, on_hand, version, bin FROM stock;

-- A value in the DBA's stock column survives the next update of the row.
UPDATE stock SET bin = 'A-01' WHERE sku = 'A' AND location = 'W1';
SELECT append('A', 'W1', 'adjusted', -1, reason => 'damage found') > 0 AS appended;
SELECT sku, available, version, bin FROM stock WHERE sku = 'A' AND location = 'W1';
-- A new stream: the insert path.
SELECT append('B', 'W2', 'received', 3) > 0 AS appended;
SELECT sku, location, available, bin FROM stock WHERE sku = 'B';

-- Channel rules, reservations, allocations and the lifecycle.
UPDATE channel SET buffer_fixed = 2, description = 'storefront' WHERE code = 'web';
SELECT channel_availability('web', 'A');
SELECT status, qty FROM reserve('web', 'A', 4, 'SO-1');
SELECT ref, qty, backordered, priority FROM reservation;
SELECT qty, reserved, wave FROM allocation;
SELECT count(*) FROM pick('web', 'SO-1');
SELECT count(*) FROM ship('web', 'SO-1', 3);
SELECT count(*) FROM release('web', 'SO-1');
SELECT qty, reserved, picked, shipped, released, wave FROM allocation;
-- Batch ingest, and a dead letter.
ALTER TABLE dead_letter ADD COLUMN batch text DEFAULT 'b-1';
SELECT ordinal, status FROM ingest('[{"sku": "A", "location": "W1", "event_type": "received", "qty": 1, "reason": "batch"},
                                      {"sku": "NOPE", "location": "W1", "event_type": "received", "qty": 1}]');
SELECT sqlstate, batch FROM dead_letter;
SELECT reason, tenant FROM event WHERE reason = 'batch';
SELECT count(*) AS differences FROM verify();

-- Decoded: the moved and the added columns by their names, the position
-- from the stock row.
SELECT d->>'kind' AS kind, d->>'sku' AS sku, d->>'event_type' AS event_type, d->>'reason' AS reason,
       d->>'tenant' AS tenant, d->>'ref_length' AS ref_length, d->'position'->>'available' AS available
  FROM (SELECT data::jsonb AS d FROM pg_logical_slot_get_changes('columns', NULL, NULL, 'include-position', 'on')) x
 WHERE d->>'kind' = 'event';
SELECT pg_drop_replication_slot('columns');

-- A column C needs, missing: a clear error, and nothing written.
ALTER TABLE event RENAME COLUMN reason TO why;
SELECT append('A', 'W1', 'received', 1);
ALTER TABLE event RENAME COLUMN why TO reason;
SELECT append('A', 'W1', 'received', 1) > 0 AS appended;

DROP EXTENSION inventory_events;
