# Many clients moving stock of a few hot streams at once: receipts,
# reservations, releases, picks and shipments, refused when a bucket would go
# below zero (IE001). Afterwards no bucket of any stream is negative, every
# stream equals the sum of its events, and versions are gap-free.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IETest;

my $node = ie_node('concurrent');
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION inventory_events;
	INSERT INTO inventory_events.item (sku) SELECT 'HOT' || g FROM generate_series(1, 3) g;
	INSERT INTO inventory_events.location (code) VALUES ('W1'), ('W2');
	-- A client that keeps going after a refusal, counting refusals by SQLSTATE.
	CREATE TABLE refusals (sqlstate text, n bigint DEFAULT 1);
	CREATE FUNCTION try_move(sku text, loc text, t inventory_events.event_type, q bigint)
	RETURNS void LANGUAGE plpgsql AS $$
	BEGIN
		PERFORM inventory_events.append_lifecycle(sku, loc, t, q);
	EXCEPTION WHEN SQLSTATE 'IE001' THEN
		INSERT INTO refusals (sqlstate) VALUES (SQLSTATE);
	END $$;
});

my $script = $node->basedir . '/movements.sql';
append_to_file($script, q{
\set s random(1, 3)
\set l random(1, 2)
\set q random(1, 5)
\set t random(1, 6)
SELECT try_move('HOT' || :s, 'W' || :l,
                (ARRAY['received', 'reserved', 'reserved', 'released', 'picked', 'shipped'])[:t]::inventory_events.event_type,
                :q);
});

$node->command_ok(
	[ 'pgbench', '-n', '-c', '8', '-j', '2', '-t', '1500', '-f', $script,
	  '-h', $node->host, '-p', $node->port, 'postgres' ],
	'8 clients, 12,000 movements on 6 hot streams');

my $events = $node->safe_psql('postgres', 'SELECT count(*) FROM inventory_events.event');
my $refused = $node->safe_psql('postgres', 'SELECT count(*) FROM refusals');
cmp_ok($events, '>', 1000, "movements were applied ($events)");
cmp_ok($refused, '>', 0, "movements were refused ($refused), so the bucket checks were exercised");
is($events + $refused, 12000, 'every movement was either applied or refused');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM inventory_events.stock
	 WHERE least(available, reserved, picked, damaged, quarantine, in_transit, inbound) < 0}),
	'0', 'no bucket of any stream went below zero');
is($node->safe_psql('postgres', 'SELECT count(*) FROM inventory_events.verify()'),
	'0', 'every stream equals the sum of its events');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM (SELECT sku, location, count(*) AS n, max(version) AS v
	                        FROM inventory_events.event GROUP BY 1, 2) s WHERE n <> v}),
	'0', 'stream versions are gap-free');
# Replaying the log in id order never takes a bucket negative either: each
# event was checked against the position its predecessors produced.
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM (
	  SELECT least(inventory_events.available(p), inventory_events.reserved(p), inventory_events.picked(p)) AS low
	    FROM (SELECT inventory_events.sum(effect) OVER (PARTITION BY sku, location ORDER BY version) AS p
	            FROM inventory_events.event) x) y
	 WHERE low < 0}),
	'0', 'no prefix of any stream has a negative bucket');
$node->stop;

done_testing();
