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

DROP EXTENSION inventory_events;
