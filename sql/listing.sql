-- Listings and channel identifiers (channel_item): a channel with listings
-- sells only what it lists, under its own identifiers, with per-listing
-- overrides of its rules; a channel without listings is unchanged.
CREATE EXTENSION inventory_events;
SET search_path = inventory_events, public;

INSERT INTO item (sku) VALUES ('A'), ('B'), ('C'), ('KIT'), ('X1');
INSERT INTO kit_component (kit, component, qty) VALUES ('KIT', 'A', 2), ('KIT', 'B', 1);
INSERT INTO location (code) VALUES ('W1');
-- amazon: listings; web: none (sells everything, under our skus).
INSERT INTO channel (code, buffer_fixed) VALUES ('amazon', 1), ('web', 0);
INSERT INTO channel_location (channel, location) VALUES ('amazon', 'W1'), ('web', 'W1');
SELECT count(*) FROM (VALUES (append('A', 'W1', 'received', 40)), (append('B', 'W1', 'received', 10)),
                             (append('C', 'W1', 'received', 5)), (append('X1', 'W1', 'received', 3))) v;
SELECT events, publications FROM publish();

-- Listings: A as an ASIN with a cap, B under our sku, the kit, and X1 as
-- the identifier of C (our sku X1 is not listed here).
INSERT INTO channel_item (channel, sku, channel_sku, cap) VALUES ('amazon', 'A', 'B00AAA', 12);
INSERT INTO channel_item (channel, sku) VALUES ('amazon', 'B'), ('amazon', 'KIT');
INSERT INTO channel_item (channel, sku, channel_sku, buffer_fixed) VALUES ('amazon', 'C', 'X1', 0);
-- One identifier names one sku per channel: B's identifier is "B".
INSERT INTO channel_item (channel, sku, channel_sku) VALUES ('amazon', 'X1', 'B');
-- Bad listings: unknown channel or sku, empty identifier, negative cap.
INSERT INTO channel_item (channel, sku) VALUES ('nope', 'A');
INSERT INTO channel_item (channel, sku) VALUES ('amazon', 'nope');
INSERT INTO channel_item (channel, sku, channel_sku) VALUES ('web', 'A', '');
INSERT INTO channel_item (channel, sku, cap) VALUES ('web', 'A', -1);

-- Availability: unlisted skus show 0 (their pool is still told); listings
-- apply their overrides (A: cap 12; C: no buffer); web is unchanged.
SELECT c.code, i.sku, channel_availability(c.code, i.sku), (channel_position(c.code, i.sku)).pool
  FROM channel c, item i ORDER BY 1, 2;

-- The publisher: amazon gained its first listings, so every sku was marked;
-- unlisted X1 is told 0 under our sku (it was shown 2 before), and each
-- listed sku its value under the channel's identifier. web is unchanged.
SELECT coalesce(max(seq), 0) AS last FROM publication WHERE channel = 'amazon' \gset
SELECT events, publications FROM publish();
SELECT seq, sku, available, channel_sku FROM publications_since('amazon', :last) ORDER BY seq;
SELECT seq, sku, available, channel_sku FROM publications_since('web', 0) ORDER BY seq;
SELECT channel, sku, available, channel_sku FROM channel_shown WHERE channel = 'amazon' ORDER BY sku;

-- Reservations: by the channel's identifier, by our sku where that is the
-- identifier, in reserve_lines() by channel_sku; the identifier is recorded.
SELECT status, sku, qty FROM reserve('amazon', 'B00AAA', 2, 'o-1');
SELECT status, sku, qty FROM reserve('amazon', 'B', 1, 'o-2');
SELECT ordinal, status, sku, qty, sqlstate FROM reserve_lines('[
    {"channel": "amazon", "channel_sku": "X1", "qty": 1, "ref": "o-3"},
    {"channel": "amazon", "channel_sku": "B00AAA", "sku": "A", "qty": 1, "ref": "o-4"},
    {"channel": "amazon", "sku": "X1", "qty": 1, "ref": "o-5"},
    {"channel": "web", "sku": "X1", "qty": 1, "ref": "o-6"}]');
SELECT ref, sku, channel_sku FROM reservation ORDER BY id;
-- A retry by either name is the same reservation.
SELECT status, sku, replayed FROM reserve('amazon', 'A', 2, 'o-1');
-- Refused: an unlisted sku (IE008), an identifier nothing has (IE008), a
-- channel_sku that names another item than the sku given (22023).
\set VERBOSITY default
\set SHOW_CONTEXT never
SELECT * FROM reserve('amazon', 'NOPE', 1, 'o-7');
INSERT INTO item (sku) VALUES ('D');
SELECT * FROM reserve('amazon', 'D', 1, 'o-7');
SELECT ordinal, status, sqlstate, message FROM reserve_lines('[
    {"channel": "amazon", "sku": "D", "qty": 1, "ref": "o-8"},
    {"channel": "amazon", "sku": "A", "qty": 1, "ref": "o-9"}]');
SELECT * FROM reserve_lines('[{"channel": "amazon", "channel_sku": "nothing", "qty": 1, "ref": "o-10"}]');
SELECT * FROM reserve_lines('[{"channel": "amazon", "channel_sku": "B00AAA", "sku": "B", "qty": 1, "ref": "o-10"}]');
-- Ambiguous: "X1" is C's identifier, and our X1 once listed here as "XX".
INSERT INTO channel_item (channel, sku, channel_sku) VALUES ('amazon', 'X1', 'XX');
SELECT * FROM reserve('amazon', 'X1', 1, 'o-11');
SELECT status, sku FROM reserve('amazon', 'XX', 1, 'o-11');
DELETE FROM channel_item WHERE channel = 'amazon' AND sku = 'X1';
\set VERBOSITY terse

-- Delisting publishes 0 once; the next steps publish nothing more for it;
-- a reservation of it is refused, a retry of an earlier one is still
-- answered. Relisting publishes its current value.
UPDATE channel_item SET listed = false WHERE channel = 'amazon' AND sku = 'B';
SELECT coalesce(max(seq), 0) AS last FROM publication WHERE channel = 'amazon' \gset
SELECT events, publications FROM publish();
SELECT seq, sku, available, channel_sku FROM publications_since('amazon', :last) ORDER BY seq;
SELECT count(*) AS new_pub FROM (SELECT append('B', 'W1', 'received', 5)) a, publish() p WHERE p.publications > 0;
SELECT sqlstate FROM reserve_lines('[{"channel": "amazon", "sku": "B", "qty": 1, "ref": "o-12"}]');
SELECT status, replayed FROM reserve('amazon', 'B', 1, 'o-2');
SELECT channel_availability('amazon', 'B');
UPDATE channel_item SET listed = true WHERE channel = 'amazon' AND sku = 'B';
SELECT coalesce(max(seq), 0) AS last FROM publication WHERE channel = 'amazon' \gset
SELECT events, publications FROM publish();
SELECT seq, sku, available, channel_sku FROM publications_since('amazon', :last) ORDER BY seq;

-- A new identifier: the old one is told 0, then the new one the value.
UPDATE channel_item SET channel_sku = 'B00NEW' WHERE channel = 'amazon' AND sku = 'A';
SELECT coalesce(max(seq), 0) AS last FROM publication WHERE channel = 'amazon' \gset
SELECT events, publications FROM publish();
SELECT seq, sku, available, channel_sku FROM publications_since('amazon', :last) ORDER BY seq;
-- A retry names the item as the first call did: o-1 was reserved as
-- B00AAA, which no listing has now; it is still the same reservation.
SELECT status, sku, replayed FROM reserve('amazon', 'B00AAA', 2, 'o-1');
-- On a channel without listings, the channel's identifier is our sku.
SELECT status, sku FROM reserve_lines('[{"channel": "web", "channel_sku": "A", "qty": 1, "ref": "o-w2"}]');
-- An override changes what is published: A's cap lifted to the pool.
UPDATE channel_item SET cap = NULL WHERE channel = 'amazon' AND sku = 'A';
SELECT coalesce(max(seq), 0) AS last FROM publication WHERE channel = 'amazon' \gset
SELECT events, publications FROM publish();
SELECT seq, sku, available, channel_sku FROM publications_since('amazon', :last) ORDER BY seq;
-- A changed listing marks only its own (channel, sku); an update that
-- changes nothing marks nothing.
UPDATE channel_item SET buffer_fixed = 2 WHERE channel = 'amazon' AND sku = 'KIT';
SELECT channel, sku FROM publication_pending ORDER BY 1, 2;
SELECT events, publications FROM publish();
UPDATE channel_item SET listed = listed WHERE channel = 'amazon';
SELECT count(*) AS marked FROM publication_pending;

-- The last listing removed: amazon sells everything again under our skus.
DELETE FROM channel_item WHERE channel = 'amazon';
SELECT count(*) AS marked FROM publication_pending WHERE channel = 'amazon';
SELECT coalesce(max(seq), 0) AS last FROM publication WHERE channel = 'amazon' \gset
SELECT events, publications FROM publish();
SELECT seq, sku, available, channel_sku FROM publications_since('amazon', :last) ORDER BY seq;
SELECT status, sku FROM reserve('amazon', 'C', 1, 'o-13');
SELECT channel_sku FROM reservation WHERE ref = 'o-13';

-- The future view follows the listing: overrides and "not listed".
UPDATE channel SET future_view = true WHERE code = 'amazon';
INSERT INTO channel_item (channel, sku, channel_sku, cap) VALUES ('amazon', 'A', 'B00AAA', 3);
SELECT available_on = current_date AS today, available FROM availability_timeline('amazon', 'A');
SELECT available FROM availability_timeline('amazon', 'B');
SELECT channel_availability('amazon', 'A'), channel_availability('amazon', 'B');

-- The output plugin carries the identifier with each publication (left
-- out, as every null column, where it is our sku).
SELECT 'init' FROM pg_create_logical_replication_slot('listing_slot', 'inventory_events');
SELECT events, publications FROM publish();
SELECT data::jsonb - 'lsn' - 'published_at' AS record
  FROM pg_logical_slot_get_changes('listing_slot', NULL, NULL, 'include-xact', 'false')
 WHERE data::jsonb->>'kind' = 'publication';
SELECT pg_drop_replication_slot('listing_slot');

-- Deleting a channel takes its listings with it.
INSERT INTO channel (code) VALUES ('gone');
INSERT INTO channel_item (channel, sku) VALUES ('gone', 'A');
DELETE FROM channel WHERE code = 'gone';
SELECT channel, sku FROM channel_item ORDER BY 1, 2;

-- An identifier that changes hands ends with what its owner shows now,
-- whichever sku comes first in the step: E1 goes from P to Q and back to P
-- (capped at 0) as Q moves to E2; Q listed as "P" until the last listing
-- goes, when P is sold under our sku again.
INSERT INTO item (sku) VALUES ('P'), ('Q'), ('R');
INSERT INTO channel (code) VALUES ('ebay');
INSERT INTO channel_location (channel, location) VALUES ('ebay', 'W1');
SELECT count(*) FROM (VALUES (append('P', 'W1', 'received', 5)), (append('Q', 'W1', 'received', 7)),
                             (append('R', 'W1', 'received', 1))) v;
INSERT INTO channel_item (channel, sku) VALUES ('ebay', 'R');
INSERT INTO channel_item (channel, sku, channel_sku) VALUES ('ebay', 'P', 'E1');
SELECT publications FROM publish();
DELETE FROM channel_item WHERE channel = 'ebay' AND sku = 'P';
SELECT publications FROM publish();
INSERT INTO channel_item (channel, sku, channel_sku) VALUES ('ebay', 'Q', 'E1');
SELECT publications FROM publish();
BEGIN;
UPDATE channel_item SET channel_sku = 'E2' WHERE channel = 'ebay' AND sku = 'Q';
INSERT INTO channel_item (channel, sku, channel_sku, cap) VALUES ('ebay', 'P', 'E1', 0);
COMMIT;
SELECT publications FROM publish();
SELECT DISTINCT ON (channel_sku) channel_sku, available FROM publications_since('ebay', 0)
 ORDER BY channel_sku, seq DESC;
DELETE FROM channel_item WHERE channel = 'ebay';
INSERT INTO channel_item (channel, sku, channel_sku) VALUES ('ebay', 'Q', 'P');
SELECT publications FROM publish();
DELETE FROM channel_item WHERE channel = 'ebay';
SELECT publications FROM publish();
SELECT DISTINCT ON (channel_sku) channel_sku, available FROM publications_since('ebay', 0)
 WHERE channel_sku IN ('E1', 'E2', 'P', 'Q', 'R') ORDER BY channel_sku, seq DESC;
SELECT sku, channel_availability('ebay', sku) FROM item WHERE sku IN ('P', 'Q', 'R') ORDER BY sku;

-- Backorders are filled as reserve() serves a line now: with the listing's
-- buffer and cap (BA waits for 10, the listing shows at most 3 of a receipt
-- of 10: it gets 3, as BB's reserve() of the same stock did), and not at
-- all while the sku is delisted (BC keeps waiting; its receipt fills it
-- once it is listed again and more arrives).
INSERT INTO item (sku) VALUES ('BA'), ('BB'), ('BC');
INSERT INTO channel (code, allow_backorders) VALUES ('shop', true);
INSERT INTO channel_location (channel, location) VALUES ('shop', 'W1');
INSERT INTO channel_item (channel, sku, buffer_fixed, cap) VALUES ('shop', 'BA', 5, 3), ('shop', 'BB', 5, 3), ('shop', 'BC', NULL, NULL);
SELECT append('BB', 'W1', 'received', 10) > 0 AS received;
SELECT status, qty FROM reserve('shop', 'BB', 10, 'bb-1') ORDER BY status;
SELECT status, qty FROM reserve('shop', 'BA', 10, 'ba-1');
SELECT append('BA', 'W1', 'received', 10) > 0 AS received;
SELECT status, qty FROM reserve('shop', 'BC', 4, 'bc-1');
UPDATE channel_item SET listed = false WHERE channel = 'shop' AND sku = 'BC';
SELECT append('BC', 'W1', 'received', 4) > 0 AS received;
SELECT ref, reserved, backordered FROM reservation_status WHERE channel = 'shop' ORDER BY ref;
UPDATE channel_item SET listed = true WHERE channel = 'shop' AND sku = 'BC';
SELECT append('BC', 'W1', 'received', 1) > 0 AS received;
SELECT ref, reserved, backordered FROM reservation_status WHERE channel = 'shop' ORDER BY ref;
SELECT count(*) AS wrong FROM verify();

DROP EXTENSION inventory_events;
