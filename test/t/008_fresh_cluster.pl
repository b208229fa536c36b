# The log moves to clusters whose transaction ids have nothing to do with
# the ones stored in it:
# - a dump restored into a new initdb, whose transaction counter is some
#   twenty billion below the source's (pg_resetwal -e on the source), while
#   the target's publisher is running: events_after() catches up from the
#   start and from a checkpoint taken before the dump; the publisher waits
#   (the log is not at home yet) until the first write adopts the log, then
#   publishes with sequences continuing the old ones without a gap; the new
#   events' xids are above every restored one; a new logical slot decodes
#   them; appends and reservations work; verify() is empty.
# - a logical replication subscriber (built-in pgoutput) of the log, whose
#   initial copy arrives out of version order: its events get its own
#   transaction ids, events_after() there works from the start and from a
#   checkpoint taken there, its stock equals the publisher's, verify() is
#   empty, and its own publisher publishes the replicated changes.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IETest;

# The checkpoint after the last event events_after() returns now.
sub last_checkpoint
{
	my ($n) = @_;
	my @rows = split /\n/, $n->safe_psql('postgres', q{
		SELECT next_checkpoint FROM inventory_events.events_after('0:0', 100000)});
	return $rows[-1];
}

# The source: its transaction ids moved to epoch 5 (about 21.5 billion).
my $source = ie_node('source');
command_ok(['pg_resetwal', '-e', '5', $source->data_dir], 'pg_resetwal -e 5 on the source');
$source->start;
$source->safe_psql('postgres', q{
	CREATE EXTENSION inventory_events;
	SET search_path = inventory_events;
	INSERT INTO item (sku) SELECT 'S' || g FROM generate_series(1, 20) g;
	INSERT INTO location (code) VALUES ('W1'), ('W2');
	INSERT INTO channel (code) VALUES ('web');
	INSERT INTO channel_location (channel, location) VALUES ('web', 'W1'), ('web', 'W2');
	SELECT count(append('S' || g, 'W1', 'received', 10)) FROM generate_series(1, 20) g;
	SELECT count(*) FROM reserve('web', 'S1', 3, 'so-1');
	SELECT count(*) FROM pick('web', 'so-1');
});
cmp_ok($source->safe_psql('postgres', 'SELECT min(xid)::text::numeric FROM inventory_events.event'), '>', 5 * 2**32,
	'the source\'s log transaction ids are above 5 x 2^32');
$source->poll_query_until('postgres', q{
	SELECT count(*) = 0 FROM inventory_events.publication_pending}) or die 'the source publisher did not run';
# A consumer's checkpoint, then more events.
my $checkpoint = last_checkpoint($source);
$source->safe_psql('postgres', q{
	SELECT inventory_events.append('S2', 'W2', 'received', 4);
	SELECT inventory_events.append('S3', 'W2', 'received', 5);
	SELECT count(*) FROM inventory_events.reserve('web', 'S4', 2, 'so-2');
});
$source->poll_query_until('postgres', q{
	SELECT count(*) = 0 FROM inventory_events.publication_pending}) or die 'the source publisher did not run';
my $last_checkpoint = last_checkpoint($source);
my $all_ids = $source->safe_psql('postgres', q{
	SELECT string_agg(id::text, ',') FROM inventory_events.events_after('0:0', 100000)});
my $later_ids = $source->safe_psql('postgres', qq{
	SELECT string_agg(id::text, ',' ORDER BY id) FROM inventory_events.events_after('$checkpoint', 100000)});
is(scalar(split /,/, $later_ids), 3, 'three events after the consumer\'s checkpoint');
my $last_seq = $source->safe_psql('postgres', q{SELECT last_seq FROM inventory_events.channel_publisher WHERE channel = 'web'});
my $dump = $source->basedir . '/source.custom';
command_ok(['pg_dump', '-h', $source->host, '-p', $source->port, '-Fc', '-f', $dump, 'postgres'], 'pg_dump -Fc');

# ---------------------------------------------------------------------------
# A new cluster; its publisher serves the database the dump is restored into.
# ---------------------------------------------------------------------------
my $target = ie_node('target', allows_streaming => 'logical');
$target->append_conf('postgresql.conf', 'inventory_events.publisher_naptime = 100');
$target->start;
$target->safe_psql('postgres', 'CREATE EXTENSION inventory_events');
# (A new log: the publisher waits for its first write.)
$target->poll_query_until('postgres', q{
	SELECT state LIKE 'waiting for the first write%' FROM inventory_events.publisher_status() WHERE database = 'postgres'})
  or die 'the target publisher does not run';
$target->safe_psql('postgres', 'DROP EXTENSION inventory_events; DROP SCHEMA inventory_events');
{
	my ($stdout, $stderr) = run_command(['pg_restore', '-h', $target->host, '-p', $target->port, '-d', 'postgres', $dump]);
	is($stderr, '', 'restored into the new cluster while its publisher runs');
}
cmp_ok($target->safe_psql('postgres', 'SELECT pg_current_xact_id()::text::numeric'), '<', 2**32,
	'the new cluster\'s transaction ids are far below the restored ones');
is($target->safe_psql('postgres', 'SELECT count(*) FROM inventory_events.verify()'), '0', 'verify() is empty');
is($target->safe_psql('postgres', q{
	SELECT string_agg(id::text, ',') FROM inventory_events.events_after('0:0', 100000)}),
	$all_ids, 'events_after() from the start: every event, in the source\'s order');
is($target->safe_psql('postgres', qq{
	SELECT string_agg(id::text, ',' ORDER BY id) FROM inventory_events.events_after('$checkpoint', 100000)}),
	$later_ids, 'events_after() from the checkpoint taken before the dump: exactly the later events');
is($target->safe_psql('postgres', 'SELECT inventory_events.log_adopted()'), 'f', 'not at home before the first write');
$target->poll_query_until('postgres', q{
	SELECT state LIKE 'waiting for the first write%' FROM inventory_events.publisher_status() WHERE database = 'postgres'})
  or die 'the publisher is not waiting';
pass('the publisher waits for the first write');
is($target->safe_psql('postgres', q{SELECT last_seq FROM inventory_events.channel_publisher WHERE channel = 'web'}),
	$last_seq, 'and has published nothing');

# The first write adopts the log.
my $slot_sql = q{SELECT pg_create_logical_replication_slot('after_restore', 'inventory_events')};
$target->safe_psql('postgres', $slot_sql);
my $new_id = $target->safe_psql('postgres', q{SELECT inventory_events.append('S5', 'W2', 'received', 7)});
is($target->safe_psql('postgres', q{
	SELECT home || ' ' || (xid_offset > 5 * 4294967296 - 1000000) FROM inventory_events.log_home
	 WHERE system_identifier = (SELECT system_identifier FROM pg_control_system()) AND home > 0}),
	'1 true', 'the first write adopted the log as home 1, with an offset above the restored ids');
is($target->safe_psql('postgres', qq{
	SELECT xid > ALL (SELECT xid FROM inventory_events.event WHERE id <> $new_id) FROM inventory_events.event
	 WHERE id = $new_id}), 't', 'the new event\'s xid is above every restored one');
is($target->safe_psql('postgres', qq{
	SELECT string_agg(id::text, ',' ORDER BY id) FROM inventory_events.events_after('$checkpoint', 100000)}),
	"$later_ids,$new_id", 'the old checkpoint gives the later events, then the new one');
is($target->safe_psql('postgres', qq{
	SELECT string_agg(id::text, ',') FROM inventory_events.events_after('$last_checkpoint', 100000)}),
	$new_id, 'the source\'s last checkpoint gives the new event only');
like($target->safe_psql('postgres', q{
	SELECT string_agg(data, E'\n') FROM pg_logical_slot_get_changes('after_restore', NULL, NULL)}),
	qr/"event_id":$new_id\b/, 'a new logical slot decodes the new event');
$target->poll_query_until('postgres', q{
	SELECT count(*) = 0 FROM inventory_events.publication_pending}) or die 'the publisher did not publish';
is($target->safe_psql('postgres', q{
	SELECT string_agg(seq::text, ',' ORDER BY seq) FROM inventory_events.publication WHERE channel = 'web'}),
	join(',', 1 .. $target->safe_psql('postgres', q{SELECT last_seq FROM inventory_events.channel_publisher WHERE channel = 'web'})),
	'the publisher carries on: sequences gap-free');
is($target->safe_psql('postgres', qq{
	SELECT min(seq) || ' ' || bool_or(sku = 'S5' AND available = inventory_events.channel_availability('web', 'S5'))
	  FROM inventory_events.publication WHERE channel = 'web' AND seq > $last_seq}),
	($last_seq + 1) . ' true', 'the new changes are published from the next sequence number on');
is($target->safe_psql('postgres', q{SELECT count(*) FROM inventory_events.reserve('web', 'S5', 2, 'after-restore')}), '1',
	'a reservation works');
is($target->safe_psql('postgres', 'SELECT count(*) FROM inventory_events.verify()'), '0', 'verify() still empty');

# ---------------------------------------------------------------------------
# A logical replication subscriber of the source's log.
# ---------------------------------------------------------------------------
$source->safe_psql('postgres', q{
	SET inventory_events.allow_history_rewrite = on;
	UPDATE inventory_events.event SET reason = reason WHERE sku = 'S1' AND location = 'W1' AND version = 1;
	RESET inventory_events.allow_history_rewrite;
	CREATE PUBLICATION ie_pub FOR TABLE inventory_events.item, inventory_events.item_uom,
	    inventory_events.location, inventory_events.lot, inventory_events.event
	    WITH (publish_via_partition_root = true);
});
my $subscriber = ie_node('subscriber');
$subscriber->append_conf('postgresql.conf', 'inventory_events.publisher_naptime = 100');
$subscriber->start;
$subscriber->safe_psql('postgres', q{
	CREATE EXTENSION inventory_events;
	INSERT INTO inventory_events.channel (code) VALUES ('shop');
});
$subscriber->safe_psql('postgres',
	"CREATE SUBSCRIPTION ie_sub CONNECTION '" . $source->connstr . " dbname=postgres' PUBLICATION ie_pub");
$source->wait_for_catchup('ie_sub');
$subscriber->poll_query_until('postgres', q{
	SELECT count(*) = 0 FROM pg_subscription_rel WHERE srsubstate NOT IN ('r', 's')}) or die 'no initial sync';
my $stock_sql = q{SELECT string_agg((sku, location, lot, available, reserved, picked, on_hand, version)::text, ';'
                   ORDER BY sku, location, lot) FROM inventory_events.stock};
is($subscriber->safe_psql('postgres', $stock_sql), $source->safe_psql('postgres', $stock_sql),
	'subscriber: the initial copy (out of version order) derives the publisher\'s stock');
is($subscriber->safe_psql('postgres', 'SELECT count(*) FROM inventory_events.verify()'), '0', 'subscriber: verify() empty');
cmp_ok($subscriber->safe_psql('postgres', 'SELECT max(xid)::text::numeric FROM inventory_events.event'), '<', 2**32,
	'subscriber: the events carry its own transaction ids, not the publisher\'s');
is($subscriber->safe_psql('postgres', 'SELECT count(*) FROM inventory_events.events_after(\'0:0\', 100000)'),
	$source->safe_psql('postgres', 'SELECT count(*) FROM inventory_events.event'),
	'subscriber: events_after() from the start returns every event');
my $sub_checkpoint = last_checkpoint($subscriber);
# Its own channel, sourcing from the replicated stock, and its own publisher.
$subscriber->safe_psql('postgres', q{
	INSERT INTO inventory_events.channel_location (channel, location) VALUES ('shop', 'W1');
	SELECT inventory_events.republish('shop');
});
my @applied = split /\n/, $source->safe_psql('postgres', q{
	SELECT inventory_events.append('S6', 'W1', 'received', 3);
	SELECT inventory_events.append('S7', 'W1', 'received', 4);
});
$source->wait_for_catchup('ie_sub');
is($subscriber->safe_psql('postgres', qq{
	SELECT string_agg(id::text, ',') FROM inventory_events.events_after('$sub_checkpoint', 100000)}),
	join(',', @applied), 'subscriber: events_after() from its own checkpoint gives exactly the applied events, in order');
is($subscriber->safe_psql('postgres', $stock_sql), $source->safe_psql('postgres', $stock_sql),
	'subscriber: stock equals the publisher\'s');
ok($subscriber->poll_query_until('postgres', q{
	SELECT available = 13 FROM inventory_events.publication WHERE channel = 'shop' AND sku = 'S6' ORDER BY seq DESC LIMIT 1}),
	'subscriber: its own publisher publishes the replicated change');
is($subscriber->safe_psql('postgres', 'SELECT count(*) FROM inventory_events.verify()'), '0',
	'subscriber: verify() empty at the end');

done_testing();
