# Many clients reserving a few hot skus (Zipf-distributed) on three channels
# (splits; half the pool; backorders without splits), while others receive,
# release, pick and ship. Afterwards: no stream ever went below zero, every
# accepted reservation is backed by reserved stock, every attempt was either
# reserved, backordered or refused (and each refusal recorded), and no
# backorder is left open while its channel shows stock.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IETest;

my $node = ie_node('zipf');
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION inventory_events;
	INSERT INTO inventory_events.item (sku) SELECT 'S' || g FROM generate_series(1, 20) g;
	INSERT INTO inventory_events.location (code) VALUES ('W1'), ('W2'), ('W3');
	INSERT INTO inventory_events.channel (code) VALUES ('web');
	INSERT INTO inventory_events.channel (code, allocation_pct) VALUES ('amz', 50);
	INSERT INTO inventory_events.channel (code, allow_backorders, allow_split) VALUES ('b2b', true, false);
	INSERT INTO inventory_events.channel_location (channel, location, priority) VALUES
		('web', 'W1', 1), ('web', 'W2', 2), ('amz', 'W1', 1), ('amz', 'W3', 1), ('b2b', 'W2', 1), ('b2b', 'W3', 1);
	SELECT count(inventory_events.append(i.sku, l.code, 'received', 20))
	  FROM inventory_events.item i, inventory_events.location l;
	CREATE TABLE attempts (status text, qty bigint);
});

my $dir = $node->basedir;
append_to_file("$dir/reserve.sql", q{
\set s random_zipfian(1, 20, 1.5)
\set c random(1, 3)
\set q random(1, 4)
INSERT INTO attempts
SELECT status, qty FROM inventory_events.reserve_lines(jsonb_build_array(jsonb_build_object(
    'channel', (ARRAY['web', 'amz', 'b2b'])[:c], 'sku', 'S' || :s, 'qty', :q, 'ref', gen_random_uuid()::text)));
});
append_to_file("$dir/restock.sql", q{
\set s random_zipfian(1, 20, 1.5)
\set l random(1, 3)
SELECT inventory_events.append('S' || :s, 'W' || :l, 'received', 6) > 0;
});
append_to_file("$dir/release.sql", q{
\set s random_zipfian(1, 20, 1.5)
SELECT count(*) FROM (SELECT channel, ref FROM inventory_events.reservation
                       WHERE sku = 'S' || :s ORDER BY id DESC LIMIT 1) r,
       LATERAL inventory_events.release(r.channel, r.ref) m;
});
append_to_file("$dir/ship.sql", q{
\set s random_zipfian(1, 20, 1.5)
SELECT count(*) FROM (SELECT channel, ref FROM inventory_events.reservation
                       WHERE sku = 'S' || :s ORDER BY id LIMIT 1 OFFSET 1) r,
       LATERAL inventory_events.pick(r.channel, r.ref) p;
SELECT count(*) FROM (SELECT channel, ref FROM inventory_events.reservation
                       WHERE sku = 'S' || :s ORDER BY id LIMIT 1 OFFSET 1) r,
       LATERAL inventory_events.ship(r.channel, r.ref) p;
});

# pgbench stops a client at its first error: a deadlock, an unexpected
# refusal or a lost update would fail this command.
$node->command_ok(
	[ 'pgbench', '-n', '-c', '8', '-j', '2', '-t', '800',
	  '-f', "$dir/reserve.sql\@10", '-f', "$dir/restock.sql\@2", '-f', "$dir/release.sql\@2",
	  '-f', "$dir/ship.sql\@1", '-h', $node->host, '-p', $node->port, 'postgres' ],
	'8 clients, 6,400 transactions on Zipf-hot skus, no client error');

my ($reserved, $backordered, $refused) = split /\|/, $node->safe_psql('postgres', q{
	SELECT count(*) FILTER (WHERE status = 'reserved'), count(*) FILTER (WHERE status = 'backordered'),
	       count(*) FILTER (WHERE status = 'refused') FROM attempts});
cmp_ok($reserved, '>', 500, "reservations were made ($reserved allocations)");
cmp_ok($refused, '>', 0, "reservations were refused ($refused), so the channel checks were exercised");
cmp_ok($backordered, '>', 0, "lines were backordered ($backordered)");
is($node->safe_psql('postgres', q{
	SELECT (SELECT count(*) FROM inventory_events.exception WHERE kind = 'oversell_refused')
	     = (SELECT count(*) FROM attempts WHERE status = 'refused')}),
	't', 'every refusal is recorded as an exception');
is($node->safe_psql('postgres', q{
	SELECT (SELECT count(*) FROM inventory_events.reservation)
	     = (SELECT count(DISTINCT ref) FROM inventory_events.event WHERE event_type = 'reserved')
	       + (SELECT count(*) FROM inventory_events.reservation r
	           WHERE NOT EXISTS (SELECT FROM inventory_events.allocation a WHERE a.reservation_id = r.id))}),
	't', 'every reservation has its reserved events, or none when wholly backordered');

# No stream ever went below zero: every prefix of every stream, in version order.
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM (
	  SELECT least(inventory_events.available(p), inventory_events.reserved(p), inventory_events.picked(p)) AS low
	    FROM (SELECT inventory_events.sum(effect) OVER (PARTITION BY sku, location, lot ORDER BY version) AS p
	            FROM inventory_events.event) x) y
	 WHERE low < 0}),
	'0', 'no prefix of any stream has a negative bucket');
is($node->safe_psql('postgres', 'SELECT count(*) FROM inventory_events.verify()'),
	'0', 'every stream equals the sum of its events');

# Every accepted reservation is backed by stock.
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM inventory_events.stock s
	  FULL JOIN (SELECT sku, location, lot, sum(reserved) AS reserved, sum(picked) AS picked
	               FROM inventory_events.allocation GROUP BY 1, 2, 3) a USING (sku, location, lot)
	 WHERE coalesce(a.reserved, 0) <> coalesce(s.reserved, 0) OR coalesce(a.picked, 0) <> coalesce(s.picked, 0)}),
	'0', 'reserved and picked stock equal the open allocations, stream by stream');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM inventory_events.reservation r
	 WHERE r.qty <> r.backordered + r.cancelled
	              + coalesce((SELECT sum(a.qty) FROM inventory_events.allocation a WHERE a.reservation_id = r.id), 0)}),
	'0', 'every reservation is allocated, backordered or cancelled, exactly');

is($node->safe_psql('postgres', q{
	SELECT count(*) FROM (SELECT a.reservation_id FROM inventory_events.allocation a
	                        JOIN inventory_events.reservation r ON r.id = a.reservation_id
	                        JOIN inventory_events.channel c ON c.code = r.channel AND NOT c.allow_split
	                       GROUP BY a.reservation_id HAVING count(DISTINCT a.location) > 1) x}),
	'0', 'a line of a channel without splits, backorder fills included, is served from one location');

# First come first served: no backorder waits while stock it may take is
# there: what its channel shows, and without splits, at the location that
# serves the line (its first allocation's), if it has one.
my $waiting = q{
	FROM inventory_events.reservation r
	JOIN inventory_events.channel c ON c.code = r.channel
	LEFT JOIN LATERAL (SELECT a.location FROM inventory_events.allocation a
	                    WHERE a.reservation_id = r.id ORDER BY a.id LIMIT 1) first ON true
	WHERE r.backordered > 0
	  AND inventory_events.channel_availability(r.channel, r.sku) > 0
	  AND (c.allow_split OR first.location IS NULL
	       OR coalesce((SELECT b.atp FROM inventory_events.stock_by_location b
	                     WHERE b.sku = r.sku AND b.location = first.location), 0) > 0)};
is($node->safe_psql('postgres', "SELECT count(*) $waiting"),
	'0', 'no open backorder while stock it may take is there')
  or diag($node->safe_psql('postgres', qq{
	SELECT r.id, r.channel, r.sku, r.backordered, first.location,
	       inventory_events.channel_availability(r.channel, r.sku) AS shown,
	       (SELECT string_agg(format('%s: %s available, %s reserved', s.location, s.available, s.reserved), '; ')
	          FROM inventory_events.stock s WHERE s.sku = r.sku) AS stock
	$waiting}));
$node->stop;

done_testing();
