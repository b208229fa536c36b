# ingest_staged() on a million staged rows: its memory stays flat.
#
# 100,000 and then 1,000,000 rows are staged (received, qty 1, over 5,000
# skus at 2 locations: 10,000 streams and 15,000 locks, no idempotency keys)
# and each lot is ingested by one ingest_staged() call, in a transaction and
# session of its own. While the call runs the test samples the backend's
# private memory (RssAnon in /proc/<pid>/status; shared buffers are not in
# it) every 10 ms; right after it, in the same transaction, it reads what the
# transaction's own memory contexts hold (pg_backend_memory_contexts:
# TopTransactionContext and Combo CIDs, freed when the transaction ends).
#
# What must not grow with the rows: the peak less the transaction's memory.
# The 1,000,000-row call's stays within 16 MB of the 100,000-row call's (the
# SQL version aggregated every claimed row into one jsonb array: hundreds of
# MB more). What does grow, by design of PostgreSQL: a combo command id for
# every update of a stock row version the same transaction wrote, i.e. one
# per event, about 50 bytes each, kept to the end of the transaction; the
# test bounds it at 64 bytes per event (a leak of a few bytes per event into
# the transaction's context, like the copy of the last stock key that the
# stock reader once kept per event, goes over it).
#
# Every row gets one outcome (applied), the staging table is empty, stock
# holds the sum of the events and verify() is empty.
#
# 10,000 streams rather than a few hundred: each event adds a version to its
# stream's stock row that no one can prune while the transaction runs, and
# reading the row walks them, so a call costs rows^2 / streams. A million
# events on 1,000 streams take about twenty minutes; on 10,000, two.
use strict;
use warnings;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);
use IETest;

my $node = ie_node('staged_memory');
# Tuplestores and sorts spill past work_mem. 15,000 locks in one call: a lock
# table of 256 x 130 entries (the limit is half of it). No autovacuum
# competing for the two cores meanwhile.
$node->append_conf('postgresql.conf', qq{
work_mem = '4MB'
max_locks_per_transaction = 256
autovacuum = off
max_wal_size = '4GB'
});
$node->start;

$node->safe_psql('postgres', q{
	CREATE EXTENSION inventory_events;
	INSERT INTO inventory_events.item (sku) SELECT 'S' || g FROM generate_series(1, 5000) g;
	INSERT INTO inventory_events.location (code) VALUES ('L1'), ('L2');
});

# Stages n rows and ingests them in one call. Returns the outcome summary,
# RssAnon before the call and its peak during it (kB), the bytes of the
# transaction's contexts after it, and the call's seconds.
sub ingest_measured
{
	my ($n) = @_;
	$node->safe_psql('postgres', qq{
		INSERT INTO inventory_events.event_staging (sku, location, event_type, qty)
		SELECT 'S' || (1 + g % 5000), 'L' || (1 + (g / 5000) % 2), 'received', 1
		  FROM generate_series(0, $n - 1) g});
	my $app = "ie_staged_$n";
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start(
		[ 'psql', '-X', '-A', '-t', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('postgres'),
		  '-c', "SET application_name = '$app'",
		  '-c', 'SELECT pg_sleep(1)',
		  '-c', 'BEGIN',
		  '-c', q{SELECT 'outcomes=' || count(*) || ' ' || count(*) FILTER (WHERE status = 'applied') || ' '
		                 || count(DISTINCT staged_id) FROM inventory_events.ingest_staged()},
		  '-c', q{SELECT 'transaction_bytes=' || sum(total_bytes) FROM pg_backend_memory_contexts
		           WHERE name IN ('TopTransactionContext', 'Combo CIDs')},
		  '-c', 'COMMIT' ],
		'>', \$out, '2>', \$err);
	my $pid;
	for (1 .. 100)
	{
		$pid = $node->safe_psql('postgres',
			qq{SELECT pid FROM pg_stat_activity WHERE application_name = '$app'});
		last if $pid;
		usleep(20_000);
	}
	die "the session of $app did not show up: $err" unless $pid;

	my ($before, $peak) = (undef, 0);
	my $start = time + 1;    # the call starts after the one-second sleep
	while ($h->pumpable)
	{
		$h->pump_nb;
		if (open my $fh, '<', "/proc/$pid/status")
		{
			local $/;
			my $status = <$fh>;
			close $fh;
			if (defined $status && $status =~ /^RssAnon:\s+(\d+) kB/m)
			{
				$before //= $1;
				$peak = $1 if $1 > $peak;
			}
		}
		usleep(10_000);
	}
	$h->finish;
	my $seconds = time - $start;
	is($err, '', "ingest_staged() of $n rows: no error");
	my ($outcomes) = $out =~ /^outcomes=(.*)$/m;
	my ($transaction_bytes) = $out =~ /^transaction_bytes=(\d+)$/m;
	return ($outcomes // '', $before, $peak, $transaction_bytes // 0, $seconds);
}

my ($out_100k, $before_100k, $peak_100k, $txn_100k, $s_100k) = ingest_measured(100_000);
is($out_100k, '100000 100000 100000', '100,000 staged rows: one outcome each, all applied');
my ($out_1m, $before_1m, $peak_1m, $txn_1m, $s_1m) = ingest_measured(1_000_000);
is($out_1m, '1000000 1000000 1000000', '1,000,000 staged rows: one outcome each, all applied');

diag(sprintf('the calling backend: 100,000 rows: RssAnon %d kB before, peak %d kB, transaction contexts '
	  . '%d kB, %.0f s; 1,000,000 rows: RssAnon %d kB before, peak %d kB, transaction contexts %d kB, %.0f s',
	$before_100k, $peak_100k, $txn_100k / 1024, $s_100k,
	$before_1m, $peak_1m, $txn_1m / 1024, $s_1m));
my $rest_100k = $peak_100k - $txn_100k / 1024;
my $rest_1m = $peak_1m - $txn_1m / 1024;
cmp_ok($rest_1m - $rest_100k, '<', 16 * 1024,
	sprintf('memory is flat: peak RssAnon less the transaction contexts %d kB for 100,000 rows, '
		  . '%d kB for 1,000,000', $rest_100k, $rest_1m));
cmp_ok(($txn_1m - $txn_100k) / 900_000, '<', 64,
	sprintf('the transaction contexts (combo command ids) grow by %.1f bytes per event',
		($txn_1m - $txn_100k) / 900_000));

is($node->safe_psql('postgres', 'SELECT count(*) FROM inventory_events.event_staging'),
	'0', 'the staging table is empty');
is($node->safe_psql('postgres', q{
	SELECT count(*) || ' ' || sum(available) || ' ' || sum(version) FROM inventory_events.stock}),
	'10000 1100000 1100000', 'stock holds the sum of the events: 10,000 streams, 1,100,000 units');
is($node->safe_psql('postgres', 'SELECT count(*) FROM inventory_events.verify()'),
	'0', 'verify() is empty');

$node->stop;
done_testing();
