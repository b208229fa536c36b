/*
 * decoder.c
 *		The logical decoding output plugin "inventory_events".
 *
 * One JSON object per line per change, never a whole transaction in one
 * buffer: event log inserts ("kind": "event"), publication log inserts
 * ("kind": "publication"), logical messages under the prefix
 * "inventory_events" ("kind": "message"), and optionally "begin" and
 * "commit" records. Every record carries its LSN; event records carry
 * "event_id" and every column of the event under its column name, so that
 * consumers can resume and deduplicate. Everything else is skipped by
 * relation id (three OIDs, cached per process, dropped on any relcache
 * invalidation), with a progress update every IE_PROGRESS_EVERY skipped
 * changes so that a walsender does not time out in a large transaction.
 *
 * With include-position, an event's record also carries the stock position
 * of its stream after the event: the stock trigger updates the stream's stock
 * row right after the event insert, in the same transaction, so the event's
 * record is held back until that row change is decoded and both go out as
 * one record; no table is read at decode time.
 *
 * Options are parsed strictly: an unknown option or a bad value is an error
 * that names it. Memory used per change lives in a private context reset
 * after every change.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "replication/logical.h"
#include "replication/origin.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/varlena.h"

#include "catalog.h"
#include "decoder.h"
#include "types.h"

#define IE_FORMAT_VERSION 1
#define IE_MESSAGE_PREFIX "inventory_events"
#define IE_PROGRESS_EVERY 1000

/* The relations we decode, by OID; found again after any relcache invalidation. */
static struct
{
	bool		valid;
	Oid			event;
	Oid			stock;
	Oid			publication;
}			rels;
static bool rels_callback_registered = false;

static void
rels_invalidate(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == rels.event || relid == rels.stock || relid == rels.publication)
		rels.valid = false;
}

static void
rels_load(void)
{
	Oid			nsp;

	if (rels.valid)
		return;
	memset(&rels, 0, sizeof(rels));
	nsp = get_namespace_oid("inventory_events", true);
	if (OidIsValid(nsp))
	{
		rels.event = get_relname_relid("event", nsp);
		rels.stock = get_relname_relid("stock", nsp);
		rels.publication = get_relname_relid("publication", nsp);
	}
	rels.valid = true;
}

typedef struct IeDecodingData
{
	MemoryContext context;		/* reset after every change */
	bool		include_xact;
	bool		include_position;
	bool		include_publications;
	bool		include_messages;
	List	   *event_types;	/* names; NIL: all */
	char	   *sku_prefix;		/* NULL: all */
	List	   *locations;		/* NIL: all */
	List	   *channels;		/* NIL: all */
	bool		xact_started;	/* the begin record of this transaction went out */
	uint64		skipped;		/* changes skipped since the last progress update */
	/* An event record held back for its stream's position (include-position). */
	StringInfoData pending;
	bool		has_pending;
	char	   *pending_key;	/* sku \x01 location \x01 lot, in the plugin context */
} IeDecodingData;

static void
bad_option(DefElem *elem, const char *expected)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid value for option \"%s\": \"%s\"", elem->defname,
					elem->arg ? strVal(elem->arg) : "(null)"),
			 errhint("Expected %s.", expected)));
}

static bool
option_bool(DefElem *elem)
{
	bool		value;

	/* A bare option name means true, as in test_decoding. */
	if (elem->arg == NULL)
		return true;
	if (!parse_bool(strVal(elem->arg), &value))
		bad_option(elem, "a boolean");
	return value;
}

static List *
option_list(DefElem *elem)
{
	char	   *raw;
	List	   *items = NIL;

	if (elem->arg == NULL)
		bad_option(elem, "a comma-separated list");
	raw = pstrdup(strVal(elem->arg));
	if (!SplitGUCList(raw, ',', &items) || items == NIL)
		bad_option(elem, "a comma-separated list");
	return items;
}

static void
ie_decode_startup(LogicalDecodingContext *ctx, OutputPluginOptions *opt, bool is_init)
{
	IeDecodingData *data = palloc0(sizeof(IeDecodingData));
	ListCell   *lc;

	data->context = AllocSetContextCreate(ctx->context, "inventory_events decoding",
										  ALLOCSET_DEFAULT_SIZES);
	data->include_publications = true;
	data->include_messages = true;
	initStringInfo(&data->pending);

	foreach(lc, ctx->output_plugin_options)
	{
		DefElem    *elem = lfirst(lc);

		Assert(elem->arg == NULL || IsA(elem->arg, String));
		if (strcmp(elem->defname, "format-version") == 0)
		{
			if (elem->arg == NULL || strcmp(strVal(elem->arg), "1") != 0)
				bad_option(elem, "1, the only format version");
		}
		else if (strcmp(elem->defname, "include-xact") == 0)
			data->include_xact = option_bool(elem);
		else if (strcmp(elem->defname, "include-position") == 0)
			data->include_position = option_bool(elem);
		else if (strcmp(elem->defname, "include-publications") == 0)
			data->include_publications = option_bool(elem);
		else if (strcmp(elem->defname, "include-messages") == 0)
			data->include_messages = option_bool(elem);
		else if (strcmp(elem->defname, "event-types") == 0)
			data->event_types = option_list(elem);
		else if (strcmp(elem->defname, "sku-prefix") == 0)
		{
			if (elem->arg == NULL)
				bad_option(elem, "a string");
			data->sku_prefix = pstrdup(strVal(elem->arg));
		}
		else if (strcmp(elem->defname, "locations") == 0)
			data->locations = option_list(elem);
		else if (strcmp(elem->defname, "channels") == 0)
			data->channels = option_list(elem);
		else
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"%s\" = \"%s\" is unknown", elem->defname,
							elem->arg ? strVal(elem->arg) : "(null)"),
					 errhint("Options: format-version, include-xact, include-position, include-publications, include-messages, event-types, sku-prefix, locations, channels.")));
	}

	opt->output_type = OUTPUT_PLUGIN_TEXTUAL_OUTPUT;
	opt->receive_rewrites = false;
	ctx->output_plugin_private = data;

	if (!rels_callback_registered)
	{
		CacheRegisterRelcacheCallback(rels_invalidate, (Datum) 0);
		rels_callback_registered = true;
	}
	rels.valid = false;
}

static void
ie_decode_shutdown(LogicalDecodingContext *ctx)
{
	IeDecodingData *data = ctx->output_plugin_private;

	MemoryContextDelete(data->context);
}

/* Decode only what was written here (no origin filter): replicated events included. */
static bool
ie_decode_filter(LogicalDecodingContext *ctx, RepOriginId origin_id)
{
	return false;
}

static void
lsn_field(StringInfo out, const char *name, XLogRecPtr lsn)
{
	appendStringInfo(out, ",\"%s\":\"%X/%X\"", name, LSN_FORMAT_ARGS(lsn));
}

static void
write_begin(LogicalDecodingContext *ctx, ReorderBufferTXN *txn)
{
	OutputPluginPrepareWrite(ctx, true);
	appendStringInfo(ctx->out, "{\"kind\":\"begin\",\"xid\":%u", txn->xid);
	lsn_field(ctx->out, "lsn", txn->first_lsn);
	appendStringInfoChar(ctx->out, '}');
	OutputPluginWrite(ctx, true);
}

/* Begin records go out with the first record of a transaction that has one. */
static void
ensure_begin(LogicalDecodingContext *ctx, IeDecodingData *data, ReorderBufferTXN *txn)
{
	if (data->include_xact && !data->xact_started)
		write_begin(ctx, txn);
	data->xact_started = true;
}

static void
flush_pending(LogicalDecodingContext *ctx, IeDecodingData *data)
{
	if (!data->has_pending)
		return;
	OutputPluginPrepareWrite(ctx, true);
	appendBinaryStringInfo(ctx->out, data->pending.data, data->pending.len);
	appendStringInfoChar(ctx->out, '}');
	OutputPluginWrite(ctx, true);
	data->has_pending = false;
	resetStringInfo(&data->pending);
}

static void
ie_decode_begin_txn(LogicalDecodingContext *ctx, ReorderBufferTXN *txn)
{
	IeDecodingData *data = ctx->output_plugin_private;

	data->xact_started = false;
	data->has_pending = false;
	resetStringInfo(&data->pending);
}

static void
ie_decode_commit_txn(LogicalDecodingContext *ctx, ReorderBufferTXN *txn, XLogRecPtr commit_lsn)
{
	IeDecodingData *data = ctx->output_plugin_private;

	flush_pending(ctx, data);
	if (!data->include_xact || !data->xact_started)
	{
		if (!data->xact_started)
			OutputPluginUpdateProgress(ctx, true);
		return;
	}
	OutputPluginPrepareWrite(ctx, true);
	appendStringInfo(ctx->out, "{\"kind\":\"commit\",\"xid\":%u", txn->xid);
	lsn_field(ctx->out, "lsn", commit_lsn);
	lsn_field(ctx->out, "end_lsn", txn->end_lsn);
	appendStringInfo(ctx->out, ",\"commit_time\":\"%s\"}", timestamptz_to_str(txn->xact_time.commit_time));
	OutputPluginWrite(ctx, true);
}

/* The value of a column as JSON: numbers and booleans bare, json(b) as is, the rest as strings. */
static void
append_value(StringInfo out, Oid typid, Datum value, bool isnull)
{
	Oid			outfunc;
	bool		isvarlena;
	char	   *text;

	if (isnull)
	{
		appendStringInfoString(out, "null");
		return;
	}
	getTypeOutputInfo(typid, &outfunc, &isvarlena);
	text = OidOutputFunctionCall(outfunc, value);
	switch (typid)
	{
		case INT2OID:
		case INT4OID:
		case INT8OID:
		case OIDOID:
			appendStringInfoString(out, text);
			break;
		case BOOLOID:
			appendStringInfoString(out, strcmp(text, "t") == 0 ? "true" : "false");
			break;
		case JSONOID:
		case JSONBOID:
			appendStringInfoString(out, text);
			break;
		default:
			escape_json(out, text);
	}
}

static void
append_tuple(StringInfo out, TupleDesc desc, HeapTuple tuple)
{
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		bool		isnull;
		Datum		value;

		if (att->attisdropped || att->attnum < 0)
			continue;
		value = heap_getattr(tuple, i + 1, desc, &isnull);
		appendStringInfoChar(out, ',');
		escape_json(out, NameStr(att->attname));
		appendStringInfoChar(out, ':');
		append_value(out, att->atttypid, value, isnull);
	}
}

static char *
text_at(TupleDesc desc, HeapTuple tuple, int attnum)
{
	bool		isnull;
	Datum		d = heap_getattr(tuple, attnum, desc, &isnull);

	return isnull ? NULL : TextDatumGetCString(d);
}

static bool
in_list(List *list, const char *value)
{
	ListCell   *lc;

	if (list == NIL)
		return true;
	if (value == NULL)
		return false;
	foreach(lc, list)
		if (strcmp((char *) lfirst(lc), value) == 0)
			return true;
	return false;
}

/* sku, location, lot of an event (first = Anum_ie_event_sku) or stock row (Anum_ie_stock_sku). */
static char *
stream_key(TupleDesc desc, HeapTuple tuple, int first)
{
	return psprintf("%s\x01%s\x01%s", text_at(desc, tuple, first),
					text_at(desc, tuple, first + 1), text_at(desc, tuple, first + 2));
}

static void
skip_change(LogicalDecodingContext *ctx, IeDecodingData *data)
{
	/* Keep a walsender's receiver informed while a big transaction is filtered out. */
	if (++data->skipped % IE_PROGRESS_EVERY == 0)
		OutputPluginUpdateProgress(ctx, false);
}

static void
decode_event(LogicalDecodingContext *ctx, IeDecodingData *data, ReorderBufferTXN *txn,
			 TupleDesc desc, HeapTuple tuple, XLogRecPtr lsn)
{
	char	   *sku = text_at(desc, tuple, Anum_ie_event_sku);
	bool		isnull;
	Datum		type = heap_getattr(tuple, Anum_ie_event_event_type, desc, &isnull);
	StringInfo	out;

	if (data->event_types != NIL)
	{
		Oid			outfunc;
		bool		isvarlena;

		getTypeOutputInfo(TupleDescAttr(desc, Anum_ie_event_event_type - 1)->atttypid, &outfunc, &isvarlena);
		if (!in_list(data->event_types, OidOutputFunctionCall(outfunc, type)))
		{
			skip_change(ctx, data);
			return;
		}
	}
	if ((data->sku_prefix && strncmp(sku, data->sku_prefix, strlen(data->sku_prefix)) != 0) ||
		!in_list(data->locations, text_at(desc, tuple, Anum_ie_event_location)) ||
		!in_list(data->channels, text_at(desc, tuple, Anum_ie_event_channel)))
	{
		skip_change(ctx, data);
		return;
	}

	ensure_begin(ctx, data, txn);
	if (data->include_position)
	{
		/* Held back until the stream's stock row change arrives. */
		MemoryContext old = MemoryContextSwitchTo(ctx->context);

		out = &data->pending;
		resetStringInfo(out);
		data->pending_key = stream_key(desc, tuple, Anum_ie_event_sku);
		data->has_pending = true;
		MemoryContextSwitchTo(old);
	}
	else
	{
		OutputPluginPrepareWrite(ctx, true);
		out = ctx->out;
	}
	appendStringInfoString(out, "{\"kind\":\"event\"");
	lsn_field(out, "lsn", lsn);
	appendStringInfo(out, ",\"event_id\":" INT64_FORMAT,
					 DatumGetInt64(heap_getattr(tuple, Anum_ie_event_id, desc, &isnull)));
	append_tuple(out, desc, tuple);
	if (!data->include_position)
	{
		appendStringInfoChar(out, '}');
		OutputPluginWrite(ctx, true);
	}
}

/* The stock row after an event: completes the held-back event record. */
static void
decode_stock(LogicalDecodingContext *ctx, IeDecodingData *data, TupleDesc desc, HeapTuple tuple)
{
	StringInfo	out = &data->pending;
	bool		isnull;

	if (!data->has_pending || strcmp(data->pending_key, stream_key(desc, tuple, Anum_ie_stock_sku)) != 0)
	{
		skip_change(ctx, data);
		return;
	}
	appendStringInfoString(out, ",\"position\":{");
	for (int b = 0; b < IE_NUM_BUCKETS; b++)
		appendStringInfo(out, "%s\"%s\":" INT64_FORMAT, b ? "," : "", ie_bucket_names[b],
						 DatumGetInt64(heap_getattr(tuple, Anum_ie_stock_available + b, desc, &isnull)));
	appendStringInfo(out, ",\"on_hand\":" INT64_FORMAT ",\"safety_stock\":" INT64_FORMAT ",\"version\":" INT64_FORMAT "}",
					 DatumGetInt64(heap_getattr(tuple, Anum_ie_stock_on_hand, desc, &isnull)),
					 DatumGetInt64(heap_getattr(tuple, Anum_ie_stock_safety_stock, desc, &isnull)),
					 DatumGetInt64(heap_getattr(tuple, Anum_ie_stock_version, desc, &isnull)));
	flush_pending(ctx, data);
}

static void
decode_publication(LogicalDecodingContext *ctx, IeDecodingData *data, ReorderBufferTXN *txn,
				   TupleDesc desc, HeapTuple tuple, XLogRecPtr lsn)
{
	if (!data->include_publications || !in_list(data->channels, text_at(desc, tuple, 1)))
	{
		skip_change(ctx, data);
		return;
	}
	ensure_begin(ctx, data, txn);
	OutputPluginPrepareWrite(ctx, true);
	appendStringInfoString(ctx->out, "{\"kind\":\"publication\"");
	lsn_field(ctx->out, "lsn", lsn);
	append_tuple(ctx->out, desc, tuple);
	appendStringInfoChar(ctx->out, '}');
	OutputPluginWrite(ctx, true);
}

static void
ie_decode_change(LogicalDecodingContext *ctx, ReorderBufferTXN *txn, Relation relation,
				 ReorderBufferChange *change)
{
	IeDecodingData *data = ctx->output_plugin_private;
	Oid			relid = RelationGetRelid(relation);
	MemoryContext old;
	HeapTuple	tuple;

	rels_load();
	if ((relid != rels.event && relid != rels.stock && relid != rels.publication) ||
		(change->action != REORDER_BUFFER_CHANGE_INSERT && change->action != REORDER_BUFFER_CHANGE_UPDATE) ||
		change->data.tp.newtuple == NULL)
	{
		skip_change(ctx, data);
		return;
	}
	tuple = &change->data.tp.newtuple->tuple;

	old = MemoryContextSwitchTo(data->context);
	if (relid == rels.stock)
		decode_stock(ctx, data, RelationGetDescr(relation), tuple);
	else
	{
		/* An event waiting for its position that did not get one goes out as is. */
		flush_pending(ctx, data);
		if (change->action != REORDER_BUFFER_CHANGE_INSERT)
			skip_change(ctx, data);
		else if (relid == rels.event)
			decode_event(ctx, data, txn, RelationGetDescr(relation), tuple, change->lsn);
		else
			decode_publication(ctx, data, txn, RelationGetDescr(relation), tuple, change->lsn);
	}
	MemoryContextSwitchTo(old);
	MemoryContextReset(data->context);
}

static void
ie_decode_message(LogicalDecodingContext *ctx, ReorderBufferTXN *txn, XLogRecPtr lsn,
				  bool transactional, const char *prefix, Size size, const char *message)
{
	IeDecodingData *data = ctx->output_plugin_private;
	MemoryContext old;

	if (!data->include_messages || strcmp(prefix, IE_MESSAGE_PREFIX) != 0)
		return;
	old = MemoryContextSwitchTo(data->context);
	if (transactional)
	{
		flush_pending(ctx, data);
		ensure_begin(ctx, data, txn);
	}
	OutputPluginPrepareWrite(ctx, true);
	appendStringInfoString(ctx->out, "{\"kind\":\"message\"");
	lsn_field(ctx->out, "lsn", lsn);
	appendStringInfo(ctx->out, ",\"transactional\":%s,\"prefix\":", transactional ? "true" : "false");
	escape_json(ctx->out, prefix);
	appendStringInfoString(ctx->out, ",\"content\":");
	escape_json(ctx->out, pnstrdup(message, size));
	appendStringInfoChar(ctx->out, '}');
	OutputPluginWrite(ctx, true);
	MemoryContextSwitchTo(old);
	MemoryContextReset(data->context);
}

void
_PG_output_plugin_init(OutputPluginCallbacks *cb)
{
	cb->startup_cb = ie_decode_startup;
	cb->begin_cb = ie_decode_begin_txn;
	cb->change_cb = ie_decode_change;
	cb->commit_cb = ie_decode_commit_txn;
	cb->message_cb = ie_decode_message;
	cb->filter_by_origin_cb = ie_decode_filter;
	cb->shutdown_cb = ie_decode_shutdown;
}
