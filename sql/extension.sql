-- CREATE / DROP / re-create, and the objects the library provides.
CREATE EXTENSION inventory_events;

SELECT extname, extversion, nspname AS schema, extrelocatable
  FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
 WHERE extname = 'inventory_events';

-- The library and the SQL objects are the same version.
SELECT inventory_events.library_version() = extversion AS library_matches_sql
  FROM pg_extension WHERE extname = 'inventory_events';

-- The test cluster preloads the library: shared memory is attached.
SELECT started_at <= now() AS started, events_appended >= 0 AS counting
  FROM inventory_events.shared_state();

-- The GUC prefix is reserved: a misspelled setting is an error, not a placeholder.
SET inventory_events.no_such_setting = 'x';
SHOW inventory_events.database;

-- Relocation is refused.
CREATE SCHEMA elsewhere;
ALTER EXTENSION inventory_events SET SCHEMA elsewhere;
DROP SCHEMA elsewhere;

-- DROP removes every object; PostgreSQL leaves the schema named by the control
-- file (it is not a member of the extension), and CREATE reuses it.
DROP EXTENSION inventory_events;
SELECT count(*) AS objects_left FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE nspname = 'inventory_events';
SELECT count(*) AS functions_left FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE nspname = 'inventory_events';
CREATE EXTENSION inventory_events;
SELECT extversion FROM pg_extension WHERE extname = 'inventory_events';
DROP EXTENSION inventory_events;
DROP SCHEMA inventory_events;
