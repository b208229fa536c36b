/*
 * snapshot.h
 *		Stream snapshots: a stream's position folded from its newest snapshot
 *		that applies and the events after it.
 */
#ifndef IE_SNAPSHOT_H
#define IE_SNAPSHOT_H

#include "executor/tuptable.h"
#include "utils/snapshot.h"
#include "utils/timestamp.h"

#include "types.h"

/*
 * A stream folded: the base snapshot's state plus the events read after it.
 * events counts the base's events too (its version), so that a stream whose
 * versions run 1..n without a gap has events = version.
 */
typedef struct IeStreamFold
{
	StockPosition position;
	int64		events;
	int64		version;		/* the highest version folded; 0: none */
	int64		event_id;		/* the id of the event of that version */
	TimestampTz occurred_max;	/* the latest business time folded */
	bool		has_occurred;
	int64		safety_stock;	/* of the last safety_stock_set folded, or 0 */
	int64		base_version;	/* of the snapshot started from; 0: none */
	int64		events_read;	/* events read after the base */
} IeStreamFold;

/*
 * Called for every event read after the base, with included = whether its
 * business time is at or before the fold's time.
 */
typedef void (*IeFoldVisit) (TupleTableSlot *event, bool included, void *arg);

extern void ie_stream_fold(const IeStreamKey *key, TimestampTz at, int64 through_version,
						   bool use_snapshots, Snapshot snapshot, IeFoldVisit visit, void *arg,
						   IeStreamFold *fold);

#endif							/* IE_SNAPSHOT_H */
