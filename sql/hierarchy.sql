-- The location hierarchy and legal entities: a channel sourcing from a node
-- sources from every location below it, with inherited priorities that a
-- row for a location below overrides; stock rolls up by node; a channel
-- sells only its entity's stock unless an intercompany rule says otherwise;
-- transfers between entities are visible; hierarchy changes are published.
CREATE EXTENSION inventory_events;
SET search_path = inventory_events, public;

INSERT INTO entity (code, description) VALUES ('US', 'Distributor Inc.'), ('CA', 'Distributor Canada Ltd.');
-- NA -> US-EAST -> ATL (-> ATL-Z1, ATL-Z2), NA -> US-WEST -> RNO; NA -> CA-EAST -> TOR (owned by CA).
INSERT INTO location (code, kind, parent, entity) VALUES
    ('NA', 'region', NULL, 'US'),
    ('US-EAST', 'region', 'NA', NULL), ('US-WEST', 'region', 'NA', NULL), ('CA-EAST', 'region', 'NA', 'CA'),
    ('ATL', 'warehouse', 'US-EAST', NULL), ('RNO', 'warehouse', 'US-WEST', NULL), ('TOR', 'warehouse', 'CA-EAST', NULL),
    ('ATL-Z1', 'zone', 'ATL', NULL), ('ATL-Z2', 'zone', 'ATL', NULL);
INSERT INTO item (sku) VALUES ('TEE');
SELECT count(*) FROM (VALUES (append('TEE', 'ATL-Z1', 'received', 10)), (append('TEE', 'ATL-Z2', 'received', 5)),
                             (append('TEE', 'RNO', 'received', 7)), (append('TEE', 'TOR', 'received', 20))) v;

-- Each location's ancestors and owner; stock rolled up by node.
SELECT location, string_agg(node, ' < ' ORDER BY depth) AS path, min(owner) AS owner
  FROM location_tree GROUP BY location ORDER BY location;
SELECT node, on_hand, atp FROM stock_by_node WHERE sku = 'TEE' ORDER BY node;

-- web (entity US) sources from the whole region NA at priority 5, and from
-- RNO at priority 1 (overriding); it sells US stock only: not Toronto's.
-- any (no entity) sells everything below NA.
INSERT INTO channel (code, entity) VALUES ('web', 'US'), ('any', NULL), ('ca-web', 'CA');
INSERT INTO channel_location (channel, location, priority) VALUES
    ('web', 'NA', 5), ('web', 'RNO', 1), ('any', 'NA', 0), ('ca-web', 'CA-EAST', 0);
SELECT * FROM channel_sources('web');
SELECT count(*) AS any_sources FROM channel_sources('any');
SELECT * FROM channel_sources('ca-web');
SELECT code, channel_availability(code, 'TEE') FROM channel ORDER BY code;
-- Reservations source in that order: Reno first (priority 1), then Atlanta's zones.
SELECT status, location, qty FROM reserve('web', 'TEE', 10, 'o-1');
-- A location outside what the channel may sell is refused.
SELECT * FROM reserve('web', 'TEE', 1, 'o-2', location => 'TOR');

-- An intercompany rule: US channels may sell Canada's stock.
SELECT events, publications FROM publish();
SELECT coalesce(max(seq), 0) AS last FROM publication WHERE channel = 'web' \gset
INSERT INTO intercompany (seller, owner) VALUES ('US', 'CA');
SELECT count(*) AS marked FROM publication_pending WHERE channel = 'web';
SELECT count(*) AS not_marked FROM publication_pending WHERE channel <> 'web';
SELECT events, publications FROM publish();
SELECT seq, sku, available FROM publications_since('web', :last);
SELECT location FROM channel_sources('web') ORDER BY location;
DELETE FROM intercompany;
SELECT channel_availability('web', 'TEE');

-- A hierarchy change takes effect at once and is published: RNO (4 more
-- received) moves under Canada; web no longer sells it, ca-web does.
SELECT append('TEE', 'RNO', 'received', 4) > 0;
SELECT events, publications FROM publish();
SELECT channel_availability('web', 'TEE'), channel_availability('ca-web', 'TEE');
SELECT coalesce(max(seq), 0) AS last FROM publication WHERE channel = 'web' \gset
UPDATE location SET parent = 'CA-EAST' WHERE code = 'RNO';
SELECT channel_availability('web', 'TEE'), channel_availability('ca-web', 'TEE');
SELECT events, publications FROM publish();
SELECT seq, sku, available FROM publications_since('web', :last);
-- A description change marks nothing.
UPDATE location SET description = 'Reno DC' WHERE code = 'RNO';
SELECT count(*) AS marked FROM publication_pending;

-- No cycles: a node cannot move below itself (checked at commit).
UPDATE location SET parent = 'ATL-Z1' WHERE code = 'US-EAST';
UPDATE location SET parent = 'NA' WHERE code = 'NA';

-- A parent set twice in one transaction, ending in a tree, is accepted
-- (the first update's check finds the row changed again and leaves it to the second's).
BEGIN;
UPDATE location SET parent = 'ATL-Z1' WHERE code = 'US-WEST';
UPDATE location SET parent = 'NA' WHERE code = 'US-WEST';
COMMIT;
-- Moving a node with no stock at or below it marks nothing.
INSERT INTO location (code, kind, parent) VALUES ('EMPTY', 'zone', 'NA');
UPDATE location SET parent = 'US-EAST' WHERE code = 'EMPTY';
SELECT count(*) AS marked FROM publication_pending;

-- Transfers between entities are visible as such; within one entity not.
SELECT count(*) FROM transfer('TEE', 'ATL-Z1', 'TOR', 2, 'TR-1');
SELECT count(*) FROM transfer('TEE', 'ATL-Z1', 'ATL-Z2', 1, 'TR-2');
SELECT sku, qty, ref, from_location, from_entity, to_location, to_entity FROM intercompany_transfer;

-- The other views follow the hierarchy too.
SELECT channel, sku, available FROM channel_stock ORDER BY channel;
SELECT count(*) FROM verify();

DROP EXTENSION inventory_events;
