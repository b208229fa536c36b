/*
 * ingest.c
 *		Batch ingest: inventory_events.ingest(jsonb).
 *
 * Each element of the array is one event, as a JSON object with the same
 * names as append()'s parameters. Valid events are applied; an invalid one
 * goes to inventory_events.dead_letter with its payload, SQLSTATE and
 * message; the call returns one outcome per element, in order.
 *
 * Validation runs in a subtransaction per element so that a data error it
 * raises (class 22 or 23, or one of ours: ie_is_data_error) is caught and
 * recorded; any other error fails the call, and the client retries it.
 * Validation only reads (and takes heavyweight locks, no row locks), so the
 * subtransaction never gets an xid of its own and a batch of thousands stays
 * clear of the subtransaction cache limit. The insert itself (with the row
 * locks a new stream takes on its item and location) runs in the calling
 * transaction: an error there (out of disk, say) fails the whole call, and
 * nothing of it is applied.
 */
#include "postgres.h"

#include "access/table.h"
#include "access/tableam.h"
#include "catalog/dependency.h"
#include "access/xact.h"
#include "commands/sequence.h"
#include "executor/executor.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"
#include "storage/lock.h"

#include "catalog.h"
#include "errors.h"
#include "log.h"
#include "standby.h"
#include "reserve.h"
#include "state.h"

static void
field_error(const char *field, const char *expected)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("field \"%s\" must be %s", field, expected)));
}

static text *
json_text(JsonbValue *v, const char *field)
{
	if (v->type != jbvString)
		field_error(field, "a string");
	return cstring_to_text_with_len(v->val.string.val, v->val.string.len);
}

static char *
json_cstring(JsonbValue *v, const char *field)
{
	if (v->type != jbvString)
		field_error(field, "a string");
	return pnstrdup(v->val.string.val, v->val.string.len);
}

static int64
json_int64(JsonbValue *v, const char *field)
{
	/* Through text, so that 1.5 is refused rather than rounded. */
	if (v->type == jbvNumeric)
		return DatumGetInt64(DirectFunctionCall1(int8in,
												 DirectFunctionCall1(numeric_out, NumericGetDatum(v->val.numeric))));
	if (v->type == jbvString)
		return DatumGetInt64(DirectFunctionCall1(int8in, CStringGetDatum(json_cstring(v, field))));
	field_error(field, "an integer");
	pg_unreachable();
}

static int
json_label(JsonbValue *v, const char *field, const char *const *names, int n)
{
	char	   *s = json_cstring(v, field);

	for (int i = 0; i < n; i++)
		if (strcmp(names[i], s) == 0)
			return i;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
			 errmsg("invalid %s \"%s\"", field, s)));
	pg_unreachable();
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

		if (tok != WJB_KEY)
			continue;
		key = pnstrdup(k.val.string.val, k.val.string.len);
		tok = JsonbIteratorNext(&it, &v, true);
		Assert(tok == WJB_VALUE);
		if (v.type == jbvNull)
			continue;

		if (strcmp(key, "sku") == 0)
			in->sku = json_text(&v, key);
		else if (strcmp(key, "location") == 0)
			in->location = json_text(&v, key);
		else if (strcmp(key, "event_type") == 0)
			in->event_type = json_label(&v, key, ie_event_type_names, IE_NUM_EVENT_TYPES);
		else if (strcmp(key, "qty") == 0)
		{
			in->qty = json_int64(&v, key);
			in->qty_isnull = false;
		}
		else if (strcmp(key, "source") == 0)
			in->source = json_text(&v, key);
		else if (strcmp(key, "idempotency_key") == 0)
			in->idempotency_key = json_text(&v, key);
		else if (strcmp(key, "occurred_at") == 0)
		{
			in->occurred_at = DatumGetTimestampTz(DirectFunctionCall3(timestamptz_in,
																	  CStringGetDatum(json_cstring(&v, key)),
																	  ObjectIdGetDatum(InvalidOid),
																	  Int32GetDatum(-1)));
			in->occurred_at_isnull = false;
		}
		else if (strcmp(key, "lot") == 0)
			in->lot = json_text(&v, key);
		else if (strcmp(key, "uom") == 0)
			in->uom = json_text(&v, key);
		else if (strcmp(key, "ref") == 0)
			in->ref = json_text(&v, key);
		else if (strcmp(key, "channel") == 0)
			in->channel = json_text(&v, key);
		else if (strcmp(key, "expected_version") == 0)
		{
			in->expected_version = json_int64(&v, key);
			in->expected_version_isnull = false;
		}
		else if (strcmp(key, "payload") == 0)
			in->payload = JsonbValueToJsonb(&v);
		else if (strcmp(key, "from_bucket") == 0)
			in->from_bucket = json_label(&v, key, ie_bucket_names, IE_NUM_BUCKETS);
		else if (strcmp(key, "to_bucket") == 0)
			in->to_bucket = json_label(&v, key, ie_bucket_names, IE_NUM_BUCKETS);
		else if (strcmp(key, "reason") == 0)
			in->reason = json_text(&v, key);
		else if (strcmp(key, "expected_date") == 0)
		{
			in->expected_date = DatumGetDateADT(DirectFunctionCall1(date_in,
																	CStringGetDatum(json_cstring(&v, key))));
			in->expected_date_isnull = false;
		}
		else if (strcmp(key, "source_seq") == 0)
		{
			in->source_seq = json_int64(&v, key);
			in->source_seq_isnull = false;
		}
		else if (strcmp(key, "correlation_id") == 0)
			in->correlation_id = DatumGetUUIDP(DirectFunctionCall1(uuid_in,
																   CStringGetDatum(json_cstring(&v, key))));
		else if (strcmp(key, "causation_id") == 0)
			in->causation_id = DatumGetUUIDP(DirectFunctionCall1(uuid_in,
																 CStringGetDatum(json_cstring(&v, key))));
		else
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown field \"%s\"", key),
					 errhint("Fields are the parameter names of inventory_events.append().")));
	}
}

/* A string field of an element, or NULL (not an object, absent, not a string). */
static text *
element_string(JsonbValue *elem, const char *key)
{
	JsonbValue *v;

	if (elem->type != jbvBinary || !JsonContainerIsObject(elem->val.binary.data))
		return NULL;
	v = getKeyJsonValueFromContainer(elem->val.binary.data, key, strlen(key), NULL);
	if (v == NULL || v->type != jbvString)
		return NULL;
	return cstring_to_text_with_len(v->val.string.val, v->val.string.len);
}

/* Records a rejected event in inventory_events.dead_letter. */
static void
dead_letter(JsonbValue *elem, int ordinal, ErrorData *edata)
{
	Oid			relid = ie_catalog()->dead_letter_rel;
	IeWriter	local;
	IeWriter   *w = ie_writer_get(relid, &local);
	TupleTableSlot *slot = w->slot;
	Datum	   *values = slot->tts_values;
	bool	   *nulls = slot->tts_isnull;
	text	   *source = element_string(elem, "source");
	text	   *key = element_string(elem, "idempotency_key");

	memset(nulls, 0, sizeof(bool) * RelationGetDescr(w->rel)->natts);
	values[0] = Int64GetDatum(ie_next_identity(relid));
	values[1] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	values[2] = PointerGetDatum(source);
	nulls[2] = (source == NULL);
	values[3] = PointerGetDatum(key);
	nulls[3] = (key == NULL);
	values[4] = Int32GetDatum(ordinal);
	values[5] = CStringGetTextDatum(unpack_sql_state(edata->sqlerrcode));
	values[6] = CStringGetTextDatum(edata->message ? edata->message : "");
	values[7] = edata->detail ? CStringGetTextDatum(edata->detail) : (Datum) 0;
	nulls[7] = (edata->detail == NULL);
	values[8] = JsonbPGetDatum(JsonbValueToJsonb(elem));
	ExecStoreVirtualTuple(slot);

	ExecSimpleRelationInsert(w->rri, w->estate, slot);
	ie_writer_done(w);

	ie_record_exception("dead_letter", element_string(elem, "sku"), element_string(elem, "location"),
						element_string(elem, "channel"), element_string(elem, "ref"),
						edata->message ? edata->message : "");
}

/*
 * Takes every lock the batch will need in the global order (idempotency keys,
 * then skus, then streams; see
 * ie_lock_tags_in_order) before applying anything. Two batches touching the
 * same streams in different orders then wait for each other instead of
 * deadlocking. Elements whose keys cannot be read are left to fail
 * validation.
 */
static void
lock_batch_in_order(Jsonb *events, int n)
{
	LOCKTAG    *tags = palloc(sizeof(LOCKTAG) * n * 3);
	int			ntags = 0;

	for (int i = 0; i < n; i++)
	{
		JsonbValue *elem = getIthJsonbValueFromContainer(&events->root, i);
		text	   *sku = element_string(elem, "sku");
		text	   *location = element_string(elem, "location");
		text	   *lot = element_string(elem, "lot");
		text	   *source = element_string(elem, "source");
		text	   *key = element_string(elem, "idempotency_key");

		if (key)
		{
			Datum		k[2] = {PointerGetDatum(source ? source : cstring_to_text("")), PointerGetDatum(key)};

			ie_lock_tag(IE_LOCK_IDEMPOTENCY, 2, k, &tags[ntags++]);
		}
		/*
		 * Every element's sku, not only those that may raise ATP: a receipt
		 * in another batch fills backorders under its sku lock and then
		 * locks the channel's other streams of that sku, so a batch that
		 * took one of those streams without the sku lock could hold it
		 * while waiting for the receipt's stream (batch_sku_first.spec).
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
	}
	ie_lock_tags_in_order(tags, ntags);
	pfree(tags);
}

/*
 * Validates one element in a read-only subtransaction, then applies it or
 * dead-letters it, and adds its outcome to the result. Runs in (and leaves
 * CurrentMemoryContext as) the caller's per-element context.
 */
static void
ingest_element(JsonbValue *elem, int ordinal, ResourceOwner owner, ReturnSetInfo *rsinfo)
{
	MemoryContext rowctx = CurrentMemoryContext;
	IeEventInput in;
	IePreparedEvent p;
	ErrorData  *edata = NULL;
	Datum		values[6];
	bool		nulls[6] = {false, false, false, false, true, true};

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(rowctx);
	PG_TRY();
	{
		parse_event(elem, &in);
		ie_prepare_event(&in, &p);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(rowctx);
		CurrentResourceOwner = owner;
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(rowctx);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(rowctx);
		CurrentResourceOwner = owner;
		/* A transient or system error is not a property of the event. */
		if (!ie_is_data_error(edata->sqlerrcode))
			ReThrowError(edata);
	}
	PG_END_TRY();

	values[0] = Int32GetDatum(ordinal);
	if (edata)
	{
		dead_letter(elem, ordinal, edata);
		values[1] = CStringGetTextDatum("dead_lettered");
		nulls[2] = nulls[3] = true;
		values[4] = CStringGetTextDatum(unpack_sql_state(edata->sqlerrcode));
		values[5] = CStringGetTextDatum(edata->message ? edata->message : "");
		nulls[4] = nulls[5] = false;
	}
	else if (p.duplicate)
	{
		values[1] = CStringGetTextDatum("duplicate");
		values[2] = Int64GetDatum(p.existing_id);
		values[3] = Int64GetDatum(p.version);
	}
	else
	{
		values[2] = Int64GetDatum(ie_insert_event(&p));
		values[1] = CStringGetTextDatum("applied");
		values[3] = Int64GetDatum(p.version);
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
	bool		batch_started;
	ResourceOwner owner = CurrentResourceOwner;

	ie_require_writable("inventory_events.ingest()");
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("events must not be null")));
	events = PG_GETARG_JSONB_P(0);
	if (!JB_ROOT_IS_ARRAY(events) || JB_ROOT_IS_SCALAR(events))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("events must be a JSON array of event objects")));

	InitMaterializedSRF(fcinfo, 0);
	(void) ie_catalog();		/* fail early, outside any subtransaction */

	n = JsonContainerSize(&events->root);
	lock_batch_in_order(events, n);

	rowctx = AllocSetContextCreate(CurrentMemoryContext, "inventory_events ingest row",
								   ALLOCSET_DEFAULT_SIZES);

	/*
	 * Keep the event, stock and dead-letter writers open for the whole batch
	 * (unless this call is nested in another batch, which keeps its own).
	 */
	batch_started = ie_batch_begin();
	PG_TRY();
	{
		for (int i = 0; i < n; i++)
		{
			CHECK_FOR_INTERRUPTS();
			MemoryContextReset(rowctx);
			MemoryContextSwitchTo(rowctx);
			ingest_element(getIthJsonbValueFromContainer(&events->root, i), i + 1, owner, rsinfo);
		}
	}
	PG_CATCH();
	{
		if (batch_started)
			ie_batch_abandon();
		PG_RE_THROW();
	}
	PG_END_TRY();
	MemoryContextSwitchTo(callctx);
	if (batch_started)
		ie_batch_end();
	MemoryContextDelete(rowctx);
	return (Datum) 0;
}
