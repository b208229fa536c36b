/*
 * errors.h
 *		SQLSTATEs of inventory_events' own error conditions (class "IE").
 *		Everything else uses PostgreSQL's standard codes; doc/reference.md
 *		lists them all.
 */
#ifndef IE_ERRORS_H
#define IE_ERRORS_H

#include "utils/elog.h"

/* IE001: the event would take a bucket below zero */
#define ERRCODE_IE_INSUFFICIENT_STOCK	MAKE_SQLSTATE('I','E','0','0','1')
/* IE002: expected_version (or an event's version) does not match the stream */
#define ERRCODE_IE_VERSION_CONFLICT		MAKE_SQLSTATE('I','E','0','0','2')
/* IE003: an idempotency key reused with different content */
#define ERRCODE_IE_IDEMPOTENCY_CONFLICT MAKE_SQLSTATE('I','E','0','0','3')
/* IE004: UPDATE, DELETE or TRUNCATE of the append-only event log */
#define ERRCODE_IE_APPEND_ONLY			MAKE_SQLSTATE('I','E','0','0','4')
/* IE005: a reservation beyond what the channel shows (or a location holds) */
#define ERRCODE_IE_RESERVATION_REFUSED	MAKE_SQLSTATE('I','E','0','0','5')
/* IE006: a lifecycle event (reserved, released, picked, shipped, pick_short,
 * or a moved event into or out of reserved or picked) given to append() or
 * ingest(): only the functions that own reservations append those */
#define ERRCODE_IE_LIFECYCLE_EVENT		MAKE_SQLSTATE('I','E','0','0','6')

/* IE007: a reconciliation line recounted as often as its source allows: it
 * needs approval (approve_recon_line(), raised by the SQL functions) */
#define ERRCODE_IE_APPROVAL_REQUIRED	MAKE_SQLSTATE('I','E','0','0','7')

/* IE008: a reservation of a sku the channel does not list (a channel with
 * listings sells only what channel_item lists), or of a channel identifier
 * that no listing of the channel has */
#define ERRCODE_IE_NOT_LISTED			MAKE_SQLSTATE('I','E','0','0','8')

/* IE009: a serial is not where the event takes it from: received while in
 * stock, or moved, picked or shipped from a place where it is not */
#define ERRCODE_IE_SERIAL_MISPLACED		MAKE_SQLSTATE('I','E','0','0','9')

/* Class IE as a whole */
#define ERRCODE_IE_CLASS				MAKE_SQLSTATE('I','E','0','0','0')

/*
 * Is this error a property of the data given (class 22 data exception, class
 * 23 integrity constraint violation, or one of ours)? Batch functions
 * dead-letter or refuse an element only for these. Anything else (a lock
 * timeout, a deadlock, a serialization failure, a cancel, out of memory, an
 * I/O or internal error) says nothing about the element: the whole call fails
 * so that the client retries it.
 */
static inline bool
ie_is_data_error(int sqlerrcode)
{
	int			category = ERRCODE_TO_CATEGORY(sqlerrcode);

	return category == ERRCODE_DATA_EXCEPTION ||
		category == ERRCODE_INTEGRITY_CONSTRAINT_VIOLATION ||
		category == ERRCODE_IE_CLASS;
}

#endif							/* IE_ERRORS_H */
