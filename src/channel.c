/*
 * channel.c
 *		Channel rules and availability.
 *
 * A channel shows, for a sku, its rules applied over a pool: the ATP of its
 * sourcing locations (available of unexpired lots minus safety stock, never
 * below zero per location). The rules: the allocation share of the pool
 * (rounded down), minus the fixed buffer, the percentage buffer (of the
 * share, rounded up) and the velocity buffer, at most the cap, never below
 * zero. A kit shows the least, over its components, of what each component's
 * availability supplies.
 *
 * Everything is read from the stock rows (one per stream), so the cost does
 * not depend on the length of the event log. Readers that must not be
 * overtaken (reserve) call this holding the sku lock and the stream locks,
 * and read the stock with SnapshotSelf, which under those locks is the
 * latest committed state plus our own changes. Readers without them (the
 * SQL functions: the statement's snapshot; the publisher: its step's; the
 * streams listed before they are locked: the latest) read the stock and the
 * reservations in an MVCC snapshot: with SnapshotSelf a stock row whose
 * update (not HOT) commits while its location is scanned is seen in both
 * versions or in neither. The master data that is cached (a channel with its
 * sourcing rows, the hierarchy and its listings flag; a kit's components) is
 * read in one snapshot of the latest state per load, and kept only if no
 * invalidation arrived since that snapshot was taken (ie_master_read_begin,
 * catalog.c): a snapshot taken before the invalidations that locking the
 * relations takes in would otherwise fill the cache with rows older than a
 * change it has been told of. The listing of a sku and ie_channel_has_listings
 * are read from the table at each use, in the caller's snapshot.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "executor/executor.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "catalog/pg_collation.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/varlena.h"
#include "utils/fmgroids.h"
#include "utils/numeric.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "catalog.h"
#include "channel.h"
#include "locks.h"
#include "stock.h"
#include "writer.h"

static int64
interval_us(Datum d)
{
	Interval   *i = DatumGetIntervalP(d);

	return i->time + ((int64) i->month * DAYS_PER_MONTH + i->day) * USECS_PER_DAY;
}

static bool
numeric_equals(Datum n, int64 v)
{
	return DatumGetBool(DirectFunctionCall2(numeric_eq, n, NumericGetDatum(int64_to_numeric(v))));
}

static int
source_cmp(const void *a, const void *b)
{
	const IeSource *x = a;
	const IeSource *y = b;

	if (x->priority != y->priority)
		return x->priority < y->priority ? -1 : 1;
	return varstr_cmp(VARDATA_ANY(x->location), VARSIZE_ANY_EXHDR(x->location),
					  VARDATA_ANY(y->location), VARSIZE_ANY_EXHDR(y->location), C_COLLATION_OID);
}

/*
 * Has the channel any listing in snapshot (a row in channel_item; false
 * before 0.3.0)? Read from the table, not the cache, by whoever must not be
 * overtaken: a listing's invalidation is sent after its transaction became
 * visible, and no lock orders the two, so a cached channel can still say "no
 * listings" for a moment after the first listing committed. Listings are
 * read in an MVCC snapshot (the caller's, taken after its locks): no lock
 * orders a reader against a change of them, and with SnapshotSelf a listing
 * replaced (not HOT) while it was read was missed in both versions, and a
 * line reserved past the listing's cap.
 */
bool
ie_channel_has_listings(text *code, Snapshot snapshot)
{
	const IeCatalog *c = ie_catalog();
	Datum		keys[1] = {PointerGetDatum(code)};

	return OidIsValid(c->channel_item_rel) &&
		ie_lookup_row_as(c->channel_item_rel, c->channel_item_pkey, snapshot, 1, keys, ie_text_keys,
						 0, NULL, NULL, NULL);
}

/* A location as the hierarchy sees it. */
typedef struct LocationNode
{
	char	   *code;
	char	   *parent;			/* NULL: a root */
	char	   *entity;			/* NULL: its parent's */
	int			parent_index;	/* -1: a root, or a parent not found */
} LocationNode;

static int
location_node_cmp(const void *a, const void *b)
{
	return strcmp(((const LocationNode *) a)->code, ((const LocationNode *) b)->code);
}

static int
location_node_find(const LocationNode *nodes, int n, const char *code)
{
	LocationNode key = {.code = (char *) code};
	const LocationNode *found = bsearch(&key, nodes, n, sizeof(LocationNode), location_node_cmp);

	return found ? (int) (found - nodes) : -1;
}

static char *
nullable_cstring(TupleTableSlot *slot, AttrNumber attnum)
{
	bool		isnull;
	Datum		d = slot_getattr(slot, attnum, &isnull);

	return isnull ? NULL : TextDatumGetCString(d);
}

/*
 * A channel's sourcing locations through the location hierarchy (from
 * 0.3.0): ch->sources holds its channel_location rows, each naming a
 * location or a node; it is replaced by every location at or below a named
 * one, with the priority of the nearest row naming it or an ancestor (so a
 * row for a location below a node overrides the node's priority), less the
 * locations whose owner (the entity of the location or of its nearest
 * ancestor that has one) the channel's entity may not sell: another entity
 * without an intercompany rule. A channel without an entity, or a location
 * without an owner, is not restricted. Walks up the tree are bounded by the
 * number of locations, so a cycle (refused at commit by location_acyclic)
 * cannot loop.
 */
static void
expand_sources(IeChannel *ch, const char *entity, Snapshot snapshot)
{
	const IeCatalog *c = ie_catalog();
	Relation	rel;
	TableScanDesc scan;
	TupleTableSlot *slot;
	LocationNode *nodes;
	int			n = 0;
	int			max = 16;
	List	   *owners = NIL;
	bool	   *named;
	int32	   *named_priority;
	IeSource   *sources;
	int			nsources = 0;

	/* Every location, by code. */
	nodes = palloc(sizeof(LocationNode) * max);
	rel = table_open(c->location_rel, AccessShareLock);
	slot = table_slot_create(rel, NULL);
	scan = table_beginscan(rel, snapshot, 0, NULL);
	while (table_scan_getnextslot(scan, ForwardScanDirection, slot))
	{
		if (n == max)
		{
			max *= 2;
			nodes = repalloc(nodes, sizeof(LocationNode) * max);
		}
		nodes[n].code = nullable_cstring(slot, Anum_ie_location_code);
		nodes[n].parent = nullable_cstring(slot, Anum_ie_location_parent);
		nodes[n].entity = nullable_cstring(slot, Anum_ie_location_entity);
		n++;
	}
	table_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	table_close(rel, AccessShareLock);
	qsort(nodes, n, sizeof(LocationNode), location_node_cmp);
	for (int i = 0; i < n; i++)
		nodes[i].parent_index = nodes[i].parent ? location_node_find(nodes, n, nodes[i].parent) : -1;

	/* The owners whose stock the channel's entity may sell besides its own. */
	if (entity)
	{
		Relation	idx;
		Datum		keys[1] = {CStringGetTextDatum(entity)};
		IndexScanDesc iscan;

		rel = table_open(c->intercompany_rel, AccessShareLock);
		idx = index_open(c->intercompany_pkey, AccessShareLock);
		slot = table_slot_create(rel, NULL);
		iscan = ie_index_scan_begin(rel, idx, snapshot, 1, keys, ie_text_keys);
		while (index_getnext_slot(iscan, ForwardScanDirection, slot))
			owners = lappend(owners, nullable_cstring(slot, Anum_ie_intercompany_owner));
		index_endscan(iscan);
		ExecDropSingleTupleTableSlot(slot);
		index_close(idx, AccessShareLock);
		table_close(rel, AccessShareLock);
	}

	/* The nodes the channel's rows name. */
	named = palloc0(sizeof(bool) * Max(n, 1));
	named_priority = palloc0(sizeof(int32) * Max(n, 1));
	for (int i = 0; i < ch->nsources; i++)
	{
		char	   *code = text_to_cstring(ch->sources[i].location);
		int			at = location_node_find(nodes, n, code);

		if (at >= 0)
		{
			named[at] = true;
			named_priority[at] = ch->sources[i].priority;
		}
	}

	sources = palloc(sizeof(IeSource) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		int			from = -1;
		const char *owner = NULL;
		bool		allowed;
		ListCell   *lc;

		for (int j = i, depth = 0; j >= 0 && depth <= n; j = nodes[j].parent_index, depth++)
			if (named[j])
			{
				from = j;
				break;
			}
		if (from < 0)
			continue;
		for (int j = i, depth = 0; j >= 0 && depth <= n; j = nodes[j].parent_index, depth++)
			if (nodes[j].entity)
			{
				owner = nodes[j].entity;
				break;
			}
		allowed = entity == NULL || owner == NULL || strcmp(owner, entity) == 0;
		if (!allowed)
			foreach(lc, owners)
				allowed |= strcmp((char *) lfirst(lc), owner) == 0;
		if (!allowed)
			continue;
		sources[nsources].location = cstring_to_text(nodes[i].code);
		sources[nsources].priority = named_priority[from];
		nsources++;
	}
	ch->sources = sources;
	ch->nsources = nsources;
}

/*
 * Reads a channel and its sourcing locations in snapshot; false when there is
 * no such channel.
 */
static bool
channel_read(text *code, IeChannel *ch, Snapshot snapshot)
{
	const IeCatalog *c = ie_catalog();
	Relation	rel;
	Relation	idx;
	TupleTableSlot *slot;
	Datum		keys[1] = {PointerGetDatum(code)};
	IndexScanDesc scan;
	bool		found;
	int			max = 4;
	char	   *entity = NULL;

	memset(ch, 0, sizeof(*ch));
	rel = table_open(c->channel_rel, AccessShareLock);
	idx = index_open(c->channel_pkey, AccessShareLock);
	slot = table_slot_create(rel, NULL);
	found = ie_index_lookup(rel, idx, snapshot, 1, keys, ie_text_keys, slot);
	if (found)
	{
		slot_getallattrs(slot);
#define V(att) (slot->tts_values[(att) - 1])
		ch->code = DatumGetTextPCopy(V(Anum_ie_channel_code));
		ch->buffer_fixed = DatumGetInt64(V(Anum_ie_channel_buffer_fixed));
		ch->buffer_pct = PointerGetDatum(DatumGetNumericCopy(V(Anum_ie_channel_buffer_pct)));
		ch->allocation_pct = PointerGetDatum(DatumGetNumericCopy(V(Anum_ie_channel_allocation_pct)));
		ch->has_cap = !slot->tts_isnull[Anum_ie_channel_cap - 1];
		ch->cap = ch->has_cap ? DatumGetInt64(V(Anum_ie_channel_cap)) : 0;
		ch->publish_interval_us = interval_us(V(Anum_ie_channel_publish_interval));
		ch->allow_backorders = DatumGetBool(V(Anum_ie_channel_allow_backorders));
		ch->allow_split = DatumGetBool(V(Anum_ie_channel_allow_split));
		ch->velocity_buffer = DatumGetBool(V(Anum_ie_channel_velocity_buffer));
		ch->velocity_window_us = interval_us(V(Anum_ie_channel_velocity_window));
		if (Anum_ie_channel_entity != InvalidAttrNumber && !slot->tts_isnull[Anum_ie_channel_entity - 1])
			entity = TextDatumGetCString(V(Anum_ie_channel_entity));
#undef V
		ch->full_allocation = numeric_equals(ch->allocation_pct, 100);
		ch->no_pct_buffer = numeric_equals(ch->buffer_pct, 0);
	}
	ExecDropSingleTupleTableSlot(slot);
	index_close(idx, AccessShareLock);
	table_close(rel, AccessShareLock);
	if (!found)
		return false;

	/* Sourcing locations. */
	rel = table_open(c->channel_location_rel, AccessShareLock);
	idx = index_open(c->channel_location_pkey, AccessShareLock);
	slot = table_slot_create(rel, NULL);
	ch->sources = palloc(sizeof(IeSource) * max);
	scan = ie_index_scan_begin(rel, idx, snapshot, 1, keys, ie_text_keys);
	while (index_getnext_slot(scan, ForwardScanDirection, slot))
	{
		bool		isnull;

		if (ch->nsources == max)
		{
			max *= 2;
			ch->sources = repalloc(ch->sources, sizeof(IeSource) * max);
		}
		ch->sources[ch->nsources].location =
			DatumGetTextPCopy(slot_getattr(slot, Anum_ie_channel_location_location, &isnull));
		ch->sources[ch->nsources].priority =
			DatumGetInt32(slot_getattr(slot, Anum_ie_channel_location_priority, &isnull));
		ch->nsources++;
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	index_close(idx, AccessShareLock);
	table_close(rel, AccessShareLock);
	if (c->sql_version >= IE_SQL_0_3_0)
		expand_sources(ch, entity, snapshot);
	qsort(ch->sources, ch->nsources, sizeof(IeSource), source_cmp);

	/* Has it any listing (from 0.3.0)? Then it sells only what it lists. */
	ch->has_listings = ie_channel_has_listings(code, snapshot);
	return true;
}

static void components_read(text *sku, IeComponents *out, Snapshot snapshot);

static text *
text_copy(const text *t)
{
	text	   *r = palloc(VARSIZE_ANY(t));

	memcpy(r, t, VARSIZE_ANY(t));
	return r;
}

/* Deep copy of a channel into CurrentMemoryContext. */
static void
channel_copy(const IeChannel *src, IeChannel *dst)
{
	*dst = *src;
	dst->code = text_copy(src->code);
	dst->buffer_pct = PointerGetDatum(DatumGetNumericCopy(src->buffer_pct));
	dst->allocation_pct = PointerGetDatum(DatumGetNumericCopy(src->allocation_pct));
	dst->sources = palloc(sizeof(IeSource) * Max(src->nsources, 1));
	for (int i = 0; i < src->nsources; i++)
	{
		dst->sources[i].location = text_copy(src->sources[i].location);
		dst->sources[i].priority = src->sources[i].priority;
	}
}

static void
components_copy(const IeComponents *src, IeComponents *dst)
{
	*dst = *src;
	dst->sku = palloc(sizeof(text *) * src->n);
	dst->per_unit = palloc(sizeof(int64) * src->n);
	for (int i = 0; i < src->n; i++)
	{
		dst->sku[i] = text_copy(src->sku[i]);
		dst->per_unit[i] = src->per_unit[i];
	}
}

/*
 * A channel and its sourcing locations; false when there is no such channel.
 * Cached per backend (kind 'c' of the master data cache, catalog.c), when
 * ie_master_read_end says so.
 */
bool
ie_channel_load(text *code, IeChannel *ch)
{
	IeChannel  *cached = ie_cache_get('c', code);
	MemoryContext old;
	IeMasterRead r;
	bool		found;

	if (cached)
	{
		channel_copy(cached, ch);
		return true;
	}
	ie_master_read_begin(&r);
	found = channel_read(code, ch, r.snapshot);
	if (!ie_master_read_end(&r) || !found)
		return found;
	old = MemoryContextSwitchTo(ie_cache_context());
	cached = palloc(sizeof(IeChannel));
	channel_copy(ch, cached);
	MemoryContextSwitchTo(old);
	ie_cache_put('c', code, cached);
	return true;
}

/*
 * A kit's components; a sku that is no kit is its own single component.
 * Cached per backend (kind 'k'), "not a kit" included.
 */
void
ie_components(text *sku, IeComponents *out)
{
	IeComponents *cached = ie_cache_get('k', sku);
	MemoryContext old;
	IeMasterRead r;

	if (cached)
	{
		components_copy(cached, out);
		if (!out->is_kit)
			out->sku[0] = sku;
		return;
	}
	ie_master_read_begin(&r);
	components_read(sku, out, r.snapshot);
	if (!ie_master_read_end(&r))
		return;
	old = MemoryContextSwitchTo(ie_cache_context());
	cached = palloc(sizeof(IeComponents));
	components_copy(out, cached);
	MemoryContextSwitchTo(old);
	ie_cache_put('k', sku, cached);
}

/* The components of a sku or kit that the item master knows; 23503 for one it does not. */
void
ie_sku_components(text *sku, IeComponents *out)
{
	text	   *base_uom;
	bool		lot_controlled;

	if (!ie_master_item(sku, &base_uom, &lot_controlled, NULL))
		ereport(ERROR,
				(errcode(ERRCODE_FOREIGN_KEY_VIOLATION),
				 errmsg("unknown sku \"%s\"", text_to_cstring(sku)),
				 errhint("Add it to inventory_events.item first; the ERP is the master of this data.")));
	ie_components(sku, out);
}

void
ie_channel_require(text *code, IeChannel *ch)
{
	if (!ie_channel_load(code, ch))
		ereport(ERROR,
				(errcode(ERRCODE_FOREIGN_KEY_VIOLATION),
				 errmsg("unknown channel \"%s\"", text_to_cstring(code)),
				 errhint("Add it to inventory_events.channel first.")));
}

/*
 * The listing of sku on channel ch (inventory_events.channel_item): whether
 * the channel sells it, its identifier there, and in *rules the channel's
 * rules with the listing's overrides of buffer, allocation and cap applied.
 * A channel without listings sells every sku under ours, with its own rules,
 * and nothing is read. A listing row with listed = false still names the
 * identifier (a delisting is published under it). Read in snapshot at each
 * use (not cached; see ie_channel_has_listings). Returns listing->sells.
 */
bool
ie_channel_listing(const IeChannel *ch, text *sku, Snapshot snapshot, IeChannel *rules,
				   IeListing *listing)
{
	const IeCatalog *c;
	Datum		keys[2] = {PointerGetDatum(ch->code), PointerGetDatum(sku)};
	enum
	{
		L_LISTED, L_CHANNEL_SKU, L_BUFFER_FIXED, L_BUFFER_PCT, L_ALLOCATION_PCT, L_CAP, L_COUNT
	};
	int			atts[L_COUNT];
	Datum		v[L_COUNT];
	bool		null[L_COUNT];

	*rules = *ch;
	listing->sells = true;
	listing->channel_sku = NULL;
	if (!ch->has_listings)
		return true;

	c = ie_catalog();
	listing->sells = false;
	atts[L_LISTED] = Anum_ie_channel_item_listed;
	atts[L_CHANNEL_SKU] = Anum_ie_channel_item_channel_sku;
	atts[L_BUFFER_FIXED] = Anum_ie_channel_item_buffer_fixed;
	atts[L_BUFFER_PCT] = Anum_ie_channel_item_buffer_pct;
	atts[L_ALLOCATION_PCT] = Anum_ie_channel_item_allocation_pct;
	atts[L_CAP] = Anum_ie_channel_item_cap;
	if (!ie_lookup_row_as(c->channel_item_rel, c->channel_item_pkey, snapshot, 2, keys, ie_text_keys,
						  L_COUNT, atts, v, null))
		return false;
	listing->sells = !null[L_LISTED] && DatumGetBool(v[L_LISTED]);
	listing->channel_sku = !null[L_CHANNEL_SKU] ? DatumGetTextPCopy(v[L_CHANNEL_SKU]) : text_copy(sku);
	if (!null[L_BUFFER_FIXED])
		rules->buffer_fixed = DatumGetInt64(v[L_BUFFER_FIXED]);
	if (!null[L_BUFFER_PCT])
	{
		rules->buffer_pct = v[L_BUFFER_PCT];
		rules->no_pct_buffer = numeric_equals(rules->buffer_pct, 0);
	}
	if (!null[L_ALLOCATION_PCT])
	{
		rules->allocation_pct = v[L_ALLOCATION_PCT];
		rules->full_allocation = numeric_equals(rules->allocation_pct, 100);
	}
	if (!null[L_CAP])
	{
		rules->has_cap = true;
		rules->cap = DatumGetInt64(v[L_CAP]);
	}
	return listing->sells;
}

/*
 * Our sku for a channel's identifier: the listing of channel ch whose
 * channel_sku (or, where that is null, sku) is channel_sku; NULL when the
 * channel has no listings or none with that identifier.
 */
text *
ie_listing_sku(const IeChannel *ch, text *channel_sku, Snapshot snapshot)
{
	const IeCatalog *c;
	Datum		keys[2] = {PointerGetDatum(ch->code), PointerGetDatum(channel_sku)};
	const int	atts[1] = {Anum_ie_channel_item_sku};
	Datum		sku;

	if (!ch->has_listings)
		return NULL;
	c = ie_catalog();
	if (!ie_lookup_row_as(c->channel_item_rel, c->channel_item_channel_sku_idx, snapshot, 2, keys,
						  ie_text_keys, 1, atts, &sku, NULL))
		return NULL;
	return DatumGetTextPCopy(sku);
}

static int64
numeric_to_int64(Datum n)
{
	return DatumGetInt64(DirectFunctionCall1(numeric_int8, n));
}

/*
 * The channel's rules over a pool. Shares and percentage buffers are
 * computed in numeric, exactly: floor(pool * allocation_pct / 100) and
 * ceil(share * buffer_pct / 100).
 */
int64
ie_channel_rules(const IeChannel *ch, int64 pool, int64 velocity_buffer)
{
	Datum		hundred = NumericGetDatum(int64_to_numeric(100));
	int64		share = Max(pool, 0);
	int64		result;

	if (share > 0 && !ch->full_allocation)
		share = numeric_to_int64(DirectFunctionCall2(numeric_div_trunc,
													 DirectFunctionCall2(numeric_mul,
																		 NumericGetDatum(int64_to_numeric(share)),
																		 ch->allocation_pct),
													 hundred));
	result = share;
	if (share > 0 && !ch->no_pct_buffer)
		result -= numeric_to_int64(DirectFunctionCall1(numeric_ceil,
													   DirectFunctionCall2(numeric_div,
																		   DirectFunctionCall2(numeric_mul,
																							   NumericGetDatum(int64_to_numeric(share)),
																							   ch->buffer_pct),
																		   hundred)));
	/* Every term is >= 0 and result <= pool: stop at zero rather than overflow. */
	if (ch->buffer_fixed >= result || velocity_buffer >= result - ch->buffer_fixed)
		return 0;
	result -= ch->buffer_fixed + velocity_buffer;
	if (ch->has_cap && result > ch->cap)
		result = ch->cap;
	return result;
}

/*
 * The velocity buffer: ceil(units of the sku reserved on any channel within
 * the channel's velocity_window x publish_interval / velocity_window), that
 * is the units a fast channel is expected to sell while this one still shows
 * its last publication. 0 unless the channel has it on and an interval.
 */
int64
ie_velocity_buffer(const IeChannel *ch, text *sku, Snapshot snapshot)
{
	const IeCatalog *c;
	Relation	rel;
	Relation	idx;
	TupleTableSlot *slot;
	ScanKeyData skey[2];
	IndexScanDesc scan;
	TimestampTz since;
	int64		units = 0;
	double		buffer;

	if (!ch->velocity_buffer || ch->publish_interval_us <= 0 || ch->velocity_window_us <= 0)
		return 0;
	c = ie_catalog();
	since = GetCurrentTransactionStartTimestamp() - ch->velocity_window_us;
	rel = table_open(c->reservation_rel, AccessShareLock);
	idx = index_open(c->reservation_recent_idx, AccessShareLock);
	slot = table_slot_create(rel, NULL);
	ScanKeyEntryInitialize(&skey[0], 0, 1, BTEqualStrategyNumber, InvalidOid,
						   idx->rd_indcollation[0], F_TEXTEQ, PointerGetDatum(sku));
	ScanKeyEntryInitialize(&skey[1], 0, 2, BTGreaterStrategyNumber, InvalidOid,
						   InvalidOid, F_TIMESTAMPTZ_GT, TimestampTzGetDatum(since));
	scan = index_beginscan(rel, idx, snapshot, 2, 0);
	index_rescan(scan, skey, 2, NULL, 0);
	while (index_getnext_slot(scan, ForwardScanDirection, slot))
	{
		bool		isnull;

		units += DatumGetInt64(slot_getattr(slot, Anum_ie_reservation_qty, &isnull));
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	/* Locks kept to the end of the transaction (see ie_lookup_row_as). */
	index_close(idx, NoLock);
	table_close(rel, NoLock);

	buffer = ceil((double) units * (double) ch->publish_interval_us / (double) ch->velocity_window_us);
	return buffer >= (double) PG_INT64_MAX ? PG_INT64_MAX : (int64) buffer;
}

static int
lot_fefo_cmp(const void *a, const void *b)
{
	const IeLotStock *x = a;
	const IeLotStock *y = b;

	if (x->has_expiry != y->has_expiry)
		return x->has_expiry ? -1 : 1;
	if (x->has_expiry && x->expires_on != y->expires_on)
		return x->expires_on < y->expires_on ? -1 : 1;
	return varstr_cmp(VARDATA_ANY(x->lot), VARSIZE_ANY_EXHDR(x->lot),
					  VARDATA_ANY(y->lot), VARSIZE_ANY_EXHDR(y->lot), C_COLLATION_OID);
}

/*
 * The stock of a sku at a location: its streams in first-expiry-first-out
 * order, and its ATP as stock_by_location computes it (a lot is expired after
 * its expires_on day). The stock is read in snapshot; the lots too, unless
 * that is SnapshotSelf (reserve() under its stream locks): no lock orders a
 * reader against a change of a lot's expiry, and with SnapshotSelf a lot
 * replaced (not HOT) while it was read was missed in both versions and
 * counted as not expiring (a review reserved units of an expired lot so).
 * They are read in a snapshot of the latest state instead.
 */
void
ie_location_stock(text *sku, text *location, Snapshot snapshot, IeLocationStock *out)
{
	const IeCatalog *c = ie_catalog();
	Relation	rel = table_open(c->stock_rel, AccessShareLock);
	Relation	idx = index_open(c->stock_pkey, AccessShareLock);
	TupleTableSlot *slot = table_slot_create(rel, NULL);
	Datum		keys[2] = {PointerGetDatum(sku), PointerGetDatum(location)};
	IndexScanDesc scan = ie_index_scan_begin(rel, idx, snapshot, 2, keys, ie_text_keys);
	DateADT		today = GetSQLCurrentDate();
	int64		available = 0;
	int64		safety = 0;
	int			max = 2;
	Relation	lotrel = NULL;
	Relation	lotidx = NULL;
	TupleTableSlot *lotslot = NULL;
	Snapshot	lotsnap = InvalidSnapshot;

	out->location = location;
	out->nlots = 0;
	out->lots = palloc(sizeof(IeLotStock) * max);
	while (index_getnext_slot(scan, ForwardScanDirection, slot))
	{
		IeLotStock *l;
		bool		isnull;

		if (out->nlots == max)
		{
			max *= 2;
			out->lots = repalloc(out->lots, sizeof(IeLotStock) * max);
		}
		l = &out->lots[out->nlots++];
		memset(l, 0, sizeof(*l));
		l->lot = DatumGetTextPCopy(slot_getattr(slot, Anum_ie_stock_lot, &isnull));
		l->available = DatumGetInt64(slot_getattr(slot, Anum_ie_stock_available, &isnull));
		safety += DatumGetInt64(slot_getattr(slot, Anum_ie_stock_safety_stock, &isnull));
		if (VARSIZE_ANY_EXHDR(l->lot) > 0)
		{
			Datum		lkeys[2] = {PointerGetDatum(sku), PointerGetDatum(l->lot)};
			Datum		expires;

			if (lotrel == NULL)
			{
				lotrel = table_open(c->lot_rel, AccessShareLock);
				lotidx = index_open(c->lot_pkey, AccessShareLock);
				lotslot = table_slot_create(lotrel, NULL);
				lotsnap = IsMVCCSnapshot(snapshot) ? snapshot : RegisterSnapshot(GetLatestSnapshot());
			}
			if (ie_index_lookup(lotrel, lotidx, lotsnap, 2, lkeys, ie_text_keys, lotslot))
			{
				expires = slot_getattr(lotslot, Anum_ie_lot_expires_on, &isnull);
				l->has_expiry = !isnull;
				l->expires_on = isnull ? 0 : DatumGetDateADT(expires);
				l->expired = l->has_expiry && l->expires_on < today;
			}
		}
		if (!l->expired)
			available += l->available;
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	/* Locks kept to the end of the transaction (see ie_lookup_row_as). */
	index_close(idx, NoLock);
	table_close(rel, NoLock);
	if (lotrel)
	{
		if (lotsnap != snapshot)
			UnregisterSnapshot(lotsnap);
		ExecDropSingleTupleTableSlot(lotslot);
		index_close(lotidx, NoLock);
		table_close(lotrel, NoLock);
	}

	qsort(out->lots, out->nlots, sizeof(IeLotStock), lot_fefo_cmp);
	out->atp = Max(available - safety, 0);
}

/*
 * The pool of a sku on a channel (sum of its sourcing locations' ATP); the
 * stock of each location in locs[i] (one per source, in source order).
 */
int64
ie_channel_pool(const IeChannel *ch, text *sku, Snapshot snapshot, IeLocationStock *locs)
{
	int64		pool = 0;

	for (int i = 0; i < ch->nsources; i++)
	{
		ie_location_stock(sku, ch->sources[i].location, snapshot, &locs[i]);
		locs[i].priority = ch->sources[i].priority;
		pool += locs[i].atp;
	}
	return pool;
}

int64
ie_sku_channel_availability(const IeChannel *ch, text *sku, Snapshot snapshot, IeLocationStock *locs,
							int64 *pool, int64 *vbuf)
{
	*pool = ie_channel_pool(ch, sku, snapshot, locs);
	*vbuf = ie_velocity_buffer(ch, sku, snapshot);
	return ie_channel_rules(ch, *pool, *vbuf);
}

/* Reads a kit's components; a sku that is no kit is its own single component. */
static void
components_read(text *sku, IeComponents *out, Snapshot snapshot)
{
	const IeCatalog *c = ie_catalog();
	Relation	rel = table_open(c->kit_component_rel, AccessShareLock);
	Relation	idx = index_open(c->kit_component_pkey, AccessShareLock);
	TupleTableSlot *slot = table_slot_create(rel, NULL);
	Datum		keys[1] = {PointerGetDatum(sku)};
	IndexScanDesc scan = ie_index_scan_begin(rel, idx, snapshot, 1, keys, ie_text_keys);
	int			max = 4;

	out->n = 0;
	out->sku = palloc(sizeof(text *) * max);
	out->per_unit = palloc(sizeof(int64) * max);
	while (index_getnext_slot(scan, ForwardScanDirection, slot))
	{
		bool		isnull;

		if (out->n == max)
		{
			max *= 2;
			out->sku = repalloc(out->sku, sizeof(text *) * max);
			out->per_unit = repalloc(out->per_unit, sizeof(int64) * max);
		}
		out->sku[out->n] = DatumGetTextPCopy(slot_getattr(slot, Anum_ie_kit_component_component, &isnull));
		out->per_unit[out->n] = DatumGetInt64(slot_getattr(slot, Anum_ie_kit_component_qty, &isnull));
		out->n++;
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	/* Locks kept to the end of the transaction (see ie_lookup_row_as). */
	index_close(idx, NoLock);
	table_close(rel, NoLock);

	out->is_kit = out->n > 0;
	if (!out->is_kit)
	{
		out->n = 1;
		out->sku[0] = sku;
		out->per_unit[0] = 1;
	}
}

/*
 * Appends the lock tags of every stream of sku at location to tags. A
 * lot-controlled sku's streams are read before they are locked, in a
 * snapshot as fresh as it gets (see channel.c's head): *snapshot, taken
 * (registered) at the first such read, for the caller's later calls to use
 * and to unregister.
 */
List *
ie_stream_tags(text *sku, text *location, Snapshot *snapshot, List *tags)
{
	IeLocationStock loc;
	text	   *base_uom;
	bool		lot_controlled = true;

	(void) ie_master_item(sku, &base_uom, &lot_controlled, NULL);
	if (!lot_controlled)
	{
		/* Without lots, a sku has one stream per location: no need to look. */
		LOCKTAG    *tag = palloc(sizeof(LOCKTAG));
		Datum		k[3] = {PointerGetDatum(sku), PointerGetDatum(location), CStringGetTextDatum("")};

		ie_lock_tag(IE_LOCK_STREAM, 3, k, tag);
		return lappend(tags, tag);
	}
	if (*snapshot == NULL)
		*snapshot = RegisterSnapshot(GetLatestSnapshot());
	ie_location_stock(sku, location, *snapshot, &loc);
	for (int i = 0; i < loc.nlots; i++)
	{
		LOCKTAG    *tag = palloc(sizeof(LOCKTAG));
		Datum		k[3] = {PointerGetDatum(sku), PointerGetDatum(location), PointerGetDatum(loc.lots[i].lot)};

		ie_lock_tag(IE_LOCK_STREAM, 3, k, tag);
		tags = lappend(tags, tag);
	}
	return tags;
}

/* Availability of a sku or kit on a channel; pool and velocity buffer of a plain sku. */
static int64
channel_availability(text *channel, text *sku, int64 *pool, int64 *vbuf)
{
	IeChannel	base;
	IeChannel	ch;
	IeComponents comp;
	IeListing	listing;
	int64		result = PG_INT64_MAX;

	ie_read_call_start();
	ie_channel_require(channel, &base);
	ie_sku_components(sku, &comp);
	*pool = *vbuf = 0;
	/* Whether it has listings, and the sku's, in one snapshot: the statement's. */
	base.has_listings = ie_channel_has_listings(channel, GetActiveSnapshot());
	(void) ie_channel_listing(&base, sku, GetActiveSnapshot(), &ch, &listing);
	for (int i = 0; i < comp.n; i++)
	{
		IeLocationStock *locs = palloc(sizeof(IeLocationStock) * Max(ch.nsources, 1));
		int64		p;
		int64		v;
		int64		a = ie_sku_channel_availability(&ch, comp.sku[i], GetActiveSnapshot(), locs, &p, &v);

		result = Min(result, a / comp.per_unit[i]);
		if (!comp.is_kit)
		{
			*pool = p;
			*vbuf = v;
		}
	}
	/* A sku the channel does not list shows nothing there (its pool is still told). */
	return listing.sells ? result : 0;
}

PG_FUNCTION_INFO_V1(ie_channel_availability);
Datum
ie_channel_availability(PG_FUNCTION_ARGS)
{
	int64		pool;
	int64		vbuf;

	PG_RETURN_INT64(channel_availability(PG_GETARG_TEXT_PP(0), PG_GETARG_TEXT_PP(1), &pool, &vbuf));
}

/* channel_position(channel, sku): pool, velocity_buffer, available (pool null for a kit) */
PG_FUNCTION_INFO_V1(ie_channel_position);
Datum
ie_channel_position(PG_FUNCTION_ARGS)
{
	TupleDesc	desc;
	Datum		values[3];
	bool		nulls[3] = {false, false, false};
	int64		pool;
	int64		vbuf;
	IeComponents comp;

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	values[2] = Int64GetDatum(channel_availability(PG_GETARG_TEXT_PP(0), PG_GETARG_TEXT_PP(1), &pool, &vbuf));
	ie_components(PG_GETARG_TEXT_PP(1), &comp);
	values[0] = Int64GetDatum(pool);
	values[1] = Int64GetDatum(vbuf);
	nulls[0] = nulls[1] = comp.is_kit;
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc), values, nulls)));
}

/* channel_rules(pool bigint, c channel, velocity_buffer bigint default 0) */
PG_FUNCTION_INFO_V1(ie_channel_rules_sql);
Datum
ie_channel_rules_sql(PG_FUNCTION_ARGS)
{
	HeapTupleHeader row;
	IeChannel	ch;
	bool		isnull;
	Datum		d;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		PG_RETURN_NULL();
	row = PG_GETARG_HEAPTUPLEHEADER(1);
	memset(&ch, 0, sizeof(ch));
#define GET(att) (d = GetAttributeByNum(row, (att), &isnull))
	GET(Anum_ie_channel_buffer_fixed);
	ch.buffer_fixed = isnull ? 0 : DatumGetInt64(d);
	ch.buffer_pct = GET(Anum_ie_channel_buffer_pct);
	if (isnull)
		ch.buffer_pct = NumericGetDatum(int64_to_numeric(0));
	ch.allocation_pct = GET(Anum_ie_channel_allocation_pct);
	if (isnull)
		ch.allocation_pct = NumericGetDatum(int64_to_numeric(100));
	GET(Anum_ie_channel_cap);
	ch.has_cap = !isnull;
	ch.cap = isnull ? 0 : DatumGetInt64(d);
#undef GET
	ch.full_allocation = numeric_equals(ch.allocation_pct, 100);
	ch.no_pct_buffer = numeric_equals(ch.buffer_pct, 0);
	PG_RETURN_INT64(ie_channel_rules(&ch, PG_GETARG_INT64(0), PG_ARGISNULL(2) ? 0 : PG_GETARG_INT64(2)));
}

/* channel_sources(channel) returns table (location, priority): the expanded sourcing locations. */
PG_FUNCTION_INFO_V1(ie_channel_sources);
Datum
ie_channel_sources(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	IeChannel	ch;

	ie_init_materialized_srf(fcinfo);
	ie_read_call_start();
	ie_channel_require(PG_GETARG_TEXT_PP(0), &ch);
	for (int i = 0; i < ch.nsources; i++)
	{
		Datum		values[2] = {PointerGetDatum(ch.sources[i].location), Int32GetDatum(ch.sources[i].priority)};
		bool		nulls[2] = {false, false};

		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
