/*
 * loghome.c
 *		The log's transaction ids across clusters.
 *
 * Every event stores in event.xid the id of the transaction that wrote it, so
 * that a reader can take the events below its snapshot's xmin, in (xid, id)
 * order, and never miss one that an older transaction commits late
 * (events_after(), publish()). That only works while the ids keep growing.
 * They do not when the database moves: restored by pg_dump into a new
 * cluster, whose transaction counter starts again near zero, or fed by
 * logical replication, where the rows carry the publisher's ids.
 *
 * So event.xid is a log transaction id: the transaction's full id plus the
 * offset of the log's current home. inventory_events.log_home records each
 * cluster (system identifier) and database the log has been written in.
 * CREATE EXTENSION records the database it runs in as home 0, offset 0: a new
 * log is at home at once, and its writers never wait for one another here.
 * pg_dump dumps the rows, so a restore brings the source's home 0 beside the
 * target's own. With two homes 0 (and no adoption), or when the current home
 * names another cluster or database (a pg_upgrade, CREATE DATABASE ...
 * TEMPLATE, a restore of a log that had moved before), the database is not
 * the log's home. Its first write adopts the log: under a lock, it adds home
 * n + 1, whose offset puts every transaction that can still write above
 * every log transaction id already stored. Until then readers see every
 * stored event (all of them written elsewhere).
 *
 * The publisher writes rows a restore loads (its checkpoint, publications,
 * what each channel was shown), so it must not run before a restore has
 * loaded them: it waits until the database has adopted the log, that is
 * until it is at home and has a row in log_home_written, which the first
 * write makes and pg_dump does not dump. (A restore loads its tables one by
 * one; between CREATE EXTENSION and the rows of log_home, the new database
 * looks at home.)
 *
 * A writer looks the home up once per load of the catalog cache (ie_catalog:
 * any change to log_home, including a COPY into it, invalidates it); a
 * reader looks it up in its own snapshot, with every call.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "access/htup_details.h"
#include "access/xlog.h"
#include "commands/dbcommands.h"
#include "commands/trigger.h"
#include "miscadmin.h"
#include "replication/logicalworker.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/inval.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/xid8.h"

#include "catalog.h"
#include "logpart.h"
#include "loghome.h"
#include "locks.h"
#include "stock.h"
#include "writer.h"

typedef struct LogHome
{
	bool		found;			/* false: no current home (see current_home) */
	int32		home;
	int64		system_identifier;
	Oid			database_oid;
	uint64		xid_offset;
} LogHome;

/* The offset of this database's home, as found by the last writer check. */
static struct
{
	bool		valid;
	uint64		generation;		/* ie_catalog_generation() then */
	uint64		xid_offset;
}			home_cache;

/* A transaction id of the last 2^32 as a full one (the next one's epoch, or the one before). */
static FullTransactionId
widen_xid(TransactionId xid)
{
	FullTransactionId next = ReadNextFullTransactionId();
	uint32		epoch = EpochFromFullTransactionId(next);

	if (xid > XidFromFullTransactionId(next))
		epoch--;
	return FullTransactionIdFromEpochAndXid(epoch, xid);
}

/*
 * The log's current home in snapshot. Home 0 is the row CREATE EXTENSION
 * made (pg_dump dumps it, so a restore brings the source's beside the
 * target's own); homes 1, 2, ... are adoptions. The current home is the
 * highest adoption; without one, the only home 0; with several homes 0 and
 * no adoption the log was restored and not written since: no home
 * (out->found is false). The table holds a row per move: scanned whole.
 */
static void
current_home(const IeCatalog *c, Snapshot snapshot, LogHome *out)
{
	Relation	rel = table_open(c->log_home_rel, AccessShareLock);
	TupleTableSlot *slot = table_slot_create(rel, NULL);
	TableScanDesc scan = table_beginscan(rel, snapshot, 0, NULL);
	int			homes_zero = 0;

	memset(out, 0, sizeof(*out));
	out->home = -1;
	while (table_scan_getnextslot(scan, ForwardScanDirection, slot))
	{
		int32		home;

		slot_getallattrs(slot);
		home = DatumGetInt32(slot->tts_values[Anum_ie_log_home_home - 1]);
		if (home == 0)
			homes_zero++;
		if (home > out->home)
		{
			out->home = home;
			out->system_identifier = DatumGetInt64(slot->tts_values[Anum_ie_log_home_system_identifier - 1]);
			out->database_oid = DatumGetObjectId(slot->tts_values[Anum_ie_log_home_database_oid - 1]);
			out->xid_offset = (uint64) DatumGetInt64(slot->tts_values[Anum_ie_log_home_xid_offset - 1]);
		}
	}
	table_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	table_close(rel, AccessShareLock);
	out->found = out->home > 0 || (out->home == 0 && homes_zero == 1);
}

static bool
home_is_here(const LogHome *h)
{
	return h->found && h->system_identifier == (int64) GetSystemIdentifier() &&
		h->database_oid == MyDatabaseId;
}

/*
 * The highest log transaction id stored, 0 for an empty log. Every row counts,
 * whether its transaction committed, aborted or is still running: the new
 * offset must put new transactions above all of them.
 */
static uint64
max_log_xid(void)
{
	return ie_log_max(IE_LOG_MAX_XID, SnapshotAny);
}

/*
 * Makes this database the log's home. Every transaction that may still write
 * has an id at least the xmin of our transaction's first snapshot (any
 * transaction running then has one; any other gets a later one), so an offset
 * that puts that xmin above the highest stored log transaction id puts every
 * future event above every stored one.
 */
static void
adopt(const IeCatalog *c, LogHome *h)
{
	Datum	   *values;
	bool	   *nulls;
	uint64		max;
	uint64		xmin;
	uint64		offset;
	int32		home;
	LOCKTAG		tag;

	/*
	 * One adopter at a time; the loser finds the winner's home. Taken before
	 * any other inventory lock (ie_before_locks_hook), so that an adopter
	 * never waits for a lock held by a writer that waits for this one.
	 */
	ie_lock_tag(IE_LOCK_HOME, 0, NULL, &tag);
	(void) LockAcquire(&tag, ExclusiveLock, false, false);
	current_home(c, SnapshotSelf, h);
	if (home_is_here(h))
		return;

	Assert(TransactionIdIsNormal(TransactionXmin));
	max = max_log_xid();
	xmin = U64FromFullTransactionId(widen_xid(TransactionXmin));
	offset = max >= xmin ? max - xmin + 1 : 0;

	home = Max(h->home, 0) + 1;
	ie_row_alloc(IE_TABLE_log_home, &values, &nulls);
	values[Anum_ie_log_home_home - 1] = Int32GetDatum(home);
	values[Anum_ie_log_home_system_identifier - 1] = Int64GetDatum((int64) GetSystemIdentifier());
	values[Anum_ie_log_home_database_oid - 1] = ObjectIdGetDatum(MyDatabaseId);
	values[Anum_ie_log_home_xid_offset - 1] = Int64GetDatum((int64) offset);
	values[Anum_ie_log_home_first_xid - 1] = FullTransactionIdGetDatum(FullTransactionIdFromU64(xmin + offset));
	values[Anum_ie_log_home_adopted_at - 1] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	ie_row_insert(c->log_home_rel, values, nulls);
	CacheInvalidateRelcacheByRelid(c->log_home_rel);

	ereport(LOG,
			(errmsg("inventory_events: database \"%s\" adopted the event log as its home %d",
					get_database_name(MyDatabaseId), home),
			 errdetail("Log transaction ids continue above %llu (transaction id offset %llu).",
					   (unsigned long long) max, (unsigned long long) offset)));

	h->found = true;
	h->home = home;
	h->system_identifier = (int64) GetSystemIdentifier();
	h->database_oid = MyDatabaseId;
	h->xid_offset = offset;
}

/*
 * The highest stock.last_event_id in snapshot, 0 for none: every event is
 * counted by its stream's row when the log's highest id is (a stream's later
 * version takes a later id: it is drawn under the stream's lock).
 */
static int64
max_stock_event_id(const IeCatalog *c, Snapshot snapshot)
{
	Relation	rel = table_open(c->stock_rel, AccessShareLock);
	TupleTableSlot *slot = table_slot_create(rel, NULL);
	TableScanDesc scan = table_beginscan(rel, snapshot, 0, NULL);
	int64		max = 0;

	while (table_scan_getnextslot(scan, ForwardScanDirection, slot))
	{
		bool		isnull;
		Datum		d = slot_getattr(slot, Anum_ie_stock_last_event_id, &isnull);

		CHECK_FOR_INTERRUPTS();
		if (!isnull)
			max = Max(max, DatumGetInt64(d));
	}
	table_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	table_close(rel, AccessShareLock);
	return max;
}

/*
 * Has the log an event that no stock row counts? Both maxima are read in one
 * MVCC snapshot, in which an appended event and its stream's row come
 * together or not at all. Read with SnapshotSelf, which no lock orders here
 * (other sessions append meanwhile), a stock row whose update (not HOT)
 * committed during the scan was missed in both versions, and the first
 * write after a restore was refused for events the positions do count
 * (TAP 020).
 */
static bool
log_uncounted(const IeCatalog *c)
{
	Snapshot	snapshot = RegisterSnapshot(GetLatestSnapshot());
	bool		uncounted;

	uncounted = ie_log_max(IE_LOG_MAX_ID, snapshot) > (uint64) max_stock_event_id(c, snapshot);
	UnregisterSnapshot(snapshot);
	return uncounted;
}

/*
 * Makes sure this backend knows the offset of the log's home, adopting the
 * log when the database is not its home, and marking that the database has
 * written to the log. Once per load of the catalog cache; an abort (of the
 * transaction or of a subtransaction) forgets it, since what this backend
 * wrote may be gone with it (the adoption, the mark). False, with nothing to
 * settle, for the SQL objects of 0.1.0 (no log_home yet).
 */
static bool
settle_home(void)
{
	const IeCatalog *c = ie_catalog();
	LogHome		h;

	if (!OidIsValid(c->log_home_rel))
		return false;
	if (home_cache.valid && home_cache.generation == ie_catalog_generation())
		return true;
	current_home(c, SnapshotSelf, &h);
	if (!home_is_here(&h))
		adopt(c, &h);
	if (!ie_relation_has_rows(c->log_home_written_rel, SnapshotSelf))
	{
		Datum	   *values;
		bool	   *nulls;

		/*
		 * The first write since CREATE EXTENSION or a restore. A restore
		 * derives no stock from 0.3.0 on (the dump brings the rows); a log
		 * loaded without them (a dump of an earlier version, or events
		 * loaded before this first write) must not be written to until its
		 * positions are derived: an append would start its streams over.
		 */
		if (c->sql_version >= IE_SQL_0_3_0 && log_uncounted(c))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("the event log has events that the stock positions do not count"),
					 errdetail("A restore loads the stock rows with the log from version 0.3.0 on; these events came without theirs (a dump of an earlier version, or events loaded before the database's first write)."),
					 errhint("Derive them with SELECT inventory_events.rebuild(); then write again.")));
		ie_row_alloc(IE_TABLE_log_home_written, &values, &nulls);
		values[Anum_ie_log_home_written_written_at - 1] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
		values[Anum_ie_log_home_written_pid - 1] = Int32GetDatum(MyProcPid);
		ie_row_insert(c->log_home_written_rel, values, nulls);
	}
	home_cache.xid_offset = h.xid_offset;
	home_cache.generation = ie_catalog_generation();
	home_cache.valid = true;
	return true;
}

/*
 * The log transaction id of the current top transaction, which is given a
 * transaction id if it has none. The first write after the database moved
 * adopts the log. With the SQL objects of 0.1.0 (no log_home yet) it is the
 * transaction id itself, as 0.1.0 wrote it.
 */
FullTransactionId
ie_log_xid(void)
{
	FullTransactionId fxid = GetTopFullTransactionId();

	if (!settle_home())
		return fxid;
	return FullTransactionIdFromU64(U64FromFullTransactionId(fxid) + home_cache.xid_offset);
}

/* ie_before_locks_hook: a writer settles the log's home before its first lock. */
static void
settle_home_before_locks(void)
{
	(void) settle_home();
}

static void
forget_home_at_abort(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
		home_cache.valid = false;
}

static void
forget_home_at_subabort(SubXactEvent event, SubTransactionId mySubid,
						SubTransactionId parentSubid, void *arg)
{
	if (event == SUBXACT_EVENT_ABORT_SUB)
		home_cache.valid = false;
}

void
ie_loghome_init(void)
{
	ie_before_locks_hook = settle_home_before_locks;
	RegisterXactCallback(forget_home_at_abort, NULL);
	RegisterSubXactCallback(forget_home_at_subabort, NULL);
}

/*
 * The readers' horizon in the active snapshot: every event whose log
 * transaction id is below it has committed (or never will), so a reader that
 * takes events below it in (xid, id) order never skips one. At home that is
 * the snapshot's xmin plus the home's offset. Away from home (restored, not
 * written since) every stored event was written elsewhere, and any later one
 * will be written above all of them: the horizon is above the highest.
 */
FullTransactionId
ie_log_xmin(void)
{
	const IeCatalog *c = ie_catalog();
	Snapshot	snapshot = GetActiveSnapshot();
	FullTransactionId xmin = widen_xid(snapshot->xmin);
	LogHome		h;

	if (!OidIsValid(c->log_home_rel))
		return xmin;
	current_home(c, snapshot, &h);
	if (home_is_here(&h))
		return FullTransactionIdFromU64(U64FromFullTransactionId(xmin) + h.xid_offset);
	return FullTransactionIdFromU64(max_log_xid() + 1);
}

/*
 * Has this database adopted the log, in the active snapshot: is it the
 * log's home, and has it written here? log_home_written is not dumped, so a
 * restored database has no row until its first write, whatever its homes
 * say while a restore is loading them.
 */
bool
ie_log_adopted(void)
{
	const IeCatalog *c = ie_catalog();
	LogHome		h;

	if (!OidIsValid(c->log_home_rel))
		return true;
	current_home(c, GetActiveSnapshot(), &h);
	return home_is_here(&h) && ie_relation_has_rows(c->log_home_written_rel, GetActiveSnapshot());
}

/* inventory_events.log_xid() returns xid8: the log transaction id of this transaction. */
PG_FUNCTION_INFO_V1(ie_log_xid_sql);
Datum
ie_log_xid_sql(PG_FUNCTION_ARGS)
{
	PG_RETURN_FULLTRANSACTIONID(ie_log_xid());
}

/* inventory_events.log_xmin() returns xid8: the readers' horizon. */
PG_FUNCTION_INFO_V1(ie_log_xmin_sql);
Datum
ie_log_xmin_sql(PG_FUNCTION_ARGS)
{
	PG_RETURN_FULLTRANSACTIONID(ie_log_xmin());
}

/* inventory_events.log_adopted() returns boolean. */
PG_FUNCTION_INFO_V1(ie_log_adopted_sql);
Datum
ie_log_adopted_sql(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(ie_log_adopted());
}

/*
 * BEFORE INSERT FOR EACH ROW on the event log, enabled for replicas only: a
 * row applied by logical replication (an apply or table synchronisation
 * worker) carries the publisher's log transaction id, which means nothing
 * here; it gets this database's own, so that readers on the subscriber see
 * its events in its commit order. A session that only set
 * session_replication_role = replica (a parallel restore does, see
 * doc/operations.md) keeps the ids it loads.
 */
PG_FUNCTION_INFO_V1(ie_event_local_xid);
Datum
ie_event_local_xid(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	int			attnum = Anum_ie_event_xid;
	Datum		value;
	bool		isnull = false;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BEFORE(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) || !TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
		elog(ERROR, "ie_event_local_xid must be a BEFORE INSERT FOR EACH ROW trigger");
	if (!IsLogicalWorker())
		return PointerGetDatum(trigdata->tg_trigtuple);
	value = FullTransactionIdGetDatum(ie_log_xid());
	return PointerGetDatum(heap_modify_tuple_by_cols(trigdata->tg_trigtuple,
													 RelationGetDescr(trigdata->tg_relation),
													 1, &attnum, &value, &isnull));
}
