# The publisher background worker: the reference connector
# (tools/connector.py) catching up reads the right final quantity of every
# touched sku after a burst from several clients, in a gap-free sequence; the
# publication log equals channel_availability() afterwards; the worker
# restarts after SIGKILL and after a server restart with no change lost; a
# throttled channel gets at most one publication per interval with the latest
# value; a change of hundreds of skus is read whole by a connector resuming
# from its state file; CREATE / DROP EXTENSION while it runs; start / stop; no
# publisher on a standby. (The connector's own claims: 012_connector.pl.)
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use IETest;

my $node = ie_node('publisher', allows_streaming => 1);
$node->append_conf('postgresql.conf', q{
restart_after_crash = on
inventory_events.publisher_naptime = 200
inventory_events.expire_interval = 3600
});
$node->start;

sub setup
{
	$node->safe_psql('postgres', q{
		CREATE EXTENSION inventory_events;
		INSERT INTO inventory_events.item (sku) SELECT 'S' || g FROM generate_series(1, 20) g;
		INSERT INTO inventory_events.location (code) VALUES ('W1'), ('W2');
		INSERT INTO inventory_events.channel (code) VALUES ('web');
		INSERT INTO inventory_events.channel (code, publish_interval) VALUES ('slow', '2 seconds');
		INSERT INTO inventory_events.channel_location (channel, location) VALUES
			('web', 'W1'), ('web', 'W2'), ('slow', 'W1');
	});
}
setup();

# The publisher is up and serving the database.
ok($node->poll_query_until('postgres', q{
	SELECT count(*) = 1 FROM pg_stat_activity
	 WHERE backend_type = 'inventory_events publisher' AND application_name = 'inventory_events publisher'}),
	'the publisher shows in pg_stat_activity');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM pg_stat_activity
	 WHERE backend_type = 'inventory_events launcher' AND application_name = 'inventory_events launcher'}),
	'1', 'so does the launcher');
is($node->safe_psql('postgres', 'SELECT database || enabled::text FROM inventory_events.publisher_status()'),
	'postgrestrue', 'publisher_status() lists it');

# Every sku's published value (the latest per channel) equals what the channel shows.
my $in_sync = q{
	SELECT count(*) = 0 FROM (
	  SELECT c.code, i.sku FROM inventory_events.channel c, inventory_events.item i
	   WHERE coalesce((SELECT s.available FROM inventory_events.channel_shown s
	                    WHERE s.channel = c.code AND s.sku = i.sku), -1)
	         <> inventory_events.channel_availability(c.code, i.sku)
	     AND inventory_events.channel_availability(c.code, i.sku) > 0) x};
my $log_matches = q{
	SELECT count(*) FROM inventory_events.channel c, inventory_events.item i
	 WHERE coalesce((SELECT p.available FROM inventory_events.publication p
	                  WHERE p.channel = c.code AND p.sku = i.sku ORDER BY p.seq DESC LIMIT 1), 0)
	       <> inventory_events.channel_availability(c.code, i.sku)};

my $dir = $node->basedir;
ie_burst_script("$dir/burst.sql");
sub burst
{
	my ($clients, $transactions, $name) = @_;
	$node->command_ok(
		[ 'pgbench', '-n', '-c', $clients, '-j', '2', '-t', $transactions, '-f', "$dir/burst.sql",
		  '-h', $node->host, '-p', $node->port, 'postgres' ], $name);
}

# 1. A connector catching up reads the final quantity of every touched sku.
# catch_up(args...): the rows of one connector run (--once) as the superuser.
sub catch_up
{
	my ($out, $err);
	my $ok = IPC::Run::run(ie_connector('--dsn', $node->connstr('postgres'), '--once', @_),
		'>', \$out, '2>', \$err);
	ok($ok, "the connector caught up (@_)") or diag($err);
	return ie_connector_rows($out);
}
burst(4, 300, 'a burst of 1,200 transactions from 4 clients');
ok($node->poll_query_until('postgres', $in_sync), 'the publisher caught up');
is($node->safe_psql('postgres', $log_matches), '0',
	'the latest publication of every sku equals channel_availability()');

my $rows = catch_up('--channel', 'web');
my $last_seq = $node->safe_psql('postgres', q{SELECT max(seq) FROM inventory_events.publication WHERE channel = 'web'});
cmp_ok(scalar(@$rows), '>', 0, 'the connector read publications (' . scalar(@$rows) . ')');
is(join(',', map { $_->{seq} } @$rows), join(',', 1 .. $last_seq),
	'in sequence order, from 1 to the last, without a gap or a repeat');
my %heard;
$heard{ $_->{sku} } = $_->{available} for @$rows;
my $expected = $node->safe_psql('postgres', q{
	SELECT string_agg(i.sku || '=' || inventory_events.channel_availability('web', i.sku), ',' ORDER BY i.sku)
	  FROM inventory_events.item i
	 WHERE EXISTS (SELECT FROM inventory_events.publication p WHERE p.channel = 'web' AND p.sku = i.sku)});
is(join(',', map { "$_=$heard{$_}" } sort keys %heard), $expected,
	'the connector read the final quantity of every sku');
is($node->safe_psql('postgres', q{
	SELECT count(*) = max(seq) FROM inventory_events.publication WHERE channel = 'web'}), 't',
	'the sequence is gap-free');

# 3. SIGKILL of the worker during a burst: it comes back, nothing is lost.
my $pid = $node->safe_psql('postgres', 'SELECT pid FROM inventory_events.publisher_status()');
my $bg = IPC::Run::start(
	[ 'pgbench', '-n', '-c', '2', '-j', '2', '-T', '4', '-f', "$dir/burst.sql",
	  '-h', $node->host, '-p', $node->port, 'postgres' ], '>', \my $bg_out, '2>', \my $bg_err);
usleep(1_500_000);
kill 'KILL', $pid;
$bg->finish;	# its clients are cut off by the crash restart
$node->poll_query_until('postgres', 'SELECT true');
burst(2, 200, 'a burst after the crash restart');
ok($node->poll_query_until('postgres', q{
	SELECT count(*) = 1 FROM inventory_events.publisher_status() WHERE pid IS NOT NULL AND pid <> } . $pid),
	'the publisher restarted after SIGKILL');
ok($node->poll_query_until('postgres', $in_sync), 'it caught up');
is($node->safe_psql('postgres', $log_matches), '0', 'no change was lost');

# 4. A server restart during a burst: the same.
$bg = IPC::Run::start(
	[ 'pgbench', '-n', '-c', '2', '-j', '2', '-T', '4', '-f', "$dir/burst.sql",
	  '-h', $node->host, '-p', $node->port, 'postgres' ], '>', \$bg_out, '2>', \$bg_err);
usleep(1_500_000);
$node->restart(mode => 'immediate');
$bg->finish;
burst(2, 200, 'a burst after the server restart');
ok($node->poll_query_until('postgres', $in_sync), 'after a server restart the publisher caught up');
is($node->safe_psql('postgres', $log_matches), '0', 'no change was lost');
is($node->safe_psql('postgres', q{
	SELECT bool_and(n = m) FROM (SELECT count(*) AS n, max(seq) AS m FROM inventory_events.publication GROUP BY channel) x}),
	't', 'every channel\'s sequence is still gap-free');

# 5. The throttled channel (2 seconds), over all the bursts above: at most one
# publication per interval per sku, some skus published several times, and
# once due the latest value of every sku.
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM (
	  SELECT published_at - lag(published_at) OVER (PARTITION BY sku ORDER BY seq) AS gap
	    FROM inventory_events.publication WHERE channel = 'slow') x
	 WHERE gap < interval '1.9 seconds'}), '0',
	'the throttled channel got each sku at most once per interval');
cmp_ok($node->safe_psql('postgres', q{
	SELECT count(*) FROM (SELECT sku FROM inventory_events.publication WHERE channel = 'slow'
	                       GROUP BY sku HAVING count(*) > 1) x}), '>', 0,
	'and some skus several times');
ok($node->poll_query_until('postgres', $in_sync), 'and, once due, the latest value of every sku');

# 6. Hundreds of skus in one transaction: a connector resuming after the
# last sequence number it acknowledged (its state file) reads them all.
my $before = $node->safe_psql('postgres', q{SELECT last_seq FROM inventory_events.channel_publisher WHERE channel = 'web'});
my $state_file = "$dir/web.state";
append_to_file($state_file, qq{{"web": $before}});
$node->safe_psql('postgres', q{
	INSERT INTO inventory_events.item (sku) SELECT 'BULK-SKU-WITH-A-RATHER-LONG-NAME-' || lpad(g::text, 30, '0') FROM generate_series(1, 400) g;
	SELECT count(inventory_events.append('BULK-SKU-WITH-A-RATHER-LONG-NAME-' || lpad(g::text, 30, '0'), 'W1', 'received', g))
	  FROM generate_series(1, 400) g;
});
ok($node->poll_query_until('postgres', $in_sync), 'the bulk change was published');
my $sent = $node->safe_psql('postgres', qq{SELECT count(*) FROM inventory_events.publication WHERE channel = 'web' AND seq > $before});
$rows = catch_up('--channel', 'web', '--state-file', $state_file);
is(scalar(@$rows), $sent, "the connector read the $sent publications after seq $before");
is($rows->[0]{seq}, $before + 1, 'starting right after its state file\'s seq');
is(join(',', map { "$_->{sku}=$_->{available}" } grep { $_->{sku} =~ /^BULK/ } @$rows),
	$node->safe_psql('postgres', q{
		SELECT string_agg(sku || '=' || inventory_events.channel_availability('web', sku), ',' ORDER BY sku)
		  FROM inventory_events.item WHERE sku LIKE 'BULK%'}),
	'every bulk sku with its quantity');
like(slurp_file($state_file), qr/"web": \Q$rows->[-1]{seq}\E\b/, 'the state file holds the last seq read');

# 7. DROP and CREATE EXTENSION while the worker runs. A DROP issued while
# publish() runs waits for it: a session holds the checkpoint row so that
# the publisher is caught inside publish(), the DROP is issued, the holder
# lets go. Without the worker's lock on the extension the DROP and the
# publisher each hold tables the other needs (deadlock, or the worker fails
# on a table that vanished) and the worker is restarted.
$pid = $node->safe_psql('postgres', 'SELECT pid FROM inventory_events.publisher_status()');
my $holder = $node->background_psql('postgres');
$holder->query_safe('BEGIN; SELECT checkpoint FROM inventory_events.publisher_checkpoint FOR UPDATE');
$node->safe_psql('postgres', q{SELECT inventory_events.append('S2', 'W1', 'received', 1)});
ok($node->poll_query_until('postgres', qq{
	SELECT count(*) = 1 FROM pg_stat_activity WHERE pid = $pid AND wait_event_type = 'Lock'}),
	'the publisher is caught inside publish()');
my $dropper = $node->background_psql('postgres', on_error_stop => 0);
$dropper->query_until(qr/dropping/, "\\echo dropping\nDROP EXTENSION inventory_events;\n");
ok($node->poll_query_until('postgres', q{
	SELECT count(*) = 1 FROM pg_stat_activity WHERE query = 'DROP EXTENSION inventory_events;' AND wait_event_type = 'Lock'}),
	'DROP EXTENSION waits');
$holder->query_safe('COMMIT');
$holder->quit;
my ($dropped, $drop_failed) = $dropper->query('SELECT 1');
is($drop_failed, 0, 'DROP EXTENSION succeeds once the publisher is done');
$dropper->quit;
is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_extension WHERE extname = 'inventory_events'}), '0',
	'the extension is gone');
usleep(600_000);
is($node->safe_psql('postgres', qq{SELECT count(*) FROM pg_stat_activity WHERE pid = $pid}), '1',
	'the publisher keeps running, waiting, while the extension is dropped');
setup();
$node->safe_psql('postgres', q{SELECT inventory_events.append('S1', 'W1', 'received', 7)});
ok($node->poll_query_until('postgres', q{
	SELECT count(*) = 1 FROM inventory_events.publication WHERE channel = 'web' AND sku = 'S1' AND available = 7}),
	'after CREATE EXTENSION it publishes again');
is($node->safe_psql('postgres', 'SELECT pid FROM inventory_events.publisher_status()'), $pid, 'the same worker');

# 8. publisher_stop() and publisher_start().
is($node->safe_psql('postgres', 'SELECT inventory_events.publisher_stop()'), 't', 'publisher_stop()');
ok($node->poll_query_until('postgres', q{
	SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'inventory_events publisher'}),
	'the publisher stopped');
$node->safe_psql('postgres', q{SELECT inventory_events.append('S1', 'W1', 'received', 1)});
usleep(500_000);
is($node->safe_psql('postgres', q{SELECT max(available) FROM inventory_events.publication WHERE channel = 'web' AND sku = 'S1'}),
	'7', 'nothing is published while it is stopped');
is($node->safe_psql('postgres', 'SELECT inventory_events.publisher_start()'), 't', 'publisher_start()');
ok($node->poll_query_until('postgres', q{
	SELECT count(*) = 1 FROM inventory_events.publication WHERE channel = 'web' AND sku = 'S1' AND available = 8}),
	'started again, it publishes what it missed');
is($node->safe_psql('postgres', q{SELECT inventory_events.publisher_stop('nosuchdb')}), 'f',
	'publisher_stop() of a database it does not serve is false');

# 8b. A rule change left open holds the marks it made again: the worker
# neither publishes them with the old rules nor steps for them meanwhile
# (before, a channel whose marks were all held stayed due, and the worker ran
# a step every publisher_delay, 20 ms, until the change ended). A committed
# change's mark is left unpublished by stopping the publisher; a second change
# of the same channel holds it; the publisher started again.
is($node->safe_psql('postgres', 'SELECT inventory_events.publisher_stop()'), 't', 'stopped for the held marks');
ok($node->poll_query_until('postgres', q{
	SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'inventory_events publisher'}),
	'the publisher stopped again');
$node->safe_psql('postgres', q{UPDATE inventory_events.channel SET cap = 5 WHERE code = 'web'});
my $changer = $node->background_psql('postgres');
$changer->query_safe(q{BEGIN; UPDATE inventory_events.channel SET cap = 3 WHERE code = 'web'});
$node->safe_psql('postgres', 'SELECT inventory_events.publisher_start()');
ok($node->poll_query_until('postgres', q{SELECT runs > 0 FROM inventory_events.publisher_status()}),
	'the publisher runs again');
my $runs_before = $node->safe_psql('postgres', 'SELECT runs FROM inventory_events.publisher_status()');
usleep(2_000_000);
my $runs_held = $node->safe_psql('postgres', 'SELECT runs FROM inventory_events.publisher_status()') - $runs_before;
# One run per naptime (200 ms here) is the worker's own pace: about 10.
cmp_ok($runs_held, '<=', 25, "no step for held marks: $runs_held runs in 2 s");
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM inventory_events.publication WHERE channel = 'web' AND sku = 'S1' AND available = 5}),
	'0', 'the held mark is not published with the rules before the change');
$changer->query_safe('COMMIT');
$changer->quit;
ok($node->poll_query_until('postgres', q{
	SELECT available = 3 FROM inventory_events.publication WHERE channel = 'web' AND sku = 'S1' ORDER BY seq DESC LIMIT 1}),
	'once the change commits, its cap is published');
$node->safe_psql('postgres', q{UPDATE inventory_events.channel SET cap = NULL WHERE code = 'web'});

# 9. Housekeeping, and SIGHUP: an expired reservation stays until the
# expire_interval is lowered by a reload, then the publisher releases it.
$node->safe_psql('postgres', q{
	SELECT count(*) FROM inventory_events.reserve('web', 'S1', 1, 'cart-1', expires_at => now() - interval '1 second')});
usleep(1_000_000);
is($node->safe_psql('postgres', q{SELECT count(*) FROM inventory_events.event WHERE ref = 'cart-1' AND event_type = 'released'}),
	'0', 'not expired while expire_interval is an hour');
$node->safe_psql('postgres', q{ALTER SYSTEM SET inventory_events.expire_interval = 1; SELECT pg_reload_conf();});
ok($node->poll_query_until('postgres', q{
	SELECT count(*) = 1 FROM inventory_events.event WHERE ref = 'cart-1' AND event_type = 'released' AND reason = 'expired'}),
	'after a reload (SIGHUP) the publisher expires it');

# 10. No publisher on a standby.
$node->backup('b');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($node, 'b', has_streaming => 1);
$standby->start;
$node->wait_for_catchup($standby);
usleep(500_000);
is($standby->safe_psql('postgres', q{
	SELECT count(*) FROM pg_stat_activity WHERE backend_type LIKE 'inventory_events%'}), '0',
	'a standby runs no launcher and no publisher');
is($standby->safe_psql('postgres', 'SELECT count(*) FROM inventory_events.publisher_status()'), '0',
	'publisher_status() on the standby is empty');
$standby->stop;
$node->stop;

done_testing();
