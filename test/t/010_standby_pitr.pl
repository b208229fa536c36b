# Physical replication and point-in-time recovery:
# - a streaming hot standby, caught up and with no other activity, returns
#   from every reading function exactly what the primary returns (stock and
#   its views, channel_stock, reservation_status, exception_aging less its
#   age columns, channel_availability and channel_position of every channel
#   and sku, availability_timeline of the future-view channel, position_as_of
#   and sku_position_as_of at a time between events, publications_since of
#   every channel, events_after from the start and from a checkpoint taken
#   mid-way, verify() empty, log_adopted() true);
# - every function that writes refuses on the standby, before it locks or
#   reads anything, with SQLSTATE 25006, "cannot execute
#   inventory_events.<function>() on a standby server" and a hint naming the
#   primary's host and port, an idempotent retry included; on the primary a
#   read-only transaction refuses append() with 25006 too;
# - a node recovered from a base backup and the WAL archive to a named
#   restore point has the event before it and not the one after it, verify()
#   is empty, the log is at home (log_adopted(), no adoption), its publisher
#   carries on with the recovered sequences (the next numbers, no gap), and a
#   new logical slot with the inventory_events plugin decodes the first
#   event appended after the recovery.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IETest;

# ---------------------------------------------------------------------------
# 1. A streaming hot standby reads what the primary reads.
# ---------------------------------------------------------------------------

my $primary = ie_node('primary', allows_streaming => 1);
$primary->start;
# publish() runs by hand here, and nothing but this test writes: the worker
# is stopped (its stop holds until a restart).
$primary->safe_psql('postgres', q{
	CREATE EXTENSION inventory_events;
	SELECT inventory_events.publisher_stop();
});
ok($primary->poll_query_until('postgres', q{
	SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'inventory_events publisher'}),
	'the primary\'s publisher is stopped (publish() is run by hand)');
$primary->safe_psql('postgres', q{
	INSERT INTO inventory_events.item (sku, description, lot_controlled) VALUES
		('WIDGET', 'Widget, blue', false), ('GADGET', 'Gadget', false),
		('SERUM', 'Serum 50 ml', true), ('GIFTSET', 'Widget and gadget gift set', false);
	INSERT INTO inventory_events.kit_component (kit, component, qty) VALUES ('GIFTSET', 'WIDGET', 2), ('GIFTSET', 'GADGET', 1);
	INSERT INTO inventory_events.lot (sku, lot, expires_on) VALUES
		('SERUM', 'L-FRESH', current_date + 90), ('SERUM', 'L-OLD', current_date - 10);
	INSERT INTO inventory_events.location (code, kind) VALUES ('W1', 'warehouse'), ('W2', 'store');
	INSERT INTO inventory_events.channel (code, kind) VALUES ('web', 'storefront');
	INSERT INTO inventory_events.channel (code, kind, future_view, allow_backorders, horizon)
		VALUES ('b2b', 'b2b_portal', true, true, '60 days');
	INSERT INTO inventory_events.channel_location (channel, location, priority) VALUES
		('web', 'W1', 0), ('web', 'W2', 1), ('b2b', 'W1', 0), ('b2b', 'W2', 0);
	CREATE ROLE connector;
});

# The standby starts from a backup of the master data; the events reach it
# by streaming.
$primary->backup('standby_base');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'standby_base', has_streaming => 1);
$standby->append_conf('postgresql.conf', "hot_standby = on\n");
$standby->start;

# First batch: receipts (one into an expired lot), purchase orders, a
# transfer, safety stock.
$primary->safe_psql('postgres', q{
	SELECT inventory_events.append('WIDGET', 'W1', 'received', 100, ref => 'GRN-1');
	SELECT inventory_events.append('WIDGET', 'W2', 'received', 40, ref => 'GRN-2');
	SELECT inventory_events.append('GADGET', 'W1', 'received', 30, ref => 'GRN-3');
	SELECT inventory_events.append('SERUM', 'W1', 'received', 50, lot => 'L-FRESH');
	SELECT inventory_events.append('SERUM', 'W1', 'received', 20, lot => 'L-OLD');
	SELECT inventory_events.append('WIDGET', 'W2', 'safety_stock_set', 5);
	SELECT inventory_events.append('WIDGET', 'W1', 'inbound_expected', 60, ref => 'PO-1',
	                               expected_date => current_date + 5);
	SELECT inventory_events.append('GADGET', 'W2', 'inbound_expected', 25, ref => 'PO-2',
	                               expected_date => current_date + 10);
	SELECT count(*) FROM inventory_events.transfer('WIDGET', 'W1', 'W2', 15, 'T-1', expected_date => current_date + 2);
	SELECT inventory_events.receive_transfer('WIDGET', 'W2', 5, 'T-1', idempotency_key => 'rt-1');
});
# A checkpoint of a catch-up reader and a business time, both between the
# two batches.
my $midway = $primary->safe_psql('postgres', q{
	SELECT (array_agg(next_checkpoint ORDER BY ordinality DESC))[1]
	  FROM inventory_events.events_after('0:0') WITH ORDINALITY});
like($midway, qr/^\d+:\d+$/, "a checkpoint mid-way ($midway)");
my $between = $primary->safe_psql('postgres', 'SELECT clock_timestamp()');

# Second batch: reservations (one partly backordered), a pick, a pick short
# (an exception), a return, then the publisher by hand.
$primary->safe_psql('postgres', q{
	SELECT count(*) FROM inventory_events.reserve('web', 'WIDGET', 10, 'ORD-1');
	SELECT count(*) FROM inventory_events.reserve('web', 'GADGET', 5, 'ORD-2');
	SELECT count(*) FROM inventory_events.reserve('web', 'WIDGET', 4, 'ORD-3');
	SELECT count(*) FROM inventory_events.reserve('b2b', 'SERUM', 8, 'B2B-1');
	SELECT count(*) FROM inventory_events.reserve('b2b', 'GADGET', 30, 'B2B-2');
	SELECT count(*) FROM inventory_events.reserve_lines('[{"channel": "web", "sku": "GIFTSET", "qty": 2, "ref": "ORD-4"}]');
	SELECT count(*) FROM inventory_events.pick('web', 'ORD-1');
	SELECT count(*) FROM inventory_events.pick_short('web', 'ORD-2', 2, reason => 'bin empty');
	SELECT inventory_events.receive_return('GADGET', 'W1', 1, 'RMA-1', channel => 'web');
});
my $published = $primary->safe_psql('postgres', 'SELECT publications FROM inventory_events.publish()');
cmp_ok($published, '>', 0, "publish() by hand made publications ($published)");
$primary->wait_for_catchup($standby);

my @reads = (
	[ 'stock', q{SELECT * FROM inventory_events.stock ORDER BY sku, location, lot} ],
	[ 'stock_by_location', q{SELECT * FROM inventory_events.stock_by_location ORDER BY sku, location} ],
	[ 'stock_by_sku', q{SELECT * FROM inventory_events.stock_by_sku ORDER BY sku} ],
	[ 'channel_stock', q{SELECT * FROM inventory_events.channel_stock ORDER BY channel, sku} ],
	[ 'reservation_status', q{SELECT * FROM inventory_events.reservation_status ORDER BY id} ],
	[ 'exception_aging (less age, age_bucket)',
	  q{SELECT id, kind, sku, location, channel, ref, detail, created_at FROM inventory_events.exception_aging ORDER BY id} ],
	[ 'channel_availability and channel_position of every channel and sku',
	  q{SELECT c.code, i.sku, inventory_events.channel_availability(c.code, i.sku), p.*
	      FROM inventory_events.channel c CROSS JOIN inventory_events.item i
	     CROSS JOIN LATERAL inventory_events.channel_position(c.code, i.sku) p
	     ORDER BY c.code, i.sku} ],
	[ 'availability_timeline on the b2b channel',
	  q{SELECT i.sku, t.* FROM inventory_events.item i
	     CROSS JOIN LATERAL inventory_events.availability_timeline('b2b', i.sku) t
	     WHERE NOT EXISTS (SELECT FROM inventory_events.kit_component k WHERE k.kit = i.sku)
	     ORDER BY i.sku, t.available_on} ],
	[ 'position_as_of every stream, between the batches',
	  qq{SELECT s.sku, s.location, s.lot, inventory_events.position_as_of(s.sku, s.location, '$between', s.lot)
	       FROM inventory_events.stock s ORDER BY s.sku, s.location, s.lot} ],
	[ 'sku_position_as_of every sku, between the batches',
	  qq{SELECT i.sku, p.* FROM inventory_events.item i
	      CROSS JOIN LATERAL inventory_events.sku_position_as_of(i.sku, '$between') p
	      ORDER BY i.sku, p.location, p.lot} ],
	[ 'publications_since(web, 0)', q{SELECT * FROM inventory_events.publications_since('web', 0)} ],
	[ 'publications_since(b2b, 0)', q{SELECT * FROM inventory_events.publications_since('b2b', 0)} ],
	[ "events_after('0:0')", q{SELECT * FROM inventory_events.events_after('0:0')} ],
	[ "events_after('$midway')", qq{SELECT * FROM inventory_events.events_after('$midway')} ],
);
my %on_primary = map { $_->[0] => $primary->safe_psql('postgres', $_->[1]) } @reads;
is(join(', ', grep { $on_primary{$_} eq '' } map { $_->[0] } @reads), '',
	'every read query returns rows on the primary');
for my $r (@reads)
{
	is($standby->safe_psql('postgres', $r->[1]), $on_primary{ $r->[0] },
		"on the standby, $r->[0] is what the primary returns");
}
# The time travel reads something else than the present.
isnt($on_primary{'position_as_of every stream, between the batches'},
	$primary->safe_psql('postgres', q{SELECT sku, location, lot, inventory_events.position_of(s) FROM inventory_events.stock s ORDER BY 1, 2, 3}),
	'positions between the batches differ from the current ones');
for my $node ($primary, $standby)
{
	my $name = $node == $primary ? 'primary' : 'standby';
	is($node->safe_psql('postgres', 'SELECT count(*) FROM inventory_events.verify()'), '0',
		"verify() is empty on the $name");
	is($node->safe_psql('postgres', 'SELECT inventory_events.log_adopted()'), 't',
		"log_adopted() is true on the $name");
}

# ---------------------------------------------------------------------------
# 2. Writing functions refuse on the standby, naming the primary.
# ---------------------------------------------------------------------------

# SQLSTATE, message and hint of the error a statement raises ("no error" if
# it succeeds), from psql with VERBOSITY verbose.
sub refusal
{
	my ($node, $sql) = @_;
	my ($rc, $out, $err) = $node->psql('postgres', "\\set VERBOSITY verbose\n$sql");
	return "no error: $out" if $rc == 0;
	my ($code, $msg) = $err =~ /^(?:psql:\S+ )?ERROR:  ([0-9A-Z]{5}): (.*)$/m;
	my ($hint) = $err =~ /^HINT:  (.*)$/m;
	return defined $code ? join("\n", $code, $msg, $hint // '(no hint)') : $err;
}

my $exception_id = $primary->safe_psql('postgres', 'SELECT min(id) FROM inventory_events.exception');
my @writers = (
	[ 'append', q{SELECT inventory_events.append('WIDGET', 'W1', 'received', 1)} ],
	[ 'ingest', q{SELECT * FROM inventory_events.ingest('[{"sku": "WIDGET", "location": "W1", "event_type": "received", "qty": 1}]')} ],
	[ 'ingest_staged', q{SELECT * FROM inventory_events.ingest_staged()} ],
	[ 'reserve', q{SELECT * FROM inventory_events.reserve('web', 'WIDGET', 1, 'ORD-9')} ],
	[ 'reserve_lines', q{SELECT * FROM inventory_events.reserve_lines('[{"channel": "web", "sku": "WIDGET", "qty": 1, "ref": "ORD-10"}]')} ],
	[ 'fill_backorders', q{SELECT inventory_events.fill_backorders()} ],
	[ 'release', q{SELECT * FROM inventory_events.release('web', 'ORD-3')} ],
	[ 'pick', q{SELECT * FROM inventory_events.pick('web', 'ORD-3')} ],
	[ 'ship', q{SELECT * FROM inventory_events.ship('web', 'ORD-1')} ],
	[ 'pick_short', q{SELECT * FROM inventory_events.pick_short('web', 'ORD-3', 1)} ],
	[ 'expire_reservations', q{SELECT inventory_events.expire_reservations()} ],
	[ 'transfer', q{SELECT * FROM inventory_events.transfer('WIDGET', 'W1', 'W2', 1, 'T-2')} ],
	[ 'receive_transfer', q{SELECT inventory_events.receive_transfer('WIDGET', 'W2', 5, 'T-1')} ],
	[ 'receive_po', q{SELECT * FROM inventory_events.receive_po('WIDGET', 'W1', 10, 'PO-1')} ],
	[ 'receive_return', q{SELECT inventory_events.receive_return('WIDGET', 'W1', 1, 'RMA-2')} ],
	[ 'dispose_return', q{SELECT inventory_events.dispose_return('GADGET', 'W1', 1, 'restock', 'RMA-1')} ],
	[ 'rebuild', q{SELECT inventory_events.rebuild()} ],
	[ 'publish', q{SELECT * FROM inventory_events.publish()} ],
	[ 'republish', q{SELECT inventory_events.republish('web')} ],
	[ 'resolve_exception', qq{SELECT inventory_events.resolve_exception($exception_id)} ],
	[ 'grant_access', q{SELECT inventory_events.grant_access('connector', 'reader')} ],
);
my $hint = sprintf('Run it on the primary server, host "%s" port %d.', $primary->host, $primary->port);
for my $w (@writers)
{
	is(refusal($standby, $w->[1]),
		"25006\ncannot execute inventory_events.$w->[0]() on a standby server\n$hint",
		"$w->[0]() on the standby: 25006, naming the primary");
}
# A retry of a receipt already recorded (its idempotency key) is a write
# like any other: refused first, not answered from the log.
is(refusal($standby, q{SELECT inventory_events.receive_transfer('WIDGET', 'W2', 5, 'T-1', idempotency_key => 'rt-1')}),
	"25006\ncannot execute inventory_events.receive_transfer() on a standby server\n$hint",
	'receive_transfer() retried with a recorded idempotency key on the standby: 25006 too');
$primary->wait_for_catchup($standby);
is($standby->safe_psql('postgres', $reads[0][1]), $primary->safe_psql('postgres', $reads[0][1]),
	'nothing changed: the stock on the standby is still the primary\'s');

is(refusal($primary, "BEGIN READ ONLY;\nSELECT inventory_events.append('WIDGET', 'W1', 'received', 1);"),
	"25006\ncannot execute inventory_events.append() in a read-only transaction\n(no hint)",
	'append() in a read-only transaction on the primary: 25006');
# Refused before any lock is taken: a read-only transaction does not wait
# behind a writer that holds the same idempotency key.
my $writer = $primary->background_psql('postgres');
$writer->query_safe(q{BEGIN; SELECT inventory_events.receive_transfer('WIDGET', 'W2', 1, 'T-1', idempotency_key => 'rt-2')});
is(refusal($primary, "SET lock_timeout = '1s';\nBEGIN READ ONLY;\n"
		. "SELECT inventory_events.receive_transfer('WIDGET', 'W2', 1, 'T-1', idempotency_key => 'rt-2');"),
	"25006\ncannot execute inventory_events.receive_transfer() in a read-only transaction\n(no hint)",
	'receive_transfer() in a read-only transaction is refused at once, not after a writer\'s idempotency lock');
$writer->query_safe('ROLLBACK');
$writer->quit;

$standby->stop;
$primary->stop;

# ---------------------------------------------------------------------------
# 3. Point-in-time recovery to a restore point.
# ---------------------------------------------------------------------------

my $origin = ie_node('origin', has_archiving => 1, allows_streaming => 1);
$origin->start;
$origin->safe_psql('postgres', q{
	CREATE EXTENSION inventory_events;
	INSERT INTO inventory_events.item (sku) VALUES ('APPLE'), ('PEAR'), ('PLUM');
	INSERT INTO inventory_events.location (code) VALUES ('W1'), ('W2');
	INSERT INTO inventory_events.channel (code) VALUES ('web');
	INSERT INTO inventory_events.channel (code, allocation_pct) VALUES ('market', 50);
	INSERT INTO inventory_events.channel_location (channel, location) VALUES ('web', 'W1'), ('web', 'W2'), ('market', 'W1');
	SELECT inventory_events.append('APPLE', 'W1', 'received', 20);
	SELECT inventory_events.append('PEAR', 'W1', 'received', 12);
	SELECT inventory_events.append('PLUM', 'W2', 'received', 7);
});
# Everything published by the worker: what the channels show is in the log.
my $published_all = q{
	SELECT count(*) = 0 FROM inventory_events.channel c, inventory_events.item i
	 WHERE coalesce((SELECT p.available FROM inventory_events.publication p
	                  WHERE p.channel = c.code AND p.sku = i.sku ORDER BY p.seq DESC LIMIT 1), 0)
	       <> inventory_events.channel_availability(c.code, i.sku)};
ok($origin->poll_query_until('postgres', $published_all), 'the origin\'s publisher published the initial stock');
$origin->backup('pitr_base');

# Event A, published; the restore point; event B.
my $event_a = $origin->safe_psql('postgres', q{SELECT inventory_events.append('PEAR', 'W1', 'received', 3)});
ok($origin->poll_query_until('postgres', $published_all), 'event A published before the restore point');
$origin->safe_psql('postgres', q{SELECT pg_create_restore_point('between')});
my $event_b = $origin->safe_psql('postgres', q{SELECT inventory_events.append('PEAR', 'W1', 'received', 4)});
my $walfile = $origin->safe_psql('postgres', 'SELECT pg_walfile_name(pg_current_wal_lsn())');
$origin->safe_psql('postgres', 'SELECT pg_switch_wal()');
ok($origin->poll_query_until('postgres', qq{SELECT '$walfile' <= last_archived_wal FROM pg_stat_archiver}),
	"the WAL up to event B is archived ($walfile)");
$origin->stop;

my $recovered = PostgreSQL::Test::Cluster->new('recovered');
$recovered->init_from_backup($origin, 'pitr_base', has_restoring => 1, standby => 0);
$recovered->append_conf('postgresql.conf', q{
recovery_target_name = 'between'
recovery_target_action = 'promote'
archive_mode = off
});
$recovered->start;
ok($recovered->poll_query_until('postgres', 'SELECT NOT pg_is_in_recovery()'),
	'recovered to the restore point and promoted');
ok($recovered->log_contains(qr/recovery stopping at restore point "between"/),
	'recovery stopped at the restore point');

is($recovered->safe_psql('postgres', qq{SELECT count(*) FROM inventory_events.event WHERE id = $event_a}), '1',
	'event A, before the restore point, is there');
is($recovered->safe_psql('postgres', qq{SELECT count(*) FROM inventory_events.event WHERE id = $event_b}), '0',
	'event B, after it, is not');
is($recovered->safe_psql('postgres', q{SELECT available FROM inventory_events.stock WHERE sku = 'PEAR' AND location = 'W1'}),
	'15', 'the stock row of A\'s stream has A and not B');
is($recovered->safe_psql('postgres', 'SELECT count(*) FROM inventory_events.verify()'), '0',
	'verify() is empty after the recovery');
is($recovered->safe_psql('postgres', 'SELECT inventory_events.log_adopted()'), 't',
	'log_adopted() is true: same cluster and database, no adoption');
is($recovered->safe_psql('postgres', 'SELECT count(*) FROM inventory_events.log_home'), '1',
	'the log has its one home');

# The publisher carries on from the recovered state.
ok($recovered->poll_query_until('postgres', q{
	SELECT count(*) = 1 FROM inventory_events.publisher_status() WHERE pid IS NOT NULL}),
	'the recovered node runs its publisher');
my %before = map { split /\|/ } split /\n/, $recovered->safe_psql('postgres', q{
	SELECT c.code, coalesce(max(p.seq), 0) FROM inventory_events.channel c
	  LEFT JOIN inventory_events.publication p ON p.channel = c.code GROUP BY c.code ORDER BY c.code});
$recovered->safe_psql('postgres', q{SELECT pg_create_logical_replication_slot('after_pitr', 'inventory_events')});
my $event_c = $recovered->safe_psql('postgres', q{SELECT inventory_events.append('PEAR', 'W1', 'received', 10)});
ok($recovered->poll_query_until('postgres', $published_all), 'event C, after the recovery, is published');
for my $ch (sort keys %before)
{
	my $avail = $recovered->safe_psql('postgres', qq{SELECT inventory_events.channel_availability('$ch', 'PEAR')});
	is($recovered->safe_psql('postgres', qq{SELECT seq, sku, available FROM inventory_events.publications_since('$ch', $before{$ch})}),
		($before{$ch} + 1) . "|PEAR|$avail",
		"$ch: the new availability of PEAR ($avail) comes as seq " . ($before{$ch} + 1) . ", after the recovered $before{$ch}");
}
is($recovered->safe_psql('postgres', q{
	SELECT string_agg(channel, ',' ORDER BY channel) FROM (
	  SELECT channel FROM inventory_events.publication GROUP BY channel
	  HAVING count(*) <> max(seq) OR count(DISTINCT seq) <> count(*)) x}), '',
	'every channel\'s sequence is gap-free across the recovery');

my @decoded = grep { /"kind":"event"/ } split /\n/, $recovered->safe_psql('postgres', q{
	SELECT data FROM pg_logical_slot_get_changes('after_pitr', NULL, NULL)});
is(join(',', map { /"event_id":(\d+)/ ? $1 : '?' } @decoded), $event_c,
	"a new slot with the inventory_events plugin decodes event C ($event_c)");
like($decoded[0] // '', qr/"sku":"PEAR","location":"W1",.*"event_type":"received",.*"qty":10,/,
	'with its stream, type and quantity');

$recovered->stop;

done_testing();
