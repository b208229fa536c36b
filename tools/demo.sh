#!/usr/bin/env bash
# The inventory_events demo: installs what is missing, builds, starts a
# throw-away cluster configured for the extension, runs demo/demo.sql and
# prints it, then stops and removes the cluster.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

ie_setup
data=$IE_WORK/demo_data
ie_log "starting a throw-away cluster"
ie_run initdb -D "$data" -U postgres -A trust --no-sync -E UTF8 >/dev/null
ie_run sh -c "cat '$IE_CONF' >> '$data/postgresql.conf'"
ie_run pg_ctl -D "$data" -l "$IE_WORK/demo.log" -w \
	-o "-k $IE_WORK/sock -c listen_addresses='' -p 5432" start >/dev/null
ie_log "running demo/demo.sql"
echo
ie_run env IE_DEMO_CONNECTOR="$IE_WORK/src/tools/connector.py" \
	psql -X -q -v ON_ERROR_STOP=1 -U postgres -p 5432 -d postgres -P pager=off -f "$IE_WORK/src/demo/demo.sql"
echo
ie_run pg_ctl -D "$data" -m fast -w stop >/dev/null
ie_log "demo finished; cluster removed"
