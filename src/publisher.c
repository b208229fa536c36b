/*
 * publisher.c
 *		One publisher step: inventory_events.publish(max_events).
 *
 * The step reads the events after the publisher's checkpoint (only below the
 * readers' horizon, log_xmin(), as events_after() does), and collects the
 * skus they touched, with every kit one of them is a component of. Then, for
 * every channel in code order:
 *
 *	- a channel that is not due (its publish_interval is not up, or it failed
 *	  and its retry_at is in the future) gets the touched skus as
 *	  publication_pending rows, published when it is due;
 *	- a due channel takes its pending rows of earlier steps (if it has any)
 *	  and, with the touched skus, computes what it shows for each, appends the
 *	  values that differ from channel_shown to the publication log with the
 *	  next sequence numbers (in sku order), updates channel_shown and
 *	  channel_publisher, and queues a NOTIFY {"seq":N}. Each due channel runs
 *	  in a subtransaction of its own: a failure is recorded with
 *	  record_worker_error() (its backoff), the channel's pending rows stay, and
 *	  the touched skus are added to them; the other channels go on.
 *
 * A due channel that publishes never writes and deletes pending rows for the
 * skus of this step: only a throttled or failing channel collects them.
 *
 * Sharing. What a channel shows for a sku is its rules (allocation, buffers,
 * velocity buffer, cap: ie_channel_rules) over a pool, the sum of the ATP of
 * its sourcing locations; a kit shows the least, over its components, of the
 * channel's rules over the component's pool, divided by the quantity per kit.
 * The ATP of a sku at a location (available of its unexpired lots less
 * safety stock, never below zero: ie_location_stock) depends on nothing of
 * the channel: not on location priorities (they order reservation sourcing,
 * not the sum), not on lot rules (expiry is the lot's, by today's date), not
 * on kits (a kit's components are looked up by sku). So the ATP is computed
 * once per (location, sku) in a step and kept for the step: the pool of a
 * (set of sourcing locations, sku) is computed once, and channels with the
 * same set share all of it (channels whose sets overlap share the common
 * locations). Everything channel-specific is applied per channel: the
 * velocity buffer (the channel's window and interval), the allocation, the
 * buffers and the cap, and for a kit the rules per component before the
 * minimum. Reads are those of channel_availability(), in the step's
 * snapshot, so a channel shows what channel_availability() returns.
 *
 * The step's reads of the log, the channels and the pending rows are SPI
 * statements prepared once per backend. The publications and channel_shown
 * are written without SQL (writer.c), as the lifecycle writes reservations:
 * one index probe of channel_shown per (channel, sku), a heap insert into
 * publication, and channel_shown replaced in place (HOT: its fillfactor
 * leaves room, and no indexed column changes). Their CHECK and NOT NULL
 * constraints and indexes are kept; triggers on them do not fire, and the
 * foreign key to channel is kept by locking the channel's row FOR KEY SHARE
 * once per channel and step instead of once per row.
 */
#include "postgres.h"

#include "access/table.h"
#include "access/xact.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "commands/async.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/inval.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/varlena.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/xid8.h"

#include "catalog.h"
#include "channel.h"
#include "loghome.h"
#include "publisher.h"
#include "writer.h"

/* The statements of a step, prepared once per backend. */
enum
{
	P_CP_INIT,
	P_CP_LOCK,
	P_EVENTS,
	P_CP_UPDATE,
	P_CHANNELS,
	P_PENDING_ADD,
	P_PENDING_TAKE,
	P_PUBLISHER,
	P_CLEAR,
	P_RECORD,
	P_NEXT_DUE,
	P_COUNT
};

static IeSpiPlan plan_defs[P_COUNT] = {
	[P_CP_INIT] = {
		"INSERT INTO inventory_events.publisher_checkpoint DEFAULT VALUES ON CONFLICT DO NOTHING",
		0, {0}
	},
	[P_CP_LOCK] = {
		"SELECT p.checkpoint FROM inventory_events.publisher_checkpoint p FOR UPDATE",
		0, {0}
	},
	/* events_after($1:$2, $4) below the horizon $3: count, next checkpoint, skus and their kits */
	[P_EVENTS] = {
		"WITH e AS MATERIALIZED ("
		"  SELECT e.xid, e.id, e.sku FROM inventory_events.event e"
		"   WHERE (e.xid, e.id) > ($1, $2) AND e.xid < $3"
		"   ORDER BY e.xid, e.id LIMIT $4),"
		" s AS (SELECT DISTINCT e.sku FROM e)"
		" SELECT (SELECT count(*)::integer FROM e),"
		"        (SELECT e.xid::text || ':' || e.id FROM e ORDER BY e.xid DESC, e.id DESC LIMIT 1),"
		"        ARRAY(SELECT s.sku FROM s"
		"              UNION SELECT k.kit FROM inventory_events.kit_component k"
		"                     WHERE k.component IN (SELECT s.sku FROM s))",
		4, {XID8OID, INT8OID, XID8OID, INT4OID}
	},
	[P_CP_UPDATE] = {
		"UPDATE inventory_events.publisher_checkpoint SET checkpoint = $1, updated_at = now()",
		1, {TEXTOID}
	},
	/* code, last_seq, failing, due, has pending rows */
	[P_CHANNELS] = {
		"SELECT ch.code, coalesce(cp.last_seq, 0), w.channel IS NOT NULL,"
		"       (cp.last_published_at IS NULL OR cp.last_published_at + ch.publish_interval <= clock_timestamp())"
		"       AND (w.retry_at IS NULL OR w.retry_at <= clock_timestamp()),"
		"       EXISTS (SELECT FROM inventory_events.publication_pending p WHERE p.channel = ch.code)"
		"  FROM inventory_events.channel ch"
		"  LEFT JOIN inventory_events.channel_publisher cp ON cp.channel = ch.code"
		"  LEFT JOIN inventory_events.worker_error w"
		"         ON w.task = 'publish' AND w.channel = ch.code AND w.cleared_at IS NULL"
		" ORDER BY ch.code",
		0, {0}
	},
	/* For the channels that still exist (one deleted meanwhile is skipped, not an error). */
	[P_PENDING_ADD] = {
		"WITH c AS (SELECT ch.code FROM inventory_events.channel ch WHERE ch.code = ANY ($1) FOR KEY SHARE)"
		" INSERT INTO inventory_events.publication_pending (channel, sku)"
		" SELECT c.code, s.s FROM c, unnest($2) s(s) ON CONFLICT DO NOTHING",
		2, {TEXTARRAYOID, TEXTARRAYOID}
	},
	[P_PENDING_TAKE] = {
		/* Not the marks of a change still in progress: see republish(). */
		"DELETE FROM inventory_events.publication_pending p WHERE p.ctid = ANY (ARRAY("
		"  SELECT q.ctid FROM inventory_events.publication_pending q WHERE q.channel = $1"
		"     FOR UPDATE SKIP LOCKED)) RETURNING p.sku",
		1, {TEXTOID}
	},
	[P_PUBLISHER] = {
		"INSERT INTO inventory_events.channel_publisher AS p (channel, last_seq, last_published_at)"
		" VALUES ($1, $2, clock_timestamp())"
		" ON CONFLICT (channel) DO UPDATE SET last_seq = excluded.last_seq,"
		"                                     last_published_at = excluded.last_published_at",
		2, {TEXTOID, INT8OID}
	},
	[P_CLEAR] = {
		"UPDATE inventory_events.worker_error w SET cleared_at = clock_timestamp()"
		" WHERE w.task = 'publish' AND w.channel = $1",
		1, {TEXTOID}
	},
	[P_RECORD] = {
		"SELECT inventory_events.record_worker_error('publish', $1, $2, $3, $4)",
		4, {TEXTOID, TEXTOID, TEXTOID, TEXTOID}
	},
	/*
	 * When the next throttled or failing channel with pending skus is due;
	 * not those whose every mark a change in progress holds ($1): they would
	 * be due at once, step after step, until it commits.
	 */
	[P_NEXT_DUE] = {
		"SELECT CASE WHEN count(*) > 0 THEN"
		"       greatest(0, ceil(extract(epoch FROM min(greatest(cp.last_published_at + ch.publish_interval, w.retry_at))"
		"                                           - clock_timestamp()) * 1000))::bigint END"
		"  FROM inventory_events.channel ch"
		"  LEFT JOIN inventory_events.channel_publisher cp ON cp.channel = ch.code"
		"  LEFT JOIN inventory_events.worker_error w"
		"         ON w.task = 'publish' AND w.channel = ch.code AND w.cleared_at IS NULL"
		" WHERE (cp.channel IS NOT NULL OR w.channel IS NOT NULL)"
		"   AND EXISTS (SELECT FROM inventory_events.publication_pending p WHERE p.channel = ch.code)"
		"   AND NOT ch.code = ANY ($1)",
		1, {TEXTARRAYOID}
	},
};

/* Runs one of the statements above; returns SPI_processed. */
static uint64
run_plan(int p, Datum *values, const char *nulls, int expected)
{
	return ie_spi_run(&plan_defs[p], values, nulls, expected);
}

/* One channel as the step found it. */
typedef struct PubChannel
{
	text	   *code;
	int64		last_seq;
	bool		failing;		/* an open streak of failures */
	bool		due;			/* interval up, no retry pending */
	bool		has_pending;	/* pending rows of earlier steps */
} PubChannel;

/* The ATP of a sku at a location, computed once per step: (location, sku). */
typedef struct AtpKey
{
	int			location;		/* index into PubStep.locations */
	int			len;
	const char *data;			/* the sku's bytes */
} AtpKey;

typedef struct AtpEntry
{
	AtpKey		key;
	int64		atp;
} AtpEntry;

typedef struct PubStep
{
	MemoryContext cxt;			/* the step's: the cache, the touched skus */
	MemoryContext scratch;		/* reset after each ATP computation */
	HTAB	   *atp;
	int			nlocations;
	int			maxlocations;
	text	  **locations;
	int			ntouched;
	text	  **touched;		/* sorted, distinct */
	int64		atp_computed;	/* (location, sku) reads */
	int64		atp_shared;		/* reuses */
	Snapshot	snapshot;		/* the stock and reservations are read in */
	int			nheld;
	text	  **held;			/* channels whose every mark a change holds */
} PubStep;

static uint32
atp_hash(const void *key, Size keysize)
{
	const AtpKey *k = key;

	return hash_bytes((const unsigned char *) k->data, k->len) ^ murmurhash32((uint32) k->location);
}

static int
atp_match(const void *key1, const void *key2, Size keysize)
{
	const AtpKey *a = key1;
	const AtpKey *b = key2;

	if (a->location != b->location || a->len != b->len)
		return 1;
	return memcmp(a->data, b->data, a->len);
}

/* Skus in the order of ORDER BY sku (the database's default collation). */
static int
sku_cmp(const void *a, const void *b)
{
	const text *x = *(text *const *) a;
	const text *y = *(text *const *) b;

	return varstr_cmp(VARDATA_ANY(x), VARSIZE_ANY_EXHDR(x), VARDATA_ANY(y), VARSIZE_ANY_EXHDR(y),
					  DEFAULT_COLLATION_OID);
}

static bool
text_equal(const text *x, const text *y)
{
	return VARSIZE_ANY_EXHDR(x) == VARSIZE_ANY_EXHDR(y) &&
		memcmp(VARDATA_ANY(x), VARDATA_ANY(y), VARSIZE_ANY_EXHDR(x)) == 0;
}

/* Sorts and removes duplicates (equal bytes: the default collation is deterministic); the new count. */
static int
sort_distinct(text **skus, int n)
{
	int			m = 0;

	if (n == 0)
		return 0;
	qsort(skus, n, sizeof(text *), sku_cmp);
	for (int i = 1; i < n; i++)
		if (!text_equal(skus[i], skus[m]))
			skus[++m] = skus[i];
	return m + 1;
}

static int
location_index(PubStep *st, text *location)
{
	MemoryContext old;

	for (int i = 0; i < st->nlocations; i++)
		if (text_equal(st->locations[i], location))
			return i;
	if (st->nlocations == st->maxlocations)
	{
		st->maxlocations *= 2;
		st->locations = repalloc(st->locations, sizeof(text *) * st->maxlocations);
	}
	old = MemoryContextSwitchTo(st->cxt);
	st->locations[st->nlocations] = DatumGetTextPCopy(PointerGetDatum(location));
	MemoryContextSwitchTo(old);
	return st->nlocations++;
}

/* The ATP of sku at location (index loc), computed at most once per step. */
static int64
location_atp(PubStep *st, int loc, text *sku)
{
	AtpKey		key;
	AtpEntry   *e;
	IeLocationStock ls;
	MemoryContext old;
	char	   *data;
	bool		found;

	key.location = loc;
	key.len = VARSIZE_ANY_EXHDR(sku);
	key.data = VARDATA_ANY(sku);
	e = hash_search(st->atp, &key, HASH_FIND, NULL);
	if (e)
	{
		st->atp_shared++;
		return e->atp;
	}
	old = MemoryContextSwitchTo(st->scratch);
	ie_location_stock(sku, st->locations[loc], st->snapshot, &ls);
	MemoryContextSwitchTo(old);
	MemoryContextReset(st->scratch);
	st->atp_computed++;

	/* Nothing can fail from here on: the entry is whole once entered. */
	data = MemoryContextAlloc(st->cxt, Max(key.len, 1));
	memcpy(data, key.data, key.len);
	e = hash_search(st->atp, &key, HASH_ENTER, &found);
	e->key.data = data;
	e->atp = ls.atp;
	return ls.atp;
}

/*
 * What the channel shows for sku: channel_availability(channel, sku), with
 * the pools of its location set taken from the step's ATPs.
 */
static int64
sku_availability(PubStep *st, const IeChannel *ch, const int *locs, text *sku)
{
	IeComponents comp;
	int64		result = PG_INT64_MAX;

	ie_sku_components(sku, &comp);
	for (int i = 0; i < comp.n; i++)
	{
		int64		pool = 0;

		for (int j = 0; j < ch->nsources; j++)
			pool += location_atp(st, locs[j], comp.sku[i]);
		result = Min(result, ie_channel_rules(ch, pool, ie_velocity_buffer(ch, comp.sku[i], st->snapshot)) / comp.per_unit[i]);
	}
	return result;
}

static Datum
text_array(text **items, int n)
{
	Datum	   *d = palloc(sizeof(Datum) * Max(n, 1));

	for (int i = 0; i < n; i++)
		d[i] = PointerGetDatum(items[i]);
	return PointerGetDatum(construct_array(d, n, TEXTOID, -1, false, TYPALIGN_INT));
}

/*
 * Stores the identifier of sku on a channel in a channel_sku column: null
 * where it is our sku (a channel without listings, a listing without its own
 * identifier), so that a publication costs no more bytes than before
 * listings, and rows written before 0.3.0 read the same.
 */
static void
set_identifier(Datum *values, bool *nulls, AttrNumber attnum, text *sku, text *identifier)
{
	bool		ours = identifier == NULL || text_equal(identifier, sku);

	values[attnum - 1] = ours ? (Datum) 0 : PointerGetDatum(identifier);
	nulls[attnum - 1] = ours;
}

/* Appends one publication of a channel to the log. */
static void
insert_publication(const PubChannel *pc, int64 seq, text *sku, text *channel_sku, int64 available)
{
	const IeCatalog *c = ie_catalog();
	Datum	   *values;
	bool	   *nulls;

	ie_row_alloc(IE_TABLE_publication, &values, &nulls);
	values[Anum_ie_publication_channel - 1] = PointerGetDatum(pc->code);
	values[Anum_ie_publication_seq - 1] = Int64GetDatum(seq);
	values[Anum_ie_publication_sku - 1] = PointerGetDatum(sku);
	values[Anum_ie_publication_available - 1] = Int64GetDatum(available);
	values[Anum_ie_publication_published_at - 1] = TimestampTzGetDatum(GetCurrentTimestamp());
	if (Anum_ie_publication_channel_sku != InvalidAttrNumber)
		set_identifier(values, nulls, Anum_ie_publication_channel_sku, sku, channel_sku);
	ie_row_insert(c->publication_rel, values, nulls);
}

/*
 * Records in channel_shown what the channel was told for sku: the row the
 * slot holds (found) replaced in place, or a new row (also when that row was
 * deleted meanwhile). seq is the sequence number to record; keep_seq keeps
 * the row's own (nothing was published under sku's row this time).
 */
static void
write_shown(const PubChannel *pc, TupleTableSlot *slot, bool found, text *sku, text *identifier,
			int64 available, int64 seq, bool keep_seq)
{
	const IeCatalog *c = ie_catalog();
	Datum	   *values;
	bool	   *nulls;

	if (found)
	{
		ItemPointerData tid = slot->tts_tid;

		ie_slot_copy(slot, &values, &nulls);
		ExecClearTuple(slot);
		values[Anum_ie_channel_shown_available - 1] = Int64GetDatum(available);
		if (!keep_seq)
			values[Anum_ie_channel_shown_seq - 1] = Int64GetDatum(seq);
		if (Anum_ie_channel_shown_channel_sku != InvalidAttrNumber)
			set_identifier(values, nulls, Anum_ie_channel_shown_channel_sku, sku, identifier);
		found = ie_row_update_unless_deleted(c->channel_shown_rel, &tid, values, nulls);
	}
	if (!found)
	{
		ie_row_alloc(IE_TABLE_channel_shown, &values, &nulls);
		values[Anum_ie_channel_shown_channel - 1] = PointerGetDatum(pc->code);
		values[Anum_ie_channel_shown_sku - 1] = PointerGetDatum(sku);
		values[Anum_ie_channel_shown_available - 1] = Int64GetDatum(available);
		values[Anum_ie_channel_shown_seq - 1] = Int64GetDatum(seq);
		if (Anum_ie_channel_shown_channel_sku != InvalidAttrNumber)
			set_identifier(values, nulls, Anum_ie_channel_shown_channel_sku, sku, identifier);
		ie_row_insert(c->channel_shown_rel, values, nulls);
	}
}

/* Are a and b the same identifier of sku on a channel (NULL: our sku, in rows from before 0.3.0)? */
static bool
same_identifier(text *sku, text *a, text *b)
{
	return text_equal(a ? a : sku, b ? b : sku);
}

/*
 * The sku an identifier names on the channel now: a listing's, or, on a
 * channel without listings, the item of that sku; NULL: nobody's.
 */
static text *
identifier_owner(const IeChannel *ch, text *identifier, Snapshot listings)
{
	text	   *base_uom;
	bool		lot_controlled;

	if (ch->has_listings)
		return ie_listing_sku(ch, identifier, listings);
	return ie_master_item(identifier, &base_uom, &lot_controlled, NULL) ? identifier : NULL;
}

/*
 * Another sku owns an identifier that sku told last: the channel is told
 * under it what that owner shows now (the owner's channel_shown row may
 * already hold that value and identifier, and then the owner publishes
 * nothing), and the owner's channel_shown records it unless the owner comes
 * later in this step (its row then still holds the identifier it may have
 * to tell 0).
 */
static void
tell_owner(PubStep *st, const PubChannel *pc, const IeChannel *ch, Snapshot listings, const int *locs,
		   text **skus, int after, int nskus, text *owner, text *identifier, int64 *nchanged)
{
	const IeCatalog *c = ie_catalog();
	IeChannel	rules;
	IeListing	listing;
	int64		value = 0;
	int64		seq;
	Relation	rel;
	Relation	idx;
	TupleTableSlot *slot;
	Datum		key[2] = {PointerGetDatum(pc->code), PointerGetDatum(owner)};
	bool		found;

	rel = table_open(c->channel_shown_rel, AccessShareLock);
	idx = index_open(c->channel_shown_pkey, AccessShareLock);
	slot = table_slot_create(rel, NULL);
	found = ie_index_lookup(rel, idx, SnapshotSelf, 2, key, ie_text_keys, slot);
	if (found)
	{
		bool		isnull;
		int64		shown_seq = DatumGetInt64(slot_getattr(slot, Anum_ie_channel_shown_seq, &isnull));
		Datum		d = slot_getattr(slot, Anum_ie_channel_shown_channel_sku, &isnull);

		/* Published by the owner earlier in this step, under it: told already. */
		if (shown_seq > pc->last_seq && same_identifier(owner, isnull ? NULL : DatumGetTextPP(d), identifier))
			goto done;
	}
	if (ie_channel_listing(ch, owner, listings, &rules, &listing))
		value = sku_availability(st, &rules, locs, owner);
	seq = pc->last_seq + ++(*nchanged);
	insert_publication(pc, seq, owner, identifier, value);
	if (after >= nskus || !bsearch(&owner, skus + after, nskus - after, sizeof(text *), sku_cmp))
		write_shown(pc, slot, found, owner, identifier, value, seq, false);
done:
	ExecDropSingleTupleTableSlot(slot);
	index_close(idx, AccessShareLock);
	table_close(rel, AccessShareLock);
}

/*
 * Publishes one due channel: its pending skus of earlier steps and the
 * step's touched skus. Returns the publications made. In the caller's
 * subtransaction and a memory context reset after it.
 */
static int64
publish_channel(PubStep *st, const PubChannel *pc)
{
	const IeCatalog *c = ie_catalog();
	IeChannel	ch;
	int		   *locs;
	text	  **skus;
	Snapshot	listings;
	int			nskus = st->ntouched;
	int64		nchanged = 0;
	Datum		args[4];
	Datum		key[2];
	Relation	shown_rel;
	Relation	shown_idx;
	TupleTableSlot *slot;
	MemoryContext per_sku;

	/* The touched skus, and the channel's pending ones (consumed). */
	if (pc->has_pending)
	{
		uint64		n;

		args[0] = PointerGetDatum(pc->code);
		n = run_plan(P_PENDING_TAKE, args, NULL, SPI_OK_DELETE_RETURNING);
		if (n == 0)
			st->held[st->nheld++] = pc->code;
		skus = palloc(sizeof(text *) * (st->ntouched + n + 1));
		for (uint64 i = 0; i < n; i++)
		{
			bool		isnull;
			Datum		d = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);

			skus[nskus + i] = DatumGetTextPCopy(d);
		}
		SPI_freetuptable(SPI_tuptable);
		memcpy(skus, st->touched, sizeof(text *) * st->ntouched);
		nskus = sort_distinct(skus, st->ntouched + (int) n);
	}
	else
		skus = st->touched;
	if (nskus == 0)
		return 0;

	/*
	 * The channel's rules as of the marks just taken: read after them, with
	 * the invalidations of the changes that made them taken in. Read before,
	 * a change that committed in between had its mark taken with the rules
	 * as they were, and nothing left to publish it.
	 */
	AcceptInvalidationMessages();
	ie_channel_require(pc->code, &ch);
	locs = palloc(sizeof(int) * Max(ch.nsources, 1));
	for (int i = 0; i < ch.nsources; i++)
		locs[i] = location_index(st, ch.sources[i].location);

	/*
	 * The listings as of the pending rows just read (a change of a listing
	 * marks its skus pending when it commits), whatever the channel cache
	 * says: in a snapshot taken now (see ie_channel_has_listings).
	 */
	listings = RegisterSnapshot(GetLatestSnapshot());
	ch.has_listings = ie_channel_has_listings(pc->code, listings);

	/*
	 * The channel row, locked FOR KEY SHARE: the foreign key of publication
	 * and channel_shown, whose rows are written below without triggers.
	 */
	key[0] = PointerGetDatum(pc->code);
	if (!ie_lock_referenced_row(c->channel_rel, c->channel_pkey, 1, key, ie_text_keys))
		ereport(ERROR,
				(errcode(ERRCODE_FOREIGN_KEY_VIOLATION),
				 errmsg("channel \"%s\" was deleted while it was being published", text_to_cstring(pc->code))));

	/*
	 * For each sku, in sku order: what the channel was last sent for it
	 * (channel_shown, which only the publisher writes, under the checkpoint
	 * lock: a row deleted meanwhile, by republish_drift() or a DBA, is
	 * written again), and, when the value differs, the publication with the
	 * next sequence number and channel_shown replaced. A sku deleted from
	 * the item master since it was marked (it never had stock) is skipped:
	 * it would fail the channel at every try. Each sku in a memory context
	 * of its own, reset for the next.
	 *
	 * Listings: a channel with listings shows a sku it does not list as 0,
	 * published once (when it was shown something else) and never for a sku
	 * it was never shown. Each publication carries the channel's identifier
	 * (channel_shown keeps the last one told); when a listing's identifier
	 * changes, the old identifier is told 0 before the new one its value.
	 */
	per_sku = AllocSetContextCreate(CurrentMemoryContext, "inventory_events publish sku",
									ALLOCSET_DEFAULT_SIZES);
	shown_rel = table_open(c->channel_shown_rel, AccessShareLock);
	shown_idx = index_open(c->channel_shown_pkey, AccessShareLock);
	slot = table_slot_create(shown_rel, NULL);
	for (int i = 0; i < nskus; i++)
	{
		MemoryContext old = MemoryContextSwitchTo(per_sku);
		int64		available;
		bool		found;
		bool		isnull;
		text	   *base_uom;
		bool		lot_controlled;
		IeChannel	rules;
		IeListing	listing;
		int64		shown = 0;
		text	   *shown_as = NULL;
		text	   *told_as;
		text	   *owner = NULL;
		bool		tell;

		CHECK_FOR_INTERRUPTS();
		MemoryContextReset(per_sku);
		if (!ie_master_item(skus[i], &base_uom, &lot_controlled, NULL))
		{
			MemoryContextSwitchTo(old);
			continue;
		}
		key[1] = PointerGetDatum(skus[i]);
		found = ie_index_lookup(shown_rel, shown_idx, SnapshotSelf, 2, key, ie_text_keys, slot);
		if (found)
		{
			shown = DatumGetInt64(slot_getattr(slot, Anum_ie_channel_shown_available, &isnull));
			if (Anum_ie_channel_shown_channel_sku != InvalidAttrNumber)
			{
				Datum		d = slot_getattr(slot, Anum_ie_channel_shown_channel_sku, &isnull);

				shown_as = isnull ? NULL : DatumGetTextPCopy(d);
			}
		}
		if (ie_channel_listing(&ch, skus[i], listings, &rules, &listing))
		{
			available = sku_availability(st, &rules, locs, skus[i]);
			told_as = listing.channel_sku ? listing.channel_sku : skus[i];
			tell = true;
		}
		else
		{
			/* Not listed: 0, once, under the identifier the channel knew. */
			if (!found || shown == 0)
			{
				MemoryContextSwitchTo(old);
				continue;
			}
			available = 0;
			told_as = listing.channel_sku ? listing.channel_sku : shown_as ? shown_as : skus[i];
			owner = identifier_owner(&ch, told_as, listings);
			tell = owner == NULL || text_equal(owner, skus[i]);
		}
		if (found && shown == available && same_identifier(skus[i], shown_as, told_as))
		{
			MemoryContextSwitchTo(old);
			continue;
		}
		if (found && shown != 0 && !same_identifier(skus[i], shown_as, told_as))
		{
			/* Another identifier now: the old one has nothing, or its new owner's value. */
			text	   *old_id = shown_as ? shown_as : skus[i];
			text	   *old_owner = identifier_owner(&ch, old_id, listings);

			if (old_owner == NULL || text_equal(old_owner, skus[i]))
			{
				nchanged++;
				insert_publication(pc, pc->last_seq + nchanged, skus[i], old_id, 0);
			}
			else
				tell_owner(st, pc, &ch, listings, locs, skus, i + 1, nskus, old_owner, old_id, &nchanged);
		}
		if (tell)
		{
			nchanged++;
			insert_publication(pc, pc->last_seq + nchanged, skus[i], told_as, available);
		}
		else
			tell_owner(st, pc, &ch, listings, locs, skus, i + 1, nskus, owner, told_as, &nchanged);

		write_shown(pc, slot, found, skus[i], told_as, available, pc->last_seq + nchanged, !tell);
		MemoryContextSwitchTo(old);
	}
	MemoryContextDelete(per_sku);
	UnregisterSnapshot(listings);
	ExecDropSingleTupleTableSlot(slot);
	index_close(shown_idx, AccessShareLock);
	table_close(shown_rel, AccessShareLock);
	if (nchanged == 0)
		return 0;

	args[0] = PointerGetDatum(pc->code);
	args[1] = Int64GetDatum(pc->last_seq + nchanged);
	run_plan(P_PUBLISHER, args, NULL, SPI_OK_INSERT);
	/* A wake-up, not data: listeners read publications_since(). */
	Async_Notify(psprintf("inventory_events.%s", text_to_cstring(pc->code)),
				 psprintf("{\"seq\":" INT64_FORMAT "}", pc->last_seq + nchanged));
	return nchanged;
}

/* A due channel, published in a subtransaction of its own. */
typedef struct ChannelStep
{
	PubStep    *st;
	const PubChannel *pc;
	int64		published;
} ChannelStep;

static void
channel_step(void *arg)
{
	ChannelStep *cs = arg;

	cs->published = publish_channel(cs->st, cs->pc);
	if (cs->pc->failing)
	{
		Datum		code = PointerGetDatum(cs->pc->code);

		run_plan(P_CLEAR, &code, NULL, SPI_OK_UPDATE);
	}
}

/* Errors a channel's subtransaction keeps, as PL/pgSQL's WHEN OTHERS catches them. */
static bool
channel_error_kept(int sqlerrcode)
{
	return sqlerrcode != ERRCODE_QUERY_CANCELED && sqlerrcode != ERRCODE_ASSERT_FAILURE;
}

/* Records a failure of a channel, as the PL/pgSQL handler did. */
static void
record_channel_error(text *code, ErrorData *edata)
{
	Datum		args[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};

	args[0] = PointerGetDatum(code);
	args[1] = CStringGetTextDatum(unpack_sql_state(edata->sqlerrcode));
	args[2] = CStringGetTextDatum(edata->message ? edata->message : "");
	if (edata->detail && edata->detail[0] != '\0')
		args[3] = CStringGetTextDatum(edata->detail);
	else
		nulls[3] = 'n';
	run_plan(P_RECORD, args, nulls, SPI_OK_SELECT);
}

static void
add_pending(text **channels, int nchannels, PubStep *st)
{
	Datum		args[2];

	if (nchannels == 0 || st->ntouched == 0)
		return;
	args[0] = text_array(channels, nchannels);
	args[1] = text_array(st->touched, st->ntouched);
	run_plan(P_PENDING_ADD, args, NULL, SPI_OK_INSERT);
}

/* A checkpoint as events_after() accepts it: digits{1,20}:digits{1,19}. */
static void
parse_checkpoint(const char *cp, Datum *xid, Datum *id)
{
	const char *colon = strchr(cp, ':');
	size_t		before = colon ? (size_t) (colon - cp) : 0;
	size_t		after = colon ? strlen(colon + 1) : 0;
	bool		ok = colon != NULL && before >= 1 && before <= 20 && after >= 1 && after <= 19 &&
		strspn(cp, "0123456789") == before && strspn(colon + 1, "0123456789") == after;

	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("invalid checkpoint \"%s\"", cp),
				 errhint("A checkpoint is '0:0' or the next_checkpoint of a row read before.")));
	*xid = DirectFunctionCall1(xid8in, CStringGetDatum(pnstrdup(cp, before)));
	*id = DirectFunctionCall1(int8in, CStringGetDatum(colon + 1));
}

/*
 * inventory_events.publish(max_events integer) returns table (events integer,
 * publications integer, next_due_ms bigint): one publisher step.
 */
PG_FUNCTION_INFO_V1(ie_publish);
Datum
ie_publish(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Datum		result[3] = {Int32GetDatum(0), Int32GetDatum(0), (Datum) 0};
	bool		rnulls[3] = {false, false, true};
	MemoryContext caller = CurrentMemoryContext;
	PubStep		st;
	MemoryContext per_channel;
	HASHCTL		hctl;
	PubChannel *channels;
	int			nchannels;
	text	  **waiting;
	int			nwaiting = 0;
	int32		events = 0;
	int64		publications = 0;
	bool		adopted;

	ie_init_materialized_srf(fcinfo);
	ie_write_call_start("inventory_events.publish()");

	/*
	 * Restored or moved here and not written since (see log_home): a restore
	 * may still be loading the tables below, so write nothing yet.
	 */
	PushActiveSnapshot(GetTransactionSnapshot());
	adopted = ie_log_adopted();
	PopActiveSnapshot();
	if (!adopted)
	{
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, result, rnulls);
		return (Datum) 0;
	}

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	memset(&st, 0, sizeof(st));
	st.cxt = AllocSetContextCreate(caller, "inventory_events publish", ALLOCSET_DEFAULT_SIZES);
	st.scratch = AllocSetContextCreate(st.cxt, "inventory_events publish scratch", ALLOCSET_DEFAULT_SIZES);
	per_channel = AllocSetContextCreate(st.cxt, "inventory_events publish channel", ALLOCSET_DEFAULT_SIZES);
	memset(&hctl, 0, sizeof(hctl));
	hctl.keysize = sizeof(AtpKey);
	hctl.entrysize = sizeof(AtpEntry);
	hctl.hash = atp_hash;
	hctl.match = atp_match;
	hctl.hcxt = st.cxt;
	st.atp = hash_create("inventory_events publish ATP", 1024, &hctl,
						 HASH_ELEM | HASH_FUNCTION | HASH_COMPARE | HASH_CONTEXT);
	st.maxlocations = 8;
	st.locations = MemoryContextAlloc(st.cxt, sizeof(text *) * st.maxlocations);
	MemoryContextSwitchTo(st.cxt);

	/* One publisher at a time. */
	run_plan(P_CP_INIT, NULL, NULL, SPI_OK_INSERT);
	if (run_plan(P_CP_LOCK, NULL, NULL, SPI_OK_SELECT) != 1)
		elog(ERROR, "inventory_events.publisher_checkpoint has no row");
	{
		bool		isnull;
		char	   *cp = TextDatumGetCString(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		Datum		args[4];
		char		nulls[4] = {' ', ' ', ' ', PG_ARGISNULL(0) ? 'n' : ' '};
		Datum		skus;

		SPI_freetuptable(SPI_tuptable);
		parse_checkpoint(cp, &args[0], &args[1]);

		/*
		 * The horizon in a snapshot taken after the checkpoint was locked, as
		 * events_after() takes it after publish() locked it; the events are
		 * read in a later one, which sees every event below it.
		 */
		PushActiveSnapshot(GetTransactionSnapshot());
		args[2] = FullTransactionIdGetDatum(ie_log_xmin());
		PopActiveSnapshot();
		args[3] = PG_ARGISNULL(0) ? (Datum) 0 : Int32GetDatum(PG_GETARG_INT32(0));
		run_plan(P_EVENTS, args, nulls, SPI_OK_SELECT);
		events = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		if (events > 0)
		{
			Datum		next_cp = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
			Datum	   *elems;
			int			n;

			next_cp = PointerGetDatum(DatumGetTextPCopy(next_cp));
			skus = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull);
			deconstruct_array(DatumGetArrayTypeP(skus), TEXTOID, -1, false, TYPALIGN_INT,
							  &elems, NULL, &n);
			st.touched = palloc(sizeof(text *) * Max(n, 1));
			for (int i = 0; i < n; i++)
				st.touched[i] = DatumGetTextPCopy(elems[i]);	/* 4-byte headers */
			st.ntouched = sort_distinct(st.touched, n);
			SPI_freetuptable(SPI_tuptable);
			run_plan(P_CP_UPDATE, &next_cp, NULL, SPI_OK_UPDATE);
		}
		else
			SPI_freetuptable(SPI_tuptable);
	}

	/*
	 * The stock and the reservations are read in one snapshot, taken after
	 * the events were: every event of the step is in it, and a later one is
	 * the next step's. Not with SnapshotSelf, as reserve() reads them under
	 * its locks: without them, a stock row whose update commits while its
	 * location is scanned can be seen twice (its old and new versions) or
	 * not at all, and a channel be shown twice the stock, or none.
	 */
	st.snapshot = RegisterSnapshot(GetLatestSnapshot());

	/* The channels, and which of them are due. */
	nchannels = (int) run_plan(P_CHANNELS, NULL, NULL, SPI_OK_SELECT);
	channels = palloc(sizeof(PubChannel) * Max(nchannels, 1));
	st.held = palloc(sizeof(text *) * Max(nchannels, 1));
	st.nheld = 0;
	waiting = palloc(sizeof(text *) * Max(nchannels, 1));
	for (int i = 0; i < nchannels; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;

		channels[i].code = DatumGetTextPCopy(SPI_getbinval(tup, desc, 1, &isnull));
		channels[i].last_seq = DatumGetInt64(SPI_getbinval(tup, desc, 2, &isnull));
		channels[i].failing = DatumGetBool(SPI_getbinval(tup, desc, 3, &isnull));
		channels[i].due = DatumGetBool(SPI_getbinval(tup, desc, 4, &isnull)) && !isnull;
		channels[i].has_pending = DatumGetBool(SPI_getbinval(tup, desc, 5, &isnull));
		if (!channels[i].due)
			waiting[nwaiting++] = channels[i].code;
	}
	SPI_freetuptable(SPI_tuptable);

	/* Throttled and failing channels collect the touched skus. */
	add_pending(waiting, nwaiting, &st);

	/*
	 * Each due channel in a subtransaction of its own: a channel that fails
	 * is recorded in worker_error and tried again after a backoff, and its
	 * skus stay pending; the other channels go on.
	 */
	for (int i = 0; i < nchannels; i++)
	{
		PubChannel *pc = &channels[i];
		ChannelStep cs;
		int64		n;
		ErrorData  *edata;

		if (!pc->due || (!pc->has_pending && st.ntouched == 0))
			continue;
		CHECK_FOR_INTERRUPTS();
		MemoryContextReset(per_channel);
		cs.st = &st;
		cs.pc = pc;
		cs.published = 0;
		edata = ie_subxact_run(channel_step, &cs, per_channel, channel_error_kept);
		MemoryContextSwitchTo(st.cxt);
		n = cs.published;

		if (edata)
		{
			record_channel_error(pc->code, edata);
			/* Its pending rows stayed (rolled back); the step's skus join them. */
			add_pending(&pc->code, 1, &st);
			FreeErrorData(edata);
		}
		else
			publications += n;
	}
	MemoryContextReset(per_channel);

	{
		Datum		held = text_array(st.held, st.nheld);

		run_plan(P_NEXT_DUE, &held, NULL, SPI_OK_SELECT);
	}
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		rnulls[2] = isnull;
		result[2] = isnull ? (Datum) 0 : d;
	}
	SPI_freetuptable(SPI_tuptable);
	elog(DEBUG1, "inventory_events publish: %d events, " INT64_FORMAT " publications, "
		 "ATP read " INT64_FORMAT " times, shared " INT64_FORMAT " times",
		 events, publications, st.atp_computed, st.atp_shared);

	MemoryContextSwitchTo(caller);
	UnregisterSnapshot(st.snapshot);
	MemoryContextDelete(st.cxt);
	if (SPI_finish() != SPI_OK_FINISH)
		elog(ERROR, "SPI_finish failed");
	result[0] = Int32GetDatum(events);
	if (publications > PG_INT32_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("integer out of range")));
	result[1] = Int32GetDatum((int32) publications);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, result, rnulls);
	return (Datum) 0;
}
