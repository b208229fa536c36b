# EDI 846 documents from edi_846(), read by an X12 parser this project did
# not write: node-x12 (npm, https://github.com/aaronhuggins/node-x12) in
# strict mode, which refuses control numbers and segment counts that do not
# match (tools/x12_check.js). tools/test.sh installs Node.js (Debian's
# nodejs and npm where missing) and node-x12 into $HOME/x12 before the TAP
# suite; IE_X12_NODE_PATH may name another node_modules directory.
# - a full 846 of a partner with listings, a future view, and more sourcing
#   locations than one SDQ segment holds; an incremental one after orders
#   and a delisting; none when nothing changed (no control number used); a
#   second full one; a full 846 of a second partner without listings;
# - every document parses strictly; ISA13, GS06 and ST02 carry the
#   partner's control number, increasing per partner; SE01 counts the
#   segments and CTT the LIN segments; LIN carries the partner's identifier
#   and ours; QTY*33 is channel_availability();
# - the parser is not lenient: the same document with SE01 or IEA02 changed
#   is refused.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use JSON::PP;
use IETest;

my $modules = $ENV{IE_X12_NODE_PATH} // "$ENV{HOME}/x12/node_modules";
ok(-d "$modules/node-x12", "node-x12 is installed in $modules")
  or BAIL_OUT('node-x12 is missing: tools/test.sh installs it (npm install node-x12)');

my $node = ie_node('edi');
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION inventory_events;
	SET search_path = inventory_events;
	INSERT INTO item (sku) SELECT 'SKU-' || g FROM generate_series(1, 6) g;
	INSERT INTO item (sku) VALUES ('KIT');
	INSERT INTO kit_component (kit, component, qty) VALUES ('KIT', 'SKU-1', 1), ('KIT', 'SKU-2', 2);
	-- Twelve warehouses: more than the ten location pairs of one SDQ segment.
	INSERT INTO location (code) SELECT 'W' || lpad(g::text, 2, '0') FROM generate_series(1, 12) g;
	INSERT INTO channel (code, kind, buffer_fixed, future_view)
	     VALUES ('target', 'edi_partner', 1, true), ('walmart', 'edi_partner', 0, false);
	INSERT INTO channel_location (channel, location) SELECT 'target', code FROM location;
	INSERT INTO channel_location (channel, location) VALUES ('walmart', 'W01'), ('walmart', 'W02');
	INSERT INTO channel_item (channel, sku, channel_sku)
	SELECT 'target', sku, 'TGT-' || right(sku, 1) FROM item WHERE sku IN ('SKU-1', 'SKU-2', 'SKU-3', 'SKU-4');
	SELECT count(*) FROM (SELECT append('SKU-' || (g % 6 + 1), 'W' || lpad((g % 12 + 1)::text, 2, '0'), 'received', g)
	                        FROM generate_series(1, 60) g) x;
	-- SKU-1 at every warehouse.
	SELECT count(*) FROM (SELECT append('SKU-1', code, 'received', 5) FROM location) x;
	SELECT append('SKU-3', 'W05', 'inbound_expected', 30, ref => 'PO-9', expected_date => current_date + 10);
	INSERT INTO edi_partner (channel, sender_id, receiver_id, receiver_qualifier, by_location)
	     VALUES ('target', 'DISTRIB', '0049TARGET', '01', true);
	INSERT INTO edi_partner (channel, sender_id, receiver_id) VALUES ('walmart', 'DISTRIB', 'WALMART');
	SELECT count(*) FROM publish();
});

my $n = 0;
my %doc;	# name => parsed
sub document
{
	my ($name, $sql) = @_;
	my $text = $node->safe_psql('postgres', $sql);
	return undef if $text eq '';
	my $file = $node->basedir . "/$name.x12";
	open my $fh, '>', $file or die "$file: $!";
	print $fh $text;
	close $fh;
	return $file;
}
sub check
{
	my @files = @_;
	my $out = `NODE_PATH='$modules' node tools/x12_check.js @files 2>&1`;
	die "x12_check.js failed: $out" if $? != 0;
	# Named by the file's base name in the test names.
	return map { my $d = decode_json($_); $d->{file} =~ s{.*/}{}; $d } split /\n/, $out;
}
# The available for sale the channel shows now, by our sku.
sub shown
{
	my ($channel) = @_;
	my %v = map { split /\|/ } split /\n/, $node->safe_psql('postgres', qq{
		SELECT sku || '|' || inventory_events.channel_availability('$channel', sku) FROM inventory_events.item});
	return \%v;
}
# QTY*33 per LIN (the LIN's own sku, VN).
sub available_by_sku
{
	my ($d) = @_;
	my %v;
	my @q = grep { $_->[0] eq '33' } @{ $d->{qty} };
	$v{ $d->{lin}[$_][3] } = $q[$_][1] for 0 .. $#{ $d->{lin} };
	return \%v;
}

my $full1 = document('full1', q{SELECT inventory_events.edi_846('target')});
my $target_shown = shown('target');
$node->safe_psql('postgres', q{
	SELECT count(*) FROM inventory_events.reserve('target', 'TGT-1', 3, 'PO-850-1');
	UPDATE inventory_events.channel_item SET listed = false WHERE channel = 'target' AND sku = 'SKU-4';
	SELECT count(*) FROM inventory_events.publish();
});
my $incr = document('incr', q{SELECT inventory_events.edi_846('target', incremental => true)});
my $none = document('none', q{SELECT inventory_events.edi_846('target', incremental => true)});
my $full2 = document('full2', q{SELECT inventory_events.edi_846('target')});
my $walmart = document('walmart', q{SELECT inventory_events.edi_846('walmart')});
is($none, undef, 'an incremental 846 with nothing published since the last is no document');

my ($d1, $di, $d2, $dw) = check($full1, $incr, $full2, $walmart);
for my $d ($d1, $di, $d2, $dw)
{
	ok($d->{ok}, "$d->{file}: node-x12 parses it strictly") or diag($d->{error});
	is($d->{se01}, $d->{segments}, "$d->{file}: SE01 counts the segments from ST to SE");
	is($d->{ctt}, scalar @{ $d->{lin} }, "$d->{file}: CTT counts the LIN segments");
	is($d->{gs01}, 'IB', "$d->{file}: functional group IB");
	is($d->{st01}, '846', "$d->{file}: transaction set 846");
}
is_deeply([ map { [ 0 + $_->{isa13}, 0 + $_->{gs06}, 0 + $_->{st02} ] } $d1, $di, $d2, $dw ],
	[ [ 1, 1, 1 ], [ 2, 2, 1 ], [ 3, 3, 1 ], [ 1, 1, 1 ] ],
	'ISA13 and GS06 carry the control number, increasing per partner (an empty incremental used none); ST02 numbers the set');
is_deeply([ map { "$_->[1] $_->[3]" } @{ $d1->{lin} } ],
	[ 'TGT-1 SKU-1', 'TGT-2 SKU-2', 'TGT-3 SKU-3', 'TGT-4 SKU-4' ],
	'the full 846 lists what the channel lists, with the partner\'s identifier (BP) and ours (VN)');
my $a1 = available_by_sku($d1);
is_deeply($a1, { map { $_ => $target_shown->{$_} } keys %$a1 }, 'QTY*33 is channel_availability()');
ok((grep { $_->[0] eq '29' } @{ $d1->{qty} }), 'the future view gives QTY*29 (projected, with DTM)');
like(slurp_file($full1), qr/~LIN[^~]*~SDQ\*EA\*92\*W01\*\d+(?:\*W\d\d\*\d+){9}~SDQ\*EA\*92\*W11\*\d+\*W12\*\d+~QTY/,
	'SKU-1 at twelve locations: SDQ (before the QTY loop) in a segment of ten pairs and one of two');
is_deeply({ %{ available_by_sku($di) } }, { 'SKU-1' => $target_shown->{'SKU-1'} - 3, 'SKU-4' => 0 },
	'the incremental 846: the sku ordered and the one delisted (0), nothing else');
is_deeply([ map { $_->[3] } @{ $d2->{lin} } ], [ 'SKU-1', 'SKU-2', 'SKU-3', 'SKU-4' ],
	'the next full 846 keeps the delisted sku, as 0');
is(available_by_sku($d2)->{'SKU-4'}, 0, '... as 0');
my @stocked = split /\n/, $node->safe_psql('postgres', q{
	SELECT sku || ' ' || sku FROM inventory_events.item i
	 WHERE EXISTS (SELECT FROM inventory_events.stock s WHERE s.sku = i.sku AND s.location IN ('W01', 'W02'))
	    OR sku = 'KIT' ORDER BY sku});
cmp_ok(scalar @stocked, '>=', 3, 'the second partner has a kit and skus stocked at its locations');
is_deeply([ map { "$_->[1] $_->[3]" } @{ $dw->{lin} } ], \@stocked,
	'a partner without listings: every item stocked at its locations and the kit, under our skus');
my ($aw, $walmart_shown) = (available_by_sku($dw), shown('walmart'));
is_deeply($aw, { map { $_ => $walmart_shown->{$_} } keys %$aw },
	'QTY*33 of the second partner is its channel_availability()');

# More than the 10,000 LIN loops one transaction set may hold: 10,001 skus
# stocked for a partner without listings, and the kit, make two sets in one
# group.
$node->safe_psql('postgres', q{
	SET search_path = inventory_events;
	INSERT INTO item (sku) SELECT 'BULK-' || g FROM generate_series(1, 10001) g;
	INSERT INTO location (code) VALUES ('BULK');
	INSERT INTO channel (code, kind) VALUES ('costco', 'edi_partner');
	INSERT INTO channel_location (channel, location) VALUES ('costco', 'BULK');
	SELECT count(*) FROM (SELECT append('BULK-' || g, 'BULK', 'received', 1) FROM generate_series(1, 5000) g) x;
});
$node->safe_psql('postgres', q{
	SELECT count(*) FROM (SELECT inventory_events.append('BULK-' || g, 'BULK', 'received', 1)
	                        FROM generate_series(5001, 10001) g) x;
	INSERT INTO inventory_events.edi_partner (channel, sender_id, receiver_id) VALUES ('costco', 'DISTRIB', 'COSTCO');
});
my ($db) = check(document('bulk', q{SELECT inventory_events.edi_846('costco')}));
ok($db->{ok}, 'bulk.x12: 10,001 skus parse strictly') or diag($db->{error});
is_deeply([ map { [ 0 + $_->{st02}, $_->{lin}, 0 + $_->{ctt}, $_->{se01} == $_->{segments} ? 'counted' : 'miscounted' ] } @{ $db->{sets} } ],
	[ [ 1, 10000, 10000, 'counted' ], [ 2, 2, 2, 'counted' ] ],
	'bulk.x12: two transaction sets of 10,000 and 2 LIN, each counted');
is($db->{ge01}, '2', 'bulk.x12: GE01 counts the two sets');

# The parser is strict: a wrong segment count or interchange control number is refused.
my $text = slurp_file($full1);
(my $bad_se = $text) =~ s/~SE\*(\d+)\*/'~SE*' . ($1 + 1) . '*'/e;
(my $bad_iea = $text) =~ s/IEA\*1\*000000001~/IEA*1*000000007~/;
for ([ 'bad_se', $bad_se ], [ 'bad_iea', $bad_iea ])
{
	my $file = $node->basedir . "/$_->[0].x12";
	open my $fh, '>', $file or die;
	print $fh $_->[1];
	close $fh;
	my ($d) = check($file);
	ok(!$d->{ok}, "$_->[0]: refused by the parser") and note($d->{error});
}

$node->stop;
done_testing();
