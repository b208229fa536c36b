/*
 * state.h
 *		Stock positions derived from the event log: stream locks, the stock
 *		row, the C trigger that maintains it, verify and rebuild.
 */
#ifndef IE_STATE_H
#define IE_STATE_H

#include "nodes/execnodes.h"
#include "storage/itemptr.h"
#include "storage/lock.h"
#include "utils/rel.h"

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

/* A stream is (sku, location, lot); lot is '' for items without lots. */
typedef struct IeStreamKey
{
	Datum		sku;			/* text */
	Datum		location;		/* text */
	Datum		lot;			/* text */
} IeStreamKey;

typedef struct IeStockRow
{
	bool		exists;
	StockPosition pos;
	int64		safety_stock;
	int64		version;
	ItemPointerData tid;		/* of the row read, when it exists */
} IeStockRow;

/*
 * A relation open for writing, with its executor state and two slots. Outside
 * a batch every write opens and closes one; inside ie_batch_begin/_end (batch
 * ingest) the event and stock writers stay open from one event to the next.
 */
typedef struct IeWriter
{
	Relation	rel;
	EState	   *estate;			/* executor state for this relation, no SPI */
	ResultRelInfo *rri;
	TupleTableSlot *slot;		/* the new tuple */
	TupleTableSlot *oldslot;	/* the tuple it replaces */
	bool		kept;			/* belongs to the batch: do not close */
} IeWriter;

extern void ie_state_init(void);
extern IeWriter *ie_writer_get(Oid relid, IeWriter *local);
extern void ie_writer_done(IeWriter *w);
extern bool ie_batch_begin(void);
extern void ie_batch_end(void);
extern void ie_batch_abandon(void);

extern void ie_lock_tag(uint16 kind, int ntexts, const Datum *texts, LOCKTAG *tag);
extern void ie_lock_key(uint16 kind, int ntexts, const Datum *texts);
extern void ie_lock_stream(const IeStreamKey *key);
extern void ie_lock_sku(text *sku);
extern void ie_lock_tags_in_order(LOCKTAG *tags, int ntags);
extern int	ie_lock_limit(void);
extern void ie_lock_limit_exceeded(int needed, bool at_least);

extern void ie_stock_expect_append(int64 event_id);

/*
 * Called before a writer takes its first inventory lock (stream, sku or
 * idempotency): loghome.c settles the log's home there, so that the home
 * lock, when a writer must adopt the log, comes before every other lock.
 */
typedef void (*ie_before_locks_hook_type) (void);
extern ie_before_locks_hook_type ie_before_locks_hook;

extern int64 ie_next_identity(Oid relid);
extern void ie_row_insert(Oid relid, const Datum *values, const bool *nulls);
extern void ie_row_update(Oid relid, ItemPointer tid, const Datum *values, const bool *nulls);
extern void ie_read_stock(const IeStreamKey *key, IeStockRow *row);

#endif							/* IE_STATE_H */
