/*
 * reserve.h
 *		Reservations against channel availability, backorders, exceptions.
 */
#ifndef IE_RESERVE_H
#define IE_RESERVE_H

#include "postgres.h"

extern void ie_record_exception(const char *kind, text *sku, text *location, text *channel,
								text *ref, const char *detail);
extern int64 ie_fill_backorders(text *sku);

#endif							/* IE_RESERVE_H */
