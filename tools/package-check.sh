#!/usr/bin/env bash
# make package-check: builds the Debian package from this tree and uses it as
# a DBA would: installs the .deb with apt, runs the autopkgtest
# (debian/tests/installcheck) against it, creates a cluster with
# pg_createcluster and the settings of debian/README.Debian, runs CREATE
# EXTENSION and the demo on it, updates a database from the previous release
# with ALTER EXTENSION ... UPDATE, then drops the cluster and removes the
# package, and checks that nothing of it is left.
#
# It installs into the system (that is the point of it), so it is not part of
# tools/test.sh, which writes nothing outside the build tree and its temporary
# directory. Needs root (apt-get, pg_createcluster). Ends with a line
# "N passed, N failed".
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
[ "$(id -u)" -eq 0 ] || { echo "error: package-check installs a package: run it as root" >&2; exit 1; }
pgmajor=15
package=postgresql-$pgmajor-inventory-events
cluster=iepkg$$
port=
work=$(mktemp -d /tmp/inventory_events_pkg.XXXX)
chmod 755 "$work"
passed=0 failed=0
installed_by_us=0 cluster_made=0
# It must not test (and then remove) a package someone installed.
if [ "$(dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null || true)" = installed ]; then
	echo "error: $package is installed on this machine: package-check would remove it; remove it first" >&2
	exit 1
fi
check() {	# check description command...
	local what=$1; shift
	if "$@" >"$work/check.out" 2>&1; then
		passed=$((passed + 1)); echo "ok: $what"
	else
		failed=$((failed + 1)); echo "FAILED: $what"; sed 's/^/    /' "$work/check.out" | tail -20
	fi
}
cleanup() {
	# Only what this run made: its cluster and its package.
	[ "$cluster_made" = 1 ] && { pg_dropcluster --stop "$pgmajor" "$cluster" >/dev/null 2>&1 || true; }
	[ "$installed_by_us" = 1 ] && { DEBIAN_FRONTEND=noninteractive apt-get remove -y -qq "$package" >/dev/null 2>&1 || true; }
	rm -rf "$work"
}
trap cleanup EXIT

echo "==> installing the build and test dependencies"
# (Left installed afterwards: build tools, the server, psycopg2 for the demo's
# connector, PL/Proxy for the proxy extension.)
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debhelper dpkg-dev postgresql-server-dev-all \
	"postgresql-$pgmajor" "postgresql-$pgmajor-plproxy" python3-psycopg2 >/dev/null

echo "==> building the package (dpkg-buildpackage -us -uc -b) from the files git knows"
mkdir -p "$work/build/src"
(cd "$root" && git ls-files -co --exclude-standard | tar -cf - -T -) | (cd "$work/build/src" && tar -xf -)
(cd "$work/build/src" && dpkg-buildpackage -us -uc -b) >"$work/build.log" 2>&1 ||
	{ tail -30 "$work/build.log"; echo "0 passed, 1 failed"; exit 1; }
version=$(dpkg-parsechangelog -l "$root/debian/changelog" -S Version)
deb=$work/build/${package}_${version}_$(dpkg --print-architecture).deb
check "the package is built, version $version" test -s "$deb"
check "it carries the library, both control files and every script of sql/" sh -c "
	dpkg -c '$deb' > '$work/contents' &&
	grep -q 'lib/postgresql/$pgmajor/lib/inventory_events.so\$' '$work/contents' &&
	grep -q 'extension/inventory_events.control\$' '$work/contents' &&
	grep -q 'extension/inventory_events_proxy.control\$' '$work/contents' &&
	for f in inventory_events--$version.sql $(cd "$root/sql" && ls inventory_events--*.sql | tr '\n' ' ') \
	         $(cd "$root/proxy" && ls inventory_events_proxy--*.sql | tr '\n' ' '); do
		grep -q \"extension/\$f\\\$\" '$work/contents' || { echo \"missing \$f\"; exit 1; }
	done"

echo "==> installing it with apt-get"
installed_by_us=1
check "apt-get install ./$(basename "$deb")" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --reinstall "$deb"
check "dpkg knows it" dpkg -s "$package"
dpkg -L "$package" | while read -r f; do [ -d "$f" ] || echo "$f"; done > "$work/files"

echo "==> the autopkgtests (debian/tests: pg_regress, and the proxy over two shards, on pg_virtualenv clusters)"
check "debian/tests/installcheck passes against the installed package" \
	sh -c "cd '$work/build/src' && sh debian/tests/installcheck"
grep -E '^ *(All [0-9]+ tests passed|[0-9]+ of [0-9]+ tests failed)' "$work/check.out" || true
check "debian/tests/proxy: inventory_events_proxy routes over two shards" \
	sh -c "cd '$work/build/src' && sh debian/tests/proxy"

echo "==> a cluster made with pg_createcluster, configured as debian/README.Debian says"
plugins=""
if "/usr/lib/postgresql/$pgmajor/bin/postgres" --describe-config 2>/dev/null | grep '^output_plugin_libraries[[:space:]]' >/dev/null; then
	plugins="-o output_plugin_libraries=pgoutput,test_decoding,inventory_events"
fi
if pg_lsclusters -h | awk -v v="$pgmajor" -v c="$cluster" '$1 == v && $2 == c' | grep -q .; then
	echo "error: a cluster $pgmajor/$cluster exists already" >&2; exit 1
fi
check "pg_createcluster $pgmajor $cluster (a free port)" pg_createcluster "$pgmajor" "$cluster" -- -A trust
[ -d "/etc/postgresql/$pgmajor/$cluster/conf.d" ] || { echo "$passed passed, $((failed + 1)) failed"; exit 1; }
cluster_made=1
port=$(pg_conftool -s "$pgmajor" "$cluster" show port)
for line in "shared_preload_libraries = 'inventory_events'" "wal_level = logical" \
	"inventory_events.database = 'postgres'" "listen_addresses = ''" \
	${plugins:+"output_plugin_libraries = 'pgoutput, test_decoding, inventory_events'"}; do
	echo "$line" >> "/etc/postgresql/$pgmajor/$cluster/conf.d/inventory_events.conf"
done
check "the cluster starts with the library preloaded" pg_ctlcluster "$pgmajor" "$cluster" start
psql_() { runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -p "$port" "$@"; }

echo "==> the demo (demo/demo.sql) on it"
mkdir -p "$work/home" && chown postgres "$work/home"
sed "s/port=5432/port=$port/g" "$root/demo/demo.sql" > "$work/demo.sql"
cp "$root/tools/connector.py" "$work/connector.py"
chmod 644 "$work/demo.sql" "$work/connector.py"
check "the demo runs to its end" runuser -u postgres -- env HOME="$work/home" PGPORT="$port" \
	IE_DEMO_CONNECTOR="$work/connector.py" psql -X -q -v ON_ERROR_STOP=1 -d postgres -P pager=off -f "$work/demo.sql"
cp "$work/check.out" "$work/demo.out"
check "the demo's restore gives the same positions" grep -q 'positions: the same as before the dump' "$work/demo.out"
check "the library and the SQL objects are of this version" sh -c "
	test \"\$(runuser -u postgres -- psql -X -At -p $port -d postgres -c \"SELECT extversion || ' ' || inventory_events.library_version() FROM pg_extension WHERE extname = 'inventory_events'\")\" = '$version $version'"

echo "==> ALTER EXTENSION ... UPDATE from the previous release"
previous=$(sed 's/.*inventory_events--\(.*\)\.sql$/\1/' "$root/sql/released.sha256" | sort -V | tail -1)
check "a database made at $previous, used, then updated to $version" psql_ -d postgres -c "CREATE DATABASE upd" -c "\\c upd" \
	-c "CREATE EXTENSION inventory_events VERSION '$previous'" \
	-c "INSERT INTO inventory_events.item (sku) VALUES ('A')" \
	-c "INSERT INTO inventory_events.location (code) VALUES ('W1')" \
	-c "SELECT inventory_events.append('A', 'W1', 'received', 5)" \
	-c "ALTER EXTENSION inventory_events UPDATE" \
	-c "DO \$\$ BEGIN
	        IF (SELECT extversion FROM pg_extension WHERE extname = 'inventory_events') <> '$version'
	           OR (SELECT count(*) FROM inventory_events.verify()) <> 0
	           OR inventory_events.position_as_of('A', 'W1', now())::text NOT LIKE '(available=5,%' THEN
	            RAISE EXCEPTION 'the updated database is not right';
	        END IF;
	    END \$\$"

echo "==> inventory_events_proxy from the package (PL/Proxy)"
check "CREATE EXTENSION inventory_events_proxy CASCADE loads its script" psql_ -d postgres \
	-c "CREATE DATABASE proxy" -c "\\c proxy" -c "CREATE EXTENSION inventory_events_proxy CASCADE" \
	-c "SELECT inventory_events_proxy.shard_hash('SKU-1') IS NOT NULL"

echo "==> removing the cluster and the package"
check "pg_dropcluster" pg_dropcluster --stop "$pgmajor" "$cluster"
cluster_made=0
check "apt-get remove" env DEBIAN_FRONTEND=noninteractive apt-get remove -y -qq "$package"
installed_by_us=0
check "nothing of the package is left (dpkg -L before the removal: $(wc -l < "$work/files") files)" sh -c "
	case \"\$(dpkg-query -W -f='\${db:Status-Abbrev}' $package 2>/dev/null)\" in ''|un*|rc*) ;; *) exit 1 ;; esac &&
	while read -r f; do if [ -e \"\$f\" ]; then echo \"left: \$f\"; exit 1; fi; done < '$work/files'"

echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
