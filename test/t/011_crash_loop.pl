# Crash loops, measured. The postmaster is killed with SIGKILL 20 times,
# 0.5 to 2 s apart, while four clients (test/t/helpers/crash_loop_client.pl,
# DBD::Pg, synchronous_commit = on, fsync on) append receipts and reserve
# order lines, alone or both in one transaction. Each client writes down what
# the server acknowledged, and retries what a crash left unanswered with the
# same idempotency key until it is answered. Every second kill also SIGKILLs
# every other server process at once (a whole-server crash); the others leave
# the orphaned backends to notice the postmaster's death and exit. After each
# restart, once every client has been answered again (the clients paused for
# the checks):
# - every acknowledged event is in the log exactly once, under its key; an
#   acknowledged reservation has exactly its reserved events; a refused one
#   (and the receipt of its transaction) left nothing;
# - nothing is half-applied, acknowledged or not: a reservation row exists
#   iff its reserved events do, a receipt and a reservation made in one
#   transaction exist together, each stream's reserved bucket equals its open
#   allocations, and verify() (stock = the sum of the events) is clean;
# - each channel's publication sequence is gap-free; what a reader read
#   before the crash is unchanged; the restarted publisher catches up (every
#   sku's latest publication is what its channel shows: no change lost); the
#   reader, resuming with publications_since(channel, last seq), reaches the
#   latest seq with no gap;
# - a logical slot with the inventory_events plugin, consumed with
#   pg_logical_slot_get_changes() just before each kill, sends again after
#   the crash what it had confirmed in memory only; a consumer that skips
#   every transaction whose commit LSN is not beyond the last one it
#   processed (kept in a file) gets every event and publication once, and
#   only committed ones.
# At the end (clients stopped): the same checks; every event of the log was
# acknowledged to a client (or written by the setup); the decoded events and
# publications are exactly those of the tables; the slot did re-send; the
# server log shows one crash recovery per kill. The counts are printed.
use strict;
use warnings;
use DBI;
use Digest::MD5 qw(md5_hex);
use File::Basename qw(dirname);
use IPC::Run;
use POSIX ();
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);
use IETest;

my $kills = 20;
my $nclients = 4;
my $client_think_ms = 10;	# between two operations of a client
my @channels = qw(outlet shop);
my $t0 = time;

my $node = ie_node('crashloop');
# The throw-away config turns fsync off; this test wants it on. Crash
# recovery starts by syncing the data directory: syncfs() does it in one call
# instead of an fsync per file, which keeps 20 recoveries short. The
# cluster_name is in every server process's title (server_processes()); it
# carries this test's pid, so that another run of the suite on the same
# machine keeps its processes.
my $cluster_name = "crashloop$$";
$node->append_conf('postgresql.conf', qq{
fsync = on
synchronous_commit = on
recovery_init_sync_method = syncfs
cluster_name = '$cluster_name'
log_statement = none
inventory_events.publisher_naptime = 200
inventory_events.expire_interval = 3600
});
my $dir = $node->basedir;
my $datadir = $node->data_dir;

# The test starts the postmaster as its own child instead of through pg_ctl,
# so that it can reap it after SIGKILL: pg_ctl leaves the postmaster to PID 1,
# which in a container may never reap it, and a zombie's pid in
# postmaster.pid makes the next postmaster refuse the lock file.
my $postmaster;
sub start_server
{
	$postmaster = fork() // die "fork: $!";
	if ($postmaster == 0)
	{
		open(STDOUT, '>>', $node->logfile) or POSIX::_exit(1);
		open(STDERR, '>&', \*STDOUT) or POSIX::_exit(1);
		exec('postgres', '-D', $datadir) or POSIX::_exit(1);
	}
	# Ready when postmaster.pid names it and says so (what pg_ctl -w reads).
	my $deadline = time + 120;
	while (1)
	{
		# The file may vanish between the test and the read (a restart): retry.
		my $pid_text = -e "$datadir/postmaster.pid" ? eval { slurp_file("$datadir/postmaster.pid") } : undef;
		my @pidfile = defined $pid_text ? split(/\n/, $pid_text) : ();
		last if @pidfile >= 8 && $pidfile[0] eq $postmaster && $pidfile[7] =~ /^ready/;
		if (waitpid($postmaster, POSIX::WNOHANG) == $postmaster || time > $deadline)
		{
			diag(slurp_file($node->logfile, -s $node->logfile > 4000 ? -s($node->logfile) - 4000 : 0));
			BAIL_OUT('the server did not start');
		}
		usleep(20_000);
	}
	$node->_update_pid(1);
}

# Live processes of the server: every process whose title names the cluster,
# or that still carries the postmaster's arguments (the postmaster, a child
# just forked). A zombie has no command line.
sub server_processes
{
	my @pids;
	for my $proc (glob '/proc/[0-9]*')
	{
		open(my $fh, '<', "$proc/cmdline") or next;
		my $cmd = do { local $/; <$fh> } // '';
		close $fh;
		push @pids, $proc =~ s{^/proc/}{}r
		  if $cmd =~ /^postgres: \Q$cluster_name\E: / || index($cmd, $datadir) >= 0;
	}
	return @pids;
}

# SIGKILL to the postmaster, and with $whole to every other server process
# too; returns once none is left, as the next postmaster requires.
sub crash
{
	my ($whole) = @_;
	$node->kill9;
	waitpid($postmaster, 0);
	kill 'KILL', server_processes() if $whole;
	my $deadline = time + 60;
	while (my @left = server_processes())
	{
		BAIL_OUT("server processes still running 60 s after the postmaster was killed: @left")
		  if time > $deadline;
		usleep(20_000);
	}
}

start_server();
$node->safe_psql('postgres', q{
	CREATE EXTENSION inventory_events;
	-- S7 never gets stock: reservations of it are refused.
	INSERT INTO inventory_events.item (sku) SELECT 'S' || g FROM generate_series(1, 7) g;
	INSERT INTO inventory_events.location (code) VALUES ('W1'), ('W2');
	INSERT INTO inventory_events.channel (code) VALUES ('shop');
	INSERT INTO inventory_events.channel (code, allocation_pct) VALUES ('outlet', 50);
	INSERT INTO inventory_events.channel_location (channel, location) VALUES
		('shop', 'W1'), ('shop', 'W2'), ('outlet', 'W2');
});
# The slot exists before the first event: it must decode every one of them.
$node->safe_psql('postgres', q{SELECT pg_create_logical_replication_slot('crashloop', 'inventory_events')});
my $setup_ids = $node->safe_psql('postgres', q{
	SELECT string_agg(inventory_events.append('S' || g, 'W' || l, 'received', 5)::text, ',')
	  FROM generate_series(1, 6) g, generate_series(1, 2) l});

# ---------------------------------------------------------------------------
# The clients, and what they were told.
my $stop_file = "$dir/stop";
my $pause_file = "$dir/pause";
my $client_script = dirname(__FILE__) . '/helpers/crash_loop_client.pl';
my @clients;
for my $n (1 .. $nclients)
{
	my ($out, $err) = ('', '');
	push @clients, {
		n => $n, out => \$out, err => \$err,
		run => IPC::Run::start(
			[ $^X, $client_script, $node->host, $node->port, $n, "$dir/acks.$n", $stop_file, $pause_file,
			  $client_think_ms ],
			'>', \$out, '2>', \$err) };
}

# The test's own queries go through one DBD::Pg connection per server run:
# a psql process per query would cost more than most of these queries.
# sql() returns the rows as psql -At prints them.
my $db;
sub sql
{
	my ($query) = @_;
	$db //= DBI->connect('dbi:Pg:dbname=postgres;host=' . $node->host . ';port=' . $node->port, '', '',
		{ RaiseError => 1, PrintError => 0, AutoCommit => 1, pg_bool_tf => 1 });
	my $sth = $db->prepare($query);
	$sth->execute;
	return '' unless $sth->{NUM_OF_FIELDS};
	return join("\n", map { join('|', map { $_ // '' } @$_) } @{ $sth->fetchall_arrayref });
}
sub disconnect_sql
{
	$db->disconnect if $db;
	$db = undef;
}
sub poll_sql
{
	my ($query) = @_;
	return wait_for(sub { sql($query) eq 't' });
}

# Every complete line of the acknowledgement files.
sub read_acks
{
	my %acks = (receipt => {}, reservation => {}, refused => [], answers => [], retried => 0,
		committed_before => 0, replayed => 0);
	for my $n (1 .. $nclients)
	{
		my $text = -e "$dir/acks.$n" ? slurp_file("$dir/acks.$n") : '';
		$text =~ s/[^\n]*\z//;	# a line being written
		my $answers = 0;
		for my $line (split /\n/, $text)
		{
			my @f = split / /, $line;
			if ($f[0] eq 't') { $acks{retried}++; $acks{committed_before} += $f[2]; next; }
			$answers++;
			if ($f[0] eq 'r') { $acks{receipt}{ $f[1] } = $f[2]; }
			elsif ($f[0] eq 's') { $acks{reservation}{ $f[1] } = $f[3]; $acks{replayed} += $f[2]; }
			elsif ($f[0] eq 'b')
			{
				$acks{receipt}{ $f[1] } = $f[2];
				$acks{reservation}{ $f[2] } = $f[4];
				$acks{replayed} += $f[3];
			}
			elsif ($f[0] eq 'S' || $f[0] eq 'B') { push @{ $acks{refused} }, $f[1]; }
			else { die "acks.$n: bad line $line"; }
		}
		$acks{answers}[$n] = $answers;
	}
	return \%acks;
}

# Whether client $n got an answer after the given offset of its file.
sub answered_since
{
	my ($n, $offset) = @_;
	open(my $fh, '<', "$dir/acks.$n") or die;
	seek($fh, $offset, 0);
	my $text = do { local $/; <$fh> } // '';
	close $fh;
	return $text =~ /^[^t][^\n]*\n/m;
}

# A PostgreSQL array literal of strings.
sub pg_array
{
	return "'{" . join(',', map { qq{"$_"} } @_) . "}'";
}

# What the acknowledgements promise, checked against the tables; returns
# "receipts missing N, reservations wrong N, refused present N".
sub ack_problems
{
	my ($acks) = @_;
	my ($r, $s) = ($acks->{receipt}, $acks->{reservation});
	my @ids = sort { $a <=> $b } keys %$r;
	my @refs = sort keys %$s;
	return sql(sprintf(q{
		WITH receipt AS (SELECT * FROM unnest(%s::bigint[], %s::text[]) a(id, key)),
		     reservation_ack AS (SELECT * FROM unnest(%s::text[], %s::text[]) a(ref, ids)),
		     refused AS (SELECT * FROM unnest(%s::text[]) a(ref)),
		     reserved AS (
		       SELECT r.ref, string_agg(e.id::text, ',' ORDER BY e.id) AS ids
		         FROM inventory_events.reservation r
		         JOIN inventory_events.allocation al ON al.reservation_id = r.id
		         JOIN inventory_events.event e ON e.id = al.event_id
		        WHERE r.channel = 'shop' AND e.event_type = 'reserved' AND e.ref = r.ref AND e.channel = r.channel
		        GROUP BY r.ref)
		SELECT format('receipts missing %%s, reservations wrong %%s, refused present %%s',
		  (SELECT count(*) FROM receipt a
		     LEFT JOIN inventory_events.event e
		       ON e.id = a.id AND e.event_type = 'received'
		      AND e.source = split_part(a.key, '-', 1) AND e.idempotency_key = a.key
		    WHERE e.id IS NULL),
		  (SELECT count(*) FROM reservation_ack a LEFT JOIN reserved d USING (ref) WHERE a.ids IS DISTINCT FROM d.ids),
		  (SELECT count(*) FROM refused a
		    WHERE EXISTS (SELECT FROM inventory_events.reservation r WHERE r.channel = 'shop' AND r.ref = a.ref)
		       OR EXISTS (SELECT FROM inventory_events.event e
		                   WHERE e.source = split_part(a.ref, '-', 1) AND e.idempotency_key = a.ref)))},
		pg_array(@ids), pg_array(map { $r->{$_} } @ids), pg_array(@refs), pg_array(map { $s->{$_} } @refs),
		pg_array(@{ $acks->{refused} })));
}

# Half-applied work of any transaction, acknowledged or not.
my $half_applied = q{
	SELECT format('reservations without their events %s, reserved events without a reservation %s, '
	              || 'receipts of a receipt+reservation without it %s, reservations of one without it %s, '
	              || 'streams whose reserved bucket differs from their allocations %s',
	  (SELECT count(*) FROM inventory_events.reservation r
	     LEFT JOIN (SELECT al.reservation_id, sum(al.qty) AS qty
	                  FROM inventory_events.allocation al
	                  JOIN inventory_events.reservation r ON r.id = al.reservation_id
	                  JOIN inventory_events.event e ON e.id = al.event_id
	                 WHERE e.event_type = 'reserved' AND e.ref = r.ref AND e.channel = r.channel
	                   AND e.sku = al.sku AND e.location = al.location AND e.qty = al.qty
	                 GROUP BY al.reservation_id) a ON a.reservation_id = r.id
	    WHERE r.qty - r.backordered - r.cancelled IS DISTINCT FROM a.qty),
	  (SELECT count(*) FROM inventory_events.event e
	    WHERE e.event_type = 'reserved' AND NOT EXISTS (
	        SELECT FROM inventory_events.allocation al JOIN inventory_events.reservation r ON r.id = al.reservation_id
	         WHERE al.event_id = e.id AND r.ref = e.ref AND r.channel = e.channel)),
	  (SELECT count(*) FROM inventory_events.event e
	    WHERE e.event_type = 'received' AND e.idempotency_key LIKE 'c_-b%' AND NOT EXISTS (
	        SELECT FROM inventory_events.reservation r WHERE r.channel = 'shop' AND r.ref = e.idempotency_key)),
	  (SELECT count(*) FROM inventory_events.reservation r
	    WHERE r.ref LIKE 'c_-b%' AND NOT EXISTS (
	        SELECT FROM inventory_events.event e
	         WHERE e.source = split_part(r.ref, '-', 1) AND e.idempotency_key = r.ref)),
	  (SELECT count(*) FROM inventory_events.stock s
	     LEFT JOIN (SELECT sku, location, lot, sum(reserved) AS reserved FROM inventory_events.allocation
	                 GROUP BY sku, location, lot) a USING (sku, location, lot)
	    WHERE s.reserved <> coalesce(a.reserved, 0)))};
my $half_applied_none = 'reservations without their events 0, reserved events without a reservation 0, '
  . 'receipts of a receipt+reservation without it 0, reservations of one without it 0, '
  . 'streams whose reserved bucket differs from their allocations 0';

my $publication_gaps = q{
	SELECT (SELECT count(*) FROM (SELECT channel FROM inventory_events.publication
	                              GROUP BY channel HAVING count(*) <> max(seq)) x)
	     + (SELECT count(*) FROM inventory_events.channel_publisher cp
	         WHERE cp.last_seq <> (SELECT coalesce(max(seq), 0) FROM inventory_events.publication p
	                                WHERE p.channel = cp.channel))};

# ---------------------------------------------------------------------------
# A reader of the publication log per channel: resumes with
# publications_since(channel, last seq) and checks that seqs follow one another.
my %reader = map { $_ => { last => 0, seen => [], gaps => 0 } } @channels;
sub read_publications
{
	my ($channel, $upto) = @_;
	my $r = $reader{$channel};
	my $deadline = time + 60;
	while (1)
	{
		my $out = sql("SELECT seq, sku, available FROM inventory_events.publications_since('$channel', $r->{last})");
		for my $row (split /\n/, $out)
		{
			my ($seq, $sku, $available) = split /\|/, $row;
			$r->{gaps}++ if $seq != $r->{last} + 1;
			$r->{last} = $seq;
			push @{ $r->{seen} }, "$seq:$sku:$available";
		}
		return 1 if !defined $upto || $r->{last} >= $upto;
		return 0 if time > $deadline;
		usleep(100_000);
	}
}
# What the reader read is still what the log holds.
sub reader_unchanged
{
	my ($channel) = @_;
	my $r = $reader{$channel};
	return sql(qq{
		SELECT md5(coalesce(string_agg(seq || ':' || sku || ':' || available, ',' ORDER BY seq), ''))
		  FROM inventory_events.publication WHERE channel = '$channel' AND seq <= $r->{last}})
	  eq md5_hex(join(',', @{ $r->{seen} }));
}

# ---------------------------------------------------------------------------
# The decoding client. pg_logical_slot_get_changes() confirms what it
# returned, but in memory: the slot reaches disk at a checkpoint (or when its
# restart point moves), so after a crash it sends again what it had sent.
# Records of a transaction come together, transactions in commit order; the
# client keeps the commit LSN of the last transaction it processed (in a
# file, as a real client would) and skips every transaction that is not
# beyond it. An event's own lsn would not do: a transaction committed later
# can hold an insert made earlier.
my $lsn_file = "$dir/decoded.lsn";
my (%decoded_event, %decoded_publication);
my (@unchecked_events, @unchecked_publications);	# decoded, not yet checked against the tables
my ($decoded_records, $replayed_transactions, $replayed_records) = (0, 0, 0);
sub lsn_number
{
	my ($hi, $lo) = split m{/}, shift;
	return hex($hi) * 2**32 + hex($lo);
}
sub consume_slot
{
	my $last = -e $lsn_file ? lsn_number(slurp_file($lsn_file)) : 0;
	my $out = sql(q{
		SELECT data FROM pg_logical_slot_get_changes('crashloop', NULL, NULL, 'include-xact', 'on')});
	my @transaction;
	for my $line (split /\n/, $out)
	{
		my ($kind) = $line =~ /^\{"kind":"(\w+)"/ or die "bad record: $line";
		if ($kind eq 'begin') { @transaction = (); next; }
		if ($kind ne 'commit') { push @transaction, $line; next; }
		my ($lsn) = $line =~ /"lsn":"([0-9A-F]+\/[0-9A-F]+)"/ or die "commit without lsn: $line";
		if (lsn_number($lsn) <= $last)
		{
			$replayed_transactions++;
			$replayed_records += @transaction;
			next;
		}
		for my $record (@transaction)
		{
			$decoded_records++;
			if ($record =~ /^\{"kind":"event".*?"event_id":(\d+)/)
			{
				$decoded_event{$1}++;
				push @unchecked_events, $1;
			}
			elsif ($record =~ /^\{"kind":"publication".*?"channel":"([^"]*)".*?"seq":(\d+)/)
			{
				$decoded_publication{"$1/$2"}++;
				push @unchecked_publications, "$1/$2";
			}
		}
		$last = lsn_number($lsn);
		open(my $fh, '>', $lsn_file) or die;
		print $fh $lsn;
		close $fh;
	}
}
sub duplicates { return scalar(grep { $_ > 1 } values %{ $_[0] }); }

# How many of the events and publications decoded since the last call are
# not in the tables.
sub not_committed
{
	my $ids = join(',', @unchecked_events);
	my $pubs = join(',', map { my ($c, $s) = split m{/}; "('$c', $s)" } @unchecked_publications);
	@unchecked_events = @unchecked_publications = ();
	return sql(qq{
		SELECT (SELECT count(*) FROM unnest('{$ids}'::bigint[]) a(id)
		         WHERE NOT EXISTS (SELECT FROM inventory_events.event e WHERE e.id = a.id))
		     + (SELECT count(*) FROM (VALUES (NULL::text, NULL::bigint) } . ($pubs ? ", $pubs" : '') . q{) a(channel, seq)
		         WHERE a.channel IS NOT NULL AND NOT EXISTS (
		             SELECT FROM inventory_events.publication p WHERE p.channel = a.channel AND p.seq = a.seq))});
}

# ---------------------------------------------------------------------------
# The clients stop between two operations while the test checks.
sub pause_clients
{
	append_to_file($pause_file, '');
	wait_for(sub { !grep { !-e "$dir/acks.$_.paused" } 1 .. $nclients })
	  or BAIL_OUT('the clients did not pause');
}
sub resume_clients
{
	unlink $pause_file;
	wait_for(sub { !grep { -e "$dir/acks.$_.paused" } 1 .. $nclients })
	  or BAIL_OUT('the clients did not resume');
}
sub wait_for
{
	my ($condition) = @_;
	my $deadline = time + 60;
	until ($condition->())
	{
		return 0 if time > $deadline;
		usleep(20_000);
	}
	return 1;
}

# Every sku's latest publication on every channel is what the channel shows.
my $published_all = q{
	SELECT count(*) = 0 FROM inventory_events.channel c, inventory_events.item i
	 WHERE coalesce((SELECT p.available FROM inventory_events.publication p
	                  WHERE p.channel = c.code AND p.sku = i.sku ORDER BY p.seq DESC LIMIT 1), 0)
	       <> inventory_events.channel_availability(c.code, i.sku)};

# The checks after a restart (and at the end), the clients paused.
sub check
{
	my ($label) = @_;
	my $acks = read_acks();
	is(ack_problems($acks), 'receipts missing 0, reservations wrong 0, refused present 0',
		"$label: every acknowledged event is there once, under its key");
	is(sql($half_applied), $half_applied_none, "$label: nothing is half-applied");
	is(sql('SELECT count(*) FROM inventory_events.verify()'), '0',
		"$label: verify() is clean");
	is(sql($publication_gaps), '0', "$label: publication sequences are gap-free");
	is(join(' ', map { reader_unchanged($_) ? 'same' : 'changed' } @channels), join(' ', map { 'same' } @channels),
		"$label: what the reader read before is unchanged");
	ok(poll_sql($published_all),
		"$label: the publisher caught up: every sku's latest publication is what its channel shows");
	my %latest = split /[|\n]/, sql(
		'SELECT channel, last_seq FROM inventory_events.channel_publisher');
	my @behind = grep { !read_publications($_, $latest{$_} // 0) } @channels;
	is("@behind", '', "$label: the reader catches up to the latest seq");
	is(join(' ', map { $reader{$_}{gaps} } @channels), join(' ', map { 0 } @channels),
		"$label: the reader's seqs follow one another");
	consume_slot();
	is(duplicates(\%decoded_event) + duplicates(\%decoded_publication), 0,
		"$label: no decoded event or publication twice");
	is(not_committed(), '0', "$label: everything decoded, before the crash too, is committed");
	return $acks;
}

# ---------------------------------------------------------------------------
# The loop.
poll_sql('SELECT count(*) > 100 FROM inventory_events.event')
  or die 'the clients do not write';
my $whole_kills = 0;
my @recovery_s;	# from each kill to the restarted server's readiness
for my $round (1 .. $kills)
{
	my $round_started = time;
	usleep(500_000 + int(rand(1_500_000)));
	# Just before the kill: the reader reads, the slot is consumed and
	# confirms, in memory only.
	read_publications($_) for @channels;
	consume_slot();
	my @offsets = map { -s "$dir/acks.$_" } 1 .. $nclients;
	my $whole = $round % 2 == 0;
	$whole_kills++ if $whole;
	disconnect_sql();
	my $killed_at = time;
	crash($whole);
	start_server();
	push @recovery_s, time - $killed_at;
	my @silent;
	wait_for(sub { @silent = grep { !answered_since($_, $offsets[ $_ - 1 ]) } 1 .. $nclients; !@silent });
	is("@silent", '', "kill $round (" . ($whole ? 'every server process' : 'the postmaster')
		  . '): every client is answered again');
	pause_clients();
	check("kill $round");
	# A checkpoint logs the running transactions; the next consumption moves
	# the slot's restart point there and saves the slot. Decoding starts
	# from the restart point, so this keeps it short; the consumption before
	# the next kill comes after it and is confirmed in memory only.
	sql('CHECKPOINT');
	consume_slot();
	resume_clients();
	note(sprintf('kill %d: server ready again %.1f s after the kill; round %.1f s',
			$round, $recovery_s[-1], time - $round_started));
}

# ---------------------------------------------------------------------------
# The end: clients stopped, the same checks, and the slot's whole output.
append_to_file($stop_file, '');
for my $c (@clients)
{
	ok($c->{run}->finish, "client $c->{n} ended cleanly") or diag(${ $c->{err} });
}
my $acks = check('the end');
my $ids = sql(q{SELECT string_agg(id::text, ',' ORDER BY id) FROM inventory_events.event});
my @acked_ids = (keys %{ $acks->{receipt} }, grep { $_ ne '' } map { split /,/ } values %{ $acks->{reservation} });
is(join(',', sort { $a <=> $b } split(/,/, $setup_ids), @acked_ids), $ids,
	'every event of the log was acknowledged to a client (or written by the setup), once');
is(join(',', sort { $a <=> $b } keys %decoded_event), $ids,
	'the decoded events are exactly the events of the log');
my $pubs = sql(
	q{SELECT string_agg(channel || '/' || seq, ',' ORDER BY channel, seq) FROM inventory_events.publication});
is(join(',', sort { my ($ac, $as) = split m{/}, $a; my ($bc, $bs) = split m{/}, $b; $ac cmp $bc || $as <=> $bs }
		keys %decoded_publication), $pubs,
	'the decoded publications are exactly those of the publication log');
cmp_ok($replayed_transactions, '>', 0,
	"after the crashes the slot sent again what it had sent ($replayed_transactions transactions); all skipped");
my $recoveries = () = slurp_file($node->logfile) =~
  /database system was not properly shut down; automatic recovery in progress/g;
is($recoveries, $kills, "one crash recovery per kill ($recoveries)");

# The counts.
my %counts = split /[|\n]/, sql(q{
	SELECT 'events', count(*) FROM inventory_events.event
	UNION ALL SELECT 'reservations', count(*) FROM inventory_events.reservation
	UNION ALL SELECT 'publications ' || channel, count(*) FROM inventory_events.publication GROUP BY channel});
my $answers = 0;
$answers += $_ // 0 for @{ $acks->{answers} };
my @sorted = sort { $a <=> $b } @recovery_s;
diag(sprintf('%d kills (%d of every server process, %d of the postmaster alone) in %.0f s; '
		  . 'server ready again after %.1f s (median), %.1f s (max)',
		$kills, $whole_kills, $kills - $whole_kills, time - $t0, $sorted[ $#sorted / 2 ], $sorted[-1]));
diag(sprintf('%d operations answered to %d clients: %d acknowledged events, %d acknowledged reservations, '
		  . '%d refused', $answers, $nclients, scalar(@acked_ids), scalar(keys %{ $acks->{reservation} }),
		scalar(@{ $acks->{refused} })));
diag(sprintf('%d retries after a lost connection; %d found their operation committed before the crash, '
		  . 'its answer lost (%d reservations answered as replayed)',
		$acks->{retried}, $acks->{committed_before}, $acks->{replayed}));
diag(sprintf('%d events present (%d from the setup), %d reservations; publications: %s',
		$counts{events}, scalar(split /,/, $setup_ids), $counts{reservations},
		join(', ', map { "$_ " . ($counts{"publications $_"} // 0) } @channels)));
diag(sprintf('%d decoded records processed (%d events, %d publications); %d replayed records '
		  . '(%d transactions re-sent after a crash) skipped by commit LSN',
		$decoded_records, scalar(keys %decoded_event), scalar(keys %decoded_publication),
		$replayed_records, $replayed_transactions));

disconnect_sql();
$node->stop;
waitpid($postmaster, 0);
done_testing();
