# Failure stays local in the background worker.
#
# 1. A poisoned channel next to two healthy ones: the healthy channels get
#    every change while the poisoned one fails on every try; its failures are
#    recorded in worker_error with a growing backoff (several tries, fewer
#    than one per publisher run), channel_health shows its lag and last error,
#    its skus stay pending, and the worker process never restarts.
# 2. Cured, the channel catches up (its sequence gap-free) and its streak of
#    failures is cleared.
# 3. An expiry that fails for one reservation: the other expired reservation
#    of the same run is released, the failure is recorded (task expire), and
#    publication goes on.
# 4. A failure of the whole publisher step (outside any channel) is recorded
#    (channel '') and retried with a backoff by the same process, however
#    often commits wake it; expiry goes on meanwhile; once cured, the streak
#    is cleared and publication resumes.
# 5. Expiry while another transaction holds a sku: the worker leaves that
#    sku's reservation to a later run and releases the others; a holder that
#    calls publish() does not deadlock with it.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IETest;

my $node = ie_node('failures');
$node->append_conf('postgresql.conf', q{
inventory_events.publisher_naptime = 100
inventory_events.expire_interval = 1
});
$node->start;

$node->safe_psql('postgres', q{
	CREATE EXTENSION inventory_events;
	INSERT INTO inventory_events.item (sku) SELECT 'S' || g FROM generate_series(1, 10) g;
	INSERT INTO inventory_events.location (code) VALUES ('W1');
	INSERT INTO inventory_events.channel (code) VALUES ('good1'), ('bad'), ('good2');
	INSERT INTO inventory_events.channel_location (channel, location)
	SELECT c, 'W1' FROM unnest(ARRAY['good1', 'bad', 'good2']) c;
	-- The poison: any publication for channel "bad" fails (the publisher
	-- writes publications without SQL: a DBA's CHECK is enforced).
	ALTER TABLE inventory_events.publication ADD CONSTRAINT connector_table_broken CHECK (channel <> 'bad');
});

ok($node->poll_query_until('postgres', q{SELECT pid IS NOT NULL FROM inventory_events.publisher_status()}),
	'the publisher runs');
my $pid = $node->safe_psql('postgres', q{SELECT pid FROM inventory_events.publisher_status()});

# 1. Changes to every sku, in several transactions.
for my $round (1 .. 5)
{
	$node->safe_psql('postgres', q{
		SELECT count(inventory_events.append('S' || g, 'W1', 'received', g)) FROM generate_series(1, 10) g});
}
my $healthy_in_sync = q{
	SELECT bool_and(s.available = inventory_events.channel_availability(s.channel, s.sku)) AND count(*) = 20
	  FROM inventory_events.channel_shown s WHERE s.channel IN ('good1', 'good2')};
ok($node->poll_query_until('postgres', $healthy_in_sync), 'the healthy channels show every sku\'s current value');
ok($node->poll_query_until('postgres', q{
	SELECT failures >= 3 FROM inventory_events.worker_error WHERE task = 'publish' AND channel = 'bad'}),
	'the poisoned channel keeps failing, each failure recorded');
my ($failures, $runs, $backoff) = split /\|/, $node->safe_psql('postgres', q{
	SELECT w.failures, s.runs, extract(epoch FROM w.retry_at - w.last_seen)
	  FROM inventory_events.worker_error w, inventory_events.publisher_status() s
	 WHERE w.task = 'publish' AND w.channel = 'bad'});
cmp_ok($failures, '<', $runs, "tried with a backoff: $failures tries in $runs publisher runs");
cmp_ok($backoff, '>=', 4, "the backoff doubles ($backoff s after $failures failures)");
is($node->safe_psql('postgres', q{
	SELECT pending_skus, lag_seconds > 0, last_error FROM inventory_events.channel_health WHERE channel = 'bad'}),
	'10|t|new row for relation "publication" violates check constraint "connector_table_broken"',
	'channel_health: its skus pending, its lag, its last error');
is($node->safe_psql('postgres', q{
	SELECT string_agg(channel || ':' || pending_skus || ':' || failures, ' ' ORDER BY channel)
	  FROM inventory_events.channel_health WHERE channel <> 'bad'}),
	'good1:0:0 good2:0:0', 'the healthy channels: nothing pending, no failure');
is($node->safe_psql('postgres', q{SELECT pid FROM inventory_events.publisher_status()}), $pid,
	'the worker never restarted');

# 2. Cured: it catches up at its next retry.
$node->safe_psql('postgres', q{ALTER TABLE inventory_events.publication DROP CONSTRAINT connector_table_broken});
ok($node->poll_query_until('postgres', q{
	SELECT bool_and(s.available = inventory_events.channel_availability(s.channel, s.sku)) AND count(*) = 10
	  FROM inventory_events.channel_shown s WHERE s.channel = 'bad'}),
	'cured, the channel catches up');
is($node->safe_psql('postgres', q{
	SELECT failures || ' ' || (last_error IS NOT NULL) || ' ' || pending_skus FROM inventory_events.channel_health
	 WHERE channel = 'bad'}),
	'0 true 0', 'its streak is cleared, the last error kept for the record');
is($node->safe_psql('postgres', q{
	SELECT string_agg(channel || ':' || (count = max)::text, ' ' ORDER BY channel) FROM (
	  SELECT channel, count(*), max(seq) FROM inventory_events.publication GROUP BY channel) x}),
	'bad:true good1:true good2:true', 'every channel\'s sequence gap-free');

# 3. Expiry: one reservation's release fails, the other's goes through.
# A DBA's CHECK refuses releasing cart-poison (sku S2): the lifecycle writes
# allocations directly (no triggers fire), their constraints checked.
$node->safe_psql('postgres', q{
	ALTER TABLE inventory_events.allocation ADD CONSTRAINT poison_release
		CHECK (released = 0 OR sku <> 'S2') NOT VALID;
	SELECT count(*) FROM inventory_events.reserve('good1', 'S1', 1, 'cart-ok', expires_at => now() + interval '1 second');
	SELECT count(*) FROM inventory_events.reserve('good1', 'S2', 1, 'cart-poison', expires_at => now() + interval '1 second');
});
ok($node->poll_query_until('postgres', q{
	SELECT count(*) = 1 FROM inventory_events.event WHERE ref = 'cart-ok' AND event_type = 'released'}),
	'the expired reservation next to the failing one is released');
ok($node->poll_query_until('postgres', q{
	SELECT message LIKE '%violates check constraint "poison_release"%' AND detail LIKE '%cart-poison%'
	  FROM inventory_events.worker_error WHERE task = 'expire' AND channel = 'good1'}),
	'the failing expiry is recorded (task expire), naming the reservation');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM inventory_events.event WHERE ref = 'cart-poison' AND event_type = 'released'}),
	'0', 'nothing of the failing release is applied');
$node->safe_psql('postgres', q{SELECT inventory_events.append('S3', 'W1', 'received', 1)});
ok($node->poll_query_until('postgres', $healthy_in_sync), 'publication goes on meanwhile');

# 4. The whole step fails (its checkpoint cannot be written): recorded,
#    retried with a backoff by the same process, then cleared.
$node->safe_psql('postgres', q{
	ALTER TABLE inventory_events.allocation DROP CONSTRAINT poison_release;
	CREATE FUNCTION public.poison_step() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		RAISE EXCEPTION 'the checkpoint is broken';
	END $$;
	CREATE TRIGGER poison_step BEFORE UPDATE ON inventory_events.publisher_checkpoint
		FOR EACH ROW EXECUTE FUNCTION public.poison_step();
	SELECT inventory_events.append('S4', 'W1', 'received', 1);
});
ok($node->poll_query_until('postgres', q{
	SELECT failures >= 1 AND message = 'the checkpoint is broken'
	  FROM inventory_events.worker_error WHERE task = 'publish' AND channel = ''}),
	'a failing step is recorded (channel \'\')');
# Commits keep waking the worker: the backoff holds anyway, and expiry goes on.
my $t0 = time();
$node->safe_psql('postgres', q{
	SELECT count(*) FROM inventory_events.reserve('good1', 'S5', 1, 'cart-late', expires_at => now() + interval '1 second')});
for (1 .. 12)
{
	$node->safe_psql('postgres', q{SELECT inventory_events.append('S6', 'W1', 'received', 1)});
	select(undef, undef, undef, 0.3);
}
my ($step_failures, $step_backoff) = split /\|/, $node->safe_psql('postgres', q{
	SELECT failures, extract(epoch FROM retry_at - last_seen) FROM inventory_events.worker_error
	 WHERE task = 'publish' AND channel = ''});
my $elapsed = time() - $t0 + 1;
# Tries at 0, 1, 3, 7, 15 ... s: at most 2 + log2(elapsed) of them (without the
# backoff, one per commit).
my $bound = 2 + int(log($elapsed) / log(2));
cmp_ok($step_failures, '<=', $bound,
	"woken by 12 commits in ${elapsed} s, the failing step was tried $step_failures times (backoff now $step_backoff s)");
ok($node->poll_query_until('postgres', q{
	SELECT count(*) = 1 FROM inventory_events.event WHERE ref = 'cart-late' AND event_type = 'released'}),
	'expiry runs while the publisher step fails');
is($node->safe_psql('postgres', q{SELECT pid FROM inventory_events.publisher_status()}), $pid,
	'by the same worker process');
like($node->safe_psql('postgres', q{SELECT state FROM inventory_events.publisher_status()}),
	qr/^(publish\(\) failed: see inventory_events\.worker_error|idle)$/, 'publisher_status() says so');
$node->safe_psql('postgres', q{DROP TRIGGER poison_step ON inventory_events.publisher_checkpoint});
ok($node->poll_query_until('postgres', q{
	SELECT cleared_at IS NOT NULL FROM inventory_events.worker_error WHERE task = 'publish' AND channel = ''}),
	'cured, the step\'s streak is cleared');
ok($node->poll_query_until('postgres', $healthy_in_sync), 'and publication resumes');
is($node->safe_psql('postgres', q{SELECT count(*) FROM inventory_events.verify()}), '0', 'verify() is clean');

# 5. A sku held by another transaction: expiry leaves that sku's reservations
#    to a later run and releases the others, past more of the held sku's than
#    one run takes; it holds nothing meanwhile (a
#    reservation of another expired sku does not wait), and a holder that
#    calls publish() does not deadlock with it. (Expiry ran inside the
#    publisher step's transaction and took all its skus' locks at once,
#    waiting: the holder's publish() waited for the step's checkpoint lock
#    while the step waited for the holder's sku: 40P01.)
# More reservations of the held sku than one run takes (1,000): the run goes
# on past them to the other one.
$node->safe_psql('postgres', q{
	SELECT inventory_events.append('S7', 'W1', 'received', 1001);
	SELECT count(r.*) FROM generate_series(1, 1001) g,
	       inventory_events.reserve('good1', 'S7', 1, 'cart-held-' || g, expires_at => now() + interval '2 seconds') r;
	SELECT count(*) FROM inventory_events.reserve('good1', 'S8', 1, 'cart-free', expires_at => now() + interval '2 seconds');
});
my $holder = $node->background_psql('postgres');
# A receipt takes its sku's lock, to the end of the transaction.
$holder->query_safe(q{BEGIN; SELECT inventory_events.append('S7', 'W1', 'received', 1)});
ok($node->poll_query_until('postgres', q{
	SELECT count(*) = 1 FROM inventory_events.event WHERE ref = 'cart-free' AND event_type = 'released'}),
	'the other expired reservation is released while S7 is held');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM inventory_events.event WHERE ref LIKE 'cart-held-%' AND event_type = 'released'}),
	'0', 'those of the held sku wait');
my ($published, $publish_failed) = $holder->query(q{SELECT count(*) FROM inventory_events.publish()});
is($publish_failed, 0, 'the holder\'s publish() does not deadlock with the worker');
$holder->query_safe('COMMIT');
$holder->quit;
ok($node->poll_query_until('postgres', q{
	SELECT count(*) = 1001 FROM inventory_events.event WHERE ref LIKE 'cart-held-%' AND event_type = 'released'}),
	'released by later runs once the sku is free');
is($node->safe_psql('postgres', q{SELECT count(*) FROM inventory_events.verify()}), '0', 'verify() is clean');
is($node->safe_psql('postgres', q{SELECT pid FROM inventory_events.publisher_status()}), $pid,
	'the worker never restarted');

$node->stop;
done_testing();
