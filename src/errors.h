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

#endif							/* IE_ERRORS_H */
