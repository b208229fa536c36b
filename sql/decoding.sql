-- The output plugin: one JSON object per change for event and publication
-- inserts and our logical messages, everything else skipped; begin/commit
-- and positions on request; strict options; every filter.
CREATE EXTENSION inventory_events;
SET search_path = inventory_events, public;
INSERT INTO item (sku) VALUES ('TEE-1'), ('TEE-2'), ('MUG-1');
INSERT INTO location (code) VALUES ('W1'), ('W2');
INSERT INTO channel (code) VALUES ('web'), ('b2b');
INSERT INTO channel_location (channel, location) VALUES ('web', 'W1'), ('b2b', 'W2');
CREATE TABLE unrelated (x int);

SELECT 'init' FROM pg_create_logical_replication_slot('ie', 'inventory_events');

-- One transaction: two events; then a reservation (with its stock row and
-- reservation rows, which are skipped), an unrelated table, messages, a
-- publication.
BEGIN;
SELECT append('TEE-1', 'W1', 'received', 10, source => 'wms', idempotency_key => 'r-1') > 0;
SELECT append('MUG-1', 'W2', 'received', 4, channel => 'b2b') > 0;
COMMIT;
SELECT count(*) FROM reserve('web', 'TEE-1', 3, 'SO-1');
INSERT INTO unrelated SELECT generate_series(1, 10);
SELECT pg_logical_emit_message(true, 'inventory_events', 'hello') IS NOT NULL;
SELECT pg_logical_emit_message(false, 'inventory_events', 'now') IS NOT NULL;
SELECT pg_logical_emit_message(true, 'someone_else', 'not ours') IS NOT NULL;
SELECT count(*) FROM publish();

CREATE FUNCTION pg_temp.records(VARIADIC options text[] DEFAULT '{}')
RETURNS TABLE (kind text, detail text, has_lsn boolean) LANGUAGE sql AS $$
    SELECT d->>'kind',
           CASE d->>'kind'
             WHEN 'event' THEN concat_ws(' ', d->>'event_type', d->>'sku', d->>'location', d->>'qty',
                                         'version ' || (d->>'version'), 'id=event_id:' || ((d->'id') = (d->'event_id'))::text,
                                         CASE WHEN d ? 'position' THEN 'position ' || (d->'position')::text END)
             WHEN 'publication' THEN concat_ws(' ', d->>'channel', d->>'seq', d->>'sku', d->>'available')
             WHEN 'message' THEN concat_ws(' ', d->>'prefix', d->>'content', d->>'transactional')
             WHEN 'commit' THEN 'commit_time ' || (d->>'commit_time' IS NOT NULL)::text || ' end_lsn ' || (d ? 'end_lsn')::text
             ELSE 'xid ' || (d->>'xid' IS NOT NULL)::text END,
           d ? 'lsn'
      FROM (SELECT data::jsonb AS d FROM pg_logical_slot_peek_changes('ie', NULL, NULL, VARIADIC options)) x
$$;

-- The defaults: events, publications and our messages; no begin/commit, no positions.
SELECT * FROM pg_temp.records();
-- Every column of an event under its own name.
SELECT array_agg(k ORDER BY k) FROM (
    SELECT jsonb_object_keys(d) AS k
      FROM (SELECT data::jsonb AS d FROM pg_logical_slot_peek_changes('ie', NULL, NULL)
             WHERE data::jsonb->>'kind' = 'event' LIMIT 1) one) x;
-- Begin and commit records, with xid, LSNs and commit time.
SELECT * FROM pg_temp.records('include-xact', 'on');
-- The resulting position of the stream, from the stock row change of the same transaction.
SELECT * FROM pg_temp.records('include-position', 'true', 'include-publications', 'false', 'include-messages', 'false');
-- Filters.
SELECT * FROM pg_temp.records('event-types', 'reserved', 'include-publications', 'off', 'include-messages', 'off');
SELECT * FROM pg_temp.records('sku-prefix', 'TEE', 'include-publications', 'off', 'include-messages', 'off');
SELECT * FROM pg_temp.records('locations', 'W2,W9', 'include-publications', 'off', 'include-messages', 'off');
SELECT * FROM pg_temp.records('channels', 'b2b', 'include-messages', 'off');
SELECT * FROM pg_temp.records('format-version', '1', 'event-types', 'shipped', 'include-publications', 'no', 'include-messages', 'no');

-- Strict options: an unknown option, and a bad value, name themselves.
SELECT count(*) FROM pg_logical_slot_peek_changes('ie', NULL, NULL, 'include-xacts', 'on');
SELECT count(*) FROM pg_logical_slot_peek_changes('ie', NULL, NULL, 'include-xact', 'maybe');
SELECT count(*) FROM pg_logical_slot_peek_changes('ie', NULL, NULL, 'format-version', '2');
SELECT count(*) FROM pg_logical_slot_peek_changes('ie', NULL, NULL, 'locations', '');

-- Consumed, the slot has nothing more; a big transaction (spilled to disk
-- past logical_decoding_work_mem) decodes completely, in order.
SELECT count(*) > 0 FROM pg_logical_slot_get_changes('ie', NULL, NULL);
SET logical_decoding_work_mem = '64kB';
SELECT count(append('TEE-2', 'W1', 'received', 1)) FROM generate_series(1, 2000);
INSERT INTO unrelated SELECT generate_series(1, 5000);
SELECT count(*) AS events, count(DISTINCT (data::jsonb->>'event_id')) AS distinct_ids,
       bool_and((data::jsonb->>'version')::int = (data::jsonb->>'event_id')::int - min_id + 1) AS in_order
  FROM pg_logical_slot_get_changes('ie', NULL, NULL),
       LATERAL (SELECT min(id) AS min_id FROM event WHERE sku = 'TEE-2') m;
RESET logical_decoding_work_mem;

SELECT pg_drop_replication_slot('ie');
DROP TABLE unrelated;
DROP EXTENSION inventory_events;
