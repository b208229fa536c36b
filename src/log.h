/*
 * log.h
 *		The event log: append, batch ingest, the append-only guard.
 */
#ifndef IE_LOG_H
#define IE_LOG_H

#include "datatype/timestamp.h"
#include "fmgr.h"
#include "nodes/pg_list.h"
#include "utils/date.h"
#include "utils/jsonb.h"
#include "utils/uuid.h"

#include "serial.h"
#include "types.h"

/* One event as given by a caller (SQL arguments or a JSON object). */
typedef struct IeEventInput
{
	text	   *sku;
	text	   *location;
	int			event_type;		/* IeEventType, or -1 when missing */
	bool		qty_isnull;
	int64		qty;
	text	   *source;
	text	   *idempotency_key;
	bool		occurred_at_isnull;
	TimestampTz occurred_at;
	text	   *lot;
	text	   *uom;
	text	   *ref;
	text	   *channel;
	bool		expected_version_isnull;
	int64		expected_version;
	Jsonb	   *payload;
	int			from_bucket;	/* IeBucket; IE_BUCKET_OUTSIDE when not given */
	int			to_bucket;
	text	   *reason;
	bool		expected_date_isnull;
	DateADT		expected_date;
	bool		source_seq_isnull;
	int64		source_seq;
	pg_uuid_t  *correlation_id;
	pg_uuid_t  *causation_id;
	IeSerialPool *serials;		/* NULL: none given */

	/*
	 * Set only by the functions that keep reservations and allocations in
	 * step with the log: lifecycle events are refused without it.
	 */
	bool		lifecycle;
} IeEventInput;

/* An event validated, resolved and locked, ready to insert. */
typedef struct IePreparedEvent
{
	const IeEventInput *in;
	IeStreamKey key;
	text	   *source;			/* '' when not given */
	text	   *uom;			/* unit as given, or the base unit */
	int64		uom_qty;		/* quantity as given */
	int64		qty;			/* in base units (counted: the counted on-hand) */
	int			from_bucket;
	int			to_bucket;
	StockPosition effect;
	TimestampTz occurred_at;
	int64		version;		/* the stream version this event takes */
	int64		available_after;	/* the stream's available once applied */
	bool		new_stream;		/* the stream has no stock row yet */
	IeSerialMove serial_move;	/* what it does to serials */
	bool		duplicate;		/* idempotent retry of event existing_id */
	int64		existing_id;
} IePreparedEvent;

/* One event as the operations that append several report it (type movement). */
typedef struct IeMovement
{
	int64		event_id;
	int			event_type;		/* IeEventType */
	text	   *sku;
	text	   *location;
	text	   *lot;			/* '' without lots */
	int64		qty;
	text	   *channel;		/* NULL: none (also in movements made, not read) */
	text	   *ref;
} IeMovement;

/*
 * Called after an event raised a sku's ATP, under the sku lock the event
 * took: the reservation layer (reserve.c) fills the sku's backorders there.
 * The event path itself knows nothing of reservations.
 */
typedef void (*ie_atp_raised_hook_type) (text *sku);
extern ie_atp_raised_hook_type ie_atp_raised_hook;

/* Called after every event appended: the publisher (worker.c) is woken at commit. */
typedef void (*ie_event_appended_hook_type) (void);
extern ie_event_appended_hook_type ie_event_appended_hook;

/*
 * Asked when an idempotency key has no event: true when the reservation
 * layer recorded an operation under it without one (a release of backordered
 * units only), whose reservation it sets. The key is then refused (IE003).
 */
typedef bool (*ie_key_without_event_hook_type) (text *source, text *key, int64 *reservation_id);
extern ie_key_without_event_hook_type ie_key_without_event_hook;

extern void ie_input_init(IeEventInput *in);
extern void ie_prepare_event(const IeEventInput *in, IePreparedEvent *p);
extern int64 ie_insert_event(const IePreparedEvent *p);
extern int64 ie_append_input(const IeEventInput *in);
extern bool ie_event_by_key(text *source, text *key, bool lock, IeMovement *m);
extern text *ie_nth_key(text *key, int n);
/* What a retry of an operation must match: 0 / NULL fields are not compared. */
#define IE_EV_BIT(t) ((uint32) 1 << (t))
typedef struct IeReplayExpect
{
	uint32		event_types;	/* IE_EV_BITs: the event under the key itself */
	text	   *sku;
	text	   *channel;
	text	   *ref;
} IeReplayExpect;

extern void ie_replay_check(text *source, text *key, const IeMovement *m, const IeReplayExpect *expect);
extern bool ie_replay_operation(text *source, text *key, const IeReplayExpect *expect, List **moves);
extern void ie_emit_movements(FunctionCallInfo fcinfo, List *moves);
extern void ie_record_exception(const char *kind, text *sku, text *location, text *channel,
								text *ref, const char *detail);

extern void ie_log_init(void);

#endif							/* IE_LOG_H */
