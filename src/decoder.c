/*
 * decoder.c
 *		The logical decoding output plugin "inventory_events".
 *
 * One JSON object per line per change, never a whole transaction in one
 * buffer: event log inserts ("kind": "event"), publication log inserts
 * ("kind": "publication"), moves of serials (serial_event inserts, "kind":
 * "serial", after their event's record), logical messages under the prefix
 * "inventory_events" ("kind": "message"), and optionally "begin" and
 * "commit" records. An UPDATE, DELETE or TRUNCATE of the event log (only a
 * superuser past the append-only guard can make one) becomes a "rewrite"
 * record whatever the filters: never silence. Every record carries its LSN;
 * event records carry "event_id" and every column of the event under its
 * column name, so that consumers can resume and deduplicate. Everything else is skipped by
 * relation id (four OIDs, cached per process, dropped on any relcache
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
#include "catalog/partition.h"
#include "catalog/pg_enum.h"
#include "catalog/pg_type.h"
#include "replication/logical.h"
#include "replication/origin.h"
#include "utils/builtins.h"
#include "utils/uuid.h"
#include "utils/xid8.h"
#include "utils/catcache.h"
#include "utils/datetime.h"
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
#define IE_PROGRESS_EVERY 1000

/*
 * How one column is written. Decided once per relation, so that a change
 * costs no catalog lookup, no type-name compare and no fmgr set-up per
 * column: numbers, booleans, text, timestamps, dates, stock positions and
 * our enums are written directly; only other types call their output
 * function (looked up once).
 */
typedef enum ColumnKind
{
	COL_INT2,
	COL_INT4,
	COL_INT8,
	COL_BOOL,
	COL_TEXT,
	COL_TIMESTAMPTZ,
	COL_DATE,
	COL_UUID,					/* a JSON string, as uuid_out writes it */
	COL_XID8,					/* a JSON string of its decimal digits, as xid8out */
	COL_POSITION,				/* stock_position: an object of its non-zero buckets */
	COL_ENUM,					/* label by pg_enum OID, cached */
	COL_JSON,					/* json and jsonb: written as they are */
	COL_OTHER					/* output function, then a JSON string */
} ColumnKind;

typedef struct ColumnPlan
{
	AttrNumber	attnum;
	ColumnKind	kind;
	bool		varlena;		/* may be an on-disk TOAST pointer in an UPDATE */
	char	   *key;			/* ,"name": */
	int			keylen;
	FmgrInfo	out;			/* COL_JSON, COL_OTHER, COL_ENUM's unknown labels */
	int			nlabels;		/* COL_ENUM */
	Oid		   *label_oids;
	char	  **names;			/* the labels */
	char	  **labels;			/* the same as JSON strings, quotes included */
} ColumnPlan;

typedef struct RelationPlan
{
	Oid			relid;			/* the relation (an event plan: the partition) */
	AttrNumber	att[IE_NUM_COLUMNS];	/* of the columns C reads, by name */
	int			ncols;
	ColumnPlan *cols;
	Datum	   *values;			/* the current tuple, deformed */
	bool	   *nulls;
} RelationPlan;

/*
 * The relations we decode, by OID, with their column plans; all found again
 * after any relcache invalidation of them (ALTER TABLE during an upgrade)
 * or syscache invalidation of an enum label (ALTER TYPE ... RENAME VALUE).
 * The callbacks only mark the cache stale: it is rebuilt at the next change,
 * never in the middle of one.
 */
static struct
{
	bool		valid;
	Oid			event;
	Oid			stock;
	Oid			publication;
	Oid			serial_event;
	Oid			position_typid;
	MemoryContext context;		/* holds the plans */
	List	   *event_plans;	/* per partition of the log (or the log) */
	List	   *log_partitions; /* relations known to be partitions of the log */
	List	   *other_partitions;	/* and to be partitions of anything else */
	RelationPlan *stock_plan;	/* read only: its rows complete event records */
	RelationPlan *publication_plan;
	RelationPlan *serial_event_plan;
}			rels;
static bool rels_callback_registered = false;

static void
rels_invalidate(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == rels.event || relid == rels.stock || relid == rels.publication ||
		relid == rels.serial_event || list_member_oid(rels.log_partitions, relid) ||
		list_member_oid(rels.other_partitions, relid))
		rels.valid = false;
}

static void
enums_invalidate(Datum arg, int cacheid, uint32 hashvalue)
{
	rels.valid = false;
}

static void
rels_load(void)
{
	Oid			nsp;

	if (rels.valid)
		return;
	if (rels.context == NULL)
		rels.context = AllocSetContextCreate(CacheMemoryContext, "inventory_events decoder plans",
											 ALLOCSET_SMALL_SIZES);
	MemoryContextReset(rels.context);
	rels.event = rels.stock = rels.publication = rels.serial_event = rels.position_typid = InvalidOid;
	rels.stock_plan = rels.publication_plan = rels.serial_event_plan = NULL;
	rels.event_plans = rels.log_partitions = rels.other_partitions = NIL;
	nsp = get_namespace_oid("inventory_events", true);
	if (OidIsValid(nsp))
	{
		rels.event = get_relname_relid("event", nsp);
		rels.stock = get_relname_relid("stock", nsp);
		rels.publication = get_relname_relid("publication", nsp);
		rels.serial_event = get_relname_relid("serial_event", nsp);	/* from 0.3.0 */
		rels.position_typid = GetSysCacheOid2(TYPENAMENSP, Anum_pg_type_oid,
											  CStringGetDatum("stock_position"), ObjectIdGetDatum(nsp));
	}
	rels.valid = true;
}

/* The labels of an enum type, as JSON strings, by pg_enum OID. */
static void
plan_enum_labels(ColumnPlan *col, Oid typid)
{
	CatCList   *list = SearchSysCacheList1(ENUMTYPOIDNAME, ObjectIdGetDatum(typid));

	col->nlabels = list->n_members;
	col->label_oids = palloc(sizeof(Oid) * list->n_members);
	col->names = palloc(sizeof(char *) * list->n_members);
	col->labels = palloc(sizeof(char *) * list->n_members);
	for (int i = 0; i < list->n_members; i++)
	{
		HeapTuple	tup = &list->members[i]->tuple;
		Form_pg_enum e = (Form_pg_enum) GETSTRUCT(tup);
		StringInfoData label;

		initStringInfo(&label);
		escape_json(&label, NameStr(e->enumlabel));
		col->label_oids[i] = e->oid;
		col->names[i] = pstrdup(NameStr(e->enumlabel));
		col->labels[i] = label.data;
	}
	ReleaseSysCacheList(list);
}

/*
 * The plan of a relation's columns; skip (a column of table, or -1) is left
 * out. The attribute numbers of table's columns that the decoder reads are
 * looked up by name, in this version of the relation.
 */
static RelationPlan *
plan_relation(Relation relation, int table, int skip)
{
	TupleDesc	desc = RelationGetDescr(relation);
	MemoryContext old = MemoryContextSwitchTo(rels.context);
	RelationPlan *plan = palloc0(sizeof(RelationPlan));
	AttrNumber	skip_attnum = InvalidAttrNumber;

	for (int c = 0; c < IE_NUM_COLUMNS; c++)
	{
		if ((int) ie_column_table(c) != table)
			continue;
		for (int i = 0; i < desc->natts; i++)
		{
			Form_pg_attribute att = TupleDescAttr(desc, i);

			if (!att->attisdropped && strcmp(NameStr(att->attname), ie_column_name(c)) == 0)
				plan->att[c] = att->attnum;
		}
		/* A column added in 0.3.0 is absent from the log of older versions. */
		if (plan->att[c] == InvalidAttrNumber && !ie_column_from_0_3_0(c))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("column \"%s\" of relation \"%s\" does not exist",
							ie_column_name(c), RelationGetRelationName(relation)),
					 errdetail("The inventory_events output plugin reads this column.")));
	}
	if (skip >= 0)
		skip_attnum = plan->att[skip];

	plan->cols = palloc0(sizeof(ColumnPlan) * desc->natts);
	plan->values = palloc(sizeof(Datum) * desc->natts);
	plan->nulls = palloc(sizeof(bool) * desc->natts);
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		ColumnPlan *col;
		StringInfoData key;
		Oid			outfunc;
		bool		isvarlena;

		if (att->attisdropped || att->attnum == skip_attnum)
			continue;
		col = &plan->cols[plan->ncols++];
		col->attnum = att->attnum;
		col->varlena = att->attlen == -1;
		initStringInfo(&key);
		appendStringInfoChar(&key, ',');
		escape_json(&key, NameStr(att->attname));
		appendStringInfoChar(&key, ':');
		col->key = key.data;
		col->keylen = key.len;
		switch (att->atttypid)
		{
			case INT2OID:
				col->kind = COL_INT2;
				break;
			case INT4OID:
				col->kind = COL_INT4;
				break;
			case INT8OID:
				col->kind = COL_INT8;
				break;
			case BOOLOID:
				col->kind = COL_BOOL;
				break;
			case TEXTOID:
			case VARCHAROID:
				col->kind = COL_TEXT;
				break;
			case TIMESTAMPTZOID:
				col->kind = COL_TIMESTAMPTZ;
				break;
			case DATEOID:
				col->kind = COL_DATE;
				break;
			case JSONOID:
			case JSONBOID:
				col->kind = COL_JSON;
				break;
			case UUIDOID:
				col->kind = COL_UUID;
				break;
			case XID8OID:
				col->kind = COL_XID8;
				break;
			default:
				if (att->atttypid == rels.position_typid)
					col->kind = COL_POSITION;
				else if (type_is_enum(att->atttypid))
				{
					col->kind = COL_ENUM;
					plan_enum_labels(col, att->atttypid);
				}
				else
					col->kind = COL_OTHER;
		}
		getTypeOutputInfo(att->atttypid, &outfunc, &isvarlena);
		fmgr_info_cxt(outfunc, &col->out, rels.context);
	}
	MemoryContextSwitchTo(old);
	return plan;
}

typedef struct IeDecodingData
{
	MemoryContext context;		/* reset after every change */
	bool		include_xact;
	bool		include_position;
	bool		include_publications;
	bool		include_messages;
	bool		include_serials;
	List	   *event_types;	/* names; NIL: all */
	char	   *sku_prefix;		/* NULL: all */
	List	   *locations;		/* NIL: all */
	List	   *channels;		/* NIL: all */
	bool		xact_started;	/* the begin record of this transaction went out */
	uint64		skipped;		/* changes skipped since the last progress update */
	/* The last event the filters left out: its serial records go too. */
	int64		filtered_event;
	/* An event record held back for its stream's position (include-position). */
	StringInfoData pending;
	bool		has_pending;
	StringInfoData pending_key; /* sku \x01 location \x01 lot; both reused */
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
	data->include_serials = true;
	initStringInfo(&data->pending);
	initStringInfo(&data->pending_key);

	foreach(lc, ctx->output_plugin_options)
	{
		DefElem    *elem = lfirst(lc);

		Assert(elem->arg == NULL || IsA(elem->arg, String));
		if (strcmp(elem->defname, "format-version") == 0)
		{
			if (elem->arg == NULL || strcmp(strVal(elem->arg), CppAsString2(IE_FORMAT_VERSION)) != 0)
				bad_option(elem, CppAsString2(IE_FORMAT_VERSION) ", the only format version");
		}
		else if (strcmp(elem->defname, "include-xact") == 0)
			data->include_xact = option_bool(elem);
		else if (strcmp(elem->defname, "include-position") == 0)
			data->include_position = option_bool(elem);
		else if (strcmp(elem->defname, "include-publications") == 0)
			data->include_publications = option_bool(elem);
		else if (strcmp(elem->defname, "include-messages") == 0)
			data->include_messages = option_bool(elem);
		else if (strcmp(elem->defname, "include-serials") == 0)
			data->include_serials = option_bool(elem);
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
					 errhint("Options: format-version, include-xact, include-position, include-publications, include-messages, include-serials, event-types, sku-prefix, locations, channels.")));
	}

	opt->output_type = OUTPUT_PLUGIN_TEXTUAL_OUTPUT;
	opt->receive_rewrites = false;
	ctx->output_plugin_private = data;

	if (!rels_callback_registered)
	{
		CacheRegisterRelcacheCallback(rels_invalidate, (Datum) 0);
		CacheRegisterSyscacheCallback(ENUMOID, enums_invalidate, (Datum) 0);
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
append_int64(StringInfo out, int64 value)
{
	char		buf[MAXINT8LEN + 1];

	appendBinaryStringInfo(out, buf, pg_lltoa(value, buf));
}

/*
 * A uuid as a JSON string, written as uuid_out writes it (lowercase, 8-4-4-4-12)
 * without the output function: two per event, the decoder's most frequent
 * output function call.
 */
static void
append_uuid(StringInfo out, const pg_uuid_t *uuid)
{
	static const char hex[] = "0123456789abcdef";
	char		buf[2 + 2 * UUID_LEN + 4];
	int			n = 0;

	buf[n++] = '"';
	for (int i = 0; i < UUID_LEN; i++)
	{
		if (i == 4 || i == 6 || i == 8 || i == 10)
			buf[n++] = '-';
		buf[n++] = hex[uuid->data[i] >> 4];
		buf[n++] = hex[uuid->data[i] & 0x0f];
	}
	buf[n++] = '"';
	appendBinaryStringInfo(out, buf, n);
}

/* An xid8 as a JSON string of its digits, as xid8out writes it. */
static void
append_xid8(StringInfo out, FullTransactionId xid)
{
	char		buf[MAXINT8LEN + 3];
	int			n;

	buf[0] = '"';
	n = pg_ulltoa_n(U64FromFullTransactionId(xid), buf + 1);
	buf[1 + n] = '"';
	appendBinaryStringInfo(out, buf, n + 2);
}

/* A timestamp with time zone or a date in ISO 8601, in UTC whatever the session's TimeZone. */
static void
append_datetime(StringInfo out, Datum value, Oid typid)
{
	static const int utc = 0;
	char		buf[MAXDATELEN + 1];

	appendStringInfoChar(out, '"');
	appendStringInfoString(out, JsonEncodeDateTime(buf, value, typid, &utc));
	appendStringInfoChar(out, '"');
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
	appendStringInfoString(ctx->out, ",\"commit_time\":");
	append_datetime(ctx->out, TimestampTzGetDatum(txn->xact_time.commit_time), TIMESTAMPTZOID);
	appendStringInfoChar(ctx->out, '}');
	OutputPluginWrite(ctx, true);
}

/* A stock position as an object of its non-zero buckets: {"available":3}. */
static void
append_position(StringInfo out, const StockPosition *p)
{
	bool		first = true;

	appendStringInfoChar(out, '{');
	for (int b = 0; b < IE_NUM_BUCKETS; b++)
	{
		if (p->q[b] == 0)
			continue;
		appendStringInfo(out, "%s\"%s\":", first ? "" : ",", ie_bucket_names[b]);
		append_int64(out, p->q[b]);
		first = false;
	}
	appendStringInfoChar(out, '}');
}

/* The index of an enum value's label in the plan, or -1 for a label added since. */
static int
enum_label(ColumnPlan *col, Datum value)
{
	for (int l = 0; l < col->nlabels; l++)
		if (col->label_oids[l] == DatumGetObjectId(value))
			return l;
	return -1;
}

static void
append_column(StringInfo out, ColumnPlan *col, Datum value)
{
	switch (col->kind)
	{
		case COL_INT2:
			append_int64(out, DatumGetInt16(value));
			break;
		case COL_INT4:
			append_int64(out, DatumGetInt32(value));
			break;
		case COL_INT8:
			append_int64(out, DatumGetInt64(value));
			break;
		case COL_BOOL:
			appendStringInfoString(out, DatumGetBool(value) ? "true" : "false");
			break;
		case COL_TEXT:
			escape_json(out, TextDatumGetCString(value));
			break;
		case COL_TIMESTAMPTZ:
			append_datetime(out, value, TIMESTAMPTZOID);
			break;
		case COL_DATE:
			append_datetime(out, value, DATEOID);
			break;
		case COL_UUID:
			append_uuid(out, DatumGetUUIDP(value));
			break;
		case COL_XID8:
			append_xid8(out, DatumGetFullTransactionId(value));
			break;
		case COL_POSITION:
			append_position(out, DatumGetStockPosition(value));
			break;
		case COL_ENUM:
			{
				int			l = enum_label(col, value);

				if (l >= 0)
					appendStringInfoString(out, col->labels[l]);
				else
					escape_json(out, OutputFunctionCall(&col->out, value));
			}
			break;
		case COL_JSON:
			appendStringInfoString(out, OutputFunctionCall(&col->out, value));
			break;
		case COL_OTHER:
			escape_json(out, OutputFunctionCall(&col->out, value));
			break;
	}
}

/* The plan's columns of the deformed tuple; a null column is left out. */
static void
append_columns(StringInfo out, RelationPlan *plan)
{
	StringInfoData unchanged = {0};

	for (int i = 0; i < plan->ncols; i++)
	{
		ColumnPlan *col = &plan->cols[i];
		Datum		value = plan->values[col->attnum - 1];

		if (plan->nulls[col->attnum - 1])
			continue;

		/*
		 * Only an UPDATE's new tuple (a rewrite record) carries these: an
		 * unchanged TOASTed value stays a pointer to the table, which may be
		 * gone by the time we decode. Name it instead of reading it: the key
		 * is ,"name": and the quoted name alone lies inside it.
		 */
		if (col->varlena && VARATT_IS_EXTERNAL_ONDISK(DatumGetPointer(value)))
		{
			if (unchanged.data == NULL)
				initStringInfo(&unchanged);
			else
				appendStringInfoChar(&unchanged, ',');
			appendBinaryStringInfo(&unchanged, col->key + 1, col->keylen - 2);
			continue;
		}
		appendBinaryStringInfo(out, col->key, col->keylen);
		append_column(out, col, value);
	}
	if (unchanged.data != NULL)
		appendStringInfo(out, ",\"unchanged_toast\":[%s]", unchanged.data);
}

static char *
text_at(RelationPlan *plan, IeColumn column)
{
	AttrNumber	attnum = plan->att[column];

	return plan->nulls[attnum - 1] ? NULL : TextDatumGetCString(plan->values[attnum - 1]);
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

/* sku \x01 location \x01 lot: the stream of an event or of a stock row, into key. */
static void
stream_key(StringInfo key, const char *sku, const char *location, const char *lot)
{
	resetStringInfo(key);
	appendStringInfo(key, "%s\x01%s\x01%s", sku, location, lot);
}

static void
skip_change(LogicalDecodingContext *ctx, IeDecodingData *data)
{
	/* Keep a walsender's receiver informed while a big transaction is filtered out. */
	if (++data->skipped % IE_PROGRESS_EVERY == 0)
		OutputPluginUpdateProgress(ctx, false);
}

/* The plan of a relation, made on first use; the tuple deformed into it. */
static RelationPlan *
plan_tuple(RelationPlan **plan, Relation relation, int table, int skip, HeapTuple tuple)
{
	if (*plan == NULL)
		*plan = plan_relation(relation, table, skip);
	heap_deform_tuple(tuple, RelationGetDescr(relation), (*plan)->values, (*plan)->nulls);
	return *plan;
}

/*
 * The same for an event: its plan is that of its partition. The partitions
 * have the log's column layout (src/logpart.c refuses any other), but the
 * decoder reads the historic catalog of each change, which may predate that
 * check: a plan per relation costs nothing and assumes nothing.
 */
static RelationPlan *
plan_event_tuple(Relation relation, HeapTuple tuple)
{
	RelationPlan *plan = NULL;
	ListCell   *lc;

	foreach(lc, rels.event_plans)
	{
		if (((RelationPlan *) lfirst(lc))->relid == RelationGetRelid(relation))
		{
			plan = lfirst(lc);
			break;
		}
	}
	if (plan == NULL)
	{
		MemoryContext old;

		/* "id" goes out first, as "event_id", so it is left out of the columns. */
		plan = plan_relation(relation, IE_TABLE_event, IE_COL_event_id);
		plan->relid = RelationGetRelid(relation);
		old = MemoryContextSwitchTo(rels.context);
		rels.event_plans = lappend(rels.event_plans, plan);
		MemoryContextSwitchTo(old);
	}
	return plan_tuple(&plan, relation, IE_TABLE_event, IE_COL_event_id, tuple);
}

/*
 * Is this relation the log, or one of its partitions (from 0.3.0, the
 * changes decoded are those of the partitions)? Asked of the historic
 * catalog once per partition.
 */
static bool
is_log(Relation relation)
{
	Oid			relid = RelationGetRelid(relation);
	bool		ours;
	MemoryContext old;

	if (relid == rels.event)
		return true;
	if (!relation->rd_rel->relispartition || !OidIsValid(rels.event))
		return false;
	if (list_member_oid(rels.log_partitions, relid))
		return true;
	if (list_member_oid(rels.other_partitions, relid))
		return false;
	ours = get_partition_parent(relid, true) == rels.event;
	old = MemoryContextSwitchTo(rels.context);
	if (ours)
		rels.log_partitions = lappend_oid(rels.log_partitions, relid);
	else
		rels.other_partitions = lappend_oid(rels.other_partitions, relid);
	MemoryContextSwitchTo(old);
	return ours;
}

/* The label of an enum column's value, for the event-types filter. */
static const char *
enum_name(RelationPlan *plan, IeColumn column)
{
	AttrNumber	attnum = plan->att[column];
	Datum		value = plan->values[attnum - 1];

	for (int i = 0; i < plan->ncols; i++)
	{
		ColumnPlan *col = &plan->cols[i];
		int			l;

		if (col->attnum != attnum)
			continue;
		l = enum_label(col, value);
		return l >= 0 ? col->names[l] : OutputFunctionCall(&col->out, value);
	}
	elog(ERROR, "column %d of the event log is not decoded", attnum);
}

static void
decode_event(LogicalDecodingContext *ctx, IeDecodingData *data, ReorderBufferTXN *txn,
			 Relation relation, HeapTuple tuple, XLogRecPtr lsn)
{
	RelationPlan *plan = plan_event_tuple(relation, tuple);
	char	   *sku = text_at(plan, IE_COL_event_sku);
	StringInfo	out;

	data->filtered_event = 0;
	if ((data->event_types != NIL && !in_list(data->event_types, enum_name(plan, IE_COL_event_event_type))) ||
		(data->sku_prefix && strncmp(sku, data->sku_prefix, strlen(data->sku_prefix)) != 0) ||
		!in_list(data->locations, text_at(plan, IE_COL_event_location)) ||
		!in_list(data->channels, text_at(plan, IE_COL_event_channel)))
	{
		data->filtered_event = DatumGetInt64(plan->values[plan->att[IE_COL_event_id] - 1]);
		skip_change(ctx, data);
		return;
	}

	ensure_begin(ctx, data, txn);
	if (data->include_position)
	{
		/* Held back until the stream's stock row change arrives. */
		out = &data->pending;
		resetStringInfo(out);
		stream_key(&data->pending_key, sku, text_at(plan, IE_COL_event_location),
				   text_at(plan, IE_COL_event_lot));
		data->has_pending = true;
	}
	else
	{
		OutputPluginPrepareWrite(ctx, true);
		out = ctx->out;
	}
	appendStringInfoString(out, "{\"kind\":\"event\"");
	lsn_field(out, "lsn", lsn);
	appendStringInfoString(out, ",\"event_id\":");
	append_int64(out, DatumGetInt64(plan->values[plan->att[IE_COL_event_id] - 1]));
	append_columns(out, plan);
	if (!data->include_position)
	{
		appendStringInfoChar(out, '}');
		OutputPluginWrite(ctx, true);
	}
}

/* The stock row after an event: completes the held-back event record. */
static void
decode_stock(LogicalDecodingContext *ctx, IeDecodingData *data, Relation relation, HeapTuple tuple)
{
	StringInfo	out = &data->pending;
	RelationPlan *plan;
	StringInfoData key;

	if (!data->has_pending)
	{
		skip_change(ctx, data);
		return;
	}
	plan = plan_tuple(&rels.stock_plan, relation, IE_TABLE_stock, -1, tuple);
	initStringInfo(&key);		/* in the per-change context */
	stream_key(&key, text_at(plan, IE_COL_stock_sku), text_at(plan, IE_COL_stock_location),
			   text_at(plan, IE_COL_stock_lot));
	if (strcmp(data->pending_key.data, key.data) != 0)
	{
		skip_change(ctx, data);
		return;
	}
	appendStringInfoString(out, ",\"position\":{");
	for (int b = 0; b < IE_NUM_BUCKETS; b++)
	{
		appendStringInfo(out, "%s\"%s\":", b ? "," : "", ie_bucket_names[b]);
		append_int64(out, DatumGetInt64(plan->values[plan->att[IE_COL_stock_available + b] - 1]));
	}
	appendStringInfoString(out, ",\"on_hand\":");
	append_int64(out, DatumGetInt64(plan->values[plan->att[IE_COL_stock_on_hand] - 1]));
	appendStringInfoString(out, ",\"safety_stock\":");
	append_int64(out, DatumGetInt64(plan->values[plan->att[IE_COL_stock_safety_stock] - 1]));
	appendStringInfoString(out, ",\"version\":");
	append_int64(out, DatumGetInt64(plan->values[plan->att[IE_COL_stock_version] - 1]));
	appendStringInfoChar(out, '}');
	flush_pending(ctx, data);
}

/* A record of one row: its kind, its LSN and its columns. */
static void
write_row_record(LogicalDecodingContext *ctx, IeDecodingData *data, ReorderBufferTXN *txn,
				 const char *kind, XLogRecPtr lsn, RelationPlan *plan)
{
	ensure_begin(ctx, data, txn);
	OutputPluginPrepareWrite(ctx, true);
	appendStringInfo(ctx->out, "{\"kind\":\"%s\"", kind);
	lsn_field(ctx->out, "lsn", lsn);
	append_columns(ctx->out, plan);
	appendStringInfoChar(ctx->out, '}');
	OutputPluginWrite(ctx, true);
}

static void
decode_publication(LogicalDecodingContext *ctx, IeDecodingData *data, ReorderBufferTXN *txn,
				   Relation relation, HeapTuple tuple, XLogRecPtr lsn)
{
	RelationPlan *plan;

	if (!data->include_publications)
	{
		skip_change(ctx, data);
		return;
	}
	plan = plan_tuple(&rels.publication_plan, relation, IE_TABLE_publication, -1, tuple);
	if (!in_list(data->channels, text_at(plan, IE_COL_publication_channel)))
	{
		skip_change(ctx, data);
		return;
	}
	write_row_record(ctx, data, txn, "publication", lsn, plan);
}

/*
 * A serial moved by an event: "kind": "serial" and the columns of its
 * serial_event row (sku, serial, version, event_id, location, bucket),
 * after the event's record; left out with its event when the filters leave
 * the event out (its rows follow the event's insert in the transaction).
 */
static void
decode_serial(LogicalDecodingContext *ctx, IeDecodingData *data, ReorderBufferTXN *txn,
			  Relation relation, HeapTuple tuple, XLogRecPtr lsn)
{
	RelationPlan *plan;

	if (!data->include_serials)
	{
		skip_change(ctx, data);
		return;
	}
	plan = plan_tuple(&rels.serial_event_plan, relation, IE_TABLE_serial_event, -1, tuple);
	if (DatumGetInt64(plan->values[plan->att[IE_COL_serial_event_event_id] - 1]) == data->filtered_event ||
		(data->sku_prefix &&
		 strncmp(text_at(plan, IE_COL_serial_event_sku), data->sku_prefix, strlen(data->sku_prefix)) != 0) ||
		!in_list(data->locations, text_at(plan, IE_COL_serial_event_location)))
	{
		skip_change(ctx, data);
		return;
	}
	write_row_record(ctx, data, txn, "serial", lsn, plan);
}

/* Opens a "rewrite" record of the event log: kind, lsn, operation, relation. */
static void
begin_rewrite(LogicalDecodingContext *ctx, IeDecodingData *data, ReorderBufferTXN *txn,
			  XLogRecPtr lsn, const char *operation)
{
	ensure_begin(ctx, data, txn);
	OutputPluginPrepareWrite(ctx, true);
	appendStringInfoString(ctx->out, "{\"kind\":\"rewrite\"");
	lsn_field(ctx->out, "lsn", lsn);
	appendStringInfo(ctx->out, ",\"operation\":\"%s\",\"relation\":\"event\"", operation);
}

/*
 * An UPDATE or DELETE of the log (possible only for a superuser who turned
 * the append-only guard aside) is never silent: a "rewrite" record, whatever
 * the filters, with the event's id and, for an update, its new columns.
 */
static void
decode_rewrite(LogicalDecodingContext *ctx, IeDecodingData *data, ReorderBufferTXN *txn,
			   Relation relation, ReorderBufferChange *change)
{
	bool		update = change->action == REORDER_BUFFER_CHANGE_UPDATE;
	ReorderBufferTupleBuf *buf = update ? change->data.tp.newtuple : change->data.tp.oldtuple;
	RelationPlan *plan;

	begin_rewrite(ctx, data, txn, change->lsn, update ? "update" : "delete");
	if (buf != NULL)
	{
		/* A delete carries the replica identity: the primary key, the id. */
		plan = plan_event_tuple(relation, &buf->tuple);
		if (!plan->nulls[plan->att[IE_COL_event_id] - 1])
		{
			appendStringInfoString(ctx->out, ",\"event_id\":");
			append_int64(ctx->out, DatumGetInt64(plan->values[plan->att[IE_COL_event_id] - 1]));
		}
		if (update)
			append_columns(ctx->out, plan);
	}
	appendStringInfoChar(ctx->out, '}');
	OutputPluginWrite(ctx, true);
}

/* A TRUNCATE of the log: a "rewrite" record too. */
static void
ie_decode_truncate(LogicalDecodingContext *ctx, ReorderBufferTXN *txn, int nrelations,
				   Relation relations[], ReorderBufferChange *change)
{
	IeDecodingData *data = ctx->output_plugin_private;

	rels_load();
	for (int i = 0; i < nrelations; i++)
	{
		if (!is_log(relations[i]))
			continue;
		flush_pending(ctx, data);
		begin_rewrite(ctx, data, txn, change->lsn, "truncate");
		appendStringInfoChar(ctx->out, '}');
		OutputPluginWrite(ctx, true);
		/* One record for the log, whatever partitions it truncated. */
		break;
	}
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
	if (is_log(relation))
		relid = rels.event;
	if (relid == rels.event && (change->action == REORDER_BUFFER_CHANGE_UPDATE ||
								change->action == REORDER_BUFFER_CHANGE_DELETE))
	{
		old = MemoryContextSwitchTo(data->context);
		flush_pending(ctx, data);
		decode_rewrite(ctx, data, txn, relation, change);
		MemoryContextSwitchTo(old);
		MemoryContextReset(data->context);
		return;
	}
	if ((relid != rels.event && relid != rels.stock && relid != rels.publication &&
		 relid != rels.serial_event) ||
		(change->action != REORDER_BUFFER_CHANGE_INSERT && change->action != REORDER_BUFFER_CHANGE_UPDATE) ||
		change->data.tp.newtuple == NULL)
	{
		skip_change(ctx, data);
		return;
	}
	tuple = &change->data.tp.newtuple->tuple;

	old = MemoryContextSwitchTo(data->context);
	if (relid == rels.stock)
		decode_stock(ctx, data, relation, tuple);
	else
	{
		/* An event waiting for its position that did not get one goes out as is. */
		flush_pending(ctx, data);
		if (change->action != REORDER_BUFFER_CHANGE_INSERT)
			skip_change(ctx, data);
		else if (relid == rels.event)
			decode_event(ctx, data, txn, relation, tuple, change->lsn);
		else if (relid == rels.serial_event)
			decode_serial(ctx, data, txn, relation, tuple, change->lsn);
		else
			decode_publication(ctx, data, txn, relation, tuple, change->lsn);
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
	cb->truncate_cb = ie_decode_truncate;
	cb->commit_cb = ie_decode_commit_txn;
	cb->message_cb = ie_decode_message;
	cb->filter_by_origin_cb = ie_decode_filter;
	cb->shutdown_cb = ie_decode_shutdown;
}
