/*
 * types.h
 *		stock_position and the bucket / event type enums in C.
 */
#ifndef IE_TYPES_H
#define IE_TYPES_H

#include "fmgr.h"

/* Buckets, in the order of the SQL enum inventory_events.bucket. */
typedef enum IeBucket
{
	IE_BUCKET_AVAILABLE = 0,
	IE_BUCKET_RESERVED,
	IE_BUCKET_PICKED,
	IE_BUCKET_DAMAGED,
	IE_BUCKET_QUARANTINE,
	IE_BUCKET_IN_TRANSIT,
	IE_BUCKET_INBOUND,
	IE_NUM_BUCKETS,
	IE_BUCKET_OUTSIDE = -1		/* the outside world: not a bucket */
} IeBucket;

extern const char *const ie_bucket_names[IE_NUM_BUCKETS];

/* Buckets counted in on-hand (physically at the location). */
#define IE_BUCKET_IN_ON_HAND(b) ((b) <= IE_BUCKET_QUARANTINE)

/* Event types, in the order of the SQL enum inventory_events.event_type. */
typedef enum IeEventType
{
	IE_EV_RECEIVED = 0,
	IE_EV_ADJUSTED,
	IE_EV_COUNTED,
	IE_EV_RESERVED,
	IE_EV_RELEASED,
	IE_EV_PICKED,
	IE_EV_SHIPPED,
	IE_EV_PICK_SHORT,
	IE_EV_RETURNED,
	IE_EV_DAMAGED,
	IE_EV_MOVED,
	IE_EV_INBOUND_EXPECTED,
	IE_EV_INBOUND_CANCELLED,
	IE_EV_TRANSFER_OUT,
	IE_EV_TRANSFER_IN_TRANSIT,
	IE_EV_TRANSFER_RECEIVED,
	IE_EV_SAFETY_STOCK_SET,
	IE_NUM_EVENT_TYPES
} IeEventType;

extern const char *const ie_event_type_names[IE_NUM_EVENT_TYPES];

/* stock_position: a quantity per bucket, fixed length, passed by reference. */
typedef struct StockPosition
{
	int64		q[IE_NUM_BUCKETS];
} StockPosition;

#define DatumGetStockPosition(X)	((StockPosition *) DatumGetPointer(X))
#define StockPositionGetDatum(X)	PointerGetDatum(X)
#define PG_GETARG_STOCK_POSITION(n) DatumGetStockPosition(PG_GETARG_DATUM(n))
#define PG_RETURN_STOCK_POSITION(x) return StockPositionGetDatum(x)

/* A stream is (sku, location, lot); lot is '' for items without lots. */
typedef struct IeStreamKey
{
	Datum		sku;			/* text */
	Datum		location;		/* text */
	Datum		lot;			/* text */
} IeStreamKey;

extern bool ie_text_equal(const text *a, const text *b);
extern int64 ie_position_on_hand(const StockPosition *p);
extern void ie_position_add(StockPosition *acc, const StockPosition *p);
extern void ie_position_sub(StockPosition *acc, const StockPosition *p);
extern char *ie_position_to_cstring(const StockPosition *p);

#endif							/* IE_TYPES_H */
