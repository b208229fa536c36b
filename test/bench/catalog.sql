-- The catalog every benchmark of test/bench/run.sh runs on: a distributor
-- with 10,000 skus (SKU1 .. SKU10000, and HOT, the sku whose history the log
-- growth part makes long), three warehouses and four sales channels with
-- the rules such channels have. Stock is put in by each part (run.sh: reset).
CREATE EXTENSION inventory_events;
INSERT INTO inventory_events.item (sku, description)
SELECT 'SKU' || g, 'catalog item ' || g FROM generate_series(1, 10000) g;
INSERT INTO inventory_events.item (sku, description) VALUES ('HOT', 'the best seller');
INSERT INTO inventory_events.location (code, description) VALUES
    ('W1', 'Dallas DC'), ('W2', 'Reno DC'), ('W3', 'Atlanta DC');
INSERT INTO inventory_events.channel (code, kind, allocation_pct, buffer_fixed, buffer_pct, publish_interval,
                                      allow_backorders, allow_split, future_view, velocity_buffer) VALUES
    ('shopify', 'storefront', 100, 0, 0, '0', false, true, false, false),
    ('amazon', 'marketplace', 60, 2, 10, '0', false, true, false, true),
    ('edi', 'edi_partner', 100, 5, 0, '1 second', true, false, false, false),
    ('b2b', 'b2b_portal', 100, 0, 0, '0', true, true, true, false);
INSERT INTO inventory_events.channel_location (channel, location, priority) VALUES
    ('shopify', 'W1', 1), ('shopify', 'W2', 2), ('shopify', 'W3', 2),
    ('amazon', 'W1', 1), ('amazon', 'W2', 1), ('amazon', 'W3', 1),
    ('edi', 'W3', 1),
    ('b2b', 'W1', 1), ('b2b', 'W2', 1), ('b2b', 'W3', 1);
