/*
 * reserve.c
 *		Reservations: reserve(), reserve_lines(), backorders, exceptions.
 *
 * A reservation is an order line (channel, ref) for a quantity of a sku or a
 * kit. reserve() takes, in the global lock order (locks.h), the idempotency
 * lock of the line, the sku lock of every sku involved (a kit's components),
 * then the stream lock of every stream of those skus at the channel's
 * sourcing locations. Every operation that can raise a sku's ATP takes the
 * same sku lock first (ie_prepare_event), so under these locks nothing can
 * change what the channel shows except this transaction: the check against
 * channel availability and the reserved events that follow are one step.
 *
 * Sourcing: a line names a location, or the channel's sourcing locations are
 * tried by priority (lower first), then most ATP, then code; within a
 * location, lots first-expiry-first-out. Without splits a line is served
 * from one location. A shortage is refused (IE005), or, where the channel
 * allows backorders, the rest is recorded as a backorder, which the events
 * that raise the sku's ATP fill first come first served
 * (ie_fill_backorders, called by ie_insert_event under the sku lock).
 *
 * All rows are read with SnapshotSelf: under the locks above, every writer of
 * them has committed (or is us).
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/nbtree.h"
#include "storage/bufmgr.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "catalog.h"
#include "channel.h"
#include "errors.h"
#include "fields.h"
#include "log.h"
#include "reserve.h"
#include "locks.h"
#include "stock.h"
#include "writer.h"

/* One order line to reserve. */
typedef struct ReserveLine
{
	int			ordinal;
	text	   *channel;
	text	   *sku;
	int64		qty;
	text	   *ref;
	text	   *location;		/* NULL: the channel's sourcing rules */
	bool		has_expiry;
	TimestampTz expires_at;
	text	   *source;			/* default: the channel */
	text	   *key;			/* default: the ref */
	text	   *channel_sku;	/* the item named by the channel's identifier */
	text	   *listed_as;		/* its identifier on a channel with listings */
	IeChannel	ch;				/* its rules, with the listing's overrides */
	IeComponents comp;
	Snapshot	listings;		/* listings are read in: taken after the locks */
} ReserveLine;

/* One planned allocation. */
typedef struct Pick
{
	text	   *sku;
	text	   *location;
	text	   *lot;
	int64		per_unit;
	int64		qty;
} Pick;

typedef struct AllocPlan
{
	int			n;
	int			max;
	Pick	   *picks;
} AllocPlan;

/* One row of what a reservation call did. */
typedef struct Outcome
{
	int			ordinal;
	int64		reservation_id;
	const char *status;			/* reserved, backordered, refused */
	text	   *sku;
	text	   *location;
	text	   *lot;
	int64		qty;
	int64		event_id;		/* 0: none */
	bool		replayed;
	const char *sqlstate;		/* refused only */
	char	   *message;		/* refused only */
} Outcome;

/* An event raised a sku's ATP: its backorders come first. */
static void
atp_raised(text *sku)
{
	(void) ie_fill_backorders(sku);
}

void
ie_reserve_init(void)
{
	ie_atp_raised_hook = atp_raised;
	ie_key_without_event_hook = ie_operation_key_used;
}

static char *
cstr(const text *t)
{
	return t ? text_to_cstring(t) : "";
}

/*
 * The sku of the reservation already made under the line's (source, key),
 * when name is that sku or the identifier it was reserved under; else NULL.
 * Read without the line's locks (replay() checks the whole line under
 * them), so in a snapshot: the row's backorder is filled or released under
 * the sku lock alone, and never HOT (backordered is in a partial index's
 * predicate), so read with SnapshotSelf it could be missed in both versions
 * while a fill committed, and a retry resolved through the listings of now.
 */
static text *
replayed_sku(const ReserveLine *l, text *name, Snapshot snapshot)
{
	const IeCatalog *c = ie_catalog();
	Datum		keys[2] = {PointerGetDatum(l->source), PointerGetDatum(l->key)};
	/* channel_sku: from 0.3.0 on */
	const int	atts[2] = {Anum_ie_reservation_sku, Anum_ie_reservation_channel_sku};
	int			natts = Anum_ie_reservation_channel_sku != InvalidAttrNumber ? 2 : 1;
	Datum		v[2];
	bool		null[2] = {false, true};
	text	   *stored;

	if (!name || !ie_lookup_row_as(c->reservation_rel, c->reservation_idempotency_idx, snapshot, 2,
								   keys, ie_text_keys, natts, atts, v, null))
		return NULL;
	stored = DatumGetTextPP(v[0]);
	if (ie_text_equal(name, stored) || (!null[1] && ie_text_equal(name, DatumGetTextPP(v[1]))))
		return DatumGetTextPCopy(PointerGetDatum(stored));
	return NULL;
}

/*
 * The sku of a line. reserve_lines()' channel_sku names the item by its
 * identifier on the channel. A sku on a channel with listings may be either
 * the channel's identifier of an item or ours: the identifier is tried first
 * (a channel speaks its own), and a value that is both the channel's
 * identifier of one item and our sku of another item the channel lists is
 * an error rather than a guess.
 */
static void
resolve_sku_in(ReserveLine *l, Snapshot snapshot)
{
	text	   *mapped;
	text	   *base_uom;
	bool		lot_controlled;
	IeChannel	rules;
	IeListing	own;

	/* A retry names the item as the first call did, whatever the listings say now. */
	mapped = replayed_sku(l, l->channel_sku ? l->channel_sku : l->sku, snapshot);
	if (mapped)
	{
		l->sku = mapped;
		return;
	}
	if (l->channel_sku)
	{
		/* On a channel without listings, the channel's identifier is our sku. */
		mapped = l->ch.has_listings ? ie_listing_sku(&l->ch, l->channel_sku, snapshot) : l->channel_sku;
		if (mapped == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_IE_NOT_LISTED),
					 errmsg("channel \"%s\" lists no item as \"%s\"", cstr(l->channel), cstr(l->channel_sku)),
					 errhint("A channel's identifiers are the channel_sku of its rows in inventory_events.channel_item.")));
		if (l->sku && !ie_text_equal(l->sku, mapped))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("channel_sku \"%s\" of channel \"%s\" is sku \"%s\", not \"%s\"",
							cstr(l->channel_sku), cstr(l->channel), cstr(mapped), cstr(l->sku)),
					 errhint("Give the sku or the channel_sku of a line, or both of the same item.")));
		l->sku = mapped;
		return;
	}
	mapped = ie_listing_sku(&l->ch, l->sku, snapshot);
	if (mapped == NULL || ie_text_equal(mapped, l->sku))
		return;
	if (ie_master_item(l->sku, &base_uom, &lot_controlled, NULL) &&
		ie_channel_listing(&l->ch, l->sku, snapshot, &rules, &own))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("sku \"%s\" is ambiguous on channel \"%s\"", cstr(l->sku), cstr(l->channel)),
				 errdetail("It is the channel's identifier of sku \"%s\", and our sku of an item the channel lists as \"%s\".",
						   cstr(mapped), cstr(own.channel_sku)),
				 errhint("Name the item by its identifier on the channel.")));
	l->channel_sku = l->sku;
	l->sku = mapped;
}

/* resolve_sku_in, read before the line's locks: in a snapshot of the latest state. */
static void
resolve_sku(ReserveLine *l)
{
	Snapshot	snapshot;

	/* Our sku on a channel without listings: nothing to resolve, nothing read. */
	if (!l->ch.has_listings && l->channel_sku == NULL)
		return;
	snapshot = RegisterSnapshot(GetLatestSnapshot());
	resolve_sku_in(l, snapshot);
	UnregisterSnapshot(snapshot);
}

/* Validates a line and reads its channel and components. */
static void
line_load(ReserveLine *l)
{
	const char *missing = l->channel == NULL ? "channel" :
		(l->sku == NULL && l->channel_sku == NULL) ? "sku" : l->ref == NULL ? "ref" : NULL;

	if (missing)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", missing)));
	if (l->qty <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid reservation quantity " INT64_FORMAT, l->qty),
				 errdetail("The quantity must be positive.")));
	ie_channel_require(l->channel, &l->ch);
	if (l->source == NULL)
		l->source = l->channel;
	if (l->key == NULL)
		l->key = l->ref;
	resolve_sku(l);
	ie_sku_components(l->sku, &l->comp);
	if (l->location)
	{
		bool		sources = false;

		for (int i = 0; i < l->ch.nsources; i++)
			sources |= ie_text_equal(l->ch.sources[i].location, l->location);
		if (!sources)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("location \"%s\" is not a sourcing location of channel \"%s\"",
							text_to_cstring(l->location), text_to_cstring(l->channel)),
					 errhint("Add it to inventory_events.channel_location, or reserve without a location.")));
	}
}

/* The locations a line may take stock from. */
static bool
line_uses(const ReserveLine *l, int source)
{
	return l->location == NULL || ie_text_equal(l->ch.sources[source].location, l->location);
}

/*
 * Appends the lock tags of the streams of sku at every sourcing location of
 * line l's channel, not only those it may take stock from: what the channel
 * shows, which the line is checked against, sums them all. Read without the
 * lock of its streams (only the line's own location's were taken, for a line
 * that names one), a location whose stock row was replaced (not HOT) while
 * it was read counted twice or not at all: a line was accepted past what the
 * channel showed, or refused, and a backorder fill on a channel without
 * splits filled too much or nothing (reserve_pinned.spec).
 */
static List *
line_stream_tags(const ReserveLine *l, text *sku, List *tags)
{
	Snapshot	snapshot = NULL;	/* one for all locations, if any is read */

	for (int s = 0; s < l->ch.nsources; s++)
		tags = ie_stream_tags(sku, l->ch.sources[s].location, &snapshot, tags);
	if (snapshot != NULL)
		UnregisterSnapshot(snapshot);
	return tags;
}

/* Takes the locks of a list of tags, in the global order. */
static void
lock_tag_list(List *tags)
{
	LOCKTAG    *array;
	int			n = 0;
	ListCell   *lc;

	if (tags == NIL)
		return;
	array = palloc(sizeof(LOCKTAG) * list_length(tags));
	foreach(lc, tags)
		array[n++] = *(LOCKTAG *) lfirst(lc);
	ie_lock_tags_in_order(array, n);
}

/*
 * Takes every lock the lines need in the global order: idempotency keys, then
 * skus, then the streams of those skus at their channels' sourcing locations.
 * The streams are listed under the sku locks: no stream of a locked sku can
 * gain ATP meanwhile, so any stream created later has nothing to reserve.
 * Returns a snapshot taken after the locks (registered; the caller
 * unregisters it), in which the lines read their listings.
 */
static Snapshot
lock_lines(ReserveLine *lines, int n)
{
	Snapshot	listings;
	List	   *streams = NIL;
	LOCKTAG    *tags;
	int			ntags = 0;
	int			max = 0;

	for (int i = 0; i < n; i++)
		max += 1 + lines[i].comp.n;
	tags = palloc(sizeof(LOCKTAG) * max);
	for (int i = 0; i < n; i++)
	{
		Datum		k[2] = {PointerGetDatum(lines[i].source), PointerGetDatum(lines[i].key)};

		ie_lock_tag(IE_LOCK_IDEMPOTENCY, 2, k, &tags[ntags++]);
		for (int c = 0; c < lines[i].comp.n; c++)
		{
			Datum		s[1] = {PointerGetDatum(lines[i].comp.sku[c])};

			ie_lock_tag(IE_LOCK_SKU, 1, s, &tags[ntags++]);
		}
	}
	ie_lock_tags_in_order(tags, ntags);

	for (int i = 0; i < n; i++)
		for (int c = 0; c < lines[i].comp.n; c++)
			streams = line_stream_tags(&lines[i], lines[i].comp.sku[c], streams);
	lock_tag_list(streams);

	listings = RegisterSnapshot(GetLatestSnapshot());
	for (int i = 0; i < n; i++)
		lines[i].listings = listings;
	return listings;
}

static void
plan_add(AllocPlan *plan, text *sku, text *location, text *lot, int64 per_unit, int64 qty)
{
	if (plan->n == plan->max)
	{
		plan->max = plan->max ? plan->max * 2 : 4;
		plan->picks = plan->picks ? repalloc(plan->picks, sizeof(Pick) * plan->max) :
			palloc(sizeof(Pick) * plan->max);
	}
	plan->picks[plan->n].sku = sku;
	plan->picks[plan->n].location = location;
	plan->picks[plan->n].lot = lot;
	plan->picks[plan->n].per_unit = per_unit;
	plan->picks[plan->n].qty = qty;
	plan->n++;
}

/* Takes qty (<= the location's ATP) from a location's lots, first expiry first. */
static void
take_from_location(AllocPlan *plan, text *sku, int64 per_unit, const IeLocationStock *loc, int64 qty)
{
	for (int i = 0; i < loc->nlots && qty > 0; i++)
	{
		const IeLotStock *l = &loc->lots[i];
		int64		take;

		if (l->expired || l->available <= 0)
			continue;
		take = Min(qty, l->available);
		plan_add(plan, sku, loc->location, l->lot, per_unit, take);
		qty -= take;
	}
	Assert(qty == 0);
}

/*
 * Plans up to want units of one sku over the candidate locations (locs, in
 * source order; only those the line uses): by priority, then most ATP. With
 * split, greedily; without, from the first location holding all of it, or
 * (partial) the one holding most. Returns the units planned.
 */
static int64
plan_sku(AllocPlan *plan, const ReserveLine *l, text *sku, int64 per_unit,
		 const IeLocationStock *locs, int64 want, bool partial)
{
	int		   *order = palloc(sizeof(int) * Max(l->ch.nsources, 1));
	int			n = 0;
	int64		planned = 0;

	for (int s = 0; s < l->ch.nsources; s++)
	{
		int			j;

		if (!line_uses(l, s) || locs[s].atp <= 0)
			continue;
		/* insertion: sources arrive by (priority, code); order by (priority, atp desc) */
		for (j = n; j > 0; j--)
		{
			const IeLocationStock *prev = &locs[order[j - 1]];

			if (prev->priority < locs[s].priority ||
				(prev->priority == locs[s].priority && prev->atp >= locs[s].atp))
				break;
			order[j] = order[j - 1];
		}
		order[j] = s;
		n++;
	}
	if (l->ch.allow_split)
	{
		for (int i = 0; i < n && planned < want; i++)
		{
			int64		take = Min(locs[order[i]].atp, want - planned);

			take_from_location(plan, sku, per_unit, &locs[order[i]], take);
			planned += take;
		}
		return planned;
	}
	for (int i = 0; i < n; i++)
		if (locs[order[i]].atp >= want)
		{
			take_from_location(plan, sku, per_unit, &locs[order[i]], want);
			return want;
		}
	if (partial && n > 0)
	{
		int			best = order[0];

		for (int i = 1; i < n; i++)
			if (locs[order[i]].atp > locs[best].atp)
				best = order[i];
		planned = Min(locs[best].atp, want);
		take_from_location(plan, sku, per_unit, &locs[best], planned);
	}
	return planned;
}

/* Appends the reserved events of a plan and records them as allocations. */
static void
apply_plan(const AllocPlan *plan, int64 reservation_id, text *channel, text *ref, text *source,
		   List **outcomes, int ordinal)
{
	const IeCatalog *c = ie_catalog();

	for (int i = 0; i < plan->n; i++)
	{
		const Pick *pk = &plan->picks[i];
		IeEventInput in;
		IePreparedEvent p;
		int64		event_id;
		Datum	   *values;
		bool	   *nulls;

		ie_input_init(&in);
		in.sku = pk->sku;
		in.location = pk->location;
		in.lot = VARSIZE_ANY_EXHDR(pk->lot) > 0 ? pk->lot : NULL;
		in.event_type = IE_EV_RESERVED;
		in.lifecycle = true;
		in.qty_isnull = false;
		in.qty = pk->qty;
		in.source = source;
		in.channel = channel;
		in.ref = ref;
		ie_prepare_event(&in, &p);
		event_id = ie_insert_event(&p);

		ie_row_alloc(IE_TABLE_allocation, &values, &nulls);
		values[Anum_ie_allocation_id - 1] = Int64GetDatum(ie_next_identity(c->allocation_rel));
		values[Anum_ie_allocation_reservation_id - 1] = Int64GetDatum(reservation_id);
		values[Anum_ie_allocation_sku - 1] = PointerGetDatum(pk->sku);
		values[Anum_ie_allocation_location - 1] = PointerGetDatum(pk->location);
		values[Anum_ie_allocation_lot - 1] = PointerGetDatum(pk->lot);
		values[Anum_ie_allocation_per_unit - 1] = Int64GetDatum(pk->per_unit);
		values[Anum_ie_allocation_qty - 1] = Int64GetDatum(pk->qty);
		values[Anum_ie_allocation_reserved - 1] = Int64GetDatum(pk->qty);
		values[Anum_ie_allocation_picked - 1] = Int64GetDatum(0);
		values[Anum_ie_allocation_shipped - 1] = Int64GetDatum(0);
		values[Anum_ie_allocation_released - 1] = Int64GetDatum(0);
		values[Anum_ie_allocation_short - 1] = Int64GetDatum(0);
		values[Anum_ie_allocation_event_id - 1] = Int64GetDatum(event_id);
		values[Anum_ie_allocation_created_at - 1] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
		ie_row_insert(c->allocation_rel, values, nulls);

		if (outcomes)
		{
			Outcome    *o = palloc0(sizeof(Outcome));

			o->ordinal = ordinal;
			o->reservation_id = reservation_id;
			o->status = "reserved";
			o->sku = pk->sku;
			o->location = pk->location;
			o->lot = pk->lot;
			o->qty = pk->qty;
			o->event_id = event_id;
			*outcomes = lappend(*outcomes, o);
		}
	}
}

static Outcome *
backorder_outcome(int ordinal, int64 reservation_id, text *sku, int64 qty, bool replayed)
{
	Outcome    *o = palloc0(sizeof(Outcome));

	o->ordinal = ordinal;
	o->reservation_id = reservation_id;
	o->status = "backordered";
	o->sku = sku;
	o->qty = qty;
	o->replayed = replayed;
	return o;
}

/*
 * A retry of a reservation already made under the same (source, key): the
 * same line must be asked for; its allocations and backorder are reported.
 */
static bool
replay(const ReserveLine *l, List **outcomes)
{
	const IeCatalog *c = ie_catalog();
	Datum		keys[2] = {PointerGetDatum(l->source), PointerGetDatum(l->key)};
	Relation	rel = table_open(c->reservation_rel, AccessShareLock);
	Relation	idx = index_open(c->reservation_idempotency_idx, AccessShareLock);
	TupleTableSlot *slot = table_slot_create(rel, NULL);
	bool		found = ie_index_lookup(rel, idx, SnapshotSelf, 2, keys, ie_text_keys, slot);
	int64		id = 0;
	int64		backordered = 0;

	if (found)
	{
		const char *field = NULL;
		bool	   *isnull = slot->tts_isnull;
		Datum	   *v = slot->tts_values;

		slot_getallattrs(slot);
		id = DatumGetInt64(v[Anum_ie_reservation_id - 1]);
		backordered = DatumGetInt64(v[Anum_ie_reservation_backordered - 1]);
		if (!ie_text_equal(l->channel, DatumGetTextPP(v[Anum_ie_reservation_channel - 1])))
			field = "channel";
		else if (!ie_text_equal(l->ref, DatumGetTextPP(v[Anum_ie_reservation_ref - 1])))
			field = "ref";
		else if (!ie_text_equal(l->sku, DatumGetTextPP(v[Anum_ie_reservation_sku - 1])))
			field = "sku";
		else if (l->qty != DatumGetInt64(v[Anum_ie_reservation_qty - 1]))
			field = "qty";
		else if (!ie_text_equal(l->location, isnull[Anum_ie_reservation_location - 1] ? NULL :
							 DatumGetTextPP(v[Anum_ie_reservation_location - 1])))
			field = "location";
		if (field)
			ereport(ERROR,
					(errcode(ERRCODE_IE_IDEMPOTENCY_CONFLICT),
					 errmsg("idempotency key \"%s\" of source \"%s\" was already used for a different reservation",
							cstr(l->key), cstr(l->source)),
					 errdetail("Reservation %lld has the same key and a different %s.", (long long) id, field),
					 errhint("Use a new idempotency key (by default the ref) for a new order line.")));
	}
	ExecDropSingleTupleTableSlot(slot);
	index_close(idx, AccessShareLock);
	table_close(rel, AccessShareLock);
	if (!found)
		return false;

	/* What it took, in the order it took it. */
	rel = table_open(c->allocation_rel, AccessShareLock);
	idx = index_open(c->allocation_reservation_idx, AccessShareLock);
	slot = table_slot_create(rel, NULL);
	{
		Datum		k[1] = {Int64GetDatum(id)};
		IndexScanDesc scan = ie_index_scan_begin(rel, idx, SnapshotSelf, 1, k, ie_int8_key);

		while (index_getnext_slot(scan, ForwardScanDirection, slot))
		{
			Outcome    *o = palloc0(sizeof(Outcome));

			slot_getallattrs(slot);
			o->ordinal = l->ordinal;
			o->reservation_id = id;
			o->status = "reserved";
			o->sku = DatumGetTextPCopy(slot->tts_values[Anum_ie_allocation_sku - 1]);
			o->location = DatumGetTextPCopy(slot->tts_values[Anum_ie_allocation_location - 1]);
			o->lot = DatumGetTextPCopy(slot->tts_values[Anum_ie_allocation_lot - 1]);
			o->qty = DatumGetInt64(slot->tts_values[Anum_ie_allocation_qty - 1]);
			o->event_id = DatumGetInt64(slot->tts_values[Anum_ie_allocation_event_id - 1]);
			o->replayed = true;
			*outcomes = lappend(*outcomes, o);
		}
		index_endscan(scan);
	}
	ExecDropSingleTupleTableSlot(slot);
	index_close(idx, AccessShareLock);
	table_close(rel, AccessShareLock);
	if (backordered > 0)
		*outcomes = lappend(*outcomes, backorder_outcome(l->ordinal, id, l->sku, backordered, true));
	return true;
}

/*
 * The reservation row references its channel, item and location: lock them
 * as a foreign key check would, so that a concurrent DELETE of that master
 * data waits for this reservation and then fails instead of orphaning it.
 */
static void
lock_referenced(const ReserveLine *l)
{
	const IeCatalog *c = ie_catalog();
	const struct
	{
		const char *what;
		Oid			rel;
		Oid			pkey;
		text	   *value;
	}			refs[3] = {
		{"channel", c->channel_rel, c->channel_pkey, l->channel},
		{"sku", c->item_rel, c->item_pkey, l->sku},
		{"location", c->location_rel, c->location_pkey, l->location},	/* may be null */
	};

	for (size_t i = 0; i < lengthof(refs); i++)
	{
		Datum		k[1] = {PointerGetDatum(refs[i].value)};

		if (refs[i].value != NULL &&
			!ie_lock_referenced_row(refs[i].rel, refs[i].pkey, 1, k, ie_text_keys))
			ereport(ERROR,
					(errcode(ERRCODE_FOREIGN_KEY_VIOLATION),
					 errmsg("unknown %s \"%s\"", refs[i].what, text_to_cstring(refs[i].value)),
					 errdetail("It was deleted while the reservation was being made.")));
	}
}

static int64
insert_reservation(const ReserveLine *l, int64 backordered)
{
	const IeCatalog *c = ie_catalog();
	Datum	   *values;
	bool	   *nulls;
	int64		id = ie_next_identity(c->reservation_rel);

	ie_row_alloc(IE_TABLE_reservation, &values, &nulls);
	values[Anum_ie_reservation_id - 1] = Int64GetDatum(id);
	values[Anum_ie_reservation_channel - 1] = PointerGetDatum(l->channel);
	values[Anum_ie_reservation_ref - 1] = PointerGetDatum(l->ref);
	values[Anum_ie_reservation_sku - 1] = PointerGetDatum(l->sku);
	values[Anum_ie_reservation_qty - 1] = Int64GetDatum(l->qty);
	values[Anum_ie_reservation_backordered - 1] = Int64GetDatum(backordered);
	values[Anum_ie_reservation_cancelled - 1] = Int64GetDatum(0);
	values[Anum_ie_reservation_location - 1] = PointerGetDatum(l->location);
	nulls[Anum_ie_reservation_location - 1] = (l->location == NULL);
	values[Anum_ie_reservation_expires_at - 1] = TimestampTzGetDatum(l->expires_at);
	nulls[Anum_ie_reservation_expires_at - 1] = !l->has_expiry;
	values[Anum_ie_reservation_source - 1] = PointerGetDatum(l->source);
	values[Anum_ie_reservation_idempotency_key - 1] = PointerGetDatum(l->key);
	values[Anum_ie_reservation_created_at - 1] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	if (Anum_ie_reservation_channel_sku != InvalidAttrNumber)
	{
		/* As publications store it: null where the channel knows our sku. */
		bool		ours = l->listed_as == NULL || ie_text_equal(l->listed_as, l->sku);

		values[Anum_ie_reservation_channel_sku - 1] = ours ? (Datum) 0 : PointerGetDatum(l->listed_as);
		nulls[Anum_ie_reservation_channel_sku - 1] = ours;
	}
	lock_referenced(l);
	ie_row_insert(c->reservation_rel, values, nulls);
	return id;
}

/* A refused line of reserve_lines(): its outcome, with the SQLSTATE it would have raised. */
static void
refused_outcome(const ReserveLine *l, const char *sqlstate, const char *msg, const char *detail,
				List **outcomes)
{
	Outcome    *o = palloc0(sizeof(Outcome));

	o->ordinal = l->ordinal;
	o->status = "refused";
	o->sku = l->sku;
	o->location = l->location;
	o->qty = l->qty;
	o->sqlstate = sqlstate;
	o->message = psprintf("%s: %s", msg, detail);
	*outcomes = lappend(*outcomes, o);
}

/*
 * Does the line's channel sell its sku? Then the line takes the listing's
 * rules and identifier (true); else *listing says why not (false).
 */
static bool
listing_applied(ReserveLine *l, IeListing *listing)
{
	IeChannel	rules;

	/* The locks are held: a first listing committed since line_load() counts. */
	l->ch.has_listings = ie_channel_has_listings(l->channel, l->listings);
	if (!ie_channel_listing(&l->ch, l->sku, l->listings, &rules, listing))
		return false;
	l->ch = rules;
	l->listed_as = listing->channel_sku;
	return true;
}

/*
 * listing_applied, or the line is refused (IE008): raised when
 * raise_refusal, else reported as a refused outcome.
 */
static bool
line_listed(ReserveLine *l, bool raise_refusal, List **outcomes)
{
	IeListing	listing;
	char	   *msg;
	const char *detail;

	if (listing_applied(l, &listing))
		return true;
	msg = psprintf("sku \"%s\" is not listed on channel \"%s\"", cstr(l->sku), cstr(l->channel));
	detail = listing.channel_sku ? "Its listing there is delisted (listed is false)." :
		"The channel has listings, and sells only the skus they list.";
	if (raise_refusal)
		ereport(ERROR,
				(errcode(ERRCODE_IE_NOT_LISTED),
				 errmsg("%s", msg),
				 errdetail("%s", detail),
				 errhint("List it in inventory_events.channel_item, or reserve it on another channel.")));
	refused_outcome(l, "IE008", msg, detail, outcomes);
	return false;
}

/*
 * Reserves one line (its locks held). A shortage without backorders raises
 * IE005 when raise_refusal, else is recorded as an exception and reported as
 * a refused outcome; either way nothing of the line is applied.
 */
static void
reserve_line(ReserveLine *l, bool raise_refusal, List **outcomes)
{
	IeLocationStock **locs = palloc(sizeof(IeLocationStock *) * l->comp.n);
	int64		shown = PG_INT64_MAX;
	int64		location_atp = -1;
	int64		planned = 0;
	AllocPlan		plan = {0};

	if (replay(l, outcomes))
		return;
	if (!line_listed(l, raise_refusal, outcomes))
		return;

	/* What the channel shows for the line's sku or kit, now. */
	for (int i = 0; i < l->comp.n; i++)
	{
		int64		pool;
		int64		vbuf;
		int64		avail;

		locs[i] = palloc(sizeof(IeLocationStock) * Max(l->ch.nsources, 1));
		avail = ie_sku_channel_availability(&l->ch, l->comp.sku[i], SnapshotSelf, locs[i], &pool, &vbuf);
		shown = Min(shown, avail / l->comp.per_unit[i]);
		if (l->location && !l->comp.is_kit)
			for (int s = 0; s < l->ch.nsources; s++)
				if (line_uses(l, s))
					location_atp = locs[i][s].atp;
	}

	if (!l->comp.is_kit)
		planned = plan_sku(&plan, l, l->sku, 1, locs[0], Min(l->qty, shown), l->ch.allow_backorders);
	else if (l->qty <= shown)
	{
		/* A kit is all of its components or nothing. */
		planned = l->qty;
		for (int i = 0; i < l->comp.n && planned > 0; i++)
			if (plan_sku(&plan, l, l->comp.sku[i], l->comp.per_unit[i], locs[i],
						 l->qty * l->comp.per_unit[i], false) < l->qty * l->comp.per_unit[i])
				planned = 0;
	}

	if (planned < l->qty && (l->comp.is_kit || !l->ch.allow_backorders))
	{
		char	   *msg = psprintf("reservation of " INT64_FORMAT " of %s \"%s\" on channel \"%s\" refused",
								   l->qty, l->comp.is_kit ? "kit" : "sku", cstr(l->sku), cstr(l->channel));
		char	   *detail;

		if (l->qty > shown)
			detail = psprintf("The channel shows " INT64_FORMAT ".", shown);
		else if (location_atp >= 0)
			detail = psprintf("Location \"%s\" has " INT64_FORMAT " to promise.", cstr(l->location), location_atp);
		else
			detail = psprintf("The channel shows " INT64_FORMAT ", but no single sourcing location holds "
							  INT64_FORMAT " and the channel does not allow splits.", shown, l->qty);
		if (raise_refusal)
			ereport(ERROR,
					(errcode(ERRCODE_IE_RESERVATION_REFUSED),
					 errmsg("%s", msg),
					 errdetail("%s", detail),
					 errhint("Reserve less, or allow backorders on the channel.")));
		ie_record_exception("oversell_refused", l->sku, l->location, l->channel, l->ref,
							psprintf("%s: %s", msg, detail));
		refused_outcome(l, "IE005", msg, detail, outcomes);
		return;
	}

	{
		int64		id = insert_reservation(l, l->qty - planned);

		apply_plan(&plan, id, l->channel, l->ref, l->source, outcomes, l->ordinal);
		if (planned < l->qty)
			*outcomes = lappend(*outcomes, backorder_outcome(l->ordinal, id, l->sku, l->qty - planned, false));
	}
}

/* Where a reservation took its first allocation, or NULL. */
static text *
first_allocation_location(int64 reservation_id)
{
	const IeCatalog *c = ie_catalog();
	Relation	rel = table_open(c->allocation_rel, AccessShareLock);
	Relation	idx = index_open(c->allocation_reservation_idx, AccessShareLock);
	TupleTableSlot *slot = table_slot_create(rel, NULL);
	Datum		k[1] = {Int64GetDatum(reservation_id)};
	text	   *location = NULL;

	if (ie_index_lookup(rel, idx, SnapshotSelf, 1, k, ie_int8_key, slot))
	{
		bool		isnull;

		location = DatumGetTextPCopy(slot_getattr(slot, Anum_ie_allocation_location, &isnull));
	}
	ExecDropSingleTupleTableSlot(slot);
	index_close(idx, AccessShareLock);
	table_close(rel, AccessShareLock);
	return location;
}

/* Has this btree never held an entry (no root page)? */
static bool
btree_is_empty(Relation idx)
{
	Buffer		buf = ReadBuffer(idx, BTREE_METAPAGE);
	bool		empty;

	LockBuffer(buf, BUFFER_LOCK_SHARE);
	empty = BTPageGetMeta(BufferGetPage(buf))->btm_root == P_NONE;
	UnlockReleaseBuffer(buf);
	return empty;
}

/*
 * Fills the open backorders of a sku, oldest first, as far as each one's
 * channel now shows stock (and, without splits, as far as the location that
 * serves the line holds it). Takes the sku lock (ie_prepare_event already holds
 * it when an event raised the sku's ATP). Returns the units reserved.
 */
int64
ie_fill_backorders(text *sku)
{
	const IeCatalog *c = ie_catalog();
	Relation	rel;
	Relation	idx;
	TupleTableSlot *slot;
	IndexScanDesc scan;
	Datum		keys[1] = {PointerGetDatum(sku)};
	List	   *ids = NIL;
	ListCell   *lc;
	int64		filled = 0;
	MemoryContext cxt;
	MemoryContext old;
	Snapshot	listings;

	ie_lock_sku(sku);

	/*
	 * The queue: (sku, id) where backordered > 0. A btree that has never
	 * held an entry has no root page: then there is no backorder at all (one
	 * under our sku lock would have its entry in already), and every receipt
	 * of a database that uses no backorders stops here. Asked of the
	 * metapage in shared buffers, not of the file's size (a system call).
	 */
	idx = index_open(c->reservation_backorder_idx, AccessShareLock);
	if (btree_is_empty(idx))
	{
		index_close(idx, AccessShareLock);
		return 0;
	}
	rel = table_open(c->reservation_rel, AccessShareLock);
	slot = table_slot_create(rel, NULL);
	scan = ie_index_scan_begin(rel, idx, SnapshotSelf, 1, keys, ie_text_keys);
	while (index_getnext_slot(scan, ForwardScanDirection, slot))
	{
		bool		isnull;
		int64	   *id = palloc(sizeof(int64));

		*id = DatumGetInt64(slot_getattr(slot, Anum_ie_reservation_id, &isnull));
		ids = lappend(ids, id);
	}
	index_endscan(scan);
	index_close(idx, AccessShareLock);
	if (ids == NIL)
	{
		ExecDropSingleTupleTableSlot(slot);
		table_close(rel, AccessShareLock);
		return 0;
	}

	cxt = AllocSetContextCreate(CurrentMemoryContext, "inventory_events backorder", ALLOCSET_DEFAULT_SIZES);
	listings = RegisterSnapshot(GetLatestSnapshot());
	idx = index_open(c->reservation_pkey, AccessShareLock);
	foreach(lc, ids)
	{
		Datum		k[1] = {Int64GetDatum(*(int64 *) lfirst(lc))};
		ReserveLine l;
		Datum	   *values;
		bool	   *nulls;
		int64		backordered;
		int64		pool;
		int64		vbuf;
		int64		shown;
		IeLocationStock *locs;
		AllocPlan		plan = {0};
		int64		planned;
		IeListing	listing;

		CHECK_FOR_INTERRUPTS();
		MemoryContextReset(cxt);
		old = MemoryContextSwitchTo(cxt);
		if (!ie_index_lookup(rel, idx, SnapshotSelf, 1, k, ie_int8_key, slot))
		{
			MemoryContextSwitchTo(old);
			continue;
		}
		ie_slot_copy(slot, &values, &nulls);
		backordered = DatumGetInt64(values[Anum_ie_reservation_backordered - 1]);
		if (backordered <= 0 ||
			(!nulls[Anum_ie_reservation_expires_at - 1] &&
			 DatumGetTimestampTz(values[Anum_ie_reservation_expires_at - 1]) <= GetCurrentTransactionStartTimestamp()))
		{
			MemoryContextSwitchTo(old);
			continue;
		}

		memset(&l, 0, sizeof(l));
		l.listings = listings;
		l.channel = DatumGetTextPP(values[Anum_ie_reservation_channel - 1]);
		l.sku = sku;
		l.ref = DatumGetTextPP(values[Anum_ie_reservation_ref - 1]);
		l.location = nulls[Anum_ie_reservation_location - 1] ? NULL :
			DatumGetTextPP(values[Anum_ie_reservation_location - 1]);
		l.source = DatumGetTextPP(values[Anum_ie_reservation_source - 1]);
		if (!ie_channel_load(l.channel, &l.ch))
		{
			MemoryContextSwitchTo(old);
			continue;
		}

		/*
		 * Filled as reserve() would serve the line now: with the listing's
		 * rules (its buffers, allocation and cap), and not at all while the
		 * channel does not sell the sku (delisted: the backorder waits).
		 */
		if (!listing_applied(&l, &listing))
		{
			MemoryContextSwitchTo(old);
			continue;
		}

		/*
		 * Without splits a line is served from one location: a backorder
		 * that already has stock somewhere waits for that location.
		 */
		if (l.location == NULL && !l.ch.allow_split)
			l.location = first_allocation_location(DatumGetInt64(values[Anum_ie_reservation_id - 1]));

		/* The channel's streams of this sku (under the sku lock, as reserve does): all of them. */
		lock_tag_list(line_stream_tags(&l, sku, NIL));

		locs = palloc(sizeof(IeLocationStock) * Max(l.ch.nsources, 1));
		shown = ie_sku_channel_availability(&l.ch, sku, SnapshotSelf, locs, &pool, &vbuf);
		planned = plan_sku(&plan, &l, sku, 1, locs, Min(backordered, shown), true);
		if (planned > 0)
		{
			ItemPointerData tid = slot->tts_tid;

			apply_plan(&plan, DatumGetInt64(values[Anum_ie_reservation_id - 1]), l.channel, l.ref, l.source,
					   NULL, 0);
			values[Anum_ie_reservation_backordered - 1] = Int64GetDatum(backordered - planned);
			ie_row_update(c->reservation_rel, &tid, values, nulls);
			filled += planned;
		}
		MemoryContextSwitchTo(old);
	}
	MemoryContextDelete(cxt);
	UnregisterSnapshot(listings);
	index_close(idx, AccessShareLock);
	ExecDropSingleTupleTableSlot(slot);
	table_close(rel, AccessShareLock);
	return filled;
}

/* Rows of reserve() and reserve_lines(). */
static void
emit_outcomes(ReturnSetInfo *rsinfo, List *outcomes, bool with_ordinal)
{
	ListCell   *lc;

	foreach(lc, outcomes)
	{
		Outcome    *o = lfirst(lc);
		Datum		values[11];
		bool		nulls[11];
		int			a = 0;

		memset(nulls, 0, sizeof(nulls));
		if (with_ordinal)
			values[a++] = Int32GetDatum(o->ordinal);
		nulls[a] = (o->reservation_id == 0);
		values[a++] = Int64GetDatum(o->reservation_id);
		values[a++] = CStringGetTextDatum(o->status);
		values[a++] = PointerGetDatum(o->sku);
		nulls[a] = (o->location == NULL);
		values[a++] = PointerGetDatum(o->location);
		nulls[a] = (o->lot == NULL);
		values[a++] = PointerGetDatum(o->lot);
		values[a++] = Int64GetDatum(o->qty);
		nulls[a] = (o->event_id == 0);
		values[a++] = Int64GetDatum(o->event_id);
		values[a++] = BoolGetDatum(o->replayed);
		if (with_ordinal)
		{
			nulls[a] = (o->message == NULL);
			values[a++] = CStringGetTextDatum(o->message ? o->sqlstate : "");
			nulls[a] = (o->message == NULL);
			values[a++] = o->message ? CStringGetTextDatum(o->message) : (Datum) 0;
		}
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
}

#define ARG_TEXT(n) (PG_ARGISNULL(n) ? NULL : PG_GETARG_TEXT_PP(n))

/*
 * inventory_events.reserve(channel, sku, qty, ref, location, expires_at,
 *     source, idempotency_key)
 */
PG_FUNCTION_INFO_V1(ie_reserve);
Datum
ie_reserve(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	ReserveLine l;
	List	   *outcomes = NIL;
	Snapshot	listings;

	ie_write_call_start("inventory_events.reserve()");
	memset(&l, 0, sizeof(l));
	l.ordinal = 1;
	l.channel = ARG_TEXT(0);
	l.sku = ARG_TEXT(1);
	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("qty must not be null")));
	l.qty = PG_GETARG_INT64(2);
	l.ref = ARG_TEXT(3);
	l.location = ARG_TEXT(4);
	l.has_expiry = !PG_ARGISNULL(5);
	if (l.has_expiry)
		l.expires_at = PG_GETARG_TIMESTAMPTZ(5);
	l.source = ARG_TEXT(6);
	l.key = ARG_TEXT(7);

	ie_init_materialized_srf(fcinfo);
	line_load(&l);
	listings = lock_lines(&l, 1);
	reserve_line(&l, true, &outcomes);
	UnregisterSnapshot(listings);
	emit_outcomes(rsinfo, outcomes, false);
	return (Datum) 0;
}

/* A text field of a line: JSON null is absent. */
static text *
line_text(const FieldValue *fv, const char *field)
{
	return fv->json->type == jbvNull ? NULL : ie_field_text(fv, field);
}

/*
 * One line of reserve_lines(): a JSON object read field by field with the
 * parser ingest() uses (fields.c), so that both take the same values (a qty
 * as a JSON number or a string of digits, JSON null as absent).
 */
static void
parse_line(JsonbValue *elem, int ordinal, ReserveLine *l)
{
	JsonbIterator *it;
	JsonbValue	k;
	JsonbValue	v;
	JsonbIteratorToken tok;
	bool		has_qty = false;

	memset(l, 0, sizeof(*l));
	l->ordinal = ordinal;
	if (elem->type != jbvBinary || !JsonContainerIsObject(elem->val.binary.data))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("line %d is not a JSON object", ordinal)));
	it = JsonbIteratorInit(elem->val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
	{
		char	   *key;
		FieldValue	fv = {&v, (Datum) 0, InvalidOid};

		if (tok != WJB_KEY)
			continue;
		key = pnstrdup(k.val.string.val, k.val.string.len);
		(void) JsonbIteratorNext(&it, &v, true);
		if (strcmp(key, "channel") == 0)
			l->channel = line_text(&fv, key);
		else if (strcmp(key, "sku") == 0)
			l->sku = line_text(&fv, key);
		else if (strcmp(key, "channel_sku") == 0)
			l->channel_sku = line_text(&fv, key);
		else if (strcmp(key, "ref") == 0)
			l->ref = line_text(&fv, key);
		else if (strcmp(key, "location") == 0)
			l->location = line_text(&fv, key);
		else if (strcmp(key, "source") == 0)
			l->source = line_text(&fv, key);
		else if (strcmp(key, "idempotency_key") == 0)
			l->key = line_text(&fv, key);
		else if (strcmp(key, "qty") == 0)
		{
			has_qty = (v.type != jbvNull);
			if (has_qty)
				l->qty = ie_field_int64(&fv, key);
		}
		else if (strcmp(key, "expires_at") == 0)
		{
			l->has_expiry = (v.type != jbvNull);
			if (l->has_expiry)
				l->expires_at = ie_field_timestamptz(&fv, key);
		}
		else
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown field \"%s\" in line %d", key, ordinal),
					 errhint("Fields are channel, sku or channel_sku, qty, ref, location, expires_at, source and idempotency_key.")));
	}
	if (!has_qty)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("qty must not be null"),
				 errdetail("Line %d has no qty.", ordinal)));
}

/*
 * inventory_events.reserve_lines(lines jsonb): every line's locks first, in
 * the global order, then each line; a shortage is a refused line (and an
 * exception) rather than an error.
 */
PG_FUNCTION_INFO_V1(ie_reserve_lines);
Datum
ie_reserve_lines(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Jsonb	   *lines;
	ReserveLine *l;
	int			n;
	List	   *outcomes = NIL;
	Snapshot	listings;

	ie_write_call_start("inventory_events.reserve_lines()");

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("lines must not be null")));
	lines = PG_GETARG_JSONB_P(0);
	if (!JB_ROOT_IS_ARRAY(lines) || JB_ROOT_IS_SCALAR(lines))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("lines must be a JSON array of line objects")));
	ie_init_materialized_srf(fcinfo);
	n = JsonContainerSize(&lines->root);
	l = palloc0(sizeof(ReserveLine) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		parse_line(getIthJsonbValueFromContainer(&lines->root, i), i + 1, &l[i]);
		line_load(&l[i]);
	}
	listings = lock_lines(l, n);
	for (int i = 0; i < n; i++)
		reserve_line(&l[i], false, &outcomes);
	UnregisterSnapshot(listings);
	emit_outcomes(rsinfo, outcomes, true);
	return (Datum) 0;
}

/* inventory_events.fill_backorders(sku text default null) returns bigint */
PG_FUNCTION_INFO_V1(ie_fill_backorders_sql);
Datum
ie_fill_backorders_sql(PG_FUNCTION_ARGS)
{
	const IeCatalog *c;
	List	   *skus = NIL;
	LOCKTAG    *tags;
	int			n = 0;
	int64		filled = 0;
	ListCell   *lc;

	ie_write_call_start("inventory_events.fill_backorders()");
	c = ie_catalog();

	if (!PG_ARGISNULL(0))
		PG_RETURN_INT64(ie_fill_backorders(PG_GETARG_TEXT_PP(0)));

	/* Every sku with a backorder: lock them all in order, then fill each. */
	{
		Relation	rel = table_open(c->reservation_rel, AccessShareLock);
		Relation	idx = index_open(c->reservation_backorder_idx, AccessShareLock);
		TupleTableSlot *slot = table_slot_create(rel, NULL);
		IndexScanDesc scan = index_beginscan(rel, idx, GetActiveSnapshot(), 0, 0);

		index_rescan(scan, NULL, 0, NULL, 0);
		while (index_getnext_slot(scan, ForwardScanDirection, slot))
		{
			bool		isnull;
			text	   *sku = DatumGetTextPCopy(slot_getattr(slot, Anum_ie_reservation_sku, &isnull));

			if (skus == NIL || !ie_text_equal(llast(skus), sku))
				skus = lappend(skus, sku);
		}
		index_endscan(scan);
		ExecDropSingleTupleTableSlot(slot);
		index_close(idx, AccessShareLock);
		table_close(rel, AccessShareLock);
	}
	if (skus == NIL)
		PG_RETURN_INT64(0);
	tags = palloc(sizeof(LOCKTAG) * list_length(skus));
	foreach(lc, skus)
	{
		Datum		k[1] = {PointerGetDatum(lfirst(lc))};

		ie_lock_tag(IE_LOCK_SKU, 1, k, &tags[n++]);
	}
	ie_lock_tags_in_order(tags, n);
	foreach(lc, skus)
		filled += ie_fill_backorders(lfirst(lc));
	PG_RETURN_INT64(filled);
}

/*
 * Locks, in the global order, one key per element of a text array: the sku
 * itself (IE_LOCK_SKU), or the stream (sku, element, lot) (IE_LOCK_STREAM).
 */
static void
lock_array(uint16 kind, ArrayType *arr, Datum sku, Datum lot)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	LOCKTAG    *tags;
	int			ntags = 0;

	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	tags = palloc(sizeof(LOCKTAG) * Max(n, 1));
	for (int i = 0; i < n; i++)
		if (!nulls[i])
		{
			Datum		k[3] = {sku, elems[i], lot};

			if (kind == IE_LOCK_SKU)
				ie_lock_tag(kind, 1, &elems[i], &tags[ntags++]);
			else
				ie_lock_tag(kind, 3, k, &tags[ntags++]);
		}
	ie_lock_tags_in_order(tags, ntags);
}

/*
 * inventory_events.lock_skus(text[]): sku locks in the global order. Kept for
 * the PL/pgSQL lifecycle of the SQL objects of 0.1.0 and 0.2.0, which a
 * database runs until ALTER EXTENSION ... UPDATE; 0.3.0 has no such function.
 */
PG_FUNCTION_INFO_V1(ie_lock_skus);
Datum
ie_lock_skus(PG_FUNCTION_ARGS)
{
	lock_array(IE_LOCK_SKU, PG_GETARG_ARRAYTYPE_P(0), (Datum) 0, (Datum) 0);
	PG_RETURN_VOID();
}

/*
 * inventory_events.lock_streams(sku, locations text[], lot): the stream locks
 * of a multi-stream operation (a transfer), in the global order. Kept for the
 * SQL objects before 0.3.0, as lock_skus.
 */
PG_FUNCTION_INFO_V1(ie_lock_streams);
Datum
ie_lock_streams(PG_FUNCTION_ARGS)
{
	lock_array(IE_LOCK_STREAM, PG_GETARG_ARRAYTYPE_P(1), PG_GETARG_DATUM(0), PG_GETARG_DATUM(2));
	PG_RETURN_VOID();
}
