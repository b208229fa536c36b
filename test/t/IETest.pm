# IETest: throw-away clusters configured for inventory_events, for the TAP tests.
#
# The configuration comes from tools/temp-config.sh (through $IE_TEMP_CONFIG when
# tools/test.sh runs us, directly under "make installcheck"), so TAP clusters are
# set up exactly like the pg_regress and isolation ones.
package IETest;

use strict;
use warnings;
use File::Basename qw(dirname);
use File::Spec;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use JSON::PP ();
use Exporter 'import';

our @EXPORT = qw(ie_node ie_config ie_burst_script ie_connector ie_connector_rows);

sub ie_config
{
	return slurp_file($ENV{IE_TEMP_CONFIG}) if $ENV{IE_TEMP_CONFIG};
	my $script = File::Spec->catfile(dirname(__FILE__), '..', '..', 'tools', 'temp-config.sh');
	my $bindir = `pg_config --bindir`;
	chomp $bindir;
	my $conf = `bash '$script' '$bindir'`;
	die "temp-config.sh failed" if $? != 0;
	return $conf;
}

# ie_node(name, %params): an initialised (not started) node with the extension's
# settings; params are passed to init (e.g. allows_streaming => 'logical').
# preload => 0 leaves shared_preload_libraries empty.
sub ie_node
{
	my ($name, %params) = @_;
	my $preload = exists $params{preload} ? delete $params{preload} : 1;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init(%params);
	my $conf = ie_config();
	$conf =~ s/^shared_preload_libraries.*$//m unless $preload;
	$node->append_conf('postgresql.conf', $conf);
	return $node;
}

# ie_connector(args...): the command line of the reference connector,
# tools/connector.py (found relative to this file: in the source tree and in
# the copy tools/test.sh runs from), with its arguments.
sub ie_connector
{
	my $script = File::Spec->rel2abs(
		File::Spec->catfile(dirname(__FILE__), '..', '..', 'tools', 'connector.py'));
	return [ '/usr/bin/python3', $script, @_ ];
}

# ie_connector_rows(output): the connector's JSON lines, decoded (array of hashes).
sub ie_connector_rows
{
	my ($text) = @_;
	return [ map { JSON::PP::decode_json($_) } grep { /\S/ } split /\n/, $text // '' ];
}

# ie_burst_script(path): a pgbench script of receipts and one-line
# reservations (channel web) on skus S1..S20 at W1/W2, for the publisher tests.
sub ie_burst_script
{
	my ($path) = @_;
	append_to_file($path, q{
\set s random(1, 20)
\set l random(1, 2)
\set q random(1, 5)
\set t random(1, 3)
SELECT CASE :t WHEN 1 THEN inventory_events.append('S' || :s, 'W' || :l, 'received', :q) > 0
               ELSE (SELECT count(*) >= 0 FROM inventory_events.reserve_lines(jsonb_build_array(jsonb_build_object(
                        'channel', 'web', 'sku', 'S' || :s, 'qty', :q, 'ref', gen_random_uuid()::text)))) END;
});
	return;
}

1;
