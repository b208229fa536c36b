# Sharding by sku on PL/Proxy (extension inventory_events_proxy): a proxy
# cluster and two shard clusters on loopback, each shard a full
# inventory_events with the same master data.
#
# 1. Through the proxy: receipts (append), a batch over both shards with a
#    dead letter (ingest, outcomes in the batch's order), channel
#    availability, a retried append under one key (one event), reserve, pick
#    and ship of a line (found by its ref), position_as_of, an order over both
#    shards (reserve_order: all reserved), an order with a refused line (the
#    line on the other shard released again), and verify() of every shard.
#    Each sku's events are on its own shard only; every shard publishes its
#    own skus to the channel with its own sequence (a connector per shard).
# 2. Shard 1 killed: a call routed to it fails with PL/Proxy's error naming
#    the shard it cannot reach; an order with a line on each shard ends with the line on
#    shard 0 released (nothing half-reserved); a compensation owed to the dead
#    shard is kept and made by retry_compensations() once it is back.
# 3. Afterwards every shard's verify() is clean and no order of the test is
#    half-reserved: every line of an order is reserved, or none is.
use strict;
use warnings;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IETest;

plan skip_all => 'PL/Proxy (Debian package postgresql-15-plproxy) is needed'
  unless -e `pg_config --pkglibdir` =~ s/\s+$//r . '/plproxy.so';

my @shards = map { ie_node("shard$_") } (0, 1);
my $proxy = ie_node('proxy');
$_->start for (@shards, $proxy);

my $master = q{
	CREATE EXTENSION inventory_events;
	INSERT INTO inventory_events.item (sku) SELECT 'S' || g FROM generate_series(1, 8) g;
	INSERT INTO inventory_events.location (code) VALUES ('W1'), ('W2');
	INSERT INTO inventory_events.channel (code) VALUES ('web');
	INSERT INTO inventory_events.channel_location (channel, location) VALUES ('web', 'W1'), ('web', 'W2');
};
$_->safe_psql('postgres', $master) for @shards;
my $p0 = 'host=' . $shards[0]->host . ' port=' . $shards[0]->port . ' dbname=postgres';
my $p1 = 'host=' . $shards[1]->host . ' port=' . $shards[1]->port . ' dbname=postgres';
$proxy->safe_psql('postgres', qq{
	CREATE EXTENSION plproxy;
	CREATE SERVER inventory_events FOREIGN DATA WRAPPER plproxy OPTIONS (p0 '$p0', p1 '$p1');
	CREATE USER MAPPING FOR PUBLIC SERVER inventory_events;
	CREATE EXTENSION inventory_events_proxy;
});
sub via_proxy { return $proxy->safe_psql('postgres', "SET search_path = inventory_events_proxy; $_[0]"); }

# Which shard each sku lives on (PL/Proxy: hash & (partitions - 1)).
my %shard_of = map { split /\|/ } split /\n/,
  $proxy->safe_psql('postgres', q{SELECT 'S' || g, inventory_events_proxy.shard_hash('S' || g) & 1 FROM generate_series(1, 8) g});
my @on0 = sort grep { $shard_of{$_} == 0 } keys %shard_of;
my @on1 = sort grep { $shard_of{$_} == 1 } keys %shard_of;
ok(@on0 >= 2 && @on1 >= 2, "two skus or more on each shard (@on0 | @on1)");
my ($a0, $b0) = @on0;
my ($a1, $b1) = @on1;

# 1. The demo's moves through the proxy.
via_proxy(q{SELECT count(*) FROM (SELECT append('S' || g, 'W1', 'received', 10) FROM generate_series(1, 8) g) x});
is(via_proxy(qq{
	SELECT string_agg(ordinal || ':' || status || coalesce(':' || sqlstate, ''), ' ' ORDER BY ordinal)
	  FROM ingest('[{"sku": "$a0", "location": "W2", "event_type": "received", "qty": 5},
	                {"sku": "$a1", "location": "W2", "event_type": "received", "qty": 6},
	                {"sku": "NOPE", "location": "W1", "event_type": "received", "qty": 1},
	                {"sku": "$b1", "location": "W2", "event_type": "received", "qty": 7}]')}),
	'1:applied 2:applied 3:dead_lettered:23503 4:applied', 'a batch over both shards: outcomes in its order');
is(via_proxy(qq{SELECT channel_availability('web', '$a0') || ' ' || channel_availability('web', '$a1')}), '15 16',
	'channel availability from each shard');
my $k1 = via_proxy(qq{SELECT append('$b0', 'W1', 'received', 1, source => 'erp', idempotency_key => 'rcv-1')});
my $k2 = via_proxy(qq{SELECT append('$b0', 'W1', 'received', 1, source => 'erp', idempotency_key => 'rcv-1')});
is($k2, $k1, 'a retried key stays one event');
via_proxy(qq{SELECT count(*) FROM reserve('web', '$a1', 3, 'SO-1/1')});
is(via_proxy(q{SELECT string_agg(event_type || ' ' || qty, ',') FROM pick('web', 'SO-1/1')}), 'picked 3', 'pick by line');
is(via_proxy(q{SELECT string_agg(event_type || ' ' || qty, ',') FROM ship('web', 'SO-1/1')}), 'shipped 3', 'ship by line');
# A line reserved on the shard directly is found by asking every shard.
$shards[$shard_of{$a0}]->safe_psql('postgres', qq{SELECT count(*) FROM inventory_events.reserve('web', '$a0', 1, 'SO-D/1')});
is(via_proxy(q{SELECT string_agg(event_type || ' ' || qty, ',') FROM release('web', 'SO-D/1')}), 'released 1',
	'a line the proxy has not seen is found on its shard');
like(via_proxy(qq{SELECT position_as_of('$a1', 'W1', now())}), qr/^\(available=7,/, 'position_as_of through the proxy');
is(via_proxy(qq{
	SELECT string_agg(status, ',' ORDER BY line) FROM reserve_order('web', '[{"sku": "$a0", "qty": 2, "ref": "SO-2/1"},
	                                                                        {"sku": "$a1", "qty": 2, "ref": "SO-2/2"}]')}),
	'reserved,reserved', 'an order over both shards is reserved');
is(via_proxy(qq{
	SELECT string_agg(status || coalesce(':' || sqlstate, ''), ',' ORDER BY line)
	  FROM reserve_order('web', '[{"sku": "$b1", "qty": 2, "ref": "SO-3/1"}, {"sku": "$b0", "qty": 5000, "ref": "SO-3/2"}]')}),
	'released,refused:IE005', 'an order with a refused line: the other shard\'s line is released again');
# A retry of that order with the same refs (as after a lost reply): the line
# released since is not reported reserved.
is(via_proxy(qq{
	SELECT string_agg(status || coalesce(':' || sqlstate, ''), ',' ORDER BY line)
	  FROM reserve_order('web', '[{"sku": "$b1", "qty": 2, "ref": "SO-3/1"}, {"sku": "$b0", "qty": 1, "ref": "SO-3/2"}]')}),
	'failed:55000,not_tried', 'a retry with the same refs: the released line fails the order');
my ($rc0, $out0, $err0) = $proxy->psql('postgres',
	q{SELECT count(*) FROM inventory_events_proxy.reserve_order('web', '[{"sku": "S1", "qty": 1, "ref": "X/1"}, {"sku": "S2", "qty": 1, "ref": "X/1"}]')});
like($err0, qr/repeats the ref "X\/1"/, 'an order repeating a ref is refused before anything is reserved');
# A backorder channel accepts a shortage as a backorder: the order stands.
$_->safe_psql('postgres', q{
	INSERT INTO inventory_events.channel (code, allow_backorders) VALUES ('b2b', true);
	INSERT INTO inventory_events.channel_location (channel, location) VALUES ('b2b', 'W1');
}) for @shards;
is(via_proxy(qq{
	SELECT string_agg(status, ',' ORDER BY line)
	  FROM reserve_order('b2b', '[{"sku": "$a0", "qty": 1, "ref": "BO-1/1"}, {"sku": "$a1", "qty": 5000, "ref": "BO-1/2"}]')}),
	'reserved,backordered', 'on a backorder channel a shortage is accepted as a backorder');
# A release that fails (a trigger on shard 1 refuses it) is owed, made once the
# cause is gone.
$shards[$shard_of{$b1}]->safe_psql('postgres', q{
	CREATE FUNCTION refuse_release() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
	    IF NEW.event_type = 'released' AND NEW.ref LIKE 'SO-6/%' THEN
	        RAISE EXCEPTION 'release refused for the test';
	    END IF;
	    RETURN NEW;
	END $$;
	CREATE TRIGGER refuse_release BEFORE INSERT ON inventory_events.event FOR EACH ROW EXECUTE FUNCTION refuse_release();
});
is(via_proxy(qq{
	SELECT string_agg(status, ',' ORDER BY line)
	  FROM reserve_order('web', '[{"sku": "$b1", "qty": 1, "ref": "SO-6/1"}, {"sku": "$b0", "qty": 5000, "ref": "SO-6/2"}]')}),
	'compensation_pending,refused', 'a compensation that fails is owed');
is(via_proxy(q{SELECT string_agg(ref, ',') FROM compensation}), 'SO-6/1', 'and recorded');
$shards[$shard_of{$b1}]->safe_psql('postgres', q{DROP TRIGGER refuse_release ON inventory_events.event});
is(via_proxy(q{SELECT retry_compensations()}), '0', 'retry_compensations() makes it once the cause is gone');
# A call whose outcome is not seen (the proxy's statement_timeout fires while
# the line's shard waits for a lock): that line is released too, or owed.
my $locker = IPC::Run::start(
	[ 'psql', '-X', '-q', '-h', $shards[$shard_of{$b1}]->host, '-p', $shards[$shard_of{$b1}]->port, '-d', 'postgres',
	  '-c', 'BEGIN; LOCK TABLE inventory_events.reservation; SELECT pg_sleep(3); COMMIT;' ],
	'>', \my $lock_out, '2>', \my $lock_err);
$shards[$shard_of{$b1}]->poll_query_until('postgres', q{
	SELECT count(*) > 0 FROM pg_locks WHERE relation = 'inventory_events.reservation'::regclass AND mode = 'AccessExclusiveLock'});
my $unseen = via_proxy(qq{
	SET statement_timeout = '1s';
	SELECT string_agg(status, ',' ORDER BY line)
	  FROM reserve_order('web', '[{"sku": "$b0", "qty": 1, "ref": "SO-7/1"}, {"sku": "$b1", "qty": 1, "ref": "SO-7/2"}]')});
like($unseen, qr/^released,(released|compensation_pending)$/, "a line whose outcome was not seen is compensated ($unseen)");
$locker->finish;
is(via_proxy(q{SELECT retry_compensations('0 s')}), '0', 'and nothing is owed once its shard has answered');
is(via_proxy(q{SELECT count(*) FROM verify()}), '0', 'verify() of every shard through the proxy is clean');
foreach my $i (0, 1)
{
	my @mine = $i == 0 ? @on0 : @on1;
	is($shards[$i]->safe_psql('postgres', q{SELECT string_agg(DISTINCT sku, ' ' ORDER BY sku) FROM inventory_events.event}),
		join(' ', sort @mine), "shard $i holds the events of its own skus only");
	ok($shards[$i]->poll_query_until('postgres', qq{
		SELECT min(seq) = 1 AND count(DISTINCT sku) = @{[ scalar @mine ]}
		  FROM inventory_events.publication WHERE channel = 'web'}),
		"shard $i publishes its skus to the channel with a sequence of its own");
}

# 2. Shard 1 down. First a one-line order on it, whose compensation (as if
# another line had failed) the dead shard will owe below.
is(via_proxy(qq{SELECT string_agg(status, ',') FROM reserve_order('web', '[{"sku": "$a1", "qty": 1, "ref": "SO-5/1"}]')}),
	'reserved', 'a one-line order on shard 1');
$shards[1]->stop('immediate');
my ($rc, $out, $err) = $proxy->psql('postgres',
	qq{\\set VERBOSITY verbose
	   SELECT inventory_events_proxy.channel_availability('web', '$a1')});
like($err, qr/ERROR:  XX000: PL\/Proxy function inventory_events_proxy.channel_availability\(2\): \[postgres\] PQconnect\w+: connection to server .* failed/,
	'a call routed to the dead shard fails, naming the shard it could not reach (PL/Proxy says XX000)');
is(via_proxy(qq{
	SELECT string_agg(status || coalesce(':' || left(sqlstate, 2), ''), ',' ORDER BY line)
	  FROM reserve_order('web', '[{"sku": "$b0", "qty": 1, "ref": "SO-4/1"}, {"sku": "$b1", "qty": 1, "ref": "SO-4/2"}]')}),
	'released,failed:08', 'an order with a line on the dead shard: the line on the live shard is released (08006)');
# A compensation owed to the dead shard (recorded as reserve_order does when a
# release fails) is kept until the shard is back.
via_proxy(qq{
	INSERT INTO compensation (channel, ref, sku, sqlstate, message) VALUES ('web', 'SO-5/1', '$a1', '08006', 'down')});
is(via_proxy(q{SELECT retry_compensations('0 s')}), '1', 'the compensation is still owed while the shard is down');
$shards[1]->start;
is(via_proxy(q{SELECT retry_compensations()}), '0', 'and made once it is back');
is($shards[1]->safe_psql('postgres', q{SELECT string_agg(event_type::text, ',' ORDER BY id) FROM inventory_events.event WHERE ref = 'SO-5/1'}),
	'reserved,released', 'the owed release was made on the shard');

# 3. Clean and whole.
foreach my $i (0, 1)
{
	is($shards[$i]->safe_psql('postgres', q{SELECT count(*) FROM inventory_events.verify()}), '0',
		"shard $i: verify() is clean");
}
# Every line of every order sent through reserve_order(), over both shards:
# still reserved (reserved - released - picked > 0) or not (a refused line,
# or one on a dead shard, has no event at all).
my %orders = ('SO-2' => [ 'SO-2/1', 'SO-2/2' ], 'SO-3' => [ 'SO-3/1', 'SO-3/2' ],
	'SO-4' => [ 'SO-4/1', 'SO-4/2' ], 'SO-5' => [ 'SO-5/1' ], 'SO-6' => [ 'SO-6/1', 'SO-6/2' ],
	'SO-7' => [ 'SO-7/1', 'SO-7/2' ]);
my %held;
foreach my $s (@shards)
{
	foreach my $row (split /\n/, $s->safe_psql('postgres', q{
		SELECT e.ref || '|' ||
		       sum(CASE e.event_type WHEN 'reserved' THEN e.qty WHEN 'released' THEN -e.qty
		                             WHEN 'picked' THEN -e.qty ELSE 0 END)
		  FROM inventory_events.event e WHERE e.ref LIKE 'SO-%' GROUP BY e.ref}))
	{
		my ($line, $qty) = split /\|/, $row;
		$held{$line} = $qty > 0 ? 1 : 0;
	}
}
my @half = grep {
	my @h = map { $held{$_} // 0 } @{ $orders{$_} };
	(grep { $_ } @h) && (grep { !$_ } @h)
} sort keys %orders;
is("@half", '', 'no order is half-reserved: every line of an order is reserved, or none is')
  or diag(explain \%held);
is(join(' ', map { "$_=" . ($held{$_} // 0) } qw(SO-2/1 SO-2/2 SO-3/1 SO-4/1 SO-5/1 SO-6/1 SO-7/1 SO-7/2)),
	'SO-2/1=1 SO-2/2=1 SO-3/1=0 SO-4/1=0 SO-5/1=0 SO-6/1=0 SO-7/1=0 SO-7/2=0',
	'the whole order holds its lines; the failed ones hold none');

$_->stop for (@shards, $proxy);
done_testing();
