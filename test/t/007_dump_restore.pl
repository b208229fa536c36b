# Logical backups: pg_dump and pg_restore give the whole extension back.
# - Every format (custom, directory, tar, plain, plain with one INSERT per
#   row), restored by pg_restore (plain, --single-transaction, -j 2 in
#   replica mode) or psql, into a new database: every
#   row of every table the extension keeps (master data; the log with ids,
#   versions, effects, idempotency keys, correlation ids and xids; dead
#   letters; staged rows; reservations, allocations, backorders, exceptions;
#   publications, what each channel was shown, pending publications, the
#   publisher's checkpoint; the log's homes) and every sequence equal the
#   source's; stock and the idempotency keys come with the dump (a restore
#   derives nothing from 0.3.0 on: the log's partitions get their indexes
#   after their rows) while the log loads out of version order (an event
#   was rewritten on disk, and a child location precedes its parent), and
#   equal the source's; verify() is empty;
#   3,000 streams load without filling the lock table; a retried idempotency
#   key returns the original event and applies nothing; a new event gets an
#   id above the old ones; a reader role's grants come back; the publisher
#   writes nothing until the first write adopts the log, then carries on.
# - A dump taken while appends, reservations, picks and the publisher run
#   restores to a consistent state (verify() empty, allocations equal the
#   reserved and picked stock, publication sequences gap-free).
# - --data-only into a freshly created extension (and with
#   --disable-triggers, then rebuild()); --schema-only gives an empty
#   extension.
# - A dump by the non-superuser database owner with reader access; a restore
#   by that owner is refused (CREATE EXTENSION needs a superuser) and
#   restores nothing with --single-transaction; a superuser's restore keeps
#   the owner's objects owned by the owner.
# - A restore into a cluster that does not preload the library works.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use IETest;

my $node = ie_node('source');
# A small lock table (16 x about 40 backends): a restore that kept a lock per
# stream of the log to the end of the COPY would fill it with 3,000 streams.
$node->append_conf('postgresql.conf', "inventory_events.database = 'erp'\ninventory_events.publisher_naptime = 100\n"
	  . "max_locks_per_transaction = 16");
$node->start;
my $host = $node->host;
my $port = $node->port;
my $backup = $node->basedir . '/dumps';
mkdir $backup;

$node->safe_psql('postgres', q{
	CREATE ROLE erp_owner LOGIN;
	CREATE ROLE r_reader;
	CREATE DATABASE erp OWNER erp_owner;
});
# The extension (a superuser creates it), and an object of the owner's own.
$node->safe_psql('erp', q{
	CREATE EXTENSION inventory_events;
	SELECT inventory_events.grant_access('r_reader', 'reader');
	SET ROLE erp_owner;
	CREATE TABLE public.orders (id int PRIMARY KEY, note text);
	INSERT INTO public.orders VALUES (1, 'kept by the owner');
});
$node->safe_psql('erp', q{
	SET search_path = inventory_events, public;
	INSERT INTO item (sku) SELECT 'S' || g FROM generate_series(1, 1500) g;
	INSERT INTO item (sku, lot_controlled) VALUES ('LOTTED', true);
	INSERT INTO item (sku) VALUES ('KIT');
	INSERT INTO item (sku, serialized) VALUES ('PHONE', true);
	INSERT INTO kit_component (kit, component, qty) VALUES ('KIT', 'S1', 1), ('KIT', 'S2', 2);
	INSERT INTO lot (sku, lot, expires_on) VALUES ('LOTTED', 'L1', '2099-12-31');
	INSERT INTO item_uom (sku, uom, factor) VALUES ('S1', 'CS', 12);
	INSERT INTO location (code) VALUES ('DC'), ('W1'), ('W2');
	-- A hierarchy whose parent row lies after its children on disk.
	UPDATE location SET parent = 'DC' WHERE code IN ('W1', 'W2');
	UPDATE location SET description = 'distribution centre' WHERE code = 'DC';
	INSERT INTO channel (code) VALUES ('web');
	INSERT INTO channel (code, allow_backorders, allow_split) VALUES ('edi', true, false);
	INSERT INTO channel (code, publish_interval) VALUES ('slow', '1 hour');
	INSERT INTO channel_location (channel, location, priority) VALUES
	    ('web', 'W1', 1), ('web', 'W2', 2), ('edi', 'W1', 1), ('slow', 'W1', 1);
	-- 3,000 streams (in transactions of 200: each holds its streams' locks).
	DO $$
	BEGIN
	    FOR g IN 1..1500 LOOP
	        PERFORM inventory_events.append('S' || g, w, 'received', 10, source => 'wms',
	                                        idempotency_key => 'asn-' || g || '-' || w)
	           FROM (VALUES ('W1'), ('W2')) l(w);
	        IF g % 100 = 0 THEN
	            COMMIT;
	        END IF;
	    END LOOP;
	END;
	$$;
	SELECT append('S1', 'W1', 'received', 2, uom => 'CS', source => 'wms', idempotency_key => 'asn-cs');
	SELECT append('S1', 'W1', 'damaged', 1), append('S1', 'W1', 'adjusted', -2),
	       append('S1', 'W1', 'safety_stock_set', 3), append('S1', 'W2', 'counted', 8),
	       append('S1', 'W1', 'returned', 1, ref => 'rma-1'),
	       append('S2', 'W1', 'moved', 2, from_bucket => 'available', to_bucket => 'quarantine'),
	       append('S3', 'W1', 'inbound_expected', 40, ref => 'po-1', expected_date => current_date + 7),
	       append('LOTTED', 'W1', 'received', 5, lot => 'L1', payload => '{"asn": "x"}');
	SELECT count(*) FROM transfer('S4', 'W1', 'W2', 4, 'tr-1', current_date + 2);
	-- Serials: received, one damaged, one sent to W2 and received there.
	SELECT append('PHONE', 'W1', 'received', 3, serials => ARRAY['P1', 'P2', 'P3']),
	       append('PHONE', 'W1', 'damaged', 1, serials => ARRAY['P2']);
	SELECT count(*) FROM transfer('PHONE', 'W1', 'W2', 1, 'tr-p', serials => ARRAY['P3']);
	SELECT receive_transfer('PHONE', 'W2', 1, 'tr-p');
	SELECT receive_transfer('S4', 'W2', 1, 'tr-1');
	SELECT count(*) FROM receive_po('S3', 'W1', 10, 'po-1');
	SELECT count(*) FROM ingest('[{"sku": "S5", "location": "W1", "event_type": "received", "qty": 1},
	                             {"sku": "NOPE", "location": "W1", "event_type": "received", "qty": 1}]');
	INSERT INTO event_staging (sku, location, event_type, qty) VALUES ('S6', 'W1', 'received', 3);
	SELECT count(*) FROM reserve('web', 'S1', 3, 'so-1');
	SELECT count(*) FROM reserve('web', 'S7', 15, 'so-2');
	SELECT count(*) FROM reserve('web', 'KIT', 2, 'so-kit');
	SELECT count(*) FROM reserve_lines('[{"channel": "web", "sku": "S8", "qty": 2, "ref": "so-3"},
	                                    {"channel": "web", "sku": "S9", "qty": 1, "ref": "so-4"}]');
	SELECT count(*) FROM reserve('edi', 'S10', 12, 'edi-1');
	SELECT count(*) FROM pick('web', 'so-1');
	SELECT count(*) FROM ship('web', 'so-1');
	SELECT count(*) FROM pick_short('web', 'so-3', 1);
	SELECT count(*) FROM release('web', 'so-4');
	SELECT count(*) FROM publish();
	SELECT append('S11', 'W1', 'received', 1);
	SELECT count(*) FROM publish();
});
# An event rewritten on disk: the first version of S1 at W1 now lies after
# all the others, so the dump has it out of version order.
$node->safe_psql('erp', q{
	SET inventory_events.allow_history_rewrite = on;
	UPDATE inventory_events.event SET reason = reason WHERE sku = 'S1' AND location = 'W1' AND version = 1;
});
is($node->safe_psql('erp', q{
	SELECT count(*) FROM (SELECT version, lag(version) OVER (ORDER BY ctid) AS before
	                        FROM inventory_events.event WHERE sku = 'S1' AND location = 'W1') x
	 WHERE version < before}), '1', 'the source log is out of version order on disk');
my $checkpoint = $node->safe_psql('erp', q{
	SELECT next_checkpoint FROM inventory_events.events_after('0:0', 100000) ORDER BY id DESC LIMIT 1});
$node->safe_psql('erp', q{SELECT inventory_events.append('S12', 'W1', 'received', 1)});
my $after_checkpoint = $node->safe_psql('erp',
	"SELECT string_agg(id::text, ',' ORDER BY id) FROM inventory_events.events_after('$checkpoint', 100000)");
is($after_checkpoint =~ tr/,//, 0, 'one event after the saved checkpoint');

# Everything the extension keeps, as text. The stock rows leave out
# updated_at (the time of the derivation); log_home the target's own home 0.
my @tables = (
	[item => 'sku'], [item_uom => 'sku, uom'], [location => 'code'], [lot => 'sku, lot'],
	[channel => 'code'], [channel_location => 'channel, location'], [kit_component => 'kit, component'],
	[event => 'id'], [dead_letter => 'id'], [event_staging => 'staged_id'], [reservation => 'id'],
	[allocation => 'id'], [exception => 'id'], [publication => 'channel, seq'],
	[channel_publisher => 'channel'], [channel_shown => 'channel, sku'],
	[publication_pending => 'channel, sku'], [publisher_checkpoint => 'only_row'],
	[serial => 'sku, serial'], [serial_event => 'sku, serial, version']);
my @sequences = qw(event_id_seq dead_letter_id_seq event_staging_staged_id_seq reservation_id_seq
  allocation_id_seq exception_id_seq);

sub contents
{
	my ($n, $db) = @_;
	my %c;
	for my $t (@tables)
	{
		$c{ $t->[0] } = $n->safe_psql($db, "SELECT t::text FROM inventory_events.$t->[0] t ORDER BY $t->[1]");
	}
	$c{stock} = $n->safe_psql($db, q{
		SELECT (sku, location, lot, available, reserved, picked, damaged, quarantine, in_transit, inbound,
		        on_hand, safety_stock, version, last_event_id)::text
		  FROM inventory_events.stock ORDER BY sku, location, lot});
	for my $s (@sequences)
	{
		$c{$s} = $n->safe_psql($db, "SELECT last_value || ' ' || is_called FROM inventory_events.$s");
	}
	return \%c;
}
my $source = contents($node, 'erp');
my $source_homes = $node->safe_psql('erp', 'SELECT t::text FROM inventory_events.log_home t ORDER BY 1');
my ($erp, $erp_homes) = ($source, $source_homes);
cmp_ok(length($source->{event}), '>', 100000, 'the source has a log worth dumping');

# Every table and sequence equal to the source's, stock derived, verify()
# empty, the source's homes plus the target's own.
sub same_as_source
{
	my ($n, $db, $label) = @_;
	my $got = contents($n, $db);
	my @differ = grep { $got->{$_} ne $source->{$_} } sort keys %$source;
	is("@differ", '', "$label: every table and sequence equals the source's");
	is($n->safe_psql($db, 'SELECT count(*) FROM inventory_events.verify()'), '0', "$label: verify() is empty");
	is($n->safe_psql($db, 'SELECT count(*) FROM inventory_events.serial_drift'), '0',
		"$label: every serial where the stock says");
	my ($sysid, $dboid) = split /\|/, $n->safe_psql($db, q{
		SELECT (SELECT system_identifier FROM pg_control_system()), oid FROM pg_database WHERE datname = current_database()});
	is($n->safe_psql($db, "SELECT t::text FROM inventory_events.log_home t
	                        WHERE NOT (home = 0 AND system_identifier = $sysid AND database_oid = $dboid) ORDER BY 1"),
		$source_homes, "$label: the source's homes came along");
	return;
}

# After a restore: not at home until the first write; an idempotent retry
# changes nothing; a new event gets a new id and adopts the log; the saved
# checkpoint still gives exactly the later events, then the new one.
sub works_after_restore
{
	my ($n, $db, $label) = @_;
	is($n->safe_psql($db, 'SELECT inventory_events.log_adopted()'), 'f', "$label: not at home before the first write");
	my $orig = $n->safe_psql($db, q{SELECT id FROM inventory_events.event WHERE source = 'wms' AND idempotency_key = 'asn-cs'});
	my $events = $n->safe_psql($db, 'SELECT count(*) FROM inventory_events.event');
	is($n->safe_psql($db, q{SELECT inventory_events.append('S1', 'W1', 'received', 2, uom => 'CS', source => 'wms',
	                                                       idempotency_key => 'asn-cs')}),
		$orig, "$label: a retried idempotency key returns the original event");
	is($n->safe_psql($db, 'SELECT count(*) FROM inventory_events.event'), $events, "$label: and applies nothing");
	my $max = $n->safe_psql($db, 'SELECT max(id) FROM inventory_events.event');
	my $new = $n->safe_psql($db, q{SELECT inventory_events.append('S13', 'W2', 'received', 5)});
	cmp_ok($new, '>', $max, "$label: a new event gets an id above the old ones");
	is($n->safe_psql($db, 'SELECT inventory_events.log_adopted()'), 't', "$label: the first write adopted the log");
	is($n->safe_psql($db,
			"SELECT string_agg(id::text, ',' ORDER BY id) FROM inventory_events.events_after('$checkpoint', 100000)"),
		"$after_checkpoint,$new", "$label: the checkpoint taken before the dump gives the later events, then the new one");
	is($n->safe_psql($db, q{SELECT count(*) FROM inventory_events.reserve('web', 'S14', 1, 'after-restore')}), '1',
		"$label: a reservation works");
	is($n->safe_psql($db, 'SELECT count(*) FROM inventory_events.verify()'), '0', "$label: verify() still empty");
	return;
}

my @conn = ('-h', $host, '-p', $port, '-U', $node->safe_psql('postgres', 'SELECT current_user'));

sub fresh_db
{
	my ($db) = @_;
	$node->safe_psql('postgres', "CREATE DATABASE $db OWNER erp_owner");
	return $db;
}

# --- every format, every way of restoring ---------------------------------

command_ok(['pg_dump', @conn, '-Fc', '-f', "$backup/erp.custom", 'erp'], 'pg_dump -Fc');
command_ok(['pg_dump', @conn, '-Fd', '-j', '2', '-f', "$backup/erp.dir", 'erp'], 'pg_dump -Fd -j 2');
command_ok(['pg_dump', @conn, '-Ft', '-f', "$backup/erp.tar", 'erp'], 'pg_dump -Ft');
command_ok(['pg_dump', @conn, '-Fp', '-f', "$backup/erp.sql", 'erp'], 'pg_dump -Fp');
command_ok(['pg_dump', @conn, '-Fp', '--inserts', '-f', "$backup/erp_inserts.sql", 'erp'], 'pg_dump --inserts');

# A parallel restore loads the tables in any order, while the foreign keys
# between the extension's tables exist from CREATE EXTENSION on: it runs in
# replica mode, which skips their checks (the dump is consistent) and fires
# the stock trigger (enabled ALWAYS). See the plain -j 2 below.
my @replica = ('env', 'PGOPTIONS=-c session_replication_role=replica');
my @restores = (
	[custom => ['pg_restore', @conn, '-d', 'r_custom', "$backup/erp.custom"]],
	[custom_single => ['pg_restore', @conn, '--single-transaction', '--exit-on-error', '-d', 'r_custom_single', "$backup/erp.custom"]],
	[custom_j2 => [@replica, 'pg_restore', @conn, '-j', '2', '-d', 'r_custom_j2', "$backup/erp.custom"]],
	[dir_j2 => [@replica, 'pg_restore', @conn, '-j', '2', '-d', 'r_dir_j2', "$backup/erp.dir"]],
	[tar => ['pg_restore', @conn, '--exit-on-error', '-d', 'r_tar', "$backup/erp.tar"]],
	[plain => ['psql', @conn, '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', 'r_plain', '-f', "$backup/erp.sql"]],
	# One INSERT per row: each event's trigger fires alone, S1's first version
	# last; in one transaction, for the location whose parent comes after it.
	[inserts => ['psql', @conn, '-X', '-q', '-1', '-v', 'ON_ERROR_STOP=1', '-d', 'r_inserts', '-f', "$backup/erp_inserts.sql"]]);
for my $r (@restores)
{
	my ($label, $cmd) = @$r;
	my $db = fresh_db("r_$label");
	my ($stdout, $stderr) = run_command($cmd);
	is($stderr, '', "$label: restored without an error");
	same_as_source($node, $db, $label);
	is($node->safe_psql($db, 'SELECT note FROM public.orders'), 'kept by the owner', "$label: the owner's table");
	is($node->safe_psql($db, q{SELECT has_table_privilege('r_reader', 'inventory_events.event', 'SELECT')
	                               AND has_function_privilege('r_reader', 'inventory_events.events_after(text, integer)', 'EXECUTE')}),
		't', "$label: the reader role's grants came back");
	works_after_restore($node, $db, $label) if $label =~ /^(custom|dir_j2|plain)$/;
}

# A parallel restore in the ordinary mode fails loudly (PostgreSQL restores
# the tables of an extension in parallel with no regard to the foreign keys
# between them): never silently.
{
	my $db = fresh_db('r_j2_plain');
	my ($stdout, $stderr) = run_command(['pg_restore', @conn, '-j', '2', '-d', $db, "$backup/erp.custom"]);
	like($stderr, qr/violates foreign key constraint/, 'plain -j 2: foreign key errors are reported');
	like($stderr, qr/errors ignored on restore/, 'plain -j 2: pg_restore reports the failure');
}

# The restored database's publisher: nothing until the first write (above),
# then it carries on. inventory_events.database names erp: the custom
# restore takes the source's place.
my $last_seq = $node->safe_psql('r_custom', q{SELECT last_seq FROM inventory_events.channel_publisher WHERE channel = 'web'});
# Renames a database while the publisher of erp is stopped (it holds a
# connection to erp).
sub rename_db
{
	my ($from, $to, $drop) = @_;
	$node->safe_psql($from, q{SELECT inventory_events.publisher_stop('erp')});
	$node->poll_query_until('postgres', qq{SELECT count(*) = 0 FROM pg_stat_activity WHERE datname IN ('$from', '$to')})
	  or die 'the publisher did not stop';
	$node->safe_psql('postgres', "DROP DATABASE $to") if $drop;
	$node->safe_psql('postgres', "ALTER DATABASE $from RENAME TO $to");
	$node->safe_psql($to, q{SELECT inventory_events.publisher_start('erp')});
	return;
}
rename_db('r_custom', 'erp', 1);
$node->poll_query_until('erp', q{
	SELECT count(*) = 0 FROM inventory_events.publication_pending WHERE channel = 'web'})
  or die 'the publisher did not catch up';
cmp_ok($node->safe_psql('erp', q{SELECT last_seq FROM inventory_events.channel_publisher WHERE channel = 'web'}),
	'>', $last_seq, 'the publisher publishes again after the restore');
is($node->safe_psql('erp', q{
	SELECT count(*) FROM (SELECT seq, lag(seq) OVER (ORDER BY seq) AS prev FROM inventory_events.publication
	                       WHERE channel = 'web') x WHERE prev IS NOT NULL AND seq <> prev + 1}),
	'0', 'its sequence continues the restored one without a gap');
is($node->safe_psql('erp', q{
	SELECT available FROM inventory_events.publication WHERE channel = 'web' AND sku = 'S13' ORDER BY seq DESC LIMIT 1}),
	$node->safe_psql('erp', q{SELECT inventory_events.channel_availability('web', 'S13')}),
	'the event appended after the restore is published');

# --- data only, schema only --------------------------------------------------

rename_db('erp', 'r_custom');
# With -n, -e too: pg_dump 15 crashes dumping the rows of an extension's
# configuration table that is a partition (event_default) when the extension
# itself is not selected (doc/operations.md).
# --load-via-partition-root: the rows go to whatever partitions the target
# has (doc/operations.md, "Data only").
command_ok(['pg_dump', @conn, '--data-only', '-n', 'inventory_events', '-e', 'inventory_events',
		'--load-via-partition-root', '-Fc', '-f', "$backup/data.custom", 'r_dir_j2'],
	'pg_dump --data-only of the extension\'s schema');
# (r_dir_j2 was written to after its restore: its own contents are the reference now.)
$source = contents($node, 'r_dir_j2');
$source_homes = $node->safe_psql('r_dir_j2', 'SELECT t::text FROM inventory_events.log_home t ORDER BY 1');
for my $disable (0, 1)
{
	my $label = $disable ? 'data_only_disable_triggers' : 'data_only';
	my $db = fresh_db("r_$label");
	# A data-only restore needs the partitions of the log it loads: the
	# source's were made by its worker for this month and three after it.
	$node->safe_psql($db, 'CREATE EXTENSION inventory_events; SELECT inventory_events.create_partitions()');
	my ($stdout, $stderr) = run_command(['pg_restore', @conn, '--data-only', ($disable ? '--disable-triggers' : ()),
		'-d', $db, "$backup/data.custom"]);
	is($stderr, '', "$label: restored into a new extension without an error");
	if ($disable)
	{
		# A restore derives nothing from 0.3.0 on: the stock rows come with the dump.
		is($node->safe_psql($db, q{SELECT count(*) FROM inventory_events.stock s
		                             WHERE NOT EXISTS (SELECT FROM inventory_events.stream_derived d
		                                                WHERE (d.sku, d.location, d.lot, d.version) = (s.sku, s.location, s.lot, s.version))}),
			'0', "$label: the stock rows come with the dump, as of its events");
		$node->safe_psql($db, 'SELECT inventory_events.rebuild()');
	}
	same_as_source($node, $db, $label);
}

# The recipe of doc/operations.md for very large logs: the data without
# triggers, then rebuild() once the post-data section has made the indexes.
{
	my $db = fresh_db('r_sections');
	my @steps = (['--section=pre-data'], ['--data-only', '--disable-triggers'], ['--section=post-data']);
	my $err = '';
	for my $step (@steps)
	{
		my ($stdout, $stderr) = run_command(['pg_restore', @conn, @$step, '-d', $db, "$backup/erp.custom"]);
		$err .= $stderr;
	}
	# After the post-data section: the log's partitions have their indexes.
	$node->safe_psql($db, 'SELECT inventory_events.rebuild()');
	is($err, '', 'sections: pre-data, data without triggers, post-data, rebuild()');
	my @saved = ($source, $source_homes);
	($source, $source_homes) = ($erp, $erp_homes);
	same_as_source($node, $db, 'sections');
	($source, $source_homes) = @saved;
}

command_ok(['pg_dump', @conn, '--schema-only', '-Fc', '-f', "$backup/schema.custom", 'r_dir_j2'], 'pg_dump --schema-only');
{
	my $db = fresh_db('r_schema_only');
	my ($stdout, $stderr) = run_command(['pg_restore', @conn, '-d', $db, "$backup/schema.custom"]);
	is($stderr, '', 'schema_only: restored without an error');
	is($node->safe_psql($db, q{
		SELECT (extversion = inventory_events.library_version()) || ' ' || (SELECT count(*) FROM inventory_events.event) || ' '
		       || (SELECT count(*) FROM inventory_events.item) FROM pg_extension WHERE extname = 'inventory_events'}),
		'true 0 0', 'schema_only: the extension at the current version, empty (its rows are data)');
}

# --- the owner, not a superuser ----------------------------------------------

$node->safe_psql('r_dir_j2', q{SELECT inventory_events.grant_access('erp_owner', 'reader')});
command_ok(['pg_dump', '-h', $host, '-p', $port, '-U', 'erp_owner', '-Fc', '-f', "$backup/owner.custom", 'r_dir_j2'],
	'the owner with reader access dumps the database');
{
	my $db = fresh_db('r_by_owner');
	my $single = fresh_db('r_by_owner_single');
	my ($stdout, $stderr) = run_command(['pg_restore', '-h', $host, '-p', $port, '-U', 'erp_owner',
		'-d', $db, "$backup/owner.custom"]);
	like($stderr, qr/permission denied to create extension "inventory_events"/,
		'a restore by the owner is refused: CREATE EXTENSION needs a superuser');
	is($node->safe_psql($db, q{SELECT count(*) FROM pg_extension WHERE extname = 'inventory_events'}), '0',
		'and the extension is not there');
	($stdout, $stderr) = run_command(['pg_restore', '-h', $host, '-p', $port, '-U', 'erp_owner',
		'--single-transaction', '-d', $single, "$backup/owner.custom"]);
	isnt($stderr, '', 'a restore by the owner in one transaction fails');
	is($node->safe_psql($single, q{SELECT count(*) FROM pg_class WHERE relname IN ('orders', 'event')}), '0',
		'and restores nothing');
	# The documented way: a superuser restores (into the database the owner owns).
	$node->safe_psql('postgres', "DROP DATABASE $db");
	fresh_db($db);
	($stdout, $stderr) = run_command(['pg_restore', @conn, '-d', $db, "$backup/owner.custom"]);
	is($stderr, '', 'a superuser restores the owner\'s dump');
	same_as_source($node, $db, 'by_superuser');
	is($node->safe_psql($db, q{SELECT tableowner FROM pg_tables WHERE tablename = 'orders'}), 'erp_owner',
		'the owner\'s table is still the owner\'s');
}

# --- a dump taken under load ---------------------------------------------------

rename_db('r_dir_j2', 'erp');
$node->poll_query_until('erp', q{
	SELECT state = 'idle' FROM inventory_events.publisher_status() WHERE database = 'erp'})
  or die 'the publisher does not run';
my $dir = $node->basedir;
append_to_file("$dir/load.sql", q{
\set s random(100, 400)
\set w random(1, 2)
BEGIN;
SELECT inventory_events.append('S' || :s, 'W' || :w, 'received', 2);
SELECT count(*) FROM inventory_events.reserve_lines(jsonb_build_array(jsonb_build_object(
    'channel', 'web', 'sku', 'S' || (:s + 1), 'qty', 1, 'ref', 'load-' || :client_id || '-' || :s || '-' || random())));
COMMIT;
});
my $load = IPC::Run::start(['pgbench', '-n', '-h', $host, '-p', $port, '-c', '4', '-T', '6',
		'-f', "$dir/load.sql", 'erp'], '>', "$dir/load.out", '2>', "$dir/load.err");
sleep 2;
command_ok(['pg_dump', @conn, '-Fc', '-f', "$backup/load.custom", 'erp'], 'pg_dump while the load runs');
ok($load->finish, 'the load ran without a client error') or diag(slurp_file("$dir/load.err"));
{
	my $db = fresh_db('r_load');
	# In the ordinary mode, so that the foreign keys between the tables are checked.
	my ($stdout, $stderr) = run_command(['pg_restore', @conn, '-d', $db, "$backup/load.custom"]);
	is($stderr, '', 'load: restored without an error');
	cmp_ok($node->safe_psql($db, 'SELECT count(*) FROM inventory_events.event'), '<',
		$node->safe_psql('erp', 'SELECT count(*) FROM inventory_events.event'),
		'load: the dump was taken while events were being appended');
	cmp_ok($node->safe_psql($db, q{SELECT count(*) FROM inventory_events.reservation WHERE ref LIKE 'load-%'}), '>', 0,
		'load: reservations made during the load are in the dump');
	is($node->safe_psql($db, 'SELECT count(*) FROM inventory_events.verify()'), '0', 'load: verify() is empty');
	is($node->safe_psql($db, q{
		SELECT count(*) FROM (
		    SELECT a.sku, a.location, a.lot, sum(a.reserved) AS reserved, sum(a.picked) AS picked
		      FROM inventory_events.allocation a GROUP BY 1, 2, 3) a
		  FULL JOIN (SELECT * FROM inventory_events.stock WHERE reserved <> 0 OR picked <> 0) s
		    USING (sku, location, lot)
		 WHERE coalesce(a.reserved, 0) <> coalesce(s.reserved, 0) OR coalesce(a.picked, 0) <> coalesce(s.picked, 0)}),
		'0', 'load: allocations equal the reserved and picked stock');
	is($node->safe_psql($db, q{
		SELECT count(*) FROM inventory_events.allocation a
		 WHERE NOT EXISTS (SELECT FROM inventory_events.event e WHERE e.id = a.event_id)}),
		'0', 'load: every allocation has its event');
	is($node->safe_psql($db, q{
		SELECT count(*) FROM inventory_events.channel_publisher cp
		 WHERE cp.last_seq <> (SELECT count(*) FROM inventory_events.publication p WHERE p.channel = cp.channel)
		    OR cp.last_seq <> (SELECT coalesce(max(seq), 0) FROM inventory_events.publication p WHERE p.channel = cp.channel)}),
		'0', 'load: publication sequences are gap-free and end at the channel\'s last_seq');
}

# --- a cluster that does not preload the library ---------------------------------

my $plain = ie_node('nopreload', preload => 0);
$plain->start;
$plain->safe_psql('postgres', 'CREATE ROLE erp_owner LOGIN; CREATE ROLE r_reader; CREATE DATABASE erp OWNER erp_owner');
{
	my ($stdout, $stderr) = run_command(['pg_restore', '-h', $plain->host, '-p', $plain->port, '-U', $conn[5],
		'-d', 'erp', "$backup/erp.custom"]);
	is($stderr, '', 'no preload: restored without an error');
	($source, $source_homes) = ($erp, $erp_homes);
	same_as_source($plain, 'erp', 'no_preload');
	works_after_restore($plain, 'erp', 'no_preload');
	is($plain->safe_psql('erp', 'SELECT publications > 0 FROM inventory_events.publish()'), 't',
		'no preload: publish() by hand publishes');
	my ($ret, $out, $err) = $plain->psql('erp', 'SELECT * FROM inventory_events.shared_state()');
	like($err, qr/shared_preload_libraries/, 'no preload: what needs the preloaded library says so');
}

done_testing();
