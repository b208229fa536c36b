/*
 * serial.c
 *		Serial numbers of serialized items.
 *
 * An item with item.serialized carries one serial per base unit on every
 * event that moves units between physical states. A serial's state is its
 * location and physical bucket, or outside the books (bucket null). The
 * stock buckets map onto those states: reserved units are still on the
 * shelf (a reservation promises a quantity, a pick names serials), and
 * inbound units are not here yet; so reserved and released events move no
 * serials, and a receipt against a purchase order brings serials in from
 * outside.
 *
 * An event moves serials in two steps, both in the event's transaction:
 *
 * - ie_serials_plan, while the event is prepared (under its stream lock; in a
 *   batch, in the element's read-only subtransaction, so that bad serials
 *   dead-letter the element): which serials the event moves, checked against
 *   where they are. A serial received twice, or shipped from where it is not,
 *   is IE009 here.
 *
 * - ie_serials_apply, once the event has its id: the serial rows are moved
 *   by one statement that re-checks their state under their row locks, and
 *   each move is recorded in serial_event. A concurrent event of another
 *   stream that moved one of them first (the stream lock only orders events
 *   of one location) makes the statement move fewer rows than planned: IE009,
 *   and the whole event rolls back.
 *
 * Items without serials cost one cached boolean (ie_master_item): none of
 * this runs for them.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"

#include "catalog.h"
#include "errors.h"
#include "serial.h"
#include "types.h"

/* The statements, prepared once per backend. */
enum
{
	S_LOOKUP,
	S_OF_REF,
	S_MOVE_IN,
	S_MOVE,
	S_CENSUS_LOST,
	S_UNLISTED,
	S_COUNT
};

/*
 * Arguments of the moving statements: $1 sku, $2 location, $3 lot, $4 the
 * new bucket (null: outside), $5 event id, $6 channel, $7 ref, $8 serials,
 * $9 the bucket they leave.
 */
#define MOVE_TYPES {TEXTOID, TEXTOID, TEXTOID, TEXTOID, INT8OID, TEXTOID, TEXTOID, TEXTARRAYOID, TEXTOID}
#define RECORD_MOVES \
	" INSERT INTO inventory_events.serial_event (sku, serial, version, event_id, location, bucket)" \
	" SELECT m.sku, m.serial, m.version, $5, m.location, m.bucket FROM moved m"

static IeSpiPlan plans[S_COUNT] = {
	/* Where each serial is, in the order given (nulls: unknown). */
	[S_LOOKUP] = {
		"SELECT s.location, s.lot, s.bucket::text"
		"  FROM pg_catalog.unnest($2::text[]) WITH ORDINALITY AS u(serial, ord)"
		"  LEFT JOIN inventory_events.serial s ON s.sku = $1 AND s.serial = u.serial"
		" ORDER BY u.ord",
		2, {TEXTOID, TEXTARRAYOID}
	},
	/*
	 * The serials an order line (ref, of the event's channel if it has one:
	 * refs are unique per channel) put in a bucket, first come first.
	 */
	[S_OF_REF] = {
		"SELECT s.serial FROM inventory_events.serial s"
		" WHERE s.sku = $1 AND s.location = $2 AND s.lot = $3"
		"   AND s.bucket = $4::inventory_events.bucket AND s.ref = $5"
		"   AND ($7::text IS NULL OR s.channel = $7)"
		" ORDER BY s.updated_at, s.serial LIMIT $6",
		7, {TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, INT8OID, TEXTOID}
	},
	/* From outside: new serials, or serials that left the books before. */
	[S_MOVE_IN] = {
		"WITH moved AS ("
		" INSERT INTO inventory_events.serial AS s"
		"        (sku, serial, lot, location, bucket, version, event_id, channel, ref, updated_at)"
		" SELECT $1, u.serial, $3, $2, $4::inventory_events.bucket, 1, $5, $6, $7,"
		"        pg_catalog.transaction_timestamp()"
		"   FROM pg_catalog.unnest($8::text[]) AS u(serial)"
		" ON CONFLICT (sku, serial) DO UPDATE"
		"    SET lot = excluded.lot, location = excluded.location, bucket = excluded.bucket,"
		"        version = s.version + 1, event_id = excluded.event_id, channel = excluded.channel,"
		"        ref = excluded.ref, updated_at = excluded.updated_at"
		"  WHERE s.bucket IS NULL"
		" RETURNING s.sku, s.serial, s.version, s.location, s.bucket)"
		RECORD_MOVES,
		9, MOVE_TYPES
	},
	/* From a bucket of this stream to another bucket, or outside. */
	[S_MOVE] = {
		"WITH moved AS ("
		" UPDATE inventory_events.serial s"
		"    SET bucket = $4::inventory_events.bucket, version = s.version + 1, event_id = $5,"
		"        channel = $6, ref = $7, updated_at = pg_catalog.transaction_timestamp()"
		"  WHERE s.sku = $1 AND s.serial = ANY ($8::text[]) AND s.location = $2 AND s.lot = $3"
		"    AND s.bucket = $9::inventory_events.bucket"
		" RETURNING s.sku, s.serial, s.version, s.location, s.bucket)"
		RECORD_MOVES,
		9, MOVE_TYPES
	},
	/*
	 * A count: a serial of the stream on hand but off the shelf that the
	 * count does not list (in transit to the location is not on hand).
	 */
	[S_UNLISTED] = {
		"SELECT s.serial, s.bucket::text FROM inventory_events.serial s"
		" WHERE s.sku = $1 AND s.location = $2 AND s.lot = $3"
		"   AND s.bucket NOT IN ('available', 'in_transit') AND s.serial <> ALL ($4::text[])"
		" ORDER BY s.serial LIMIT 1",
		4, {TEXTOID, TEXTOID, TEXTOID, TEXTARRAYOID}
	},
	/* A count: the serials on the stream's shelf that the count did not list leave. */
	[S_CENSUS_LOST] = {
		"WITH moved AS ("
		" UPDATE inventory_events.serial s"
		"    SET bucket = NULL, version = s.version + 1, event_id = $5,"
		"        channel = $6, ref = $7, updated_at = pg_catalog.transaction_timestamp()"
		"  WHERE s.sku = $1 AND s.location = $2 AND s.lot = $3 AND s.bucket = 'available'"
		"    AND s.serial <> ALL ($8::text[])"
		" RETURNING s.sku, s.serial, s.version, s.location, s.bucket)"
		RECORD_MOVES,
		9, MOVE_TYPES
	},
};

/*
 * Runs one of the statements above. Under the stream lock the serials are
 * read as last committed whatever the isolation level, as the stream's row
 * is: with a REPEATABLE READ transaction's snapshot a count would not see
 * (and not take off the shelf) a serial received by a transaction that
 * committed after it, while its quantity counts that receipt.
 */
static uint64
run(int s, Datum *args, const char *nulls, int expected)
{
	return ie_spi_run_snapshot(&plans[s], args, nulls,
							   IsolationUsesXactSnapshot() ? GetLatestSnapshot() : InvalidSnapshot,
							   expected);
}

/* The physical state a stock bucket puts a serial in. */
static int
serial_state(int bucket)
{
	if (bucket == IE_BUCKET_RESERVED)
		return IE_BUCKET_AVAILABLE;
	if (bucket == IE_BUCKET_INBOUND)
		return IE_BUCKET_OUTSIDE;
	return bucket;
}

static const char *
state_name(int state)
{
	return state == IE_BUCKET_OUTSIDE ? "outside" : ie_bucket_names[state];
}

/* The state of a bucket label as SQL returns it (null: outside). */
static int
state_of_label(const char *label)
{
	for (int b = 0; label && b < IE_NUM_BUCKETS; b++)
		if (strcmp(label, ie_bucket_names[b]) == 0)
			return b;
	return IE_BUCKET_OUTSIDE;
}

/* A state in a sentence: "is %s at location ...". */
static const char *
state_phrase(int state)
{
	switch (state)
	{
		case IE_BUCKET_OUTSIDE:
			return "outside the books";
		case IE_BUCKET_QUARANTINE:
			return "in quarantine";
		case IE_BUCKET_IN_TRANSIT:
			return "in transit";
		default:
			return ie_bucket_names[state];
	}
}

static Datum
state_datum(int state, char *null)
{
	*null = state == IE_BUCKET_OUTSIDE ? 'n' : ' ';
	return state == IE_BUCKET_OUTSIDE ? (Datum) 0 : CStringGetTextDatum(ie_bucket_names[state]);
}

static ArrayType *
text_array(Datum *values, int n)
{
	return construct_array(values, n, TEXTOID, -1, false, TYPALIGN_INT);
}

/*
 * A pool of the serials given: each a non-empty string, none twice. Keeps
 * the given Datums (the caller's memory).
 */
IeSerialPool *
ie_serial_pool_new(Datum *serials, int n)
{
	IeSerialPool *pool = palloc0(sizeof(IeSerialPool));

	for (int i = 0; i < n; i++)
	{
		text	   *t = DatumGetTextPP(serials[i]);

		if (VARSIZE_ANY_EXHDR(t) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("a serial must not be empty")));
		for (int j = 0; j < i; j++)
			if (ie_text_equal(t, DatumGetTextPP(serials[j])))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("serial \"%s\" is given twice", text_to_cstring(t)),
						 errdetail("A serial names one unit.")));
		serials[i] = PointerGetDatum(t);
	}
	pool->n = n;
	pool->serials = serials;
	pool->used = palloc0(sizeof(bool) * Max(n, 1));
	return pool;
}

/* A pool of the elements of a text[] argument (NULL elements refused). */
IeSerialPool *
ie_serial_pool_from_array(ArrayType *array)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;

	if (ARR_NDIM(array) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("serials must be a one-dimensional array")));
	deconstruct_array(array, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	for (int i = 0; i < n; i++)
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("a serial must not be null")));
	return ie_serial_pool_new(elems, n);
}

/* The same serials, none taken: for the second leg of a transfer. */
IeSerialPool *
ie_serial_pool_again(const IeSerialPool *pool)
{
	IeSerialPool *again = palloc0(sizeof(IeSerialPool));

	again->n = pool->n;
	again->serials = pool->serials;
	again->used = palloc0(sizeof(bool) * Max(pool->n, 1));
	return again;
}

/* Every serial given was moved by the operation (unless it was a retry). */
void
ie_serial_pool_finish(const IeSerialPool *pool)
{
	if (pool == NULL || pool->replayed || pool->nused == pool->n)
		return;
	for (int i = 0; i < pool->n; i++)
		if (!pool->used[i])
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("serial \"%s\" was given, but the operation moves no unit with it",
							TextDatumGetCString(pool->serials[i])),
					 errdetail("It moved %d of the %d serials given.", pool->nused, pool->n),
					 errhint("Give one serial per unit moved, and none for events that move no units (reserved, released, inbound_expected).")));
}

/* Where one serial is: its row, if it has one. */
typedef struct SerialPlace
{
	bool		known;
	char	   *location;
	char	   *lot;
	int			state;
} SerialPlace;

/* Looks up where each of n serials is, in the caller's memory. */
static SerialPlace *
lookup(Datum sku, Datum *serials, int n)
{
	Datum		args[2] = {sku, PointerGetDatum(text_array(serials, n))};
	SerialPlace *places = palloc0(sizeof(SerialPlace) * Max(n, 1));
	MemoryContext caller = CurrentMemoryContext;
	uint64		rows;

	SPI_connect();
	rows = run(S_LOOKUP, args, NULL, SPI_OK_SELECT);
	Assert(rows == (uint64) n);
	MemoryContextSwitchTo(caller);
	for (uint64 r = 0; r < rows; r++)
	{
		HeapTuple	tup = SPI_tuptable->vals[r];
		TupleDesc	desc = SPI_tuptable->tupdesc;

		places[r].location = SPI_getvalue(tup, desc, 1);
		places[r].known = places[r].location != NULL;
		places[r].lot = SPI_getvalue(tup, desc, 2);
		places[r].state = state_of_label(SPI_getvalue(tup, desc, 3));
	}
	SPI_finish();
	return places;
}

static bool
place_is(const SerialPlace *p, const char *location, const char *lot, int state)
{
	return p->known && p->state == state && strcmp(p->location, location) == 0 &&
		strcmp(p->lot, lot) == 0;
}

/* IE009 for a serial that is not where the event takes it from. */
static void
misplaced(const char *sku, const char *serial, const SerialPlace *p, int event_type,
		  const char *location, int from_state)
{
	char	   *where;

	if (!p->known)
		where = pstrdup("It is unknown: no event has named it.");
	else if (p->state == IE_BUCKET_OUTSIDE)
		where = psprintf("It is outside the books (it last left location \"%s\").", p->location);
	else if (p->lot[0] != '\0')
		where = psprintf("It is %s at location \"%s\", lot \"%s\".", state_phrase(p->state), p->location, p->lot);
	else
		where = psprintf("It is %s at location \"%s\".", state_phrase(p->state), p->location);

	if (from_state == IE_BUCKET_OUTSIDE)
		ereport(ERROR,
				(errcode(ERRCODE_IE_SERIAL_MISPLACED),
				 errmsg("serial \"%s\" of sku \"%s\" is already in stock", serial, sku),
				 errdetail("%s", where),
				 errhint("A %s event brings a serial in from outside; move a serial in stock with the event that matches where it is.",
						 ie_event_type_names[event_type])));
	ereport(ERROR,
			(errcode(ERRCODE_IE_SERIAL_MISPLACED),
			 errmsg("serial \"%s\" of sku \"%s\" is not %s at location \"%s\"", serial, sku,
					state_phrase(from_state), location),
			 errdetail("%s", where),
			 errhint("The %s event takes serials that are %s at location \"%s\".",
					 ie_event_type_names[event_type], state_phrase(from_state), location)));
}

/*
 * A count changes the shelf only (its difference goes to available): it
 * lists the serials of the location's other buckets on hand as well, which
 * stay where they are. IE009 for one it does not list.
 */
static void
unlisted_off_shelf(Datum sku, Datum location, Datum lot, Datum *listed, int n)
{
	Datum		args[4] = {sku, location, lot, PointerGetDatum(text_array(listed, n))};
	char	   *serial = NULL;
	char	   *bucket = NULL;
	MemoryContext caller = CurrentMemoryContext;

	SPI_connect();
	if (run(S_UNLISTED, args, NULL, SPI_OK_SELECT) > 0)
	{
		MemoryContextSwitchTo(caller);
		serial = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
		bucket = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
	}
	SPI_finish();
	if (serial)
	{
		const char *where = state_phrase(state_of_label(bucket));

		ereport(ERROR,
				(errcode(ERRCODE_IE_SERIAL_MISPLACED),
				 errmsg("the count of sku \"%s\" at location \"%s\" does not list serial \"%s\", which is %s there",
						TextDatumGetCString(sku), TextDatumGetCString(location), serial, where),
				 errdetail("A count changes only the shelf (available); units in other buckets stay where they are."),
				 errhint("List every serial at the location, or move the missing unit out of %s with its own event first.",
						 bucket)));
	}
}

static void
serials_needed(const char *sku, int event_type, int64 n, int given)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg_plural("sku \"%s\" is serialized: the %s event needs %lld serial, %d given",
						   "sku \"%s\" is serialized: the %s event needs %lld serials, %d given",
						   (unsigned long) n, sku, ie_event_type_names[event_type], (long long) n, given),
			 errdetail("A serialized item names one serial per base unit on every event that moves units."),
			 errhint("Give them in the serials argument (or the \"serials\" field of a batch element).")));
}

/*
 * Plans what an event of a serialized item does to serials (m), taking them
 * from pool, and checks them against where they are. Buckets are the
 * event's resolved ones (an adjustment's sign, a count's direction); qty is
 * in base units.
 */
void
ie_serials_plan(IeSerialMove *m, bool serialized, int event_type, int from_bucket,
				int to_bucket, int64 qty, Datum sku, Datum location, Datum lot,
				text *channel, text *ref, IeSerialPool *pool)
{
	int			available = pool ? pool->n - pool->nused : 0;
	char	   *sku_str = TextDatumGetCString(sku);
	char	   *loc_str;
	char	   *lot_str;
	Datum	   *cands;
	int		   *cand_at;		/* each candidate's place in the pool */
	bool	   *taken;
	int			ncands = 0;
	SerialPlace *places;
	int64		n;

	memset(m, 0, sizeof(*m));
	m->mode = IE_SERIALS_NONE;
	if (!serialized)
	{
		if (available > 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("item \"%s\" is not serialized, but serials were given", sku_str),
					 errhint("Serials are for items with inventory_events.item.serialized.")));
		return;
	}
	m->from_state = serial_state(from_bucket);
	m->to_state = serial_state(to_bucket);
	loc_str = TextDatumGetCString(location);
	lot_str = TextDatumGetCString(lot);

	/* A count with serials lists every serial at the location. */
	if (event_type == IE_EV_COUNTED)
	{
		if (pool == NULL)
			return;				/* a count of the quantity alone */
		/* An empty list is a census too: none here (a count of 0). */
		if (available != qty)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg_plural("a count of %lld unit of serialized sku \"%s\" lists %d serials",
								   "a count of %lld units of serialized sku \"%s\" lists %d serials",
								   (unsigned long) qty, (long long) qty, sku_str, available),
					 errdetail("A count with serials lists every serial counted at the location, one per unit.")));
		m->mode = IE_SERIALS_CENSUS;
		m->to_state = IE_BUCKET_AVAILABLE;
		m->serials = palloc(sizeof(Datum) * Max(available, 1));
		for (int i = 0; i < pool->n; i++)
			if (!pool->used[i])
				m->serials[m->n++] = pool->serials[i];
		places = lookup(sku, m->serials, m->n);
		m->found = palloc(sizeof(Datum) * m->n);
		for (int i = 0; i < m->n; i++)
		{
			if (!places[i].known || places[i].state == IE_BUCKET_OUTSIDE)
				m->found[m->n_found++] = m->serials[i];
			else if (places[i].state == IE_BUCKET_IN_TRANSIT && strcmp(places[i].location, loc_str) == 0)
				ereport(ERROR,
						(errcode(ERRCODE_IE_SERIAL_MISPLACED),
						 errmsg("serial \"%s\" of sku \"%s\" was counted at location \"%s\" but is in transit there",
								TextDatumGetCString(m->serials[i]), sku_str, loc_str),
						 errdetail("A count lists the units on hand; units in transit are not on hand until the transfer is received."),
						 errhint("Receive the transfer first.")));
			else if (strcmp(places[i].location, loc_str) != 0 || strcmp(places[i].lot, lot_str) != 0)
				ereport(ERROR,
						(errcode(ERRCODE_IE_SERIAL_MISPLACED),
						 errmsg("serial \"%s\" of sku \"%s\" was counted at location \"%s\" but is in stock elsewhere",
								TextDatumGetCString(m->serials[i]), sku_str, loc_str),
						 errdetail("It is %s at location \"%s\"%s.", state_phrase(places[i].state),
								   places[i].location, places[i].lot[0] ? psprintf(", lot \"%s\"", places[i].lot) : ""),
						 errhint("Move it with the events that took it there, or count the other location first.")));
		}
		unlisted_off_shelf(sku, location, lot, m->serials, m->n);
		for (int i = 0; i < pool->n; i++)
			pool->used[i] = true;
		pool->nused = pool->n;
		return;
	}

	if (m->from_state == m->to_state)
		return;					/* reserved, released, inbound: no serial moves */

	n = qty < 0 ? -qty : qty;
	if (available == 0)
	{
		/* A pick short does not know which serials are missing: a count will. */
		if (event_type == IE_EV_PICK_SHORT)
		{
			m->mode = IE_SERIALS_NONE;
			return;
		}
		/*
		 * Out of a bucket an order line filled, when the call names no
		 * serials: those the line put there. (A call that names serials names
		 * all it moves, in every event of the operation.)
		 */
		if (pool == NULL && ref != NULL && m->from_state != IE_BUCKET_OUTSIDE &&
			m->from_state != IE_BUCKET_AVAILABLE)
		{
			Datum		args[7] = {sku, location, lot, CStringGetTextDatum(state_name(m->from_state)),
			PointerGetDatum(ref), Int64GetDatum(n), PointerGetDatum(channel)};
			char		nulls[8] = "       ";
			uint64		rows;

			nulls[6] = channel ? ' ' : 'n';
			m->serials = palloc(sizeof(Datum) * n);	/* before SPI's memory */
			SPI_connect();
			rows = run(S_OF_REF, args, nulls, SPI_OK_SELECT);
			if (rows < (uint64) n)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("sku \"%s\" is serialized: the %s event needs %lld serials, and \"%s\" has only %lld %s at location \"%s\"",
								sku_str, ie_event_type_names[event_type], (long long) n,
								text_to_cstring(ref), (long long) rows, state_phrase(m->from_state), loc_str),
						 errhint("Name the serials in the serials argument.")));
			m->mode = IE_SERIALS_MOVE;
			m->n = (int) n;
			for (int i = 0; i < m->n; i++)
			{
				bool		isnull;
				Datum		d = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);

				m->serials[i] = PointerGetDatum(SPI_datumTransfer(d, false, -1));
			}
			SPI_finish();
			return;
		}
		serials_needed(sku_str, event_type, n, 0);
	}
	if (available < n)
		serials_needed(sku_str, event_type, n, available);

	/* The candidates: the serials not taken yet, in the order given. */
	cands = palloc(sizeof(Datum) * available);
	cand_at = palloc(sizeof(int) * available);
	for (int i = 0; i < pool->n; i++)
		if (!pool->used[i])
		{
			cand_at[ncands] = i;
			cands[ncands++] = pool->serials[i];
		}
	places = lookup(sku, cands, ncands);

	m->mode = IE_SERIALS_MOVE;
	m->serials = palloc(sizeof(Datum) * n);
	taken = palloc0(sizeof(bool) * Max(ncands, 1));
	for (int i = 0; i < ncands && m->n < n; i++)
	{
		bool		fits = m->from_state == IE_BUCKET_OUTSIDE ?
			(!places[i].known || places[i].state == IE_BUCKET_OUTSIDE) :
			place_is(&places[i], loc_str, lot_str, m->from_state);

		if (!fits)
		{
			/*
			 * From outside the serials are taken in order; from a bucket, a
			 * serial elsewhere may be another event's of the operation (a
			 * pick over two locations), unless no other event is left to
			 * take it.
			 */
			if (m->from_state == IE_BUCKET_OUTSIDE || available - i <= n - m->n)
				misplaced(sku_str, TextDatumGetCString(cands[i]), &places[i], event_type, loc_str,
						  m->from_state);
			continue;
		}
		m->serials[m->n++] = cands[i];
		taken[i] = true;
	}
	if (m->n < n)
		serials_needed(sku_str, event_type, n, m->n);

	for (int i = 0; i < ncands; i++)
		if (taken[i])
			pool->used[cand_at[i]] = true;
	pool->nused += m->n;
}

/*
 * Moves the planned serials for the event event_id, re-checking under their
 * row locks that each is still where the plan found it.
 */
void
ie_serials_apply(const IeSerialMove *m, Datum sku, Datum location, Datum lot,
				 int64 event_id, text *channel, text *ref)
{
	Datum		args[9];
	char		nulls[10] = "         ";
	uint64		moved;
	int64		expected;

	if (m->mode == IE_SERIALS_NONE)
		return;
	args[0] = sku;
	args[1] = location;
	args[2] = lot;
	args[3] = state_datum(m->to_state, &nulls[3]);
	args[4] = Int64GetDatum(event_id);
	args[5] = PointerGetDatum(channel);
	nulls[5] = channel ? ' ' : 'n';
	args[6] = PointerGetDatum(ref);
	nulls[6] = ref ? ' ' : 'n';
	args[7] = PointerGetDatum(text_array(m->serials, m->n));
	args[8] = state_datum(m->from_state, &nulls[8]);

	SPI_connect();
	if (m->mode == IE_SERIALS_CENSUS)
	{
		/* The stream's serials in stock that the count did not list leave... */
		nulls[3] = 'n';
		(void) run(S_CENSUS_LOST, args, nulls, SPI_OK_INSERT);
		/* ...and those it found come in. */
		moved = 0;
		if (m->n_found > 0)
		{
			args[3] = state_datum(IE_BUCKET_AVAILABLE, &nulls[3]);
			args[7] = PointerGetDatum(text_array(m->found, m->n_found));
			moved = run(S_MOVE_IN, args, nulls, SPI_OK_INSERT);
		}
		expected = m->n_found;
	}
	else
	{
		moved = run(m->from_state == IE_BUCKET_OUTSIDE ? S_MOVE_IN : S_MOVE, args, nulls,
						   SPI_OK_INSERT);
		expected = m->n;
	}
	SPI_finish();
	if (moved != (uint64) expected)
		ereport(ERROR,
				(errcode(ERRCODE_IE_SERIAL_MISPLACED),
				 errmsg("a serial of sku \"%s\" was moved by a concurrent transaction",
						TextDatumGetCString(sku)),
				 errdetail("Event %lld was to move %lld serials and found %lld where it expected them.",
						   (long long) event_id, (long long) expected, (long long) moved),
				 errhint("Read where the serials are and retry.")));
}
