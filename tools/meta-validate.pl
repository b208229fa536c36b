#!/usr/bin/perl
# Checks META.json against the PGXN meta spec 1.0.0 (the keys a distribution
# must have, their shapes, and the files it names) and against the versions
# kept elsewhere: inventory_events.control, inventory_events_proxy.control and
# debian/changelog must all say the version META.json says, and the upgrade
# scripts must chain every released version to it. Debian has no
# PGXN::Meta::Validator: this checks the keys the spec requires and their
# shapes, not everything that validator does (prereq ranges, licenses).
use strict;
use warnings;
use JSON::PP;

my $root = shift // '.';
my @errors;
my $meta = eval {
	local $/;
	open my $fh, '<', "$root/META.json" or die "cannot read META.json: $!\n";
	decode_json(<$fh>);
} or die $@;
my $semver = qr/^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?$/;
for my $key (qw(name abstract maintainer license provides version meta-spec)) {
	push @errors, "missing required key \"$key\"" unless exists $meta->{$key};
}
push @errors, 'name must be a string of letters, digits, - and _' unless ($meta->{name} // '') =~ /^[A-Za-z0-9_-]+$/;
push @errors, "version \"$meta->{version}\" is not a semantic version" unless ($meta->{version} // '') =~ $semver;
push @errors, 'meta-spec.version must be 1.0.0' unless (($meta->{'meta-spec'} // {})->{version} // '') eq '1.0.0';
push @errors, 'release_status must be stable, testing or unstable'
  if exists $meta->{release_status} && $meta->{release_status} !~ /^(stable|testing|unstable)$/;
my $m = $meta->{maintainer};
push @errors, 'maintainer must be a string or a list of strings'
  unless (!ref $m && length $m) || (ref $m eq 'ARRAY' && @$m && !grep { ref } @$m);
my $l = $meta->{license};
push @errors, 'license must be a string, a list or a map'
  unless (!ref $l && length $l) || ref $l eq 'ARRAY' || ref $l eq 'HASH';
my $p = $meta->{provides};
if (ref $p ne 'HASH' || !%$p) {
	push @errors, 'provides must name at least one extension';
} else {
	for my $ext (sort keys %$p) {
		my $e = $p->{$ext};
		push @errors, "provides.$ext.file is missing" unless $e->{file};
		push @errors, "provides.$ext.file $e->{file} is not in the distribution" if $e->{file} && !-e "$root/$e->{file}";
		push @errors, "provides.$ext.docfile $e->{docfile} is not in the distribution"
		  if $e->{docfile} && !-e "$root/$e->{docfile}";
		push @errors, "provides.$ext.version \"" . ($e->{version} // '') . '" is not a semantic version'
		  unless ($e->{version} // '') =~ $semver;
		push @errors, "provides.$ext.version differs from version" if ($e->{version} // '') ne ($meta->{version} // '');
		if (open my $c, '<', "$root/$ext.control") {
			my ($v) = map { /^default_version\s*=\s*'([^']*)'/ ? $1 : () } <$c>;
			push @errors, "$ext.control says $v, META.json $e->{version}" if ($v // '') ne ($e->{version} // '');
		} else {
			push @errors, "provides.$ext has no $ext.control";
		}
	}
}
if (open my $ch, '<', "$root/debian/changelog") {
	my $first = <$ch>;
	my ($v) = $first =~ /^\S+ \(([^)]+)\)/;
	(my $upstream = $v // '') =~ s/-[^-]*$//;
	push @errors, "debian/changelog says $v, META.json $meta->{version}" if $upstream ne ($meta->{version} // '');
}
# The upgrade chain: every released version (sql/released.sha256) reaches the
# current one through the upgrade scripts in sql/.
if (open my $rel, '<', "$root/sql/released.sha256") {
	my @released = sort { version_cmp($a, $b) } map { /inventory_events--([0-9.]+)\.sql/ ? $1 : () } <$rel>;
	my @chain = (@released, $meta->{version} // '');
	for my $i (0 .. $#chain - 1) {
		next if $chain[$i] eq $chain[$i + 1];
		my $script = "sql/inventory_events--$chain[$i]--$chain[$i + 1].sql";
		push @errors, "no upgrade script $script" unless -e "$root/$script";
	}
}
sub version_cmp {
	my @a = split /\./, shift;
	my @b = split /\./, shift;
	while (@a || @b) {
		my $c = (shift(@a) // 0) <=> (shift(@b) // 0);
		return $c if $c;
	}
	return 0;
}

if (@errors) {
	print STDERR "META.json: $_\n" for @errors;
	exit 1;
}
print "META.json is valid (PGXN meta spec 1.0.0); every version says $meta->{version}; the upgrade scripts chain every release to it\n";
