-- ---------------------------------------------------------------------------
-- Retention of the operational logs (the worker's housekeeping)
-- ---------------------------------------------------------------------------

-- Deletes what the retention settings no longer keep, and returns how many
-- rows of each kind (every kind, 0 included):
--   publications         older than inventory_events.retain_publications
--                        (default 30 days), but each sku's newest on each
--                        channel (what channel_shown names) and those an EDI
--                        partner's incremental 846 has not sent; a listener
--                        away longer sees a gap in the sequence and reads
--                        channel_shown again
--   dead_letters         failed before inventory_events.retain_dead_letters
--                        (90 days), unless their exception is still open
--   resolved_exceptions  resolved before inventory_events.retain_resolved_exceptions
--                        (90 days); open ones are kept
--   recon_runs           made before inventory_events.retain_recon_runs (400
--                        days), with their lines; a source's newest run (the
--                        streaks count from it) and runs with an unresolved
--                        line beyond tolerance are kept
--   keys                 idempotency keys (event_key) of events recorded before
--                        inventory_events.retain_keys (90 days): such a key
--                        may then be used again for a new event
-- A setting of -1 keeps that kind for ever. The event log is never touched.
CREATE FUNCTION inventory_events.apply_retention()
RETURNS TABLE (kind text, deleted bigint)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    setting_name text;
    keep bigint;
    cutoff timestamptz;
    boundary bigint;
    n bigint;
    ch record;
BEGIN
    -- C: it also loads the library, which defines the settings read below.
    PERFORM inventory_events.require_writable('inventory_events.apply_retention()');
    FOREACH kind IN ARRAY ARRAY['publications', 'dead_letters', 'resolved_exceptions', 'recon_runs', 'keys'] LOOP
        setting_name := 'inventory_events.retain_' || kind;
        SELECT s.setting::bigint INTO keep FROM pg_catalog.pg_settings s WHERE s.name = setting_name;
        deleted := 0;
        IF keep IS NOT NULL AND keep >= 0 THEN
            cutoff := now() - make_interval(secs => keep);
            IF kind = 'publications' THEN
                -- Per channel, from its oldest publication up to the first
                -- one at or after the cut-off (the primary key's order; the
                -- time only grows with seq), and never past what an EDI
                -- partner's incremental 846 has not sent yet: what is read
                -- is what may go. Each sku's newest publication (the one
                -- channel_shown names) stays: channel reconciliation reads
                -- what the channel was last told.
                FOR ch IN SELECT c.channel, c.last_seq, e.last_seq AS edi_seq
                            FROM inventory_events.channel_publisher c
                            LEFT JOIN inventory_events.edi_partner e ON e.channel = c.channel LOOP
                    SELECT p.seq INTO boundary FROM inventory_events.publication p
                     WHERE p.channel = ch.channel AND p.published_at >= cutoff
                     ORDER BY p.seq LIMIT 1;
                    boundary := least(coalesce(boundary, ch.last_seq), ch.edi_seq + 1);
                    DELETE FROM inventory_events.publication p
                     WHERE p.channel = ch.channel AND p.seq < boundary
                       AND NOT EXISTS (SELECT FROM inventory_events.channel_shown s
                                        WHERE s.channel = p.channel AND s.sku = p.sku AND s.seq = p.seq);
                    GET DIAGNOSTICS n = ROW_COUNT;
                    deleted := deleted + n;
                END LOOP;
            ELSIF kind = 'dead_letters' THEN
                -- Not one whose exception is still open (recorded with it:
                -- the same time and message), which someone is to act on.
                DELETE FROM inventory_events.dead_letter d
                 WHERE d.failed_at < cutoff
                   AND NOT EXISTS (SELECT FROM inventory_events.exception e
                                    WHERE e.resolved_at IS NULL AND e.kind = 'dead_letter'
                                      AND e.created_at = d.failed_at AND e.detail = d.message);
                GET DIAGNOSTICS deleted = ROW_COUNT;
            ELSIF kind = 'keys' THEN
                -- A key may be used again from here on (for a new event).
                DELETE FROM inventory_events.event_key k WHERE k.recorded_at < cutoff;
                GET DIAGNOSTICS deleted = ROW_COUNT;
            ELSIF kind = 'resolved_exceptions' THEN
                DELETE FROM inventory_events.exception e WHERE e.resolved_at < cutoff;
                GET DIAGNOSTICS deleted = ROW_COUNT;
            ELSE
                DELETE FROM inventory_events.recon_run r
                 WHERE r.created_at < cutoff
                   AND r.id <> (SELECT x.id FROM inventory_events.recon_run x WHERE x.source = r.source
                                 ORDER BY x.as_of DESC, x.id DESC LIMIT 1)
                   AND NOT EXISTS (SELECT FROM inventory_events.recon_line l
                                    WHERE l.run_id = r.id AND l.current AND l.exceeds_tolerance
                                      AND l.resolved_at IS NULL);
                GET DIAGNOSTICS deleted = ROW_COUNT;
            END IF;
        END IF;
        RETURN NEXT;
    END LOOP;
END;
$$;
COMMENT ON FUNCTION inventory_events.apply_retention() IS
  'Deletes publications, dead letters, resolved exceptions and reconciliation runs older than their retention settings';
