# inventory_events: PGXS build.
#
#   make                  build inventory_events.so
#   make install          install into the server that pg_config names (PG_CONFIG=... to choose)
#   make installcheck     run pg_regress, isolation and TAP suites against an installed server
#   make fuzz             SQLsmith and ingest() fuzzing with long bounds
#   tools/test.sh         everything, on throw-away clusters (see README)

# Two extensions: inventory_events, and inventory_events_proxy (proxy/: PL/Proxy
# functions that route calls to shard databases by sku; SQL only).
EXTENSION   = inventory_events inventory_events_proxy
EXTENSION_NAME = inventory_events
EXTVERSION := $(shell sed -n "s/^default_version *= *'\([^']*\)'.*/\1/p" inventory_events.control)

MODULE_big  = inventory_events
OBJS = \
	src/inventory_events.o \
	src/guc.o \
	src/shmem.o \
	src/standby.o \
	src/types.o \
	src/catalog.o \
	src/locks.o \
	src/writer.o \
	src/stock.o \
	src/loghome.o \
	src/logpart.o \
	src/serial.o \
	src/snapshot.o \
	src/log.o \
	src/fields.o \
	src/ingest.o \
	src/channel.o \
	src/reserve.o \
	src/lifecycle.o \
	src/supply.o \
	src/publisher.o \
	src/worker.o \
	src/decoder.o

# The install script of the current version is built from the ordered sources
# in sql/install/ (one per subsystem). The scripts of released versions before
# it are frozen files in sql/, and so are the upgrade scripts between versions;
# sql/released.sha256 holds the checksum of every released install script
# (make release-check).
IE_INSTALL_SCRIPT  := sql/inventory_events--$(EXTVERSION).sql
IE_INSTALL_SOURCES := $(sort $(wildcard sql/install/*.sql))
DATA_built := $(IE_INSTALL_SCRIPT)
DATA := $(filter-out $(IE_INSTALL_SCRIPT),$(wildcard sql/inventory_events--*.sql)) \
	$(wildcard proxy/inventory_events_proxy--*.sql)
DOCS := $(wildcard doc/*.md)

# pg_regress inputs live in sql/ and expected/ (the install script in sql/ is not a test).
REGRESS = extension stock_position stock_position_fuzz event_log columns writer_exprs ingest history channel reserve supply publish publish_shared listing edi hierarchy serial snapshot partitions decoding reconcile kpi privileges privilege_matrix restore

# Isolation specs: test/isolation/specs/*.spec with test/isolation/expected/*.out.
ISOLATION := $(sort $(basename $(notdir $(wildcard test/isolation/specs/*.spec))))
ISOLATION_OPTS = --inputdir=test/isolation --outputdir=test/isolation

# TAP tests (PostgreSQL::Test::Cluster) in test/t.
TAP_TESTS = 1
PROVE_TESTS := $(sort $(wildcard test/t/*.pl))

PG_CPPFLAGS = -I$(srcdir)/src -DIE_VERSION_STR='"$(EXTVERSION)"'
# -Wextra, less the two warnings PostgreSQL's own headers and calling
# conventions trip by design: unused parameters (PG_FUNCTION_ARGS, inline
# list helpers) and partial struct initialisers ({0} idioms in headers).
# IE_WERROR: a distribution's build (debian/rules) sets it empty, so that a
# newer compiler's new warning does not break a package build; every build
# of the test command and of CI keeps -Werror.
IE_WERROR  ?= -Werror
PG_CFLAGS   = -Wall -Wextra $(IE_WERROR) -Wno-unused-parameter -Wno-missing-field-initializers

EXTRA_CLEAN = test/isolation/output_iso test/isolation/results

PG_CONFIG ?= pg_config
# Bitcode for JIT inlining would need clang, which is not part of the build
# requirements; our functions gain nothing from inlining into JIT code.
override with_llvm = no
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# After the include: Makefile.global resets PROVE_FLAGS.
PROVE_FLAGS += -I test/t

# Every object depends on the headers of src/ (few enough that one rule is honest).
$(OBJS): $(wildcard src/*.h)

$(IE_INSTALL_SCRIPT): $(IE_INSTALL_SOURCES) inventory_events.control
	{ printf -- '-- inventory_events $(EXTVERSION): install script, built by make from sql/install/*.sql.\n'; \
	  printf '\\echo Use "CREATE EXTENSION inventory_events" to load this file. \\quit\n\n'; \
	  cat $(IE_INSTALL_SOURCES); } > $@

.PHONY: print-version print-regress print-isolation print-tap meta-check release-check bench bench-full bench-growth bench-versions fuzz dist package-check
bench:
	bash test/bench/run.sh short

bench-full:
	bash test/bench/run.sh full

# The PGXN distribution: the files git has at HEAD, as
# inventory_events-VERSION.zip with a directory of that name.
dist: meta-check
	git archive --format zip --prefix=$(EXTENSION_NAME)-$(EXTVERSION)/ -o $(EXTENSION_NAME)-$(EXTVERSION).zip HEAD
	@echo "built $(EXTENSION_NAME)-$(EXTVERSION).zip"

# Builds the Debian package, installs it, uses it and removes it (root; it
# writes to the system, so it is not part of tools/test.sh).
package-check:
	bash tools/package-check.sh

# The log grown to 50 million events (about an hour, 25 GB of disk).
bench-growth:
	bash test/bench/run.sh growth

# The hot paths of this tree against an earlier commit (REF=..., default 7540d71).
bench-versions:
	bash test/bench/versions.sh $(REF)

# The fuzz suite with long bounds (tools/test.sh runs it short: 2,000 queries
# per role, 300 batches, 1,000 serial operations); about 30 minutes.
IE_FUZZ_QUERIES ?= 50000
IE_FUZZ_BATCHES ?= 5000
IE_FUZZ_SERIAL_OPS ?= 10000
fuzz:
	IE_SUITES=fuzz IE_FUZZ_QUERIES=$(IE_FUZZ_QUERIES) IE_FUZZ_BATCHES=$(IE_FUZZ_BATCHES) \
		IE_FUZZ_SERIAL_OPS=$(IE_FUZZ_SERIAL_OPS) bash tools/test.sh

print-version:   ; @echo $(EXTVERSION)
print-regress:   ; @echo $(REGRESS)
print-isolation: ; @echo $(ISOLATION)
print-tap:       ; @echo $(PROVE_TESTS)

# One version everywhere: META.json (checked against the PGXN meta spec),
# both control files and debian/changelog (tools/meta-validate.pl).
meta-check: release-check
	@perl tools/meta-validate.pl .

# A released install script never changes: sql/released.sha256 lists them.
release-check: $(IE_INSTALL_SCRIPT)
	@cd sql && sha256sum --quiet -c released.sha256 && echo "released install scripts unchanged:" $$(sed "s/.*--\(.*\)\.sql/\1/" released.sha256)
