#!/usr/bin/env bash
# Runs every test suite of inventory_events on throw-away clusters:
#   1. build checks   (META.json carries the control file's version, released
#                      install scripts are unchanged)
#   2. pg_regress     (sql/ + expected/)
#   3. pg_regress again on upgraded objects: an installation without the
#      current install script, so that every CREATE EXTENSION installs the
#      first release and updates it along the chain of upgrade scripts
#   4. isolation      (test/isolation/specs)
#   5. TAP            (test/t/*.pl, PostgreSQL::Test::Cluster)
# Installs missing Debian packages, works as root (servers run as an unprivileged
# user) or as an ordinary user, and ends with the line "N passed, N failed".
# IE_KEEP=1 keeps the temporary directory; IE_SUITES="regress tap" picks suites;
# IE_TAP=005 runs only the TAP tests whose names start so.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

ie_setup
cd "$IE_ROOT"
suites=${IE_SUITES:-meta regress upgrade isolation tap}
passed=0
failed=0
failures=()

# Counts the tests of one pg_regress run; $2 is its exit status. A run that
# failed without a failing test (initdb, a crashed server) counts as one failure.
count_pg_regress() {	# $1: pg_regress output file, $2: its exit status
	local ok bad
	ok=$(grep -cE '\.\.\. ok ' "$1" || true)
	bad=$(grep -cE '\.\.\. FAILED|\.\.\. failed' "$1" || true)
	[ "$2" -ne 0 ] && [ "$bad" -eq 0 ] && bad=1
	passed=$((passed + ok))
	failed=$((failed + bad))
	return 0
}

show_file() {	# $1: title, $2: file
	[ -s "$2" ] || return 0
	printf '\n----- %s -----\n' "$1"
	cat "$2"
	printf -- '----- end of %s -----\n' "$1"
}

if [[ " $suites " == *" meta "* ]]; then
	if make -s meta-check; then passed=$((passed + 1)); else failed=$((failed + 1)); failures+=(meta-check); fi
fi

if [[ " $suites " == *" regress "* ]]; then
	ie_log "pg_regress"
	out=$IE_WORK/out/regress
	ie_run mkdir -p "$out"
	rc=0
	# shellcheck disable=SC2046
	ie_run "$IE_PGXS/src/test/regress/pg_regress" \
		--temp-instance="$IE_WORK/regress_instance" --temp-config="$IE_CONF" \
		--bindir="$IE_BINDIR" --inputdir="$IE_WORK/src" --outputdir="$out" \
		--dbname=contrib_regression $(make -s print-regress) 2>&1 | tee "$IE_WORK/regress.log" || rc=$?
	if [ $rc -ne 0 ]; then
		failures+=(pg_regress)
		show_file "regression.diffs" "$out/regression.diffs"
	fi
	count_pg_regress "$IE_WORK/regress.log" $rc
fi

if [[ " $suites " == *" upgrade "* ]]; then
	ie_log "pg_regress on objects updated from the first release"
	out=$IE_WORK/out/regress-upgrade
	upgrade_bindir=$(ie_upgrade_installation)
	ie_run mkdir -p "$out"
	rc=0
	# shellcheck disable=SC2046
	ie_run "$IE_PGXS/src/test/regress/pg_regress" \
		--temp-instance="$IE_WORK/upgrade_instance" --temp-config="$IE_CONF" \
		--bindir="$upgrade_bindir" --inputdir="$IE_WORK/src" --outputdir="$out" \
		--dbname=contrib_regression $(make -s print-regress) 2>&1 | tee "$IE_WORK/upgrade.log" || rc=$?
	if [ $rc -ne 0 ]; then
		failures+=(pg_regress-upgrade)
		show_file "regression.diffs (upgraded objects)" "$out/regression.diffs"
	fi
	count_pg_regress "$IE_WORK/upgrade.log" $rc
fi

isolation_specs=$(make -s print-isolation)
if [[ " $suites " == *" isolation "* ]] && [ -n "$isolation_specs" ]; then
	ie_log "isolation"
	out=$IE_WORK/out/isolation
	ie_run mkdir -p "$out"
	rc=0
	# shellcheck disable=SC2086
	ie_run "$IE_PGXS/src/test/isolation/pg_isolation_regress" \
		--temp-instance="$IE_WORK/isolation_instance" --temp-config="$IE_CONF" \
		--bindir="$IE_BINDIR" --inputdir="$IE_WORK/src/test/isolation" --outputdir="$out" \
		--dbname=isolation_regression $isolation_specs 2>&1 | tee "$IE_WORK/isolation.log" || rc=$?
	if [ $rc -ne 0 ]; then
		failures+=(isolation)
		show_file "isolation regression.diffs" "$out/regression.diffs"
	fi
	count_pg_regress "$IE_WORK/isolation.log" $rc
fi

if [[ " $suites " == *" tap "* ]]; then
	ie_log "TAP"
	for t in $(make -s print-tap); do
		name=$(basename "$t" .pl)
		case $name in ${IE_TAP:-*}*) ;; *) continue ;; esac
		tdir=$IE_WORK/out/tap/$name
		ie_run mkdir -p "$tdir"
		if (cd "$IE_WORK/src" && ie_run env TESTDIR="$tdir" PG_REGRESS="$IE_PGXS/src/test/regress/pg_regress" \
			prove -I "$IE_PGXS/src/test/perl" -I test/t "$t"); then
			passed=$((passed + 1))
		else
			failed=$((failed + 1))
			failures+=("$t")
			for log in "$tdir"/tmp_check/log/*; do show_file "$(basename "$log")" "$log"; done
		fi
	done
fi

if [ ${#failures[@]} -gt 0 ]; then
	echo
	echo "failed: ${failures[*]}"
fi
echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
