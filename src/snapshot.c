/*
 * snapshot.c
 *		Stream snapshots: where a stream's history is read from.
 *
 * inventory_events.stream_snapshot holds, per stream, its position, safety
 * stock and version as of one of its events, taken by the worker
 * (take_snapshots()) from the previous snapshot and the events after it. A
 * stream's position at any point is then its newest snapshot that applies
 * plus the events after that snapshot's version: the stream index
 * (sku, location, lot, version) starts the scan there, so what is read grows
 * with the recent events, not with the history.
 *
 * A snapshot applies to a question about business time `at` when every event
 * it folded occurred at or before `at` (occurred_max <= at): the events after
 * it that occurred by then are added, those after are skipped. A back-dated
 * event after the snapshot is therefore still counted; a future-dated one
 * before it makes the snapshot apply only from its date on, and an older
 * snapshot is used before that.
 *
 * verify(), rebuild(), position_as_of(), the as-of position of a late count
 * (log.c) and take_snapshots() all fold through ie_stream_fold().
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/nbtree.h"
#include "access/table.h"
#include "access/tableam.h"
#include "common/int128.h"
#include "executor/tuptable.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "catalog.h"
#include "logpart.h"
#include "snapshot.h"

/* An index scan of one stream's rows whose version is in (after, upto]. */
typedef struct StreamScan
{
	Relation	rel;
	Relation	idx;
	TupleTableSlot *slot;
	IndexScanDesc scan;
} StreamScan;

/*
 * Begins the scan of relid through indexid, whose keys are (sku, location,
 * lot, version): the stream's rows with version > after and, when upto > 0,
 * version <= upto, under snapshot. The text keys compare under the index's
 * collation.
 */
static void
stream_scan_begin(StreamScan *s, Oid relid, Oid indexid, const IeStreamKey *key, Snapshot snapshot,
				  int64 after, int64 upto)
{
	ScanKeyData skey[IE_STREAM_SCANKEYS];
	int			nkeys;

	s->rel = table_open(relid, AccessShareLock);
	s->idx = index_open(indexid, AccessShareLock);
	s->slot = table_slot_create(s->rel, NULL);
	nkeys = ie_stream_scankeys(skey, s->idx, key, after, upto);
	s->scan = index_beginscan(s->rel, s->idx, snapshot, nkeys, 0);
	index_rescan(s->scan, skey, nkeys, NULL, 0);
}

static void
stream_scan_end(StreamScan *s)
{
	index_endscan(s->scan);
	ExecDropSingleTupleTableSlot(s->slot);
	index_close(s->idx, AccessShareLock);
	table_close(s->rel, AccessShareLock);
}

/*
 * The newest snapshot of the stream that applies at `at`, below
 * through_version when that is given (> 0). False when there is none.
 */
static bool
newest_snapshot(const IeStreamKey *key, TimestampTz at, int64 through_version, Snapshot snapshot,
				IeStreamFold *fold)
{
	const IeCatalog *c = ie_catalog();
	StreamScan	s;
	TupleTableSlot *slot;
	bool		found = false;

	/* No snapshot table (SQL objects before 0.3.0), or none below version 1. */
	if (!OidIsValid(c->stream_snapshot_rel) || through_version == 1)
		return false;
	stream_scan_begin(&s, c->stream_snapshot_rel, c->stream_snapshot_pkey, key, snapshot, 0,
					  through_version > 0 ? through_version - 1 : 0);
	slot = s.slot;
	while (index_getnext_slot(s.scan, BackwardScanDirection, slot))
	{
		bool		isnull;
		TimestampTz occurred = DatumGetTimestampTz(slot_getattr(slot, Anum_ie_stream_snapshot_occurred_max, &isnull));

		CHECK_FOR_INTERRUPTS();
		if (occurred > at)
			continue;
		fold->version = DatumGetInt64(slot_getattr(slot, Anum_ie_stream_snapshot_version, &isnull));
		fold->event_id = DatumGetInt64(slot_getattr(slot, Anum_ie_stream_snapshot_event_id, &isnull));
		fold->position = *DatumGetStockPosition(slot_getattr(slot, Anum_ie_stream_snapshot_position, &isnull));
		fold->safety_stock = DatumGetInt64(slot_getattr(slot, Anum_ie_stream_snapshot_safety_stock, &isnull));
		fold->occurred_max = occurred;
		fold->has_occurred = true;
		fold->events = fold->version;
		fold->base_version = fold->version;
		found = true;
		break;
	}
	stream_scan_end(&s);
	return found;
}

/*
 * Refuses a fold from below a sealed snapshot (archive_before()'s, at the
 * stream's last version in an archived partition): the events it would read
 * up to the seal are archived. Looks at the stream's snapshots above the
 * fold's base, none as a rule (the base is the newest that applies).
 */
static void
check_sealed_above(const IeStreamKey *key, int64 base_version, Snapshot snapshot)
{
	const IeCatalog *c = ie_catalog();
	StreamScan	s;
	int64		sealed = 0;

	if (!OidIsValid(c->stream_snapshot_rel))
		return;
	stream_scan_begin(&s, c->stream_snapshot_rel, c->stream_snapshot_pkey, key, snapshot, base_version, 0);
	while (index_getnext_slot(s.scan, ForwardScanDirection, s.slot))
	{
		bool		isnull;

		CHECK_FOR_INTERRUPTS();
		if (DatumGetBool(slot_getattr(s.slot, Anum_ie_stream_snapshot_sealed, &isnull)))
		{
			sealed = DatumGetInt64(slot_getattr(s.slot, Anum_ie_stream_snapshot_version, &isnull));
			break;
		}
	}
	stream_scan_end(&s);
	if (sealed > 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the events of stream (%s, %s, %s) up to version %lld are archived",
						TextDatumGetCString(key->sku), TextDatumGetCString(key->location),
						TextDatumGetCString(key->lot), (long long) sealed),
				 errdetail("This question needs events before the snapshot archive_before() sealed at that version."),
				 errhint("Ask about a later time, or attach the archived partitions again with inventory_events.attach_archived().")));
}

/*
 * Folds the stream as of business time `at` (DT_NOEND: everything), through
 * version through_version (0: the last), starting from its newest snapshot
 * that applies (use_snapshots) or from nothing, under snapshot. visit, when
 * given, sees every event read after the base. A bucket whose total does not
 * fit in bigint is an error (22003), whatever the partial sums.
 */
void
ie_stream_fold(const IeStreamKey *key, TimestampTz at, int64 through_version, bool use_snapshots,
			   Snapshot snapshot, IeFoldVisit visit, void *arg, IeStreamFold *fold)
{
	const IeCatalog *c = ie_catalog();
	IeLogStreamScan s;
	TupleTableSlot *slot;
	INT128		sum[IE_NUM_BUCKETS];	/* common/int128.h: portable */
	Oid			safety_label = c->event_type_label[IE_EV_SAFETY_STOCK_SET];

	memset(fold, 0, sizeof(*fold));
	/* Before the archive boundary, the events it needs are gone. */
	ie_log_check_as_of(at, snapshot);
	if (use_snapshots)
		(void) newest_snapshot(key, at, through_version, snapshot, fold);
	check_sealed_above(key, fold->base_version, snapshot);
	for (int b = 0; b < IE_NUM_BUCKETS; b++)
		sum[b] = int64_to_int128(fold->position.q[b]);

	ie_log_stream_scan_begin(&s, key, snapshot, fold->base_version, through_version, ForwardScanDirection);
	while ((slot = ie_log_stream_scan_next(&s)) != NULL)
	{
		bool		isnull;
		TimestampTz occurred = DatumGetTimestampTz(slot_getattr(slot, Anum_ie_event_occurred_at, &isnull));
		bool		included = occurred <= at;

		CHECK_FOR_INTERRUPTS();
		fold->events_read++;
		if (visit)
			visit(slot, included, arg);
		if (!included)
			continue;
		{
			StockPosition *effect = DatumGetStockPosition(slot_getattr(slot, Anum_ie_event_effect, &isnull));

			for (int b = 0; b < IE_NUM_BUCKETS; b++)
				int128_add_int64(&sum[b], effect->q[b]);
		}
		fold->events++;
		/* In version order: the last one read is the latest. */
		fold->version = DatumGetInt64(slot_getattr(slot, Anum_ie_event_version, &isnull));
		fold->event_id = DatumGetInt64(slot_getattr(slot, Anum_ie_event_id, &isnull));
		if (!fold->has_occurred || occurred > fold->occurred_max)
			fold->occurred_max = occurred;
		fold->has_occurred = true;
		if (DatumGetObjectId(slot_getattr(slot, Anum_ie_event_event_type, &isnull)) == safety_label)
			fold->safety_stock = DatumGetInt64(slot_getattr(slot, Anum_ie_event_qty, &isnull));
	}
	ie_log_stream_scan_end(&s);

	for (int b = 0; b < IE_NUM_BUCKETS; b++)
	{
		if (int128_compare(sum[b], int64_to_int128(PG_INT64_MAX)) > 0 ||
			int128_compare(sum[b], int64_to_int128(PG_INT64_MIN)) < 0)
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("the %s position of stream (%s, %s, %s) is out of range",
							ie_bucket_names[b], TextDatumGetCString(key->sku),
							TextDatumGetCString(key->location), TextDatumGetCString(key->lot)),
					 errdetail("Its events sum to more than a bigint holds.")));
		fold->position.q[b] = int128_to_int64(sum[b]);
	}
}

/*
 * stream_fold(sku, location, lot, at, through_version, use_snapshots)
 *		returns inventory_events.stream_state
 *
 * The SQL face of ie_stream_fold, under the statement's snapshot. Not strict:
 * lot null is '', at null is the end of time, through_version null is the
 * last, use_snapshots null is true.
 */
PG_FUNCTION_INFO_V1(ie_stream_fold_sql);
Datum
ie_stream_fold_sql(PG_FUNCTION_ARGS)
{
	IeStreamKey key;
	IeStreamFold fold;
	TupleDesc	tupdesc;
	Datum		values[8];
	bool		nulls[8];
	StockPosition *position;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("a stream needs its sku and location")));
	if (!PG_ARGISNULL(4) && PG_GETARG_INT64(4) <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("through_version must be positive")));
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "stream_fold must return a composite type");
	key.sku = PG_GETARG_DATUM(0);
	key.location = PG_GETARG_DATUM(1);
	key.lot = PG_ARGISNULL(2) ? CStringGetTextDatum("") : PG_GETARG_DATUM(2);
	ie_stream_fold(&key, PG_ARGISNULL(3) ? DT_NOEND : PG_GETARG_TIMESTAMPTZ(3),
				   PG_ARGISNULL(4) ? 0 : PG_GETARG_INT64(4),
				   PG_ARGISNULL(5) ? true : PG_GETARG_BOOL(5),
				   GetActiveSnapshot(), NULL, NULL, &fold);

	position = palloc(sizeof(StockPosition));
	*position = fold.position;
	memset(nulls, false, sizeof(nulls));
	values[0] = StockPositionGetDatum(position);
	values[1] = Int64GetDatum(fold.events);
	values[2] = Int64GetDatum(fold.version);
	values[3] = Int64GetDatum(fold.event_id);
	values[4] = TimestampTzGetDatum(fold.occurred_max);
	nulls[4] = !fold.has_occurred;
	values[5] = Int64GetDatum(fold.safety_stock);
	values[6] = Int64GetDatum(fold.base_version);
	values[7] = Int64GetDatum(fold.events_read);
	tupdesc = BlessTupleDesc(tupdesc);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
