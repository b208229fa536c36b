-- inventory_events 0.2.0: install script, built by make from sql/install/*.sql.
\echo Use "CREATE EXTENSION inventory_events" to load this file. \quit

COMMENT ON SCHEMA inventory_events IS 'inventory_events: event store and available-to-promise engine';

-- ---------------------------------------------------------------------------
-- Library
-- ---------------------------------------------------------------------------

CREATE FUNCTION inventory_events.library_version()
RETURNS text
AS 'MODULE_PATHNAME', 'ie_library_version'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION inventory_events.library_version() IS
  'Version of the loaded inventory_events shared library';

CREATE FUNCTION inventory_events.shared_state(
    OUT started_at timestamptz,
    OUT events_appended bigint)
AS 'MODULE_PATHNAME', 'ie_shared_state'
LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION inventory_events.shared_state() IS
  'Shared memory state; needs shared_preload_libraries';

-- Internal: the first step of every function that changes stock. On a standby
-- (or in a read-only transaction) it refuses with SQLSTATE 25006 and a hint
-- naming the primary, before anything is locked or read.
CREATE FUNCTION inventory_events.require_writable(function text)
RETURNS void
AS 'MODULE_PATHNAME', 'ie_require_writable_sql'
LANGUAGE C VOLATILE STRICT;

-- ---------------------------------------------------------------------------
-- Enums
-- ---------------------------------------------------------------------------

-- Order matters: src/types.h mirrors it.
CREATE TYPE inventory_events.event_type AS ENUM (
    'received', 'adjusted', 'counted', 'reserved', 'released', 'picked', 'shipped',
    'pick_short', 'returned', 'damaged', 'moved', 'inbound_expected', 'inbound_cancelled',
    'transfer_out', 'transfer_in_transit', 'transfer_received', 'safety_stock_set');

CREATE TYPE inventory_events.bucket AS ENUM (
    'available', 'reserved', 'picked', 'damaged', 'quarantine', 'in_transit', 'inbound');

CREATE TYPE inventory_events.location_kind AS ENUM ('warehouse', 'store', '3pl', 'virtual');

CREATE TYPE inventory_events.channel_kind AS ENUM ('marketplace', 'storefront', 'edi_partner', 'b2b_portal');

-- ---------------------------------------------------------------------------
-- stock_position: a quantity per bucket
-- ---------------------------------------------------------------------------

CREATE TYPE inventory_events.stock_position;

CREATE FUNCTION inventory_events.stock_position_in(cstring) RETURNS inventory_events.stock_position
AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION inventory_events.stock_position_out(inventory_events.stock_position) RETURNS cstring
AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION inventory_events.stock_position_recv(internal) RETURNS inventory_events.stock_position
AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION inventory_events.stock_position_send(inventory_events.stock_position) RETURNS bytea
AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE TYPE inventory_events.stock_position (
    INPUT = inventory_events.stock_position_in,
    OUTPUT = inventory_events.stock_position_out,
    RECEIVE = inventory_events.stock_position_recv,
    SEND = inventory_events.stock_position_send,
    INTERNALLENGTH = 56,
    ALIGNMENT = double,
    STORAGE = plain
);
COMMENT ON TYPE inventory_events.stock_position IS
  'Quantity per bucket: (available=..,reserved=..,picked=..,damaged=..,quarantine=..,in_transit=..,inbound=..)';

CREATE FUNCTION inventory_events.stock_position(
    available bigint DEFAULT 0, reserved bigint DEFAULT 0, picked bigint DEFAULT 0,
    damaged bigint DEFAULT 0, quarantine bigint DEFAULT 0, in_transit bigint DEFAULT 0,
    inbound bigint DEFAULT 0)
RETURNS inventory_events.stock_position
AS 'MODULE_PATHNAME', 'stock_position_make' LANGUAGE C IMMUTABLE PARALLEL SAFE;

CREATE FUNCTION inventory_events.stock_position_pl(inventory_events.stock_position, inventory_events.stock_position)
RETURNS inventory_events.stock_position AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION inventory_events.stock_position_mi(inventory_events.stock_position, inventory_events.stock_position)
RETURNS inventory_events.stock_position AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION inventory_events.stock_position_eq(inventory_events.stock_position, inventory_events.stock_position)
RETURNS boolean AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION inventory_events.stock_position_ne(inventory_events.stock_position, inventory_events.stock_position)
RETURNS boolean AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION inventory_events.stock_position_accum(inventory_events.stock_position, inventory_events.stock_position)
RETURNS inventory_events.stock_position AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;

CREATE OPERATOR inventory_events.+ (
    LEFTARG = inventory_events.stock_position, RIGHTARG = inventory_events.stock_position,
    FUNCTION = inventory_events.stock_position_pl, COMMUTATOR = OPERATOR(inventory_events.+));
CREATE OPERATOR inventory_events.- (
    LEFTARG = inventory_events.stock_position, RIGHTARG = inventory_events.stock_position,
    FUNCTION = inventory_events.stock_position_mi);
CREATE OPERATOR inventory_events.= (
    LEFTARG = inventory_events.stock_position, RIGHTARG = inventory_events.stock_position,
    FUNCTION = inventory_events.stock_position_eq, COMMUTATOR = OPERATOR(inventory_events.=),
    NEGATOR = OPERATOR(inventory_events.<>), RESTRICT = eqsel, JOIN = eqjoinsel);
CREATE OPERATOR inventory_events.<> (
    LEFTARG = inventory_events.stock_position, RIGHTARG = inventory_events.stock_position,
    FUNCTION = inventory_events.stock_position_ne, COMMUTATOR = OPERATOR(inventory_events.<>),
    NEGATOR = OPERATOR(inventory_events.=), RESTRICT = neqsel, JOIN = neqjoinsel);

CREATE AGGREGATE inventory_events.sum(inventory_events.stock_position) (
    SFUNC = inventory_events.stock_position_accum,
    STYPE = inventory_events.stock_position,
    COMBINEFUNC = inventory_events.stock_position_accum,
    PARALLEL = SAFE
);

CREATE FUNCTION inventory_events.on_hand(inventory_events.stock_position) RETURNS bigint
AS 'MODULE_PATHNAME', 'stock_position_on_hand' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION inventory_events.available(inventory_events.stock_position) RETURNS bigint
AS 'MODULE_PATHNAME', 'stock_position_available' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION inventory_events.reserved(inventory_events.stock_position) RETURNS bigint
AS 'MODULE_PATHNAME', 'stock_position_reserved' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION inventory_events.picked(inventory_events.stock_position) RETURNS bigint
AS 'MODULE_PATHNAME', 'stock_position_picked' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION inventory_events.damaged(inventory_events.stock_position) RETURNS bigint
AS 'MODULE_PATHNAME', 'stock_position_damaged' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION inventory_events.quarantine(inventory_events.stock_position) RETURNS bigint
AS 'MODULE_PATHNAME', 'stock_position_quarantine' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION inventory_events.in_transit(inventory_events.stock_position) RETURNS bigint
AS 'MODULE_PATHNAME', 'stock_position_in_transit' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION inventory_events.inbound(inventory_events.stock_position) RETURNS bigint
AS 'MODULE_PATHNAME', 'stock_position_inbound' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- ---------------------------------------------------------------------------
-- Master data (the ERP is the master: plain INSERT or COPY by the admin)
-- ---------------------------------------------------------------------------

CREATE TABLE inventory_events.item (
    sku             text PRIMARY KEY,
    description     text NOT NULL DEFAULT '',
    base_uom        text NOT NULL DEFAULT 'EA',
    lot_controlled  boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE inventory_events.item_uom (
    sku     text NOT NULL REFERENCES inventory_events.item ON DELETE CASCADE,
    uom     text NOT NULL,
    factor  bigint NOT NULL DEFAULT 1 CHECK (factor > 0),
    PRIMARY KEY (sku, uom)
);
COMMENT ON COLUMN inventory_events.item_uom.factor IS 'Base units in one of this unit (CS = 12 EA: factor 12)';

CREATE TABLE inventory_events.location (
    code         text PRIMARY KEY,
    kind         inventory_events.location_kind NOT NULL DEFAULT 'warehouse',
    -- Checked at commit: a restore may load a child before its parent.
    parent       text REFERENCES inventory_events.location DEFERRABLE INITIALLY DEFERRED,
    description  text NOT NULL DEFAULT ''
);

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
    velocity_window   interval NOT NULL DEFAULT '1 hour' CHECK (velocity_window > '0')
);
COMMENT ON COLUMN inventory_events.channel.allow_split IS 'A reservation line may be split across sourcing locations';
COMMENT ON COLUMN inventory_events.channel.allow_backorders IS 'A shortage is recorded as a backorder, filled first-come-first-served';
COMMENT ON COLUMN inventory_events.channel.velocity_buffer IS
  'Buffer also ceil(recent reservation rate of the sku x publish_interval); rate over velocity_window';

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

-- pg_dump dumps the rows of these tables (CREATE EXTENSION makes the tables).
SELECT pg_catalog.pg_extension_config_dump('inventory_events.item', '');
SELECT pg_catalog.pg_extension_config_dump('inventory_events.item_uom', '');
SELECT pg_catalog.pg_extension_config_dump('inventory_events.location', '');
SELECT pg_catalog.pg_extension_config_dump('inventory_events.lot', '');
SELECT pg_catalog.pg_extension_config_dump('inventory_events.channel', '');
SELECT pg_catalog.pg_extension_config_dump('inventory_events.channel_location', '');
SELECT pg_catalog.pg_extension_config_dump('inventory_events.kit_component', '');

-- append() caches items and locations per backend; changing or removing one
-- tells every backend to drop that cache.
CREATE FUNCTION inventory_events.master_data_changed() RETURNS trigger
AS 'MODULE_PATHNAME', 'ie_master_data_changed' LANGUAGE C;
CREATE TRIGGER item_changed AFTER UPDATE OR DELETE OR TRUNCATE ON inventory_events.item
    FOR EACH STATEMENT EXECUTE FUNCTION inventory_events.master_data_changed();
CREATE TRIGGER location_changed AFTER UPDATE OR DELETE OR TRUNCATE ON inventory_events.location
    FOR EACH STATEMENT EXECUTE FUNCTION inventory_events.master_data_changed();
-- Channels and bills of materials are cached too (including "not a kit", so
-- inserts count as well).
CREATE TRIGGER channel_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON inventory_events.channel
    FOR EACH STATEMENT EXECUTE FUNCTION inventory_events.master_data_changed();
CREATE TRIGGER channel_location_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON inventory_events.channel_location
    FOR EACH STATEMENT EXECUTE FUNCTION inventory_events.master_data_changed();
CREATE TRIGGER kit_component_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON inventory_events.kit_component
    FOR EACH STATEMENT EXECUTE FUNCTION inventory_events.master_data_changed();
-- Also in replica mode: on a logical replication subscriber applying master
-- data, and in a parallel restore (doc/operations.md).
ALTER TABLE inventory_events.item ENABLE ALWAYS TRIGGER item_changed;
ALTER TABLE inventory_events.location ENABLE ALWAYS TRIGGER location_changed;
ALTER TABLE inventory_events.channel ENABLE ALWAYS TRIGGER channel_changed;
ALTER TABLE inventory_events.channel_location ENABLE ALWAYS TRIGGER channel_location_changed;
ALTER TABLE inventory_events.kit_component ENABLE ALWAYS TRIGGER kit_component_changed;

-- ---------------------------------------------------------------------------
-- The log's transaction ids across clusters (src/loghome.c)
-- ---------------------------------------------------------------------------

-- Every cluster and database the log has been written in. event.xid is the
-- writing transaction's id plus the current home's xid_offset, so that it
-- keeps growing when the database moves (a restore into a new cluster, whose
-- transaction ids start again near zero; a logical replication subscriber).
-- Home 0 is the database CREATE EXTENSION ran in; after a restore there are
-- two (the source's and the target's) and the database is not the log's home
-- until its first write adopts the log as home n + 1, with an offset that
-- puts every new event above every stored one. See src/loghome.c. (Column
-- order matters: src/catalog.h mirrors it.)
CREATE TABLE inventory_events.log_home (
    home               integer NOT NULL CHECK (home >= 0),
    system_identifier  bigint NOT NULL,
    database_oid       oid NOT NULL,
    xid_offset         bigint NOT NULL CHECK (xid_offset >= 0),
    first_xid          xid8 NOT NULL,
    adopted_at         timestamptz NOT NULL,
    PRIMARY KEY (system_identifier, database_oid, first_xid)
);
COMMENT ON TABLE inventory_events.log_home IS
  'Each cluster (system identifier) and database the event log has been written in, and the offset of its transaction ids there';
SELECT pg_catalog.pg_extension_config_dump('inventory_events.log_home', '');
-- Writers keep the home's offset per backend; a change (a restore loading
-- rows) tells every backend to look again.
CREATE TRIGGER log_home_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON inventory_events.log_home
    FOR EACH STATEMENT EXECUTE FUNCTION inventory_events.master_data_changed();
ALTER TABLE inventory_events.log_home ENABLE ALWAYS TRIGGER log_home_changed;
-- The log starts here.
INSERT INTO inventory_events.log_home (home, system_identifier, database_oid, xid_offset, first_xid, adopted_at)
SELECT 0, s.system_identifier, d.oid, 0, pg_snapshot_xmin(pg_current_snapshot()), now()
  FROM pg_control_system() s, pg_database d
 WHERE d.datname = current_database();

-- Whether this database has written to the log since CREATE EXTENSION or
-- since its restore: the first write adds a row (a row per backend that wrote
-- first at the same time). Not dumped, so a restored database has none until
-- its first write, and its publisher waits until then: it must not write
-- before the restore has loaded its tables.
CREATE TABLE inventory_events.log_home_written (
    written_at  timestamptz NOT NULL,
    pid         integer NOT NULL
);
COMMENT ON TABLE inventory_events.log_home_written IS
  'The first writes in this database since CREATE EXTENSION or a restore (not dumped)';

CREATE FUNCTION inventory_events.log_xid()
RETURNS xid8
AS 'MODULE_PATHNAME', 'ie_log_xid_sql'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION inventory_events.log_xid() IS
  'The log transaction id of this transaction (its transaction id plus the offset of the log''s home)';

CREATE FUNCTION inventory_events.log_xmin()
RETURNS xid8
AS 'MODULE_PATHNAME', 'ie_log_xmin_sql'
LANGUAGE C STABLE;
COMMENT ON FUNCTION inventory_events.log_xmin() IS
  'Every event with a smaller xid has committed or never will: readers take events below it';

CREATE FUNCTION inventory_events.log_adopted()
RETURNS boolean
AS 'MODULE_PATHNAME', 'ie_log_adopted_sql'
LANGUAGE C STABLE;
COMMENT ON FUNCTION inventory_events.log_adopted() IS
  'Whether this database is the log''s home and has written to it (false after CREATE EXTENSION, a restore or a move until the first write)';

-- ---------------------------------------------------------------------------
-- The event log (column order matters: src/catalog.h mirrors it)
-- ---------------------------------------------------------------------------

CREATE SEQUENCE inventory_events.event_id_seq;

CREATE TABLE inventory_events.event (
    id               bigint NOT NULL DEFAULT nextval('inventory_events.event_id_seq'),
    sku              text NOT NULL,
    location         text NOT NULL,
    lot              text NOT NULL DEFAULT '',
    version          bigint NOT NULL CHECK (version > 0),
    event_type       inventory_events.event_type NOT NULL,
    from_bucket      inventory_events.bucket,
    to_bucket        inventory_events.bucket,
    qty              bigint NOT NULL,
    uom              text NOT NULL,
    uom_qty          bigint NOT NULL,
    effect           inventory_events.stock_position NOT NULL,
    occurred_at      timestamptz NOT NULL,
    recorded_at      timestamptz NOT NULL DEFAULT now(),
    source           text NOT NULL DEFAULT '',
    source_seq       bigint,
    idempotency_key  text,
    correlation_id   uuid NOT NULL,
    causation_id     uuid NOT NULL,
    channel          text,
    ref              text,
    reason           text,
    expected_date    date,
    xid              xid8 NOT NULL DEFAULT inventory_events.log_xid(),
    payload          jsonb,
    CONSTRAINT event_pkey PRIMARY KEY (id),
    CONSTRAINT event_stream_version_key UNIQUE (sku, location, lot, version),
    CONSTRAINT event_idempotency_key UNIQUE (source, idempotency_key)
);
ALTER SEQUENCE inventory_events.event_id_seq OWNED BY inventory_events.event.id;
CREATE INDEX event_xid_id_idx ON inventory_events.event (xid, id);
COMMENT ON TABLE inventory_events.event IS 'The append-only inventory event log';
COMMENT ON COLUMN inventory_events.event.xid IS
  'Log transaction id: the writing transaction''s id plus the offset of the log''s home (see log_home)';
SELECT pg_catalog.pg_extension_config_dump('inventory_events.event', '');
SELECT pg_catalog.pg_extension_config_dump('inventory_events.event_id_seq', '');

CREATE TABLE inventory_events.stock (
    sku            text NOT NULL REFERENCES inventory_events.item,
    location       text NOT NULL REFERENCES inventory_events.location,
    lot            text NOT NULL DEFAULT '',
    available      bigint NOT NULL DEFAULT 0,
    reserved       bigint NOT NULL DEFAULT 0,
    picked         bigint NOT NULL DEFAULT 0,
    damaged        bigint NOT NULL DEFAULT 0,
    quarantine     bigint NOT NULL DEFAULT 0,
    in_transit     bigint NOT NULL DEFAULT 0,
    inbound        bigint NOT NULL DEFAULT 0,
    on_hand        bigint NOT NULL DEFAULT 0,
    safety_stock   bigint NOT NULL DEFAULT 0,
    version        bigint NOT NULL DEFAULT 0,
    last_event_id  bigint,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT stock_pkey PRIMARY KEY (sku, location, lot)
) WITH (fillfactor = 70);
COMMENT ON TABLE inventory_events.stock IS
  'Stock position per stream (sku, location, lot), derived from the event log in the same transaction';
-- Not dumped: a restore derives it again while it loads the log (the stock
-- trigger below copes with events loaded out of version order).

CREATE FUNCTION inventory_events.position_of(s inventory_events.stock)
RETURNS inventory_events.stock_position
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN inventory_events.stock_position(s.available, s.reserved, s.picked, s.damaged,
                                       s.quarantine, s.in_transit, s.inbound);

CREATE TABLE inventory_events.dead_letter (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    failed_at        timestamptz NOT NULL DEFAULT now(),
    source           text,
    idempotency_key  text,
    batch_ordinal    integer,
    sqlstate         text NOT NULL,
    message          text NOT NULL,
    detail           text,
    payload          jsonb NOT NULL
);
COMMENT ON TABLE inventory_events.dead_letter IS 'Events refused by batch ingest, with their reason and payload';
SELECT pg_catalog.pg_extension_config_dump('inventory_events.dead_letter', '');
SELECT pg_catalog.pg_extension_config_dump('inventory_events.dead_letter_id_seq', '');

CREATE FUNCTION inventory_events.stock_trigger() RETURNS trigger
AS 'MODULE_PATHNAME', 'ie_stock_trigger' LANGUAGE C;
CREATE TRIGGER event_stock AFTER INSERT ON inventory_events.event
    FOR EACH ROW EXECUTE FUNCTION inventory_events.stock_trigger();
-- Also on logical replication subscribers: they derive their own positions.
ALTER TABLE inventory_events.event ENABLE ALWAYS TRIGGER event_stock;

-- Only on logical replication subscribers (and other sessions in replica
-- mode): an applied event gets this database's log transaction id instead of
-- the publisher's.
CREATE FUNCTION inventory_events.event_local_xid() RETURNS trigger
AS 'MODULE_PATHNAME', 'ie_event_local_xid' LANGUAGE C;
CREATE TRIGGER event_local_xid BEFORE INSERT ON inventory_events.event
    FOR EACH ROW EXECUTE FUNCTION inventory_events.event_local_xid();
ALTER TABLE inventory_events.event ENABLE REPLICA TRIGGER event_local_xid;

CREATE FUNCTION inventory_events.event_guard() RETURNS trigger
AS 'MODULE_PATHNAME', 'ie_event_guard' LANGUAGE C;
CREATE TRIGGER event_append_only BEFORE UPDATE OR DELETE ON inventory_events.event
    FOR EACH STATEMENT EXECUTE FUNCTION inventory_events.event_guard();
CREATE TRIGGER event_append_only_truncate BEFORE TRUNCATE ON inventory_events.event
    FOR EACH STATEMENT EXECUTE FUNCTION inventory_events.event_guard();

-- ---------------------------------------------------------------------------
-- Appending
-- ---------------------------------------------------------------------------

CREATE FUNCTION inventory_events.append(
    sku               text,
    location          text,
    event_type        inventory_events.event_type,
    qty               bigint,
    source            text DEFAULT NULL,
    idempotency_key   text DEFAULT NULL,
    occurred_at       timestamptz DEFAULT NULL,
    lot               text DEFAULT NULL,
    uom               text DEFAULT NULL,
    ref               text DEFAULT NULL,
    channel           text DEFAULT NULL,
    expected_version  bigint DEFAULT NULL,
    payload           jsonb DEFAULT NULL,
    from_bucket       inventory_events.bucket DEFAULT NULL,
    to_bucket         inventory_events.bucket DEFAULT NULL,
    reason            text DEFAULT NULL,
    expected_date     date DEFAULT NULL,
    source_seq        bigint DEFAULT NULL,
    correlation_id    uuid DEFAULT NULL,
    causation_id      uuid DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'ie_append'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION inventory_events.append IS 'Appends one inventory event; returns its id';

CREATE FUNCTION inventory_events.ingest(events jsonb)
RETURNS TABLE (ordinal integer, status text, event_id bigint, version bigint, sqlstate text, message text)
AS 'MODULE_PATHNAME', 'ie_ingest'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION inventory_events.ingest IS
  'Appends a JSON array of events; invalid ones go to dead_letter; one outcome per element';

-- The COPY-friendly path: COPY into event_staging, then ingest_staged().
CREATE TABLE inventory_events.event_staging (
    staged_id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sku               text,
    location          text,
    event_type        text,
    qty               bigint,
    source            text,
    idempotency_key   text,
    occurred_at       timestamptz,
    lot               text,
    uom               text,
    ref               text,
    channel           text,
    expected_version  bigint,
    payload           jsonb,
    from_bucket       text,
    to_bucket         text,
    reason            text,
    expected_date     date,
    source_seq        bigint,
    correlation_id    uuid,
    causation_id      uuid
);
SELECT pg_catalog.pg_extension_config_dump('inventory_events.event_staging', '');
SELECT pg_catalog.pg_extension_config_dump('inventory_events.event_staging_staged_id_seq', '');

CREATE FUNCTION inventory_events.ingest_staged(max_rows integer DEFAULT NULL)
RETURNS TABLE (staged_id bigint, status text, event_id bigint, version bigint, sqlstate text, message text)
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT inventory_events.require_writable('inventory_events.ingest_staged()');
    -- Claim the rows by deleting them: concurrent callers never ingest a row twice.
    WITH claimed AS (
        DELETE FROM inventory_events.event_staging s
         WHERE s.staged_id IN (SELECT t.staged_id FROM inventory_events.event_staging t
                                ORDER BY t.staged_id LIMIT max_rows FOR UPDATE SKIP LOCKED)
        RETURNING s.*
    ), batch AS (
        SELECT array_agg(c.staged_id ORDER BY c.staged_id) AS ids,
               jsonb_agg(to_jsonb(c.*) - 'staged_id' ORDER BY c.staged_id) AS events
          FROM claimed c
    )
    SELECT b.ids[o.ordinal], o.status, o.event_id, o.version, o.sqlstate, o.message
      FROM batch b, inventory_events.ingest(coalesce(b.events, '[]')) o
     ORDER BY o.ordinal;
END;
COMMENT ON FUNCTION inventory_events.ingest_staged IS
  'Ingests (and removes) the rows COPYed into event_staging, oldest first';

-- ---------------------------------------------------------------------------
-- Positions: views and time travel
-- ---------------------------------------------------------------------------

-- Per sku and location, lots summed. A lot is expired after its expires_on
-- day: its available stock is reported as expired, not as available.
CREATE VIEW inventory_events.stock_by_location AS
SELECT s.sku,
       s.location,
       sum(s.on_hand)::bigint AS on_hand,
       sum(s.available) FILTER (WHERE NOT coalesce(l.expires_on < current_date, false))::bigint AS available,
       coalesce(sum(s.available) FILTER (WHERE l.expires_on < current_date), 0)::bigint AS expired,
       sum(s.reserved)::bigint AS reserved,
       sum(s.picked)::bigint AS picked,
       sum(s.damaged)::bigint AS damaged,
       sum(s.quarantine)::bigint AS quarantine,
       sum(s.in_transit)::bigint AS in_transit,
       sum(s.inbound)::bigint AS inbound,
       sum(s.safety_stock)::bigint AS safety_stock,
       greatest(coalesce(sum(s.available) FILTER (WHERE NOT coalesce(l.expires_on < current_date, false)), 0)
                - sum(s.safety_stock), 0)::bigint AS atp
  FROM inventory_events.stock s
  LEFT JOIN inventory_events.lot l ON l.sku = s.sku AND l.lot = s.lot
 GROUP BY s.sku, s.location;
COMMENT ON VIEW inventory_events.stock_by_location IS
  'On-hand, available (expired lots excluded), buckets, safety stock and ATP per sku and location';

CREATE VIEW inventory_events.stock_by_sku AS
SELECT sku,
       sum(on_hand)::bigint AS on_hand,
       sum(available)::bigint AS available,
       sum(expired)::bigint AS expired,
       sum(reserved)::bigint AS reserved,
       sum(picked)::bigint AS picked,
       sum(damaged)::bigint AS damaged,
       sum(quarantine)::bigint AS quarantine,
       sum(in_transit)::bigint AS in_transit,
       sum(inbound)::bigint AS inbound,
       sum(atp)::bigint AS atp
  FROM inventory_events.stock_by_location
 GROUP BY sku;
COMMENT ON VIEW inventory_events.stock_by_sku IS 'stock_by_location summed over locations';

-- The position of one stream as of a business time (events with occurred_at <= at).
CREATE FUNCTION inventory_events.position_as_of(sku text, location text, at timestamptz, lot text DEFAULT '')
RETURNS inventory_events.stock_position
LANGUAGE sql STABLE
RETURN (SELECT coalesce(inventory_events.sum(e.effect), inventory_events.stock_position())
          FROM inventory_events.event e
         WHERE e.sku = position_as_of.sku AND e.location = position_as_of.location
           AND e.lot = coalesce(position_as_of.lot, '') AND e.occurred_at <= position_as_of.at);

-- The positions of every stream of a sku as of a business time.
CREATE FUNCTION inventory_events.sku_position_as_of(sku text, at timestamptz)
RETURNS TABLE (location text, lot text, "position" inventory_events.stock_position, on_hand bigint)
LANGUAGE sql STABLE
BEGIN ATOMIC
    SELECT e.location, e.lot, inventory_events.sum(e.effect), inventory_events.on_hand(inventory_events.sum(e.effect))
      FROM inventory_events.event e
     WHERE e.sku = sku_position_as_of.sku AND e.occurred_at <= sku_position_as_of.at
     GROUP BY e.location, e.lot
     ORDER BY e.location, e.lot;
END;

-- ---------------------------------------------------------------------------
-- Catch-up reads for polling consumers
-- ---------------------------------------------------------------------------

-- Events after a checkpoint 'xid:id', in (xid, id) order, only from
-- transactions older than every one still running (below log_xmin(), the
-- snapshot's xmin as a log transaction id): an event committed late by an
-- older transaction is never skipped. Checkpoints stay valid across a
-- restore into another cluster (see log_home).
CREATE FUNCTION inventory_events.events_after(checkpoint text DEFAULT '0:0', max_events integer DEFAULT 1000)
RETURNS TABLE (next_checkpoint text, id bigint, sku text, location text, lot text, version bigint,
               event_type inventory_events.event_type, qty bigint, effect inventory_events.stock_position,
               occurred_at timestamptz, recorded_at timestamptz, source text, idempotency_key text,
               channel text, ref text, payload jsonb)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    after_xid xid8;
    after_id  bigint;
    horizon   xid8 := inventory_events.log_xmin();
BEGIN
    IF checkpoint IS NULL OR checkpoint !~ '^[0-9]{1,20}:[0-9]{1,19}$' THEN
        RAISE EXCEPTION 'invalid checkpoint "%"', checkpoint
              USING ERRCODE = 'invalid_text_representation',
                    HINT = 'A checkpoint is ''0:0'' or the next_checkpoint of a row read before.';
    END IF;
    after_xid := split_part(checkpoint, ':', 1)::xid8;
    after_id := split_part(checkpoint, ':', 2)::bigint;
    RETURN QUERY
    SELECT e.xid::text || ':' || e.id, e.id, e.sku, e.location, e.lot, e.version, e.event_type, e.qty,
           e.effect, e.occurred_at, e.recorded_at, e.source, e.idempotency_key, e.channel, e.ref, e.payload
      FROM inventory_events.event e
     WHERE (e.xid, e.id) > (after_xid, after_id)
       AND e.xid < horizon
     ORDER BY e.xid, e.id
     LIMIT max_events;
END;
$$;

-- ---------------------------------------------------------------------------
-- verify and rebuild
-- ---------------------------------------------------------------------------

-- What every stream's position must be: the sum of its events' effects.
CREATE VIEW inventory_events.stream_derived AS
SELECT sku, location, lot,
       inventory_events.sum(effect) AS "position",
       count(*) AS events,
       max(version) AS version,
       max(id) AS last_event_id,
       coalesce((array_agg(qty ORDER BY version DESC) FILTER (WHERE event_type = 'safety_stock_set'))[1], 0) AS safety_stock
  FROM inventory_events.event
 GROUP BY sku, location, lot;

CREATE FUNCTION inventory_events.verify()
RETURNS TABLE (sku text, location text, lot text,
               stored inventory_events.stock_position, derived inventory_events.stock_position,
               stored_version bigint, derived_version bigint,
               stored_safety_stock bigint, derived_safety_stock bigint, problem text)
LANGUAGE sql STABLE
BEGIN ATOMIC
    SELECT coalesce(s.sku, d.sku), coalesce(s.location, d.location), coalesce(s.lot, d.lot),
           inventory_events.position_of(s.*), d."position", s.version, d.version, s.safety_stock, d.safety_stock,
           CASE WHEN s.sku IS NULL THEN 'stock row missing'
                WHEN d.sku IS NULL THEN 'stock row without events'
                WHEN inventory_events.position_of(s.*) OPERATOR(inventory_events.<>) d."position" THEN 'position differs'
                WHEN s.on_hand <> inventory_events.on_hand(d."position") THEN 'on_hand differs'
                WHEN s.version <> d.version OR d.version <> d.events THEN 'version differs'
                ELSE 'safety stock differs' END
      FROM inventory_events.stock s
      FULL JOIN inventory_events.stream_derived d
        ON d.sku = s.sku AND d.location = s.location AND d.lot = s.lot
     WHERE s.sku IS NULL OR d.sku IS NULL
        OR inventory_events.position_of(s.*) OPERATOR(inventory_events.<>) d."position"
        OR s.on_hand <> inventory_events.on_hand(d."position")
        OR s.version <> d.version OR d.version <> d.events
        OR s.safety_stock <> d.safety_stock
     ORDER BY 1, 2, 3;
END;
COMMENT ON FUNCTION inventory_events.verify() IS
  'One row per stream whose stored position differs from the sum of its events; none when all is well';

CREATE FUNCTION inventory_events.report_progress(message text) RETURNS void
AS 'MODULE_PATHNAME', 'ie_report_progress' LANGUAGE C VOLATILE STRICT;

CREATE FUNCTION inventory_events.rebuild(progress_every integer DEFAULT 10000)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    total     bigint;
    done      bigint := 0;
    repaired  bigint := 0;
    d         record;
    p         inventory_events.stock_position;
BEGIN
    PERFORM inventory_events.require_writable('inventory_events.rebuild()');
    -- Appends wait until the rebuild commits; readers go on.
    LOCK TABLE inventory_events.event IN SHARE MODE;
    LOCK TABLE inventory_events.stock IN SHARE ROW EXCLUSIVE MODE;

    SELECT count(*) INTO total FROM (SELECT DISTINCT e.sku, e.location, e.lot FROM inventory_events.event e) x;

    FOR d IN SELECT * FROM inventory_events.stream_derived ORDER BY sku, location, lot LOOP
        p := d."position";
        INSERT INTO inventory_events.stock AS s
               (sku, location, lot, available, reserved, picked, damaged, quarantine, in_transit, inbound,
                on_hand, safety_stock, version, last_event_id, updated_at)
        VALUES (d.sku, d.location, d.lot, inventory_events.available(p), inventory_events.reserved(p),
                inventory_events.picked(p), inventory_events.damaged(p), inventory_events.quarantine(p),
                inventory_events.in_transit(p), inventory_events.inbound(p), inventory_events.on_hand(p),
                d.safety_stock, d.version, d.last_event_id, now())
        ON CONFLICT (sku, location, lot) DO UPDATE
           SET available = excluded.available, reserved = excluded.reserved, picked = excluded.picked,
               damaged = excluded.damaged, quarantine = excluded.quarantine, in_transit = excluded.in_transit,
               inbound = excluded.inbound, on_hand = excluded.on_hand, safety_stock = excluded.safety_stock,
               version = excluded.version, last_event_id = excluded.last_event_id, updated_at = now()
         WHERE (s.available, s.reserved, s.picked, s.damaged, s.quarantine, s.in_transit, s.inbound,
                s.on_hand, s.safety_stock, s.version)
               IS DISTINCT FROM
               (excluded.available, excluded.reserved, excluded.picked, excluded.damaged, excluded.quarantine,
                excluded.in_transit, excluded.inbound, excluded.on_hand, excluded.safety_stock, excluded.version);
        IF FOUND THEN
            repaired := repaired + 1;
        END IF;
        done := done + 1;
        IF done % progress_every = 0 THEN
            RAISE NOTICE 'rebuild: % of % streams checked, % repaired', done, total, repaired;
            PERFORM inventory_events.report_progress(
                format('inventory_events.rebuild(): %s of %s streams checked, %s repaired', done, total, repaired));
        END IF;
    END LOOP;

    DELETE FROM inventory_events.stock s
     WHERE NOT EXISTS (SELECT 1 FROM inventory_events.event e
                        WHERE e.sku = s.sku AND e.location = s.location AND e.lot = s.lot);
    GET DIAGNOSTICS done = ROW_COUNT;
    repaired := repaired + done;
    RAISE NOTICE 'rebuild: % streams checked, % repaired', total, repaired;
    RETURN repaired;
END;
$$;
COMMENT ON FUNCTION inventory_events.rebuild(integer) IS
  'Restores every stock row from the event log; returns the number of streams repaired';

-- ---------------------------------------------------------------------------
-- Channel availability
-- ---------------------------------------------------------------------------

-- The rules of channel c over a pool (the ATP of its sourcing locations):
-- allocation share rounded down, minus the fixed buffer, the percentage
-- buffer (rounded up) and the velocity buffer, capped, never negative. One
-- implementation in C serves this function, channel_availability() and
-- reserve().
CREATE FUNCTION inventory_events.channel_rules(pool bigint, c inventory_events.channel,
                                               velocity_buffer bigint DEFAULT 0)
RETURNS bigint
AS 'MODULE_PATHNAME', 'ie_channel_rules_sql'
LANGUAGE C IMMUTABLE PARALLEL SAFE;

CREATE FUNCTION inventory_events.channel_position(channel text, sku text,
    OUT pool bigint, OUT velocity_buffer bigint, OUT available bigint)
AS 'MODULE_PATHNAME', 'ie_channel_position'
LANGUAGE C STABLE STRICT;
COMMENT ON FUNCTION inventory_events.channel_position(text, text) IS
  'The pool (ATP of the sourcing locations), velocity buffer and availability of a sku on a channel';

CREATE FUNCTION inventory_events.channel_availability(channel text, sku text)
RETURNS bigint
AS 'MODULE_PATHNAME', 'ie_channel_availability'
LANGUAGE C STABLE STRICT;
COMMENT ON FUNCTION inventory_events.channel_availability(text, text) IS
  'What a channel may show for a sku (or kit): its rules over the ATP of its sourcing locations, never negative';

-- ---------------------------------------------------------------------------
-- Reservations
-- ---------------------------------------------------------------------------

-- One order line on a channel (column order matters: src/reserve.c mirrors it).
CREATE TABLE inventory_events.reservation (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    channel          text NOT NULL REFERENCES inventory_events.channel,
    ref              text NOT NULL,
    sku              text NOT NULL REFERENCES inventory_events.item,
    qty              bigint NOT NULL CHECK (qty > 0),
    backordered      bigint NOT NULL DEFAULT 0 CHECK (backordered >= 0),
    cancelled        bigint NOT NULL DEFAULT 0 CHECK (cancelled >= 0),
    location         text REFERENCES inventory_events.location,
    expires_at       timestamptz,
    source           text NOT NULL,
    idempotency_key  text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT reservation_channel_ref_key UNIQUE (channel, ref),
    CONSTRAINT reservation_idempotency_key UNIQUE (source, idempotency_key)
);
COMMENT ON TABLE inventory_events.reservation IS
  'Order lines reserved on a channel: qty = allocated + backordered + cancelled (in units of sku)';
SELECT pg_catalog.pg_extension_config_dump('inventory_events.reservation', '');
SELECT pg_catalog.pg_extension_config_dump('inventory_events.reservation_id_seq', '');
-- The backorder queue, first come first served.
CREATE INDEX reservation_backorder_idx ON inventory_events.reservation (sku, id) WHERE backordered > 0;
-- Recent reservations of a sku, for the velocity buffer.
CREATE INDEX reservation_recent_idx ON inventory_events.reservation (sku, created_at);
CREATE INDEX reservation_expiry_idx ON inventory_events.reservation (expires_at) WHERE expires_at IS NOT NULL;

-- Where a reservation took its stock: one row per reserved event.
CREATE TABLE inventory_events.allocation (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    reservation_id  bigint NOT NULL REFERENCES inventory_events.reservation,
    sku             text NOT NULL,
    location        text NOT NULL,
    lot             text NOT NULL DEFAULT '',
    per_unit        bigint NOT NULL DEFAULT 1 CHECK (per_unit > 0),
    qty             bigint NOT NULL CHECK (qty > 0),
    reserved        bigint NOT NULL CHECK (reserved >= 0),
    picked          bigint NOT NULL DEFAULT 0 CHECK (picked >= 0),
    shipped         bigint NOT NULL DEFAULT 0 CHECK (shipped >= 0),
    released        bigint NOT NULL DEFAULT 0 CHECK (released >= 0),
    short           bigint NOT NULL DEFAULT 0 CHECK (short >= 0),
    event_id        bigint NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (qty = reserved + picked + shipped + released + short)
);
COMMENT ON TABLE inventory_events.allocation IS
  'Stock reserved for a reservation at a location and lot (per_unit: component units per kit)';
SELECT pg_catalog.pg_extension_config_dump('inventory_events.allocation', '');
SELECT pg_catalog.pg_extension_config_dump('inventory_events.allocation_id_seq', '');
CREATE INDEX allocation_reservation_idx ON inventory_events.allocation (reservation_id, id);

CREATE TABLE inventory_events.exception (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind         text NOT NULL CHECK (kind IN ('pick_short', 'oversell_refused', 'negative_available', 'dead_letter')),
    sku          text,
    location     text,
    channel      text,
    ref          text,
    detail       text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    resolved_at  timestamptz
);
COMMENT ON TABLE inventory_events.exception IS 'Things a person should look at; set resolved_at when done';
SELECT pg_catalog.pg_extension_config_dump('inventory_events.exception', '');
SELECT pg_catalog.pg_extension_config_dump('inventory_events.exception_id_seq', '');
CREATE INDEX exception_open_idx ON inventory_events.exception (created_at) WHERE resolved_at IS NULL;

CREATE VIEW inventory_events.exception_aging AS
SELECT id, kind, sku, location, channel, ref, detail, created_at,
       now() - created_at AS age,
       CASE WHEN now() - created_at < interval '1 hour' THEN 'under 1 hour'
            WHEN now() - created_at < interval '1 day' THEN 'under 1 day'
            WHEN now() - created_at < interval '7 days' THEN 'under 7 days'
            ELSE '7 days or more' END AS age_bucket
  FROM inventory_events.exception
 WHERE resolved_at IS NULL;
COMMENT ON VIEW inventory_events.exception_aging IS 'Open exceptions with their age, oldest first when ordered by age';

CREATE FUNCTION inventory_events.resolve_exception(id bigint)
RETURNS boolean
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT inventory_events.require_writable('inventory_events.resolve_exception()');
    WITH resolved AS (
        UPDATE inventory_events.exception x SET resolved_at = now()
         WHERE x.id = resolve_exception.id AND x.resolved_at IS NULL
        RETURNING 1)
    SELECT count(*) > 0 FROM resolved;
END;
COMMENT ON FUNCTION inventory_events.resolve_exception(bigint) IS
  'Marks an open exception resolved; false when there is none with that id';

-- What each reservation holds now.
CREATE VIEW inventory_events.reservation_status AS
SELECT r.id, r.channel, r.ref, r.sku, r.qty, r.backordered, r.cancelled, r.expires_at, r.created_at,
       coalesce(sum(a.reserved), 0)::bigint AS reserved,
       coalesce(sum(a.picked), 0)::bigint AS picked,
       coalesce(sum(a.shipped), 0)::bigint AS shipped,
       coalesce(sum(a.released), 0)::bigint AS released,
       coalesce(sum(a.short), 0)::bigint AS short,
       CASE WHEN r.backordered > 0 THEN 'backordered'
            WHEN coalesce(sum(a.reserved), 0) > 0 THEN 'reserved'
            WHEN coalesce(sum(a.picked), 0) > 0 THEN 'picked'
            WHEN coalesce(sum(a.shipped), 0) > 0 THEN 'shipped'
            ELSE 'closed' END AS status
  FROM inventory_events.reservation r
  LEFT JOIN inventory_events.allocation a ON a.reservation_id = r.id
 GROUP BY r.id;
COMMENT ON VIEW inventory_events.reservation_status IS 'Each reservation with what it holds in each bucket';

CREATE FUNCTION inventory_events.reserve(
    channel          text,
    sku              text,
    qty              bigint,
    ref              text,
    location         text DEFAULT NULL,
    expires_at       timestamptz DEFAULT NULL,
    source           text DEFAULT NULL,
    idempotency_key  text DEFAULT NULL)
RETURNS TABLE (reservation_id bigint, status text, sku text, location text, lot text, qty bigint,
               event_id bigint, replayed boolean)
AS 'MODULE_PATHNAME', 'ie_reserve'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION inventory_events.reserve IS
  'Reserves an order line on a channel; returns what was reserved where (and any backorder)';

CREATE FUNCTION inventory_events.reserve_lines(lines jsonb)
RETURNS TABLE (ordinal integer, reservation_id bigint, status text, sku text, location text, lot text,
               qty bigint, event_id bigint, replayed boolean, sqlstate text, message text)
AS 'MODULE_PATHNAME', 'ie_reserve_lines'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION inventory_events.reserve_lines IS
  'Reserves several order lines, locking in one global order; a shortage is a refused line and an exception';

CREATE FUNCTION inventory_events.fill_backorders(sku text DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'ie_fill_backorders_sql'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION inventory_events.fill_backorders IS
  'Fills open backorders (of one sku, or all) first come first served; returns the units reserved';

-- Internal: the sku locks every reservation operation takes first, in the global order.
CREATE FUNCTION inventory_events.lock_skus(skus text[])
RETURNS void
AS 'MODULE_PATHNAME', 'ie_lock_skus'
LANGUAGE C VOLATILE STRICT;

CREATE VIEW inventory_events.channel_stock AS
SELECT c.code AS channel, s.sku, p.pool, p.velocity_buffer, p.available
  FROM inventory_events.channel c
  CROSS JOIN LATERAL (SELECT DISTINCT st.sku
                        FROM inventory_events.channel_location cl
                        JOIN inventory_events.stock st ON st.location = cl.location
                       WHERE cl.channel = c.code) s
  CROSS JOIN LATERAL inventory_events.channel_position(c.code, s.sku) p;
COMMENT ON VIEW inventory_events.channel_stock IS
  'channel_position for every channel and every sku stocked at its sourcing locations';

-- Internal: takes the idempotency lock of (source, key) and returns the id of an
-- event already recorded under it (seen even if committed after our snapshot).
CREATE FUNCTION inventory_events.idempotent_event(source text, idempotency_key text)
RETURNS bigint
AS 'MODULE_PATHNAME', 'ie_idempotent_event'
LANGUAGE C VOLATILE;

-- One event appended by an operation on an order line, a transfer or a receipt.
CREATE TYPE inventory_events.movement AS (
    event_id    bigint,
    event_type  inventory_events.event_type,
    sku         text,
    location    text,
    lot         text,
    qty         bigint);

-- Internal: the stream locks of a multi-stream operation, in the global order.
CREATE FUNCTION inventory_events.lock_streams(sku text, locations text[], lot text)
RETURNS void
AS 'MODULE_PATHNAME', 'ie_lock_streams'
LANGUAGE C VOLATILE STRICT;

-- Internal: a reservation, locked for a change: its skus' locks first (the
-- global order), then its row.
CREATE FUNCTION inventory_events.lock_reservation(channel text, ref text)
RETURNS inventory_events.reservation
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r inventory_events.reservation;
BEGIN
    SELECT * INTO r FROM inventory_events.reservation x
     WHERE x.channel = lock_reservation.channel AND x.ref = lock_reservation.ref;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no reservation "%" on channel "%"', ref, channel
              USING ERRCODE = 'no_data_found',
                    HINT = 'Reserve the order line with inventory_events.reserve() first.';
    END IF;
    PERFORM inventory_events.lock_skus(array_append(
        ARRAY(SELECT k.component FROM inventory_events.kit_component k WHERE k.kit = r.sku), r.sku));
    SELECT * INTO r FROM inventory_events.reservation x WHERE x.id = r.id FOR UPDATE;
    RETURN r;
END;
$$;

-- Internal: moves qty ordered units (null: all) of a reservation's
-- allocations from one of its columns to another, appending one event per
-- allocation touched. Checks before appending anything.
CREATE FUNCTION inventory_events.move_allocations(
    r inventory_events.reservation, op text, units bigint, at_location text,
    reason text, source text, idempotency_key text)
RETURNS SETOF inventory_events.movement
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    from_col  text := CASE op WHEN 'ship' THEN 'picked' ELSE 'reserved' END;
    to_col    text := CASE op WHEN 'release' THEN 'released' WHEN 'pick' THEN 'picked'
                              WHEN 'ship' THEN 'shipped' ELSE 'short' END;
    ev        inventory_events.event_type := CASE op WHEN 'release' THEN 'released' WHEN 'pick' THEN 'picked'
                                                     WHEN 'ship' THEN 'shipped' ELSE 'pick_short' END;
    comp      record;
    a         record;
    want      bigint;
    take      bigint;
    n         integer := 0;
    m         inventory_events.movement;
BEGIN
    IF units IS NOT NULL AND units <= 0 THEN
        RAISE EXCEPTION 'invalid quantity %', units
              USING ERRCODE = 'invalid_parameter_value', DETAIL = 'The quantity must be positive.';
    END IF;
    -- Enough of every component first, so nothing is half-applied.
    FOR comp IN
        SELECT x.sku, x.per_unit,
               sum(CASE from_col WHEN 'picked' THEN x.picked ELSE x.reserved END) AS held
          FROM inventory_events.allocation x
         WHERE x.reservation_id = r.id AND (at_location IS NULL OR x.location = at_location)
         GROUP BY x.sku, x.per_unit
    LOOP
        IF units IS NOT NULL AND comp.held < units * comp.per_unit THEN
            RAISE EXCEPTION 'reservation "%" on channel "%" holds % % of sku "%"%, not %',
                  r.ref, r.channel, comp.held, from_col, comp.sku,
                  CASE WHEN at_location IS NULL THEN '' ELSE format(' at location "%s"', at_location) END,
                  units * comp.per_unit
                  USING ERRCODE = 'IE001';
        END IF;
    END LOOP;
    IF units IS NOT NULL AND NOT FOUND THEN
        RAISE EXCEPTION 'reservation "%" on channel "%" holds nothing %', r.ref, r.channel,
              CASE WHEN at_location IS NULL THEN 'to ' || op ELSE format('at location "%s"', at_location) END
              USING ERRCODE = 'IE001';
    END IF;

    FOR comp IN
        SELECT DISTINCT x.sku, x.per_unit FROM inventory_events.allocation x WHERE x.reservation_id = r.id
    LOOP
        want := CASE WHEN units IS NULL THEN NULL ELSE units * comp.per_unit END;
        FOR a IN
            SELECT x.* FROM inventory_events.allocation x
             WHERE x.reservation_id = r.id AND x.sku = comp.sku
               AND (at_location IS NULL OR x.location = at_location)
               AND CASE from_col WHEN 'picked' THEN x.picked ELSE x.reserved END > 0
             ORDER BY CASE WHEN op = 'release' THEN -x.id ELSE x.id END
        LOOP
            EXIT WHEN want = 0;
            take := CASE from_col WHEN 'picked' THEN a.picked ELSE a.reserved END;
            IF want IS NOT NULL THEN
                take := least(take, want);
                want := want - take;
            END IF;
            n := n + 1;
            m.event_id := inventory_events.append(a.sku, a.location, ev, take,
                      source => move_allocations.source,
                      idempotency_key => CASE WHEN move_allocations.idempotency_key IS NULL THEN NULL
                                              WHEN n = 1 THEN move_allocations.idempotency_key
                                              ELSE move_allocations.idempotency_key || '#' || n END,
                      lot => nullif(a.lot, ''), ref => r.ref, channel => r.channel, reason => move_allocations.reason);
            -- Static SQL (a plan cached for the session), not EXECUTE: a wave
            -- release runs this thousands of times.
            UPDATE inventory_events.allocation x
               SET reserved = x.reserved - CASE WHEN from_col = 'reserved' THEN take ELSE 0 END,
                   picked = x.picked + CASE to_col WHEN 'picked' THEN take ELSE 0 END
                                     - CASE from_col WHEN 'picked' THEN take ELSE 0 END,
                   shipped = x.shipped + CASE to_col WHEN 'shipped' THEN take ELSE 0 END,
                   released = x.released + CASE to_col WHEN 'released' THEN take ELSE 0 END,
                   short = x.short + CASE to_col WHEN 'short' THEN take ELSE 0 END
             WHERE x.id = a.id;
            m.event_type := ev; m.sku := a.sku; m.location := a.location; m.lot := a.lot; m.qty := take;
            RETURN NEXT m;
        END LOOP;
    END LOOP;
END;
$$;

-- Internal: the events an operation recorded under an idempotency key (its
-- replay), or nothing.
CREATE FUNCTION inventory_events.replayed_events(source text, idempotency_key text)
RETURNS SETOF inventory_events.movement
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT e.id, e.event_type, e.sku, e.location, e.lot, e.qty FROM inventory_events.event e
     WHERE e.source = coalesce(replayed_events.source, '')
       AND (e.idempotency_key = replayed_events.idempotency_key
            OR e.idempotency_key LIKE replace(replace(replace(replayed_events.idempotency_key, '\', '\\'), '%', '\%'), '_', '\_') || '#%')
     ORDER BY e.id;
END;

CREATE FUNCTION inventory_events.release(channel text, ref text, qty bigint DEFAULT NULL,
                                         reason text DEFAULT 'cancelled', source text DEFAULT NULL,
                                         idempotency_key text DEFAULT NULL)
RETURNS SETOF inventory_events.movement
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r          inventory_events.reservation;
    n_cancel   bigint;
BEGIN
    PERFORM inventory_events.require_writable('inventory_events.release()');
    IF inventory_events.idempotent_event(source, idempotency_key) IS NOT NULL THEN
        RETURN QUERY SELECT * FROM inventory_events.replayed_events(source, idempotency_key);
        RETURN;
    END IF;
    r := inventory_events.lock_reservation(channel, ref);
    -- The unfilled part goes first.
    IF qty IS NOT NULL AND qty <= 0 THEN
        RAISE EXCEPTION 'invalid quantity %', qty
              USING ERRCODE = 'invalid_parameter_value', DETAIL = 'The quantity must be positive.';
    END IF;
    n_cancel := CASE WHEN qty IS NULL THEN r.backordered ELSE least(qty, r.backordered) END;
    IF n_cancel > 0 THEN
        UPDATE inventory_events.reservation x
           SET backordered = x.backordered - n_cancel, cancelled = x.cancelled + n_cancel
         WHERE x.id = r.id;
    END IF;
    IF qty IS NULL OR qty > n_cancel THEN
        RETURN QUERY SELECT * FROM inventory_events.move_allocations(
            r, 'release', qty - n_cancel, NULL, reason, source, idempotency_key);
    END IF;
END;
$$;
COMMENT ON FUNCTION inventory_events.release IS
  'Releases an order line (its backorder first, then its reservations, latest first); null qty: all of it';

CREATE FUNCTION inventory_events.pick(channel text, ref text, qty bigint DEFAULT NULL,
                                      location text DEFAULT NULL, source text DEFAULT NULL,
                                      idempotency_key text DEFAULT NULL)
RETURNS SETOF inventory_events.movement
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM inventory_events.require_writable('inventory_events.pick()');
    IF inventory_events.idempotent_event(source, idempotency_key) IS NOT NULL THEN
        RETURN QUERY SELECT * FROM inventory_events.replayed_events(source, idempotency_key);
        RETURN;
    END IF;
    RETURN QUERY SELECT * FROM inventory_events.move_allocations(
        inventory_events.lock_reservation(channel, ref), 'pick', qty, location, NULL, source, idempotency_key);
END;
$$;
COMMENT ON FUNCTION inventory_events.pick IS 'Picks reserved stock of an order line (null qty: all of it)';

CREATE FUNCTION inventory_events.ship(channel text, ref text, qty bigint DEFAULT NULL,
                                      source text DEFAULT NULL, idempotency_key text DEFAULT NULL)
RETURNS SETOF inventory_events.movement
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM inventory_events.require_writable('inventory_events.ship()');
    IF inventory_events.idempotent_event(source, idempotency_key) IS NOT NULL THEN
        RETURN QUERY SELECT * FROM inventory_events.replayed_events(source, idempotency_key);
        RETURN;
    END IF;
    RETURN QUERY SELECT * FROM inventory_events.move_allocations(
        inventory_events.lock_reservation(channel, ref), 'ship', qty, NULL, NULL, source, idempotency_key);
END;
$$;
COMMENT ON FUNCTION inventory_events.ship IS 'Ships picked stock of an order line (null qty: all of it)';

-- A pick short: the reserved units were not there. They leave the books
-- (reserved -> outside), an exception is recorded, and where the channel
-- allows backorders the order line's shortfall is backordered and filled at
-- once if stock is there. All in the caller's transaction.
CREATE FUNCTION inventory_events.pick_short(channel text, ref text, qty bigint, location text DEFAULT NULL,
                                            reason text DEFAULT NULL, source text DEFAULT NULL,
                                            idempotency_key text DEFAULT NULL)
RETURNS SETOF inventory_events.movement
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r  inventory_events.reservation;
    m  inventory_events.movement;
    kit boolean;
BEGIN
    PERFORM inventory_events.require_writable('inventory_events.pick_short()');
    IF qty IS NULL THEN
        RAISE EXCEPTION 'qty must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF inventory_events.idempotent_event(source, idempotency_key) IS NOT NULL THEN
        RETURN QUERY SELECT * FROM inventory_events.replayed_events(source, idempotency_key);
        RETURN;
    END IF;
    r := inventory_events.lock_reservation(channel, ref);
    FOR m IN SELECT * FROM inventory_events.move_allocations(r, 'pick_short', qty, location, reason, source, idempotency_key) LOOP
        INSERT INTO inventory_events.exception (kind, sku, location, channel, ref, detail)
        VALUES ('pick_short', m.sku, m.location, r.channel, r.ref,
                format('%s short%s (event %s)%s', m.qty,
                       CASE WHEN m.lot <> '' THEN format(' of lot "%s"', m.lot) ELSE '' END,
                       m.event_id, coalesce(': ' || reason, '')));
        RETURN NEXT m;
    END LOOP;
    kit := EXISTS (SELECT FROM inventory_events.kit_component k WHERE k.kit = r.sku);
    IF NOT kit AND (SELECT c.allow_backorders FROM inventory_events.channel c WHERE c.code = r.channel) THEN
        UPDATE inventory_events.reservation x SET backordered = x.backordered + pick_short.qty WHERE x.id = r.id;
        PERFORM inventory_events.fill_backorders(r.sku);
    END IF;
END;
$$;
COMMENT ON FUNCTION inventory_events.pick_short IS
  'Records a pick short: reserved units leave the books, an exception is raised, backorders re-fill';

-- Releases (reason expired) every reservation whose expires_at has passed,
-- its backorder included. The worker calls it on a schedule.
CREATE FUNCTION inventory_events.expire_reservations(max_reservations integer DEFAULT 1000)
RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    due  bigint[];
    r    inventory_events.reservation;
    n    integer := 0;
BEGIN
    PERFORM inventory_events.require_writable('inventory_events.expire_reservations()');
    SELECT array_agg(x.id ORDER BY x.id) INTO due
      FROM (SELECT x.id FROM inventory_events.reservation x
             WHERE x.expires_at <= now()
               AND (x.backordered > 0 OR EXISTS (SELECT FROM inventory_events.allocation a
                                                  WHERE a.reservation_id = x.id AND a.reserved > 0))
             ORDER BY x.id LIMIT max_reservations) x;
    IF due IS NULL THEN
        RETURN 0;
    END IF;
    -- Every sku involved, locked at once in the global order.
    PERFORM inventory_events.lock_skus(ARRAY(
        SELECT x.sku FROM inventory_events.reservation x WHERE x.id = ANY (due)
        UNION SELECT k.component FROM inventory_events.reservation x
                JOIN inventory_events.kit_component k ON k.kit = x.sku WHERE x.id = ANY (due)));
    FOR r IN SELECT * FROM inventory_events.reservation x WHERE x.id = ANY (due) ORDER BY x.id FOR UPDATE LOOP
        -- Picked meanwhile? Then only what is still reserved or backordered goes.
        IF r.backordered > 0 OR EXISTS (SELECT FROM inventory_events.allocation a
                                         WHERE a.reservation_id = r.id AND a.reserved > 0) THEN
            PERFORM inventory_events.release(r.channel, r.ref, NULL, 'expired');
            n := n + 1;
        END IF;
    END LOOP;
    RETURN n;
END;
$$;
COMMENT ON FUNCTION inventory_events.expire_reservations IS
  'Releases reservations past their expires_at with reason expired; returns how many';

-- ---------------------------------------------------------------------------
-- Transfers, purchase-order receipts, returns
-- ---------------------------------------------------------------------------

CREATE FUNCTION inventory_events.transfer(sku text, from_location text, to_location text, qty bigint,
                                          ref text, expected_date date DEFAULT NULL, lot text DEFAULT NULL,
                                          source text DEFAULT NULL, idempotency_key text DEFAULT NULL)
RETURNS SETOF inventory_events.movement
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    m inventory_events.movement;
BEGIN
    PERFORM inventory_events.require_writable('inventory_events.transfer()');
    IF inventory_events.idempotent_event(source, idempotency_key) IS NOT NULL THEN
        RETURN QUERY SELECT * FROM inventory_events.replayed_events(source, idempotency_key);
        RETURN;
    END IF;
    IF ref IS NULL THEN
        RAISE EXCEPTION 'ref must not be null' USING ERRCODE = 'null_value_not_allowed',
              HINT = 'The transfer reference ties the receipt to the shipment.';
    END IF;
    IF from_location = to_location THEN
        RAISE EXCEPTION 'a transfer needs two different locations' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM inventory_events.lock_streams(sku, ARRAY[from_location, to_location], coalesce(lot, ''));
    m := (inventory_events.append(sku, from_location, 'transfer_out', qty, source => source,
                                  idempotency_key => idempotency_key, lot => lot, ref => ref),
          'transfer_out', sku, from_location, coalesce(lot, ''), qty);
    RETURN NEXT m;
    m := (inventory_events.append(sku, to_location, 'transfer_in_transit', qty, source => source,
                                  idempotency_key => idempotency_key || '#2', lot => lot, ref => ref,
                                  expected_date => expected_date),
          'transfer_in_transit', sku, to_location, coalesce(lot, ''), qty);
    RETURN NEXT m;
END;
$$;
COMMENT ON FUNCTION inventory_events.transfer IS
  'Ships stock to another location: transfer_out at the source, transfer_in_transit (with expected_date) at the destination';

-- The open quantity of a reference (PO line, transfer) in a bucket of a stream.
CREATE FUNCTION inventory_events.open_quantity(sku text, location text, lot text, ref text, b inventory_events.bucket)
RETURNS bigint
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
RETURN (SELECT coalesce(sum(CASE b WHEN 'inbound' THEN inventory_events.inbound(e.effect)
                                   ELSE inventory_events.in_transit(e.effect) END), 0)::bigint
          FROM inventory_events.event e
         WHERE e.sku = open_quantity.sku AND e.location = open_quantity.location
           AND e.lot = coalesce(open_quantity.lot, '') AND e.ref = open_quantity.ref);

CREATE FUNCTION inventory_events.receive_transfer(sku text, to_location text, qty bigint, ref text,
                                                  lot text DEFAULT NULL, source text DEFAULT NULL,
                                                  idempotency_key text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    open bigint;
    prior bigint;
BEGIN
    PERFORM inventory_events.require_writable('inventory_events.receive_transfer()');
    prior := inventory_events.idempotent_event(source, idempotency_key);
    IF prior IS NOT NULL THEN
        RETURN prior;
    END IF;
    PERFORM inventory_events.lock_skus(ARRAY[sku]);
    PERFORM inventory_events.lock_streams(sku, ARRAY[to_location], coalesce(lot, ''));
    open := inventory_events.open_quantity(sku, to_location, lot, ref, 'in_transit');
    IF qty > open THEN
        RAISE EXCEPTION 'transfer "%" has % of sku "%" in transit to location "%", not %', ref, open, sku, to_location, qty
              USING ERRCODE = 'IE001';
    END IF;
    RETURN inventory_events.append(sku, to_location, 'transfer_received', qty, source => source,
                                   idempotency_key => idempotency_key, lot => lot, ref => ref);
END;
$$;
COMMENT ON FUNCTION inventory_events.receive_transfer IS
  'Completes (part of) a transfer: in_transit -> available at the destination';

-- A receipt against a purchase-order line (ref): the line's open inbound
-- quantity moves to available (never below zero); any excess is a plain receipt.
CREATE FUNCTION inventory_events.receive_po(sku text, location text, qty bigint, ref text,
                                            lot text DEFAULT NULL, source text DEFAULT NULL,
                                            idempotency_key text DEFAULT NULL)
RETURNS SETOF inventory_events.movement
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    matched bigint;
    m       inventory_events.movement;
BEGIN
    PERFORM inventory_events.require_writable('inventory_events.receive_po()');
    IF inventory_events.idempotent_event(source, idempotency_key) IS NOT NULL THEN
        RETURN QUERY SELECT * FROM inventory_events.replayed_events(source, idempotency_key);
        RETURN;
    END IF;
    IF qty IS NULL OR qty <= 0 THEN
        RAISE EXCEPTION 'invalid quantity %', qty
              USING ERRCODE = 'invalid_parameter_value', DETAIL = 'The quantity must be positive.';
    END IF;
    PERFORM inventory_events.lock_skus(ARRAY[sku]);
    PERFORM inventory_events.lock_streams(sku, ARRAY[location], coalesce(lot, ''));
    matched := least(qty, greatest(inventory_events.open_quantity(sku, location, lot, ref, 'inbound'), 0));
    IF matched > 0 THEN
        m := (inventory_events.append(sku, location, 'moved', matched, source => source,
                                      idempotency_key => idempotency_key, lot => lot, ref => ref,
                                      from_bucket => 'inbound', to_bucket => 'available', reason => 'po receipt'),
              'moved', sku, location, coalesce(lot, ''), matched);
        RETURN NEXT m;
    END IF;
    IF qty > matched THEN
        m := (inventory_events.append(sku, location, 'received', qty - matched, source => source,
                                      idempotency_key => CASE WHEN matched > 0 THEN idempotency_key || '#2'
                                                              ELSE idempotency_key END,
                                      lot => lot, ref => ref, reason => 'po receipt beyond the open quantity'),
              'received', sku, location, coalesce(lot, ''), qty - matched);
        RETURN NEXT m;
    END IF;
END;
$$;
COMMENT ON FUNCTION inventory_events.receive_po IS
  'Receives against a purchase-order line: its open inbound quantity becomes available, any excess is received';

CREATE FUNCTION inventory_events.receive_return(sku text, location text, qty bigint, ref text,
                                                lot text DEFAULT NULL, channel text DEFAULT NULL,
                                                reason text DEFAULT NULL, source text DEFAULT NULL,
                                                idempotency_key text DEFAULT NULL)
RETURNS bigint
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT inventory_events.require_writable('inventory_events.receive_return()');
    SELECT inventory_events.append(sku, location, 'returned', qty, source => source, idempotency_key => idempotency_key,
                                   lot => lot, ref => ref, channel => channel, reason => reason);
END;
COMMENT ON FUNCTION inventory_events.receive_return IS 'A customer return, into quarantine';

CREATE FUNCTION inventory_events.dispose_return(sku text, location text, qty bigint, disposition text,
                                                ref text DEFAULT NULL, lot text DEFAULT NULL,
                                                source text DEFAULT NULL, idempotency_key text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM inventory_events.require_writable('inventory_events.dispose_return()');
    IF disposition IS NULL OR disposition NOT IN ('restock', 'write_off') THEN
        RAISE EXCEPTION 'invalid disposition "%"', disposition
              USING ERRCODE = 'invalid_parameter_value', HINT = 'A disposition is restock or write_off.';
    END IF;
    RETURN inventory_events.append(sku, location, 'moved', qty, source => source, idempotency_key => idempotency_key,
                                   lot => lot, ref => ref, from_bucket => 'quarantine',
                                   to_bucket => CASE disposition WHEN 'restock' THEN 'available'::inventory_events.bucket END,
                                   reason => CASE disposition WHEN 'restock' THEN 'return restocked'
                                                              ELSE 'return written off' END);
END;
$$;
COMMENT ON FUNCTION inventory_events.dispose_return IS
  'Releases returned stock from quarantine: restock (to available) or write_off (out of the books)';

-- ---------------------------------------------------------------------------
-- Future availability (time-phased, cumulative ATP)
-- ---------------------------------------------------------------------------

-- Supply: today the pool (ATP of the channel's sourcing locations); later the
-- open purchase-order lines (inbound) and transfers (in transit) to those
-- locations on their expected dates (overdue ones today). Demand: the open
-- backorders of the sku, which consume the earliest supply. A date's figure
-- is the cumulative supply not consumed, through the channel's rules, so no
-- unit is promised twice.
CREATE FUNCTION inventory_events.availability_timeline(channel text, sku text, horizon interval DEFAULT NULL)
RETURNS TABLE (available_on date, supply bigint, demand bigint, cumulative bigint, available bigint)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c        inventory_events.channel;
    pos      record;
    pending  bigint;
    total    bigint := 0;
    d        record;
    last_day date;
BEGIN
    SELECT * INTO c FROM inventory_events.channel x WHERE x.code = availability_timeline.channel;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown channel "%"', availability_timeline.channel
              USING ERRCODE = 'foreign_key_violation', HINT = 'Add it to inventory_events.channel first.';
    END IF;
    IF NOT c.future_view THEN
        RAISE EXCEPTION 'channel "%" has no future view', c.code
              USING ERRCODE = 'invalid_parameter_value',
                    HINT = 'Set future_view (and horizon) on the channel.';
    END IF;
    IF horizon < interval '0' THEN
        RAISE EXCEPTION 'invalid horizon %', horizon USING ERRCODE = 'invalid_parameter_value';
    END IF;
    last_day := (current_date + least(coalesce(horizon, c.horizon), c.horizon))::date;
    pos := inventory_events.channel_position(c.code, sku);
    SELECT coalesce(sum(x.backordered), 0) INTO pending
      FROM inventory_events.reservation x WHERE x.sku = availability_timeline.sku;

    FOR d IN
        WITH open_refs AS (
            SELECT e.location, e.lot, e.ref, max(e.expected_date) AS expected_date,
                   sum(inventory_events.inbound(e.effect) + inventory_events.in_transit(e.effect)) AS open
              FROM inventory_events.event e
              JOIN inventory_events.channel_location cl ON cl.location = e.location AND cl.channel = c.code
             WHERE e.sku = availability_timeline.sku
               AND (inventory_events.inbound(e.effect) <> 0 OR inventory_events.in_transit(e.effect) <> 0)
             GROUP BY e.location, e.lot, e.ref
        ), supply AS (
            SELECT current_date AS day, pos.pool AS qty
            UNION ALL
            SELECT greatest(coalesce(o.expected_date, current_date), current_date), o.open
              FROM open_refs o
             WHERE o.open > 0 AND coalesce(o.expected_date, current_date) <= last_day
        )
        SELECT s.day, sum(s.qty)::bigint AS qty FROM supply s GROUP BY s.day ORDER BY s.day
    LOOP
        available_on := d.day;
        supply := d.qty;
        demand := least(d.qty, pending);
        pending := pending - demand;
        total := total + supply - demand;
        cumulative := total;
        available := inventory_events.channel_rules(total, c, pos.velocity_buffer);
        RETURN NEXT;
    END LOOP;
END;
$$;
COMMENT ON FUNCTION inventory_events.availability_timeline IS
  'Cumulative availability by date for a channel with a future view: ATP now, open inbound and transfers by expected date, backorders consuming the earliest supply';

-- ---------------------------------------------------------------------------
-- Channel publication (the publisher background worker calls publish())
-- ---------------------------------------------------------------------------

-- What each channel was told, in order: a gap-free sequence per channel.
CREATE TABLE inventory_events.publication (
    channel       text NOT NULL REFERENCES inventory_events.channel ON DELETE CASCADE,
    seq           bigint NOT NULL CHECK (seq > 0),
    sku           text NOT NULL,
    available     bigint NOT NULL,
    published_at  timestamptz NOT NULL,
    PRIMARY KEY (channel, seq)
);
COMMENT ON TABLE inventory_events.publication IS
  'Every availability sent to a channel, with a gap-free sequence number per channel';
SELECT pg_catalog.pg_extension_config_dump('inventory_events.publication', '');

-- Per channel: the last sequence number and when it was last published to.
CREATE TABLE inventory_events.channel_publisher (
    channel            text PRIMARY KEY REFERENCES inventory_events.channel ON DELETE CASCADE,
    last_seq           bigint NOT NULL DEFAULT 0,
    last_published_at  timestamptz
);
SELECT pg_catalog.pg_extension_config_dump('inventory_events.channel_publisher', '');

-- The value each channel was last sent for each sku.
CREATE TABLE inventory_events.channel_shown (
    channel    text NOT NULL REFERENCES inventory_events.channel ON DELETE CASCADE,
    sku        text NOT NULL,
    available  bigint NOT NULL,
    seq        bigint NOT NULL,
    PRIMARY KEY (channel, sku)
);
SELECT pg_catalog.pg_extension_config_dump('inventory_events.channel_shown', '');

-- (channel, sku) pairs whose availability may have changed and are not yet
-- published (a throttled channel collects them until its interval is up).
CREATE TABLE inventory_events.publication_pending (
    channel  text NOT NULL REFERENCES inventory_events.channel ON DELETE CASCADE,
    sku      text NOT NULL,
    PRIMARY KEY (channel, sku)
);
SELECT pg_catalog.pg_extension_config_dump('inventory_events.publication_pending', '');

-- How far the publisher has read the event log (an events_after() checkpoint).
-- publish() makes the row when it first runs: a row made by CREATE EXTENSION
-- would collide with the restored one when a dump is restored.
CREATE TABLE inventory_events.publisher_checkpoint (
    only_row    boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    checkpoint  text NOT NULL DEFAULT '0:0',
    updated_at  timestamptz
);
SELECT pg_catalog.pg_extension_config_dump('inventory_events.publisher_checkpoint', '');

-- The NOTIFY channel of a sales channel.
CREATE FUNCTION inventory_events.notify_channel(channel text)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN 'inventory_events.' || channel;

-- The NOTIFY payloads of a channel's publications after a sequence number:
-- JSON arrays of [sku, available, seq], each at most max_bytes long (NOTIFY
-- refuses 8000 bytes and more).
CREATE FUNCTION inventory_events.publication_payloads(channel text, after_seq bigint, max_bytes integer DEFAULT 7900)
RETURNS SETOF text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    payload  text;
    part     text;
    r        record;
BEGIN
    FOR r IN SELECT p.seq, p.sku, p.available FROM inventory_events.publication p
              WHERE p.channel = publication_payloads.channel AND p.seq > after_seq ORDER BY p.seq LOOP
        part := format('[%s,%s,%s]', to_json(r.sku), r.available, r.seq);
        -- A sku too long for any payload is left to publications_since().
        CONTINUE WHEN octet_length(part) + 2 > max_bytes;
        IF payload IS NOT NULL AND octet_length(payload) + octet_length(part) + 2 > max_bytes THEN
            RETURN NEXT payload || ']';
            payload := NULL;
        END IF;
        payload := coalesce(payload || ',', '[') || part;
    END LOOP;
    IF payload IS NOT NULL THEN
        RETURN NEXT payload || ']';
    END IF;
END;
$$;

-- One publisher step, in the caller's transaction: reads the events after
-- the checkpoint (only below the snapshot's xmin, so nothing committed out of
-- order is missed), marks every (channel, sku) they may have changed as
-- pending (a kit when one of its components moved), then, for every channel
-- whose publish_interval is up, computes channel_availability() of its
-- pending skus, appends those that differ from what the channel was last
-- sent to the publication log, and sends them with NOTIFY (at commit) in
-- payloads of [[sku, available, seq], ...] under 8000 bytes. Returns the
-- events read, the publications made, and in how many milliseconds a
-- throttled channel with pending skus is due (null: none).
CREATE FUNCTION inventory_events.publish(max_events integer DEFAULT 10000)
RETURNS TABLE (events integer, publications integer, next_due_ms bigint)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cp       text;
    next_cp  text;
    skus     text[] := '{}';
    c        record;
    payload  text;
    n        integer;
BEGIN
    PERFORM inventory_events.require_writable('inventory_events.publish()');
    events := 0;
    publications := 0;
    -- Restored or moved here and not written since (see log_home): a restore
    -- may still be loading the tables below, so write nothing yet.
    IF NOT inventory_events.log_adopted() THEN
        RETURN NEXT;
        RETURN;
    END IF;
    -- One publisher at a time.
    INSERT INTO inventory_events.publisher_checkpoint DEFAULT VALUES ON CONFLICT DO NOTHING;
    SELECT p.checkpoint INTO cp FROM inventory_events.publisher_checkpoint p FOR UPDATE;
    SELECT count(*)::integer, coalesce(array_agg(DISTINCT e.sku), '{}'),
           (array_agg(e.next_checkpoint ORDER BY e.ordinality DESC))[1]
      INTO events, skus, next_cp
      FROM inventory_events.events_after(cp, max_events) WITH ORDINALITY e;
    IF events > 0 THEN
        INSERT INTO inventory_events.publication_pending (channel, sku)
        SELECT ch.code, s.sku
          FROM inventory_events.channel ch,
               (SELECT DISTINCT u.sku FROM unnest(skus) u(sku)
                UNION SELECT k.kit FROM inventory_events.kit_component k WHERE k.component = ANY (skus)) s
        ON CONFLICT DO NOTHING;
        UPDATE inventory_events.publisher_checkpoint SET checkpoint = next_cp, updated_at = now();
    END IF;

    FOR c IN
        SELECT ch.code, coalesce(cp2.last_seq, 0) AS last_seq
          FROM inventory_events.channel ch
          LEFT JOIN inventory_events.channel_publisher cp2 ON cp2.channel = ch.code
         WHERE EXISTS (SELECT FROM inventory_events.publication_pending p WHERE p.channel = ch.code)
           AND (cp2.last_published_at IS NULL OR cp2.last_published_at + ch.publish_interval <= clock_timestamp())
         ORDER BY ch.code
    LOOP
        WITH due AS (
            DELETE FROM inventory_events.publication_pending p WHERE p.channel = c.code RETURNING p.sku
        ), current AS (
            SELECT d.sku, inventory_events.channel_availability(c.code, d.sku) AS available FROM due d
        ), changed AS (
            SELECT cur.sku, cur.available, c.last_seq + row_number() OVER (ORDER BY cur.sku) AS seq
              FROM current cur
              LEFT JOIN inventory_events.channel_shown s ON s.channel = c.code AND s.sku = cur.sku
             WHERE s.available IS DISTINCT FROM cur.available
        ), logged AS (
            INSERT INTO inventory_events.publication (channel, seq, sku, available, published_at)
            SELECT c.code, ch.seq, ch.sku, ch.available, clock_timestamp() FROM changed ch
            RETURNING 1
        ), shown AS (
            INSERT INTO inventory_events.channel_shown AS s (channel, sku, available, seq)
            SELECT c.code, ch.sku, ch.available, ch.seq FROM changed ch
            ON CONFLICT (channel, sku) DO UPDATE SET available = excluded.available, seq = excluded.seq
        )
        SELECT count(*) INTO n FROM logged;
        CONTINUE WHEN n = 0;
        INSERT INTO inventory_events.channel_publisher AS p (channel, last_seq, last_published_at)
        VALUES (c.code, c.last_seq + n, clock_timestamp())
        ON CONFLICT (channel) DO UPDATE SET last_seq = excluded.last_seq, last_published_at = excluded.last_published_at;
        publications := publications + n;
        FOR payload IN SELECT * FROM inventory_events.publication_payloads(c.code, c.last_seq) LOOP
            PERFORM pg_notify(inventory_events.notify_channel(c.code), payload);
        END LOOP;
    END LOOP;

    SELECT CASE WHEN count(*) > 0 THEN
                greatest(0, ceil(extract(epoch FROM min(cp2.last_published_at + ch.publish_interval)
                                                    - clock_timestamp()) * 1000))::bigint END
      INTO next_due_ms
      FROM inventory_events.channel ch
      JOIN inventory_events.channel_publisher cp2 ON cp2.channel = ch.code
     WHERE EXISTS (SELECT FROM inventory_events.publication_pending p WHERE p.channel = ch.code);
    RETURN NEXT;
END;
$$;
COMMENT ON FUNCTION inventory_events.publish(integer) IS
  'One publisher step: pending changes from the event log, published to every channel that is due';

-- Marks every sku stocked at a channel's locations (or kit) pending: after a
-- change of the channel's rules, which moves no event.
CREATE FUNCTION inventory_events.republish(channel text)
RETURNS bigint
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT inventory_events.require_writable('inventory_events.republish()');
    WITH ins AS (
        INSERT INTO inventory_events.publication_pending (channel, sku)
        SELECT republish.channel, i.sku FROM inventory_events.item i
        ON CONFLICT DO NOTHING
        RETURNING 1)
    SELECT count(*) FROM ins;
END;

-- The publisher background workers (shared_preload_libraries).
CREATE FUNCTION inventory_events.publisher_status(
    OUT database text, OUT enabled boolean, OUT pid integer, OUT state text,
    OUT started_at timestamptz, OUT last_run timestamptz, OUT runs bigint, OUT publications bigint)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'ie_publisher_status'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION inventory_events.publisher_status() IS
  'One row per database served by a publisher worker (inventory_events.database)';

CREATE FUNCTION inventory_events.publisher_start(database text DEFAULT NULL)
RETURNS boolean
AS 'MODULE_PATHNAME', 'ie_publisher_start'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION inventory_events.publisher_start(text) IS
  'Lets the launcher (re)start the publisher of a database (default: this one); false when it serves no such database';

CREATE FUNCTION inventory_events.publisher_stop(database text DEFAULT NULL)
RETURNS boolean
AS 'MODULE_PATHNAME', 'ie_publisher_stop'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION inventory_events.publisher_stop(text) IS
  'Stops the publisher of a database (default: this one) until publisher_start() or a server restart';

-- What a listener missed: the publications of a channel after a sequence number.
CREATE FUNCTION inventory_events.publications_since(channel text, seq bigint)
RETURNS TABLE (seq bigint, sku text, available bigint, published_at timestamptz)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT p.seq, p.sku, p.available, p.published_at
      FROM inventory_events.publication p
     WHERE p.channel = publications_since.channel AND p.seq > publications_since.seq
     ORDER BY p.seq;
END;
COMMENT ON FUNCTION inventory_events.publications_since(text, bigint) IS
  'The publications of a channel after a sequence number, in order: what a disconnected listener missed';

-- ---------------------------------------------------------------------------
-- Privileges
-- ---------------------------------------------------------------------------

-- Nothing is open to PUBLIC; grant_access() gives a role one of three kinds
-- of access.
REVOKE ALL ON ALL TABLES IN SCHEMA inventory_events FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA inventory_events FROM PUBLIC;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA inventory_events FROM PUBLIC;
-- The stock_position type and its operators, accessors and sum() are pure
-- functions of their arguments: callable by anyone who may use the schema.
GRANT EXECUTE ON FUNCTION
    inventory_events.stock_position_in(cstring),
    inventory_events.stock_position_out(inventory_events.stock_position),
    inventory_events.stock_position_recv(internal),
    inventory_events.stock_position_send(inventory_events.stock_position),
    inventory_events.stock_position(bigint, bigint, bigint, bigint, bigint, bigint, bigint),
    inventory_events.stock_position_pl(inventory_events.stock_position, inventory_events.stock_position),
    inventory_events.stock_position_mi(inventory_events.stock_position, inventory_events.stock_position),
    inventory_events.stock_position_eq(inventory_events.stock_position, inventory_events.stock_position),
    inventory_events.stock_position_ne(inventory_events.stock_position, inventory_events.stock_position),
    inventory_events.stock_position_accum(inventory_events.stock_position, inventory_events.stock_position),
    inventory_events.sum(inventory_events.stock_position),
    inventory_events.on_hand(inventory_events.stock_position),
    inventory_events.available(inventory_events.stock_position),
    inventory_events.reserved(inventory_events.stock_position),
    inventory_events.picked(inventory_events.stock_position),
    inventory_events.damaged(inventory_events.stock_position),
    inventory_events.quarantine(inventory_events.stock_position),
    inventory_events.in_transit(inventory_events.stock_position),
    inventory_events.inbound(inventory_events.stock_position),
    inventory_events.position_of(inventory_events.stock),
    inventory_events.library_version()
    TO PUBLIC;
-- Where the log's transaction ids stand (what pg_current_snapshot() tells
-- anyone, offset): events_after() runs with its caller's rights and needs it.
GRANT EXECUTE ON FUNCTION inventory_events.log_xmin(), inventory_events.log_adopted() TO PUBLIC;

CREATE FUNCTION inventory_events.grant_access(role_name name, access text)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r text := quote_ident(role_name);
BEGIN
    PERFORM inventory_events.require_writable('inventory_events.grant_access()');
    IF access NOT IN ('reader', 'writer', 'admin') THEN
        RAISE EXCEPTION 'invalid access "%"', access
              USING ERRCODE = 'invalid_parameter_value',
                    HINT = 'Access is reader, writer or admin.';
    END IF;
    -- reader: read everything (pg_dump of the database included), append nothing
    EXECUTE format('GRANT USAGE ON SCHEMA inventory_events TO %s', r);
    EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA inventory_events TO %s', r);
    EXECUTE format('GRANT SELECT ON ALL SEQUENCES IN SCHEMA inventory_events TO %s', r);
    EXECUTE format('GRANT EXECUTE ON FUNCTION inventory_events.position_as_of(text, text, timestamptz, text),
                    inventory_events.sku_position_as_of(text, timestamptz),
                    inventory_events.events_after(text, integer), inventory_events.verify(),
                    inventory_events.channel_availability(text, text),
                    inventory_events.channel_position(text, text),
                    inventory_events.channel_rules(bigint, inventory_events.channel, bigint),
                    inventory_events.availability_timeline(text, text, interval),
                    inventory_events.publications_since(text, bigint),
                    inventory_events.publisher_status(),
                    inventory_events.notify_channel(text),
                    inventory_events.shared_state() TO %s', r);
    IF access IN ('writer', 'admin') THEN
        -- writer: append through the functions; never write the log directly
        EXECUTE format('GRANT EXECUTE ON FUNCTION inventory_events.append(text, text, inventory_events.event_type,
                        bigint, text, text, timestamptz, text, text, text, text, bigint, jsonb, inventory_events.bucket,
                        inventory_events.bucket, text, date, bigint, uuid, uuid),
                        inventory_events.ingest(jsonb), inventory_events.ingest_staged(integer),
                        inventory_events.reserve(text, text, bigint, text, text, timestamptz, text, text),
                        inventory_events.reserve_lines(jsonb),
                        inventory_events.release(text, text, bigint, text, text, text),
                        inventory_events.pick(text, text, bigint, text, text, text),
                        inventory_events.ship(text, text, bigint, text, text),
                        inventory_events.pick_short(text, text, bigint, text, text, text, text),
                        inventory_events.expire_reservations(integer),
                        inventory_events.fill_backorders(text),
                        inventory_events.transfer(text, text, text, bigint, text, date, text, text, text),
                        inventory_events.receive_transfer(text, text, bigint, text, text, text, text),
                        inventory_events.receive_po(text, text, bigint, text, text, text, text),
                        inventory_events.receive_return(text, text, bigint, text, text, text, text, text, text),
                        inventory_events.dispose_return(text, text, bigint, text, text, text, text, text)
                        TO %s', r);
        EXECUTE format('GRANT INSERT ON inventory_events.event_staging TO %s', r);
    END IF;
    IF access = 'admin' THEN
        -- admin: master data, repairs
        EXECUTE format('GRANT INSERT, UPDATE, DELETE ON inventory_events.item, inventory_events.item_uom,
                        inventory_events.location, inventory_events.lot, inventory_events.channel,
                        inventory_events.channel_location, inventory_events.kit_component TO %s', r);
        EXECUTE format('GRANT UPDATE (resolved_at) ON inventory_events.exception TO %s', r);
        EXECUTE format('GRANT DELETE ON inventory_events.dead_letter TO %s', r);
        EXECUTE format('GRANT EXECUTE ON FUNCTION inventory_events.rebuild(integer),
                        inventory_events.publish(integer), inventory_events.republish(text),
                        inventory_events.publisher_start(text), inventory_events.publisher_stop(text),
                        inventory_events.resolve_exception(bigint),
                        inventory_events.report_progress(text) TO %s', r);
    END IF;
END;
$$;
REVOKE EXECUTE ON FUNCTION inventory_events.grant_access(name, text) FROM PUBLIC;
COMMENT ON FUNCTION inventory_events.grant_access(name, text) IS
  'Grants a role reader, writer or admin access to inventory_events';

