# The worker's housekeeping (inventory_events.housekeeping_interval): stream
# snapshots and the retention settings, with nobody calling them.
#
# 1. While 4 clients append to a few hot streams, the worker snapshots them
#    again and again (snapshot_events = 50): afterwards every stream has
#    snapshots, verify() and verify_snapshots() are clean, and a fold of each
#    stream reads fewer than snapshot_events + the events of one interval,
#    not its history.
# 2. The retention settings are applied: aged publications (each
#    sku's newest kept), dead letters and resolved exceptions go; open ones stay.
# 3. Each task is isolated: take_snapshots() failing (a CHECK constraint) is
#    recorded in worker_error as task snapshot, while the retention still
#    runs; cured, the streak is cleared and snapshots are taken again.
# 4. housekeeping_interval = 0 stops both.
# The server's default_transaction_isolation is repeatable read throughout:
# the worker runs its steps under READ COMMITTED all the same.
use strict;
use warnings;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IETest;

my $node = ie_node('housekeeping');
$node->append_conf('postgresql.conf', q{
inventory_events.publisher_naptime = 100
inventory_events.housekeeping_interval = 1
inventory_events.snapshot_events = 50
inventory_events.retain_dead_letters = '1d'
inventory_events.retain_publications = '1d'
inventory_events.retain_resolved_exceptions = '1d'
# The worker runs READ COMMITTED whatever the server's default (take_snapshots()
# refuses anything else).
default_transaction_isolation = 'repeatable read'
});
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION inventory_events;
	INSERT INTO inventory_events.item (sku) SELECT 'HOT' || g FROM generate_series(1, 3) g;
	INSERT INTO inventory_events.location (code) VALUES ('W1'), ('W2');
	INSERT INTO inventory_events.channel (code) VALUES ('web');
	INSERT INTO inventory_events.channel_location (channel, location) VALUES ('web', 'W1');
});
ok($node->poll_query_until('postgres', q{SELECT pid IS NOT NULL FROM inventory_events.publisher_status()}),
	'the publisher runs');

# 1. Appends racing the snapshots.
my $script = $node->basedir . '/appends.sql';
append_to_file($script, q{
\set s random(1, 3)
\set l random(1, 2)
\set q random(1, 5)
SELECT inventory_events.append('HOT' || :s, 'W' || :l, 'received', :q);
});
my ($out, $err) = ('', '');
my $bench = IPC::Run::start(
	[ 'pgbench', '-n', '-c', '4', '-j', '2', '-T', '6', '-f', $script,
	  '-h', $node->host, '-p', $node->port, 'postgres' ],
	'>', \$out, '2>', \$err);
ok($node->poll_query_until('postgres', q{SELECT count(DISTINCT version) > 1 FROM inventory_events.stream_snapshot}),
	'the worker takes snapshots while appends run');
$bench->finish;
is($?, 0, 'the appenders ran without an error') or diag($err);
# Once more after the appends: every stream is within one step of its snapshot.
ok($node->poll_query_until('postgres', q{
	SELECT bool_and(s.version - (SELECT max(x.version) FROM inventory_events.stream_snapshot x
	                               WHERE x.sku = s.sku AND x.location = s.location AND x.lot = s.lot) < 50)
	  FROM inventory_events.stock s}),
	'every stream is snapshotted up to its last 50 events');
my $events = $node->safe_psql('postgres', q{SELECT count(*) FROM inventory_events.event});
cmp_ok($events, '>', 600, "the appenders appended ($events events)");
is($node->safe_psql('postgres', q{SELECT count(*) FROM inventory_events.verify()}), '0',
	'verify() is clean');
is($node->safe_psql('postgres', q{SELECT count(*) FROM inventory_events.verify_snapshots()}), '0',
	'every snapshot equals its predecessor and the events between them');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM inventory_events.stock s
	 CROSS JOIN LATERAL inventory_events.stream_fold(s.sku, s.location, s.lot) f
	 WHERE f.events_read >= 50 OR f.base_version = 0}),
	'0', 'a fold of any stream reads fewer than 50 events, from a snapshot');

# 2. Retention.
$node->safe_psql('postgres', q{
	SELECT count(*) FROM inventory_events.ingest('[{"sku": "NOPE", "location": "W1", "event_type": "received", "qty": 1}]');
	INSERT INTO inventory_events.exception (kind, detail, created_at, resolved_at)
	VALUES ('pick_short', 'old, resolved', now() - interval '3 days', now() - interval '2 days'),
	       ('pick_short', 'old, open', now() - interval '3 days', NULL);
});
ok($node->poll_query_until('postgres', q{SELECT count(*) > 1 FROM inventory_events.publication}),
	'publications were made');
$node->safe_psql('postgres', q{
	UPDATE inventory_events.publication SET published_at = published_at - interval '2 days';
	UPDATE inventory_events.exception SET resolved_at = now() WHERE kind = 'dead_letter';
	UPDATE inventory_events.dead_letter SET failed_at = failed_at - interval '2 days';
});
ok($node->poll_query_until('postgres', q{
	SELECT (SELECT count(*) FROM inventory_events.dead_letter) = 0
	   AND (SELECT count(*) FROM inventory_events.publication)
	       = (SELECT count(*) FROM inventory_events.channel_shown)
	   AND (SELECT string_agg(detail, ',') FROM inventory_events.exception WHERE kind = 'pick_short') = 'old, open'}),
	'aged dead letters, publications (but each sku\'s newest) and resolved exceptions are deleted by the worker');

# 3. A failing snapshot task is isolated.
$node->safe_psql('postgres', q{
	ALTER TABLE inventory_events.stream_snapshot ADD CONSTRAINT no_snapshot CHECK (version < 0) NOT VALID;
	SELECT count(*) FROM (SELECT inventory_events.append('HOT1', 'W1', 'received', 1) FROM generate_series(1, 60)) x;
	SELECT count(*) FROM inventory_events.ingest('[{"sku": "NOPE", "location": "W1", "event_type": "received", "qty": 1}]');
	UPDATE inventory_events.exception SET resolved_at = now() WHERE kind = 'dead_letter';
	UPDATE inventory_events.dead_letter SET failed_at = failed_at - interval '2 days';
});
ok($node->poll_query_until('postgres', q{
	SELECT sqlstate = '23514' AND cleared_at IS NULL FROM inventory_events.worker_error WHERE task = 'snapshot'}),
	'take_snapshots() failing is recorded as task snapshot');
ok($node->poll_query_until('postgres', q{SELECT count(*) = 0 FROM inventory_events.dead_letter}),
	'while the retention is still applied');
$node->safe_psql('postgres', q{ALTER TABLE inventory_events.stream_snapshot DROP CONSTRAINT no_snapshot});
ok($node->poll_query_until('postgres', q{
	SELECT cleared_at IS NOT NULL FROM inventory_events.worker_error WHERE task = 'snapshot'}),
	'cured, the streak is cleared');
is($node->safe_psql('postgres', q{SELECT count(*) FROM inventory_events.verify()}), '0', 'verify() is clean');

# 4. Off.
$node->append_conf('postgresql.conf', q{inventory_events.housekeeping_interval = 0});
$node->reload;
sleep 2;
my $snapshots = $node->safe_psql('postgres', q{SELECT count(*) FROM inventory_events.stream_snapshot});
$node->safe_psql('postgres', q{
	SELECT count(*) FROM (SELECT inventory_events.append('HOT2', 'W2', 'received', 1) FROM generate_series(1, 60)) x});
sleep 3;
is($node->safe_psql('postgres', q{SELECT count(*) FROM inventory_events.stream_snapshot}), $snapshots,
	'with housekeeping_interval = 0 no snapshot is taken');

$node->stop;
done_testing();
