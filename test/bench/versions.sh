#!/bin/bash
# The hot paths of this tree against an earlier commit, in one invocation:
#
#   bash test/bench/versions.sh [REF]     (default REF: 7540d71, before issue 15)
#
# Builds REF (git archive) and this tree, each into its own private copy of
# the server installation, and runs, alternating the two builds in five
# rounds on a throw-away cluster each (the catalog of catalog.sql, stock for
# every sku at three warehouses, the publisher stopped):
#   - reserve(): 1,000 one-line reservations on a channel without listings in
#     one transaction, rolled back; the least of seven timings (CPU, no commit);
#   - append(): 1,000 receipts the same way;
#   - publish(): one step over every (channel, sku) pending (4 x 10,001).
# Prints each round and the medians' ratios this tree / REF (1.0: no change;
# the issue 15 target: reserve and append within 5 %, ratio <= 1.05).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ref=${1:-7540d71}
ie_setup

# REF, built and installed into its own copy of the server installation.
old_src=$IE_WORK/old-src
old_inst=$IE_WORK/install-old
mkdir -p "$old_src"
git -C "$IE_ROOT" archive "$ref" | tar -x -C "$old_src"
make -s -C "$old_src" PG_CONFIG="$IE_PG_CONFIG" >/dev/null
cp -a "$IE_WORK/install" "$old_inst"
make -s -C "$old_src" PG_CONFIG="$IE_PG_CONFIG" DESTDIR="$old_inst" install >/dev/null
[ -n "$IE_RUNAS" ] && chown -R "$IE_RUNAS" "$old_inst"

cp "$IE_ROOT/test/bench/catalog.sql" "$IE_WORK/catalog.sql"
calls() {	# $1 the function call, for sku g: 1,000 of them in a rolled-back transaction, 7 times
	local i
	echo '\timing on'
	for i in 1 2 3 4 5 6 7; do
		echo "BEGIN; SELECT count(*) FROM generate_series(1, 1000) g, LATERAL $1 x; ROLLBACK;"
	done
}
calls "inventory_events.reserve('shopify', 'SKU' || g, 1, 'r' || g)" > "$IE_WORK/reserve.sql"
calls "inventory_events.append('SKU' || g, 'W1', 'received', 1)" > "$IE_WORK/append.sql"
cat > "$IE_WORK/publish.sql" <<'SQL'
SELECT sum(inventory_events.republish(code)) FROM inventory_events.channel;
\timing on
SELECT count(*) FROM inventory_events.publish(1000000);
SQL
chmod 644 "$IE_WORK"/*.sql

least_ms() { sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | awk 'NR % 3 == 2' | sort -n | head -1; }

measure() {	# $1 build (old or new): prints "reserve_ms append_ms publish_ms"
	local bin data=$IE_WORK/data-$1 port=5433 r a p k
	bin=$IE_BINDIR
	[ "$1" = old ] && bin=$old_inst$("$IE_PG_CONFIG" --bindir)
	rm -rf "$data"
	ie_run "$bin/initdb" -D "$data" -U postgres -A trust --no-sync -E UTF8 >/dev/null
	ie_run sh -c "cat '$IE_CONF' >> '$data/postgresql.conf'; printf 'max_locks_per_transaction = 256\n' >> '$data/postgresql.conf'"
	ie_run "$bin/pg_ctl" -c -D "$data" -l "$IE_WORK/versions-$1.log" -w \
		-o "-k $IE_WORK/sock -c listen_addresses='' -p $port" start >/dev/null
	q() { ie_run "$bin/psql" -X -q -v ON_ERROR_STOP=1 -U postgres -p $port -d postgres "$@"; }
	q -f "$IE_WORK/catalog.sql" >/dev/null
	q -c "SELECT inventory_events.publisher_stop()" >/dev/null
	for k in 1 2 3; do	# 2,500 skus per transaction: their locks fit the lock table
		for g in 0 2500 5000 7500; do
			q -c "SELECT count(*) FROM (SELECT inventory_events.append('SKU' || g, 'W$k', 'received', 1000000)
			        FROM generate_series($((g + 1)), $((g + 2500))) g) x" >/dev/null
		done
	done
	q -c "SELECT count(*) FROM inventory_events.publish(1000000)" >/dev/null
	q -c "VACUUM ANALYZE" -c "CHECKPOINT" >/dev/null	# no checkpoint or autovacuum of the load during the timings
	r=$(q -f "$IE_WORK/reserve.sql" | least_ms)
	a=$(q -f "$IE_WORK/append.sql" | least_ms)
	p=$(q -f "$IE_WORK/publish.sql" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | tail -1)
	ie_run "$bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null
	echo "$r $a $p"
}

declare -a or oa op nr na np
for round in 1 2 3 4 5; do
	read -r r a p <<<"$(measure old)"; or+=("$r"); oa+=("$a"); op+=("$p")
	echo "round $round, $ref: reserve x1000 $r ms, append x1000 $a ms, publish all $p ms"
	read -r r a p <<<"$(measure new)"; nr+=("$r"); na+=("$a"); np+=("$p")
	echo "round $round, this tree: reserve x1000 $r ms, append x1000 $a ms, publish all $p ms"
done
echo "this tree / $ref, medians of 5 (time: above 1 is slower; target <= 1.05 for reserve and append):"
echo "  reserve() on a channel without listings: $(ratio "$(median "${nr[@]}")" "$(median "${or[@]}")")"
echo "  append():                                $(ratio "$(median "${na[@]}")" "$(median "${oa[@]}")")"
echo "  publish(), every (channel, sku):          $(ratio "$(median "${np[@]}")" "$(median "${op[@]}")")"
