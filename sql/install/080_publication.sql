-- ---------------------------------------------------------------------------
-- Channel publication (the publisher background worker calls publish())
-- ---------------------------------------------------------------------------

-- What each channel was told, in order: a gap-free sequence per channel.
CREATE TABLE inventory_events.publication (
    channel       text NOT NULL REFERENCES inventory_events.channel ON DELETE CASCADE,
    seq           bigint NOT NULL CHECK (seq > 0),
    sku           text NOT NULL,
    available     bigint NOT NULL,
    published_at  timestamptz NOT NULL,
    PRIMARY KEY (channel, seq)
);
COMMENT ON TABLE inventory_events.publication IS
  'Every availability sent to a channel, with a gap-free sequence number per channel';
SELECT pg_catalog.pg_extension_config_dump('inventory_events.publication', '');

-- Per channel: the last sequence number and when it was last published to.
CREATE TABLE inventory_events.channel_publisher (
    channel            text PRIMARY KEY REFERENCES inventory_events.channel ON DELETE CASCADE,
    last_seq           bigint NOT NULL DEFAULT 0,
    last_published_at  timestamptz
);
SELECT pg_catalog.pg_extension_config_dump('inventory_events.channel_publisher', '');

-- The value each channel was last sent for each sku.
CREATE TABLE inventory_events.channel_shown (
    channel    text NOT NULL REFERENCES inventory_events.channel ON DELETE CASCADE,
    sku        text NOT NULL,
    available  bigint NOT NULL,
    seq        bigint NOT NULL,
    PRIMARY KEY (channel, sku)
);
SELECT pg_catalog.pg_extension_config_dump('inventory_events.channel_shown', '');

-- (channel, sku) pairs whose availability may have changed and are not yet
-- published (a throttled channel collects them until its interval is up).
CREATE TABLE inventory_events.publication_pending (
    channel  text NOT NULL REFERENCES inventory_events.channel ON DELETE CASCADE,
    sku      text NOT NULL,
    PRIMARY KEY (channel, sku)
);
SELECT pg_catalog.pg_extension_config_dump('inventory_events.publication_pending', '');

-- How far the publisher has read the event log (an events_after() checkpoint).
-- publish() makes the row when it first runs: a row made by CREATE EXTENSION
-- would collide with the restored one when a dump is restored.
CREATE TABLE inventory_events.publisher_checkpoint (
    only_row    boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    checkpoint  text NOT NULL DEFAULT '0:0',
    updated_at  timestamptz
);
SELECT pg_catalog.pg_extension_config_dump('inventory_events.publisher_checkpoint', '');

-- The NOTIFY channel of a sales channel.
CREATE FUNCTION inventory_events.notify_channel(channel text)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN 'inventory_events.' || channel;

-- The NOTIFY payloads of a channel's publications after a sequence number:
-- JSON arrays of [sku, available, seq], each at most max_bytes long (NOTIFY
-- refuses 8000 bytes and more).
CREATE FUNCTION inventory_events.publication_payloads(channel text, after_seq bigint, max_bytes integer DEFAULT 7900)
RETURNS SETOF text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    payload  text;
    part     text;
    r        record;
BEGIN
    FOR r IN SELECT p.seq, p.sku, p.available FROM inventory_events.publication p
              WHERE p.channel = publication_payloads.channel AND p.seq > after_seq ORDER BY p.seq LOOP
        part := format('[%s,%s,%s]', to_json(r.sku), r.available, r.seq);
        -- A sku too long for any payload is left to publications_since().
        CONTINUE WHEN octet_length(part) + 2 > max_bytes;
        IF payload IS NOT NULL AND octet_length(payload) + octet_length(part) + 2 > max_bytes THEN
            RETURN NEXT payload || ']';
            payload := NULL;
        END IF;
        payload := coalesce(payload || ',', '[') || part;
    END LOOP;
    IF payload IS NOT NULL THEN
        RETURN NEXT payload || ']';
    END IF;
END;
$$;

-- One publisher step, in the caller's transaction: reads the events after
-- the checkpoint (only below the snapshot's xmin, so nothing committed out of
-- order is missed), marks every (channel, sku) they may have changed as
-- pending (a kit when one of its components moved), then, for every channel
-- whose publish_interval is up, computes channel_availability() of its
-- pending skus, appends those that differ from what the channel was last
-- sent to the publication log, and sends them with NOTIFY (at commit) in
-- payloads of [[sku, available, seq], ...] under 8000 bytes. Returns the
-- events read, the publications made, and in how many milliseconds a
-- throttled channel with pending skus is due (null: none).
CREATE FUNCTION inventory_events.publish(max_events integer DEFAULT 10000)
RETURNS TABLE (events integer, publications integer, next_due_ms bigint)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cp       text;
    next_cp  text;
    skus     text[] := '{}';
    c        record;
    payload  text;
    n        integer;
BEGIN
    PERFORM inventory_events.require_writable('inventory_events.publish()');
    events := 0;
    publications := 0;
    -- Restored or moved here and not written since (see log_home): a restore
    -- may still be loading the tables below, so write nothing yet.
    IF NOT inventory_events.log_adopted() THEN
        RETURN NEXT;
        RETURN;
    END IF;
    -- One publisher at a time.
    INSERT INTO inventory_events.publisher_checkpoint DEFAULT VALUES ON CONFLICT DO NOTHING;
    SELECT p.checkpoint INTO cp FROM inventory_events.publisher_checkpoint p FOR UPDATE;
    SELECT count(*)::integer, coalesce(array_agg(DISTINCT e.sku), '{}'),
           (array_agg(e.next_checkpoint ORDER BY e.ordinality DESC))[1]
      INTO events, skus, next_cp
      FROM inventory_events.events_after(cp, max_events) WITH ORDINALITY e;
    IF events > 0 THEN
        INSERT INTO inventory_events.publication_pending (channel, sku)
        SELECT ch.code, s.sku
          FROM inventory_events.channel ch,
               (SELECT DISTINCT u.sku FROM unnest(skus) u(sku)
                UNION SELECT k.kit FROM inventory_events.kit_component k WHERE k.component = ANY (skus)) s
        ON CONFLICT DO NOTHING;
        UPDATE inventory_events.publisher_checkpoint SET checkpoint = next_cp, updated_at = now();
    END IF;

    FOR c IN
        SELECT ch.code, coalesce(cp2.last_seq, 0) AS last_seq
          FROM inventory_events.channel ch
          LEFT JOIN inventory_events.channel_publisher cp2 ON cp2.channel = ch.code
         WHERE EXISTS (SELECT FROM inventory_events.publication_pending p WHERE p.channel = ch.code)
           AND (cp2.last_published_at IS NULL OR cp2.last_published_at + ch.publish_interval <= clock_timestamp())
         ORDER BY ch.code
    LOOP
        WITH due AS (
            DELETE FROM inventory_events.publication_pending p WHERE p.channel = c.code RETURNING p.sku
        ), current AS (
            SELECT d.sku, inventory_events.channel_availability(c.code, d.sku) AS available FROM due d
        ), changed AS (
            SELECT cur.sku, cur.available, c.last_seq + row_number() OVER (ORDER BY cur.sku) AS seq
              FROM current cur
              LEFT JOIN inventory_events.channel_shown s ON s.channel = c.code AND s.sku = cur.sku
             WHERE s.available IS DISTINCT FROM cur.available
        ), logged AS (
            INSERT INTO inventory_events.publication (channel, seq, sku, available, published_at)
            SELECT c.code, ch.seq, ch.sku, ch.available, clock_timestamp() FROM changed ch
            RETURNING 1
        ), shown AS (
            INSERT INTO inventory_events.channel_shown AS s (channel, sku, available, seq)
            SELECT c.code, ch.sku, ch.available, ch.seq FROM changed ch
            ON CONFLICT (channel, sku) DO UPDATE SET available = excluded.available, seq = excluded.seq
        )
        SELECT count(*) INTO n FROM logged;
        CONTINUE WHEN n = 0;
        INSERT INTO inventory_events.channel_publisher AS p (channel, last_seq, last_published_at)
        VALUES (c.code, c.last_seq + n, clock_timestamp())
        ON CONFLICT (channel) DO UPDATE SET last_seq = excluded.last_seq, last_published_at = excluded.last_published_at;
        publications := publications + n;
        FOR payload IN SELECT * FROM inventory_events.publication_payloads(c.code, c.last_seq) LOOP
            PERFORM pg_notify(inventory_events.notify_channel(c.code), payload);
        END LOOP;
    END LOOP;

    SELECT CASE WHEN count(*) > 0 THEN
                greatest(0, ceil(extract(epoch FROM min(cp2.last_published_at + ch.publish_interval)
                                                    - clock_timestamp()) * 1000))::bigint END
      INTO next_due_ms
      FROM inventory_events.channel ch
      JOIN inventory_events.channel_publisher cp2 ON cp2.channel = ch.code
     WHERE EXISTS (SELECT FROM inventory_events.publication_pending p WHERE p.channel = ch.code);
    RETURN NEXT;
END;
$$;
COMMENT ON FUNCTION inventory_events.publish(integer) IS
  'One publisher step: pending changes from the event log, published to every channel that is due';

-- Marks every sku stocked at a channel's locations (or kit) pending: after a
-- change of the channel's rules, which moves no event.
CREATE FUNCTION inventory_events.republish(channel text)
RETURNS bigint
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT inventory_events.require_writable('inventory_events.republish()');
    WITH ins AS (
        INSERT INTO inventory_events.publication_pending (channel, sku)
        SELECT republish.channel, i.sku FROM inventory_events.item i
        ON CONFLICT DO NOTHING
        RETURNING 1)
    SELECT count(*) FROM ins;
END;

-- The publisher background workers (shared_preload_libraries).
CREATE FUNCTION inventory_events.publisher_status(
    OUT database text, OUT enabled boolean, OUT pid integer, OUT state text,
    OUT started_at timestamptz, OUT last_run timestamptz, OUT runs bigint, OUT publications bigint)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'ie_publisher_status'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION inventory_events.publisher_status() IS
  'One row per database served by a publisher worker (inventory_events.database)';

CREATE FUNCTION inventory_events.publisher_start(database text DEFAULT NULL)
RETURNS boolean
AS 'MODULE_PATHNAME', 'ie_publisher_start'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION inventory_events.publisher_start(text) IS
  'Lets the launcher (re)start the publisher of a database (default: this one); false when it serves no such database';

CREATE FUNCTION inventory_events.publisher_stop(database text DEFAULT NULL)
RETURNS boolean
AS 'MODULE_PATHNAME', 'ie_publisher_stop'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION inventory_events.publisher_stop(text) IS
  'Stops the publisher of a database (default: this one) until publisher_start() or a server restart';

-- What a listener missed: the publications of a channel after a sequence number.
CREATE FUNCTION inventory_events.publications_since(channel text, seq bigint)
RETURNS TABLE (seq bigint, sku text, available bigint, published_at timestamptz)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT p.seq, p.sku, p.available, p.published_at
      FROM inventory_events.publication p
     WHERE p.channel = publications_since.channel AND p.seq > publications_since.seq
     ORDER BY p.seq;
END;
COMMENT ON FUNCTION inventory_events.publications_since(text, bigint) IS
  'The publications of a channel after a sequence number, in order: what a disconnected listener missed';

