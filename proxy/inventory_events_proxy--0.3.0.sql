-- inventory_events_proxy 0.3.0: sharding by sku on PL/Proxy.
\echo Use "CREATE EXTENSION inventory_events_proxy" to load this file. \quit

-- A proxy database in front of N shard databases, each a full
-- inventory_events. Every invariant of the design is per sku (streams,
-- reservations, channel availability), so a sku lives on one shard, chosen
-- by shard_hash(sku) over the PL/Proxy cluster named inventory_events (an
-- SQL/MED server: CREATE SERVER inventory_events FOREIGN DATA WRAPPER plproxy
-- OPTIONS (p0 '...', p1 '...'), a power of two of them, and a user mapping).
-- Master data (items, locations, channels and their rules) is loaded into
-- every shard by the ERP. Remote calls are positional (PL/Proxy's parser
-- refuses =>); callers of these functions may use names. See doc/scaling.md.

-- The shard key. It is part of the data's placement: changing it means
-- moving every sku's history to its new shard (and a redefinition would be
-- undone by pg_dump and by an update of the extension), so it is not a
-- setting. A kit is available only from components on its own shard.
CREATE FUNCTION inventory_events_proxy.shard_hash(sku text) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN pg_catalog.hashtext(coalesce(sku, ''));

CREATE FUNCTION inventory_events_proxy.element_hash(element jsonb) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN inventory_events_proxy.shard_hash(element ->> 'sku');

-- Order lines reserved through the proxy: where their sku (and so their
-- shard) is, for pick(), ship(), release() and pick_short(), which name the
-- line, not the sku. A line not here (reserved on a shard directly) is asked
-- of every shard.
CREATE TABLE inventory_events_proxy.order_line (
    channel      text NOT NULL,
    ref          text NOT NULL,
    sku          text NOT NULL,
    reserved_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (channel, ref)
);

-- Releases that reserve_order() could not make after another line failed
-- (the line's shard went away too): retry_compensations() makes them.
CREATE TABLE inventory_events_proxy.compensation (
    channel    text NOT NULL,
    ref        text NOT NULL,
    sku        text NOT NULL,
    failed_at  timestamptz NOT NULL DEFAULT now(),
    sqlstate   text NOT NULL,
    message    text NOT NULL,
    PRIMARY KEY (channel, ref)
);
-- Both are state of this database: pg_dump keeps them (an owed release
-- lost with a dump would leave its line reserved on its shard for ever).
SELECT pg_catalog.pg_extension_config_dump('inventory_events_proxy.order_line', '');
SELECT pg_catalog.pg_extension_config_dump('inventory_events_proxy.compensation', '');
REVOKE ALL ON inventory_events_proxy.order_line, inventory_events_proxy.compensation FROM PUBLIC;

-- ---------------------------------------------------------------------------
-- Routed by sku
-- ---------------------------------------------------------------------------

CREATE FUNCTION inventory_events_proxy.append(
    sku text, location text, event_type text, qty bigint, source text DEFAULT NULL,
    idempotency_key text DEFAULT NULL, occurred_at timestamptz DEFAULT NULL, lot text DEFAULT NULL,
    uom text DEFAULT NULL, ref text DEFAULT NULL, channel text DEFAULT NULL,
    expected_version bigint DEFAULT NULL, payload jsonb DEFAULT NULL, from_bucket text DEFAULT NULL,
    to_bucket text DEFAULT NULL, reason text DEFAULT NULL, expected_date date DEFAULT NULL,
    source_seq bigint DEFAULT NULL, correlation_id uuid DEFAULT NULL, causation_id uuid DEFAULT NULL,
    serials text[] DEFAULT NULL)
RETURNS bigint AS $$
    CLUSTER 'inventory_events';
    RUN ON inventory_events_proxy.shard_hash(sku);
    SELECT inventory_events.append($1, $2, $3::inventory_events.event_type, $4, $5, $6, $7, $8, $9, $10, $11,
                                   $12, $13, $14::inventory_events.bucket, $15::inventory_events.bucket, $16,
                                   $17, $18, $19, $20, $21) AS append;
$$ LANGUAGE plproxy;

-- One batch: each shard ingests its elements as one batch of its own (an
-- element's outcome is its own in any case); outcomes in the batch's order.
CREATE FUNCTION inventory_events_proxy.ingest_split(elements jsonb[], ordinals integer[])
RETURNS TABLE (ordinal integer, status text, event_id bigint, version bigint, sqlstate text, message text) AS $$
    CLUSTER 'inventory_events';
    SPLIT elements, ordinals;
    RUN ON inventory_events_proxy.element_hash(elements);
    SELECT o.n_in_batch AS ordinal, i.status, i.event_id, i.version, i.sqlstate, i.message
      FROM inventory_events.ingest(pg_catalog.to_jsonb($1)) i
      JOIN pg_catalog.unnest($2) WITH ORDINALITY o(n_in_batch, n_here) ON o.n_here = i.ordinal;
$$ LANGUAGE plproxy;

CREATE FUNCTION inventory_events_proxy.ingest(events jsonb)
RETURNS TABLE (ordinal integer, status text, event_id bigint, version bigint, sqlstate text, message text)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF events IS NULL OR jsonb_typeof(events) <> 'array' THEN
        RAISE EXCEPTION 'ingest() takes a JSON array of events'
              USING ERRCODE = CASE WHEN events IS NULL THEN 'null_value_not_allowed' ELSE 'invalid_parameter_value' END;
    END IF;
    IF jsonb_array_length(events) = 0 THEN
        RETURN;
    END IF;
    RETURN QUERY
    SELECT s.ordinal, s.status, s.event_id, s.version, s.sqlstate, s.message
      FROM inventory_events_proxy.ingest_split(
               ARRAY(SELECT x.e FROM jsonb_array_elements(events) WITH ORDINALITY x(e, n) ORDER BY x.n),
               ARRAY(SELECT x.n::integer FROM jsonb_array_elements(events) WITH ORDINALITY x(e, n) ORDER BY x.n)) s
     ORDER BY s.ordinal;
END;
$$;

CREATE FUNCTION inventory_events_proxy.channel_availability(channel text, sku text)
RETURNS bigint AS $$
    CLUSTER 'inventory_events';
    RUN ON inventory_events_proxy.shard_hash(sku);
    TARGET inventory_events.channel_availability;
$$ LANGUAGE plproxy;

CREATE FUNCTION inventory_events_proxy.position_as_of(sku text, location text, at timestamptz, lot text DEFAULT '')
RETURNS text AS $$
    CLUSTER 'inventory_events';
    RUN ON inventory_events_proxy.shard_hash(sku);
    SELECT inventory_events.position_as_of($1, $2, $3, $4)::text AS position_as_of;
$$ LANGUAGE plproxy;

CREATE FUNCTION inventory_events_proxy.reserve_remote(channel text, sku text, qty bigint, ref text,
    location text, expires_at timestamptz, source text, idempotency_key text)
RETURNS TABLE (reservation_id bigint, status text, sku text, location text, lot text, qty bigint,
               event_id bigint, replayed boolean) AS $$
    CLUSTER 'inventory_events';
    RUN ON inventory_events_proxy.shard_hash(sku);
    TARGET inventory_events.reserve;
$$ LANGUAGE plproxy;

-- reserve() on the sku's shard; the line is remembered for the operations
-- that name it (only once the shard has reserved it).
CREATE FUNCTION inventory_events_proxy.reserve(channel text, sku text, qty bigint, ref text,
    location text DEFAULT NULL, expires_at timestamptz DEFAULT NULL, source text DEFAULT NULL,
    idempotency_key text DEFAULT NULL)
RETURNS TABLE (reservation_id bigint, status text, sku text, location text, lot text, qty bigint,
               event_id bigint, replayed boolean)
LANGUAGE sql VOLATILE
AS $$
    WITH r AS (SELECT * FROM inventory_events_proxy.reserve_remote($1, $2, $3, $4, $5, $6, $7, $8)),
    remembered AS (INSERT INTO inventory_events_proxy.order_line (channel, ref, sku)
                   SELECT $1, $4, $2 WHERE EXISTS (SELECT FROM r)
                   ON CONFLICT DO NOTHING)
    SELECT * FROM r;
$$;

-- ---------------------------------------------------------------------------
-- Routed by order line
-- ---------------------------------------------------------------------------

CREATE FUNCTION inventory_events_proxy.line_sku_remote(channel text, ref text)
RETURNS SETOF text AS $$
    CLUSTER 'inventory_events';
    RUN ON ALL;
    SELECT r.sku AS line_sku_remote FROM inventory_events.reservation r WHERE r.channel = $1 AND r.ref = $2;
$$ LANGUAGE plproxy;

-- The shard hash of an order line's sku: remembered by reserve(), or asked of
-- every shard. An unknown line is P0002, as on a shard.
CREATE FUNCTION inventory_events_proxy.line_hash(channel text, ref text) RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    line_sku text;
BEGIN
    SELECT l.sku INTO line_sku FROM inventory_events_proxy.order_line l WHERE l.channel = channel AND l.ref = ref;
    IF line_sku IS NULL THEN
        SELECT s INTO line_sku FROM inventory_events_proxy.line_sku_remote(channel, ref) s LIMIT 1;
    END IF;
    IF line_sku IS NULL THEN
        RAISE EXCEPTION 'unknown order line (%, %)', channel, ref
              USING ERRCODE = 'no_data_found',
                    HINT = 'Reserve it first; the proxy finds a line on the shard of its sku.';
    END IF;
    RETURN inventory_events_proxy.shard_hash(line_sku);
END;
$$;

-- Each operation on a line: a PL/Proxy function run on the shard whose hash
-- it is given (PL/Proxy does not nest calls to one cluster, so line_hash(),
-- which may ask every shard, runs first, in the SQL wrapper).
CREATE FUNCTION inventory_events_proxy.pick_remote(shard integer, channel text, ref text, qty bigint,
    location text, source text, idempotency_key text, serials text[])
RETURNS TABLE (event_id bigint, event_type text, sku text, location text, lot text, qty bigint) AS $$
    CLUSTER 'inventory_events';
    RUN ON shard;
    SELECT m.event_id, m.event_type::text AS event_type, m.sku, m.location, m.lot, m.qty
      FROM inventory_events.pick($2, $3, $4, $5, $6, $7, $8) m;
$$ LANGUAGE plproxy;

CREATE FUNCTION inventory_events_proxy.pick(channel text, ref text, qty bigint DEFAULT NULL,
    location text DEFAULT NULL, source text DEFAULT NULL, idempotency_key text DEFAULT NULL,
    serials text[] DEFAULT NULL)
RETURNS TABLE (event_id bigint, event_type text, sku text, location text, lot text, qty bigint)
LANGUAGE sql VOLATILE
AS $$
    SELECT * FROM inventory_events_proxy.pick_remote(inventory_events_proxy.line_hash($1, $2), $1, $2, $3, $4, $5, $6, $7);
$$;

CREATE FUNCTION inventory_events_proxy.ship_remote(shard integer, channel text, ref text, qty bigint,
    source text, idempotency_key text, serials text[])
RETURNS TABLE (event_id bigint, event_type text, sku text, location text, lot text, qty bigint) AS $$
    CLUSTER 'inventory_events';
    RUN ON shard;
    SELECT m.event_id, m.event_type::text AS event_type, m.sku, m.location, m.lot, m.qty
      FROM inventory_events.ship($2, $3, $4, $5, $6, $7) m;
$$ LANGUAGE plproxy;

CREATE FUNCTION inventory_events_proxy.ship(channel text, ref text, qty bigint DEFAULT NULL,
    source text DEFAULT NULL, idempotency_key text DEFAULT NULL, serials text[] DEFAULT NULL)
RETURNS TABLE (event_id bigint, event_type text, sku text, location text, lot text, qty bigint)
LANGUAGE sql VOLATILE
AS $$
    SELECT * FROM inventory_events_proxy.ship_remote(inventory_events_proxy.line_hash($1, $2), $1, $2, $3, $4, $5, $6);
$$;

CREATE FUNCTION inventory_events_proxy.release_remote(shard integer, channel text, ref text, qty bigint,
    reason text, source text, idempotency_key text)
RETURNS TABLE (event_id bigint, event_type text, sku text, location text, lot text, qty bigint) AS $$
    CLUSTER 'inventory_events';
    RUN ON shard;
    SELECT m.event_id, m.event_type::text AS event_type, m.sku, m.location, m.lot, m.qty
      FROM inventory_events.release($2, $3, $4, $5, $6, $7) m;
$$ LANGUAGE plproxy;

CREATE FUNCTION inventory_events_proxy.release(channel text, ref text, qty bigint DEFAULT NULL,
    reason text DEFAULT 'cancelled', source text DEFAULT NULL, idempotency_key text DEFAULT NULL)
RETURNS TABLE (event_id bigint, event_type text, sku text, location text, lot text, qty bigint)
LANGUAGE sql VOLATILE
AS $$
    SELECT * FROM inventory_events_proxy.release_remote(inventory_events_proxy.line_hash($1, $2), $1, $2, $3, $4, $5, $6);
$$;

CREATE FUNCTION inventory_events_proxy.pick_short_remote(shard integer, channel text, ref text, qty bigint,
    location text, reason text, source text, idempotency_key text)
RETURNS TABLE (event_id bigint, event_type text, sku text, location text, lot text, qty bigint) AS $$
    CLUSTER 'inventory_events';
    RUN ON shard;
    SELECT m.event_id, m.event_type::text AS event_type, m.sku, m.location, m.lot, m.qty
      FROM inventory_events.pick_short($2, $3, $4, $5, $6, $7, $8) m;
$$ LANGUAGE plproxy;

CREATE FUNCTION inventory_events_proxy.pick_short(channel text, ref text, qty bigint, location text DEFAULT NULL,
    reason text DEFAULT NULL, source text DEFAULT NULL, idempotency_key text DEFAULT NULL)
RETURNS TABLE (event_id bigint, event_type text, sku text, location text, lot text, qty bigint)
LANGUAGE sql VOLATILE
AS $$
    SELECT * FROM inventory_events_proxy.pick_short_remote(inventory_events_proxy.line_hash($1, $2), $1, $2, $3, $4, $5,
                                                           $6, $7);
$$;

-- ---------------------------------------------------------------------------
-- Every shard
-- ---------------------------------------------------------------------------

-- verify() of every shard, each row naming its shard (cluster_name, address,
-- port, database).
CREATE FUNCTION inventory_events_proxy.verify()
RETURNS TABLE (shard text, sku text, location text, lot text, problem text) AS $$
    CLUSTER 'inventory_events';
    RUN ON ALL;
    SELECT pg_catalog.concat_ws(' ', NULLIF(pg_catalog.current_setting('cluster_name'), ''),
                                pg_catalog.inet_server_addr(), pg_catalog.inet_server_port(),
                                pg_catalog.current_database()) AS shard,
           v.sku, v.location, v.lot, v.problem
      FROM inventory_events.verify() v;
$$ LANGUAGE plproxy;

-- ---------------------------------------------------------------------------
-- Orders over several shards
-- ---------------------------------------------------------------------------

-- PL/Proxy reports a shard it cannot reach as XX000 ("PQconnectStart: ...
-- failed", "server closed the connection"): the statuses below call it what
-- it is, 08006 (connection_failure).
CREATE FUNCTION inventory_events_proxy.error_state(state text, message text) RETURNS text
LANGUAGE sql IMMUTABLE
RETURN CASE WHEN state = 'XX000'
             AND message ~ '(PQconnect|connection to server|could not connect|server closed the connection|connection not open)'
            THEN '08006' ELSE state END;

-- What a line's reservation still holds on its shard: reserved, picked or
-- shipped units and backorders (0 once released), or null when the shard
-- has no such line.
CREATE FUNCTION inventory_events_proxy.line_open_remote(shard integer, channel text, ref text)
RETURNS bigint AS $$
    CLUSTER 'inventory_events';
    RUN ON shard;
    SELECT (SELECT r.backordered + coalesce((SELECT sum(a.reserved + a.picked + a.shipped)
                                               FROM inventory_events.allocation a WHERE a.reservation_id = r.id), 0)
              FROM inventory_events.reservation r WHERE r.channel = $2 AND r.ref = $3)::bigint AS line_open_remote;
$$ LANGUAGE plproxy;

-- Is it known that a failed remote call did nothing? A shard that reports an
-- error (PL/Proxy: "REMOTE ERROR") rolled its transaction back, unless it
-- says that it had committed already (a cancelled wait for synchronous
-- replication); a connection that could not be made sent nothing. A
-- connection lost during the call, a query timeout or a cancel on the proxy
-- leave the outcome unknown: it may have committed.
CREATE FUNCTION inventory_events_proxy.outcome_known(message text) RETURNS boolean
LANGUAGE sql IMMUTABLE
RETURN (message LIKE '%REMOTE ERROR:%' AND message !~* '(already committed|synchronous replication)')
    OR message ~ '(PQconnectStart|PQconnectPoll|could not connect)';

-- The release that compensates an order line, under the idempotency key
-- compensate:<ref> (a repeat is harmless).
CREATE FUNCTION inventory_events_proxy.compensate_line(channel text, ref text) RETURNS void
LANGUAGE sql VOLATILE
AS $$
    SELECT count(*) FROM inventory_events_proxy.release($1, $2, NULL, 'order failed on another line',
                                                       'inventory_events_proxy:' || $1, 'compensate:' || $2);
$$;

-- An order of several lines, all or nothing: each line is reserved on its
-- sku's shard in turn (each shard commits its own line: no transaction spans
-- shards); when a line fails, the lines already accepted, and a line whose
-- call may have committed unseen (outcome_known() false), are released
-- again (compensation), and the rest are not tried. A release that fails,
-- or that finds no line where one may still appear, is owed: kept in
-- inventory_events_proxy.compensation for retry_compensations().
-- lines: [{"sku": ..., "qty": n, "ref": ..., "location": ..., "expires_at": ...}],
-- refs unique; each line's idempotency key on its shard is its ref, under the
-- source 'inventory_events_proxy:<channel>'. Returns one row per line: status
-- reserved or backordered (the order stands; a backorder channel accepts a
-- shortage as a backorder), refused (IE005) or failed (the line that failed,
-- with its SQLSTATE: 08006 for a shard it could not reach), unknown then
-- released or compensation_pending (a call whose outcome was not seen),
-- released (compensated), compensation_pending, or not_tried.
-- A retry with the same refs (after a lost reply) replays each line: one that
-- was released since is reported failed, not reserved, and the order fails.
-- It raises no error for a line, so that what it records stays: call it in a
-- transaction of its own (autocommit) and check the statuses.
CREATE FUNCTION inventory_events_proxy.reserve_order(channel text, lines jsonb)
RETURNS TABLE (line integer, ref text, sku text, status text, reservation_id bigint, sqlstate text, message text)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    n integer;
    l jsonb;
    source_name text := 'inventory_events_proxy:' || channel;
    got_status text;
    got_replayed boolean;
    got_id bigint;
    open_qty bigint;
    err_state text;
    err_message text;
    failed boolean := false;
    refs text[] := '{}';
    skus text[] := '{}';
    statuses text[] := '{}';
    ids bigint[] := '{}';
    states text[] := '{}';
    messages text[] := '{}';
BEGIN
    IF channel IS NULL THEN
        RAISE EXCEPTION 'an order needs a channel' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF lines IS NULL OR jsonb_typeof(lines) <> 'array' OR jsonb_array_length(lines) = 0 THEN
        RAISE EXCEPTION 'an order is a non-empty JSON array of lines'
              USING ERRCODE = 'invalid_parameter_value';
    END IF;
    n := jsonb_array_length(lines);
    -- Every line checked before any is reserved.
    FOR i IN 1 .. n LOOP
        l := lines -> (i - 1);
        IF jsonb_typeof(l) IS DISTINCT FROM 'object' OR jsonb_typeof(l -> 'sku') IS DISTINCT FROM 'string'
           OR jsonb_typeof(l -> 'ref') IS DISTINCT FROM 'string'
           OR jsonb_typeof(l -> 'qty') IS DISTINCT FROM 'number' OR (l ->> 'qty') !~ '^[1-9][0-9]{0,17}$' THEN
            RAISE EXCEPTION 'line % of the order needs a string sku and ref and a positive whole qty', i
                  USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF (l ->> 'ref') = ANY (refs) THEN
            RAISE EXCEPTION 'line % of the order repeats the ref "%"', i, l ->> 'ref'
                  USING ERRCODE = 'invalid_parameter_value', HINT = 'Each line of an order has a ref of its own.';
        END IF;
        refs := refs || (l ->> 'ref');
        skus := skus || (l ->> 'sku');
        statuses := statuses || 'not_tried'::text;
        ids := ids || NULL::bigint;
        states := states || NULL::text;
        messages := messages || NULL::text;
    END LOOP;
    FOR i IN 1 .. n LOOP
        l := lines -> (i - 1);
        BEGIN
            SELECT r.status, r.replayed, r.reservation_id INTO got_status, got_replayed, got_id
              FROM inventory_events_proxy.reserve(channel, skus[i], (l ->> 'qty')::bigint, refs[i], l ->> 'location',
                                                  (l ->> 'expires_at')::timestamptz, source_name, refs[i]) r
             ORDER BY r.status = 'backordered' DESC
             LIMIT 1;
            IF got_replayed THEN
                -- A retry: the line stands only if it was not released since.
                open_qty := inventory_events_proxy.line_open_remote(inventory_events_proxy.shard_hash(skus[i]),
                                                                    channel, refs[i]);
                IF coalesce(open_qty, 0) <= 0 THEN
                    RAISE EXCEPTION 'line "%" of this order was released after an earlier attempt', refs[i]
                          USING ERRCODE = 'object_not_in_prerequisite_state',
                                HINT = 'A failed order is final: send it again with new refs.';
                END IF;
            END IF;
            statuses[i] := got_status;
            ids[i] := got_id;
        EXCEPTION WHEN query_canceled OR OTHERS THEN
            GET STACKED DIAGNOSTICS err_state = RETURNED_SQLSTATE, err_message = MESSAGE_TEXT;
            states[i] := inventory_events_proxy.error_state(err_state, err_message);
            messages[i] := err_message;
            statuses[i] := CASE WHEN err_state = '55000' AND got_replayed THEN 'failed'
                                WHEN NOT inventory_events_proxy.outcome_known(err_message) THEN 'unknown'
                                WHEN err_state = 'IE005' THEN 'refused'
                                ELSE 'failed' END;
            failed := true;
        END;
        EXIT WHEN failed;
    END LOOP;
    IF failed THEN
        FOR i IN REVERSE n .. 1 LOOP
            CONTINUE WHEN statuses[i] NOT IN ('reserved', 'backordered', 'unknown');
            BEGIN
                PERFORM inventory_events_proxy.compensate_line(channel, refs[i]);
                statuses[i] := 'released';
            EXCEPTION WHEN query_canceled OR OTHERS THEN
                GET STACKED DIAGNOSTICS err_state = RETURNED_SQLSTATE, err_message = MESSAGE_TEXT;
                err_state := inventory_events_proxy.error_state(err_state, err_message);
                -- No such line: nothing to release, unless the reserve whose
                -- outcome was not seen commits later; owed until then.
                IF err_state = 'P0002' AND statuses[i] <> 'unknown' THEN
                    statuses[i] := 'released';
                    CONTINUE;
                END IF;
                statuses[i] := 'compensation_pending';
                states[i] := err_state;
                messages[i] := err_message;
                INSERT INTO inventory_events_proxy.compensation AS c (channel, ref, sku, sqlstate, message)
                VALUES (channel, refs[i], skus[i], err_state, err_message)
                ON CONFLICT ON CONSTRAINT compensation_pkey DO UPDATE
                   SET failed_at = now(), sqlstate = excluded.sqlstate, message = excluded.message;
            END;
        END LOOP;
    END IF;
    FOR i IN 1 .. n LOOP
        line := i;
        ref := refs[i];
        sku := skus[i];
        status := statuses[i];
        reservation_id := ids[i];
        sqlstate := states[i];
        message := messages[i];
        RETURN NEXT;
    END LOOP;
END;
$$;

-- The compensations still owed: each release is tried again (its
-- idempotency key makes a repeat harmless); those made are forgotten. A line
-- its shard does not have (P0002) is forgotten once owed for longer than
-- grace: a reserve whose outcome was not seen has committed by then, or never
-- will. Returns how many are still owed.
CREATE FUNCTION inventory_events_proxy.retry_compensations(grace interval DEFAULT '5 minutes')
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c record;
    err_state text;
    err_message text;
BEGIN
    FOR c IN SELECT * FROM inventory_events_proxy.compensation ORDER BY failed_at LOOP
        BEGIN
            PERFORM inventory_events_proxy.compensate_line(c.channel, c.ref);
            DELETE FROM inventory_events_proxy.compensation x WHERE x.channel = c.channel AND x.ref = c.ref;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS err_state = RETURNED_SQLSTATE, err_message = MESSAGE_TEXT;
            err_state := inventory_events_proxy.error_state(err_state, err_message);
            IF err_state = 'P0002' AND c.failed_at < now() - grace THEN
                DELETE FROM inventory_events_proxy.compensation x WHERE x.channel = c.channel AND x.ref = c.ref;
            ELSE
                UPDATE inventory_events_proxy.compensation x SET sqlstate = err_state, message = err_message
                 WHERE x.channel = c.channel AND x.ref = c.ref;
            END IF;
        END;
    END LOOP;
    RETURN (SELECT count(*) FROM inventory_events_proxy.compensation);
END;
$$;
