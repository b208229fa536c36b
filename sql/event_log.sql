-- The event log: master data, every event type's effect, units, late counts,
-- idempotency, versions, append-only, and every error with its SQLSTATE.
CREATE EXTENSION inventory_events;
SET search_path = inventory_events, public;

-- try(sql): runs a statement and shows its SQLSTATE and message, or 'ok'.
CREATE FUNCTION pg_temp.try(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

-- stream(sku, location, lot): the position as one line.
CREATE FUNCTION pg_temp.stream(s text, l text, lt text DEFAULT '') RETURNS text LANGUAGE sql AS $$
    SELECT format('v%s on_hand=%s %s', version, on_hand, inventory_events.position_of(stock.*))
      FROM inventory_events.stock WHERE sku = s AND location = l AND lot = lt $$;

-- Master data, plain INSERT with defaults.
INSERT INTO item (sku) VALUES ('WIDGET');
INSERT INTO item (sku, description, lot_controlled) VALUES ('SERUM', 'lot-controlled', true);
INSERT INTO item_uom (sku, uom, factor) VALUES ('WIDGET', 'CS', 12), ('WIDGET', 'PL', 480);
INSERT INTO location (code) VALUES ('DC1'), ('DC2');
INSERT INTO location (code, kind, parent) VALUES ('STORE9', 'store', 'DC1');
INSERT INTO lot (sku, lot, expires_on) VALUES ('SERUM', 'S1', '2099-12-31'), ('SERUM', 'S0', '2000-01-01');
INSERT INTO channel (code) VALUES ('shopify');
SELECT code, kind, buffer_fixed, buffer_pct, allocation_pct, cap, publish_interval FROM channel;

-- Every event type's effect.
SELECT append('WIDGET', 'DC1', 'received', 100, occurred_at => '2026-01-01 08:00Z');
SELECT pg_temp.stream('WIDGET', 'DC1');
SELECT append_lifecycle('WIDGET', 'DC1', 'reserved', 10, occurred_at => '2026-01-01 09:00Z', channel => 'shopify', ref => 'SO-1');
SELECT append_lifecycle('WIDGET', 'DC1', 'released', 2, occurred_at => '2026-01-01 09:10Z');
SELECT append_lifecycle('WIDGET', 'DC1', 'picked', 6, occurred_at => '2026-01-01 09:20Z');
SELECT append_lifecycle('WIDGET', 'DC1', 'shipped', 5, occurred_at => '2026-01-01 09:30Z');
SELECT append_lifecycle('WIDGET', 'DC1', 'pick_short', 1, occurred_at => '2026-01-01 09:40Z');
SELECT append('WIDGET', 'DC1', 'returned', 3, occurred_at => '2026-01-01 09:50Z');
SELECT append('WIDGET', 'DC1', 'damaged', 4, occurred_at => '2026-01-01 10:00Z');
SELECT append('WIDGET', 'DC1', 'moved', 2, from_bucket => 'quarantine', to_bucket => 'available', occurred_at => '2026-01-01 10:10Z');
SELECT append('WIDGET', 'DC1', 'moved', 1, from_bucket => 'damaged', occurred_at => '2026-01-01 10:20Z', reason => 'write-off');
SELECT append('WIDGET', 'DC1', 'inbound_expected', 50, expected_date => '2026-02-01', occurred_at => '2026-01-01 10:30Z', ref => 'PO-7');
SELECT append('WIDGET', 'DC1', 'inbound_cancelled', 20, occurred_at => '2026-01-01 10:40Z', ref => 'PO-7');
SELECT append('WIDGET', 'DC1', 'transfer_out', 10, occurred_at => '2026-01-01 10:50Z', ref => 'TR-1');
SELECT append('WIDGET', 'DC2', 'transfer_in_transit', 10, occurred_at => '2026-01-01 10:50Z', ref => 'TR-1');
SELECT append('WIDGET', 'DC2', 'transfer_received', 10, occurred_at => '2026-01-01 14:00Z', ref => 'TR-1');
SELECT append('WIDGET', 'DC1', 'adjusted', -3, occurred_at => '2026-01-01 11:00Z', reason => 'shrink');
SELECT append('WIDGET', 'DC1', 'adjusted', 1, occurred_at => '2026-01-01 11:10Z');
SELECT append('WIDGET', 'DC1', 'safety_stock_set', 5, occurred_at => '2026-01-01 11:20Z');
SELECT id, version, event_type, from_bucket, to_bucket, qty, effect FROM event ORDER BY id;
SELECT pg_temp.stream('WIDGET', 'DC1'), pg_temp.stream('WIDGET', 'DC2');
SELECT sku, location, on_hand, available, reserved, picked, damaged, quarantine, in_transit, inbound, safety_stock, atp
  FROM stock_by_location ORDER BY 1, 2;

-- Units: a case is 12, a pallet 480; the event keeps the quantity as given.
SELECT append('WIDGET', 'DC2', 'received', 2, uom => 'CS', occurred_at => '2026-01-01 12:00Z');
SELECT append('WIDGET', 'DC2', 'received', 1, uom => 'EA', occurred_at => '2026-01-01 12:05Z');
SELECT uom, uom_qty, qty FROM event WHERE location = 'DC2' AND event_type = 'received' ORDER BY id;
SELECT pg_temp.try($$SELECT append('WIDGET', 'DC2', 'received', 1, uom => 'BOX')$$);
SELECT pg_temp.try($$SELECT append('WIDGET', 'DC2', 'received', 19215358410114560, uom => 'PL')$$);

-- A late count: "on-hand was 40 at 11:30" arrives after movements at 12:00
-- and 13:00; those stay applied.
SELECT append('WIDGET', 'DC1', 'received', 7, occurred_at => '2026-01-01 12:00Z');
SELECT append_lifecycle('WIDGET', 'DC1', 'shipped', 1, occurred_at => '2026-01-01 13:00Z');
SELECT on_hand(position_as_of('WIDGET', 'DC1', '2026-01-01 11:30Z')) AS on_hand_at_1130,
       (SELECT on_hand FROM stock WHERE sku = 'WIDGET' AND location = 'DC1') AS on_hand_now;
SELECT append('WIDGET', 'DC1', 'counted', 40, occurred_at => '2026-01-01 11:30Z');
SELECT qty AS counted, effect FROM event WHERE event_type = 'counted';
SELECT on_hand(position_as_of('WIDGET', 'DC1', '2026-01-01 11:30Z')) AS on_hand_at_1130,
       (SELECT on_hand FROM stock WHERE sku = 'WIDGET' AND location = 'DC1') AS on_hand_now;
-- A count that matches changes nothing but is recorded.
SELECT append('WIDGET', 'DC1', 'counted', 40, occurred_at => '2026-01-01 11:30Z');
SELECT effect FROM event WHERE event_type = 'counted' ORDER BY id DESC LIMIT 1;

-- Lots: required for lot-controlled items, refused for others; expired lots
-- are not available.
SELECT append('SERUM', 'DC1', 'received', 10, lot => 'S1');
SELECT append('SERUM', 'DC1', 'received', 4, lot => 'S0');
SELECT append('SERUM', 'DC1', 'safety_stock_set', 3);
SELECT pg_temp.stream('SERUM', 'DC1', 'S1'), pg_temp.stream('SERUM', 'DC1', '');
SELECT sku, location, on_hand, available, expired, safety_stock, atp FROM stock_by_location WHERE sku = 'SERUM';
SELECT sku, on_hand, available, expired, atp FROM stock_by_sku ORDER BY sku;
SELECT pg_temp.try($$SELECT append('SERUM', 'DC1', 'received', 1)$$);
SELECT pg_temp.try($$SELECT append('SERUM', 'DC1', 'received', 1, lot => 'S9')$$);
SELECT pg_temp.try($$SELECT append('WIDGET', 'DC1', 'received', 1, lot => 'S1')$$);
SELECT pg_temp.try($$SELECT append('SERUM', 'DC1', 'safety_stock_set', 1, lot => 'S1')$$);

-- Idempotency: a retry returns the original id and applies nothing.
SELECT append('WIDGET', 'DC2', 'received', 5, source => 'wms', idempotency_key => 'rcpt-1') AS first;
SELECT append('WIDGET', 'DC2', 'received', 5, source => 'wms', idempotency_key => 'rcpt-1') AS retry;
SELECT count(*) FROM event WHERE idempotency_key = 'rcpt-1';
-- The same key from another source is another event.
SELECT append('WIDGET', 'DC2', 'received', 5, source => 'edi', idempotency_key => 'rcpt-1') > 0 AS other_source;
-- The same key with other content is an error (IE003).
SELECT pg_temp.try($$SELECT append('WIDGET', 'DC2', 'received', 6, source => 'wms', idempotency_key => 'rcpt-1')$$);
SELECT pg_temp.try($$SELECT append('WIDGET', 'DC1', 'received', 5, source => 'wms', idempotency_key => 'rcpt-1')$$);
SELECT pg_temp.try($$SELECT append('WIDGET', 'DC2', 'received', 5, source => 'wms', idempotency_key => 'rcpt-1', ref => 'X')$$);

-- Optimistic concurrency: expected_version is the stream's current version.
SELECT version FROM stock WHERE sku = 'WIDGET' AND location = 'DC2';
SELECT pg_temp.try($$SELECT append('WIDGET', 'DC2', 'received', 1, expected_version => 3)$$);
-- A refused event spends no event id.
SELECT last_value AS seq_before FROM event_id_seq \gset
SELECT pg_temp.try($$SELECT append('WIDGET', 'DC2', 'received', 1, expected_version => 7)$$);
SELECT last_value = :seq_before AS no_id_spent FROM event_id_seq;
SELECT append('WIDGET', 'DC2', 'received', 1, expected_version => 6) > 0 AS accepted;
SELECT append('WIDGET', 'NEWLOC', 'received', 1, expected_version => 0) FROM (SELECT 1) x WHERE false;
INSERT INTO location (code) VALUES ('DC3');
SELECT append('WIDGET', 'DC3', 'received', 1, expected_version => 0) > 0 AS new_stream_at_version_0;

-- Errors, each with its SQLSTATE; none leaves anything behind.
SELECT count(*) AS events_before FROM event \gset
SELECT pg_temp.try($$SELECT append('NOPE', 'DC1', 'received', 1)$$);
SELECT pg_temp.try($$SELECT append('WIDGET', 'NOPE', 'received', 1)$$);
SELECT pg_temp.try($$SELECT append('WIDGET', 'DC1', 'received', 1, channel => 'nope')$$);
SELECT pg_temp.try($$SELECT append(NULL, 'DC1', 'received', 1)$$);
SELECT pg_temp.try($$SELECT append('WIDGET', 'DC1', NULL, 1)$$);
SELECT pg_temp.try($$SELECT append('WIDGET', 'DC1', 'received', NULL)$$);
SELECT pg_temp.try($$SELECT append('WIDGET', 'DC1', 'received', 0)$$);
SELECT pg_temp.try($$SELECT append('WIDGET', 'DC1', 'received', -1)$$);
SELECT pg_temp.try($$SELECT append('WIDGET', 'DC1', 'adjusted', 0)$$);
SELECT pg_temp.try($$SELECT append('WIDGET', 'DC1', 'counted', -1)$$);
SELECT pg_temp.try($$SELECT append('WIDGET', 'DC1', 'received', 1, to_bucket => 'damaged')$$);
SELECT pg_temp.try($$SELECT append('WIDGET', 'DC1', 'moved', 1)$$);
SELECT pg_temp.try($$SELECT append_lifecycle('WIDGET', 'DC1', 'moved', 1, from_bucket => 'picked', to_bucket => 'picked')$$);
SELECT pg_temp.try($$SELECT append('WIDGET', 'DC1', 'received', 1, expected_date => '2026-03-01')$$);
SELECT pg_temp.try($$SELECT append_lifecycle('WIDGET', 'DC1', 'reserved', 1000)$$);
SELECT pg_temp.try($$SELECT append_lifecycle('WIDGET', 'DC1', 'picked', 1000)$$);
SELECT pg_temp.try($$SELECT append('WIDGET', 'DC1', 'inbound_cancelled', 1000)$$);
SELECT pg_temp.try($$SELECT append('WIDGET', 'DC2', 'transfer_received', 1000)$$);
SELECT pg_temp.try($$SELECT append('WIDGET', 'DC1', 'received', 9223372036854775807)$$);
SELECT count(*) = :events_before AS nothing_appended FROM event;
SELECT * FROM verify();

-- Adjustments and counts may take available below zero (physical truth);
-- movements may not.
SELECT append('WIDGET', 'DC3', 'adjusted', -5);
SELECT pg_temp.stream('WIDGET', 'DC3');

-- Correlation and causation ids: generated when absent, kept when given.
SELECT correlation_id IS NOT NULL AND causation_id = correlation_id AS generated
  FROM event WHERE location = 'DC3' ORDER BY id DESC LIMIT 1;
SELECT append('WIDGET', 'DC3', 'received', 5, correlation_id => 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
              causation_id => 'b0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12', source_seq => 42,
              payload => '{"asn": "X1"}') > 0;
SELECT correlation_id, causation_id, source_seq, payload FROM event ORDER BY id DESC LIMIT 1;
-- The top transaction id is recorded.
SELECT count(*) = count(DISTINCT xid) AS one_xid_per_transaction,
       bool_and(xid < pg_current_xact_id()) AS xids_in_the_past FROM event;

-- Append-only: UPDATE, DELETE and TRUNCATE are refused (IE004), even for a superuser ...
SELECT pg_temp.try($$UPDATE event SET qty = 0$$);
SELECT pg_temp.try($$DELETE FROM event$$);
SELECT pg_temp.try($$TRUNCATE event$$);
-- ... in every session_replication_role (the guard is enabled ALWAYS) ...
SET session_replication_role = replica;
SELECT pg_temp.try($$UPDATE event SET qty = 0$$);
SELECT pg_temp.try($$DELETE FROM event$$);
SELECT pg_temp.try($$TRUNCATE event$$);
RESET session_replication_role;
SELECT tgname, tgenabled FROM pg_trigger WHERE tgrelid = 'event'::regclass AND NOT tgisinternal ORDER BY 1;
-- ... unless the superuser disables the guard, which is logged per row.
SET inventory_events.allow_history_rewrite = on;
UPDATE event SET reason = 'corrected' WHERE id = 1;
RESET inventory_events.allow_history_rewrite;
SELECT reason FROM event WHERE id = 1;
-- A direct INSERT must carry the stream's next version.
SELECT pg_temp.try($$INSERT INTO event (sku, location, version, event_type, qty, uom, uom_qty, effect,
                      occurred_at, correlation_id, causation_id)
                      VALUES ('WIDGET', 'DC3', 99, 'received', 1, 'EA', 1, '(available=1)', now(),
                              gen_random_uuid(), gen_random_uuid())$$);
-- Master data in use cannot be deleted.
SELECT pg_temp.try($$DELETE FROM location WHERE code = 'DC3'$$);
SELECT * FROM verify();
-- A CHECK constraint a DBA adds to stock is enforced; nothing of the refused event stays.
ALTER TABLE stock ADD CONSTRAINT dc3_at_most_a_million CHECK (location <> 'DC3' OR available <= 1000000);
SELECT version AS dc3_version FROM stock WHERE sku = 'WIDGET' AND location = 'DC3' \gset
SELECT pg_temp.try($$SELECT append('WIDGET', 'DC3', 'received', 1000000)$$);
SELECT version = :dc3_version AS unchanged FROM stock WHERE sku = 'WIDGET' AND location = 'DC3';
ALTER TABLE stock DROP CONSTRAINT dc3_at_most_a_million;

-- Within one transaction: a savepoint rolled back in the middle, an
-- exception block, many appends in one statement, and DDL after appends.
BEGIN;
SELECT append('WIDGET', 'DC3', 'received', 1) > 0 AS appended;
SAVEPOINT s1;
SELECT append_lifecycle('WIDGET', 'DC3', 'reserved', 100000);
ROLLBACK TO SAVEPOINT s1;
SELECT append('WIDGET', 'DC3', 'received', 1) > 0 AS appended;
DO $$
BEGIN
    PERFORM inventory_events.append_lifecycle('WIDGET', 'DC3', 'reserved', 100000);
EXCEPTION WHEN SQLSTATE 'IE001' THEN
    RAISE NOTICE 'refused in an exception block';
END $$;
SELECT count(*) AS appended FROM (SELECT append('WIDGET', 'DC3', 'received', 1) FROM generate_series(1, 50)) x;
ALTER TABLE stock SET (fillfactor = 70);
SELECT append('WIDGET', 'DC3', 'received', 1) > 0 AS appended_after_ddl;
COMMIT;
SELECT * FROM verify();
SELECT version, available FROM stock WHERE sku = 'WIDGET' AND location = 'DC3';

BEGIN;
SELECT append('WIDGET', 'DC3', 'received', 1) > 0 AS appended;
DROP EXTENSION inventory_events;
COMMIT;
