-- ---------------------------------------------------------------------------
-- Transfers, purchase-order receipts, returns
-- ---------------------------------------------------------------------------

-- Transfers and receipts: src/supply.c. The first event of an operation
-- carries its idempotency key, a second one key#2; a retry returns them.
CREATE FUNCTION inventory_events.transfer(sku text, from_location text, to_location text, qty bigint,
                                          ref text, expected_date date DEFAULT NULL, lot text DEFAULT NULL,
                                          source text DEFAULT NULL, idempotency_key text DEFAULT NULL,
                                          serials text[] DEFAULT NULL)
RETURNS SETOF inventory_events.movement
AS 'MODULE_PATHNAME', 'ie_transfer'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION inventory_events.transfer IS
  'Ships stock to another location: transfer_out at the source, transfer_in_transit (with expected_date) at the destination';

CREATE FUNCTION inventory_events.receive_transfer(sku text, to_location text, qty bigint, ref text,
                                                  lot text DEFAULT NULL, source text DEFAULT NULL,
                                                  idempotency_key text DEFAULT NULL, serials text[] DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'ie_receive_transfer'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION inventory_events.receive_transfer IS
  'Completes (part of) a transfer: in_transit -> available at the destination';

-- A receipt against a purchase-order line (ref): the line's open inbound
-- quantity moves to available (never below zero); any excess is a plain receipt.
CREATE FUNCTION inventory_events.receive_po(sku text, location text, qty bigint, ref text,
                                            lot text DEFAULT NULL, source text DEFAULT NULL,
                                            idempotency_key text DEFAULT NULL, serials text[] DEFAULT NULL)
RETURNS SETOF inventory_events.movement
AS 'MODULE_PATHNAME', 'ie_receive_po'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION inventory_events.receive_po IS
  'Receives against a purchase-order line: its open inbound quantity becomes available, any excess is received';

CREATE FUNCTION inventory_events.receive_return(sku text, location text, qty bigint, ref text,
                                                lot text DEFAULT NULL, channel text DEFAULT NULL,
                                                reason text DEFAULT NULL, source text DEFAULT NULL,
                                                idempotency_key text DEFAULT NULL, serials text[] DEFAULT NULL)
RETURNS bigint
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT inventory_events.require_writable('inventory_events.receive_return()');
    SELECT inventory_events.append(sku, location, 'returned', qty, source => source, idempotency_key => idempotency_key,
                                   lot => lot, ref => ref, channel => channel, reason => reason,
                                   serials => serials);
END;
COMMENT ON FUNCTION inventory_events.receive_return IS 'A customer return, into quarantine';

CREATE FUNCTION inventory_events.dispose_return(sku text, location text, qty bigint, disposition text,
                                                ref text DEFAULT NULL, lot text DEFAULT NULL,
                                                source text DEFAULT NULL, idempotency_key text DEFAULT NULL,
                                                serials text[] DEFAULT NULL)
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
                                                              ELSE 'return written off' END,
                                   serials => serials);
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
    li       inventory_events.channel_item;
    sells    boolean;
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
    -- The listing, as ie_channel_listing() (src/channel.c) applies it: a
    -- channel with listings sells only the skus it lists, each with the
    -- listing's overrides of the channel's rules.
    SELECT * INTO li FROM inventory_events.channel_item x
     WHERE x.channel = c.code AND x.sku = availability_timeline.sku;
    sells := coalesce(li.listed, NOT EXISTS (SELECT FROM inventory_events.channel_item x WHERE x.channel = c.code));
    c.buffer_fixed := coalesce(li.buffer_fixed, c.buffer_fixed);
    c.buffer_pct := coalesce(li.buffer_pct, c.buffer_pct);
    c.allocation_pct := coalesce(li.allocation_pct, c.allocation_pct);
    c.cap := coalesce(li.cap, c.cap);
    pos := inventory_events.channel_position(c.code, sku);
    SELECT coalesce(sum(x.backordered), 0) INTO pending
      FROM inventory_events.reservation x WHERE x.sku = availability_timeline.sku;

    FOR d IN
        WITH open_refs AS (
            SELECT e.location, e.lot, e.ref, max(e.expected_date) AS expected_date,
                   sum(inventory_events.inbound(e.effect) + inventory_events.in_transit(e.effect)) AS open
              FROM inventory_events.event e
              JOIN inventory_events.channel_sources(c.code) cl ON cl.location = e.location
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
        available := CASE WHEN sells THEN inventory_events.channel_rules(total, c, pos.velocity_buffer) ELSE 0 END;
        RETURN NEXT;
    END LOOP;
END;
$$;
COMMENT ON FUNCTION inventory_events.availability_timeline IS
  'Cumulative availability by date for a channel with a future view: ATP now, open inbound and transfers by expected date, backorders consuming the earliest supply';


-- Transfers between legal entities: each transfer's outbound event with the
-- in-transit event transfer() appended with it at the destination (the next
-- one of its transaction with the same sku, lot and ref), where the owners
-- of the two locations (location_tree) differ.
CREATE VIEW inventory_events.intercompany_transfer AS
SELECT o.id AS out_event_id, i.id AS in_transit_event_id, o.sku, o.lot, o.qty, o.ref,
       o.location AS from_location, fo.owner AS from_entity,
       i.location AS to_location, ti.owner AS to_entity,
       o.occurred_at, i.expected_date
  FROM inventory_events.event o
 CROSS JOIN LATERAL (SELECT x.id, x.location, x.expected_date FROM inventory_events.event x
                      WHERE x.xid = o.xid AND x.id > o.id AND x.event_type = 'transfer_in_transit'
                        AND x.sku = o.sku AND x.lot = o.lot AND x.ref = o.ref
                      ORDER BY x.id LIMIT 1) i
  JOIN inventory_events.location_tree fo ON fo.location = o.location AND fo.depth = 0
  JOIN inventory_events.location_tree ti ON ti.location = i.location AND ti.depth = 0
 WHERE o.event_type = 'transfer_out' AND fo.owner IS DISTINCT FROM ti.owner;
COMMENT ON VIEW inventory_events.intercompany_transfer IS
  'Transfers whose source and destination belong to different legal entities';
