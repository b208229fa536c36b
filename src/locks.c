/*
 * locks.c
 *		The inventory locks: stream, sku and idempotency-key locks, their
 *		global order, and the limit on how many one call may take.
 *
 * Each is an exclusive transaction-level lock on an advisory-type tag made
 * from a hash of some text values (ie_lock_tag), so that a lock on a key
 * that has no row yet (a new stream, a new idempotency key) works like any
 * other. Every call that takes several takes them in one global order
 * (locks.h), so two calls that need overlapping sets wait instead of
 * deadlocking.
 */
#include "postgres.h"

#include "access/twophase.h"
#include "common/hashfn.h"
#include "miscadmin.h"
#include "storage/lock.h"
#include "utils/builtins.h"
#include "utils/guc.h"

#include "locks.h"

/*
 * The most inventory locks one call may take (-1: half of the server's lock
 * table). Every stream, sku and idempotency key of a batch stays locked until
 * the transaction ends, in the lock table that every database of the server
 * shares; a batch that needs more is refused before it takes any.
 */
static int	ie_max_locks_per_call = -1;

void
ie_locks_init(void)
{
	DefineCustomIntVariable("inventory_events.max_locks_per_call",
							"Most stream, sku and idempotency-key locks one call may take (-1: half of the lock table).",
							"The lock table holds max_locks_per_transaction x (max_connections + background processes + max_prepared_transactions) locks.",
							&ie_max_locks_per_call, -1, -1, INT_MAX, PGC_SUSET, 0,
							NULL, NULL, NULL);
}

/* The limit in force: the setting, or half of the shared lock table. */
int
ie_lock_limit(void)
{
	if (ie_max_locks_per_call >= 0)
		return ie_max_locks_per_call;
	return (int) Min((int64) INT_MAX,
					 (int64) max_locks_per_xact * (MaxBackends + max_prepared_xacts) / 2);
}

/*
 * Refuses a call that needs more inventory locks than the limit (54000):
 * needed locks, or at least that many when the caller stopped counting at
 * the first one over the limit (ingest_staged(), whose rows are not all in
 * memory at once).
 */
void
ie_lock_limit_exceeded(int needed, bool at_least)
{
	ereport(ERROR,
			(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
			 at_least ?
			 errmsg("this call needs at least %d inventory locks, more than inventory_events.max_locks_per_call (%d)",
					needed, ie_lock_limit()) :
			 errmsg("this call needs %d inventory locks, more than inventory_events.max_locks_per_call (%d)",
					needed, ie_lock_limit()),
			 errdetail("Each stream, sku and idempotency key of a batch stays locked until the transaction ends, in the lock table that every database of the server shares."),
			 errhint("Split the batch, or have a superuser raise inventory_events.max_locks_per_call together with max_locks_per_transaction.")));
}

/*
 * The lock tag of a hash of some text values: an advisory-type tag with
 * objsubid = kind. A hash collision only makes two unrelated keys wait for
 * each other.
 */
void
ie_lock_tag(uint16 kind, int ntexts, const Datum *texts, LOCKTAG *tag)
{
	uint64		h = 0;

	for (int i = 0; i < ntexts; i++)
	{
		text	   *t = DatumGetTextPP(texts[i]);

		h = hash_bytes_extended((const unsigned char *) VARDATA_ANY(t),
								VARSIZE_ANY_EXHDR(t), h + i);
	}
	SET_LOCKTAG_ADVISORY(*tag, MyDatabaseId, (uint32) (h >> 32), (uint32) h, kind);
}

ie_before_locks_hook_type ie_before_locks_hook = NULL;

/* Takes an exclusive transaction-level lock on a hash of some text values. */
void
ie_lock_key(uint16 kind, int ntexts, const Datum *texts)
{
	LOCKTAG		tag;

	if (ie_before_locks_hook)
		ie_before_locks_hook();

	ie_lock_tag(kind, ntexts, texts, &tag);
	(void) LockAcquire(&tag, ExclusiveLock, false, false);
}

void
ie_lock_stream(const IeStreamKey *key)
{
	Datum		texts[3] = {key->sku, key->location, key->lot};

	ie_lock_key(IE_LOCK_STREAM, 3, texts);
}

/* Reservations and every event that may raise a sku's ATP take this first. */
void
ie_lock_sku(text *sku)
{
	Datum		texts[1] = {PointerGetDatum(sku)};

	ie_lock_key(IE_LOCK_SKU, 1, texts);
}

static int
lock_rank(uint16 kind)
{
	return kind == IE_LOCK_IDEMPOTENCY ? 0 : kind == IE_LOCK_SKU ? 1 : 2;
}

static int
locktag_cmp(const void *a, const void *b)
{
	const LOCKTAG *x = a;
	const LOCKTAG *y = b;

	if (lock_rank(x->locktag_field4) != lock_rank(y->locktag_field4))
		return lock_rank(x->locktag_field4) - lock_rank(y->locktag_field4);
	if (x->locktag_field2 != y->locktag_field2)
		return x->locktag_field2 < y->locktag_field2 ? -1 : 1;
	if (x->locktag_field3 != y->locktag_field3)
		return x->locktag_field3 < y->locktag_field3 ? -1 : 1;
	return 0;
}

/*
 * Takes the given locks (from ie_lock_tag) in the global order, each once.
 * Two calls needing overlapping sets then wait for each other instead of
 * deadlocking. Sorts tags in place.
 */
void
ie_lock_tags_in_order(LOCKTAG *tags, int ntags)
{
	int			distinct = 0;

	if (ntags == 0)
		return;
	qsort(tags, ntags, sizeof(LOCKTAG), locktag_cmp);
	for (int i = 0; i < ntags; i++)
		if (i == 0 || locktag_cmp(&tags[i - 1], &tags[i]) != 0)
			distinct++;
	if (distinct > ie_lock_limit())
		ie_lock_limit_exceeded(distinct, false);
	if (ie_before_locks_hook)
		ie_before_locks_hook();
	for (int i = 0; i < ntags; i++)
	{
		CHECK_FOR_INTERRUPTS();
		if (i == 0 || locktag_cmp(&tags[i - 1], &tags[i]) != 0)
			(void) LockAcquire(&tags[i], ExclusiveLock, false, false);
	}
}

/*
 * Takes the given locks without waiting: all of them (returns how many this
 * transaction did not hold yet), or, when one is held by another
 * transaction, none of those this call took (returns -1; the ones this
 * transaction held before stay held). Never waits, so the order does not
 * matter for deadlocks. Sorts tags in place.
 */
int
ie_lock_tags_if_free(LOCKTAG *tags, int ntags)
{
	bool	   *taken;
	bool		all = true;
	int			ntaken = 0;
	int			i;

	if (ntags == 0)
		return 0;
	qsort(tags, ntags, sizeof(LOCKTAG), locktag_cmp);
	if (ie_before_locks_hook)
		ie_before_locks_hook();
	taken = palloc0(sizeof(bool) * ntags);
	for (i = 0; i < ntags && all; i++)
	{
		LockAcquireResult r;

		if (i > 0 && locktag_cmp(&tags[i - 1], &tags[i]) == 0)
			continue;
		r = LockAcquire(&tags[i], ExclusiveLock, false, true);
		all = (r != LOCKACQUIRE_NOT_AVAIL);
		taken[i] = (r == LOCKACQUIRE_OK);
		ntaken += taken[i];
	}
	if (!all)
		for (int j = 0; j < i; j++)
			if (taken[j])
				(void) LockRelease(&tags[j], ExclusiveLock, false);
	pfree(taken);
	return all ? ntaken : -1;
}
