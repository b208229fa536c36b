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
    -- The sku first (the global order): a receipt filling backorders holds it
    -- while it locks the sku's streams at the channel's locations.
    PERFORM inventory_events.lock_skus(ARRAY[sku]);
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

