#!/usr/bin/perl
# A LISTEN client for the publisher part of test/bench/run.sh: prints "seq<TAB>epoch" for
# every [sku, available, seq] entry of every notification it receives on the
# channel, with the time it received it, for a number of seconds.
#   perl listen.pl <dbi dsn> <notify channel> <seconds>
use strict;
use warnings;
use DBI;
use IO::Select;
use Time::HiRes qw(time);

my ($dsn, $channel, $seconds) = @ARGV;
my $dbh = DBI->connect($dsn, 'postgres', '', { RaiseError => 1, AutoCommit => 1 });
$dbh->do(qq{LISTEN "$channel"});
my $sel = IO::Select->new($dbh->{pg_socket});
my $end = time + $seconds;
$| = 1;
while (time < $end)
{
	$sel->can_read($end - time);
	while (my $n = $dbh->pg_notifies)
	{
		my $at = time;
		my (undef, undef, $payload) = @$n;
		while ($payload =~ /,(-?\d+),(\d+)\]/g)
		{
			printf "%s\t%.6f\n", $2, $at;
		}
	}
}
$dbh->disconnect;
