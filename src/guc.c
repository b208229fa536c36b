/*
 * guc.c
 *		Configuration parameters of inventory_events.
 *
 * Every parameter lives under the reserved prefix "inventory_events.", so a
 * misspelled setting is reported instead of silently becoming a placeholder.
 */
#include "postgres.h"

#include "miscadmin.h"
#include "utils/guc.h"

#include "guc.h"

char	   *ie_database = NULL;

void
ie_guc_init(void)
{
	/*
	 * Settings read only by postmaster children (the background workers) are
	 * PGC_POSTMASTER, which can only be defined while preloading: a backend
	 * that loads the library later (CREATE EXTENSION without preloading) must
	 * not try, or it dies with FATAL.
	 */
	if (process_shared_preload_libraries_in_progress)
		DefineCustomStringVariable("inventory_events.database",
								   "Database(s) served by an inventory_events publisher.",
								   "A comma-separated list: one publisher per database, up to 8.",
								   &ie_database,
								   "postgres",
								   PGC_POSTMASTER,
								   0,
								   NULL, NULL, NULL);

}

/* After every subsystem has defined its settings (called last by _PG_init). */
void
ie_guc_reserve_prefix(void)
{
	MarkGUCPrefixReserved("inventory_events");
}
