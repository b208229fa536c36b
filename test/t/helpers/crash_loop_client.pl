#!/usr/bin/perl
# A writer for test/t/011_crash_loop.pl: appends receipts and reserves order
# lines through DBD::Pg (synchronous_commit = on) and writes one line to its
# acknowledgement file, flushed, for every operation once the server has
# answered it; a commit is written down only after it was acknowledged.
#
#   perl crash_loop_client.pl <host> <port> <client number> <ack file> <stop file> <pause file> <think ms>
#
# Operations rotate over three kinds (keys and refs "c<n>-<kind><seq>"); one
# reservation in ten asks for S7, which never has stock, and is refused:
#   r  append(sku, loc, 'received', qty, source => 'c<n>', idempotency_key => key)
#        answer: "r <event id> <key>"
#   s  reserve('shop', sku, 1, ref)
#        answer: "s <ref> <replayed> <event ids, comma-separated>"; refused (IE005): "S <ref>"
#   b  one transaction: the receipt of r (key) and the reservation of s (ref = key)
#        answer: "b <event id> <ref> <replayed> <event ids>"; refused: "B <ref>" (neither applied)
# A lost connection (the crash) is no answer: the client reconnects until the
# server is back, looks up whether the operation committed before the crash
# (writing "t <key> 1" if it did, "t <key> 0" if not), and retries it with the
# same key and content (the idempotent retry of a real client), until it is
# answered. Between operations it waits the given milliseconds (think time:
# the log stays small enough to be checked whole after every crash); it waits
# while the pause file exists (having created "<ack file>.paused"), stops once
# the stop file exists, and exits if the test that started it is gone.
use strict;
use warnings;
use DBI;
use IO::Handle;
use Time::HiRes qw(usleep time);

my ($host, $port, $n, $ack_file, $stop_file, $pause_file, $think_ms) = @ARGV;
die "usage: $0 host port client ack-file stop-file pause-file think-ms\n" unless defined $think_ms;
my $parent = getppid();
my $dsn = "dbi:Pg:dbname=postgres;host=$host;port=$port";
open(my $ack, '>>', $ack_file) or die "$ack_file: $!";
$ack->autoflush(1);
srand($n * 7919 + $$);

my $dbh;

sub give_up_if_orphaned
{
	exit 1 if getppid() != $parent;
}

# Connects, retrying until the server accepts connections again.
sub connect_db
{
	my $since = time;
	until ($dbh)
	{
		$dbh = eval {
			my $h = DBI->connect($dsn, '', '',
				{ RaiseError => 1, PrintError => 0, PrintWarn => 0, AutoCommit => 1 });
			$h->do('SET synchronous_commit = on');
			$h;
		};
		last if $dbh;
		give_up_if_orphaned();
		die "client $n: no connection for 120 s: $@" if time - $since > 120;
		usleep(50_000);
	}
}

# After a failed call: true if the connection is gone.
sub connection_lost
{
	return 0 if (eval { $dbh->pg_ping } // 0) > 0;
	$dbh->{RaiseError} = 0;	# nothing to report when the handle goes
	$dbh = undef;
	return 1;
}

my $receive = q{SELECT inventory_events.append(?, ?, 'received', ?, source => ?, idempotency_key => ?)};
my $reserve = q{SELECT status, event_id, replayed FROM inventory_events.reserve('shop', ?, 1, ?)};

sub reserved
{
	my ($rows) = @_;
	my @ids = sort { $a <=> $b } map { $_->[1] } grep { $_->[0] eq 'reserved' } @$rows;
	my $replayed = (grep { $_->[2] } @$rows) ? 1 : 0;
	return "$replayed " . join(',', @ids);
}

# One attempt of an operation; returns its answer line.
sub attempt
{
	my ($op) = @_;
	my @receipt = ($op->{sku}, $op->{loc}, $op->{qty}, "c$n", $op->{key});
	if ($op->{kind} eq 'r')
	{
		my ($id) = $dbh->selectrow_array($receive, undef, @receipt);
		return "r $id $op->{key}";
	}
	if ($op->{kind} eq 's')
	{
		return "s $op->{key} " . reserved($dbh->selectall_arrayref($reserve, undef, $op->{reserve_sku}, $op->{key}));
	}
	$dbh->begin_work;
	my ($id) = $dbh->selectrow_array($receive, undef, @receipt);
	my $rows = $dbh->selectall_arrayref($reserve, undef, $op->{reserve_sku}, $op->{key});
	$dbh->commit;
	return "b $id $op->{key} " . reserved($rows);
}

# Whether the operation's first attempt committed (its answer lost in the crash).
sub committed_before
{
	my ($op) = @_;
	return $dbh->selectrow_array(
		q{SELECT count(*) FROM inventory_events.reservation WHERE channel = 'shop' AND ref = ?}, undef, $op->{key})
	  if $op->{kind} eq 's';
	return $dbh->selectrow_array(
		q{SELECT count(*) FROM inventory_events.event WHERE source = ? AND idempotency_key = ?}, undef, "c$n", $op->{key});
}

sub pause_while_asked
{
	return unless -e $pause_file;
	open(my $marker, '>', "$ack_file.paused") or die "$ack_file.paused: $!";
	close $marker;
	while (-e $pause_file && !-e $stop_file)
	{
		give_up_if_orphaned();
		usleep(10_000);
	}
	unlink "$ack_file.paused";
}

my $ops = 0;
while (1)
{
	pause_while_asked();
	last if -e $stop_file;
	give_up_if_orphaned();
	$ops++;
	my $kind = (qw(r s b))[$ops % 3];
	# The content is fixed before the first attempt: a retry sends the same.
	my $sku = 'S' . (1 + int(rand(6)));
	my $op = { kind => $kind, key => "c$n-$kind$ops", sku => $sku, loc => 'W' . (1 + int(rand(2))),
		qty => 1 + int(rand(3)), reserve_sku => rand() < 0.1 ? 'S7' : $sku };
	my $lost = 0;
	while (1)
	{
		connect_db();
		if ($lost)
		{
			my $found = eval { committed_before($op) };
			if (!defined $found)
			{
				connection_lost() or die "client $n: looking up $op->{key}: $@";
				next;
			}
			print $ack "t $op->{key} $found\n";
			$lost = 0;
		}
		my $answer = eval { attempt($op) };
		if (defined $answer)
		{
			print $ack "$answer\n";
			last;
		}
		my ($err, $state) = ($@, $dbh->state // '');
		if (connection_lost())
		{
			# The commit may or may not have happened.
			$lost = 1;
			next;
		}
		if ($state eq 'IE005')
		{
			# Refused, nothing applied: an answer too.
			eval { $dbh->rollback } unless $dbh->{AutoCommit};
			print $ack uc($kind) . " $op->{key}\n";
			last;
		}
		die "client $n: $op->{key}: $err";
	}
	usleep($think_ms * 1000);
}
$dbh->disconnect if $dbh;
exit 0;
