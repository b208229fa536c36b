-- Baselines of the append part of test/bench/run.sh, with the same columns and indexes as
-- inventory_events.event (and stock), and the same durability settings.

CREATE SCHEMA IF NOT EXISTS bench;

-- (a) A bare event table: no derived state.
CREATE TABLE bench.bare_event (LIKE inventory_events.event INCLUDING DEFAULTS);
ALTER TABLE bench.bare_event
    ADD PRIMARY KEY (id),
    ADD UNIQUE (sku, location, lot, version),
    ADD UNIQUE (source, idempotency_key);
CREATE INDEX ON bench.bare_event (xid, id);
-- As on the log since 0.3.0 (reconciliation as of a cut-off).
CREATE INDEX ON bench.bare_event USING brin (recorded_at);
CREATE INDEX ON bench.bare_event (occurred_at) WHERE occurred_at > recorded_at;
CREATE SEQUENCE bench.bare_version;

-- (b) The same state maintenance written in PL/pgSQL, as a team would without
-- this extension: a BEFORE INSERT trigger that locks the stream's stock row,
-- resolves the effect of the event type, checks the bucket, assigns the
-- version and updates (or creates) the stock row.
CREATE TABLE bench.plpgsql_event (LIKE inventory_events.event INCLUDING DEFAULTS);
ALTER TABLE bench.plpgsql_event
    ALTER COLUMN version DROP NOT NULL,
    ALTER COLUMN effect DROP NOT NULL,
    ADD PRIMARY KEY (id),
    ADD UNIQUE (sku, location, lot, version),
    ADD UNIQUE (source, idempotency_key);
CREATE INDEX ON bench.plpgsql_event (xid, id);
CREATE INDEX ON bench.plpgsql_event USING brin (recorded_at);
CREATE INDEX ON bench.plpgsql_event (occurred_at) WHERE occurred_at > recorded_at;
CREATE TABLE bench.plpgsql_stock (LIKE inventory_events.stock INCLUDING DEFAULTS) WITH (fillfactor = 70);
ALTER TABLE bench.plpgsql_stock ADD PRIMARY KEY (sku, location, lot);

CREATE FUNCTION bench.plpgsql_apply() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    s bench.plpgsql_stock;
    d_available bigint := 0;
    d_reserved  bigint := 0;
BEGIN
    PERFORM 1 FROM inventory_events.item WHERE sku = NEW.sku;
    IF NOT FOUND THEN RAISE EXCEPTION 'unknown sku %', NEW.sku USING ERRCODE = 'foreign_key_violation'; END IF;
    PERFORM 1 FROM inventory_events.location WHERE code = NEW.location;
    IF NOT FOUND THEN RAISE EXCEPTION 'unknown location %', NEW.location USING ERRCODE = 'foreign_key_violation'; END IF;

    SELECT * INTO s FROM bench.plpgsql_stock
     WHERE sku = NEW.sku AND location = NEW.location AND lot = NEW.lot FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO bench.plpgsql_stock (sku, location, lot) VALUES (NEW.sku, NEW.location, NEW.lot)
        ON CONFLICT DO NOTHING;
        SELECT * INTO s FROM bench.plpgsql_stock
         WHERE sku = NEW.sku AND location = NEW.location AND lot = NEW.lot FOR UPDATE;
    END IF;

    CASE NEW.event_type
        WHEN 'received' THEN d_available := NEW.qty;
        WHEN 'adjusted' THEN d_available := NEW.qty;
        WHEN 'reserved' THEN d_available := -NEW.qty; d_reserved := NEW.qty;
        WHEN 'released' THEN d_available := NEW.qty; d_reserved := -NEW.qty;
        ELSE RAISE EXCEPTION 'event type % not in this baseline', NEW.event_type;
    END CASE;
    IF NEW.event_type IN ('reserved') AND s.available < NEW.qty THEN
        RAISE EXCEPTION 'insufficient stock' USING ERRCODE = 'IE001';
    END IF;

    NEW.version := s.version + 1;
    NEW.effect := inventory_events.stock_position(available => d_available, reserved => d_reserved);
    UPDATE bench.plpgsql_stock
       SET available = available + d_available, reserved = reserved + d_reserved,
           on_hand = on_hand + d_available + d_reserved, version = NEW.version,
           last_event_id = NEW.id, updated_at = now()
     WHERE sku = NEW.sku AND location = NEW.location AND lot = NEW.lot;
    RETURN NEW;
END $$;
CREATE TRIGGER plpgsql_apply BEFORE INSERT ON bench.plpgsql_event
    FOR EACH ROW EXECUTE FUNCTION bench.plpgsql_apply();

-- (c) The floor of derived state in SQL: the event and its position written by
-- one hand-written statement, no extension, no checks. The stream's stock row
-- exists already (created here for every sku and location, outside the
-- timing) and is HOT-updatable (fillfactor 70, no updated column indexed);
-- its UPDATE assigns the version that the INSERT of the event takes.
CREATE TABLE bench.sql_event (LIKE inventory_events.event INCLUDING DEFAULTS);
ALTER TABLE bench.sql_event
    ADD PRIMARY KEY (id),
    ADD UNIQUE (sku, location, lot, version),
    ADD UNIQUE (source, idempotency_key);
CREATE INDEX ON bench.sql_event (xid, id);
CREATE INDEX ON bench.sql_event USING brin (recorded_at);
CREATE INDEX ON bench.sql_event (occurred_at) WHERE occurred_at > recorded_at;
CREATE TABLE bench.sql_stock (LIKE inventory_events.stock INCLUDING DEFAULTS) WITH (fillfactor = 70);
ALTER TABLE bench.sql_stock ADD PRIMARY KEY (sku, location, lot);
INSERT INTO bench.sql_stock (sku, location, lot)
SELECT i.sku, l.code, '' FROM inventory_events.item i CROSS JOIN inventory_events.location l;

-- Batch payloads for ingest(): 1,000 events each, built once, outside the timing.
CREATE TABLE bench.payload (n int PRIMARY KEY, events jsonb);
INSERT INTO bench.payload
SELECT b, jsonb_agg(jsonb_build_object('sku', 'SKU' || (1 + (b * 1000 + i) % 10000),
                                       'location', 'W' || (1 + i % 3),
                                       'event_type', 'received', 'qty', 1 + i % 7))
  FROM generate_series(1, 100) b, generate_series(1, 1000) i
 GROUP BY b;
