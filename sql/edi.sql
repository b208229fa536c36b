-- EDI 846 Inventory Inquiry/Advice from channel availability: envelopes and
-- control numbers per partner, the partner's identifiers from the listings,
-- QTY 33/17/29, SDQ per location, full and incremental. (test/t/016_edi_846.pl
-- checks the documents with an X12 parser this project did not write.)
CREATE EXTENSION inventory_events;
SET search_path = inventory_events, public;

-- The 846 one line per segment, today's date and time masked, and a
-- projected date (DTM) shown as days after today: the output must not
-- depend on the day the test runs.
CREATE FUNCTION pg_temp.segments(doc text) RETURNS SETOF text LANGUAGE sql AS $$
    SELECT CASE WHEN d.m IS NULL THEN x.t
                ELSE 'DTM*018*today+' || (to_date(d.m[1], 'YYYYMMDD') - current_date) END
      FROM (SELECT regexp_replace(regexp_replace(s, to_char(now() AT TIME ZONE 'UTC', 'YYYYMMDD') || '\*[0-9]{4}', 'DATE*TIME'),
                                  '\*' || to_char(now() AT TIME ZONE 'UTC', 'YYMMDD') || '\*[0-9]{4}\*', '*DATE*TIME*') AS t, n
              FROM unnest(string_to_array(rtrim(doc, '~'), '~')) WITH ORDINALITY u(s, n)) x
     CROSS JOIN LATERAL (SELECT regexp_match(x.t, '^DTM\*018\*([0-9]{8})$') AS m) d
     ORDER BY x.n
$$;

INSERT INTO item (sku) VALUES ('TEE'), ('MUG'), ('CAP'), ('KIT');
INSERT INTO kit_component (kit, component, qty) VALUES ('KIT', 'TEE', 1), ('KIT', 'MUG', 2);
INSERT INTO location (code) VALUES ('DAL'), ('ATL');
INSERT INTO channel (code, kind, buffer_fixed, future_view, horizon)
     VALUES ('target', 'edi_partner', 1, true, '30 days'), ('shop', 'storefront', 0, false, '30 days');
INSERT INTO channel_location (channel, location) VALUES ('target', 'DAL'), ('target', 'ATL'), ('shop', 'DAL');
-- Target knows two items by its part numbers; CAP is not listed.
INSERT INTO channel_item (channel, sku, channel_sku) VALUES ('target', 'TEE', '0049-TEE'), ('target', 'MUG', '0049-MUG');
SELECT count(*) FROM (VALUES (append('TEE', 'DAL', 'received', 20)), (append('TEE', 'ATL', 'received', 5)),
                             (append('MUG', 'DAL', 'received', 8)), (append('CAP', 'DAL', 'received', 3)),
                             (append('MUG', 'ATL', 'inbound_expected', 12, ref => 'PO-1',
                                     expected_date => current_date + 7))) v;
SELECT count(*) > 0 FROM publish();

-- Not a partner yet; an unknown channel.
\set VERBOSITY default
\set SHOW_CONTEXT never
SELECT edi_846('target');
SELECT edi_846('nope');
-- Identifiers an interchange cannot carry.
INSERT INTO edi_partner (channel, sender_id, receiver_id) VALUES ('target', 'DISTRIB*1', 'TARGET');
INSERT INTO edi_partner (channel, sender_id, receiver_id) VALUES ('target', 'DISTRIBUTOR-1234567', 'TARGET');
-- A one-character id fits ISA06 but not GS02 (2 to 15): it needs an application code.
INSERT INTO edi_partner (channel, sender_id, receiver_id) VALUES ('target', 'X', 'TARGET');
\set VERBOSITY terse

INSERT INTO edi_partner (channel, sender_id, receiver_id, by_location, usage)
     VALUES ('target', 'DISTRIB', '0049TARGET', true, 'T');
-- A full 846: the listed skus, each with the partner's identifier and ours,
-- available for sale (the channel's rules: buffer 1), on hand, the projected
-- availability with its date (the channel has a future view), and SDQ.
SELECT * FROM pg_temp.segments(edi_846('target'));
SELECT last_control, last_seq FROM edi_partner;
SELECT sku, channel_availability('target', sku) FROM item ORDER BY sku;

-- Incremental: nothing published since, so no document and no control number used.
SELECT edi_846('target', incremental => true) IS NULL AS nothing_changed, last_control FROM edi_partner;
-- A shipment and a delisting: the next incremental 846 has both, the
-- delisted sku as 0 under the identifier the partner knows.
SELECT count(*) FROM reserve('target', '0049-TEE', 4, 'PO-850-1');
UPDATE channel_item SET listed = false WHERE channel = 'target' AND sku = 'MUG';
SELECT count(*) > 0 FROM publish();
SELECT * FROM pg_temp.segments(edi_846('target', true));
-- The control number goes on per partner: the next full 846 is 3.
SELECT s FROM pg_temp.segments(edi_846('target')) s WHERE s ~ '^(ISA|GS|ST|BIA|SE|GE|IEA)';

-- A kit and a channel without listings (every item stocked there, and kits).
INSERT INTO edi_partner (channel, sender_id, receiver_id) VALUES ('shop', 'DISTRIB', 'SHOP');
SELECT s FROM pg_temp.segments(edi_846('shop')) s WHERE s ~ '^(LIN|QTY|CTT|SE)';

-- Control numbers of any size: ISA13 9 digits, GS06 and BIA03 the number;
-- ST02 numbers the transaction set in its group.
UPDATE edi_partner SET last_control = 12344 WHERE channel = 'shop';
SELECT s FROM pg_temp.segments(edi_846('shop')) s WHERE s ~ '^(ISA|GS|ST|BIA|SE|GE|IEA)';
-- incremental is true or false.
SELECT edi_846('shop', NULL);
SELECT last_control, last_seq FROM edi_partner WHERE channel = 'shop';

-- A sku an interchange cannot carry.
INSERT INTO item (sku) VALUES ('BAD*SKU');
SELECT append('BAD*SKU', 'DAL', 'received', 1) > 0;
\set VERBOSITY default
SELECT edi_846('shop');
\set VERBOSITY terse
SELECT last_control FROM edi_partner WHERE channel = 'shop';

DROP EXTENSION inventory_events;
