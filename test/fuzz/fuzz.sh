#!/usr/bin/env bash
# The fuzz suite of inventory_events, on one throw-away cluster configured like
# every other (tools/temp-config.sh, servers run as an unprivileged user when
# we are root):
#   1. setup      the demo's data (demo/demo.sql: items, lots, units, locations,
#                 channels, events, reservations, publications, dead letters)
#                 in database postgres, which the publisher worker serves; a
#                 superuser role and a writer role (grant_access 'writer'), both
#                 with a statement_timeout
#   2. ingest     test/fuzz/ingest_fuzz.py: mutated batches into ingest(), as
#                 the writer: every element gets a documented outcome, every
#                 SQLSTATE is in class 22, 23 or IE, dead letters add up,
#                 verify() is clean
#   3. serial     test/fuzz/serial_fuzz.py: random operations on serialized
#                 items (receipts, counts with serials, picks, ships, transfers,
#                 PO receipts, returns, ingest() batches, wrong calls, two
#                 sessions racing for one serial) in a database of its own
#                 (serial_fuzz), as the superuser, against a model of where
#                 every serial is: serial = model, serials = stock but the
#                 drift the model expects, serial_drift, serial_event, verify()
#   4. sqlsmith   test/fuzz/sqlsmith.sh: random SQL (SQLsmith) as the superuser,
#                 then as the writer: no server crash, the server answers
#   5. final      no crash in the whole server log, the server answers,
#                 verify() and the positions still equal the sum of the events
# Each step counts as one test.
#
# Bounds and knobs (the defaults are the short run of tools/test.sh):
#   IE_FUZZ_QUERIES=2000     SQLsmith queries per role
#   IE_FUZZ_BATCHES=300      ingest() batches
#   IE_FUZZ_SERIAL_OPS=1000  operations of the serial fuzzer
#   IE_FUZZ_SEED=1           seed of all three fuzzers (the writer's SQLsmith run uses seed + 1)
#   IE_FUZZ_ROLES="superuser writer"   the roles SQLsmith runs as
#   IE_FUZZ_TIMEOUT=1s       statement_timeout of the fuzz roles
#   IE_FUZZ_STRICT=1         known findings of the ingest and serial fuzzers fail too
#
# tools/test.sh sources this file and calls fuzz_suite (suite "fuzz"); run on
# its own (bash test/fuzz/fuzz.sh), it builds and sets up like tools/test.sh
# and ends with "N passed, N failed".

# Counts one step into tools/test.sh's totals.
fuzz_count() {	# $1: name, $2: exit status
	if [ "$2" -eq 0 ]; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
		failures+=("$1")
	fi
}

# What the server log says when a server process crashed (as in sqlsmith.sh).
FUZZ_CRASH_PATTERN='terminated by signal|terminated by exception|exited with exit code [^01]|exited with exit code [0-9][0-9]|terminating any other active server processes|all server processes terminated; reinitializing|PANIC:|TRAP:'

fuzz_psql() {	# $@: psql arguments; as the cluster's superuser, in database postgres
	ie_run env PGPORT="$FUZZ_PORT" PGUSER=postgres psql -X -q -v ON_ERROR_STOP=1 -U postgres -d postgres "$@"
}

# Waits until the server accepts connections (after a crash it recovers first),
# so that one step's crash is not also every later step's failure.
fuzz_wait_ready() {
	local i
	for i in $(seq 1 60); do
		fuzz_psql -At -c 'SELECT 1' >/dev/null 2>&1 && return 0
		sleep 0.5
	done
	return 1
}

# Prints the crash lines of the server log from byte $1 on; false when none.
fuzz_log_crashes() {	# $1: offset
	local lines
	lines=$(tail -c +$(($1 + 1)) "$FUZZ_LOG" | grep -E "$FUZZ_CRASH_PATTERN" || true)
	[ -n "$lines" ] || return 1
	printf '%s\n' "$lines" | head -20 | cut -c1-400 || true
	return 0
}

fuzz_suite() {
	local queries=${IE_FUZZ_QUERIES:-2000} batches=${IE_FUZZ_BATCHES:-300} seed=${IE_FUZZ_SEED:-1}
	local serial_ops=${IE_FUZZ_SERIAL_OPS:-1000}
	local roles=${IE_FUZZ_ROLES:-superuser writer} timeout=${IE_FUZZ_TIMEOUT:-1s}
	local data=$IE_WORK/fuzz_data out=$IE_WORK/out/fuzz rc role n strict=
	local src=$IE_WORK/src/test/fuzz started=$SECONDS offset
	FUZZ_PORT=5441
	FUZZ_LOG=$out/server.log
	[ -n "${IE_FUZZ_STRICT:-}" ] && strict=--strict
	ie_log "fuzz: $batches ingest batches, $serial_ops serial operations, $queries SQLsmith queries per role ($roles), seed $seed"

	# 1. A cluster with the demo's data and the fuzz roles.
	rc=0
	ie_run mkdir -p "$out"
	{
		ie_run initdb -D "$data" -U postgres -A trust --no-sync -E UTF8 >/dev/null &&
		ie_run sh -c "cat '$IE_CONF' >> '$data/postgresql.conf'" &&
		# Errors are expected by the thousand: log them without their statement
		# (a crash still logs the statement of the failed process).
		ie_run pg_ctl -D "$data" -l "$FUZZ_LOG" -w -o "-k $IE_WORK/sock -c listen_addresses='' -p $FUZZ_PORT \
			-c log_min_error_statement=panic" start >/dev/null &&
		# demo.sql runs pg_dump and createdb through \!: they need the port too.
		fuzz_psql -f "$IE_WORK/src/demo/demo.sql" >"$out/demo.out" 2>&1 &&
		fuzz_psql <<-SQL
			CREATE ROLE fuzz_super SUPERUSER LOGIN;
			CREATE ROLE fuzz_writer LOGIN;
			SELECT inventory_events.grant_access('fuzz_writer', 'writer');
			ALTER ROLE fuzz_super SET statement_timeout = '$timeout';
			ALTER ROLE fuzz_writer SET statement_timeout = '$timeout';
			ALTER ROLE fuzz_super SET lock_timeout = '$timeout';
			ALTER ROLE fuzz_writer SET lock_timeout = '$timeout';
		SQL
	} >"$out/setup.log" 2>&1 || rc=$?
	fuzz_count fuzz-setup $rc
	if [ $rc -ne 0 ]; then
		echo "fuzz: setting up the cluster failed:"
		tail -20 "$out/setup.log" "$out/demo.out" 2>/dev/null
		[ -f "$FUZZ_LOG" ] && tail -20 "$FUZZ_LOG"
		ie_run pg_ctl -D "$data" -m immediate stop >/dev/null 2>&1 || true
		return 0
	fi

	# 2. ingest() fuzz, as the writer.
	rc=0
	offset=$(stat -c %s "$FUZZ_LOG")
	ie_run env PGPORT="$FUZZ_PORT" /usr/bin/python3 "$src/ingest_fuzz.py" --dsn "dbname=postgres user=fuzz_writer" \
		--seed "$seed" --batches "$batches" $strict 2>&1 | tee "$out/ingest.log" || rc=$?
	if fuzz_log_crashes "$offset"; then
		echo "FAIL: the server log shows a crash during the ingest fuzz (above)"
		rc=1
	fi
	fuzz_count fuzz-ingest $rc

	# 3. The serial fuzzer, as the superuser, in a database of its own.
	rc=0
	offset=$(stat -c %s "$FUZZ_LOG")
	ie_run env PGPORT="$FUZZ_PORT" /usr/bin/python3 "$src/serial_fuzz.py" --dsn "dbname=postgres user=postgres" \
		--seed "$seed" --ops "$serial_ops" $strict 2>&1 | tee "$out/serial.log" || rc=$?
	if fuzz_log_crashes "$offset"; then
		echo "FAIL: the server log shows a crash during the serial fuzz (above)"
		rc=1
	fi
	fuzz_count fuzz-serial $rc

	# 4. SQLsmith, as each role.
	for role in $roles; do
		rc=0
		case $role in superuser) n=0 ;; writer) n=1 ;; *) echo "fuzz: unknown role $role"; fuzz_count "fuzz-sqlsmith-$role" 1; continue ;; esac
		fuzz_wait_ready || echo "fuzz: the server does not accept connections before the $role run"
		ie_run env PGPORT="$FUZZ_PORT" bash "$src/sqlsmith.sh" --role "fuzz_${role/superuser/super}" \
			--seed $((seed + n)) --max-queries "$queries" --server-log "$FUZZ_LOG" --out "$out" 2>&1 |
			tee "$out/sqlsmith-$role.log" || rc=$?
		fuzz_count "fuzz-sqlsmith-$role" $rc
	done

	# 5. The whole run: no crash in the log, the server answers, positions right.
	rc=0
	if fuzz_log_crashes 0; then
		echo "FAIL: the server log shows a crash during the fuzz run (above)"
		rc=1
	fi
	if ! fuzz_wait_ready; then
		echo "FAIL: the server does not accept connections at the end"
		rc=1
	elif ! ie_run env PGPORT="$FUZZ_PORT" /usr/bin/python3 "$src/ingest_fuzz.py" --check-only \
		--dsn "dbname=postgres user=postgres" $strict; then
		rc=1
	fi
	fuzz_count fuzz-final $rc
	ie_run pg_ctl -D "$data" -m fast -w stop >/dev/null 2>&1 ||
		ie_run pg_ctl -D "$data" -m immediate stop >/dev/null 2>&1 || true
	ie_log "fuzz: done in $((SECONDS - started)) s"
	return 0
}

# Run on its own: set up like tools/test.sh, run the suite, count.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	source "$(dirname "${BASH_SOURCE[0]}")/../../tools/common.sh"
	ie_setup
	passed=0
	failed=0
	failures=()
	fuzz_suite
	[ ${#failures[@]} -gt 0 ] && printf '\nfailed: %s\n' "${failures[*]}"
	printf '\n%s passed, %s failed\n' "$passed" "$failed"
	[ "$failed" -eq 0 ]
fi
