-- Batch ingest (jsonb and the COPY path) with dead letters.
CREATE EXTENSION inventory_events;
SET search_path = inventory_events, public;

INSERT INTO item (sku) VALUES ('A'), ('B');
INSERT INTO item_uom VALUES ('A', 'CS', 6);
INSERT INTO location (code) VALUES ('W1');

-- Valid events are applied, invalid ones dead-lettered, retries reported;
-- one outcome per element, in order.
SELECT * FROM ingest($$[
  {"sku": "A", "location": "W1", "event_type": "received", "qty": 10, "source": "wms", "idempotency_key": "r1"},
  {"sku": "A", "location": "W1", "event_type": "damaged", "qty": 4},
  {"sku": "ZZZ", "location": "W1", "event_type": "received", "qty": 1},
  {"sku": "A", "location": "W1", "event_type": "received", "qty": 1.5},
  {"sku": "A", "location": "W1", "event_type": "teleported", "qty": 1},
  {"sku": "A", "location": "W1", "event_type": "received", "qty": 1, "colour": "red"},
  {"sku": "A", "location": "W1", "event_type": "received", "qty": 10, "source": "wms", "idempotency_key": "r1"},
  {"sku": "A", "location": "W1", "event_type": "received", "qty": 11, "source": "wms", "idempotency_key": "r1"},
  {"sku": "A", "location": "W1", "event_type": "damaged", "qty": 100},
  {"sku": "A", "location": "W1", "event_type": "received", "qty": 2, "uom": "CS", "occurred_at": "2026-01-01T10:00:00Z",
   "payload": {"asn": "X"}, "ref": "PO-1", "source_seq": "17"},
  "not an object",
  {"sku": "A", "location": "W1", "event_type": "moved", "qty": 1, "from_bucket": "damaged", "to_bucket": "available"},
  {"sku": "A", "location": "W1", "event_type": "received", "qty": null, "lot": null},
  {"sku": "A", "location": "W1", "event_type": "received", "qty": 1, "expected_version": 1},
  {"sku": "A", "location": "W1", "event_type": "shipped", "qty": 1}
]$$);

SELECT batch_ordinal, sqlstate, message, detail, source, idempotency_key, payload
  FROM dead_letter ORDER BY id;
SELECT sku, version, event_type, qty, uom, uom_qty, ref, source_seq, payload FROM event ORDER BY id;
SELECT sku, location, available, reserved, damaged, version FROM stock;
SELECT * FROM verify();

-- Events of one stream in one batch see each other.
SELECT status, version FROM ingest('[{"sku":"B","location":"W1","event_type":"received","qty":5},
                                     {"sku":"B","location":"W1","event_type":"damaged","qty":5},
                                     {"sku":"B","location":"W1","event_type":"damaged","qty":1}]');

-- What the stock trigger or the unique index would refuse at insert time is
-- refused while validating, so the element is dead-lettered and the rest of
-- the batch applied: an on-hand total out of range, source and key too long.
SELECT ordinal, status, sqlstate, message FROM ingest(jsonb_build_array(
  jsonb_build_object('sku', 'B', 'location', 'W1', 'event_type', 'returned', 'qty', 9223372036854775807),
  jsonb_build_object('sku', 'B', 'location', 'W1', 'event_type', 'received', 'qty', 1,
                     'source', 'wms', 'idempotency_key', repeat('k', 1998)),
  jsonb_build_object('sku', 'B', 'location', 'W1', 'event_type', 'received', 'qty', 1,
                     'source', 'wms', 'idempotency_key', repeat('k', 1997))));

-- Not an array, or null.
SELECT * FROM ingest('{"sku": "A"}');
SELECT * FROM ingest(NULL);
SELECT * FROM ingest('[]');

-- The COPY-friendly path: COPY into event_staging, then ingest_staged().
COPY event_staging (sku, location, event_type, qty, source, idempotency_key, uom) FROM STDIN (FORMAT csv);
A,W1,received,3,erp,c1,
A,W1,received,1,erp,c2,CS
NOPE,W1,received,1,erp,c3,
A,W1,received,3,erp,c1,
\.
SELECT staged_id - min(staged_id) OVER () + 1 AS row, status, sqlstate, message FROM ingest_staged() ORDER BY 1;
SELECT count(*) AS left_in_staging FROM event_staging;
SELECT * FROM ingest_staged();
-- max_rows takes the oldest rows first.
INSERT INTO event_staging (sku, location, event_type, qty) VALUES ('A', 'W1', 'received', 1), ('A', 'W1', 'received', 2);
SELECT status FROM ingest_staged(1);
SELECT qty FROM event_staging;
SELECT * FROM verify();

-- A position that would overflow is refused like any invalid event.
SELECT ordinal, status, sqlstate, message
  FROM ingest('[{"sku":"A","location":"W1","event_type":"received","qty":1},
                {"sku":"A","location":"W1","event_type":"received","qty":9223372036854775807}]');
SELECT * FROM verify();


-- A staged row is read like the JSON object to_jsonb() makes of it: typed
-- columns, null as absent, an invalid row refused on the same field (here
-- to_bucket before from_bucket, as in that object's key order); its dead
-- letter keeps that object, less staged_id, with its place in the batch.
DELETE FROM dead_letter;
INSERT INTO event_staging (sku, location, event_type, qty, source, idempotency_key, occurred_at, uom, ref,
                           payload, source_seq, correlation_id, expected_date, reason, from_bucket, to_bucket, lot)
VALUES ('A', 'W1', 'received', 2, 'erp', 'k1', '2026-02-01 10:00+00', 'CS', 'PO-9', '{"asn": "Y"}', 5,
        '00000000-0000-0000-0000-000000000001', NULL, 'r', NULL, NULL, NULL),
       ('A', 'W1', 'teleported', 1, 'erp', 'k2', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
       ('A', 'W1', 'moved', 1, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 'nowhere', 'elsewhere', NULL),
       ('A', 'W1', 'damaged', 1000, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
       ('A', 'W1', 'received', 3, 'erp', 'k1', NULL, 'CS', 'PO-9', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
       ('A', 'W1', 'inbound_expected', 4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '2026-03-01', NULL, NULL, NULL, NULL),
       ('A', 'W1', 'received', 2, 'erp', 'k1', NULL, 'CS', 'PO-9', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
       ('A', 'W1', 'shipped', 1, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
       (NULL, 'W1', 'received', 1, 'erp', NULL, NULL, NULL, 'R-1', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
       ('A', 'W1', 'received', 1, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 'L1'),
       ('A', 'W1', 'moved', 1, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 'damaged', 'available', NULL);
SELECT staged_id - min(staged_id) OVER () + 1 AS row, status, version, sqlstate, message
  FROM ingest_staged() ORDER BY 1;
SELECT batch_ordinal, sqlstate, message, detail, source, idempotency_key, payload FROM dead_letter ORDER BY id;
SELECT event_type, qty, uom, uom_qty, ref, source_seq, occurred_at, correlation_id, reason, payload
  FROM event WHERE idempotency_key = 'k1';
SELECT event_type, qty, expected_date FROM event WHERE event_type = 'inbound_expected';
SELECT kind, sku, location, ref, detail FROM exception WHERE kind = 'dead_letter' ORDER BY id DESC LIMIT 2;

-- A payload stored out of line comes through whole, applied or dead-lettered.
CREATE TEMP TABLE big AS
  SELECT jsonb_build_object('blob', string_agg(md5(g::text), '')) AS payload FROM generate_series(1, 4000) g;
INSERT INTO event_staging (sku, location, event_type, qty, payload)
SELECT 'A', 'W1', 'received', 1, payload FROM big UNION ALL
SELECT 'A', 'W1', 'teleported', 1, payload FROM big;
SELECT status, sqlstate FROM ingest_staged() ORDER BY staged_id;
SELECT (SELECT payload FROM event ORDER BY id DESC LIMIT 1) = (SELECT payload FROM big) AS event_payload_whole,
       (SELECT payload -> 'payload' FROM dead_letter ORDER BY id DESC LIMIT 1) = (SELECT payload FROM big)
         AS dead_letter_payload_whole;

-- A batch needing more locks than the limit is refused (54000) before
-- anything is applied, and its rows stay staged; max_rows splits it.
SET inventory_events.max_locks_per_call = 3;
INSERT INTO event_staging (sku, location, event_type, qty) VALUES ('A', 'W1', 'received', 1), ('B', 'W1', 'received', 1);
SELECT * FROM ingest_staged();
SELECT count(*) AS still_staged FROM event_staging;
SELECT status FROM ingest_staged(1);
SELECT status FROM ingest_staged(1);
RESET inventory_events.max_locks_per_call;
SELECT count(*) AS left_in_staging FROM event_staging;
INSERT INTO event_staging (sku, location, event_type, qty) VALUES ('A', 'W1', 'received', 1);
\set VERBOSITY terse
SELECT * FROM ingest_staged(-1);
\set VERBOSITY default
SELECT status FROM ingest_staged(0);
SELECT status FROM ingest_staged();
SELECT * FROM verify();

-- Elements are applied a run at a time, each run in one subtransaction; a
-- run with an invalid element is rolled back and the call goes on one
-- element at a time from its first. The outcomes are those of one element at
-- a time (but for the event ids that the rolled back run leaves unused): a
-- batch of 300 with invalid elements (negative quantities) at 150, 151 and
-- 300.
CREATE TEMP TABLE run_batch AS
SELECT jsonb_agg(CASE WHEN g IN (150, 151, 300)
                      THEN jsonb_build_object('sku', 'B', 'location', 'W1', 'event_type', 'received', 'qty', -g)
                      ELSE jsonb_build_object('sku', 'B', 'location', 'W1', 'event_type', 'received', 'qty', g) END
                 ORDER BY g) AS events
  FROM generate_series(1, 300) g;
SELECT version AS b_before, available AS b_available_before FROM stock WHERE sku = 'B' AND location = 'W1' \gset
-- A run's events carry its subtransaction id (xmin); events applied one at
-- a time, the transaction's own. Here the run 1-64 is kept, the run 65-192
-- is rolled back at 150 (the 85 event ids it drew stay unused), and 65-300
-- go one at a time: two ids.
CREATE TEMP TABLE run_out AS SELECT * FROM ingest((SELECT events FROM run_batch));
SELECT count(DISTINCT e.xmin::text) AS writing_transaction_ids, max(e.id) - min(e.id) + 1 - count(*) AS unused_event_ids
  FROM event e JOIN run_out o ON o.event_id = e.id WHERE o.status = 'applied';
SELECT status, count(*), string_agg(ordinal::text, ',' ORDER BY ordinal) FILTER (WHERE status = 'dead_lettered') AS at,
       string_agg(DISTINCT sqlstate, ',') AS sqlstates
  FROM run_out GROUP BY status ORDER BY status;
SELECT bool_and(version = :b_before + n AND id_rank = n) AS applied_in_order
  FROM (SELECT version, row_number() OVER (ORDER BY ordinal) AS n, rank() OVER (ORDER BY event_id) AS id_rank
          FROM run_out WHERE status = 'applied') x;
SELECT (SELECT available FROM stock WHERE sku = 'B' AND location = 'W1') - :b_available_before
         = (SELECT sum(ordinal) FROM run_out WHERE status = 'applied') AS stock_has_every_applied_event,
       (SELECT count(*) FROM dead_letter WHERE batch_ordinal IN (150, 151, 300) AND sqlstate = '22023') AS dead_letters;
-- Runs start only while the transaction has fewer than 32 subtransaction
-- ids: of 40 one-element batches in one transaction, 32 are runs, each with
-- an id of its own, and the other 8 go one element at a time (the
-- transaction's id).
SELECT max(id) AS id_before FROM event \gset
DO $$ BEGIN FOR i IN 1..40 LOOP
  PERFORM * FROM inventory_events.ingest('[{"sku": "B", "location": "W1", "event_type": "received", "qty": 1}]');
END LOOP; END $$;
SELECT count(DISTINCT xmin::text) AS writing_transaction_ids, count(*) AS events FROM event WHERE id > :id_before;
-- An error while an event is written (here a DBA's CHECK on the log) fails
-- the call, as it did one element at a time: nothing of the batch is applied.
ALTER TABLE event ADD CONSTRAINT qty_below_1000 CHECK (qty < 1000);
SELECT count(*) AS b_events FROM event WHERE sku = 'B' \gset
\set VERBOSITY terse
SELECT * FROM ingest('[{"sku": "B", "location": "W1", "event_type": "received", "qty": 1},
                       {"sku": "B", "location": "W1", "event_type": "received", "qty": 1000}]');
\set VERBOSITY default
SELECT count(*) = :b_events AS nothing_applied FROM event WHERE sku = 'B';
ALTER TABLE event DROP CONSTRAINT qty_below_1000;
SELECT * FROM verify();

DROP EXTENSION inventory_events;
