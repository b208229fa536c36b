# The partitioned log with its worker, and the archive round trip.
#
# 1. The worker makes the log's partitions ahead of need once the database
#    has written to the log (not before: a restore brings its own), on a
#    clock the test sets (inventory_events.clock for the database): the month
#    of the clock and three after it. Appends on either side of a month
#    boundary go to their months' partitions; one past the last partition
#    goes to the default partition and is kept.
# 2. archive_before() detaches the months before a boundary once stream
#    snapshots cover them; pg_dump -t saves them, and they are dropped. Positions,
#    verify(), as-of answers after the boundary and a retried key of an
#    archived event still hold; a question before the boundary is refused
#    with 22023. pg_restore brings the table back, attach_archived() attaches
#    it: the as-of answers before the boundary are those of before the
#    archive, and the log has every event again.
# 3. A dump of the whole database, with its partitions, restores into a new
#    database with the same log, and its worker does not touch it until the
#    first write.
use strict;
use warnings;
use IPC::Run;
use Time::HiRes qw(usleep);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IETest;

my $node = ie_node('partitions');
$node->append_conf('postgresql.conf', q{
inventory_events.database = 'erp,copy'
inventory_events.publisher_naptime = 100
inventory_events.housekeeping_interval = 1
});
$node->start;
my $dumps = $node->basedir . '/dumps';
mkdir $dumps;

$node->safe_psql('postgres', 'CREATE DATABASE erp');
$node->safe_psql('erp', q{
	CREATE EXTENSION inventory_events;
	ALTER DATABASE erp SET inventory_events.clock = '2027-03-31 23:00+00';
	ALTER DATABASE erp SET timezone = 'UTC';
	INSERT INTO inventory_events.item (sku) VALUES ('A'), ('B');
	INSERT INTO inventory_events.location (code) VALUES ('W1');
});
# Restarted so that the worker reads the database's clock.
$node->restart;

sub partitions
{
	my ($db) = @_;
	return $node->safe_psql($db, q{
		SELECT string_agg(replace(partition::text, 'inventory_events.', '') || ' ' || coalesce(to_char(recorded_from, 'YYYY-MM-DD'), '-') || ' '
		                  || coalesce(to_char(recorded_to, 'YYYY-MM-DD'), '-'), ', ' ORDER BY recorded_from NULLS LAST)
		  FROM inventory_events.event_partitions()});
}

# 1. Nothing before the first write; then the worker's partitions.
sleep 3;
is(partitions('erp'), 'event_default - -', 'no partition is made before the database writes to the log');
$node->safe_psql('erp', q{SELECT inventory_events.append('A', 'W1', 'received', 10, source => 'erp', idempotency_key => 'first')});
ok($node->poll_query_until('erp', q{SELECT count(*) = 5 FROM inventory_events.event_partitions()}),
	'the worker makes the partitions after the first write');
is(partitions('erp'),
	'event_p20270301 2027-03-31 2027-04-01, event_p20270401 2027-04-01 2027-05-01, '
	  . 'event_p20270501 2027-05-01 2027-06-01, event_p20270601 2027-06-01 2027-07-01, event_default - -',
	'the clock\'s month from after the first event (in the default partition), and three months ahead');
is($node->safe_psql('erp', q{SELECT string_agg(replace(partition::text, 'inventory_events.', ''), ', ') FROM inventory_events.event_partitions() p
                              JOIN pg_extension e ON e.extname = 'inventory_events'
                             WHERE EXISTS (SELECT FROM pg_depend d WHERE d.objid = p.partition AND d.refobjid = e.oid
                                                                     AND d.deptype = 'e')}),
	'event_default', 'only the default partition is a member of the extension');

# Across the month boundary on the clock; and past the last partition.
$node->safe_psql('erp', q{
	SET inventory_events.clock = '2027-04-30 23:59:59.9+00';
	SELECT inventory_events.append('A', 'W1', 'received', 5, source => 'erp', idempotency_key => 'april');
	SET inventory_events.clock = '2027-05-01 00:00:00.1+00';
	SELECT inventory_events.append('A', 'W1', 'received', 3, source => 'erp', idempotency_key => 'may');
	SELECT inventory_events.append('B', 'W1', 'received', 7, source => 'erp', idempotency_key => 'may-b');
	SET inventory_events.clock = '2027-09-15 12:00+00';
	SELECT inventory_events.append('B', 'W1', 'received', 1);
});
is($node->safe_psql('erp', q{SELECT string_agg(replace(tableoid::regclass::text, 'inventory_events.', '') || ':' || id, ', ' ORDER BY id)
                              FROM inventory_events.event}),
	'event_default:1, event_p20270401:2, event_p20270501:3, event_p20270501:4, event_default:5',
	'each event is in the partition of its recording time, the one past the partitions in the default one');

# 2. The archive round trip, at a clock past May.
my $at = q{SET inventory_events.clock = '2027-06-10 00:00+00';};
my $as_of_before = $node->safe_psql('erp', q{
	SELECT inventory_events.position_as_of('A', 'W1', '2027-05-01 00:00:00+00')::text || ' '
	       || inventory_events.position_as_of('A', 'W1', '2027-04-15 00:00+00')::text});
# The worker's transactions run on the real clock, before the test clock's
# months end: archive_before() refuses while one is open (55006, "wait, then
# archive again"), as it would for an appender. So the test waits too.
sub archive_psql
{
	my ($sql) = @_;
	my ($ret, $out, $err);
	for my $try (1 .. 50)
	{
		($ret, $out, $err) = $node->psql('erp', $at . $sql);
		last unless $err =~ /may still be appended to/;
		usleep(200_000);
	}
	return ($ret, $out, $err);
}
my ($ret, $out, $err) = archive_psql(q{SELECT * FROM inventory_events.archive_before('2027-05-01')});
like($err, qr/partition "inventory_events\.event_p20270401" of the event log is not covered by stream snapshots/,
	'archive_before() refuses a partition that snapshots do not cover');
$node->safe_psql('erp', q{SELECT inventory_events.take_snapshots(min_events => 1)});
($ret, $out, $err) = archive_psql(q{SELECT string_agg(partition || ' ' || events, ', ') FROM inventory_events.archive_before('2027-05-01')});
is($out,
	'inventory_events.event_p20270301 0, inventory_events.event_p20270401 1',
	'archive_before() detaches the partitions of March (empty) and April');
command_ok([ 'pg_dump', '-h', $node->host, '-p', $node->port, '-d', 'erp', '-Fc',
		'-t', 'inventory_events.event_p20270301', '-t', 'inventory_events.event_p20270401', '-f', "$dumps/april.dump" ],
	'pg_dump -t saves them');
$node->safe_psql('erp', q{DROP TABLE inventory_events.event_p20270301, inventory_events.event_p20270401});

is($node->safe_psql('erp', q{SELECT count(*) FROM inventory_events.verify()}), '0', 'verify() is clean without it');
is($node->safe_psql('erp', q{SELECT available FROM inventory_events.stock WHERE sku = 'A'}), '18', 'the position is intact');
is($node->safe_psql('erp', q{SELECT inventory_events.position_as_of('A', 'W1', '2027-05-01 00:00:00+00')::text}),
	(split / /, $as_of_before)[0], 'an as-of answer at the boundary is that of before the archive');
($ret, $out, $err) = $node->psql('erp',
	q{SELECT inventory_events.position_as_of('A', 'W1', '2027-04-15 00:00+00')}, extra_params => [ '-v', 'VERBOSITY=verbose' ]);
like($err, qr/22023: the event log before 2027-05-01 00:00:00\+00 is archived/, 'a question before the boundary is refused (22023)');
like($err, qr/HINT:  Ask about 2027-05-01 00:00:00\+00 or later/, 'with the boundary in its hint');
is($node->safe_psql('erp', q{SELECT inventory_events.append('A', 'W1', 'received', 5, source => 'erp', idempotency_key => 'april')}),
	'2', 'a retried key of an archived event is still the same event');
is($node->safe_psql('erp', q{SELECT count(*) FROM inventory_events.event}), '4', 'and nothing is appended');

command_ok([ 'pg_restore', '-h', $node->host, '-p', $node->port, '-d', 'erp', "$dumps/april.dump" ],
	'pg_restore brings the archived partitions back as tables');
$node->safe_psql('erp', q{SELECT inventory_events.attach_archived('inventory_events.event_p20270401')});
$node->safe_psql('erp', q{SELECT inventory_events.attach_archived('inventory_events.event_p20270301')});
is($node->safe_psql('erp', q{
	SELECT inventory_events.position_as_of('A', 'W1', '2027-05-01 00:00:00+00')::text || ' '
	       || inventory_events.position_as_of('A', 'W1', '2027-04-15 00:00+00')::text}),
	$as_of_before, 'attached again, the as-of answers before the boundary are those of before the archive');
is($node->safe_psql('erp', q{SELECT count(*) || ' ' || count(DISTINCT tableoid) FROM inventory_events.event}), '5 3',
	'every event is in the log again');
is($node->safe_psql('erp', q{SELECT count(*) FROM inventory_events.verify()}), '0', 'verify() is clean');
is($node->safe_psql('erp', q{SELECT count(*) FROM inventory_events.event_archive}), '0', 'nothing is archived any more');

# 3. The whole database, partitions and all, into a new one served by the
# worker: it makes no partition during the restore.
command_ok([ 'pg_dump', '-h', $node->host, '-p', $node->port, '-d', 'erp', '-Fc', '-f', "$dumps/erp.dump" ],
	'pg_dump of the database');
$node->safe_psql('postgres', 'CREATE DATABASE copy');
command_ok([ 'pg_restore', '-h', $node->host, '-p', $node->port, '-d', 'copy', '--exit-on-error', "$dumps/erp.dump" ],
	'pg_restore of it, with no error');
sleep 2;
is(partitions('copy'), partitions('erp'), 'the copy has the same partitions');
my $log = q{SELECT string_agg(tableoid::regclass::text || ' ' || id || ' ' || sku || ' ' || version, ', ' ORDER BY id) FROM inventory_events.event};
is($node->safe_psql('copy', $log), $node->safe_psql('erp', $log), 'the same events in the same partitions');
is($node->safe_psql('copy', q{SELECT string_agg(sku || available, ',' ORDER BY sku) FROM inventory_events.stock}),
	$node->safe_psql('erp', q{SELECT string_agg(sku || available, ',' ORDER BY sku) FROM inventory_events.stock}),
	'stock derived again equals the source\'s');
is($node->safe_psql('copy', q{SELECT string_agg(idempotency_key, ',' ORDER BY idempotency_key) FROM inventory_events.event_key}),
	'april,first,may,may-b', 'the idempotency keys are derived again from the events');
is($node->safe_psql('copy', q{SELECT count(*) FROM inventory_events.verify()}), '0', 'verify() is clean in the copy');

$node->stop;
done_testing();
