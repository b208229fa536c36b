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
