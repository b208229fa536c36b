#!/usr/bin/env bash
# Runs SQLsmith (random SQL built from the database's own catalog: tables,
# columns, types, operators, functions) against a running server, as one role,
# with a fixed seed and a bounded number of queries, and checks that no server
# process crashed meanwhile and that the server still accepts connections.
# Most random queries fail (wrong types, permissions, the statement timeout):
# that is expected and counted, not a failure.
#
# Usage: sqlsmith.sh --role ROLE --seed N --max-queries N --server-log FILE
#                    [--dbname DB] [--out DIR] [--time-limit SECONDS]
# The server is the one PGHOST and PGPORT name. SQLsmith builds queries from the
# extension's schema only (--exclude-catalog: no DML on system catalogs, even
# for a superuser; each statement is rolled back by SQLsmith anyway) but calls
# any function, pg_catalog's too. The role should have a statement_timeout
# (ALTER ROLE ... SET) so that pg_sleep() and huge joins end.
# Prints a summary; exits 0 when no crash was seen and the server answers.
set -uo pipefail

role= seed=1 max_queries=1000 server_log= dbname=postgres out=. time_limit=
while [ $# -gt 0 ]; do
	case $1 in
	--role) role=$2; shift 2 ;;
	--seed) seed=$2; shift 2 ;;
	--max-queries) max_queries=$2; shift 2 ;;
	--server-log) server_log=$2; shift 2 ;;
	--dbname) dbname=$2; shift 2 ;;
	--out) out=$2; shift 2 ;;
	--time-limit) time_limit=$2; shift 2 ;;
	*) echo "sqlsmith.sh: unknown argument $1" >&2; exit 2 ;;
	esac
done
[ -n "$role" ] && [ -n "$server_log" ] || { echo "usage: sqlsmith.sh --role ROLE --server-log FILE ..." >&2; exit 2; }
command -v sqlsmith >/dev/null || { echo "sqlsmith.sh: sqlsmith is not installed (Debian package sqlsmith)" >&2; exit 2; }
# A guard against a hang, not a budget: a query ends within the statement timeout.
time_limit=${time_limit:-$((max_queries / 2 + 300))}

# What the server log says when a server process crashed: the postmaster logs
# the signal or exit code, then resets every backend.
crash_pattern='terminated by signal|terminated by exception|exited with exit code [^01]|exited with exit code [0-9][0-9]|terminating any other active server processes|all server processes terminated; reinitializing|PANIC:|TRAP:'

mkdir -p "$out"
stderr=$out/sqlsmith-$role.stderr
calls=$out/sqlsmith-$role.calls
log_start=$(stat -c %s "$server_log")
started=$(date +%s)

# --dump-all-queries goes through a filter that keeps only the calls of the
# extension's functions, so that a long run writes no big file.
timeout "$time_limit" sqlsmith --target="dbname=$dbname user=$role" --seed="$seed" \
	--max-queries="$max_queries" --exclude-catalog --verbose --dump-all-queries 2>"$stderr" |
	{ grep -o 'inventory_events\.[a-z_0-9]*(' || true; } | sed 's/($//' | sort | uniq -c | sort -rn >"$calls"
rc=${PIPESTATUS[0]}
elapsed=$(($(date +%s) - started))

# SQLsmith's progress: one character per query ('.' ok, 'e' error, 't' timeout,
# 'S' syntax error, 'C' connection lost), "queries: N" every 800 and at the end,
# then a ranking of error messages ("N<TAB>ERROR: ...") and an impedance report.
progress=$(grep -E '^[.etSC]+$' "$stderr" | tr -d '\n')
n_ok=$(printf '%s' "$progress" | tr -cd '.' | wc -c)
n_err=$(printf "%s" "$progress" | tr -cd "etS" | wc -c)
n_timeout=$(printf '%s' "$progress" | tr -cd 't' | wc -c)
n_lost=$(printf '%s' "$progress" | tr -cd 'C' | wc -c)
n_queries=$(grep -E '^queries: [0-9]+' "$stderr" | tail -1 | awk '{print $2}')
n_queries=${n_queries:-0}
n_timeout_msgs=$(awk -F'\t' '/^[0-9]+\t.*statement timeout/ {n=$1} END {print n+0}' "$stderr")
[ "$n_timeout_msgs" -gt "$n_timeout" ] && n_timeout=$n_timeout_msgs

crashes=$(tail -c +$((log_start + 1)) "$server_log" | grep -cE "$crash_pattern" || true)
alive=yes
psql -X -q -At -d "$dbname" -U "$role" -c 'SELECT 1' >/dev/null 2>&1 || alive=no

echo "sqlsmith as $role, seed $seed: $n_queries queries in ${elapsed}s:" \
	"$n_ok ok, $n_err errors ($n_timeout statement timeouts), $n_lost connections lost;" \
	"server crashes in the log: $crashes; server answers: $alive"
if [ -s "$calls" ]; then
	echo "  calls of the extension's functions: $(awk '{s += $1} END {print s}' "$calls")," \
		"$(wc -l <"$calls") functions; most called: $(head -5 "$calls" | awk '{printf "%s%s %s", (NR > 1 ? ", " : ""), $2, $1}')"
fi
echo "  most frequent errors:"
awk -F'\t' '/^[0-9]+\t/ {block = (prev ~ /^[0-9]+\t/) ? block : block + 1; last[block] = last[block] $0 "\n"} {prev = $0}
	END {printf "%s", last[block]}' "$stderr" | sort -t$'\t' -k1,1 -rn | head -5 | sed 's/^/    /'

status=0
if [ "$crashes" -ne 0 ]; then
	echo "FAIL: the server log shows $crashes crash lines during the run:"
	tail -c +$((log_start + 1)) "$server_log" | grep -E -A3 "$crash_pattern" | head -40 | cut -c1-600 | sed 's/^/    /'
	status=1
fi
if [ "$n_lost" -ne 0 ]; then
	echo "FAIL: SQLsmith lost its connection $n_lost times"
	status=1
fi
if [ "$alive" != yes ]; then
	echo "FAIL: the server does not accept connections after the run"
	status=1
fi
if [ "$rc" -ne 0 ] || [ "$n_queries" -lt "$max_queries" ]; then
	echo "FAIL: sqlsmith stopped early (exit status $rc, $n_queries of $max_queries queries); its last output:"
	tail -5 "$stderr" | sed 's/^/    /'
	status=1
fi
exit $status
