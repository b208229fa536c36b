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
SELECT append('MUG-1', 'W2', 'received', 4, channel => 'b2b', ref => 'PO-7', reason => 'late "east" dock',
              payload => '{"dock": 3, "note": "ok"}', source_seq => 42, occurred_at => '2026-11-20 09:30:00.25+01') > 0;
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
                                         'version ' || (d->>'version'),
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
-- The columns of an event under their own names (nulls left out).
SELECT array_agg(k ORDER BY k) FROM (
    SELECT jsonb_object_keys(d) AS k
      FROM (SELECT data::jsonb AS d FROM pg_logical_slot_peek_changes('ie', NULL, NULL)
             WHERE data::jsonb->>'kind' = 'event' LIMIT 1) one) x;
-- Each event record is its row: "id" as "event_id", a null column left out,
-- timestamps in ISO 8601 in UTC whatever the session's TimeZone, the effect
-- as an object of its non-zero buckets.
SET TimeZone = 'America/New_York';
SELECT d->>'sku' AS sku,
       CASE WHEN d->>'sku' = 'MUG-1' THEN d->>'occurred_at'
            ELSE (d->>'occurred_at' ~ '^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00$')::text END AS occurred_at,
       d->'effect' AS effect, d->'payload' AS payload, d->>'reason' AS reason
  FROM (SELECT data::jsonb AS d FROM pg_logical_slot_peek_changes('ie', NULL, NULL)) x
 WHERE d->>'kind' = 'event' ORDER BY d->>'event_id';
SELECT count(*) AS events,
       bool_and(to_jsonb(r) - 'effect' = to_jsonb(e) - 'effect') AS columns_equal,
       bool_and(stock_position(available => coalesce((d->'effect'->>'available')::bigint, 0),
                               reserved => coalesce((d->'effect'->>'reserved')::bigint, 0),
                               picked => coalesce((d->'effect'->>'picked')::bigint, 0),
                               damaged => coalesce((d->'effect'->>'damaged')::bigint, 0),
                               quarantine => coalesce((d->'effect'->>'quarantine')::bigint, 0),
                               in_transit => coalesce((d->'effect'->>'in_transit')::bigint, 0),
                               inbound => coalesce((d->'effect'->>'inbound')::bigint, 0)) = e.effect) AS effect_equal,
       bool_and(NOT d ? 'id' AND NOT EXISTS (SELECT FROM jsonb_each(d) WHERE value = 'null')) AS no_id_no_nulls
  FROM (SELECT data::jsonb AS d FROM pg_logical_slot_peek_changes('ie', NULL, NULL)) x
  JOIN event e ON e.id = (d->>'event_id')::bigint
 CROSS JOIN LATERAL jsonb_populate_record(NULL::event, d - 'effect' || jsonb_build_object('id', d->'event_id')) r
 WHERE d->>'kind' = 'event';
RESET TimeZone;
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

-- A column added to the publication log (as an upgrade's ALTER TABLE would)
-- goes out from its change on, and a dropped one no more: the decoder's
-- column plans follow relcache invalidations, in decoding order.
SELECT append('MUG-1', 'W2', 'received', 1) > 0;
SELECT count(*) FROM publish();
ALTER TABLE publication ADD COLUMN site text DEFAULT 'north';
SELECT append('MUG-1', 'W2', 'received', 1) > 0;
SELECT count(*) FROM publish();
ALTER TABLE publication DROP COLUMN site;
SELECT append('MUG-1', 'W2', 'received', 1) > 0;
SELECT count(*) FROM publish();
SELECT d->>'kind' AS kind, d->>'available' AS available, d->>'site' AS site
  FROM (SELECT data::jsonb AS d FROM pg_logical_slot_get_changes('ie', NULL, NULL)) x;

-- A rewrite of the log past the guard (a superuser with allow_history_rewrite)
-- is never silent: a "rewrite" record per row and per TRUNCATE, whatever the
-- filters, and the guard's logical message for each.
SELECT count(*) > 0 FROM pg_logical_slot_get_changes('ie', NULL, NULL);
-- An UPDATE leaves an unchanged TOASTed value as a pointer to the table, which
-- may be vacuumed away before the change is decoded: the record names it
-- instead of reading it (reading it would fail the slot for good).
SELECT append('TEE-2', 'W1', 'received', 1, source => 'big',
              payload => jsonb_build_object('blob', (SELECT string_agg(md5(g::text), '') FROM generate_series(1, 700) g))) > 0;
SELECT count(*) > 0 FROM pg_logical_slot_get_changes('ie', NULL, NULL);
SET inventory_events.allow_history_rewrite = on;
UPDATE event SET reason = 'big payload' WHERE source = 'big';
DELETE FROM event WHERE source = 'big';
RESET inventory_events.allow_history_rewrite;
VACUUM event;
SELECT d->>'kind' AS kind, d->>'operation' AS operation, d->>'reason' AS reason, d->'payload' IS NULL AS payload_left_out,
       d->'unchanged_toast' AS unchanged_toast
  FROM (SELECT data::jsonb AS d FROM pg_logical_slot_get_changes('ie', NULL, NULL, 'include-messages', 'off')) x;
SET inventory_events.allow_history_rewrite = on;
UPDATE event SET reason = 'corrected' WHERE id IN (SELECT min(id) FROM event);
DELETE FROM event WHERE id IN (SELECT max(id) FROM event);
TRUNCATE event, stock;
RESET inventory_events.allow_history_rewrite;
SELECT d->>'kind' AS kind, d->>'operation' AS operation, d->>'relation' AS relation,
       d->>'event_id' IS NOT NULL AS has_id, d->>'reason' AS reason,
       (d->>'content')::jsonb - 'event_id' - 'user' AS message
  FROM (SELECT data::jsonb AS d FROM pg_logical_slot_get_changes('ie', NULL, NULL,
        'event-types', 'received', 'sku-prefix', 'NOTHING')) x;

-- uuid and xid8 columns are written without their output functions, and
-- must read exactly as their text forms do.
SELECT count(*) FROM pg_logical_slot_get_changes('ie', NULL, NULL);
SELECT append('TEE-1', 'W1', 'received', 1, correlation_id => '0ba6be43-1ced-4bf1-ac1a-9c77bb65683c') > 0;
SELECT d->>'correlation_id' AS correlation_id,
       d->>'correlation_id' = e.correlation_id::text AND d->>'causation_id' = e.causation_id::text
           AND d->>'xid' = e.xid::text AS as_text
  FROM (SELECT data::jsonb AS d FROM pg_logical_slot_get_changes('ie', NULL, NULL)) x
  JOIN event e ON e.id = (d->>'event_id')::bigint
 WHERE d->>'kind' = 'event';

-- Serials moved by an event follow its record, one "serial" record each,
-- and are left out with it by the filters; include-serials turns them off.
INSERT INTO item (sku, serialized) VALUES ('PHONE', true);
SELECT count(*) FROM pg_logical_slot_get_changes('ie', NULL, NULL);
SELECT append('PHONE', 'W1', 'received', 2, serials => ARRAY['SN-1', 'SN-2']) > 0;
SELECT d->>'kind' AS kind, d->>'sku' AS sku, d->>'serial' AS serial, d->>'version' AS version,
       d->>'location' AS location, d->>'bucket' AS bucket, (d->>'event_id')::bigint = e.id AS same_event
  FROM (SELECT data::jsonb AS d FROM pg_logical_slot_peek_changes('ie', NULL, NULL, 'include-position', 'true')) x,
       (SELECT max(id) AS id FROM event) e;
SELECT count(*) FILTER (WHERE data::jsonb->>'kind' = 'serial') AS serial_records
  FROM pg_logical_slot_peek_changes('ie', NULL, NULL, 'sku-prefix', 'TEE');
SELECT count(*) FILTER (WHERE data::jsonb->>'kind' = 'serial') AS serial_records
  FROM pg_logical_slot_peek_changes('ie', NULL, NULL, 'locations', 'W2');
SELECT count(*) FILTER (WHERE data::jsonb->>'kind' = 'serial') AS serial_records
  FROM pg_logical_slot_peek_changes('ie', NULL, NULL, 'include-serials', 'off');
SELECT count(*) FILTER (WHERE data::jsonb->>'kind' = 'serial') AS serial_records
  FROM pg_logical_slot_peek_changes('ie', NULL, NULL, 'event-types', 'shipped');
SELECT count(*) FILTER (WHERE data::jsonb->>'kind' = 'serial') AS serial_records
  FROM pg_logical_slot_peek_changes('ie', NULL, NULL, 'event-types', 'received', 'channels', 'web');
SELECT count(*) FROM pg_logical_slot_get_changes('ie', NULL, NULL);

SELECT pg_drop_replication_slot('ie');
DROP TABLE unrelated;
DROP EXTENSION inventory_events;
