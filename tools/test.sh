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
#   6. fuzz           (test/fuzz: SQLsmith and mutated ingest() batches on a
#                      cluster holding the demo's data; IE_FUZZ_QUERIES and
#                      IE_FUZZ_BATCHES set the bounds, see test/fuzz/fuzz.sh)
# Installs missing Debian packages, works as root (servers run as an unprivileged
# user) or as an ordinary user, and ends with the line "N passed, N failed".
# IE_KEEP=1 keeps the temporary directory; IE_SUITES="regress tap" picks suites;
# IE_TAP=005 runs only the TAP tests whose names start so.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

ie_setup
cd "$IE_ROOT"
suites=${IE_SUITES:-meta regress upgrade isolation tap fuzz}
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

# Runs one pg_regress-driven suite on a temporary instance and counts it.
run_regress_suite() {	# $1: name, $2: program, $3: bindir, $4: inputdir, $5: database, $6...: tests
	local name=$1 program=$2 bindir=$3 inputdir=$4 dbname=$5 out=$IE_WORK/out/$1 rc=0
	shift 5
	ie_run mkdir -p "$out"
	ie_run "$program" \
		--temp-instance="$IE_WORK/${name}_instance" --temp-config="$IE_CONF" \
		--bindir="$bindir" --inputdir="$inputdir" --outputdir="$out" \
		--dbname="$dbname" "$@" 2>&1 | tee "$IE_WORK/$name.log" || rc=$?
	if [ $rc -ne 0 ]; then
		failures+=("$name")
		show_file "$name regression.diffs" "$out/regression.diffs"
	fi
	count_pg_regress "$IE_WORK/$name.log" $rc
}

if [[ " $suites " == *" regress "* ]]; then
	ie_log "pg_regress"
	# shellcheck disable=SC2046
	run_regress_suite regress "$IE_PGXS/src/test/regress/pg_regress" "$IE_BINDIR" "$IE_WORK/src" \
		contrib_regression $(make -s print-regress)
fi

if [[ " $suites " == *" upgrade "* ]]; then
	ie_log "pg_regress on objects updated from the first release"
	# shellcheck disable=SC2046
	run_regress_suite upgrade "$IE_PGXS/src/test/regress/pg_regress" "$(ie_upgrade_installation)" "$IE_WORK/src" \
		contrib_regression $(make -s print-regress)
fi

isolation_specs=$(make -s print-isolation)
if [[ " $suites " == *" isolation "* ]] && [ -n "$isolation_specs" ]; then
	ie_log "isolation"
	# shellcheck disable=SC2086
	run_regress_suite isolation "$IE_PGXS/src/test/isolation/pg_isolation_regress" "$IE_BINDIR" \
		"$IE_WORK/src/test/isolation" isolation_regression $isolation_specs
fi

if [[ " $suites " == *" tap "* ]]; then
	case 016_edi_846 in ${IE_TAP:-*}*) ie_install_x12_parser ;; esac
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

if [[ " $suites " == *" fuzz "* ]]; then
	source "$IE_ROOT/test/fuzz/fuzz.sh"
	fuzz_suite
fi

if [ ${#failures[@]} -gt 0 ]; then
	echo
	echo "failed: ${failures[*]}"
fi
echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
