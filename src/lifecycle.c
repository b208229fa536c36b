/*
 * lifecycle.c
 *		What happens to a reservation after it is made: release, pick, ship,
 *		pick short and expiry, each on the prepared-event path of append().
 *
 * An operation on an order line (channel, ref) takes, in the global lock order
 * (locks.h), the lock of its idempotency key, then the sku lock of the line's
 * sku and of a kit's components, then, one event at a time, the stream lock of
 * each allocation it moves (ie_prepare_event). Every writer of a reservation or
 * of its allocations holds one of those sku locks, so under them the rows are
 * read with SnapshotSelf and replaced in place, without row locks.
 *
 * The units move between an allocation's columns (reserved -> picked ->
 * shipped, reserved -> released or short) together with one event per
 * allocation touched. Everything is checked before the first event, so an
 * operation is applied whole or not at all.
 *
 * Idempotency: an operation's first event carries its key, the following ones
 * key#2, key#3, ... A retry finds the first under the key's lock and returns
 * the events recorded then, changing nothing.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "common/int.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgroids.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "catalog.h"
#include "channel.h"
#include "errors.h"
#include "log.h"
#include "reserve.h"
#include "locks.h"
#include "stock.h"
#include "writer.h"

typedef enum LifecycleOp
{
	OP_RELEASE,
	OP_PICK,
	OP_SHIP,
	OP_PICK_SHORT
} LifecycleOp;

/* Where each operation takes units from and puts them, and its event. */
static const struct
{
	const char *name;
	const char *from_name;
	IeColumn	from_col;		/* allocation columns */
	IeColumn	to_col;
	IeEventType event_type;
}			ops[] = {
	[OP_RELEASE] = {"release", "reserved", IE_COL_allocation_reserved, IE_COL_allocation_released, IE_EV_RELEASED},
	[OP_PICK] = {"pick", "reserved", IE_COL_allocation_reserved, IE_COL_allocation_picked, IE_EV_PICKED},
	[OP_SHIP] = {"ship", "picked", IE_COL_allocation_picked, IE_COL_allocation_shipped, IE_EV_SHIPPED},
	[OP_PICK_SHORT] = {"pick_short", "reserved", IE_COL_allocation_reserved, IE_COL_allocation_short, IE_EV_PICK_SHORT},
};

#define FROM_ATT(op) IE_ATTNUM(ops[op].from_col)
#define TO_ATT(op) IE_ATTNUM(ops[op].to_col)

/* A row read for replacement: its values (copied) and where it is. */
typedef struct RowCopy
{
	ItemPointerData tid;
	Datum	   *values;
	bool	   *nulls;
} RowCopy;

/* A reservation, locked for a change. */
typedef struct Reservation
{
	RowCopy		row;
	int64		id;
	text	   *channel;
	text	   *ref;
	text	   *sku;
	IeComponents comp;
} Reservation;

#define ROW_INT64(r, att) DatumGetInt64((r)->values[(att) - 1])
#define ROW_TEXT(r, att) DatumGetTextPP((r)->values[(att) - 1])

static void
row_copy(TupleTableSlot *slot, RowCopy *row)
{
	row->tid = slot->tts_tid;
	ie_slot_copy(slot, &row->values, &row->nulls);
}

static void
reservation_from_slot(TupleTableSlot *slot, Reservation *r)
{
	row_copy(slot, &r->row);
	r->id = ROW_INT64(&r->row, Anum_ie_reservation_id);
	r->channel = ROW_TEXT(&r->row, Anum_ie_reservation_channel);
	r->ref = ROW_TEXT(&r->row, Anum_ie_reservation_ref);
	r->sku = ROW_TEXT(&r->row, Anum_ie_reservation_sku);
}

/*
 * The reservation found through index (nkeys keys), read with snapshot:
 * SnapshotSelf under the reservation's sku locks (every writer of it holds one
 * of them, so none is in progress), an MVCC snapshot before them (a scan with
 * SnapshotSelf can miss a row whose update commits while it runs: the new
 * version not yet committed when its index entry is passed, the old one no
 * longer visible when its entry is reached).
 */
static bool
reservation_read(Oid index, int nkeys, const Datum *keys, const RegProcedure *procs,
				 Snapshot snapshot, Reservation *r)
{
	const IeCatalog *c = ie_catalog();
	Relation	rel = table_open(c->reservation_rel, AccessShareLock);
	Relation	idx = index_open(index, AccessShareLock);
	TupleTableSlot *slot = table_slot_create(rel, NULL);
	bool		found = ie_index_lookup(rel, idx, snapshot, nkeys, keys, procs, slot);

	if (found)
		reservation_from_slot(slot, r);
	ExecDropSingleTupleTableSlot(slot);
	index_close(idx, AccessShareLock);
	table_close(rel, AccessShareLock);
	return found;
}

static bool
reservation_read_by_id(int64 id, Snapshot snapshot, Reservation *r)
{
	Datum		k[1] = {Int64GetDatum(id)};

	return reservation_read(ie_catalog()->reservation_pkey, 1, k, ie_int8_key, snapshot, r);
}

/*
 * The row read before, fetched again by its TID with SnapshotSelf: found
 * when no one has updated or deleted it since (the usual case), else false
 * and the caller searches by key.
 */
static bool
reservation_reread(Reservation *r)
{
	const IeCatalog *c = ie_catalog();
	Relation	rel = table_open(c->reservation_rel, AccessShareLock);
	TupleTableSlot *slot = table_slot_create(rel, NULL);
	IeComponents comp = r->comp;
	bool		found = table_tuple_fetch_row_version(rel, &r->row.tid, SnapshotSelf, slot);

	if (found)
	{
		reservation_from_slot(slot, r);
		r->comp = comp;
	}
	ExecDropSingleTupleTableSlot(slot);
	table_close(rel, AccessShareLock);
	return found;
}

/* The allocations of a reservation, in the order they were made. */
static RowCopy *
allocations_read(int64 reservation_id, Snapshot snapshot, int *n)
{
	const IeCatalog *c = ie_catalog();
	Relation	rel = table_open(c->allocation_rel, AccessShareLock);
	Relation	idx = index_open(c->allocation_reservation_idx, AccessShareLock);
	TupleTableSlot *slot = table_slot_create(rel, NULL);
	Datum		k[1] = {Int64GetDatum(reservation_id)};
	IndexScanDesc scan = ie_index_scan_begin(rel, idx, snapshot, 1, k, ie_int8_key);
	int			max = 4;
	RowCopy    *rows = palloc(sizeof(RowCopy) * max);

	*n = 0;
	while (index_getnext_slot(scan, ForwardScanDirection, slot))
	{
		if (*n == max)
		{
			max *= 2;
			rows = repalloc(rows, sizeof(RowCopy) * max);
		}
		row_copy(slot, &rows[(*n)++]);
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	index_close(idx, AccessShareLock);
	table_close(rel, AccessShareLock);
	return rows;
}

/*
 * Appends to *tags (n of them, room for *max) the sku lock tags of a
 * reservation: its sku, or a kit and its components, and for a kit the skus
 * its allocations name (a component since taken out of the kit still has its
 * allocations moved). Its components must be loaded; snapshot as for
 * reservation_read().
 */
static void
reservation_sku_tags(const Reservation *r, Snapshot snapshot, LOCKTAG **tags, int *n, int *max)
{
	int			nallocs = 0;
	RowCopy    *allocs = r->comp.is_kit ? allocations_read(r->id, snapshot, &nallocs) : NULL;
	int			need = *n + r->comp.n + 1 + nallocs;
	Datum		k[1];

	if (need > *max)
	{
		*max = Max(need, 2 * *max);
		*tags = *tags ? repalloc(*tags, sizeof(LOCKTAG) * *max) : palloc(sizeof(LOCKTAG) * *max);
	}
	for (int i = 0; i < r->comp.n; i++)
	{
		k[0] = PointerGetDatum(r->comp.sku[i]);
		ie_lock_tag(IE_LOCK_SKU, 1, k, &(*tags)[(*n)++]);
	}
	if (r->comp.is_kit)
	{
		k[0] = PointerGetDatum(r->sku);
		ie_lock_tag(IE_LOCK_SKU, 1, k, &(*tags)[(*n)++]);
	}
	for (int i = 0; i < nallocs; i++)
	{
		k[0] = allocs[i].values[Anum_ie_allocation_sku - 1];
		ie_lock_tag(IE_LOCK_SKU, 1, k, &(*tags)[(*n)++]);
	}
}

/*
 * Finds the reservation (channel, ref), takes its sku locks, and reads it
 * again under them: what was read before the locks may have changed since.
 */
static void
lock_reservation(text *channel, text *ref, Reservation *r)
{
	Datum		keys[2] = {PointerGetDatum(channel), PointerGetDatum(ref)};
	int64		id;
	LOCKTAG    *tags = NULL;
	int			ntags = 0;
	int			max = 0;
	Snapshot	snapshot;
	bool		found;

	if (channel == NULL || ref == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", channel == NULL ? "channel" : "ref")));
	/* Before the sku locks: an MVCC snapshot, as fresh as it gets. */
	snapshot = RegisterSnapshot(GetLatestSnapshot());
	found = reservation_read(ie_catalog()->reservation_channel_ref_idx, 2, keys, ie_text_keys, snapshot, r);
	if (!found)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("no reservation \"%s\" on channel \"%s\"",
						text_to_cstring(ref), text_to_cstring(channel)),
				 errhint("Reserve the order line with inventory_events.reserve() first.")));
	id = r->id;
	ie_components(r->sku, &r->comp);
	reservation_sku_tags(r, snapshot, &tags, &ntags, &max);
	UnregisterSnapshot(snapshot);
	ie_lock_tags_in_order(tags, ntags);
	if (!reservation_reread(r) && !reservation_read_by_id(id, SnapshotSelf, r))
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("no reservation \"%s\" on channel \"%s\"",
						text_to_cstring(ref), text_to_cstring(channel)),
				 errdetail("It was deleted while this operation waited for it.")));
}

/*
 * Replaces the reservation row with r's values. Afterwards r's tid names the
 * old version: no caller writes the row twice.
 */
static void
reservation_write(Reservation *r)
{
	ie_row_update(ie_catalog()->reservation_rel, &r->row.tid, r->row.values, r->row.nulls);
}

static bool
allocation_at(const RowCopy *a, text *location)
{
	return location == NULL || ie_text_equal(ROW_TEXT(a, Anum_ie_allocation_location), location);
}

static int64
units_of_component(int64 units, int64 per_unit)
{
	int64		result;

	if (pg_mul_s64_overflow(units, per_unit, &result))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("bigint out of range")));
	return result;
}

/*
 * Checks that the reservation holds units ordered units (of every component
 * of a kit) in the operation's from column, at location if given.
 */
static void
check_held(const Reservation *r, LifecycleOp op, int64 units, text *location,
		   const RowCopy *allocs, int nallocs)
{
	bool	   *seen = palloc0(sizeof(bool) * Max(nallocs, 1));
	bool		any = false;

	for (int i = 0; i < nallocs; i++)
	{
		text	   *sku;
		int64		per_unit;
		int64		held = 0;
		int64		need;

		if (seen[i] || !allocation_at(&allocs[i], location))
			continue;
		any = true;
		sku = ROW_TEXT(&allocs[i], Anum_ie_allocation_sku);
		per_unit = ROW_INT64(&allocs[i], Anum_ie_allocation_per_unit);
		for (int j = i; j < nallocs; j++)
			if (!seen[j] && allocation_at(&allocs[j], location) &&
				ie_text_equal(ROW_TEXT(&allocs[j], Anum_ie_allocation_sku), sku))
			{
				seen[j] = true;
				held += ROW_INT64(&allocs[j], FROM_ATT(op));
			}
		need = units_of_component(units, per_unit);
		if (held >= need)
			continue;
		if (location)
			ereport(ERROR,
					(errcode(ERRCODE_IE_INSUFFICIENT_STOCK),
					 errmsg("reservation \"%s\" on channel \"%s\" holds %lld %s of sku \"%s\" at location \"%s\", not %lld",
							text_to_cstring(r->ref), text_to_cstring(r->channel), (long long) held,
							ops[op].from_name, text_to_cstring(sku), text_to_cstring(location),
							(long long) need)));
		ereport(ERROR,
				(errcode(ERRCODE_IE_INSUFFICIENT_STOCK),
				 errmsg("reservation \"%s\" on channel \"%s\" holds %lld %s of sku \"%s\", not %lld",
						text_to_cstring(r->ref), text_to_cstring(r->channel), (long long) held,
						ops[op].from_name, text_to_cstring(sku), (long long) need)));
	}
	if (any)
		return;
	if (location)
		ereport(ERROR,
				(errcode(ERRCODE_IE_INSUFFICIENT_STOCK),
				 errmsg("reservation \"%s\" on channel \"%s\" holds nothing at location \"%s\"",
						text_to_cstring(r->ref), text_to_cstring(r->channel), text_to_cstring(location))));
	ereport(ERROR,
			(errcode(ERRCODE_IE_INSUFFICIENT_STOCK),
			 errmsg("reservation \"%s\" on channel \"%s\" holds nothing to %s",
					text_to_cstring(r->ref), text_to_cstring(r->channel), ops[op].name)));
}

/*
 * Appends one lifecycle event on the prepared-event path, as
 * append_lifecycle() would; returns its id.
 */
static int64
append_lifecycle_event(IeEventType type, text *sku, text *location, text *lot, int64 qty,
					   text *source, text *key, text *ref, text *channel, text *reason,
					   IeSerialPool *serials)
{
	IeEventInput in;

	ie_input_init(&in);
	in.lifecycle = true;
	in.event_type = type;
	in.sku = sku;
	in.location = location;
	in.lot = VARSIZE_ANY_EXHDR(lot) > 0 ? lot : NULL;
	in.qty_isnull = false;
	in.qty = qty;
	in.source = source;
	in.idempotency_key = key;
	in.ref = ref;
	in.channel = channel;
	in.reason = reason;
	in.serials = serials;
	return ie_append_input(&in);
}

/*
 * Moves units ordered units (has_units false: all) of a reservation's
 * allocations from the operation's from column to its to column, at location
 * if given: per component, the allocations in the order they were made
 * (release: latest first). One event per allocation touched; returns the
 * movements (IeMovement *), in event order.
 */
static List *
move_allocations(Reservation *r, LifecycleOp op, bool has_units, int64 units, text *location,
				 text *reason, text *source, text *key, IeSerialPool *serials)
{
	const IeCatalog *c = ie_catalog();
	int			nallocs;
	RowCopy    *allocs;
	bool	   *done;
	int			n = 0;
	List	   *moves = NIL;

	if (has_units && units <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid quantity %lld", (long long) units),
				 errdetail("The quantity must be positive.")));
	allocs = allocations_read(r->id, SnapshotSelf, &nallocs);
	if (has_units)
		check_held(r, op, units, location, allocs, nallocs);

	/* Component by component, in the order the reservation took them. */
	done = palloc0(sizeof(bool) * Max(nallocs, 1));
	for (int first = 0; first < nallocs; first++)
	{
		text	   *sku = ROW_TEXT(&allocs[first], Anum_ie_allocation_sku);
		int64		want = 0;
		IeSerialPool *sku_serials = NULL;

		if (done[first])
			continue;
		if (has_units)
			want = units_of_component(units, ROW_INT64(&allocs[first], Anum_ie_allocation_per_unit));

		/* A kit's serials are its serialized components': none for the others. */
		if (serials)
		{
			text	   *base_uom;
			bool		lot_controlled;
			bool		serialized = false;

			if (ie_master_item(sku, &base_uom, &lot_controlled, &serialized) && serialized)
				sku_serials = serials;
		}
		/*
		 * Too few serials for the component's units is 22023 before any of
		 * its events: each event's plan alone would take a serial of another
		 * event's stream for one misplaced (IE009), depending on the order.
		 */
		if (sku_serials)
		{
			int64		left = has_units ? want : PG_INT64_MAX;
			int64		total = 0;

			for (int i = first; i < nallocs; i++)
			{
				RowCopy    *a = &allocs[i];
				int64		take;

				if (done[i] || !ie_text_equal(ROW_TEXT(a, Anum_ie_allocation_sku), sku))
					continue;
				take = ROW_INT64(a, FROM_ATT(op));
				if (take <= 0 || !allocation_at(a, location))
					continue;
				take = Min(take, left);
				left -= take;
				total += take;
			}
			if (sku_serials->n - sku_serials->nused < total)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("sku \"%s\" is serialized: the %s moves %lld units, one serial each: %d given",
								text_to_cstring(sku), ops[op].name, (long long) total,
								sku_serials->n - sku_serials->nused),
						 errdetail("A serialized item names one serial per base unit on every event that moves units."),
						 errhint("Give them in the serials argument.")));
		}
		for (int k = 0; k < nallocs; k++)
		{
			int			i = op == OP_RELEASE ? nallocs - 1 - k : k;
			RowCopy    *a = &allocs[i];
			int64		take;
			IeMovement *m;

			if (i < first || done[i] || !ie_text_equal(ROW_TEXT(a, Anum_ie_allocation_sku), sku))
				continue;
			done[i] = true;
			if (has_units && want == 0)
				continue;
			take = ROW_INT64(a, FROM_ATT(op));
			if (take <= 0 || !allocation_at(a, location))
				continue;
			if (has_units)
			{
				take = Min(take, want);
				want -= take;
			}
			n++;
			m = palloc0(sizeof(IeMovement));
			m->event_type = ops[op].event_type;
			m->sku = sku;
			m->location = ROW_TEXT(a, Anum_ie_allocation_location);
			m->lot = ROW_TEXT(a, Anum_ie_allocation_lot);
			m->qty = take;
			m->event_id = append_lifecycle_event(m->event_type, sku, m->location, m->lot, take,
												 source, ie_nth_key(key, n), r->ref, r->channel, reason,
												 sku_serials);
			a->values[FROM_ATT(op) - 1] = Int64GetDatum(ROW_INT64(a, FROM_ATT(op)) - take);
			a->values[TO_ATT(op) - 1] = Int64GetDatum(ROW_INT64(a, TO_ATT(op)) + take);
			ie_row_update(c->allocation_rel, &a->tid, a->values, a->nulls);
			moves = lappend(moves, m);
		}
	}
	return moves;
}

/*
 * Releases units (has_units false: all) of a locked reservation: its
 * backorder first, then its allocations, latest first.
 */
static List *
release_reservation(Reservation *r, bool has_units, int64 units, text *reason, text *source, text *key,
					int64 *cancelled)
{
	int64		backordered = ROW_INT64(&r->row, Anum_ie_reservation_backordered);
	int64		cancel = has_units ? Min(units, backordered) : backordered;

	*cancelled = cancel;
	if (cancel > 0)
	{
		r->row.values[Anum_ie_reservation_backordered - 1] = Int64GetDatum(backordered - cancel);
		r->row.values[Anum_ie_reservation_cancelled - 1] =
			Int64GetDatum(ROW_INT64(&r->row, Anum_ie_reservation_cancelled) + cancel);
		reservation_write(r);
	}
	if (has_units && units <= cancel)
		return NIL;
	return move_allocations(r, OP_RELEASE, has_units, units - cancel, NULL, reason, source, key, NULL);
}

/*
 * The operation recorded under (source, key) without an event (a release of
 * backordered units only), with the reservation it changed: false when there
 * is none. Read with SnapshotSelf: callers hold the key's lock, so a
 * committed first call is seen.
 */
static bool
operation_key_find(text *source, text *key, char **operation, int64 *reservation_id)
{
	const IeCatalog *c = ie_catalog();
	Datum		keys[2];
	Relation	rel;
	Relation	idx;
	TupleTableSlot *slot;
	bool		found;

	if (key == NULL || !OidIsValid(c->operation_key_rel))
		return false;
	keys[0] = PointerGetDatum(source ? source : cstring_to_text(""));
	keys[1] = PointerGetDatum(key);
	rel = table_open(c->operation_key_rel, AccessShareLock);
	idx = index_open(c->operation_key_pkey, AccessShareLock);
	slot = table_slot_create(rel, NULL);
	found = ie_index_lookup(rel, idx, SnapshotSelf, 2, keys, ie_text_keys, slot);
	if (found)
	{
		bool		isnull;

		*operation = TextDatumGetCString(slot_getattr(slot, Anum_ie_operation_key_operation, &isnull));
		*reservation_id = DatumGetInt64(slot_getattr(slot, Anum_ie_operation_key_reservation_id, &isnull));
	}
	ExecDropSingleTupleTableSlot(slot);
	index_close(idx, AccessShareLock);
	table_close(rel, AccessShareLock);
	return found;
}

/*
 * Was operation recorded under this key without an event? Asked by every
 * lifecycle operation after ie_replay_operation found no event, under the
 * key's lock it took. One recorded for another operation (a pick under a
 * release's key) or order line than (channel, ref) is a conflict (IE003),
 * as ie_replay_check's.
 */
static bool
operation_key_recorded(const char *operation, text *source, text *key, text *channel, text *ref)
{
	char	   *recorded;
	int64		reservation_id;
	const char *field = NULL;

	if (!operation_key_find(source, key, &recorded, &reservation_id))
		return false;
	if (strcmp(recorded, operation) != 0)
		field = "operation";
	else if (channel != NULL && ref != NULL)
	{
		Snapshot	snapshot = RegisterSnapshot(GetLatestSnapshot());
		Reservation r;

		if (!reservation_read_by_id(reservation_id, snapshot, &r) ||
			!ie_text_equal(r.channel, channel) || !ie_text_equal(r.ref, ref))
			field = "order line (channel and ref)";
		UnregisterSnapshot(snapshot);
	}
	if (field)
		ereport(ERROR,
				(errcode(ERRCODE_IE_IDEMPOTENCY_CONFLICT),
				 errmsg("idempotency key \"%s\" of source \"%s\" was already used for a different operation",
						text_to_cstring(key), source ? text_to_cstring(source) : ""),
				 errdetail("The release of reservation %lld recorded under it has a different %s.",
						   (long long) reservation_id, field),
				 errhint("Use a new idempotency key for a new operation.")));
	return true;
}

/*
 * ie_key_without_event_hook: the key of an append() or ingest() element that
 * has no event is still refused if a release recorded it without one.
 */
bool
ie_operation_key_used(text *source, text *key, int64 *reservation_id)
{
	char	   *operation;

	return operation_key_find(source, key, &operation, reservation_id);
}

/* Records the key of an operation that changed a reservation without an event. */
static void
record_operation_key(text *source, text *key, const char *operation, int64 reservation_id, int64 qty)
{
	const IeCatalog *c = ie_catalog();
	Datum	   *values;
	bool	   *nulls;

	if (key == NULL || !OidIsValid(c->operation_key_rel))
		return;
	ie_row_alloc(IE_TABLE_operation_key, &values, &nulls);
	values[Anum_ie_operation_key_source - 1] = PointerGetDatum(source ? source : cstring_to_text(""));
	values[Anum_ie_operation_key_idempotency_key - 1] = PointerGetDatum(key);
	values[Anum_ie_operation_key_operation - 1] = CStringGetTextDatum(operation);
	values[Anum_ie_operation_key_reservation_id - 1] = Int64GetDatum(reservation_id);
	values[Anum_ie_operation_key_qty - 1] = Int64GetDatum(qty);
	values[Anum_ie_operation_key_recorded_at - 1] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	ie_row_insert(c->operation_key_rel, values, nulls);
}

#define ARG_TEXT(n) (PG_ARGISNULL(n) ? NULL : PG_GETARG_TEXT_PP(n))

static void
check_positive(bool isnull, int64 qty)
{
	if (!isnull && qty <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid quantity %lld", (long long) qty),
				 errdetail("The quantity must be positive.")));
}

/*
 * inventory_events.release(channel, ref, qty, reason, source, idempotency_key)
 * returns setof movement
 */
PG_FUNCTION_INFO_V1(ie_release);
Datum
ie_release(PG_FUNCTION_ARGS)
{
	text	   *source = ARG_TEXT(4);
	text	   *key = ARG_TEXT(5);
	List	   *moves = NIL;
	Reservation r;
	IeReplayExpect expect = {IE_EV_BIT(IE_EV_RELEASED), NULL, ARG_TEXT(0), ARG_TEXT(1)};

	ie_write_call_start("inventory_events.release()");
	ie_init_materialized_srf(fcinfo);
	check_positive(PG_ARGISNULL(2), PG_ARGISNULL(2) ? 0 : PG_GETARG_INT64(2));
	if (!ie_replay_operation(source, key, &expect, &moves) &&
		!operation_key_recorded("release", source, key, ARG_TEXT(0), ARG_TEXT(1)))
	{
		int64		cancelled;

		lock_reservation(ARG_TEXT(0), ARG_TEXT(1), &r);
		moves = release_reservation(&r, !PG_ARGISNULL(2), PG_ARGISNULL(2) ? 0 : PG_GETARG_INT64(2),
									ARG_TEXT(3), source, key, &cancelled);
		/* Backordered units only: no event carries the key, this row does. */
		if (moves == NIL && cancelled > 0)
			record_operation_key(source, key, "release", r.id, cancelled);
	}
	ie_emit_movements(fcinfo, moves);
	return (Datum) 0;
}

/* pick() and ship(): units from reserved to picked, or from picked to shipped. */
static Datum
pick_or_ship(FunctionCallInfo fcinfo, LifecycleOp op, text *location, text *source, text *key,
			 IeSerialPool *serials)
{
	List	   *moves = NIL;
	Reservation r;
	IeReplayExpect expect = {IE_EV_BIT(ops[op].event_type), NULL, ARG_TEXT(0), ARG_TEXT(1)};

	ie_write_call_start(op == OP_PICK ? "inventory_events.pick()" : "inventory_events.ship()");
	ie_init_materialized_srf(fcinfo);
	if (!ie_replay_operation(source, key, &expect, &moves) &&
		!operation_key_recorded(op == OP_PICK ? "pick" : "ship", source, key, ARG_TEXT(0), ARG_TEXT(1)))
	{
		lock_reservation(ARG_TEXT(0), ARG_TEXT(1), &r);
		moves = move_allocations(&r, op, !PG_ARGISNULL(2), PG_ARGISNULL(2) ? 0 : PG_GETARG_INT64(2),
								 location, NULL, source, key, serials);
		ie_serial_pool_finish(serials);
	}
	ie_emit_movements(fcinfo, moves);
	return (Datum) 0;
}

/* inventory_events.pick(channel, ref, qty, location, source, idempotency_key, serials) */
PG_FUNCTION_INFO_V1(ie_pick);
Datum
ie_pick(PG_FUNCTION_ARGS)
{
	/* serials: from 0.3.0 on */
	IeSerialPool *serials = PG_NARGS() > 6 && !PG_ARGISNULL(6) ?
		ie_serial_pool_from_array(PG_GETARG_ARRAYTYPE_P(6)) : NULL;

	return pick_or_ship(fcinfo, OP_PICK, ARG_TEXT(3), ARG_TEXT(4), ARG_TEXT(5), serials);
}

/* inventory_events.ship(channel, ref, qty, source, idempotency_key, serials) */
PG_FUNCTION_INFO_V1(ie_ship);
Datum
ie_ship(PG_FUNCTION_ARGS)
{
	/* serials: from 0.3.0 on */
	IeSerialPool *serials = PG_NARGS() > 5 && !PG_ARGISNULL(5) ?
		ie_serial_pool_from_array(PG_GETARG_ARRAYTYPE_P(5)) : NULL;

	return pick_or_ship(fcinfo, OP_SHIP, NULL, ARG_TEXT(3), ARG_TEXT(4), serials);
}

/*
 * inventory_events.pick_short(channel, ref, qty, location, reason, source,
 * idempotency_key): the reserved units were not there. They leave the books
 * (reserved -> outside), an exception is recorded per event, and where the
 * channel allows backorders the line's shortfall is backordered and filled at
 * once if stock is there.
 */
PG_FUNCTION_INFO_V1(ie_pick_short);
Datum
ie_pick_short(PG_FUNCTION_ARGS)
{
	text	   *location = ARG_TEXT(3);
	text	   *reason = ARG_TEXT(4);
	text	   *source = ARG_TEXT(5);
	text	   *key = ARG_TEXT(6);
	IeReplayExpect expect = {IE_EV_BIT(IE_EV_PICK_SHORT), NULL, ARG_TEXT(0), ARG_TEXT(1)};
	List	   *moves = NIL;
	ListCell   *lc;
	Reservation r;
	IeChannel	ch;
	int64		qty;

	ie_write_call_start("inventory_events.pick_short()");
	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("qty must not be null")));
	qty = PG_GETARG_INT64(2);
	ie_init_materialized_srf(fcinfo);
	if (ie_replay_operation(source, key, &expect, &moves) ||
		operation_key_recorded("pick_short", source, key, ARG_TEXT(0), ARG_TEXT(1)))
	{
		ie_emit_movements(fcinfo, moves);
		return (Datum) 0;
	}
	lock_reservation(ARG_TEXT(0), ARG_TEXT(1), &r);
	moves = move_allocations(&r, OP_PICK_SHORT, true, qty, location, reason, source, key, NULL);
	foreach(lc, moves)
	{
		IeMovement *m = lfirst(lc);
		char	   *detail;

		if (VARSIZE_ANY_EXHDR(m->lot) > 0)
			detail = psprintf("%lld short of lot \"%s\" (event %lld)", (long long) m->qty,
							  text_to_cstring(m->lot), (long long) m->event_id);
		else
			detail = psprintf("%lld short (event %lld)", (long long) m->qty, (long long) m->event_id);
		if (reason)
			detail = psprintf("%s: %s", detail, text_to_cstring(reason));
		ie_record_exception("pick_short", m->sku, m->location, r.channel, r.ref, detail);
	}
	/*
	 * The row read under the sku locks is still the current one: a pick
	 * short moves allocations only, and raises no ATP that could fill a
	 * backorder.
	 */
	if (!r.comp.is_kit && ie_channel_load(r.channel, &ch) && ch.allow_backorders)
	{
		r.row.values[Anum_ie_reservation_backordered - 1] =
			Int64GetDatum(ROW_INT64(&r.row, Anum_ie_reservation_backordered) + qty);
		reservation_write(&r);
		(void) ie_fill_backorders(r.sku);
	}
	ie_emit_movements(fcinfo, moves);
	return (Datum) 0;
}

/* Does a reservation still hold something expiry would release? */
static bool
holds_releasable(const Reservation *r)
{
	int			n;
	RowCopy    *allocs;

	if (ROW_INT64(&r->row, Anum_ie_reservation_backordered) > 0)
		return true;
	allocs = allocations_read(r->id, SnapshotSelf, &n);
	for (int i = 0; i < n; i++)
		if (ROW_INT64(&allocs[i], Anum_ie_allocation_reserved) > 0)
			return true;
	return false;
}

/* The worker_error rows of expiry: a failure recorded, a channel cleared. */
static void
expiry_error(text *channel, ErrorData *edata, text *ref)
{
	Oid			types[5] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID};
	Datum		args[5];
	char		nulls[5] = {' ', ' ', ' ', ' ', ' '};

	args[0] = CStringGetTextDatum("expire");
	args[1] = PointerGetDatum(channel);
	args[2] = CStringGetTextDatum(unpack_sql_state(edata->sqlerrcode));
	args[3] = CStringGetTextDatum(edata->message ? edata->message : "");
	args[4] = CStringGetTextDatum(psprintf("Reservation \"%s\" of channel \"%s\".",
										   text_to_cstring(ref), text_to_cstring(channel)));
	if (SPI_execute_with_args("SELECT inventory_events.record_worker_error($1, $2, $3, $4, $5)",
							  5, types, args, nulls, false, 0) < 0)
		elog(ERROR, "could not record an expiry failure");
}

static void
expiry_clear(text *channel)
{
	Oid			types[1] = {TEXTOID};
	Datum		args[1] = {PointerGetDatum(channel)};

	if (SPI_execute_with_args("UPDATE inventory_events.worker_error w SET cleared_at = clock_timestamp()"
							  " WHERE w.task = 'expire' AND w.channel = $1 AND w.cleared_at IS NULL",
							  1, types, args, NULL, false, 0) < 0)
		elog(ERROR, "could not clear expiry failures");
}

/* The channels of one expiry run and how their last reservation went. */
typedef struct ChannelOutcome
{
	text	   *channel;
	bool		ok;
} ChannelOutcome;

static void
note_outcome(List **outcomes, text *channel, bool ok)
{
	ListCell   *lc;
	ChannelOutcome *o;

	foreach(lc, *outcomes)
	{
		o = lfirst(lc);
		if (ie_text_equal(o->channel, channel))
		{
			o->ok = ok;
			return;
		}
	}
	o = palloc(sizeof(ChannelOutcome));
	o->channel = channel;
	o->ok = ok;
	*outcomes = lappend(*outcomes, o);
}

/* A reservation released by expire_reservations(), in a subtransaction. */
typedef struct ExpiringReservation
{
	Reservation *r;
	text	   *reason;
} ExpiringReservation;

static void
expire_one(void *arg)
{
	ExpiringReservation *e = arg;
	int64		cancelled;

	(void) release_reservation(e->r, false, 0, e->reason, NULL, NULL, &cancelled);
}

/* Set by the worker, which runs expiry: see expire_batch. */
bool		ie_expiry_skips_busy = false;

/* One batch of expire_reservations(): what it did, and where it stopped. */
typedef struct ExpiryBatch
{
	int64		after_id;		/* due reservations after this id */
	int			limit;			/* at most this many */
	int			found;			/* due reservations read */
	int			tried;			/* of them locked and tried */
	int			locks;			/* distinct inventory locks taken (worker: against the limit) */
	bool		full;			/* the worker ran into the per-call lock limit */
	int			expired;
	List	   *outcomes;		/* ChannelOutcome per channel */
} ExpiryBatch;

/*
 * Releases the due reservations after b->after_id, oldest first, at most
 * b->limit of them, and advances b->after_id past them. Every sku involved
 * is locked at once in the global order; read before the locks, so with an
 * MVCC snapshot (reservation_read). A reservation not found then is not
 * touched. The worker (ie_expiry_skips_busy) takes each reservation's locks
 * only if they are free, and leaves one whose sku another transaction holds
 * to its next run: waiting, it held the skus it had already locked, and
 * reservations of those waited behind it for as long as the other
 * transaction took.
 */
static void
expire_batch(ExpiryBatch *b, text *reason, MemoryContext caller)
{
	MemoryContext per_line;
	ExpiringReservation expiring;
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	int64	   *due;
	int			ndue;
	LOCKTAG    *tags = NULL;
	int			ntags = 0;
	int			maxtags = 0;
	bool	   *locked;
	Snapshot	snapshot;

	/* The due reservations, oldest first: one query, not one per line. */
	{
		Oid			types[2] = {INT4OID, INT8OID};
		Datum		args[2] = {Int32GetDatum(b->limit), Int64GetDatum(b->after_id)};

		if (SPI_execute_with_args("SELECT x.id FROM inventory_events.reservation x"
								  " WHERE x.expires_at <= now() AND x.id > $2"
								  "   AND (x.backordered > 0 OR EXISTS (SELECT FROM inventory_events.allocation a"
								  "                                       WHERE a.reservation_id = x.id AND a.reserved > 0))"
								  " ORDER BY x.id LIMIT $1",
								  2, types, args, NULL, true, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not read the due reservations");
	}
	ndue = (int) SPI_processed;
	b->found = ndue;
	b->tried = 0;
	due = palloc(sizeof(int64) * Max(ndue, 1));
	for (int i = 0; i < ndue; i++)
	{
		bool		isnull;

		due[i] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
	}
	SPI_freetuptable(SPI_tuptable);
	if (ndue == 0)
		return;
	b->after_id = due[ndue - 1];

	locked = palloc0(sizeof(bool) * ndue);
	snapshot = RegisterSnapshot(GetLatestSnapshot());
	for (int i = 0; i < ndue && !b->full; i++)
	{
		Reservation r;

		if (!reservation_read_by_id(due[i], snapshot, &r))
			continue;
		ie_components(r.sku, &r.comp);
		if (ie_expiry_skips_busy)
			ntags = 0;
		reservation_sku_tags(&r, snapshot, &tags, &ntags, &maxtags);
		if (!ie_expiry_skips_busy)
			locked[i] = true;
		else if (b->locks + ntags > ie_lock_limit())
		{
			/* The rest for the next run: a call over the limit would be refused. */
			b->full = true;
		}
		else
		{
			int			taken = ie_lock_tags_if_free(tags, ntags);

			locked[i] = (taken >= 0);
			b->locks += Max(taken, 0);
		}
	}
	UnregisterSnapshot(snapshot);
	if (!ie_expiry_skips_busy)
		ie_lock_tags_in_order(tags, ntags);

	per_line = AllocSetContextCreate(caller, "inventory_events expiry", ALLOCSET_DEFAULT_SIZES);
	for (int i = 0; i < ndue; i++)
	{
		Reservation r;
		ErrorData  *edata;
		text	   *channel;

		CHECK_FOR_INTERRUPTS();
		MemoryContextReset(per_line);
		MemoryContextSwitchTo(per_line);
		if (locked[i])
			b->tried++;
		/* Picked, released or extended meanwhile? Then nothing (more) goes. */
		if (!locked[i] || !reservation_read_by_id(due[i], SnapshotSelf, &r) ||
			r.row.nulls[Anum_ie_reservation_expires_at - 1] ||
			DatumGetTimestampTz(r.row.values[Anum_ie_reservation_expires_at - 1]) > now ||
			!holds_releasable(&r))
			continue;
		ie_components(r.sku, &r.comp);
		channel = MemoryContextAlloc(caller, VARSIZE_ANY(r.channel));
		memcpy(channel, r.channel, VARSIZE_ANY(r.channel));

		/*
		 * Only a property of this reservation's data (classes 22, 23, IE) is
		 * isolated; a cancel, a lock timeout, a deadlock or an internal error
		 * fails the run, which the worker retries.
		 */
		expiring.r = &r;
		expiring.reason = reason;
		edata = ie_subxact_run(expire_one, &expiring, per_line, ie_is_data_error);

		MemoryContextSwitchTo(caller);
		if (edata)
		{
			expiry_error(channel, edata, ROW_TEXT(&r.row, Anum_ie_reservation_ref));
			FreeErrorData(edata);
		}
		else
			b->expired++;
		note_outcome(&b->outcomes, channel, edata == NULL);
	}
	MemoryContextSwitchTo(caller);
	MemoryContextDelete(per_line);
}

/*
 * inventory_events.expire_reservations(max_reservations) returns integer:
 * releases, with reason expired, up to max_reservations reservations whose
 * expires_at has passed and that still hold reserved or backordered units.
 * Each in its own subtransaction: one that fails is recorded in worker_error
 * (task expire, its channel) and the others go on.
 */
PG_FUNCTION_INFO_V1(ie_expire_reservations);
Datum
ie_expire_reservations(PG_FUNCTION_ARGS)
{
	int32		max = PG_ARGISNULL(0) ? PG_INT32_MAX : PG_GETARG_INT32(0);
	MemoryContext caller = CurrentMemoryContext;
	ExpiryBatch b = {0};
	MemoryContext batch_cxt;
	ListCell   *lc;
	text	   *reason = cstring_to_text("expired");

	ie_write_call_start("inventory_events.expire_reservations()");
	if (max < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_reservations must not be negative")));
	if (max == 0)
		PG_RETURN_INT32(0);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	/*
	 * One batch of max. The worker goes on past the reservations it left
	 * (their skus busy) until it has tried max or none is left: else a
	 * busy sku with max due reservations of its own held up every other
	 * expiry until it was free.
	 */
	b.limit = max;
	batch_cxt = AllocSetContextCreate(caller, "inventory_events expiry batch", ALLOCSET_DEFAULT_SIZES);
	for (;;)
	{
		MemoryContextReset(batch_cxt);
		MemoryContextSwitchTo(batch_cxt);
		expire_batch(&b, reason, caller);
		if (!ie_expiry_skips_busy || b.full || b.found < b.limit || b.tried >= b.limit)
			break;
		b.limit -= b.tried;
	}
	MemoryContextSwitchTo(caller);
	MemoryContextDelete(batch_cxt);
	foreach(lc, b.outcomes)
	{
		ChannelOutcome *o = lfirst(lc);

		if (o->ok)
			expiry_clear(o->channel);
	}
	SPI_finish();
	PG_RETURN_INT32(b.expired);
}
