/*
 * types.c
 *		The stock_position base type: a quantity per bucket.
 *
 * Text form, as printed and as accepted:
 *   (available=10,reserved=2,picked=0,damaged=0,quarantine=0,in_transit=0,inbound=5)
 * On input buckets may come in any order, with white space, and omitted ones
 * are zero: "(available=3)" and "()" are valid.
 */
#include "postgres.h"

#include <ctype.h>

#include "common/int.h"
#include "lib/stringinfo.h"
#include "libpq/pqformat.h"
#include "utils/builtins.h"

#include "types.h"

const char *const ie_bucket_names[IE_NUM_BUCKETS] = {
	"available", "reserved", "picked", "damaged", "quarantine", "in_transit", "inbound"
};

const char *const ie_event_type_names[IE_NUM_EVENT_TYPES] = {
	"received", "adjusted", "counted", "reserved", "released", "picked", "shipped",
	"pick_short", "returned", "damaged", "moved", "inbound_expected", "inbound_cancelled",
	"transfer_out", "transfer_in_transit", "transfer_received", "safety_stock_set"
};

static void
position_overflow(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
			 errmsg("stock_position out of range")));
}

int64
ie_position_on_hand(const StockPosition *p)
{
	int64		sum = 0;

	for (int b = 0; b < IE_NUM_BUCKETS; b++)
		if (IE_BUCKET_IN_ON_HAND(b) && pg_add_s64_overflow(sum, p->q[b], &sum))
			position_overflow();
	return sum;
}

void
ie_position_add(StockPosition *acc, const StockPosition *p)
{
	for (int b = 0; b < IE_NUM_BUCKETS; b++)
		if (pg_add_s64_overflow(acc->q[b], p->q[b], &acc->q[b]))
			position_overflow();
}

void
ie_position_sub(StockPosition *acc, const StockPosition *p)
{
	for (int b = 0; b < IE_NUM_BUCKETS; b++)
		if (pg_sub_s64_overflow(acc->q[b], p->q[b], &acc->q[b]))
			position_overflow();
}

char *
ie_position_to_cstring(const StockPosition *p)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '(');
	for (int b = 0; b < IE_NUM_BUCKETS; b++)
		appendStringInfo(&buf, "%s%s=" INT64_FORMAT, b ? "," : "", ie_bucket_names[b], p->q[b]);
	appendStringInfoChar(&buf, ')');
	return buf.data;
}

static void
position_syntax_error(const char *input, const char *detail_fmt, const char *part)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
			 errmsg("invalid input syntax for type stock_position: \"%s\"", input),
			 errdetail(detail_fmt, part)));
}

PG_FUNCTION_INFO_V1(stock_position_in);
Datum
stock_position_in(PG_FUNCTION_ARGS)
{
	const char *input = PG_GETARG_CSTRING(0);
	StockPosition *result = palloc0(sizeof(StockPosition));
	bool		seen[IE_NUM_BUCKETS] = {false};
	const char *s = input;

	while (isspace((unsigned char) *s))
		s++;
	if (*s != '(')
		position_syntax_error(input, "Expected \"(\" at \"%s\".", s);
	s++;

	for (;;)
	{
		const char *name;
		size_t		namelen;
		int			bucket = -1;
		char	   *end;
		long long	value;

		while (isspace((unsigned char) *s))
			s++;
		if (*s == ')')
			break;

		name = s;
		while (isalpha((unsigned char) *s) || *s == '_')
			s++;
		namelen = s - name;
		for (int b = 0; b < IE_NUM_BUCKETS; b++)
			if (strlen(ie_bucket_names[b]) == namelen &&
				strncmp(ie_bucket_names[b], name, namelen) == 0)
				bucket = b;
		if (bucket < 0)
			position_syntax_error(input, "Unknown bucket at \"%s\"; buckets are available, reserved, picked, damaged, quarantine, in_transit and inbound.",
								  pnstrdup(name, Max(namelen, 1)));
		if (seen[bucket])
			position_syntax_error(input, "Bucket \"%s\" appears more than once.", ie_bucket_names[bucket]);
		seen[bucket] = true;

		while (isspace((unsigned char) *s))
			s++;
		if (*s != '=')
			position_syntax_error(input, "Expected \"=\" after bucket \"%s\".", ie_bucket_names[bucket]);
		s++;
		while (isspace((unsigned char) *s))
			s++;

		errno = 0;
		value = strtoll(s, &end, 10);
		if (end == s || (*s != '-' && *s != '+' && !isdigit((unsigned char) *s)))
			position_syntax_error(input, "Expected an integer quantity for bucket \"%s\".", ie_bucket_names[bucket]);
		if (errno == ERANGE)
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("value \"%s\" is out of range for bucket \"%s\" of type stock_position",
							pnstrdup(s, end - s), ie_bucket_names[bucket])));
		result->q[bucket] = (int64) value;
		s = end;

		while (isspace((unsigned char) *s))
			s++;
		if (*s == ',')
		{
			s++;
			continue;
		}
		if (*s == ')')
			break;
		position_syntax_error(input, "Expected \",\" or \")\" at \"%s\".", *s ? s : "end of input");
	}
	s++;						/* past ')' */
	while (isspace((unsigned char) *s))
		s++;
	if (*s != '\0')
		position_syntax_error(input, "Unexpected text after \")\": \"%s\".", s);

	PG_RETURN_STOCK_POSITION(result);
}

PG_FUNCTION_INFO_V1(stock_position_out);
Datum
stock_position_out(PG_FUNCTION_ARGS)
{
	PG_RETURN_CSTRING(ie_position_to_cstring(PG_GETARG_STOCK_POSITION(0)));
}

PG_FUNCTION_INFO_V1(stock_position_recv);
Datum
stock_position_recv(PG_FUNCTION_ARGS)
{
	StringInfo	buf = (StringInfo) PG_GETARG_POINTER(0);
	StockPosition *result = palloc(sizeof(StockPosition));

	for (int b = 0; b < IE_NUM_BUCKETS; b++)
		result->q[b] = pq_getmsgint64(buf);
	PG_RETURN_STOCK_POSITION(result);
}

PG_FUNCTION_INFO_V1(stock_position_send);
Datum
stock_position_send(PG_FUNCTION_ARGS)
{
	StockPosition *p = PG_GETARG_STOCK_POSITION(0);
	StringInfoData buf;

	pq_begintypsend(&buf);
	for (int b = 0; b < IE_NUM_BUCKETS; b++)
		pq_sendint64(&buf, p->q[b]);
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

PG_FUNCTION_INFO_V1(stock_position_pl);
Datum
stock_position_pl(PG_FUNCTION_ARGS)
{
	StockPosition *result = palloc(sizeof(StockPosition));

	memcpy(result, PG_GETARG_STOCK_POSITION(0), sizeof(StockPosition));
	ie_position_add(result, PG_GETARG_STOCK_POSITION(1));
	PG_RETURN_STOCK_POSITION(result);
}

PG_FUNCTION_INFO_V1(stock_position_mi);
Datum
stock_position_mi(PG_FUNCTION_ARGS)
{
	StockPosition *result = palloc(sizeof(StockPosition));

	memcpy(result, PG_GETARG_STOCK_POSITION(0), sizeof(StockPosition));
	ie_position_sub(result, PG_GETARG_STOCK_POSITION(1));
	PG_RETURN_STOCK_POSITION(result);
}

/*
 * Transition (and combine) function of sum(stock_position); nulls are
 * skipped. Called as an aggregate it adds in place into a state it owns,
 * saving a palloc per row; otherwise it never changes its arguments.
 */
PG_FUNCTION_INFO_V1(stock_position_accum);
Datum
stock_position_accum(PG_FUNCTION_ARGS)
{
	MemoryContext aggcontext;
	bool		as_aggregate = AggCheckCallContext(fcinfo, &aggcontext);
	StockPosition *state;

	if (PG_ARGISNULL(1))
	{
		if (PG_ARGISNULL(0))
			PG_RETURN_NULL();
		PG_RETURN_DATUM(PG_GETARG_DATUM(0));
	}
	if (PG_ARGISNULL(0) || !as_aggregate)
	{
		/* A new state: a copy of the first non-null argument. */
		state = MemoryContextAlloc(as_aggregate ? aggcontext : CurrentMemoryContext,
								   sizeof(StockPosition));
		memcpy(state, PG_GETARG_STOCK_POSITION(PG_ARGISNULL(0) ? 1 : 0), sizeof(StockPosition));
		if (PG_ARGISNULL(0))
			PG_RETURN_STOCK_POSITION(state);
	}
	else
		state = PG_GETARG_STOCK_POSITION(0);
	ie_position_add(state, PG_GETARG_STOCK_POSITION(1));
	PG_RETURN_STOCK_POSITION(state);
}

PG_FUNCTION_INFO_V1(stock_position_eq);
Datum
stock_position_eq(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(memcmp(PG_GETARG_STOCK_POSITION(0), PG_GETARG_STOCK_POSITION(1),
						  sizeof(StockPosition)) == 0);
}

PG_FUNCTION_INFO_V1(stock_position_ne);
Datum
stock_position_ne(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(memcmp(PG_GETARG_STOCK_POSITION(0), PG_GETARG_STOCK_POSITION(1),
						  sizeof(StockPosition)) != 0);
}

PG_FUNCTION_INFO_V1(stock_position_on_hand);
Datum
stock_position_on_hand(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT64(ie_position_on_hand(PG_GETARG_STOCK_POSITION(0)));
}

/* One accessor per bucket; the bucket index is the enum's sort order - 1. */
#define IE_BUCKET_ACCESSOR(fname, bucket) \
PG_FUNCTION_INFO_V1(fname); \
Datum \
fname(PG_FUNCTION_ARGS) \
{ \
	PG_RETURN_INT64(PG_GETARG_STOCK_POSITION(0)->q[bucket]); \
}

IE_BUCKET_ACCESSOR(stock_position_available, IE_BUCKET_AVAILABLE)
IE_BUCKET_ACCESSOR(stock_position_reserved, IE_BUCKET_RESERVED)
IE_BUCKET_ACCESSOR(stock_position_picked, IE_BUCKET_PICKED)
IE_BUCKET_ACCESSOR(stock_position_damaged, IE_BUCKET_DAMAGED)
IE_BUCKET_ACCESSOR(stock_position_quarantine, IE_BUCKET_QUARANTINE)
IE_BUCKET_ACCESSOR(stock_position_in_transit, IE_BUCKET_IN_TRANSIT)
IE_BUCKET_ACCESSOR(stock_position_inbound, IE_BUCKET_INBOUND)

/* stock_position(available => .., reserved => .., ...): a constructor. */
PG_FUNCTION_INFO_V1(stock_position_make);
Datum
stock_position_make(PG_FUNCTION_ARGS)
{
	StockPosition *result = palloc0(sizeof(StockPosition));

	for (int b = 0; b < IE_NUM_BUCKETS; b++)
		result->q[b] = PG_ARGISNULL(b) ? 0 : PG_GETARG_INT64(b);
	PG_RETURN_STOCK_POSITION(result);
}

/* Byte-wise equality of two texts; NULL equals only NULL. */
bool
ie_text_equal(const text *a, const text *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return VARSIZE_ANY_EXHDR(a) == VARSIZE_ANY_EXHDR(b) &&
		memcmp(VARDATA_ANY(a), VARDATA_ANY(b), VARSIZE_ANY_EXHDR(a)) == 0;
}
