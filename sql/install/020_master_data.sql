-- ---------------------------------------------------------------------------
-- Master data (the ERP is the master: plain INSERT or COPY by the admin)
-- ---------------------------------------------------------------------------

CREATE TABLE inventory_events.item (
    sku             text PRIMARY KEY,
    description     text NOT NULL DEFAULT '',
    base_uom        text NOT NULL DEFAULT 'EA',
    lot_controlled  boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now(),
    -- Reconciliation (doc/reconciliation.md): the ABC class chooses the
    -- tolerance; lot-controlled, regulated and high-value items have none.
    abc_class       text CHECK (abc_class IN ('A', 'B', 'C')),
    unit_cost       numeric CHECK (unit_cost >= 0),
    regulated       boolean NOT NULL DEFAULT false,
    high_value      boolean NOT NULL DEFAULT false,
    -- Serialized items carry one serial number per base unit on every event
    -- that moves units (inventory_events.serial).
    serialized      boolean NOT NULL DEFAULT false
);
COMMENT ON COLUMN inventory_events.item.serialized IS 'One serial number per base unit, named on every event that moves units';
COMMENT ON COLUMN inventory_events.item.unit_cost IS 'Cost of one base unit: the value of a reconciliation variance';

CREATE TABLE inventory_events.item_uom (
    sku     text NOT NULL REFERENCES inventory_events.item ON DELETE CASCADE,
    uom     text NOT NULL,
    factor  bigint NOT NULL DEFAULT 1 CHECK (factor > 0),
    PRIMARY KEY (sku, uom)
);
COMMENT ON COLUMN inventory_events.item_uom.factor IS 'Base units in one of this unit (CS = 12 EA: factor 12)';

-- The legal entities that own stock (multi-entity distribution).
CREATE TABLE inventory_events.entity (
    code         text PRIMARY KEY,
    description  text NOT NULL DEFAULT ''
);

-- Locations form a hierarchy (region -> warehouse -> zone, as deep as
-- needed): a channel that sources from a node sources from every location
-- below it. A location's owner is its entity, or its nearest ancestor's.
CREATE TABLE inventory_events.location (
    code         text PRIMARY KEY,
    kind         inventory_events.location_kind NOT NULL DEFAULT 'warehouse',
    -- Checked at commit: a restore may load a child before its parent.
    parent       text REFERENCES inventory_events.location DEFERRABLE INITIALLY DEFERRED,
    description  text NOT NULL DEFAULT '',
    entity       text REFERENCES inventory_events.entity DEFERRABLE INITIALLY DEFERRED
);
COMMENT ON COLUMN inventory_events.location.parent IS 'The node above: a channel sourcing from it sources from this location';
COMMENT ON COLUMN inventory_events.location.entity IS 'The legal entity that owns its stock; null: its parent''s';

CREATE TABLE inventory_events.lot (
    sku         text NOT NULL REFERENCES inventory_events.item ON DELETE CASCADE,
    lot         text NOT NULL CHECK (lot <> ''),
    expires_on  date,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sku, lot)
);
COMMENT ON COLUMN inventory_events.lot.expires_on IS 'Last day the lot may be sold; null: never expires';

CREATE TABLE inventory_events.channel (
    code              text PRIMARY KEY,
    kind              inventory_events.channel_kind NOT NULL DEFAULT 'storefront',
    description       text NOT NULL DEFAULT '',
    buffer_fixed      bigint NOT NULL DEFAULT 0 CHECK (buffer_fixed >= 0),
    buffer_pct        numeric NOT NULL DEFAULT 0 CHECK (buffer_pct BETWEEN 0 AND 100),
    allocation_pct    numeric NOT NULL DEFAULT 100 CHECK (allocation_pct BETWEEN 0 AND 100),
    cap               bigint CHECK (cap >= 0),
    publish_interval  interval NOT NULL DEFAULT '0' CHECK (publish_interval >= '0'),
    allow_backorders  boolean NOT NULL DEFAULT false,
    allow_split       boolean NOT NULL DEFAULT true,
    future_view       boolean NOT NULL DEFAULT false,
    horizon           interval NOT NULL DEFAULT '30 days' CHECK (horizon >= '0'),
    velocity_buffer   boolean NOT NULL DEFAULT false,
    velocity_window   interval NOT NULL DEFAULT '1 hour' CHECK (velocity_window > '0'),
    entity            text REFERENCES inventory_events.entity,
    -- Its NOTIFY channel, 'inventory_events.' || code, must be a name (at most 63 bytes).
    CONSTRAINT channel_code_fits_notify CHECK (octet_length(code) BETWEEN 1 AND 46)
);
COMMENT ON COLUMN inventory_events.channel.entity IS
  'The legal entity that sells on the channel: it sells that entity''s stock only (and what intercompany allows); null: any';
COMMENT ON COLUMN inventory_events.channel.allow_split IS 'A reservation line may be split across sourcing locations';
COMMENT ON COLUMN inventory_events.channel.allow_backorders IS 'A shortage is recorded as a backorder, filled first-come-first-served';
COMMENT ON COLUMN inventory_events.channel.velocity_buffer IS
  'Buffer also ceil(recent reservation rate of the sku x publish_interval); rate over velocity_window';

-- Intercompany: the channels of entity seller may sell the stock of entity owner.
CREATE TABLE inventory_events.intercompany (
    seller  text NOT NULL REFERENCES inventory_events.entity ON DELETE CASCADE,
    owner   text NOT NULL REFERENCES inventory_events.entity ON DELETE CASCADE,
    PRIMARY KEY (seller, owner),
    CHECK (seller <> owner)
);
COMMENT ON TABLE inventory_events.intercompany IS
  'Intercompany rules: the channels of the seller entity may sell stock the owner entity holds';

-- A channel's sourcing: a location, or a node of the hierarchy (every
-- location below it, each with the priority of the nearest row naming it or
-- an ancestor: a row for a location below overrides the node's priority).
CREATE TABLE inventory_events.channel_location (
    channel   text NOT NULL REFERENCES inventory_events.channel ON DELETE CASCADE,
    location  text NOT NULL REFERENCES inventory_events.location,
    priority  integer NOT NULL DEFAULT 0,
    PRIMARY KEY (channel, location)
);

-- Kits and bundles: a kit sku is sold from its components (one level).
CREATE TABLE inventory_events.kit_component (
    kit        text NOT NULL REFERENCES inventory_events.item ON DELETE CASCADE,
    component  text NOT NULL REFERENCES inventory_events.item,
    qty        bigint NOT NULL DEFAULT 1 CHECK (qty > 0),
    PRIMARY KEY (kit, component),
    CHECK (kit <> component)
);
COMMENT ON TABLE inventory_events.kit_component IS 'Bill of materials: qty of component per kit';

-- Listings: what a channel sells, and under which identifier (an Amazon
-- seller SKU or ASIN, a Shopify inventory item id, a retailer's part number).
-- A channel with at least one row here sells only the skus it lists (listed);
-- a channel with none sells every item of its sourcing locations under our
-- sku. A listing may override the channel's buffers, allocation and cap for
-- its sku. One identifier names one sku per channel: channel_sku, or our sku
-- where it is null.
CREATE TABLE inventory_events.channel_item (
    channel         text NOT NULL REFERENCES inventory_events.channel ON DELETE CASCADE,
    sku             text NOT NULL REFERENCES inventory_events.item ON DELETE CASCADE,
    channel_sku     text CHECK (channel_sku <> ''),
    listed          boolean NOT NULL DEFAULT true,
    buffer_fixed    bigint CHECK (buffer_fixed >= 0),
    buffer_pct      numeric CHECK (buffer_pct BETWEEN 0 AND 100),
    allocation_pct  numeric CHECK (allocation_pct BETWEEN 0 AND 100),
    cap             bigint CHECK (cap >= 0),
    PRIMARY KEY (channel, sku)
);
CREATE UNIQUE INDEX channel_item_channel_sku_key
    ON inventory_events.channel_item (channel, (coalesce(channel_sku, sku)));
COMMENT ON TABLE inventory_events.channel_item IS
  'Listings: the skus a channel sells (a channel without rows sells all), its identifiers and rule overrides';
COMMENT ON COLUMN inventory_events.channel_item.channel_sku IS
  'The channel''s identifier of the item; null: our sku';
COMMENT ON COLUMN inventory_events.channel_item.listed IS
  'false: delisted (published as 0 once; reservations refused with IE008)';

-- pg_dump dumps the rows of these tables (CREATE EXTENSION makes the tables).
SELECT pg_catalog.pg_extension_config_dump('inventory_events.item', '');
SELECT pg_catalog.pg_extension_config_dump('inventory_events.item_uom', '');
SELECT pg_catalog.pg_extension_config_dump('inventory_events.entity', '');
SELECT pg_catalog.pg_extension_config_dump('inventory_events.location', '');
SELECT pg_catalog.pg_extension_config_dump('inventory_events.lot', '');
SELECT pg_catalog.pg_extension_config_dump('inventory_events.channel', '');
SELECT pg_catalog.pg_extension_config_dump('inventory_events.channel_location', '');
SELECT pg_catalog.pg_extension_config_dump('inventory_events.kit_component', '');
SELECT pg_catalog.pg_extension_config_dump('inventory_events.channel_item', '');
SELECT pg_catalog.pg_extension_config_dump('inventory_events.intercompany', '');

-- append() caches items and locations per backend; changing or removing one
-- tells every backend to drop that cache.
CREATE FUNCTION inventory_events.master_data_changed() RETURNS trigger
AS 'MODULE_PATHNAME', 'ie_master_data_changed' LANGUAGE C;
CREATE TRIGGER item_changed AFTER UPDATE OR DELETE OR TRUNCATE ON inventory_events.item
    FOR EACH STATEMENT EXECUTE FUNCTION inventory_events.master_data_changed();
-- Inserts count for locations too: a new location below a node is a new
-- sourcing location of every channel that sources from the node.
CREATE TRIGGER location_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON inventory_events.location
    FOR EACH STATEMENT EXECUTE FUNCTION inventory_events.master_data_changed();
-- Channels and bills of materials are cached too (including "not a kit", so
-- inserts count as well).
CREATE TRIGGER channel_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON inventory_events.channel
    FOR EACH STATEMENT EXECUTE FUNCTION inventory_events.master_data_changed();
CREATE TRIGGER channel_location_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON inventory_events.channel_location
    FOR EACH STATEMENT EXECUTE FUNCTION inventory_events.master_data_changed();
CREATE TRIGGER kit_component_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON inventory_events.kit_component
    FOR EACH STATEMENT EXECUTE FUNCTION inventory_events.master_data_changed();
CREATE TRIGGER channel_item_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON inventory_events.channel_item
    FOR EACH STATEMENT EXECUTE FUNCTION inventory_events.master_data_changed();
CREATE TRIGGER intercompany_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON inventory_events.intercompany
    FOR EACH STATEMENT EXECUTE FUNCTION inventory_events.master_data_changed();
-- Also in replica mode: on a logical replication subscriber applying master
-- data, and in a parallel restore (doc/operations.md).
ALTER TABLE inventory_events.item ENABLE ALWAYS TRIGGER item_changed;
ALTER TABLE inventory_events.location ENABLE ALWAYS TRIGGER location_changed;
ALTER TABLE inventory_events.channel ENABLE ALWAYS TRIGGER channel_changed;
ALTER TABLE inventory_events.channel_location ENABLE ALWAYS TRIGGER channel_location_changed;
ALTER TABLE inventory_events.kit_component ENABLE ALWAYS TRIGGER kit_component_changed;
ALTER TABLE inventory_events.channel_item ENABLE ALWAYS TRIGGER channel_item_changed;
ALTER TABLE inventory_events.intercompany ENABLE ALWAYS TRIGGER intercompany_changed;

-- A location may not be its own ancestor (checked at commit, as parent is).
-- The walk up locks each ancestor FOR SHARE: two transactions that close a
-- cycle between them wait for each other (one fails, a deadlock) or, the
-- other committed, see its parent (READ COMMITTED) or fail to serialise
-- (REPEATABLE READ). A row updated again later in the transaction is
-- checked by that update's own trigger.
CREATE FUNCTION inventory_events.location_acyclic()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    up text := NEW.parent;
    steps integer := 0;
BEGIN
    IF NOT EXISTS (SELECT FROM inventory_events.location l
                    WHERE l.code = NEW.code AND l.parent IS NOT DISTINCT FROM NEW.parent) THEN
        RETURN NULL;
    END IF;
    WHILE up IS NOT NULL LOOP
        IF up = NEW.code OR steps > 10000 THEN
            RAISE EXCEPTION 'location "%" would be its own ancestor', NEW.code
                  USING ERRCODE = 'check_violation',
                        HINT = 'The locations form a tree: give it a parent that is not below it.';
        END IF;
        steps := steps + 1;
        SELECT l.parent INTO up FROM inventory_events.location l WHERE l.code = up FOR SHARE;
        IF NOT FOUND THEN
            RETURN NULL;    -- the foreign key reports a missing parent
        END IF;
    END LOOP;
    RETURN NULL;
END;
$$;
CREATE CONSTRAINT TRIGGER location_acyclic AFTER INSERT OR UPDATE OF parent ON inventory_events.location
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION inventory_events.location_acyclic();

