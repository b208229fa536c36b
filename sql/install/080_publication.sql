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
    channel_sku   text,
    PRIMARY KEY (channel, seq)
);
COMMENT ON TABLE inventory_events.publication IS
  'Every availability sent to a channel, with a gap-free sequence number per channel';
COMMENT ON COLUMN inventory_events.publication.channel_sku IS
  'The sku''s identifier on the channel (its listing''s channel_sku); null: our sku';
SELECT pg_catalog.pg_extension_config_dump('inventory_events.publication', '');

-- Per channel: the last sequence number and when it was last published to.
CREATE TABLE inventory_events.channel_publisher (
    channel            text PRIMARY KEY REFERENCES inventory_events.channel ON DELETE CASCADE,
    last_seq           bigint NOT NULL DEFAULT 0,
    last_published_at  timestamptz
);
SELECT pg_catalog.pg_extension_config_dump('inventory_events.channel_publisher', '');

-- The value each channel was last sent for each sku. The publisher replaces
-- a channel's row in place for every change: room on each page (fillfactor)
-- lets those updates be HOT.
CREATE TABLE inventory_events.channel_shown (
    channel    text NOT NULL REFERENCES inventory_events.channel ON DELETE CASCADE,
    sku        text NOT NULL,
    available  bigint NOT NULL,
    seq        bigint NOT NULL,
    channel_sku text,
    PRIMARY KEY (channel, sku)
) WITH (fillfactor = 70);
SELECT pg_catalog.pg_extension_config_dump('inventory_events.channel_shown', '');

-- (channel, sku) pairs whose availability may have changed and are not yet
-- published (a throttled channel collects them until its interval is up).
CREATE TABLE inventory_events.publication_pending (
    channel  text NOT NULL REFERENCES inventory_events.channel ON DELETE CASCADE,
    sku      text NOT NULL,
    since    timestamptz NOT NULL DEFAULT now(),
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

-- What failed in the background workers, one row per task and channel (the
-- channel is '' for a failure of the whole publisher step): the latest error,
-- when the streak of failures began and how long it is, and when the task is
-- tried again. A success clears the row (cleared_at); the next failure starts
-- a new streak. Not dumped: it describes this server's workers.
CREATE TABLE inventory_events.worker_error (
    task        text NOT NULL CHECK (task IN ('publish', 'expire', 'metrics', 'reconcile', 'snapshot', 'retention', 'partitions')),
    channel     text NOT NULL DEFAULT '',
    sqlstate    text NOT NULL,
    message     text NOT NULL,
    detail      text,
    first_seen  timestamptz NOT NULL,
    last_seen   timestamptz NOT NULL,
    failures    bigint NOT NULL CHECK (failures > 0),
    retry_at    timestamptz NOT NULL,
    cleared_at  timestamptz,
    PRIMARY KEY (task, channel)
);
COMMENT ON TABLE inventory_events.worker_error IS
  'Failures of the background workers per task and channel: latest error, streak, next retry';

-- Internal: records a failure of a worker task, and when to try it again:
-- after 1 s, doubling with every failure of the streak, at most 5 minutes.
CREATE FUNCTION inventory_events.record_worker_error(task text, channel text, sqlstate text,
                                                     message text, detail text)
RETURNS void
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    INSERT INTO inventory_events.worker_error AS w
           (task, channel, sqlstate, message, detail, first_seen, last_seen, failures, retry_at)
    VALUES (record_worker_error.task, record_worker_error.channel, record_worker_error.sqlstate,
            record_worker_error.message, record_worker_error.detail,
            clock_timestamp(), clock_timestamp(), 1, clock_timestamp() + interval '1 second')
    ON CONFLICT (task, channel) DO UPDATE
       SET sqlstate = excluded.sqlstate, message = excluded.message, detail = excluded.detail,
           first_seen = CASE WHEN w.cleared_at IS NULL THEN w.first_seen ELSE excluded.first_seen END,
           last_seen = excluded.last_seen,
           failures = CASE WHEN w.cleared_at IS NULL THEN w.failures + 1 ELSE 1 END,
           retry_at = excluded.last_seen
                      + least(interval '5 minutes',
                              interval '1 second' * power(2, least(CASE WHEN w.cleared_at IS NULL THEN w.failures ELSE 0 END, 20))),
           cleared_at = NULL;
END;

-- The NOTIFY channel of a sales channel.
CREATE FUNCTION inventory_events.notify_channel(channel text)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN 'inventory_events.' || channel;

-- One publisher step, in the caller's transaction (C, src/publisher.c):
-- reads the events after the checkpoint (only below the snapshot's xmin, as
-- events_after() does, so nothing committed out of order is missed) and the
-- skus they may have changed (a kit when one of its components moved). A
-- channel whose publish_interval is not up, or that failed and waits for its
-- retry, gets those skus as pending rows; every other channel takes its
-- pending skus and those of this step, computes what it shows for each
-- (channel_availability(); the ATP of each location computed once per step
-- and shared by every channel that sources from it), appends those that
-- differ from what the channel was last sent to the publication log, and
-- wakes the channel's listeners with a NOTIFY (at commit) whose payload is
-- only the channel's latest sequence number, {"seq": N}: any role that can
-- connect can NOTIFY, so listeners read the values themselves with
-- publications_since(). Each channel in a subtransaction of its own: a
-- failure is recorded in worker_error (record_worker_error()) and its skus
-- stay pending. Returns the events read, the publications made, and in how
-- many milliseconds a throttled or failing channel with pending skus is due
-- (null: none).
CREATE FUNCTION inventory_events.publish(max_events integer DEFAULT 10000)
RETURNS TABLE (events integer, publications integer, next_due_ms bigint)
AS 'MODULE_PATHNAME', 'ie_publish'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION inventory_events.publish(integer) IS
  'One publisher step: pending changes from the event log, published to every channel that is due';

-- Marks every sku stocked at a channel's locations (or kit) pending: after a
-- change of the channel's rules, which moves no event. Every mark of a change
-- locks a mark that is already there (ON CONFLICT ... DO UPDATE ... WHERE
-- false updates nothing and locks the row), and the publisher takes only
-- marks no transaction holds (SKIP LOCKED): a change is published after it
-- committed, with what it changed. (With DO NOTHING a publisher step could
-- take the mark while the change was in progress, publish the old rules, and
-- leave nothing marked for the change.)
CREATE FUNCTION inventory_events.republish(channel text)
RETURNS bigint
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT inventory_events.require_writable('inventory_events.republish()');
    WITH ins AS (
        INSERT INTO inventory_events.publication_pending (channel, sku)
        SELECT republish.channel, i.sku FROM inventory_events.item i
        ON CONFLICT (channel, sku) DO UPDATE SET sku = EXCLUDED.sku WHERE false
        RETURNING 1)
    SELECT count(*) FROM ins;
END;

-- A change of a channel's rules, of its sourcing locations or of a kit's bill
-- of materials moves no event, yet changes what channels show: the skus it
-- may change are marked pending in the same transaction, as republish()
-- would, and the publisher's next step publishes what differs. (A change of
-- a channel's description, kind or publish_interval alone marks nothing; nor
-- does anything before the database's first write, see log_adopted().)
CREATE FUNCTION inventory_events.rules_changed()
RETURNS trigger
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    keys text[] := '{}';   -- channels (channel, channel_location) or kits (kit_component)
    more text[];
BEGIN
    -- Before the database's first write (a fresh install, or a restore that is
    -- loading these tables and publication_pending itself) nothing has been
    -- published that a rule could change.
    IF NOT inventory_events.log_adopted() THEN
        RETURN NULL;
    END IF;
    -- Each transition table is named only in the branch of the event that has it.
    IF TG_TABLE_NAME = 'channel' AND TG_OP = 'UPDATE' THEN
        SELECT array_agg(n.code) INTO more
          FROM new_rows n JOIN old_rows o ON o.code = n.code
         WHERE (pg_catalog.to_jsonb(n) - '{description,kind,publish_interval}'::text[])
               IS DISTINCT FROM (pg_catalog.to_jsonb(o) - '{description,kind,publish_interval}'::text[]);
        keys := keys || more;
    ELSIF TG_TABLE_NAME = 'channel' THEN
        SELECT array_agg(n.code) INTO more FROM new_rows n;
        keys := keys || more;
    ELSIF TG_TABLE_NAME = 'channel_location' THEN
        IF TG_OP <> 'DELETE' THEN
            SELECT array_agg(n.channel) INTO more FROM new_rows n;
            keys := keys || more;
        END IF;
        IF TG_OP <> 'INSERT' THEN
            SELECT array_agg(o.channel) INTO more FROM old_rows o;
            keys := keys || more;
        END IF;
    ELSE
        IF TG_OP <> 'DELETE' THEN
            SELECT array_agg(n.kit) INTO more FROM new_rows n;
            keys := keys || more;
        END IF;
        IF TG_OP <> 'INSERT' THEN
            SELECT array_agg(o.kit) INTO more FROM old_rows o;
            keys := keys || more;
        END IF;
    END IF;
    IF cardinality(keys) = 0 THEN
        RETURN NULL;
    END IF;
    IF TG_TABLE_NAME = 'kit_component' THEN
        INSERT INTO inventory_events.publication_pending (channel, sku)
        SELECT ch.code, i.sku
          FROM inventory_events.item i CROSS JOIN inventory_events.channel ch
         WHERE i.sku = ANY (keys)
        ON CONFLICT (channel, sku) DO UPDATE SET sku = EXCLUDED.sku WHERE false;
    ELSE
        INSERT INTO inventory_events.publication_pending (channel, sku)
        SELECT ch.code, i.sku
          FROM inventory_events.channel ch CROSS JOIN inventory_events.item i
         WHERE ch.code = ANY (keys)
        ON CONFLICT (channel, sku) DO UPDATE SET sku = EXCLUDED.sku WHERE false;
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER channel_rules_inserted AFTER INSERT ON inventory_events.channel
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION inventory_events.rules_changed();
CREATE TRIGGER channel_rules_updated AFTER UPDATE ON inventory_events.channel
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION inventory_events.rules_changed();
CREATE TRIGGER channel_location_inserted AFTER INSERT ON inventory_events.channel_location
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION inventory_events.rules_changed();
CREATE TRIGGER channel_location_updated AFTER UPDATE ON inventory_events.channel_location
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION inventory_events.rules_changed();
CREATE TRIGGER channel_location_deleted AFTER DELETE ON inventory_events.channel_location
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION inventory_events.rules_changed();
CREATE TRIGGER kit_component_inserted AFTER INSERT ON inventory_events.kit_component
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION inventory_events.rules_changed();
CREATE TRIGGER kit_component_updated AFTER UPDATE ON inventory_events.kit_component
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION inventory_events.rules_changed();
CREATE TRIGGER kit_component_deleted AFTER DELETE ON inventory_events.kit_component
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION inventory_events.rules_changed();

-- A change of a channel's listings (channel_item) marks the (channel, sku)
-- pairs it changes pending, as rules_changed() does for the rules: a delisted
-- sku is published as 0 once, a relisted one with its current value, a
-- new identifier or override with what it shows now. A channel that gains
-- its first listing, or loses its last one, changes what it sells at all:
-- every sku becomes pending for it.
CREATE FUNCTION inventory_events.listings_changed()
RETURNS trigger
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    pair_channels text[] := '{}';   -- the (channel, sku) pairs changed, old and new
    pair_skus text[] := '{}';
    new_channels text[] := '{}';    -- the channel of each new row
    old_channels text[] := '{}';    -- the channel of each old row
    more_skus text[];
BEGIN
    IF NOT inventory_events.log_adopted() THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'TRUNCATE' THEN
        PERFORM inventory_events.republish(ch.code) FROM inventory_events.channel ch;
        RETURN NULL;
    END IF;
    -- Each transition table is named only in the branch of the event that has it.
    IF TG_OP <> 'DELETE' THEN
        SELECT coalesce(array_agg(n.channel), '{}'), coalesce(array_agg(n.sku), '{}')
          INTO new_channels, pair_skus FROM new_rows n;
        pair_channels := new_channels;
    END IF;
    IF TG_OP <> 'INSERT' THEN
        SELECT coalesce(array_agg(o.channel), '{}'), coalesce(array_agg(o.sku), '{}')
          INTO old_channels, more_skus FROM old_rows o;
        pair_channels := pair_channels || old_channels;
        pair_skus := pair_skus || more_skus;
    END IF;
    IF TG_OP = 'UPDATE' THEN
        -- Only the rows the UPDATE changed: a no-op update marks nothing.
        SELECT coalesce(array_agg(x.channel), '{}'), coalesce(array_agg(x.sku), '{}')
          INTO pair_channels, pair_skus
          FROM ((SELECT n.* FROM new_rows n EXCEPT SELECT o.* FROM old_rows o)
                UNION (SELECT o.* FROM old_rows o EXCEPT SELECT n.* FROM new_rows n)) x;
    END IF;
    -- One transaction at a time changes a channel's listings here: two that
    -- delete its last listings concurrently would each still see the
    -- other's row, and neither would mark the channel's skus. Waiting for
    -- the other's commit, the statements below see its changes (READ
    -- COMMITTED). Not FOR UPDATE: reservations hold the row FOR KEY SHARE.
    PERFORM FROM inventory_events.channel ch WHERE ch.code = ANY (pair_channels)
      ORDER BY ch.code FOR NO KEY UPDATE;
    INSERT INTO inventory_events.publication_pending (channel, sku)
    SELECT DISTINCT ch.code, p.sku
      FROM unnest(pair_channels, pair_skus) p(channel, sku)
      JOIN inventory_events.channel ch ON ch.code = p.channel
    ON CONFLICT (channel, sku) DO UPDATE SET sku = EXCLUDED.sku WHERE false;
    -- A channel that lost its last listing, or whose every listing is new.
    PERFORM inventory_events.republish(ch.code)
       FROM inventory_events.channel ch
      WHERE ch.code = ANY (pair_channels)
        AND (NOT EXISTS (SELECT FROM inventory_events.channel_item x WHERE x.channel = ch.code)
             OR (NOT ch.code = ANY (old_channels)
                 AND (SELECT count(*) FROM inventory_events.channel_item x WHERE x.channel = ch.code)
                     = cardinality(array_positions(new_channels, ch.code))));
    RETURN NULL;
END;
$$;
CREATE TRIGGER channel_item_inserted AFTER INSERT ON inventory_events.channel_item
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION inventory_events.listings_changed();
CREATE TRIGGER channel_item_updated AFTER UPDATE ON inventory_events.channel_item
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION inventory_events.listings_changed();
CREATE TRIGGER channel_item_deleted AFTER DELETE ON inventory_events.channel_item
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION inventory_events.listings_changed();
CREATE TRIGGER channel_item_truncated AFTER TRUNCATE ON inventory_events.channel_item
    FOR EACH STATEMENT EXECUTE FUNCTION inventory_events.listings_changed();

-- The location hierarchy and the entities decide which locations a channel
-- sources from (channel_sources()): a change of a location's parent or
-- entity marks the skus stocked at or below it pending for every channel,
-- and an intercompany rule every sku for the channels of its selling entity. (A new location has no stock
-- yet, and one with stock cannot be deleted: neither changes a pool.)
CREATE FUNCTION inventory_events.hierarchy_changed()
RETURNS trigger
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    sellers text[];
BEGIN
    IF NOT inventory_events.log_adopted() THEN
        RETURN NULL;
    END IF;
    IF TG_TABLE_NAME = 'location' THEN
        -- Only the skus stocked at or below a location whose parent or
        -- entity changed can change what any channel shows.
        INSERT INTO inventory_events.publication_pending (channel, sku)
        SELECT ch.code, s.sku
          FROM (SELECT DISTINCT st.sku
                  FROM inventory_events.stock st
                  JOIN inventory_events.location_tree t ON t.location = st.location
                 WHERE t.node IN (SELECT n.code FROM new_rows n JOIN old_rows o ON o.code = n.code
                                   WHERE n.parent IS DISTINCT FROM o.parent
                                      OR n.entity IS DISTINCT FROM o.entity)) s
         CROSS JOIN inventory_events.channel ch
        ON CONFLICT (channel, sku) DO UPDATE SET sku = EXCLUDED.sku WHERE false;
        RETURN NULL;
    END IF;
    -- Each transition table is named only in the branch of the event that has it.
    IF TG_OP = 'TRUNCATE' THEN
        SELECT array_agg(e.code) INTO sellers FROM inventory_events.entity e;
    ELSIF TG_OP = 'INSERT' THEN
        SELECT array_agg(n.seller) INTO sellers FROM new_rows n;
    ELSIF TG_OP = 'DELETE' THEN
        SELECT array_agg(o.seller) INTO sellers FROM old_rows o;
    ELSE
        SELECT array_agg(x.seller) INTO sellers FROM (SELECT n.seller FROM new_rows n
                                                     UNION SELECT o.seller FROM old_rows o) x;
    END IF;
    PERFORM inventory_events.republish(ch.code) FROM inventory_events.channel ch WHERE ch.entity = ANY (sellers);
    RETURN NULL;
END;
$$;
CREATE TRIGGER location_hierarchy_updated AFTER UPDATE ON inventory_events.location
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION inventory_events.hierarchy_changed();
CREATE TRIGGER intercompany_inserted AFTER INSERT ON inventory_events.intercompany
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION inventory_events.hierarchy_changed();
CREATE TRIGGER intercompany_updated AFTER UPDATE ON inventory_events.intercompany
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION inventory_events.hierarchy_changed();
CREATE TRIGGER intercompany_deleted AFTER DELETE ON inventory_events.intercompany
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION inventory_events.hierarchy_changed();
CREATE TRIGGER intercompany_truncated AFTER TRUNCATE ON inventory_events.intercompany
    FOR EACH STATEMENT EXECUTE FUNCTION inventory_events.hierarchy_changed();

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
-- No SET clause: the body's names are bound when the function is created
-- (BEGIN ATOMIC), and without one the planner inlines it, so that
-- publications_since(c, s) LIMIT n reads n rows by the primary key instead
-- of the whole backlog.
-- channel_sku: the identifier the channel knows the sku by (its listing's,
-- or our sku on a channel without listings).
CREATE FUNCTION inventory_events.publications_since(channel text, seq bigint)
RETURNS TABLE (seq bigint, sku text, available bigint, published_at timestamptz, channel_sku text)
LANGUAGE sql STABLE
BEGIN ATOMIC
    SELECT p.seq, p.sku, p.available, p.published_at, coalesce(p.channel_sku, p.sku)
      FROM inventory_events.publication p
     WHERE p.channel = publications_since.channel AND p.seq > publications_since.seq
     ORDER BY p.seq;
END;
COMMENT ON FUNCTION inventory_events.publications_since(text, bigint) IS
  'The publications of a channel after a sequence number, in order: what a disconnected listener missed';


-- Per channel, what an operator watches: how far behind its publications
-- are (the oldest change not yet published: a pending sku, or an event the
-- publisher has not read yet), its last publication, its last error, and the
-- oldest open transaction holding back the horizon below which the publisher
-- reads the log (any database of the cluster: transaction ids are shared).
CREATE VIEW inventory_events.channel_health AS
SELECT ch.code AS channel,
       coalesce(pend.pending_skus, 0) AS pending_skus,
       least(pend.oldest_pending, unread.recorded_at) AS oldest_unpublished,
       coalesce(extract(epoch FROM clock_timestamp() - least(pend.oldest_pending, unread.recorded_at)), 0)
           ::double precision AS lag_seconds,
       coalesce(p.last_seq, 0) AS last_seq,
       p.last_published_at,
       w.sqlstate AS last_error_sqlstate,
       w.message AS last_error,
       w.last_seen AS last_error_at,
       CASE WHEN w.cleared_at IS NULL THEN coalesce(w.failures, 0) ELSE 0 END AS failures,
       CASE WHEN w.cleared_at IS NULL THEN w.retry_at END AS retry_at,
       horizon.pid AS horizon_pid,
       horizon.datname AS horizon_database,
       horizon.xact_start AS horizon_xact_start
  FROM inventory_events.channel ch
  LEFT JOIN inventory_events.channel_publisher p ON p.channel = ch.code
  LEFT JOIN inventory_events.worker_error w ON w.task = 'publish' AND w.channel = ch.code
  LEFT JOIN LATERAL (SELECT count(*) AS pending_skus, min(x.since) AS oldest_pending
                       FROM inventory_events.publication_pending x WHERE x.channel = ch.code) pend ON true
  -- The checkpoint as two scalar subqueries: a condition of the index scan
  -- on (xid, id), which starts at the checkpoint (joined, it would filter
  -- every event before it: the whole log once the publisher has caught up).
  LEFT JOIN LATERAL (SELECT e.recorded_at
                       FROM inventory_events.event e
                      WHERE (e.xid, e.id) > ((SELECT split_part(c.checkpoint, ':', 1)::xid8
                                                FROM inventory_events.publisher_checkpoint c),
                                             (SELECT split_part(c.checkpoint, ':', 2)::bigint
                                                FROM inventory_events.publisher_checkpoint c))
                      ORDER BY e.xid, e.id LIMIT 1) unread ON true
  LEFT JOIN LATERAL (SELECT a.pid, a.datname, a.xact_start
                       FROM pg_catalog.pg_stat_activity a
                      WHERE a.backend_xid IS NOT NULL AND a.pid <> pg_catalog.pg_backend_pid()
                      ORDER BY pg_catalog.age(a.backend_xid) DESC LIMIT 1) horizon ON true;
COMMENT ON VIEW inventory_events.channel_health IS
  'Per channel: publication lag, last publication, last error and retry, the transaction holding back the publisher';
