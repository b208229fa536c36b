/*
 * serial.h
 *		Serial numbers of serialized items: which serials an event moves,
 *		and moving them (inventory_events.serial, serial_event).
 */
#ifndef IE_SERIAL_H
#define IE_SERIAL_H

#include "fmgr.h"
#include "utils/array.h"

/*
 * The serials a caller gave for one operation. Each event of the operation
 * takes the ones it moves (ie_serials_plan marks them used); the operation
 * then checks that none is left over (ie_serial_pool_finish).
 */
typedef struct IeSerialPool
{
	int			n;
	Datum	   *serials;		/* text, distinct, not empty */
	bool	   *used;
	int			nused;
	bool		replayed;		/* an idempotent retry: nothing was taken */
} IeSerialPool;

typedef enum IeSerialMode
{
	IE_SERIALS_NONE,			/* the event moves no serials */
	IE_SERIALS_MOVE,			/* serials from one state to another */
	IE_SERIALS_CENSUS			/* a count: these serials are here, no others */
} IeSerialMode;

/* What one event does to serials, planned before it is inserted. */
typedef struct IeSerialMove
{
	IeSerialMode mode;
	int			from_state;		/* IeBucket or IE_BUCKET_OUTSIDE */
	int			to_state;
	int			n;
	Datum	   *serials;
	Datum	   *found;			/* census: the listed serials not here before */
	int			n_found;
} IeSerialMove;

extern IeSerialPool *ie_serial_pool_new(Datum *serials, int n);
extern IeSerialPool *ie_serial_pool_from_array(ArrayType *array);
extern IeSerialPool *ie_serial_pool_again(const IeSerialPool *pool);
extern void ie_serial_pool_finish(const IeSerialPool *pool);

extern void ie_serials_plan(IeSerialMove *m, bool serialized, int event_type, int from_bucket,
							int to_bucket, int64 qty, Datum sku, Datum location, Datum lot,
							text *channel, text *ref, IeSerialPool *pool);
extern void ie_serials_apply(const IeSerialMove *m, Datum sku, Datum location, Datum lot,
							 int64 event_id, text *channel, text *ref);

#endif							/* IE_SERIAL_H */
