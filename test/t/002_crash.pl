# Stock positions are derived in the same transaction as their events: after
# a crash in the middle of a burst of concurrent appends (SIGKILL to a
# backend, then crash recovery) every stream still equals the sum of its
# events, and every stream version has exactly one event.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use IETest;

my $node = ie_node('crash');
# The throw-away config turns fsync off, and TAP clusters do not restart
# after a crash; this test needs both.
$node->append_conf('postgresql.conf', "fsync = on\nrestart_after_crash = on\n");
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION inventory_events;
	INSERT INTO inventory_events.item (sku) SELECT 'SKU' || g FROM generate_series(1, 10) g;
	INSERT INTO inventory_events.location (code) VALUES ('W1'), ('W2');
});

my $script = $node->basedir . '/append.sql';
PostgreSQL::Test::Utils::append_to_file($script, q{
\set s random(1, 10)
\set l random(1, 2)
\set q random(1, 100)
SELECT inventory_events.append('SKU' || :s, 'W' || :l, 'received', :q);
SELECT inventory_events.append('SKU' || :s, 'W' || :l, 'adjusted', -1);
});

my ($out, $err) = ('', '');
my $bench = IPC::Run::start(
	[ 'pgbench', '-n', '-c', '4', '-j', '2', '-T', '60', '-f', $script,
	  '-h', $node->host, '-p', $node->port, 'postgres' ],
	'>', \$out, '2>', \$err);

# Let the burst run, then crash in the middle of it.
$node->poll_query_until('postgres', 'SELECT count(*) > 2000 FROM inventory_events.event')
  or die "no appends";
my $before = $node->safe_psql('postgres', 'SELECT count(*) FROM inventory_events.event');
# SIGKILL one appending backend: the postmaster kills every other backend and
# recovers from WAL, as after a crash.
my $victim = $node->safe_psql('postgres',
	"SELECT pid FROM pg_stat_activity WHERE backend_type = 'client backend' "
	  . "AND pid <> pg_backend_pid() AND query LIKE '%inventory_events.append%' LIMIT 1");
ok($victim, "an appending backend to kill ($victim)");
kill 'KILL', $victim;
$bench->finish;
ok($before > 2000, "burst was running when the backend was killed ($before events)");
ok($node->poll_query_until('postgres', 'SELECT true', 't'), 'server is back after crash recovery');
ok($node->log_contains(qr/terminated by signal 9: Killed/), 'postmaster saw the crash');
ok($node->log_contains(qr/database system was not properly shut down; automatic recovery in progress/),
	'crash recovery ran');
my $after = $node->safe_psql('postgres', 'SELECT count(*) FROM inventory_events.event');
cmp_ok($after, '>=', $before, "committed events survived recovery ($after)");
is($node->safe_psql('postgres', 'SELECT count(*) FROM inventory_events.verify()'),
	'0', 'every stock row equals the sum of its events after recovery');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM (
	  SELECT sku, location, lot, count(*) AS n, max(version) AS v
	    FROM inventory_events.event GROUP BY 1, 2, 3) s WHERE n <> v}),
	'0', 'stream versions are gap-free after recovery');

# Appending goes on where it left off.
$node->safe_psql('postgres', q{SELECT inventory_events.append('SKU1', 'W1', 'received', 1)});
is($node->safe_psql('postgres', 'SELECT count(*) FROM inventory_events.verify()'),
	'0', 'appends after recovery keep positions consistent');
$node->stop;

done_testing();
