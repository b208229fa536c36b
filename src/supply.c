/*
 * supply.c
 *		Operations that append a few related events: transfers between
 *		locations and receipts against transfers and purchase-order lines.
 *
 * Each takes, in the global lock order (locks.h), its idempotency key's lock
 * (through ie_replay_operation), then the sku lock (a receipt raises the
 * sku's ATP and fills its backorders, which lock the sku's streams at the
 * channels' locations under it), then the stream locks of the streams it
 * writes, all of them before its first event. A retry under the same key
 * returns the events recorded the first time.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "executor/tuptable.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/snapmgr.h"

#include "catalog.h"
#include "logpart.h"
#include "errors.h"
#include "log.h"
#include "locks.h"
#include "stock.h"
#include "writer.h"

#define ARG_TEXT(n) (PG_ARGISNULL(n) ? NULL : PG_GETARG_TEXT_PP(n))

static void
require_arg(const void *value, const char *name)
{
	if (value == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", name)));
}

/* The sku lock, then the locks of the sku's streams at the locations. */
static void
lock_sku_streams(text *sku, text *lot, int nlocations, text **locations)
{
	LOCKTAG    *tags = palloc(sizeof(LOCKTAG) * nlocations);
	Datum		lotd = lot ? PointerGetDatum(lot) : CStringGetTextDatum("");

	ie_lock_sku(sku);
	for (int i = 0; i < nlocations; i++)
	{
		Datum		k[3] = {PointerGetDatum(sku), PointerGetDatum(locations[i]), lotd};

		ie_lock_tag(IE_LOCK_STREAM, 3, k, &tags[i]);
	}
	ie_lock_tags_in_order(tags, nlocations);
}

/*
 * The open quantity of a reference (a transfer, a PO line) in one bucket of a
 * stream: the sum of that bucket in the effects of the stream's events with
 * that ref, plus what archive_before() recorded of the ref's events it
 * archived (event_archive_ref). Read under the stream lock, so every writer
 * of it has committed.
 */
static int64
open_quantity(text *sku, text *location, text *lot, text *ref, IeBucket bucket)
{
	IeStreamKey key = {PointerGetDatum(sku), PointerGetDatum(location),
	lot ? PointerGetDatum(lot) : CStringGetTextDatum("")};
	const IeCatalog *c = ie_catalog();
	IeLogStreamScan s;
	TupleTableSlot *slot;
	int64		open = 0;

	if (ref == NULL)
		return 0;
	ie_log_stream_scan_begin(&s, &key, SnapshotSelf, 0, 0, ForwardScanDirection);
	while ((slot = ie_log_stream_scan_next(&s)) != NULL)
	{
		bool		isnull;
		Datum		d = slot_getattr(slot, Anum_ie_event_ref, &isnull);

		if (isnull || !ie_text_equal(DatumGetTextPP(d), ref))
			continue;
		d = slot_getattr(slot, Anum_ie_event_effect, &isnull);
		open += DatumGetStockPosition(d)->q[bucket];
	}
	ie_log_stream_scan_end(&s);
	if (OidIsValid(c->event_archive_ref_rel) && (bucket == IE_BUCKET_IN_TRANSIT || bucket == IE_BUCKET_INBOUND))
	{
		Datum		keys[4] = {key.sku, key.location, key.lot, PointerGetDatum(ref)};
		int			attnum = bucket == IE_BUCKET_IN_TRANSIT ? Anum_ie_event_archive_ref_in_transit
			: Anum_ie_event_archive_ref_inbound;
		Datum		archived;

		if (ie_lookup_row_as(c->event_archive_ref_rel, c->event_archive_ref_pkey, SnapshotSelf, 4, keys,
							 ie_text_keys4, 1, &attnum, &archived, NULL))
			open += DatumGetInt64(archived);
	}
	return open;
}

static IeMovement *
movement(int64 event_id, IeEventType type, text *sku, text *location, text *lot, int64 qty)
{
	IeMovement *m = palloc0(sizeof(IeMovement));

	m->event_id = event_id;
	m->event_type = type;
	m->sku = sku;
	m->location = location;
	m->lot = lot ? lot : cstring_to_text("");
	m->qty = qty;
	return m;
}

/*
 * inventory_events.transfer(sku, from_location, to_location, qty, ref,
 *     expected_date, lot, source, idempotency_key) returns setof movement:
 * transfer_out at the source, transfer_in_transit (with expected_date) at the
 * destination.
 */
PG_FUNCTION_INFO_V1(ie_transfer);
Datum
ie_transfer(PG_FUNCTION_ARGS)
{
	text	   *sku = ARG_TEXT(0);
	text	   *from = ARG_TEXT(1);
	text	   *to = ARG_TEXT(2);
	text	   *ref = ARG_TEXT(4);
	text	   *lot = ARG_TEXT(6);
	text	   *source = ARG_TEXT(7);
	text	   *key = ARG_TEXT(8);
	/* serials: from 0.3.0 on */
	IeSerialPool *serials = PG_NARGS() > 9 && !PG_ARGISNULL(9) ?
		ie_serial_pool_from_array(PG_GETARG_ARRAYTYPE_P(9)) : NULL;
	List	   *moves = NIL;
	text	   *locations[2];
	IeEventInput in;
	IeReplayExpect expect = {IE_EV_BIT(IE_EV_TRANSFER_OUT), sku, NULL, ref};

	ie_write_call_start("inventory_events.transfer()");
	ie_init_materialized_srf(fcinfo);
	if (ie_replay_operation(source, key, &expect, &moves))
	{
		ie_emit_movements(fcinfo, moves);
		return (Datum) 0;
	}
	if (ref == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("ref must not be null"),
				 errhint("The transfer reference ties the receipt to the shipment.")));
	require_arg(sku, "sku");
	require_arg(from, "from_location");
	require_arg(to, "to_location");
	if (PG_ARGISNULL(3))
		require_arg(NULL, "qty");
	if (ie_text_equal(from, to))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a transfer needs two different locations")));
	locations[0] = from;
	locations[1] = to;
	lock_sku_streams(sku, lot, 2, locations);

	ie_input_init(&in);
	in.sku = sku;
	in.location = from;
	in.event_type = IE_EV_TRANSFER_OUT;
	in.qty_isnull = false;
	in.qty = PG_GETARG_INT64(3);
	in.source = source;
	in.idempotency_key = key;
	in.lot = lot;
	in.ref = ref;
	in.serials = serials;
	moves = lappend(moves, movement(ie_append_input(&in), in.event_type, sku, from, lot, in.qty));
	ie_serial_pool_finish(serials);

	in.location = to;
	in.event_type = IE_EV_TRANSFER_IN_TRANSIT;
	in.idempotency_key = ie_nth_key(key, 2);
	in.serials = serials ? ie_serial_pool_again(serials) : NULL;
	in.expected_date_isnull = PG_ARGISNULL(5);
	if (!in.expected_date_isnull)
		in.expected_date = PG_GETARG_DATEADT(5);
	moves = lappend(moves, movement(ie_append_input(&in), in.event_type, sku, to, lot, in.qty));
	ie_serial_pool_finish(in.serials);
	ie_emit_movements(fcinfo, moves);
	return (Datum) 0;
}

/*
 * inventory_events.receive_transfer(sku, to_location, qty, ref, lot, source,
 *     idempotency_key, serials) returns bigint: completes (part of) a transfer, in
 * transit -> available at the destination, never more than is in transit.
 */
PG_FUNCTION_INFO_V1(ie_receive_transfer);
Datum
ie_receive_transfer(PG_FUNCTION_ARGS)
{
	text	   *sku = ARG_TEXT(0);
	text	   *to = ARG_TEXT(1);
	text	   *ref = ARG_TEXT(3);
	text	   *lot = ARG_TEXT(4);
	text	   *source = ARG_TEXT(5);
	text	   *key = ARG_TEXT(6);
	/* serials: from 0.3.0 on */
	IeSerialPool *serials = PG_NARGS() > 7 && !PG_ARGISNULL(7) ?
		ie_serial_pool_from_array(PG_GETARG_ARRAYTYPE_P(7)) : NULL;
	IeMovement	prior;
	text	   *key_source = source ? source : cstring_to_text("");
	IeEventInput in;
	int64		open;
	int64		id;

	ie_write_call_start("inventory_events.receive_transfer()");
	if (key && ie_event_by_key(key_source, key, true, &prior))
	{
		IeReplayExpect expect = {IE_EV_BIT(IE_EV_TRANSFER_RECEIVED), sku, NULL, ref};

		ie_replay_check(key_source, key, &prior, &expect);
		PG_RETURN_INT64(prior.event_id);
	}
	require_arg(sku, "sku");
	require_arg(to, "to_location");
	if (PG_ARGISNULL(2))
		require_arg(NULL, "qty");
	lock_sku_streams(sku, lot, 1, &to);

	ie_input_init(&in);
	in.sku = sku;
	in.location = to;
	in.event_type = IE_EV_TRANSFER_RECEIVED;
	in.qty_isnull = false;
	in.qty = PG_GETARG_INT64(2);
	in.source = source;
	in.idempotency_key = key;
	in.lot = lot;
	in.ref = ref;
	open = open_quantity(sku, to, lot, ref, IE_BUCKET_IN_TRANSIT);
	if (in.qty > open)
		ereport(ERROR,
				(errcode(ERRCODE_IE_INSUFFICIENT_STOCK),
				 errmsg("transfer \"%s\" has %lld of sku \"%s\" in transit to location \"%s\", not %lld",
						ref ? text_to_cstring(ref) : "", (long long) open, text_to_cstring(sku),
						text_to_cstring(to), (long long) in.qty)));
	in.serials = serials;
	id = ie_append_input(&in);
	ie_serial_pool_finish(serials);
	PG_RETURN_INT64(id);
}

/*
 * inventory_events.receive_po(sku, location, qty, ref, lot, source,
 *     idempotency_key) returns setof movement: a receipt against a
 * purchase-order line (ref). The line's open inbound quantity moves to
 * available (never below zero); any excess is a plain receipt.
 */
PG_FUNCTION_INFO_V1(ie_receive_po);
Datum
ie_receive_po(PG_FUNCTION_ARGS)
{
	text	   *sku = ARG_TEXT(0);
	text	   *location = ARG_TEXT(1);
	text	   *ref = ARG_TEXT(3);
	text	   *lot = ARG_TEXT(4);
	text	   *source = ARG_TEXT(5);
	text	   *key = ARG_TEXT(6);
	/* serials: from 0.3.0 on */
	IeSerialPool *serials = PG_NARGS() > 7 && !PG_ARGISNULL(7) ?
		ie_serial_pool_from_array(PG_GETARG_ARRAYTYPE_P(7)) : NULL;
	List	   *moves = NIL;
	IeEventInput in;
	int64		qty;
	int64		matched;
	int			n = 0;
	IeReplayExpect expect = {IE_EV_BIT(IE_EV_MOVED) | IE_EV_BIT(IE_EV_RECEIVED), sku, NULL, ref};

	ie_write_call_start("inventory_events.receive_po()");
	ie_init_materialized_srf(fcinfo);
	if (ie_replay_operation(source, key, &expect, &moves))
	{
		ie_emit_movements(fcinfo, moves);
		return (Datum) 0;
	}
	if (PG_ARGISNULL(2))
		require_arg(NULL, "qty");
	qty = PG_GETARG_INT64(2);
	if (qty <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid quantity %lld", (long long) qty),
				 errdetail("The quantity must be positive.")));
	require_arg(sku, "sku");
	require_arg(location, "location");
	lock_sku_streams(sku, lot, 1, &location);

	matched = Min(qty, Max(open_quantity(sku, location, lot, ref, IE_BUCKET_INBOUND), 0));
	ie_input_init(&in);
	in.sku = sku;
	in.location = location;
	in.qty_isnull = false;
	in.source = source;
	in.lot = lot;
	in.ref = ref;
	in.serials = serials;
	if (matched > 0)
	{
		in.event_type = IE_EV_MOVED;
		in.qty = matched;
		in.from_bucket = IE_BUCKET_INBOUND;
		in.to_bucket = IE_BUCKET_AVAILABLE;
		in.idempotency_key = ie_nth_key(key, ++n);
		in.reason = cstring_to_text("po receipt");
		moves = lappend(moves, movement(ie_append_input(&in), in.event_type, sku, location, lot, matched));
	}
	if (qty > matched)
	{
		in.event_type = IE_EV_RECEIVED;
		in.qty = qty - matched;
		in.from_bucket = IE_BUCKET_OUTSIDE;
		in.to_bucket = IE_BUCKET_OUTSIDE;
		in.idempotency_key = ie_nth_key(key, ++n);
		in.reason = cstring_to_text("po receipt beyond the open quantity");
		moves = lappend(moves, movement(ie_append_input(&in), in.event_type, sku, location, lot, in.qty));
	}
	ie_serial_pool_finish(serials);
	ie_emit_movements(fcinfo, moves);
	return (Datum) 0;
}
