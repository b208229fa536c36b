-- ---------------------------------------------------------------------------
-- Channel availability
-- ---------------------------------------------------------------------------

-- The rules of channel c over a pool (the ATP of its sourcing locations):
-- allocation share rounded down, minus the fixed buffer, the percentage
-- buffer (rounded up) and the velocity buffer, capped, never negative. One
-- implementation in C serves this function, channel_availability() and
-- reserve().
CREATE FUNCTION inventory_events.channel_rules(pool bigint, c inventory_events.channel,
                                               velocity_buffer bigint DEFAULT 0)
RETURNS bigint
AS 'MODULE_PATHNAME', 'ie_channel_rules_sql'
LANGUAGE C IMMUTABLE PARALLEL SAFE;

CREATE FUNCTION inventory_events.channel_position(channel text, sku text,
    OUT pool bigint, OUT velocity_buffer bigint, OUT available bigint)
AS 'MODULE_PATHNAME', 'ie_channel_position'
LANGUAGE C STABLE STRICT;
COMMENT ON FUNCTION inventory_events.channel_position(text, text) IS
  'The pool (ATP of the sourcing locations), velocity buffer and availability of a sku on a channel';

CREATE FUNCTION inventory_events.channel_availability(channel text, sku text)
RETURNS bigint
AS 'MODULE_PATHNAME', 'ie_channel_availability'
LANGUAGE C STABLE STRICT;
COMMENT ON FUNCTION inventory_events.channel_availability(text, text) IS
  'What a channel may show for a sku (or kit): its rules over the ATP of its sourcing locations, never negative';


-- A channel's sourcing locations as availability and reservations use them:
-- its channel_location rows expanded through the location hierarchy (a node
-- stands for every location below it, each with the priority of the nearest
-- row naming it or an ancestor), less the locations whose owner the
-- channel's entity may not sell (intercompany).
CREATE FUNCTION inventory_events.channel_sources(channel text)
RETURNS TABLE (location text, priority integer)
AS 'MODULE_PATHNAME', 'ie_channel_sources'
LANGUAGE C STABLE STRICT;
COMMENT ON FUNCTION inventory_events.channel_sources(text) IS
  'The locations a channel sources from: channel_location through the hierarchy, within what its entity may sell';
