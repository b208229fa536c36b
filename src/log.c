/*
 * log.c
 *		The event log: inventory_events.append() and the append-only guard.
 *
 * Appending is two steps, so that batch ingest can isolate a bad event
 * without a subtransaction that writes:
 *
 *   ie_prepare_event()  validates and resolves the event (master data, unit
 *                       conversion, effect, late counts), settles
 *                       idempotency, and takes the stream lock and checks
 *                       expected_version; it only reads.
 *   ie_insert_event()   assigns the top transaction id, then draws the event
 *                       id, and inserts; the stock trigger derives the
 *                       position in the same transaction.
 */
#include "postgres.h"

#include "common/pg_prng.h"

#include "funcapi.h"

#include "access/genam.h"
#include "access/table.h"
#include "access/xact.h"
#include "commands/sequence.h"
#include "commands/trigger.h"
#include "common/int.h"
#include "executor/executor.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "replication/message.h"
#include "storage/proc.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/snapmgr.h"
#include "utils/xid8.h"

#include "catalog.h"
#include "errors.h"
#include "locks.h"
#include "log.h"
#include "stock.h"
#include "writer.h"
#include "loghome.h"
#include "logpart.h"
#include "shmem.h"
#include "snapshot.h"

static bool ie_allow_history_rewrite = false;

ie_atp_raised_hook_type ie_atp_raised_hook = NULL;
ie_event_appended_hook_type ie_event_appended_hook = NULL;
ie_key_without_event_hook_type ie_key_without_event_hook = NULL;

void
ie_log_init(void)
{
	DefineCustomBoolVariable("inventory_events.allow_history_rewrite",
							 "Lets a superuser UPDATE, DELETE or TRUNCATE the event log.",
							 "Every such statement is logged. Run inventory_events.rebuild() afterwards.",
							 &ie_allow_history_rewrite,
							 false,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);
}

/*
 * Can an event of this type raise the ATP of its sku? Such events take the
 * sku lock and fill the sku's backorders. (A moved event's to_bucket decides;
 * a safety_stock_set may lower the safety stock.)
 */
static bool
may_raise_atp(int event_type, int to_bucket)
{
	switch (event_type)
	{
		case IE_EV_RECEIVED:
		case IE_EV_ADJUSTED:
		case IE_EV_COUNTED:
		case IE_EV_RELEASED:
		case IE_EV_TRANSFER_RECEIVED:
		case IE_EV_SAFETY_STOCK_SET:
			return true;
		case IE_EV_MOVED:
			return to_bucket == IE_BUCKET_AVAILABLE;
		default:
			return false;
	}
}

/*
 * Does an event of this type (with these resolved buckets) move units that a
 * reservation or an allocation owns? Those enter the log only through the
 * functions that keep reservations, allocations and the log in step.
 */
static bool
is_lifecycle_event(int event_type, int from_bucket, int to_bucket)
{
	switch (event_type)
	{
		case IE_EV_RESERVED:
		case IE_EV_RELEASED:
		case IE_EV_PICKED:
		case IE_EV_SHIPPED:
		case IE_EV_PICK_SHORT:
			return true;
		case IE_EV_MOVED:
			return from_bucket == IE_BUCKET_RESERVED || from_bucket == IE_BUCKET_PICKED ||
				to_bucket == IE_BUCKET_RESERVED || to_bucket == IE_BUCKET_PICKED;
		default:
			return false;
	}
}

void
ie_input_init(IeEventInput *in)
{
	memset(in, 0, sizeof(*in));
	in->event_type = -1;
	in->qty_isnull = true;
	in->occurred_at_isnull = true;
	in->expected_version_isnull = true;
	in->from_bucket = IE_BUCKET_OUTSIDE;
	in->to_bucket = IE_BUCKET_OUTSIDE;
	in->expected_date_isnull = true;
	in->source_seq_isnull = true;
}

/* Preset (from, to) of each event type; moved takes them from the caller. */
static const struct
{
	int			from;
	int			to;
}			presets[IE_NUM_EVENT_TYPES] = {
	[IE_EV_RECEIVED] = {IE_BUCKET_OUTSIDE, IE_BUCKET_AVAILABLE},
	[IE_EV_ADJUSTED] = {IE_BUCKET_OUTSIDE, IE_BUCKET_AVAILABLE},	/* signed */
	[IE_EV_COUNTED] = {IE_BUCKET_OUTSIDE, IE_BUCKET_AVAILABLE},	/* resolved */
	[IE_EV_RESERVED] = {IE_BUCKET_AVAILABLE, IE_BUCKET_RESERVED},
	[IE_EV_RELEASED] = {IE_BUCKET_RESERVED, IE_BUCKET_AVAILABLE},
	[IE_EV_PICKED] = {IE_BUCKET_RESERVED, IE_BUCKET_PICKED},
	[IE_EV_SHIPPED] = {IE_BUCKET_PICKED, IE_BUCKET_OUTSIDE},
	[IE_EV_PICK_SHORT] = {IE_BUCKET_RESERVED, IE_BUCKET_OUTSIDE},
	[IE_EV_RETURNED] = {IE_BUCKET_OUTSIDE, IE_BUCKET_QUARANTINE},
	[IE_EV_DAMAGED] = {IE_BUCKET_AVAILABLE, IE_BUCKET_DAMAGED},
	[IE_EV_MOVED] = {IE_BUCKET_OUTSIDE, IE_BUCKET_OUTSIDE},
	[IE_EV_INBOUND_EXPECTED] = {IE_BUCKET_OUTSIDE, IE_BUCKET_INBOUND},
	[IE_EV_INBOUND_CANCELLED] = {IE_BUCKET_INBOUND, IE_BUCKET_OUTSIDE},
	[IE_EV_TRANSFER_OUT] = {IE_BUCKET_AVAILABLE, IE_BUCKET_OUTSIDE},
	[IE_EV_TRANSFER_IN_TRANSIT] = {IE_BUCKET_OUTSIDE, IE_BUCKET_IN_TRANSIT},
	[IE_EV_TRANSFER_RECEIVED] = {IE_BUCKET_IN_TRANSIT, IE_BUCKET_AVAILABLE},
	[IE_EV_SAFETY_STOCK_SET] = {IE_BUCKET_OUTSIDE, IE_BUCKET_OUTSIDE},
};

/* The most bytes of source and idempotency_key together (a unique index entry). */
#define IE_MAX_SOURCE_KEY_BYTES 2000

static const char *
bucket_name(int b)
{
	return b == IE_BUCKET_OUTSIDE ? "outside" : ie_bucket_names[b];
}

static void
unknown_master(const char *what, const char *value, const char *table)
{
	ereport(ERROR,
			(errcode(ERRCODE_FOREIGN_KEY_VIOLATION),
			 errmsg("unknown %s \"%s\"", what, value),
			 errhint("Add it to inventory_events.%s first; the ERP is the master of this data.", table)));
}

static void
invalid_event(const char *msg, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("%s", msg),
			 detail ? errdetail("%s", detail) : 0));
}

static bool
datum_text_eq(const text *a, Datum d, bool isnull)
{
	if (isnull)
		return a == NULL;
	return a != NULL && ie_text_equal(a, DatumGetTextPP(d));
}

/*
 * An idempotent retry must carry the same content as the event it repeats:
 * the same stream, type, quantity and unit as given, buckets, reference and
 * channel. Returns the first field that differs, or NULL.
 */
static const char *
retry_mismatch(const IePreparedEvent *p, TupleTableSlot *slot)
{
	const IeCatalog *c = ie_catalog();
	bool		isnull;
	Datum		d;

	slot_getallattrs(slot);
#define FIELD(attnum) (d = slot->tts_values[(attnum) - 1], isnull = slot->tts_isnull[(attnum) - 1])
	FIELD(Anum_ie_event_sku);
	if (!datum_text_eq(DatumGetTextPP(p->key.sku), d, isnull))
		return "sku";
	FIELD(Anum_ie_event_location);
	if (!datum_text_eq(DatumGetTextPP(p->key.location), d, isnull))
		return "location";
	FIELD(Anum_ie_event_lot);
	if (!datum_text_eq(DatumGetTextPP(p->key.lot), d, isnull))
		return "lot";
	FIELD(Anum_ie_event_event_type);
	if (DatumGetObjectId(d) != c->event_type_label[p->in->event_type])
		return "event_type";
	FIELD(Anum_ie_event_uom_qty);
	if (DatumGetInt64(d) != p->uom_qty)
		return "qty";
	FIELD(Anum_ie_event_uom);
	if (!datum_text_eq(p->uom, d, isnull))
		return "uom";
	if (p->in->event_type == IE_EV_MOVED)
	{
		FIELD(Anum_ie_event_from_bucket);
		if (isnull ? p->from_bucket != IE_BUCKET_OUTSIDE : DatumGetObjectId(d) != c->bucket_label[p->from_bucket])
			return "from_bucket";
		FIELD(Anum_ie_event_to_bucket);
		if (isnull ? p->to_bucket != IE_BUCKET_OUTSIDE : DatumGetObjectId(d) != c->bucket_label[p->to_bucket])
			return "to_bucket";
	}
	FIELD(Anum_ie_event_ref);
	if (!datum_text_eq(p->in->ref, d, isnull))
		return "ref";
	FIELD(Anum_ie_event_channel);
	if (!datum_text_eq(p->in->channel, d, isnull))
		return "channel";
#undef FIELD
	return NULL;
}

/*
 * The event recorded under an idempotency key: its id and version, and the
 * event itself in slot (NULL when its partition has been archived; the key
 * outlives it within the key retention window).
 */
typedef struct KeyedEvent
{
	int64		event_id;
	int64		version;
	Relation	rel;
	TupleTableSlot *slot;
} KeyedEvent;

/*
 * Looks for the event recorded under (source, key). With lock, takes the
 * key's lock first, so that an event committed after our snapshot is found
 * too (SnapshotSelf); without, the caller holds a lock that orders it after
 * every writer of that key (the lock of the key its operation started with).
 * From 0.3.0 on the keys are in event_key (the log is partitioned, and a
 * unique index of it cannot leave out the partition key); before, in the
 * log's unique index. keyed_event_done() releases what was found.
 */
static bool
keyed_event(text *source, text *key, bool lock, KeyedEvent *k)
{
	const IeCatalog *c = ie_catalog();
	Datum		keys[2] = {PointerGetDatum(source), PointerGetDatum(key)};
	bool		isnull;
	Relation	idx;
	bool		found;

	memset(k, 0, sizeof(*k));
	if (lock)
		ie_lock_key(IE_LOCK_IDEMPOTENCY, 2, keys);
	if (OidIsValid(c->event_key_rel))
	{
		Relation	keyrel = table_open(c->event_key_rel, AccessShareLock);
		TupleTableSlot *keyslot = table_slot_create(keyrel, NULL);
		TimestampTz recorded_at = 0;

		idx = index_open(c->event_key_pkey, AccessShareLock);
		found = ie_index_lookup(keyrel, idx, SnapshotSelf, 2, keys, ie_text_keys, keyslot);
		if (found)
		{
			k->event_id = DatumGetInt64(slot_getattr(keyslot, Anum_ie_event_key_event_id, &isnull));
			k->version = DatumGetInt64(slot_getattr(keyslot, Anum_ie_event_key_version, &isnull));
			recorded_at = DatumGetTimestampTz(slot_getattr(keyslot, Anum_ie_event_key_recorded_at, &isnull));
		}
		ExecDropSingleTupleTableSlot(keyslot);
		/* Locks kept to the end of the transaction (see ie_lookup_row_as). */
		index_close(idx, NoLock);
		table_close(keyrel, NoLock);
		if (found && !ie_log_event_fetch(k->event_id, recorded_at, SnapshotSelf, &k->slot, &k->rel))
		{
			if (k->slot)
			{
				ExecDropSingleTupleTableSlot(k->slot);
				table_close(k->rel, AccessShareLock);
			}
			k->slot = NULL;
			k->rel = NULL;
		}
		return found;
	}
	k->rel = table_open(c->event_rel, AccessShareLock);
	k->slot = table_slot_create(k->rel, NULL);
	idx = index_open(c->event_idempotency_idx, AccessShareLock);
	found = ie_index_lookup(k->rel, idx, SnapshotSelf, 2, keys, ie_text_keys, k->slot);
	index_close(idx, AccessShareLock);
	if (found)
	{
		k->event_id = DatumGetInt64(slot_getattr(k->slot, Anum_ie_event_id, &isnull));
		k->version = DatumGetInt64(slot_getattr(k->slot, Anum_ie_event_version, &isnull));
	}
	return found;
}

static void
keyed_event_done(KeyedEvent *k)
{
	if (k->slot)
	{
		ExecDropSingleTupleTableSlot(k->slot);
		table_close(k->rel, AccessShareLock);
	}
	k->slot = NULL;
	k->rel = NULL;
}

/*
 * Settles idempotency: true when p is a retry of an existing event. A retry
 * of an event whose partition is archived is taken as one (its content can no
 * longer be compared).
 */
static bool
settle_idempotency(IePreparedEvent *p)
{
	KeyedEvent	k;
	bool		found = keyed_event(p->source, p->in->idempotency_key, true, &k);

	if (found)
	{
		const char *field = k.slot ? retry_mismatch(p, k.slot) : NULL;

		p->existing_id = k.event_id;
		p->version = k.version;
		if (field)
			ereport(ERROR,
					(errcode(ERRCODE_IE_IDEMPOTENCY_CONFLICT),
					 errmsg("idempotency key \"%s\" of source \"%s\" was already used for a different event",
							text_to_cstring(p->in->idempotency_key), text_to_cstring(p->source)),
					 errdetail("Event %lld has the same key and a different %s.",
							   (long long) p->existing_id, field),
					 errhint("Use a new idempotency key for a new event.")));
	}
	keyed_event_done(&k);
	if (!found && ie_key_without_event_hook)
	{
		int64		reservation_id;

		if (ie_key_without_event_hook(p->source, p->in->idempotency_key, &reservation_id))
			ereport(ERROR,
					(errcode(ERRCODE_IE_IDEMPOTENCY_CONFLICT),
					 errmsg("idempotency key \"%s\" of source \"%s\" was already used for a different operation",
							text_to_cstring(p->in->idempotency_key), text_to_cstring(p->source)),
					 errdetail("A release of reservation %lld was recorded under it.", (long long) reservation_id),
					 errhint("Use a new idempotency key for a new event.")));
	}
	return found;
}

/*
 * inventory_events.idempotent_event(source, idempotency_key) returns bigint:
 * takes the key's lock and returns the id of the event recorded under it, or
 * null. The PL/pgSQL operations of the SQL objects before 0.3.0 check their key
 * with it first; from 0.3.0 on they are C and use ie_replay_operation.
 */
PG_FUNCTION_INFO_V1(ie_idempotent_event);
Datum
ie_idempotent_event(PG_FUNCTION_ARGS)
{
	IeMovement	m;

	if (PG_ARGISNULL(1))
		PG_RETURN_NULL();
	if (!ie_event_by_key(PG_ARGISNULL(0) ? cstring_to_text("") : PG_GETARG_TEXT_PP(0),
						 PG_GETARG_TEXT_PP(1), true, &m))
		PG_RETURN_NULL();
	PG_RETURN_INT64(m.event_id);
}

/*
 * The event recorded under (source, key), as a movement. With lock, takes
 * the key's lock first, so that an event committed after our snapshot is
 * found too; without, the caller holds a lock that orders it after every
 * writer of that key (the lock of the key its operation started with).
 */
bool
ie_event_by_key(text *source, text *key, bool lock, IeMovement *m)
{
	KeyedEvent	k;
	bool		found = keyed_event(source, key, lock, &k);

	if (found && k.slot == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("event %lld, recorded under idempotency key \"%s\" of source \"%s\", is archived",
						(long long) k.event_id, text_to_cstring(key), text_to_cstring(source)),
				 errdetail("The operation it belongs to cannot be replayed without it."),
				 errhint("Use a new idempotency key, or attach the archived partition again with inventory_events.attach_archived().")));
	if (found)
	{
		TupleTableSlot *slot = k.slot;

		slot_getallattrs(slot);
		m->event_id = DatumGetInt64(slot->tts_values[Anum_ie_event_id - 1]);
		m->event_type = ie_event_type_from_oid(DatumGetObjectId(slot->tts_values[Anum_ie_event_event_type - 1]));
		m->sku = DatumGetTextPCopy(slot->tts_values[Anum_ie_event_sku - 1]);
		m->location = DatumGetTextPCopy(slot->tts_values[Anum_ie_event_location - 1]);
		m->lot = DatumGetTextPCopy(slot->tts_values[Anum_ie_event_lot - 1]);
		m->qty = DatumGetInt64(slot->tts_values[Anum_ie_event_qty - 1]);
		m->channel = slot->tts_isnull[Anum_ie_event_channel - 1] ? NULL :
			DatumGetTextPCopy(slot->tts_values[Anum_ie_event_channel - 1]);
		m->ref = slot->tts_isnull[Anum_ie_event_ref - 1] ? NULL :
			DatumGetTextPCopy(slot->tts_values[Anum_ie_event_ref - 1]);
	}
	keyed_event_done(&k);
	return found;
}

/* The idempotency key of an operation's n-th event (1-based): key, key#2, ... */
text *
ie_nth_key(text *key, int n)
{
	if (key == NULL || n == 1)
		return key;
	return cstring_to_text(psprintf("%s#%d", text_to_cstring(key), n));
}

/*
 * Is the event found under an operation's key one that operation, with these
 * arguments, records? A key reused for another operation (another event
 * type, an append's key given to pick()), another order line or another sku
 * is a conflict (IE003), as for append() and reserve(): a retry applies
 * nothing, so answering it with another operation's events would drop the
 * new request without a word.
 */
StaticAssertDecl(IE_NUM_EVENT_TYPES <= 32, "event types must fit IE_EV_BIT's uint32");

void
ie_replay_check(text *source, text *key, const IeMovement *m, const IeReplayExpect *expect)
{
	const char *field = NULL;

	if (expect->event_types != 0 && (expect->event_types & IE_EV_BIT(m->event_type)) == 0)
		field = "event type";
	else if (expect->sku && !ie_text_equal(m->sku, expect->sku))
		field = "sku";
	else if (expect->channel && !ie_text_equal(m->channel, expect->channel))
		field = "channel";
	else if (expect->ref && !ie_text_equal(m->ref, expect->ref))
		field = "ref";
	if (field)
		ereport(ERROR,
				(errcode(ERRCODE_IE_IDEMPOTENCY_CONFLICT),
				 errmsg("idempotency key \"%s\" of source \"%s\" was already used for a different operation",
						text_to_cstring(key), text_to_cstring(source)),
				 errdetail("Event %lld has the same key and a different %s.", (long long) m->event_id, field),
				 errhint("Use a new idempotency key for a new operation.")));
}

/*
 * A retry of an operation under (source, key): the events it recorded (key,
 * key#2, ...), or false when the key is new. Takes the key's lock, which the
 * operation then holds: it comes first in the global lock order.
 */
bool
ie_replay_operation(text *source, text *key, const IeReplayExpect *expect, List **moves)
{
	IeMovement	m;
	text	   *src = source ? source : cstring_to_text("");

	if (key == NULL || !ie_event_by_key(src, key, true, &m))
		return false;
	ie_replay_check(src, key, &m, expect);
	*moves = lappend(*moves, memcpy(palloc(sizeof(m)), &m, sizeof(m)));
	for (int n = 2;; n++)
	{
		if (!ie_event_by_key(src, ie_nth_key(key, n), false, &m))
			break;
		*moves = lappend(*moves, memcpy(palloc(sizeof(m)), &m, sizeof(m)));
	}
	return true;
}

/* Rows of type inventory_events.movement. */
void
ie_emit_movements(FunctionCallInfo fcinfo, List *moves)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	const IeCatalog *c = ie_catalog();
	ListCell   *lc;

	foreach(lc, moves)
	{
		IeMovement *m = lfirst(lc);
		Datum		values[6];
		bool		nulls[6] = {false, false, false, false, false, false};

		values[0] = Int64GetDatum(m->event_id);
		values[1] = ObjectIdGetDatum(c->event_type_label[m->event_type]);
		values[2] = PointerGetDatum(m->sku);
		values[3] = PointerGetDatum(m->location);
		values[4] = PointerGetDatum(m->lot);
		values[5] = Int64GetDatum(m->qty);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
}

/*
 * Whether an event's effect moves units between the places a serial can be
 * (the shelf: available and reserved; picked, damaged, quarantine, in transit;
 * outside).
 */
static bool
moves_serial_places(const StockPosition *e)
{
	return e->q[IE_BUCKET_AVAILABLE] + e->q[IE_BUCKET_RESERVED] != 0 || e->q[IE_BUCKET_PICKED] != 0 ||
		e->q[IE_BUCKET_DAMAGED] != 0 || e->q[IE_BUCKET_QUARANTINE] != 0 || e->q[IE_BUCKET_IN_TRANSIT] != 0;
}

/* Notes the first event after the count's time that moved serial places. */
static void
note_moved_after(TupleTableSlot *event, bool included, void *arg)
{
	int64	   *moved_after = (int64 *) arg;
	bool		isnull;

	if (!included && *moved_after == 0 &&
		moves_serial_places(DatumGetStockPosition(slot_getattr(event, Anum_ie_event_effect, &isnull))))
		*moved_after = DatumGetInt64(slot_getattr(event, Anum_ie_event_id, &isnull));
}

/*
 * On-hand of a stream as of business time t: its events with occurred_at <= t,
 * from its newest snapshot that applies on (SnapshotSelf: under the stream
 * lock, every committed event and our own). *moved_after: the id of an event
 * with occurred_at > t that moved units between a serial's places, or 0
 * (none is before that snapshot: everything it folded occurred by t).
 */
static int64
on_hand_as_of(const IeStreamKey *key, TimestampTz t, int64 *moved_after)
{
	IeStreamFold fold;

	*moved_after = 0;
	ie_stream_fold(key, t, 0, true, SnapshotSelf, note_moved_after, moved_after, &fold);
	return ie_position_on_hand(&fold.position);
}

void
ie_prepare_event(const IeEventInput *in, IePreparedEvent *p)
{
	const IeCatalog *c = ie_catalog();
	text	   *base_uom;
	Datum		keys[3];
	Datum		factor_datum;
	const int	factor_att[1] = {Anum_ie_item_uom_factor};
	int64		factor = 1;
	bool		lot_controlled;
	bool		serialized;
	IeEventType type;
	char	   *sku;
	IeStockRow row;
	int			moved_from;

	memset(p, 0, sizeof(*p));
	p->in = in;

	if (in->sku == NULL || in->location == NULL || in->event_type < 0 || in->qty_isnull)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null",
						in->sku == NULL ? "sku" : in->location == NULL ? "location" :
						in->event_type < 0 ? "event_type" : "qty")));
	type = (IeEventType) in->event_type;
	sku = text_to_cstring(in->sku);

	/* Master data: the ERP is the master, nothing is created here. */
	if (!ie_master_item(in->sku, &base_uom, &lot_controlled, &serialized))
		unknown_master("sku", sku, "item");
	if (!ie_master_location(in->location))
		unknown_master("location", text_to_cstring(in->location), "location");

	if (in->channel && !ie_master_channel(in->channel))
		unknown_master("channel", text_to_cstring(in->channel), "channel");

	if (in->lot && VARSIZE_ANY_EXHDR(in->lot) > 0)
	{
		if (type == IE_EV_SAFETY_STOCK_SET)
			invalid_event("safety stock is set per sku and location, not per lot",
						  "Give no lot with a safety_stock_set event.");
		if (!lot_controlled)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("item \"%s\" is not lot-controlled, but lot \"%s\" was given",
							sku, text_to_cstring(in->lot))));
		keys[0] = PointerGetDatum(in->sku);
		keys[1] = PointerGetDatum(in->lot);
		if (!ie_lookup_row(c->lot_rel, c->lot_pkey, 2, keys, ie_text_keys, 0, NULL, NULL))
			ereport(ERROR,
					(errcode(ERRCODE_FOREIGN_KEY_VIOLATION),
					 errmsg("unknown lot \"%s\" of sku \"%s\"", text_to_cstring(in->lot), sku),
					 errhint("Add it to inventory_events.lot first.")));
		p->key.lot = PointerGetDatum(in->lot);
	}
	else
	{
		/* Safety stock is per sku and location, not per lot. */
		if (lot_controlled && type != IE_EV_SAFETY_STOCK_SET)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("item \"%s\" is lot-controlled: a lot is required", sku)));
		p->key.lot = CStringGetTextDatum("");
	}
	p->key.sku = PointerGetDatum(in->sku);
	p->key.location = PointerGetDatum(in->location);

	/* Unit of measure: the base unit, or one of the item's units. */
	if (in->uom == NULL || ie_text_equal(in->uom, base_uom))
		p->uom = base_uom;
	else
	{
		keys[0] = PointerGetDatum(in->sku);
		keys[1] = PointerGetDatum(in->uom);
		if (!ie_lookup_row(c->item_uom_rel, c->item_uom_pkey, 2, keys, ie_text_keys, 1, factor_att, &factor_datum))
			ereport(ERROR,
					(errcode(ERRCODE_FOREIGN_KEY_VIOLATION),
					 errmsg("unknown unit of measure \"%s\" for sku \"%s\"", text_to_cstring(in->uom), sku),
					 errhint("Add it to inventory_events.item_uom with its factor to the base unit \"%s\".",
							 text_to_cstring(base_uom))));
		factor = DatumGetInt64(factor_datum);
		p->uom = in->uom;
	}

	/* Quantity: positive, except adjusted (signed, not zero) and counted/safety stock (>= 0). */
	p->uom_qty = in->qty;
	if (type == IE_EV_ADJUSTED ? in->qty == 0 :
		(type == IE_EV_COUNTED || type == IE_EV_SAFETY_STOCK_SET) ? in->qty < 0 : in->qty <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid quantity " INT64_FORMAT " for event type %s", in->qty, ie_event_type_names[type]),
				 errdetail("%s", type == IE_EV_ADJUSTED ? "An adjustment is a signed, non-zero quantity." :
						   (type == IE_EV_COUNTED || type == IE_EV_SAFETY_STOCK_SET) ?
						   "The quantity is an absolute level and cannot be negative." :
						   "The quantity must be positive.")));
	if (pg_mul_s64_overflow(in->qty, factor, &p->qty))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("quantity " INT64_FORMAT " %s is out of range in base units", in->qty,
						text_to_cstring(p->uom))));

	/* Buckets: presets, or the caller's for moved. */
	if (type == IE_EV_MOVED)
	{
		if (in->from_bucket == in->to_bucket)
			invalid_event("a moved event needs two different buckets",
						  "Give from_bucket and to_bucket; null on one side means outside.");
		p->from_bucket = in->from_bucket;
		p->to_bucket = in->to_bucket;
	}
	else
	{
		if ((in->from_bucket != IE_BUCKET_OUTSIDE && in->from_bucket != presets[type].from) ||
			(in->to_bucket != IE_BUCKET_OUTSIDE && in->to_bucket != presets[type].to))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("a %s event always moves from %s to %s", ie_event_type_names[type],
							bucket_name(presets[type].from), bucket_name(presets[type].to)),
					 errhint("Use a moved event to name the buckets.")));
		p->from_bucket = presets[type].from;
		p->to_bucket = presets[type].to;
	}

	/*
	 * The SQL objects of 0.1.0 and 0.2.0 append lifecycle events through
	 * append() itself; from 0.3.0 on only append_lifecycle() and the C
	 * functions that own reservations may.
	 */
	if (!in->lifecycle && c->sql_version >= IE_SQL_0_3_0 &&
		is_lifecycle_event(type, p->from_bucket, p->to_bucket))
	{
		if (type == IE_EV_MOVED)
			ereport(ERROR,
					(errcode(ERRCODE_IE_LIFECYCLE_EVENT),
					 errmsg("moved events into or out of reserved or picked are appended only by the functions that own reservations"),
					 errdetail("Reservations and allocations must stay in step with the log."),
					 errhint("Use inventory_events.reserve(), release(), pick(), ship() or pick_short().")));
		ereport(ERROR,
				(errcode(ERRCODE_IE_LIFECYCLE_EVENT),
				 errmsg("%s events are appended only by the functions that own reservations",
						ie_event_type_names[type]),
				 errdetail("Reservations and allocations must stay in step with the log."),
				 errhint("Use inventory_events.reserve(), release(), pick(), ship() or pick_short().")));
	}

	if (in->expected_date_isnull == false && type != IE_EV_INBOUND_EXPECTED &&
		type != IE_EV_TRANSFER_IN_TRANSIT)
		invalid_event("expected_date is only for inbound_expected and transfer_in_transit events", NULL);

	p->source = in->source ? in->source : cstring_to_text("");

	/*
	 * (source, idempotency_key) is a unique index entry: refuse here what the
	 * index would refuse at insert time (program_limit_exceeded, about 2.7 kB
	 * after compression), so that a batch dead-letters the element.
	 */
	if (VARSIZE_ANY_EXHDR(p->source) + (in->idempotency_key ? VARSIZE_ANY_EXHDR(in->idempotency_key) : 0) >
		IE_MAX_SOURCE_KEY_BYTES)
		ereport(ERROR,
				(errcode(ERRCODE_STRING_DATA_RIGHT_TRUNCATION),
				 errmsg("source and idempotency_key are too long"),
				 errdetail("Together they take %d bytes; at most %d are allowed.",
						   (int) (VARSIZE_ANY_EXHDR(p->source) +
								  (in->idempotency_key ? VARSIZE_ANY_EXHDR(in->idempotency_key) : 0)),
						   IE_MAX_SOURCE_KEY_BYTES)));
	p->occurred_at = in->occurred_at_isnull ? ie_recording_time() : in->occurred_at;

	/* Idempotency first: a retry succeeds even after the stream moved on. */
	if (in->idempotency_key && settle_idempotency(p))
	{
		p->duplicate = true;
		if (in->serials)
			in->serials->replayed = true;
		return;
	}

	/*
	 * An event that may raise the sku's ATP may fill its backorders, which
	 * needs the sku lock; take it before the stream lock (the global order).
	 */
	if (may_raise_atp(type, p->to_bucket))
		ie_lock_sku(in->sku);

	/* Under the stream lock: version check, then the effect. */
	ie_lock_stream(&p->key);
	ie_read_stock(&p->key, &row);

	p->new_stream = !row.exists;

	if (!in->expected_version_isnull && in->expected_version != row.version)
		ereport(ERROR,
				(errcode(ERRCODE_IE_VERSION_CONFLICT),
				 errmsg("stream is at version %lld, not the expected version %lld",
						(long long) row.version, (long long) in->expected_version),
				 errdetail("Stream sku \"%s\", location \"%s\", lot \"%s\".", sku,
						   text_to_cstring(in->location), TextDatumGetCString(p->key.lot)),
				 errhint("Read the stream again and retry with its current version.")));

	moved_from = p->from_bucket;
	if (type == IE_EV_SAFETY_STOCK_SET)
		;						/* no bucket changes */
	else if (type == IE_EV_ADJUSTED || type == IE_EV_COUNTED)
	{
		int64		delta = p->qty;
		int64		moved_after = 0;

		/*
		 * A count states "on-hand was N at occurred_at": the adjustment is the
		 * difference to the position as of that time, so movements recorded
		 * for later times stay applied when the count arrives late.
		 */
		if (type == IE_EV_COUNTED &&
			pg_sub_s64_overflow(p->qty, on_hand_as_of(&p->key, p->occurred_at, &moved_after), &delta))
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("count adjustment out of range")));

		/*
		 * Its serials, though, are placed where the count finds them now (a
		 * serial has no position as of a time): a count with serials dated
		 * before a later movement would take that movement's serials back.
		 * This includes a movement of a transaction that started after the
		 * count's and committed before it took the stream lock.
		 */
		if (moved_after != 0 && serialized && in->serials != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_IE_SERIAL_MISPLACED),
					 errmsg("a count with serials of sku \"%s\" at location \"%s\" is dated before a later movement",
							sku, text_to_cstring(in->location)),
					 errdetail("Event %lld occurred after the count's time and moved units; serials are known only where they are now.",
							   (long long) moved_after),
					 errhint("Count with serials as of now (retry the count), or count the quantity alone.")));
		p->effect.q[IE_BUCKET_AVAILABLE] = delta;
		if (delta < 0)
		{
			p->from_bucket = IE_BUCKET_AVAILABLE;
			p->to_bucket = IE_BUCKET_OUTSIDE;
		}
		moved_from = IE_BUCKET_OUTSIDE;	/* physical truth may take available below zero */
	}
	else
	{
		if (p->from_bucket != IE_BUCKET_OUTSIDE)
			p->effect.q[p->from_bucket] = -p->qty;
		if (p->to_bucket != IE_BUCKET_OUTSIDE)
			p->effect.q[p->to_bucket] = p->qty;
	}

	if (moved_from != IE_BUCKET_OUTSIDE && row.pos.q[moved_from] < p->qty)
		ereport(ERROR,
				(errcode(ERRCODE_IE_INSUFFICIENT_STOCK),
				 errmsg("insufficient %s stock of sku \"%s\" at location \"%s\"",
						ie_bucket_names[moved_from], sku, text_to_cstring(in->location)),
				 errdetail("The %s event takes " INT64_FORMAT " from %s, which holds " INT64_FORMAT ".",
						   ie_event_type_names[type], p->qty, ie_bucket_names[moved_from],
						   row.pos.q[moved_from])));

	/*
	 * Overflow of the resulting position, a bucket or its on-hand total, is
	 * the event's fault: refuse it here, before the stock trigger would.
	 */
	ie_position_add(&row.pos, &p->effect);
	(void) ie_position_on_hand(&row.pos);
	p->available_after = row.pos.q[IE_BUCKET_AVAILABLE];

	/* Serials: which the event moves, checked against where they are. */
	if (serialized || in->serials)
		ie_serials_plan(&p->serial_move, serialized, type, p->from_bucket, p->to_bucket, p->qty,
						p->key.sku, p->key.location, p->key.lot, in->channel, in->ref, in->serials);

	p->version = row.version + 1;
}

/* The bucket as an enum Datum; outside is NULL. */
static void
set_bucket(Datum *values, bool *nulls, int attnum, int bucket)
{
	nulls[attnum - 1] = (bucket == IE_BUCKET_OUTSIDE);
	values[attnum - 1] = bucket == IE_BUCKET_OUTSIDE ? (Datum) 0 :
		ObjectIdGetDatum(ie_catalog()->bucket_label[bucket]);
}

static void
set_text(Datum *values, bool *nulls, int attnum, text *t)
{
	nulls[attnum - 1] = (t == NULL);
	values[attnum - 1] = PointerGetDatum(t);
}

/*
 * A random (version 4) UUID for an event's correlation or causation id. From
 * a per-process generator seeded once from pg_strong_random: libuuid made
 * six system calls per UUID (getpid, getrandom, ...), a tenth of an
 * append's time on a virtual machine. These ids need to be unique, not
 * unpredictable.
 */
static pg_uuid_t *
new_uuid(void)
{
	static pg_prng_state state;
	static int	seeded_pid = 0;
	pg_uuid_t  *u = palloc(sizeof(pg_uuid_t));
	uint64		hi;
	uint64		lo;

	if (seeded_pid != MyProcPid)
	{
		if (!pg_prng_strong_seed(&state))
			pg_prng_seed(&state, (uint64) MyProcPid ^ (uint64) GetCurrentTimestamp());
		seeded_pid = MyProcPid;
	}
	hi = pg_prng_uint64(&state);
	lo = pg_prng_uint64(&state);
	for (int i = 0; i < 8; i++)
	{
		u->data[i] = (unsigned char) (hi >> (56 - 8 * i));
		u->data[8 + i] = (unsigned char) (lo >> (56 - 8 * i));
	}
	u->data[6] = (u->data[6] & 0x0f) | 0x40;	/* version 4 */
	u->data[8] = (u->data[8] & 0x3f) | 0x80;	/* RFC 4122 variant */
	return u;
}

int64
ie_insert_event(const IePreparedEvent *p)
{
	const IeCatalog *c = ie_catalog();
	const IeEventInput *in = p->in;
	FullTransactionId fxid;
	int64		id;
	IeWriter	local;
	IeWriter   *w;
	TupleTableSlot *slot;
	Datum	   *values;
	bool	   *nulls;
	pg_uuid_t  *correlation;
	TimestampTz recorded_at;
	StockPosition *effect = palloc(sizeof(StockPosition));

	/*
	 * A new stream: its stock row will reference the item and the location.
	 * Lock both as a foreign key check would, so that a concurrent DELETE (or
	 * key UPDATE) of either waits for this event and then fails, instead of
	 * committing past it and leaving the stream orphaned
	 * (master_data_delete.spec). Here, in the caller's transaction, and not
	 * in ie_prepare_event: a row lock taken in a batch element's
	 * validation subtransaction would give each element an xid of its own.
	 */
	if (p->new_stream)
	{
		Datum		k[1] = {p->key.sku};

		if (!ie_lock_referenced_row(c->item_rel, c->item_pkey, 1, k, ie_text_keys))
			unknown_master("sku", TextDatumGetCString(p->key.sku), "item");
		k[0] = p->key.location;
		if (!ie_lock_referenced_row(c->location_rel, c->location_pkey, 1, k, ie_text_keys))
			unknown_master("location", TextDatumGetCString(p->key.location), "location");
	}

	/*
	 * The top transaction id before the event id: readers that take events
	 * below their snapshot's xmin, ordered by (xid, id), then never see an id
	 * drawn by a transaction that has no xid yet. (The log transaction id:
	 * the transaction id plus the offset of the log's home, see loghome.c.)
	 */
	fxid = ie_log_xid();
	id = nextval_internal(c->event_id_seq, false);

	recorded_at = ie_recording_time();
	w = ie_writer_get(ie_log_partition_for(recorded_at, false), &local);
	slot = w->slot;
	values = slot->tts_values;
	nulls = slot->tts_isnull;
	ie_row_new_nulls(IE_TABLE_event, nulls);

	memcpy(effect, &p->effect, sizeof(StockPosition));
	correlation = in->correlation_id ? in->correlation_id : new_uuid();

	values[Anum_ie_event_id - 1] = Int64GetDatum(id);
	values[Anum_ie_event_sku - 1] = p->key.sku;
	values[Anum_ie_event_location - 1] = p->key.location;
	values[Anum_ie_event_lot - 1] = p->key.lot;
	values[Anum_ie_event_version - 1] = Int64GetDatum(p->version);
	values[Anum_ie_event_event_type - 1] = ObjectIdGetDatum(c->event_type_label[in->event_type]);
	set_bucket(values, nulls, Anum_ie_event_from_bucket, p->from_bucket);
	set_bucket(values, nulls, Anum_ie_event_to_bucket, p->to_bucket);
	values[Anum_ie_event_qty - 1] = Int64GetDatum(p->qty);
	values[Anum_ie_event_uom - 1] = PointerGetDatum(p->uom);
	values[Anum_ie_event_uom_qty - 1] = Int64GetDatum(p->uom_qty);
	values[Anum_ie_event_effect - 1] = StockPositionGetDatum(effect);
	values[Anum_ie_event_occurred_at - 1] = TimestampTzGetDatum(p->occurred_at);
	values[Anum_ie_event_recorded_at - 1] = TimestampTzGetDatum(recorded_at);
	values[Anum_ie_event_source - 1] = PointerGetDatum(p->source);
	nulls[Anum_ie_event_source_seq - 1] = in->source_seq_isnull;
	values[Anum_ie_event_source_seq - 1] = Int64GetDatum(in->source_seq);
	set_text(values, nulls, Anum_ie_event_idempotency_key, in->idempotency_key);
	values[Anum_ie_event_correlation_id - 1] = UUIDPGetDatum(correlation);
	/* The first event of a chain is caused by its own correlation. */
	values[Anum_ie_event_causation_id - 1] = UUIDPGetDatum(in->causation_id ? in->causation_id : correlation);
	set_text(values, nulls, Anum_ie_event_channel, in->channel);
	set_text(values, nulls, Anum_ie_event_ref, in->ref);
	set_text(values, nulls, Anum_ie_event_reason, in->reason);
	nulls[Anum_ie_event_expected_date - 1] = in->expected_date_isnull;
	values[Anum_ie_event_expected_date - 1] = DateADTGetDatum(in->expected_date);
	values[Anum_ie_event_xid - 1] = FullTransactionIdGetDatum(fxid);
	nulls[Anum_ie_event_payload - 1] = (in->payload == NULL);
	values[Anum_ie_event_payload - 1] = JsonbPGetDatum(in->payload);
	ie_writer_fill_defaults(w);
	ExecStoreVirtualTuple(slot);

	/* Fire the stock trigger now, not at the end of the calling statement. */
	ie_stock_expect_append(id);
	AfterTriggerBeginQuery();
	ExecSimpleRelationInsert(w->rri, w->estate, slot);
	/* The trigger functions were looked up in the writer's memory (writer.c). */
	AfterTriggerEndQuery(w->estate);
	ie_stock_expect_append(0);
	ie_writer_done(w);

	ie_serials_apply(&p->serial_move, p->key.sku, p->key.location, p->key.lot, id, in->channel, in->ref);

	if (ie_shared)
		pg_atomic_fetch_add_u64(&ie_shared->events_appended, 1);
	if (ie_event_appended_hook)
		ie_event_appended_hook();

	/* Physical truth (a count, an adjustment) took available below zero. */
	if (p->available_after < 0 && p->effect.q[IE_BUCKET_AVAILABLE] < 0)
		ie_record_exception("negative_available", in->sku, in->location, in->channel, in->ref,
							psprintf("event %lld left available at %lld", (long long) id,
									 (long long) p->available_after));

	/*
	 * More ATP: whoever waits for the sku comes first (this holds the sku
	 * lock). The reservation layer fills its backorders there.
	 */
	if ((p->effect.q[IE_BUCKET_AVAILABLE] > 0 || in->event_type == IE_EV_SAFETY_STOCK_SET) &&
		ie_atp_raised_hook)
		ie_atp_raised_hook(in->sku);
	return id;
}

/* Records an exception for a person to look at (kinds: see the table's CHECK). */
void
ie_record_exception(const char *kind, text *sku, text *location, text *channel,
					text *ref, const char *detail)
{
	Oid			relid = ie_catalog()->exception_rel;
	Datum	   *values;
	bool	   *nulls;

	ie_row_alloc(IE_TABLE_exception, &values, &nulls);
	values[Anum_ie_exception_id - 1] = Int64GetDatum(ie_next_identity(relid));
	values[Anum_ie_exception_kind - 1] = CStringGetTextDatum(kind);
#define SET_TEXT(att, t) \
	do { values[(att) - 1] = PointerGetDatum(t); nulls[(att) - 1] = ((t) == NULL); } while (0)
	SET_TEXT(Anum_ie_exception_sku, sku);
	SET_TEXT(Anum_ie_exception_location, location);
	SET_TEXT(Anum_ie_exception_channel, channel);
	SET_TEXT(Anum_ie_exception_ref, ref);
#undef SET_TEXT
	values[Anum_ie_exception_detail - 1] = CStringGetTextDatum(detail ? detail : "");
	values[Anum_ie_exception_created_at - 1] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	nulls[Anum_ie_exception_resolved_at - 1] = true;
	ie_row_insert(relid, values, nulls);
}

#define ARG_TEXT(n) (PG_ARGISNULL(n) ? NULL : PG_GETARG_TEXT_PP(n))

/*
 * inventory_events.append(sku, location, event_type, qty, source,
 *     idempotency_key, occurred_at, lot, uom, ref, channel, expected_version,
 *     payload, from_bucket, to_bucket, reason, expected_date, source_seq,
 *     correlation_id, causation_id, serials) returns bigint
 */
static Datum
append_from_args(FunctionCallInfo fcinfo, bool lifecycle)
{
	IeEventInput in;
	int64		id;

	ie_write_call_start(lifecycle ? "inventory_events.append_lifecycle()" : "inventory_events.append()");
	ie_input_init(&in);
	in.lifecycle = lifecycle;
	in.sku = ARG_TEXT(0);
	in.location = ARG_TEXT(1);
	if (!PG_ARGISNULL(2))
		in.event_type = ie_event_type_from_oid(PG_GETARG_OID(2));
	in.qty_isnull = PG_ARGISNULL(3);
	if (!in.qty_isnull)
		in.qty = PG_GETARG_INT64(3);
	in.source = ARG_TEXT(4);
	in.idempotency_key = ARG_TEXT(5);
	in.occurred_at_isnull = PG_ARGISNULL(6);
	if (!in.occurred_at_isnull)
		in.occurred_at = PG_GETARG_TIMESTAMPTZ(6);
	in.lot = ARG_TEXT(7);
	in.uom = ARG_TEXT(8);
	in.ref = ARG_TEXT(9);
	in.channel = ARG_TEXT(10);
	in.expected_version_isnull = PG_ARGISNULL(11);
	if (!in.expected_version_isnull)
		in.expected_version = PG_GETARG_INT64(11);
	in.payload = PG_ARGISNULL(12) ? NULL : PG_GETARG_JSONB_P(12);
	if (!PG_ARGISNULL(13))
		in.from_bucket = ie_bucket_from_oid(PG_GETARG_OID(13));
	if (!PG_ARGISNULL(14))
		in.to_bucket = ie_bucket_from_oid(PG_GETARG_OID(14));
	in.reason = ARG_TEXT(15);
	in.expected_date_isnull = PG_ARGISNULL(16);
	if (!in.expected_date_isnull)
		in.expected_date = PG_GETARG_DATEADT(16);
	in.source_seq_isnull = PG_ARGISNULL(17);
	if (!in.source_seq_isnull)
		in.source_seq = PG_GETARG_INT64(17);
	in.correlation_id = PG_ARGISNULL(18) ? NULL : PG_GETARG_UUID_P(18);
	in.causation_id = PG_ARGISNULL(19) ? NULL : PG_GETARG_UUID_P(19);
	/* serials: from 0.3.0 on */
	if (PG_NARGS() > 20 && !PG_ARGISNULL(20))
		in.serials = ie_serial_pool_from_array(PG_GETARG_ARRAYTYPE_P(20));
	id = ie_append_input(&in);
	ie_serial_pool_finish(in.serials);
	PG_RETURN_INT64(id);
}

/*
 * Appends one event given as input, as append() does: its id, or on an
 * idempotent retry the id of the event it repeats.
 */
int64
ie_append_input(const IeEventInput *in)
{
	IePreparedEvent p;

	ie_prepare_event(in, &p);
	return p.duplicate ? p.existing_id : ie_insert_event(&p);
}

PG_FUNCTION_INFO_V1(ie_append);
Datum
ie_append(PG_FUNCTION_ARGS)
{
	return append_from_args(fcinfo, false);
}

/*
 * inventory_events.append_lifecycle(): append() that also takes lifecycle
 * events. Internal: executable by no granted role, called by the functions
 * that own reservations (release, pick, ship, pick_short).
 */
PG_FUNCTION_INFO_V1(ie_append_lifecycle);
Datum
ie_append_lifecycle(PG_FUNCTION_ARGS)
{
	return append_from_args(fcinfo, true);
}

/*
 * The append-only guard: BEFORE UPDATE OR DELETE FOR EACH ROW and BEFORE
 * TRUNCATE FOR EACH STATEMENT on the event log, enabled ALWAYS so that it
 * fires in every session_replication_role.
 *
 * The one way past it is a superuser with inventory_events.allow_history_rewrite
 * on (or one who disables the trigger). Every row rewritten that way is logged
 * and written into the WAL as a transactional logical decoding message under
 * the prefix "inventory_events", so that a subscriber of any output plugin
 * learns of it; the inventory_events output plugin also turns the change itself
 * into a "rewrite" record.
 */
PG_FUNCTION_INFO_V1(ie_event_guard);
Datum
ie_event_guard(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	const char *op;
	char	   *user;
	StringInfoData message;

	if (!CALLED_AS_TRIGGER(fcinfo))
		elog(ERROR, "ie_event_guard must be called as a trigger");
	op = TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event) ? "UPDATE" :
		TRIGGER_FIRED_BY_DELETE(trigdata->tg_event) ? "DELETE" : "TRUNCATE";

	if (!(ie_allow_history_rewrite && superuser()))
		ereport(ERROR,
				(errcode(ERRCODE_IE_APPEND_ONLY),
				 errmsg("%s of inventory_events.event is not allowed: the event log is append-only", op),
				 errhint("Append a correcting event instead (for example an adjusted event).")));

	/*
	 * A TRUNCATE of the log fires the guard of the log and of each of its
	 * partitions (each has its own, a TRUNCATE trigger is not inherited): one
	 * message per command.
	 */
	if (TRIGGER_FIRED_BY_TRUNCATE(trigdata->tg_event))
	{
		static LocalTransactionId truncate_lxid = InvalidLocalTransactionId;
		static CommandId truncate_cid = InvalidCommandId;

		if (MyProc->lxid == truncate_lxid && GetCurrentCommandId(false) == truncate_cid)
			return PointerGetDatum(NULL);
		truncate_lxid = MyProc->lxid;
		truncate_cid = GetCurrentCommandId(false);
	}

	user = GetUserNameFromId(GetUserId(), false);
	initStringInfo(&message);
	appendStringInfo(&message, "{\"rewrite\":\"%s\",", op);
	if (!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event))
	{
		/* The statement-level guard of the SQL objects before 0.3.0, or TRUNCATE. */
		ereport(LOG,
				(errmsg("inventory_events: %s of the event log by superuser \"%s\"", op, user),
				 errdetail("inventory_events.allow_history_rewrite is on; stock positions must be rebuilt.")));
	}
	else
	{
		bool		isnull;
		int64		event_id = DatumGetInt64(heap_getattr(trigdata->tg_trigtuple, Anum_ie_event_id,
														  RelationGetDescr(trigdata->tg_relation), &isnull));

		ereport(LOG,
				(errmsg("inventory_events: %s of event %lld by superuser \"%s\"",
						op, (long long) event_id, user),
				 errdetail("inventory_events.allow_history_rewrite is on; stock positions must be rebuilt.")));
		appendStringInfo(&message, "\"event_id\":%lld,", (long long) event_id);
	}
	appendStringInfoString(&message, "\"user\":");
	escape_json(&message, user);
	appendStringInfoChar(&message, '}');
	LogLogicalMessage(IE_MESSAGE_PREFIX, message.data, message.len, true);

	if (!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event))
		return PointerGetDatum(NULL);
	return PointerGetDatum(TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event) ?
						   trigdata->tg_newtuple : trigdata->tg_trigtuple);
}
