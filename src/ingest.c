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
 * Validation runs in a subtransaction per element so that a data error it
 * raises (class 22 or 23, or one of ours: ie_is_data_error) is caught and
 * recorded; any other error fails the call, and the client retries it.
 * Validation only reads (and takes heavyweight locks, no row locks), so the
 * subtransaction never gets an xid of its own and a batch of any size stays
 * clear of the subtransaction cache limit. The insert itself (with the row
 * locks a new stream takes on its item and location) runs in the calling
 * transaction: an error there (out of disk, say) fails the whole call, and
 * nothing of it is applied.
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
	Datum		values[6];
	bool		nulls[6] = {false, false, false, false, true, true};

	/* A transient or system error is not a property of the event: thrown on. */
	edata = ie_subxact_run(element_prepare, &ep, CurrentMemoryContext, ie_is_data_error);

	values[0] = id;
	if (edata)
	{
		dead_letter(el, ordinal, edata);
		values[1] = CStringGetTextDatum("dead_lettered");
		nulls[2] = nulls[3] = true;
		values[4] = CStringGetTextDatum(unpack_sql_state(edata->sqlerrcode));
		values[5] = CStringGetTextDatum(edata->message ? edata->message : "");
		nulls[4] = nulls[5] = false;
	}
	else if (p->duplicate)
	{
		values[1] = CStringGetTextDatum("duplicate");
		values[2] = Int64GetDatum(p->existing_id);
		values[3] = Int64GetDatum(p->version);
	}
	else
	{
		values[2] = Int64GetDatum(ie_insert_event(p));
		values[1] = CStringGetTextDatum("applied");
		values[3] = Int64GetDatum(p->version);
	}
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
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
	int			n;
	MemoryContext callctx = CurrentMemoryContext;
	MemoryContext rowctx;

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

	n = JsonContainerSize(&events->root);
	lock_batch_in_order(events, n);

	rowctx = AllocSetContextCreate(CurrentMemoryContext, "inventory_events ingest row",
								   ALLOCSET_DEFAULT_SIZES);

	for (int i = 0; i < n; i++)
	{
		BatchElement el = {NULL, NULL, NULL};

		CHECK_FOR_INTERRUPTS();
		MemoryContextReset(rowctx);
		MemoryContextSwitchTo(rowctx);
		el.json = getIthJsonbValueFromContainer(&events->root, i);
		ingest_element(&el, i + 1, Int32GetDatum(i + 1), rsinfo);
	}
	MemoryContextSwitchTo(callctx);
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
 * need taken first in the global order, then each row validated in a
 * read-only subtransaction, applied or dead-lettered (its payload: the row
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
	TupleTableSlot *slot;

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
	slot = s.desc ? MakeSingleTupleTableSlot(s.desc, &TTSOpsMinimalTuple) : NULL;
	for (int ordinal = 1; slot != NULL; ordinal++)
	{
		BatchElement el = {NULL, slot, &s};

		CHECK_FOR_INTERRUPTS();
		/* A tuple read back from the file is the slot's, in rowctx: free it first. */
		ExecClearTuple(slot);
		MemoryContextReset(rowctx);
		MemoryContextSwitchTo(rowctx);
		if (!tuplestore_gettupleslot(s.rows, true, false, slot))
			break;
		slot_getallattrs(slot);
		ingest_element(&el, ordinal, slot->tts_values[s.staged_id], rsinfo);
	}
	MemoryContextSwitchTo(callctx);
	if (slot)
		ExecDropSingleTupleTableSlot(slot);
	MemoryContextDelete(rowctx);
	tuplestore_end(s.rows);
	return (Datum) 0;
}
