# The reference connector (tools/connector.py) against a running publisher:
# woken by NOTIFY it delivers every publication of its channels, in order,
# without a gap or a repeat, the final quantity of every sku equal to
# channel_availability(); a NOTIFY forged by a role without access (a data
# payload, a sequence number far ahead) changes nothing it outputs or
# acknowledges: it only wakes it up to read the real values; it reconnects,
# with backoff, and reads what was published while it could not connect
# (no NOTIFY needed), also after a server restart; killed, it resumes at once
# from its state file with neither gap nor repeat; a publication whose NOTIFY
# never came arrives on the timeout; a role without reader access gets
# permission denied from publications_since(), and so does the connector.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);
use IETest;

my $node = ie_node('connector');
$node->append_conf('postgresql.conf', "inventory_events.expire_interval = 3600\n");
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION inventory_events;
	INSERT INTO inventory_events.item (sku) SELECT 'S' || g FROM generate_series(1, 20) g;
	INSERT INTO inventory_events.location (code) VALUES ('W1'), ('W2');
	INSERT INTO inventory_events.channel (code) VALUES ('web');
	INSERT INTO inventory_events.channel (code, publish_interval) VALUES ('slow', '1 second');
	INSERT INTO inventory_events.channel_location (channel, location) VALUES
		('web', 'W1'), ('web', 'W2'), ('slow', 'W1');
	CREATE ROLE feed LOGIN;
	SELECT inventory_events.grant_access('feed', 'reader');
	CREATE ROLE mallory LOGIN;
});
my $dir = $node->basedir;
my $state = "$dir/connector.state";

# Every sku's latest publication equals what the channel shows.
my $in_sync = q{
	SELECT count(*) = 0 FROM inventory_events.channel c, inventory_events.item i
	 WHERE coalesce((SELECT s.available FROM inventory_events.channel_shown s
	                  WHERE s.channel = c.code AND s.sku = i.sku), 0)
	       <> inventory_events.channel_availability(c.code, i.sku)};
# The publication log as the connector prints it, one line per publication.
my $log = q{
	SELECT string_agg(channel || ' ' || seq || ' ' || sku || ' ' || available, E'\n' ORDER BY channel, seq)
	  FROM inventory_events.publication};
# The final quantity of every published sku, per channel.
my $final = q{
	SELECT string_agg(c.code || ' ' || i.sku || '=' || inventory_events.channel_availability(c.code, i.sku), ','
	                  ORDER BY c.code, i.sku)
	  FROM inventory_events.channel c, inventory_events.item i
	 WHERE EXISTS (SELECT FROM inventory_events.publication p WHERE p.channel = c.code AND p.sku = i.sku)};

sub as_log
{
	my ($rows) = @_;
	return join("\n", map { "$_->{channel} $_->{seq} $_->{sku} $_->{available}" }
		sort { $a->{channel} cmp $b->{channel} || $a->{seq} <=> $b->{seq} } @$rows);
}

sub as_final
{
	my ($rows) = @_;
	my %last;
	$last{"$_->{channel} $_->{sku}"} = $_->{available} for @$rows;	# rows are in seq order per channel
	return join(',', map { "$_=$last{$_}" } sort keys %last);
}

# The complete lines a connector has written to a file so far.
sub output
{
	my ($file) = @_;
	my $text = -e $file ? slurp_file($file) : '';
	$text =~ s/[^\n]*\z//;
	return ie_connector_rows($text);
}

# A connector running in the background, as role feed, printing to $name.out.
sub start_connector
{
	my ($name, @args) = @_;
	return IPC::Run::start(
		ie_connector('--dsn', $node->connstr('postgres') . ' user=feed', '--channel', 'web,slow',
			'--state-file', $state, @args),
		'>', "$dir/$name.out", '2>', "$dir/$name.err");
}

# The state file a connector that has everything would have.
sub state_wanted
{
	my %last = map { split /\|/ } split /\n/,
		$node->safe_psql('postgres', 'SELECT channel, last_seq FROM inventory_events.channel_publisher');
	return '{' . join(', ', map { qq{"$_": $last{$_}} } sort keys %last) . '}';
}

# Waits for the publisher, then up to $seconds for the connector to have
# acknowledged (so written out) every channel's last publication.
sub caught_up
{
	my ($seconds) = @_;
	$node->poll_query_until('postgres', $in_sync) or return 0;
	my $want = state_wanted();
	my $deadline = time + $seconds;
	while (1)
	{
		return 1 if -e $state && slurp_file($state) eq $want;
		if (time > $deadline)
		{
			# What a failure needs to be understood.
			diag("wanted state $want, state file " . (-e $state ? slurp_file($state) : '(none)'));
			diag("connector stderr:\n" . slurp_file($_)) for glob("$dir/*.err");
			diag("connector backends:\n" . $node->safe_psql('postgres',
				q{SELECT pid, state, state_change, backend_start FROM pg_stat_activity
				   WHERE application_name = 'inventory_events connector'}));
			return 0;
		}
		usleep(100_000);
	}
}

my $backend = q{SELECT pid FROM pg_stat_activity WHERE application_name = 'inventory_events connector'};

ie_burst_script("$dir/burst.sql");
sub burst
{
	my ($transactions) = @_;
	$node->command_ok(
		[ 'pgbench', '-n', '-c', '2', '-j', '2', '-t', $transactions, '-f', "$dir/burst.sql",
		  '-h', $node->host, '-p', $node->port, 'postgres' ], "a burst of $transactions transactions from 2 clients");
}

# 1. Woken by NOTIFY (its timeout is a minute, the test waits 20 seconds),
# the connector delivers the whole log of both channels, in order.
my $live = start_connector('live', '--timeout', '60');
ok($node->poll_query_until('postgres', "SELECT count(*) = 1 FROM ($backend) x"), 'the connector is connected');
burst(200);
ok(caught_up(20), 'woken by NOTIFY, the connector acknowledged the last publication of each channel');
is(as_log(output("$dir/live.out")), $node->safe_psql('postgres', $log),
	'its output is the publication log: every seq once, in order, with its sku and quantity');
is(as_final(output("$dir/live.out")), $node->safe_psql('postgres', $final),
	'the final quantity of every sku equals channel_availability()');
# The last seq per channel of some rows, written as the state file is.
sub last_seqs
{
	my ($rows) = @_;
	my %last;
	$last{ $_->{channel} } = $_->{seq} for @$rows;
	return '{' . join(', ', map { qq{"$_": $last{$_}} } sort keys %last) . '}';
}
my $acked = slurp_file($state);
is($acked, last_seqs(output("$dir/live.out")), 'its state file holds the last seq it wrote of each channel');

# 2. Forged notifications from a role with no access at all: data in the
# payload, and a sequence number far ahead. They wake the connector (its
# backend runs a read after them), and change nothing it outputs or
# acknowledges; the next real publication follows the last real one.
my $before = slurp_file("$dir/live.out");
my $t0 = $node->safe_psql('postgres', 'SELECT clock_timestamp()');
$node->safe_psql('postgres', q{
	SELECT pg_notify('inventory_events.web', '[["A",9999,99]]'),
	       pg_notify('inventory_events.web', '{"seq": 999999}'),
	       pg_notify('inventory_events.slow', '{"seq": 999999}')}, extra_params => [ '-U', 'mallory' ]);
ok($node->poll_query_until('postgres', qq{
	SELECT count(*) = 1 FROM pg_stat_activity
	 WHERE application_name = 'inventory_events connector' AND state = 'idle' AND state_change > '$t0'}),
	'a forged NOTIFY wakes the connector up: it reads');
usleep(300_000);
is(slurp_file("$dir/live.out"), $before, 'and outputs nothing new');
is(slurp_file($state), $acked, 'and acknowledges nothing new');
$node->safe_psql('postgres', q{SELECT inventory_events.append('S1', 'W1', 'received', 5)});
ok(caught_up(20), 'a real change is delivered');
my $rows = output("$dir/live.out");
my ($acked_web) = $acked =~ /"web": (\d+)/;
# The last line of web (slow, throttled, may publish its change later).
my ($last_web) = grep { $_->{channel} eq 'web' } reverse @$rows;
is($last_web->{seq}, $acked_web + 1, 'with the seq after the last real one');
is(as_log($rows), $node->safe_psql('postgres', $log), 'the output is still the publication log');

# 3. Connection lost: its backend terminated while its role may not log in.
# It tries again, with backoff; what was published meanwhile (the NOTIFYs
# went to nobody) comes from the catch-up that follows its reconnection.
# Then a server restart.
my $pid = $node->safe_psql('postgres', $backend);
my $before_loss = slurp_file("$dir/live.out");
$node->safe_psql('postgres', "ALTER ROLE feed NOLOGIN; SELECT pg_terminate_backend($pid)");
burst(50);
ok($node->poll_query_until('postgres', $in_sync), 'changes made while it cannot connect were published');
is(slurp_file("$dir/live.out"), $before_loss, 'and not delivered yet');
$node->safe_psql('postgres', 'ALTER ROLE feed LOGIN');
ok(caught_up(30), 'allowed to connect again, it caught up with no NOTIFY to wake it');
isnt($node->safe_psql('postgres', $backend), $pid, 'on a new connection');
$node->restart(mode => 'fast');
burst(50);
ok(caught_up(30), 'after a server restart, it caught up');
is(as_log(output("$dir/live.out")), $node->safe_psql('postgres', $log),
	'its output is the publication log, without a gap or a repeat');
like(slurp_file("$dir/live.err"), qr/no connection \(.*\); trying again in/, 'it said it was reconnecting');

# 4. SIGKILL while it waits: everything written was acknowledged. Started
# again, it catches up at once (its timeout is a minute) with what was
# published while it was down, from its state file: the two outputs together
# are the log, once.
my $written = output("$dir/live.out");
my %last_written;
$last_written{ $_->{channel} } = $_->{seq} for @$written;
$live->signal('KILL');
$live->finish;
is(slurp_file($state), last_seqs($written), 'killed, its state file holds the last seq it wrote');
burst(100);
ok($node->poll_query_until('postgres', $in_sync), 'changes made while it is down were published');
my $again = start_connector('again', '--timeout', '60');
ok(caught_up(20), 'started again, it caught up at once');
$again->signal('KILL');
$again->finish;
my $resumed = output("$dir/again.out");
my %first;
$first{ $_->{channel} } //= $_->{seq} for @$resumed;
is("$first{web} $first{slow}", ($last_written{web} + 1) . ' ' . ($last_written{slow} + 1),
	'it resumed right after the seq in its state file');
is(as_log([ @$written, @$resumed ]), $node->safe_psql('postgres', $log),
	'both runs together delivered the log: no gap, no repeat');
is(as_final([ @$written, @$resumed ]), $node->safe_psql('postgres', $final),
	'the final quantity of every sku equals channel_availability()');
my ($out, $err);
ok(IPC::Run::run(ie_connector('--dsn', $node->connstr('postgres') . ' user=feed', '--channel', 'web',
			'--channel', 'slow', '--state-file', $state, '--once'), '>', \$out, '2>', \$err),
	'--once (--channel given twice) succeeds') or diag($err);
is($out // '', '', 'and has nothing to deliver');

# 5. A NOTIFY lost: a publication written by hand as publish() would, but
# without its NOTIFY. A connector whose timeout is a second reads it anyway.
my $timer = start_connector('timer', '--timeout', '1');
ok($node->poll_query_until('postgres', "SELECT count(*) = 1 FROM ($backend) x"), 'a connector with a 1 s timeout');
usleep(500_000);	# past its first read
$node->safe_psql('postgres', q{
	WITH p AS (UPDATE inventory_events.channel_publisher SET last_seq = last_seq + 1, last_published_at = now()
	            WHERE channel = 'web' RETURNING last_seq),
	     s AS (UPDATE inventory_events.channel_shown SET seq = (SELECT last_seq FROM p)
	            WHERE channel = 'web' AND sku = 'S1')
	INSERT INTO inventory_events.publication (channel, seq, sku, available, published_at)
	SELECT 'web', p.last_seq, 'S1', inventory_events.channel_availability('web', 'S1'), now() FROM p});
ok(caught_up(10), 'it delivers a publication whose NOTIFY never came');
is(as_log([ @$written, @$resumed, @{ output("$dir/timer.out") } ]), $node->safe_psql('postgres', $log),
	'all runs together delivered the log: no gap, no repeat');
$timer->signal('KILL');
$timer->finish;

# 6. A role without reader access: permission denied, from the function and
# through the connector, which stops (it does not retry) and writes nothing.
my ($rc, $stdout, $stderr) = $node->psql('postgres',
	q{SELECT * FROM inventory_events.publications_since('web', 0)}, extra_params => [ '-U', 'mallory' ]);
like($stderr, qr/permission denied/, 'publications_since() refuses a role without reader access');
($out, $err) = ('', '');
ok(!IPC::Run::run(ie_connector('--dsn', $node->connstr('postgres') . ' user=mallory', '--channel', 'web',
			'--state-file', "$dir/mallory.state", '--timeout', '1', '--max-seconds', '10'),
		'>', \$out, '2>', \$err),
	'the connector as that role fails');
like($err, qr/42501: permission denied/, 'with permission denied (42501)');
is($out // '', '', 'having written nothing');
ok(!-e "$dir/mallory.state", 'and acknowledged nothing');

$node->stop;
done_testing();
