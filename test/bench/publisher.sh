#!/usr/bin/env bash
# The publisher, measured on one throw-away cluster (fsync and
# synchronous_commit on, the extension preloaded):
#
# 1. Commit-to-notification latency: a real LISTEN client (listen.pl, Perl
#    DBD::Pg) on the channel while pgbench appends one event per transaction
#    at a steady rate. For each event, the time from its transaction's start
#    (recorded_at; an upper bound of its commit, which comes a little later)
#    to the client's receipt of the first publication of its sku made after
#    it. Prints p50 and p99 (target p99 < 100 ms, no channel interval).
# 2. The cost of the wake-up on the append path: append() throughput with the
#    publisher running and with it stopped (publisher_stop()), alternately,
#    side by side (target running/stopped >= 0.95).
#
#   bash test/bench/publisher.sh
#   BENCH_SECONDS=15 BENCH_RATE=200 BENCH_CLIENTS=2 BENCH_ROUNDS=3
IE_EXTRA_PACKAGES="libdbd-pg-perl"
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

seconds=${BENCH_SECONDS:-15}
rate=${BENCH_RATE:-200}
clients=${BENCH_CLIENTS:-2}
rounds=${BENCH_ROUNDS:-3}

bench_start
psql_ -c "CREATE EXTENSION inventory_events" \
	-c "INSERT INTO inventory_events.item (sku) SELECT 'SKU' || g FROM generate_series(1, 1000) g" \
	-c "INSERT INTO inventory_events.location (code) VALUES ('W1'), ('W2'), ('W3')" \
	-c "INSERT INTO inventory_events.channel (code) VALUES ('web')" \
	-c "INSERT INTO inventory_events.channel_location (channel, location) VALUES ('web', 'W1'), ('web', 'W2'), ('web', 'W3')"

cat > "$IE_WORK/append.sql" <<'SQL'
\set s random(1, 1000)
\set l random(1, 3)
SELECT inventory_events.append('SKU' || :s, 'W' || :l, 'received', 1);
SQL
chmod 644 "$IE_WORK/append.sql"
cp "$IE_WORK/src/test/bench/listen.pl" "$IE_WORK/listen.pl"
chmod 644 "$IE_WORK/listen.pl"

# 1. Latency.
psql_ -c "SELECT count(*) FROM inventory_events.publish()" >/dev/null	# the initial state, published
ie_run sh -c "perl '$IE_WORK/listen.pl' 'dbi:Pg:dbname=postgres;host=$IE_WORK/sock;port=5432' \
	inventory_events.web $((seconds + 5)) > '$IE_WORK/heard.tsv'" &
listener=$!
sleep 1
start=$(psql_ -At -c "SELECT clock_timestamp()")
ie_run pgbench -n -M prepared -U postgres -p 5432 -c 2 -j 2 -R "$rate" -T "$seconds" -f "$IE_WORK/append.sql" postgres >/dev/null 2>&1
wait "$listener"
psql_ -c "CREATE TABLE heard (seq bigint, received double precision)" \
	-c "\\copy heard FROM '$IE_WORK/heard.tsv' WITH (FORMAT text)"
echo
echo "commit-to-notification latency: $rate appends/s for ${seconds}s, one LISTEN client, no channel interval"
psql_ -P footer=off -c "
	WITH e AS (
	    SELECT e.id, e.sku, e.recorded_at FROM inventory_events.event e
	     WHERE e.recorded_at >= '$start' AND e.event_type = 'received'
	), lat AS (
	    SELECT extract(epoch FROM to_timestamp(h.received) - e.recorded_at) * 1000 AS ms
	      FROM e
	      CROSS JOIN LATERAL (SELECT min(p.seq) AS seq FROM inventory_events.publication p
	                           WHERE p.channel = 'web' AND p.sku = e.sku AND p.published_at >= e.recorded_at) first
	      JOIN heard h ON h.seq = first.seq
	)
	SELECT (SELECT count(*) FROM e) AS events, count(*) AS heard,
	       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 1) AS p50_ms,
	       round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 1) AS p99_ms,
	       round(max(ms)::numeric, 1) AS max_ms
	  FROM lat"

# 2. append() with the publisher running and stopped.
echo
echo "append(): $clients clients, 1 event per transaction, ${seconds}s per run, events/s"
printf '%-6s %12s %12s %10s\n' round stopped running running/stopped
all=()
for r in $(seq 1 "$rounds"); do
	psql_ -At -c "SELECT inventory_events.publisher_stop()" >/dev/null
	psql_ -At -c "SELECT pg_sleep(0.5)" >/dev/null
	off=$(pgb_ "$IE_WORK/append.sql" "$clients" "$seconds")
	psql_ -At -c "SELECT inventory_events.publisher_start()" >/dev/null
	psql_ -At -c "SELECT pg_sleep(1.5)" >/dev/null
	on=$(pgb_ "$IE_WORK/append.sql" "$clients" "$seconds")
	all+=("$(ratio "$on" "$off")")
	printf '%-6s %12.0f %12.0f %10s\n' "$r" "$off" "$on" "${all[-1]}"
done
echo "median running/stopped = $(median "${all[@]}") (target >= 0.95)"
psql_ -At -c "SELECT 'publisher: ' || state || ', ' || publications || ' publications' FROM inventory_events.publisher_status()"
bench_stop
