-- ---------------------------------------------------------------------------
-- Stream snapshots: where a stream's history is read from
-- ---------------------------------------------------------------------------

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
-- next housekeeping), so no answer rests on them; but not the sealed ones of
-- archived partitions, which fold only archived events and cannot be taken
-- again.
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
