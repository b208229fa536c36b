-- ---------------------------------------------------------------------------
-- Serial numbers (doc/reference.md, "Serial numbers")
-- ---------------------------------------------------------------------------

-- Where each serial of a serialized item is: one row per (sku, serial), at
-- one location and in one physical bucket, or outside the books (bucket
-- null: shipped, written off, lost, between the legs of a transfer). Written
-- only by the event path (src/serial.c), in the event's transaction, under
-- the row's lock: two events can never move one serial from the same place.
-- A serial on the shelf is 'available' whether or not a reservation holds
-- units of its stream: reservations promise quantities, picks name serials.
-- No foreign keys, as in the log: the event that names a serial has
-- checked its sku and location, and the stream's stock row (which has them)
-- keeps an item or location with serials from being deleted.
CREATE TABLE inventory_events.serial (
    sku         text NOT NULL,
    serial      text NOT NULL CHECK (serial <> ''),
    lot         text NOT NULL DEFAULT '',
    location    text NOT NULL,
    bucket      inventory_events.bucket CHECK (bucket IS DISTINCT FROM 'reserved' AND bucket IS DISTINCT FROM 'inbound'),
    version     bigint NOT NULL CHECK (version > 0),
    event_id    bigint NOT NULL,
    channel     text,
    ref         text,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT serial_pkey PRIMARY KEY (sku, serial)
);
COMMENT ON TABLE inventory_events.serial IS
  'Where each serial of a serialized item is now: location and physical bucket (null: outside the books)';
COMMENT ON COLUMN inventory_events.serial.version IS 'Number of events that moved the serial (its serial_event rows)';
COMMENT ON COLUMN inventory_events.serial.ref IS 'The ref (order, transfer, return) of the event that put it where it is';
-- A ship (or receipt of a transfer, disposal of a return) that names no
-- serials takes those its order line put in the bucket.
CREATE INDEX serial_place_idx ON inventory_events.serial (sku, location, bucket, ref) WHERE bucket IS NOT NULL;
SELECT pg_catalog.pg_extension_config_dump('inventory_events.serial', '');

-- Every move of every serial, in the serial's own order (version): the
-- event that moved it and where it was afterwards. Append-only, like the log.
CREATE TABLE inventory_events.serial_event (
    sku       text NOT NULL,
    serial    text NOT NULL,
    version   bigint NOT NULL CHECK (version > 0),
    event_id  bigint NOT NULL,
    location  text NOT NULL,
    bucket    inventory_events.bucket,
    CONSTRAINT serial_event_pkey PRIMARY KEY (sku, serial, version)
);
COMMENT ON TABLE inventory_events.serial_event IS
  'The history of every serial: each event that moved it, and its location and bucket afterwards (null: outside)';
CREATE INDEX serial_event_event_idx ON inventory_events.serial_event (event_id);
SELECT pg_catalog.pg_extension_config_dump('inventory_events.serial_event', '');

-- A serial's history in one query:
--   SELECT * FROM inventory_events.serial_history WHERE sku = 'X' AND serial = 'S' ORDER BY version;
CREATE VIEW inventory_events.serial_history AS
SELECT h.sku, h.serial, h.version, h.event_id, e.event_type, h.location, h.bucket, e.lot, e.ref,
       e.channel, e.source, e.occurred_at, e.recorded_at
  FROM inventory_events.serial_event h
  JOIN inventory_events.event e ON e.id = h.event_id;
COMMENT ON VIEW inventory_events.serial_history IS
  'Every event that moved a serial, with where it was afterwards (bucket null: outside), in version order';

-- Where the serials and the stock of a serialized item disagree, per stream
-- and physical bucket (the shelf: available and reserved units). Empty
-- while every unit moved carried its serial; a pick short, a count of the
-- quantity alone or a bulk load that bypassed append() shows here until a
-- count with serials settles it.
CREATE VIEW inventory_events.serial_drift AS
SELECT k.sku, k.location, k.lot, b.bucket, b.stock_qty, b.serials
  FROM (SELECT st.sku, st.location, st.lot FROM inventory_events.stock st
          JOIN inventory_events.item i ON i.sku = st.sku AND i.serialized
        UNION
        SELECT s.sku, s.location, s.lot FROM inventory_events.serial s WHERE s.bucket IS NOT NULL) k
  LEFT JOIN inventory_events.stock st ON (st.sku, st.location, st.lot) = (k.sku, k.location, k.lot)
 CROSS JOIN LATERAL (
        SELECT count(*) FILTER (WHERE s.bucket = 'available') AS shelf,
               count(*) FILTER (WHERE s.bucket = 'picked') AS picked,
               count(*) FILTER (WHERE s.bucket = 'damaged') AS damaged,
               count(*) FILTER (WHERE s.bucket = 'quarantine') AS quarantine,
               count(*) FILTER (WHERE s.bucket = 'in_transit') AS in_transit
          FROM inventory_events.serial s
         WHERE (s.sku, s.location, s.lot) = (k.sku, k.location, k.lot) AND s.bucket IS NOT NULL) c
 CROSS JOIN LATERAL (VALUES
        ('available'::inventory_events.bucket, coalesce(st.available + st.reserved, 0), c.shelf),
        ('picked', coalesce(st.picked, 0), c.picked),
        ('damaged', coalesce(st.damaged, 0), c.damaged),
        ('quarantine', coalesce(st.quarantine, 0), c.quarantine),
        ('in_transit', coalesce(st.in_transit, 0), c.in_transit)) b(bucket, stock_qty, serials)
 WHERE b.stock_qty <> b.serials;
COMMENT ON VIEW inventory_events.serial_drift IS
  'Streams of serialized items whose serials and stock disagree, per bucket (available: the shelf, reserved included)';

-- A serial's trail for a recall, in lot_trace()'s shape: where it came from
-- (receipts, adjustments and counts that brought it in), where it is now,
-- its returns and its shipments. Reads the serial's own history only.
CREATE FUNCTION inventory_events.serial_trace(sku text, serial text)
RETURNS TABLE (section text, location text, bucket inventory_events.bucket, qty bigint,
               event_id bigint, event_type inventory_events.event_type, ref text, channel text,
               source text, occurred_at timestamptz)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (SELECT FROM inventory_events.serial s
                    WHERE s.sku = serial_trace.sku AND s.serial = serial_trace.serial) THEN
        RAISE EXCEPTION 'unknown serial "%" of sku "%"', serial_trace.serial, serial_trace.sku
              USING ERRCODE = 'IE009',
                    HINT = 'A serial is known from the first event that names it.';
    END IF;
    RETURN QUERY
    SELECT t.section, t.location, t.bucket, t.qty, t.event_id, t.event_type, t.ref, t.channel,
           t.source, t.occurred_at
      FROM (SELECT CASE h.event_type WHEN 'returned' THEN 'returned' WHEN 'shipped' THEN 'shipped'
                                     ELSE 'origin' END AS section,
                   h.location, h.bucket, 1::bigint AS qty, h.event_id, h.event_type, h.ref, h.channel,
                   h.source, h.occurred_at
              FROM inventory_events.serial_history h
             WHERE h.sku = serial_trace.sku AND h.serial = serial_trace.serial
               AND (h.event_type IN ('returned', 'shipped')
                    OR (h.event_type IN ('received', 'adjusted', 'counted', 'moved') AND h.bucket IS NOT NULL
                        AND NOT EXISTS (SELECT FROM inventory_events.serial_event p
                                         WHERE p.sku = h.sku AND p.serial = h.serial
                                           AND p.version = h.version - 1 AND p.bucket IS NOT NULL)))
            UNION ALL
            SELECT 'on_hand', s.location, s.bucket, 1, s.event_id, NULL, s.ref, s.channel, NULL, NULL
              FROM inventory_events.serial s
             WHERE s.sku = serial_trace.sku AND s.serial = serial_trace.serial AND s.bucket IS NOT NULL) t
     ORDER BY array_position(ARRAY['origin', 'on_hand', 'returned', 'shipped'], t.section),
              t.occurred_at, t.event_id;
END;
$$;
COMMENT ON FUNCTION inventory_events.serial_trace(text, text) IS
  'A serial''s trail for a recall: what brought it in (origin), where it is (on_hand), returns, shipments';

-- An item's serialized flag says how its events are read: it changes only
-- while the item has nothing on hand anywhere (units without serials cannot
-- be picked by serial, and serials without units would be phantoms).
CREATE FUNCTION inventory_events.item_serialized_changed()
RETURNS trigger
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF EXISTS (SELECT FROM inventory_events.stock s
                WHERE s.sku = NEW.sku
                  AND (s.available, s.reserved, s.picked, s.damaged, s.quarantine, s.in_transit)
                      IS DISTINCT FROM (0::bigint, 0::bigint, 0::bigint, 0::bigint, 0::bigint, 0::bigint))
       OR EXISTS (SELECT FROM inventory_events.serial s WHERE s.sku = NEW.sku AND s.bucket IS NOT NULL) THEN
        RAISE EXCEPTION 'item "%" has stock: its serialized flag cannot change', NEW.sku
              USING ERRCODE = 'object_not_in_prerequisite_state',
                    DETAIL = 'Units with and without serials cannot be told apart.',
                    HINT = 'Change the flag before the first receipt, or after the item''s stock is zero everywhere.';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER item_serialized_changed
    BEFORE UPDATE OF serialized ON inventory_events.item
    FOR EACH ROW WHEN (OLD.serialized IS DISTINCT FROM NEW.serialized)
    EXECUTE FUNCTION inventory_events.item_serialized_changed();
