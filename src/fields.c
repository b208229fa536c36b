/*
 * fields.c
 *		The fields of a batch element, one parser for all: a value of a JSON
 *		object (ingest(), reserve_lines()) or a column of a staged row
 *		(ingest_staged()), read as the type the field needs.
 *
 * A JSON number or string is accepted wherever a number is expected (through
 * text, so that 1.5 is refused rather than rounded); a column of the field's
 * own type is taken as it is, one of another type through its text form.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "fields.h"

void
ie_field_error(const char *field, const char *expected)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("field \"%s\" must be %s", field, expected)));
}

char *
ie_field_cstring(const FieldValue *v, const char *field)
{
	Oid			typoutput;
	bool		isvarlena;

	if (v->json)
	{
		if (v->json->type != jbvString)
			ie_field_error(field, "a string");
		return pnstrdup(v->json->val.string.val, v->json->val.string.len);
	}
	if (v->type == TEXTOID)
		return TextDatumGetCString(v->datum);
	getTypeOutputInfo(v->type, &typoutput, &isvarlena);
	return OidOutputFunctionCall(typoutput, v->datum);
}

text *
ie_field_text(const FieldValue *v, const char *field)
{
	if (v->json)
	{
		if (v->json->type != jbvString)
			ie_field_error(field, "a string");
		return cstring_to_text_with_len(v->json->val.string.val, v->json->val.string.len);
	}
	if (v->type == TEXTOID)
		return DatumGetTextP(v->datum);
	return cstring_to_text(ie_field_cstring(v, field));
}

int64
ie_field_int64(const FieldValue *v, const char *field)
{
	if (v->json)
	{
		/* Through text, so that 1.5 is refused rather than rounded. */
		if (v->json->type == jbvNumeric)
			return DatumGetInt64(DirectFunctionCall1(int8in,
													 DirectFunctionCall1(numeric_out, NumericGetDatum(v->json->val.numeric))));
		if (v->json->type != jbvString)
			ie_field_error(field, "an integer");
	}
	else if (v->type == INT8OID)
		return DatumGetInt64(v->datum);
	return DatumGetInt64(DirectFunctionCall1(int8in, CStringGetDatum(ie_field_cstring(v, field))));
}

int
ie_field_label(const FieldValue *v, const char *field, const char *const *names, int n)
{
	char	   *s = ie_field_cstring(v, field);

	for (int i = 0; i < n; i++)
		if (strcmp(names[i], s) == 0)
			return i;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
			 errmsg("invalid %s \"%s\"", field, s)));
	pg_unreachable();
}

TimestampTz
ie_field_timestamptz(const FieldValue *v, const char *field)
{
	if (!v->json && v->type == TIMESTAMPTZOID)
		return DatumGetTimestampTz(v->datum);
	return DatumGetTimestampTz(DirectFunctionCall3(timestamptz_in,
												   CStringGetDatum(ie_field_cstring(v, field)),
												   ObjectIdGetDatum(InvalidOid),
												   Int32GetDatum(-1)));
}

DateADT
ie_field_date(const FieldValue *v, const char *field)
{
	if (!v->json && v->type == DATEOID)
		return DatumGetDateADT(v->datum);
	return DatumGetDateADT(DirectFunctionCall1(date_in, CStringGetDatum(ie_field_cstring(v, field))));
}

pg_uuid_t *
ie_field_uuid(const FieldValue *v, const char *field)
{
	if (!v->json && v->type == UUIDOID)
		return DatumGetUUIDP(v->datum);
	return DatumGetUUIDP(DirectFunctionCall1(uuid_in, CStringGetDatum(ie_field_cstring(v, field))));
}

Jsonb *
ie_field_jsonb(const FieldValue *v, const char *field)
{
	if (v->json)
		return JsonbValueToJsonb(v->json);
	if (v->type == JSONBOID)
		return DatumGetJsonbP(v->datum);
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(ie_field_cstring(v, field))));
}

/*
 * A list of strings: a JSON array of strings, or a text[] column without
 * null elements. Returns the elements (text) and sets *n.
 */
Datum *
ie_field_text_list(const FieldValue *v, const char *field, int *n)
{
	Datum	   *elems;

	if (v->json)
	{
		JsonbIterator *it;
		JsonbValue	elem;
		JsonbIteratorToken tok;
		int			max = 8;

		if (v->json->type != jbvBinary || !JsonContainerIsArray(v->json->val.binary.data))
			ie_field_error(field, "an array of strings");
		elems = palloc(sizeof(Datum) * max);
		*n = 0;
		it = JsonbIteratorInit(v->json->val.binary.data);
		while ((tok = JsonbIteratorNext(&it, &elem, true)) != WJB_DONE)
		{
			if (tok != WJB_ELEM)
				continue;
			if (elem.type != jbvString)
				ie_field_error(field, "an array of strings");
			if (*n == max)
			{
				max *= 2;
				elems = repalloc(elems, sizeof(Datum) * max);
			}
			elems[(*n)++] = PointerGetDatum(cstring_to_text_with_len(elem.val.string.val, elem.val.string.len));
		}
		return elems;
	}
	if (v->type == TEXTARRAYOID)
	{
		ArrayType  *array = DatumGetArrayTypeP(v->datum);
		bool	   *nulls;

		if (ARR_NDIM(array) > 1)
			ie_field_error(field, "a one-dimensional array");
		deconstruct_array(array, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, n);
		for (int i = 0; i < *n; i++)
			if (nulls[i])
				ie_field_error(field, "an array of strings without nulls");
		return elems;
	}
	ie_field_error(field, "an array of strings");
	return NULL;				/* not reached */
}
