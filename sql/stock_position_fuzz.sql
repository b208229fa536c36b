-- Properties of stock_position's text form, over random values and random
-- corruptions of valid text: output parses back to the same value, and any
-- input either parses to a value whose output parses back the same, or is
-- refused with 22P02 / 22003. The output does not depend on the seed.
CREATE EXTENSION inventory_events;
SET search_path = inventory_events, public;
SELECT setseed(0.20261126);

-- Round trip of random positions (whole bigint range, including the extremes).
WITH r AS (
    SELECT stock_position(
        (ARRAY[-9223372036854775808, 9223372036854775807, 0, -1])[1 + (g % 4)],
        (random() * 1.8e19 - 9e18)::bigint, (random() * 2e9 - 1e9)::bigint, (random() * 100)::bigint,
        (random() * 1.8e19 - 9e18)::bigint, -(random() * 1e6)::bigint, (random() * 1e12)::bigint) AS p
      FROM generate_series(1, 5000) g)
SELECT count(*) AS positions,
       count(*) FILTER (WHERE p::text::stock_position <> p) AS text_round_trip_failures,
       count(*) FILTER (WHERE stock_position_send(p::text::stock_position) <> stock_position_send(p)) AS binary_differences
  FROM r;

-- Random corruptions: replace, insert or delete one character of a valid text.
CREATE FUNCTION pg_temp.mutate(s text) RETURNS text LANGUAGE sql AS $$
    SELECT CASE (random() * 3)::int % 3
             WHEN 0 THEN overlay(s PLACING c FROM pos FOR 1)
             WHEN 1 THEN overlay(s PLACING c FROM pos FOR 0)
             ELSE overlay(s PLACING '' FROM pos FOR 1) END
      FROM (SELECT 1 + (random() * (length(s) - 1))::int AS pos,
                   substr('()=,-+ 0123456789xavilbreusdpkqntgo_9' || chr(1 + (random() * 126)::int),
                          1 + (random() * 38)::int, 1) AS c) m $$;

DO $$
DECLARE
    base text[] := ARRAY['(available=10,reserved=2,picked=0,damaged=0,quarantine=0,in_transit=0,inbound=5)',
                         '(inbound=-9223372036854775808,available=9223372036854775807)', '()', ' ( available = 1 ) '];
    input text;
    parsed stock_position;
    accepted int := 0;
    refused int := 0;
    unexpected text[] := '{}';
BEGIN
    FOR i IN 1 .. 5000 LOOP
        input := pg_temp.mutate(base[1 + i % 4]);
        IF i % 7 = 0 THEN
            input := pg_temp.mutate(input);
        END IF;
        BEGIN
            parsed := input::stock_position;
            IF parsed::text::stock_position <> parsed THEN
                unexpected := unexpected || ('round trip: ' || input);
            END IF;
            accepted := accepted + 1;
        EXCEPTION WHEN OTHERS THEN
            IF SQLSTATE NOT IN ('22P02', '22003') THEN
                unexpected := unexpected || (SQLSTATE || ': ' || input);
            END IF;
            refused := refused + 1;
        END;
    END LOOP;
    RAISE NOTICE 'corrupted inputs: %, each accepted or refused with 22P02/22003: %, unexpected: %',
        accepted + refused, accepted > 0 AND refused > 0 AND cardinality(unexpected) = 0, unexpected;
END $$;

DROP EXTENSION inventory_events;
