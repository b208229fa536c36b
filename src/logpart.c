/*
 * logpart.c
 *		The partitions of the event log.
 *
 * From 0.3.0 on, inventory_events.event is partitioned by range of
 * recorded_at (create_partitions() makes the partitions ahead of need, a
 * DEFAULT partition catches what none covers). The C paths write without the
 * executor's tuple routing and read through indexes, which a partitioned
 * table does not have: this module keeps, per backend, the partitions with
 * their bounds and the indexes C reads, routes an event to its partition (an
 * event's recorded_at is its transaction's start, so a transaction writes one
 * partition), and reads one stream across the partitions in version order
 * (an index scan per partition, merged: versions are ordered by the stream's
 * lock, not by recorded_at, so the partitions interleave at a boundary).
 *
 * A log of SQL objects before 0.3.0 is one table, seen here as one partition
 * covering all time, so that every reader has one path.
 *
 * The list is rebuilt after any relcache invalidation of the log or one of
 * its partitions (ATTACH, DETACH, CREATE ... PARTITION OF and DROP all send
 * one for the parent). Every partition must have the log's column layout:
 * the attribute numbers C uses are those of the parent.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/nbtree.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/partition.h"
#include "catalog/pg_class.h"
#include "catalog/pg_am.h"
#include "catalog/pg_index.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "partitioning/partbounds.h"
#include "partitioning/partdesc.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/partcache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "catalog.h"
#include "logpart.h"

/* inventory_events.clock: superuser only, for tests (empty: the real clock). */
static char *ie_clock = NULL;

/* Read by create_partitions(). */
static char *ie_partition_interval = NULL;
static int	ie_partition_premake = 3;

static MemoryContext partitions_cxt = NULL;
static IeLogPartitions partitions;
static bool partitions_valid = false;
static bool invalidated_while_building = false;
static Oid	partitions_parent = InvalidOid;

static const RegProcedure event_pkey_keys[2] = {F_INT8EQ, F_TIMESTAMPTZ_EQ};

static void
partitions_relcache_callback(Datum arg, Oid relid)
{
	bool		ours = relid == InvalidOid || relid == partitions_parent;

	for (int i = 0; !ours && i < partitions.n; i++)
		ours = partitions.parts[i].relid == relid;
	if (ours)
	{
		partitions_valid = false;
		invalidated_while_building = true;
	}
}

/*
 * A check hook must not throw (in the postmaster, reading postgresql.conf,
 * an error would be FATAL): the interval is parsed with the routines that
 * return an error code, as interval_in does.
 */
static bool
check_partition_interval(char **newval, void **extra, GucSource source)
{
	char		workbuf[256];
	char	   *field[MAXDATEFIELDS];
	int			ftype[MAXDATEFIELDS];
	int			nf;
	int			dtype;
	struct pg_itm_in itm_in;
	Interval	iv;

	if (*newval == NULL ||
		ParseDateTime(*newval, workbuf, sizeof(workbuf), field, ftype, MAXDATEFIELDS, &nf) != 0 ||
		DecodeInterval(field, ftype, nf, INTERVAL_FULL_RANGE, &dtype, &itm_in) != 0 ||
		dtype != DTK_DELTA || itmin2interval(&itm_in, &iv) != 0)
	{
		GUC_check_errdetail("A partition interval is an interval such as '1 month' or '7 days'.");
		return false;
	}
	if (iv.month < 0 || iv.day < 0 || iv.time < 0 ||
		(iv.month > 0 && (iv.day != 0 || iv.time != 0)) ||
		(iv.month == 0 && iv.day == 0 && iv.time < USECS_PER_HOUR))
	{
		GUC_check_errdetail("A partition interval is a number of months, or of days and hours of at least one hour.");
		return false;
	}
	return true;
}

void
ie_logpart_init(void)
{
	DefineCustomStringVariable("inventory_events.clock",
							   "For tests only: the time taken as every transaction's start by the log (recorded_at).",
							   "Empty: the real clock. Only superusers may set it.",
							   &ie_clock, "", PGC_SUSET, GUC_NOT_IN_SAMPLE,
							   NULL, NULL, NULL);
	DefineCustomStringVariable("inventory_events.partition_interval",
							   "The range of recording time of each partition of the event log that create_partitions() makes.",
							   "Months (aligned to the first of a month, UTC), or days and hours (aligned to 2000-01-01 UTC).",
							   &ie_partition_interval, "1 month", PGC_SUSET, 0,
							   check_partition_interval, NULL, NULL);
	DefineCustomIntVariable("inventory_events.partition_premake",
							"How many partitions of the event log create_partitions() keeps ahead of the current one.",
							NULL,
							&ie_partition_premake, 3, 1, 1000, PGC_SUSET, 0,
							NULL, NULL, NULL);
	CacheRegisterRelcacheCallback(partitions_relcache_callback, (Datum) 0);
}

/*
 * The time of recording of this transaction's events: its start, as now()
 * (or inventory_events.clock, in tests).
 */
TimestampTz
ie_recording_time(void)
{
	if (ie_clock != NULL && ie_clock[0] != '\0')
		return DatumGetTimestampTz(DirectFunctionCall3(timestamptz_in, CStringGetDatum(ie_clock),
													   ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1)));
	return GetCurrentTransactionStartTimestamp();
}

/* Is this a valid btree index on exactly these columns, with no predicate? */
static bool
index_on(Relation idx, int ncols, const AttrNumber *cols)
{
	Form_pg_index ix = idx->rd_index;

	if (!ix->indisvalid || !ix->indislive || idx->rd_rel->relam != BTREE_AM_OID ||
		ix->indnkeyatts != ncols ||
		!heap_attisnull(idx->rd_indextuple, Anum_pg_index_indpred, NULL) ||
		!heap_attisnull(idx->rd_indextuple, Anum_pg_index_indexprs, NULL))
		return false;
	for (int i = 0; i < ncols; i++)
		if (ix->indkey.values[i] != cols[i])
			return false;
	return true;
}

/*
 * The indexes C reads of a partition, found by their columns (each
 * partition has its own: index_partition() makes them; a table attached
 * again from an archive brings its own): the stream index, the (xid, id)
 * index and the primary key on id (or (id, recorded_at)).
 */
static void
partition_indexes(Relation part, IeLogPartition *p)
{
	AttrNumber	stream_cols[4] = {Anum_ie_event_sku, Anum_ie_event_location, Anum_ie_event_lot,
	Anum_ie_event_version};
	AttrNumber	xid_cols[2] = {Anum_ie_event_xid, Anum_ie_event_id};
	AttrNumber	id_cols[2] = {Anum_ie_event_id, Anum_ie_event_recorded_at};
	List	   *indexes = RelationGetIndexList(part);
	ListCell   *lc;
	const char *missing = NULL;

	foreach(lc, indexes)
	{
		Relation	idx = index_open(lfirst_oid(lc), AccessShareLock);

		if (!OidIsValid(p->stream_idx) && index_on(idx, 4, stream_cols))
			p->stream_idx = RelationGetRelid(idx);
		else if (!OidIsValid(p->xid_idx) && index_on(idx, 2, xid_cols))
			p->xid_idx = RelationGetRelid(idx);
		else if (!OidIsValid(p->pkey) && idx->rd_index->indisunique &&
				 (index_on(idx, 1, id_cols) || index_on(idx, 2, id_cols)))
			p->pkey = RelationGetRelid(idx);
		index_close(idx, AccessShareLock);
	}
	list_free(indexes);
	if (!OidIsValid(p->stream_idx))
		missing = "(sku, location, lot, version)";
	else if (!OidIsValid(p->xid_idx))
		missing = "(xid, id)";
	else if (!OidIsValid(p->pkey))
		missing = "(id) that is unique";
	if (missing)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("partition \"%s\" of the event log has no index on %s",
						RelationGetRelationName(part), missing),
				 errhint("Give it the indexes inventory_events.index_partition() creates: SELECT inventory_events.index_partition('%s') on a partition that has none.",
						 RelationGetRelationName(part))));
}

/* A partition read with the parent's attribute numbers must have its layout. */
static void
check_layout(Relation parent, Relation part)
{
	TupleDesc	pd = RelationGetDescr(parent);
	TupleDesc	d = RelationGetDescr(part);
	bool		same = pd->natts == d->natts;

	for (int i = 0; same && i < d->natts; i++)
		same = TupleDescAttr(pd, i)->atttypid == TupleDescAttr(d, i)->atttypid &&
			TupleDescAttr(pd, i)->attisdropped == TupleDescAttr(d, i)->attisdropped;
	if (!same)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("partition \"%s\" of the event log does not have the log's column layout",
						RelationGetRelationName(part)),
				 errdetail("Its columns are not those of inventory_events.event, in the same order."),
				 errhint("Detach it; copy its rows into a table created with CREATE TABLE ... (LIKE inventory_events.event), give it the indexes inventory_events.index_partition() creates, and attach that.")));
}

static TimestampTz
bound_value(PartitionBoundInfo bi, int i, TimestampTz infinite)
{
	if (bi->kind[i][0] != PARTITION_RANGE_DATUM_VALUE)
		return infinite;
	return DatumGetTimestampTz(bi->datums[i][0]);
}

static void
partitions_build(void)
{
	const IeCatalog *c = ie_catalog();
	Relation	parent;

	if (partitions_cxt == NULL)
		partitions_cxt = AllocSetContextCreate(CacheMemoryContext, "inventory_events log partitions",
											   ALLOCSET_SMALL_SIZES);
	MemoryContextReset(partitions_cxt);
	partitions.n = 0;
	partitions.parts = NULL;
	partitions.archive_boundary = DT_NOBEGIN;
	partitions_parent = c->event_rel;
	/* Invalidations processed while building (the locks below) start it over. */
	partitions_valid = false;
	invalidated_while_building = false;

	parent = table_open(c->event_rel, AccessShareLock);
	if (parent->rd_rel->relkind != RELKIND_PARTITIONED_TABLE)
	{
		IeLogPartition *p = MemoryContextAllocZero(partitions_cxt, sizeof(IeLogPartition));

		p->relid = c->event_rel;
		p->stream_idx = c->event_stream_idx;
		p->xid_idx = c->event_xid_idx;
		p->pkey = c->event_pkey;
		p->from = DT_NOBEGIN;
		p->to = DT_NOEND;
		partitions.parts = p;
		partitions.n = 1;
	}
	else
	{
		PartitionDesc pd;
		PartitionBoundInfo bi;
		IeLogPartition *parts;
		int			n = 0;

		/*
		 * archive_before() and attach_archived() change event_archive in the
		 * transaction that detaches or attaches, whose invalidation brings
		 * this rebuild after they committed: read as of now, not as of the
		 * transaction's snapshot (an old transaction is the one it is for).
		 * Read before the partitions: an attach_archived() committing in
		 * between (it does not lock the log against this) then leaves the
		 * month in the list under the old boundary, not a boundary lowered
		 * for a month the list lacks.
		 */
		partitions.archive_boundary = ie_log_archive_boundary(SnapshotSelf);
		pd = RelationGetPartitionDesc(parent, true);
		bi = pd->boundinfo;
		parts = MemoryContextAllocZero(partitions_cxt, sizeof(IeLogPartition) * Max(pd->nparts, 1));

		/* By range: the partition whose upper bound is datums[i] has indexes[i]. */
		for (int i = 0; bi != NULL && i < bi->ndatums; i++)
		{
			int			k = bi->indexes[i];

			if (k < 0)
				continue;
			parts[n].relid = pd->oids[k];
			parts[n].from = i > 0 ? bound_value(bi, i - 1, DT_NOBEGIN) : DT_NOBEGIN;
			parts[n].to = bound_value(bi, i, DT_NOEND);
			n++;
		}
		if (bi != NULL && bi->default_index >= 0)
		{
			parts[n].relid = pd->oids[bi->default_index];
			parts[n].from = DT_NOBEGIN;
			parts[n].to = DT_NOEND;
			parts[n].is_default = true;
			n++;
		}
		/*
		 * Published before the partitions are opened, so that an
		 * invalidation of one of them processed meanwhile is noticed.
		 */
		partitions.parts = parts;
		partitions.n = n;
		for (int i = 0; i < n; i++)
		{
			Relation	part = table_open(parts[i].relid, AccessShareLock);

			check_layout(parent, part);
			partition_indexes(part, &parts[i]);
			table_close(part, AccessShareLock);
		}
	}
	table_close(parent, AccessShareLock);
	partitions_valid = !invalidated_while_building;
}

/*
 * The log's partitions. The log is locked ACCESS SHARE to the end of the
 * transaction first: no partition can be detached (archive_before()) or
 * created while the caller reads the list's partitions; one may be attached
 * (attach_archived(), a partition of archived events only).
 */
const IeLogPartitions *
ie_log_partitions(void)
{
	const IeCatalog *c = ie_catalog();

	LockRelationOid(c->event_rel, AccessShareLock);
	while (!partitions_valid || partitions_parent != c->event_rel)
	{
		partitions_build();
		/* The catalog may have been reloaded meanwhile: a log made anew. */
		c = ie_catalog();
		LockRelationOid(c->event_rel, AccessShareLock);
	}
	return &partitions;
}

/*
 * The partition of the list whose range holds recorded_at, or the default
 * partition, or NULL when there is neither (the default partition dropped).
 */
static const IeLogPartition *
partition_covering(const IeLogPartitions *ps, TimestampTz recorded_at)
{
	const IeLogPartition *fallback = NULL;

	for (int i = 0; i < ps->n; i++)
	{
		const IeLogPartition *p = &ps->parts[i];

		if (p->is_default)
			fallback = p;
		else if (recorded_at >= p->from && recorded_at < p->to)
			return p;
	}
	return fallback;
}

/*
 * The partition an event recorded at recorded_at goes to: the one whose
 * range holds it, or the default partition. None (the default partition
 * dropped): InvalidOid with missing_ok, else an error, as the executor's.
 */
Oid
ie_log_partition_for(TimestampTz recorded_at, bool missing_ok)
{
	const IeLogPartitions *ps = ie_log_partitions();
	const IeLogPartition *p = partition_covering(ps, recorded_at);

	/*
	 * A transaction that started before a month archive_before() archived
	 * (and was not seen by it: no lock on the month, its start not reported)
	 * would record its events in the default partition under the archive
	 * boundary, where no seal covers them and attach_archived() of that month
	 * would fail. Its events belong to the archived month: it starts over,
	 * and its new start is after the boundary.
	 */
	if (p != NULL && p->is_default && recorded_at < ps->archive_boundary)
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("the event log before %s was archived while this transaction was running",
						timestamptz_to_str(ps->archive_boundary)),
				 errdetail("The transaction's events would be recorded at %s, in an archived month.",
						   timestamptz_to_str(recorded_at)),
				 errhint("Run the transaction again.")));
	if (p == NULL && !missing_ok)
		ereport(ERROR,
				(errcode(ERRCODE_CHECK_VIOLATION),
				 errmsg("no partition of the event log covers recording time %s",
						timestamptz_to_str(recorded_at)),
				 errdetail("The log has no partition for that time and no default partition."),
				 errhint("Create the partitions with inventory_events.create_partitions(); a partition made by hand needs inventory_events.index_partition() and inventory_events.guard_partition() too.")));
	return p ? p->relid : InvalidOid;
}

/*
 * The event with this id and recording time, in slot (created for its
 * partition, which *rel holds open: the caller drops the slot and closes
 * it). False when there is none, or its partition is archived.
 */
bool
ie_log_event_fetch(int64 event_id, TimestampTz recorded_at, Snapshot snapshot,
				   TupleTableSlot **slot, Relation *rel)
{
	const IeLogPartition *p = partition_covering(ie_log_partitions(), recorded_at);
	Datum		keys[2] = {Int64GetDatum(event_id), TimestampTzGetDatum(recorded_at)};
	Oid			pkey;
	Relation	idx;
	bool		found;

	if (p == NULL)
		return false;
	pkey = p->pkey;
	*rel = table_open(p->relid, AccessShareLock);
	*slot = table_slot_create(*rel, NULL);
	idx = index_open(pkey, AccessShareLock);
	found = ie_index_lookup(*rel, idx, snapshot, IndexRelationGetNumberOfKeyAttributes(idx),
							keys, event_pkey_keys, *slot);
	index_close(idx, AccessShareLock);
	return found;
}

/* Brings part's next row into its slot. */
static void
stream_part_advance(IeLogStreamScan *s, IeLogStreamScanPart *part)
{
	part->has = index_getnext_slot(part->scan, s->dir, part->slot);
	if (part->has)
	{
		bool		isnull;

		part->version = DatumGetInt64(slot_getattr(part->slot, Anum_ie_event_version, &isnull));
	}
}

/*
 * The scan keys of one stream's rows with version in (after, upto] (upto 0:
 * no upper bound) in an index on (sku, location, lot, version), the text
 * keys compared under the index's collation. Returns their number.
 */
int
ie_stream_scankeys(ScanKey skey, Relation idx, const IeStreamKey *key, int64 after, int64 upto)
{
	Datum		keys[3] = {key->sku, key->location, key->lot};
	int			nkeys = 0;

	for (int k = 0; k < 3; k++)
		ScanKeyEntryInitialize(&skey[nkeys++], 0, k + 1, BTEqualStrategyNumber, InvalidOid,
							   idx->rd_indcollation[k], F_TEXTEQ, keys[k]);
	ScanKeyEntryInitialize(&skey[nkeys++], 0, 4, BTGreaterStrategyNumber, InvalidOid, InvalidOid,
						   F_INT8GT, Int64GetDatum(after));
	if (upto > 0)
		ScanKeyEntryInitialize(&skey[nkeys++], 0, 4, BTLessEqualStrategyNumber, InvalidOid, InvalidOid,
							   F_INT8LE, Int64GetDatum(upto));
	return nkeys;
}

void
ie_log_stream_scan_begin(IeLogStreamScan *s, const IeStreamKey *key, Snapshot snapshot,
						 int64 after, int64 upto, ScanDirection dir)
{
	const IeLogPartitions *ps = ie_log_partitions();
	int			n = ps->n;
	Oid		   *relids = palloc(sizeof(Oid) * Max(n, 1));
	Oid		   *idxids = palloc(sizeof(Oid) * Max(n, 1));

	/* Copied first: opening a relation may process invalidations. */
	for (int i = 0; i < n; i++)
	{
		relids[i] = ps->parts[i].relid;
		idxids[i] = ps->parts[i].stream_idx;
	}
	s->n = n;
	s->dir = dir;
	s->current = -1;
	s->parts = palloc0(sizeof(IeLogStreamScanPart) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		IeLogStreamScanPart *part = &s->parts[i];
		ScanKeyData skey[IE_STREAM_SCANKEYS];
		int			nkeys;

		part->rel = table_open(relids[i], AccessShareLock);
		part->idx = index_open(idxids[i], AccessShareLock);
		part->slot = table_slot_create(part->rel, NULL);
		nkeys = ie_stream_scankeys(skey, part->idx, key, after, upto);
		part->scan = index_beginscan(part->rel, part->idx, snapshot, nkeys, 0);
		index_rescan(part->scan, skey, nkeys, NULL, 0);
		stream_part_advance(s, part);
	}
	pfree(relids);
	pfree(idxids);
}

/* The stream's next event in the scan's direction, or NULL. */
TupleTableSlot *
ie_log_stream_scan_next(IeLogStreamScan *s)
{
	int			best = -1;

	if (s->current >= 0)
		stream_part_advance(s, &s->parts[s->current]);
	for (int i = 0; i < s->n; i++)
	{
		IeLogStreamScanPart *part = &s->parts[i];

		if (!part->has)
			continue;
		if (best < 0 ||
			(ScanDirectionIsForward(s->dir) ? part->version < s->parts[best].version
			 : part->version > s->parts[best].version))
			best = i;
	}
	s->current = best;
	return best >= 0 ? s->parts[best].slot : NULL;
}

void
ie_log_stream_scan_end(IeLogStreamScan *s)
{
	for (int i = 0; i < s->n; i++)
	{
		IeLogStreamScanPart *part = &s->parts[i];

		index_endscan(part->scan);
		ExecDropSingleTupleTableSlot(part->slot);
		index_close(part->idx, AccessShareLock);
		table_close(part->rel, AccessShareLock);
	}
	pfree(s->parts);
	s->parts = NULL;
	s->n = 0;
}

/*
 * The highest value of the log's event ids (IE_LOG_MAX_ID: through each
 * partition's primary key) or log transaction ids (IE_LOG_MAX_XID: its
 * (xid, id) index) under snapshot, 0 for an empty log: the first row of each
 * partition's index read backwards. Both are 64-bit and not negative.
 */
uint64
ie_log_max(IeLogMax which, Snapshot snapshot)
{
	const IeLogPartitions *ps = ie_log_partitions();
	int			n = ps->n;
	Oid		   *relids = palloc(sizeof(Oid) * Max(n, 1));
	Oid		   *idxids = palloc(sizeof(Oid) * Max(n, 1));
	AttrNumber	attnum = which == IE_LOG_MAX_ID ? Anum_ie_event_id : Anum_ie_event_xid;
	uint64		max = 0;

	/* Copied first: opening a relation may process invalidations. */
	for (int i = 0; i < n; i++)
	{
		relids[i] = ps->parts[i].relid;
		idxids[i] = which == IE_LOG_MAX_ID ? ps->parts[i].pkey : ps->parts[i].xid_idx;
	}
	for (int i = 0; i < n; i++)
	{
		Relation	rel = table_open(relids[i], AccessShareLock);
		Relation	idx = index_open(idxids[i], AccessShareLock);
		TupleTableSlot *slot = table_slot_create(rel, NULL);
		IndexScanDesc scan = index_beginscan(rel, idx, snapshot, 0, 0);

		index_rescan(scan, NULL, 0, NULL, 0);
		if (index_getnext_slot(scan, BackwardScanDirection, slot))
		{
			bool		isnull;

			max = Max(max, DatumGetUInt64(slot_getattr(slot, attnum, &isnull)));
		}
		index_endscan(scan);
		ExecDropSingleTupleTableSlot(slot);
		index_close(idx, AccessShareLock);
		table_close(rel, AccessShareLock);
	}
	pfree(relids);
	pfree(idxids);
	return max;
}

/*
 * The archive boundary: the end of the latest partition archive_before()
 * detached (and attach_archived() has not brought back); DT_NOBEGIN when
 * nothing is archived. Read from event_archive, a few rows.
 */
TimestampTz
ie_log_archive_boundary(Snapshot snapshot)
{
	const IeCatalog *c = ie_catalog();
	TimestampTz boundary = DT_NOBEGIN;
	Relation	rel;
	TupleTableSlot *slot;
	TableScanDesc scan;

	if (!OidIsValid(c->event_archive_rel))
		return boundary;
	rel = table_open(c->event_archive_rel, AccessShareLock);
	slot = table_slot_create(rel, NULL);
	scan = table_beginscan(rel, snapshot, 0, NULL);
	while (table_scan_getnextslot(scan, ForwardScanDirection, slot))
	{
		bool		isnull;
		TimestampTz to = DatumGetTimestampTz(slot_getattr(slot, Anum_ie_event_archive_recorded_to, &isnull));

		if (!isnull && to > boundary)
			boundary = to;
	}
	table_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	table_close(rel, AccessShareLock);
	return boundary;
}

/*
 * Refuses a question about business time `at` that needs archived events:
 * one before the archive boundary (DT_NOEND, "now", never does).
 */
void
ie_log_check_as_of(TimestampTz at, Snapshot snapshot)
{
	TimestampTz boundary = ie_log_archive_boundary(snapshot);

	/*
	 * A snapshot taken before an archive committed sees the snapshots it
	 * sealed or deleted as they were, but the log's partitions are those of
	 * now: the answer could miss the archived events. The reader starts over.
	 */
	if (snapshot != SnapshotSelf && boundary != ie_log_archive_boundary(SnapshotSelf))
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("the event log was archived after this transaction's snapshot was taken"),
				 errhint("Run the transaction again.")));
	if (TIMESTAMP_IS_NOEND(at))
		return;
	if (at < boundary)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the event log before %s is archived", timestamptz_to_str(boundary)),
				 errdetail("A position as of %s needs events of archived partitions.", timestamptz_to_str(at)),
				 errhint("Ask about %s or later, or attach the archived partitions again with inventory_events.attach_archived().",
						 timestamptz_to_str(boundary))));
}

/*
 * inventory_events.archive_boundary() returns timestamptz: the end of the
 * latest archived partition (null: nothing archived). A position as of an
 * earlier business time needs archived events.
 */
PG_FUNCTION_INFO_V1(ie_archive_boundary_sql);
Datum
ie_archive_boundary_sql(PG_FUNCTION_ARGS)
{
	TimestampTz boundary = ie_log_archive_boundary(GetActiveSnapshot());

	if (TIMESTAMP_IS_NOBEGIN(boundary))
		PG_RETURN_NULL();
	PG_RETURN_TIMESTAMPTZ(boundary);
}

/*
 * inventory_events.event_partitions() returns table (partition regclass,
 * recorded_from timestamptz, recorded_to timestamptz, is_default boolean):
 * the partitions of the log by range, null for an open end.
 */
PG_FUNCTION_INFO_V1(ie_event_partitions);
Datum
ie_event_partitions(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	const IeLogPartitions *ps;
	IeLogPartition *copy;
	int			n;

	ie_init_materialized_srf(fcinfo);
	ps = ie_log_partitions();
	n = ps->n;
	copy = palloc(sizeof(IeLogPartition) * Max(n, 1));
	memcpy(copy, ps->parts, sizeof(IeLogPartition) * n);
	for (int i = 0; i < n; i++)
	{
		Datum		values[4];
		bool		nulls[4] = {false, false, false, false};

		values[0] = ObjectIdGetDatum(copy[i].relid);
		values[1] = TimestampTzGetDatum(copy[i].from);
		nulls[1] = TIMESTAMP_IS_NOBEGIN(copy[i].from);
		values[2] = TimestampTzGetDatum(copy[i].to);
		nulls[2] = TIMESTAMP_IS_NOEND(copy[i].to);
		values[3] = BoolGetDatum(copy[i].is_default);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	PG_RETURN_VOID();
}
