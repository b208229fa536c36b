# Replication clients of the event log:
# - pg_recvlogical with the inventory_events plugin, during concurrent
#   writers whose commits interleave: every event exactly once, each stream's
#   versions in order, commit LSNs increasing, the slot's confirmed position
#   advancing; stopped mid-stream and resumed, no gap and no duplicate.
# - a second cluster subscribed through built-in logical replication (pgoutput)
#   to the master data and the event log derives its own stock positions
#   (the ENABLE ALWAYS stock trigger), identical to the publisher's.
# - the private memory of a walsender decoding with include-position stays
#   flat from 20,000 to 80,000 events;
# - a client with no status updates of its own, a 3 s wal_sender_timeout and
#   a transaction of four million skipped changes: never timed out.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use IETest;

my $node = ie_node('decoder', allows_streaming => 'logical');
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION inventory_events;
	INSERT INTO inventory_events.item (sku) SELECT 'S' || g FROM generate_series(1, 30) g;
	INSERT INTO inventory_events.location (code) VALUES ('W1'), ('W2');
	INSERT INTO inventory_events.channel (code) VALUES ('web');
	INSERT INTO inventory_events.channel_location (channel, location) VALUES ('web', 'W1'), ('web', 'W2');
	CREATE PUBLICATION ie_pub FOR TABLE inventory_events.item, inventory_events.item_uom,
	    inventory_events.location, inventory_events.lot, inventory_events.event
	    WITH (publish_via_partition_root = true);
	SELECT pg_create_logical_replication_slot('stream', 'inventory_events');
});

# The subscriber, before any event (its initial copy is the master data).
my $sub = ie_node('subscriber');
$sub->start;
$sub->safe_psql('postgres', 'CREATE EXTENSION inventory_events');
$sub->safe_psql('postgres',
	"CREATE SUBSCRIPTION ie_sub CONNECTION '" . $node->connstr . " dbname=postgres' PUBLICATION ie_pub");
$node->wait_for_catchup('ie_sub');

# Writers: three events per transaction on skus in ascending order, commits
# interleaving between four clients.
my $dir = $node->basedir;
append_to_file("$dir/writers.sql", q{
\set a random(1, 10)
\set b random(11, 20)
\set c random(21, 30)
\set l random(1, 2)
BEGIN;
SELECT inventory_events.append('S' || :a, 'W' || :l, 'received', 3);
SELECT inventory_events.append('S' || :b, 'W' || :l, 'received', 2);
SELECT count(*) FROM inventory_events.reserve_lines(jsonb_build_array(jsonb_build_object(
    'channel', 'web', 'sku', 'S' || :c, 'qty', 1, 'ref', gen_random_uuid()::text)));
SELECT inventory_events.append('S' || :c, 'W' || :l, 'received', 1);
COMMIT;
});
sub writers
{
	my ($transactions) = @_;
	return IPC::Run::start(
		[ 'pgbench', '-n', '-c', '4', '-j', '2', '-t', $transactions, '-f', "$dir/writers.sql",
		  '-h', $node->host, '-p', $node->port, 'postgres' ], '>', \my $out, '2>', \my $err);
}
sub receiver
{
	my ($file, @startpos) = @_;
	return IPC::Run::start(
		[ 'pg_recvlogical', '-d', $node->connstr('postgres'), '--slot', 'stream', '--start',
		  '-f', $file, '-o', 'include-xact=on', '-o', 'include-position=on',
		  '--fsync-interval', '1', '--status-interval', '1', '--no-loop', @startpos ],
		'>', \my $out, '2>', \my $err);
}
sub records
{
	my @records;
	for my $file (@_)
	{
		next unless -e $file;
		push @records, split /\n/, slurp_file($file);
	}
	return @records;
}

my $file1 = "$dir/part1.jsonl";
my $file2 = "$dir/part2.jsonl";
my $recv = receiver($file1);
my $w = writers(300);
usleep(700_000);
# Stop the receiver mid-stream (SIGINT: it writes, flushes and confirms what it has).
$recv->signal('INT');
$recv->finish;
my $confirmed_1 = $node->safe_psql('postgres', q{SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'stream'});
# The consumer's protocol (doc/reference.md): keep what precedes the last
# commit record, drop any partial transaction after it, and resume from that
# commit's end_lsn; the slot may not have confirmed that far yet, and
# transactions that committed before the start position are not sent again.
my @kept = split /\n/, slurp_file($file1);
pop @kept while @kept && $kept[-1] !~ /"kind":"commit"/;
ok(scalar(@kept), 'the first receiver wrote complete transactions before it was stopped');
my ($resume) = $kept[-1] =~ /"end_lsn":"([0-9A-F]+\/[0-9A-F]+)"/;
open(my $fh, '>', $file1) or die;
print $fh join("\n", @kept), "\n";
close $fh;
$recv = receiver($file2, '--startpos', $resume);
$w->finish;
my $events = $node->safe_psql('postgres', 'SELECT count(*) FROM inventory_events.event');
my $deadline = time + 60;
while (time < $deadline)
{
	my $n = grep { /"kind":"event"/ } records($file1, $file2);
	last if $n >= $events;
	usleep(200_000);
}
# The resumed receiver confirms to the slot what it flushes, at its status
# interval: the slot moves beyond where the first receiver was stopped.
ok($node->poll_query_until('postgres', qq{
	SELECT confirmed_flush_lsn > '$confirmed_1' FROM pg_replication_slots WHERE slot_name = 'stream'}),
	'the resumed receiver confirmed positions to the slot');
$recv->signal('INT');
$recv->finish;

my @lines = records($file1, $file2);
my @event_lines = grep { /"kind":"event"/ } @lines;
my (%seen, %last_version, $dups, $disorder);
($dups, $disorder) = (0, 0);
for my $line (@event_lines)
{
	my ($id) = $line =~ /"event_id":(\d+)/;
	my ($sku) = $line =~ /"sku":"([^"]*)"/;
	my ($loc) = $line =~ /"location":"([^"]*)"/;
	my ($version) = $line =~ /"version":(\d+),"event_type"/;
	$dups++ if $seen{$id}++;
	$disorder++ if defined $last_version{"$sku/$loc"} && $version != $last_version{"$sku/$loc"} + 1;
	$last_version{"$sku/$loc"} = $version;
}
is(scalar(keys %seen), $events, "every event of the log reached the files ($events)");
is($dups, 0, 'no event twice across the stop and the resume');
is($disorder, 0, 'each stream\'s versions follow one another in commit order');
my @commits = map { /"kind":"commit".*?"lsn":"([0-9A-F]+)\/([0-9A-F]+)"/ ? hex($1) * 2**32 + hex($2) : () } @lines;
is(scalar(grep { $commits[$_] <= $commits[$_ - 1] } 1 .. $#commits), 0, 'commit LSNs increase');
is(scalar(grep { /"kind":"event"/ && !/"position":\{/ } @lines), 0, 'every event carries its stream position');

# The subscriber derived the same stock positions from the replicated events.
$node->wait_for_catchup('ie_sub');
my $positions = q{SELECT string_agg(format('%s/%s/%s %s %s v%s', sku, location, lot, available, reserved, version), ';' ORDER BY sku, location, lot)
                    FROM inventory_events.stock};
my $theirs = $sub->safe_psql('postgres', $positions);
cmp_ok(length($theirs), '>', 0, 'the subscriber has stock rows');
is($theirs, $node->safe_psql('postgres', $positions),
	'the subscriber\'s stock positions equal the publisher\'s');
is($sub->safe_psql('postgres', 'SELECT count(*) FROM inventory_events.verify()'), '0',
	'and equal the sum of its replicated events');

$sub->stop;

# Memory: a walsender that decodes with include-position holds the same
# private memory after 20,000 and after 80,000 events (the key of the event
# held back for its position once leaked about 190 bytes per event).
$node->safe_psql('postgres', q{SELECT pg_create_logical_replication_slot('memory', 'inventory_events')});
my $memory_client = IPC::Run::start(
	[ 'pg_recvlogical', '-d', $node->connstr('postgres'), '--slot', 'memory', '--start', '-f', '/dev/null',
	  '-o', 'include-xact=on', '-o', 'include-position=on', '--status-interval', '1', '--no-loop' ],
	'>', \my $memory_out, '2>', \my $memory_err);
ok($node->poll_query_until('postgres', q{SELECT active_pid IS NOT NULL FROM pg_replication_slots WHERE slot_name = 'memory'}),
	'the decoding client is streaming');
my $walsender = $node->safe_psql('postgres', q{SELECT active_pid FROM pg_replication_slots WHERE slot_name = 'memory'});
sub decoded_rss_after
{
	my ($events) = @_;
	$node->safe_psql('postgres', qq{DO \$\$
		BEGIN
		    FOR t IN 1 .. $events / 10 LOOP
		        PERFORM inventory_events.append('S' || (1 + (t * 10 + e) % 30), 'W' || (1 + e % 2), 'received', 1)
		           FROM generate_series(0, 9) e;
		        COMMIT;
		    END LOOP;
		END \$\$});
	my $upto = $node->safe_psql('postgres', 'SELECT pg_current_wal_lsn()');
	$node->poll_query_until('postgres', qq{
		SELECT confirmed_flush_lsn >= '$upto' FROM pg_replication_slots WHERE slot_name = 'memory'})
	  or die 'the decoding client did not catch up';
	my ($kb) = slurp_file("/proc/$walsender/status") =~ /^RssAnon:\s+(\d+) kB/m;
	return $kb;
}
my $rss_20k = decoded_rss_after(20_000);
my $rss_80k = decoded_rss_after(60_000);
cmp_ok($rss_80k - $rss_20k, '<', 2048,
	"the walsender's private memory is flat: $rss_20k kB after 20,000 events, $rss_80k kB after 80,000");
$memory_client->signal('INT');
$memory_client->finish;
$node->safe_psql('postgres', q{SELECT pg_drop_replication_slot('memory')});

# A transaction of four million changes to another table, decoded while a
# client waits with no status updates of its own: the plugin's progress
# updates while it skips them keep the walsender sending keepalives (and
# reading the replies), so a 3 s wal_sender_timeout does not end the stream
# during the ten or so seconds the replay takes. Without them the walsender
# is terminated for replication timeout.
$node->safe_psql('postgres', q{
	CREATE TABLE unrelated (x int);
	SELECT pg_create_logical_replication_slot('quiet', 'inventory_events');
	ALTER SYSTEM SET wal_sender_timeout = '3s';
	SELECT pg_reload_conf();
});
my $log_offset = -s $node->logfile;
my $quiet_file = "$dir/quiet.jsonl";
my $quiet = IPC::Run::start(
	[ 'pg_recvlogical', '-d', $node->connstr('postgres'), '--slot', 'quiet', '--start',
	  '-f', $quiet_file, '--fsync-interval', '1', '--status-interval', '0', '--no-loop' ],
	'>', \my $quiet_out, '2>', \my $quiet_err);
$node->safe_psql('postgres', 'INSERT INTO unrelated SELECT generate_series(1, 4000000)');
my $after = $node->safe_psql('postgres', q{SELECT inventory_events.append('S1', 'W1', 'received', 1)});
$deadline = time + 90;
usleep(200_000) until (-e $quiet_file && slurp_file($quiet_file) =~ /"event_id":$after,/) || time > $deadline;
like(-e $quiet_file ? slurp_file($quiet_file) : '', qr/"event_id":$after,/,
	'the event committed after the big filtered transaction reached the client');
unlike(slurp_file($node->logfile, $log_offset), qr/replication timeout/,
	'no walsender was terminated for replication timeout');
$quiet->signal('INT');
$quiet->finish;

$node->stop;
done_testing();
