/*
 * ingest.c
 *		Batch ingest: inventory_events.ingest(jsonb) and
 *		inventory_events.ingest_staged(integer).
 *
 * Each element of the array is one event, as a JSON object with the same
 * names as append()'s parameters. Valid events are applied; an invalid one
 * goes to inventory_events.dead_letter with its payload, SQLSTATE and
 * message; the call returns one outcome per element, in order.
 *
 * ingest_staged() does the same with the rows COPYed into event_staging,
 * whose columns are append()'s parameters: it claims (deletes) them and
 * ingests them as one batch. Its memory does not grow with the number of
 * rows: the claimed rows and the outcomes are kept in tuplestores (which
 * spill to temporary files past work_mem), the distinct locks it needs in a
 * hash set (refused as soon as they are more than
 * inventory_events.max_locks_per_call), and each row's work in a memory
 * context reset for the next.
 *
 * Both read an element through one path (BatchElement): its fields fill an
 * IeEventInput (set_field), its keys give its locks (element_lock_tags), and
 * ingest_element validates, applies or dead-letters it.
 *
 * A data error that validating an element raises (class 22 or 23, or one
 * of ours: ie_is_data_error) is caught and recorded; any other error fails
 * the call, and the client retries it; so does any error while an event is
 * written (out of disk, a DBA's CHECK on the log), and nothing of the call
 * is applied. Elements are applied a run at a time, each run in one
 * subtransaction (ingest_batch); a run in which an element fails validation
 * is rolled back and its elements are taken again one at a time
 * (ingest_element): each validated in a subtransaction of its own, which
 * only reads and so never gets an xid, and written in the calling
 * transaction.
 */
#include "postgres.h"

#include "access/table.h"
#include "access/tableam.h"
#include "catalog/dependency.h"
#include "catalog/pg_type.h"
#include "access/xact.h"
#include "commands/sequence.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/params.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/fmgroids.h"
#include "utils/hsearch.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"
#include "utils/uuid.h"
#include "storage/lock.h"
#include "storage/proc.h"

#include "catalog.h"
#include "errors.h"
#include "fields.h"
#include "log.h"
#include "locks.h"
#include "stock.h"
#include "writer.h"

typedef struct StagedRows StagedRows;

/* One element of a batch: an element of ingest()'s array, or a staged row. */
typedef struct BatchElement
{
	JsonbValue *json;			/* ingest(): the element */
	TupleTableSlot *row;		/* ingest_staged(): the row, attributes fetched */
	const StagedRows *staged;	/* ingest_staged(): what is known of the rows */
} BatchElement;

/*
 * ingest_staged()'s claimed rows. The claiming query sends them here (a
 * DestReceiver): they are kept in a tuplestore, and the locks they need
 * gathered in a hash set, before anything is applied.
 */
struct StagedRows
{
	DestReceiver pub;			/* first: receives the claimed rows */
	MemoryContext cxt;			/* the call's */
	MemoryContext rowcxt;		/* one row's, while claiming */
	Tuplestorestate *rows;
	TupleDesc	desc;			/* of the rows: a blessed record type */
	int			staged_id;		/* the column of staged_id */
	int		   *order;			/* the other columns, in jsonb key order */
	int			ncols;
	HTAB	   *locks;			/* distinct LOCKTAGs */
	int			nlocks;
	FmgrInfo	to_jsonb;		/* to_jsonb(record), for dead letters */
};

/* Sets one field of an event; an unknown field is an error. */
static void
set_field(IeEventInput *in, const char *key, const FieldValue *v)
{
	if (strcmp(key, "sku") == 0)
		in->sku = ie_field_text(v, key);
	else if (strcmp(key, "location") == 0)
		in->location = ie_field_text(v, key);
	else if (strcmp(key, "event_type") == 0)
		in->event_type = ie_field_label(v, key, ie_event_type_names, IE_NUM_EVENT_TYPES);
	else if (strcmp(key, "qty") == 0)
	{
		in->qty = ie_field_int64(v, key);
		in->qty_isnull = false;
	}
	else if (strcmp(key, "source") == 0)
		in->source = ie_field_text(v, key);
	else if (strcmp(key, "idempotency_key") == 0)
		in->idempotency_key = ie_field_text(v, key);
	else if (strcmp(key, "occurred_at") == 0)
	{
		in->occurred_at = ie_field_timestamptz(v, key);
		in->occurred_at_isnull = false;
	}
	else if (strcmp(key, "lot") == 0)
		in->lot = ie_field_text(v, key);
	else if (strcmp(key, "uom") == 0)
		in->uom = ie_field_text(v, key);
	else if (strcmp(key, "ref") == 0)
		in->ref = ie_field_text(v, key);
	else if (strcmp(key, "channel") == 0)
		in->channel = ie_field_text(v, key);
	else if (strcmp(key, "expected_version") == 0)
	{
		in->expected_version = ie_field_int64(v, key);
		in->expected_version_isnull = false;
	}
	else if (strcmp(key, "payload") == 0)
		in->payload = ie_field_jsonb(v, key);
	else if (strcmp(key, "from_bucket") == 0)
		in->from_bucket = ie_field_label(v, key, ie_bucket_names, IE_NUM_BUCKETS);
	else if (strcmp(key, "to_bucket") == 0)
		in->to_bucket = ie_field_label(v, key, ie_bucket_names, IE_NUM_BUCKETS);
	else if (strcmp(key, "reason") == 0)
		in->reason = ie_field_text(v, key);
	else if (strcmp(key, "expected_date") == 0)
	{
		in->expected_date = ie_field_date(v, key);
		in->expected_date_isnull = false;
	}
	else if (strcmp(key, "source_seq") == 0)
	{
		in->source_seq = ie_field_int64(v, key);
		in->source_seq_isnull = false;
	}
	else if (strcmp(key, "correlation_id") == 0)
		in->correlation_id = ie_field_uuid(v, key);
	else if (strcmp(key, "causation_id") == 0)
		in->causation_id = ie_field_uuid(v, key);
	else if (strcmp(key, "serials") == 0)
	{
		int			n;
		Datum	   *serials = ie_field_text_list(v, key, &n);

		in->serials = ie_serial_pool_new(serials, n);
	}
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown field \"%s\"", key),
				 errhint("Fields are the parameter names of inventory_events.append().")));
}

/* Fills in from one JSON object; unknown fields are an error, null is absent. */
static void
parse_event(JsonbValue *elem, IeEventInput *in)
{
	JsonbIterator *it;
	JsonbValue	k;
	JsonbValue	v;
	JsonbIteratorToken tok;

	ie_input_init(in);
	if (elem->type != jbvBinary || !JsonContainerIsObject(elem->val.binary.data))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("each event must be a JSON object")));

	it = JsonbIteratorInit(elem->val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
	{
		char	   *key;
		FieldValue	fv = {&v, (Datum) 0, InvalidOid};

		if (tok != WJB_KEY)
			continue;
		key = pnstrdup(k.val.string.val, k.val.string.len);
		tok = JsonbIteratorNext(&it, &v, true);
		Assert(tok == WJB_VALUE);
		if (v.type == jbvNull)
			continue;
		set_field(in, key, &fv);
	}
}

/*
 * Fills in from one staged row, as from the JSON object to_jsonb() makes of
 * it (less staged_id): null is absent, and the columns are read in the order
 * of that object's keys, so that an invalid row fails on the same field.
 */
static void
parse_staged(TupleTableSlot *row, const StagedRows *s, IeEventInput *in)
{
	ie_input_init(in);
	for (int i = 0; i < s->ncols; i++)
	{
		int			c = s->order[i];
		FieldValue	fv = {NULL, row->tts_values[c], TupleDescAttr(s->desc, c)->atttypid};

		if (row->tts_isnull[c])
			continue;
		set_field(in, NameStr(TupleDescAttr(s->desc, c)->attname), &fv);
	}
}

static void
element_parse(const BatchElement *el, IeEventInput *in)
{
	if (el->json)
		parse_event(el->json, in);
	else
		parse_staged(el->row, el->staged, in);
}

/*
 * A string field of an element, or NULL (JSON: not an object, absent, not a
 * string; a staged row: no such column, or null).
 */
static text *
element_string(const BatchElement *el, const char *key)
{
	if (el->json)
	{
		JsonbValue *elem = el->json;
		JsonbValue *v;

		if (elem->type != jbvBinary || !JsonContainerIsObject(elem->val.binary.data))
			return NULL;
		v = getKeyJsonValueFromContainer(elem->val.binary.data, key, strlen(key), NULL);
		if (v == NULL || v->type != jbvString)
			return NULL;
		return cstring_to_text_with_len(v->val.string.val, v->val.string.len);
	}
	for (int i = 0; i < el->staged->ncols; i++)
	{
		int			c = el->staged->order[i];
		Form_pg_attribute att = TupleDescAttr(el->staged->desc, c);

		if (strcmp(NameStr(att->attname), key) == 0)
		{
			FieldValue	fv = {NULL, el->row->tts_values[c], att->atttypid};

			return el->row->tts_isnull[c] ? NULL : ie_field_text(&fv, key);
		}
	}
	return NULL;
}

/* The element as dead_letter.payload keeps it: as given, or to_jsonb(row) - 'staged_id'. */
static Jsonb *
element_payload(const BatchElement *el)
{
	Datum		j;

	if (el->json)
		return JsonbValueToJsonb(el->json);
	j = FunctionCall1(unconstify(FmgrInfo *, &el->staged->to_jsonb), ExecFetchSlotHeapTupleDatum(el->row));
	return DatumGetJsonbP(DirectFunctionCall2(jsonb_delete, j, CStringGetTextDatum("staged_id")));
}

/* Records a rejected event in inventory_events.dead_letter. */
static void
dead_letter(const BatchElement *el, int ordinal, ErrorData *edata)
{
	Oid			relid = ie_catalog()->dead_letter_rel;
	IeWriter	local;
	IeWriter   *w = ie_writer_get(relid, &local);
	TupleTableSlot *slot = w->slot;
	Datum	   *values = slot->tts_values;
	bool	   *nulls = slot->tts_isnull;
	text	   *source = element_string(el, "source");
	text	   *key = element_string(el, "idempotency_key");

	ie_row_new_nulls(IE_TABLE_dead_letter, nulls);
	values[Anum_ie_dead_letter_id - 1] = Int64GetDatum(ie_next_identity(relid));
	values[Anum_ie_dead_letter_failed_at - 1] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	values[Anum_ie_dead_letter_source - 1] = PointerGetDatum(source);
	nulls[Anum_ie_dead_letter_source - 1] = (source == NULL);
	values[Anum_ie_dead_letter_idempotency_key - 1] = PointerGetDatum(key);
	nulls[Anum_ie_dead_letter_idempotency_key - 1] = (key == NULL);
	values[Anum_ie_dead_letter_batch_ordinal - 1] = Int32GetDatum(ordinal);
	values[Anum_ie_dead_letter_sqlstate - 1] = CStringGetTextDatum(unpack_sql_state(edata->sqlerrcode));
	values[Anum_ie_dead_letter_message - 1] = CStringGetTextDatum(edata->message ? edata->message : "");
	values[Anum_ie_dead_letter_detail - 1] = edata->detail ? CStringGetTextDatum(edata->detail) : (Datum) 0;
	nulls[Anum_ie_dead_letter_detail - 1] = (edata->detail == NULL);
	values[Anum_ie_dead_letter_payload - 1] = JsonbPGetDatum(element_payload(el));
	ie_writer_fill_defaults(w);
	ExecStoreVirtualTuple(slot);

	ExecSimpleRelationInsert(w->rri, w->estate, slot);
	ie_writer_done(w);

	ie_record_exception("dead_letter", element_string(el, "sku"), element_string(el, "location"),
						element_string(el, "channel"), element_string(el, "ref"),
						edata->message ? edata->message : "");
}

/*
 * The locks an element will need, in tags (room for 3): its idempotency
 * key, its sku, its stream. Returns how many. Keys that cannot be read are
 * left to fail validation.
 */
static int
element_lock_tags(const BatchElement *el, LOCKTAG *tags)
{
	text	   *sku = element_string(el, "sku");
	text	   *location = element_string(el, "location");
	text	   *lot = element_string(el, "lot");
	text	   *source = element_string(el, "source");
	text	   *key = element_string(el, "idempotency_key");
	int			ntags = 0;

	if (key)
	{
		Datum		k[2] = {PointerGetDatum(source ? source : cstring_to_text("")), PointerGetDatum(key)};

		ie_lock_tag(IE_LOCK_IDEMPOTENCY, 2, k, &tags[ntags++]);
	}
	/*
	 * Every element's sku, not only those that may raise ATP: a receipt in
	 * another batch fills backorders under its sku lock and then locks the
	 * channel's other streams of that sku, so a batch that took one of those
	 * streams without the sku lock could hold it while waiting for the
	 * receipt's stream (batch_sku_first.spec).
	 */
	if (sku)
	{
		Datum		k[1] = {PointerGetDatum(sku)};

		ie_lock_tag(IE_LOCK_SKU, 1, k, &tags[ntags++]);
	}
	if (sku && location)
	{
		Datum		k[3] = {PointerGetDatum(sku), PointerGetDatum(location),
		PointerGetDatum(lot ? lot : cstring_to_text(""))};

		ie_lock_tag(IE_LOCK_STREAM, 3, k, &tags[ntags++]);
	}
	return ntags;
}

/*
 * Takes every lock the batch will need in the global order (idempotency keys,
 * then skus, then streams; see ie_lock_tags_in_order) before applying
 * anything. Two batches touching the same streams in different orders then
 * wait for each other instead of deadlocking.
 */
static void
lock_batch_in_order(Jsonb *events, int n)
{
	LOCKTAG    *tags = palloc(sizeof(LOCKTAG) * n * 3);
	int			ntags = 0;

	for (int i = 0; i < n; i++)
	{
		BatchElement el = {getIthJsonbValueFromContainer(&events->root, i), NULL, NULL};

		ntags += element_lock_tags(&el, &tags[ntags]);
	}
	ie_lock_tags_in_order(tags, ntags);
	pfree(tags);
}

/* The first half of an element, in ingest_element's subtransaction. */
typedef struct ElementPrepare
{
	const BatchElement *el;
	IeEventInput in;
	IePreparedEvent p;
} ElementPrepare;

static void
element_prepare(void *arg)
{
	ElementPrepare *ep = arg;

	element_parse(ep->el, &ep->in);
	ie_prepare_event(&ep->in, &ep->p);
	ie_serial_pool_finish(ep->in.serials);
}

/* Adds an applied or duplicate element's outcome to the result (first column: id). */
static void
put_outcome(ReturnSetInfo *rsinfo, Datum id, bool duplicate, int64 event_id, int64 version)
{
	Datum		values[6];
	bool		nulls[6] = {false, false, false, false, true, true};

	/* Made once: a run puts thousands of outcomes in the call's memory. */
	static Datum applied_text = (Datum) 0;
	static Datum duplicate_text = (Datum) 0;

	if (duplicate_text == (Datum) 0)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		/* Both or neither: the test above is on the one made last. */
		applied_text = CStringGetTextDatum("applied");
		duplicate_text = CStringGetTextDatum("duplicate");
		MemoryContextSwitchTo(old);
	}
	values[0] = id;
	values[1] = duplicate ? duplicate_text : applied_text;
	values[2] = Int64GetDatum(event_id);
	values[3] = Int64GetDatum(version);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/*
 * Validates one element in a read-only subtransaction, then applies it or
 * dead-letters it, and adds its outcome to the result, whose first column is
 * id. Runs in (and leaves CurrentMemoryContext as) the caller's per-element
 * context.
 */
static void
ingest_element(const BatchElement *el, int ordinal, Datum id, ReturnSetInfo *rsinfo)
{
	ElementPrepare ep = {.el = el};
	IePreparedEvent *p = &ep.p;
	ErrorData  *edata;

	/* A transient or system error is not a property of the event: thrown on. */
	edata = ie_subxact_run(element_prepare, &ep, CurrentMemoryContext, ie_is_data_error);

	if (edata)
	{
		Datum		values[6];
		bool		nulls[6] = {false, false, true, true, false, false};

		dead_letter(el, ordinal, edata);
		values[0] = id;
		values[1] = CStringGetTextDatum("dead_lettered");
		values[4] = CStringGetTextDatum(unpack_sql_state(edata->sqlerrcode));
		values[5] = CStringGetTextDatum(edata->message ? edata->message : "");
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	else if (p->duplicate)
		put_outcome(rsinfo, id, true, p->existing_id, p->version);
	else
		put_outcome(rsinfo, id, false, ie_insert_event(p), p->version);
}

/*
 * Where a batch's elements come from, in order, with a place to come back
 * to: ingest()'s array, or ingest_staged()'s claimed rows (a tuplestore,
 * whose second read pointer is the place).
 */
typedef struct BatchSource
{
	Jsonb	   *events;			/* ingest(): the array */
	int			n;				/* its size */
	int			next;			/* its next element, from 0 */
	const StagedRows *staged;	/* ingest_staged(): the rows */
	TupleTableSlot *slot;		/* the row read last */
	int			mark_ptr;		/* the read pointer of the place */
	int			ordinal;		/* the place in the batch of the element read last */
	int			marked_next;
	int			marked_ordinal;
} BatchSource;

/*
 * The next element, in the current memory context (the element's), and its
 * outcome's id: its ordinal, or its staged_id. False after the last.
 */
static bool
source_next(BatchSource *src, BatchElement *el, int64 *id)
{
	el->json = NULL;
	el->row = NULL;
	el->staged = NULL;
	if (src->staged == NULL)
	{
		if (src->next >= src->n)
			return false;
		el->json = getIthJsonbValueFromContainer(&src->events->root, src->next++);
		*id = ++src->ordinal;
		return true;
	}
	if (!tuplestore_gettupleslot(src->staged->rows, true, false, src->slot))
		return false;
	slot_getallattrs(src->slot);
	el->row = src->slot;
	el->staged = src->staged;
	src->ordinal++;
	*id = DatumGetInt64(src->slot->tts_values[src->staged->staged_id]);
	return true;
}

static Datum
source_id_datum(const BatchSource *src, int64 id)
{
	return src->staged ? Int64GetDatum(id) : Int32GetDatum((int32) id);
}

/*
 * Lets go of the element read last before its memory context is reset: a
 * row read back from the tuplestore's file is the slot's, in that context.
 */
static void
source_release(BatchSource *src)
{
	if (src->slot)
		ExecClearTuple(src->slot);
}

static void
source_mark(BatchSource *src)
{
	src->marked_next = src->next;
	src->marked_ordinal = src->ordinal;
	if (src->staged)
		tuplestore_copy_read_pointer(src->staged->rows, 0, src->mark_ptr);
}

static void
source_restore(BatchSource *src)
{
	src->next = src->marked_next;
	src->ordinal = src->marked_ordinal;
	if (src->staged)
		tuplestore_copy_read_pointer(src->staged->rows, src->mark_ptr, 0);
}

/*
 * The rest of the batch one element at a time, each validated in a
 * subtransaction of its own (ingest_element).
 */
static void
ingest_one_by_one(BatchSource *src, ReturnSetInfo *rsinfo, MemoryContext rowctx)
{
	for (;;)
	{
		BatchElement el;
		int64		id;

		CHECK_FOR_INTERRUPTS();
		source_release(src);
		MemoryContextReset(rowctx);
		MemoryContextSwitchTo(rowctx);
		if (!source_next(src, &el, &id))
			break;
		ingest_element(&el, src->ordinal, source_id_datum(src, id), rsinfo);
	}
}

/*
 * Runs: a subtransaction per element costs about 7 % of an event's work
 * (callgrind, 2026-12-02: 146k instructions an event with it, 137k without),
 * so elements are first applied a run at a time, in one subtransaction,
 * validated without one each. A data error in a validation rolls the run
 * back, and the call goes on one element at a time from the run's first
 * (ingest_element): the failed element is dead-lettered as before. Any
 * other error, and any error while an event is written, fails the call, as
 * it does one element at a time.
 *
 * What that costs and bounds: a rolled-back run's work is done twice, so
 * runs are short (RUN_FIRST elements, then RUN_MOST: a batch with one bad
 * element does at most RUN_MOST elements again), and after one the call
 * stops trying (a batch with many bad ones would pay again and again). A run
 * that wrote gets a subtransaction id, which the transaction keeps to its
 * end, in a cache of 64 per backend past which every other session's
 * snapshot must look its subtransactions up in pg_subtrans: a run starts
 * only while the transaction has fewer than RUN_SUBXIDS_MOST of them cached
 * (its own savepoints count too); then elements go one at a time. A
 * 1,000-event batch takes 9 runs.
 */
#define RUN_FIRST 64
#define RUN_MOST 128
#define RUN_SUBXIDS_MOST 32

/* The outcome of an element of a run, put into the result once the run is kept. */
typedef struct RunOutcome
{
	int64		id;
	bool		duplicate;
	int64		event_id;
	int64		version;
} RunOutcome;

typedef struct Run
{
	BatchSource *src;
	MemoryContext rowctx;
	int			max;
	RunOutcome *outcomes;
	int			taken;			/* elements read, the failing one included */
	bool		validating;		/* an error now is the element's */
	bool		done;			/* the source is done */
} Run;

static void
run_elements(void *arg)
{
	Run		   *run = arg;

	while (run->taken < run->max)
	{
		BatchElement el;
		ElementPrepare ep = {.el = &el};
		RunOutcome *o = &run->outcomes[run->taken];

		CHECK_FOR_INTERRUPTS();
		source_release(run->src);
		MemoryContextReset(run->rowctx);
		MemoryContextSwitchTo(run->rowctx);
		if (!source_next(run->src, &el, &o->id))
		{
			run->done = true;
			break;
		}
		run->taken++;
		run->validating = true;
		element_prepare(&ep);
		run->validating = false;
		o->duplicate = ep.p.duplicate;
		o->event_id = ep.p.duplicate ? ep.p.existing_id : ie_insert_event(&ep.p);
		o->version = ep.p.version;
	}
}

/*
 * Ingests every element of src, and adds one outcome per element to the
 * result, in order. Runs in (and leaves CurrentMemoryContext as) the
 * caller's context; rowctx is reset for every element.
 */
static void
ingest_batch(BatchSource *src, ReturnSetInfo *rsinfo, MemoryContext rowctx)
{
	MemoryContext callctx = CurrentMemoryContext;
	int			run_size = RUN_FIRST;

	while (!MyProc->subxidStatus.overflowed && MyProc->subxidStatus.count < RUN_SUBXIDS_MOST)
	{
		Run			run = {.src = src, .rowctx = rowctx, .max = run_size};
		ErrorData  *edata;

		run.outcomes = MemoryContextAlloc(callctx, sizeof(RunOutcome) * run_size);
		source_mark(src);
		edata = ie_subxact_run(run_elements, &run, callctx, ie_is_data_error);
		if (edata != NULL)
		{
			/* Writing an event failed: the call fails, as one at a time. */
			if (!run.validating)
				ReThrowError(edata);
			FreeErrorData(edata);
			pfree(run.outcomes);
			source_restore(src);
			break;
		}
		for (int i = 0; i < run.taken; i++)
		{
			RunOutcome *o = &run.outcomes[i];

			put_outcome(rsinfo, source_id_datum(src, o->id), o->duplicate, o->event_id, o->version);
		}
		pfree(run.outcomes);
		if (run.done)
		{
			source_release(src);
			return;
		}
		run_size = RUN_MOST;
	}
	ingest_one_by_one(src, rsinfo, rowctx);
	source_release(src);
	MemoryContextSwitchTo(callctx);
}

/*
 * inventory_events.ingest(events jsonb)
 *   returns table (ordinal int, status text, event_id bigint, version bigint,
 *                  sqlstate text, message text)
 * status: applied, duplicate (an idempotent retry) or dead_lettered.
 */
PG_FUNCTION_INFO_V1(ie_ingest);
Datum
ie_ingest(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Jsonb	   *events;
	MemoryContext rowctx;
	BatchSource src = {0};

	ie_write_call_start("inventory_events.ingest()");
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("events must not be null")));
	events = PG_GETARG_JSONB_P(0);
	if (!JB_ROOT_IS_ARRAY(events) || JB_ROOT_IS_SCALAR(events))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("events must be a JSON array of event objects")));

	ie_init_materialized_srf(fcinfo);
	(void) ie_catalog();		/* fail early, outside any subtransaction */

	src.events = events;
	src.n = JsonContainerSize(&events->root);
	lock_batch_in_order(events, src.n);

	rowctx = AllocSetContextCreate(CurrentMemoryContext, "inventory_events ingest row",
								   ALLOCSET_DEFAULT_SIZES);
	ingest_batch(&src, rsinfo, rowctx);
	MemoryContextDelete(rowctx);
	return (Datum) 0;
}

/* The order of a jsonb object's keys: shorter first, then bytewise. */
static int
jsonb_key_cmp(const void *a, const void *b, void *arg)
{
	TupleDesc	desc = (TupleDesc) arg;
	const char *x = NameStr(TupleDescAttr(desc, *(const int *) a)->attname);
	const char *y = NameStr(TupleDescAttr(desc, *(const int *) b)->attname);
	size_t		lx = strlen(x);
	size_t		ly = strlen(y);

	if (lx != ly)
		return lx < ly ? -1 : 1;
	return memcmp(x, y, lx);
}

/* The claiming query's result columns: those of event_staging. */
static void
staged_startup(DestReceiver *self, int operation, TupleDesc typeinfo)
{
	StagedRows *s = (StagedRows *) self;
	MemoryContext old = MemoryContextSwitchTo(s->cxt);

	s->desc = BlessTupleDesc(CreateTupleDescCopy(typeinfo));
	s->order = palloc(sizeof(int) * s->desc->natts);
	s->ncols = 0;
	s->staged_id = -1;
	for (int i = 0; i < s->desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(s->desc, i);

		if (att->attisdropped)
			continue;
		if (strcmp(NameStr(att->attname), "staged_id") == 0 && att->atttypid == INT8OID)
			s->staged_id = i;
		else
			s->order[s->ncols++] = i;
	}
	if (s->staged_id < 0)
		elog(ERROR, "inventory_events.event_staging has no staged_id column of type bigint");
	qsort_arg(s->order, s->ncols, sizeof(int), jsonb_key_cmp, s->desc);
	MemoryContextSwitchTo(old);
}

/*
 * One claimed row: the locks it needs join the set, and the row is kept for
 * the second pass. The first row that takes the set over the limit ends the
 * query, and the call is refused (the set never grows past the limit + 3).
 */
static bool
staged_receive(TupleTableSlot *slot, DestReceiver *self)
{
	StagedRows *s = (StagedRows *) self;
	BatchElement el = {NULL, slot, s};
	LOCKTAG		tags[3];
	int			ntags;
	MemoryContext old = MemoryContextSwitchTo(s->rowcxt);

	slot_getallattrs(slot);
	ntags = element_lock_tags(&el, tags);
	for (int i = 0; i < ntags; i++)
	{
		bool		found;

		(void) hash_search(s->locks, &tags[i], HASH_ENTER, &found);
		if (!found)
			s->nlocks++;
	}
	MemoryContextSwitchTo(old);
	MemoryContextReset(s->rowcxt);
	/* Over the limit: stop here (refused once the claiming query is done). */
	if (s->nlocks > ie_lock_limit())
		return false;
	tuplestore_puttupleslot(s->rows, slot);
	return true;
}

static void
staged_shutdown(DestReceiver *self)
{
}

static void
staged_destroy(DestReceiver *self)
{
}

/*
 * Claims the staged rows (oldest first, at most max_rows, skipping those
 * another caller has claimed) by deleting them, into s->rows in staged_id
 * order, and gathers the locks they need into s->locks.
 */
static void
claim_staged_rows(StagedRows *s, Datum max_rows, bool max_rows_isnull)
{
	static const char *sql =
		"WITH claimed AS (DELETE FROM inventory_events.event_staging s"
		" WHERE s.staged_id IN (SELECT t.staged_id FROM inventory_events.event_staging t"
		" ORDER BY t.staged_id LIMIT $1 FOR UPDATE SKIP LOCKED) RETURNING s.*)"
		" SELECT * FROM claimed ORDER BY staged_id";
	Oid			argtypes[1] = {INT4OID};
	SPIPlanPtr	plan;
	SPIExecuteOptions options;
	int			rc;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	plan = SPI_prepare(sql, 1, argtypes);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	memset(&options, 0, sizeof(options));
	options.params = makeParamList(1);
	options.params->params[0].value = max_rows;
	options.params->params[0].isnull = max_rows_isnull;
	options.params->params[0].pflags = PARAM_FLAG_CONST;
	options.params->params[0].ptype = INT4OID;
	options.read_only = false;
	options.dest = &s->pub;
	rc = SPI_execute_plan_extended(plan, &options);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "claiming the staged rows failed: %s", SPI_result_code_string(rc));
	SPI_finish();
	if (s->nlocks > ie_lock_limit())
		ie_lock_limit_exceeded(s->nlocks, true);
}

/* Takes the locks gathered in s->locks, in the global order. */
static void
lock_staged_rows(StagedRows *s)
{
	LOCKTAG    *tags = palloc(sizeof(LOCKTAG) * Max(s->nlocks, 1));
	LOCKTAG    *tag;
	HASH_SEQ_STATUS seq;
	int			n = 0;

	hash_seq_init(&seq, s->locks);
	while ((tag = hash_seq_search(&seq)) != NULL)
		tags[n++] = *tag;
	Assert(n == s->nlocks);
	ie_lock_tags_in_order(tags, n);
	pfree(tags);
}

/*
 * inventory_events.ingest_staged(max_rows integer)
 *   returns table (staged_id bigint, status text, event_id bigint,
 *                  version bigint, sqlstate text, message text)
 * Claims (deletes) the rows of event_staging, oldest first, at most max_rows
 * (null: all), and ingests them as one batch like ingest(): every lock they
 * need taken first in the global order, then each row applied (a run at a
 * time) or dead-lettered (its payload: the row
 * as JSON, less staged_id; batch_ordinal: its place in the batch). One
 * outcome per row, in staged_id order.
 */
PG_FUNCTION_INFO_V1(ie_ingest_staged);
Datum
ie_ingest_staged(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MemoryContext callctx = CurrentMemoryContext;
	MemoryContext rowctx;
	StagedRows	s;
	HASHCTL		hctl;

	ie_write_call_start("inventory_events.ingest_staged()");
	ie_init_materialized_srf(fcinfo);
	(void) ie_catalog();		/* fail early, outside any subtransaction */

	memset(&s, 0, sizeof(s));
	s.pub.receiveSlot = staged_receive;
	s.pub.rStartup = staged_startup;
	s.pub.rShutdown = staged_shutdown;
	s.pub.rDestroy = staged_destroy;
	s.pub.mydest = DestTuplestore;
	s.cxt = callctx;
	s.rowcxt = AllocSetContextCreate(callctx, "inventory_events ingest_staged claim",
									 ALLOCSET_DEFAULT_SIZES);
	s.rows = tuplestore_begin_heap(false, false, work_mem);
	memset(&hctl, 0, sizeof(hctl));
	hctl.keysize = sizeof(LOCKTAG);
	hctl.entrysize = sizeof(LOCKTAG);
	hctl.hcxt = callctx;
	s.locks = hash_create("inventory_events ingest_staged locks", 256, &hctl,
						  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	fmgr_info(F_TO_JSONB, &s.to_jsonb);
	fmgr_info_set_expr((Node *) makeFuncExpr(F_TO_JSONB, JSONBOID,
											 list_make1(makeNullConst(RECORDOID, -1, InvalidOid)),
											 InvalidOid, InvalidOid, COERCE_EXPLICIT_CALL),
					   &s.to_jsonb);

	/* First pass: claim the rows and gather their locks; then take them all. */
	claim_staged_rows(&s, PG_GETARG_DATUM(0), PG_ARGISNULL(0));
	MemoryContextSwitchTo(callctx);
	MemoryContextDelete(s.rowcxt);
	lock_staged_rows(&s);
	hash_destroy(s.locks);

	/* Second pass: ingest them, each row in a memory context of its own. */
	rowctx = AllocSetContextCreate(callctx, "inventory_events ingest row",
								   ALLOCSET_DEFAULT_SIZES);
	if (s.desc)
	{
		BatchSource src = {0};

		src.staged = &s;
		src.slot = MakeSingleTupleTableSlot(s.desc, &TTSOpsMinimalTuple);
		src.mark_ptr = tuplestore_alloc_read_pointer(s.rows, 0);
		ingest_batch(&src, rsinfo, rowctx);
		ExecDropSingleTupleTableSlot(src.slot);
	}
	MemoryContextDelete(rowctx);
	tuplestore_end(s.rows);
	return (Datum) 0;
}
