-- The baseline for test/bench/reserve.sh: the same check-and-reserve written
-- in PL/pgSQL with SELECT ... FOR UPDATE, as a team would without this
-- extension. Same columns, indexes and foreign keys as the extension's
-- tables; the same channel rules (written inline); the same sourcing (priority,
-- then most available, split across locations); a refusal is recorded as an
-- exception, as reserve_lines() does.
CREATE SCHEMA baseline;

CREATE TABLE baseline.stock (LIKE inventory_events.stock INCLUDING ALL);
ALTER TABLE baseline.stock
    ADD FOREIGN KEY (sku) REFERENCES inventory_events.item,
    ADD FOREIGN KEY (location) REFERENCES inventory_events.location;
CREATE TABLE baseline.event (LIKE inventory_events.event INCLUDING ALL);
CREATE TABLE baseline.reservation (LIKE inventory_events.reservation INCLUDING ALL);
ALTER TABLE baseline.reservation
    ADD FOREIGN KEY (channel) REFERENCES inventory_events.channel,
    ADD FOREIGN KEY (sku) REFERENCES inventory_events.item,
    ADD FOREIGN KEY (location) REFERENCES inventory_events.location;
CREATE TABLE baseline.allocation (LIKE inventory_events.allocation INCLUDING ALL);
ALTER TABLE baseline.allocation ADD FOREIGN KEY (reservation_id) REFERENCES baseline.reservation;
CREATE TABLE baseline.exception (LIKE inventory_events.exception INCLUDING ALL);

CREATE FUNCTION baseline.reserve(p_channel text, p_sku text, p_qty bigint, p_ref text)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    c     inventory_events.channel;
    pool  bigint;
    shown bigint;
    need  bigint := p_qty;
    take  bigint;
    rid   bigint;
    eid   bigint;
    ver   bigint;
    s     record;
BEGIN
    SELECT * INTO c FROM inventory_events.channel WHERE code = p_channel;
    -- Lock the sku's stock rows at the channel's locations, in a fixed order.
    PERFORM 1 FROM baseline.stock st
      JOIN inventory_events.channel_location cl ON cl.location = st.location AND cl.channel = p_channel
     WHERE st.sku = p_sku ORDER BY st.location FOR UPDATE OF st;
    SELECT coalesce(sum(greatest(st.available - st.safety_stock, 0)), 0) INTO pool
      FROM baseline.stock st
      JOIN inventory_events.channel_location cl ON cl.location = st.location AND cl.channel = p_channel
     WHERE st.sku = p_sku;
    shown := greatest(0, least(coalesce(c.cap, 9223372036854775807),
                               floor(pool * c.allocation_pct / 100)::bigint - c.buffer_fixed
                               - ceil(floor(pool * c.allocation_pct / 100) * c.buffer_pct / 100)::bigint));
    IF shown < p_qty THEN
        INSERT INTO baseline.exception (kind, sku, channel, ref, detail)
        VALUES ('oversell_refused', p_sku, p_channel, p_ref, format('channel shows %s, %s asked', shown, p_qty));
        RETURN 'refused';
    END IF;
    INSERT INTO baseline.reservation (channel, ref, sku, qty, source, idempotency_key)
    VALUES (p_channel, p_ref, p_sku, p_qty, p_channel, p_ref) RETURNING id INTO rid;
    FOR s IN
        SELECT st.location, st.available - st.safety_stock AS atp
          FROM baseline.stock st
          JOIN inventory_events.channel_location cl ON cl.location = st.location AND cl.channel = p_channel
         WHERE st.sku = p_sku AND st.available - st.safety_stock > 0
         ORDER BY cl.priority, st.available DESC, st.location
    LOOP
        take := least(need, s.atp);
        UPDATE baseline.stock SET available = available - take, reserved = reserved + take,
                                  version = version + 1, updated_at = now()
         WHERE sku = p_sku AND location = s.location AND lot = '' RETURNING version INTO ver;
        INSERT INTO baseline.event (sku, location, lot, version, event_type, from_bucket, to_bucket, qty, uom,
                                    uom_qty, effect, occurred_at, source, correlation_id, causation_id,
                                    channel, ref)
        VALUES (p_sku, s.location, '', ver, 'reserved', 'available', 'reserved', take, 'EA', take,
                inventory_events.stock_position(available => -take, reserved => take), now(), p_channel,
                gen_random_uuid(), gen_random_uuid(), p_channel, p_ref)
        RETURNING id INTO eid;
        INSERT INTO baseline.allocation (reservation_id, sku, location, lot, qty, reserved, event_id)
        VALUES (rid, p_sku, s.location, '', take, take, eid);
        need := need - take;
        EXIT WHEN need = 0;
    END LOOP;
    RETURN 'reserved';
END $$;

-- Both sides start every run from the same stock: 'units' of every sku at
-- every location, nothing reserved.
CREATE FUNCTION baseline.reset(units bigint) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    SET LOCAL inventory_events.allow_history_rewrite = on;
    TRUNCATE inventory_events.allocation, inventory_events.reservation, inventory_events.exception,
             inventory_events.event, inventory_events.stock;
    IF units > 0 THEN
        PERFORM count(inventory_events.append(i.sku, l.code, 'received', units))
           FROM inventory_events.item i, inventory_events.location l;
    END IF;
    TRUNCATE baseline.allocation, baseline.reservation, baseline.exception, baseline.event, baseline.stock;
    INSERT INTO baseline.stock (sku, location, available, on_hand, version)
    SELECT i.sku, l.code, units, units, 1 FROM inventory_events.item i, inventory_events.location l;
END $$;

-- Oversold streams (available below zero, or reserved stock that no
-- allocation accounts for), per side.
CREATE FUNCTION baseline.oversold(side text) RETURNS bigint LANGUAGE sql AS $$
    SELECT count(*) FROM (
        SELECT s.sku, s.location, s.available, s.reserved, coalesce(sum(a.reserved), 0) AS allocated
          FROM inventory_events.stock s
          LEFT JOIN inventory_events.allocation a USING (sku, location, lot)
         WHERE side = 'extension'
         GROUP BY 1, 2, 3, 4
        UNION ALL
        SELECT s.sku, s.location, s.available, s.reserved, coalesce(sum(a.reserved), 0)
          FROM baseline.stock s
          LEFT JOIN baseline.allocation a USING (sku, location, lot)
         WHERE side = 'baseline'
         GROUP BY 1, 2, 3, 4) x
     WHERE available < 0 OR reserved <> allocated
$$;
