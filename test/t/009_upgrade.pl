# Updating a database from 0.1.0 to 0.2.0 (ALTER EXTENSION ... UPDATE).
#
# What it proves:
# 1. The 0.2.0 library serves the SQL objects of 0.1.0: a database created at
#    0.1.0 (roles given access with grant_access(), master data with a
#    lot-controlled item and a backorder channel) is used through the 0.1.0
#    API (append, ingest with a dead letter, reserve, reserve_lines, pick,
#    ship, release, a backorder filled by a receipt, transfer, publish by
#    hand) while library_version() is 0.2.0 and extversion 0.1.0; verify()
#    is empty.
# 2. SQL objects newer than the library are refused: with extversion set to
#    9.9.9, append(), reserve() and channel_availability() each fail with
#    SQLSTATE 55000, the message naming both versions and a hint; nothing is
#    written.
# 3. ALTER EXTENSION inventory_events UPDATE takes the 0.1.0 database to 0.2.0;
#    grant_access() is run again for each role, as doc/operations.md says.
# 4. The updated objects equal those of a fresh 0.2.0 install given the same
#    grant_access() calls: (a) pg_dump --binary-upgrade --schema-only of both
#    databases is identical once OIDs, LSNs, relfrozenxids, the database name
#    and the extconfig OID array are normalised; (b) catalog queries give
#    identical output: member objects, function definitions, aggregates,
#    columns, indexes, constraints, triggers (with tgenabled), views,
#    relation options, types, operators, ACLs of relations / functions /
#    columns / types / the schema, pg_init_privs, comments, enum labels,
#    sequences and their ownership, extconfig / extcondition, the extension
#    row; a plain pg_dump of each carries the same privileges.
# 5. The update keeps the data: every row of every table (events with id,
#    version, effect, xid, idempotency_key, correlation_id; stock; the rest)
#    and the sequences are unchanged, verify() is empty, log_home has the one
#    row home 0 for this database with offset 0, an events_after() checkpoint
#    saved at 0.1.0 returns exactly the events appended after it (two
#    appended after the update come, with xids above every older one), the
#    roles keep their access (events_after() through log_xmin(), which
#    anyone may execute) and gain 0.2.0's (log_home, the sequences) when
#    grant_access() runs again after the update, and 0.2.0's publish() continues
#    every channel's publication sequence without a gap.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IETest;

my $node = ie_node('upgrade');
$node->start;
my $dir = $node->basedir;

# Runs SQL in a new session; ok() when it succeeds, the output either way.
sub sql_ok
{
	my ($db, $sql, $name) = @_;
	my ($ret, $out, $err) = $node->psql($db, $sql);
	ok($ret == 0, $name) or diag("$sql\n$err");
	return $out;
}

# A unified diff of two texts (at most 400 lines).
sub text_diff
{
	my ($left, $right, $left_file, $right_file) = @_;
	foreach ([ $left_file, $left ], [ $right_file, $right ])
	{
		open(my $fh, '>', "$dir/$_->[0]") or die "$dir/$_->[0]: $!";
		print $fh $_->[1];
		close $fh;
	}
	my ($out, $err);
	IPC::Run::run([ 'diff', '-u', "$dir/$left_file", "$dir/$right_file" ], '>', \$out, '2>', \$err);
	my @lines = split /\n/, $out;
	splice(@lines, 400, scalar(@lines) - 400, '... (diff cut at 400 lines)') if @lines > 400;
	return join("\n", @lines);
}

# Runs a query in both databases and requires identical output.
sub same_in_both
{
	my ($name, $sql) = @_;
	my $u = $node->safe_psql('upgraded', $sql);
	my $f = $node->safe_psql('fresh', $sql);
	ok($u eq $f && $u ne '', "$name: updated equals fresh") or diag(text_diff($u, $f, 'updated.out', 'fresh.out'));
}

# Roles, given access in the order of their names (the update grants 0.2.0's
# privileges to them in that order, so the order of ACL items is the same in
# both databases).
$node->safe_psql('postgres', q{
	CREATE ROLE r_admin NOLOGIN;
	CREATE ROLE r_reader NOLOGIN;
	CREATE ROLE r_writer NOLOGIN;
	CREATE DATABASE upgraded;
	CREATE DATABASE newer;
	CREATE DATABASE fresh;
});
my $grants = q{
	SELECT inventory_events.grant_access('r_admin', 'admin'), inventory_events.grant_access('r_reader', 'reader'),
	       inventory_events.grant_access('r_writer', 'writer');
};

# ---------------------------------------------------------------------------
# 1. 0.1.0 installed and used, served by the 0.2.0 library.
# ---------------------------------------------------------------------------
sql_ok('upgraded', q{CREATE EXTENSION inventory_events VERSION '0.1.0'}, 'CREATE EXTENSION inventory_events VERSION 0.1.0');
sql_ok('upgraded', $grants, 'grant_access() at 0.1.0 for r_admin, r_reader, r_writer');
is($node->safe_psql('upgraded', q{
	SELECT inventory_events.library_version() || ' ' || extversion FROM pg_extension WHERE extname = 'inventory_events'}),
	'0.2.0 0.1.0', 'library_version() is 0.2.0 while extversion is 0.1.0');

sql_ok('upgraded', q{
	SET search_path = inventory_events, public;
	INSERT INTO item (sku) VALUES ('TEE'), ('MUG'), ('CAP');
	INSERT INTO item (sku, lot_controlled) VALUES ('VIT', true);
	INSERT INTO lot (sku, lot, expires_on) VALUES ('VIT', 'L1', '2099-01-01');
	INSERT INTO item_uom (sku, uom, factor) VALUES ('TEE', 'CS', 6);
	INSERT INTO location (code) VALUES ('DAL'), ('RNO');
	INSERT INTO channel (code, kind) VALUES ('web', 'storefront');
	INSERT INTO channel (code, kind, allow_split, allow_backorders) VALUES ('edi', 'edi_partner', false, true);
	INSERT INTO channel_location (channel, location, priority) VALUES ('web', 'DAL', 1), ('web', 'RNO', 2), ('edi', 'DAL', 1);
}, 'master data at 0.1.0: items (one lot-controlled, with a lot), a unit, locations, channels (one with backorders)');

is($node->safe_psql('upgraded', q{
	SET search_path = inventory_events, public;
	SELECT append('TEE', 'DAL', 'received', 20, source => 'wms', idempotency_key => 'r-1') > 0,
	       append('TEE', 'RNO', 'received', 2, uom => 'CS') > 0,
	       append('MUG', 'DAL', 'received', 5) > 0,
	       append('VIT', 'DAL', 'received', 12, lot => 'L1') > 0,
	       append('CAP', 'DAL', 'received', 4) > 0,
	       append('TEE', 'DAL', 'damaged', 1) > 0,
	       append('MUG', 'DAL', 'adjusted', -1, reason => 'found broken') > 0,
	       append('TEE', 'DAL', 'safety_stock_set', 2) > 0;
	SELECT append('TEE', 'DAL', 'received', 20, source => 'wms', idempotency_key => 'r-1')
	       = (SELECT id FROM event WHERE idempotency_key = 'r-1');
}), "t|t|t|t|t|t|t|t\nt", 'append() of several event types (received, a case unit, a lot, damaged, adjusted, safety stock), an idempotent retry');

is($node->safe_psql('upgraded', q{
	SELECT string_agg(ordinal || ':' || status || coalesce(':' || sqlstate, ''), ' ' ORDER BY ordinal)
	  FROM inventory_events.ingest('[
	    {"sku": "MUG", "location": "RNO", "event_type": "received", "qty": 7, "source": "erp", "idempotency_key": "i-1"},
	    {"sku": "NOPE", "location": "DAL", "event_type": "received", "qty": 1, "source": "erp", "idempotency_key": "i-2"},
	    {"sku": "CAP", "location": "RNO", "event_type": "received", "qty": 3, "source": "erp", "idempotency_key": "i-3"}]');
	SELECT count(*) || ' ' || min(batch_ordinal) || ' ' || min(idempotency_key) FROM inventory_events.dead_letter;
}), "1:applied 2:dead_lettered:23503 3:applied\n1 2 i-2", 'ingest() of a batch: the bad element is dead-lettered, the others applied');

is($node->safe_psql('upgraded', q{
	SELECT string_agg(status || ' ' || location || ' ' || qty, ', ') FROM inventory_events.reserve('web', 'TEE', 5, 'O-1');
}), 'reserved DAL 5', 'reserve()');
is($node->safe_psql('upgraded', q{
	SELECT string_agg(ordinal || ' ' || status || ' ' || location || ' ' || lot || ' ' || qty, ', ' ORDER BY ordinal)
	  FROM inventory_events.reserve_lines('[{"channel": "web", "sku": "MUG", "qty": 2, "ref": "O-2"},
	                                        {"channel": "web", "sku": "VIT", "qty": 3, "ref": "O-3"}]');
}), '1 reserved DAL  2, 2 reserved DAL L1 3', 'reserve_lines(), one line of a lot-controlled item');
is($node->safe_psql('upgraded', q{
	SELECT string_agg(event_type || ' ' || qty, ', ') FROM inventory_events.pick('web', 'O-1');
	SELECT string_agg(event_type || ' ' || qty, ', ') FROM inventory_events.ship('web', 'O-1');
	SELECT string_agg(event_type || ' ' || qty, ', ') FROM inventory_events.release('web', 'O-2');
}), "picked 5\nshipped 5\nreleased 2", 'pick(), ship(), release()');
is($node->safe_psql('upgraded', q{
	SELECT string_agg(status || ' ' || qty, ', ' ORDER BY status DESC) FROM inventory_events.reserve('edi', 'CAP', 6, 'E-1');
}), 'reserved 4, backordered 2', 'reserve() on the backorder channel: 4 reserved, 2 backordered');

# The checkpoint of a polling consumer that has read everything so far.
ok($node->poll_query_until('upgraded', q{
	SELECT count(*) = (SELECT count(*) FROM inventory_events.event) FROM inventory_events.events_after('0:0', 100000)}),
	'events_after() at 0.1.0 reaches every event');
my ($checkpoint, $checkpoint_id) = split /\|/, $node->safe_psql('upgraded', q{
	SELECT next_checkpoint, id FROM inventory_events.events_after('0:0', 100000) WITH ORDINALITY e
	 ORDER BY ordinality DESC LIMIT 1});
like($checkpoint, qr/^\d+:\d+$/, "an events_after() checkpoint saved at 0.1.0 ($checkpoint)");

is($node->safe_psql('upgraded', q{
	SELECT string_agg(event_type || ' ' || location || ' ' || qty, ', ') FROM inventory_events.transfer('TEE', 'DAL', 'RNO', 3, 'T-1');
	SELECT inventory_events.receive_transfer('TEE', 'RNO', 2, 'T-1') > 0;
	SELECT inventory_events.append('CAP', 'DAL', 'received', 1) > 0;
	SELECT backordered FROM inventory_events.reservation WHERE channel = 'edi' AND ref = 'E-1';
}), "transfer_out DAL 3, transfer_in_transit RNO 3\nt\nt\n1", 'transfer(), receive_transfer(); a receipt fills the backorder');

ok($node->poll_query_until('upgraded', q{
	SELECT pg_snapshot_xmin(pg_current_snapshot()) > max(xid) FROM inventory_events.event}),
	'every event is below the readers\' horizon');
is($node->safe_psql('upgraded', q{
	SELECT events || ' ' || publications FROM inventory_events.publish();
	SELECT string_agg(channel || ' ' || n || ' ' || m, ', ' ORDER BY channel)
	  FROM (SELECT channel, count(*) n, max(seq) m FROM inventory_events.publication GROUP BY channel) x;
}), "22 8\nedi 4 4, web 4 4", "0.1.0's publish() by hand: every event read, 4 publications per channel");
is($node->safe_psql('upgraded', q{SELECT count(*) FROM inventory_events.verify()}), '0',
	'verify() is empty at 0.1.0');

# ---------------------------------------------------------------------------
# 2. SQL objects newer than the library are refused, and nothing is written.
# ---------------------------------------------------------------------------
sql_ok('newer', q{
	CREATE EXTENSION inventory_events;
	INSERT INTO inventory_events.item (sku) VALUES ('A');
	INSERT INTO inventory_events.location (code) VALUES ('W1');
	INSERT INTO inventory_events.channel (code) VALUES ('web');
	INSERT INTO inventory_events.channel_location (channel, location) VALUES ('web', 'W1');
	SELECT inventory_events.append('A', 'W1', 'received', 5);
}, 'another database at 0.2.0 with a little master data and an event');
my $newer_state = q{
	SELECT (SELECT count(*) FROM inventory_events.event) || ' ' || (SELECT count(*) FROM inventory_events.reservation)
	       || ' ' || (SELECT string_agg(s::text, ',') FROM inventory_events.stock s)};
my $newer_before = $node->safe_psql('newer', $newer_state);
$node->safe_psql('newer', q{UPDATE pg_extension SET extversion = '9.9.9' WHERE extname = 'inventory_events'});
foreach my $call (
	q{SELECT inventory_events.append('A', 'W1', 'received', 1)},
	q{SELECT * FROM inventory_events.reserve('web', 'A', 1, 'o-1')},
	q{SELECT inventory_events.channel_availability('web', 'A')})
{
	my ($fn) = $call =~ /inventory_events\.(\w+)/;
	my ($ret, $out, $err) = $node->psql('newer', "\\set VERBOSITY verbose\n$call");
	isnt($ret, 0, "$fn() with extversion 9.9.9 fails");
	my ($state, $message) = $err =~ /ERROR:  (\w{5}): (.*)$/m;
	my ($hint) = $err =~ /HINT:  (.*)$/m;
	is($state, '55000', "$fn(): SQLSTATE 55000");
	is($message, q{the inventory_events library 0.2.0 cannot serve version 9.9.9 of the extension's SQL objects},
		"$fn(): the message names the library's and the objects' versions");
	is($hint, 'Install the shared library of inventory_events 9.9.9 or later, then restart the server.',
		"$fn(): the hint says what to install");
}
is($node->safe_psql('newer', $newer_state), $newer_before, 'nothing was written (events, reservations, stock)');

# ---------------------------------------------------------------------------
# 3. The update. Everything it must keep is read first.
# ---------------------------------------------------------------------------
my %before;
my %data_queries = (
	events => q{SELECT string_agg(format('%s %s %s %s %s %s | %s', id, version, effect, xid, idempotency_key, correlation_id, e::text), E'\n' ORDER BY id)
	              FROM inventory_events.event e},
	stock => q{SELECT string_agg(s::text, E'\n' ORDER BY sku, location, lot) FROM inventory_events.stock s},
	sequences => q{SELECT string_agg(sequencename || ' ' || coalesce(last_value::text, 'not called'), E'\n' ORDER BY sequencename)
	                 FROM pg_sequences WHERE schemaname = 'inventory_events'},
	'the other tables\' rows' => join("\nUNION ALL ", map {
		qq{SELECT '$_ ' || count(*) || ' ' || md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')) FROM inventory_events.$_ t}
	} qw(item item_uom location lot channel channel_location kit_component dead_letter event_staging reservation
		allocation exception publication channel_publisher channel_shown publication_pending publisher_checkpoint)),
);
$before{$_} = $node->safe_psql('upgraded', $data_queries{$_}) foreach keys %data_queries;
my $older_max_xid = $node->safe_psql('upgraded', q{SELECT max(xid) FROM inventory_events.event});
my %seq_before = map { split / / } split /\n/, $node->safe_psql('upgraded', q{
	SELECT channel || ' ' || max(seq) FROM inventory_events.publication GROUP BY channel});

sql_ok('upgraded', 'ALTER EXTENSION inventory_events UPDATE', 'ALTER EXTENSION inventory_events UPDATE');
is($node->safe_psql('upgraded', q{
	SELECT extversion || ' ' || inventory_events.library_version() FROM pg_extension WHERE extname = 'inventory_events'}),
	'0.2.0 0.2.0', 'extversion is 0.2.0');
# Right after the update the roles keep what they had: the reader's
# events_after() needs log_xmin(), which anyone may execute.
is(sql_ok('upgraded', q{
	SET ROLE r_reader;
	SELECT count(*) > 0 FROM inventory_events.events_after('0:0');
	SELECT has_table_privilege('inventory_events.log_home', 'SELECT');
}, 'r_reader right after the update'), "t
f", 'r_reader reads the log at once; log_home only after grant_access() again');
# What 0.2.0 adds for them comes with grant_access() run again after the
# update (doc/operations.md): granted inside the update script it would
# become an initial privilege of the extension, which pg_dump leaves out.
sql_ok('upgraded', $grants, 'grant_access() again after the update');

# ---------------------------------------------------------------------------
# 4. The updated objects equal a fresh install.
# ---------------------------------------------------------------------------
sql_ok('fresh', 'CREATE EXTENSION inventory_events', 'CREATE EXTENSION inventory_events (0.2.0) in another database');
sql_ok('fresh', $grants, 'the same grant_access() calls there');

# 4a. pg_dump --binary-upgrade --schema-only: every member object with its
# definition, ACL and initial privileges.
sub dump_of
{
	my ($db, @options) = @_;
	my ($out, $err);
	my $ok = IPC::Run::run([ 'pg_dump', @options, '-h', $node->host, '-p', $node->port, '-d', $db ],
		'>', \$out, '2>', \$err);
	ok($ok, "pg_dump @options of $db") or diag($err);
	return $out;
}

sub normalised
{
	my ($dump, $db) = @_;
	my @lines;
	foreach (split /\n/, $dump)
	{
		next if /^\\(?:un)?restrict /;    # a random key per run
		s/(binary_upgrade_set_next_\w+)\('\d+'::pg_catalog\.oid\)/$1('<oid>'::pg_catalog.oid)/;
		s/(binary_upgrade_set_next_attribute_versions)\('\{[^}]*\}'/$1('<lsns>'/;
		s/(binary_upgrade_create_empty_extension\('inventory_events', 'inventory_events', (?:true|false), '[^']*', )'\{[\d,]*\}'/$1'<extconfig oids>'/;
		s/^SET relfrozenxid = '\d+', relminmxid = '\d+'$/SET relfrozenxid = '<xid>', relminmxid = '<mxid>'/;
		s/^WHERE oid = '\d+';$/WHERE oid = '<toast oid>';/;
		# the current value of a sequence registered with pg_extension_config_dump (data)
		s/^(SELECT pg_catalog\.setval\('[\w.]+', )\d+, (?:true|false)\);$/$1<value>);/;
		s/\b\Q$db\E\b/<database>/g if /DATABASE|\\connect/;
		push @lines, $_;
	}
	return join("\n", @lines) . "\n";
}
my $dump_u = normalised(dump_of('upgraded', '--binary-upgrade', '--schema-only'), 'upgraded');
my $dump_f = normalised(dump_of('fresh', '--binary-upgrade', '--schema-only'), 'fresh');
like($dump_f, qr/binary_upgrade_create_empty_extension\('inventory_events'/, 'the binary-upgrade dump has the extension');
ok($dump_u eq $dump_f, 'pg_dump --binary-upgrade --schema-only: updated equals fresh (normalised)')
  or diag(text_diff($dump_u, $dump_f, 'updated.dump', 'fresh.dump'));

# 4b. Catalog queries.
my $ext = q{(SELECT oid FROM pg_extension WHERE extname = 'inventory_events')};
my $members = qq{(SELECT classid, objid FROM pg_depend WHERE refclassid = 'pg_extension'::regclass AND refobjid = $ext AND deptype = 'e')};
my $rels = q{(SELECT oid FROM pg_class WHERE relnamespace = 'inventory_events'::regnamespace)};
my $procs = q{(SELECT oid FROM pg_proc WHERE pronamespace = 'inventory_events'::regnamespace)};

same_in_both('member objects', qq{
	SELECT pg_describe_object(classid, objid, objsubid) FROM pg_depend
	 WHERE refclassid = 'pg_extension'::regclass AND refobjid = $ext AND deptype = 'e' ORDER BY 1});
same_in_both('the extension row', q{
	SELECT extname, extowner::regrole, extnamespace::regnamespace, extrelocatable, extversion FROM pg_extension
	 WHERE extname = 'inventory_events'});
same_in_both('function definitions (pg_get_functiondef) and owners', qq{
	SELECT p.oid::regprocedure::text, pg_get_userbyid(p.proowner), pg_get_functiondef(p.oid) FROM pg_proc p
	 WHERE p.oid IN $procs AND p.prokind <> 'a' ORDER BY 1});
same_in_both('aggregates', qq{
	SELECT a.aggfnoid::regprocedure::text, a.aggkind, a.aggnumdirectargs, a.aggtransfn, a.aggfinalfn, a.aggcombinefn,
	       a.aggserialfn, a.aggdeserialfn, a.aggmtransfn, a.aggminvtransfn, a.aggmfinalfn, a.aggfinalextra,
	       a.aggmfinalextra, a.aggfinalmodify, a.aggmfinalmodify, a.aggsortop::regoperator, a.aggtranstype::regtype,
	       a.aggtransspace, a.aggmtranstype::regtype, a.aggmtransspace, a.agginitval, a.aggminitval, p.proparallel
	  FROM pg_aggregate a JOIN pg_proc p ON p.oid = a.aggfnoid WHERE p.oid IN $procs ORDER BY 1});
same_in_both('relations (kind, persistence, options, owner, replica identity, row security)', qq{
	SELECT c.relname, c.relkind, c.relpersistence, c.reloptions, pg_get_userbyid(c.relowner), c.relreplident,
	       c.relrowsecurity, c.relhasindex, c.relhastriggers, c.relispartition
	  FROM pg_class c WHERE c.oid IN $rels ORDER BY 1});
same_in_both('columns (name, type, not null, default, identity, generated, collation) in attnum order', qq{
	SELECT c.oid::regclass::text, a.attnum, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
	       pg_get_expr(d.adbin, d.adrelid), a.attidentity, a.attgenerated, a.attisdropped, a.attcollation::regcollation,
	       a.attstorage, a.attcompression, a.attstattarget,
	       (SELECT array_agg(o) FROM unnest(a.attoptions) o WHERE o NOT LIKE 'pg_attver=%') AS attoptions
	  FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0
	  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
	 WHERE c.oid IN $rels ORDER BY 1, 2});
same_in_both('indexes (pg_get_indexdef)', qq{
	SELECT i.indrelid::regclass::text, pg_get_indexdef(i.indexrelid), i.indisprimary, i.indisunique, i.indisreplident
	  FROM pg_index i WHERE i.indrelid IN $rels ORDER BY 1, 2});
same_in_both('constraints (pg_get_constraintdef)', qq{
	SELECT coalesce(c.conrelid::regclass::text, c.contypid::regtype::text), c.conname, c.contype,
	       pg_get_constraintdef(c.oid), c.condeferrable, c.condeferred, c.convalidated
	  FROM pg_constraint c
	 WHERE c.conrelid IN $rels OR c.contypid IN (SELECT oid FROM pg_type WHERE typnamespace = 'inventory_events'::regnamespace)
	 ORDER BY 1, 2});
same_in_both('triggers (pg_get_triggerdef, tgenabled)', qq{
	SELECT t.tgrelid::regclass::text, t.tgname, pg_get_triggerdef(t.oid), t.tgenabled
	  FROM pg_trigger t WHERE t.tgrelid IN $rels AND NOT t.tgisinternal ORDER BY 1, 2});
same_in_both('views (pg_get_viewdef)', qq{
	SELECT c.oid::regclass::text, pg_get_viewdef(c.oid) FROM pg_class c WHERE c.oid IN $rels AND c.relkind = 'v' ORDER BY 1});
same_in_both('types', q{
	SELECT t.typname, t.typtype, t.typlen, t.typbyval, t.typalign, t.typstorage, t.typcategory, t.typinput, t.typoutput,
	       t.typreceive, t.typsend, t.typmodin, t.typmodout, t.typanalyze, t.typelem::regtype, t.typarray::regtype,
	       t.typrelid::regclass, t.typcollation::regcollation, t.typdefault, pg_get_userbyid(t.typowner)
	  FROM pg_type t WHERE t.typnamespace = 'inventory_events'::regnamespace ORDER BY 1});
same_in_both('operators', q{
	SELECT o.oid::regoperator::text, o.oprkind, o.oprresult::regtype, o.oprcode, o.oprcom::regoperator,
	       o.oprnegate::regoperator, o.oprrest, o.oprjoin, o.oprcanmerge, o.oprcanhash
	  FROM pg_operator o WHERE o.oprnamespace = 'inventory_events'::regnamespace ORDER BY 1});
same_in_both('enum labels in sort order', q{
	SELECT e.enumtypid::regtype::text, string_agg(e.enumlabel, ', ' ORDER BY e.enumsortorder)
	  FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid
	 WHERE t.typnamespace = 'inventory_events'::regnamespace GROUP BY 1 ORDER BY 1});
same_in_both('sequences (parameters, ownership)', qq{
	SELECT s.seqrelid::regclass::text, s.seqtypid::regtype, s.seqstart, s.seqincrement, s.seqmax, s.seqmin, s.seqcache,
	       s.seqcycle,
	       (SELECT string_agg(pg_describe_object(d.refclassid, d.refobjid, d.refobjsubid) || ' ' || d.deptype::text, ', ')
	          FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = s.seqrelid AND d.refobjsubid > 0)
	  FROM pg_sequence s WHERE s.seqrelid IN $rels ORDER BY 1});
same_in_both('relation ACLs (relacl)', qq{
	SELECT c.oid::regclass::text, c.relacl FROM pg_class c WHERE c.oid IN $rels ORDER BY 1});
same_in_both('function ACLs (proacl)', qq{
	SELECT p.oid::regprocedure::text, p.proacl FROM pg_proc p WHERE p.oid IN $procs ORDER BY 1});
same_in_both('column ACLs (attacl)', qq{
	SELECT a.attrelid::regclass::text, a.attname, a.attacl FROM pg_attribute a
	 WHERE a.attrelid IN $rels AND a.attacl IS NOT NULL ORDER BY 1, 2});
same_in_both('type and schema ACLs', q{
	SELECT 'type ' || t.typname, t.typacl::text FROM pg_type t WHERE t.typnamespace = 'inventory_events'::regnamespace
	UNION ALL SELECT 'schema', n.nspacl::text FROM pg_namespace n WHERE n.nspname = 'inventory_events'
	ORDER BY 1});
same_in_both('initial privileges (pg_init_privs)', q{
	SELECT pg_describe_object(i.classoid, i.objoid, i.objsubid), i.privtype, i.initprivs FROM pg_init_privs i
	 WHERE i.objoid >= 16384 ORDER BY 1});
same_in_both('comments', q{
	SELECT pg_describe_object(d.classoid, d.objoid, d.objsubid), d.description FROM pg_description d
	 WHERE d.objoid >= 16384 ORDER BY 1});
same_in_both('extconfig / extcondition (a sorted set)', q{
	SELECT u.c::regclass::text, u.cond FROM pg_extension e, unnest(e.extconfig, e.extcondition) u(c, cond)
	 WHERE e.extname = 'inventory_events' ORDER BY 1});

# What the initial privileges decide: the GRANTs a plain pg_dump carries
# (a restore creates the extension afresh, then applies them).
my $acl_lines = sub { join("\n", grep { /^(GRANT|REVOKE) / } split /\n/, $_[0]) . "\n" };
my $plain_u = $acl_lines->(dump_of('upgraded', '--schema-only'));
my $plain_f = $acl_lines->(dump_of('fresh', '--schema-only'));
like($plain_f, qr/GRANT USAGE ON SCHEMA inventory_events TO r_reader;/, 'a plain dump of fresh carries the roles\' grants');
ok($plain_u eq $plain_f, 'a plain pg_dump of updated carries the same GRANTs / REVOKEs as one of fresh')
  or diag(text_diff($plain_u, $plain_f, 'updated.grants', 'fresh.grants'));

# ---------------------------------------------------------------------------
# 5. The data survives the update.
# ---------------------------------------------------------------------------
foreach my $what (sort keys %data_queries)
{
	is($node->safe_psql('upgraded', $data_queries{$what}), $before{$what}, "$what unchanged by the update");
}
is($node->safe_psql('upgraded', q{SELECT count(*) FROM inventory_events.verify()}), '0', 'verify() is empty after the update');
is($node->safe_psql('upgraded', q{
	SELECT count(*) || ' ' || min(home) || ' ' || min(xid_offset) || ' '
	       || bool_and(database_oid = (SELECT oid FROM pg_database WHERE datname = current_database())) || ' '
	       || bool_and(system_identifier = (SELECT system_identifier FROM pg_control_system()))
	  FROM inventory_events.log_home;
	SELECT inventory_events.log_adopted();
}), "1 0 0 true true\nt", 'log_home: one row, home 0, offset 0, this cluster and database; log_adopted()');

# Two events after the update; the checkpoint of 0.1.0 leads to exactly the
# events appended after it, these two included.
my @new_ids = split /\n/, $node->safe_psql('upgraded', q{
	SELECT inventory_events.append('TEE', 'DAL', 'received', 1);
	SELECT inventory_events.append('MUG', 'DAL', 'received', 2);
});
is(scalar(@new_ids), 2, 'two events appended after the update');
ok($node->poll_query_until('upgraded', q{SELECT inventory_events.log_xmin() > max(xid) FROM inventory_events.event}),
	'every event is below the readers\' horizon');
my $after_checkpoint = $node->safe_psql('upgraded', qq{
	SELECT string_agg(id::text, ',' ORDER BY ordinality) FROM inventory_events.events_after('$checkpoint', 100000) WITH ORDINALITY});
is($after_checkpoint, $node->safe_psql('upgraded', qq{
	SELECT string_agg(id::text, ',' ORDER BY xid, id) FROM inventory_events.event WHERE id > $checkpoint_id}),
	'events_after() of the 0.1.0 checkpoint returns exactly the events appended after it');
like(",$after_checkpoint,", qr/,$new_ids[0],$new_ids[1],$/, 'the two new events come, last and in order');
is($node->safe_psql('upgraded', qq{
	SELECT bool_and(xid > '$older_max_xid'::xid8) FROM inventory_events.event WHERE id IN ($new_ids[0], $new_ids[1])}),
	't', 'their xids are above every older one');

# The roles keep their access and gain 0.2.0's.
is(sql_ok('upgraded', q{
	SET ROLE r_reader;
	SELECT count(*) > 0 FROM inventory_events.events_after('0:0');
	SELECT count(*) FROM inventory_events.log_home;
	SELECT last_value > 0 FROM inventory_events.event_id_seq;
	SELECT inventory_events.channel_availability('web', 'TEE') > 0;
}, 'r_reader: events_after() (through log_xmin()), log_home, a sequence, channel_availability()'), "t\n1\nt\nt",
	'r_reader reads what it read and what 0.2.0 adds');
my ($ret, $out, $err) = $node->psql('upgraded', q{
	SET ROLE r_reader; SELECT inventory_events.append('TEE', 'DAL', 'received', 1)});
like($err, qr/permission denied for function append/, 'r_reader still cannot append()');
is(sql_ok('upgraded', q{
	SET ROLE r_writer;
	SELECT inventory_events.append('TEE', 'RNO', 'received', 1) > 0;
	SELECT count(*) FROM inventory_events.reserve('web', 'MUG', 1, 'O-9');
}, 'r_writer: append(), reserve()'), "t\n1", 'r_writer appends and reserves');
is(sql_ok('upgraded', q{
	SET ROLE r_admin;
	INSERT INTO inventory_events.item (sku) VALUES ('HAT');
	SELECT count(*) FROM inventory_events.log_home;
}, 'r_admin: master data, log_home'), '1', 'r_admin maintains master data');
my $executes = q{
	SELECT string_agg(r || ' ' || f, ', ' ORDER BY r, f)
	  FROM unnest(ARRAY['r_admin', 'r_reader', 'r_writer']) r,
	       unnest(ARRAY['log_xmin()', 'log_adopted()', 'log_xid()', 'require_writable(text)', 'events_after(text, integer)',
	                    'ingest(jsonb)', 'publish(integer)', 'rebuild(integer)']) f
	 WHERE has_function_privilege(r, 'inventory_events.' || f, 'EXECUTE')};
is($node->safe_psql('upgraded', $executes), $node->safe_psql('fresh', $executes),
	'each role may execute the same functions as in a fresh install');

# 0.2.0's publish() continues each channel's sequence without a gap.
ok($node->poll_query_until('upgraded', q{SELECT inventory_events.log_xmin() > max(xid) FROM inventory_events.event}),
	'every event is below the readers\' horizon');
my ($events, $publications) = split /\|/, $node->safe_psql('upgraded', q{SELECT events, publications FROM inventory_events.publish()});
is($events, 4, "0.2.0's publish() reads the four events appended since 0.1.0's");
cmp_ok($publications, '>=', 2, "and publishes ($publications)");
foreach my $channel (sort keys %seq_before)
{
	is($node->safe_psql('upgraded', qq{
		SELECT count(*) = max(seq) AND min(seq) FILTER (WHERE seq > $seq_before{$channel}) = $seq_before{$channel} + 1
		       AND max(seq) = (SELECT last_seq FROM inventory_events.channel_publisher WHERE channel = '$channel')
		  FROM inventory_events.publication WHERE channel = '$channel'}),
		't', "channel $channel: publications continue after seq $seq_before{$channel} without a gap");
}
is($node->safe_psql('upgraded', q{
	SELECT count(*) FROM inventory_events.channel c, inventory_events.item i
	 WHERE coalesce((SELECT s.available FROM inventory_events.channel_shown s WHERE s.channel = c.code AND s.sku = i.sku), 0)
	       <> inventory_events.channel_availability(c.code, i.sku)}), '0',
	'every channel was told what it shows');
is($node->safe_psql('upgraded', q{SELECT count(*) FROM inventory_events.verify()}), '0', 'verify() is empty at the end');

$node->stop;
done_testing();
