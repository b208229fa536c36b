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

-- The guard per row (each rewritten row logged and written to the WAL as a
-- logical decoding message), enabled ALWAYS.
DROP TRIGGER event_append_only ON inventory_events.event;
CREATE TRIGGER event_append_only BEFORE UPDATE OR DELETE ON inventory_events.event
    FOR EACH ROW EXECUTE FUNCTION inventory_events.event_guard();
ALTER TABLE inventory_events.event ENABLE ALWAYS TRIGGER event_append_only;
ALTER TABLE inventory_events.event ENABLE ALWAYS TRIGGER event_append_only_truncate;

-- A channel code must make a NOTIFY channel name ('inventory_events.' ||
-- code, at most 63 bytes): publish() could never notify a longer one.
DO $$
DECLARE
    too_long text;
BEGIN
    SELECT string_agg(format('"%s"', code), ', ' ORDER BY code) INTO too_long
      FROM inventory_events.channel WHERE octet_length(code) NOT BETWEEN 1 AND 46;
    IF too_long IS NOT NULL THEN
        RAISE EXCEPTION 'channel codes empty or longer than 46 bytes: %', too_long
              USING ERRCODE = 'check_violation',
                    DETAIL = 'The NOTIFY channel of a sales channel, inventory_events.<code>, must be at most 63 bytes.',
                    HINT = 'Rename these channels (UPDATE inventory_events.channel SET code = ...), then update the extension again.';
    END IF;
END $$;
ALTER TABLE inventory_events.channel
    ADD CONSTRAINT channel_code_fits_notify CHECK (octet_length(code) BETWEEN 1 AND 46);

-- Failure isolation in the workers: a channel (or an expiry) that fails is
-- recorded and retried with a backoff while the others go on.
-- Added without a default first: ADD COLUMN ... DEFAULT now() would store the
-- time of the update as the column's "missing value" in the catalog, which a
-- fresh install does not have.
ALTER TABLE inventory_events.publication_pending ADD COLUMN since timestamptz;
UPDATE inventory_events.publication_pending SET since = now();
ALTER TABLE inventory_events.publication_pending ALTER COLUMN since SET DEFAULT now(),
                                                 ALTER COLUMN since SET NOT NULL;

-- What failed in the background workers, one row per task and channel (the
-- channel is '' for a failure of the whole publisher step): the latest error,
-- when the streak of failures began and how long it is, and when the task is
-- tried again. A success clears the row (cleared_at); the next failure starts
-- a new streak. Not dumped: it describes this server's workers.
CREATE TABLE inventory_events.worker_error (
    task        text NOT NULL CHECK (task IN ('publish', 'expire')),
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
REVOKE EXECUTE ON FUNCTION inventory_events.record_worker_error(text, text, text, text, text) FROM PUBLIC;

-- NOTIFY is a wake-up carrying only the latest sequence number.
DROP FUNCTION inventory_events.publication_payloads(text, bigint, integer);

-- One publisher step, in the caller's transaction: reads the events after
-- the checkpoint (only below the snapshot's xmin, so nothing committed out of
-- order is missed), marks every (channel, sku) they may have changed as
-- pending (a kit when one of its components moved), then, for every channel
-- whose publish_interval is up, computes channel_availability() of its
-- pending skus, appends those that differ from what the channel was last
-- sent to the publication log, and wakes the channel's listeners with a
-- NOTIFY (at commit) whose payload is only the channel's latest sequence
-- number, {"seq": N}: any role that can connect can NOTIFY, so listeners read
-- the values themselves with publications_since(). Returns the events read,
-- the publications made, and in how many milliseconds a throttled or failing
-- channel with pending skus is due (null: none).
CREATE OR REPLACE FUNCTION inventory_events.publish(max_events integer DEFAULT 10000)
RETURNS TABLE (events integer, publications integer, next_due_ms bigint)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cp       text;
    next_cp  text;
    skus     text[] := '{}';
    c        record;
    n        integer;
    err_state    text;
    err_message  text;
    err_detail   text;
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

    -- Each channel in a subtransaction of its own: a channel that fails is
    -- recorded in worker_error and tried again after a backoff, and its
    -- pending skus stay pending; the other channels go on.
    FOR c IN
        SELECT ch.code, coalesce(cp2.last_seq, 0) AS last_seq, w.channel IS NOT NULL AS failing
          FROM inventory_events.channel ch
          LEFT JOIN inventory_events.channel_publisher cp2 ON cp2.channel = ch.code
          LEFT JOIN inventory_events.worker_error w
                 ON w.task = 'publish' AND w.channel = ch.code AND w.cleared_at IS NULL
         WHERE EXISTS (SELECT FROM inventory_events.publication_pending p WHERE p.channel = ch.code)
           AND (cp2.last_published_at IS NULL OR cp2.last_published_at + ch.publish_interval <= clock_timestamp())
           AND (w.retry_at IS NULL OR w.retry_at <= clock_timestamp())
         ORDER BY ch.code
    LOOP
        BEGIN
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
            IF n > 0 THEN
                INSERT INTO inventory_events.channel_publisher AS p (channel, last_seq, last_published_at)
                VALUES (c.code, c.last_seq + n, clock_timestamp())
                ON CONFLICT (channel) DO UPDATE SET last_seq = excluded.last_seq,
                                                    last_published_at = excluded.last_published_at;
                publications := publications + n;
                -- A wake-up, not data: listeners read publications_since().
                PERFORM pg_notify(inventory_events.notify_channel(c.code),
                                  format('{"seq":%s}', c.last_seq + n));
            END IF;
            IF c.failing THEN
                UPDATE inventory_events.worker_error w SET cleared_at = clock_timestamp()
                 WHERE w.task = 'publish' AND w.channel = c.code;
            END IF;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS err_state = RETURNED_SQLSTATE, err_message = MESSAGE_TEXT,
                                    err_detail = PG_EXCEPTION_DETAIL;
            PERFORM inventory_events.record_worker_error('publish', c.code, err_state, err_message,
                                                         nullif(err_detail, ''));
        END;
    END LOOP;

    -- When the next throttled or failing channel with pending skus is due.
    SELECT CASE WHEN count(*) > 0 THEN
                greatest(0, ceil(extract(epoch FROM min(greatest(cp2.last_published_at + ch.publish_interval, w.retry_at))
                                                    - clock_timestamp()) * 1000))::bigint END
      INTO next_due_ms
      FROM inventory_events.channel ch
      LEFT JOIN inventory_events.channel_publisher cp2 ON cp2.channel = ch.code
      LEFT JOIN inventory_events.worker_error w
             ON w.task = 'publish' AND w.channel = ch.code AND w.cleared_at IS NULL
     WHERE (cp2.channel IS NOT NULL OR w.channel IS NOT NULL)
       AND EXISTS (SELECT FROM inventory_events.publication_pending p WHERE p.channel = ch.code);
    RETURN NEXT;
END;
$$;
COMMENT ON FUNCTION inventory_events.publish(integer) IS
  'One publisher step: pending changes from the event log, published to every channel that is due';

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

-- As the install script leaves them: nothing open to PUBLIC.
REVOKE ALL ON inventory_events.worker_error, inventory_events.channel_health FROM PUBLIC;

-- publications_since() inlinable (its BEGIN ATOMIC body is bound at creation):
-- publications_since(c, s) LIMIT n then reads n rows, not the whole backlog.
ALTER FUNCTION inventory_events.publications_since(text, bigint) RESET search_path;

-- ingest_staged() in C: it claims and ingests the staged rows in memory that
-- does not grow with their number (the SQL version aggregated every claimed
-- row into one jsonb array for ingest()). Same signature, result columns,
-- default, SECURITY DEFINER, search_path and comment. CREATE OR REPLACE
-- keeps the function's OID, its ACL (PUBLIC revoked, as in a fresh install;
-- the roles grant_access() made writers keep EXECUTE) and its initial
-- privileges. No GRANT or REVOKE here: inside ALTER EXTENSION one would
-- record the roles' grants as initial privileges, which pg_dump leaves out.
CREATE OR REPLACE FUNCTION inventory_events.ingest_staged(max_rows integer DEFAULT NULL)
RETURNS TABLE (staged_id bigint, status text, event_id bigint, version bigint, sqlstate text, message text)
AS 'MODULE_PATHNAME', 'ie_ingest_staged'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION inventory_events.ingest_staged IS
  'Ingests (and removes) the rows COPYed into event_staging, oldest first';

-- verify() and rebuild() sum each bucket exactly: no overflow in a partial sum.
-- Each bucket summed as bigint (an exact 128-bit running sum, numeric
-- result) and then converted: the total is what must fit, not every partial
-- sum in whatever order the rows come (a stream may hold an adjustment of
-- -9e18 and receipts that bring it back).
CREATE OR REPLACE VIEW inventory_events.stream_derived AS
SELECT sku, location, lot,
       inventory_events.stock_position(sum(inventory_events.available(effect))::bigint,
                                       sum(inventory_events.reserved(effect))::bigint,
                                       sum(inventory_events.picked(effect))::bigint,
                                       sum(inventory_events.damaged(effect))::bigint,
                                       sum(inventory_events.quarantine(effect))::bigint,
                                       sum(inventory_events.in_transit(effect))::bigint,
                                       sum(inventory_events.inbound(effect))::bigint) AS "position",
       count(*) AS events,
       max(version) AS version,
       max(id) AS last_event_id,
       coalesce((array_agg(qty ORDER BY version DESC) FILTER (WHERE event_type = 'safety_stock_set'))[1], 0) AS safety_stock
  FROM inventory_events.event
 GROUP BY sku, location, lot;

-- === Reconciliation (issue 13) ===
-- Items: ABC class, cost and the flags that remove a tolerance (added at
-- the end, as in a fresh install's table). The defaults are set after the
-- rows are filled: ADD COLUMN ... DEFAULT would store a "missing value" in
-- the catalog that a fresh install does not have.
ALTER TABLE inventory_events.item
    ADD COLUMN abc_class text CHECK (abc_class IN ('A', 'B', 'C')),
    ADD COLUMN unit_cost numeric CHECK (unit_cost >= 0),
    ADD COLUMN regulated boolean,
    ADD COLUMN high_value boolean;
UPDATE inventory_events.item SET regulated = false, high_value = false;
ALTER TABLE inventory_events.item
    ALTER COLUMN regulated SET DEFAULT false, ALTER COLUMN regulated SET NOT NULL,
    ALTER COLUMN high_value SET DEFAULT false, ALTER COLUMN high_value SET NOT NULL;
COMMENT ON COLUMN inventory_events.item.unit_cost IS 'Cost of one base unit: the value of a reconciliation variance';

-- Exceptions of reconciliation lines and channel drift.
ALTER TABLE inventory_events.exception DROP CONSTRAINT exception_kind_check,
    ADD CONSTRAINT exception_kind_check CHECK (kind IN ('pick_short', 'oversell_refused', 'negative_available', 'dead_letter',
                                               'recon_variance', 'channel_drift'));

-- ---------------------------------------------------------------------------
-- Reconciliation: snapshots of a WMS, a 3PL or a channel compared with our
-- positions as of their cut-off (doc/reconciliation.md)
-- ---------------------------------------------------------------------------

-- What a source's quantities are: on-hand, the available bucket (executable
-- stock), or what a channel shows its buyers.
CREATE TYPE inventory_events.recon_measure AS ENUM ('on_hand', 'available', 'channel');

CREATE TYPE inventory_events.recon_status AS ENUM (
    'match',              -- theirs = ours
    'within_tolerance',   -- a difference inside the line's tolerance
    'out_of_tolerance',   -- a difference beyond it
    'missing_in_source',  -- we hold stock the source does not list (full snapshots)
    'missing_here',       -- the source lists stock we do not hold
    'timing',             -- the difference is stock in flight at the cut-off or events recorded late
    'uom_suspect',        -- the difference is a unit-of-measure factor (a case counted as an each)
    'status_mapping',     -- the difference is one of our buckets the source counts otherwise
    'unmapped',           -- an unknown sku, location or unit of measure: reported, not compared
    'duplicate'           -- the snapshot lists the same key more than once: not compared
);

CREATE TABLE inventory_events.recon_source (
    code           text PRIMARY KEY,
    description    text NOT NULL DEFAULT '',
    measure        inventory_events.recon_measure NOT NULL DEFAULT 'on_hand',
    -- The channel whose shown quantities a channel-measure source reports.
    channel        text REFERENCES inventory_events.channel ON DELETE CASCADE,
    -- Which side is right when they differ: 'source' (adjust ours to the
    -- count) or 'ours' (the source is corrected; we never adjust).
    authoritative  text NOT NULL DEFAULT 'source' CHECK (authoritative IN ('source', 'ours')),
    -- 'full': a snapshot lists everything in scope and what it does not list
    -- is 0; 'partial': only the listed lines are compared (a cycle count).
    snapshot       text NOT NULL DEFAULT 'full' CHECK (snapshot IN ('full', 'partial')),
    -- The locations a full snapshot covers; null: those its lines name.
    locations      text[],
    -- Adjust automatically the lines within the auto-adjust policy
    -- (recon_tolerance.auto_adjust_units), never zero-tolerance items.
    auto_adjust    boolean NOT NULL DEFAULT false,
    -- Recounts of a line before it needs approval (approve_recon_line()).
    max_recounts   integer NOT NULL DEFAULT 2 CHECK (max_recounts >= 0),
    created_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT recon_source_channel_measure CHECK ((measure = 'channel') = (channel IS NOT NULL)),
    CONSTRAINT recon_source_channel_not_adjusted CHECK (measure <> 'channel' OR NOT auto_adjust)
);
COMMENT ON TABLE inventory_events.recon_source IS
  'Systems that send stock snapshots: what they measure, which side is right, full or partial snapshots';
SELECT pg_catalog.pg_extension_config_dump('inventory_events.recon_source', '');

-- Tolerance policies. The first that applies wins: the sku's, the item's ABC
-- class's, the location's, the default (no sku, class or location); with no
-- row, the built-in class defaults A 1 %, B 3 %, C 5 %, and exact for an item
-- without a class. A line is within tolerance when its variance is within
-- every limit the policy sets. Lot-controlled, regulated and high-value items
-- have no tolerance at all.
CREATE TABLE inventory_events.recon_tolerance (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sku                text REFERENCES inventory_events.item ON DELETE CASCADE,
    abc_class          text CHECK (abc_class IN ('A', 'B', 'C')),
    location           text REFERENCES inventory_events.location ON DELETE CASCADE,
    pct                numeric CHECK (pct >= 0),
    units              bigint CHECK (units >= 0),
    value              numeric CHECK (value >= 0),
    auto_adjust_units  bigint CHECK (auto_adjust_units >= 0),
    CONSTRAINT recon_tolerance_one_scope CHECK (num_nonnulls(sku, abc_class, location) <= 1),
    CONSTRAINT recon_tolerance_scope_key UNIQUE NULLS NOT DISTINCT (sku, abc_class, location)
);
COMMENT ON TABLE inventory_events.recon_tolerance IS
  'Tolerance policies by sku, ABC class, location or default: percent of ours, units and value; auto-adjust limit';
COMMENT ON COLUMN inventory_events.recon_tolerance.auto_adjust_units IS
  'Lines within tolerance whose variance is at most this many units are adjusted automatically (null: never)';
SELECT pg_catalog.pg_extension_config_dump('inventory_events.recon_tolerance', '');
SELECT pg_catalog.pg_extension_config_dump('inventory_events.recon_tolerance_id_seq', '');

-- One snapshot compared. Idempotent on (source, external_id), or on (source,
-- checksum of the cut-off, the kind and the lines) without an external id.
CREATE TABLE inventory_events.recon_run (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source          text NOT NULL REFERENCES inventory_events.recon_source ON DELETE CASCADE,
    measure         inventory_events.recon_measure NOT NULL,
    as_of           timestamptz NOT NULL,
    "full"          boolean NOT NULL,
    external_id     text,
    checksum        text NOT NULL,
    lines           bigint NOT NULL,
    -- correlation_id of the adjustments made for its lines
    correlation_id  uuid NOT NULL DEFAULT gen_random_uuid(),
    created_at      timestamptz NOT NULL DEFAULT now(),
    created_by      text NOT NULL DEFAULT session_user
);
CREATE UNIQUE INDEX recon_run_external_id_key ON inventory_events.recon_run (source, external_id)
    WHERE external_id IS NOT NULL;
CREATE UNIQUE INDEX recon_run_checksum_key ON inventory_events.recon_run (source, checksum)
    WHERE external_id IS NULL;
CREATE INDEX recon_run_source_idx ON inventory_events.recon_run (source, as_of, id);
COMMENT ON TABLE inventory_events.recon_run IS 'Reconciliation runs: one snapshot of a source compared as of its cut-off';
SELECT pg_catalog.pg_extension_config_dump('inventory_events.recon_run', '');
SELECT pg_catalog.pg_extension_config_dump('inventory_events.recon_run_id_seq', '');

-- The compared lines. A line is never edited: a late event that changes ours
-- as of the cut-off, or an adjustment, adds a new version of it and clears
-- "current" on the old one. Only the resolution columns of the current
-- version change.
CREATE TABLE inventory_events.recon_line (
    id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id               bigint NOT NULL REFERENCES inventory_events.recon_run ON DELETE CASCADE,
    line_no              integer NOT NULL,
    version              integer NOT NULL DEFAULT 1 CHECK (version > 0),
    current              boolean NOT NULL DEFAULT true,
    reason               text NOT NULL DEFAULT 'run' CHECK (reason IN ('run', 'late_event', 'adjusted')),
    sku                  text NOT NULL,
    location             text NOT NULL DEFAULT '',
    lot                  text,
    uom                  text,
    reported_qty         bigint,
    ours                 bigint,
    theirs               bigint,
    variance             bigint,
    explained            bigint NOT NULL DEFAULT 0,
    residual             bigint,
    value                numeric,
    status               inventory_events.recon_status NOT NULL,
    exceeds_tolerance    boolean NOT NULL DEFAULT false,
    severity             text NOT NULL DEFAULT 'none' CHECK (severity IN ('none', 'info', 'warning', 'critical')),
    streak               integer NOT NULL DEFAULT 0,
    ours_position        inventory_events.stock_position,
    hints                jsonb NOT NULL DEFAULT '[]',
    note                 text,
    recounts             integer NOT NULL DEFAULT 0,
    resolution           text CHECK (resolution IN ('adjusted', 'auto_adjusted', 'approved', 'recount',
                                                    'accepted', 'disputed', 'superseded', 'republished')),
    resolved_at          timestamptz,
    resolved_by          text,
    resolution_event_id  bigint,
    line_uuid            uuid NOT NULL DEFAULT gen_random_uuid(),
    created_at           timestamptz NOT NULL DEFAULT now(),
    -- A line of a serialized item that lists serials: ours as of the cut-off
    -- that it does not list, and those it lists that we do not have there.
    serials_missing      text[],
    serials_unexpected   text[],
    CONSTRAINT recon_line_version_key UNIQUE (run_id, line_no, version)
);
CREATE INDEX recon_line_key_idx ON inventory_events.recon_line (sku, location, run_id) WHERE current;
CREATE INDEX recon_line_open_idx ON inventory_events.recon_line (run_id) WHERE current AND exceeds_tolerance;
CREATE INDEX recon_line_resolution_event_idx ON inventory_events.recon_line (resolution_event_id)
    WHERE resolution_event_id IS NOT NULL;
COMMENT ON TABLE inventory_events.recon_line IS
  'Reconciliation lines, versioned: ours as of the cut-off, theirs, variance, status, hints and resolution';
COMMENT ON COLUMN inventory_events.recon_line.lot IS 'null: all lots of the sku at the location summed';
COMMENT ON COLUMN inventory_events.recon_line.variance IS 'theirs - ours, in base units (channel: units shown)';
COMMENT ON COLUMN inventory_events.recon_line.ours_position IS
  'Our buckets as of the cut-off (the streams of the key summed); null for a channel measure';
COMMENT ON COLUMN inventory_events.recon_line.serials_missing IS
  'Serials we had there as of the cut-off that the line does not list (null: the line lists none)';
COMMENT ON COLUMN inventory_events.recon_line.serials_unexpected IS
  'Serials the line lists that we did not have there as of the cut-off (null: the line lists none)';
COMMENT ON COLUMN inventory_events.recon_line.streak IS
  'Consecutive runs of the source in which this key has been out of tolerance, this one included';
SELECT pg_catalog.pg_extension_config_dump('inventory_events.recon_line', '');
SELECT pg_catalog.pg_extension_config_dump('inventory_events.recon_line_id_seq', '');

-- The COPY path: COPY lines into recon_staging and call reconcile_staged() in
-- the same transaction (its rows are those of the transaction). Unlogged: a
-- crash can only lose rows of transactions that never committed a run.
CREATE UNLOGGED TABLE inventory_events.recon_staging (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    load_xid  xid8 NOT NULL DEFAULT pg_current_xact_id(),
    sku       text NOT NULL,
    location  text,
    lot       text,
    qty       bigint NOT NULL CONSTRAINT recon_staging_qty_not_negative CHECK (qty >= 0),
    uom       text,
    serials   text[]
);
CREATE INDEX recon_staging_load_idx ON inventory_events.recon_staging (load_xid, id);
COMMENT ON TABLE inventory_events.recon_staging IS
  'Snapshot lines COPYed in for reconcile_staged() in the same transaction';

-- How far the worker has read the log for late events (an events_after()
-- checkpoint); made by the first run.
CREATE TABLE inventory_events.recon_checkpoint (
    only_row    boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    checkpoint  text NOT NULL,
    updated_at  timestamptz
);
SELECT pg_catalog.pg_extension_config_dump('inventory_events.recon_checkpoint', '');

-- The events of the log that occurred after a time: those recorded after it
-- (the block range index on recorded_at finds them at the end of the table)
-- and those recorded before it with a business time in the future (a partial
-- index holds the few of them). Their number, not the history, is the cost of
-- a position as of a past time (recon_run_staged() reads them so).
CREATE INDEX event_recorded_at_brin ON inventory_events.event USING brin (recorded_at);
CREATE INDEX event_future_dated_idx ON inventory_events.event (occurred_at) WHERE occurred_at > recorded_at;

-- The tolerance policy of a sku at a location (see recon_tolerance).
CREATE FUNCTION inventory_events.recon_tolerance_of(sku text, location text,
    OUT pct numeric, OUT units bigint, OUT value numeric, OUT auto_adjust_units bigint,
    OUT zero_tolerance boolean, OUT policy text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- PL/pgSQL for its cached plan: a run judges thousands of lines, and a
    -- SQL function called from FROM is planned again at every call.
    WITH it AS (
        SELECT i.abc_class, (i.lot_controlled OR i.regulated OR i.high_value) AS zero
          FROM inventory_events.item i WHERE i.sku = recon_tolerance_of.sku
    ), policies AS (
        SELECT t.pct, t.units, t.value, t.auto_adjust_units,
               CASE WHEN t.sku IS NOT NULL THEN 1 WHEN t.abc_class IS NOT NULL THEN 2
                    WHEN t.location IS NOT NULL THEN 3 ELSE 4 END AS rank,
               CASE WHEN t.sku IS NOT NULL THEN 'sku' WHEN t.abc_class IS NOT NULL THEN 'class ' || t.abc_class
                    WHEN t.location IS NOT NULL THEN 'location' ELSE 'default' END AS policy
          FROM inventory_events.recon_tolerance t
         WHERE t.sku = recon_tolerance_of.sku
            OR t.abc_class = (SELECT it.abc_class FROM it)
            OR t.location = recon_tolerance_of.location
            OR num_nonnulls(t.sku, t.abc_class, t.location) = 0
        UNION ALL
        -- The built-in class defaults, below every row.
        SELECT CASE (SELECT it.abc_class FROM it) WHEN 'A' THEN 1 WHEN 'B' THEN 3 WHEN 'C' THEN 5 END,
               CASE WHEN (SELECT it.abc_class FROM it) IS NULL THEN 0 END, NULL, NULL, 5,
               CASE WHEN (SELECT it.abc_class FROM it) IS NULL THEN 'built-in exact'
                    ELSE 'built-in class ' || (SELECT it.abc_class FROM it) END
    )
    SELECT CASE WHEN z.zero THEN NULL ELSE p.pct END,
           CASE WHEN z.zero THEN 0 ELSE p.units END,
           CASE WHEN z.zero THEN NULL ELSE p.value END,
           CASE WHEN z.zero THEN NULL ELSE p.auto_adjust_units END,
           z.zero,
           CASE WHEN z.zero THEN 'zero tolerance (lot-controlled, regulated or high-value item)' ELSE p.policy END
      INTO pct, units, value, auto_adjust_units, zero_tolerance, policy
      FROM (SELECT * FROM policies ORDER BY rank LIMIT 1) p,
           (SELECT coalesce((SELECT it.zero FROM it), false) AS zero) z;
END;
$$;
COMMENT ON FUNCTION inventory_events.recon_tolerance_of(text, text) IS
  'The tolerance that applies to a sku at a location: sku, ABC class, location, default, built-in class default';

-- Whether a difference is within a tolerance: within every limit it sets
-- (percent of ours, units, value at the item's cost); with no limit set,
-- only no difference is.
CREATE FUNCTION inventory_events.recon_within(variance bigint, ours bigint, unit_cost numeric,
                                              pct numeric, units bigint, value numeric)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN variance = 0
    OR (num_nonnulls(pct, units, value) > 0
        AND (pct IS NULL OR abs(variance) <= abs(coalesce(ours, 0)) * pct / 100)
        AND (units IS NULL OR abs(variance) <= units)
        AND (value IS NULL OR unit_cost IS NULL OR abs(variance) * unit_cost <= value));

-- The hints of one line: what the log says about its difference, with the
-- events (or lines) behind each. Each hint: {"hint", "qty", "explains",
-- "events" | "line_no" | ...}; "explains" hints make up the explained part.
CREATE FUNCTION inventory_events.recon_hints(measure inventory_events.recon_measure, as_of timestamptz,
                                             run_created timestamptz, sku text, location text, lot text,
                                             pos inventory_events.stock_position, ours bigint, theirs bigint,
                                             variance bigint, known jsonb, from_run boolean)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    hints     jsonb := coalesce(known, '[]');
    b         record;
    late      record;
    one       record;
    f         record;
    evidence  bigint[];
    -- The one stream of the line, when it has one (a line over all lots of
    -- a sku without lots): its events are read newest first by version,
    -- through the stream's index, instead of all the pair's events.
    stream    text := lot;
    -- Newest first: by version within one stream (its index, read
    -- backwards), by id across the lots of a pair.
    newest_first  text;
BEGIN
    IF variance IS NULL OR variance = 0 OR pos IS NULL THEN
        RETURN hints;
    END IF;
    IF stream IS NULL THEN
        SELECT min(s.lot) INTO stream FROM inventory_events.stock s
         WHERE s.sku = recon_hints.sku AND s.location = recon_hints.location
        HAVING count(*) = 1;
    END IF;
    newest_first := CASE WHEN stream IS NULL THEN 'id' ELSE 'version' END;
    -- Buckets at the cut-off that the source may count otherwise: stock in
    -- flight (picked not shipped, transfers in transit, returns not put
    -- away) and status mappings (damaged, reserved).
    FOR b IN
        SELECT x.kind, x.bucket, x.qty FROM (VALUES
            ('in_flight', 'picked'::inventory_events.bucket, CASE WHEN measure = 'on_hand' THEN -inventory_events.picked(pos) END),
            ('in_flight', 'in_transit', CASE WHEN measure IN ('on_hand', 'available') THEN inventory_events.in_transit(pos) END),
            ('in_flight', 'quarantine', CASE WHEN measure = 'on_hand' THEN -inventory_events.quarantine(pos)
                                             ELSE inventory_events.quarantine(pos) END),
            ('status_mapping', 'damaged', CASE WHEN measure = 'on_hand' THEN -inventory_events.damaged(pos)
                                               ELSE inventory_events.damaged(pos) END),
            ('status_mapping', 'reserved', CASE WHEN measure = 'available' THEN inventory_events.reserved(pos) END)
        ) x(kind, bucket, qty)
        WHERE x.qty IS NOT NULL AND x.qty <> 0 AND sign(x.qty) = sign(variance) AND abs(x.qty) <= abs(variance)
    LOOP
        EXECUTE format($q$
            SELECT array_agg(e.id ORDER BY e.id DESC) FROM (
                SELECT e.id FROM inventory_events.event e
                 WHERE e.sku = $1 AND e.location = $2 AND ($3 IS NULL OR e.lot = $3)
                   AND e.to_bucket = $4 AND e.occurred_at <= $5
                 ORDER BY e.%I DESC LIMIT 10) e$q$, newest_first)
           INTO evidence USING sku, location, stream, b.bucket, as_of;
        hints := hints || jsonb_build_object('hint', b.kind, 'bucket', b.bucket, 'qty', b.qty, 'explains', true,
                                             'events', coalesce(to_jsonb(evidence), '[]'));
    END LOOP;

    -- Events that occurred before the cut-off but were recorded after it
    -- (they count in ours; the source may not have had them). A run finds
    -- them for all its lines at once (from_run); a new version here.
    IF NOT from_run THEN
    SELECT coalesce(sum(CASE WHEN measure = 'available' THEN inventory_events.available(e.effect)
                             ELSE inventory_events.on_hand(e.effect) END), 0)::bigint AS qty,
           array_agg(e.id ORDER BY e.id) AS ids
      INTO late
      FROM inventory_events.event e
     WHERE e.recorded_at > as_of AND e.occurred_at <= as_of
       AND e.sku = recon_hints.sku AND e.location = recon_hints.location
       AND (stream IS NULL OR e.lot = stream);
    IF late.ids IS NOT NULL AND late.qty <> 0 THEN
        hints := hints || jsonb_build_object('hint', 'late_event', 'qty', -late.qty,
                                             'explains', -late.qty = variance OR
                                                         (sign(-late.qty) = sign(variance) AND abs(late.qty) <= abs(variance)),
                                             'recorded_after_run', EXISTS (
                                                 SELECT FROM inventory_events.event e
                                                  WHERE e.id = ANY (late.ids) AND e.recorded_at > run_created),
                                             'events', to_jsonb(late.ids[1:10]));
    END IF;
    END IF;

    -- One event of the day before the cut-off of exactly the difference: a
    -- duplicate here or a message the source missed (or the other way
    -- round). A run finds them for all its lines at once.
    IF NOT from_run THEN
    EXECUTE format($q$
        SELECT e.id, e.event_type FROM (
            SELECT e.id, e.event_type, e.effect FROM inventory_events.event e
             WHERE e.sku = $1 AND e.location = $2 AND ($3 IS NULL OR e.lot = $3) AND e.occurred_at <= $4
               AND e.occurred_at > $4 - interval '1 day'
             ORDER BY e.%I DESC LIMIT 200) e
         WHERE abs(CASE WHEN $5 = 'available' THEN inventory_events.available(e.effect)
                        ELSE inventory_events.on_hand(e.effect) END) = abs($6)
         ORDER BY e.id DESC LIMIT 1$q$, newest_first)
       INTO one USING sku, location, stream, as_of, measure, variance;
    IF one.id IS NOT NULL THEN
        hints := hints || jsonb_build_object('hint', 'one_event', 'qty', variance, 'explains', false,
                                             'event_type', one.event_type, 'events', jsonb_build_array(one.id));
    END IF;
    END IF;

    -- A unit of measure: cases reported as eaches (or eaches as cases), or a
    -- difference that is a whole number of cases.
    FOR f IN SELECT u.uom, u.factor FROM inventory_events.item_uom u
              WHERE u.sku = recon_hints.sku AND u.factor > 1 ORDER BY u.factor DESC
    LOOP
        IF ours <> 0 AND (theirs::numeric * f.factor = ours OR ours::numeric * f.factor = theirs) THEN
            hints := hints || jsonb_build_object('hint', 'uom_factor', 'uom', f.uom, 'factor', f.factor,
                                                 'qty', variance, 'explains', true,
                                                 'detail', CASE WHEN theirs::numeric * f.factor = ours
                                                                THEN 'the source counted ' || f.uom || ' as base units'
                                                                ELSE 'the source counted base units as ' || f.uom END);
            EXIT;
        ELSIF variance % f.factor = 0 THEN
            hints := hints || jsonb_build_object('hint', 'uom_factor', 'uom', f.uom, 'factor', f.factor,
                                                 'qty', variance, 'explains', false,
                                                 'detail', 'the difference is ' || variance / f.factor || ' ' || f.uom);
            EXIT;
        END IF;
    END LOOP;
    RETURN hints;
END;
$$;
COMMENT ON FUNCTION inventory_events.recon_hints IS
  'Root-cause hints of a reconciliation line, with the event ids behind each';

-- Classifies a compared line whose ours, theirs and hints are known: the
-- explained part (timing, status mapping, unit of measure), the residual
-- judged against the tolerance, severity and streak. (Unmapped and duplicate
-- lines are not compared: a run classifies them as it inserts them.) On
-- entry l.status is 'missing_in_source' for a line the full snapshot does
-- not list, anything else otherwise; l.streak is the streak of the
-- key's line in the source's previous run. Used by a run and by every new
-- version of a line.
CREATE FUNCTION inventory_events.recon_classify(l inventory_events.recon_line, zero_tolerance boolean,
                                                abc_class text, unit_cost numeric,
                                                pct numeric, units bigint, value numeric)
RETURNS inventory_events.recon_line
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    h      jsonb;
    kind   text;
    first  text;
    rest   bigint;
    qty    bigint;
BEGIN
    l.explained := 0;
    l.variance := l.theirs - l.ours;
    l.value := l.variance * unit_cost;
    rest := l.variance;
    -- Explanations in order: timing, then status mapping, then a unit of
    -- measure (all of the difference or nothing).
    FOREACH kind IN ARRAY ARRAY['in_flight', 'late_event', 'status_mapping', 'uom_factor'] LOOP
        FOR h IN SELECT x FROM jsonb_array_elements(l.hints) x
                  WHERE x->>'hint' = kind AND (x->>'explains')::boolean LOOP
            qty := (h->>'qty')::bigint;
            IF rest <> 0 AND sign(qty) = sign(rest) AND abs(qty) <= abs(rest)
               AND (kind <> 'uom_factor' OR qty = rest) THEN
                rest := rest - qty;
                first := coalesce(first, kind);
            END IF;
        END LOOP;
    END LOOP;
    l.explained := l.variance - rest;
    l.residual := rest;
    l.status := CASE
        WHEN l.variance = 0 THEN 'match'
        WHEN rest = 0 AND first IN ('in_flight', 'late_event') THEN 'timing'
        WHEN rest = 0 AND first = 'status_mapping' THEN 'status_mapping'
        WHEN rest = 0 AND first = 'uom_factor' THEN 'uom_suspect'
        WHEN l.status = 'missing_in_source' THEN 'missing_in_source'
        WHEN l.ours = 0 THEN 'missing_here'
        WHEN NOT zero_tolerance AND inventory_events.recon_within(rest, l.ours, unit_cost, pct, units, value)
             THEN 'within_tolerance'
        ELSE 'out_of_tolerance' END::inventory_events.recon_status;
    l.exceeds_tolerance := rest <> 0 AND l.status IN ('out_of_tolerance', 'missing_here', 'missing_in_source')
                           AND (zero_tolerance OR NOT inventory_events.recon_within(rest, l.ours, unit_cost, pct, units, value));
    l.streak := CASE WHEN l.exceeds_tolerance THEN coalesce(l.streak, 0) + 1 ELSE 0 END;
    l.severity := CASE
        WHEN l.status IN ('match', 'timing') THEN 'none'
        WHEN NOT l.exceeds_tolerance THEN 'info'
        WHEN zero_tolerance OR abc_class = 'A' OR l.streak >= 3 THEN 'critical'
        ELSE 'warning' END;
    RETURN l;
END;
$$;
COMMENT ON FUNCTION inventory_events.recon_classify IS
  'Status, explained part, residual, tolerance, severity and streak of a reconciliation line';

-- The streak of a key in the latest earlier run of the source that lists it.
CREATE FUNCTION inventory_events.recon_previous_streak(l inventory_events.recon_line)
RETURNS integer
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT coalesce((
        SELECT p.streak FROM inventory_events.recon_line p
          JOIN inventory_events.recon_run pr ON pr.id = p.run_id
          JOIN inventory_events.recon_run r ON r.id = l.run_id
         WHERE p.current AND p.sku = l.sku AND p.location = l.location AND p.lot IS NOT DISTINCT FROM l.lot
           AND pr.source = r.source AND p.run_id < l.run_id
         ORDER BY p.run_id DESC LIMIT 1), 0);
END;

-- Hints and classification of one line (see recon_classify); l.status on
-- entry as recon_classify wants it. from_run: a run has found the line's
-- late events and one-event difference with all the others' and put their
-- hints in l.hints.
CREATE FUNCTION inventory_events.recon_judge(l inventory_events.recon_line, r inventory_events.recon_run,
                                             src inventory_events.recon_source, from_run boolean)
RETURNS inventory_events.recon_line
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    it   inventory_events.item;
    tol  record;
    pub  record;
BEGIN
    SELECT * INTO it FROM inventory_events.item WHERE sku = l.sku;
    SELECT * INTO tol FROM inventory_events.recon_tolerance_of(l.sku, nullif(l.location, ''));
    IF l.theirs IS DISTINCT FROM l.ours THEN
        IF r.measure = 'channel' THEN
            l.hints := '[]';
            -- What the channel was last told before the cut-off, and whether
            -- anything was published to it since: nothing since and another
            -- value shown means the listing was edited on the channel.
            SELECT p.seq, p.available, p.published_at,
                   (SELECT q.available FROM inventory_events.publication q
                     WHERE q.channel = p.channel AND q.sku = p.sku AND q.seq < p.seq
                     ORDER BY q.seq DESC LIMIT 1) AS before,
                   NOT EXISTS (SELECT FROM inventory_events.publication q
                                WHERE q.channel = p.channel AND q.sku = p.sku AND q.seq > p.seq) AS last
              INTO pub
              FROM inventory_events.publication p
             WHERE p.channel = src.channel AND p.sku = l.sku AND p.published_at <= r.as_of
             ORDER BY p.seq DESC LIMIT 1;
            IF FOUND AND pub.before = l.theirs AND pub.published_at > r.as_of - interval '5 minutes' THEN
                l.hints := l.hints || jsonb_build_object('hint', 'in_flight', 'qty', l.theirs - l.ours, 'explains', true,
                                                         'detail', 'published shortly before the cut-off; the channel still showed the value before',
                                                         'publication_seq', pub.seq);
            ELSIF FOUND AND pub.last THEN
                l.hints := l.hints || jsonb_build_object('hint', 'channel_edit', 'qty', l.theirs - l.ours, 'explains', false,
                                                         'detail', 'the channel shows another value and nothing was published to it since',
                                                         'publication_seq', pub.seq);
            END IF;
        ELSE
            l.hints := inventory_events.recon_hints(r.measure, r.as_of, r.created_at, l.sku, l.location, l.lot,
                                                    l.ours_position, l.ours, l.theirs, l.theirs - l.ours,
                                                    l.hints, from_run);
        END IF;
    END IF;
    l.streak := 0;
    l := inventory_events.recon_classify(l, tol.zero_tolerance, it.abc_class, it.unit_cost, tol.pct, tol.units, tol.value);
    -- The streak only for a line beyond tolerance (classifying again with it
    -- gives the same status: it decides the severity).
    IF l.exceeds_tolerance THEN
        l.streak := inventory_events.recon_previous_streak(l);
        l := inventory_events.recon_classify(l, tol.zero_tolerance, it.abc_class, it.unit_cost, tol.pct, tol.units, tol.value);
    END IF;
    RETURN l;
END;
$$;

-- Opens the exception of a line beyond its tolerance, or closes it.
CREATE FUNCTION inventory_events.recon_track_exception(l inventory_events.recon_line)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r    inventory_events.recon_run;
    line_ref  text := format('recon:%s:%s', l.run_id, l.line_no);
BEGIN
    -- Open while unresolved or awaiting its recount.
    IF l.current AND l.exceeds_tolerance AND (l.resolution IS NULL OR l.resolution = 'recount') THEN
        SELECT * INTO r FROM inventory_events.recon_run WHERE id = l.run_id;
        INSERT INTO inventory_events.exception (kind, sku, location, channel, ref, detail)
        SELECT CASE WHEN r.measure = 'channel' THEN 'channel_drift' ELSE 'recon_variance' END,
               l.sku, nullif(l.location, ''), s.channel, line_ref,
               format('%s %s: ours %s, theirs %s as of %s (%s, residual %s, severity %s%s)',
                      r.source, l.status, l.ours, l.theirs, r.as_of, l.sku || coalesce('/' || nullif(l.location, ''), '')
                      || coalesce(' lot ' || l.lot, ''), l.residual, l.severity,
                      CASE WHEN l.streak > 1 THEN format(', %s runs in a row', l.streak) ELSE '' END)
          FROM inventory_events.recon_source s
         WHERE s.code = r.source
           AND NOT EXISTS (SELECT FROM inventory_events.exception x
                            WHERE x.ref = line_ref AND x.resolved_at IS NULL
                              AND x.kind IN ('recon_variance', 'channel_drift'));
    ELSE
        UPDATE inventory_events.exception x SET resolved_at = now()
         WHERE x.ref = line_ref AND x.resolved_at IS NULL
           AND x.kind IN ('recon_variance', 'channel_drift');
    END IF;
END;
$$;

-- The open exceptions of reconciliation lines by their ref (recon:<run>:<line>).
-- Only those: other kinds take their ref from events, which may be too long
-- for an index entry.
CREATE INDEX exception_open_recon_ref_idx ON inventory_events.exception (ref)
    WHERE resolved_at IS NULL AND kind IN ('recon_variance', 'channel_drift');

-- A run over the rows staged in recon_staging by this transaction (both
-- reconcile() and reconcile_staged() end here, so a snapshot has one checksum
-- whichever way it came); returns the run id.
CREATE FUNCTION inventory_events.recon_run_staged(source text, as_of timestamptz, "full" boolean,
                                                  external_id text)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    src       inventory_events.recon_source;
    run       inventory_events.recon_run;
    existing  inventory_events.recon_run;
    is_full   boolean;
    scope     text[];
    n         bigint;
    digest    text;
    l         inventory_events.recon_line;
    tol       record;
    xid       xid8 := pg_current_xact_id();
    nestloop  text;
    mem       text;
    run_xmin  xid8;
BEGIN
    -- One run of a source at a time: a run supersedes the open lines of the
    -- source's earlier runs, which it must see committed.
    SELECT * INTO src FROM inventory_events.recon_source s WHERE s.code = recon_run_staged.source
       FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown reconciliation source "%"', source
              USING ERRCODE = 'foreign_key_violation',
                    HINT = 'Add it to inventory_events.recon_source first.';
    END IF;
    IF as_of IS NULL THEN
        RAISE EXCEPTION 'a reconciliation needs a cut-off time' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF as_of > clock_timestamp() THEN
        RAISE EXCEPTION 'the cut-off % is in the future', as_of
              USING ERRCODE = 'invalid_parameter_value',
                    HINT = 'A snapshot states what the source held at a past time; send its cut-off.';
    END IF;
    -- Ours as of the cut-off is the stock less the events that occurred after
    -- it: archived ones would be missed.
    IF as_of < inventory_events.archive_boundary() THEN
        RAISE EXCEPTION 'the event log before % is archived', inventory_events.archive_boundary()
              USING ERRCODE = 'invalid_parameter_value',
                    DETAIL = format('A reconciliation as of %s needs events of archived partitions.', as_of),
                    HINT = format('Send a cut-off at %s or later, or attach the archived partitions again with inventory_events.attach_archived().',
                                  inventory_events.archive_boundary());
    END IF;
    IF NOT EXISTS (SELECT FROM inventory_events.event e WHERE e.occurred_at <= recon_run_staged.as_of) THEN
        RAISE EXCEPTION 'the cut-off % is before the start of the event log', as_of
              USING ERRCODE = 'invalid_parameter_value',
                    DETAIL = 'No event occurred at or before it: there is nothing to compare with.',
                    HINT = 'Record the opening balances (received or counted events) before reconciling.';
    END IF;
    IF octet_length(external_id) > 1000 THEN
        RAISE EXCEPTION 'the external id of a reconciliation is longer than 1000 bytes'
              USING ERRCODE = 'string_data_right_truncation',
                    HINT = 'It is a unique index entry: send the snapshot''s own short id.';
    END IF;
    is_full := coalesce("full", true) AND src.snapshot = 'full';
    -- The lines and their checksum (with the cut-off as an instant and the
    -- kind): a digest per line, then of the digests, 32 bytes a line in
    -- memory whatever the lines hold.
    SELECT count(*),
           md5(concat_ws('|', extract(epoch FROM as_of), coalesce("full", true),
                         string_agg(md5(concat_ws(',', quote_nullable(s.sku), quote_nullable(s.location),
                                                  quote_nullable(s.lot), s.qty, quote_nullable(s.uom),
                                                  s.serials::text)), '' ORDER BY s.id)))
      INTO n, digest
      FROM inventory_events.recon_staging s WHERE s.load_xid = xid;
    -- Every event below this is in the comparison's snapshot (taken after
    -- it) or will never be; an event above may commit while this run is
    -- not yet visible to the worker (see the checkpoint below).
    run_xmin := inventory_events.log_xmin();
    -- Late events are looked for from before this run's snapshot on: the
    -- worker may have read past an event that committed after the snapshot
    -- while this run's lines were not yet visible to it, so the checkpoint
    -- goes back to the snapshot's horizon (never forward). Reading an event
    -- again is harmless: a line gets a new version only when ours changes.
    -- The row lock, taken before this run locks any line, also makes the
    -- worker (which locks the checkpoint, then lines) wait for its commit.
    INSERT INTO inventory_events.recon_checkpoint AS c (checkpoint, updated_at)
    VALUES (format('%s:%s', run_xmin::text::numeric - 1, 9223372036854775807), now())
    ON CONFLICT (only_row) DO UPDATE
       SET checkpoint = excluded.checkpoint, updated_at = excluded.updated_at
     WHERE (split_part(c.checkpoint, ':', 1)::numeric, split_part(c.checkpoint, ':', 2)::numeric)
           > (split_part(excluded.checkpoint, ':', 1)::numeric, split_part(excluded.checkpoint, ':', 2)::numeric);
    -- The comparison sorts and hashes every line: at least 64 MB for it, so
    -- that a 100k-line snapshot does not spill to disk (restored after).
    mem := current_setting('work_mem');
    IF pg_size_bytes(mem) < 64 * 1024 * 1024 THEN
        PERFORM set_config('work_mem', '64MB', true);
    END IF;

    -- Idempotent: the same snapshot again returns the run made for it.
    INSERT INTO inventory_events.recon_run AS r (source, measure, as_of, "full", external_id, checksum, lines)
    VALUES (src.code, src.measure, as_of, is_full, external_id, digest, n)
    ON CONFLICT DO NOTHING
    RETURNING * INTO run;
    IF run.id IS NULL THEN
        SELECT * INTO existing FROM inventory_events.recon_run r
         WHERE r.source = src.code
           AND (CASE WHEN recon_run_staged.external_id IS NULL THEN r.external_id IS NULL AND r.checksum = digest
                     ELSE r.external_id = recon_run_staged.external_id END);
        DELETE FROM inventory_events.recon_staging s WHERE s.load_xid = xid;
        IF existing.checksum <> digest THEN
            RAISE EXCEPTION 'reconciliation "%" of source "%" was sent before with other content', external_id, src.code
                  USING ERRCODE = 'IE003',
                        DETAIL = format('Run %s has another cut-off, kind or lines.', existing.id),
                        HINT = 'A corrected snapshot needs an external id of its own.';
        END IF;
        RETURN existing.id;
    END IF;

    IF src.measure = 'channel' THEN
        -- What the channel was told as of the cut-off, per sku.
        INSERT INTO inventory_events.recon_line (run_id, line_no, sku, location, lot, uom, reported_qty, ours, theirs,
                                                 variance, residual, status, severity, hints)
        WITH staged AS (
            SELECT row_number() OVER (ORDER BY s.id)::integer AS line_no, s.sku, s.qty, s.uom,
                   i.sku IS NOT NULL AS known_sku,
                   CASE WHEN s.uom IS NULL OR s.uom = i.base_uom THEN 1 ELSE u.factor END AS factor,
                   count(*) OVER (PARTITION BY s.sku) AS copies
              FROM inventory_events.recon_staging s
              LEFT JOIN inventory_events.item i ON i.sku = s.sku
              LEFT JOIN inventory_events.item_uom u ON u.sku = s.sku AND u.uom = s.uom
             WHERE s.load_xid = xid
        ), shown AS (
            SELECT DISTINCT ON (p.sku) p.sku, p.available
              FROM inventory_events.publication p
             WHERE p.channel = src.channel AND p.published_at <= run.as_of
             ORDER BY p.sku, p.seq DESC
        ), judged AS (
            SELECT t.line_no, coalesce(t.sku, o.sku) AS sku, t.uom, t.qty, t.known_sku,
                   CASE WHEN t.sku IS NOT NULL AND NOT (t.known_sku AND t.factor IS NOT NULL) THEN 'unmapped'
                        WHEN t.copies > 1 THEN 'duplicate'
                        WHEN t.sku IS NULL THEN 'missing_in_source'
                        ELSE 'match' END::inventory_events.recon_status AS status,
                   CASE WHEN t.sku IS NULL OR (t.known_sku AND t.factor IS NOT NULL AND t.copies = 1)
                        THEN coalesce(o.available, 0) END AS ours_v,
                   CASE WHEN t.sku IS NULL THEN 0
                        WHEN t.known_sku AND t.factor IS NOT NULL AND t.copies = 1 THEN t.qty * t.factor END AS theirs_v
              FROM staged t
              FULL JOIN shown o ON o.sku = t.sku
             WHERE t.sku IS NOT NULL OR (is_full AND o.available <> 0)
        )
        SELECT run.id, coalesce(j.line_no, n + row_number() OVER (PARTITION BY j.line_no IS NULL ORDER BY j.sku))::integer,
               j.sku, '', NULL, j.uom, j.qty, j.ours_v, j.theirs_v,
               CASE WHEN j.ours_v = j.theirs_v THEN 0 END,
               CASE WHEN j.ours_v = j.theirs_v THEN 0 END,
               j.status,
               CASE WHEN j.status IN ('unmapped', 'duplicate') THEN 'info' ELSE 'none' END,
               CASE WHEN j.status = 'unmapped' THEN
                        jsonb_build_array(jsonb_build_object('hint', 'unmapped', 'explains', false, 'detail',
                            CASE WHEN NOT j.known_sku THEN 'unknown sku'
                                 ELSE format('unknown unit of measure %s for the item', j.uom) END))
                    ELSE '[]' END
          FROM judged j;
    ELSE
        scope := CASE WHEN is_full THEN coalesce(src.locations,
                     (SELECT array_agg(DISTINCT s.location) FROM inventory_events.recon_staging s
                       WHERE s.load_xid = xid AND s.location IS NOT NULL))
                 ELSE '{}' END;
        INSERT INTO inventory_events.recon_line (run_id, line_no, sku, location, lot, uom, reported_qty, ours, theirs,
                                                 variance, residual, status, severity, ours_position, hints)
        WITH staged AS (
            SELECT row_number() OVER (ORDER BY s.id)::integer AS line_no, s.sku, coalesce(s.location, '') AS location,
                   s.lot, s.qty, s.uom, i.sku IS NOT NULL AS known_sku, loc.code IS NOT NULL AS known_location,
                   CASE WHEN s.uom IS NULL OR s.uom = i.base_uom THEN 1 ELSE u.factor END AS factor
              FROM inventory_events.recon_staging s
              LEFT JOIN inventory_events.item i ON i.sku = s.sku
              LEFT JOIN inventory_events.location loc ON loc.code = s.location
              LEFT JOIN inventory_events.item_uom u ON u.sku = s.sku AND u.uom = s.uom
             WHERE s.load_xid = xid
        ), pairs AS (
            -- A pair (sku, location) is compared by lot when a line of it names one.
            SELECT st.sku, st.location, bool_or(st.lot IS NOT NULL) AS by_lot FROM staged st GROUP BY 1, 2
        ), theirs AS (
            SELECT st.*, p.by_lot, CASE WHEN p.by_lot THEN coalesce(st.lot, '') END AS lot_key,
                   -- (byte order: a partition needs equality, not the collation's order)
                   count(*) OVER (PARTITION BY st.sku COLLATE "C", st.location COLLATE "C",
                                  CASE WHEN p.by_lot THEN coalesce(st.lot, '') END COLLATE "C") AS copies
              FROM staged st JOIN pairs p USING (sku, location)
        ), recorded_after AS (
            -- The events recorded after the day before the cut-off (the BRIN
            -- index on recorded_at finds them at the end of the table), and
            -- the few recorded before that with a business time after the
            -- cut-off (a partial index). Those that occurred after the
            -- cut-off make ours as of it differ from now; the others are the
            -- evidence of late events and of one-event differences.
            SELECT e.sku, e.location, e.lot, e.id, e.event_type, e.effect,
                   e.occurred_at > run.as_of AS after_cutoff,
                   e.occurred_at <= run.as_of AND e.recorded_at > run.as_of AS late,
                   e.occurred_at <= run.as_of AND e.occurred_at > run.as_of - interval '1 day' AS recent
              FROM inventory_events.event e
             WHERE e.recorded_at > run.as_of - interval '1 day'
            UNION ALL
            SELECT e.sku, e.location, e.lot, e.id, e.event_type, e.effect, true, false, false
              FROM inventory_events.event e
             WHERE e.occurred_at > e.recorded_at AND e.recorded_at <= run.as_of - interval '1 day'
               AND e.occurred_at > run.as_of
        ), after_cutoff AS (
            SELECT a.sku, a.location, a.lot, inventory_events.sum(a.effect) AS delta
              FROM recorded_after a WHERE a.after_cutoff
             GROUP BY 1, 2, 3
        ), late AS (
            -- Recorded after the cut-off, occurred before it: late events,
            -- per key (evidence for the hints).
            SELECT a.sku, a.location, CASE WHEN p.by_lot THEN a.lot END AS lot_key,
                   sum(CASE WHEN src.measure = 'available' THEN inventory_events.available(a.effect)
                            ELSE inventory_events.on_hand(a.effect) END)::bigint AS qty,
                   (array_agg(a.id ORDER BY a.id))[1:10] AS ids
              FROM recorded_after a
              LEFT JOIN pairs p ON p.sku = a.sku AND p.location = a.location
             WHERE a.late
             GROUP BY 1, 2, 3
        ), recent_one AS (
            -- Per key and size, the latest event of the day before the
            -- cut-off: a difference of exactly its size is a duplicate here
            -- or a message the source missed.
            SELECT DISTINCT ON (1, 2, 3, 4) a.sku, a.location, CASE WHEN p.by_lot THEN a.lot END AS lot_key,
                   abs(CASE WHEN src.measure = 'available' THEN inventory_events.available(a.effect)
                            ELSE inventory_events.on_hand(a.effect) END) AS size,
                   a.id, a.event_type
              FROM recorded_after a
              LEFT JOIN pairs p ON p.sku = a.sku AND p.location = a.location
             WHERE a.recent
             ORDER BY 1, 2, 3, 4, a.id DESC
        ), streams AS (
            SELECT s.sku, s.location, s.lot,
                   inventory_events.position_of(s.*) OPERATOR(inventory_events.-)
                       coalesce(a.delta, inventory_events.stock_position()) AS pos
              FROM inventory_events.stock s
              LEFT JOIN after_cutoff a ON a.sku = s.sku AND a.location = s.location AND a.lot = s.lot
             WHERE s.location = ANY (scope)
                OR (s.sku, s.location) IN (SELECT p.sku, p.location FROM pairs p)
        ), ours AS (
            SELECT st.sku, st.location, coalesce(p.by_lot, false) AS by_lot,
                   CASE WHEN p.by_lot THEN st.lot END AS lot_key,
                   inventory_events.sum(st.pos) AS pos
              FROM streams st
              LEFT JOIN pairs p ON p.sku = st.sku AND p.location = st.location
             GROUP BY 1, 2, 3, 4
        ), compared AS (
            SELECT t.line_no, coalesce(t.sku, o.sku) AS sku, coalesce(t.location, o.location) AS location,
                   -- By lot, a line without one is the stream without a lot
                   -- (''): null only ever means all lots summed.
                   CASE WHEN t.sku IS NOT NULL THEN CASE WHEN t.by_lot THEN t.lot_key ELSE t.lot END
                        ELSE o.lot_key END AS lot,
                   coalesce(t.lot_key, o.lot_key) AS lot_key,
                   t.uom, t.qty, t.known_sku, t.known_location, t.factor,
                   coalesce(t.copies, 1) AS copies, t.sku IS NULL AS unlisted, o.pos,
                   CASE WHEN src.measure = 'available' THEN inventory_events.available(o.pos)
                        ELSE inventory_events.on_hand(o.pos) END AS ours_qty
              FROM theirs t
              FULL JOIN ours o
                ON o.sku = t.sku AND o.location = t.location AND o.by_lot = t.by_lot
               AND coalesce(o.lot_key, '') = coalesce(t.lot_key, '')
        ), judged AS (
            SELECT c.*,
                   CASE WHEN NOT c.unlisted AND NOT (c.known_sku AND c.known_location AND c.factor IS NOT NULL)
                        THEN 'unmapped'
                        WHEN c.copies > 1 THEN 'duplicate'
                        WHEN c.unlisted THEN 'missing_in_source'
                        ELSE 'match' END::inventory_events.recon_status AS status,
                   CASE WHEN c.unlisted THEN coalesce(c.ours_qty, 0)
                        WHEN c.known_sku AND c.known_location AND c.factor IS NOT NULL AND c.copies = 1
                        THEN coalesce(c.ours_qty, 0) END AS ours_v,
                   CASE WHEN c.unlisted THEN 0
                        WHEN c.known_sku AND c.known_location AND c.factor IS NOT NULL AND c.copies = 1
                        THEN c.qty * c.factor END AS theirs_v
              FROM compared c
             WHERE NOT c.unlisted OR (is_full AND c.ours_qty <> 0)
        ), numbered AS (
            -- Lines the snapshot does not list are numbered after its own,
            -- in key order (a window over them only, not every line).
            SELECT j.*, j.line_no AS no FROM judged j WHERE NOT j.unlisted
            UNION ALL
            SELECT j.*, (n + row_number() OVER (ORDER BY j.sku, j.location, j.lot))::integer
              FROM judged j WHERE j.unlisted
        )
        SELECT run.id, j.no,
               j.sku, j.location, j.lot, j.uom, j.qty, j.ours_v, j.theirs_v,
               CASE WHEN j.ours_v = j.theirs_v THEN 0 END,
               CASE WHEN j.ours_v = j.theirs_v THEN 0 END,
               j.status,
               CASE WHEN j.status IN ('unmapped', 'duplicate') THEN 'info' ELSE 'none' END,
               j.pos,
               CASE WHEN j.status = 'unmapped' THEN
                        jsonb_build_array(jsonb_build_object('hint', 'unmapped', 'explains', false, 'detail',
                            CASE WHEN NOT j.known_sku THEN 'unknown sku'
                                 WHEN NOT j.known_location THEN 'unknown location'
                                 ELSE format('unknown unit of measure %s for the item', j.uom) END))
                    WHEN j.status <> 'duplicate' AND j.ours_v <> j.theirs_v THEN
                        CASE WHEN lt.qty <> 0 THEN
                            jsonb_build_array(jsonb_build_object('hint', 'late_event', 'qty', -lt.qty,
                                'explains', sign(-lt.qty) = sign(j.theirs_v - j.ours_v) AND abs(lt.qty) <= abs(j.theirs_v - j.ours_v),
                                'recorded_after_run', false, 'events', to_jsonb(lt.ids)))
                             ELSE '[]' END
                        || CASE WHEN ro.id IS NOT NULL THEN
                            jsonb_build_array(jsonb_build_object('hint', 'one_event', 'qty', j.theirs_v - j.ours_v,
                                'explains', false, 'event_type', ro.event_type, 'events', jsonb_build_array(ro.id)))
                                ELSE '[]' END
                    ELSE '[]' END
          FROM numbered j
          LEFT JOIN late lt
            ON lt.sku = j.sku AND lt.location = j.location AND coalesce(lt.lot_key, '') = coalesce(j.lot_key, '')
           AND (lt.lot_key IS NULL) = (j.lot_key IS NULL)
          LEFT JOIN recent_one ro
            ON ro.sku = j.sku AND ro.location = j.location AND coalesce(ro.lot_key, '') = coalesce(j.lot_key, '')
           AND (ro.lot_key IS NULL) = (j.lot_key IS NULL) AND ro.size = abs(j.theirs_v - j.ours_v);

        -- Lines that list serials: where each serial of their skus was as of
        -- the cut-off (its last move by then), against the list: those on
        -- hand there (not in transit to it). A source that measures available
        -- is compared with the shelf (available and reserved units: a
        -- reservation names no serial).
        IF EXISTS (SELECT FROM inventory_events.recon_staging s WHERE s.load_xid = xid AND s.serials IS NOT NULL) THEN
            WITH given AS (
                SELECT row_number() OVER (ORDER BY s.id)::integer AS line_no, s.serials
                  FROM inventory_events.recon_staging s WHERE s.load_xid = xid
            ), listing AS (
                SELECT x.id, x.sku, x.location, x.lot, g.serials
                  FROM given g
                  JOIN inventory_events.recon_line x ON x.run_id = run.id AND x.line_no = g.line_no
                 WHERE g.serials IS NOT NULL AND x.status NOT IN ('unmapped', 'duplicate')
            ), placed AS (
                SELECT DISTINCT ON (h.sku, h.serial) h.sku, h.serial, h.location, h.bucket, e.lot
                  FROM inventory_events.serial_event h
                  JOIN inventory_events.event e ON e.id = h.event_id
                 WHERE h.sku IN (SELECT li.sku FROM listing li) AND e.occurred_at <= run.as_of
                 ORDER BY h.sku, h.serial, h.version DESC
            ), held AS (
                SELECT li.id, coalesce(array_agg(p.serial) FILTER (WHERE p.serial IS NOT NULL), '{}') AS serials
                  FROM listing li
                  LEFT JOIN placed p
                    ON p.sku = li.sku AND p.location = li.location AND (li.lot IS NULL OR p.lot = li.lot)
                   AND p.bucket IS NOT NULL AND p.bucket <> 'in_transit'
                   AND (src.measure <> 'available' OR p.bucket = 'available')
                 GROUP BY li.id
            )
            UPDATE inventory_events.recon_line x
               SET serials_missing = ARRAY(SELECT unnest(h.serials) EXCEPT SELECT unnest(li.serials) ORDER BY 1),
                   serials_unexpected = ARRAY(SELECT unnest(li.serials) EXCEPT SELECT unnest(h.serials) ORDER BY 1)
              FROM listing li JOIN held h ON h.id = li.id
             WHERE x.id = li.id;
        END IF;
    END IF;
    DELETE FROM inventory_events.recon_staging s WHERE s.load_xid = xid;
    PERFORM set_config('work_mem', mem, true);

    -- Matches are final as inserted; everything else is judged line by line.
    FOR l IN SELECT * FROM inventory_events.recon_line x
              WHERE x.run_id = run.id AND x.theirs IS DISTINCT FROM x.ours AND x.status NOT IN ('unmapped', 'duplicate')
              ORDER BY x.line_no
    LOOP
        l := inventory_events.recon_judge(l, run, src, true);
        UPDATE inventory_events.recon_line x
           SET variance = l.variance, explained = l.explained, residual = l.residual, value = l.value,
               status = l.status, exceeds_tolerance = l.exceeds_tolerance, severity = l.severity,
               streak = l.streak, hints = l.hints
         WHERE x.id = l.id;
    END LOOP;

    -- Equal and opposite differences at one location: two lots or two skus
    -- swapped. The run's lines have no statistics yet (a row, the planner
    -- thinks): without nested loops the pairs are found by hashing, not by
    -- comparing every line beyond tolerance with every other.
    nestloop := current_setting('enable_nestloop');
    PERFORM set_config('enable_nestloop', 'off', true);
    WITH open AS (
        SELECT z.id, z.line_no, z.sku, z.location, z.lot, z.residual FROM inventory_events.recon_line z
         WHERE z.run_id = run.id AND z.current AND z.exceeds_tolerance
    ), same AS (
        SELECT z.location, z.residual, count(*) AS n FROM open z GROUP BY 1, 2
    ), swap AS (
        SELECT DISTINCT ON (x.id) x.id, x.residual, y.line_no, y.sku, y.lot
          FROM open x
          JOIN open y ON y.location = x.location AND y.residual = -x.residual AND y.id <> x.id
          JOIN same sx ON sx.location = x.location AND sx.residual = x.residual
          JOIN same sy ON sy.location = x.location AND sy.residual = y.residual
         WHERE CASE WHEN x.sku = y.sku THEN x.lot IS DISTINCT FROM y.lot
                    -- Two skus only when the pair is the only one at the location.
                    ELSE sx.n = 1 AND sy.n = 1 END
         ORDER BY x.id, y.line_no
    )
    UPDATE inventory_events.recon_line x
       SET hints = x.hints || jsonb_build_object('hint', 'swap', 'qty', w.residual, 'explains', false,
                                                 'line_no', w.line_no, 'sku', w.sku, 'lot', w.lot)
      FROM swap w
     WHERE x.id = w.id;
    PERFORM set_config('enable_nestloop', nestloop, true);

    -- Serials listed by the source and ours as of the cut-off differ: a hint,
    -- also on a line whose quantities agree (units swapped for others).
    UPDATE inventory_events.recon_line x
       SET hints = x.hints || jsonb_build_object('hint', 'serials', 'missing', cardinality(x.serials_missing),
                                                 'unexpected', cardinality(x.serials_unexpected), 'explains', false)
     WHERE x.run_id = run.id AND (cardinality(x.serials_missing) > 0 OR cardinality(x.serials_unexpected) > 0);

    -- This run's lines supersede the open lines of the same keys in earlier
    -- runs of the source; the recounts of a line carry over.
    WITH old AS (
        UPDATE inventory_events.recon_line o
           SET resolution = 'superseded', resolved_at = now(), resolved_by = session_user
          FROM inventory_events.recon_run orun, inventory_events.recon_line nw
         WHERE orun.source = src.code AND orun.id < run.id AND o.run_id = orun.id
           AND o.current AND o.exceeds_tolerance AND (o.resolution IS NULL OR o.resolution = 'recount')
           AND nw.run_id = run.id AND nw.current
           AND nw.sku = o.sku AND nw.location = o.location AND nw.lot IS NOT DISTINCT FROM o.lot
        RETURNING o.run_id, o.line_no, nw.id AS new_id, o.recounts + (o.resolution = 'recount')::integer AS recounts
    ), closed AS (
        UPDATE inventory_events.exception x SET resolved_at = now()
          FROM old WHERE x.ref = format('recon:%s:%s', old.run_id, old.line_no) AND x.resolved_at IS NULL
                     AND x.kind IN ('recon_variance', 'channel_drift')
    )
    UPDATE inventory_events.recon_line x SET recounts = old.recounts FROM old WHERE x.id = old.new_id;

    FOR l IN SELECT * FROM inventory_events.recon_line x
              WHERE x.run_id = run.id AND x.current AND x.exceeds_tolerance ORDER BY x.line_no
    LOOP
        PERFORM inventory_events.recon_track_exception(l);
    END LOOP;

    -- Automatic adjustments: only a source that is right, within the
    -- auto-adjust policy, never an item without tolerance.
    IF src.auto_adjust AND src.authoritative = 'source' AND src.measure <> 'channel' THEN
        FOR l IN SELECT * FROM inventory_events.recon_line x
                  WHERE x.run_id = run.id AND x.current AND x.status = 'within_tolerance' ORDER BY x.line_no
        LOOP
            SELECT * INTO tol FROM inventory_events.recon_tolerance_of(l.sku, l.location);
            IF NOT tol.zero_tolerance AND tol.auto_adjust_units IS NOT NULL AND abs(l.residual) <= tol.auto_adjust_units THEN
                -- A line that cannot be adjusted (over several lots, say)
                -- stays for a person; the run goes on.
                BEGIN
                    PERFORM inventory_events.recon_adjust(l.id, 'auto_adjusted', 'within the auto-adjust policy');
                EXCEPTION WHEN invalid_parameter_value OR object_not_in_prerequisite_state THEN
                    NULL;
                END;
            END IF;
        END LOOP;
    END IF;
    RETURN run.id;
END;
$$;

-- A new version of a line: ours as of the cut-off again (after a late event
-- or an adjustment), judged again; the old version stays as it was, no
-- longer current. Returns the new version (the old one when ours is the same).
CREATE FUNCTION inventory_events.recon_new_version(old inventory_events.recon_line, reason text)
RETURNS inventory_events.recon_line
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r    inventory_events.recon_run;
    src  inventory_events.recon_source;
    l    inventory_events.recon_line;
    pos  inventory_events.stock_position;
BEGIN
    -- Locked and read again: a resolution or another re-evaluation may have
    -- made a new version since the caller read this one.
    SELECT * INTO l FROM inventory_events.recon_line x WHERE x.id = old.id AND x.current FOR UPDATE;
    IF NOT FOUND THEN
        RETURN old;
    END IF;
    old := l;
    SELECT * INTO r FROM inventory_events.recon_run WHERE id = old.run_id;
    SELECT * INTO src FROM inventory_events.recon_source WHERE code = r.source;
    IF old.status IN ('unmapped', 'duplicate') THEN
        RETURN old;
    END IF;
    IF r.measure = 'channel' THEN
        RETURN old;
    END IF;
    -- Each stream of the line from its newest snapshot that applies.
    SELECT inventory_events.sum(f."position") INTO pos
      FROM inventory_events.stock st
     CROSS JOIN LATERAL inventory_events.stream_fold(st.sku, st.location, st.lot, r.as_of) f
     WHERE st.sku = old.sku AND st.location = old.location AND (old.lot IS NULL OR st.lot = old.lot);
    pos := coalesce(pos, inventory_events.stock_position());
    l.ours := CASE WHEN r.measure = 'available' THEN inventory_events.available(pos) ELSE inventory_events.on_hand(pos) END;
    IF l.ours = old.ours THEN
        RETURN old;
    END IF;
    UPDATE inventory_events.recon_line x SET current = false WHERE x.id = old.id;
    l.id := NULL;
    l.version := old.version + 1;
    l.reason := reason;
    l.ours_position := pos;
    l.status := CASE WHEN old.reported_qty IS NULL THEN 'missing_in_source' ELSE 'match' END;
    l.hints := '[]';
    l.line_uuid := gen_random_uuid();
    l.created_at := now();
    l := inventory_events.recon_judge(l, r, src, false);
    IF reason = 'adjusted' THEN
        l.resolution := NULL;
        l.resolved_at := NULL;
        l.resolved_by := NULL;
        l.resolution_event_id := NULL;
    END IF;
    INSERT INTO inventory_events.recon_line (run_id, line_no, version, current, reason, sku, location, lot, uom,
                                             reported_qty, ours, theirs, variance, explained, residual, value, status,
                                             exceeds_tolerance, severity, streak, ours_position, hints, note, recounts,
                                             resolution, resolved_at, resolved_by, resolution_event_id, line_uuid, created_at,
                                             serials_missing, serials_unexpected)
    VALUES (l.run_id, l.line_no, l.version, true, l.reason, l.sku, l.location, l.lot, l.uom,
            l.reported_qty, l.ours, l.theirs, l.variance, l.explained, l.residual, l.value, l.status,
            l.exceeds_tolerance, l.severity, l.streak, l.ours_position, l.hints, l.note, l.recounts,
            l.resolution, l.resolved_at, l.resolved_by, l.resolution_event_id, l.line_uuid, l.created_at,
            l.serials_missing, l.serials_unexpected)
    RETURNING * INTO l;
    PERFORM inventory_events.recon_track_exception(l);
    RETURN l;
END;
$$;

-- The current version of a line, locked, or a clear error.
CREATE FUNCTION inventory_events.recon_open_line(line_id bigint)
RETURNS inventory_events.recon_line
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    l  inventory_events.recon_line;
BEGIN
    SELECT * INTO l FROM inventory_events.recon_line x WHERE x.id = line_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no reconciliation line %', line_id USING ERRCODE = 'no_data_found';
    END IF;
    IF NOT l.current THEN
        RAISE EXCEPTION 'reconciliation line % is not the current version of its line', line_id
              USING ERRCODE = 'object_not_in_prerequisite_state',
                    HINT = 'Resolve the current version (recon_variance() lists it).';
    END IF;
    IF l.resolution IS NOT NULL AND l.resolution <> 'recount' THEN
        RAISE EXCEPTION 'reconciliation line % is already resolved (%)', line_id, l.resolution
              USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    IF l.status IN ('match', 'unmapped', 'duplicate') THEN
        RAISE EXCEPTION 'reconciliation line % has nothing to resolve (%)', line_id, l.status
              USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    RETURN l;
END;
$$;

-- Adjusts ours to the source: a counted event as of the cut-off stating the
-- on-hand that removes the residual (the explained part is not a loss).
-- It refers to the line: correlation_id the run's, causation_id the line's.
CREATE FUNCTION inventory_events.recon_adjust(line_id bigint, resolution text, note text)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    l        inventory_events.recon_line := inventory_events.recon_open_line(line_id);
    r        inventory_events.recon_run;
    src      inventory_events.recon_source;
    lots     text[];
    stream   text;
    on_hand  bigint;
    ev       bigint;
BEGIN
    SELECT * INTO r FROM inventory_events.recon_run WHERE id = l.run_id;
    SELECT * INTO src FROM inventory_events.recon_source WHERE code = r.source;
    IF r.measure = 'channel' THEN
        RAISE EXCEPTION 'a channel''s drift is not adjusted by a count'
              USING ERRCODE = 'invalid_parameter_value',
                    HINT = 'republish_drift(run) sends the channel our value again.';
    END IF;
    IF src.authoritative <> 'source' THEN
        RAISE EXCEPTION 'source "%" is not authoritative: its counts do not adjust ours', src.code
              USING ERRCODE = 'invalid_parameter_value',
                    HINT = 'Dispute the line (the source is corrected) or make the source authoritative.';
    END IF;
    -- The residual must be against ours as of the cut-off now: a late event
    -- since the line was judged (the worker not there yet) would skew the
    -- count by its quantity.
    IF (inventory_events.recon_new_version(l, 'late_event')).id <> l.id THEN
        IF resolution = 'auto_adjusted' THEN
            RETURN NULL;    -- judged again: no longer what the policy allowed
        END IF;
        RAISE EXCEPTION 'reconciliation line % changed since it was judged: a late event moves ours as of its cut-off', line_id
              USING ERRCODE = 'object_not_in_prerequisite_state',
                    HINT = 'recon_reevaluate() (or the worker) gives the line a new version; resolve that one.';
    END IF;
    IF l.residual = 0 THEN
        RAISE EXCEPTION 'reconciliation line % has no residual to adjust (its difference is explained: %)', line_id, l.status
              USING ERRCODE = 'object_not_in_prerequisite_state',
                    HINT = 'Accept or dispute it.';
    END IF;
    IF l.lot IS NOT NULL THEN
        stream := l.lot;
    ELSE
        SELECT array_agg(s.lot) INTO lots FROM inventory_events.stock s WHERE s.sku = l.sku AND s.location = l.location;
        IF cardinality(lots) > 1 THEN
            RAISE EXCEPTION 'reconciliation line % sums % lots and cannot be adjusted by one count', line_id, cardinality(lots)
                  USING ERRCODE = 'invalid_parameter_value',
                        HINT = 'Send the source''s lines by lot, or append counted events per lot.';
        END IF;
        stream := coalesce(lots[1], '');
    END IF;
    on_hand := inventory_events.on_hand(inventory_events.position_as_of(l.sku, l.location, r.as_of, stream));
    -- No idempotency key: the line's lock and resolution make the adjustment
    -- happen once (a second call finds the line resolved), and a key a writer
    -- could guess would let it block the adjustment by using the key first.
    ev := inventory_events.append(l.sku, l.location, 'counted', on_hand + l.residual,
                                  source => 'reconciliation',
                                  occurred_at => r.as_of, lot => nullif(stream, ''),
                                  ref => format('recon:%s:%s', r.id, l.line_no), reason => 'reconciliation',
                                  correlation_id => r.correlation_id, causation_id => l.line_uuid,
                                  payload => jsonb_build_object('recon_run', r.id, 'recon_line', l.line_no,
                                                                'line_version', l.version, 'source', r.source,
                                                                'resolution', resolution));
    UPDATE inventory_events.recon_line x
       SET resolution = recon_adjust.resolution, resolved_at = now(), resolved_by = session_user,
           resolution_event_id = ev, note = coalesce(recon_adjust.note, x.note)
     WHERE x.id = l.id
    RETURNING * INTO l;
    PERFORM inventory_events.recon_track_exception(l);
    PERFORM inventory_events.recon_new_version(l, 'adjusted');
    RETURN ev;
END;
$$;

-- ---------------------------------------------------------------------------
-- The reconciliation API
-- ---------------------------------------------------------------------------

CREATE FUNCTION inventory_events.reconcile(source text, as_of timestamptz, lines jsonb, "full" boolean DEFAULT true,
                                           external_id text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    bad  record;
BEGIN
    PERFORM inventory_events.require_writable('inventory_events.reconcile()');
    IF lines IS NULL OR jsonb_typeof(lines) <> 'array' THEN
        RAISE EXCEPTION 'the lines of a snapshot must be a JSON array'
              USING ERRCODE = 'invalid_parameter_value',
                    HINT = 'Each line: {"sku": ..., "location": ..., "qty": ..., optional "lot", "uom" and "serials"}.';
    END IF;
    -- A snapshot this large belongs in COPY (reconcile_staged()): a jsonb
    -- value of hundreds of megabytes is parsed and held whole in memory.
    IF pg_column_size(lines) > 64 * 1024 * 1024 THEN
        RAISE EXCEPTION 'a snapshot of % as JSON is too large', pg_size_pretty(pg_column_size(lines)::bigint)
              USING ERRCODE = 'program_limit_exceeded',
                    DETAIL = 'reconcile() takes snapshots of up to 64 MB of JSON.',
                    HINT = 'COPY the lines into inventory_events.recon_staging and call reconcile_staged() in the same transaction.';
    END IF;
    SELECT x.n, x.line,
           CASE WHEN jsonb_typeof(x.line) <> 'object' THEN 'is not an object'
                WHEN jsonb_typeof(x.line->'sku') IS DISTINCT FROM 'string' THEN 'has no sku (a string)'
                WHEN x.line ? 'location' AND jsonb_typeof(x.line->'location') NOT IN ('string', 'null') THEN 'has a location that is not a string'
                WHEN x.line ? 'lot' AND jsonb_typeof(x.line->'lot') NOT IN ('string', 'null') THEN 'has a lot that is not a string'
                WHEN x.line ? 'uom' AND jsonb_typeof(x.line->'uom') NOT IN ('string', 'null') THEN 'has a uom that is not a string'
                WHEN jsonb_typeof(x.line->'qty') IS DISTINCT FROM 'number' THEN 'has no qty (a number)'
                WHEN (x.line->>'qty')::numeric <> trunc((x.line->>'qty')::numeric) THEN 'has a qty that is not a whole number'
                WHEN (x.line->>'qty')::numeric < 0 THEN 'has a negative qty'
                WHEN (x.line->>'qty')::numeric > 9223372036854775807 THEN 'has a qty out of range'
                WHEN x.line ? 'serials' AND jsonb_typeof(x.line->'serials') NOT IN ('array', 'null')
                  OR jsonb_typeof(x.line->'serials') = 'array'
                     AND EXISTS (SELECT FROM jsonb_array_elements(x.line->'serials') e WHERE jsonb_typeof(e) <> 'string')
                THEN 'has serials that are not an array of strings'
           END AS problem
      INTO bad
      FROM jsonb_array_elements(lines) WITH ORDINALITY x(line, n)
     WHERE jsonb_typeof(x.line) <> 'object'
        OR jsonb_typeof(x.line->'sku') IS DISTINCT FROM 'string'
        OR (x.line ? 'location' AND jsonb_typeof(x.line->'location') NOT IN ('string', 'null'))
        OR (x.line ? 'lot' AND jsonb_typeof(x.line->'lot') NOT IN ('string', 'null'))
        OR (x.line ? 'uom' AND jsonb_typeof(x.line->'uom') NOT IN ('string', 'null'))
        OR jsonb_typeof(x.line->'qty') IS DISTINCT FROM 'number'
        OR (x.line->>'qty')::numeric <> trunc((x.line->>'qty')::numeric)
        OR (x.line->>'qty')::numeric < 0
        OR (x.line->>'qty')::numeric > 9223372036854775807
        OR (x.line ? 'serials' AND jsonb_typeof(x.line->'serials') NOT IN ('array', 'null'))
        OR (jsonb_typeof(x.line->'serials') = 'array'
            AND EXISTS (SELECT FROM jsonb_array_elements(x.line->'serials') e WHERE jsonb_typeof(e) <> 'string'))
     ORDER BY x.n LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'line % of the snapshot %', bad.n, bad.problem
              USING ERRCODE = 'invalid_parameter_value',
                    DETAIL = left(bad.line::text, 200),
                    HINT = 'Quantities are whole numbers of at least 0; nothing of the snapshot was applied.';
    END IF;
    INSERT INTO inventory_events.recon_staging (sku, location, lot, qty, uom, serials)
    SELECT x.line->>'sku', x.line->>'location', x.line->>'lot', (x.line->>'qty')::numeric::bigint, x.line->>'uom',
           CASE WHEN jsonb_typeof(x.line->'serials') = 'array'
                THEN ARRAY(SELECT jsonb_array_elements_text(x.line->'serials')) END
      FROM jsonb_array_elements(lines) WITH ORDINALITY x(line, n)
     ORDER BY x.n;
    RETURN inventory_events.recon_run_staged(source, as_of, "full", external_id);
END;
$$;
COMMENT ON FUNCTION inventory_events.reconcile(text, timestamptz, jsonb, boolean, text) IS
  'Compares a source''s snapshot with our positions as of its cut-off; returns the run id (idempotent)';

CREATE FUNCTION inventory_events.reconcile_staged(source text, as_of timestamptz, "full" boolean DEFAULT true,
                                                  external_id text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM inventory_events.require_writable('inventory_events.reconcile_staged()');
    IF NOT EXISTS (SELECT FROM inventory_events.recon_staging s WHERE s.load_xid = pg_current_xact_id()) THEN
        RAISE EXCEPTION 'no snapshot lines were staged in this transaction'
              USING ERRCODE = 'no_data_found',
                    HINT = 'COPY the lines into inventory_events.recon_staging and call reconcile_staged() in the same transaction.';
    END IF;
    RETURN inventory_events.recon_run_staged(source, as_of, "full", external_id);
END;
$$;
COMMENT ON FUNCTION inventory_events.reconcile_staged(text, timestamptz, boolean, text) IS
  'reconcile() for the lines COPYed into recon_staging in this transaction';

CREATE FUNCTION inventory_events.recon_variance(run bigint)
RETURNS TABLE (line_id bigint, line_no integer, version integer, reason text, sku text, location text, lot text,
               ours bigint, theirs bigint, variance bigint, status inventory_events.recon_status,
               explained bigint, residual bigint, value numeric, severity text, streak integer,
               exceeds_tolerance boolean, hints jsonb, resolution text, resolution_event_id bigint)
LANGUAGE sql STABLE
BEGIN ATOMIC
    SELECT l.id, l.line_no, l.version, l.reason, l.sku, nullif(l.location, ''), l.lot, l.ours, l.theirs, l.variance, l.status,
           l.explained, l.residual, l.value, l.severity, l.streak, l.exceeds_tolerance, l.hints, l.resolution,
           l.resolution_event_id
      FROM inventory_events.recon_line l
     WHERE l.run_id = recon_variance.run AND l.current
     ORDER BY l.line_no;
END;
COMMENT ON FUNCTION inventory_events.recon_variance(bigint) IS
  'The current version of every line of a reconciliation run';

-- Resolves a line: 'adjust' (a counted event as of the cut-off), 'recount'
-- (a new count is awaited; capped by the source's max_recounts), 'accept'
-- (the difference stands, no event) or 'dispute' (the source is wrong).
CREATE FUNCTION inventory_events.resolve_recon_line(line_id bigint, action text, note text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    l    inventory_events.recon_line;
    src  inventory_events.recon_source;
    r    inventory_events.recon_run;
BEGIN
    PERFORM inventory_events.require_writable('inventory_events.resolve_recon_line()');
    IF action IS NULL OR action NOT IN ('adjust', 'recount', 'accept', 'dispute') THEN
        RAISE EXCEPTION 'invalid resolution "%"', action
              USING ERRCODE = 'invalid_parameter_value',
                    HINT = 'A line is resolved by adjust, recount, accept or dispute (approve_recon_line() past the recount cap).';
    END IF;
    l := inventory_events.recon_open_line(line_id);
    SELECT * INTO r FROM inventory_events.recon_run WHERE id = l.run_id;
    SELECT * INTO src FROM inventory_events.recon_source WHERE code = r.source;
    IF l.recounts >= src.max_recounts AND l.exceeds_tolerance AND action IN ('adjust', 'recount') THEN
        RAISE EXCEPTION 'reconciliation line % needs approval after % recounts', line_id, l.recounts
              USING ERRCODE = 'IE007',
                    HINT = 'An admin resolves it with approve_recon_line().';
    END IF;
    IF action = 'adjust' THEN
        RETURN inventory_events.recon_adjust(line_id, 'adjusted', note);
    END IF;
    UPDATE inventory_events.recon_line x
       SET resolution = CASE action WHEN 'recount' THEN 'recount' WHEN 'accept' THEN 'accepted' ELSE 'disputed' END,
           resolved_at = now(), resolved_by = session_user, note = coalesce(resolve_recon_line.note, x.note),
           recounts = x.recounts + (action = 'recount')::integer
     WHERE x.id = l.id
    RETURNING * INTO l;
    -- A line awaiting its recount stays open; the others are done.
    IF action <> 'recount' THEN
        PERFORM inventory_events.recon_track_exception(l);
    END IF;
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION inventory_events.resolve_recon_line(bigint, text, text) IS
  'Resolves a reconciliation line by adjust (returns the counted event id), recount, accept or dispute';

CREATE FUNCTION inventory_events.approve_recon_line(line_id bigint, note text)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM inventory_events.require_writable('inventory_events.approve_recon_line()');
    IF note IS NULL OR btrim(note) = '' THEN
        RAISE EXCEPTION 'an approval needs a note' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    RETURN inventory_events.recon_adjust(line_id, 'approved', note);
END;
$$;
COMMENT ON FUNCTION inventory_events.approve_recon_line(bigint, text) IS
  'Adjusts a reconciliation line with an approval (past the recount cap, or any line); returns the counted event id';

-- Sends a channel our value again for every drifted sku of a channel run.
CREATE FUNCTION inventory_events.republish_drift(run bigint)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r   inventory_events.recon_run;
    ch  text;
    n   bigint;
BEGIN
    PERFORM inventory_events.require_writable('inventory_events.republish_drift()');
    SELECT * INTO r FROM inventory_events.recon_run x WHERE x.id = republish_drift.run;
    SELECT s.channel INTO ch FROM inventory_events.recon_source s WHERE s.code = r.source;
    IF ch IS NULL THEN
        RAISE EXCEPTION 'reconciliation run % is not a channel''s', run
              USING ERRCODE = 'invalid_parameter_value';
    END IF;
    WITH drifted AS (
        UPDATE inventory_events.recon_line l
           SET resolution = 'republished', resolved_at = now(), resolved_by = session_user
         WHERE l.run_id = r.id AND l.current AND l.variance <> 0
           AND l.status NOT IN ('unmapped', 'duplicate', 'timing')
           AND (l.resolution IS NULL OR l.resolution = 'recount')
        RETURNING l.sku, l.line_no
    ), forget AS (
        -- Forgetting what it was shown makes the publisher send it again.
        DELETE FROM inventory_events.channel_shown s USING drifted d WHERE s.channel = ch AND s.sku = d.sku
    ), closed AS (
        UPDATE inventory_events.exception x SET resolved_at = now()
          FROM drifted d WHERE x.ref = format('recon:%s:%s', r.id, d.line_no) AND x.resolved_at IS NULL
                         AND x.kind IN ('recon_variance', 'channel_drift')
    ), pending AS (
        INSERT INTO inventory_events.publication_pending (channel, sku)
        SELECT DISTINCT ch, d.sku FROM drifted d
        ON CONFLICT (channel, sku) DO UPDATE SET sku = EXCLUDED.sku WHERE false
    )
    SELECT count(*) INTO n FROM drifted;
    RETURN n;
END;
$$;
COMMENT ON FUNCTION inventory_events.republish_drift(bigint) IS
  'Publishes our value again to the channel for every drifted sku of a channel reconciliation run';

-- Late events: events that occurred at or before the cut-off of a run and
-- were not in it re-evaluate the lines of their streams in the latest run of
-- each source that lists them (a new version of each line whose ours
-- changed). The worker calls it; it can
-- be called by hand. Returns the number of new line versions.
CREATE FUNCTION inventory_events.recon_reevaluate(max_events integer DEFAULT 10000)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cp        text;
    next_cp   text;
    n         bigint := 0;
    l         inventory_events.recon_line;
    nv        inventory_events.recon_line;
BEGIN
    PERFORM inventory_events.require_writable('inventory_events.recon_reevaluate()');
    -- Lines staged by transactions that ended without reconcile_staged():
    -- nobody will read them.
    DELETE FROM inventory_events.recon_staging s WHERE s.load_xid < pg_snapshot_xmin(pg_current_snapshot());
    SELECT c.checkpoint INTO cp FROM inventory_events.recon_checkpoint c FOR UPDATE;
    IF NOT FOUND THEN
        RETURN 0;  -- no run yet
    END IF;
    -- The batch's end first; then exactly the events up to it, all of them
    -- committed or never to be (below the horizon events_after() keeps).
    SELECT (array_agg(b.next_checkpoint))[count(*)] INTO next_cp
      FROM inventory_events.events_after(cp, max_events) b;
    IF next_cp IS NULL THEN
        RETURN 0;
    END IF;
    FOR l IN
        WITH late AS (
            SELECT e.sku, e.location, e.lot, min(e.occurred_at) AS occurred_at
              FROM inventory_events.event e
             WHERE (e.xid, e.id) > (split_part(cp, ':', 1)::xid8, split_part(cp, ':', 2)::bigint)
               AND (e.xid, e.id) <= (split_part(next_cp, ':', 1)::xid8, split_part(next_cp, ':', 2)::bigint)
             GROUP BY 1, 2, 3
        )
        SELECT DISTINCT ON (x.id) x.*
          FROM late e
          JOIN inventory_events.recon_line x
            ON x.current AND x.sku = e.sku AND x.location = e.location AND (x.lot IS NULL OR x.lot = e.lot)
          JOIN inventory_events.recon_run r ON r.id = x.run_id
         WHERE e.occurred_at <= r.as_of AND r.measure <> 'channel'
           -- The key's line in the source's latest run that lists it (a
           -- later cycle count of other keys leaves this one in force).
           AND NOT EXISTS (SELECT FROM inventory_events.recon_line y
                             JOIN inventory_events.recon_run ry ON ry.id = y.run_id
                            WHERE y.current AND y.sku = x.sku AND y.location = x.location
                              AND y.lot IS NOT DISTINCT FROM x.lot AND ry.source = r.source
                              AND (ry.as_of, ry.id) > (r.as_of, r.id))
         ORDER BY x.id
    LOOP
        nv := inventory_events.recon_new_version(l, 'late_event');
        IF nv.id <> l.id THEN
            n := n + 1;
        END IF;
    END LOOP;
    UPDATE inventory_events.recon_checkpoint SET checkpoint = next_cp, updated_at = now();
    RETURN n;
END;
$$;
COMMENT ON FUNCTION inventory_events.recon_reevaluate(integer) IS
  'Re-evaluates the lines of the latest run of each source hit by late events; returns the new line versions';

-- As in a fresh install (090_privileges.sql revokes from PUBLIC what it has
-- by default). Function signatures by name: none of them is overloaded.
REVOKE EXECUTE ON FUNCTION inventory_events.recon_tolerance_of FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION inventory_events.recon_within FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION inventory_events.recon_hints FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION inventory_events.recon_classify FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION inventory_events.recon_previous_streak FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION inventory_events.recon_judge FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION inventory_events.recon_track_exception FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION inventory_events.recon_run_staged FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION inventory_events.recon_new_version FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION inventory_events.recon_open_line FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION inventory_events.recon_adjust FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION inventory_events.reconcile FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION inventory_events.reconcile_staged FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION inventory_events.recon_variance FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION inventory_events.resolve_recon_line FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION inventory_events.approve_recon_line FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION inventory_events.republish_drift FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION inventory_events.recon_reevaluate FROM PUBLIC;
REVOKE ALL ON inventory_events.recon_source, inventory_events.recon_tolerance, inventory_events.recon_run, inventory_events.recon_line, inventory_events.recon_staging, inventory_events.recon_checkpoint FROM PUBLIC;
REVOKE ALL ON SEQUENCE inventory_events.recon_tolerance_id_seq, inventory_events.recon_run_id_seq, inventory_events.recon_line_id_seq, inventory_events.recon_staging_id_seq FROM PUBLIC;

-- grant_access() grants the reconciliation functions and tables (and, with
-- the signatures the serial numbers section below gives them, the functions
-- that take serials).
CREATE OR REPLACE FUNCTION inventory_events.grant_access(role_name name, access text)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r text := quote_ident(role_name);
BEGIN
    PERFORM inventory_events.require_writable('inventory_events.grant_access()');
    IF access NOT IN ('reader', 'writer', 'admin') THEN
        RAISE EXCEPTION 'invalid access "%"', access
              USING ERRCODE = 'invalid_parameter_value',
                    HINT = 'Access is reader, writer or admin.';
    END IF;
    -- reader: read everything (pg_dump of the database included), append nothing
    EXECUTE format('GRANT USAGE ON SCHEMA inventory_events TO %s', r);
    EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA inventory_events TO %s', r);
    EXECUTE format('GRANT SELECT ON ALL SEQUENCES IN SCHEMA inventory_events TO %s', r);
    EXECUTE format('GRANT EXECUTE ON FUNCTION inventory_events.position_as_of(text, text, timestamptz, text),
                    inventory_events.sku_position_as_of(text, timestamptz),
                    inventory_events.lot_trace(text, text),
                    inventory_events.serial_trace(text, text),
                    inventory_events.events_after(text, integer), inventory_events.verify(),
                    inventory_events.verify_snapshots(boolean),
                    inventory_events.event_partitions(), inventory_events.archive_boundary(),
                    inventory_events.stream_fold(text, text, text, timestamptz, bigint, boolean),
                    inventory_events.channel_availability(text, text),
                    inventory_events.channel_position(text, text),
                    inventory_events.channel_sources(text),
                    inventory_events.channel_rules(bigint, inventory_events.channel, bigint),
                    inventory_events.availability_timeline(text, text, interval),
                    inventory_events.publications_since(text, bigint),
                    inventory_events.publisher_status(),
                    inventory_events.notify_channel(text),
                    inventory_events.shared_state(),
                    inventory_events.recon_variance(bigint),
                    inventory_events.recon_tolerance_of(text, text),
                    inventory_events.recon_within(bigint, bigint, numeric, numeric, bigint, numeric) TO %s', r);
    IF access IN ('writer', 'admin') THEN
        -- writer: append through the functions; never write the log directly
        EXECUTE format('GRANT EXECUTE ON FUNCTION inventory_events.append(text, text, inventory_events.event_type,
                        bigint, text, text, timestamptz, text, text, text, text, bigint, jsonb, inventory_events.bucket,
                        inventory_events.bucket, text, date, bigint, uuid, uuid, text[]),
                        inventory_events.ingest(jsonb), inventory_events.ingest_staged(integer),
                        inventory_events.reserve(text, text, bigint, text, text, timestamptz, text, text),
                        inventory_events.reserve_lines(jsonb),
                        inventory_events.release(text, text, bigint, text, text, text),
                        inventory_events.pick(text, text, bigint, text, text, text, text[]),
                        inventory_events.ship(text, text, bigint, text, text, text[]),
                        inventory_events.pick_short(text, text, bigint, text, text, text, text),
                        inventory_events.expire_reservations(integer),
                        inventory_events.fill_backorders(text),
                        inventory_events.transfer(text, text, text, bigint, text, date, text, text, text, text[]),
                        inventory_events.receive_transfer(text, text, bigint, text, text, text, text, text[]),
                        inventory_events.receive_po(text, text, bigint, text, text, text, text, text[]),
                        inventory_events.receive_return(text, text, bigint, text, text, text, text, text, text, text[]),
                        inventory_events.dispose_return(text, text, bigint, text, text, text, text, text, text[]),
                        inventory_events.reconcile(text, timestamptz, jsonb, boolean, text),
                        inventory_events.reconcile_staged(text, timestamptz, boolean, text),
                        inventory_events.resolve_recon_line(bigint, text, text),
                        inventory_events.republish_drift(bigint),
                        inventory_events.edi_846(text, boolean)
                        TO %s', r);
        EXECUTE format('GRANT INSERT ON inventory_events.event_staging TO %s', r);
        -- Not load_xid: a snapshot's lines are those its own transaction staged.
        EXECUTE format('GRANT INSERT (sku, location, lot, qty, uom, serials) ON inventory_events.recon_staging TO %s', r);
    END IF;
    IF access = 'admin' THEN
        -- admin: master data, repairs
        EXECUTE format('GRANT INSERT, UPDATE, DELETE ON inventory_events.item, inventory_events.item_uom,
                        inventory_events.location, inventory_events.lot, inventory_events.channel,
                        inventory_events.channel_location, inventory_events.kit_component,
                        inventory_events.channel_item, inventory_events.edi_partner,
                        inventory_events.entity, inventory_events.intercompany,
                        inventory_events.recon_source, inventory_events.recon_tolerance TO %s', r);
        EXECUTE format('GRANT UPDATE (resolved_at) ON inventory_events.exception TO %s', r);
        EXECUTE format('GRANT DELETE ON inventory_events.dead_letter TO %s', r);
        EXECUTE format('GRANT EXECUTE ON FUNCTION inventory_events.rebuild(integer),
                        inventory_events.publish(integer), inventory_events.republish(text),
                        inventory_events.publisher_start(text), inventory_events.publisher_stop(text),
                        inventory_events.resolve_exception(bigint),
                        inventory_events.report_progress(text),
                        inventory_events.approve_recon_line(bigint, text),
                        inventory_events.recon_reevaluate(integer),
                        inventory_events.refresh_metrics(interval),
                        inventory_events.record_verify(),
                        inventory_events.take_snapshots(integer, integer),
                        inventory_events.apply_retention(),
                        inventory_events.create_partitions(timestamptz, integer) TO %s', r);
    END IF;
END;
$$;
-- === end of reconciliation ===
-- === KPI views (issue 13) ===
-- Conventions of every view here:
--   * a day is a calendar day in the session's TimeZone (timestamptz::date);
--   * the per-day views read the last 30 calendar days, today included: rows
--     whose time is at or after midnight of current_date - 29. On the event
--     log the block range index on recorded_at keeps that a scan of the
--     window's blocks, not of the history;
--   * rates are between 0 and 1, rounded to 4 decimals, null when there is
--     nothing to rate; durations are seconds (numeric, 3 decimals);
--   * an order is (channel, order ref): a reservation's ref up to its last
--     '/' ('SO-1001/2' is line 2 of order 'SO-1001'); a ref without '/' is
--     an order of one line.

-- Windows read by date, not by a row at a time.
CREATE INDEX reservation_created_at_brin ON inventory_events.reservation USING brin (created_at);
CREATE INDEX publication_published_at_brin ON inventory_events.publication USING brin (published_at);

-- Inventory record accuracy of the latest run of every reconciliation source.
CREATE VIEW inventory_events.kpi_record_accuracy AS
WITH latest AS (
    SELECT DISTINCT ON (r.source) r.id, r.source, r.measure, r.as_of, s.channel
      FROM inventory_events.recon_run r
      JOIN inventory_events.recon_source s ON s.code = r.source
     ORDER BY r.source, r.as_of DESC, r.id DESC
), judged AS (
    -- Each line as the count found it: its latest version before any
    -- adjustment of ours (late events re-judge a line; an adjustment makes
    -- it match, and would hide the miss it corrected). Per run, through the
    -- index on (run_id, line_no, version).
    SELECT lt.source, lt.measure, lt.channel, lt.as_of, j.location, j.sku, j.status, j.residual, j.ours, j.theirs
      FROM latest lt
     CROSS JOIN LATERAL (
        SELECT DISTINCT ON (v.line_no) v.*
          FROM (SELECT l.line_no, l.version, l.location, l.sku, l.status, l.residual, l.ours, l.theirs,
                       min(l.version) FILTER (WHERE l.reason = 'adjusted') OVER (PARTITION BY l.line_no) AS adjusted_from
                  FROM inventory_events.recon_line l
                 WHERE l.run_id = lt.id) v
         WHERE v.adjusted_from IS NULL OR v.version < v.adjusted_from
         ORDER BY v.line_no, v.version DESC) j
), line AS (
    SELECT j.source, j.measure, j.channel, j.as_of, j.location, i.abc_class,
           j.status NOT IN ('unmapped', 'duplicate') AS compared,
           j.status IN ('match', 'within_tolerance', 'timing', 'uom_suspect', 'status_mapping') AS hit,
           abs(coalesce(j.residual, 0)) AS abs_residual,
           greatest(abs(coalesce(j.ours, 0)), abs(coalesce(j.theirs, 0))) AS abs_quantity
      FROM judged j
      LEFT JOIN inventory_events.item i ON i.sku = j.sku
), keyed AS (
    SELECT 'location' AS dimension, ln.location AS key, ln.source, ln.as_of, ln.compared, ln.hit,
           ln.abs_residual, ln.abs_quantity
      FROM line ln WHERE ln.measure <> 'channel'
    UNION ALL
    SELECT 'abc_class', coalesce(ln.abc_class, 'none'), ln.source, ln.as_of, ln.compared, ln.hit,
           ln.abs_residual, ln.abs_quantity
      FROM line ln WHERE ln.measure <> 'channel'
    UNION ALL
    SELECT 'channel', ln.channel, ln.source, ln.as_of, ln.compared, ln.hit, ln.abs_residual, ln.abs_quantity
      FROM line ln WHERE ln.measure = 'channel'
)
SELECT k.dimension, k.key,
       count(DISTINCT k.source) AS sources,
       max(k.as_of) AS latest_as_of,
       count(*) AS lines,
       count(*) FILTER (WHERE k.compared) AS compared_lines,
       count(*) FILTER (WHERE k.compared AND k.hit) AS hit_lines,
       round(count(*) FILTER (WHERE k.compared AND k.hit)::numeric
             / nullif(count(*) FILTER (WHERE k.compared), 0), 4) AS hit_rate,
       coalesce(sum(k.abs_residual) FILTER (WHERE k.compared), 0)::bigint AS abs_residual,
       coalesce(sum(k.abs_quantity) FILTER (WHERE k.compared), 0)::bigint AS abs_quantity,
       round(1 - sum(k.abs_residual) FILTER (WHERE k.compared)
                 / nullif(sum(k.abs_quantity) FILTER (WHERE k.compared), 0), 4) AS quantity_accuracy
  FROM keyed k
 GROUP BY k.dimension, k.key;
COMMENT ON VIEW inventory_events.kpi_record_accuracy IS
  'Inventory record accuracy of the latest run of each reconciliation source, by location, ABC class and channel: hit rate within tolerance and quantity-weighted accuracy 1 - sum|residual| / sum max(|ours|, |theirs|)';

-- Order lines of the window with what was filled at once and what shipped.
-- An internal view of kpi_fill_rate and kpi_order_latency (not a KPI).
CREATE VIEW inventory_events.kpi_order_line AS
SELECT r.id, r.channel, r.ref,
       CASE WHEN strpos(r.ref, '/') > 0 THEN left(r.ref, length(r.ref) - strpos(reverse(r.ref), '/'))
            ELSE r.ref END AS order_ref,
       r.sku, r.qty, r.created_at,
       coalesce(f.first_units, 0)::bigint AS first_units,
       coalesce(f.shipped_units, 0)::bigint AS shipped_units,
       r.backordered > 0 OR coalesce(f.open_units, 0) > 0 AS open
  FROM inventory_events.reservation r
  LEFT JOIN LATERAL (
      -- In units of the ordered sku: a kit line is as filled as its least
      -- filled component (component units / units per kit, rounded down).
      SELECT min(c.first_units) AS first_units, min(c.shipped_units) AS shipped_units,
             sum(c.open_units) AS open_units
        FROM (SELECT floor(coalesce(sum(a.qty) FILTER (WHERE a.created_at <= r.created_at), 0) / a.per_unit) AS first_units,
                     floor(sum(a.shipped) / a.per_unit) AS shipped_units,
                     sum(a.reserved + a.picked) AS open_units
                FROM inventory_events.allocation a
               WHERE a.reservation_id = r.id
               GROUP BY a.sku, a.per_unit) c) f ON true
 WHERE r.created_at >= current_date - 29;
COMMENT ON VIEW inventory_events.kpi_order_line IS
  'Order lines reserved in the last 30 days: order ref, units allocated at reservation, units shipped, still open (used by kpi_fill_rate and kpi_order_latency)';

CREATE VIEW inventory_events.kpi_fill_rate AS
WITH ord AS (
    SELECT l.channel, l.order_ref, min(l.created_at)::date AS day,
           count(*) AS lines,
           sum(l.qty) AS units_ordered,
           sum(least(l.shipped_units, l.qty)) AS units_shipped,
           sum(least(l.first_units, l.qty)) AS units_first,
           count(*) FILTER (WHERE l.shipped_units >= l.qty) AS lines_shipped,
           count(*) FILTER (WHERE l.first_units >= l.qty) AS lines_first,
           count(*) FILTER (WHERE l.open) AS open_lines
      FROM inventory_events.kpi_order_line l
     GROUP BY l.channel, l.order_ref
)
SELECT o.channel, o.day,
       count(*)::bigint AS orders,
       sum(o.lines)::bigint AS lines,
       sum(o.units_ordered)::bigint AS units_ordered,
       sum(o.units_shipped)::bigint AS units_shipped,
       round(sum(o.units_shipped) / nullif(sum(o.units_ordered), 0), 4) AS unit_fill_rate,
       round(sum(o.lines_shipped) / nullif(sum(o.lines), 0), 4) AS line_fill_rate,
       round(count(*) FILTER (WHERE o.lines_shipped = o.lines) / nullif(count(*), 0)::numeric, 4) AS order_fill_rate,
       round(sum(o.units_first) / nullif(sum(o.units_ordered), 0), 4) AS first_time_unit_fill_rate,
       round(sum(o.lines_first) / nullif(sum(o.lines), 0), 4) AS first_time_line_fill_rate,
       round(count(*) FILTER (WHERE o.lines_first = o.lines) / nullif(count(*), 0)::numeric, 4) AS first_time_order_fill_rate,
       sum(o.units_first)::bigint AS units_filled_first_time,
       sum(o.open_lines)::bigint AS open_lines,
       count(*) FILTER (WHERE o.open_lines > 0)::bigint AS open_orders
  FROM ord o
 GROUP BY o.channel, o.day;
COMMENT ON VIEW inventory_events.kpi_fill_rate IS
  'Unit, line and order fill rate per channel and day the order was placed (last 30 days): final (shipped / ordered) and first-time (allocated at reservation / ordered)';

CREATE VIEW inventory_events.kpi_order_latency AS
WITH shipped AS (
    SELECT e.channel, e.ref, max(e.occurred_at) AS shipped_at
      FROM inventory_events.event e
     WHERE e.recorded_at >= current_date - 29 AND e.event_type = 'shipped'
     GROUP BY e.channel, e.ref
), ord AS (
    SELECT l.channel, l.order_ref, min(l.created_at) AS placed_at, max(s.shipped_at) AS shipped_at,
           bool_or(l.open) AS open
      FROM inventory_events.kpi_order_line l
      LEFT JOIN shipped s ON s.channel = l.channel AND s.ref = l.ref
     GROUP BY l.channel, l.order_ref
), done AS (
    SELECT o.channel, o.shipped_at::date AS day,
           extract(epoch FROM o.shipped_at - o.placed_at)::float8 AS seconds
      FROM ord o
     WHERE NOT o.open AND o.shipped_at IS NOT NULL
)
SELECT d.channel, d.day,
       count(*) AS orders,
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY d.seconds)::numeric, 3) AS p50_seconds,
       round(percentile_cont(0.95) WITHIN GROUP (ORDER BY d.seconds)::numeric, 3) AS p95_seconds,
       round(avg(d.seconds)::numeric, 3) AS avg_seconds,
       round(max(d.seconds)::numeric, 3) AS max_seconds
  FROM done d
 GROUP BY d.channel, d.day;
COMMENT ON VIEW inventory_events.kpi_order_latency IS
  'Order latency from reservation (first line) to shipment (last shipped event), p50 and p95 in seconds, per channel and day of the last shipment (orders placed in the last 30 days and closed)';

CREATE VIEW inventory_events.kpi_shipment_timeliness AS
SELECT e.channel, e.recorded_at::date AS day,
       count(*) AS shipments,
       sum(e.qty)::bigint AS units,
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM e.recorded_at - e.occurred_at)::float8)::numeric, 3) AS p50_seconds,
       round(percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM e.recorded_at - e.occurred_at)::float8)::numeric, 3) AS p95_seconds,
       round(max(extract(epoch FROM e.recorded_at - e.occurred_at)), 3) AS max_seconds,
       interval '1 hour' AS target,
       count(*) FILTER (WHERE e.recorded_at - e.occurred_at <= interval '1 hour') AS within_target,
       round(count(*) FILTER (WHERE e.recorded_at - e.occurred_at <= interval '1 hour')::numeric / count(*), 4)
           AS within_target_share
  FROM inventory_events.event e
 WHERE e.recorded_at >= current_date - 29 AND e.event_type = 'shipped'
 GROUP BY e.channel, e.recorded_at::date;
COMMENT ON VIEW inventory_events.kpi_shipment_timeliness IS
  'Shipment-confirmation timeliness per channel and day recorded (last 30 days): recorded_at - occurred_at of shipped events, p50, p95 and the share within the 1 hour target';

CREATE VIEW inventory_events.kpi_oversell_refusals AS
SELECT x.channel, x.created_at::date AS day,
       count(*) AS refusals,
       sum(substring(x.detail FROM '^reservation of ([0-9]+) ')::bigint)::bigint AS units_refused,
       count(DISTINCT x.sku) AS skus,
       count(DISTINCT CASE WHEN strpos(x.ref, '/') > 0 THEN left(x.ref, length(x.ref) - strpos(reverse(x.ref), '/'))
                           ELSE x.ref END) AS orders,
       count(*) FILTER (WHERE x.resolved_at IS NULL) AS open
  FROM inventory_events.exception x
 WHERE x.kind = 'oversell_refused' AND x.created_at >= current_date - 29
 GROUP BY x.channel, x.created_at::date;
COMMENT ON VIEW inventory_events.kpi_oversell_refusals IS
  'Order lines refused because they would oversell (oversell_refused exceptions), per channel and day (last 30 days)';

CREATE VIEW inventory_events.kpi_exception_resolution AS
SELECT x.kind,
       count(*) FILTER (WHERE x.resolved_at IS NOT NULL) AS resolved,
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM x.resolved_at - x.created_at)::float8)
             FILTER (WHERE x.resolved_at IS NOT NULL)::numeric, 3) AS resolution_p50_seconds,
       round(percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM x.resolved_at - x.created_at)::float8)
             FILTER (WHERE x.resolved_at IS NOT NULL)::numeric, 3) AS resolution_p95_seconds,
       count(*) FILTER (WHERE x.resolved_at IS NULL) AS open,
       round(max(extract(epoch FROM now() - x.created_at)) FILTER (WHERE x.resolved_at IS NULL), 3) AS oldest_open_seconds,
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM now() - x.created_at)::float8)
             FILTER (WHERE x.resolved_at IS NULL)::numeric, 3) AS open_age_p50_seconds,
       count(*) FILTER (WHERE x.resolved_at IS NULL AND now() - x.created_at < interval '1 hour') AS open_under_1_hour,
       count(*) FILTER (WHERE x.resolved_at IS NULL AND now() - x.created_at >= interval '1 hour'
                                                    AND now() - x.created_at < interval '1 day') AS open_under_1_day,
       count(*) FILTER (WHERE x.resolved_at IS NULL AND now() - x.created_at >= interval '1 day'
                                                    AND now() - x.created_at < interval '7 days') AS open_under_7_days,
       count(*) FILTER (WHERE x.resolved_at IS NULL AND now() - x.created_at >= interval '7 days') AS open_7_days_or_more
  FROM inventory_events.exception x
 WHERE x.resolved_at IS NULL OR x.resolved_at >= current_date - 29
 GROUP BY x.kind;
COMMENT ON VIEW inventory_events.kpi_exception_resolution IS
  'Per exception kind: resolution time (resolved_at - created_at, p50/p95 of those resolved in the last 30 days) and the aging of the open ones';

CREATE VIEW inventory_events.kpi_manual_adjustments AS
WITH ev AS (
    -- A reconciliation's adjustment is the event a line names as its
    -- resolution (a writer could give any event the source name).
    SELECT e.recorded_at::date AS day, e.location,
           abs(inventory_events.on_hand(e.effect)) AS units,
           e.event_type IN ('adjusted', 'counted') AND r.event_id IS NULL AS manual,
           e.event_type IN ('adjusted', 'counted') AND r.event_id IS NOT NULL AS reconciliation
      FROM inventory_events.event e
      LEFT JOIN (SELECT DISTINCT l.resolution_event_id AS event_id FROM inventory_events.recon_line l
                  WHERE l.resolution_event_id IS NOT NULL) r ON r.event_id = e.id
     WHERE e.recorded_at >= current_date - 29
)
SELECT ev.day, ev.location,
       count(*) AS stock_events,
       count(*) FILTER (WHERE ev.manual) AS manual_adjustments,
       count(*) FILTER (WHERE ev.reconciliation) AS reconciliation_adjustments,
       round(count(*) FILTER (WHERE ev.manual)::numeric / count(*), 4) AS manual_share,
       sum(ev.units)::bigint AS stock_units,
       coalesce(sum(ev.units) FILTER (WHERE ev.manual), 0)::bigint AS manual_units,
       round(coalesce(sum(ev.units) FILTER (WHERE ev.manual), 0) / sum(ev.units), 4) AS manual_unit_share
  FROM ev
 WHERE ev.units <> 0
 GROUP BY ev.day, ev.location;
COMMENT ON VIEW inventory_events.kpi_manual_adjustments IS
  'Share of manual adjustments (adjusted or counted events not made by reconciliation) among the events that changed on-hand, per day recorded and location (last 30 days)';

CREATE VIEW inventory_events.kpi_throughput AS
WITH days AS (
    SELECT d::date AS day FROM generate_series(current_date - 29, current_date, interval '1 day') d
), ev AS (
    SELECT e.recorded_at::date AS day, count(*) AS n
      FROM inventory_events.event e WHERE e.recorded_at >= current_date - 29 GROUP BY 1
), pub AS (
    SELECT p.published_at::date AS day, count(*) AS n, count(DISTINCT p.channel) AS channels
      FROM inventory_events.publication p WHERE p.published_at >= current_date - 29 GROUP BY 1
), dl AS (
    SELECT d.failed_at::date AS day, count(*) AS n
      FROM inventory_events.dead_letter d WHERE d.failed_at >= current_date - 29 GROUP BY 1
)
SELECT days.day,
       coalesce(ev.n, 0) AS events_appended,
       coalesce(pub.n, 0) AS publications,
       coalesce(pub.channels, 0) AS channels_published,
       coalesce(dl.n, 0) AS dead_letters,
       round(coalesce(dl.n, 0)::numeric / nullif(coalesce(ev.n, 0) + coalesce(dl.n, 0), 0), 4) AS dead_letter_share
  FROM days
  LEFT JOIN ev ON ev.day = days.day
  LEFT JOIN pub ON pub.day = days.day
  LEFT JOIN dl ON dl.day = days.day;
COMMENT ON VIEW inventory_events.kpi_throughput IS
  'Message throughput per day (last 30 days, one row per day): events appended, publications sent, dead letters';

-- Not readable by PUBLIC, as 090_privileges.sql leaves them in a fresh install.
REVOKE ALL ON inventory_events.kpi_record_accuracy FROM PUBLIC;
REVOKE ALL ON inventory_events.kpi_order_line FROM PUBLIC;
REVOKE ALL ON inventory_events.kpi_fill_rate FROM PUBLIC;
REVOKE ALL ON inventory_events.kpi_order_latency FROM PUBLIC;
REVOKE ALL ON inventory_events.kpi_shipment_timeliness FROM PUBLIC;
REVOKE ALL ON inventory_events.kpi_oversell_refusals FROM PUBLIC;
REVOKE ALL ON inventory_events.kpi_exception_resolution FROM PUBLIC;
REVOKE ALL ON inventory_events.kpi_manual_adjustments FROM PUBLIC;
REVOKE ALL ON inventory_events.kpi_throughput FROM PUBLIC;

-- === Metrics (issue 13) ===
-- The worker's maintenance task records its failures as tasks metrics and
-- reconcile; then sql/install/087_metrics.sql, as a fresh install has it.
ALTER TABLE inventory_events.worker_error
    DROP CONSTRAINT worker_error_task_check,
    ADD CONSTRAINT worker_error_task_check CHECK (task IN ('publish', 'expire', 'metrics', 'reconcile'));

-- ---------------------------------------------------------------------------
-- Metrics for Prometheus (monitoring/queries.yaml, doc/reference.md#metrics)
-- ---------------------------------------------------------------------------

-- The current value of every metric, one row per metric name and label set.
-- The publisher worker refreshes it (refresh_metrics(), every
-- inventory_events.maintenance_interval); a scrape of the postgres exporter
-- reads only this table, so its cost does not grow with the log. Not dumped:
-- it describes this server, and the next refresh fills it again.
CREATE TABLE inventory_events.metric (
    name          text NOT NULL CHECK (name ~ '^inventory_events_[a-z0-9_]+$'),
    labels        jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(labels) = 'object'),
    value         double precision NOT NULL,
    refreshed_at  timestamptz NOT NULL,
    PRIMARY KEY (name, labels)
);
COMMENT ON TABLE inventory_events.metric IS
  'Prometheus metrics (full name, labels, value) as of their last refresh by the worker; what the exporter reads';

-- Counts and ages the worker keeps current: every source read here is an
-- index or a table whose size follows the catalog (stock rows, channels,
-- sources, open exceptions, open lines of the latest runs), never the log;
-- the two counters are the high-water marks of the log's and the dead
-- letters' id sequences. Fill rates come from kpi_fill_rate (when installed)
-- over the last 7 days, recomputed when older than fill_rate_every. The
-- verify() metrics are written by record_verify() and kept here. Returns the
-- number of metric rows written.
CREATE FUNCTION inventory_events.refresh_metrics(fill_rate_every interval DEFAULT '5 minutes')
RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t         timestamptz := clock_timestamp();
    n         integer;
    fill_due  boolean;
BEGIN
    PERFORM inventory_events.require_writable('inventory_events.refresh_metrics()');
    -- One refresh at a time (the worker, or someone by hand).
    PERFORM pg_advisory_xact_lock('inventory_events.metric'::regclass::oid::bigint);
    fill_due := NOT EXISTS (SELECT FROM inventory_events.metric m
                             WHERE m.name = 'inventory_events_fill_rate_ratio'
                               AND m.refreshed_at > t - fill_rate_every)
                OR to_regclass('inventory_events.kpi_fill_rate') IS NULL;
    DELETE FROM inventory_events.metric m
     WHERE m.name NOT LIKE 'inventory_events\_verify\_%'
       AND (fill_due OR m.name <> 'inventory_events_fill_rate_ratio');

    INSERT INTO inventory_events.metric (name, labels, value, refreshed_at)
    -- Counters: ids handed out by the sequences (ids of rolled-back appends
    -- and batches included: the sequence never goes back).
    SELECT 'inventory_events_events_appended_total', '{}'::jsonb,
           (SELECT CASE WHEN s.is_called THEN s.last_value ELSE 0 END FROM inventory_events.event_id_seq s), t
    UNION ALL
    SELECT 'inventory_events_dead_letters_total', '{}',
           (SELECT CASE WHEN s.is_called THEN s.last_value ELSE 0 END FROM inventory_events.dead_letter_id_seq s), t
    UNION ALL
    SELECT 'inventory_events_metrics_refreshed_timestamp_seconds', '{}', extract(epoch FROM t), t
    -- Open exceptions by kind and age bucket (every kind, zeros included).
    UNION ALL
    -- The buckets are exception_aging's, under label values fit for Prometheus.
    SELECT 'inventory_events_exceptions_open', jsonb_build_object('kind', k.kind, 'age', b.age),
           count(x.id), t
      FROM (SELECT unnest(ARRAY['pick_short', 'oversell_refused', 'negative_available', 'dead_letter',
                                'recon_variance', 'channel_drift']) AS kind
            UNION SELECT DISTINCT x.kind FROM inventory_events.exception x WHERE x.resolved_at IS NULL) k
     CROSS JOIN (VALUES ('lt_1h', 'under 1 hour'), ('lt_1d', 'under 1 day'),
                        ('lt_7d', 'under 7 days'), ('ge_7d', '7 days or more')) b(age, bucket)
      LEFT JOIN inventory_events.exception_aging x ON x.kind = k.kind AND x.age_bucket = b.bucket
     GROUP BY k.kind, b.age
    UNION ALL
    SELECT 'inventory_events_exceptions_oldest_age_seconds', jsonb_build_object('kind', k.kind),
           coalesce(extract(epoch FROM t - min(x.created_at)), 0), t
      FROM (SELECT unnest(ARRAY['pick_short', 'oversell_refused', 'negative_available', 'dead_letter',
                                'recon_variance', 'channel_drift']) AS kind
            UNION SELECT DISTINCT x.kind FROM inventory_events.exception x WHERE x.resolved_at IS NULL) k
      LEFT JOIN inventory_events.exception x ON x.resolved_at IS NULL AND x.kind = k.kind
     GROUP BY k.kind
    -- Publication per channel: lag and pending skus (channel_health), and
    -- the publications made (the channel's gap-free sequence).
    UNION ALL
    SELECT 'inventory_events_publication_lag_seconds', jsonb_build_object('channel', h.channel), h.lag_seconds, t
      FROM inventory_events.channel_health h
    UNION ALL
    SELECT 'inventory_events_publication_pending_skus', jsonb_build_object('channel', h.channel), h.pending_skus, t
      FROM inventory_events.channel_health h
    UNION ALL
    SELECT 'inventory_events_publications_total', jsonb_build_object('channel', ch.code), coalesce(p.last_seq, 0), t
      FROM inventory_events.channel ch
      LEFT JOIN inventory_events.channel_publisher p ON p.channel = ch.code
    -- Orders: units reserved and picked not yet shipped, per location (the
    -- stock rows), and open backorders per channel (a partial index).
    UNION ALL
    SELECT 'inventory_events_order_backlog_units', jsonb_build_object('location', s.location, 'stage', st.stage),
           sum(CASE st.stage WHEN 'reserved' THEN s.reserved ELSE s.picked END), t
      FROM inventory_events.stock s CROSS JOIN (VALUES ('reserved'), ('picked')) st(stage)
     GROUP BY s.location, st.stage
    UNION ALL
    SELECT 'inventory_events_backorders_open_lines', jsonb_build_object('channel', ch.code), count(r.id), t
      FROM inventory_events.channel ch
      LEFT JOIN inventory_events.reservation r ON r.channel = ch.code AND r.backordered > 0
     GROUP BY ch.code
    UNION ALL
    SELECT 'inventory_events_backorders_open_units', jsonb_build_object('channel', ch.code), coalesce(sum(r.backordered), 0), t
      FROM inventory_events.channel ch
      LEFT JOIN inventory_events.reservation r ON r.channel = ch.code AND r.backordered > 0
     GROUP BY ch.code
    -- Worker tasks failing now (an open worker_error streak), per task.
    UNION ALL
    SELECT 'inventory_events_worker_errors', jsonb_build_object('task', k.task), count(w.task), t
      FROM unnest(ARRAY['publish', 'expire', 'metrics', 'reconcile']) k(task)
      LEFT JOIN inventory_events.worker_error w ON w.task = k.task AND w.cleared_at IS NULL
     GROUP BY k.task;

    -- Reconciliation, over the latest run of each source (the run
    -- recon_reevaluate() keeps current): its cut-off, and its open lines
    -- beyond tolerance (not yet resolved, or awaiting a recount).
    INSERT INTO inventory_events.metric (name, labels, value, refreshed_at)
    WITH lr AS (
        SELECT s.code AS source, s.measure, s.channel, r.id AS run_id, r.as_of
          FROM inventory_events.recon_source s
          LEFT JOIN LATERAL (SELECT r.id, r.as_of FROM inventory_events.recon_run r WHERE r.source = s.code
                              ORDER BY r.as_of DESC, r.id DESC LIMIT 1) r ON true
    )
    SELECT 'inventory_events_recon_last_cutoff_timestamp_seconds', jsonb_build_object('source', lr.source),
           coalesce(extract(epoch FROM lr.as_of), 0), t
      FROM lr
    UNION ALL
    SELECT 'inventory_events_recon_out_of_tolerance_lines',
           jsonb_build_object('source', lr.source, 'location', l.location, 'severity', l.severity,
                              'item_group', CASE WHEN i.regulated THEN 'regulated'
                                                 WHEN i.lot_controlled THEN 'lot_controlled'
                                                 WHEN i.high_value THEN 'high_value'
                                                 WHEN i.abc_class IS NOT NULL THEN 'class_' || lower(i.abc_class)
                                                 ELSE 'unclassified' END),
           count(*), t
      FROM lr
      JOIN inventory_events.recon_line l ON l.run_id = lr.run_id AND l.current AND l.exceeds_tolerance
      LEFT JOIN inventory_events.item i ON i.sku = l.sku
     WHERE l.resolution IS NULL OR l.resolution = 'recount'
     GROUP BY 2
    UNION ALL
    SELECT 'inventory_events_channel_drift_persistent_lines', jsonb_build_object('source', lr.source, 'channel', lr.channel),
           count(l.id), t
      FROM lr
      LEFT JOIN inventory_events.recon_line l
             ON l.run_id = lr.run_id AND l.current AND l.exceeds_tolerance AND l.streak >= 2
            AND (l.resolution IS NULL OR l.resolution = 'recount')
     WHERE lr.measure = 'channel'
     GROUP BY lr.source, lr.channel;

    -- Fill rates of the last 7 days per channel (kpi_fill_rate): units,
    -- lines and orders filled over those ordered.
    IF fill_due AND to_regclass('inventory_events.kpi_fill_rate') IS NOT NULL THEN
        EXECUTE $q$
        INSERT INTO inventory_events.metric (name, labels, value, refreshed_at)
        SELECT 'inventory_events_fill_rate_ratio', jsonb_build_object('channel', f.channel, 'measure', m.measure),
               m.ratio, $1
          FROM (SELECT k.channel,
                       sum(k.units_shipped)::float8 / nullif(sum(k.units_ordered), 0) AS unit,
                       sum(k.line_fill_rate * k.lines)::float8 / nullif(sum(k.lines), 0) AS line,
                       sum(k.order_fill_rate * k.orders)::float8 / nullif(sum(k.orders), 0) AS "order"
                  FROM inventory_events.kpi_fill_rate k
                 WHERE k.day > current_date - 7
                 GROUP BY k.channel) f
         CROSS JOIN LATERAL (VALUES ('unit', f.unit), ('line', f.line), ('order', f."order")) m(measure, ratio)
         WHERE m.ratio IS NOT NULL
        $q$ USING t;
    END IF;

    -- Never verified: the time is 0 (an alert asks for a schedule), the
    -- streams found wrong unknown (NaN).
    INSERT INTO inventory_events.metric (name, labels, value, refreshed_at)
    VALUES ('inventory_events_verify_last_run_timestamp_seconds', '{}', 0, t),
           ('inventory_events_verify_drifted_streams', '{}', 'NaN', t)
    ON CONFLICT DO NOTHING;

    SELECT count(*)::integer INTO n FROM inventory_events.metric;
    RETURN n;
END;
$$;
COMMENT ON FUNCTION inventory_events.refresh_metrics(interval) IS
  'Refreshes inventory_events.metric without reading the log (the worker calls it every maintenance_interval)';

-- Runs verify() and records its result for Prometheus: the streams found
-- wrong, when, and how long it took. verify() reads the whole log, so it is
-- not part of refresh_metrics(): schedule this (cron, nightly). Returns the
-- number of streams found wrong.
CREATE FUNCTION inventory_events.record_verify()
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t0  timestamptz := clock_timestamp();
    n   bigint;
BEGIN
    PERFORM inventory_events.require_writable('inventory_events.record_verify()');
    SELECT count(*) INTO n FROM inventory_events.verify();
    INSERT INTO inventory_events.metric AS m (name, labels, value, refreshed_at)
    VALUES ('inventory_events_verify_drifted_streams', '{}', n, clock_timestamp()),
           ('inventory_events_verify_last_run_timestamp_seconds', '{}', extract(epoch FROM t0), clock_timestamp()),
           ('inventory_events_verify_duration_seconds', '{}', extract(epoch FROM clock_timestamp() - t0), clock_timestamp())
    ON CONFLICT (name, labels) DO UPDATE SET value = excluded.value, refreshed_at = excluded.refreshed_at;
    RETURN n;
END;
$$;
COMMENT ON FUNCTION inventory_events.record_verify() IS
  'Runs verify() and records the streams it finds wrong in inventory_events.metric (schedule it; it reads the log)';

REVOKE ALL ON inventory_events.metric FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION inventory_events.refresh_metrics(interval), inventory_events.record_verify() FROM PUBLIC;

-- === Lifecycle and supply in C (issue 14) ===
-- release, pick, ship, pick_short, expire_reservations (src/lifecycle.c) and
-- transfer, receive_transfer, receive_po (src/supply.c) become C on the
-- prepared-event path of append(); their PL/pgSQL helpers go. CREATE OR
-- REPLACE keeps each function's grants and comment.
DROP FUNCTION inventory_events.lock_reservation(text, text);
DROP FUNCTION inventory_events.move_allocations(inventory_events.reservation, text, bigint, text, text, text, text);
DROP FUNCTION inventory_events.replayed_events(text, text);
DROP FUNCTION inventory_events.open_quantity(text, text, text, text, inventory_events.bucket);
DROP FUNCTION inventory_events.idempotent_event(text, text);
DROP FUNCTION inventory_events.lock_skus(text[]);
DROP FUNCTION inventory_events.lock_streams(text, text[], text);

CREATE OR REPLACE FUNCTION inventory_events.release(channel text, ref text, qty bigint DEFAULT NULL,
                                         reason text DEFAULT 'cancelled', source text DEFAULT NULL,
                                         idempotency_key text DEFAULT NULL)
RETURNS SETOF inventory_events.movement
AS 'MODULE_PATHNAME', 'ie_release'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;

CREATE OR REPLACE FUNCTION inventory_events.pick(channel text, ref text, qty bigint DEFAULT NULL,
                                      location text DEFAULT NULL, source text DEFAULT NULL,
                                      idempotency_key text DEFAULT NULL)
RETURNS SETOF inventory_events.movement
AS 'MODULE_PATHNAME', 'ie_pick'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;

CREATE OR REPLACE FUNCTION inventory_events.ship(channel text, ref text, qty bigint DEFAULT NULL,
                                      source text DEFAULT NULL, idempotency_key text DEFAULT NULL)
RETURNS SETOF inventory_events.movement
AS 'MODULE_PATHNAME', 'ie_ship'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;

CREATE OR REPLACE FUNCTION inventory_events.pick_short(channel text, ref text, qty bigint, location text DEFAULT NULL,
                                            reason text DEFAULT NULL, source text DEFAULT NULL,
                                            idempotency_key text DEFAULT NULL)
RETURNS SETOF inventory_events.movement
AS 'MODULE_PATHNAME', 'ie_pick_short'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;

CREATE OR REPLACE FUNCTION inventory_events.expire_reservations(max_reservations integer DEFAULT 1000)
RETURNS integer
AS 'MODULE_PATHNAME', 'ie_expire_reservations'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;

CREATE OR REPLACE FUNCTION inventory_events.transfer(sku text, from_location text, to_location text, qty bigint,
                                          ref text, expected_date date DEFAULT NULL, lot text DEFAULT NULL,
                                          source text DEFAULT NULL, idempotency_key text DEFAULT NULL)
RETURNS SETOF inventory_events.movement
AS 'MODULE_PATHNAME', 'ie_transfer'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;

CREATE OR REPLACE FUNCTION inventory_events.receive_transfer(sku text, to_location text, qty bigint, ref text,
                                                  lot text DEFAULT NULL, source text DEFAULT NULL,
                                                  idempotency_key text DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'ie_receive_transfer'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;

CREATE OR REPLACE FUNCTION inventory_events.receive_po(sku text, location text, qty bigint, ref text,
                                            lot text DEFAULT NULL, source text DEFAULT NULL,
                                            idempotency_key text DEFAULT NULL)
RETURNS SETOF inventory_events.movement
AS 'MODULE_PATHNAME', 'ie_receive_po'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;

-- Room for HOT updates of the rows the lifecycle updates in place (new pages).
ALTER TABLE inventory_events.reservation SET (fillfactor = 90);
ALTER TABLE inventory_events.allocation SET (fillfactor = 70);
-- === end of lifecycle and supply in C ===
-- === Channel rule changes publish themselves (issue 14) ===
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

REVOKE EXECUTE ON FUNCTION inventory_events.rules_changed() FROM PUBLIC;
-- === end of channel rule changes ===

-- Publisher step in C (issue 14)
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
CREATE OR REPLACE FUNCTION inventory_events.publish(max_events integer DEFAULT 10000)
RETURNS TABLE (events integer, publications integer, next_due_ms bigint)
AS 'MODULE_PATHNAME', 'ie_publish'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
-- The publisher replaces a channel's row in place for every change: room on
-- each page lets those updates be HOT.
ALTER TABLE inventory_events.channel_shown SET (fillfactor = 70);
-- === end of publisher step in C ===

-- Replay of operations that record no event (issue 14)
-- The idempotency keys of operations that recorded no event: a release that
-- only cancelled backordered units. A retry with the same source and key is
-- recognised by its events or by this row, and changes nothing.
CREATE TABLE inventory_events.operation_key (
    source           text NOT NULL,
    idempotency_key  text NOT NULL,
    operation        text NOT NULL CHECK (operation IN ('release')),
    reservation_id   bigint NOT NULL REFERENCES inventory_events.reservation,
    qty              bigint NOT NULL CHECK (qty > 0),
    recorded_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, idempotency_key)
);
COMMENT ON TABLE inventory_events.operation_key IS
  'Idempotency keys of operations that recorded no event (a release of backordered units only)';
SELECT pg_catalog.pg_extension_config_dump('inventory_events.operation_key', '');
REVOKE ALL ON inventory_events.operation_key FROM PUBLIC;
-- === end of replay of operations that record no event ===

-- Lot traceability (issue 15, part 4)
-- On a large log, building the index reads the event table once.
-- A lot's events, for lot_trace(): only events of lot-controlled items.
CREATE INDEX event_lot_idx ON inventory_events.event (sku, lot) WHERE lot <> '';

-- A lot's trail for a recall, in one call: where its units came from
-- (receipts, with their source documents in ref and source; and customer
-- returns), where they are now (per location and physical bucket, from the
-- stock rows), and where they went (shipments, with their orders and
-- channels). The lot's events are read through event_lot_idx, so the cost
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
REVOKE EXECUTE ON FUNCTION inventory_events.lot_trace(text, text) FROM PUBLIC;
-- === end of lot traceability ===

-- Listings and channel identifiers (issue 15, part 1)
-- Listings: what a channel sells, and under which identifier (an Amazon
-- seller SKU or ASIN, a Shopify inventory item id, a retailer's part number).
-- A channel with at least one row here sells only the skus it lists (listed);
-- a channel with none sells every item of its sourcing locations under our
-- sku. A listing may override the channel's buffers, allocation and cap for
-- its sku. One identifier names one sku per channel: channel_sku, or our sku
-- where it is null.
CREATE TABLE inventory_events.channel_item (
    channel         text NOT NULL REFERENCES inventory_events.channel ON DELETE CASCADE,
    sku             text NOT NULL REFERENCES inventory_events.item ON DELETE CASCADE,
    channel_sku     text CHECK (channel_sku <> ''),
    listed          boolean NOT NULL DEFAULT true,
    buffer_fixed    bigint CHECK (buffer_fixed >= 0),
    buffer_pct      numeric CHECK (buffer_pct BETWEEN 0 AND 100),
    allocation_pct  numeric CHECK (allocation_pct BETWEEN 0 AND 100),
    cap             bigint CHECK (cap >= 0),
    PRIMARY KEY (channel, sku)
);
CREATE UNIQUE INDEX channel_item_channel_sku_key
    ON inventory_events.channel_item (channel, (coalesce(channel_sku, sku)));
COMMENT ON TABLE inventory_events.channel_item IS
  'Listings: the skus a channel sells (a channel without rows sells all), its identifiers and rule overrides';
COMMENT ON COLUMN inventory_events.channel_item.channel_sku IS
  'The channel''s identifier of the item; null: our sku';
COMMENT ON COLUMN inventory_events.channel_item.listed IS
  'false: delisted (published as 0 once; reservations refused with IE008)';

SELECT pg_catalog.pg_extension_config_dump('inventory_events.channel_item', '');
REVOKE ALL ON inventory_events.channel_item FROM PUBLIC;
CREATE TRIGGER channel_item_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON inventory_events.channel_item
    FOR EACH STATEMENT EXECUTE FUNCTION inventory_events.master_data_changed();
ALTER TABLE inventory_events.channel_item ENABLE ALWAYS TRIGGER channel_item_changed;

-- The identifier of each reservation, publication and last value shown on a
-- channel with listings. Nullable: adding them rewrites no table.
ALTER TABLE inventory_events.reservation ADD COLUMN channel_sku text;
COMMENT ON COLUMN inventory_events.reservation.channel_sku IS
  'The item''s identifier on the channel (its listing''s channel_sku) when reserved; null: our sku';
ALTER TABLE inventory_events.publication ADD COLUMN channel_sku text;
COMMENT ON COLUMN inventory_events.publication.channel_sku IS
  'The sku''s identifier on the channel (its listing''s channel_sku); null: our sku';
ALTER TABLE inventory_events.channel_shown ADD COLUMN channel_sku text;

-- Functions whose signature or result changes are dropped and created
-- again; every role keeps its EXECUTE on them. Before each DROP, this
-- records the function's ACL (in a setting local to this transaction) under
-- its new signature; "Grants kept across DROP and CREATE" at the end of this
-- script makes the grants again and drops this helper.
CREATE FUNCTION inventory_events.upgrade_keep_grants(functions jsonb)
RETURNS void
LANGUAGE sql
AS $$
SELECT pg_catalog.set_config('inventory_events_upgrade.kept_acls',
       (coalesce(nullif(pg_catalog.current_setting('inventory_events_upgrade.kept_acls', true), ''), '{}')::jsonb
        || coalesce(pg_catalog.jsonb_object_agg(f.value, coalesce(p.proacl::text, '')), '{}'))::text, true)
  FROM pg_catalog.jsonb_each_text(functions) f
  JOIN pg_catalog.pg_proc p ON p.oid = f.key::pg_catalog.regprocedure;
$$;

-- publications_since() returns the identifier too: a new result column,
-- which CREATE OR REPLACE cannot add.
SELECT inventory_events.upgrade_keep_grants(
  '{"inventory_events.publications_since(text,bigint)": "inventory_events.publications_since(text,bigint)"}');
DROP FUNCTION inventory_events.publications_since(text, bigint);
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
REVOKE EXECUTE ON FUNCTION inventory_events.publications_since(text, bigint) FROM PUBLIC;

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

REVOKE EXECUTE ON FUNCTION inventory_events.listings_changed() FROM PUBLIC;

-- === end of listings and channel identifiers ===

-- A pending mark that is already there is locked by the transaction that
-- marks it again (ON CONFLICT ... DO UPDATE ... WHERE false updates nothing
-- and locks the row), and the publisher takes only marks no transaction
-- holds (SKIP LOCKED): a change of rules is published after it committed,
-- with what it changed. (With DO NOTHING a publisher step could take the
-- mark while the change was in progress, publish the old rules, and leave
-- nothing marked for the change.)
CREATE OR REPLACE FUNCTION inventory_events.republish(channel text)
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
-- === end of pending marks held by their transaction ===

-- EDI 846 from channel availability (issue 15, part 5)
-- A channel that is an EDI trading partner: the interchange identifiers of
-- both sides, the qualifier of the partner's item identifiers (LIN), whether
-- it wants quantities per location (SDQ), the last control number used and
-- how far the last 846 covered the channel's publications.
CREATE TABLE inventory_events.edi_partner (
    channel               text PRIMARY KEY REFERENCES inventory_events.channel ON DELETE CASCADE,
    sender_qualifier      text NOT NULL DEFAULT 'ZZ' CHECK (sender_qualifier ~ '^[0-9A-Z]{2}$'),
    sender_id             text NOT NULL CHECK (sender_id ~ '^[0-9A-Za-z .&/()-]{1,15}$'),
    receiver_qualifier    text NOT NULL DEFAULT 'ZZ' CHECK (receiver_qualifier ~ '^[0-9A-Z]{2}$'),
    receiver_id           text NOT NULL CHECK (receiver_id ~ '^[0-9A-Za-z .&/()-]{1,15}$'),
    application_sender    text CHECK (application_sender ~ '^[0-9A-Za-z .&/()-]{2,15}$'),
    application_receiver  text CHECK (application_receiver ~ '^[0-9A-Za-z .&/()-]{2,15}$'),
    usage                 text NOT NULL DEFAULT 'P' CHECK (usage IN ('P', 'T')),
    item_qualifier        text NOT NULL DEFAULT 'BP' CHECK (item_qualifier ~ '^[0-9A-Z]{2}$'),
    by_location           boolean NOT NULL DEFAULT false,
    last_control          bigint NOT NULL DEFAULT 0 CHECK (last_control BETWEEN 0 AND 999999999),
    last_seq              bigint NOT NULL DEFAULT 0 CHECK (last_seq >= 0),
    last_sent_at          timestamptz,
    -- GS02 and GS03 are 2 to 15 characters: a one-character interchange id needs its application code.
    CHECK (application_sender IS NOT NULL OR length(sender_id) >= 2),
    CHECK (application_receiver IS NOT NULL OR length(receiver_id) >= 2)
);
COMMENT ON TABLE inventory_events.edi_partner IS
  'Channels that are EDI trading partners: interchange identifiers, control numbers, what the last 846 covered';
COMMENT ON COLUMN inventory_events.edi_partner.application_sender IS 'GS02; null: sender_id';
COMMENT ON COLUMN inventory_events.edi_partner.application_receiver IS 'GS03; null: receiver_id';
COMMENT ON COLUMN inventory_events.edi_partner.usage IS 'ISA15: P production, T test';
COMMENT ON COLUMN inventory_events.edi_partner.item_qualifier IS
  'LIN qualifier of the partner''s item identifier (channel_item.channel_sku): BP buyer''s part number, UP UPC, ...';
COMMENT ON COLUMN inventory_events.edi_partner.by_location IS 'SDQ segments: each sourcing location''s ATP';
COMMENT ON COLUMN inventory_events.edi_partner.last_control IS
  'The control number of the last 846 (ISA13, GS06 and ST02), 1 to 999999999, then 1 again';
COMMENT ON COLUMN inventory_events.edi_partner.last_seq IS
  'The channel''s publication sequence number the last 846 covered: an incremental 846 reports what was published after it';
SELECT pg_catalog.pg_extension_config_dump('inventory_events.edi_partner', '');

-- A value as an X12 data element of min to max characters: refused when it
-- is shorter or longer, or holds anything but printable ASCII (which the
-- 004010 basic and extended character sets need) or one of our delimiters
-- (element *, segment ~, component >).
CREATE FUNCTION inventory_events.x12_element(what text, value text, min integer, max integer)
RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF value ~ '[^ -~]' OR value ~ '[*~>]' OR length(value) NOT BETWEEN min AND max THEN
        RAISE EXCEPTION 'the % "%" cannot be sent in an X12 document', what, value
              USING ERRCODE = 'invalid_parameter_value',
                    DETAIL = format('An X12 %s is %s to %s printable ASCII characters, without *, ~ or >.', what, min, max);
    END IF;
    RETURN value;
END;
$$;

-- One 846 transaction set of an interchange: ST (its number in the group,
-- 0001 on), BIA (F or I with the control number), the LIN loops, CTT, SE.
CREATE FUNCTION inventory_events.x12_transaction_set(n integer, incremental boolean, control bigint,
                                                    utc timestamp, loops text[], lines integer)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
RETURN pg_catalog.format('ST*846*%s~', lpad(n::text, 4, '0'))
    || pg_catalog.format('BIA*00*SI*%s%s*%s*%s~', CASE WHEN incremental THEN 'I' ELSE 'F' END, control,
                         pg_catalog.to_char(utc, 'YYYYMMDD'), pg_catalog.to_char(utc, 'HH24MI'))
    || array_to_string(loops, '~') || '~'
    || pg_catalog.format('CTT*%s~', lines)
    || pg_catalog.format('SE*%s*%s~', cardinality(loops) + 4, lpad(n::text, 4, '0'));

-- An X12 846 Inventory Inquiry/Advice (version 004010) for a channel that is
-- an EDI trading partner, as one text: ISA/GS envelopes under the partner's
-- next control number, then transaction sets ST..SE of at most 10,000 LIN
-- loops each (ST02 0001, 0002, ...), per sku in sku order a LIN with the
-- partner's identifier (item_qualifier, the listing's channel_sku) and ours
-- (VN), where the partner wants it (by_location) SDQ with each sourcing
-- location's ATP, QTY*33 available for sale (channel_availability()),
-- QTY*17 on hand at the channel's sourcing locations (not for kits), and
-- for a channel with a future view QTY*29 projected available with its
-- DTM*018 date (per day of availability_timeline() after today); CTT, SE,
-- GE, IEA. A full 846 lists every sku the channel sells (what it lists, a
-- delisted one as 0, or, without listings, every item stocked at its
-- sourcing locations and every kit); an incremental one (incremental =>
-- true) lists the skus published to the channel since the last 846, each
-- with the value and identifier it was last published with (a delisting is
-- 0). Null, without using a control number, when there is no sku to send.
-- Segments end with ~, without line breaks; dates and times are UTC.
CREATE FUNCTION inventory_events.edi_846(channel text, incremental boolean DEFAULT false)
RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c        inventory_events.channel;
    p        inventory_events.edi_partner;
    control  bigint;
    upto     bigint;
    utc      timestamp := now() AT TIME ZONE 'UTC';
    sets     text[] := '{}';    -- the transaction sets ST..SE, one text each
    seg      text[] := '{}';    -- the segments of the set being built, LIN to the last QTY
    lines    integer := 0;      -- LIN loops in it
    r        record;
    f        record;
    pairs    text[];
BEGIN
    PERFORM inventory_events.require_writable('inventory_events.edi_846()');
    -- A null would read as neither variant: an empty full 846 that marks every publication as sent.
    IF incremental IS NULL THEN
        RAISE EXCEPTION 'incremental must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT * INTO c FROM inventory_events.channel x WHERE x.code = edi_846.channel;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown channel "%"', edi_846.channel
              USING ERRCODE = 'foreign_key_violation', HINT = 'Add it to inventory_events.channel first.';
    END IF;
    -- One 846 at a time per partner: control numbers in the order of the documents.
    SELECT * INTO p FROM inventory_events.edi_partner x WHERE x.channel = c.code FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'channel "%" is not an EDI trading partner', c.code
              USING ERRCODE = 'invalid_parameter_value',
                    HINT = 'Add its interchange identifiers to inventory_events.edi_partner.';
    END IF;
    upto := coalesce((SELECT cp.last_seq FROM inventory_events.channel_publisher cp WHERE cp.channel = c.code), 0);
    control := p.last_control % 999999999 + 1;

    FOR r IN
        SELECT s.sku, s.identifier, s.available,
               EXISTS (SELECT FROM inventory_events.kit_component k WHERE k.kit = s.sku) AS kit
          FROM (SELECT i.sku, coalesce(li.channel_sku, i.sku) AS identifier,
                       inventory_events.channel_availability(c.code, i.sku) AS available
                  FROM inventory_events.item i
                  LEFT JOIN inventory_events.channel_item li ON li.channel = c.code AND li.sku = i.sku
                 WHERE NOT incremental
                   AND CASE WHEN EXISTS (SELECT FROM inventory_events.channel_item x WHERE x.channel = c.code)
                            THEN li.sku IS NOT NULL     -- a delisted sku as 0
                            ELSE EXISTS (SELECT FROM inventory_events.stock st
                                           JOIN inventory_events.channel_sources(c.code) cl ON cl.location = st.location
                                          WHERE st.sku = i.sku)
                                 OR EXISTS (SELECT FROM inventory_events.kit_component k WHERE k.kit = i.sku) END
                UNION ALL
                -- The last publication of each (sku, identifier) since the last 846.
                (SELECT DISTINCT ON (pb.sku, coalesce(pb.channel_sku, pb.sku))
                        pb.sku, coalesce(pb.channel_sku, pb.sku), pb.available
                   FROM inventory_events.publication pb
                  WHERE incremental AND pb.channel = c.code AND pb.seq > p.last_seq AND pb.seq <= upto
                  ORDER BY pb.sku, coalesce(pb.channel_sku, pb.sku), pb.seq DESC)) s
         ORDER BY s.sku, s.identifier
    LOOP
        -- One segment per assignment: body := body || x appends in place.
        IF lines = 10000 THEN
            sets := sets || inventory_events.x12_transaction_set(cardinality(sets) + 1, incremental, control, utc, seg, lines);
            seg := '{}';
            lines := 0;
        END IF;
        lines := lines + 1;
        seg := seg || pg_catalog.format('LIN**%s*%s*VN*%s', p.item_qualifier,
                                        inventory_events.x12_element('product identifier', r.identifier, 1, 48),
                                        inventory_events.x12_element('product identifier', r.sku, 1, 48));
        IF p.by_location AND NOT r.kit THEN
            -- Up to ten location and quantity pairs per SDQ segment (before the QTY loop).
            SELECT array_agg(inventory_events.x12_element('identification code', b.location, 2, 50) || '*' || b.atp
                             ORDER BY b.location) INTO pairs
              FROM inventory_events.stock_by_location b
              JOIN inventory_events.channel_sources(c.code) cl ON cl.location = b.location
             WHERE b.sku = r.sku;
            FOR i IN 0 .. coalesce(cardinality(pairs), 0) - 1 BY 10 LOOP
                seg := seg || ('SDQ*EA*92*' || array_to_string(pairs[i + 1 : i + 10], '*'));
            END LOOP;
        END IF;
        seg := seg || pg_catalog.format('QTY*33*%s*EA', r.available);
        IF NOT r.kit THEN
            seg := seg || pg_catalog.format('QTY*17*%s*EA',
                                            (SELECT coalesce(sum(st.on_hand), 0)
                                               FROM inventory_events.stock st
                                               JOIN inventory_events.channel_sources(c.code) cl ON cl.location = st.location
                                              WHERE st.sku = r.sku));
            IF c.future_view THEN
                FOR f IN SELECT t.available_on, t.available
                           FROM inventory_events.availability_timeline(c.code, r.sku) t
                          WHERE t.available_on > current_date ORDER BY t.available_on
                LOOP
                    seg := seg || pg_catalog.format('QTY*29*%s*EA', f.available);
                    seg := seg || pg_catalog.format('DTM*018*%s', pg_catalog.to_char(f.available_on, 'YYYYMMDD'));
                END LOOP;
            END IF;
        END IF;
    END LOOP;
    -- Nothing to send (an 846 needs a LIN): no document, no control number used.
    IF lines = 0 THEN
        RETURN NULL;
    END IF;
    sets := sets || inventory_events.x12_transaction_set(cardinality(sets) + 1, incremental, control, utc, seg, lines);

    UPDATE inventory_events.edi_partner x SET last_control = control, last_seq = upto, last_sent_at = now()
     WHERE x.channel = c.code;
    RETURN pg_catalog.format('ISA*00*%s*00*%s*%s*%s*%s*%s*%s*%s*U*00401*%s*0*%s*>~',
                             repeat(' ', 10), repeat(' ', 10),
                             p.sender_qualifier, rpad(p.sender_id, 15), p.receiver_qualifier, rpad(p.receiver_id, 15),
                             pg_catalog.to_char(utc, 'YYMMDD'), pg_catalog.to_char(utc, 'HH24MI'),
                             lpad(control::text, 9, '0'), p.usage)
        || pg_catalog.format('GS*IB*%s*%s*%s*%s*%s*X*004010~',
                             coalesce(p.application_sender, p.sender_id), coalesce(p.application_receiver, p.receiver_id),
                             pg_catalog.to_char(utc, 'YYYYMMDD'), pg_catalog.to_char(utc, 'HH24MI'), control)
        || array_to_string(sets, '')
        || pg_catalog.format('GE*%s*%s~', cardinality(sets), control)
        || pg_catalog.format('IEA*1*%s~', lpad(control::text, 9, '0'));
END;
$$;
COMMENT ON FUNCTION inventory_events.edi_846(text, boolean) IS
  'An X12 846 Inventory Inquiry/Advice of a channel that is an EDI trading partner: full, or what was published since the last';
REVOKE ALL ON inventory_events.edi_partner FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION inventory_events.x12_element(text, text, integer, integer),
    inventory_events.x12_transaction_set(integer, boolean, bigint, timestamp, text[], integer),
    inventory_events.edi_846(text, boolean) FROM PUBLIC;
-- === end of EDI 846 ===

-- Location hierarchy and legal entities (issue 15, part 2)
-- A cycle in the 0.2.0 data would make a location its own ancestor: refused
-- here, before anything reads the tree (locations form a tree from now on).
DO $cycle$
DECLARE
    bad text;
BEGIN
    WITH RECURSIVE up (start, code, depth) AS (
        SELECT l.code, l.parent, 1 FROM inventory_events.location l WHERE l.parent IS NOT NULL
        UNION ALL
        SELECT up.start, l.parent, up.depth + 1 FROM up JOIN inventory_events.location l ON l.code = up.code
         WHERE l.parent IS NOT NULL AND up.code <> up.start AND up.depth < 10000)
    SELECT min(up.start) INTO bad FROM up WHERE up.code = up.start;
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'location "%" is its own ancestor', bad
              USING ERRCODE = 'check_violation',
                    HINT = 'Locations form a tree from 0.3.0 on: correct location.parent, then update again.';
    END IF;
END;
$cycle$;
ALTER TYPE inventory_events.location_kind ADD VALUE 'region';
ALTER TYPE inventory_events.location_kind ADD VALUE 'zone';
-- The legal entities that own stock (multi-entity distribution).
CREATE TABLE inventory_events.entity (
    code         text PRIMARY KEY,
    description  text NOT NULL DEFAULT ''
);

SELECT pg_catalog.pg_extension_config_dump('inventory_events.entity', '');
REVOKE ALL ON inventory_events.entity FROM PUBLIC;
ALTER TABLE inventory_events.location
    ADD COLUMN entity text REFERENCES inventory_events.entity DEFERRABLE INITIALLY DEFERRED;
COMMENT ON COLUMN inventory_events.location.parent IS 'The node above: a channel sourcing from it sources from this location';
COMMENT ON COLUMN inventory_events.location.entity IS 'The legal entity that owns its stock; null: its parent''s';
ALTER TABLE inventory_events.channel ADD COLUMN entity text REFERENCES inventory_events.entity;
COMMENT ON COLUMN inventory_events.channel.entity IS
  'The legal entity that sells on the channel: it sells that entity''s stock only (and what intercompany allows); null: any';
-- Intercompany: the channels of entity seller may sell the stock of entity owner.
CREATE TABLE inventory_events.intercompany (
    seller  text NOT NULL REFERENCES inventory_events.entity ON DELETE CASCADE,
    owner   text NOT NULL REFERENCES inventory_events.entity ON DELETE CASCADE,
    PRIMARY KEY (seller, owner),
    CHECK (seller <> owner)
);
COMMENT ON TABLE inventory_events.intercompany IS
  'Intercompany rules: the channels of the seller entity may sell stock the owner entity holds';

SELECT pg_catalog.pg_extension_config_dump('inventory_events.intercompany', '');
REVOKE ALL ON inventory_events.intercompany FROM PUBLIC;
CREATE TRIGGER intercompany_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON inventory_events.intercompany
    FOR EACH STATEMENT EXECUTE FUNCTION inventory_events.master_data_changed();
ALTER TABLE inventory_events.intercompany ENABLE ALWAYS TRIGGER intercompany_changed;
-- Inserts count for locations too: a new location below a node is a new
-- sourcing location of every channel that sources from the node.
DROP TRIGGER location_changed ON inventory_events.location;
CREATE TRIGGER location_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON inventory_events.location
    FOR EACH STATEMENT EXECUTE FUNCTION inventory_events.master_data_changed();
ALTER TABLE inventory_events.location ENABLE ALWAYS TRIGGER location_changed;
-- A location may not be its own ancestor (checked at commit, as parent is).
-- The walk up locks each ancestor FOR SHARE: two transactions that close a
-- cycle between them wait for each other (one fails, a deadlock) or, the
-- other committed, see its parent (READ COMMITTED) or fail to serialise
-- (REPEATABLE READ). A row updated again later in the transaction is
-- checked by that update's own trigger.
CREATE FUNCTION inventory_events.location_acyclic()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    up text := NEW.parent;
    steps integer := 0;
BEGIN
    IF NOT EXISTS (SELECT FROM inventory_events.location l
                    WHERE l.code = NEW.code AND l.parent IS NOT DISTINCT FROM NEW.parent) THEN
        RETURN NULL;
    END IF;
    WHILE up IS NOT NULL LOOP
        IF up = NEW.code OR steps > 10000 THEN
            RAISE EXCEPTION 'location "%" would be its own ancestor', NEW.code
                  USING ERRCODE = 'check_violation',
                        HINT = 'The locations form a tree: give it a parent that is not below it.';
        END IF;
        steps := steps + 1;
        SELECT l.parent INTO up FROM inventory_events.location l WHERE l.code = up FOR SHARE;
        IF NOT FOUND THEN
            RETURN NULL;    -- the foreign key reports a missing parent
        END IF;
    END LOOP;
    RETURN NULL;
END;
$$;
CREATE CONSTRAINT TRIGGER location_acyclic AFTER INSERT OR UPDATE OF parent ON inventory_events.location
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION inventory_events.location_acyclic();
REVOKE EXECUTE ON FUNCTION inventory_events.location_acyclic() FROM PUBLIC;

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

REVOKE ALL ON inventory_events.location_tree, inventory_events.stock_by_node FROM PUBLIC;
-- A channel's sourcing locations as availability and reservations use them:
-- its channel_location rows expanded through the location hierarchy (a node
-- stands for every location below it, each with the priority of the nearest
-- row naming it or an ancestor), less the locations whose owner the
-- channel's entity may not sell (intercompany).
CREATE FUNCTION inventory_events.channel_sources(channel text)
RETURNS TABLE (location text, priority integer)
AS 'MODULE_PATHNAME', 'ie_channel_sources'
LANGUAGE C STABLE STRICT;
COMMENT ON FUNCTION inventory_events.channel_sources(text) IS
  'The locations a channel sources from: channel_location through the hierarchy, within what its entity may sell';
REVOKE EXECUTE ON FUNCTION inventory_events.channel_sources(text) FROM PUBLIC;

-- What reads a channel's sourcing locations reads them through channel_sources().
CREATE OR REPLACE VIEW inventory_events.channel_stock AS
SELECT c.code AS channel, s.sku, p.pool, p.velocity_buffer, p.available
  FROM inventory_events.channel c
  CROSS JOIN LATERAL (SELECT DISTINCT st.sku
                        FROM inventory_events.channel_sources(c.code) cl
                        JOIN inventory_events.stock st ON st.location = cl.location) s
  CROSS JOIN LATERAL inventory_events.channel_position(c.code, s.sku) p;
CREATE OR REPLACE FUNCTION inventory_events.availability_timeline(channel text, sku text, horizon interval DEFAULT NULL)
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

REVOKE EXECUTE ON FUNCTION inventory_events.hierarchy_changed() FROM PUBLIC;
-- On a large log, building the index reads the event table once.
-- The two legs of transfers, for intercompany_transfer: only transfer events.
CREATE INDEX event_transfer_idx ON inventory_events.event (xid, id)
 WHERE event_type IN ('transfer_out', 'transfer_in_transit');

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
REVOKE ALL ON inventory_events.intercompany_transfer FROM PUBLIC;

-- A channel whose channel_location names a location with locations below it
-- sources from those too from now on: its skus are published again.
INSERT INTO inventory_events.publication_pending (channel, sku)
SELECT DISTINCT cl.channel, i.sku
  FROM inventory_events.channel_location cl
  JOIN inventory_events.location below ON below.parent = cl.location
 CROSS JOIN inventory_events.item i
ON CONFLICT DO NOTHING;
-- === end of location hierarchy and legal entities ===

-- ---------------------------------------------------------------------------
-- Serial numbers (issue 15, part 3)
-- ---------------------------------------------------------------------------

-- As regulated and high_value above: filled, then given its default, so
-- that no "missing value" is stored (a fresh install has none).
ALTER TABLE inventory_events.item ADD COLUMN serialized boolean;
UPDATE inventory_events.item SET serialized = false;
ALTER TABLE inventory_events.item ALTER COLUMN serialized SET DEFAULT false,
    ALTER COLUMN serialized SET NOT NULL;
COMMENT ON COLUMN inventory_events.item.serialized IS 'One serial number per base unit, named on every event that moves units';
ALTER TABLE inventory_events.event_staging ADD COLUMN serials text[];

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

REVOKE ALL ON inventory_events.serial, inventory_events.serial_event, inventory_events.serial_history,
    inventory_events.serial_drift FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION inventory_events.serial_trace(text, text),
    inventory_events.item_serialized_changed() FROM PUBLIC;

-- The functions that move units take the serials they move: a new last
-- parameter, serials text[] (null: none; receive_transfer() and
-- dispose_return() then take those their ref put in the bucket). A new parameter is a new
-- signature, so each is dropped and created again, keeping its grants.
-- receive_return()'s body refers to append(): it goes first.
SELECT inventory_events.upgrade_keep_grants('{
   "inventory_events.append(text,text,inventory_events.event_type,bigint,text,text,timestamp with time zone,text,text,text,text,bigint,jsonb,inventory_events.bucket,inventory_events.bucket,text,date,bigint,uuid,uuid)":
     "inventory_events.append(text,text,inventory_events.event_type,bigint,text,text,timestamp with time zone,text,text,text,text,bigint,jsonb,inventory_events.bucket,inventory_events.bucket,text,date,bigint,uuid,uuid,text[])",
   "inventory_events.pick(text,text,bigint,text,text,text)":
     "inventory_events.pick(text,text,bigint,text,text,text,text[])",
   "inventory_events.ship(text,text,bigint,text,text)":
     "inventory_events.ship(text,text,bigint,text,text,text[])",
   "inventory_events.transfer(text,text,text,bigint,text,date,text,text,text)":
     "inventory_events.transfer(text,text,text,bigint,text,date,text,text,text,text[])",
   "inventory_events.receive_transfer(text,text,bigint,text,text,text,text)":
     "inventory_events.receive_transfer(text,text,bigint,text,text,text,text,text[])",
   "inventory_events.dispose_return(text,text,bigint,text,text,text,text,text)":
     "inventory_events.dispose_return(text,text,bigint,text,text,text,text,text,text[])",
   "inventory_events.receive_po(text,text,bigint,text,text,text,text)":
     "inventory_events.receive_po(text,text,bigint,text,text,text,text,text[])",
   "inventory_events.receive_return(text,text,bigint,text,text,text,text,text,text)":
     "inventory_events.receive_return(text,text,bigint,text,text,text,text,text,text,text[])"
}');
DROP FUNCTION inventory_events.receive_return(text, text, bigint, text, text, text, text, text, text);
DROP FUNCTION inventory_events.append(text, text, inventory_events.event_type, bigint, text, text, timestamptz,
    text, text, text, text, bigint, jsonb, inventory_events.bucket, inventory_events.bucket, text, date, bigint,
    uuid, uuid);
DROP FUNCTION inventory_events.append_lifecycle(text, text, inventory_events.event_type, bigint, text, text,
    timestamptz, text, text, text, text, bigint, jsonb, inventory_events.bucket, inventory_events.bucket, text,
    date, bigint, uuid, uuid);
DROP FUNCTION inventory_events.pick(text, text, bigint, text, text, text);
DROP FUNCTION inventory_events.ship(text, text, bigint, text, text);
DROP FUNCTION inventory_events.transfer(text, text, text, bigint, text, date, text, text, text);
DROP FUNCTION inventory_events.receive_po(text, text, bigint, text, text, text, text);
DROP FUNCTION inventory_events.receive_transfer(text, text, bigint, text, text, text, text);
DROP FUNCTION inventory_events.dispose_return(text, text, bigint, text, text, text, text, text);

CREATE FUNCTION inventory_events.append(
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
    causation_id      uuid DEFAULT NULL,
    serials           text[] DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'ie_append'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION inventory_events.append IS 'Appends one inventory event; returns its id';

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
    causation_id      uuid DEFAULT NULL,
    serials           text[] DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'ie_append_lifecycle'
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION inventory_events.append_lifecycle IS
  'Internal: appends one event, lifecycle events included; for the functions that own reservations';

CREATE FUNCTION inventory_events.pick(channel text, ref text, qty bigint DEFAULT NULL,
                                      location text DEFAULT NULL, source text DEFAULT NULL,
                                      idempotency_key text DEFAULT NULL, serials text[] DEFAULT NULL)
RETURNS SETOF inventory_events.movement
AS 'MODULE_PATHNAME', 'ie_pick'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION inventory_events.pick IS 'Picks reserved stock of an order line (null qty: all of it; serialized items: the serials picked)';
CREATE FUNCTION inventory_events.ship(channel text, ref text, qty bigint DEFAULT NULL,
                                      source text DEFAULT NULL, idempotency_key text DEFAULT NULL,
                                      serials text[] DEFAULT NULL)
RETURNS SETOF inventory_events.movement
AS 'MODULE_PATHNAME', 'ie_ship'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION inventory_events.ship IS 'Ships picked stock of an order line (null qty: all of it; serialized items: the serials it picked, or those named)';

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
CREATE FUNCTION inventory_events.receive_transfer(sku text, to_location text, qty bigint, ref text,
                                                  lot text DEFAULT NULL, source text DEFAULT NULL,
                                                  idempotency_key text DEFAULT NULL, serials text[] DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'ie_receive_transfer'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION inventory_events.receive_transfer IS
  'Completes (part of) a transfer: in_transit -> available at the destination';
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

REVOKE EXECUTE ON FUNCTION
    inventory_events.append(text, text, inventory_events.event_type, bigint, text, text, timestamptz, text, text,
                            text, text, bigint, jsonb, inventory_events.bucket, inventory_events.bucket, text, date,
                            bigint, uuid, uuid, text[]),
    inventory_events.append_lifecycle(text, text, inventory_events.event_type, bigint, text, text, timestamptz,
                                      text, text, text, text, bigint, jsonb, inventory_events.bucket,
                                      inventory_events.bucket, text, date, bigint, uuid, uuid, text[]),
    inventory_events.pick(text, text, bigint, text, text, text, text[]),
    inventory_events.ship(text, text, bigint, text, text, text[]),
    inventory_events.transfer(text, text, text, bigint, text, date, text, text, text, text[]),
    inventory_events.receive_po(text, text, bigint, text, text, text, text, text[]),
    inventory_events.receive_return(text, text, bigint, text, text, text, text, text, text, text[]),
    inventory_events.receive_transfer(text, text, bigint, text, text, text, text, text[]),
    inventory_events.dispose_return(text, text, bigint, text, text, text, text, text, text[])
  FROM PUBLIC;
-- === end of serial numbers ===

-- ---------------------------------------------------------------------------
-- Stream snapshots (issue 16, part 2)
-- ---------------------------------------------------------------------------
-- sql/install/035_snapshots.sql as a fresh install has it; then verify(),
-- rebuild(), position_as_of() and sku_position_as_of() read a stream from
-- its newest snapshot (same signatures: CREATE OR REPLACE keeps their grants).

-- A stream folded (stream_fold()): its position, the events counted (those
-- of its base snapshot included: versions 1..n without a gap give events =
-- version), the highest version and its event id, the latest business time
-- and the safety stock folded; the version of the snapshot it started from
-- (0: none) and the events it read after it.
CREATE TYPE inventory_events.stream_state AS (
    "position"    inventory_events.stock_position,
    events        bigint,
    version       bigint,
    event_id      bigint,
    occurred_max  timestamptz,
    safety_stock  bigint,
    base_version  bigint,
    events_read   bigint
);

-- Per stream, its position, safety stock and version as of one of its
-- events (event_id, of that version), and the latest business time among the
-- events it folds (occurred_max): it answers questions about any time at or
-- after occurred_max. Taken by take_snapshots() (the worker's housekeeping)
-- from the stream's previous snapshot and the events after it; verify()
-- proves each stream's newest against that, verify_snapshots() every one.
-- Dumped with the log: an archived month's events are gone, its snapshots
-- are what the positions after it rest on.
CREATE TABLE inventory_events.stream_snapshot (
    sku           text NOT NULL,
    location      text NOT NULL,
    lot           text NOT NULL,
    version       bigint NOT NULL CHECK (version > 0),
    event_id      bigint NOT NULL,
    "position"    inventory_events.stock_position NOT NULL,
    safety_stock  bigint NOT NULL,
    occurred_max  timestamptz NOT NULL,
    taken_at      timestamptz NOT NULL DEFAULT now(),
    -- Taken by archive_before() at the stream's last version in an archived
    -- partition: the events it folds are gone, so it is taken as given
    -- (verify_snapshots() cannot prove it) and kept through history rewrites.
    sealed        boolean NOT NULL DEFAULT false,
    CONSTRAINT stream_snapshot_pkey PRIMARY KEY (sku, location, lot, version)
);
COMMENT ON TABLE inventory_events.stream_snapshot IS
  'A stream''s position as of one of its versions: reads of its history start from the newest that applies';
SELECT pg_catalog.pg_extension_config_dump('inventory_events.stream_snapshot', '');

-- The stream's newest snapshot that applies at "at" (null: the end of time),
-- below through_version when given, plus its events after that snapshot, up
-- to through_version (null: all), those that occurred by "at" counted. With
-- use_snapshots false, every event from the first. A bucket whose total does
-- not fit a bigint is 22003.
CREATE FUNCTION inventory_events.stream_fold(sku text, location text, lot text DEFAULT '',
                                             at timestamptz DEFAULT NULL, through_version bigint DEFAULT NULL,
                                             use_snapshots boolean DEFAULT true)
RETURNS inventory_events.stream_state
AS 'MODULE_PATHNAME', 'ie_stream_fold_sql'
LANGUAGE C STABLE;
COMMENT ON FUNCTION inventory_events.stream_fold(text, text, text, timestamptz, bigint, boolean) IS
  'A stream''s state at a business time, from its newest snapshot that applies and the events after it';

-- Takes a snapshot of every stream with at least min_events events since its
-- newest (default: the setting inventory_events.snapshot_events, 1000), at
-- most max_streams of them (those furthest behind first); returns how many.
-- Each is folded from the events, under the statement's snapshot: the stock
-- row only chooses the candidates. A stream whose versions have a gap (which
-- verify() reports) gets none. Concurrent callers skip each other's.
CREATE FUNCTION inventory_events.take_snapshots(min_events integer DEFAULT NULL, max_streams integer DEFAULT 100000)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    least_events bigint := coalesce(min_events,
                                    nullif(current_setting('inventory_events.snapshot_events', true), '')::integer,
                                    1000);
    taken bigint;
BEGIN
    PERFORM inventory_events.require_writable('inventory_events.take_snapshots()');
    -- Its INSERT must see what committed before the lock below: a statement
    -- snapshot, not one taken when the transaction began.
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'take_snapshots() runs under READ COMMITTED'
              USING ERRCODE = 'invalid_transaction_state',
                    HINT = 'Call it in a READ COMMITTED transaction (the default).';
    END IF;
    IF least_events < 1 OR max_streams IS NULL OR max_streams < 1 THEN
        RAISE EXCEPTION 'min_events and max_streams must be positive'
              USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- Not while a history rewrite drops snapshots (event_rewritten takes the
    -- same lock): the INSERT's snapshot, taken after this lock, sees it.
    LOCK TABLE inventory_events.stream_snapshot IN SHARE ROW EXCLUSIVE MODE;
    INSERT INTO inventory_events.stream_snapshot AS ss
           (sku, location, lot, version, event_id, "position", safety_stock, occurred_max, taken_at)
    SELECT c.sku, c.location, c.lot, f.version, f.event_id, f."position", f.safety_stock, f.occurred_max, now()
      FROM (SELECT s.sku, s.location, s.lot, s.version - coalesce(b.version, 0) AS behind
              FROM inventory_events.stock s
              LEFT JOIN LATERAL (SELECT x.version FROM inventory_events.stream_snapshot x
                                  WHERE x.sku = s.sku AND x.location = s.location AND x.lot = s.lot
                                  ORDER BY x.version DESC LIMIT 1) b ON true
             WHERE s.version >= least_events
               AND s.version - coalesce(b.version, 0) >= least_events
             ORDER BY behind DESC
             LIMIT max_streams) c
     CROSS JOIN LATERAL inventory_events.stream_fold(c.sku, c.location, c.lot) f
     WHERE f.version > f.base_version AND f.events = f.version
    ON CONFLICT DO NOTHING;
    GET DIAGNOSTICS taken = ROW_COUNT;
    RETURN taken;
END;
$$;
COMMENT ON FUNCTION inventory_events.take_snapshots(integer, integer) IS
  'Snapshots every stream with at least min_events events since its newest snapshot; returns how many';

-- Every snapshot proven (newest_only: each stream's newest, as verify()
-- does): its predecessor (or nothing) plus the events between them must give
-- it. All of them read the whole history.
CREATE FUNCTION inventory_events.verify_snapshots(newest_only boolean DEFAULT false)
RETURNS TABLE (sku text, location text, lot text, version bigint,
               stored inventory_events.stock_position, derived inventory_events.stock_position,
               stored_safety_stock bigint, derived_safety_stock bigint, problem text)
LANGUAGE sql STABLE
BEGIN ATOMIC
    SELECT n.sku, n.location, n.lot, n.version, n."position", f."position", n.safety_stock, f.safety_stock,
           CASE WHEN f."position" OPERATOR(inventory_events.<>) n."position" THEN 'position differs'
                WHEN f.version <> n.version OR f.events <> n.version THEN 'events missing'
                WHEN f.event_id <> n.event_id THEN 'event id differs'
                WHEN f.safety_stock <> n.safety_stock THEN 'safety stock differs'
                ELSE 'business time differs' END
      FROM inventory_events.stream_snapshot n
     CROSS JOIN LATERAL inventory_events.stream_fold(n.sku, n.location, n.lot, NULL, n.version) f
     WHERE NOT n.sealed
       AND (NOT coalesce(verify_snapshots.newest_only, false)
            OR n.version = (SELECT max(x.version) FROM inventory_events.stream_snapshot x
                             WHERE x.sku = n.sku AND x.location = n.location AND x.lot = n.lot))
       AND (f."position" OPERATOR(inventory_events.<>) n."position" OR f.version <> n.version
            OR f.events <> n.version OR f.event_id <> n.event_id OR f.safety_stock <> n.safety_stock
            OR f.occurred_max IS DISTINCT FROM n.occurred_max)
     ORDER BY 1, 2, 3, 4;
END;
COMMENT ON FUNCTION inventory_events.verify_snapshots(boolean) IS
  'One row per stream snapshot that its predecessor and the events between them do not give; none when all is well';

-- History rewritten under allow_history_rewrite: the rewritten streams'
-- snapshots no longer fold their events. They are dropped (taken again by the
-- next housekeeping), so no answer rests on them.
CREATE FUNCTION inventory_events.event_rewritten() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- Waits for a take_snapshots() in progress, whose rows the DELETEs below
    -- then see (READ COMMITTED: a new snapshot per statement).
    LOCK TABLE inventory_events.stream_snapshot IN SHARE ROW EXCLUSIVE MODE;
    IF TG_OP = 'TRUNCATE' THEN
        DELETE FROM inventory_events.stream_snapshot s WHERE NOT s.sealed;
        RETURN NULL;
    END IF;
    DELETE FROM inventory_events.stream_snapshot s
     WHERE (s.sku, s.location, s.lot) = (OLD.sku, OLD.location, OLD.lot) AND NOT s.sealed;
    IF TG_OP = 'UPDATE' THEN
        DELETE FROM inventory_events.stream_snapshot s
         WHERE (s.sku, s.location, s.lot) = (NEW.sku, NEW.location, NEW.lot) AND NOT s.sealed;
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER event_rewritten AFTER UPDATE OR DELETE ON inventory_events.event
    FOR EACH ROW EXECUTE FUNCTION inventory_events.event_rewritten();
CREATE TRIGGER event_rewritten_truncate AFTER TRUNCATE ON inventory_events.event
    FOR EACH STATEMENT EXECUTE FUNCTION inventory_events.event_rewritten();
-- Also where replication applies a rewrite.
ALTER TABLE inventory_events.event ENABLE ALWAYS TRIGGER event_rewritten;
ALTER TABLE inventory_events.event ENABLE ALWAYS TRIGGER event_rewritten_truncate;

-- The position of one stream as of a business time (events with occurred_at
-- <= at): its newest snapshot that applies plus the events after it.
CREATE OR REPLACE FUNCTION inventory_events.position_as_of(sku text, location text, at timestamptz, lot text DEFAULT '')
RETURNS inventory_events.stock_position
LANGUAGE sql STABLE
RETURN (inventory_events.stream_fold(position_as_of.sku, position_as_of.location, coalesce(position_as_of.lot, ''),
                                     coalesce(position_as_of.at, '-infinity'))).position;

-- The positions of every stream of a sku as of a business time (those with
-- an event by then).
CREATE OR REPLACE FUNCTION inventory_events.sku_position_as_of(sku text, at timestamptz)
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

-- What every stream's position must be: the sum of its events' effects,
-- folded from its newest snapshot (stream_fold(), which sums each bucket in
-- 128 bits: the total is what must fit, not every partial sum in whatever
-- order the rows come; a stream may hold an adjustment of -9e18 and receipts
-- that bring it back). The streams are those of the log, found one index
-- descent each (a loose scan of the stream index: the cost grows with the
-- streams, not with the events), and those of the snapshots.
CREATE OR REPLACE VIEW inventory_events.stream_derived AS
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

CREATE OR REPLACE FUNCTION inventory_events.verify()
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


CREATE OR REPLACE FUNCTION inventory_events.rebuild(progress_every integer DEFAULT 10000)
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

-- The worker's housekeeping records its failures as tasks snapshot and
-- retention.
ALTER TABLE inventory_events.worker_error
    DROP CONSTRAINT worker_error_task_check,
    ADD CONSTRAINT worker_error_task_check CHECK (task IN ('publish', 'expire', 'metrics', 'reconcile', 'snapshot', 'retention', 'partitions'));

-- Retention of the operational logs: sql/install/088_retention.sql.

-- Deletes what the retention settings no longer keep, and returns how many
-- rows of each kind (every kind, 0 included):
--   publications         older than inventory_events.retain_publications
--                        (default 30 days), but each sku's newest on each
--                        channel (what channel_shown names) and those an EDI
--                        partner's incremental 846 has not sent; a listener
--                        away longer sees a gap in the sequence and reads
--                        channel_shown again
--   dead_letters         failed before inventory_events.retain_dead_letters
--                        (90 days), unless their exception is still open
--   resolved_exceptions  resolved before inventory_events.retain_resolved_exceptions
--                        (90 days); open ones are kept
--   recon_runs           made before inventory_events.retain_recon_runs (400
--                        days), with their lines; a source's newest run (the
--                        streaks count from it) and runs with an unresolved
--                        line beyond tolerance are kept
-- A setting of -1 keeps that kind for ever. The event log is never touched.
CREATE FUNCTION inventory_events.apply_retention()
RETURNS TABLE (kind text, deleted bigint)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    setting_name text;
    keep bigint;
    cutoff timestamptz;
    boundary bigint;
    n bigint;
    ch record;
BEGIN
    -- C: it also loads the library, which defines the settings read below.
    PERFORM inventory_events.require_writable('inventory_events.apply_retention()');
    FOREACH kind IN ARRAY ARRAY['publications', 'dead_letters', 'resolved_exceptions', 'recon_runs', 'keys'] LOOP
        setting_name := 'inventory_events.retain_' || kind;
        SELECT s.setting::bigint INTO keep FROM pg_catalog.pg_settings s WHERE s.name = setting_name;
        deleted := 0;
        IF keep IS NOT NULL AND keep >= 0 THEN
            cutoff := now() - make_interval(secs => keep);
            IF kind = 'publications' THEN
                -- Per channel, from its oldest publication up to the first
                -- one at or after the cut-off (the primary key's order; the
                -- time only grows with seq), and never past what an EDI
                -- partner's incremental 846 has not sent yet: what is read
                -- is what may go. Each sku's newest publication (the one
                -- channel_shown names) stays: channel reconciliation reads
                -- what the channel was last told.
                FOR ch IN SELECT c.channel, c.last_seq, e.last_seq AS edi_seq
                            FROM inventory_events.channel_publisher c
                            LEFT JOIN inventory_events.edi_partner e ON e.channel = c.channel LOOP
                    SELECT p.seq INTO boundary FROM inventory_events.publication p
                     WHERE p.channel = ch.channel AND p.published_at >= cutoff
                     ORDER BY p.seq LIMIT 1;
                    boundary := least(coalesce(boundary, ch.last_seq), ch.edi_seq + 1);
                    DELETE FROM inventory_events.publication p
                     WHERE p.channel = ch.channel AND p.seq < boundary
                       AND NOT EXISTS (SELECT FROM inventory_events.channel_shown s
                                        WHERE s.channel = p.channel AND s.sku = p.sku AND s.seq = p.seq);
                    GET DIAGNOSTICS n = ROW_COUNT;
                    deleted := deleted + n;
                END LOOP;
            ELSIF kind = 'dead_letters' THEN
                -- Not one whose exception is still open (recorded with it:
                -- the same time and message), which someone is to act on.
                DELETE FROM inventory_events.dead_letter d
                 WHERE d.failed_at < cutoff
                   AND NOT EXISTS (SELECT FROM inventory_events.exception e
                                    WHERE e.resolved_at IS NULL AND e.kind = 'dead_letter'
                                      AND e.created_at = d.failed_at AND e.detail = d.message);
                GET DIAGNOSTICS deleted = ROW_COUNT;
            ELSIF kind = 'keys' THEN
                -- A key may be used again from here on (for a new event).
                DELETE FROM inventory_events.event_key k WHERE k.recorded_at < cutoff;
                GET DIAGNOSTICS deleted = ROW_COUNT;
            ELSIF kind = 'resolved_exceptions' THEN
                DELETE FROM inventory_events.exception e WHERE e.resolved_at < cutoff;
                GET DIAGNOSTICS deleted = ROW_COUNT;
            ELSE
                DELETE FROM inventory_events.recon_run r
                 WHERE r.created_at < cutoff
                   AND r.id <> (SELECT x.id FROM inventory_events.recon_run x WHERE x.source = r.source
                                 ORDER BY x.as_of DESC, x.id DESC LIMIT 1)
                   AND NOT EXISTS (SELECT FROM inventory_events.recon_line l
                                    WHERE l.run_id = r.id AND l.current AND l.exceeds_tolerance
                                      AND l.resolved_at IS NULL);
                GET DIAGNOSTICS deleted = ROW_COUNT;
            END IF;
        END IF;
        RETURN NEXT;
    END LOOP;
END;
$$;
COMMENT ON FUNCTION inventory_events.apply_retention() IS
  'Deletes publications, dead letters, resolved exceptions and reconciliation runs older than their retention settings';

REVOKE ALL ON inventory_events.stream_snapshot FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION inventory_events.stream_fold(text, text, text, timestamptz, bigint, boolean),
    inventory_events.take_snapshots(integer, integer), inventory_events.verify_snapshots(boolean),
    inventory_events.event_rewritten(), inventory_events.apply_retention() FROM PUBLIC;

-- verify(), position_as_of() and sku_position_as_of() now read the snapshots
-- through stream_fold() with their caller's rights: every role that may call
-- one of them gets what they need, so that they work right after the update
-- (not only after grant_access() again). The initial privileges of those
-- objects are put back to a fresh install's afterwards (a GRANT inside
-- ALTER EXTENSION would be recorded as one, which pg_dump leaves out).
DO $snapshot_grants$
DECLARE
    fold pg_catalog.regprocedure := 'inventory_events.stream_fold(text,text,text,timestamp with time zone,bigint,boolean)';
    proof pg_catalog.regprocedure := 'inventory_events.verify_snapshots(boolean)';
    fresh_fold pg_catalog.aclitem[];
    fresh_proof pg_catalog.aclitem[];
    fresh_table pg_catalog.aclitem[];
    grantee oid;
BEGIN
    SELECT i.initprivs INTO fresh_fold FROM pg_catalog.pg_init_privs i
     WHERE i.objoid = fold AND i.classoid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND i.objsubid = 0;
    SELECT i.initprivs INTO fresh_proof FROM pg_catalog.pg_init_privs i
     WHERE i.objoid = proof AND i.classoid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND i.objsubid = 0;
    SELECT i.initprivs INTO fresh_table FROM pg_catalog.pg_init_privs i
     WHERE i.objoid = 'inventory_events.stream_snapshot'::pg_catalog.regclass
       AND i.classoid = 'pg_catalog.pg_class'::pg_catalog.regclass AND i.objsubid = 0;
    FOR grantee IN
        SELECT DISTINCT a.grantee
          FROM pg_catalog.pg_proc p, pg_catalog.aclexplode(p.proacl) a
         WHERE p.oid IN ('inventory_events.verify()'::pg_catalog.regprocedure,
                         'inventory_events.position_as_of(text,text,timestamp with time zone,text)'::pg_catalog.regprocedure,
                         'inventory_events.sku_position_as_of(text,timestamp with time zone)'::pg_catalog.regprocedure)
           AND a.privilege_type = 'EXECUTE' AND a.grantee <> p.proowner AND a.grantee <> 0
         ORDER BY 1
    LOOP
        EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s, %s TO %I', fold, proof,
                                  pg_catalog.pg_get_userbyid(grantee));
        EXECUTE pg_catalog.format('GRANT SELECT ON inventory_events.stream_snapshot TO %I',
                                  pg_catalog.pg_get_userbyid(grantee));
    END LOOP;
    UPDATE pg_catalog.pg_init_privs i SET initprivs = fresh_fold
     WHERE i.objoid = fold AND i.classoid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND i.objsubid = 0;
    UPDATE pg_catalog.pg_init_privs i SET initprivs = fresh_proof
     WHERE i.objoid = proof AND i.classoid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND i.objsubid = 0;
    UPDATE pg_catalog.pg_init_privs i SET initprivs = fresh_table
     WHERE i.objoid = 'inventory_events.stream_snapshot'::pg_catalog.regclass
       AND i.classoid = 'pg_catalog.pg_class'::pg_catalog.regclass AND i.objsubid = 0;
END;
$snapshot_grants$;
-- === end of stream snapshots ===

-- ---------------------------------------------------------------------------
-- The partitioned log (issue 16, part 1)
-- ---------------------------------------------------------------------------

-- inventory_events.event becomes a table partitioned by range of recorded_at.
-- A table cannot be made partitioned in place: the log of 0.2.0 is renamed
-- event_0_2_0 and attached as the first partition of a new log, for every
-- time up to the start of the next month (appends go on into it until
-- then; the worker's create_partitions() makes the partitions after it). It
-- leaves the extension, like every partition create_partitions() makes, so
-- pg_dump writes it with its rows as a partition of the log.
--
-- What the update costs on a large log: the idempotency keys are copied
-- into event_key, and ATTACH checks the range (a scan of the old log) under
-- an ACCESS EXCLUSIVE lock of it; its indexes stay. See doc/operations.md,
-- "Upgrade".
LOCK TABLE inventory_events.event IN ACCESS EXCLUSIVE MODE;
ALTER TABLE inventory_events.event RENAME TO event_0_2_0;
ALTER SEQUENCE inventory_events.event_id_seq OWNED BY NONE;
DROP TRIGGER event_stock ON inventory_events.event_0_2_0;
DROP TRIGGER event_local_xid ON inventory_events.event_0_2_0;
DROP TRIGGER event_append_only ON inventory_events.event_0_2_0;
DROP TRIGGER event_append_only_truncate ON inventory_events.event_0_2_0;
DROP TRIGGER event_rewritten ON inventory_events.event_0_2_0;
DROP TRIGGER event_rewritten_truncate ON inventory_events.event_0_2_0;
-- Its indexes are those of a partition (index_partition()) under other names,
-- so it keeps them; not the unique index of idempotency keys, which move to
-- event_key (a key may be used again after its retention window).
ALTER INDEX inventory_events.event_pkey RENAME TO event_0_2_0_pkey;
ALTER INDEX inventory_events.event_stream_version_key RENAME TO event_0_2_0_sku_location_lot_version_idx;
ALTER INDEX inventory_events.event_xid_id_idx RENAME TO event_0_2_0_xid_id_idx;
ALTER INDEX inventory_events.event_lot_idx RENAME TO event_0_2_0_sku_lot_idx;
ALTER INDEX inventory_events.event_transfer_idx RENAME TO event_0_2_0_xid_id_idx1;
ALTER INDEX inventory_events.event_recorded_at_brin RENAME TO event_0_2_0_recorded_at_idx;
ALTER INDEX inventory_events.event_future_dated_idx RENAME TO event_0_2_0_occurred_at_idx;
ALTER EXTENSION inventory_events DROP TABLE inventory_events.event_0_2_0;

CREATE TABLE inventory_events.event (
    id               bigint NOT NULL DEFAULT nextval('inventory_events.event_id_seq'),
    sku              text NOT NULL,
    location         text NOT NULL,
    lot              text NOT NULL DEFAULT '',
    version          bigint NOT NULL CONSTRAINT event_version_check CHECK (version > 0),
    event_type       inventory_events.event_type NOT NULL,
    from_bucket      inventory_events.bucket,
    to_bucket        inventory_events.bucket,
    qty              bigint NOT NULL,
    uom              text NOT NULL,
    uom_qty          bigint NOT NULL,
    effect           inventory_events.stock_position NOT NULL,
    occurred_at      timestamptz NOT NULL,
    recorded_at      timestamptz NOT NULL DEFAULT now(),
    source           text NOT NULL DEFAULT '',
    source_seq       bigint,
    idempotency_key  text,
    correlation_id   uuid NOT NULL,
    causation_id     uuid NOT NULL,
    channel          text,
    ref              text,
    reason           text,
    expected_date    date,
    xid              xid8 NOT NULL DEFAULT inventory_events.log_xid(),
    payload          jsonb
) PARTITION BY RANGE (recorded_at);
ALTER SEQUENCE inventory_events.event_id_seq OWNED BY inventory_events.event.id;
COMMENT ON TABLE inventory_events.event IS
  'The append-only inventory event log, partitioned by time of recording (see create_partitions())';
COMMENT ON COLUMN inventory_events.event.xid IS
  'Log transaction id: the writing transaction''s id plus the offset of the log''s home (see log_home)';

-- The indexes of a partition of the log. The log itself has none: the
-- worker's partitions (create_partitions()) are not members of the
-- extension, and pg_dump writes each with its own indexes after its rows; an
-- index of the log would give every partition attached during a restore its
-- own copy first, and the restore's would then fail. A unique index of a
-- partitioned table could not leave out the partition key anyway: ids are
-- unique because the sequence draws them, a stream's versions because the
-- stream's lock and the stock trigger's check order them (src/stock.c), and
-- idempotency keys are kept in event_key below. Each partition's own
-- primary key and stream index are unique.
CREATE FUNCTION inventory_events.index_partition(partition regclass)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- Read by C, which finds them by their columns (src/logpart.c).
    EXECUTE format('ALTER TABLE %s ADD PRIMARY KEY (id)', partition);
    EXECUTE format('CREATE UNIQUE INDEX ON %s (sku, location, lot, version)', partition);
    EXECUTE format('CREATE INDEX ON %s (xid, id)', partition);
    -- A lot's events, for lot_trace(): only events of lot-controlled items.
    EXECUTE format('CREATE INDEX ON %s (sku, lot) WHERE lot <> %L', partition, '');
    -- Transfers, for intercompany_transfer.
    EXECUTE format('CREATE INDEX ON %s (xid, id) WHERE event_type IN (%L, %L)', partition,
                   'transfer_out', 'transfer_in_transit');
    -- Reconciliation: events by time of recording, and future-dated ones.
    EXECUTE format('CREATE INDEX ON %s USING brin (recorded_at)', partition);
    EXECUTE format('CREATE INDEX ON %s (occurred_at) WHERE occurred_at > recorded_at', partition);
END;
$$;
COMMENT ON FUNCTION inventory_events.index_partition(regclass) IS
  'Internal: creates the indexes of a partition of the event log';

-- Catches what no partition covers, so that no append ever fails for lack of
-- a partition. The worker's partitions (create_partitions()) are made ahead
-- of need and are not members of the extension: pg_dump writes them, with
-- their rows, as partitions of the log that CREATE EXTENSION makes. This one
-- is a member (it is the same in every database) whose rows are dumped.
CREATE TABLE inventory_events.event_default PARTITION OF inventory_events.event DEFAULT;
COMMENT ON TABLE inventory_events.event_default IS
  'Events recorded at a time no partition of the log covered (empty while the worker makes partitions ahead)';
SELECT pg_catalog.pg_extension_config_dump('inventory_events.event_default', '');
SELECT inventory_events.index_partition('inventory_events.event_default');

-- Idempotency across the partitions: the event recorded under each (source,
-- key), written by the stock trigger with the event (so a replication
-- subscriber derives it; dumped, like the stock table). Keys older than
-- inventory_events.retain_keys are deleted by apply_retention(): such a key
-- may then be used again.
CREATE TABLE inventory_events.event_key (
    source           text NOT NULL,
    idempotency_key  text NOT NULL,
    event_id         bigint NOT NULL,
    recorded_at      timestamptz NOT NULL,
    version          bigint NOT NULL,
    CONSTRAINT event_key_pkey PRIMARY KEY (source, idempotency_key)
);
CREATE INDEX event_key_recorded_at_brin ON inventory_events.event_key USING brin (recorded_at);
COMMENT ON TABLE inventory_events.event_key IS
  'The event recorded under each idempotency key (source, key), within the key retention window';
SELECT pg_catalog.pg_extension_config_dump('inventory_events.event_key', '');
-- Stock rows are dumped from 0.3.0 on (a restore loads them: see stock.c).
SELECT pg_catalog.pg_extension_config_dump('inventory_events.stock', '');

CREATE TRIGGER event_stock AFTER INSERT ON inventory_events.event
    FOR EACH ROW EXECUTE FUNCTION inventory_events.stock_trigger();
-- Also on logical replication subscribers: they derive their own positions.
ALTER TABLE inventory_events.event ENABLE ALWAYS TRIGGER event_stock;

-- Only on logical replication subscribers (and other sessions in replica
-- mode): an applied event gets this database's log transaction id instead of
-- the publisher's.
CREATE TRIGGER event_local_xid BEFORE INSERT ON inventory_events.event
    FOR EACH ROW EXECUTE FUNCTION inventory_events.event_local_xid();
ALTER TABLE inventory_events.event ENABLE REPLICA TRIGGER event_local_xid;

-- Per row, so that every row rewritten under allow_history_rewrite is logged
-- and written into the WAL as a logical decoding message; ALWAYS, so that
-- session_replication_role = replica does not switch the guard off.
CREATE TRIGGER event_append_only BEFORE UPDATE OR DELETE ON inventory_events.event
    FOR EACH ROW EXECUTE FUNCTION inventory_events.event_guard();
CREATE TRIGGER event_append_only_truncate BEFORE TRUNCATE ON inventory_events.event
    FOR EACH STATEMENT EXECUTE FUNCTION inventory_events.event_guard();
ALTER TABLE inventory_events.event ENABLE ALWAYS TRIGGER event_append_only;
ALTER TABLE inventory_events.event ENABLE ALWAYS TRIGGER event_append_only_truncate;

CREATE TRIGGER event_rewritten AFTER UPDATE OR DELETE ON inventory_events.event
    FOR EACH ROW EXECUTE FUNCTION inventory_events.event_rewritten();
CREATE TRIGGER event_rewritten_truncate AFTER TRUNCATE ON inventory_events.event
    FOR EACH STATEMENT EXECUTE FUNCTION inventory_events.event_rewritten();
-- Also where replication applies a rewrite.
ALTER TABLE inventory_events.event ENABLE ALWAYS TRIGGER event_rewritten;
ALTER TABLE inventory_events.event ENABLE ALWAYS TRIGGER event_rewritten_truncate;

-- The keys of the old log, then the old log as the first partition.
INSERT INTO inventory_events.event_key (source, idempotency_key, event_id, recorded_at, version)
SELECT e.source, e.idempotency_key, e.id, e.recorded_at, e.version
  FROM inventory_events.event_0_2_0 e WHERE e.idempotency_key IS NOT NULL;
ALTER TABLE inventory_events.event_0_2_0 DROP CONSTRAINT event_idempotency_key;
-- Its CHECK constraint has the name the new log's has (ATTACH matches them
-- by name).
DO $attach_0_2_0$
DECLARE
    upto timestamptz;
    col record;
BEGIN
    -- C reads every partition with the log's attribute numbers: columns a DBA
    -- added to the old log are added to the new one in the same order; a
    -- dropped one would shift them.
    IF EXISTS (SELECT FROM pg_catalog.pg_attribute a
                WHERE a.attrelid = 'inventory_events.event_0_2_0'::pg_catalog.regclass AND a.attisdropped) THEN
        RAISE EXCEPTION 'the event log has a dropped column: it cannot become a partition of the partitioned log'
              USING ERRCODE = 'object_not_in_prerequisite_state',
                    HINT = 'Rewrite it without the dropped column first (see "Upgrade" in doc/operations.md), then update again.';
    END IF;
    FOR col IN
        SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull,
               pg_catalog.pg_get_expr(d.adbin, d.adrelid) AS default_expr, a.attgenerated
          FROM pg_catalog.pg_attribute a
          LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
         WHERE a.attrelid = 'inventory_events.event_0_2_0'::pg_catalog.regclass AND a.attnum > 0
           AND NOT EXISTS (SELECT FROM pg_catalog.pg_attribute p
                            WHERE p.attrelid = 'inventory_events.event'::pg_catalog.regclass AND p.attname = a.attname)
         ORDER BY a.attnum
    LOOP
        EXECUTE pg_catalog.format('ALTER TABLE inventory_events.event ADD COLUMN %I %s%s%s', col.attname, col.type,
                                  CASE WHEN col.default_expr IS NULL THEN ''
                                       WHEN col.attgenerated = 's' THEN ' GENERATED ALWAYS AS (' || col.default_expr || ') STORED'
                                       ELSE ' DEFAULT ' || col.default_expr END,
                                  CASE WHEN col.attnotnull THEN ' NOT NULL' ELSE '' END);
    END LOOP;
    SELECT greatest((pg_catalog.date_trunc('month', pg_catalog.now() AT TIME ZONE 'UTC') + interval '1 month')
                    AT TIME ZONE 'UTC',
                               pg_catalog.max(e.recorded_at) + interval '1 microsecond')
      INTO upto FROM inventory_events.event_0_2_0 e;
    -- CHECK constraints a DBA added to the old log: the new one has them too
    -- (ATTACH requires each of the log's on the partition, by name).
    FOR col IN
        SELECT c.conname, pg_catalog.pg_get_constraintdef(c.oid) AS def
          FROM pg_catalog.pg_constraint c
         WHERE c.conrelid = 'inventory_events.event_0_2_0'::pg_catalog.regclass AND c.contype = 'c'
           AND NOT EXISTS (SELECT FROM pg_catalog.pg_constraint p
                            WHERE p.conrelid = 'inventory_events.event'::pg_catalog.regclass AND p.conname = c.conname)
    LOOP
        EXECUTE pg_catalog.format('ALTER TABLE inventory_events.event ADD CONSTRAINT %I %s', col.conname, col.def);
    END LOOP;
    EXECUTE pg_catalog.format('ALTER TABLE inventory_events.event ATTACH PARTITION inventory_events.event_0_2_0
                               FOR VALUES FROM (MINVALUE) TO (%L)', upto);
    -- A publication of the old log publishes the new one, through its root
    -- (its partitions are this database's own).
    FOR col IN
        SELECT p.pubname, p.pubviaroot, pg_catalog.pg_get_expr(r.prqual, r.prrelid) AS qual,
               (SELECT pg_catalog.string_agg(pg_catalog.quote_ident(a.attname), ', ' ORDER BY a.attnum)
                  FROM pg_catalog.pg_attribute a
                 WHERE a.attrelid = r.prrelid AND a.attnum = ANY (r.prattrs::pg_catalog.int2[])) AS cols
          FROM pg_catalog.pg_publication p
          JOIN pg_catalog.pg_publication_rel r ON r.prpubid = p.oid
         WHERE r.prrelid = 'inventory_events.event_0_2_0'::pg_catalog.regclass
    LOOP
        EXECUTE pg_catalog.format('ALTER PUBLICATION %I DROP TABLE inventory_events.event_0_2_0', col.pubname);
        -- With its column list and row filter.
        EXECUTE pg_catalog.format('ALTER PUBLICATION %I ADD TABLE inventory_events.event%s%s', col.pubname,
                                  CASE WHEN col.cols IS NULL THEN '' ELSE ' (' || col.cols || ')' END,
                                  CASE WHEN col.qual IS NULL THEN '' ELSE ' WHERE (' || col.qual || ')' END);
        IF NOT col.pubviaroot THEN
            EXECUTE pg_catalog.format('ALTER PUBLICATION %I SET (publish_via_partition_root = true)', col.pubname);
            RAISE WARNING 'publication "%" now publishes inventory_events.event with publish_via_partition_root', col.pubname
                  USING DETAIL = 'The event log is partitioned from 0.3.0 on; its subscribers receive its rows as rows of inventory_events.event.';
        END IF;
    END LOOP;
END;
$attach_0_2_0$;

CREATE FUNCTION inventory_events.event_partitions()
RETURNS TABLE (partition regclass, recorded_from timestamptz, recorded_to timestamptz, is_default boolean)
AS 'MODULE_PATHNAME', 'ie_event_partitions'
LANGUAGE C STABLE;
COMMENT ON FUNCTION inventory_events.event_partitions() IS
  'The partitions of the event log by range of recorded_at (null: an open end), the default partition last';

CREATE FUNCTION inventory_events.archive_boundary()
RETURNS timestamptz
AS 'MODULE_PATHNAME', 'ie_archive_boundary_sql'
LANGUAGE C STABLE;
COMMENT ON FUNCTION inventory_events.archive_boundary() IS
  'The end of the latest archived partition of the log (null: none): positions before it need archived events';

-- A TRUNCATE trigger is not inherited by the partitions: every partition gets
-- the log's own (the append-only guard, and the drop of the snapshots).
CREATE FUNCTION inventory_events.guard_partition(partition regclass)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    EXECUTE format('CREATE TRIGGER event_append_only_truncate BEFORE TRUNCATE ON %s
                    FOR EACH STATEMENT EXECUTE FUNCTION inventory_events.event_guard()', partition);
    EXECUTE format('CREATE TRIGGER event_rewritten_truncate AFTER TRUNCATE ON %s
                    FOR EACH STATEMENT EXECUTE FUNCTION inventory_events.event_rewritten()', partition);
    EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER event_append_only_truncate', partition);
    EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER event_rewritten_truncate', partition);
END;
$$;
COMMENT ON FUNCTION inventory_events.guard_partition(regclass) IS
  'Internal: gives a partition of the log the log''s TRUNCATE triggers';
SELECT inventory_events.guard_partition('inventory_events.event_default');

-- The start of the partition that holds t: intervals of months are aligned
-- to the first of a month, others to 2000-01-01, both in UTC.
CREATE FUNCTION inventory_events.partition_start(t timestamptz, every interval)
RETURNS timestamptz
LANGUAGE plpgsql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    months integer := extract(year FROM every)::integer * 12 + extract(month FROM every)::integer;
    m integer;
BEGIN
    IF months > 0 THEN
        m := (extract(year FROM t AT TIME ZONE 'UTC')::integer - 2000) * 12
             + extract(month FROM t AT TIME ZONE 'UTC')::integer - 1;
        m := m - ((m % months) + months) % months;
        RETURN make_timestamptz(2000 + (m / 12) - CASE WHEN m < 0 AND m % 12 <> 0 THEN 1 ELSE 0 END,
                                ((m % 12) + 12) % 12 + 1, 1, 0, 0, 0, 'UTC');
    END IF;
    RETURN date_bin(every, t, timestamptz '2000-01-01 00:00:00+00');
END;
$$;

-- Creates the partitions of the log from the one that holds `at` (default:
-- now) to `ahead` intervals after it (default inventory_events.partition_premake),
-- each one inventory_events.partition_interval long, and returns those it
-- made. Idempotent. Around an existing partition it makes the rest of the
-- range; above rows the default partition already holds for a range (the
-- worker was away longer than the premade partitions lasted), the new
-- partition starts after them, so that no row has to move.
CREATE FUNCTION inventory_events.create_partitions(at timestamptz DEFAULT NULL, ahead integer DEFAULT NULL)
RETURNS SETOF regclass
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET datestyle = 'ISO, YMD'
AS $$
DECLARE
    every interval;
    n integer;
    start timestamptz;
    lo timestamptz;
    hi timestamptz;
    p record;
    default_part regclass;
    last_default timestamptz;
    name text;
    made regclass;
    grantee oid;
BEGIN
    -- C: it also loads the library, which defines the settings read below.
    PERFORM inventory_events.require_writable('inventory_events.create_partitions()');
    -- One changer of the log's partitions at a time (create_partitions(),
    -- archive_before(), attach_archived()): each takes the log's ACCESS
    -- EXCLUSIVE lock after reading its partitions, and two doing so at once
    -- would deadlock.
    LOCK TABLE inventory_events.event_archive IN EXCLUSIVE MODE;
    every := current_setting('inventory_events.partition_interval')::interval;
    n := coalesce(ahead, current_setting('inventory_events.partition_premake')::integer);
    IF n < 0 THEN
        RAISE EXCEPTION 'ahead must not be negative'
              USING ERRCODE = 'invalid_parameter_value';
    END IF;
    at := coalesce(at, nullif(current_setting('inventory_events.clock'), '')::timestamptz, now());
    SELECT e.partition INTO default_part FROM inventory_events.event_partitions() e WHERE e.is_default;
    start := inventory_events.partition_start(at, every);
    FOR i IN 0..n LOOP
        lo := (start AT TIME ZONE 'UTC' + every * i) AT TIME ZONE 'UTC';
        hi := (start AT TIME ZONE 'UTC' + every * (i + 1)) AT TIME ZONE 'UTC';
        name := 'event_p' || to_char(lo AT TIME ZONE 'UTC',
                                     CASE WHEN every >= interval '1 day' THEN 'YYYYMMDD' ELSE 'YYYYMMDD"_"HH24MI' END);
        FOR p IN SELECT e.recorded_from, e.recorded_to FROM inventory_events.event_partitions() e
                  WHERE NOT e.is_default
                    AND coalesce(e.recorded_from, '-infinity') < hi AND coalesce(e.recorded_to, 'infinity') > lo
                  ORDER BY e.recorded_from NULLS FIRST LOOP
            IF coalesce(p.recorded_from, '-infinity') <= lo THEN
                lo := coalesce(p.recorded_to, 'infinity');
            ELSE
                hi := least(hi, p.recorded_from);
            END IF;
        END LOOP;
        CONTINUE WHEN lo >= hi;
        IF default_part IS NOT NULL THEN
            EXECUTE format('SELECT max(d.recorded_at) FROM %s d WHERE d.recorded_at >= $1 AND d.recorded_at < $2',
                           default_part)
               INTO last_default USING lo, hi;
            IF last_default IS NOT NULL THEN
                lo := last_default + interval '1 microsecond';
                CONTINUE WHEN lo >= hi;
            END IF;
        END IF;
        WHILE to_regclass('inventory_events.' || quote_ident(name)) IS NOT NULL LOOP
            name := name || '_';
        END LOOP;
        EXECUTE format('CREATE TABLE inventory_events.%I PARTITION OF inventory_events.event FOR VALUES FROM (%L) TO (%L)',
                       name, lo, hi);
        made := format('inventory_events.%I', name)::regclass;
        PERFORM inventory_events.index_partition(made);
        PERFORM inventory_events.guard_partition(made);
        -- Whoever may read the log reads the partition too (a reader's
        -- pg_dump locks every table it dumps).
        FOR grantee IN SELECT DISTINCT a.grantee FROM pg_class c, aclexplode(c.relacl) a
                        WHERE c.oid = 'inventory_events.event'::regclass AND a.privilege_type = 'SELECT'
                          AND a.grantee <> c.relowner LOOP
            EXECUTE format('GRANT SELECT ON %s TO %s', made,
                           CASE WHEN grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(grantee)) END);
        END LOOP;
        RETURN NEXT made;
    END LOOP;
END;
$$;
COMMENT ON FUNCTION inventory_events.create_partitions(timestamptz, integer) IS
  'Creates the partitions of the event log from the one holding `at` to `ahead` intervals after it; returns those made';

-- The partitions archive_before() has detached. The archive boundary is the
-- latest recorded_to: a position as of an earlier business time is refused.
CREATE TABLE inventory_events.event_archive (
    partition      text PRIMARY KEY,
    recorded_from  timestamptz,
    recorded_to    timestamptz NOT NULL,
    events         bigint NOT NULL,
    streams        bigint NOT NULL,
    archived_at    timestamptz NOT NULL DEFAULT now(),
    dropped        boolean NOT NULL
);
COMMENT ON TABLE inventory_events.event_archive IS
  'Partitions of the event log archived (detached, and perhaps dropped) by archive_before()';
SELECT pg_catalog.pg_extension_config_dump('inventory_events.event_archive', '');

-- What archived events of each reference (a transfer, a purchase-order line)
-- put into in_transit and inbound: a receipt sums its reference's events
-- (src/supply.c), and adds this for those that are archived.
CREATE TABLE inventory_events.event_archive_ref (
    sku         text NOT NULL,
    location    text NOT NULL,
    lot         text NOT NULL,
    ref         text NOT NULL,
    in_transit  bigint NOT NULL,
    inbound     bigint NOT NULL,
    CONSTRAINT event_archive_ref_pkey PRIMARY KEY (sku, location, lot, ref)
);
COMMENT ON TABLE inventory_events.event_archive_ref IS
  'The in-transit and inbound quantities of archived events, per stream and reference';
SELECT pg_catalog.pg_extension_config_dump('inventory_events.event_archive_ref', '');

-- Adds (sign 1: archiving) or takes back (-1: attaching again) what the
-- events of a partition put into in_transit and inbound per reference.
CREATE FUNCTION inventory_events.archive_refs(partition regclass, sign integer)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    EXECUTE format($refs$
        INSERT INTO inventory_events.event_archive_ref AS a (sku, location, lot, ref, in_transit, inbound)
        SELECT e.sku, e.location, e.lot, e.ref, $1 * sum(inventory_events.in_transit(e.effect)),
               $1 * sum(inventory_events.inbound(e.effect))
          FROM %s e
         WHERE e.ref IS NOT NULL
           AND (inventory_events.in_transit(e.effect) <> 0 OR inventory_events.inbound(e.effect) <> 0)
         GROUP BY 1, 2, 3, 4
        ON CONFLICT ON CONSTRAINT event_archive_ref_pkey DO UPDATE
           SET in_transit = a.in_transit + excluded.in_transit, inbound = a.inbound + excluded.inbound $refs$,
        partition) USING sign;
    DELETE FROM inventory_events.event_archive_ref a WHERE a.in_transit = 0 AND a.inbound = 0;
END;
$$;
COMMENT ON FUNCTION inventory_events.archive_refs(regclass, integer) IS
  'Internal: records (or takes back) the in-transit and inbound quantities of a partition''s events per reference';

-- Detaches (and with drop_partitions, drops) every partition whose range ends
-- at or before `before`, oldest first, one per row returned. Each must be
-- covered by stream snapshots: every stream with events in it has a snapshot
-- at or after its last version there (else 55000: take_snapshots() first).
-- For each such stream a sealed snapshot at exactly that version is kept and
-- the older ones go, so that every position from the boundary on is folded
-- from what remains. Refused too: a partition some transaction may still
-- append to (one that started before its end is running), one holding a
-- transfer or purchase-order line still open (its open quantity is summed
-- over the stream's events with its ref), and one with an event dated after
-- its end. The checks and seals of every partition come first, the
-- detaching last: the log's ACCESS EXCLUSIVE lock, which DETACH takes and
-- appends wait for, is held only for that. READ COMMITTED only.
CREATE FUNCTION inventory_events.archive_before(before timestamptz, drop_partitions boolean DEFAULT false)
RETURNS TABLE (partition text, recorded_from timestamptz, recorded_to timestamptz, events bigint,
               streams bigint, dropped boolean)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET lock_timeout = '10s'
AS $$
DECLARE
    p record;
    gap record;
    now_recorded timestamptz;
    boundary timestamptz;
    archived pg_catalog.regclass[] := '{}';
BEGIN
    PERFORM inventory_events.require_writable('inventory_events.archive_before()');
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'archive_before() runs under READ COMMITTED'
              USING ERRCODE = 'invalid_transaction_state',
                    HINT = 'Call it in a READ COMMITTED transaction (the default).';
    END IF;
    now_recorded := coalesce(nullif(current_setting('inventory_events.clock'), '')::timestamptz, now());
    IF before IS NULL OR before > now_recorded THEN
        RAISE EXCEPTION 'cannot archive the event log before %', coalesce(before::text, 'null')
              USING ERRCODE = 'invalid_parameter_value',
                    DETAIL = 'Only partitions whose whole range is in the past can be archived.',
                    HINT = format('Give a time at or before %s.', now_recorded);
    END IF;
    -- One changer of the log's partitions at a time (see create_partitions()).
    LOCK TABLE inventory_events.event_archive IN EXCLUSIVE MODE;
    -- Against take_snapshots() and history rewrites, as they against each other.
    LOCK TABLE inventory_events.stream_snapshot IN SHARE ROW EXCLUSIVE MODE;
    -- The archive boundary afterwards: the latest end of an archived partition.
    SELECT max(x.t) INTO boundary
      FROM (SELECT e.recorded_to AS t FROM inventory_events.event_partitions() e
             WHERE NOT e.is_default AND e.recorded_to <= before
            UNION ALL SELECT a.recorded_to FROM inventory_events.event_archive a) x;
    FOR p IN SELECT e.partition AS rel, e.recorded_from, e.recorded_to
               FROM inventory_events.event_partitions() e
              WHERE NOT e.is_default AND e.recorded_to <= before
              ORDER BY e.recorded_to LOOP
        partition := format('%I.%I', (SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                                       WHERE c.oid = p.rel), (SELECT c.relname FROM pg_class c WHERE c.oid = p.rel));
        -- An event's recording time is its transaction's start: only a
        -- transaction that started before the partition's end can still
        -- append to it. None may be running (autovacuum appends nothing).
        SELECT a.pid, a.xact_start INTO gap FROM pg_catalog.pg_stat_activity a
         WHERE a.xact_start < p.recorded_to AND a.pid <> pg_catalog.pg_backend_pid() AND a.datname = current_database()
           AND a.backend_type <> 'autovacuum worker'
         ORDER BY a.xact_start LIMIT 1;
        IF NOT FOUND THEN
            -- A prepared transaction, or a backend whose activity is not
            -- tracked: any other holder of a lock on the partition in a mode
            -- that lets it insert. Readers and VACUUM (ACCESS SHARE, ROW
            -- SHARE, SHARE UPDATE EXCLUSIVE, SHARE) only delay the detach
            -- below, which waits for them.
            SELECT l.pid, l.virtualtransaction AS xact_start INTO gap FROM pg_catalog.pg_locks l
             WHERE l.locktype = 'relation' AND l.relation = p.rel AND l.database = (SELECT d.oid FROM pg_database d
                                                                                      WHERE d.datname = current_database())
               AND l.mode IN ('RowExclusiveLock', 'ShareRowExclusiveLock', 'ExclusiveLock', 'AccessExclusiveLock')
               AND l.pid IS DISTINCT FROM pg_catalog.pg_backend_pid()
             LIMIT 1;
        END IF;
        IF FOUND THEN
            RAISE EXCEPTION 'partition "%" of the event log may still be appended to', partition
                  USING ERRCODE = 'object_in_use',
                        DETAIL = format('The transaction %s of process %s started before the partition''s end, or holds a lock on it.',
                                        gap.xact_start, coalesce(gap.pid::text, '(prepared)')),
                        HINT = 'Wait for it to end, then archive again.';
        END IF;
        -- From here on nothing inserts into it: a transaction that read it
        -- (not refused above) and appends to it later waits for the archive,
        -- instead of adding an event that no seal below covers.
        EXECUTE format('LOCK TABLE %s IN EXCLUSIVE MODE', p.rel);
        EXECUTE format('CREATE TEMP TABLE archive_streams ON COMMIT DROP AS
                        SELECT e.sku, e.location, e.lot, max(e.version) AS last_version, count(*) AS events
                          FROM %s e GROUP BY 1, 2, 3', p.rel);
        SELECT a.sku, a.location, a.lot, a.last_version INTO gap
          FROM archive_streams a
         WHERE NOT EXISTS (SELECT FROM inventory_events.stream_snapshot s
                            WHERE s.sku = a.sku AND s.location = a.location AND s.lot = a.lot
                              AND s.version >= a.last_version)
         LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'partition "%" of the event log is not covered by stream snapshots', partition
                  USING ERRCODE = 'object_not_in_prerequisite_state',
                        DETAIL = format('Stream (sku %s, location %s, lot %s) has events up to version %s in it and no snapshot at or after that version.',
                                        quote_literal(gap.sku), quote_literal(gap.location), quote_literal(gap.lot), gap.last_version),
                        HINT = 'Take the snapshots first: SELECT inventory_events.take_snapshots(min_events => 1);';
        END IF;
        -- Open transfers and purchase-order lines stay: a receipt sums its
        -- reference's events (src/supply.c), and those of closed ones that
        -- are archived are kept as a sum in event_archive_ref.
        EXECUTE format($open$
            SELECT r.sku, r.location, r.lot, r.ref
              FROM (SELECT DISTINCT e.sku, e.location, e.lot, e.ref FROM %s e
                     WHERE e.ref IS NOT NULL
                       AND (inventory_events.in_transit(e.effect) <> 0 OR inventory_events.inbound(e.effect) <> 0)) r
              LEFT JOIN inventory_events.event_archive_ref a
                ON a.sku = r.sku AND a.location = r.location AND a.lot = r.lot AND a.ref = r.ref
             CROSS JOIN LATERAL (SELECT coalesce(sum(inventory_events.in_transit(x.effect)), 0) AS in_transit,
                                        coalesce(sum(inventory_events.inbound(x.effect)), 0) AS inbound
                                   FROM inventory_events.event x
                                  WHERE x.sku = r.sku AND x.location = r.location AND x.lot = r.lot
                                    AND x.ref = r.ref) t
             WHERE t.in_transit + coalesce(a.in_transit, 0) <> 0 OR t.inbound + coalesce(a.inbound, 0) <> 0
             LIMIT 1 $open$, p.rel) INTO gap;
        IF gap.sku IS NOT NULL THEN
            RAISE EXCEPTION 'partition "%" of the event log holds an open transfer or purchase-order line', partition
                  USING ERRCODE = 'object_not_in_prerequisite_state',
                        DETAIL = format('Reference %s of stream (sku %s, location %s, lot %s) still has units in transit or inbound.',
                                        quote_literal(gap.ref), quote_literal(gap.sku), quote_literal(gap.location), quote_literal(gap.lot)),
                        HINT = 'Receive or close it (receive_transfer(), receive_po()) first, or archive up to an earlier time.';
        END IF;
        -- The seals: each stream folded through its last version here; not
        -- a stream sealed at a later version already (versions interleave
        -- across a boundary: a later partition may hold an earlier one).
        INSERT INTO inventory_events.stream_snapshot AS ss
               (sku, location, lot, version, event_id, "position", safety_stock, occurred_max, taken_at, sealed)
        SELECT a.sku, a.location, a.lot, f.version, f.event_id, f."position", f.safety_stock, f.occurred_max, now(), true
          FROM archive_streams a
         CROSS JOIN LATERAL inventory_events.stream_fold(a.sku, a.location, a.lot, NULL, a.last_version) f
         WHERE NOT EXISTS (SELECT FROM inventory_events.stream_snapshot x
                            WHERE x.sku = a.sku AND x.location = a.location AND x.lot = a.lot
                              AND x.sealed AND x.version >= a.last_version)
        ON CONFLICT (sku, location, lot, version) DO UPDATE SET sealed = true;
        -- A position from the boundary on starts from a seal: none may hold
        -- a business time after the boundary.
        SELECT s.sku, s.location, s.lot, s.occurred_max INTO gap
          FROM archive_streams a
          JOIN inventory_events.stream_snapshot s
            ON s.sku = a.sku AND s.location = a.location AND s.lot = a.lot AND s.version >= a.last_version
               AND s.sealed
         WHERE s.occurred_max > boundary
         LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'partition "%" of the event log holds an event dated after the archive boundary %',
                            partition, boundary
                  USING ERRCODE = 'object_not_in_prerequisite_state',
                        DETAIL = format('Stream (sku %s, location %s, lot %s) has an event that occurred at %s, up to its last version in the partition.',
                                        quote_literal(gap.sku), quote_literal(gap.location), quote_literal(gap.lot), gap.occurred_max),
                        HINT = 'Archive up to a later time, past that date.';
        END IF;
        DELETE FROM inventory_events.stream_snapshot s
         USING archive_streams a
         WHERE s.sku = a.sku AND s.location = a.location AND s.lot = a.lot AND s.version < a.last_version;
        PERFORM inventory_events.archive_refs(p.rel, 1);
        SELECT coalesce(sum(a.events), 0), count(*) INTO events, streams FROM archive_streams a;
        recorded_from := p.recorded_from;
        recorded_to := p.recorded_to;
        dropped := coalesce(drop_partitions, false);
        INSERT INTO inventory_events.event_archive AS x (partition, recorded_from, recorded_to, events, streams, dropped)
        VALUES (archive_before.partition, archive_before.recorded_from, archive_before.recorded_to,
                archive_before.events, archive_before.streams, archive_before.dropped)
        ON CONFLICT ON CONSTRAINT event_archive_pkey DO UPDATE
           SET recorded_from = excluded.recorded_from, recorded_to = excluded.recorded_to, events = excluded.events,
               streams = excluded.streams, archived_at = excluded.archived_at, dropped = excluded.dropped;
        DROP TABLE archive_streams;
        archived := archived || p.rel;
        RETURN NEXT;
    END LOOP;
    -- DETACH waits for every reader of the log, and every append waits for
    -- it: not for long (lock_timeout, below: 55P03, nothing is archived).
    FOR i IN 1 .. coalesce(cardinality(archived), 0) LOOP
        EXECUTE format('ALTER TABLE inventory_events.event DETACH PARTITION %s', archived[i]);
        IF drop_partitions THEN
            EXECUTE format('DROP TABLE %s', archived[i]);
        END IF;
    END LOOP;
END;
$$;
COMMENT ON FUNCTION inventory_events.archive_before(timestamptz, boolean) IS
  'Detaches (and optionally drops) the partitions of the event log recorded entirely before a time, once stream snapshots cover them';

-- Attaches a partition archive_before() detached (restored from a dump, or
-- never dropped) at its range again; positions as of times before the
-- archive boundary are answered again once no later partition is archived.
CREATE FUNCTION inventory_events.attach_archived(partition regclass)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET datestyle = 'ISO, YMD'
AS $$
DECLARE
    name text;
    a record;
BEGIN
    PERFORM inventory_events.require_writable('inventory_events.attach_archived()');
    -- One changer of the log's partitions at a time (see create_partitions()).
    LOCK TABLE inventory_events.event_archive IN EXCLUSIVE MODE;
    SELECT format('%I.%I', n.nspname, c.relname) INTO name
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = partition;
    SELECT * INTO a FROM inventory_events.event_archive x WHERE x.partition = name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'table % is not an archived partition of the event log', name
              USING ERRCODE = 'invalid_parameter_value',
                    HINT = 'inventory_events.event_archive lists the archived partitions under their names at archiving.';
    END IF;
    EXECUTE format('ALTER TABLE inventory_events.event ATTACH PARTITION %s FOR VALUES FROM (%s) TO (%L)',
                   partition, coalesce(quote_literal(a.recorded_from), 'MINVALUE'), a.recorded_to);
    -- Its column layout and indexes are checked here (C reads every partition).
    PERFORM count(*) FROM inventory_events.event_partitions();
    PERFORM inventory_events.archive_refs(partition, -1);
    DELETE FROM inventory_events.event_archive x WHERE x.partition = name;
    -- With every archived partition back, the whole history is there again:
    -- the seals are snapshots like any other (verify_snapshots() proves them).
    IF NOT EXISTS (SELECT FROM inventory_events.event_archive) THEN
        UPDATE inventory_events.stream_snapshot s SET sealed = false WHERE s.sealed;
    END IF;
END;
$$;
COMMENT ON FUNCTION inventory_events.attach_archived(regclass) IS
  'Attaches a partition of the event log that archive_before() detached at its range again';
SELECT inventory_events.guard_partition('inventory_events.event_0_2_0');

-- Views read the log by its OID: they are made again on the new one.
CREATE OR REPLACE VIEW inventory_events.stream_derived AS
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

CREATE OR REPLACE VIEW inventory_events.serial_history AS
SELECT h.sku, h.serial, h.version, h.event_id, e.event_type, h.location, h.bucket, e.lot, e.ref,
       e.channel, e.source, e.occurred_at, e.recorded_at
  FROM inventory_events.serial_event h
  JOIN inventory_events.event e ON e.id = h.event_id;

CREATE OR REPLACE VIEW inventory_events.intercompany_transfer AS
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

CREATE OR REPLACE VIEW inventory_events.channel_health AS
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

CREATE OR REPLACE VIEW inventory_events.kpi_order_latency AS
WITH shipped AS (
    SELECT e.channel, e.ref, max(e.occurred_at) AS shipped_at
      FROM inventory_events.event e
     WHERE e.recorded_at >= current_date - 29 AND e.event_type = 'shipped'
     GROUP BY e.channel, e.ref
), ord AS (
    SELECT l.channel, l.order_ref, min(l.created_at) AS placed_at, max(s.shipped_at) AS shipped_at,
           bool_or(l.open) AS open
      FROM inventory_events.kpi_order_line l
      LEFT JOIN shipped s ON s.channel = l.channel AND s.ref = l.ref
     GROUP BY l.channel, l.order_ref
), done AS (
    SELECT o.channel, o.shipped_at::date AS day,
           extract(epoch FROM o.shipped_at - o.placed_at)::float8 AS seconds
      FROM ord o
     WHERE NOT o.open AND o.shipped_at IS NOT NULL
)
SELECT d.channel, d.day,
       count(*) AS orders,
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY d.seconds)::numeric, 3) AS p50_seconds,
       round(percentile_cont(0.95) WITHIN GROUP (ORDER BY d.seconds)::numeric, 3) AS p95_seconds,
       round(avg(d.seconds)::numeric, 3) AS avg_seconds,
       round(max(d.seconds)::numeric, 3) AS max_seconds
  FROM done d
 GROUP BY d.channel, d.day;

CREATE OR REPLACE VIEW inventory_events.kpi_shipment_timeliness AS
SELECT e.channel, e.recorded_at::date AS day,
       count(*) AS shipments,
       sum(e.qty)::bigint AS units,
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM e.recorded_at - e.occurred_at)::float8)::numeric, 3) AS p50_seconds,
       round(percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM e.recorded_at - e.occurred_at)::float8)::numeric, 3) AS p95_seconds,
       round(max(extract(epoch FROM e.recorded_at - e.occurred_at)), 3) AS max_seconds,
       interval '1 hour' AS target,
       count(*) FILTER (WHERE e.recorded_at - e.occurred_at <= interval '1 hour') AS within_target,
       round(count(*) FILTER (WHERE e.recorded_at - e.occurred_at <= interval '1 hour')::numeric / count(*), 4)
           AS within_target_share
  FROM inventory_events.event e
 WHERE e.recorded_at >= current_date - 29 AND e.event_type = 'shipped'
 GROUP BY e.channel, e.recorded_at::date;

CREATE OR REPLACE VIEW inventory_events.kpi_manual_adjustments AS
WITH ev AS (
    -- A reconciliation's adjustment is the event a line names as its
    -- resolution (a writer could give any event the source name).
    SELECT e.recorded_at::date AS day, e.location,
           abs(inventory_events.on_hand(e.effect)) AS units,
           e.event_type IN ('adjusted', 'counted') AND r.event_id IS NULL AS manual,
           e.event_type IN ('adjusted', 'counted') AND r.event_id IS NOT NULL AS reconciliation
      FROM inventory_events.event e
      LEFT JOIN (SELECT DISTINCT l.resolution_event_id AS event_id FROM inventory_events.recon_line l
                  WHERE l.resolution_event_id IS NOT NULL) r ON r.event_id = e.id
     WHERE e.recorded_at >= current_date - 29
)
SELECT ev.day, ev.location,
       count(*) AS stock_events,
       count(*) FILTER (WHERE ev.manual) AS manual_adjustments,
       count(*) FILTER (WHERE ev.reconciliation) AS reconciliation_adjustments,
       round(count(*) FILTER (WHERE ev.manual)::numeric / count(*), 4) AS manual_share,
       sum(ev.units)::bigint AS stock_units,
       coalesce(sum(ev.units) FILTER (WHERE ev.manual), 0)::bigint AS manual_units,
       round(coalesce(sum(ev.units) FILTER (WHERE ev.manual), 0) / sum(ev.units), 4) AS manual_unit_share
  FROM ev
 WHERE ev.units <> 0
 GROUP BY ev.day, ev.location;

CREATE OR REPLACE VIEW inventory_events.kpi_throughput AS
WITH days AS (
    SELECT d::date AS day FROM generate_series(current_date - 29, current_date, interval '1 day') d
), ev AS (
    SELECT e.recorded_at::date AS day, count(*) AS n
      FROM inventory_events.event e WHERE e.recorded_at >= current_date - 29 GROUP BY 1
), pub AS (
    SELECT p.published_at::date AS day, count(*) AS n, count(DISTINCT p.channel) AS channels
      FROM inventory_events.publication p WHERE p.published_at >= current_date - 29 GROUP BY 1
), dl AS (
    SELECT d.failed_at::date AS day, count(*) AS n
      FROM inventory_events.dead_letter d WHERE d.failed_at >= current_date - 29 GROUP BY 1
)
SELECT days.day,
       coalesce(ev.n, 0) AS events_appended,
       coalesce(pub.n, 0) AS publications,
       coalesce(pub.channels, 0) AS channels_published,
       coalesce(dl.n, 0) AS dead_letters,
       round(coalesce(dl.n, 0)::numeric / nullif(coalesce(ev.n, 0) + coalesce(dl.n, 0), 0), 4) AS dead_letter_share
  FROM days
  LEFT JOIN ev ON ev.day = days.day
  LEFT JOIN pub ON pub.day = days.day
  LEFT JOIN dl ON dl.day = days.day;

REVOKE ALL ON inventory_events.event, inventory_events.event_default, inventory_events.event_key,
    inventory_events.event_archive, inventory_events.event_archive_ref FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION inventory_events.event_partitions(), inventory_events.guard_partition(regclass),
    inventory_events.archive_boundary(), inventory_events.archive_refs(regclass, integer),
    inventory_events.index_partition(regclass),
    inventory_events.partition_start(timestamptz, interval), inventory_events.create_partitions(timestamptz, integer),
    inventory_events.archive_before(timestamptz, boolean), inventory_events.attach_archived(regclass) FROM PUBLIC;

-- Every role that could read the old log reads the new one and its tables;
-- every one that could call apply_retention() may make partitions; then the
-- initial privileges are put back to a fresh install's, as above.
DO $partition_grants$
DECLARE
    tables pg_catalog.regclass[] := ARRAY['inventory_events.event', 'inventory_events.event_default',
                                          'inventory_events.event_key', 'inventory_events.event_archive',
                                          'inventory_events.event_archive_ref'];
    fresh pg_catalog.aclitem[];
    t pg_catalog.regclass;
    f pg_catalog.regprocedure;
    grantee oid;
    fresh_init jsonb := '{}';
BEGIN
    FOREACH t IN ARRAY tables LOOP
        SELECT i.initprivs INTO fresh FROM pg_catalog.pg_init_privs i
         WHERE i.objoid = t AND i.classoid = 'pg_catalog.pg_class'::pg_catalog.regclass AND i.objsubid = 0;
        fresh_init := fresh_init || jsonb_build_object(t::oid::text, fresh::text);
    END LOOP;
    FOREACH f IN ARRAY ARRAY['inventory_events.event_partitions()'::pg_catalog.regprocedure,
                             'inventory_events.archive_boundary()',
                             'inventory_events.create_partitions(timestamp with time zone,integer)'] LOOP
        SELECT i.initprivs INTO fresh FROM pg_catalog.pg_init_privs i
         WHERE i.objoid = f AND i.classoid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND i.objsubid = 0;
        fresh_init := fresh_init || jsonb_build_object(f::oid::text, fresh::text);
    END LOOP;
    FOR grantee IN
        SELECT DISTINCT a.grantee
          FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) a
         WHERE c.oid = 'inventory_events.event_0_2_0'::pg_catalog.regclass
           AND a.privilege_type = 'SELECT' AND a.grantee <> c.relowner AND a.grantee <> 0
         ORDER BY 1
    LOOP
        EXECUTE pg_catalog.format('GRANT SELECT ON inventory_events.event, inventory_events.event_default,
                                   inventory_events.event_key, inventory_events.event_archive,
                                   inventory_events.event_archive_ref TO %I',
                                  pg_catalog.pg_get_userbyid(grantee));
        IF pg_catalog.has_function_privilege(grantee, 'inventory_events.verify()', 'EXECUTE') THEN
            EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION inventory_events.event_partitions(),
                                       inventory_events.archive_boundary() TO %I',
                                      pg_catalog.pg_get_userbyid(grantee));
        END IF;
    END LOOP;
    FOR grantee IN
        SELECT DISTINCT a.grantee
          FROM pg_catalog.pg_proc p, pg_catalog.aclexplode(p.proacl) a
         WHERE p.oid = 'inventory_events.apply_retention()'::pg_catalog.regprocedure
           AND a.privilege_type = 'EXECUTE' AND a.grantee <> p.proowner AND a.grantee <> 0
         ORDER BY 1
    LOOP
        EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION inventory_events.create_partitions(timestamptz, integer) TO %I',
                                  pg_catalog.pg_get_userbyid(grantee));
    END LOOP;
    UPDATE pg_catalog.pg_init_privs i SET initprivs = (fresh_init ->> i.objoid::text)::pg_catalog.aclitem[]
     WHERE fresh_init ? i.objoid::text AND i.objsubid = 0
       AND i.classoid IN ('pg_catalog.pg_class'::pg_catalog.regclass, 'pg_catalog.pg_proc'::pg_catalog.regclass);
END;
$partition_grants$;
DO $warn_0_2_0$
DECLARE
    col record;
BEGIN
    -- What the update cannot carry over: a DBA's triggers on the old log, and
    -- views or SQL functions of the DBA's that read it (bound to event_0_2_0).
    -- Publications of all tables, or of the schema: each partition would go
    -- out under its own name, unless through the root.
    FOR col IN
        SELECT p.pubname FROM pg_catalog.pg_publication p
         WHERE NOT p.pubviaroot
           AND (p.puballtables OR EXISTS (SELECT FROM pg_catalog.pg_publication_namespace n
                                           WHERE n.pnpubid = p.oid
                                             AND n.pnnspid = 'inventory_events'::pg_catalog.regnamespace))
    LOOP
        RAISE WARNING 'publication "%" publishes each partition of the event log under its own name', col.pubname
              USING HINT = 'ALTER PUBLICATION ... SET (publish_via_partition_root = true), so that its subscribers receive rows of inventory_events.event.';
    END LOOP;
    FOR col IN
        SELECT t.tgname FROM pg_catalog.pg_trigger t
         WHERE t.tgrelid = 'inventory_events.event_0_2_0'::pg_catalog.regclass AND NOT t.tgisinternal
           AND t.tgparentid = 0 AND t.tgname NOT IN ('event_append_only_truncate', 'event_rewritten_truncate')
    LOOP
        RAISE WARNING 'trigger "%" stays on inventory_events.event_0_2_0, the 0.2.0 log', col.tgname
              USING HINT = 'Create it again on inventory_events.event.';
    END LOOP;
    FOR col IN
        SELECT DISTINCT pg_catalog.pg_describe_object(d.classid, d.objid, 0) AS what
          FROM pg_catalog.pg_depend d
         WHERE d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
           AND d.refobjid = 'inventory_events.event_0_2_0'::pg_catalog.regclass
           AND d.classid IN ('pg_catalog.pg_rewrite'::pg_catalog.regclass, 'pg_catalog.pg_proc'::pg_catalog.regclass)
           AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend e
                            WHERE e.deptype = 'e'
                              AND ((d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass
                                    AND e.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                                    AND e.objid = (SELECT r.ev_class FROM pg_catalog.pg_rewrite r WHERE r.oid = d.objid))
                                   OR (e.classid = d.classid AND e.objid = d.objid)))
    LOOP
        RAISE WARNING '% reads inventory_events.event_0_2_0, the 0.2.0 log, not the partitioned one', col.what
              USING HINT = 'Create it again, so that it reads inventory_events.event.';
    END LOOP;
END;
$warn_0_2_0$;
-- A log of 0.2.0 with no event (an update right after CREATE EXTENSION) is
-- not kept as a partition: the database is then the fresh install's.
DO $empty_0_2_0$
BEGIN
    IF NOT EXISTS (SELECT FROM inventory_events.event_0_2_0) THEN
        ALTER TABLE inventory_events.event DETACH PARTITION inventory_events.event_0_2_0;
        DROP TABLE inventory_events.event_0_2_0;
    END IF;
END;
$empty_0_2_0$;
-- === end of the partitioned log ===

-- ---------------------------------------------------------------------------
-- Grants kept across DROP and CREATE (see upgrade_keep_grants() above)
-- ---------------------------------------------------------------------------

-- Each function re-created above got a fresh install's initial privileges
-- (its REVOKE recorded them); the grants it had are made again. A GRANT
-- inside ALTER EXTENSION is also recorded as an initial privilege, which
-- pg_dump would then leave out, so the initial privileges are put back to
-- the fresh install's afterwards (on PostgreSQL 15, pg_init_privs has no
-- dependencies to keep in step).
DO $kept$
DECLARE
    kept jsonb := coalesce(nullif(pg_catalog.current_setting('inventory_events_upgrade.kept_acls', true), ''),
                           '{}')::jsonb;
    signature text;
    acl text;
    f pg_catalog.regprocedure;
    owner oid;
    fresh pg_catalog.aclitem[];
    grantors oid[];
    grantees oid[];
    grantable boolean[];
    done boolean[];
    progress boolean;
    me name := current_user;
BEGIN
    FOR signature, acl IN SELECT k.key, k.value FROM pg_catalog.jsonb_each_text(kept) k LOOP
        CONTINUE WHEN acl = '';     -- the default ACL: nobody had a grant of their own
        f := signature::pg_catalog.regprocedure;
        SELECT p.proowner INTO owner FROM pg_catalog.pg_proc p WHERE p.oid = f;
        SELECT i.initprivs INTO fresh FROM pg_catalog.pg_init_privs i
         WHERE i.objoid = f AND i.classoid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND i.objsubid = 0;
        -- Each grant made again by its own grantor (a role's grant depends on
        -- it, as REVOKE ... CASCADE knows): the owner's first, then those of
        -- roles that hold the grant option by then, until none is left.
        SELECT pg_catalog.array_agg(a.grantor), pg_catalog.array_agg(a.grantee), pg_catalog.array_agg(a.is_grantable)
          INTO grantors, grantees, grantable
          FROM pg_catalog.aclexplode(acl::pg_catalog.aclitem[]) a
         WHERE a.privilege_type = 'EXECUTE' AND a.grantee <> owner;
        done := pg_catalog.array_fill(false, ARRAY[coalesce(pg_catalog.cardinality(grantors), 0)]);
        LOOP
            progress := false;
            FOR i IN 1 .. coalesce(pg_catalog.cardinality(grantors), 0) LOOP
                CONTINUE WHEN done[i];
                CONTINUE WHEN grantors[i] <> owner
                          AND NOT pg_catalog.has_function_privilege(grantors[i], f, 'EXECUTE WITH GRANT OPTION');
                -- A superuser's grant (the old owner's) is recorded as the
                -- owner's: made as we are, without becoming a role the
                -- session user may not SET ROLE to. Afterwards, back to the
                -- role running the update (not RESET ROLE: the session's).
                IF grantors[i] <> owner
                   AND NOT (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.oid = grantors[i]) THEN
                    EXECUTE pg_catalog.format('SET LOCAL ROLE %I', pg_catalog.pg_get_userbyid(grantors[i]));
                END IF;
                EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s TO %s%s', f,
                                          CASE WHEN grantees[i] = 0 THEN 'PUBLIC'
                                               ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(grantees[i])) END,
                                          CASE WHEN grantable[i] THEN ' WITH GRANT OPTION' ELSE '' END);
                EXECUTE pg_catalog.format('SET LOCAL ROLE %I', me);
                done[i] := true;
                progress := true;
            END LOOP;
            EXIT WHEN NOT progress;
        END LOOP;
        FOR i IN 1 .. coalesce(pg_catalog.cardinality(grantors), 0) LOOP
            CONTINUE WHEN done[i];
            RAISE WARNING 'the grant of EXECUTE on % to % by % is not made again', f,
                  CASE WHEN grantees[i] = 0 THEN 'PUBLIC' ELSE pg_catalog.pg_get_userbyid(grantees[i])::text END,
                  pg_catalog.pg_get_userbyid(grantors[i])
                  USING HINT = 'Its grantor no longer holds the grant option; grant it again if it is still wanted.';
        END LOOP;
        UPDATE pg_catalog.pg_init_privs i SET initprivs = fresh
         WHERE i.objoid = f AND i.classoid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND i.objsubid = 0;
    END LOOP;
END;
$kept$;
DROP FUNCTION inventory_events.upgrade_keep_grants(jsonb);
