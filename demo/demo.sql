-- inventory_events demo scenario (run by tools/demo.sh on a throw-away cluster).
\pset footer off
\pset null '(null)'

\echo '=== 1. Install the extension'
CREATE EXTENSION inventory_events;
SELECT extname AS extension, extversion AS version, inventory_events.library_version() AS library
  FROM pg_extension WHERE extname = 'inventory_events';

\echo
\echo '=== 2. The server settings it runs with'
SELECT name, setting
  FROM pg_settings
 WHERE name IN ('shared_preload_libraries', 'wal_level', 'output_plugin_libraries',
                'inventory_events.database')
 ORDER BY name;

\echo
\echo '=== 3. Shared memory, attached because the library is preloaded'
SELECT * FROM inventory_events.shared_state();
