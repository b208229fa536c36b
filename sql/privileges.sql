-- Nothing is open to PUBLIC; reader, writer and admin access through grant_access().
CREATE EXTENSION inventory_events;
SET search_path = inventory_events, public;
INSERT INTO item (sku) VALUES ('A');
INSERT INTO location (code) VALUES ('W1');
INSERT INTO channel (code) VALUES ('web');
INSERT INTO channel_location (channel, location) VALUES ('web', 'W1');
SELECT append('A', 'W1', 'received', 5);

CREATE ROLE ie_nobody;
CREATE ROLE ie_reader;
CREATE ROLE ie_writer;
CREATE ROLE ie_admin;
SELECT grant_access('ie_reader', 'reader');
SELECT grant_access('ie_writer', 'writer');
SELECT grant_access('ie_admin', 'admin');
SELECT grant_access('ie_admin', 'owner');

CREATE FUNCTION pg_temp.try(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
GRANT USAGE ON SCHEMA pg_temp TO PUBLIC;

-- A role with no grant sees nothing.
SET ROLE ie_nobody;
SELECT pg_temp.try($$SELECT count(*) FROM inventory_events.stock$$);
SELECT pg_temp.try($$SELECT inventory_events.append('A', 'W1', 'received', 1)$$);
RESET ROLE;

-- A reader (a channel connector) reads but cannot append or write.
SET ROLE ie_reader;
SELECT pg_temp.try($$SELECT count(*) FROM inventory_events.stock_by_location$$);
SELECT pg_temp.try($$SELECT count(*) FROM inventory_events.events_after()$$);
SELECT pg_temp.try($$SELECT inventory_events.position_as_of('A', 'W1', now())$$);
SELECT pg_temp.try($$SELECT inventory_events.on_hand(inventory_events.sum(effect)) FROM inventory_events.event$$);
SELECT pg_temp.try($$SELECT * FROM inventory_events.verify()$$);
SELECT pg_temp.try($$SELECT inventory_events.channel_availability('web', 'A')$$);
SELECT pg_temp.try($$SELECT inventory_events.append('A', 'W1', 'received', 1)$$);
SELECT pg_temp.try($$SELECT inventory_events.ingest('[]')$$);
SELECT pg_temp.try($$INSERT INTO inventory_events.item (sku) VALUES ('B')$$);
SELECT pg_temp.try($$SELECT * FROM inventory_events.reserve('web', 'A', 1, 'o-1')$$);
SELECT pg_temp.try($$SELECT count(*) FROM inventory_events.exception_aging$$);
RESET ROLE;

-- A writer (a WMS connector) appends, but cannot rewrite history, touch
-- derived state or master data.
SET ROLE ie_writer;
SELECT pg_temp.try($$SELECT inventory_events.append('A', 'W1', 'received', 1)$$);
SELECT pg_temp.try($$SELECT inventory_events.ingest('[{"sku":"A","location":"W1","event_type":"received","qty":1}]')$$);
SELECT pg_temp.try($$INSERT INTO inventory_events.event_staging (sku, location, event_type, qty) VALUES ('A', 'W1', 'received', 1)$$);
SELECT pg_temp.try($$SELECT inventory_events.ingest_staged()$$);
SELECT pg_temp.try($$SELECT * FROM inventory_events.reserve('web', 'A', 1, 'o-1')$$);
SELECT pg_temp.try($$SELECT * FROM inventory_events.pick('web', 'o-1')$$);
SELECT pg_temp.try($$UPDATE inventory_events.reservation SET backordered = 0$$);
SELECT pg_temp.try($$SELECT inventory_events.fill_backorders()$$);
SELECT pg_temp.try($$INSERT INTO inventory_events.event (sku, location, version, event_type, qty, uom, uom_qty, effect, occurred_at, correlation_id, causation_id) VALUES ('A','W1',9,'received',1,'EA',1,'()',now(),gen_random_uuid(),gen_random_uuid())$$);
SELECT pg_temp.try($$UPDATE inventory_events.event SET qty = 0$$);
SELECT pg_temp.try($$DELETE FROM inventory_events.event$$);
SELECT pg_temp.try($$UPDATE inventory_events.stock SET available = 1000$$);
SELECT pg_temp.try($$INSERT INTO inventory_events.item (sku) VALUES ('B')$$);
SELECT pg_temp.try($$SELECT inventory_events.rebuild()$$);
-- Even a writer cannot switch the append-only guard off.
SELECT pg_temp.try($$SET inventory_events.allow_history_rewrite = on$$);
RESET ROLE;

-- Lifecycle events enter only through the functions that own reservations:
-- a writer cannot free a reserved unit with a raw event and promise it twice.
SET ROLE ie_writer;
SELECT pg_temp.try($$SELECT * FROM inventory_events.reserve('web', 'A', 1, 'o-2')$$);
SELECT pg_temp.try($$SELECT inventory_events.append('A', 'W1', 'released', 1)$$);
SELECT pg_temp.try($$SELECT inventory_events.append('A', 'W1', 'moved', 1, from_bucket => 'reserved', to_bucket => 'available')$$);
SELECT pg_temp.try($$SELECT inventory_events.append('A', 'W1', 'moved', 1, from_bucket => 'available', to_bucket => 'picked')$$);
SELECT pg_temp.try($$SELECT inventory_events.append_lifecycle('A', 'W1', 'released', 1)$$);
SELECT status, sqlstate, message FROM inventory_events.ingest('[{"sku":"A","location":"W1","event_type":"released","qty":1},
                                                                {"sku":"A","location":"W1","event_type":"shipped","qty":1}]');
SELECT pg_temp.try($$SELECT * FROM inventory_events.release('web', 'o-2')$$);
RESET ROLE;
SELECT r.ref, sum(a.reserved) AS reserved, sum(a.released) AS released
  FROM reservation r JOIN allocation a ON a.reservation_id = r.id GROUP BY r.ref ORDER BY r.ref;

-- An admin maintains master data and repairs, and still cannot rewrite history.
SET ROLE ie_admin;
SELECT pg_temp.try($$INSERT INTO inventory_events.item (sku) VALUES ('B')$$);
SELECT pg_temp.try($$INSERT INTO inventory_events.location (code) VALUES ('W2')$$);
SELECT pg_temp.try($$SELECT inventory_events.append('B', 'W2', 'received', 1)$$);
SELECT pg_temp.try($$SELECT inventory_events.rebuild()$$);
SELECT pg_temp.try($$UPDATE inventory_events.event SET qty = 0$$);
SELECT pg_temp.try($$SELECT inventory_events.grant_access('ie_nobody', 'admin')$$);
SELECT pg_temp.try($$INSERT INTO inventory_events.kit_component (kit, component) VALUES ('B', 'A')$$);
SELECT pg_temp.try($$SELECT inventory_events.resolve_exception(1)$$);
RESET ROLE;

-- Reconciliation: a reader reads the reports; a writer (a WMS connector)
-- sends snapshots and resolves lines, through COPY too, but cannot stage
-- lines into another transaction's snapshot, approve past the recount cap or
-- change sources and tolerances; an admin can.
INSERT INTO recon_source (code) VALUES ('wms');
SET ROLE ie_writer;
SELECT pg_temp.try($$SELECT inventory_events.reconcile('wms', clock_timestamp(), '[{"sku": "A", "location": "W1", "qty": 2}]', false)$$);
SELECT pg_temp.try($$INSERT INTO inventory_events.recon_staging (sku, location, qty) VALUES ('A', 'W1', 2)$$);
SELECT pg_temp.try($$INSERT INTO inventory_events.recon_staging (sku, location, qty, load_xid) VALUES ('A', 'W1', 2, '1')$$);
SELECT pg_temp.try($$SELECT inventory_events.resolve_recon_line((SELECT min(id) FROM inventory_events.recon_line), 'recount')$$);
SELECT pg_temp.try($$SELECT inventory_events.approve_recon_line((SELECT min(id) FROM inventory_events.recon_line), 'ok')$$);
SELECT pg_temp.try($$UPDATE inventory_events.recon_source SET auto_adjust = true$$);
SELECT pg_temp.try($$INSERT INTO inventory_events.recon_tolerance (units) VALUES (1000)$$);
SELECT pg_temp.try($$UPDATE inventory_events.recon_line SET status = 'match'$$);
SELECT pg_temp.try($$SELECT inventory_events.recon_reevaluate()$$);
RESET ROLE;
SET ROLE ie_reader;
SELECT pg_temp.try($$SELECT count(*) FROM inventory_events.recon_variance((SELECT min(id) FROM inventory_events.recon_run))$$);
SELECT pg_temp.try($$SELECT inventory_events.reconcile('wms', clock_timestamp(), '[]')$$);
RESET ROLE;
SET ROLE ie_admin;
SELECT pg_temp.try($$INSERT INTO inventory_events.recon_tolerance (abc_class, pct) VALUES ('A', 0.5)$$);
SELECT pg_temp.try($$SELECT inventory_events.approve_recon_line((SELECT min(id) FROM inventory_events.recon_line), 'counted again: 2')$$);
RESET ROLE;
SELECT version, current, status, resolution, resolved_by FROM recon_line ORDER BY id;

SELECT sku, available, version FROM stock;
SELECT * FROM verify();

-- Functions that change data are SECURITY DEFINER with a pinned search_path.
SELECT p.proname, p.prosecdef, p.proconfig
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'inventory_events' AND p.prosecdef ORDER BY 1;
-- No table is writable by PUBLIC.
SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'inventory_events' AND c.relkind IN ('r', 'v')
   AND has_table_privilege('public', c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE');

DROP EXTENSION inventory_events;
DROP OWNED BY ie_nobody, ie_reader, ie_writer, ie_admin;
DROP ROLE ie_nobody, ie_reader, ie_writer, ie_admin;
