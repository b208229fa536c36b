/*
 * shmem.c
 *		Shared memory of inventory_events.
 *
 * The segment is requested from shmem_request_hook and attached from
 * shmem_startup_hook, both installed only while shared_preload_libraries is
 * being processed: a library loaded later by CREATE EXTENSION cannot get
 * shared memory, and the functions that need it say so (ie_require_preload).
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/shmem.h"

#include "shmem.h"

#define IE_LWLOCK_TRANCHE "inventory_events"

IeSharedState *ie_shared = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static void
ie_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();

	RequestAddinShmemSpace(MAXALIGN(sizeof(IeSharedState)));
	RequestNamedLWLockTranche(IE_LWLOCK_TRANCHE, 1);
}

static void
ie_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	ie_shared = ShmemInitStruct("inventory_events", sizeof(IeSharedState), &found);
	if (!found)
	{
		ie_shared->lock = &(GetNamedLWLockTranche(IE_LWLOCK_TRANCHE))->lock;
		ie_shared->started_at = GetCurrentTimestamp();
		pg_atomic_init_u64(&ie_shared->events_appended, 0);
		ie_shared->launcher_latch = NULL;
		ie_shared->npublishers = 0;
		memset(ie_shared->publishers, 0, sizeof(ie_shared->publishers));
	}
	LWLockRelease(AddinShmemInitLock);
}

void
ie_shmem_init(void)
{
	if (!process_shared_preload_libraries_in_progress)
		return;

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = ie_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = ie_shmem_startup;
}

/*
 * Refuse to run a function that needs the shared state when the library was
 * not preloaded.
 */
void
ie_require_preload(const char *what)
{
	if (ie_shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("%s requires inventory_events to be loaded via shared_preload_libraries", what),
				 errhint("Add inventory_events to shared_preload_libraries in postgresql.conf and restart the server.")));
}
