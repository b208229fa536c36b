-- The baselines of the reservation parts of test/bench/run.sh: the same check-and-reserve written
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

-- A receipt, as the team would write it: lock the stock row, move it, log the event.
CREATE FUNCTION baseline.receive(p_sku text, p_location text, p_qty bigint)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    ver bigint;
    eid bigint;
BEGIN
    UPDATE baseline.stock SET available = available + p_qty, on_hand = on_hand + p_qty,
                              version = version + 1, updated_at = now()
     WHERE sku = p_sku AND location = p_location AND lot = '' RETURNING version INTO ver;
    IF NOT FOUND THEN
        INSERT INTO baseline.stock (sku, location, available, on_hand, version)
        VALUES (p_sku, p_location, p_qty, p_qty, 1);
        ver := 1;
    END IF;
    INSERT INTO baseline.event (sku, location, lot, version, event_type, to_bucket, qty, uom, uom_qty,
                                effect, occurred_at, correlation_id, causation_id)
    VALUES (p_sku, p_location, '', ver, 'received', 'available', p_qty, 'EA', p_qty,
            inventory_events.stock_position(available => p_qty), now(), gen_random_uuid(), gen_random_uuid())
    RETURNING id INTO eid;
    RETURN eid;
END $$;

-- Picking an order line: every allocation's reserved stock moves to picked
-- (stock rows locked in location order), one event per allocation.
CREATE FUNCTION baseline.pick(p_channel text, p_ref text)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    r   baseline.reservation;
    a   record;
    ver bigint;
    n   bigint := 0;
BEGIN
    SELECT * INTO r FROM baseline.reservation WHERE channel = p_channel AND ref = p_ref FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no reservation % on %', p_ref, p_channel USING ERRCODE = 'no_data_found';
    END IF;
    FOR a IN SELECT * FROM baseline.allocation WHERE reservation_id = r.id AND reserved > 0
              ORDER BY location, id FOR UPDATE LOOP
        UPDATE baseline.stock SET reserved = reserved - a.reserved, picked = picked + a.reserved,
                                  version = version + 1, updated_at = now()
         WHERE sku = a.sku AND location = a.location AND lot = a.lot RETURNING version INTO ver;
        INSERT INTO baseline.event (sku, location, lot, version, event_type, from_bucket, to_bucket, qty, uom,
                                    uom_qty, effect, occurred_at, correlation_id, causation_id, channel, ref)
        VALUES (a.sku, a.location, a.lot, ver, 'picked', 'reserved', 'picked', a.reserved, 'EA', a.reserved,
                inventory_events.stock_position(reserved => -a.reserved, picked => a.reserved), now(),
                gen_random_uuid(), gen_random_uuid(), p_channel, p_ref);
        UPDATE baseline.allocation SET reserved = 0, picked = picked + a.reserved WHERE id = a.id;
        n := n + 1;
    END LOOP;
    RETURN n;
END $$;

-- Shipping it: every allocation's picked stock leaves (picked -> outside),
-- one event per allocation, as pick() above.
CREATE FUNCTION baseline.ship(p_channel text, p_ref text)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    r   baseline.reservation;
    a   record;
    ver bigint;
    n   bigint := 0;
BEGIN
    SELECT * INTO r FROM baseline.reservation WHERE channel = p_channel AND ref = p_ref FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no reservation % on %', p_ref, p_channel USING ERRCODE = 'no_data_found';
    END IF;
    FOR a IN SELECT * FROM baseline.allocation WHERE reservation_id = r.id AND picked > 0
              ORDER BY location, id FOR UPDATE LOOP
        UPDATE baseline.stock SET picked = picked - a.picked, on_hand = on_hand - a.picked,
                                  version = version + 1, updated_at = now()
         WHERE sku = a.sku AND location = a.location AND lot = a.lot RETURNING version INTO ver;
        INSERT INTO baseline.event (sku, location, lot, version, event_type, from_bucket, to_bucket, qty, uom,
                                    uom_qty, effect, occurred_at, correlation_id, causation_id, channel, ref)
        VALUES (a.sku, a.location, a.lot, ver, 'shipped', 'picked', NULL, a.picked, 'EA', a.picked,
                inventory_events.stock_position(picked => -a.picked), now(),
                gen_random_uuid(), gen_random_uuid(), p_channel, p_ref);
        UPDATE baseline.allocation SET picked = 0, shipped = shipped + a.picked WHERE id = a.id;
        n := n + 1;
    END LOOP;
    RETURN n;
END $$;

-- Both sides start every run from the same stock: 'units' of every sku at
-- every location, nothing reserved, nothing else in the logs. The
-- extension's side is loaded the way a bulk import would be (one received
-- event per stream, the stock trigger off, the stock rows written alongside):
-- the same state as appending them, in a fraction of the time.
CREATE FUNCTION baseline.reset(units bigint) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    SET LOCAL inventory_events.allow_history_rewrite = on;
    TRUNCATE inventory_events.allocation, inventory_events.reservation, inventory_events.exception,
             inventory_events.event, inventory_events.stock, inventory_events.publication_pending,
             inventory_events.operation_key;
    IF units > 0 THEN
        ALTER TABLE inventory_events.event DISABLE TRIGGER event_stock;
        INSERT INTO inventory_events.event (sku, location, lot, version, event_type, to_bucket, qty, uom, uom_qty,
                                            effect, occurred_at, correlation_id, causation_id)
        SELECT i.sku, l.code, '', 1, 'received', 'available', units, 'EA', units,
               inventory_events.stock_position(available => units), now(), gen_random_uuid(), gen_random_uuid()
          FROM inventory_events.item i, inventory_events.location l;
        ALTER TABLE inventory_events.event ENABLE ALWAYS TRIGGER event_stock;
        INSERT INTO inventory_events.stock (sku, location, lot, available, on_hand, version, last_event_id, updated_at)
        SELECT sku, location, lot, qty, qty, 1, id, now() FROM inventory_events.event;
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
