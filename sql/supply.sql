-- Transfers, purchase-order receipts, returns and the time-phased B2B view,
-- with every error and its SQLSTATE.
CREATE EXTENSION inventory_events;
SET search_path = inventory_events, public;

CREATE FUNCTION pg_temp.try(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

CREATE FUNCTION pg_temp.pos(s text, l text) RETURNS text LANGUAGE sql AS $$
    SELECT format('available=%s in_transit=%s inbound=%s quarantine=%s on_hand=%s',
                  available, in_transit, inbound, quarantine, on_hand)
      FROM inventory_events.stock WHERE sku = s AND location = l AND lot = '' $$;

INSERT INTO item (sku) VALUES ('CAP'), ('TEE');
INSERT INTO location (code) VALUES ('W1'), ('W2'), ('W3');
INSERT INTO channel (code, kind, future_view, horizon, allow_backorders)
VALUES ('portal', 'b2b_portal', true, '60 days', true);
INSERT INTO channel (code, kind) VALUES ('web', 'storefront');
INSERT INTO channel_location (channel, location, priority) VALUES ('portal', 'W1', 1), ('portal', 'W2', 1), ('web', 'W1', 1);
SELECT append('CAP', 'W1', 'received', 10) > 0;

-- A transfer: out at the source now, in transit at the destination until received.
SELECT event_type, location, qty FROM transfer('CAP', 'W1', 'W2', 4, 'T-1', current_date + 3);
SELECT pg_temp.pos('CAP', 'W1') AS w1, pg_temp.pos('CAP', 'W2') AS w2;
SELECT expected_date - current_date AS days FROM event WHERE ref = 'T-1' AND event_type = 'transfer_in_transit';
-- Idempotent with a key; the retry returns the same two events.
SELECT event_type, qty FROM transfer('CAP', 'W1', 'W3', 1, 'T-2', source => 'wms', idempotency_key => 'tr-2');
SELECT event_type, qty FROM transfer('CAP', 'W1', 'W3', 1, 'T-2', source => 'wms', idempotency_key => 'tr-2');
-- Its key for another transfer, or for a receipt: a conflict (IE003).
SELECT pg_temp.try($$SELECT * FROM transfer('CAP', 'W1', 'W3', 1, 'T-3', source => 'wms', idempotency_key => 'tr-2')$$);
SELECT pg_temp.try($$SELECT receive_transfer('CAP', 'W3', 1, 'T-2', source => 'wms', idempotency_key => 'tr-2')$$);
SELECT pg_temp.try($$SELECT * FROM receive_po('CAP', 'W3', 1, 'T-2', source => 'wms', idempotency_key => 'tr-2')$$);
SELECT count(*) AS t2_events FROM event WHERE ref = 'T-2';
-- Receiving part of it, then the rest; never more than is in transit for that ref.
SELECT receive_transfer('CAP', 'W2', 3, 'T-1') > 0;
SELECT pg_temp.try($$SELECT receive_transfer('CAP', 'W2', 2, 'T-1')$$);
SELECT pg_temp.try($$SELECT receive_transfer('CAP', 'W2', 1, 'T-9')$$);
SELECT receive_transfer('CAP', 'W2', 1, 'T-1', source => 'wms', idempotency_key => 'rt-1') AS id \gset
SELECT receive_transfer('CAP', 'W2', 1, 'T-1', source => 'wms', idempotency_key => 'rt-1') = :id AS same_event;
SELECT pg_temp.pos('CAP', 'W2') AS w2;
SELECT pg_temp.try($$SELECT * FROM transfer('CAP', 'W1', 'W1', 1, 'T-3')$$);
SELECT pg_temp.try($$SELECT * FROM transfer('CAP', 'W1', 'W2', 1, NULL)$$);
SELECT pg_temp.try($$SELECT * FROM transfer('CAP', 'W1', 'W2', 100, 'T-4')$$);
SELECT count(*) AS t4_events FROM event WHERE ref = 'T-4';

-- Purchase orders: inbound by expected date; a receipt takes the line's open
-- quantity to available (never below zero), any excess is a plain receipt.
SELECT append('TEE', 'W1', 'inbound_expected', 10, ref => 'PO-1/1', expected_date => current_date + 10) > 0,
       append('TEE', 'W2', 'inbound_expected', 5, ref => 'PO-2/1', expected_date => current_date + 20) > 0,
       append('TEE', 'W3', 'inbound_expected', 7, ref => 'PO-3/1', expected_date => current_date + 5) > 0;
SELECT event_type, qty FROM receive_po('TEE', 'W1', 4, 'PO-1/1');
SELECT pg_temp.pos('TEE', 'W1') AS w1;
SELECT event_type, qty FROM receive_po('TEE', 'W1', 9, 'PO-1/1');
SELECT pg_temp.pos('TEE', 'W1') AS w1;
SELECT event_type, qty FROM receive_po('TEE', 'W1', 2, 'PO-1/1');
SELECT event_type, qty FROM receive_po('TEE', 'W2', 1, 'PO-2/1', source => 'wms', idempotency_key => 'po-2');
SELECT event_type, qty FROM receive_po('TEE', 'W2', 1, 'PO-2/1', source => 'wms', idempotency_key => 'po-2');
SELECT pg_temp.try($$SELECT * FROM receive_po('TEE', 'W2', 1, 'PO-3/1', source => 'wms', idempotency_key => 'po-2')$$);
SELECT pg_temp.try($$SELECT * FROM receive_po('TEE', 'W1', 0, 'PO-1/1')$$);

-- Returns: into quarantine; then restocked or written off.
SELECT receive_return('TEE', 'W1', 3, 'RMA-1', channel => 'web', reason => 'wrong size') > 0;
SELECT pg_temp.pos('TEE', 'W1') AS w1;
SELECT dispose_return('TEE', 'W1', 2, 'restock', 'RMA-1') > 0, dispose_return('TEE', 'W1', 1, 'write_off', 'RMA-1') > 0;
SELECT pg_temp.pos('TEE', 'W1') AS w1;
SELECT event_type, from_bucket, to_bucket, qty, reason FROM event WHERE ref = 'RMA-1' ORDER BY id;
SELECT pg_temp.try($$SELECT dispose_return('TEE', 'W1', 1, 'donate')$$);
SELECT pg_temp.try($$SELECT dispose_return('TEE', 'W1', 1, 'restock')$$);

-- The time-phased view: ATP today, then open PO lines and transfers to the
-- channel's locations by expected date (W3 is not one of them).
SELECT append('TEE', 'W2', 'received', 2) > 0;
SELECT append('TEE', 'W1', 'transfer_in_transit', 6, ref => 'T-5', expected_date => current_date + 2) > 0;
SELECT available_on - current_date AS day, supply, demand, cumulative, available
  FROM availability_timeline('portal', 'TEE');
-- Backorders consume the earliest supply, so no unit is promised twice.
SELECT status, qty FROM reserve('portal', 'TEE', 25, 'B-1');
SELECT available_on - current_date AS day, supply, demand, cumulative, available
  FROM availability_timeline('portal', 'TEE');
-- A shorter horizon; a date's figure goes through the channel's rules.
SELECT available_on - current_date AS day, cumulative FROM availability_timeline('portal', 'TEE', '15 days');
UPDATE channel SET buffer_fixed = 2 WHERE code = 'portal';
SELECT available_on - current_date AS day, cumulative, available FROM availability_timeline('portal', 'TEE');
-- An overdue line counts today.
SELECT append('CAP', 'W1', 'inbound_expected', 3, ref => 'PO-9/1', expected_date => current_date - 5) > 0;
SELECT available_on - current_date AS day, supply FROM availability_timeline('portal', 'CAP');
SELECT pg_temp.try($$SELECT * FROM availability_timeline('web', 'TEE')$$);
SELECT pg_temp.try($$SELECT * FROM availability_timeline('nope', 'TEE')$$);
SELECT pg_temp.try($$SELECT * FROM availability_timeline('portal', 'TEE', '-1 day')$$);

SELECT count(*) AS inconsistent_streams FROM verify();
DROP EXTENSION inventory_events;
