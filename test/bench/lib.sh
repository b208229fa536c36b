# Sourced by test/bench/run.sh and its parts: one throw-away cluster with the
# extension preloaded and the server's default durability (fsync and
# synchronous_commit on), shared by every contender of a run, and the
# recording of results.
#
#   bench_start            initdb, configure, start; defines psql_ and pgb_
#   bench_stop
#   pgb_ script clients s  transactions per second of a pgbench run
#   pgb_latency_           the same, printing "tps latency_ms"
#   record ...             one measurement of a round (see below)
#   median v1 v2 ...       the median of some numbers
#   ratio a b              a / b to 3 decimals
IE_EXTRA_PACKAGES="bc gnuplot-nox postgresql-15-wal2json curl python3-yaml ${IE_EXTRA_PACKAGES:-}"
source "$(dirname "${BASH_SOURCE[0]}")/../../tools/common.sh"

bench_start() {
	ie_setup
	bench_data=$IE_WORK/bench_data
	ie_run initdb -D "$bench_data" -U postgres -A trust --no-sync -E UTF8 >/dev/null
	# The throw-away config's fsync=off is dropped: server defaults for everyone.
	ie_run sh -c "grep -v '^fsync' '$IE_CONF' >> '$bench_data/postgresql.conf'; printf 'shared_buffers = 256MB\nmax_locks_per_transaction = 256\nmax_replication_slots = 16\nmax_wal_senders = 16\n' >> '$bench_data/postgresql.conf'"
	ie_run pg_ctl -c -D "$bench_data" -l "$IE_WORK/bench.log" -w -o "-k $IE_WORK/sock -c listen_addresses='' -p 5432" start >/dev/null
	bench_raw=$IE_WORK/raw.csv
	ie_run sh -c "echo 'benchmark,workload,measure,round,contender,baseline,ratio,target' > '$bench_raw'"
}

bench_stop() {
	ie_run pg_ctl -D "$bench_data" -m fast -w stop >/dev/null
}

psql_() { ie_run psql -X -q -v ON_ERROR_STOP=1 -U postgres -p 5432 -d postgres "$@"; }

# pgb_ script clients seconds: transactions per second of a pgbench run. A run
# in which a client stopped at an error is reported on stderr (its figure would
# be that of fewer clients).
pgb_run() {
	local out
	out=$(ie_run pgbench -n -M prepared -U postgres -p 5432 -c "$2" -j "$(( $2 < 2 ? 1 : 2 ))" -T "$3" \
		-f "$1" postgres 2>&1)
	if grep -q 'aborted' <<<"$out"; then
		echo "warning: a pgbench client stopped at an error in $(basename "$1"):" >&2
		grep -m 3 'ERROR' <<<"$out" >&2
	fi
	printf '%s\n' "$out"
}
pgb_latency_() {
	local out
	out=$(pgb_run "$@")
	echo "$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' <<<"$out") $(sed -n 's/^latency average = \([0-9.]*\) ms/\1/p' <<<"$out")"
}
pgb_() { local tps; read -r tps _ <<<"$(pgb_latency_ "$@")"; echo "$tps"; }

# record benchmark workload measure round contender baseline target
#   One round's figures: the contender's and the baseline's (same unit; the
#   ratio is contender / baseline), or, with an empty baseline, a figure that
#   stands alone (its "ratio" is the figure). target: ">= 1.5", "<= 1.2",
#   "= 0" or empty. run.sh sums the rounds up (min / median / max).
record() {
	local r
	if [ -n "$6" ]; then r=$(ratio "$5" "$6"); else r=$5; fi
	ie_run sh -c "printf '\"%s\",\"%s\",\"%s\",%s,%s,%s,%s,\"%s\"\n' '$1' '$2' '$3' '$4' '$5' '$6' '$r' '$7' >> '$bench_raw'"
	printf '  %-12s %-26s %-44s round %s: %s / %s = %s\n' "$1" "$2" "$3" "$4" "$5" "${6:--}" "$r" >&2
}

median() { printf '%s\n' "$@" | sort -n | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }
ratio() { echo "scale=3; $1 / $2" | bc | sed 's/^\./0./; s/^-\./-0./'; }
