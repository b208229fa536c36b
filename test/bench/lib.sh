# Sourced by the benchmarks in test/bench/: one throw-away cluster with the
# extension preloaded and the server's default durability (fsync and
# synchronous_commit on), shared by every contender of a run.
#
#   bench_start            initdb, configure, start; defines psql_ and pgb_
#   bench_stop
#   median v1 v2 ...       the median of some numbers
#   ratio a b              a / b to 3 decimals
IE_EXTRA_PACKAGES="bc ${IE_EXTRA_PACKAGES:-}"
source "$(dirname "${BASH_SOURCE[0]}")/../../tools/common.sh"

bench_start() {
	ie_setup
	bench_data=$IE_WORK/bench_data
	ie_run initdb -D "$bench_data" -U postgres -A trust --no-sync -E UTF8 >/dev/null
	# The throw-away config's fsync=off is dropped: server defaults for everyone.
	ie_run sh -c "grep -v '^fsync' '$IE_CONF' >> '$bench_data/postgresql.conf'; echo 'shared_buffers = 256MB' >> '$bench_data/postgresql.conf'"
	ie_run pg_ctl -D "$bench_data" -l "$IE_WORK/bench.log" -w -o "-k $IE_WORK/sock -c listen_addresses='' -p 5432" start >/dev/null
}

bench_stop() {
	ie_run pg_ctl -D "$bench_data" -m fast -w stop >/dev/null
}

psql_() { ie_run psql -X -q -v ON_ERROR_STOP=1 -U postgres -p 5432 -d postgres "$@"; }

# pgb_ script clients seconds: transactions per second of a pgbench run. A run
# in which a client stopped at an error is reported on stderr (its figure would
# be that of fewer clients).
pgb_() {
	local out
	out=$(ie_run pgbench -n -M prepared -U postgres -p 5432 -c "$2" -j "$(( $2 < 2 ? 1 : 2 ))" -T "$3" \
		-f "$1" postgres 2>&1)
	if grep -q 'aborted' <<<"$out"; then
		echo "warning: a pgbench client stopped at an error in $(basename "$1"):" >&2
		grep -m 3 'ERROR' <<<"$out" >&2
	fi
	sed -n 's/^tps = \([0-9.]*\).*/\1/p' <<<"$out"
}

median() { printf '%s\n' "$@" | sort -n | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }
ratio() { echo "scale=3; $1 / $2" | bc; }
