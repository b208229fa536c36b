/*
 * logpart.h
 *		The partitions of the event log: where an event is written, and
 *		reading a stream or the whole log across them.
 */
#ifndef IE_LOGPART_H
#define IE_LOGPART_H

#include "access/genam.h"
#include "access/sdir.h"
#include "access/skey.h"
#include "utils/relcache.h"
#include "executor/tuptable.h"
#include "utils/snapshot.h"
#include "utils/timestamp.h"

#include "types.h"

/*
 * One partition of the log and its indexes. A log of SQL objects before 0.3.0
 * is one table: the only "partition", covering all time.
 */
typedef struct IeLogPartition
{
	Oid			relid;
	Oid			stream_idx;		/* (sku, location, lot, version) */
	Oid			xid_idx;		/* (xid, id) */
	Oid			pkey;			/* (id, recorded_at); (id) before 0.3.0 */
	TimestampTz from;			/* recorded_at >= from (DT_NOBEGIN: no bound) */
	TimestampTz to;				/* recorded_at < to (DT_NOEND: no bound) */
	bool		is_default;
} IeLogPartition;

typedef struct IeLogPartitions
{
	int			n;
	IeLogPartition *parts;		/* by range, the default partition last */
	TimestampTz archive_boundary;	/* as ie_log_archive_boundary(), when built */
} IeLogPartitions;

extern const IeLogPartitions *ie_log_partitions(void);
extern Oid	ie_log_partition_for(TimestampTz recorded_at, bool missing_ok);
extern TimestampTz ie_recording_time(void);
extern TimestampTz ie_log_archive_boundary(Snapshot snapshot);
/* What ie_log_max() reads the highest of. */
typedef enum IeLogMax
{
	IE_LOG_MAX_ID,				/* event ids, through the primary keys */
	IE_LOG_MAX_XID				/* log transaction ids, through (xid, id) */
} IeLogMax;

extern uint64 ie_log_max(IeLogMax which, Snapshot snapshot);
extern void ie_log_check_as_of(TimestampTz at, Snapshot snapshot);
extern void ie_logpart_init(void);

/*
 * The events of one stream with version in (after, upto] (upto 0: no upper
 * bound), in version order across the partitions: one index scan per
 * partition, merged.
 */
typedef struct IeLogStreamScanPart
{
	Relation	rel;
	Relation	idx;
	IndexScanDesc scan;
	TupleTableSlot *slot;
	bool		has;			/* slot holds this partition's next row */
	int64		version;		/* its version */
} IeLogStreamScanPart;

typedef struct IeLogStreamScan
{
	int			n;
	IeLogStreamScanPart *parts;
	ScanDirection dir;
	int			current;		/* the part whose row was returned last, or -1 */
} IeLogStreamScan;

/* At most this many keys: three text keys and two bounds of the version. */
#define IE_STREAM_SCANKEYS 5
extern int	ie_stream_scankeys(ScanKey skey, Relation idx, const IeStreamKey *key, int64 after, int64 upto);
extern void ie_log_stream_scan_begin(IeLogStreamScan *s, const IeStreamKey *key, Snapshot snapshot,
									 int64 after, int64 upto, ScanDirection dir);
extern TupleTableSlot *ie_log_stream_scan_next(IeLogStreamScan *s);
extern void ie_log_stream_scan_end(IeLogStreamScan *s);
extern bool ie_log_event_fetch(int64 event_id, TimestampTz recorded_at, Snapshot snapshot,
							   TupleTableSlot **slot, Relation *rel);

#endif							/* IE_LOGPART_H */
