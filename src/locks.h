/*
 * locks.h
 *		Stream, sku and idempotency-key locks, and their global order.
 */
#ifndef IE_LOCKS_H
#define IE_LOCKS_H

#include "storage/lock.h"

#include "types.h"

/* locktag_field4 values of our advisory-type locks (user locks use 1 and 2). */
#define IE_LOCK_STREAM		0x4945
#define IE_LOCK_IDEMPOTENCY 0x4946
#define IE_LOCK_SKU			0x4947
#define IE_LOCK_HOME		0x4948	/* adopting the log (loghome.c) */

/*
 * The global lock order: every call that takes several of these locks takes
 * all idempotency locks, then all sku locks, then all stream locks, each kind
 * sorted by its tag (ie_lock_tags_in_order). A single append takes at most
 * one of each, in that order. Before all of them, the first write after the
 * database moved takes the home lock (IE_LOCK_HOME, through
 * ie_before_locks_hook) to adopt the log.
 */

/*
 * Called before a writer takes its first inventory lock (stream, sku or
 * idempotency): loghome.c settles the log's home there, so that the home
 * lock, when a writer must adopt the log, comes before every other lock.
 */
typedef void (*ie_before_locks_hook_type) (void);
extern ie_before_locks_hook_type ie_before_locks_hook;

extern void ie_locks_init(void);
extern void ie_lock_tag(uint16 kind, int ntexts, const Datum *texts, LOCKTAG *tag);
extern void ie_lock_key(uint16 kind, int ntexts, const Datum *texts);
extern void ie_lock_stream(const IeStreamKey *key);
extern void ie_lock_sku(text *sku);
extern void ie_lock_tags_in_order(LOCKTAG *tags, int ntags);
extern int	ie_lock_tags_if_free(LOCKTAG *tags, int ntags);
extern int	ie_lock_limit(void);
extern void ie_lock_limit_exceeded(int needed, bool at_least);

#endif							/* IE_LOCKS_H */
