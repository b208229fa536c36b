# Sourced by tools/test.sh and tools/demo.sh: installs what is missing, builds,
# and lays out a private installation of the server plus the extension in a
# temporary directory, so nothing outside the build tree and that directory is
# written and no root privileges are needed beyond the package install.
#
# After ie_setup:
#   IE_ROOT     the source tree
#   IE_WORK     the temporary directory (removed by ie_cleanup)
#   IE_BINDIR   bin directory of the private installation
#   IE_PGXS     the pgxs directory (pg_regress, isolation tester, Perl modules)
#   IE_RUNAS    the user servers run as (empty: the current user)
#   IE_CONF     a postgresql.conf fragment for throw-away clusters

set -euo pipefail

IE_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
IE_PGMAJOR=15
IE_PACKAGES=(make gcc postgresql-$IE_PGMAJOR postgresql-server-dev-$IE_PGMAJOR
	libipc-run-perl libdbd-pg-perl perl sqlsmith python3-psycopg2
	prometheus-postgres-exporter prometheus postgresql-$IE_PGMAJOR-plproxy ${IE_EXTRA_PACKAGES:-})

ie_log() { printf '==> %s\n' "$*" >&2; }
ie_die() { printf 'error: %s\n' "$*" >&2; exit 1; }

ie_as_root() {
	if [ "$(id -u)" -eq 0 ]; then "$@"
	elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo "$@"
	else return 1
	fi
}

ie_install_packages() {
	local missing=() p
	for p in "${IE_PACKAGES[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	ie_log "installing Debian packages: ${missing[*]}"
	if ! { ie_as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
		ie_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null; }; then
		ie_die "could not install ${missing[*]}: run 'apt-get install ${missing[*]}' as root, then try again"
	fi
}

# Node.js and node-x12, an X12 parser from npm that this project did not
# write, for the EDI 846 test (test/t/016_edi_846.pl): Debian's nodejs and
# npm where node or npm is missing (a machine may have Node.js from
# elsewhere, whose npm Debian's would conflict with), then node-x12 into
# $IE_WORK/x12 (the TAP tests' $HOME), as the user the tests run as.
IE_X12_PACKAGE=node-x12@1.7.1
ie_install_x12_parser() {
	if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
		ie_log "installing Debian packages: nodejs npm"
		{ ie_as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
			ie_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; } ||
			ie_die "could not install nodejs and npm: run 'apt-get install nodejs npm' as root, then try again"
	fi
	ie_log "installing $IE_X12_PACKAGE (npm)"
	ie_run mkdir -p "$IE_WORK/x12"
	ie_run npm install --silent --no-audit --no-fund --no-save --prefix "$IE_WORK/x12" "$IE_X12_PACKAGE" >/dev/null ||
		ie_die "could not install $IE_X12_PACKAGE from the npm registry"
}

ie_cleanup() {
	local rc=$?
	if [ -n "${IE_WORK:-}" ] && [ -d "$IE_WORK" ]; then
		# Stop any server still running from the work directory (an interrupted run).
		local pidfile
		while IFS= read -r pidfile; do
			ie_run "$IE_BINDIR/pg_ctl" -D "$(dirname "$pidfile")" -m immediate stop >/dev/null 2>&1 || true
		done < <(find "$IE_WORK" -name postmaster.pid 2>/dev/null)
		if [ -n "${IE_KEEP:-}" ]; then ie_log "kept $IE_WORK"; else rm -rf "$IE_WORK"; fi
	fi
	return $rc
}

# Runs a command as the server user, in the work directory's environment.
ie_run() {
	local envs=(HOME="$IE_WORK" PATH="$IE_BINDIR:$PATH" LC_ALL=C.UTF-8 LANG=C.UTF-8
		PGHOST="$IE_WORK/sock" IE_TEMP_CONFIG="$IE_CONF")
	if [ -n "$IE_RUNAS" ]; then
		runuser -u "$IE_RUNAS" -- env "${envs[@]}" "$@"
	else
		env "${envs[@]}" "$@"
	fi
}

# A copy of the private installation without the install script of the
# current version: CREATE EXTENSION then installs the first release and runs
# the upgrade scripts up to the current version. Prints its bin directory.
ie_upgrade_installation() {
	local copy=$IE_WORK/install-upgrade ext
	if [ ! -d "$copy" ]; then
		cp -a "$IE_WORK/install" "$copy"
		ext=$copy$("$IE_PG_CONFIG" --sharedir)/extension
		rm "$ext/inventory_events--$(make -s -C "$IE_ROOT" PG_CONFIG="$IE_PG_CONFIG" print-version).sql"
		[ -n "$IE_RUNAS" ] && chown -R "$IE_RUNAS" "$copy"
	fi
	echo "$copy$("$IE_PG_CONFIG" --bindir)"
}

ie_setup() {
	ie_install_packages

	local pg_config=${PG_CONFIG:-/usr/lib/postgresql/$IE_PGMAJOR/bin/pg_config}
	[ -x "$pg_config" ] || ie_die "pg_config not found at $pg_config (set PG_CONFIG)"
	IE_PG_CONFIG=$pg_config

	ie_log "building"
	make -s -C "$IE_ROOT" PG_CONFIG="$pg_config" >/dev/null

	IE_WORK=$(mktemp -d "${TMPDIR:-/tmp}/inventory_events.XXXXXX")
	trap ie_cleanup EXIT
	trap 'exit 130' INT TERM
	chmod 755 "$IE_WORK"

	# A private copy of the server installation, with the extension installed
	# into it. PostgreSQL finds its share and lib directories relative to its
	# own binary, so the copy serves the extension without touching /usr.
	local inst=$IE_WORK/install d
	for d in "$("$pg_config" --bindir)" "$("$pg_config" --pkglibdir)" "$("$pg_config" --sharedir)"; do
		mkdir -p "$inst$(dirname "$d")"
		cp -a "$d" "$inst$d"
	done
	make -s -C "$IE_ROOT" PG_CONFIG="$pg_config" DESTDIR="$inst" install >/dev/null
	IE_BINDIR=$inst$("$pg_config" --bindir)
	IE_PGXS=$(cd "$(dirname "$("$pg_config" --pgxs)")/../.." && pwd)

	# PostgreSQL refuses to run as root: run servers and clients as an
	# unprivileged user that can read a copy of the test inputs.
	IE_RUNAS=
	if [ "$(id -u)" -eq 0 ]; then
		if id postgres >/dev/null 2>&1; then IE_RUNAS=postgres; else IE_RUNAS=nobody; fi
	fi
	mkdir -p "$IE_WORK/src" "$IE_WORK/sock" "$IE_WORK/out"
	cp -a "$IE_ROOT/sql" "$IE_ROOT/expected" "$IE_ROOT/test" "$IE_ROOT/tools" "$IE_WORK/src/"
	[ -d "$IE_ROOT/demo" ] && cp -a "$IE_ROOT/demo" "$IE_WORK/src/"
	[ -d "$IE_ROOT/monitoring" ] && cp -a "$IE_ROOT/monitoring" "$IE_WORK/src/"
	IE_CONF=$IE_WORK/temp.conf
	"$IE_ROOT/tools/temp-config.sh" "$IE_BINDIR" > "$IE_CONF"
	[ -n "$IE_RUNAS" ] && chown -R "$IE_RUNAS" "$IE_WORK"
	return 0
}
