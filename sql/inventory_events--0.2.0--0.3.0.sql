-- inventory_events 0.2.0 -> 0.3.0
\echo Use "ALTER EXTENSION inventory_events UPDATE TO '0.3.0'" to load this file. \quit

-- No way around the invariants: lifecycle events only through the functions
-- that own reservations, an append-only guard that fires in every
-- session_replication_role and logs every row it lets a superuser rewrite.
-- The result equals a fresh install of 0.3.0 (test/t/009_upgrade.pl).

-- Internal: append() that also takes the lifecycle events (reserved,
-- released, picked, shipped, pick_short, moved into or out of reserved or
-- picked), which append() refuses with IE006. Granted to no role: only the
-- functions that keep reservations and allocations in step call it.
CREATE FUNCTION inventory_events.append_lifecycle(
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
AS 'MODULE_PATHNAME', 'ie_append_lifecycle'
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION inventory_events.append_lifecycle IS
  'Internal: appends one event, lifecycle events included; for the functions that own reservations';
REVOKE EXECUTE ON FUNCTION inventory_events.append_lifecycle(text, text, inventory_events.event_type,
    bigint, text, text, timestamptz, text, text, text, text, bigint, jsonb, inventory_events.bucket,
    inventory_events.bucket, text, date, bigint, uuid, uuid) FROM PUBLIC;

-- Internal: moves qty ordered units (null: all) of a reservation's
-- allocations from one of its columns to another, appending one event per
-- allocation touched. Checks before appending anything.
CREATE OR REPLACE FUNCTION inventory_events.move_allocations(
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

-- The guard per row (each rewritten row logged and written to the WAL as a
-- logical decoding message), enabled ALWAYS.
DROP TRIGGER event_append_only ON inventory_events.event;
CREATE TRIGGER event_append_only BEFORE UPDATE OR DELETE ON inventory_events.event
    FOR EACH ROW EXECUTE FUNCTION inventory_events.event_guard();
ALTER TABLE inventory_events.event ENABLE ALWAYS TRIGGER event_append_only;
ALTER TABLE inventory_events.event ENABLE ALWAYS TRIGGER event_append_only_truncate;
