/*
 * stock.c
 *		Stock positions derived from the event log.
 *
 * One row of inventory_events.stock per stream (sku, location, lot) holds the
 * sum of the resolved effects of the stream's events, its version (number of
 * events) and its safety stock. The AFTER INSERT trigger on the event table
 * (ie_stock_trigger) maintains it in the same transaction, writing the heap
 * tuple and its index entries directly through an IeWriter: no SPI, no
 * planner. The event itself is inserted through the executor's
 * simple-relation routine (as logical replication apply does), so that its
 * constraints, indexes and this trigger work as for any INSERT.
 *
 * Writers of a stream serialise on a heavyweight lock on a hash of the stream
 * key (ie_lock_stream), taken before the stream's version is read and held to
 * the end of the transaction. Under that lock the current stock row is read
 * with SnapshotSelf: every change to it was made by a transaction that held
 * the lock and has therefore committed (or is ours), whatever the snapshot of
 * the calling statement, so the row read is the one to update.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/nbtree.h"
#include "catalog/dependency.h"
#include "commands/sequence.h"
#include "access/table.h"
#include "access/twophase.h"
#include "access/xact.h"
#include "commands/trigger.h"
#include "common/hashfn.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "optimizer/optimizer.h"
#include "utils/inval.h"
#include "utils/backend_status.h"
#include "replication/logicalworker.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "storage/proc.h"
#include "utils/guc.h"
#include "access/tableam.h"
#include "utils/memutils.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "catalog.h"
#include "errors.h"
#include "locks.h"
#include "stock.h"
#include "logpart.h"
#include "writer.h"

static void
row_from_slot(TupleTableSlot *slot, IeStockRow *row)
{
	bool		isnull;

	row->exists = true;
	for (int b = 0; b < IE_NUM_BUCKETS; b++)
		row->pos.q[b] = DatumGetInt64(slot_getattr(slot, Anum_ie_stock_bucket(b), &isnull));
	row->safety_stock = DatumGetInt64(slot_getattr(slot, Anum_ie_stock_safety_stock, &isnull));
	row->version = DatumGetInt64(slot_getattr(slot, Anum_ie_stock_version, &isnull));
	row->tid = slot->tts_tid;
}

/* Reads the stream's stock row into row, and its tuple into slot. */
static bool
read_stock_into(Relation stock, const IeStreamKey *key, TupleTableSlot *slot, IeStockRow *row)
{
	Relation	pkey = index_open(ie_catalog()->stock_pkey, AccessShareLock);
	Datum		keys[3] = {key->sku, key->location, key->lot};
	bool		found;

	found = ie_index_lookup(stock, pkey, SnapshotSelf, 3, keys, ie_text_keys, slot);
	/* Locks kept to the end of the transaction (see ie_lookup_row_as). */
	index_close(pkey, NoLock);

	memset(row, 0, sizeof(*row));
	if (found)
		row_from_slot(slot, row);
	return found;
}

/*
 * The stock row append() read last, so that the trigger that follows at once
 * fetches it by TID instead of searching the index again. Valid only in the
 * same transaction and command: anything that wrote in between (our trigger
 * included) has advanced the command counter. Its key is copied into cxt,
 * which each read resets: a batch of a million events reads a million rows.
 */
static struct
{
	MemoryContext cxt;
	bool		valid;
	LocalTransactionId lxid;
	CommandId	cid;
	char	   *sku;
	char	   *location;
	char	   *lot;
	IeStockRow	row;
}			last_read;

static bool
key_matches(const char *copy, Datum d)
{
	text	   *t = DatumGetTextPP(d);

	return strlen(copy) == VARSIZE_ANY_EXHDR(t) &&
		memcmp(copy, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t)) == 0;
}

/*
 * The stream's current stock row (zeros and version 0 if it has none), for
 * an append that will write it. Writers of stock rows that take no stream
 * lock are waited for before the row is read, not after: rebuild() (SHARE
 * on the log, the partitioned table, which LOCK TABLE takes before its
 * partitions; then SHARE ROW EXCLUSIVE on the stock) and a bulk load of the
 * log (SHARE ROW EXCLUSIVE on the stock). Read before them, the row was the
 * one they replaced, and the append failed with IE002 once they committed
 * (rebuild_append.spec). So the log's partitioned table is locked ROW
 * EXCLUSIVE first and the stock ROW EXCLUSIVE next, in rebuild()'s order:
 * the stock alone, first, deadlocked with it.
 */
void
ie_read_stock(const IeStreamKey *key, IeStockRow *row)
{
	const IeCatalog *c = ie_catalog();
	Relation	stock;
	TupleTableSlot *slot;

	LockRelationOid(c->event_rel, RowExclusiveLock);
	stock = table_open(c->stock_rel, RowExclusiveLock);
	slot = table_slot_create(stock, NULL);

	read_stock_into(stock, key, slot, row);
	ExecDropSingleTupleTableSlot(slot);
	/* Locks kept to the end of the transaction (see ie_lookup_row_as). */
	table_close(stock, NoLock);

	last_read.valid = false;
	if (row->exists)
	{
		MemoryContext old;

		if (last_read.cxt == NULL)
			last_read.cxt = AllocSetContextCreate(TopMemoryContext, "inventory_events last stock read",
												  ALLOCSET_SMALL_SIZES);
		MemoryContextReset(last_read.cxt);
		old = MemoryContextSwitchTo(last_read.cxt);
		last_read.lxid = MyProc->lxid;
		last_read.cid = GetCurrentCommandId(false);
		last_read.sku = TextDatumGetCString(key->sku);
		last_read.location = TextDatumGetCString(key->location);
		last_read.lot = TextDatumGetCString(key->lot);
		last_read.row = *row;
		last_read.valid = true;
		MemoryContextSwitchTo(old);
	}
}

/* The stream's stock row for an update: the one append() just read, or a search. */
static void
read_stock_for_update(Relation stock, const IeStreamKey *key, TupleTableSlot *slot, IeStockRow *row)
{
	if (last_read.valid && last_read.lxid == MyProc->lxid &&
		last_read.cid == GetCurrentCommandId(false) &&
		key_matches(last_read.sku, key->sku) && key_matches(last_read.location, key->location) &&
		key_matches(last_read.lot, key->lot) &&
		table_tuple_fetch_row_version(stock, &last_read.row.tid, SnapshotSelf, slot))
	{
		last_read.valid = false;
		row_from_slot(slot, row);
		return;
	}
	last_read.valid = false;
	read_stock_into(stock, key, slot, row);
}

/*
 * The event that append() (ie_insert_event) is inserting: the trigger that
 * fires for it takes the append path. 0: none (event ids start at 1).
 */
static int64 appending_event = 0;

void
ie_stock_expect_append(int64 event_id)
{
	appending_event = event_id;
}

/*
 * Is an event with this version of the stream present (committed, or this
 * transaction's: its trigger may not have fired yet)?
 */
static int
stream_version_count(const IeStreamKey *key, int64 version, int limit)
{
	IeLogStreamScan s;
	int			n = 0;

	ie_log_stream_scan_begin(&s, key, SnapshotSelf, version - 1, version, ForwardScanDirection);
	while (n < limit && ie_log_stream_scan_next(&s) != NULL)
		n++;
	ie_log_stream_scan_end(&s);
	return n;
}

static bool
stream_has_version(const IeStreamKey *key, int64 version)
{
	return stream_version_count(key, version, 1) > 0;
}

/*
 * Adds to row the events of the stream that follow its version and are
 * present, in version order, while their versions run on with no gap (a bulk
 * load: rows that came before their predecessors). Reads with SnapshotSelf:
 * committed events and this transaction's, this statement's included.
 */
static void
absorb_following(const IeStreamKey *key, IeStockRow *row, int64 *last_event_id)
{
	const IeCatalog *c = ie_catalog();
	IeLogStreamScan s;
	TupleTableSlot *slot;

	ie_log_stream_scan_begin(&s, key, SnapshotSelf, row->version, 0, ForwardScanDirection);
	while ((slot = ie_log_stream_scan_next(&s)) != NULL)
	{
		bool		isnull;
		int64		version = DatumGetInt64(slot_getattr(slot, Anum_ie_event_version, &isnull));

		CHECK_FOR_INTERRUPTS();
		/* No unique index spans the partitions: a repeated version is refused here. */
		if (version == row->version)
			ereport(ERROR,
					(errcode(ERRCODE_UNIQUE_VIOLATION),
					 errmsg("stream already has an event with version %lld", (long long) version),
					 errdetail("Stream sku \"%s\", location \"%s\", lot \"%s\".",
							   TextDatumGetCString(key->sku), TextDatumGetCString(key->location),
							   TextDatumGetCString(key->lot))));
		if (version != row->version + 1)
			break;
		ie_position_add(&row->pos, DatumGetStockPosition(slot_getattr(slot, Anum_ie_event_effect, &isnull)));
		if (DatumGetObjectId(slot_getattr(slot, Anum_ie_event_event_type, &isnull)) ==
			c->event_type_label[IE_EV_SAFETY_STOCK_SET])
			row->safety_stock = DatumGetInt64(slot_getattr(slot, Anum_ie_event_qty, &isnull));
		*last_event_id = DatumGetInt64(slot_getattr(slot, Anum_ie_event_id, &isnull));
		row->version = version;
	}
	ie_log_stream_scan_end(&s);
}

/*
 * Records the event's idempotency key in event_key (0.3.0 and later). An
 * append has found no event under the key, under the key's lock: the row is
 * new. A bulk load may bring a key that is there already: a key used again
 * after its retention window, restored with both its events; the later event
 * keeps it.
 */
static void
record_key(HeapTuple ev, TupleDesc evdesc, int64 ev_id, int64 ev_version, bool appended)
{
	const IeCatalog *c = ie_catalog();
	bool		isnull;
	Datum		key = heap_getattr(ev, Anum_ie_event_idempotency_key, evdesc, &isnull);
	Datum		keys[2];
	Datum	   *values;
	bool	   *nulls;
	TimestampTz recorded_at;
	ItemPointerData tid;

	if (isnull || !OidIsValid(c->event_key_rel))
		return;
	keys[0] = heap_getattr(ev, Anum_ie_event_source, evdesc, &isnull);
	keys[1] = key;
	recorded_at = DatumGetTimestampTz(heap_getattr(ev, Anum_ie_event_recorded_at, evdesc, &isnull));
	values = palloc(sizeof(Datum) * ie_table_natts(IE_TABLE_event_key));
	nulls = palloc(sizeof(bool) * ie_table_natts(IE_TABLE_event_key));
	ie_row_new_nulls(IE_TABLE_event_key, nulls);
	values[Anum_ie_event_key_source - 1] = keys[0];
	values[Anum_ie_event_key_idempotency_key - 1] = keys[1];
	values[Anum_ie_event_key_event_id - 1] = Int64GetDatum(ev_id);
	values[Anum_ie_event_key_recorded_at - 1] = TimestampTzGetDatum(recorded_at);
	values[Anum_ie_event_key_version - 1] = Int64GetDatum(ev_version);
	if (!appended)
	{
		Relation	rel = table_open(c->event_key_rel, AccessShareLock);
		Relation	idx = index_open(c->event_key_pkey, AccessShareLock);
		TupleTableSlot *slot = table_slot_create(rel, NULL);
		bool		found = ie_index_lookup(rel, idx, SnapshotSelf, 2, keys, ie_text_keys, slot);
		TimestampTz stored = 0;

		if (found)
		{
			tid = slot->tts_tid;
			stored = DatumGetTimestampTz(slot_getattr(slot, Anum_ie_event_key_recorded_at, &isnull));
		}
		ExecDropSingleTupleTableSlot(slot);
		/* Locks kept to the end of the transaction (see ie_lookup_row_as). */
		index_close(idx, NoLock);
		table_close(rel, NoLock);
		if (found)
		{
			if (recorded_at > stored)
				ie_row_update(c->event_key_rel, &tid, values, nulls);
			return;
		}
	}
	ie_row_insert(c->event_key_rel, values, nulls);
}

/*
 * Is this bulk load a restore? From 0.3.0 on, pg_dump writes stock and
 * event_key with the log, from one snapshot, and a restore loads them: the
 * log's partitions it creates get their indexes only after their rows, so
 * nothing could be derived meanwhile (src/logpart.c needs them). A restore is
 * a load before the database has written to the log (log_home_written is not
 * dumped), other than by logical replication, whose subscriber derives its
 * own positions. Asked once per statement.
 */
static bool
restoring(const IeCatalog *c)
{
	static LocalTransactionId lxid = InvalidLocalTransactionId;
	static CommandId cid = InvalidCommandId;
	static bool result = false;

	if (c->sql_version < IE_SQL_0_3_0 || IsLogicalWorker())
		return false;
	if (MyProc->lxid != lxid || GetCurrentCommandId(false) != cid)
	{
		lxid = MyProc->lxid;
		cid = GetCurrentCommandId(false);
		result = !ie_relation_has_rows(c->log_home_written_rel, SnapshotSelf);
	}
	return result;
}

/*
 * AFTER INSERT FOR EACH ROW on inventory_events.event: add the event's
 * resolved effect to its stream's stock row. Enabled ALWAYS, so that a
 * logical replication subscriber derives its own positions.
 *
 * An event append() inserts holds its stream's lock and is the stream's
 * next version: its effect is added (anything else is a version conflict).
 *
 * From 0.3.0 on, a restore (see restoring()) loads the stock rows and the
 * idempotency keys with the log, and this trigger leaves them alone.
 *
 * Any other insert (replication apply, a superuser's INSERT, a restore of
 * SQL objects before 0.3.0) is a bulk load, whose rows may come in any order
 * of versions: a restore loaded the log in its physical order, one COPY (the
 * trigger firing for every row at its end) or one INSERT per row (pg_dump
 * --inserts). The
 * row then holds the longest run of versions from 1 that is present: an
 * event that is the next version is added with the versions after it that
 * are already there; an event beyond the next version waits for the ones
 * before it — when the next version is present (its trigger is still to
 * come), or while the database is being restored (the row does not change,
 * and verify() reports the stream while a version is missing) — and is a
 * version conflict otherwise, once the database has written to the log (a
 * row in log_home_written, which pg_dump leaves out); an event at or below
 * the row's version was added by an earlier one. A bulk load takes a SHARE
 * ROW EXCLUSIVE lock on stock until it ends instead of one lock per stream
 * (which would fill the lock table): appends wait for it, readers do not.
 */
PG_FUNCTION_INFO_V1(ie_stock_trigger);
Datum
ie_stock_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	const IeCatalog *c;
	TupleDesc	evdesc;
	HeapTuple	ev;
	IeStreamKey key;
	bool		isnull;
	int64		ev_version;
	int64		ev_id;
	Oid			ev_type;
	StockPosition *effect;
	Relation	stock;
	TupleTableSlot *oldslot;
	TupleTableSlot *newslot;
	IeStockRow	row;
	IeWriter	local;
	IeWriter   *w;
	Datum	   *values;
	bool	   *nulls;
	int64		last_event_id;
	bool		appended;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_AFTER(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) || !TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
		elog(ERROR, "ie_stock_trigger must be an AFTER INSERT FOR EACH ROW trigger");

	c = ie_catalog();
	ev = trigdata->tg_trigtuple;
	evdesc = RelationGetDescr(trigdata->tg_relation);
	key.sku = heap_getattr(ev, Anum_ie_event_sku, evdesc, &isnull);
	key.location = heap_getattr(ev, Anum_ie_event_location, evdesc, &isnull);
	key.lot = heap_getattr(ev, Anum_ie_event_lot, evdesc, &isnull);
	ev_id = DatumGetInt64(heap_getattr(ev, Anum_ie_event_id, evdesc, &isnull));
	ev_version = DatumGetInt64(heap_getattr(ev, Anum_ie_event_version, evdesc, &isnull));
	ev_type = DatumGetObjectId(heap_getattr(ev, Anum_ie_event_event_type, evdesc, &isnull));
	effect = DatumGetStockPosition(heap_getattr(ev, Anum_ie_event_effect, evdesc, &isnull));

	appended = (ev_id == appending_event);
	appending_event = 0;
	if (!appended && restoring(c))
		return PointerGetDatum(NULL);
	if (!appended)
		LockRelationOid(c->stock_rel, ShareRowExclusiveLock);

	w = ie_writer_get(c->stock_rel, &local);
	stock = w->rel;
	oldslot = w->oldslot;
	newslot = w->slot;
	if (appended)
		read_stock_for_update(stock, &key, oldslot, &row);
	else
	{
		last_read.valid = false;
		read_stock_into(stock, &key, oldslot, &row);
	}

	if (appended && ev_version != row.version + 1)
		ereport(ERROR,
				(errcode(ERRCODE_IE_VERSION_CONFLICT),
				 errmsg("event %lld has version %lld but its stream is at version %lld",
						(long long) ev_id, (long long) ev_version, (long long) row.version),
				 errdetail("Stream sku \"%s\", location \"%s\", lot \"%s\".",
						   TextDatumGetCString(key.sku), TextDatumGetCString(key.location),
						   TextDatumGetCString(key.lot))));
	if (ev_version > row.version + 1 && !stream_has_version(&key, row.version + 1) &&
		(!OidIsValid(c->log_home_written_rel) || ie_relation_has_rows(c->log_home_written_rel, SnapshotSelf)))
		ereport(ERROR,
				(errcode(ERRCODE_IE_VERSION_CONFLICT),
				 errmsg("stream has no event with version %lld", (long long) row.version + 1),
				 errdetail("Stream sku \"%s\", location \"%s\", lot \"%s\"; event %lld has version %lld.",
						   TextDatumGetCString(key.sku), TextDatumGetCString(key.location),
						   TextDatumGetCString(key.lot), (long long) ev_id, (long long) ev_version),
				 errhint("Append events with inventory_events.append(), which assigns versions.")));
	/*
	 * The log's partitions cannot have a unique index on the stream's
	 * versions: an append's version is checked above under the stream's
	 * lock; a bulk load's against the other events of the stream.
	 */
	if (!appended && ev_version <= row.version + 1 && stream_version_count(&key, ev_version, 2) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_UNIQUE_VIOLATION),
				 errmsg("stream already has an event with version %lld", (long long) ev_version),
				 errdetail("Stream sku \"%s\", location \"%s\", lot \"%s\"; event %lld has the same version.",
						   TextDatumGetCString(key.sku), TextDatumGetCString(key.location),
						   TextDatumGetCString(key.lot), (long long) ev_id)));
	record_key(ev, evdesc, ev_id, ev_version, appended);
	if (ev_version != row.version + 1)
	{
		/* A bulk load: counted already, or waiting for the versions before it. */
		ie_writer_done(w);
		return PointerGetDatum(NULL);
	}

	ie_position_add(&row.pos, effect);
	if (ev_type == c->event_type_label[IE_EV_SAFETY_STOCK_SET])
		row.safety_stock = DatumGetInt64(heap_getattr(ev, Anum_ie_event_qty, evdesc, &isnull));
	row.version = ev_version;
	last_event_id = ev_id;
	if (!appended)
		absorb_following(&key, &row, &last_event_id);

	ExecClearTuple(newslot);
	values = newslot->tts_values;
	nulls = newslot->tts_isnull;
	if (row.exists)
	{
		/* Columns a DBA added keep their values. */
		int			natts = newslot->tts_tupleDescriptor->natts;

		slot_getallattrs(oldslot);
		memcpy(values, oldslot->tts_values, sizeof(Datum) * natts);
		memcpy(nulls, oldslot->tts_isnull, sizeof(bool) * natts);
	}
	else
		ie_row_new_nulls(IE_TABLE_stock, nulls);
	values[Anum_ie_stock_sku - 1] = key.sku;
	values[Anum_ie_stock_location - 1] = key.location;
	values[Anum_ie_stock_lot - 1] = key.lot;
	for (int b = 0; b < IE_NUM_BUCKETS; b++)
		values[Anum_ie_stock_bucket(b) - 1] = Int64GetDatum(row.pos.q[b]);
	values[Anum_ie_stock_on_hand - 1] = Int64GetDatum(ie_position_on_hand(&row.pos));
	values[Anum_ie_stock_safety_stock - 1] = Int64GetDatum(row.safety_stock);
	values[Anum_ie_stock_version - 1] = Int64GetDatum(row.version);
	values[Anum_ie_stock_last_event_id - 1] = Int64GetDatum(last_event_id);
	values[Anum_ie_stock_updated_at - 1] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	ie_writer_store(w, row.exists ? CMD_UPDATE : CMD_INSERT);

	/*
	 * Write the row and its index entries directly. The stock table's only
	 * triggers are the insert-side foreign key checks on sku and location,
	 * which ie_prepare_event has already made (and a trigger on a derived
	 * table is no place for user logic); the referenced side's checks, which
	 * refuse deleting an item or location still in stock, stay in force.
	 * The table has no CHECK constraint of its own; one that a DBA adds is
	 * enforced here (23514), at no cost to those who add none.
	 */
	if (stock->rd_att->constr && stock->rd_att->constr->num_check > 0)
		ExecConstraints(w->rri, newslot, w->estate);
	if (row.exists)
	{
		bool		update_indexes;

		simple_table_tuple_update(stock, &oldslot->tts_tid, newslot, w->estate->es_snapshot,
								  &update_indexes);
		if (update_indexes)
			ExecInsertIndexTuples(w->rri, newslot, w->estate, true, false, NULL, NIL);
	}
	else
	{
		simple_table_tuple_insert(stock, newslot);
		ExecInsertIndexTuples(w->rri, newslot, w->estate, false, false, NULL, NIL);
	}
	ie_writer_done(w);

	/* Make the new row visible to the next event of the same statement. */
	CommandCounterIncrement();

	return PointerGetDatum(NULL);
}

/*
 * inventory_events.report_progress(text): shows a progress message as the
 * session's query in pg_stat_activity (used by rebuild()).
 */
PG_FUNCTION_INFO_V1(ie_report_progress);
Datum
ie_report_progress(PG_FUNCTION_ARGS)
{
	pgstat_report_activity(STATE_RUNNING, text_to_cstring(PG_GETARG_TEXT_PP(0)));
	PG_RETURN_VOID();
}
