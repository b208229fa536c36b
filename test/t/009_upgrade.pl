# Updating a database from every earlier release to the current version
# (ALTER EXTENSION ... UPDATE).
#
# The versions are derived, not written here: the current version is the
# default_version of the installed control file (what CREATE EXTENSION
# installs; library_version() must say the same), the released versions are
# those whose install scripts sql/released.sha256 lists. Every released
# version older than the current one is tested the same way:
#
# 1. The current library serves the SQL objects of the release V: a database
#    created at V (roles given access with grant_access(), master data with a
#    lot-controlled item and a backorder channel) is used through V's API
#    (append, ingest with a dead letter, reserve, reserve_lines, pick, ship,
#    release, a backorder filled by a receipt, transfer, publish by hand)
#    while library_version() is the current version and extversion V;
#    verify() is empty. The same use gives the same answers in a fresh
#    install of the current version.
# 2. SQL objects newer than the library are refused (once, not per V): with
#    extversion set to 9.9.9, append(), reserve() and channel_availability()
#    each fail with SQLSTATE 55000, the message naming both versions and a
#    hint; nothing is written.
# 3. ALTER EXTENSION inventory_events UPDATE takes the database from V to the
#    current version along the chain of released versions
#    (pg_extension_update_paths); right after it the roles keep every
#    privilege they had; grant_access() is run again for each role, as
#    doc/operations.md says.
# 4. The updated objects equal those of a fresh install of the current
#    version given the same grant_access() calls and the same use: (a)
#    pg_dump --binary-upgrade --schema-only of both databases is identical
#    once OIDs, LSNs, relfrozenxids, the database name and the extconfig OID
#    array are normalised; (b) catalog queries give identical output: member
#    objects, function definitions, aggregates, columns (with whether a
#    column added later has a missing value, i.e. a fast default), indexes,
#    constraints, triggers (with tgenabled), views, relation options, types,
#    operators, ACLs of relations / functions / columns / types / the schema,
#    pg_init_privs, comments, enum labels, sequences and their ownership,
#    extconfig / extcondition, the extension row; a plain pg_dump of each
#    carries the same privileges; each role holds exactly the privileges it
#    holds in the fresh install (the ones the current version adds come with
#    grant_access() run again); (c) every table and sequence holds what it
#    holds in the fresh install, but for the values that differ from one
#    database to the next whatever the version (timestamps, transaction ids,
#    UUIDs, OIDs, LSNs, a backend's pid, the publisher's checkpoint).
# 5. The update keeps the data: every row of every table V had (every column
#    V had) and V's sequences are unchanged, verify() is empty, log_home has
#    the one row home 0 for this database with offset 0, an events_after()
#    checkpoint saved at V returns exactly the events appended after it (two
#    appended after the update come, with xids above every older one), raw
#    append() now refuses a lifecycle event (IE006) and writes nothing, the
#    roles keep their access (events_after() through log_xmin(), which
#    anyone may execute) and use what the current version gives them, and
#    the current publish() continues every channel's publication sequence
#    without a gap.
use strict;
use warnings;
use File::Basename qw(dirname);
use File::Spec;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IETest;

my $node = ie_node('upgrade');
$node->start;
my $dir = $node->basedir;

# ---------------------------------------------------------------------------
# 0. The versions.
# ---------------------------------------------------------------------------
sub version_cmp
{
	my @a = split /\./, $_[0];
	my @b = split /\./, $_[1];
	while (@a || @b)
	{
		my $c = (shift(@a) // 0) <=> (shift(@b) // 0);
		return $c if $c;
	}
	return 0;
}

my $current = $node->safe_psql('postgres', q{
	SELECT default_version FROM pg_available_extensions WHERE name = 'inventory_events'});
like($current, qr/^\d+\.\d+\.\d+$/, "the current version (default_version of the installed control file): $current");

my $released_file = File::Spec->catfile(dirname(__FILE__), '..', '..', 'sql', 'released.sha256');
my @released = sort { version_cmp($a, $b) } map { /inventory_events--(\d+(?:\.\d+)*)\.sql\s*$/ ? $1 : () }
  split /\n/, slurp_file($released_file);
my @earlier = grep { version_cmp($_, $current) < 0 } @released;
ok(@earlier > 0, "released versions before $current (sql/released.sha256): @earlier");
is($node->safe_psql('postgres', q{
	SELECT string_agg(version, ' ') FROM pg_available_extension_versions
	 WHERE name = 'inventory_events' AND version = ANY (string_to_array('} . join(' ', @earlier) . q{', ' '))}),
	join(' ', @earlier), 'the installation has the install script of each of them');

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

# Runs named queries in one session: { name => output }. Each query's
# output follows a marker line of its own.
sub outputs_of
{
	my ($db, %queries) = @_;
	my @names = sort keys %queries;
	my $sql = join('', map { "SELECT '#### $_';\n$queries{$names[$_]};\n" } 0 .. $#names);
	my @parts = split /^#### (\d+)\n?/m, $node->safe_psql($db, $sql);
	shift @parts;
	my %out;
	while (my ($i, $text) = splice(@parts, 0, 2))
	{
		$text //= '';
		$text =~ s/\n\z//;
		$out{ $names[$i] } = $text;
	}
	return \%out;
}

# Roles, given access in the order of their names (an update grants the
# current version's privileges to them in that order, so the order of ACL
# items is the same in every database).
$node->safe_psql('postgres', q{
	CREATE ROLE r_admin NOLOGIN;
	CREATE ROLE r_reader NOLOGIN;
	CREATE ROLE r_writer NOLOGIN;
	CREATE DATABASE newer;
	CREATE DATABASE fresh;
});
my $grants = q{
	SELECT inventory_events.grant_access('r_admin', 'admin'), inventory_events.grant_access('r_reader', 'reader'),
	       inventory_events.grant_access('r_writer', 'writer');
};

# Every privilege each role holds on the schema and what is in it, one
# "role object privilege held" line each (held: true or false).
my $privileges = q{
	WITH r(role) AS (VALUES ('r_admin'), ('r_reader'), ('r_writer')),
	o(kind, oid, name, privs) AS (
	    SELECT c.relkind::text, c.oid, 'relation ' || c.oid::regclass::text,
	           CASE WHEN c.relkind = 'S' THEN '{USAGE,SELECT,UPDATE}'::text[]
	                ELSE '{SELECT,INSERT,UPDATE,DELETE,TRUNCATE,REFERENCES,TRIGGER}' END
	      FROM pg_class c WHERE c.relnamespace = 'inventory_events'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
	       AND c.relname !~ '^event_(p2|0_2_0)'
	    UNION ALL
	    SELECT 'function', p.oid, 'function ' || p.oid::regprocedure::text, '{EXECUTE}'
	      FROM pg_proc p WHERE p.pronamespace = 'inventory_events'::regnamespace
	    UNION ALL
	    SELECT 'type', t.oid, 'type ' || t.oid::regtype::text, '{USAGE}'
	      FROM pg_type t WHERE t.typnamespace = 'inventory_events'::regnamespace AND t.typname !~ '^_?event_(p2|0_2_0)'
	    UNION ALL
	    SELECT 'schema', n.oid, 'schema', '{USAGE,CREATE}' FROM pg_namespace n WHERE n.nspname = 'inventory_events'
	)
	SELECT r.role || ' ' || o.name || ' ' || p || ' ' ||
	       CASE WHEN o.kind = 'S' THEN has_sequence_privilege(r.role, o.oid, p)
	            WHEN o.kind = 'function' THEN has_function_privilege(r.role, o.oid, p)
	            WHEN o.kind = 'type' THEN has_type_privilege(r.role, o.oid, p)
	            WHEN o.kind = 'schema' THEN has_schema_privilege(r.role, o.oid, p)
	            ELSE has_table_privilege(r.role, o.oid, p) END
	  FROM r, o, unnest(o.privs) p
	UNION ALL
	SELECT r.role || ' column ' || a.attrelid::regclass::text || '.' || a.attname || ' ' || p || ' '
	       || has_column_privilege(r.role, a.attrelid, a.attnum, p)
	  FROM r, pg_attribute a, unnest('{SELECT,INSERT,UPDATE,REFERENCES}'::text[]) p
	 WHERE a.attrelid IN (SELECT oid FROM pg_class WHERE relnamespace = 'inventory_events'::regnamespace)
	   AND a.attacl IS NOT NULL
	ORDER BY 1};
# { "role object privilege" => 't' or 'f' }
sub privileges_of
{
	my ($db) = @_;
	return { map { /^(.*) (true|false)$/ ? ($1 => substr($2, 0, 1)) : die "privileges: $_" }
		  split /\n/, $node->safe_psql($db, $privileges) };
}
sub held { my ($p) = @_; return join("\n", grep { $p->{$_} eq 't' } sort keys %$p) . "\n"; }

# ---------------------------------------------------------------------------
# 1. The API of a version in use: master data, events, reservations, the
#    publisher. Run in a database at each earlier version and in the fresh
#    install of the current one, with the same answers. Returns an
#    events_after() checkpoint that has read everything so far, and the id
#    of its last event.
# ---------------------------------------------------------------------------
sub use_api
{
	my ($db, $at) = @_;
	sql_ok($db, q{
		SET search_path = inventory_events, public;
		INSERT INTO item (sku) VALUES ('TEE'), ('MUG'), ('CAP');
		INSERT INTO item (sku, lot_controlled) VALUES ('VIT', true);
		INSERT INTO lot (sku, lot, expires_on) VALUES ('VIT', 'L1', '2099-01-01');
		INSERT INTO item_uom (sku, uom, factor) VALUES ('TEE', 'CS', 6);
		INSERT INTO location (code) VALUES ('DAL'), ('RNO');
		INSERT INTO channel (code, kind) VALUES ('web', 'storefront');
		INSERT INTO channel (code, kind, allow_split, allow_backorders) VALUES ('edi', 'edi_partner', false, true);
		INSERT INTO channel_location (channel, location, priority) VALUES ('web', 'DAL', 1), ('web', 'RNO', 2), ('edi', 'DAL', 1);
	}, "$db: master data $at: items (one lot-controlled, with a lot), a unit, locations, channels (one with backorders)");

	is($node->safe_psql($db, q{
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
	}), "t|t|t|t|t|t|t|t\nt",
		"$db: append() $at of several event types (received, a case unit, a lot, damaged, adjusted, safety stock), an idempotent retry");

	is($node->safe_psql($db, q{
		SELECT string_agg(ordinal || ':' || status || coalesce(':' || sqlstate, ''), ' ' ORDER BY ordinal)
		  FROM inventory_events.ingest('[
		    {"sku": "MUG", "location": "RNO", "event_type": "received", "qty": 7, "source": "erp", "idempotency_key": "i-1"},
		    {"sku": "NOPE", "location": "DAL", "event_type": "received", "qty": 1, "source": "erp", "idempotency_key": "i-2"},
		    {"sku": "CAP", "location": "RNO", "event_type": "received", "qty": 3, "source": "erp", "idempotency_key": "i-3"}]');
		SELECT count(*) || ' ' || min(batch_ordinal) || ' ' || min(idempotency_key) FROM inventory_events.dead_letter;
	}), "1:applied 2:dead_lettered:23503 3:applied\n1 2 i-2", "$db: ingest() $at of a batch: the bad element is dead-lettered, the others applied");

	is($node->safe_psql($db, q{
		SELECT string_agg(status || ' ' || location || ' ' || qty, ', ') FROM inventory_events.reserve('web', 'TEE', 5, 'O-1');
	}), 'reserved DAL 5', "$db: reserve() $at");
	is($node->safe_psql($db, q{
		SELECT string_agg(ordinal || ' ' || status || ' ' || location || ' ' || lot || ' ' || qty, ', ' ORDER BY ordinal)
		  FROM inventory_events.reserve_lines('[{"channel": "web", "sku": "MUG", "qty": 2, "ref": "O-2"},
		                                        {"channel": "web", "sku": "VIT", "qty": 3, "ref": "O-3"}]');
	}), '1 reserved DAL  2, 2 reserved DAL L1 3', "$db: reserve_lines() $at, one line of a lot-controlled item");
	is($node->safe_psql($db, q{
		SELECT string_agg(event_type || ' ' || qty, ', ') FROM inventory_events.pick('web', 'O-1');
		SELECT string_agg(event_type || ' ' || qty, ', ') FROM inventory_events.ship('web', 'O-1');
		SELECT string_agg(event_type || ' ' || qty, ', ') FROM inventory_events.release('web', 'O-2');
	}), "picked 5\nshipped 5\nreleased 2", "$db: pick(), ship(), release() $at");
	is($node->safe_psql($db, q{
		SELECT string_agg(status || ' ' || qty, ', ' ORDER BY status DESC) FROM inventory_events.reserve('edi', 'CAP', 6, 'E-1');
	}), 'reserved 4, backordered 2', "$db: reserve() $at on the backorder channel: 4 reserved, 2 backordered");

	# The checkpoint of a polling consumer that has read everything so far.
	ok($node->poll_query_until($db, q{
		SELECT count(*) = (SELECT count(*) FROM inventory_events.event) FROM inventory_events.events_after('0:0', 100000)}),
		"$db: events_after() $at reaches every event");
	my ($checkpoint, $checkpoint_id) = split /\|/, $node->safe_psql($db, q{
		SELECT next_checkpoint, id FROM inventory_events.events_after('0:0', 100000) WITH ORDINALITY e
		 ORDER BY ordinality DESC LIMIT 1});
	like($checkpoint, qr/^\d+:\d+$/, "$db: an events_after() checkpoint saved $at ($checkpoint)");

	is($node->safe_psql($db, q{
		SELECT string_agg(event_type || ' ' || location || ' ' || qty, ', ') FROM inventory_events.transfer('TEE', 'DAL', 'RNO', 3, 'T-1');
		SELECT inventory_events.receive_transfer('TEE', 'RNO', 2, 'T-1') > 0;
		SELECT inventory_events.append('CAP', 'DAL', 'received', 1) > 0;
		SELECT backordered FROM inventory_events.reservation WHERE channel = 'edi' AND ref = 'E-1';
	}), "transfer_out DAL 3, transfer_in_transit RNO 3\nt\nt\n1", "$db: transfer(), receive_transfer() $at; a receipt fills the backorder");

	ok($node->poll_query_until($db, q{
		SELECT pg_snapshot_xmin(pg_current_snapshot()) > max(xid) FROM inventory_events.event}),
		"$db: every event is below the readers' horizon");
	is($node->safe_psql($db, q{
		SELECT events || ' ' || publications FROM inventory_events.publish();
		SELECT string_agg(channel || ' ' || n || ' ' || m, ', ' ORDER BY channel)
		  FROM (SELECT channel, count(*) n, max(seq) m FROM inventory_events.publication GROUP BY channel) x;
	}), "22 8\nedi 4 4, web 4 4", "$db: publish() by hand $at: every event read, 4 publications per channel");
	is($node->safe_psql($db, q{SELECT count(*) FROM inventory_events.verify()}), '0', "$db: verify() is empty $at");
	return ($checkpoint, $checkpoint_id);
}

# The fresh install of the current version, given the same grant_access()
# calls and the same use, which every updated database is compared with.
sql_ok('fresh', 'CREATE EXTENSION inventory_events', "CREATE EXTENSION inventory_events ($current) in database fresh");
sql_ok('fresh', $grants, 'fresh: grant_access() for r_admin, r_reader, r_writer');
is($node->safe_psql('fresh', q{
	SELECT inventory_events.library_version() || ' ' || extversion FROM pg_extension WHERE extname = 'inventory_events'}),
	"$current $current", "fresh: library_version() and extversion are $current");
use_api('fresh', "at $current");
my $fresh_privileges = privileges_of('fresh');

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
}, "another database at $current with a little master data and an event");
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
	is($message, qq{the inventory_events library $current cannot serve version 9.9.9 of the extension's SQL objects},
		"$fn(): the message names the library's and the objects' versions");
	is($hint, 'Install the shared library of inventory_events 9.9.9 or later, then restart the server.',
		"$fn(): the hint says what to install");
}
is($node->safe_psql('newer', $newer_state), $newer_before, 'nothing was written (events, reservations, stock)');

# ---------------------------------------------------------------------------
# Comparison machinery, for every updated database against fresh.
# ---------------------------------------------------------------------------

# pg_dump --binary-upgrade --schema-only: every member object with its
# definition, ACL and initial privileges.
sub dump_of
{
	my ($db, @options) = @_;
	my ($out, $err);
	# The log's partitions are not members of the extension: a fresh
	# install has none (or the worker's), an updated one the log of 0.2.0.
	my @partitions = ('--exclude-table=inventory_events.event_p2*',
		'--exclude-table=inventory_events.event_0_2_0');
	my $ok = IPC::Run::run([ 'pg_dump', @options, @partitions, '-h', $node->host, '-p', $node->port, '-d', $db ],
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
my $dump_f = normalised(dump_of('fresh', '--binary-upgrade', '--schema-only'), 'fresh');
like($dump_f, qr/binary_upgrade_create_empty_extension\('inventory_events'/, 'the binary-upgrade dump of fresh has the extension');

# What the initial privileges decide: the GRANTs a plain pg_dump carries
# (a restore creates the extension afresh, then applies them).
my $acl_lines = sub { join("\n", grep { /^(GRANT|REVOKE) / } split /\n/, $_[0]) . "\n" };
my $plain_f = $acl_lines->(dump_of('fresh', '--schema-only'));
like($plain_f, qr/GRANT USAGE ON SCHEMA inventory_events TO r_reader;/, 'a plain dump of fresh carries the roles\' grants');

my $ext = q{(SELECT oid FROM pg_extension WHERE extname = 'inventory_events')};
# The log's partitions other than the default one are not members of the
# extension (the worker makes them; an update keeps the 0.2.0 log as one):
# they, their indexes and row types are left out of the comparison, and the
# log's rows are compared through the log itself.
my $partition = q{'^_?event_(p2|0_2_0)'};
my $rels = qq{(SELECT oid FROM pg_class WHERE relnamespace = 'inventory_events'::regnamespace AND relname !~ $partition)};
my $procs = q{(SELECT oid FROM pg_proc WHERE pronamespace = 'inventory_events'::regnamespace)};
my @catalog_queries = (
	'member objects' => qq{
		SELECT pg_describe_object(classid, objid, objsubid) FROM pg_depend
		 WHERE refclassid = 'pg_extension'::regclass AND refobjid = $ext AND deptype = 'e' ORDER BY 1},
	'the extension row' => q{
		SELECT extname, extowner::regrole, extnamespace::regnamespace, extrelocatable, extversion FROM pg_extension
		 WHERE extname = 'inventory_events'},
	'function definitions (pg_get_functiondef) and owners' => qq{
		SELECT p.oid::regprocedure::text, pg_get_userbyid(p.proowner), pg_get_functiondef(p.oid) FROM pg_proc p
		 WHERE p.oid IN $procs AND p.prokind <> 'a' ORDER BY 1},
	'aggregates' => qq{
		SELECT a.aggfnoid::regprocedure::text, a.aggkind, a.aggnumdirectargs, a.aggtransfn, a.aggfinalfn, a.aggcombinefn,
		       a.aggserialfn, a.aggdeserialfn, a.aggmtransfn, a.aggminvtransfn, a.aggmfinalfn, a.aggfinalextra,
		       a.aggmfinalextra, a.aggfinalmodify, a.aggmfinalmodify, a.aggsortop::regoperator, a.aggtranstype::regtype,
		       a.aggtransspace, a.aggmtranstype::regtype, a.aggmtransspace, a.agginitval, a.aggminitval, p.proparallel
		  FROM pg_aggregate a JOIN pg_proc p ON p.oid = a.aggfnoid WHERE p.oid IN $procs ORDER BY 1},
	'relations (kind, persistence, options, owner, replica identity, row security)' => qq{
		SELECT c.relname, c.relkind, c.relpersistence, c.reloptions, pg_get_userbyid(c.relowner), c.relreplident,
		       c.relrowsecurity, c.relhasindex, c.relhastriggers, c.relispartition
		  FROM pg_class c WHERE c.oid IN $rels ORDER BY 1},
	'columns (name, type, not null, default, a missing value, identity, generated, collation) in attnum order' => qq{
		SELECT c.oid::regclass::text, a.attnum, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
		       pg_get_expr(d.adbin, d.adrelid), a.atthasmissing, a.attidentity, a.attgenerated, a.attisdropped,
		       a.attcollation::regcollation,
		       a.attstorage, a.attcompression, a.attstattarget,
		       (SELECT array_agg(o) FROM unnest(a.attoptions) o WHERE o NOT LIKE 'pg_attver=%') AS attoptions
		  FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0
		  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
		 WHERE c.oid IN $rels ORDER BY 1, 2},
	'indexes (pg_get_indexdef)' => qq{
		SELECT i.indrelid::regclass::text, pg_get_indexdef(i.indexrelid), i.indisprimary, i.indisunique, i.indisreplident
		  FROM pg_index i WHERE i.indrelid IN $rels ORDER BY 1, 2},
	'constraints (pg_get_constraintdef)' => qq{
		SELECT coalesce(c.conrelid::regclass::text, c.contypid::regtype::text), c.conname, c.contype,
		       pg_get_constraintdef(c.oid), c.condeferrable, c.condeferred, c.convalidated
		  FROM pg_constraint c
		 WHERE c.conrelid IN $rels OR c.contypid IN (SELECT oid FROM pg_type WHERE typnamespace = 'inventory_events'::regnamespace)
		 ORDER BY 1, 2},
	'triggers (pg_get_triggerdef, tgenabled)' => qq{
		SELECT t.tgrelid::regclass::text, t.tgname, pg_get_triggerdef(t.oid), t.tgenabled
		  FROM pg_trigger t WHERE t.tgrelid IN $rels AND NOT t.tgisinternal ORDER BY 1, 2},
	'views (pg_get_viewdef)' => qq{
		SELECT c.oid::regclass::text, pg_get_viewdef(c.oid) FROM pg_class c WHERE c.oid IN $rels AND c.relkind = 'v' ORDER BY 1},
	'types' => qq{
		SELECT t.typname, t.typtype, t.typlen, t.typbyval, t.typalign, t.typstorage, t.typcategory, t.typinput, t.typoutput,
		       t.typreceive, t.typsend, t.typmodin, t.typmodout, t.typanalyze, t.typelem::regtype, t.typarray::regtype,
		       t.typrelid::regclass, t.typcollation::regcollation, t.typdefault, pg_get_userbyid(t.typowner)
		  FROM pg_type t WHERE t.typnamespace = 'inventory_events'::regnamespace AND t.typname !~ $partition ORDER BY 1},
	'operators' => q{
		SELECT o.oid::regoperator::text, o.oprkind, o.oprresult::regtype, o.oprcode, o.oprcom::regoperator,
		       o.oprnegate::regoperator, o.oprrest, o.oprjoin, o.oprcanmerge, o.oprcanhash
		  FROM pg_operator o WHERE o.oprnamespace = 'inventory_events'::regnamespace ORDER BY 1},
	'enum labels in sort order' => q{
		SELECT e.enumtypid::regtype::text, string_agg(e.enumlabel, ', ' ORDER BY e.enumsortorder)
		  FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid
		 WHERE t.typnamespace = 'inventory_events'::regnamespace GROUP BY 1 ORDER BY 1},
	'sequences (parameters, ownership)' => qq{
		SELECT s.seqrelid::regclass::text, s.seqtypid::regtype, s.seqstart, s.seqincrement, s.seqmax, s.seqmin, s.seqcache,
		       s.seqcycle,
		       (SELECT string_agg(pg_describe_object(d.refclassid, d.refobjid, d.refobjsubid) || ' ' || d.deptype::text, ', ')
		          FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = s.seqrelid AND d.refobjsubid > 0)
		  FROM pg_sequence s WHERE s.seqrelid IN $rels ORDER BY 1},
	'relation ACLs (relacl)' => qq{
		SELECT c.oid::regclass::text, c.relacl FROM pg_class c WHERE c.oid IN $rels ORDER BY 1},
	'function ACLs (proacl)' => qq{
		SELECT p.oid::regprocedure::text, p.proacl FROM pg_proc p WHERE p.oid IN $procs ORDER BY 1},
	'column ACLs (attacl)' => qq{
		SELECT a.attrelid::regclass::text, a.attname, a.attacl FROM pg_attribute a
		 WHERE a.attrelid IN $rels AND a.attacl IS NOT NULL ORDER BY 1, 2},
	'type and schema ACLs' => qq{
		SELECT 'type ' || t.typname, t.typacl::text FROM pg_type t
		 WHERE t.typnamespace = 'inventory_events'::regnamespace AND t.typname !~ $partition
		UNION ALL SELECT 'schema', n.nspacl::text FROM pg_namespace n WHERE n.nspname = 'inventory_events'
		ORDER BY 1},
	'initial privileges (pg_init_privs)' => q{
		SELECT pg_describe_object(i.classoid, i.objoid, i.objsubid), i.privtype, i.initprivs FROM pg_init_privs i
		 WHERE i.objoid >= 16384 AND pg_describe_object(i.classoid, i.objoid, i.objsubid) !~ 'event_(p2|0_2_0)' ORDER BY 1},
	'comments' => q{
		SELECT pg_describe_object(d.classoid, d.objoid, d.objsubid), d.description FROM pg_description d
		 WHERE d.objoid >= 16384 AND pg_describe_object(d.classoid, d.objoid, d.objsubid) !~ 'event_(p2|0_2_0)' ORDER BY 1},
	'extconfig / extcondition (a sorted set)' => q{
		SELECT u.c::regclass::text, u.cond FROM pg_extension e, unnest(e.extconfig, e.extcondition) u(c, cond)
		 WHERE e.extname = 'inventory_events' ORDER BY 1},
);

my $catalog_f = outputs_of('fresh', @catalog_queries);

# The updated objects of database $db equal those of fresh.
sub compare_with_fresh
{
	my ($db) = @_;

	# (a) the binary-upgrade dump
	my $dump_u = normalised(dump_of($db, '--binary-upgrade', '--schema-only'), $db);
	ok($dump_u eq $dump_f, "$db: pg_dump --binary-upgrade --schema-only: updated equals fresh (normalised)")
	  or diag(text_diff($dump_u, $dump_f, "$db.dump", 'fresh.dump'));

	# (b) catalog queries
	my $catalog_u = outputs_of($db, @catalog_queries);
	for (my $i = 0; $i < @catalog_queries; $i += 2)
	{
		my ($name, $u, $f) = ($catalog_queries[$i], $catalog_u->{ $catalog_queries[$i] }, $catalog_f->{ $catalog_queries[$i] });
		ok($u eq $f && $u ne '', "$db: $name: updated equals fresh")
		  or diag(text_diff($u, $f, "$db.out", 'fresh.out'));
	}

	# (c) the privileges a plain dump carries, and those the roles hold
	my $plain_u = $acl_lines->(dump_of($db, '--schema-only'));
	ok($plain_u eq $plain_f, "$db: a plain pg_dump of updated carries the same GRANTs / REVOKEs as one of fresh")
	  or diag(text_diff($plain_u, $plain_f, "$db.grants", 'fresh.grants'));
	my $held_u = held(privileges_of($db));
	my $held_f = held($fresh_privileges);
	ok($held_u eq $held_f, "$db: each role holds exactly the privileges it holds in fresh")
	  or diag(text_diff($held_u, $held_f, "$db.privileges", 'fresh.privileges'));
}

# Every row of every table and the value of every sequence that database
# $db has now (the columns it has now), as queries to run again after the
# update: { "table t" or "sequences" => query }. With %options
# (leave_out => a condition on pg_attribute a and pg_class c), the columns
# for which it holds are left out.
sub data_queries_of
{
	my ($db, %options) = @_;
	my $leave_out = $options{leave_out} // 'false';
	my (%queries, @sequences);
	foreach (split /\n/, $node->safe_psql($db, qq{
		SELECT 'table ' || c.relname || ' ' || string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum)
		  FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
		 WHERE c.relnamespace = 'inventory_events'::regnamespace AND c.relkind IN ('r', 'p') AND NOT ($leave_out)
		   AND NOT c.relispartition
		 GROUP BY c.relname
		UNION ALL
		SELECT 'sequence ' || quote_literal(c.relname) FROM pg_class c
		 WHERE c.relnamespace = 'inventory_events'::regnamespace AND c.relkind = 'S'
		ORDER BY 1}))
	{
		if (/^sequence (.*)$/)
		{
			push @sequences, $1;
			next;
		}
		my ($table, $columns) = /^table (\w+) (.*)$/ or die "columns: $_";
		$queries{"table $table"} = qq{
			SELECT count(*) || E'\\n' || coalesce(string_agg(r, E'\\n' ORDER BY r), '')
			  FROM (SELECT ROW($columns)::text FROM inventory_events.$table) t(r)};
	}
	$queries{sequences} = qq{
		SELECT string_agg(sequencename || ' ' || coalesce(last_value::text, 'not called'), E'\\n' ORDER BY sequencename)
		  FROM pg_sequences WHERE schemaname = 'inventory_events' AND sequencename IN (} . join(', ', @sequences) . q{)}
	  if @sequences;
	return \%queries;
}

# The data of fresh, which an updated database given the same use must have
# too, less the values that differ from one database to the next whatever
# the version: timestamps, transaction ids, UUIDs, OIDs, LSNs, the backend
# that first wrote (log_home_written.pid) and the publisher's events_after()
# checkpoint (a transaction id).
my $fresh_data_queries = data_queries_of('fresh', leave_out => q{
	a.atttypid IN ('timestamptz'::regtype, 'timestamp'::regtype, 'xid'::regtype, 'xid8'::regtype, 'uuid'::regtype,
	               'oid'::regtype, 'pg_lsn'::regtype)
	OR (c.relname, a.attname) IN (('log_home_written', 'pid'), ('publisher_checkpoint', 'checkpoint'))});
my $fresh_data = outputs_of('fresh', %$fresh_data_queries);

# ---------------------------------------------------------------------------
# 3.–5. From each earlier release to the current version.
# ---------------------------------------------------------------------------
sub update_from
{
	my ($from) = @_;
	(my $db = "from_$from") =~ s/\W/_/g;
	my $at = "at $from";
	note("---- $from -> $current in database $db ----");

	# 1. V installed and used, served by the current library.
	$node->safe_psql('postgres', "CREATE DATABASE $db");
	sql_ok($db, qq{CREATE EXTENSION inventory_events VERSION '$from'}, "$db: CREATE EXTENSION inventory_events VERSION $from");
	sql_ok($db, $grants, "$db: grant_access() $at for r_admin, r_reader, r_writer");
	is($node->safe_psql($db, q{
		SELECT inventory_events.library_version() || ' ' || extversion FROM pg_extension WHERE extname = 'inventory_events'}),
		"$current $from", "$db: library_version() is $current while extversion is $from");
	my ($checkpoint, $checkpoint_id) = use_api($db, $at);

	# 3. The update. Everything it must keep is read first.
	my $data_queries = data_queries_of($db);
	my $before = outputs_of($db, %$data_queries);
	my $privileges_before = privileges_of($db);
	my $then = outputs_of($db,
		had_log_home => q{SELECT to_regclass('inventory_events.log_home') IS NOT NULL},
		older_max_xid => q{SELECT max(xid) FROM inventory_events.event},
		publication_seqs => q{SELECT channel || ' ' || max(seq) FROM inventory_events.publication GROUP BY channel},
		path => qq{SELECT path FROM pg_extension_update_paths('inventory_events') WHERE source = '$from' AND target = '$current'});
	my $older_max_xid = $then->{older_max_xid};
	my %seq_before = map { split / / } split /\n/, $then->{publication_seqs};
	is($then->{path}, join('--', $from, (grep { version_cmp($_, $from) > 0 } @earlier), $current),
		"$db: the update path from $from to $current goes through every release in between");

	# A grant made by a role other than the owner: r_admin may pass EXECUTE on
	# publications_since() on, and does. The 0.3.0 update re-creates that
	# function and makes each grant again as its own grantor.
	my $acl_of = q{
		SELECT string_agg(a.grantor::regrole || ' > ' || a.grantee::regrole || ' ' || a.is_grantable, ', ' ORDER BY 1)
		  FROM pg_proc p, aclexplode(p.proacl) a
		 WHERE p.oid = 'inventory_events.publications_since(text,bigint)'::regprocedure};
	sql_ok($db, q{
		GRANT EXECUTE ON FUNCTION inventory_events.publications_since(text, bigint) TO r_admin WITH GRANT OPTION;
		SET ROLE r_admin;
		GRANT EXECUTE ON FUNCTION inventory_events.publications_since(text, bigint) TO r_writer;
		RESET ROLE;
	}, "$db: r_admin passes EXECUTE on publications_since() on");
	my $acl_before = $node->safe_psql($db, $acl_of);
	# The functions that take serials from 0.3.0 on are re-created too
	# (another signature): their grants, by name, each with its grantor, and
	# one passed on by r_admin (pick() to r_reader).
	my $acl_by_name = q{
		SELECT string_agg(p.proname || ': ' || a.grantor::regrole || ' > ' || a.grantee::regrole || ' ' || a.is_grantable,
		                  ', ' ORDER BY 1)
		  FROM pg_proc p, aclexplode(p.proacl) a
		 WHERE p.pronamespace = 'inventory_events'::regnamespace
		   AND p.proname IN ('append', 'pick', 'ship', 'transfer', 'receive_transfer',
		                     'receive_po', 'receive_return', 'dispose_return', 'publications_since')};
	sql_ok($db, q{
		DO $$ BEGIN
		    EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO r_admin WITH GRANT OPTION',
		                   'inventory_events.pick'::regproc::oid::regprocedure);
		    SET LOCAL ROLE r_admin;
		    EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO r_reader', 'inventory_events.pick'::regproc::oid::regprocedure);
		END $$;
	}, "$db: r_admin passes EXECUTE on pick() on");
	my $acl_by_name_before = $node->safe_psql($db, $acl_by_name);

	sql_ok($db, 'ALTER EXTENSION inventory_events UPDATE', "$db: ALTER EXTENSION inventory_events UPDATE");
	is($node->safe_psql($db, $acl_of), $acl_before,
		"$db: publications_since(), re-created by the update, keeps its grants, each with its grantor");
	is($node->safe_psql($db, $acl_by_name), $acl_by_name_before,
		"$db: the functions re-created with a serials parameter keep their grants, each with its grantor");
	sql_ok($db, q{REVOKE GRANT OPTION FOR EXECUTE ON FUNCTION inventory_events.publications_since(text, bigint)
	              FROM r_admin CASCADE;
	              REVOKE GRANT OPTION FOR EXECUTE ON FUNCTION inventory_events.pick(text, text, bigint, text, text, text, text[])
	              FROM r_admin CASCADE},
		"$db: r_admin's grant options, and what it granted with them, revoked again");
	is($node->safe_psql($db, q{
		SELECT extversion || ' ' || inventory_events.library_version() FROM pg_extension WHERE extname = 'inventory_events'}),
		"$current $current", "$db: extversion is $current");
	# Right after the update the roles keep what they had (on every object
	# that is still there): the reader's events_after() needs log_xmin(),
	# which anyone may execute.
	my $privileges_now = privileges_of($db);
	my @lost = grep { $privileges_before->{$_} eq 't' && ($privileges_now->{$_} // 't') ne 't' } sort keys %$privileges_before;
	ok(!@lost, "$db: right after the update each role keeps every privilege it had")
	  or diag(join("\n", 'lost:', @lost));
	is(sql_ok($db, q{
		SET ROLE r_reader;
		SELECT count(*) > 0 FROM inventory_events.events_after('0:0');
	}, "$db: r_reader right after the update"), 't', "$db: r_reader reads the log at once");
	# verify() and the positions as of a time read the stream snapshots (new
	# in 0.3.0): the update gives what they need to whoever could call them.
	is(sql_ok($db, q{
		SET ROLE r_reader;
		SELECT count(*) = 0 AND inventory_events.position_as_of('A', 'W1', now()) IS NOT NULL
		   AND (SELECT count(*) FROM inventory_events.sku_position_as_of('A', now())) >= 0
		  FROM inventory_events.verify();
	}, "$db: r_reader calls verify() and position_as_of() right after the update"), 't',
		"$db: r_reader's verify() and position_as_of() work at once");
	if ($then->{had_log_home} ne 't')
	{
		is($node->safe_psql($db, q{SELECT has_table_privilege('r_reader', 'inventory_events.log_home', 'SELECT')}), 'f',
			"$db: log_home, new since $from, is r_reader's only after grant_access() again");
	}
	# What the current version adds for them comes with grant_access() run
	# again after the update (doc/operations.md): granted inside the update
	# script it would become an initial privilege of the extension, which
	# pg_dump leaves out.
	sql_ok($db, $grants, "$db: grant_access() again after the update");

	# 4. The updated objects equal a fresh install.
	compare_with_fresh($db);
	my $data_u = outputs_of($db, %$fresh_data_queries);
	foreach my $what (sort keys %$fresh_data)
	{
		ok($data_u->{$what} eq $fresh_data->{$what}, "$db: $what equals fresh's, given the same use")
		  or diag(text_diff($data_u->{$what}, $fresh_data->{$what}, "$db.data", 'fresh.data'));
	}
	my $gained = grep { ($privileges_before->{$_} // 'f') ne 't' } grep { $fresh_privileges->{$_} eq 't' } keys %$fresh_privileges;
	note("$db: the roles gained $gained privileges since $from");

	# 5. The data survives the update.
	my $after = outputs_of($db, %$data_queries);
	foreach my $what (sort keys %$before)
	{
		ok($after->{$what} eq $before->{$what}, "$db: $what unchanged by the update")
		  or diag(text_diff($before->{$what}, $after->{$what}, "$db.before", "$db.after"));
	}
	is($node->safe_psql($db, q{SELECT count(*) FROM inventory_events.verify()}), '0', "$db: verify() is empty after the update");
	is($node->safe_psql($db, q{
		SELECT count(*) || ' ' || min(home) || ' ' || min(xid_offset) || ' '
		       || bool_and(database_oid = (SELECT oid FROM pg_database WHERE datname = current_database())) || ' '
		       || bool_and(system_identifier = (SELECT system_identifier FROM pg_control_system()))
		  FROM inventory_events.log_home;
		SELECT inventory_events.log_adopted();
	}), "1 0 0 true true\nt", "$db: log_home: one row, home 0, offset 0, this cluster and database; log_adopted()");

	# Two events after the update; the checkpoint of V leads to exactly the
	# events appended after it, these two included.
	my @new_ids = split /\n/, $node->safe_psql($db, q{
		SELECT inventory_events.append('TEE', 'DAL', 'received', 1);
		SELECT inventory_events.append('MUG', 'DAL', 'received', 2);
	});
	is(scalar(@new_ids), 2, "$db: two events appended after the update");
	ok($node->poll_query_until($db, q{SELECT inventory_events.log_xmin() > max(xid) FROM inventory_events.event}),
		"$db: every event is below the readers' horizon");
	my $after_checkpoint = $node->safe_psql($db, qq{
		SELECT string_agg(id::text, ',' ORDER BY ordinality) FROM inventory_events.events_after('$checkpoint', 100000) WITH ORDINALITY});
	is($after_checkpoint, $node->safe_psql($db, qq{
		SELECT string_agg(id::text, ',' ORDER BY xid, id) FROM inventory_events.event WHERE id > $checkpoint_id}),
		"$db: events_after() of the checkpoint saved at $from returns exactly the events appended after it");
	like(",$after_checkpoint,", qr/,$new_ids[0],$new_ids[1],$/, "$db: the two new events come, last and in order");
	is($node->safe_psql($db, qq{
		SELECT bool_and(xid > '$older_max_xid'::xid8) FROM inventory_events.event WHERE id IN ($new_ids[0], $new_ids[1])}),
		't', "$db: their xids are above every older one");

	# At V, raw append() took lifecycle events (V's reserve(), pick(), ship()
	# and release() above called it); the current objects refuse them.
	my $count = q{SELECT count(*) || ' ' || max(id) FROM inventory_events.event};
	my $events_before = $node->safe_psql($db, $count);
	my ($ret, $out, $err) = $node->psql($db, qq{\\set VERBOSITY verbose
		SELECT inventory_events.append('TEE', 'DAL', 'released', 1, ref => 'O-1', channel => 'web')});
	my ($state) = $err =~ /ERROR:  (\w{5}):/m;
	ok($ret != 0 && defined $state && $state eq 'IE006', "$db: after the update, append() of a released event fails with IE006")
	  or diag($err);
	is($node->safe_psql($db, $count), $events_before, "$db: and appends nothing");

	# The roles keep their access and use what the current version gives them.
	is(sql_ok($db, q{
		SET ROLE r_reader;
		SELECT count(*) > 0 FROM inventory_events.events_after('0:0');
		SELECT count(*) FROM inventory_events.log_home;
		SELECT last_value > 0 FROM inventory_events.event_id_seq;
		SELECT inventory_events.channel_availability('web', 'TEE') > 0;
	}, "$db: r_reader: events_after() (through log_xmin()), log_home, a sequence, channel_availability()"), "t\n1\nt\nt",
		"$db: r_reader reads what it read and what $current adds");
	($ret, $out, $err) = $node->psql($db, q{
		SET ROLE r_reader; SELECT inventory_events.append('TEE', 'DAL', 'received', 1)});
	like($err, qr/permission denied for function append/, "$db: r_reader still cannot append()");
	is(sql_ok($db, q{
		SET ROLE r_writer;
		SELECT inventory_events.append('TEE', 'RNO', 'received', 1) > 0;
		SELECT count(*) FROM inventory_events.reserve('web', 'MUG', 1, 'O-9');
	}, "$db: r_writer: append(), reserve()"), "t\n1", "$db: r_writer appends and reserves");
	is(sql_ok($db, q{
		SET ROLE r_admin;
		INSERT INTO inventory_events.item (sku) VALUES ('HAT');
		SELECT count(*) FROM inventory_events.log_home;
	}, "$db: r_admin: master data, log_home"), '1', "$db: r_admin maintains master data");

	# The current publish() continues each channel's sequence without a gap.
	ok($node->poll_query_until($db, q{SELECT inventory_events.log_xmin() > max(xid) FROM inventory_events.event}),
		"$db: every event is below the readers' horizon");
	my ($events, $publications) = split /\|/, $node->safe_psql($db, q{SELECT events, publications FROM inventory_events.publish()});
	is($events, 4, "$db: $current\'s publish() reads the four events appended since $from\'s");
	cmp_ok($publications, '>=', 2, "$db: and publishes ($publications)");
	foreach my $channel (sort keys %seq_before)
	{
		is($node->safe_psql($db, qq{
			SELECT count(*) = max(seq) AND min(seq) FILTER (WHERE seq > $seq_before{$channel}) = $seq_before{$channel} + 1
			       AND max(seq) = (SELECT last_seq FROM inventory_events.channel_publisher WHERE channel = '$channel')
			  FROM inventory_events.publication WHERE channel = '$channel'}),
			't', "$db: channel $channel: publications continue after seq $seq_before{$channel} without a gap");
	}
	is($node->safe_psql($db, q{
		SELECT count(*) FROM inventory_events.channel c, inventory_events.item i
		 WHERE coalesce((SELECT s.available FROM inventory_events.channel_shown s WHERE s.channel = c.code AND s.sku = i.sku), 0)
		       <> inventory_events.channel_availability(c.code, i.sku)}), '0',
		"$db: every channel was told what it shows");
	is($node->safe_psql($db, q{SELECT count(*) FROM inventory_events.verify()}), '0', "$db: verify() is empty at the end");
}

update_from($_) foreach @earlier;

$node->stop;
done_testing();
