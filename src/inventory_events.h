/*
 * inventory_events.h
 *		Declarations shared by every subsystem of inventory_events.
 */
#ifndef INVENTORY_EVENTS_H
#define INVENTORY_EVENTS_H

#ifndef IE_VERSION_STR
#error "IE_VERSION_STR must be defined by the build (from inventory_events.control)"
#endif

#endif							/* INVENTORY_EVENTS_H */
