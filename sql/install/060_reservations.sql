-- ---------------------------------------------------------------------------
-- Reservations
-- ---------------------------------------------------------------------------

-- One order line on a channel.
-- Backorder fills and cancels update it in place (fillfactor: room for HOT).
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
    channel_sku      text,
    CONSTRAINT reservation_channel_ref_key UNIQUE (channel, ref),
    CONSTRAINT reservation_idempotency_key UNIQUE (source, idempotency_key)
) WITH (fillfactor = 90);
COMMENT ON TABLE inventory_events.reservation IS
  'Order lines reserved on a channel: qty = allocated + backordered + cancelled (in units of sku)';
COMMENT ON COLUMN inventory_events.reservation.channel_sku IS
  'The item''s identifier on the channel (its listing''s channel_sku) when reserved; null: our sku';
SELECT pg_catalog.pg_extension_config_dump('inventory_events.reservation', '');
SELECT pg_catalog.pg_extension_config_dump('inventory_events.reservation_id_seq', '');
-- The backorder queue, first come first served.
CREATE INDEX reservation_backorder_idx ON inventory_events.reservation (sku, id) WHERE backordered > 0;
-- Recent reservations of a sku, for the velocity buffer.
CREATE INDEX reservation_recent_idx ON inventory_events.reservation (sku, created_at);
CREATE INDEX reservation_expiry_idx ON inventory_events.reservation (expires_at) WHERE expires_at IS NOT NULL;

-- Where a reservation took its stock: one row per reserved event. Pick, ship
-- and release update it in place: its counters are in no index, and the free
-- room on each page (fillfactor) lets those updates be HOT.
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
) WITH (fillfactor = 70);
COMMENT ON TABLE inventory_events.allocation IS
  'Stock reserved for a reservation at a location and lot (per_unit: component units per kit)';
SELECT pg_catalog.pg_extension_config_dump('inventory_events.allocation', '');
SELECT pg_catalog.pg_extension_config_dump('inventory_events.allocation_id_seq', '');
CREATE INDEX allocation_reservation_idx ON inventory_events.allocation (reservation_id, id);

-- The idempotency keys of operations that recorded no event: a release that
-- only cancelled backordered units. A retry with the same source and key is
-- recognised by its events or by this row, and changes nothing.
CREATE TABLE inventory_events.operation_key (
    source           text NOT NULL,
    idempotency_key  text NOT NULL,
    operation        text NOT NULL CHECK (operation IN ('release')),
    reservation_id   bigint NOT NULL REFERENCES inventory_events.reservation,
    qty              bigint NOT NULL CHECK (qty > 0),
    recorded_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, idempotency_key)
);
COMMENT ON TABLE inventory_events.operation_key IS
  'Idempotency keys of operations that recorded no event (a release of backordered units only)';
SELECT pg_catalog.pg_extension_config_dump('inventory_events.operation_key', '');

CREATE TABLE inventory_events.exception (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind         text NOT NULL CHECK (kind IN ('pick_short', 'oversell_refused', 'negative_available', 'dead_letter',
                                               'recon_variance', 'channel_drift')),
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

CREATE VIEW inventory_events.channel_stock AS
SELECT c.code AS channel, s.sku, p.pool, p.velocity_buffer, p.available
  FROM inventory_events.channel c
  CROSS JOIN LATERAL (SELECT DISTINCT st.sku
                        FROM inventory_events.channel_sources(c.code) cl
                        JOIN inventory_events.stock st ON st.location = cl.location) s
  CROSS JOIN LATERAL inventory_events.channel_position(c.code, s.sku) p;
COMMENT ON VIEW inventory_events.channel_stock IS
  'channel_position for every channel and every sku stocked at its sourcing locations';

-- One event appended by an operation on an order line, a transfer or a receipt.
CREATE TYPE inventory_events.movement AS (
    event_id    bigint,
    event_type  inventory_events.event_type,
    sku         text,
    location    text,
    lot         text,
    qty         bigint);

-- The lifecycle of an order line after reserve(): src/lifecycle.c. Each
-- appends one event per allocation it moves, the first under the
-- idempotency key, the others under key#2, key#3, ...; a retry returns them.
CREATE FUNCTION inventory_events.release(channel text, ref text, qty bigint DEFAULT NULL,
                                         reason text DEFAULT 'cancelled', source text DEFAULT NULL,
                                         idempotency_key text DEFAULT NULL)
RETURNS SETOF inventory_events.movement
AS 'MODULE_PATHNAME', 'ie_release'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION inventory_events.release IS
  'Releases an order line (its backorder first, then its reservations, latest first); null qty: all of it';

CREATE FUNCTION inventory_events.pick(channel text, ref text, qty bigint DEFAULT NULL,
                                      location text DEFAULT NULL, source text DEFAULT NULL,
                                      idempotency_key text DEFAULT NULL, serials text[] DEFAULT NULL)
RETURNS SETOF inventory_events.movement
AS 'MODULE_PATHNAME', 'ie_pick'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION inventory_events.pick IS 'Picks reserved stock of an order line (null qty: all of it; serialized items: the serials picked)';

CREATE FUNCTION inventory_events.ship(channel text, ref text, qty bigint DEFAULT NULL,
                                      source text DEFAULT NULL, idempotency_key text DEFAULT NULL,
                                      serials text[] DEFAULT NULL)
RETURNS SETOF inventory_events.movement
AS 'MODULE_PATHNAME', 'ie_ship'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION inventory_events.ship IS 'Ships picked stock of an order line (null qty: all of it; serialized items: the serials it picked, or those named)';

-- A pick short: the reserved units were not there. They leave the books
-- (reserved -> outside), an exception is recorded, and where the channel
-- allows backorders the order line's shortfall is backordered and filled at
-- once if stock is there. All in the caller's transaction.
CREATE FUNCTION inventory_events.pick_short(channel text, ref text, qty bigint, location text DEFAULT NULL,
                                            reason text DEFAULT NULL, source text DEFAULT NULL,
                                            idempotency_key text DEFAULT NULL)
RETURNS SETOF inventory_events.movement
AS 'MODULE_PATHNAME', 'ie_pick_short'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION inventory_events.pick_short IS
  'Records a pick short: reserved units leave the books, an exception is raised, backorders re-fill';

-- Releases (reason expired) every reservation whose expires_at has passed,
-- its backorder included, each in its own subtransaction. The worker calls it
-- on a schedule.
CREATE FUNCTION inventory_events.expire_reservations(max_reservations integer DEFAULT 1000)
RETURNS integer
AS 'MODULE_PATHNAME', 'ie_expire_reservations'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION inventory_events.expire_reservations IS
  'Releases reservations past their expires_at with reason expired; returns how many';

