-- The stock_position type: text I/O, binary I/O, operators, sum(), accessors.
CREATE EXTENSION inventory_events;
SET search_path = inventory_events, public;

SELECT '(available=10,reserved=2,picked=0,damaged=0,quarantine=0,in_transit=0,inbound=5)'::stock_position;
-- Any order, white space, omitted buckets are zero.
SELECT ' ( inbound = 5 , available=-3 ) '::stock_position;
SELECT '()'::stock_position;
SELECT stock_position(available => 4, quarantine => 1);

-- Malformed input names the bad part (22P02); out of range is 22003.
SELECT 'available=1'::stock_position;
SELECT '(availabel=1)'::stock_position;
SELECT '(available=1,available=2)'::stock_position;
SELECT '(available 1)'::stock_position;
SELECT '(available=x)'::stock_position;
SELECT '(available=1;reserved=2)'::stock_position;
SELECT '(available=1) extra'::stock_position;
SELECT '(available=99999999999999999999)'::stock_position;

-- Operators.
SELECT '(available=5,reserved=1)'::stock_position + '(available=-2,picked=2)'::stock_position AS plus,
       '(available=5,reserved=1)'::stock_position - '(available=5)'::stock_position AS minus;
SELECT '(available=1)'::stock_position = '(available=1,reserved=0)'::stock_position AS eq,
       '(available=1)'::stock_position <> '(available=2)'::stock_position AS ne;
SELECT '(available=9223372036854775807)'::stock_position + '(available=1)'::stock_position;
SELECT '(reserved=-9223372036854775807)'::stock_position - '(reserved=2)'::stock_position;

-- Accessors: on_hand counts available, reserved, picked, damaged and quarantine.
SELECT on_hand(p), available(p), reserved(p), picked(p), damaged(p), quarantine(p), in_transit(p), inbound(p)
  FROM (SELECT '(available=1,reserved=2,picked=3,damaged=4,quarantine=5,in_transit=6,inbound=7)'::stock_position AS p) x;
SELECT on_hand('(available=9223372036854775807,reserved=1)');

-- sum() skips nulls and is null over no rows.
SELECT sum(p) FROM (VALUES ('(available=1)'::stock_position), (NULL), ('(available=2,inbound=3)')) v(p);
SELECT sum(p) IS NULL AS empty_is_null FROM (SELECT '()'::stock_position AS p WHERE false) x;
SELECT sum(p) FROM (SELECT stock_position(available => g) AS p FROM generate_series(1, 1000) g) x;

-- Binary I/O round-trips (send is 7 big-endian int8).
SELECT stock_position_send('(available=1,inbound=-1)');
SELECT length(stock_position_send('()'));
CREATE TEMP TABLE bin (p stock_position);
INSERT INTO bin VALUES ('(available=7,damaged=2,in_transit=-9223372036854775808)'), ('()');
-- (the program runs in the server's data directory, and cleans up)
COPY bin TO PROGRAM 'cat > inventory_events_regress.bin' (FORMAT binary);
CREATE TEMP TABLE bin2 (p stock_position);
COPY bin2 FROM PROGRAM 'cat inventory_events_regress.bin && rm inventory_events_regress.bin' (FORMAT binary);
SELECT p FROM bin2;
SELECT (SELECT array_agg(p::text) FROM bin) = (SELECT array_agg(p::text) FROM bin2) AS round_trip;
DROP TABLE bin, bin2;

DROP EXTENSION inventory_events;
