/*
 * fields.h
 *		The fields of a batch element (a JSON object's values or a staged
 *		row's columns), read as the types the fields need.
 */
#ifndef IE_FIELDS_H
#define IE_FIELDS_H

#include "datatype/timestamp.h"
#include "utils/date.h"
#include "utils/jsonb.h"
#include "utils/uuid.h"

/*
 * One field as given: a value of a JSON object, or a (not null) column of a
 * staged row.
 */
typedef struct FieldValue
{
	JsonbValue *json;			/* the JSON value, or NULL for a column */
	Datum		datum;			/* the column's value */
	Oid			type;			/* and its type */
} FieldValue;

extern void ie_field_error(const char *field, const char *expected);
extern char *ie_field_cstring(const FieldValue *v, const char *field);
extern text *ie_field_text(const FieldValue *v, const char *field);
extern int64 ie_field_int64(const FieldValue *v, const char *field);
extern int	ie_field_label(const FieldValue *v, const char *field, const char *const *names, int n);
extern TimestampTz ie_field_timestamptz(const FieldValue *v, const char *field);
extern DateADT ie_field_date(const FieldValue *v, const char *field);
extern pg_uuid_t *ie_field_uuid(const FieldValue *v, const char *field);
extern Jsonb *ie_field_jsonb(const FieldValue *v, const char *field);
extern Datum *ie_field_text_list(const FieldValue *v, const char *field, int *n);

#endif							/* IE_FIELDS_H */
