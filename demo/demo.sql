-- inventory_events demo scenario (run by tools/demo.sh on a throw-away cluster).
\pset footer off
\pset null '(null)'
SET search_path = inventory_events, public;

\echo '=== 1. Install the extension'
CREATE EXTENSION inventory_events;
SELECT extname AS extension, extversion AS version, inventory_events.library_version() AS library
  FROM pg_extension WHERE extname = 'inventory_events';
\echo 'The log is partitioned by month of recording: this month and three ahead (the worker keeps them ahead):'
SELECT count(*) AS partitions_made FROM inventory_events.create_partitions();

\echo
\echo '=== 2. The server settings it runs with'
SELECT name, setting
  FROM pg_settings
 WHERE name IN ('shared_preload_libraries', 'wal_level', 'output_plugin_libraries',
                'inventory_events.database')
 ORDER BY name;

\echo
\echo '=== 3. Master data from the ERP (plain INSERT / COPY)'
INSERT INTO item (sku, description) VALUES
    ('TSHIRT-BLK-M', 'T-shirt, black, M'),
    ('MUG-WHT', 'Mug, white');
INSERT INTO item (sku, description, lot_controlled) VALUES ('VITC-60', 'Vitamin C, 60 tablets', true);
INSERT INTO item_uom (sku, uom, factor) VALUES ('TSHIRT-BLK-M', 'CS', 24), ('MUG-WHT', 'CS', 12);
INSERT INTO lot (sku, lot, expires_on) VALUES ('VITC-60', 'L2027A', '2027-06-30'), ('VITC-60', 'L2024Z', '2024-12-31');
-- The warehouses sit under two regions, both of one legal entity.
INSERT INTO entity (code, description) VALUES ('DIST-US', 'Distributor US, Inc.');
INSERT INTO location (code, kind, description, entity) VALUES
    ('US-WEST', 'region', 'West', 'DIST-US'), ('US-EAST', 'region', 'East and Central', 'DIST-US');
INSERT INTO location (code, kind, description, parent) VALUES
    ('DAL', 'warehouse', 'Dallas DC', 'US-EAST'), ('RNO', 'warehouse', 'Reno DC', 'US-WEST'),
    ('ATL', '3pl', 'Atlanta 3PL', 'US-EAST');
SELECT sku, description, base_uom, lot_controlled FROM item ORDER BY sku;
SELECT location, node, depth, owner FROM location_tree WHERE depth > 0 ORDER BY node, location;

\echo
\echo '=== 4. The WMS receives stock at three warehouses (cases converted to units)'
SELECT append('TSHIRT-BLK-M', 'DAL', 'received', 10, uom => 'CS', source => 'wms-dal', idempotency_key => 'ASN-1001/1',
              occurred_at => now() - interval '3 hours', ref => 'PO-501') AS event_id;
SELECT append('TSHIRT-BLK-M', 'RNO', 'received', 6, uom => 'CS', source => 'wms-rno', idempotency_key => 'ASN-2001/1',
              occurred_at => now() - interval '3 hours', ref => 'PO-502') AS event_id;
SELECT append('TSHIRT-BLK-M', 'ATL', 'received', 100, source => '3pl-atl', idempotency_key => 'RCV-77',
              occurred_at => now() - interval '3 hours') AS event_id;
SELECT append('MUG-WHT', 'DAL', 'received', 5, uom => 'CS', source => 'wms-dal', idempotency_key => 'ASN-1001/2',
              occurred_at => now() - interval '3 hours') AS event_id;
SELECT append('VITC-60', 'RNO', 'received', 80, lot => 'L2027A', source => 'wms-rno', idempotency_key => 'ASN-2001/2',
              occurred_at => now() - interval '3 hours') AS event_id;
SELECT append('VITC-60', 'RNO', 'received', 20, lot => 'L2024Z', source => 'wms-rno', idempotency_key => 'ASN-2001/3',
              occurred_at => now() - interval '3 hours') AS event_id;

\echo
\echo '=== 5. The Reno WMS retries a receipt after a timeout: same id back, applied once'
SELECT append('TSHIRT-BLK-M', 'RNO', 'received', 6, uom => 'CS', source => 'wms-rno', idempotency_key => 'ASN-2001/1',
              occurred_at => now() - interval '3 hours', ref => 'PO-502') AS event_id_of_retry;
SELECT count(*) AS events_with_that_key, sum(qty) AS units FROM event WHERE source = 'wms-rno' AND idempotency_key = 'ASN-2001/1';

\echo
\echo '=== 6. The warehouse''s own movements: an audit write-off, a return, safety stock'
\echo '(orders move stock through reserve(), pick() and ship(): section 12 on)'
SELECT append('TSHIRT-BLK-M', 'DAL', 'adjusted', -30, reason => 'audit: shrinkage', occurred_at => now() - interval '100 minutes') AS adjusted;
SELECT append('TSHIRT-BLK-M', 'DAL', 'returned', 2, ref => 'RMA-12', occurred_at => now() - interval '80 minutes') AS returned;
SELECT append('TSHIRT-BLK-M', 'DAL', 'safety_stock_set', 20, reason => 'peak season') AS safety_stock;

\echo
\echo '=== 7. A late cycle count: "Dallas had 205 on hand two hours ago", recorded now'
SELECT on_hand(position_as_of('TSHIRT-BLK-M', 'DAL', now() - interval '2 hours')) AS system_on_hand_2h_ago;
SELECT append('TSHIRT-BLK-M', 'DAL', 'counted', 205, source => 'cycle-count', occurred_at => now() - interval '2 hours') AS count_event;
SELECT qty AS counted, available(effect) AS adjustment_applied
  FROM event WHERE event_type = 'counted';
\echo '(the write-off and the return recorded after the count stay applied)'

\echo
\echo '=== 8. Refused, with a clear error and nothing applied (a raw reservation event is refused: reserve() owns those)'
\set ON_ERROR_STOP off
SELECT append('MUG-WHT', 'RNO', 'reserved', 1);
SELECT append('TSHIRT-BLK-M', 'DAL', 'received', 1, source => 'wms-dal', idempotency_key => 'ASN-1001/1');
SELECT append('NO-SUCH-SKU', 'DAL', 'received', 1);
UPDATE event SET qty = 0;
\set ON_ERROR_STOP on

\echo
\echo '=== 9. A middleware batch: valid events applied, bad ones dead-lettered'
SELECT ordinal, status, event_id, sqlstate, message FROM ingest($$[
  {"sku": "MUG-WHT", "location": "RNO", "event_type": "received", "qty": 2, "uom": "CS", "source": "erp", "idempotency_key": "T-1"},
  {"sku": "MUG-WHT", "location": "XXX", "event_type": "received", "qty": 1, "source": "erp", "idempotency_key": "T-2"},
  {"sku": "MUG-WHT", "location": "RNO", "event_type": "received", "qty": 2, "uom": "CS", "source": "erp", "idempotency_key": "T-1"}
]$$);
SELECT batch_ordinal, sqlstate, message FROM dead_letter;

\echo
\echo '=== 10. Stock positions, derived in the same transactions as the events'
SELECT sku, location, lot, available, reserved, picked, quarantine, on_hand, version
  FROM stock ORDER BY sku, location, lot;
\echo
\echo 'Per sku and location (expired lots excluded from available, ATP = available - safety stock):'
SELECT sku, location, on_hand, available, expired, safety_stock, atp FROM stock_by_location ORDER BY sku, location;
\echo 'Rolled up by region:'
SELECT node AS region, sku, on_hand, available FROM stock_by_node WHERE node LIKE 'US-%' ORDER BY node, sku;

\echo
\echo '=== 11. Four sales channels over three warehouses, each with its own rules'
INSERT INTO channel (code, kind, description) VALUES ('shopify', 'storefront', 'own web shop');
INSERT INTO channel (code, kind, description, allocation_pct, buffer_fixed)
     VALUES ('amazon', 'marketplace', '60% of stock, keep 5 back', 60, 5);
INSERT INTO channel (code, kind, description, buffer_pct, cap, allow_split)
     VALUES ('target-edi', 'edi_partner', '10% buffer, at most 100, one warehouse per line', 10, 100, false);
INSERT INTO channel (code, kind, description, allow_backorders, future_view, horizon)
     VALUES ('b2b-portal', 'b2b_portal', 'backorders, 60-day future view', true, true, '60 days');
INSERT INTO channel_location (channel, location, priority) VALUES
    ('shopify', 'DAL', 1), ('shopify', 'RNO', 2),
    ('amazon', 'DAL', 1), ('amazon', 'RNO', 2), ('amazon', 'ATL', 3),
    ('target-edi', 'ATL', 1),
    ('b2b-portal', 'DAL', 1), ('b2b-portal', 'RNO', 1);
-- A gift set sold on the web shop: one T-shirt and two mugs.
INSERT INTO item (sku, description) VALUES ('GIFT-SET', 'T-shirt and two mugs');
INSERT INTO kit_component (kit, component, qty) VALUES ('GIFT-SET', 'TSHIRT-BLK-M', 1), ('GIFT-SET', 'MUG-WHT', 2);
-- Channels know items by identifiers of their own and sell only what they list: Amazon by ASIN,
-- Shopify by its inventory item ids, Target by its buyer's part numbers (the B2B portal lists nothing:
-- it sells everything its warehouses hold, under our skus).
INSERT INTO channel_item (channel, sku, channel_sku) VALUES
    ('amazon', 'TSHIRT-BLK-M', 'B0CX1TSHRT'), ('amazon', 'MUG-WHT', 'B0CX2MUGWT'),
    ('shopify', 'TSHIRT-BLK-M', '44012345678901'), ('shopify', 'MUG-WHT', '44012345678902'),
    ('shopify', 'GIFT-SET', '44012345678903'), ('shopify', 'VITC-60', '44012345678904'),
    ('target-edi', 'TSHIRT-BLK-M', '0049-TEE-BLK-M'), ('target-edi', 'MUG-WHT', '0049-MUG-WHT');
SELECT channel, channel_sku, sku FROM channel_item ORDER BY channel, sku;
SELECT code AS channel, description FROM channel ORDER BY code;
\echo
\echo 'What each channel may show, before the orders:'
CREATE TEMP TABLE shown_before AS
SELECT c.code AS channel, i.sku, channel_availability(c.code, i.sku) AS shown
  FROM channel c CROSS JOIN item i;
SELECT channel, sku, shown FROM shown_before ORDER BY channel, sku;

\echo
\echo '=== 12. Orders arrive from every channel'
\echo 'Shopify: 200 T-shirts (Dallas first, the rest from Reno: the channel allows splits)'
SELECT status, location, qty FROM reserve('shopify', 'TSHIRT-BLK-M', 200, 'SHOP-1001/1');
\echo 'Shopify: two gift sets (all components or nothing)'
SELECT status, sku, location, qty FROM reserve('shopify', 'GIFT-SET', 2, 'SHOP-1002/1');
\echo 'Amazon: a cart by ASIN that expires in 15 minutes, an order beyond what Amazon is shown (refused, IE005),'
\echo 'and an order for something Amazon does not list (refused, IE008)'
SELECT status, sku, location, qty FROM reserve('amazon', 'B0CX2MUGWT', 4, 'AMZ-77/1', expires_at => now() + interval '15 minutes');
\set ON_ERROR_STOP off
SELECT * FROM reserve('amazon', 'TSHIRT-BLK-M', 500, 'AMZ-78/1');
SELECT * FROM reserve('amazon', 'GIFT-SET', 1, 'AMZ-79/1');
\set ON_ERROR_STOP on
\echo 'Target (EDI): a two-line purchase order, locks taken for both lines at once; one line refused and recorded'
SELECT ordinal, status, sku, location, qty, message FROM reserve_lines($$[
  {"channel": "target-edi", "sku": "TSHIRT-BLK-M", "qty": 40, "ref": "EDI-850-5521/1"},
  {"channel": "target-edi", "sku": "MUG-WHT", "qty": 12, "ref": "EDI-850-5521/2"}
]$$);
\echo 'B2B portal: 150 T-shirts for a school, more than the portal shows: the rest is backordered'
SELECT status, location, qty FROM reserve('b2b-portal', 'TSHIRT-BLK-M', 150, 'B2B-3001/1');
\echo
\echo 'What each channel may show now (changes only):'
SELECT b.channel, b.sku, b.shown AS before, channel_availability(b.channel, b.sku) AS after
  FROM shown_before b
 WHERE b.shown <> channel_availability(b.channel, b.sku)
 ORDER BY b.channel, b.sku;

\echo
\echo '=== 13. The warehouse works the orders: pick, ship, a pick short, and serial numbers'
SELECT event_type, location, qty FROM pick('shopify', 'SHOP-1001/1');
SELECT event_type, location, qty FROM ship('shopify', 'SHOP-1001/1', 150);
SELECT event_type, location, qty FROM pick_short('target-edi', 'EDI-850-5521/1', 3, reason => 'bin A-14 empty');
SELECT ref, channel, qty, backordered, reserved, picked, shipped, short, status
  FROM reservation_status ORDER BY id;
\echo
\echo 'A serialized phone: every unit has a serial number, named when it is received and picked;'
\echo 'a ship ships what its order line picked; picking a serial that is already picked is refused (IE009)'
INSERT INTO item (sku, description, serialized) VALUES ('PHONE-X1', 'Phone X1 (serialized)', true);
INSERT INTO channel_item (channel, sku, channel_sku) VALUES ('shopify', 'PHONE-X1', '44012345678905');
SELECT append('PHONE-X1', 'DAL', 'received', 3, source => 'wms-dal', ref => 'PO-700/1',
              serials => ARRAY['IMEI-3501', 'IMEI-3502', 'IMEI-3503']) > 0 AS received;
SELECT status, location, qty FROM reserve('shopify', 'PHONE-X1', 1, 'SHOP-1003/1');
SELECT event_type, location, qty FROM pick('shopify', 'SHOP-1003/1', serials => ARRAY['IMEI-3502']);
SELECT status, location, qty FROM reserve('shopify', 'PHONE-X1', 1, 'SHOP-1004/1');
\set ON_ERROR_STOP off
SELECT * FROM pick('shopify', 'SHOP-1004/1', serials => ARRAY['IMEI-3502']);
\set ON_ERROR_STOP on
SELECT event_type, location, qty FROM release('shopify', 'SHOP-1004/1');
SELECT event_type, location, qty FROM ship('shopify', 'SHOP-1003/1');
SELECT serial, location, bucket, ref FROM serial WHERE sku = 'PHONE-X1' ORDER BY serial;
\echo 'Where IMEI-3502 came from and went (a recall in one call), and its history in one query:'
SELECT section, location, bucket, event_type, ref, channel, source FROM serial_trace('PHONE-X1', 'IMEI-3502');
SELECT version, event_type, location, bucket, ref FROM serial_history
 WHERE sku = 'PHONE-X1' AND serial = 'IMEI-3502' ORDER BY version;

\echo
\echo '=== 14. Supply on the way, and the B2B portal''s future view'
SELECT append('TSHIRT-BLK-M', 'RNO', 'inbound_expected', 200, ref => 'PO-610/1', expected_date => current_date + 10) AS po_line;
SELECT event_type, location, qty FROM transfer('TSHIRT-BLK-M', 'ATL', 'DAL', 30, 'TR-88', expected_date => current_date + 3);
\echo 'Cumulative availability by date (the backorder consumes the earliest supply first):'
SELECT * FROM availability_timeline('b2b-portal', 'TSHIRT-BLK-M');

\echo
\echo '=== 15. Stock arrives: the backorder is filled first come first served, in the receipt''s transaction'
SELECT receive_transfer('TSHIRT-BLK-M', 'DAL', 30, 'TR-88') AS transfer_received_event;
SELECT ref, backordered, reserved FROM reservation_status WHERE ref = 'B2B-3001/1';
SELECT event_type, qty FROM receive_po('TSHIRT-BLK-M', 'RNO', 200, 'PO-610/1');
SELECT ref, backordered, reserved FROM reservation_status WHERE ref = 'B2B-3001/1';
SELECT * FROM availability_timeline('b2b-portal', 'TSHIRT-BLK-M');

\echo
\echo '=== 16. A return, inspected and restocked; an expired cart released'
SELECT receive_return('MUG-WHT', 'DAL', 1, 'RMA-31', channel => 'amazon') AS returned,
       dispose_return('MUG-WHT', 'DAL', 1, 'restock', 'RMA-31') AS restocked;
UPDATE reservation SET expires_at = now() - interval '1 minute' WHERE ref = 'AMZ-77/1';
SELECT expire_reservations() AS expired;
SELECT ref, status, released FROM reservation_status WHERE ref = 'AMZ-77/1';

\echo
\echo '=== 17. Exceptions for a person to look at, with their age'
SELECT kind, sku, location, channel, ref, detail, age_bucket FROM exception_aging ORDER BY id;

\echo
\echo 'What each channel may show at the end:'
SELECT channel, sku, pool, available FROM channel_stock ORDER BY channel, sku;

\echo '=== 18. Channels hear about changes: the publisher worker, woken at commit, sends NOTIFY'
LISTEN "inventory_events.shopify";
SELECT append('MUG-WHT', 'DAL', 'received', 12, source => 'wms-dal', idempotency_key => 'ASN-1009/1') AS event_id;
SELECT pg_sleep(0.5);
\echo '(psql shows the notification above: only the latest sequence number. Any role can NOTIFY, so a listener'
\echo ' takes it as a wake-up and reads the values with publications_since(), which needs reader access)'
SELECT seq, sku, available FROM publications_since('shopify', 0) ORDER BY seq DESC LIMIT 3;
SELECT database, state, runs, publications FROM publisher_status();
UNLISTEN *;
\echo 'A rule change moves no event, yet reaches the channel: shopify now keeps 2 of every sku back,'
\echo 'and the publisher sends the new values without a republish() (then the rule is set back):'
SELECT coalesce(max(seq), 0) AS shopify_seq FROM publications_since('shopify', 0) \gset
UPDATE channel SET buffer_fixed = 2 WHERE code = 'shopify';
SELECT pg_sleep(1.5);
SELECT seq, sku, available FROM publications_since('shopify', :shopify_seq) ORDER BY seq;
UPDATE channel SET buffer_fixed = 0 WHERE code = 'shopify';
SELECT pg_sleep(1.5);
\echo
\echo 'The reference connector (tools/connector.py: LISTEN, catch up, acknowledge in a state file) run with --once;'
\echo 'the first run reads everything:'
\! /usr/bin/python3 "$IE_DEMO_CONNECTOR" --dsn 'port=5432 user=postgres dbname=postgres' --channel shopify --once --state-file "$HOME/shopify.state" > "$HOME/shopify.jsonl" && echo "$(wc -l < "$HOME/shopify.jsonl") publications; state file: $(cat "$HOME/shopify.state")"
SELECT append('MUG-WHT', 'DAL', 'received', 6, source => 'wms-dal', idempotency_key => 'ASN-1010/1') AS event_id;
SELECT pg_sleep(0.5);
\echo 'after another receipt, the next run reads only what is new (JSON lines):'
\! /usr/bin/python3 "$IE_DEMO_CONNECTOR" --dsn 'port=5432 user=postgres dbname=postgres' --channel shopify --once --state-file "$HOME/shopify.state"

\echo
\echo 'Target is a retail EDI partner: it receives an X12 846 Inventory Inquiry/Advice built from what its'
\echo 'channel shows (one segment per line here; the document itself has none):'
INSERT INTO edi_partner (channel, sender_id, receiver_id, by_location) VALUES ('target-edi', 'DISTRIB', '0049TARGET', true);
SELECT regexp_split_to_table(rtrim(edi_846('target-edi'), '~'), '~') AS "edi 846";

\echo
\echo '=== 19. A polling consumer catches up from its checkpoint (never skipping a late commit)'
SELECT next_checkpoint, id, sku, location, event_type, qty FROM events_after('0:0', 3);
SELECT next_checkpoint AS checkpoint FROM events_after('0:0', 3) ORDER BY id DESC LIMIT 1 \gset
\echo 'resuming after' :checkpoint
SELECT id, sku, location, event_type, qty FROM events_after(:'checkpoint', 4);

\echo
\echo '=== 20. Subscribers stream the log in commit order: the inventory_events output plugin'
SELECT 'slot created' FROM pg_create_logical_replication_slot('demo_stream', 'inventory_events');
SELECT append('MUG-WHT', 'DAL', 'received', 6, source => 'wms-dal', idempotency_key => 'ASN-DEMO-2/1') > 0 AS appended;
\echo 'one JSON object per line; begin/commit and the stream position on request (pg_recvlogical -o ...):'
SELECT data FROM pg_logical_slot_get_changes('demo_stream', NULL, NULL, 'include-xact', 'on', 'include-position', 'on',
                                             'include-publications', 'off');
SELECT pg_drop_replication_slot('demo_stream');

\echo
\echo '=== 21. Reconciliation: the Dallas WMS sends a full snapshot, compared with our books as of its cut-off'
UPDATE item SET abc_class = 'C', unit_cost = 4.50 WHERE sku IN ('TSHIRT-BLK-M', 'MUG-WHT');
INSERT INTO item (sku, description, abc_class, unit_cost) VALUES
    ('CAP-RED', 'Cap, red', 'A', 18.00), ('SOCK-GRY', 'Socks, grey', 'C', 2.00), ('BAG-TOTE', 'Tote bag', 'C', 3.00),
    ('PLATE-WHT', 'Plate, white', 'B', 6.00), ('BELT-BRN', 'Belt, brown', 'C', 9.00);
INSERT INTO item_uom (sku, uom, factor) VALUES ('BAG-TOTE', 'CS', 24), ('PLATE-WHT', 'CS', 12);
INSERT INTO channel_item (channel, sku, channel_sku) VALUES ('shopify', 'SOCK-GRY', '44012345678906');
SELECT count(*) AS receipts FROM (VALUES
    (append('CAP-RED', 'DAL', 'received', 40, source => 'wms-dal', idempotency_key => 'ASN-1100/1', occurred_at => now() - interval '1 day')),
    (append('SOCK-GRY', 'DAL', 'received', 200, source => 'wms-dal', idempotency_key => 'ASN-1100/2', occurred_at => now() - interval '1 day')),
    (append('BAG-TOTE', 'DAL', 'received', 100, source => 'wms-dal', idempotency_key => 'ASN-1100/3', occurred_at => now() - interval '1 day')),
    (append('PLATE-WHT', 'DAL', 'received', 5, uom => 'CS', source => 'wms-dal', idempotency_key => 'ASN-1100/4', occurred_at => now() - interval '1 day')),
    (append('BELT-BRN', 'DAL', 'received', 200, source => 'wms-dal', idempotency_key => 'ASN-1100/5', occurred_at => now() - interval '1 day'))) r;
\echo 'A Shopify order picked in Dallas just before the count, not yet shipped:'
SELECT status, location, qty FROM reserve('shopify', 'SOCK-GRY', 6, 'SHOP-1042/1', location => 'DAL');
SELECT event_type, location, qty FROM pick('shopify', 'SHOP-1042/1');
INSERT INTO recon_source (code, description, measure, authoritative, snapshot, locations, auto_adjust)
VALUES ('wms-dal', 'Dallas WMS, nightly full snapshot', 'on_hand', 'source', 'full', '{DAL}', true);
-- Class C: within 5 %; differences of up to 2 units adjusted without a person.
INSERT INTO recon_tolerance (abc_class, pct, auto_adjust_units) VALUES ('C', 5, 2);
SELECT clock_timestamp() AS cutoff \gset
\echo 'After the cut-off (does not count in the comparison): a receipt of 5 caps'
SELECT append('CAP-RED', 'DAL', 'received', 5, source => 'wms-dal', idempotency_key => 'ASN-1101/1') AS event_id;
\echo 'The snapshot, built here from our own books with four differences a WMS really produces:'
\echo '  socks: the WMS counts the picked order as gone (a pick in flight);'
\echo '  plates: counted in cases but sent as eaches; tote bags: a case received before the cut-off that the ERP'
\echo '  has not posted yet (the posting arrives late); caps: 3 really missing (shrink); belts: 1 missing.'
SELECT jsonb_agg(jsonb_build_object('sku', s.sku, 'location', s.location, 'qty',
         CASE s.sku WHEN 'SOCK-GRY' THEN s.on_hand - s.picked
                    WHEN 'PLATE-WHT' THEN s.on_hand / 12
                    WHEN 'BAG-TOTE' THEN s.on_hand + 24
                    WHEN 'CAP-RED' THEN s.on_hand - 5 - 3
                    WHEN 'BELT-BRN' THEN s.on_hand - 1
                    ELSE s.on_hand END) ORDER BY s.sku) AS snapshot
  FROM stock_by_location s WHERE s.location = 'DAL' \gset
SELECT reconcile('wms-dal', :'cutoff', :'snapshot', external_id => 'WMS-DAL-SNAP-0001') AS run \gset
\echo 'The variance report (theirs - ours as of the cut-off; the hints name the events behind them):'
SELECT sku, version AS v, ours, theirs, variance, status, explained, residual, value, severity,
       (SELECT string_agg(h->>'hint' || coalesce(' ' || (h->>'bucket'), '') || coalesce(' (' || (h->>'detail') || ')', '')
                          || coalesce(' events ' || (h->'events')::text, ''), '; ')
          FROM jsonb_array_elements(hints) h) AS hints,
       reason
  FROM recon_variance(:run) ORDER BY line_no;
\echo 'The belts (within tolerance, within the auto-adjust policy) were adjusted at once by a counted event as of the cut-off:'
SELECT e.id, e.sku, e.event_type, e.qty, on_hand(e.effect) AS delta, e.occurred_at = :'cutoff'::timestamptz AS as_of_cutoff, e.ref
  FROM event e WHERE e.source = 'reconciliation';
\echo 'The exceptions opened for the lines beyond their tolerance:'
SELECT kind, sku, location, ref, detail FROM exception WHERE kind = 'recon_variance' AND resolved_at IS NULL ORDER BY id;
\echo 'The ERP posts the tote bags'' receipt now, dated before the cut-off; the worker gives the line a new version:'
SELECT append('BAG-TOTE', 'DAL', 'received', 1, uom => 'CS', source => 'erp', idempotency_key => 'GR-5001/1',
              occurred_at => :'cutoff'::timestamptz - interval '20 minutes') AS late_event;
DO $$
BEGIN
    FOR i IN 1..100 LOOP
        EXIT WHEN EXISTS (SELECT FROM inventory_events.recon_line WHERE sku = 'BAG-TOTE' AND reason = 'late_event');
        PERFORM pg_sleep(0.2);
    END LOOP;
END $$;
SELECT line_no, version, current, reason, ours, theirs, status FROM recon_line WHERE sku = 'BAG-TOTE' ORDER BY version;
\echo 'The caps are a real shrink on a class-A item: a person adjusts them (a counted event as of the cut-off):'
SELECT resolve_recon_line(line_id, 'adjust', 'cycle count confirmed 3 caps missing') AS counted_event
  FROM recon_variance(:run) WHERE sku = 'CAP-RED';
SELECT sku, version, reason, ours, theirs, status FROM recon_variance(:run) WHERE sku IN ('CAP-RED', 'BAG-TOTE');
SELECT kind, sku, ref, resolved_at IS NOT NULL AS resolved FROM exception WHERE kind = 'recon_variance' ORDER BY id;
\echo 'Sent again (a retry), the snapshot returns the same run:'
SELECT reconcile('wms-dal', :'cutoff', :'snapshot', external_id => 'WMS-DAL-SNAP-0001') = :run AS same_run;

\echo
\echo '=== 22. KPIs are views (formulas in doc/kpis.md): record accuracy, fill rate, latency, manual adjustments, throughput'
SELECT dimension, key, compared_lines, hit_rate, quantity_accuracy FROM kpi_record_accuracy ORDER BY dimension, key;
SELECT channel, day = current_date AS today, orders, lines, units_ordered, units_shipped, unit_fill_rate, line_fill_rate,
       order_fill_rate, first_time_line_fill_rate
  FROM kpi_fill_rate ORDER BY channel, day;
SELECT channel, orders, p50_seconds, p95_seconds FROM kpi_order_latency ORDER BY channel;
SELECT location, stock_events, manual_adjustments, reconciliation_adjustments, manual_share
  FROM kpi_manual_adjustments ORDER BY location;
SELECT day = current_date AS today, events_appended, publications, dead_letters, dead_letter_share
  FROM kpi_throughput WHERE events_appended > 0;

\echo
\echo '=== 23. The positions equal the sum of the events (verify() lists differences: none)'
SELECT count(*) AS inconsistent_streams FROM verify();

\echo
\echo '=== 24. Backup and restore: pg_dump dumps the log and everything around it; a restore derives the positions again'
\getenv home HOME
SELECT sku, location, lot, available, reserved, picked, on_hand FROM stock ORDER BY sku, location, lot \g (format=unaligned tuples_only) :home/demo_positions_before.txt
\echo '(pg_dump warns that inventory_events.location refers to itself, the parent of a location: harmless, see doc/operations.md)'
\! pg_dump -Fc -d postgres -f "$HOME/demo.dump" && echo 'pg_dump -Fc -d postgres: done'
\! createdb demo_restored && pg_restore -d demo_restored "$HOME/demo.dump" && echo 'pg_restore -d demo_restored: done'
\c demo_restored
SET search_path = inventory_events, public;
\echo 'In the restored database: every event, reservation, publication and serial move, the same positions, verify() empty'
SELECT (SELECT count(*) FROM event) AS events, (SELECT count(*) FROM reservation) AS reservations,
       (SELECT count(*) FROM publication) AS publications, (SELECT count(*) FROM serial_event) AS serial_moves,
       (SELECT count(*) FROM verify()) AS inconsistent_streams;
SELECT sku, location, lot, available, reserved, picked, on_hand FROM stock ORDER BY sku, location, lot \g (format=unaligned tuples_only) :home/demo_positions_after.txt
\! cmp -s "$HOME/demo_positions_before.txt" "$HOME/demo_positions_after.txt" && echo 'positions: the same as before the dump' || echo 'positions: DIFFERENT'
\echo 'A retried receipt is still recognised, and the first write after the restore makes this database the log''s home:'
SELECT append('MUG-WHT', 'DAL', 'received', 6, source => 'wms-dal', idempotency_key => 'ASN-DEMO-2/1') AS original_event_id,
       log_adopted() AS adopted_before;
SELECT append('MUG-WHT', 'DAL', 'received', 1) > 0 AS new_event;
SELECT log_adopted() AS adopted_after, (SELECT count(*) FROM verify()) AS inconsistent_streams;
