/*
 * guc.h
 *		Configuration parameters of inventory_events (inventory_events.*).
 */
#ifndef IE_GUC_H
#define IE_GUC_H

/* Database the background workers serve (inventory_events.database). */
extern char *ie_database;

extern void ie_guc_init(void);
extern void ie_guc_reserve_prefix(void);

#endif							/* IE_GUC_H */
