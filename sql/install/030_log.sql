-- ---------------------------------------------------------------------------
-- The log's transaction ids across clusters (src/loghome.c)
-- ---------------------------------------------------------------------------

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
-- The log starts here.
INSERT INTO inventory_events.log_home (home, system_identifier, database_oid, xid_offset, first_xid, adopted_at)
SELECT 0, s.system_identifier, d.oid, 0, pg_snapshot_xmin(pg_current_snapshot()), now()
  FROM pg_control_system() s, pg_database d
 WHERE d.datname = current_database();

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

-- ---------------------------------------------------------------------------
-- The event log (column order matters: src/catalog.h mirrors it)
-- ---------------------------------------------------------------------------

CREATE SEQUENCE inventory_events.event_id_seq;

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
SELECT pg_catalog.pg_extension_config_dump('inventory_events.event_id_seq', '');

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

CREATE TABLE inventory_events.stock (
    sku            text NOT NULL REFERENCES inventory_events.item,
    location       text NOT NULL REFERENCES inventory_events.location,
    lot            text NOT NULL DEFAULT '',
    available      bigint NOT NULL DEFAULT 0,
    reserved       bigint NOT NULL DEFAULT 0,
    picked         bigint NOT NULL DEFAULT 0,
    damaged        bigint NOT NULL DEFAULT 0,
    quarantine     bigint NOT NULL DEFAULT 0,
    in_transit     bigint NOT NULL DEFAULT 0,
    inbound        bigint NOT NULL DEFAULT 0,
    on_hand        bigint NOT NULL DEFAULT 0,
    safety_stock   bigint NOT NULL DEFAULT 0,
    version        bigint NOT NULL DEFAULT 0,
    last_event_id  bigint,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT stock_pkey PRIMARY KEY (sku, location, lot)
) WITH (fillfactor = 70);
COMMENT ON TABLE inventory_events.stock IS
  'Stock position per stream (sku, location, lot), derived from the event log in the same transaction';
-- Dumped with the log (one snapshot: they agree), and a restore loads it
-- instead of deriving it: the partitions of the log that pg_dump writes get
-- their indexes only after their rows, so while a restore loads them the
-- stock trigger has no index to read a stream by (src/stock.c). Any other
-- bulk load (a superuser's INSERT, replication) derives it.
SELECT pg_catalog.pg_extension_config_dump('inventory_events.stock', '');

CREATE FUNCTION inventory_events.position_of(s inventory_events.stock)
RETURNS inventory_events.stock_position
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN inventory_events.stock_position(s.available, s.reserved, s.picked, s.damaged,
                                       s.quarantine, s.in_transit, s.inbound);

CREATE TABLE inventory_events.dead_letter (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    failed_at        timestamptz NOT NULL DEFAULT now(),
    source           text,
    idempotency_key  text,
    batch_ordinal    integer,
    sqlstate         text NOT NULL,
    message          text NOT NULL,
    detail           text,
    payload          jsonb NOT NULL
);
COMMENT ON TABLE inventory_events.dead_letter IS 'Events refused by batch ingest, with their reason and payload';
SELECT pg_catalog.pg_extension_config_dump('inventory_events.dead_letter', '');
SELECT pg_catalog.pg_extension_config_dump('inventory_events.dead_letter_id_seq', '');

CREATE FUNCTION inventory_events.stock_trigger() RETURNS trigger
AS 'MODULE_PATHNAME', 'ie_stock_trigger' LANGUAGE C;
CREATE TRIGGER event_stock AFTER INSERT ON inventory_events.event
    FOR EACH ROW EXECUTE FUNCTION inventory_events.stock_trigger();
-- Also on logical replication subscribers: they derive their own positions.
ALTER TABLE inventory_events.event ENABLE ALWAYS TRIGGER event_stock;

-- Only on logical replication subscribers (and other sessions in replica
-- mode): an applied event gets this database's log transaction id instead of
-- the publisher's.
CREATE FUNCTION inventory_events.event_local_xid() RETURNS trigger
AS 'MODULE_PATHNAME', 'ie_event_local_xid' LANGUAGE C;
CREATE TRIGGER event_local_xid BEFORE INSERT ON inventory_events.event
    FOR EACH ROW EXECUTE FUNCTION inventory_events.event_local_xid();
ALTER TABLE inventory_events.event ENABLE REPLICA TRIGGER event_local_xid;

CREATE FUNCTION inventory_events.event_guard() RETURNS trigger
AS 'MODULE_PATHNAME', 'ie_event_guard' LANGUAGE C;
-- Per row, so that every row rewritten under allow_history_rewrite is logged
-- and written into the WAL as a logical decoding message; ALWAYS, so that
-- session_replication_role = replica does not switch the guard off.
CREATE TRIGGER event_append_only BEFORE UPDATE OR DELETE ON inventory_events.event
    FOR EACH ROW EXECUTE FUNCTION inventory_events.event_guard();
CREATE TRIGGER event_append_only_truncate BEFORE TRUNCATE ON inventory_events.event
    FOR EACH STATEMENT EXECUTE FUNCTION inventory_events.event_guard();
ALTER TABLE inventory_events.event ENABLE ALWAYS TRIGGER event_append_only;
ALTER TABLE inventory_events.event ENABLE ALWAYS TRIGGER event_append_only_truncate;

-- ---------------------------------------------------------------------------
-- Appending
-- ---------------------------------------------------------------------------

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
    causation_id      uuid DEFAULT NULL,
    serials           text[] DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'ie_append_lifecycle'
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION inventory_events.append_lifecycle IS
  'Internal: appends one event, lifecycle events included; for the functions that own reservations';

CREATE FUNCTION inventory_events.ingest(events jsonb)
RETURNS TABLE (ordinal integer, status text, event_id bigint, version bigint, sqlstate text, message text)
AS 'MODULE_PATHNAME', 'ie_ingest'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION inventory_events.ingest IS
  'Appends a JSON array of events; invalid ones go to dead_letter; one outcome per element';

-- The COPY-friendly path: COPY into event_staging, then ingest_staged().
CREATE TABLE inventory_events.event_staging (
    staged_id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sku               text,
    location          text,
    event_type        text,
    qty               bigint,
    source            text,
    idempotency_key   text,
    occurred_at       timestamptz,
    lot               text,
    uom               text,
    ref               text,
    channel           text,
    expected_version  bigint,
    payload           jsonb,
    from_bucket       text,
    to_bucket         text,
    reason            text,
    expected_date     date,
    source_seq        bigint,
    correlation_id    uuid,
    causation_id      uuid,
    serials           text[]
);
SELECT pg_catalog.pg_extension_config_dump('inventory_events.event_staging', '');
SELECT pg_catalog.pg_extension_config_dump('inventory_events.event_staging_staged_id_seq', '');

-- Claims (deletes) the staged rows oldest first, FOR UPDATE SKIP LOCKED, and
-- ingests them as one batch like ingest(), in memory that does not grow with
-- the number of rows (src/ingest.c).
CREATE FUNCTION inventory_events.ingest_staged(max_rows integer DEFAULT NULL)
RETURNS TABLE (staged_id bigint, status text, event_id bigint, version bigint, sqlstate text, message text)
AS 'MODULE_PATHNAME', 'ie_ingest_staged'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION inventory_events.ingest_staged IS
  'Ingests (and removes) the rows COPYed into event_staging, oldest first';

