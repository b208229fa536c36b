# Prometheus, with the real tools from Debian.
#
# 1. The worker's maintenance task, by itself: refresh_metrics() runs every
#    inventory_events.maintenance_interval (the metrics' refresh time moves
#    without anyone calling it), and a late event (occurred before a run's
#    cut-off, appended after the run) gets the affected reconciliation line a
#    new version (reason late_event) without anyone calling
#    recon_reevaluate(). With the interval at 0 neither happens; set back, both
#    do.
# 2. Each statement of the task is isolated: a failing refresh_metrics() is
#    recorded in worker_error (task metrics) while late events are still
#    re-evaluated and channels still published; cured, the streak is cleared.
# 3. A database whose SQL objects are older than 0.3.0 (served by the same
#    worker) never gets the task: no failure is logged for it.
# 4. Debian's prometheus-postgres-exporter with monitoring/queries.yaml, as a
#    role with reader access only, scraped over HTTP: every metric of the
#    metric table is in the scrape with its labels and value, and the values
#    equal what SQL computes from the tables themselves; promtool check
#    metrics is clean.
# 5. promtool check rules monitoring/alerts.yml and promtool test rules
#    monitoring/alerts_test.yml pass, and every metric an alert rule or a
#    panel of monitoring/grafana-dashboard.json uses is in the scrape (a
#    renamed metric fails here).
use strict;
use warnings;
use File::Basename qw(dirname);
use File::Spec;
use HTTP::Tiny;
use IPC::Run;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IETest;

my $monitoring = File::Spec->rel2abs(File::Spec->catdir(dirname(__FILE__), '..', '..', 'monitoring'));
my $exporter_bin = '/usr/bin/prometheus-postgres-exporter';
my $promtool = '/usr/bin/promtool';
plan skip_all => 'prometheus-postgres-exporter and promtool (Debian packages) are needed'
  unless -x $exporter_bin && -x $promtool;

my $node = ie_node('prometheus');
$node->append_conf('postgresql.conf', q{
inventory_events.database = 'postgres,old'
inventory_events.publisher_naptime = 100
inventory_events.maintenance_interval = 1
track_functions = 'all'
});
$node->start;
# A database with the SQL objects of 0.2.0 (part 3).
$node->safe_psql('postgres', q{CREATE DATABASE old});
$node->safe_psql('old', q{
	CREATE EXTENSION inventory_events VERSION '0.2.0';
	INSERT INTO inventory_events.item (sku) VALUES ('X');
	INSERT INTO inventory_events.location (code) VALUES ('W');
	SELECT inventory_events.append('X', 'W', 'received', 1);
});

$node->safe_psql('postgres', q{
	CREATE EXTENSION inventory_events;
	INSERT INTO inventory_events.item (sku, abc_class) VALUES ('MUG', 'A'), ('CUP', 'C'), ('PEN', 'B');
	INSERT INTO inventory_events.item (sku, regulated) VALUES ('DRUG', true);
	INSERT INTO inventory_events.location (code) VALUES ('DAL'), ('NYC');
	INSERT INTO inventory_events.channel (code) VALUES ('shopify');
	INSERT INTO inventory_events.channel (code, allow_backorders) VALUES ('amazon', true);
	INSERT INTO inventory_events.channel_location (channel, location)
	VALUES ('shopify', 'DAL'), ('amazon', 'DAL'), ('amazon', 'NYC');
	INSERT INTO inventory_events.recon_source (code) VALUES ('wms');
	INSERT INTO inventory_events.recon_source (code, measure, channel) VALUES ('amazon_feed', 'channel', 'amazon');
	INSERT INTO inventory_events.recon_source (code) VALUES ('3pl');   -- never reconciled
	SELECT inventory_events.append('MUG', 'DAL', 'received', 100, occurred_at => now() - interval '1 hour');
	SELECT inventory_events.append('DRUG', 'DAL', 'received', 10, occurred_at => now() - interval '1 hour');
	SELECT inventory_events.append('CUP', 'NYC', 'received', 100, occurred_at => now() - interval '1 hour');
	SELECT inventory_events.append('PEN', 'NYC', 'received', 3, occurred_at => now() - interval '1 hour');
});
# kpi_fill_rate comes with the KPI views; a stand-in with its columns where
# they are not installed.
$node->safe_psql('postgres', q{
DO $$ BEGIN
IF to_regclass('inventory_events.kpi_fill_rate') IS NULL THEN
	CREATE VIEW inventory_events.kpi_fill_rate AS
	SELECT r.channel, r.created_at::date AS day, count(DISTINCT r.ref)::bigint AS orders, count(*)::bigint AS lines,
	       sum(r.qty)::bigint AS units_ordered, sum(coalesce(a.shipped, 0))::bigint AS units_shipped,
	       sum(coalesce(a.shipped, 0))::numeric / sum(r.qty) AS unit_fill_rate,
	       avg((coalesce(a.shipped, 0) >= r.qty)::integer)::numeric AS line_fill_rate,
	       avg((coalesce(a.shipped, 0) >= r.qty)::integer)::numeric AS order_fill_rate,
	       sum(coalesce(a.shipped, 0))::numeric / sum(r.qty) AS first_time_unit_fill_rate,
	       avg((coalesce(a.shipped, 0) >= r.qty)::integer)::numeric AS first_time_line_fill_rate,
	       avg((coalesce(a.shipped, 0) >= r.qty)::integer)::numeric AS first_time_order_fill_rate
	  FROM inventory_events.reservation r
	  LEFT JOIN (SELECT x.reservation_id, sum(x.shipped) AS shipped FROM inventory_events.allocation x GROUP BY 1) a
	         ON a.reservation_id = r.id
	 GROUP BY 1, 2;
END IF;
END $$;
});

ok($node->poll_query_until('postgres', q{SELECT pid IS NOT NULL FROM inventory_events.publisher_status() WHERE database = 'postgres'}),
	'the publisher runs');
my $pid = $node->safe_psql('postgres', q{SELECT pid FROM inventory_events.publisher_status() WHERE database = 'postgres'});

# 1. refresh_metrics() by itself: the heartbeat moves, nobody calls it here.
ok($node->poll_query_until('postgres', q{
	SELECT count(*) > 0 FROM inventory_events.metric WHERE name = 'inventory_events_metrics_refreshed_timestamp_seconds'}),
	'the worker fills the metric table');
my $t0 = $node->safe_psql('postgres', q{SELECT clock_timestamp()});
ok($node->poll_query_until('postgres', qq{
	SELECT refreshed_at > '$t0' FROM inventory_events.metric WHERE name = 'inventory_events_metrics_refreshed_timestamp_seconds'}),
	'and refreshes it again by itself');

# Orders: shipped, picked, reserved, short, backordered; a dead letter.
$node->safe_psql('postgres', q{
	SELECT count(*) FROM inventory_events.reserve('shopify', 'MUG', 4, 'SO-1/1');
	SELECT inventory_events.pick('shopify', 'SO-1/1', 4);
	SELECT inventory_events.ship('shopify', 'SO-1/1', 4);
	SELECT count(*) FROM inventory_events.reserve('shopify', 'MUG', 6, 'SO-2/1');
	SELECT inventory_events.pick('shopify', 'SO-2/1', 2);
	SELECT count(*) FROM inventory_events.reserve('shopify', 'MUG', 3, 'SO-3/1');
	SELECT count(*) FROM inventory_events.reserve('amazon', 'PEN', 5, 'AM-1/1');
	SELECT count(*) FROM inventory_events.reserve_lines('[{"channel": "shopify", "sku": "CUP", "qty": 1, "ref": "SO-4/1"}]');   -- refused: an exception
	SELECT count(*) FROM inventory_events.ingest('[{"sku": "MUG", "location": "DAL", "event_type": "received", "qty": -1},
	                                               {"sku": "MUG", "location": "DAL", "event_type": "received", "qty": 1}]');
});
# Every channel published.
ok($node->poll_query_until('postgres', q{SELECT sum(pending_skus) = 0 FROM inventory_events.channel_health}),
	'the channels are published');

# Reconciliation: a WMS snapshot as of a minute ago (MUG class A and the
# regulated DRUG beyond tolerance, CUP within), and a channel that shows
# another value than we published twice in a row (persistent drift).
my $wms_run = $node->safe_psql('postgres', q{
	SELECT inventory_events.reconcile('wms', now() - interval '1 minute',
	  '[{"sku": "MUG", "location": "DAL", "qty": 50}, {"sku": "DRUG", "location": "DAL", "qty": 8},
	    {"sku": "CUP", "location": "NYC", "qty": 99}, {"sku": "PEN", "location": "NYC", "qty": 3}]')});
$node->safe_psql('postgres', q{
	SELECT inventory_events.reconcile('amazon_feed', now(), '[{"sku": "MUG", "qty": 7}]', false);
	SELECT inventory_events.reconcile('amazon_feed', now(), '[{"sku": "MUG", "qty": 8}]', false);
});
is($node->safe_psql('postgres', qq{
	SELECT string_agg(sku || ':' || status || ':' || severity, ' ' ORDER BY sku)
	  FROM inventory_events.recon_variance($wms_run)}),
	'CUP:within_tolerance:info DRUG:out_of_tolerance:critical MUG:out_of_tolerance:critical PEN:match:none',
	'the WMS run: two lines beyond tolerance');

# A late event: received at DAL two minutes ago, appended now. The worker
# re-evaluates the MUG line (a new version), nobody else.
my $reevaluations = sub {
	$node->safe_psql('postgres', q{
		SELECT coalesce((SELECT calls FROM pg_stat_user_functions WHERE funcname = 'recon_reevaluate'), 0)});
};
$node->safe_psql('postgres', q{
	SELECT inventory_events.append('MUG', 'DAL', 'received', 5, occurred_at => now() - interval '2 minutes')});
ok($node->poll_query_until('postgres', qq{
	SELECT count(*) = 1 FROM inventory_events.recon_line
	 WHERE run_id = $wms_run AND sku = 'MUG' AND current AND version = 2 AND reason = 'late_event'}),
	'a late event gets its reconciliation line a new version, by the worker');
is($node->safe_psql('postgres', qq{
	SELECT string_agg(version || ':' || reason || ':' || current || ':' || ours, ' ' ORDER BY version)
	  FROM inventory_events.recon_line WHERE run_id = $wms_run AND sku = 'MUG'}),
	'1:run:false:100 2:late_event:true:105', 'the old version kept; ours as of the cut-off with the late receipt');
cmp_ok($reevaluations->(), '>', 0, 'recon_reevaluate() was called (by the worker: this test never calls it)');

# maintenance_interval = 0: no refresh, no re-evaluation; back to 1: both.
$node->safe_psql('postgres', q{
	ALTER SYSTEM SET inventory_events.maintenance_interval = 0; SELECT pg_reload_conf()});
sleep(2);    # the worker has read the setting
my $refreshed = $node->safe_psql('postgres', q{
	SELECT refreshed_at FROM inventory_events.metric WHERE name = 'inventory_events_metrics_refreshed_timestamp_seconds'});
my $calls = $reevaluations->();
$node->safe_psql('postgres', q{
	SELECT inventory_events.append('MUG', 'DAL', 'received', 1, occurred_at => now() - interval '3 minutes')});
sleep(3);
is($node->safe_psql('postgres', qq{
	SELECT (SELECT max(version) FROM inventory_events.recon_line WHERE run_id = $wms_run AND sku = 'MUG')
	       || ':' || (SELECT refreshed_at = '$refreshed' FROM inventory_events.metric
	                   WHERE name = 'inventory_events_metrics_refreshed_timestamp_seconds')}),
	'2:true', 'maintenance_interval = 0: no new line version, no refresh');
is($reevaluations->(), $calls, 'and recon_reevaluate() not called');
$node->safe_psql('postgres', q{
	ALTER SYSTEM SET inventory_events.maintenance_interval = 1; SELECT pg_reload_conf()});
ok($node->poll_query_until('postgres', qq{
	SELECT max(version) = 3 FROM inventory_events.recon_line WHERE run_id = $wms_run AND sku = 'MUG'}),
	'set back to 1 s: the late event is re-evaluated');

# 2. A failing refresh_metrics(): recorded, the re-evaluation and publication go on.
$node->safe_psql('postgres', q{
	CREATE FUNCTION public.poison() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		RAISE EXCEPTION 'the metric table is broken';
	END $$;
	CREATE TRIGGER poison BEFORE INSERT ON inventory_events.metric FOR EACH ROW EXECUTE FUNCTION public.poison();
});
ok($node->poll_query_until('postgres', q{
	SELECT failures >= 2 AND message = 'the metric table is broken' AND cleared_at IS NULL
	  FROM inventory_events.worker_error WHERE task = 'metrics'}),
	'a failing refresh_metrics() is recorded (task metrics), again at each interval');
$node->safe_psql('postgres', q{
	SELECT inventory_events.append('MUG', 'DAL', 'received', 1, occurred_at => now() - interval '4 minutes')});
ok($node->poll_query_until('postgres', qq{
	SELECT max(version) = 4 FROM inventory_events.recon_line WHERE run_id = $wms_run AND sku = 'MUG'}),
	'meanwhile late events are re-evaluated');
ok($node->poll_query_until('postgres', q{
	SELECT s.available = inventory_events.channel_availability('shopify', 'MUG')
	  FROM inventory_events.channel_shown s WHERE s.channel = 'shopify' AND s.sku = 'MUG'}),
	'and channels published');
is($node->safe_psql('postgres', q{SELECT count(*) FROM inventory_events.worker_error WHERE task <> 'metrics'}),
	'0', 'no other task failed');
$node->safe_psql('postgres', q{DROP TRIGGER poison ON inventory_events.metric});
ok($node->poll_query_until('postgres', q{
	SELECT cleared_at IS NOT NULL FROM inventory_events.worker_error WHERE task = 'metrics'}),
	'cured, the streak is cleared');
is($node->safe_psql('postgres', q{SELECT pid FROM inventory_events.publisher_status() WHERE database = 'postgres'}),
	$pid, 'the same worker process throughout');

# 3. The database with the SQL objects of 0.2.0, served by the same worker.
ok($node->poll_query_until('postgres', q{SELECT runs > 5 AND state = 'idle' FROM inventory_events.publisher_status() WHERE database = 'old'}),
	'the publisher of the 0.2.0 database runs');
my $old_pid = $node->safe_psql('postgres', q{SELECT pid FROM inventory_events.publisher_status() WHERE database = 'old'});
sleep(2);
my @old_failures = grep { /\[$old_pid\].*failed/ } split /\n/, slurp_file($node->logfile);
is(join("\n", @old_failures), '', 'no maintenance task is tried on SQL objects before 0.3.0');

# The exceptions, backlog and verify() metrics have something to show. The
# worker's refreshes stop, so that the table holds still while the scrape is
# compared with it; the last refresh is made here (with the fill rates, which
# the worker recomputes every 5 minutes).
$node->safe_psql('postgres', q{
	SELECT count(*) FROM inventory_events.pick_short('shopify', 'SO-3/1', 1, reason => 'bin empty');
	SELECT inventory_events.record_verify();
	ALTER SYSTEM SET inventory_events.maintenance_interval = 0;
	SELECT pg_reload_conf();
});
sleep(2);
$node->safe_psql('postgres', q{SELECT inventory_events.refresh_metrics('0')});

# 4. The exporter, as a role with reader access only.
$node->safe_psql('postgres', q{
	CREATE ROLE prom_exporter LOGIN;
	SELECT inventory_events.grant_access('prom_exporter', 'reader');
});
my $port = PostgreSQL::Test::Cluster::get_free_port();
my ($out, $err) = ('', '');
my $dsn = sprintf('host=%s port=%d user=prom_exporter dbname=postgres sslmode=disable', $node->host, $node->port);
my $exporter = IPC::Run::start(
	[ 'env', "DATA_SOURCE_NAME=$dsn", $exporter_bin,
	  "--extend.query-path=$monitoring/queries.yaml", '--disable-default-metrics', '--disable-settings-metrics',
	  '--no-collector.database', '--no-collector.bgwriter', "--web.listen-address=127.0.0.1:$port" ],
	'>', \$out, '2>', \$err);
my $http = HTTP::Tiny->new(timeout => 10);
my $scrape;
for (1 .. 100)
{
	my $r = $http->get("http://127.0.0.1:$port/metrics");
	if ($r->{success} && $r->{content} =~ /^inventory_events_/m) { $scrape = $r->{content}; last; }
	select(undef, undef, undef, 0.2);
}
ok(defined $scrape, 'the exporter answers over HTTP') or diag("exporter: $err");
$scrape //= '';
note($scrape);

# Parse: family => [ { labels } , value ].
my (%scraped, %families);
for my $line (split /\n/, $scrape)
{
	next if $line =~ /^#/ || $line !~ /\S/;
	my ($name, $labels, $value) = $line =~ /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$/ or next;
	my %l = ($labels // '') =~ /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
	delete $l{server};
	my $key = join(',', map { "$_=$l{$_}" } sort keys %l);
	$scraped{$name}{$key} = $value;
	$families{$name} = 1;
}
is($scraped{pg_up}{''}, '1', 'pg_up 1: the exporter reaches the database');
is($scraped{pg_exporter_last_scrape_error}{''}, '0', 'no query of queries.yaml failed');

# Every row of the metric table is in the scrape, with its value.
my $rows = $node->safe_psql('postgres', q{
	SELECT name, coalesce((SELECT string_agg(k || '=' || v, ',' ORDER BY k) FROM jsonb_each_text(labels) x(k, v)), ''),
	       value
	  FROM inventory_events.metric ORDER BY 1, 2});
my ($missing, $differ, $n) = (0, 0, 0);
for my $row (split /\n/, $rows)
{
	my ($name, $key, $value) = split /\|/, $row;
	$n++;
	if (!$families{$name} || !exists $scraped{$name}{$key}) { $missing++; diag("not scraped: $name {$key}"); next; }
	my $s = $scraped{$name}{$key};
	my $same = ($value eq 'NaN') ? ($s eq 'NaN') : (abs($s - $value) <= 1e-9 * (1 + abs($value)));
	if (!$same) { $differ++; diag("$name {$key}: scraped $s, table $value"); }
}
cmp_ok($n, '>', 40, "the metric table holds $n rows");
is("$missing:$differ", '0:0', 'each is in the scrape with its labels and value');
my @extra = grep { /^inventory_events_/ && $_ ne 'inventory_events_metrics_age_seconds' } keys %families;
my %in_table = map { (split /\|/)[0] => 1 } split /\n/, $rows;
is(join(' ', sort grep { !$in_table{$_} } @extra), '', 'and the scrape has no other family of ours');
cmp_ok($scraped{inventory_events_metrics_age_seconds}{''}, '<', 30, 'metrics_age_seconds: refreshed seconds ago');

# The values against SQL over the tables themselves.
my $sql = sub { $node->safe_psql('postgres', $_[0]) };
# family_is(name, "labels:value labels:value ...", message): the family's
# series and values (compared as numbers), in any order.
sub family_is
{
	my ($name, $expected, $message) = @_;
	my %exp = map { /^(.*):([^:]*)$/ ? ($1 => $2) : () } split / /, $expected;
	my $got = $scraped{$name} || {};
	my @bad;
	my %all = (%exp, %$got);
	for my $k (sort keys %all)
	{
		next if exists $got->{$k} && exists $exp{$k}
		  && ($exp{$k} eq $got->{$k} || abs($exp{$k} - $got->{$k}) <= 1e-9 * (1 + abs($exp{$k})));
		push @bad, "$k: scraped " . ($got->{$k} // 'none') . ', SQL ' . ($exp{$k} // 'none');
	}
	is(join('; ', @bad), '', $message);
	return;
}
my $family = sub {
	my ($name) = @_;
	join(' ', map { "$_:$scraped{$name}{$_}" } sort keys %{ $scraped{$name} || {} });
};
is($scraped{inventory_events_events_appended_total}{''},
	$sql->(q{SELECT count(*) FROM inventory_events.event}), 'events_appended_total = the events in the log');
is($scraped{inventory_events_dead_letters_total}{''},
	$sql->(q{SELECT count(*) FROM inventory_events.dead_letter}), 'dead_letters_total = the dead letters');
is(join(' ', map { my $k = $_; my $s = 0; $s += $scraped{inventory_events_exceptions_open}{$_}
		for grep { /kind=\Q$k\E$/ } keys %{ $scraped{inventory_events_exceptions_open} }; "$k:$s" }
		qw(channel_drift dead_letter negative_available oversell_refused pick_short recon_variance)),
	$sql->(q{SELECT string_agg(k || ':' || (SELECT count(*) FROM inventory_events.exception x
	                                         WHERE x.kind = k AND x.resolved_at IS NULL), ' ' ORDER BY k)
	           FROM unnest(ARRAY['channel_drift', 'dead_letter', 'negative_available', 'oversell_refused',
	                             'pick_short', 'recon_variance']) k}),
	'exceptions_open per kind = the open exceptions');
like($family->('inventory_events_exceptions_open'), qr/age=lt_1h,kind=pick_short:1/, 'the pick short in the youngest bucket');
is($family->('inventory_events_publications_total'),
	$sql->(q{SELECT string_agg('channel=' || channel || ':' || max, ' ' ORDER BY channel)
	           FROM (SELECT channel, max(seq) FROM inventory_events.publication GROUP BY 1) p}),
	'publications_total per channel = the last sequence number');
is($family->('inventory_events_publication_lag_seconds'), 'channel=amazon:0 channel=shopify:0',
	'publication_lag_seconds per channel: 0 when all is published');
family_is('inventory_events_order_backlog_units',
	$sql->(q{SELECT string_agg(format('location=%s,stage=%s:%s', location, stage, units), ' ' ORDER BY location, stage)
	           FROM (SELECT location, 'picked' AS stage, sum(picked) AS units FROM inventory_events.stock GROUP BY 1
	                 UNION ALL SELECT location, 'reserved', sum(reserved) FROM inventory_events.stock GROUP BY 1) s}),
	'order_backlog_units = reserved and picked stock per location');
is($family->('inventory_events_backorders_open_units'), 'channel=amazon:2 channel=shopify:0',
	'backorders_open_units per channel');
family_is('inventory_events_recon_out_of_tolerance_lines',
	$sql->(qq{SELECT string_agg(format('item_group=%s,location=%s,severity=%s,source=wms:1',
	                                   CASE WHEN i.regulated THEN 'regulated' ELSE 'class_' || lower(i.abc_class) END,
	                                   v.location, v.severity), ' ' ORDER BY i.regulated, v.sku)
	            FROM inventory_events.recon_variance($wms_run) v JOIN inventory_events.item i USING (sku)
	           WHERE v.exceeds_tolerance})
	  . ' item_group=class_a,location=,severity=critical,source=amazon_feed:1',
	'recon_out_of_tolerance_lines: the open lines beyond tolerance of the latest run of each source');
is($family->('inventory_events_channel_drift_persistent_lines'), 'channel=amazon,source=amazon_feed:1',
	'channel_drift_persistent_lines: MUG drifted in two runs in a row');
family_is('inventory_events_recon_last_cutoff_timestamp_seconds',
	$sql->(q{SELECT string_agg('source=' || s.code || ':' ||
	                           coalesce((SELECT extract(epoch FROM max(r.as_of)) FROM inventory_events.recon_run r
	                                      WHERE r.source = s.code), 0)::float8, ' ' ORDER BY s.code)
	           FROM inventory_events.recon_source s}),
	'recon_last_cutoff_timestamp_seconds: the latest cut-off per source, 0 for one never reconciled');
family_is('inventory_events_fill_rate_ratio',
	$sql->(q{SELECT string_agg(format('channel=%s,measure=%s:%s', channel, m, r), ' ' ORDER BY channel, m)
	           FROM (SELECT channel, sum(units_shipped)::float8 / sum(units_ordered) AS unit,
	                        sum(line_fill_rate * lines)::float8 / sum(lines) AS line,
	                        sum(order_fill_rate * orders)::float8 / sum(orders) AS "order"
	                   FROM inventory_events.kpi_fill_rate WHERE day > current_date - 7 GROUP BY 1) f,
	                LATERAL (VALUES ('line', f.line), ('order', f."order"), ('unit', f.unit)) v(m, r)}),
	'fill_rate_ratio per channel and measure = kpi_fill_rate over 7 days');
is($family->('inventory_events_worker_errors'), 'task=expire:0 task=metrics:0 task=publish:0 task=reconcile:0',
	'worker_errors: no task failing now');
is($scraped{inventory_events_verify_drifted_streams}{''}, '0', 'verify_drifted_streams: record_verify() found nothing');
cmp_ok(time() - $scraped{inventory_events_verify_last_run_timestamp_seconds}{''}, '<', 120,
	'verify_last_run_timestamp_seconds: just now');

# promtool check metrics: clean.
my ($pout, $perr) = ('', '');
my $clean = IPC::Run::run([ $promtool, 'check', 'metrics' ], '<', \$scrape, '>', \$pout, '2>', \$perr);
ok($clean && $pout eq '' && $perr eq '', 'promtool check metrics: clean') or diag("$pout$perr");

# 5. The rules and their tests.
($pout, $perr) = ('', '');
ok(IPC::Run::run([ $promtool, 'check', 'rules', "$monitoring/alerts.yml" ], '>', \$pout, '2>', \$perr),
	'promtool check rules monitoring/alerts.yml') or diag("$pout$perr");
($pout, $perr) = ('', '');
ok(IPC::Run::run([ $promtool, 'test', 'rules', "$monitoring/alerts_test.yml" ], '>', \$pout, '2>', \$perr),
	'promtool test rules monitoring/alerts_test.yml') or diag("$pout$perr");

# The metric names a PromQL expression uses: identifiers that are not
# functions, keywords, label names of by/without/on/ignoring clauses, label
# matchers, strings or durations.
sub metric_names
{
	my ($expr) = @_;
	$expr =~ s/"(?:[^"\\]|\\.)*"//g;
	$expr =~ s/\{[^}]*\}//g;
	$expr =~ s/\[[^\]]*\]//g;
	$expr =~ s/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)//g;
	my %kw = map { $_ => 1 } qw(and or unless bool offset by without on ignoring);
	my @names;
	while ($expr =~ /([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?/g)
	{
		next if defined $2 || $kw{$1};
		push @names, $1;
	}
	return @names;
}

my %used;    # metric => where
my $rules = slurp_file("$monitoring/alerts.yml");
my @lines = split /\n/, $rules;
for (my $i = 0; $i < @lines; $i++)
{
	my ($indent, $expr) = $lines[$i] =~ /^(\s*)expr:\s*(.*)$/ or next;
	if ($expr =~ /^[|>]/)
	{
		$expr = '';
		while ($i + 1 < @lines && ($lines[ $i + 1 ] =~ /^(\s*)\S/ ? length($1) > length($indent) : 1))
		{
			$expr .= ' ' . $lines[ ++$i ];
		}
	}
	$used{$_} = 'alerts.yml' for metric_names($expr);
}
my $dashboard = JSON::PP::decode_json(slurp_file("$monitoring/grafana-dashboard.json"));
my $panels = 0;
for my $panel (@{ $dashboard->{panels} })
{
	$panels++;
	$used{$_} = "panel \"$panel->{title}\"" for map { metric_names($_->{expr}) } @{ $panel->{targets} };
}
for my $var (@{ $dashboard->{templating}{list} })
{
	$used{$1} = "variable $var->{name}" if ($var->{definition} // '') =~ /label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)/;
}
cmp_ok($panels, '>=', 7, "the dashboard has $panels panels");
ok(exists $used{inventory_events_recon_out_of_tolerance_lines} && exists $used{pg_up}
	&& exists $used{inventory_events_events_appended_total}, 'the names used are found ('
	  . scalar(keys %used) . ')');
delete $used{up};    # made by Prometheus for every target
my @absent = map { "$_ ($used{$_})" } grep { !$families{$_} } sort keys %used;
is(join(', ', @absent), '', 'every metric an alert rule or a dashboard panel uses is in the scrape');

$exporter->kill_kill;
$node->stop;
done_testing();
