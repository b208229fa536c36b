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

-- The location hierarchy: every location with each of its ancestors (itself
-- at depth 0), and its owner, the entity of the nearest that has one.
CREATE VIEW inventory_events.location_tree AS
WITH RECURSIVE up (location, node, depth) AS (
    SELECT l.code, l.code, 0 FROM inventory_events.location l
    UNION ALL
    SELECT up.location, l.parent, up.depth + 1
      FROM up JOIN inventory_events.location l ON l.code = up.node
     WHERE l.parent IS NOT NULL AND up.depth < 10000),
-- Owners from the roots down: a location's entity, or its parent's owner.
owned (code, owner, depth) AS (
    SELECT l.code, l.entity, 0 FROM inventory_events.location l WHERE l.parent IS NULL
    UNION ALL
    SELECT l.code, coalesce(l.entity, owned.owner), owned.depth + 1
      FROM owned JOIN inventory_events.location l ON l.parent = owned.code
     WHERE owned.depth < 10000)
SELECT up.location, up.node, up.depth, owned.owner
  FROM up LEFT JOIN owned ON owned.code = up.location;
COMMENT ON VIEW inventory_events.location_tree IS
  'Each location with each of its ancestors (node; itself at depth 0) and the entity that owns its stock';

-- stock_by_location rolled up the hierarchy: a node's row sums every
-- location below it (and its own). atp is the sum of the locations' ATP, the
-- pool a channel sourcing from the node has before its rules.
CREATE VIEW inventory_events.stock_by_node AS
SELECT t.node, b.sku,
       sum(b.on_hand)::bigint AS on_hand,
       sum(b.available)::bigint AS available,
       sum(b.expired)::bigint AS expired,
       sum(b.reserved)::bigint AS reserved,
       sum(b.picked)::bigint AS picked,
       sum(b.damaged)::bigint AS damaged,
       sum(b.quarantine)::bigint AS quarantine,
       sum(b.in_transit)::bigint AS in_transit,
       sum(b.inbound)::bigint AS inbound,
       sum(b.atp)::bigint AS atp
  FROM inventory_events.stock_by_location b
  JOIN inventory_events.location_tree t ON t.location = b.location
 GROUP BY t.node, b.sku;
COMMENT ON VIEW inventory_events.stock_by_node IS
  'stock_by_location summed over each node of the location hierarchy and every location below it';

-- The position of one stream as of a business time (events with occurred_at
-- <= at): its newest snapshot that applies plus the events after it.
CREATE FUNCTION inventory_events.position_as_of(sku text, location text, at timestamptz, lot text DEFAULT '')
RETURNS inventory_events.stock_position
LANGUAGE sql STABLE
RETURN (inventory_events.stream_fold(position_as_of.sku, position_as_of.location, coalesce(position_as_of.lot, ''),
                                     coalesce(position_as_of.at, '-infinity'))).position;

-- The positions of every stream of a sku as of a business time (those with
-- an event by then).
CREATE FUNCTION inventory_events.sku_position_as_of(sku text, at timestamptz)
RETURNS TABLE (location text, lot text, "position" inventory_events.stock_position, on_hand bigint)
LANGUAGE sql STABLE
BEGIN ATOMIC
    SELECT st.location, st.lot, f."position", inventory_events.on_hand(f."position")
      FROM (SELECT s.location, s.lot FROM inventory_events.stock s WHERE s.sku = sku_position_as_of.sku
            UNION
            SELECT x.location, x.lot FROM inventory_events.stream_snapshot x WHERE x.sku = sku_position_as_of.sku) st
     CROSS JOIN LATERAL inventory_events.stream_fold(sku_position_as_of.sku, st.location, st.lot,
                                                     coalesce(sku_position_as_of.at, '-infinity')) f
     WHERE f.events > 0
     ORDER BY st.location, st.lot;
END;

-- A lot's trail for a recall, in one call: where its units came from
-- (receipts, with their source documents in ref and source; and customer
-- returns), where they are now (per location and physical bucket, from the
-- stock rows), and where they went (shipments, with their orders and
-- channels). The lot's events are read through the (sku, lot) index of each
-- partition of the log (index_partition()), so the cost
-- grows with the lot's events, not with the log.
CREATE FUNCTION inventory_events.lot_trace(sku text, lot text)
RETURNS TABLE (section text, location text, bucket inventory_events.bucket, qty bigint,
               event_id bigint, event_type inventory_events.event_type, ref text, channel text,
               source text, occurred_at timestamptz)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (SELECT FROM inventory_events.lot l WHERE l.sku = lot_trace.sku AND l.lot = lot_trace.lot) THEN
        RAISE EXCEPTION 'unknown lot "%" of sku "%"', lot_trace.lot, lot_trace.sku
              USING ERRCODE = 'foreign_key_violation',
                    HINT = 'Lots are the rows of inventory_events.lot.';
    END IF;
    RETURN QUERY
    SELECT t.section, t.location, t.bucket, t.qty, t.event_id, t.event_type, t.ref, t.channel,
           t.source, t.occurred_at
      FROM (SELECT CASE e.event_type WHEN 'received' THEN 'origin' WHEN 'returned' THEN 'returned'
                                     ELSE 'shipped' END AS section,
                   e.location, NULL::inventory_events.bucket AS bucket, e.qty, e.id AS event_id,
                   e.event_type, e.ref, e.channel, e.source, e.occurred_at
              FROM inventory_events.event e
             WHERE e.sku = lot_trace.sku AND e.lot = lot_trace.lot AND e.lot <> ''
               AND e.event_type IN ('received', 'returned', 'shipped')
            UNION ALL
            SELECT 'on_hand', s.location, b.bucket, b.qty, NULL, NULL, NULL, NULL, NULL, NULL
              FROM inventory_events.stock s
             CROSS JOIN LATERAL (VALUES ('available'::inventory_events.bucket, s.available),
                                        ('reserved', s.reserved), ('picked', s.picked),
                                        ('damaged', s.damaged), ('quarantine', s.quarantine),
                                        ('in_transit', s.in_transit)) b(bucket, qty)
             WHERE s.sku = lot_trace.sku AND s.lot = lot_trace.lot AND b.qty <> 0) t
     ORDER BY array_position(ARRAY['origin', 'on_hand', 'returned', 'shipped'], t.section),
              t.occurred_at, t.event_id, t.location, t.bucket;
END;
$$;
COMMENT ON FUNCTION inventory_events.lot_trace(text, text) IS
  'A lot''s trail for a recall: receipts (origin), where its units are (on_hand), returns, shipments';

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

-- What every stream's position must be: the sum of its events' effects,
-- folded from its newest snapshot (stream_fold(), which sums each bucket in
-- 128 bits: the total is what must fit, not every partial sum in whatever
-- order the rows come; a stream may hold an adjustment of -9e18 and receipts
-- that bring it back). The streams are those of the log, found one index
-- descent each (a loose scan of the stream index: the cost grows with the
-- streams, not with the events), and those of the snapshots.
CREATE VIEW inventory_events.stream_derived AS
WITH RECURSIVE logged (sku, location, lot) AS (
    (SELECT e.sku, e.location, e.lot FROM inventory_events.event e ORDER BY e.sku, e.location, e.lot LIMIT 1)
    UNION ALL
    SELECT n.sku, n.location, n.lot
      FROM logged l
     CROSS JOIN LATERAL (SELECT e.sku, e.location, e.lot FROM inventory_events.event e
                          WHERE (e.sku, e.location, e.lot) > (l.sku, l.location, l.lot)
                          ORDER BY e.sku, e.location, e.lot LIMIT 1) n
), streams AS (
    SELECT logged.sku, logged.location, logged.lot FROM logged
    UNION
    SELECT x.sku, x.location, x.lot FROM inventory_events.stream_snapshot x
)
SELECT st.sku, st.location, st.lot, f."position", f.events, f.version, f.event_id AS last_event_id, f.safety_stock
  FROM streams st
 CROSS JOIN LATERAL inventory_events.stream_fold(st.sku, st.location, st.lot) f;

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
                WHEN d.sku IS NULL OR d.events = 0 THEN 'stock row without events'
                WHEN inventory_events.position_of(s.*) OPERATOR(inventory_events.<>) d."position" THEN 'position differs'
                WHEN s.on_hand <> inventory_events.on_hand(d."position") THEN 'on_hand differs'
                WHEN s.version <> d.version OR d.version <> d.events THEN 'version differs'
                ELSE 'safety stock differs' END
      FROM inventory_events.stock s
      FULL JOIN inventory_events.stream_derived d
        ON d.sku = s.sku AND d.location = s.location AND d.lot = s.lot
     WHERE s.sku IS NULL OR d.sku IS NULL OR d.events = 0
        OR inventory_events.position_of(s.*) OPERATOR(inventory_events.<>) d."position"
        OR s.on_hand <> inventory_events.on_hand(d."position")
        OR s.version <> d.version OR d.version <> d.events
        OR s.safety_stock <> d.safety_stock
    UNION ALL
    -- Each stream's newest snapshot, which the answers above rest on, against
    -- its predecessor and the events between them.
    SELECT v.sku, v.location, v.lot, v.stored, v.derived, v.version, v.version, v.stored_safety_stock,
           v.derived_safety_stock, 'snapshot differs'
      FROM inventory_events.verify_snapshots(true) v
     ORDER BY 1, 2, 3, 10;
END;
COMMENT ON FUNCTION inventory_events.verify() IS
  'One row per stream whose stored position differs from the sum of its events (from its newest snapshot on), or whose newest snapshot differs from its predecessor and the events between; none when all is well';

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
    deleted   bigint;
    keep_keys bigint;
    d         record;
    p         inventory_events.stock_position;
BEGIN
    PERFORM inventory_events.require_writable('inventory_events.rebuild()');
    -- Appends wait until the rebuild commits; readers go on.
    LOCK TABLE inventory_events.event IN SHARE MODE;
    LOCK TABLE inventory_events.stock IN SHARE ROW EXCLUSIVE MODE;

    -- A stream whose newest snapshot its predecessor and the events between do
    -- not give (what verify() reports) is folded from its first event: its
    -- snapshots go (take_snapshots() takes them again).
    -- Not the sealed ones of archived partitions, which cannot be taken again.
    DELETE FROM inventory_events.stream_snapshot s
     USING inventory_events.verify_snapshots(true) v
     WHERE s.sku = v.sku AND s.location = v.location AND s.lot = v.lot AND NOT s.sealed;

    -- For the progress messages: the streams with a stock row (one descent of
    -- the log's stream index per stream would cost as much as the rebuild).
    SELECT count(*) INTO total FROM inventory_events.stock;

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

    -- A stream with neither events nor a snapshot (whose events are all in
    -- archived partitions) has no stock row.
    DELETE FROM inventory_events.stock s
     WHERE NOT EXISTS (SELECT 1 FROM inventory_events.event e
                        WHERE e.sku = s.sku AND e.location = s.location AND e.lot = s.lot)
       AND NOT EXISTS (SELECT 1 FROM inventory_events.stream_snapshot n
                        WHERE n.sku = s.sku AND n.location = s.location AND n.lot = s.lot);
    GET DIAGNOSTICS deleted = ROW_COUNT;
    repaired := repaired + deleted;
    -- The idempotency keys of the events present within the keys' retention
    -- window (a log loaded without them), a key used twice for its latest.
    SELECT s.setting::bigint INTO keep_keys FROM pg_catalog.pg_settings s
     WHERE s.name = 'inventory_events.retain_keys';
    INSERT INTO inventory_events.event_key (source, idempotency_key, event_id, recorded_at, version)
    SELECT e.source, e.idempotency_key, e.id, e.recorded_at, e.version
      FROM inventory_events.event e
     WHERE e.idempotency_key IS NOT NULL
       AND (keep_keys IS NULL OR keep_keys < 0 OR e.recorded_at >= now() - make_interval(secs => keep_keys))
     ORDER BY e.recorded_at DESC
    ON CONFLICT DO NOTHING;
    RAISE NOTICE 'rebuild: % streams checked, % repaired', done, repaired;
    RETURN repaired;
END;
$$;
COMMENT ON FUNCTION inventory_events.rebuild(integer) IS
  'Restores every stock row from the event log; returns the number of streams repaired';

