-- inventory_events 0.1.0 -> 0.2.0
\echo Use "ALTER EXTENSION inventory_events UPDATE TO '0.2.0'" to load this file. \quit

-- Survives the DBA's tools: pg_dump dumps the extension's data (stock is
-- derived again while the log loads), event.xid keeps growing when the
-- database moves to another cluster (log_home), functions that change stock
-- refuse on a standby with SQLSTATE 25006, and publish() makes its checkpoint
-- row itself. The result equals a fresh install of 0.2.0 (test/t/009_upgrade.pl).

-- Internal: the first step of every function that changes stock. On a standby
-- (or in a read-only transaction) it refuses with SQLSTATE 25006 and a hint
-- naming the primary, before anything is locked or read.
CREATE FUNCTION inventory_events.require_writable(function text)
RETURNS void
AS 'MODULE_PATHNAME', 'ie_require_writable_sql'
LANGUAGE C VOLATILE STRICT;

-- pg_dump dumps the rows of these tables (CREATE EXTENSION makes the tables).
SELECT pg_catalog.pg_extension_config_dump('inventory_events.item', '');
SELECT pg_catalog.pg_extension_config_dump('inventory_events.item_uom', '');
SELECT pg_catalog.pg_extension_config_dump('inventory_events.location', '');
SELECT pg_catalog.pg_extension_config_dump('inventory_events.lot', '');
SELECT pg_catalog.pg_extension_config_dump('inventory_events.channel', '');
SELECT pg_catalog.pg_extension_config_dump('inventory_events.channel_location', '');
SELECT pg_catalog.pg_extension_config_dump('inventory_events.kit_component', '');

-- A location's parent is checked at commit: a restore of a dump made with
-- pg_dump --inserts (psql --single-transaction) may load a child before its parent.
ALTER TABLE inventory_events.location ALTER CONSTRAINT location_parent_fkey DEFERRABLE INITIALLY DEFERRED;

-- Also in replica mode: on a logical replication subscriber applying master
-- data, and in a parallel restore (doc/operations.md).
ALTER TABLE inventory_events.item ENABLE ALWAYS TRIGGER item_changed;
ALTER TABLE inventory_events.location ENABLE ALWAYS TRIGGER location_changed;
ALTER TABLE inventory_events.channel ENABLE ALWAYS TRIGGER channel_changed;
ALTER TABLE inventory_events.channel_location ENABLE ALWAYS TRIGGER channel_location_changed;
ALTER TABLE inventory_events.kit_component ENABLE ALWAYS TRIGGER kit_component_changed;

-- Every cluster and database the log has been written in. event.xid is the
-- writing transaction's id plus the current home's xid_offset, so that it
-- keeps growing when the database moves (a restore into a new cluster, whose
-- transaction ids start again near zero; a logical replication subscriber).
-- Home 0 is the database CREATE EXTENSION ran in; after a restore there are
-- two (the source's and the target's) and the database is not the log's home
-- until its first write adopts the log as home n + 1, with an offset that
-- puts every new event above every stored one. See src/loghome.c. (Column
-- order matters: src/catalog.h mirrors it.)
CREATE TABLE inventory_events.log_home (
    home               integer NOT NULL CHECK (home >= 0),
    system_identifier  bigint NOT NULL,
    database_oid       oid NOT NULL,
    xid_offset         bigint NOT NULL CHECK (xid_offset >= 0),
    first_xid          xid8 NOT NULL,
    adopted_at         timestamptz NOT NULL,
    PRIMARY KEY (system_identifier, database_oid, first_xid)
);
COMMENT ON TABLE inventory_events.log_home IS
  'Each cluster (system identifier) and database the event log has been written in, and the offset of its transaction ids there';
SELECT pg_catalog.pg_extension_config_dump('inventory_events.log_home', '');
-- Writers keep the home's offset per backend; a change (a restore loading
-- rows) tells every backend to look again.
CREATE TRIGGER log_home_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON inventory_events.log_home
    FOR EACH STATEMENT EXECUTE FUNCTION inventory_events.master_data_changed();
ALTER TABLE inventory_events.log_home ENABLE ALWAYS TRIGGER log_home_changed;

-- Whether this database has written to the log since CREATE EXTENSION or
-- since its restore: the first write adds a row (a row per backend that wrote
-- first at the same time). Not dumped, so a restored database has none until
-- its first write, and its publisher waits until then: it must not write
-- before the restore has loaded its tables.
CREATE TABLE inventory_events.log_home_written (
    written_at  timestamptz NOT NULL,
    pid         integer NOT NULL
);
COMMENT ON TABLE inventory_events.log_home_written IS
  'The first writes in this database since CREATE EXTENSION or a restore (not dumped)';

CREATE FUNCTION inventory_events.log_xid()
RETURNS xid8
AS 'MODULE_PATHNAME', 'ie_log_xid_sql'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION inventory_events.log_xid() IS
  'The log transaction id of this transaction (its transaction id plus the offset of the log''s home)';

CREATE FUNCTION inventory_events.log_xmin()
RETURNS xid8
AS 'MODULE_PATHNAME', 'ie_log_xmin_sql'
LANGUAGE C STABLE;
COMMENT ON FUNCTION inventory_events.log_xmin() IS
  'Every event with a smaller xid has committed or never will: readers take events below it';

CREATE FUNCTION inventory_events.log_adopted()
RETURNS boolean
AS 'MODULE_PATHNAME', 'ie_log_adopted_sql'
LANGUAGE C STABLE;
COMMENT ON FUNCTION inventory_events.log_adopted() IS
  'Whether this database is the log''s home and has written to it (false after CREATE EXTENSION, a restore or a move until the first write)';

-- (Waits for every writer: no transaction of 0.1.0 is left running.)
ALTER TABLE inventory_events.event ALTER COLUMN xid SET DEFAULT inventory_events.log_xid();
COMMENT ON COLUMN inventory_events.event.xid IS
  'Log transaction id: the writing transaction''s id plus the offset of the log''s home (see log_home)';
SELECT pg_catalog.pg_extension_config_dump('inventory_events.event', '');
SELECT pg_catalog.pg_extension_config_dump('inventory_events.event_id_seq', '');

-- This database is the log's home: every stored event was written here,
-- with its own transaction id (offset 0).
INSERT INTO inventory_events.log_home_written VALUES (now(), pg_backend_pid());
INSERT INTO inventory_events.log_home (home, system_identifier, database_oid, xid_offset, first_xid, adopted_at)
SELECT 0, s.system_identifier, d.oid, 0, pg_snapshot_xmin(pg_current_snapshot()), now()
  FROM pg_control_system() s, pg_database d
 WHERE d.datname = current_database();

-- stock is not dumped: a restore derives it again while it loads the log.
SELECT pg_catalog.pg_extension_config_dump('inventory_events.dead_letter', '');
SELECT pg_catalog.pg_extension_config_dump('inventory_events.dead_letter_id_seq', '');

-- Only on logical replication subscribers (and other sessions in replica
-- mode): an applied event gets this database's log transaction id instead of
-- the publisher's.
CREATE FUNCTION inventory_events.event_local_xid() RETURNS trigger
AS 'MODULE_PATHNAME', 'ie_event_local_xid' LANGUAGE C;
CREATE TRIGGER event_local_xid BEFORE INSERT ON inventory_events.event
    FOR EACH ROW EXECUTE FUNCTION inventory_events.event_local_xid();
ALTER TABLE inventory_events.event ENABLE REPLICA TRIGGER event_local_xid;

SELECT pg_catalog.pg_extension_config_dump('inventory_events.event_staging', '');
SELECT pg_catalog.pg_extension_config_dump('inventory_events.event_staging_staged_id_seq', '');

CREATE OR REPLACE FUNCTION inventory_events.ingest_staged(max_rows integer DEFAULT NULL)
RETURNS TABLE (staged_id bigint, status text, event_id bigint, version bigint, sqlstate text, message text)
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT inventory_events.require_writable('inventory_events.ingest_staged()');
    -- Claim the rows by deleting them: concurrent callers never ingest a row twice.
    WITH claimed AS (
        DELETE FROM inventory_events.event_staging s
         WHERE s.staged_id IN (SELECT t.staged_id FROM inventory_events.event_staging t
                                ORDER BY t.staged_id LIMIT max_rows FOR UPDATE SKIP LOCKED)
        RETURNING s.*
    ), batch AS (
        SELECT array_agg(c.staged_id ORDER BY c.staged_id) AS ids,
               jsonb_agg(to_jsonb(c.*) - 'staged_id' ORDER BY c.staged_id) AS events
          FROM claimed c
    )
    SELECT b.ids[o.ordinal], o.status, o.event_id, o.version, o.sqlstate, o.message
      FROM batch b, inventory_events.ingest(coalesce(b.events, '[]')) o
     ORDER BY o.ordinal;
END;

CREATE OR REPLACE FUNCTION inventory_events.events_after(checkpoint text DEFAULT '0:0', max_events integer DEFAULT 1000)
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

CREATE OR REPLACE FUNCTION inventory_events.rebuild(progress_every integer DEFAULT 10000)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    total     bigint;
    done      bigint := 0;
    repaired  bigint := 0;
    d         record;
    p         inventory_events.stock_position;
BEGIN
    PERFORM inventory_events.require_writable('inventory_events.rebuild()');
    -- Appends wait until the rebuild commits; readers go on.
    LOCK TABLE inventory_events.event IN SHARE MODE;
    LOCK TABLE inventory_events.stock IN SHARE ROW EXCLUSIVE MODE;

    SELECT count(*) INTO total FROM (SELECT DISTINCT e.sku, e.location, e.lot FROM inventory_events.event e) x;

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

    DELETE FROM inventory_events.stock s
     WHERE NOT EXISTS (SELECT 1 FROM inventory_events.event e
                        WHERE e.sku = s.sku AND e.location = s.location AND e.lot = s.lot);
    GET DIAGNOSTICS done = ROW_COUNT;
    repaired := repaired + done;
    RAISE NOTICE 'rebuild: % streams checked, % repaired', total, repaired;
    RETURN repaired;
END;
$$;

SELECT pg_catalog.pg_extension_config_dump('inventory_events.reservation', '');
SELECT pg_catalog.pg_extension_config_dump('inventory_events.reservation_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('inventory_events.allocation', '');
SELECT pg_catalog.pg_extension_config_dump('inventory_events.allocation_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('inventory_events.exception', '');
SELECT pg_catalog.pg_extension_config_dump('inventory_events.exception_id_seq', '');

CREATE OR REPLACE FUNCTION inventory_events.resolve_exception(id bigint)
RETURNS boolean
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT inventory_events.require_writable('inventory_events.resolve_exception()');
    WITH resolved AS (
        UPDATE inventory_events.exception x SET resolved_at = now()
         WHERE x.id = resolve_exception.id AND x.resolved_at IS NULL
        RETURNING 1)
    SELECT count(*) > 0 FROM resolved;
END;

CREATE OR REPLACE FUNCTION inventory_events.release(channel text, ref text, qty bigint DEFAULT NULL,
                                         reason text DEFAULT 'cancelled', source text DEFAULT NULL,
                                         idempotency_key text DEFAULT NULL)
RETURNS SETOF inventory_events.movement
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r          inventory_events.reservation;
    n_cancel   bigint;
BEGIN
    PERFORM inventory_events.require_writable('inventory_events.release()');
    IF inventory_events.idempotent_event(source, idempotency_key) IS NOT NULL THEN
        RETURN QUERY SELECT * FROM inventory_events.replayed_events(source, idempotency_key);
        RETURN;
    END IF;
    r := inventory_events.lock_reservation(channel, ref);
    -- The unfilled part goes first.
    IF qty IS NOT NULL AND qty <= 0 THEN
        RAISE EXCEPTION 'invalid quantity %', qty
              USING ERRCODE = 'invalid_parameter_value', DETAIL = 'The quantity must be positive.';
    END IF;
    n_cancel := CASE WHEN qty IS NULL THEN r.backordered ELSE least(qty, r.backordered) END;
    IF n_cancel > 0 THEN
        UPDATE inventory_events.reservation x
           SET backordered = x.backordered - n_cancel, cancelled = x.cancelled + n_cancel
         WHERE x.id = r.id;
    END IF;
    IF qty IS NULL OR qty > n_cancel THEN
        RETURN QUERY SELECT * FROM inventory_events.move_allocations(
            r, 'release', qty - n_cancel, NULL, reason, source, idempotency_key);
    END IF;
END;
$$;

CREATE OR REPLACE FUNCTION inventory_events.pick(channel text, ref text, qty bigint DEFAULT NULL,
                                      location text DEFAULT NULL, source text DEFAULT NULL,
                                      idempotency_key text DEFAULT NULL)
RETURNS SETOF inventory_events.movement
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM inventory_events.require_writable('inventory_events.pick()');
    IF inventory_events.idempotent_event(source, idempotency_key) IS NOT NULL THEN
        RETURN QUERY SELECT * FROM inventory_events.replayed_events(source, idempotency_key);
        RETURN;
    END IF;
    RETURN QUERY SELECT * FROM inventory_events.move_allocations(
        inventory_events.lock_reservation(channel, ref), 'pick', qty, location, NULL, source, idempotency_key);
END;
$$;

CREATE OR REPLACE FUNCTION inventory_events.ship(channel text, ref text, qty bigint DEFAULT NULL,
                                      source text DEFAULT NULL, idempotency_key text DEFAULT NULL)
RETURNS SETOF inventory_events.movement
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM inventory_events.require_writable('inventory_events.ship()');
    IF inventory_events.idempotent_event(source, idempotency_key) IS NOT NULL THEN
        RETURN QUERY SELECT * FROM inventory_events.replayed_events(source, idempotency_key);
        RETURN;
    END IF;
    RETURN QUERY SELECT * FROM inventory_events.move_allocations(
        inventory_events.lock_reservation(channel, ref), 'ship', qty, NULL, NULL, source, idempotency_key);
END;
$$;

CREATE OR REPLACE FUNCTION inventory_events.pick_short(channel text, ref text, qty bigint, location text DEFAULT NULL,
                                            reason text DEFAULT NULL, source text DEFAULT NULL,
                                            idempotency_key text DEFAULT NULL)
RETURNS SETOF inventory_events.movement
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r  inventory_events.reservation;
    m  inventory_events.movement;
    kit boolean;
BEGIN
    PERFORM inventory_events.require_writable('inventory_events.pick_short()');
    IF qty IS NULL THEN
        RAISE EXCEPTION 'qty must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF inventory_events.idempotent_event(source, idempotency_key) IS NOT NULL THEN
        RETURN QUERY SELECT * FROM inventory_events.replayed_events(source, idempotency_key);
        RETURN;
    END IF;
    r := inventory_events.lock_reservation(channel, ref);
    FOR m IN SELECT * FROM inventory_events.move_allocations(r, 'pick_short', qty, location, reason, source, idempotency_key) LOOP
        INSERT INTO inventory_events.exception (kind, sku, location, channel, ref, detail)
        VALUES ('pick_short', m.sku, m.location, r.channel, r.ref,
                format('%s short%s (event %s)%s', m.qty,
                       CASE WHEN m.lot <> '' THEN format(' of lot "%s"', m.lot) ELSE '' END,
                       m.event_id, coalesce(': ' || reason, '')));
        RETURN NEXT m;
    END LOOP;
    kit := EXISTS (SELECT FROM inventory_events.kit_component k WHERE k.kit = r.sku);
    IF NOT kit AND (SELECT c.allow_backorders FROM inventory_events.channel c WHERE c.code = r.channel) THEN
        UPDATE inventory_events.reservation x SET backordered = x.backordered + pick_short.qty WHERE x.id = r.id;
        PERFORM inventory_events.fill_backorders(r.sku);
    END IF;
END;
$$;

CREATE OR REPLACE FUNCTION inventory_events.expire_reservations(max_reservations integer DEFAULT 1000)
RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    due  bigint[];
    r    inventory_events.reservation;
    n    integer := 0;
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
            PERFORM inventory_events.release(r.channel, r.ref, NULL, 'expired');
            n := n + 1;
        END IF;
    END LOOP;
    RETURN n;
END;
$$;

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

CREATE OR REPLACE FUNCTION inventory_events.receive_transfer(sku text, to_location text, qty bigint, ref text,
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

CREATE OR REPLACE FUNCTION inventory_events.receive_po(sku text, location text, qty bigint, ref text,
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

CREATE OR REPLACE FUNCTION inventory_events.receive_return(sku text, location text, qty bigint, ref text,
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

CREATE OR REPLACE FUNCTION inventory_events.dispose_return(sku text, location text, qty bigint, disposition text,
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

SELECT pg_catalog.pg_extension_config_dump('inventory_events.publication', '');
SELECT pg_catalog.pg_extension_config_dump('inventory_events.channel_publisher', '');
SELECT pg_catalog.pg_extension_config_dump('inventory_events.channel_shown', '');
SELECT pg_catalog.pg_extension_config_dump('inventory_events.publication_pending', '');
SELECT pg_catalog.pg_extension_config_dump('inventory_events.publisher_checkpoint', '');
-- publish() makes its checkpoint row itself now (a row made by CREATE
-- EXTENSION would collide with the restored one); the existing row stays.

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

CREATE OR REPLACE FUNCTION inventory_events.republish(channel text)
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
                    inventory_events.events_after(text, integer), inventory_events.verify(),
                    inventory_events.channel_availability(text, text),
                    inventory_events.channel_position(text, text),
                    inventory_events.channel_rules(bigint, inventory_events.channel, bigint),
                    inventory_events.availability_timeline(text, text, interval),
                    inventory_events.publications_since(text, bigint),
                    inventory_events.publisher_status(),
                    inventory_events.notify_channel(text),
                    inventory_events.shared_state() TO %s', r);
    IF access IN ('writer', 'admin') THEN
        -- writer: append through the functions; never write the log directly
        EXECUTE format('GRANT EXECUTE ON FUNCTION inventory_events.append(text, text, inventory_events.event_type,
                        bigint, text, text, timestamptz, text, text, text, text, bigint, jsonb, inventory_events.bucket,
                        inventory_events.bucket, text, date, bigint, uuid, uuid),
                        inventory_events.ingest(jsonb), inventory_events.ingest_staged(integer),
                        inventory_events.reserve(text, text, bigint, text, text, timestamptz, text, text),
                        inventory_events.reserve_lines(jsonb),
                        inventory_events.release(text, text, bigint, text, text, text),
                        inventory_events.pick(text, text, bigint, text, text, text),
                        inventory_events.ship(text, text, bigint, text, text),
                        inventory_events.pick_short(text, text, bigint, text, text, text, text),
                        inventory_events.expire_reservations(integer),
                        inventory_events.fill_backorders(text),
                        inventory_events.transfer(text, text, text, bigint, text, date, text, text, text),
                        inventory_events.receive_transfer(text, text, bigint, text, text, text, text),
                        inventory_events.receive_po(text, text, bigint, text, text, text, text),
                        inventory_events.receive_return(text, text, bigint, text, text, text, text, text, text),
                        inventory_events.dispose_return(text, text, bigint, text, text, text, text, text)
                        TO %s', r);
        EXECUTE format('GRANT INSERT ON inventory_events.event_staging TO %s', r);
    END IF;
    IF access = 'admin' THEN
        -- admin: master data, repairs
        EXECUTE format('GRANT INSERT, UPDATE, DELETE ON inventory_events.item, inventory_events.item_uom,
                        inventory_events.location, inventory_events.lot, inventory_events.channel,
                        inventory_events.channel_location, inventory_events.kit_component TO %s', r);
        EXECUTE format('GRANT UPDATE (resolved_at) ON inventory_events.exception TO %s', r);
        EXECUTE format('GRANT DELETE ON inventory_events.dead_letter TO %s', r);
        EXECUTE format('GRANT EXECUTE ON FUNCTION inventory_events.rebuild(integer),
                        inventory_events.publish(integer), inventory_events.republish(text),
                        inventory_events.publisher_start(text), inventory_events.publisher_stop(text),
                        inventory_events.resolve_exception(bigint),
                        inventory_events.report_progress(text) TO %s', r);
    END IF;
END;
$$;

-- Privileges as a fresh install has them. (Roles given access with
-- grant_access() before keep it; granted again after the update, they also
-- get what 0.2.0 adds for them: SELECT on log_home and on the sequences,
-- which a role needs to pg_dump the database. A grant made here would be
-- recorded as the extension's own initial privilege, and pg_dump leaves
-- those out.)
REVOKE ALL ON TABLE inventory_events.log_home, inventory_events.log_home_written FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION inventory_events.require_writable(text), inventory_events.log_xid(),
    inventory_events.log_xmin(), inventory_events.log_adopted(), inventory_events.event_local_xid()
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION inventory_events.log_xmin(), inventory_events.log_adopted() TO PUBLIC;
