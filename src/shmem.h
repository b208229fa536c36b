/*
 * shmem.h
 *		Shared memory state of inventory_events (needs shared_preload_libraries).
 */
#ifndef IE_SHMEM_H
#define IE_SHMEM_H

#include "port/atomics.h"
#include "storage/lwlock.h"
#include "utils/timestamp.h"

#include "storage/latch.h"

/* Databases one server can serve with a publisher (inventory_events.database). */
#define IE_MAX_DATABASES 8

/* One publisher worker: written by the worker and the launcher under lock. */
typedef struct IePublisherSlot
{
	char		database[NAMEDATALEN];	/* '' when unused */
	bool		enabled;		/* publisher_stop() clears it */
	int			pid;			/* 0 when not running */
	Oid			database_oid;
	Latch	   *latch;			/* the worker's, for wake-ups; NULL when gone */
	TimestampTz started_at;
	TimestampTz last_run;
	const char *state;			/* static string: starting, waiting for the extension, ... */
	uint64		runs;
	uint64		publications;
} IePublisherSlot;

typedef struct IeSharedState
{
	LWLock	   *lock;			/* protects the non-atomic fields */
	TimestampTz started_at;		/* when shared memory was initialised */
	pg_atomic_uint64 events_appended;	/* events appended since start */
	Latch	   *launcher_latch;
	int			npublishers;
	IePublisherSlot publishers[IE_MAX_DATABASES];
} IeSharedState;

/* NULL unless the library was preloaded and shared memory is attached. */
extern IeSharedState *ie_shared;

extern void ie_shmem_init(void);
extern void ie_require_preload(const char *what);

#endif							/* IE_SHMEM_H */
