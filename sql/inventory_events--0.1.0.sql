-- inventory_events 0.1.0: install script.
\echo Use "CREATE EXTENSION inventory_events" to load this file. \quit

COMMENT ON SCHEMA inventory_events IS 'inventory_events: event store and available-to-promise engine';

-- ---------------------------------------------------------------------------
-- Library
-- ---------------------------------------------------------------------------

CREATE FUNCTION inventory_events.library_version()
RETURNS text
AS 'MODULE_PATHNAME', 'ie_library_version'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION inventory_events.library_version() IS
  'Version of the loaded inventory_events shared library';

CREATE FUNCTION inventory_events.shared_state(
    OUT started_at timestamptz,
    OUT events_appended bigint)
AS 'MODULE_PATHNAME', 'ie_shared_state'
LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION inventory_events.shared_state() IS
  'Shared memory state; needs shared_preload_libraries';
