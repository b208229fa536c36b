-- The compiled expressions C keeps per backend for the tables it writes
-- (src/writer.c): CHECK constraints and the predicates of partial indexes,
-- reused by the writers of later transactions. Each partial index must hold
-- exactly the rows its predicate admits, whichever transaction wrote them,
-- in more partitions than the backend keeps compiled at once; a constraint or
-- partial index a DBA adds applies from the next row on. The writers
-- themselves are parked between transactions, and reused.
CREATE EXTENSION inventory_events;
SET search_path = inventory_events, public;
SET timezone = 'UTC';
SET client_min_messages = warning;

INSERT INTO item (sku) VALUES ('A');
INSERT INTO item (sku, lot_controlled) VALUES ('L', true);
INSERT INTO location (code) VALUES ('W1');
INSERT INTO lot (sku, lot) SELECT 'L', 'LOT-' || m FROM generate_series(0, 9) m;

-- Counts the rows of the log that satisfy pred twice: through the partial
-- indexes that pred implies (no sequential scan in the plan), and from the
-- heap alone. An index entry its predicate should have refused shows as a
-- difference.
CREATE FUNCTION pg_temp.index_agrees(pred text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    by_index bigint;
    by_heap  bigint;
    seq      int := 0;
    line     text;
BEGIN
    SET LOCAL enable_seqscan = off;
    SET LOCAL enable_bitmapscan = off;
    FOR line IN EXECUTE 'EXPLAIN (COSTS OFF) SELECT count(*) FROM inventory_events.event WHERE ' || pred LOOP
        IF line LIKE '%Seq Scan%' THEN seq := seq + 1; END IF;
    END LOOP;
    EXECUTE 'SELECT count(*) FROM inventory_events.event WHERE ' || pred INTO by_index;
    SET LOCAL enable_seqscan = on;
    SET LOCAL enable_indexscan = off;
    SET LOCAL enable_indexonlyscan = off;
    EXECUTE 'SELECT count(*) FROM inventory_events.event WHERE ' || pred INTO by_heap;
    RETURN format('index %s, heap %s, sequential scans in the index plan %s', by_index, by_heap, seq);
END $$;

-- Ten months, one transaction per event: the backend writes ten partitions
-- of the log and the stock table, more than the eight relations whose
-- expressions it keeps, so compiled entries are dropped and made again.
SET inventory_events.clock = '2025-01-15 12:00+00';
SELECT count(*) > 0 AS made FROM create_partitions();
DO $$
BEGIN
    FOR m IN 0..9 LOOP
        PERFORM set_config('inventory_events.clock', (timestamptz '2025-01-15 12:00+00' + make_interval(months => m))::text, false);
        PERFORM create_partitions();
        COMMIT;
        PERFORM append('A', 'W1', 'received', 3);
        COMMIT;
        PERFORM append('L', 'W1', 'received', 2, lot => 'LOT-' || m);
        COMMIT;
        -- occurred after it was recorded (a correction dated ahead)
        PERFORM append('A', 'W1', 'received', 1,
                       occurred_at => (timestamptz '2025-01-15 12:00+00' + make_interval(months => m, days => 2)));
        COMMIT;
        PERFORM append('A', 'W1', 'adjusted', -1);
        COMMIT;
    END LOOP;
END $$;
SELECT count(DISTINCT tableoid) AS partitions_written, count(*) AS events FROM event;

SELECT pg_temp.index_agrees($$lot <> ''$$) AS lot_index;
SELECT pg_temp.index_agrees($$occurred_at > recorded_at$$) AS late_index;

-- A partial index and a CHECK constraint of the DBA's, added after the
-- writers compiled the table's expressions: both apply from the next event.
CREATE INDEX event_big_qty ON event (sku) WHERE qty > 2;
ALTER TABLE event ADD CONSTRAINT event_qty_small CHECK (qty < 100);
SET inventory_events.clock = '2025-10-20 12:00+00';
SELECT append('A', 'W1', 'received', 5) > 0 AS appended;
SELECT append('A', 'W1', 'received', 2) > 0 AS appended;
SELECT pg_temp.index_agrees($$qty > 2$$) AS dba_index;
DO $$
BEGIN
    PERFORM append('A', 'W1', 'received', 500);
EXCEPTION WHEN check_violation THEN
    RAISE WARNING 'refused: %', SQLERRM;
END $$;
SELECT count(*) AS events_of_500 FROM event WHERE qty = 500;
ALTER TABLE event DROP CONSTRAINT event_qty_small;
SELECT append('A', 'W1', 'received', 500) > 0 AS appended_once_dropped;
DROP INDEX event_big_qty;
SELECT append('A', 'W1', 'received', 4) > 0 AS appended_once_dropped;
SELECT pg_temp.index_agrees($$lot <> ''$$) AS lot_index;

-- A subtransaction that rolls back after an invalidation (here: an index
-- made and dropped with it) drops the compiled expressions while the
-- transaction's writer of the partition stays open: that writer must still
-- have them (under valgrind: no read of freed memory). The stock writer the
-- subtransaction reopened holds the index it made, and closes with it (else:
-- WARNING "cannot remove relcache entry ... nonzero refcount").
BEGIN;
SELECT append('L', 'W1', 'received', 1, lot => 'LOT-1') > 0 AS appended;
SAVEPOINT s;
CREATE INDEX writer_exprs_probe ON stock (location);
SELECT append('A', 'W1', 'received', 1) > 0 AS appended;
ROLLBACK TO s;
SELECT append('A', 'W1', 'received', 1) > 0 AS appended;
SELECT append('L', 'W1', 'received', 1, lot => 'LOT-2') > 0 AS appended;
COMMIT;
SELECT pg_temp.index_agrees($$lot <> ''$$) AS lot_index;

-- A CHECK whose function appends to the log (volatile: PostgreSQL allows it)
-- has the nested append's CHECK evaluated while the outer one is under way.
-- The transaction's writer of the partition is busy with the outer row; the
-- nested row's writer must compile its own: a compiled expression keeps its
-- intermediate results in itself, and here the nested evaluation's null
-- (first argument of the OR) would turn the outer false into null, which a
-- CHECK passes. The outer event must be refused, and the nested one with it.
INSERT INTO item (sku) VALUES ('OUTER'), ('NESTED');
CREATE FUNCTION public.writer_exprs_nested(s text) RETURNS boolean LANGUAGE plpgsql AS $f$
BEGIN
    IF s <> 'OUTER' THEN
        RETURN true;
    END IF;
    PERFORM inventory_events.append('NESTED', 'W1', 'received', 1);
    RETURN false;
END $f$;
ALTER TABLE event ADD CONSTRAINT event_nested
    CHECK (nullif(sku, 'NESTED') = 'none' OR public.writer_exprs_nested(sku));
SELECT append('A', 'W1', 'received', 1) > 0 AS appended;
DO $$
BEGIN
    PERFORM append('OUTER', 'W1', 'received', 1);
EXCEPTION WHEN check_violation THEN
    RAISE WARNING 'refused: %', SQLERRM;
END $$;
SELECT count(*) FILTER (WHERE sku = 'OUTER') AS outer_events,
       count(*) FILTER (WHERE sku = 'NESTED') AS nested_events
  FROM event;
ALTER TABLE event DROP CONSTRAINT event_nested;
DROP FUNCTION public.writer_exprs_nested(text);

-- A CHECK over the whole row keeps state of its first evaluation in the
-- executor state's memory: not kept across transactions, it works in each.
-- (A partitioned table refuses whole-row CHECKs: on the month's partition.)
ALTER TABLE event_p20251001 ADD CONSTRAINT event_row_short CHECK (length(event_p20251001::text) < 1000);
SELECT append('A', 'W1', 'received', 1) > 0 AS appended;
SELECT append('A', 'W1', 'received', 1) > 0 AS appended;
DO $$
BEGIN
    PERFORM append('A', 'W1', 'received', 1, reason => repeat('x', 1000));
EXCEPTION WHEN check_violation THEN
    RAISE WARNING 'refused: %', SQLERRM;
END $$;
ALTER TABLE event_p20251001 DROP CONSTRAINT event_row_short;
SELECT append('A', 'W1', 'received', 1) > 0 AS appended;

-- Writers are parked between transactions (src/writer.c): each relation's
-- executor state stays in the backend's memory, reopened by the next
-- transaction, and must not grow with the number of transactions. (The
-- executor states under the kept writers' context and the contexts under
-- them, found by level: this query's own executor state is deeper, under
-- its portal.)
CREATE PROCEDURE pg_temp.appends(n int) LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1..n LOOP
        PERFORM append('A', 'W1', 'received', 1);
        COMMIT;
    END LOOP;
END $$;
CREATE VIEW pg_temp.kept_writer_memory AS
SELECT count(*) FILTER (WHERE c.parent = 'inventory_events kept writers') AS writers,
       count(*) FILTER (WHERE c.parent = 'ExecutorState') AS their_contexts,
       sum(c.total_bytes) AS bytes
  FROM pg_backend_memory_contexts c,
       (SELECT level FROM pg_backend_memory_contexts WHERE name = 'inventory_events kept writers') k
 WHERE c.parent = 'inventory_events kept writers'
    OR (c.parent = 'ExecutorState' AND c.level = k.level + 2);
CALL pg_temp.appends(20);
SELECT writers AS parked_before, their_contexts AS contexts_before, bytes AS bytes_before
  FROM pg_temp.kept_writer_memory \gset
CALL pg_temp.appends(1000);
SELECT :parked_before > 0 AS parked, :contexts_before > 0 AS with_contexts,
       writers = :parked_before AS same_writers, bytes - :bytes_before AS bytes_grown
  FROM pg_temp.kept_writer_memory;

-- A DBA's trigger on the log (on the month's partition) fires for every
-- event. Its function (PL/pgSQL) keeps state in its FmgrInfo, so the writer
-- of the partition that fired it is closed at commit, not parked; once the
-- trigger is gone, it is parked again.
CREATE TABLE public.audited (event_id bigint);
CREATE FUNCTION public.audit_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.audited VALUES (NEW.id);
    RETURN NULL;
END $$;
CREATE TRIGGER audit AFTER INSERT ON event_p20251001 FOR EACH ROW EXECUTE FUNCTION public.audit_event();
CALL pg_temp.appends(3);
SELECT count(*) AS audited FROM public.audited;
-- Built again for every transaction: the kept writers' context itself
-- (not its children) does not grow with the builds (it kept each writer's
-- name's formatting buffer, 128 bytes a build, for a while).
SELECT used_bytes AS kept_context_before FROM pg_backend_memory_contexts
 WHERE name = 'inventory_events kept writers' \gset
CALL pg_temp.appends(200);
SELECT used_bytes - :kept_context_before AS kept_context_grown FROM pg_backend_memory_contexts
 WHERE name = 'inventory_events kept writers';
SELECT :parked_before - count(*) AS writers_not_parked
  FROM pg_backend_memory_contexts WHERE parent = 'inventory_events kept writers';
DROP TRIGGER audit ON event_p20251001;
CALL pg_temp.appends(2);
SELECT count(*) AS audited FROM public.audited;
SELECT :parked_before - count(*) AS writers_not_parked
  FROM pg_backend_memory_contexts WHERE parent = 'inventory_events kept writers';
DROP FUNCTION public.audit_event();
DROP TABLE public.audited;

-- The extension's own BEFORE trigger on the log (it fires in replica mode)
-- given a SET clause by a DBA: the function's settings are cached in its
-- FmgrInfo, which lives with the writer (looked up in the writer's memory,
-- not the caller's), and the writer is closed at commit rather than parked.
-- (Before, the cache was in the first caller's memory, freed when its
-- statement ended: the next use read freed memory and the server crashed.)
ALTER FUNCTION event_local_xid() SET work_mem = '4MB';
SET session_replication_role = replica;
SELECT append('A', 'W1', 'received', 1) > 0 AS appended;
SELECT length(translate(repeat('z', 7000), 'z', 'q')) > 0 AND append('A', 'W1', 'received', 1) > 0 AS appended;
BEGIN;
SELECT append('A', 'W1', 'received', 1) > 0 AS appended;
SELECT length(translate(repeat('z', 7000), 'z', 'q')) > 0 AND append('A', 'W1', 'received', 1) > 0 AS appended;
COMMIT;
SELECT :parked_before - count(*) AS writers_not_parked
  FROM pg_backend_memory_contexts WHERE parent = 'inventory_events kept writers';
RESET session_replication_role;
ALTER FUNCTION event_local_xid() RESET work_mem;
SELECT append('A', 'W1', 'received', 1) > 0 AS appended;
SELECT :parked_before - count(*) AS writers_not_parked
  FROM pg_backend_memory_contexts WHERE parent = 'inventory_events kept writers';

-- A parked writer is built again only when an invalidation hits what it was
-- built from: its relation or one of its indexes, or any function, type or
-- constraint. pg_backend_memory_contexts names each kept writer (relation
-- and build number). DDL, VACUUM and ANALYZE of another table rebuild none
-- (all were rebuilt before: one counter of every invalidation); a change of
-- the stock table rebuilds only the stock writer.
CREATE VIEW pg_temp.kept_writers AS
SELECT ident FROM pg_backend_memory_contexts WHERE parent = 'inventory_events kept writers';
CREATE TABLE public.other (x int);
INSERT INTO public.other SELECT generate_series(1, 100);
CALL pg_temp.appends(2);
SELECT array_agg(ident ORDER BY ident)::text AS writers_before FROM pg_temp.kept_writers \gset
ALTER TABLE public.other ALTER COLUMN x SET STATISTICS 50;
CREATE INDEX other_x ON public.other (x);
VACUUM ANALYZE public.other;
CALL pg_temp.appends(2);
SELECT count(*) AS writers, count(*) FILTER (WHERE ident <> ALL (:'writers_before'::text[])) AS rebuilt
  FROM pg_temp.kept_writers;
ALTER TABLE stock ALTER COLUMN available SET STATISTICS 200;
CALL pg_temp.appends(2);
SELECT string_agg(split_part(ident, ',', 1), ' ') AS rebuilt
  FROM pg_temp.kept_writers WHERE ident <> ALL (:'writers_before'::text[]);
ALTER TABLE stock ALTER COLUMN available SET STATISTICS -1;
DROP TABLE public.other;

-- A column of the log with a domain type and a default: the partition's
-- writer compiles the domain's check into the default. A constraint added
-- to the domain afterwards (NOT VALID: the rows already there keep 'x') is
-- enforced by the next append, by a writer built again (a parked writer
-- with the old check would accept it), and dropping it lets 'x' in again.
CREATE DOMAIN public.note_text AS text;
ALTER TABLE event ADD COLUMN note public.note_text DEFAULT 'x';
CALL pg_temp.appends(2);
ALTER DOMAIN public.note_text ADD CONSTRAINT no_x CHECK (VALUE <> 'x') NOT VALID;
SELECT append('A', 'W1', 'received', 1) > 0 AS appended;
ALTER DOMAIN public.note_text DROP CONSTRAINT no_x;
SELECT append('A', 'W1', 'received', 1) > 0 AS appended;
SELECT DISTINCT note FROM event;
ALTER TABLE event DROP COLUMN note;
DROP DOMAIN public.note_text;
CALL pg_temp.appends(1);

-- The same through a domain that a planned SQL function brings into a
-- default (inlined: its CoerceToDomain is only in the planned expression):
-- refused by the next append (a parked writer with the old check would
-- accept it).
CREATE DOMAIN public.q AS int CHECK (VALUE >= 0);
CREATE FUNCTION public.mkq(int) RETURNS public.q LANGUAGE sql AS 'SELECT $1';
ALTER TABLE event ADD COLUMN extra int DEFAULT public.mkq(7);
CALL pg_temp.appends(2);
ALTER DOMAIN public.q ADD CONSTRAINT lt5 CHECK (VALUE < 5) NOT VALID;
SELECT append('A', 'W1', 'received', 1) > 0 AS appended;
ALTER TABLE event DROP COLUMN extra;
DROP FUNCTION public.mkq(int);
DROP DOMAIN public.q;
CALL pg_temp.appends(1);

SELECT count(*) AS streams_verify_finds_wrong FROM verify();

DROP EXTENSION inventory_events;
