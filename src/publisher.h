/*
 * publisher.h
 *		One publisher step, inventory_events.publish(): the event log read
 *		from the checkpoint, availability computed once per sourcing
 *		location set and shared by the channels, publications written.
 */
#ifndef IE_PUBLISHER_H
#define IE_PUBLISHER_H

#include "fmgr.h"

extern Datum ie_publish(PG_FUNCTION_ARGS);

#endif							/* IE_PUBLISHER_H */
