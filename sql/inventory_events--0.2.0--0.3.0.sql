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

CREATE OR REPLACE FUNCTION inventory_events.expire_reservations(max_reservations integer DEFAULT 1000)
RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    due  bigint[];
    r    inventory_events.reservation;
    n    integer := 0;
    err_state    text;
    err_message  text;
BEGIN
    PERFORM inventory_events.require_writable('inventory_events.expire_reservations()');
    SELECT array_agg(x.id ORDER BY x.id) INTO due
      FROM (SELECT x.id FROM inventory_events.reservation x
             WHERE x.expires_at <= now()
               AND (x.backordered > 0 OR EXISTS (SELECT FROM inventory_events.allocation a
                                                  WHERE a.reservation_id = x.id AND a.reserved > 0))
             ORDER BY x.id LIMIT max_reservations) x;
    IF due IS NULL THEN
        RETURN 0;
    END IF;
    -- Every sku involved, locked at once in the global order.
    PERFORM inventory_events.lock_skus(ARRAY(
        SELECT x.sku FROM inventory_events.reservation x WHERE x.id = ANY (due)
        UNION SELECT k.component FROM inventory_events.reservation x
                JOIN inventory_events.kit_component k ON k.kit = x.sku WHERE x.id = ANY (due)));
    FOR r IN SELECT * FROM inventory_events.reservation x WHERE x.id = ANY (due) ORDER BY x.id FOR UPDATE LOOP
        -- Picked meanwhile? Then only what is still reserved or backordered goes.
        IF r.backordered > 0 OR EXISTS (SELECT FROM inventory_events.allocation a
                                         WHERE a.reservation_id = r.id AND a.reserved > 0) THEN
            -- Each in a subtransaction: one that fails is recorded in
            -- worker_error (task expire, its channel) and the others go on.
            BEGIN
                PERFORM inventory_events.release(r.channel, r.ref, NULL, 'expired');
                n := n + 1;
                UPDATE inventory_events.worker_error w SET cleared_at = clock_timestamp()
                 WHERE w.task = 'expire' AND w.channel = r.channel AND w.cleared_at IS NULL;
            EXCEPTION WHEN OTHERS THEN
                GET STACKED DIAGNOSTICS err_state = RETURNED_SQLSTATE, err_message = MESSAGE_TEXT;
                PERFORM inventory_events.record_worker_error('expire', r.channel, err_state, err_message,
                                                             format('Reservation "%s" of channel "%s".', r.ref, r.channel));
            END;
        END IF;
    END LOOP;
    RETURN n;
END;
$$;

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
  LEFT JOIN LATERAL (SELECT e.recorded_at
                       FROM inventory_events.event e, inventory_events.publisher_checkpoint c
                      WHERE (e.xid, e.id) > (split_part(c.checkpoint, ':', 1)::xid8,
                                             split_part(c.checkpoint, ':', 2)::bigint)
                      ORDER BY e.xid, e.id LIMIT 1) unread ON true
  LEFT JOIN LATERAL (SELECT a.pid, a.datname, a.xact_start
                       FROM pg_catalog.pg_stat_activity a
                      WHERE a.backend_xid IS NOT NULL AND a.pid <> pg_catalog.pg_backend_pid()
                      ORDER BY pg_catalog.age(a.backend_xid) DESC LIMIT 1) horizon ON true;
COMMENT ON VIEW inventory_events.channel_health IS
  'Per channel: publication lag, last publication, last error and retry, the transaction holding back the publisher';

-- As the install script leaves them: nothing open to PUBLIC.
REVOKE ALL ON inventory_events.worker_error, inventory_events.channel_health FROM PUBLIC;

-- A transfer takes its sku's lock before its streams (the global order).
CREATE OR REPLACE FUNCTION inventory_events.transfer(sku text, from_location text, to_location text, qty bigint,
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
