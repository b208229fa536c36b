/*
 * reserve.h
 *		Reservations against channel availability, backorders, exceptions.
 */
#ifndef IE_RESERVE_H
#define IE_RESERVE_H

#include "postgres.h"

extern void ie_reserve_init(void);
extern int64 ie_fill_backorders(text *sku);
extern bool ie_expiry_skips_busy;
extern bool ie_operation_key_used(text *source, text *key, int64 *reservation_id);

#endif							/* IE_RESERVE_H */
