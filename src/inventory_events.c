/*
 * inventory_events.c
 *		Module entry point: _PG_init wires up every subsystem.
 */
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "inventory_events.h"
#include "catalog.h"
#include "guc.h"
#include "log.h"
#include "loghome.h"
#include "logpart.h"
#include "reserve.h"
#include "worker.h"
#include "locks.h"
#include "stock.h"
#include "writer.h"
#include "shmem.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

void
_PG_init(void)
{
	ie_guc_init();
	ie_log_init();
	ie_catalog_init();
	ie_logpart_init();
	ie_locks_init();
	ie_writer_init();
	ie_reserve_init();
	ie_loghome_init();
	ie_shmem_init();
	ie_worker_init();
	ie_guc_reserve_prefix();
}

/*
 * inventory_events.library_version() returns the version the shared library
 * was built as, so that a mismatch with the installed SQL objects is visible.
 */
PG_FUNCTION_INFO_V1(ie_library_version);
Datum
ie_library_version(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(IE_VERSION_STR));
}

/*
 * inventory_events.shared_state(): what the shared memory segment holds.
 * Needs the library to be preloaded.
 */
PG_FUNCTION_INFO_V1(ie_shared_state);
Datum
ie_shared_state(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[2];
	bool		nulls[2] = {false, false};

	ie_require_preload("inventory_events.shared_state()");

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	values[0] = TimestampTzGetDatum(ie_shared->started_at);
	values[1] = Int64GetDatum((int64) pg_atomic_read_u64(&ie_shared->events_appended));

	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), values, nulls)));
}
