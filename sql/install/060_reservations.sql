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
            m.event_id := inventory_events.append_lifecycle(a.sku, a.location, ev, take,
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
    err_state    text;
    err_message  text;
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
            -- Each in a subtransaction: one that fails is recorded in
            -- worker_error (task expire, its channel) and the others go on.
            BEGIN
                PERFORM inventory_events.release(r.channel, r.ref, NULL, 'expired');
                n := n + 1;
                UPDATE inventory_events.worker_error w SET cleared_at = clock_timestamp()
                 WHERE w.task = 'expire' AND w.channel = r.channel AND w.cleared_at IS NULL;
            EXCEPTION WHEN OTHERS THEN
                GET STACKED DIAGNOSTICS err_state = RETURNED_SQLSTATE, err_message = MESSAGE_TEXT;
                PERFORM inventory_events.record_worker_error('expire', r.channel, err_state, err_message,
                                                             format('Reservation "%s" of channel "%s".', r.ref, r.channel));
            END;
        END IF;
    END LOOP;
    RETURN n;
END;
$$;
COMMENT ON FUNCTION inventory_events.expire_reservations IS
  'Releases reservations past their expires_at with reason expired; returns how many';

