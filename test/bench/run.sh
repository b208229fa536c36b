#!/usr/bin/env bash
# Every benchmark of inventory_events, side by side with its baseline, in one
# invocation on one throw-away cluster (fsync and synchronous_commit on, the
# extension preloaded, the publisher running), on a realistic catalog
# (catalog.sql: 10,000 skus, 3 warehouses, 4 channels):
#
#   part       workload                                      contender vs baseline
#   append     uniform / Zipf skus, 1 and 10 events per tx   append() vs bare INSERT, PL/pgSQL trigger
#              batches of 1,000                              ingest() vs COPY
#   serial     receipts of 1 and 10 units of serialized      append() with serials vs the same
#              items, 2 clients                              without (no target)
#   reserve    uniform / Zipf skus, 8 clients                reserve_lines() vs SELECT ... FOR UPDATE
#   burst      peak order burst: 3-line orders, 16 clients   the same
#   channels   receipts and reservations on 4 channels       the same
#   wave       a wave release: thousands of picks, 4 tx      pick() vs FOR UPDATE
#   decoding   the same WAL                                  our plugin vs wal2json, test_decoding
#   subscribers 0, 1, 4, 8 slots streamed while 2 clients       appenders vs no slot; decode rate per
#              append                                         slot; walsender memory
#   publisher  append with the publisher on and off          running / stopped
#   connector  50 appends/s, the reference connector         commit-to-connector latency vs a plain
#              (tools/connector.py) on a channel              LISTEN/NOTIFY round trip
#   growth     log of 10k .. 1M (full: 10M) events           append, ATP (also over a node) and position_as_of()
#                                                            latency vs at 10k; ATP vs summing; the whole-history fold vs a snapshot
#   metrics    log of 10M events, Debian's postgres exporter  a scrape (target <= 50 ms); refresh_metrics()
#              with monitoring/queries.yaml                   vs before the growth; record_verify() once
#   recon      a 99,999-line WMS snapshot (2 % / 20 % of the    COPY + reconcile_staged() vs COPY + the team's
#              lines differ) as of a cut-off, log of 1M        full join with sum(effect) up to the cut-off;
#              (full: 10M) events; history 0.1M .. 1M (full:   the run's time against the history and
#              1M .. 10M) and 1k .. 100k (full: 1M) events     against the events after the cut-off
#              after the cut-off
#
# and, in the parts that run the publisher, the resident memory of the
# publisher and of a walsender decoding everything with the output plugin
# (pg_recvlogical).
#
#   bash test/bench/run.sh [short|full|growth] [part ...]  (make bench / make bench-full / make bench-growth)
#
# The publisher runs only in the parts that need it (see below).
#
# short (the default) takes under 5 minutes on a 2-core machine; full about
# 30. Every measurement is repeated (rounds) and reported as min / median /
# max of its ratio, in build/bench/: results.md, results.csv (summary),
# raw.csv (every round), growth.csv and growth.png (throughput and latency
# against log size), recon.csv (the reconciliation's curve), memory.csv.
bench_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$bench_dir/lib.sh"
for part in append serial reserve decoding subscribers publisher connector growth metrics recon; do source "$bench_dir/part_$part.sh"; done

mode=${1:-short}
[ $# -gt 0 ] && shift
case $mode in
	short)
		bench_seconds=2 bench_rounds=3 bench_batches=20 bench_wave=2000 bench_decode_events=20000 bench_latency_seconds=7
		bench_growth_sizes="10000 100000 1000000"
		bench_recon_histories="100000 300000 1000000" bench_recon_afters="1000 10000 100000" ;;
	full)
		bench_seconds=10 bench_rounds=5 bench_batches=50 bench_wave=4000 bench_decode_events=100000 bench_latency_seconds=20
		bench_growth_sizes="10000 100000 1000000 10000000"
		bench_recon_histories="1000000 3000000 10000000" bench_recon_afters="1000 10000 100000 1000000" ;;
	growth)
		# make bench-growth: the growth part alone, up to 50 million events
		# (about an hour and 25 GB of disk on the development machine).
		bench_seconds=5 bench_rounds=3 bench_batches=20 bench_wave=2000 bench_decode_events=20000 bench_latency_seconds=7
		bench_growth_sizes="10000 100000 1000000 10000000 50000000" bench_growth_target="<= 1.1"
		bench_recon_histories="100000" bench_recon_afters="1000"
		default_parts=growth
		# No walsender decoding the whole run: it would decode, and spill to
		# disk, every bulk step of tens of millions of rows.
		bench_memory_slot=0 ;;
	*) ie_die "usage: run.sh [short|full|growth] [part ...]" ;;
esac
bench_skus=10000 bench_units=2000 bench_metrics_events=${IE_BENCH_METRICS_EVENTS:-10000000}
bench_recon_fixed_after=10000 bench_recon_rounds=3
parts=${*:-${default_parts:-append serial reserve burst channels wave decoding subscribers publisher connector growth metrics recon}}
out_dir=${BENCH_OUT:-$IE_ROOT/build/bench}
mkdir -p "$out_dir"
began=$(date +%s)

bench_start
psql_ -f "$IE_WORK/src/test/bench/catalog.sql" >/dev/null
psql_ -f "$IE_WORK/src/test/bench/reserve_baselines.sql" >/dev/null

# Memory: a walsender decoding everything with the output plugin, and the
# publisher; RssAnon (private memory, not the shared buffers a process
# touches) and VmHWM every 2 seconds. Both run only in the parts that run the
# publisher (below): in the others a walsender decoding the contender's events
# (and not, or far more cheaply, the baselines' rows) took a fifth of the CPU
# from append() even at nice 19 (short append part, 2026-12-02: append() /
# bare 0.55 with it, 0.75 without); what decoding costs appenders is the
# subscribers part's own measurement. The slot stays; it is moved past the
# WAL of the parts in between before its client starts again.
if [ "${bench_memory_slot:-1}" = 1 ]; then
	psql_ -c "SELECT pg_create_logical_replication_slot('bench_memory', 'inventory_events')" >/dev/null
fi
memory_client() {	# start | stop
	[ "${bench_memory_slot:-1}" = 1 ] || return 0
	psql_ -c "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots
	           WHERE slot_name = 'bench_memory' AND active_pid IS NOT NULL" >/dev/null
	while [ -n "$(psql_ -At -c "SELECT active_pid FROM pg_replication_slots WHERE slot_name = 'bench_memory'")" ]; do
		sleep 0.2
	done
	[ "$1" = start ] || return 0
	psql_ -c "SELECT pg_replication_slot_advance('bench_memory', pg_current_wal_lsn())" >/dev/null
	ie_run sh -c "pg_recvlogical -U postgres -p 5432 -d postgres --slot bench_memory --start -f /dev/null \
		-o include-xact=on -o include-position=on --status-interval 1 --no-loop >/dev/null 2>&1 &"
}
ie_run sh -c "echo 'seconds,part,process,rss_anon_kb,hwm_kb' > '$IE_WORK/memory.csv'"
echo start > "$IE_WORK/part"
sample_memory() {
	local walsender publisher now
	while [ -e "$IE_WORK/part" ]; do
		walsender=$(psql_ -At -c "SELECT active_pid FROM pg_replication_slots WHERE slot_name = 'bench_memory'" 2>/dev/null || true)
		publisher=$(psql_ -At -c "SELECT pid FROM inventory_events.publisher_status()" 2>/dev/null || true)
		now=$(( $(date +%s) - began ))
		# The decoding client and its walsender yield the CPU to the measured work.
		[ -n "$walsender" ] && renice -n 19 -p "$walsender" $(pgrep -f 'pg_recvlogical.*bench_memory') >/dev/null 2>&1 || true
		for p in "walsender:$walsender" "publisher:$publisher"; do
			[ -n "${p#*:}" ] && [ -r "/proc/${p#*:}/status" ] || continue
			awk -v t="$now" -v part="$(cat "$IE_WORK/part" 2>/dev/null)" -v proc="${p%%:*}" \
				'/^RssAnon:/ {r=$2} /^VmHWM:/ {h=$2} END {printf "%s,%s,%s,%s,%s\n", t, part, proc, r, h}' \
				"/proc/${p#*:}/status" >> "$IE_WORK/memory.csv"
		done
		sleep 2
	done
}
sample_memory &
sampler=$!

# The comparisons with a baseline run with the publisher (and the memory
# walsender) stopped: its cost
# is the publisher part's own measurement (append() with it running /
# stopped), and on 2 cores its work for four channels would otherwise land
# on whichever contender happens to run. It runs for the parts that need it
# or that the baselines do not share: decoding, publisher, connector, growth.
for part in $parts; do
	ie_log "part $part ($(( $(date +%s) - began )) s)"
	echo "$part" > "$IE_WORK/part"
	case $part in
		decoding | publisher | connector | growth)
			psql_ -c "SELECT inventory_events.publisher_start()" >/dev/null
			memory_client start ;;
		*)
			psql_ -c "SELECT inventory_events.publisher_stop()" >/dev/null
			memory_client stop ;;
	esac
	"part_$part"
done
rm -f "$IE_WORK/part"
wait "$sampler" || true

# The summary: per measurement, min / median / max of the rounds' ratios,
# the medians of both sides' figures, and whether the median meets the target.
psql_ -c "CREATE TABLE bench_raw (benchmark text, workload text, measure text, round int,
	                              contender numeric, baseline numeric, ratio numeric, target text)" \
	-c "\\copy bench_raw FROM '$bench_raw' WITH (FORMAT csv, HEADER)" \
	-c "CREATE TABLE bench_memory (seconds int, part text, process text, rss_anon_kb bigint, hwm_kb bigint)" \
	-c "\\copy bench_memory FROM '$IE_WORK/memory.csv' WITH (FORMAT csv, HEADER)" >/dev/null
# Memory: after a warm-up (the first third of a process's samples: its first
# big transactions set the level its allocator keeps), the median RssAnon of
# the last third over that of the middle third; a leak raises it, the peaks
# of big transactions (bounded by logical_decoding_work_mem) do not move a
# median. (The publisher runs, and is sampled, only in the parts that start it.)
psql_ -c "INSERT INTO bench_raw
	SELECT 'memory', process || ', parts that run the publisher', m.measure, 1, v, NULL, v, m.target
	  FROM (SELECT process,
	               percentile_disc(0.5) WITHIN GROUP (ORDER BY rss_anon_kb) FILTER (WHERE third = 2) AS middle,
	               percentile_disc(0.5) WITHIN GROUP (ORDER BY rss_anon_kb) FILTER (WHERE third = 3) AS last,
	               max(rss_anon_kb) AS peak, max(hwm_kb) AS hwm
	          FROM (SELECT *, ntile(3) OVER (PARTITION BY process ORDER BY seconds) AS third FROM bench_memory) x
	         GROUP BY process) x
	  CROSS JOIN LATERAL (VALUES ('median RssAnon, middle third of the run, kB', x.middle, ''),
	                             ('median RssAnon, last third of the run, kB', x.last, ''),
	                             ('median RssAnon, last third / middle third', round(x.last::numeric / nullif(x.middle, 0), 3), '<= 1.2'),
	                             ('peak RssAnon (a big transaction), kB', x.peak, ''),
	                             ('peak VmHWM (shared buffers included), kB', x.hwm, '')) m(measure, v, target)" >/dev/null
psql_ -c "CREATE TABLE bench_summary AS
	SELECT min(n) AS ord, benchmark, workload, measure, count(*) AS rounds,
	       percentile_cont(0.5) WITHIN GROUP (ORDER BY contender) AS contender,
	       percentile_cont(0.5) WITHIN GROUP (ORDER BY baseline) AS baseline,
	       min(ratio) AS min, percentile_cont(0.5) WITHIN GROUP (ORDER BY ratio) AS median, max(ratio) AS max,
	       max(target) AS target
	  FROM (SELECT *, row_number() OVER () AS n FROM bench_raw) r
	 GROUP BY benchmark, workload, measure" >/dev/null
psql_ -c "ALTER TABLE bench_summary ADD met text" \
	-c "UPDATE bench_summary SET met = CASE
	        WHEN coalesce(target, '') = '' THEN ''
	        WHEN target LIKE '>=%' THEN CASE WHEN median >= split_part(target, ' ', 2)::numeric THEN 'yes' ELSE 'no' END
	        WHEN target LIKE '<=%' THEN CASE WHEN median <= split_part(target, ' ', 2)::numeric THEN 'yes' ELSE 'no' END
	        WHEN target LIKE '=%' THEN CASE WHEN max = split_part(target, ' ', 2)::numeric AND min = max THEN 'yes' ELSE 'no' END
	     END" >/dev/null
# Figures of 100 and more as integers with thousands separators, smaller ones to 3 decimals.
f() { printf "CASE WHEN %s IS NULL THEN '' WHEN abs(%s) >= 100 THEN to_char(round(%s), 'FM999,999,999,990') ELSE trim_scale(round(%s::numeric, 3))::text END" "$1" "$1" "$1" "$1"; }
psql_ -At -c "\\copy (SELECT benchmark, workload, measure, rounds, contender, baseline, min, median, max, target, met FROM bench_summary ORDER BY ord) TO '$IE_WORK/results.csv' WITH (FORMAT csv, HEADER)"
{
	echo "# inventory_events benchmarks ($mode mode)"
	echo
	echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, PostgreSQL $(psql_ -At -c 'SHOW server_version'), \`bash test/bench/run.sh $mode\`" \
		"in $(( ($(date +%s) - began) / 60 )) min; $bench_rounds rounds of ${bench_seconds} s per figure; fsync and synchronous_commit on (the append part's CPU-bound rows: synchronous_commit off)."
	echo "Ratio: contender / baseline (for a figure that stands alone, the figure); min / median / max over the rounds."
	echo "contender and baseline: medians of the rounds, in the measure's unit. met: the median meets the target."
	echo
	echo "| benchmark | workload | measure | contender | baseline | min | median | max | target | met |"
	echo "|---|---|---|---:|---:|---:|---:|---:|---|---|"
	psql_ -At -c "SELECT format('| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |', benchmark, workload, measure,
	                            $(f contender), $(f baseline), $(f min), $(f median), $(f max), coalesce(target, ''), met)
	                FROM bench_summary ORDER BY ord"
} > "$out_dir/results.md"

# The chart: throughput and latency against log size.
if [ -s "$IE_WORK/growth.csv" ]; then
	psql_ -At -F ',' -c "CREATE TABLE bench_growth (events bigint, append_tps numeric, append_ms numeric, atp_tps numeric,
	                                                  atp_ms numeric, sum_tps numeric, sum_ms numeric)" \
		-c "\\copy bench_growth FROM '$IE_WORK/growth.csv' WITH (FORMAT csv, HEADER)" \
		-c "\\copy (SELECT events, percentile_cont(0.5) WITHIN GROUP (ORDER BY append_tps), percentile_cont(0.5) WITHIN GROUP (ORDER BY append_ms),
		                  percentile_cont(0.5) WITHIN GROUP (ORDER BY atp_tps), percentile_cont(0.5) WITHIN GROUP (ORDER BY atp_ms),
		                  percentile_cont(0.5) WITHIN GROUP (ORDER BY sum_tps), percentile_cont(0.5) WITHIN GROUP (ORDER BY sum_ms)
		             FROM bench_growth GROUP BY events ORDER BY events) TO '$IE_WORK/growth.dat' WITH (FORMAT csv)" >/dev/null
	cp "$IE_WORK/growth.csv" "$out_dir/growth.csv"
	gnuplot <<GNUPLOT
set terminal pngcairo size 900,700 font ",10" noenhanced
set output "$out_dir/growth.png"
set datafile separator ","
set logscale x
set format x "%.0s%c"
set xlabel "events in the log"
set key outside right
set grid
set multiplot layout 2,1 title "inventory_events: throughput and latency against log size (medians, $mode mode)"
set ylabel "calls/s (1 client)"
set logscale y
plot "$IE_WORK/growth.dat" using 1:2 with linespoints title "append()", \
     "" using 1:4 with linespoints title "channel_availability()", \
     "" using 1:6 with linespoints title "sum of events (baseline)"
set ylabel "latency, ms"
plot "$IE_WORK/growth.dat" using 1:3 with linespoints title "append()", \
     "" using 1:5 with linespoints title "channel_availability()", \
     "" using 1:7 with linespoints title "sum of events (baseline)"
unset multiplot
GNUPLOT
fi
[ -s "$IE_WORK/recon.csv" ] && cp "$IE_WORK/recon.csv" "$out_dir/recon.csv"
cp "$bench_raw" "$out_dir/raw.csv"
cp "$IE_WORK/results.csv" "$IE_WORK/memory.csv" "$out_dir/"
memory_client stop
bench_stop
echo
cat "$out_dir/results.md"
echo
echo "written: $out_dir/{results.md,results.csv,raw.csv,growth.csv,growth.png,recon.csv,memory.csv}"
