# The library loads through shared_preload_libraries, attaches shared memory,
# and functions that need it refuse clearly when it is not preloaded.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IETest;

my $node = ie_node('preloaded');
$node->start;

is($node->safe_psql('postgres', 'SHOW shared_preload_libraries'),
	'inventory_events', 'library listed in shared_preload_libraries');
is($node->safe_psql('postgres', 'SHOW wal_level'), 'logical', 'wal_level is logical');

$node->safe_psql('postgres', 'CREATE EXTENSION inventory_events');
is($node->safe_psql('postgres',
	'SELECT events_appended >= 0 FROM inventory_events.shared_state()'),
	't', 'shared memory attached when preloaded');
is($node->safe_psql('postgres',
	"SELECT count(*) FROM pg_shmem_allocations WHERE name = 'inventory_events'"),
	'1', 'shared memory segment allocated at startup');

# A misspelled setting in postgresql.conf is not silently kept as a placeholder.
$node->append_conf('postgresql.conf', "inventory_events.no_such_setting = 1\n");
$node->restart;
is($node->safe_psql('postgres',
	"SELECT count(*) FROM pg_settings WHERE name = 'inventory_events.no_such_setting'"),
	'0', 'unknown inventory_events.* setting removed');
ok($node->log_contains(qr/invalid configuration parameter name "inventory_events\.no_such_setting"/),
	'unknown inventory_events.* setting reported in the log');
$node->stop;

# Without preloading, CREATE EXTENSION works but shared-memory functions refuse.
my $plain = ie_node('not_preloaded', preload => 0);
$plain->start;
$plain->safe_psql('postgres', 'CREATE EXTENSION inventory_events');
my ($ret, $stdout, $stderr) = $plain->psql('postgres',
	'SELECT * FROM inventory_events.shared_state()',
	extra_params => [ '-v', 'VERBOSITY=verbose' ]);
isnt($ret, 0, 'shared_state() fails without preloading');
like($stderr, qr/55000/, 'SQLSTATE 55000 (object_not_in_prerequisite_state)');
like($stderr, qr/requires inventory_events to be loaded via shared_preload_libraries/,
	'error names the missing preload');
like($stderr, qr/HINT:\s+Add inventory_events to shared_preload_libraries/, 'error has a hint');
$plain->stop;

done_testing();
