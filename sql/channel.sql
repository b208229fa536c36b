-- Channel availability: the channel's rules over its sourcing locations' ATP.
CREATE EXTENSION inventory_events;
SET search_path = inventory_events, public;

INSERT INTO item (sku) VALUES ('TEE');
INSERT INTO item (sku, lot_controlled) VALUES ('VIT', true);
INSERT INTO lot (sku, lot, expires_on) VALUES ('VIT', 'FRESH', '2099-01-01'), ('VIT', 'OLD', '2000-01-01');
INSERT INTO location (code) VALUES ('DAL'), ('RNO'), ('ATL');
INSERT INTO channel (code, kind) VALUES ('shopify', 'storefront');
INSERT INTO channel (code, kind, allocation_pct, buffer_fixed) VALUES ('amazon', 'marketplace', 60, 5);
INSERT INTO channel (code, kind, buffer_pct, cap) VALUES ('edi', 'edi_partner', 10, 50);
INSERT INTO channel (code, kind) VALUES ('nowhere', 'b2b_portal');
INSERT INTO channel_location (channel, location, priority) VALUES
    ('shopify', 'DAL', 1), ('shopify', 'RNO', 2),
    ('amazon', 'DAL', 1), ('amazon', 'RNO', 2), ('amazon', 'ATL', 3),
    ('edi', 'RNO', 1);

SELECT append('TEE', 'DAL', 'received', 100) > 0, append('TEE', 'RNO', 'received', 40) > 0,
       append('TEE', 'ATL', 'received', 9) > 0;
SELECT append_lifecycle('TEE', 'DAL', 'reserved', 10) > 0, append('TEE', 'DAL', 'safety_stock_set', 15) > 0;
-- DAL: available 90 - safety 15 = 75; RNO: 40; ATL: 9.
SELECT location, available, safety_stock, atp FROM stock_by_location WHERE sku = 'TEE' ORDER BY location;

-- shopify: DAL + RNO = 115, no rules.
-- amazon: 60% of (75 + 40 + 9 = 124) = 74 (rounded down), minus 5 = 69.
-- edi: RNO 40, minus 10% rounded up (4) = 36, under the cap of 50.
-- nowhere: no sourcing locations.
SELECT code, channel_availability(code, 'TEE') FROM channel ORDER BY code;
SELECT * FROM channel_stock ORDER BY channel, sku;

-- The cap, and never below zero.
UPDATE channel SET cap = 20 WHERE code = 'edi';
UPDATE channel SET buffer_fixed = 1000 WHERE code = 'amazon';
SELECT code, channel_availability(code, 'TEE') FROM channel WHERE code IN ('edi', 'amazon') ORDER BY code;

-- A location whose ATP is negative (safety stock above available) adds
-- nothing, and takes nothing from the others.
SELECT append('TEE', 'RNO', 'safety_stock_set', 100) > 0;
SELECT channel_availability('shopify', 'TEE') AS shopify;

-- Expired lots are not available to any channel.
SELECT append('VIT', 'DAL', 'received', 30, lot => 'FRESH') > 0, append('VIT', 'DAL', 'received', 70, lot => 'OLD') > 0;
SELECT channel_availability('shopify', 'VIT') AS shopify_vit;

-- Unknown channel or sku.
SELECT channel_availability('myspace', 'TEE');
SELECT channel_availability('shopify', 'NOPE');
-- A known sku with no stock anywhere.
INSERT INTO item (sku) VALUES ('NEW');
SELECT channel_availability('shopify', 'NEW') AS new_sku;

-- The rules (in C) agree with their definition over random settings: the
-- share floor(pool x allocation_pct / 100), minus the fixed buffer and
-- ceil(share x buffer_pct / 100), capped, never negative.
SELECT setseed(0.42);
SELECT count(*) AS mismatches FROM (
    SELECT channel_rules(p, c) AS got,
           greatest(0, least(coalesce((c).cap, 9223372036854775807),
                             floor(p * (c).allocation_pct / 100)::bigint - (c).buffer_fixed
                             - ceil(floor(p * (c).allocation_pct / 100) * (c).buffer_pct / 100)::bigint)) AS want
      FROM (SELECT (random() * 1000)::bigint AS p,
                   ROW('x', 'storefront', '', (random() * 20)::bigint, round((random() * 100)::numeric, 2),
                       round((random() * 100)::numeric, 1),
                       CASE WHEN random() < 0.3 THEN (random() * 500)::bigint END,
                       '0', false, true, false, '30 days', false, '1 hour', NULL)::channel AS c
              FROM generate_series(1, 5000)) x) y
 WHERE got <> want;
-- The velocity buffer comes off after the other rules.
SELECT channel_rules(100, ROW('x', 'storefront', '', 5, 10, 50, NULL, '0', false, true, false, '30 days',
                              true, '1 hour', NULL)::channel, 7) AS rules_50_5_10pct_v7;

DROP EXTENSION inventory_events;
