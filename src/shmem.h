/*
 * shmem.h
 *		Shared memory state of inventory_events (needs shared_preload_libraries).
 */
#ifndef IE_SHMEM_H
#define IE_SHMEM_H

#include "port/atomics.h"
#include "storage/lwlock.h"
#include "utils/timestamp.h"

typedef struct IeSharedState
{
	LWLock	   *lock;			/* protects the non-atomic fields */
	TimestampTz started_at;		/* when shared memory was initialised */
	pg_atomic_uint64 events_appended;	/* events appended since start */
} IeSharedState;

/* NULL unless the library was preloaded and shared memory is attached. */
extern IeSharedState *ie_shared;

extern void ie_shmem_init(void);
extern void ie_require_preload(const char *what);

#endif							/* IE_SHMEM_H */
