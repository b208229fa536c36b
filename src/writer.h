/*
 * writer.h
 *		Rows written without SQL, through writers kept by the backend.
 */
#ifndef IE_WRITER_H
#define IE_WRITER_H

#include "nodes/execnodes.h"
#include "storage/itemptr.h"
#include "utils/rel.h"
#include "utils/resowner.h"

/*
 * A relation open for writing, with its executor state and two slots: one of
 * the backend's kept writers (see writer.c: opened for a transaction, kept
 * parked between transactions), or one opened for a single row.
 */
typedef struct IeWriter
{
	Oid			relid;			/* InvalidOid: a free entry */
	Relation	rel;			/* while open; kept for comparison when parked */
	EState	   *estate;			/* executor state for this relation, no SPI */
	ResultRelInfo *rri;
	TupleTableSlot *slot;		/* the new tuple */
	TupleTableSlot *oldslot;	/* the tuple it replaces */
	bool		kept;			/* one of the kept writers: not closed after the row */
	bool		open;			/* its relations open in the current transaction */
	bool		in_use;			/* between ie_writer_get and ie_writer_done */
	bool		stale;			/* to be reopened before its next use */
	SubTransactionId use_subid; /* the (sub)transaction of the current use */
	SubTransactionId open_subid;	/* the (sub)transaction that opened it */
	ResourceOwner owner;		/* a kept writer's relations and locks, while open */
	Oid			userid;			/* who built it: EXECUTE of its expressions was checked for them */
	uint64		generation;		/* rel_exprs_generation when it was built (writer.c) */
	bool		invalidated;	/* what it was built from may have changed */
	uint64		last_used;		/* the backend's writer uses at its last use */
	Oid		   *index_oids;		/* ri_IndexRelationDescs' relations, reopened by OID */
	int			ndefaults;		/* columns C does not write that have a default */
	AttrNumber *default_atts;
	ExprState **default_exprs;
} IeWriter;

extern void ie_writer_init(void);
extern IeWriter *ie_writer_get(Oid relid, IeWriter *local);
extern void ie_writer_done(IeWriter *w);
extern void ie_writer_fill_defaults(IeWriter *w);
extern void ie_writer_store(IeWriter *w, CmdType operation);

extern int64 ie_next_identity(Oid relid);
extern ErrorData *ie_subxact_run(void (*fn) (void *arg), void *arg, MemoryContext cxt,
								 bool (*keep) (int sqlerrcode));
extern void ie_slot_copy(TupleTableSlot *slot, Datum **values, bool **nulls);
extern void ie_row_insert(Oid relid, const Datum *values, const bool *nulls);
extern void ie_row_update(Oid relid, ItemPointer tid, const Datum *values, const bool *nulls);
extern bool ie_row_update_unless_deleted(Oid relid, ItemPointer tid, const Datum *values, const bool *nulls);

#endif							/* IE_WRITER_H */
