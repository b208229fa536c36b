-- inventory_events 0.1.0: install script.
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
    parent       text REFERENCES inventory_events.location,
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
    publish_interval  interval NOT NULL DEFAULT '0'
);

CREATE TABLE inventory_events.channel_location (
    channel   text NOT NULL REFERENCES inventory_events.channel ON DELETE CASCADE,
    location  text NOT NULL REFERENCES inventory_events.location,
    priority  integer NOT NULL DEFAULT 0,
    PRIMARY KEY (channel, location)
);

-- append() caches items and locations per backend; changing or removing one
-- tells every backend to drop that cache.
CREATE FUNCTION inventory_events.master_data_changed() RETURNS trigger
AS 'MODULE_PATHNAME', 'ie_master_data_changed' LANGUAGE C;
CREATE TRIGGER item_changed AFTER UPDATE OR DELETE OR TRUNCATE ON inventory_events.item
    FOR EACH STATEMENT EXECUTE FUNCTION inventory_events.master_data_changed();
CREATE TRIGGER location_changed AFTER UPDATE OR DELETE OR TRUNCATE ON inventory_events.location
    FOR EACH STATEMENT EXECUTE FUNCTION inventory_events.master_data_changed();

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
    xid              xid8 NOT NULL DEFAULT pg_current_xact_id(),
    payload          jsonb,
    CONSTRAINT event_pkey PRIMARY KEY (id),
    CONSTRAINT event_stream_version_key UNIQUE (sku, location, lot, version),
    CONSTRAINT event_idempotency_key UNIQUE (source, idempotency_key)
);
ALTER SEQUENCE inventory_events.event_id_seq OWNED BY inventory_events.event.id;
CREATE INDEX event_xid_id_idx ON inventory_events.event (xid, id);
COMMENT ON TABLE inventory_events.event IS 'The append-only inventory event log';

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

CREATE FUNCTION inventory_events.stock_trigger() RETURNS trigger
AS 'MODULE_PATHNAME', 'ie_stock_trigger' LANGUAGE C;
CREATE TRIGGER event_stock AFTER INSERT ON inventory_events.event
    FOR EACH ROW EXECUTE FUNCTION inventory_events.stock_trigger();
-- Also on logical replication subscribers: they derive their own positions.
ALTER TABLE inventory_events.event ENABLE ALWAYS TRIGGER event_stock;

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

CREATE FUNCTION inventory_events.ingest_staged(max_rows integer DEFAULT NULL)
RETURNS TABLE (staged_id bigint, status text, event_id bigint, version bigint, sqlstate text, message text)
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
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
-- transactions older than every one still running (below the snapshot's
-- xmin): an event committed late by an older transaction is never skipped.
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
       AND e.xid < pg_snapshot_xmin(pg_current_snapshot())
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

-- The channel's rules applied to a pool (the ATP of its sourcing locations):
-- allocation share (rounded down), minus the fixed buffer and the percentage
-- buffer (rounded up), capped, never negative.
CREATE FUNCTION inventory_events.channel_rules(pool bigint, c inventory_events.channel)
RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN greatest(0, least(coalesce(c.cap, 9223372036854775807),
                         floor(pool * c.allocation_pct / 100)::bigint
                         - c.buffer_fixed
                         - ceil(floor(pool * c.allocation_pct / 100) * c.buffer_pct / 100)::bigint));

CREATE FUNCTION inventory_events.channel_availability(channel text, sku text)
RETURNS bigint
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c    inventory_events.channel;
    pool bigint;
BEGIN
    SELECT * INTO c FROM inventory_events.channel WHERE code = channel_availability.channel;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown channel "%"', channel_availability.channel
              USING ERRCODE = 'foreign_key_violation',
                    HINT = 'Add it to inventory_events.channel first.';
    END IF;
    PERFORM FROM inventory_events.item i WHERE i.sku = channel_availability.sku;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown sku "%"', channel_availability.sku
              USING ERRCODE = 'foreign_key_violation',
                    HINT = 'Add it to inventory_events.item first; the ERP is the master of this data.';
    END IF;
    SELECT coalesce(sum(b.atp), 0) INTO pool
      FROM inventory_events.stock_by_location b
      JOIN inventory_events.channel_location cl ON cl.location = b.location AND cl.channel = c.code
     WHERE b.sku = channel_availability.sku;
    RETURN inventory_events.channel_rules(pool, c);
END;
$$;
COMMENT ON FUNCTION inventory_events.channel_availability(text, text) IS
  'What a channel may show for a sku: its rules over the ATP of its sourcing locations, never negative';

CREATE VIEW inventory_events.channel_stock AS
SELECT c.code AS channel, b.sku, sum(b.atp)::bigint AS pool,
       inventory_events.channel_rules(sum(b.atp)::bigint, c) AS available
  FROM inventory_events.channel c
  JOIN inventory_events.channel_location cl ON cl.channel = c.code
  JOIN inventory_events.stock_by_location b ON b.location = cl.location
 GROUP BY c.code, b.sku;
COMMENT ON VIEW inventory_events.channel_stock IS
  'channel_availability for every channel and every sku stocked at its sourcing locations';

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

CREATE FUNCTION inventory_events.grant_access(role_name name, access text)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r text := quote_ident(role_name);
BEGIN
    IF access NOT IN ('reader', 'writer', 'admin') THEN
        RAISE EXCEPTION 'invalid access "%"', access
              USING ERRCODE = 'invalid_parameter_value',
                    HINT = 'Access is reader, writer or admin.';
    END IF;
    -- reader: read everything, append nothing
    EXECUTE format('GRANT USAGE ON SCHEMA inventory_events TO %s', r);
    EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA inventory_events TO %s', r);
    EXECUTE format('GRANT EXECUTE ON FUNCTION inventory_events.position_as_of(text, text, timestamptz, text),
                    inventory_events.sku_position_as_of(text, timestamptz),
                    inventory_events.events_after(text, integer), inventory_events.verify(),
                    inventory_events.channel_availability(text, text),
                    inventory_events.channel_rules(bigint, inventory_events.channel),
                    inventory_events.shared_state() TO %s', r);
    IF access IN ('writer', 'admin') THEN
        -- writer: append through the functions; never write the log directly
        EXECUTE format('GRANT EXECUTE ON FUNCTION inventory_events.append(text, text, inventory_events.event_type,
                        bigint, text, text, timestamptz, text, text, text, text, bigint, jsonb, inventory_events.bucket,
                        inventory_events.bucket, text, date, bigint, uuid, uuid),
                        inventory_events.ingest(jsonb), inventory_events.ingest_staged(integer) TO %s', r);
        EXECUTE format('GRANT INSERT ON inventory_events.event_staging TO %s', r);
    END IF;
    IF access = 'admin' THEN
        -- admin: master data, repairs
        EXECUTE format('GRANT INSERT, UPDATE, DELETE ON inventory_events.item, inventory_events.item_uom,
                        inventory_events.location, inventory_events.lot, inventory_events.channel,
                        inventory_events.channel_location TO %s', r);
        EXECUTE format('GRANT DELETE ON inventory_events.dead_letter TO %s', r);
        EXECUTE format('GRANT EXECUTE ON FUNCTION inventory_events.rebuild(integer),
                        inventory_events.report_progress(text) TO %s', r);
    END IF;
END;
$$;
REVOKE EXECUTE ON FUNCTION inventory_events.grant_access(name, text) FROM PUBLIC;
COMMENT ON FUNCTION inventory_events.grant_access(name, text) IS
  'Grants a role reader, writer or admin access to inventory_events';

