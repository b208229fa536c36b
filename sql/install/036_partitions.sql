-- ---------------------------------------------------------------------------
-- The log's partitions and their archive (src/logpart.c)
-- ---------------------------------------------------------------------------

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
