# The connector part of test/bench/run.sh: commit-to-connector latency, the
# delay a sales channel sees, through the reference connector.
#
# A client (latency.py load) appends one event per transaction at 50 per
# second, each to a sku not touched before in the round, and reads
# clock_timestamp() right after each COMMIT returns. The connector
# (tools/connector.py --latency, channel shopify: no interval) runs as a
# channel would run it: woken by the publisher's NOTIFY, it reads
# publications_since() and notes when each row arrived. Latency of an event:
# arrival of its sku's first publication of the round - its commit.
#
# Baseline, in the same rounds: the same client sends NOTIFY bench_plain
# right after each commit, with the sku as payload, and a plain psycopg2
# LISTEN client (latency.py listen) notes its arrival: what a writer-side
# NOTIFY would give, without a publisher and without a read.
#
# Per round: p50 and p99 of both, their ratio (connector / plain), the target
# p99 <= 100 ms, and the publications of the round the connector did not
# deliver (= 0). At the end, the same over all rounds together, printed.

part_connector() {
	local r rate=50 seconds=$bench_latency_seconds first=1 from listener connector n verdict
	local p50 p99 b50 b99 missed workload="50 appends/s, connector on shopify"
	local dsn="host=$IE_WORK/sock port=5432 dbname=postgres user=postgres"
	# The backlog of the parts that ran with the publisher stopped, published first.
	psql_ -c "SELECT count(*) FROM inventory_events.publish(1000000)" -c "SELECT pg_sleep(1)" >/dev/null
	# Per round, when each sku's event committed and when each client got it.
	psql_ -c "CREATE TABLE bench_latency (round int, client text, sku text, at double precision)" \
		-c "CREATE FUNCTION bench_latency_ms(rounds int[], OUT p50 numeric, OUT p99 numeric, OUT b50 numeric, OUT b99 numeric)
		    LANGUAGE sql AS \$\$
		    SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) FILTER (WHERE client = 'connector')::numeric, 1),
		           round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms) FILTER (WHERE client = 'connector')::numeric, 1),
		           round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) FILTER (WHERE client = 'plain')::numeric, 1),
		           round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms) FILTER (WHERE client = 'plain')::numeric, 1)
		      FROM (SELECT got.client, (got.at - c.at) * 1000 AS ms
		              FROM bench_latency c JOIN bench_latency got USING (round, sku)
		             WHERE c.client = 'commit' AND got.client <> 'commit' AND c.round = ANY (rounds)) x
		    \$\$"
	for r in $(seq 1 "$bench_rounds"); do
		from=$(psql_ -At -c "SELECT coalesce(max(last_seq), 0) FROM inventory_events.channel_publisher WHERE channel = 'shopify'")
		ie_run sh -c "echo '{\"shopify\": $from}' > '$IE_WORK/connector.state'"
		ie_run sh -c "/usr/bin/python3 '$IE_WORK/src/tools/connector.py' --dsn '$dsn' --channel shopify \
			--state-file '$IE_WORK/connector.state' --latency --max-seconds $((seconds + 3)) \
			> '$IE_WORK/connector.jsonl' 2> '$IE_WORK/connector.err'" &
		connector=$!
		ie_run sh -c "/usr/bin/python3 '$IE_WORK/src/test/bench/latency.py' listen '$dsn' bench_plain $((seconds + 3)) \
			> '$IE_WORK/plain.csv'" &
		listener=$!
		# Both are connected and idle (listening) before the load starts.
		for n in $(seq 1 50); do
			[ "$(psql_ -At -c "SELECT count(*) FROM pg_stat_activity WHERE state = 'idle'
			                     AND application_name IN ('inventory_events connector', 'bench plain listener')")" = 2 ] && break
			sleep 0.1
		done
		sleep 0.5
		ie_run /usr/bin/python3 "$IE_WORK/src/test/bench/latency.py" load "$dsn" "$rate" "$seconds" "$first" \
			> "$IE_WORK/commits.csv"
		first=$((first + rate * seconds))
		wait "$connector" "$listener"
		[ -s "$IE_WORK/connector.err" ] && sed 's/^/  connector: /' "$IE_WORK/connector.err" >&2
		# The connector's JSON lines are loaded as a one-column csv that nothing quotes.
		IFS='|' read -r p50 p99 b50 b99 missed <<<"$(psql_ -At \
			-c "CREATE TEMP TABLE commits (sku text, at double precision)" \
			-c "CREATE TEMP TABLE plain (sku text, at double precision)" \
			-c "CREATE TEMP TABLE lines (line jsonb)" \
			-c "\\copy commits FROM '$IE_WORK/commits.csv' WITH (FORMAT csv)" \
			-c "\\copy plain FROM '$IE_WORK/plain.csv' WITH (FORMAT csv)" \
			-c "\\copy lines FROM '$IE_WORK/connector.jsonl' WITH (FORMAT csv, QUOTE e'\\x01', DELIMITER e'\\x02')" \
			-c "INSERT INTO bench_latency
			    SELECT $r, 'commit', sku, at FROM commits
			    UNION ALL SELECT $r, 'plain', sku, at FROM plain
			    UNION ALL (SELECT DISTINCT ON (line->>'sku') $r, 'connector', line->>'sku', (line->>'received_at')::float8
			                 FROM lines ORDER BY line->>'sku', (line->>'seq')::bigint)" \
			-c "SELECT l.*, (SELECT count(*) FROM inventory_events.publication p
			                  WHERE p.channel = 'shopify' AND p.seq > $from
			                    AND NOT EXISTS (SELECT FROM lines WHERE (line->>'seq')::bigint = p.seq))
			      FROM bench_latency_ms(ARRAY[$r]) l")"
		record connector "$workload" "commit-to-connector p50, ms" "$r" "$p50" "" ""
		record connector "$workload" "commit-to-connector p99, ms" "$r" "$p99" "" "<= 100"
		record connector "$workload" "connector / plain NOTIFY, p50 latency" "$r" "$p50" "$b50" ""
		record connector "$workload" "connector / plain NOTIFY, p99 latency" "$r" "$p99" "$b99" ""
		record connector "$workload" "publications not delivered" "$r" "$missed" "" "= 0"
	done
	IFS='|' read -r p50 p99 b50 b99 n <<<"$(psql_ -At -c "SELECT l.*, (SELECT count(*) FROM bench_latency WHERE client = 'commit')
		FROM bench_latency_ms(ARRAY(SELECT DISTINCT round FROM bench_latency)) l")"
	if [ "$(echo "$p99 <= 100" | bc)" = 1 ]; then verdict=PASS; else verdict=FAIL; fi
	{
		echo "connector latency: $n events, $bench_rounds rounds of $seconds s at $rate/s, all rounds together"
		printf '  %-32s p50 %7s ms   p99 %7s ms\n' "commit-to-connector" "$p50" "$p99" \
			"plain LISTEN/NOTIFY (baseline)" "$b50" "$b99"
		printf '  %-32s p50 %7s      p99 %7s\n' "connector / plain" "$(ratio "$p50" "$b50")" "$(ratio "$p99" "$b99")"
		echo "  target commit-to-connector p99 <= 100 ms: $verdict"
	} >&2
	psql_ -c "DROP TABLE bench_latency" -c "DROP FUNCTION bench_latency_ms(int[])"
}
