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

CREATE TYPE inventory_events.location_kind AS ENUM ('warehouse', 'store', '3pl', 'virtual', 'region', 'zone');

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

