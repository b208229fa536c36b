#!/usr/bin/env bash
# Prints the postgresql.conf lines a throw-away cluster needs for inventory_events.
# Usage: tools/temp-config.sh BINDIR
# Shared by tools/test.sh, tools/demo.sh and the TAP helper (test/t/IETest.pm), so
# every cluster we start is configured the same way.
set -euo pipefail
bindir=${1:?usage: temp-config.sh BINDIR}

cat <<'CONF'
shared_preload_libraries = 'inventory_events'
wal_level = logical
max_replication_slots = 10
max_wal_senders = 10
max_worker_processes = 16
fsync = off
CONF

# PostgreSQL 15.19 and later only let output plugins listed here be used; older
# minor releases reject the setting, so only name it where the server knows it.
# (grep reads all of it: with -q it would stop early, postgres would get
# SIGPIPE, and pipefail would make the test false now and then.)
if "$bindir/postgres" --describe-config 2>/dev/null | grep '^output_plugin_libraries[[:space:]]' >/dev/null; then
	echo "output_plugin_libraries = 'pgoutput, test_decoding, wal2json, inventory_events'"
fi
