-- The privilege matrix: every table, view, sequence and function of the
-- extension against every kind of access (none, reader, writer, admin), as
-- doc/reference.md documents it. Generated from the catalog: an object added
-- to the extension shows up here, and this test fails until its row is
-- reviewed and accepted into the expected output.
CREATE EXTENSION inventory_events;
CREATE ROLE ie_m_none;
CREATE ROLE ie_m_reader;
CREATE ROLE ie_m_writer;
CREATE ROLE ie_m_admin;
SELECT inventory_events.grant_access('ie_m_reader', 'reader');
SELECT inventory_events.grant_access('ie_m_writer', 'writer');
SELECT inventory_events.grant_access('ie_m_admin', 'admin');

-- Per role: r (SELECT), a (INSERT), w (UPDATE), d (DELETE), D (TRUNCATE) on
-- relations; U (USAGE) on sequences; X (EXECUTE) on functions; '-' none.
CREATE FUNCTION pg_temp.privileges(role name, object oid, kind text) RETURNS text LANGUAGE sql AS $$
    SELECT coalesce(nullif(
        CASE kind
        WHEN 'function' THEN CASE WHEN has_function_privilege(role, object, 'EXECUTE') THEN 'X' ELSE '' END
        WHEN 'sequence' THEN CASE WHEN has_sequence_privilege(role, object, 'SELECT') THEN 'r' ELSE '' END ||
                             CASE WHEN has_sequence_privilege(role, object, 'USAGE') THEN 'U' ELSE '' END ||
                             CASE WHEN has_sequence_privilege(role, object, 'UPDATE') THEN 'w' ELSE '' END
        ELSE CASE WHEN has_table_privilege(role, object, 'SELECT') THEN 'r' ELSE '' END ||
             CASE WHEN has_table_privilege(role, object, 'INSERT') THEN 'a' ELSE '' END ||
             CASE WHEN has_table_privilege(role, object, 'UPDATE') THEN 'w'
                  WHEN has_any_column_privilege(role, object, 'UPDATE') THEN 'w(cols)' ELSE '' END ||
             CASE WHEN has_table_privilege(role, object, 'DELETE') THEN 'd' ELSE '' END ||
             CASE WHEN has_table_privilege(role, object, 'TRUNCATE') THEN 'D' ELSE '' END
        END, ''), '-')
$$;

WITH objects AS (
    SELECT CASE c.relkind WHEN 'S' THEN 'sequence' WHEN 'v' THEN 'view' ELSE 'table' END AS kind,
           c.relname::text AS name, c.oid
      FROM pg_class c
     WHERE c.relnamespace = 'inventory_events'::regnamespace AND c.relkind IN ('r', 'v', 'S', 'p', 'm')
    UNION ALL
    SELECT 'function', p.oid::regprocedure::text, p.oid
      FROM pg_proc p
     WHERE p.pronamespace = 'inventory_events'::regnamespace
)
SELECT kind, replace(name, 'inventory_events.', '') AS object,
       pg_temp.privileges('ie_m_none', oid, kind) AS "none",
       pg_temp.privileges('ie_m_reader', oid, kind) AS reader,
       pg_temp.privileges('ie_m_writer', oid, kind) AS writer,
       pg_temp.privileges('ie_m_admin', oid, kind) AS admin
  FROM objects
 ORDER BY kind, object;

DROP EXTENSION inventory_events;
DROP OWNED BY ie_m_none, ie_m_reader, ie_m_writer, ie_m_admin;
DROP ROLE ie_m_none, ie_m_reader, ie_m_writer, ie_m_admin;
