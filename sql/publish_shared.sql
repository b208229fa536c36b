-- publish() computes the ATP of each (location, sku) once per step and shares
-- it across channels: channels with the same sourcing locations (whatever
-- their priorities) share their pool, and each applies its own rules
-- (allocation, buffers, cap) to it; a channel with another location set gets
-- its own pool; a kit gets each channel's rules per component. What every
-- channel is sent must equal channel_availability() of that channel and sku.
-- Only a throttled or failing channel gets publication_pending rows.
CREATE EXTENSION inventory_events;
SET search_path = inventory_events, public;

INSERT INTO item (sku) VALUES ('A'), ('B'), ('KIT');
INSERT INTO item (sku, lot_controlled) VALUES ('L', true);
INSERT INTO lot (sku, lot, expires_on) VALUES ('L', 'OLD', current_date - 1), ('L', 'NEW', current_date + 30);
INSERT INTO kit_component (kit, component, qty) VALUES ('KIT', 'A', 2), ('KIT', 'B', 1);
INSERT INTO location (code) VALUES ('W1'), ('W2'), ('W3');
-- full and rules: the same set {W1, W2}, other priorities, other rules.
INSERT INTO channel (code) VALUES ('full');
INSERT INTO channel (code, allocation_pct, buffer_fixed, buffer_pct, cap) VALUES ('rules', 60, 1, 10, 7);
-- west: another set; slow: throttled; bad: fails.
INSERT INTO channel (code, buffer_fixed) VALUES ('west', 1);
INSERT INTO channel (code, publish_interval) VALUES ('slow', '1 hour');
INSERT INTO channel (code) VALUES ('bad');
INSERT INTO channel_location (channel, location, priority) VALUES
    ('full', 'W1', 1), ('full', 'W2', 2),
    ('rules', 'W1', 9), ('rules', 'W2', 1),
    ('west', 'W3', 1), ('west', 'W2', 1),
    ('slow', 'W1', 1), ('slow', 'W2', 1),
    ('bad', 'W1', 1), ('bad', 'W2', 1);
ALTER TABLE publication ADD CONSTRAINT connector_table_broken CHECK (channel <> 'bad') NOT VALID;
-- Every row written to or deleted from publication_pending, by channel.
CREATE TEMP TABLE pending_log (op text, channel text);
CREATE FUNCTION pg_temp.log_pending() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO pg_temp.pending_log VALUES (TG_OP, CASE TG_OP WHEN 'DELETE' THEN OLD.channel ELSE NEW.channel END);
    RETURN NULL;
END $$;
CREATE TRIGGER log_pending AFTER INSERT OR DELETE ON publication_pending
    FOR EACH ROW EXECUTE FUNCTION pg_temp.log_pending();

SELECT count(*) FROM (VALUES
    (append('A', 'W1', 'received', 20)), (append('A', 'W2', 'received', 9)), (append('A', 'W3', 'received', 4)),
    (append('B', 'W1', 'received', 3)), (append('B', 'W3', 'received', 6)),
    (append('A', 'W2', 'safety_stock_set', 2)),
    (append('L', 'W1', 'received', 5, lot => 'OLD')), (append('L', 'W1', 'received', 8, lot => 'NEW'))) v;
-- Nothing was published yet, and the rule changes above marked nothing
-- (before the first write); publication_pending is empty.
SELECT count(*) AS pending FROM publication_pending;

-- The first step: the four healthy channels get every touched sku; bad fails,
-- alone, and collects its skus as pending rows; no due channel writes any.
SELECT events, publications, next_due_ms IS NOT NULL AS bad_due_later FROM publish();
SELECT op, channel, count(*) FROM pending_log GROUP BY op, channel ORDER BY op, channel;
TRUNCATE pending_log;
SELECT channel, sku, available FROM channel_shown ORDER BY channel, sku;
-- Every value equals channel_availability(), and is what the rules make of
-- the shared pool: W1 + W2 for A is 20 + (9 - 2) = 27 (full 27; rules
-- floor(27 x 60 %) = 16, less 1, less ceil(1.6) = 2, capped at 7); for L only
-- the unexpired lot counts (8).
SELECT s.channel, s.sku, s.available, p.pool, s.available = channel_availability(s.channel, s.sku) AS same
  FROM channel_shown s, channel_position(s.channel, s.sku) p ORDER BY s.channel, s.sku;
SELECT channel, sku FROM publication_pending ORDER BY channel, sku;
SELECT task, channel, sqlstate, message, failures FROM worker_error;
SELECT channel, seq, sku, available FROM publication ORDER BY channel, seq;

-- Now slow is throttled and bad backs off: a change of B (and so of the kit)
-- is published at once to full, rules and west, and collected by slow (bad
-- has both pending already); nothing inserted and deleted for the others.
SELECT append('B', 'W2', 'received', 10) > 0;
SELECT events, publications FROM publish();
SELECT op, channel, count(*) FROM pending_log GROUP BY op, channel ORDER BY op, channel;
TRUNCATE pending_log;
SELECT channel, sku FROM publication_pending ORDER BY channel, sku;
SELECT channel, seq, sku, available FROM publication WHERE seq > 4 ORDER BY channel, seq;
SELECT bool_and(s.available = channel_availability(s.channel, s.sku)) AS all_same
  FROM channel_shown s WHERE s.channel IN ('full', 'rules', 'west');

-- Due again and cured, slow and bad take their pending rows: everything
-- published, every value channel_availability(), each sequence gap-free.
ALTER TABLE publication DROP CONSTRAINT connector_table_broken;
UPDATE worker_error SET retry_at = now() - interval '1 second';
UPDATE channel_publisher SET last_published_at = now() - interval '2 hours' WHERE channel = 'slow';
SELECT events, publications, next_due_ms FROM publish();
SELECT count(*) AS pending FROM publication_pending;
SELECT op, channel, count(*) FROM pending_log GROUP BY op, channel ORDER BY op, channel;
SELECT channel, failures FROM channel_health ORDER BY channel;
SELECT channel, count(*) AS skus, bool_and(s.available = channel_availability(s.channel, s.sku)) AS all_same
  FROM channel_shown s GROUP BY channel ORDER BY channel;
SELECT channel, count(*) = max(seq) AS gap_free FROM publication GROUP BY channel ORDER BY channel;

DROP EXTENSION inventory_events;
