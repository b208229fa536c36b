/*
 * writer.c
 *		Writing rows without SQL: a relation open for writing with its
 *		executor state (IeWriter), kept by the backend between
 *		transactions, and the row insert and update that use it.
 *
 * The extension writes its tables (event, stock, reservation, allocation,
 * exception, dead_letter) through the executor's simple-relation routines,
 * as logical replication apply does: constraints, index entries and (for the
 * event) triggers as for any INSERT, without planner or SPI. Opening a
 * relation for writing (its indexes, a ResultRelInfo, an EState, slots) costs
 * more than writing one row, so a writer, once built, is kept by the
 * backend: open for the rest of the transaction (a wave of picks or a batch
 * of appends opens each table once), then parked when the transaction
 * commits, its relations closed and everything else kept for the next
 * transaction, which opens the relation and its indexes again and finds the
 * rest ready (a tenth of a one-line reservation's instructions;
 * doc/development.md).
 *
 * A writer's relations belong to a resource owner of its own under the top
 * transaction's (a statement's or a subtransaction's would release them, with
 * a leak warning, when it ends): its relation locks are held to the end of
 * the transaction anyway. Only the buffer pins of its slots belong to the
 * statement that uses it, and are dropped before it returns; when a
 * subtransaction aborts in the middle of a use, the abort releases them and
 * the writer is closed and reopened at its next use. A relcache invalidation
 * of a writer's relation (an index or constraint added in the same
 * transaction) does the same.
 *
 * A parked writer holds nothing of a transaction: no relation (its resource
 * owner is released when it is parked), no tuple descriptor pin (its slots
 * have a copy of the relation's descriptor), no buffer pin, no snapshot (set
 * at each use). It is used again only if nothing it was built from can have
 * changed: no invalidation of its relation or its indexes, nor of any
 * function, type or constraint, since it was built (writers_invalidate marks
 * it; opening the relation again processes those that arrived meanwhile),
 * the same user, the same relcache entries; otherwise it is built again.
 * Other relations' invalidations (DDL, VACUUM or ANALYZE of another table)
 * leave it alone. A writer whose trigger
 * functions keep state of their own (a DBA's PL/pgSQL trigger on the log),
 * one whose triggers opened other relations, or one whose memory grew is
 * closed at commit instead. An abort frees the writers it had open.
 */
#include "postgres.h"

#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/index.h"
#include "commands/sequence.h"
#include "executor/executor.h"
#include "executor/nodeModifyTable.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "rewrite/rewriteHandler.h"
#include "tcop/utility.h"
#include "utils/datum.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "catalog.h"
#include "writer.h"

/*
 * The compiled expressions of the relations we write, once per backend: their
 * CHECK constraints and the predicates of their partial indexes (the log's
 * partitions have three). The executor would read, plan and compile them
 * again for every new ResultRelInfo, that is for every writer opened: once
 * per table per transaction, a tenth of an append's instructions (profile in
 * doc/development.md). An entry is dropped by a relcache invalidation of its
 * relation or of one of its partial indexes (ALTER TABLE ... ADD CHECK,
 * CREATE or DROP INDEX, DROP EXTENSION, and the statistics updates of VACUUM
 * and ANALYZE), and every entry by any change to a function, a type or a
 * constraint (ALTER FUNCTION, REVOKE EXECUTE, ALTER DOMAIN: compiled steps
 * hold a function's strictness, a domain's constraints and the result of a
 * permission check, made for the user who compiled them, whose entry it is);
 * when all entries are taken, the oldest makes room.
 *
 * An invalidation can arrive while a writer uses the compiled expressions:
 * whenever a lock is taken, so while the transaction's writers are open, and
 * when a subtransaction aborts, while the transaction's other writers stay
 * open. So a dropped entry's memory is handed to the current transaction,
 * which frees it when it ends, after its writers are closed or parked (a
 * parked writer that may point into it is not used again: every drop counts
 * as an invalidation, see writer_unpark); it is freed at once only outside a
 * transaction, where no writer is open.
 *
 * An expression that keeps state from its first evaluation in the executor
 * state's memory (a whole-row reference keeps its tuple descriptor, a row
 * type conversion its map) is not kept here: it would read freed memory once
 * that writer is gone. A relation with one is compiled by the executor per
 * writer, as PostgreSQL does (and kept with the writer when it is parked).
 *
 * A compiled expression is not re-entrant: its steps keep their intermediate
 * results in it (an OR's "some argument was null" among them). Only the
 * transaction's writers, one per relation and never used by two rows at a
 * time (nor by two transactions: a writer is used by one backend), run the
 * kept compiled form; a writer opened for one row (another row
 * of the relation is being written: a CHECK function that appends, say)
 * compiles the kept planned expressions for itself, as the executor would,
 * without planning them again.
 */
typedef struct RelExprs
{
	Oid			relid;
	Oid			userid;			/* who compiled: EXECUTE was checked for it */
	int			nchecks;
	Expr	  **planned_checks;	/* in the order of constr->check */
	ExprState **checks;			/* and compiled */
	int			npredicates;
	Oid		   *predicate_indexes;	/* the partial indexes, */
	List	  **planned_predicates; /* their predicates planned, */
	ExprState **predicates;		/* and compiled */
	MemoryContext cxt;
} RelExprs;

static RelExprs rel_exprs[16];
static int	rel_exprs_n = 0;
/*
 * Counts every invalidation and every drop of a cache entry: a build under
 * way (a cache entry, a writer) compares it before and after, and keeps
 * nothing it built if it moved.
 */
static uint64 rel_exprs_generation = 0;

static void writers_invalidate(Oid relid);

/*
 * Frees the memory of a dropped cache entry, or hands it to the current
 * transaction when there is one: its writers may still point into it.
 */
static void
cache_entry_memory_release(MemoryContext cxt)
{
	if (TopTransactionContext != NULL)
		MemoryContextSetParent(cxt, TopTransactionContext);
	else
		MemoryContextDelete(cxt);
}

static void
rel_exprs_drop(int i)
{
	/* A build under way may point into it; parked writers of it do. */
	rel_exprs_generation++;
	writers_invalidate(rel_exprs[i].relid);
	cache_entry_memory_release(rel_exprs[i].cxt);
	rel_exprs_n--;
	memmove(&rel_exprs[i], &rel_exprs[i + 1], sizeof(RelExprs) * (rel_exprs_n - i));
}

static void
rel_exprs_drop_all(void)
{
	while (rel_exprs_n > 0)
		rel_exprs_drop(rel_exprs_n - 1);
}

/*
 * The IndexInfo of each index we write, once per backend (ExecOpenIndices
 * builds one per index for every writer opened, that is once per index per
 * transaction: its expressions and predicate copied from the relcache, its
 * exclusion operators looked up). A writer takes a flat copy with the fields
 * the executor fills while it writes (compiled expressions and predicate,
 * the access method's cache, the unchanged-columns hint) cleared, and its
 * own memory context; the lists and arrays the copy points to are shared,
 * read only. An entry goes with any relcache invalidation of its index or of
 * the index's table (a CREATE INDEX CONCURRENTLY making it ready, ALTER
 * INDEX, REINDEX), and every entry with any function, type or constraint
 * change (an exclusion constraint's operators); its memory, which writers of the
 * current transaction may point into, is handed to the transaction, as
 * rel_exprs' is (a parked writer's copies are not used again after it).
 */
typedef struct IndexInfoEntry
{
	Oid			indexid;		/* hash key */
	Oid			heapid;
	IndexInfo  *info;
	MemoryContext cxt;
} IndexInfoEntry;

static HTAB *index_infos = NULL;

/* At most this many entries (about 2 kB each), then all are dropped. */
#define INDEX_INFOS_MAX 256

static void
index_info_drop(IndexInfoEntry *e)
{
	MemoryContext cxt = e->cxt;
	Oid			indexid = e->indexid;

	/* Its table's writers point into it. */
	writers_invalidate(e->heapid);
	(void) hash_search(index_infos, &indexid, HASH_REMOVE, NULL);
	cache_entry_memory_release(cxt);
}

/* Drops the entries of relid (an index or a table), or all (InvalidOid). */
static void
index_infos_drop(Oid relid)
{
	HASH_SEQ_STATUS seq;
	IndexInfoEntry *e;

	if (index_infos == NULL)
		return;
	/* Removing the entry just returned is allowed during a scan. */
	hash_seq_init(&seq, index_infos);
	while ((e = hash_seq_search(&seq)) != NULL)
		if (relid == InvalidOid || e->indexid == relid || e->heapid == relid)
			index_info_drop(e);
}

/*
 * A writer's IndexInfo for the open index idx, in the current memory context
 * (the writer's executor state), from the backend's entry (built on first
 * use; not kept if an invalidation arrived while it was built).
 */
static IndexInfo *
index_info_for(Relation idx)
{
	Oid			indexid = RelationGetRelid(idx);
	IndexInfoEntry *e = NULL;
	IndexInfo  *source;
	IndexInfo  *ii;

	if (index_infos == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(IndexInfoEntry);
		ctl.hcxt = CacheMemoryContext;
		index_infos = hash_create("inventory_events index infos", 64, &ctl,
								  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	else
		e = hash_search(index_infos, &indexid, HASH_FIND, NULL);
	if (e == NULL && hash_get_num_entries(index_infos) >= INDEX_INFOS_MAX)
	{
		/*
		 * Full (a log with many partitions, written one month after
		 * another): start over. The writer being built may point into the
		 * entries dropped: the counter tells it (see ie_writer_get).
		 */
		rel_exprs_generation++;
		index_infos_drop(InvalidOid);
	}
	if (e != NULL)
		source = e->info;
	else
	{
		uint64		generation = rel_exprs_generation;
		MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext, "inventory_events index info",
												  ALLOCSET_SMALL_SIZES);
		MemoryContext old = MemoryContextSwitchTo(cxt);

		source = BuildIndexInfo(idx);
		MemoryContextSwitchTo(old);
		/* Else it stays, for this writer only, under the executor state. */
		if (generation == rel_exprs_generation)
		{
			bool		found PG_USED_FOR_ASSERTS_ONLY;

			MemoryContextSetParent(cxt, CacheMemoryContext);
			e = hash_search(index_infos, &indexid, HASH_ENTER, &found);
			Assert(!found);
			e->heapid = idx->rd_index->indrelid;
			e->info = source;
			e->cxt = cxt;
		}
	}
	/*
	 * The fields cleared are those PostgreSQL 15's executor fills in while it
	 * writes; a later major version must be checked again (as writer_close,
	 * which does not call what ExecCloseIndices calls beyond index_close).
	 */
	ii = palloc(sizeof(IndexInfo));
	memcpy(ii, source, sizeof(IndexInfo));
	ii->ii_ExpressionsState = NIL;
	ii->ii_PredicateState = NULL;
	ii->ii_CheckedUnchanged = false;
	ii->ii_IndexUnchanged = false;
	ii->ii_AmCache = NULL;
	ii->ii_Context = CurrentMemoryContext;
	return ii;
}

/*
 * Opens the result relation's indexes as ExecOpenIndices does (every index
 * of the relation, ROW EXCLUSIVE), with their IndexInfo from index_info_for.
 * The lock is taken before the entry is looked up: taking it processes the
 * invalidations that may have made the entry stale.
 */
static void
writer_open_indexes(ResultRelInfo *rri)
{
	Relation	rel = rri->ri_RelationDesc;
	List	   *indexids;
	ListCell   *lc;
	int			n;

	rri->ri_NumIndices = 0;
	if (!rel->rd_rel->relhasindex)
		return;
	indexids = RelationGetIndexList(rel);
	n = list_length(indexids);
	if (n == 0)
		return;
	rri->ri_IndexRelationDescs = palloc(sizeof(Relation) * n);
	rri->ri_IndexRelationInfo = palloc(sizeof(IndexInfo *) * n);
	foreach(lc, indexids)
	{
		Relation	idx = index_open(lfirst_oid(lc), RowExclusiveLock);

		rri->ri_IndexRelationDescs[rri->ri_NumIndices] = idx;
		rri->ri_IndexRelationInfo[rri->ri_NumIndices] = index_info_for(idx);
		rri->ri_NumIndices++;
	}
	list_free(indexids);
}

/*
 * A relcache invalidation drops the entries of the relation (a table, or
 * one of its partial indexes) and the IndexInfo entries of the index or
 * table, and invalidates the writers of the relation (writers_invalidate);
 * the others stay.
 */
static void
rel_exprs_callback(Datum arg, Oid relid)
{
	/* Whatever it hits: it may be of a relation being compiled. */
	rel_exprs_generation++;
	for (int i = rel_exprs_n - 1; i >= 0; i--)
	{
		bool		hit = (relid == InvalidOid || rel_exprs[i].relid == relid);

		for (int j = 0; j < rel_exprs[i].npredicates; j++)
			hit |= (rel_exprs[i].predicate_indexes[j] == relid);
		if (hit)
			rel_exprs_drop(i);
	}
	index_infos_drop(relid);
}

/*
 * Any change to a function, a type or a constraint drops every cache entry
 * and invalidates every writer: compiled steps hold a function's strictness
 * and the result of its permission check, and a domain's constraints (of the
 * domain a default or CHECK coerces to, of a domain used inside one of
 * those, or of one a planned SQL function brought in), which cannot be told
 * from the invalidation's hash value without collecting every domain the
 * compiled steps check.
 */
static void
rel_exprs_syscache_callback(Datum arg, int cacheid, uint32 hashvalue)
{
	rel_exprs_generation++;
	rel_exprs_drop_all();
	index_infos_drop(InvalidOid);
	writers_invalidate(InvalidOid);
}

/* Does an expression keep state of its first evaluation (see above)? */
static bool
keeps_evaluation_state(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if (IsA(node, Var) && ((Var *) node)->varattno == InvalidAttrNumber)
		return true;
	if (IsA(node, ConvertRowtypeExpr))
		return true;
	/* Hashed ScalarArrayOpExpr builds its table there (not planned so here). */
	if (IsA(node, ScalarArrayOpExpr) && OidIsValid(((ScalarArrayOpExpr *) node)->hashfuncid))
		return true;
	return expression_tree_walker(node, keeps_evaluation_state, context);
}

/*
 * Gives a writer's result relation its compiled CHECK constraints and index
 * predicates, compiling them on first use; with own_states, compiled anew
 * from the kept planned form in the current memory context (see above).
 * Compiling may process invalidations; if one arrives meanwhile the result is
 * not cached but handed to the executor state's context (estate_cxt) for this
 * use. A relation with an expression that cannot be kept is left to the
 * executor.
 */
static void
rel_exprs_assign(ResultRelInfo *rri, MemoryContext estate_cxt, bool own_states)
{
	Relation	rel = rri->ri_RelationDesc;
	Oid			relid = RelationGetRelid(rel);
	Oid			userid = GetUserId();
	TupleConstr *constr = rel->rd_att->constr;
	uint64		generation = rel_exprs_generation;
	RelExprs   *e = NULL;
	RelExprs	built;
	RelExprs	used;
	MemoryContext old;
	List	   *checks = NIL;
	List	   *predicates = NIL;

	for (int i = 0; i < rel_exprs_n && e == NULL; i++)
		if (rel_exprs[i].relid == relid && rel_exprs[i].userid == userid)
			e = &rel_exprs[i];
	if (e == NULL)
	{
		memset(&built, 0, sizeof(built));
		built.relid = relid;
		built.userid = userid;
		/* Under the executor state until it is complete: an error frees it. */
		built.cxt = AllocSetContextCreate(estate_cxt, "inventory_events compiled expressions",
										  ALLOCSET_SMALL_SIZES);
		old = MemoryContextSwitchTo(built.cxt);
		if (constr)
			for (int i = 0; i < constr->num_check; i++)
				checks = lappend(checks, expression_planner(stringToNode(constr->check[i].ccbin)));
		for (int i = 0; i < rri->ri_NumIndices; i++)
		{
			/*
			 * Planned from a copy: the predicate's constants live with the
			 * writer's IndexInfo (expression_planner copies nodes, not the
			 * data they point to), in index_infos' entry, which an
			 * invalidation drops, or in the executor state's memory, which
			 * goes with the writer.
			 */
			List	   *predicate = rri->ri_IndexRelationInfo[i]->ii_Predicate;

			predicates = lappend(predicates, predicate == NIL ? NULL :
								 expression_planner((Expr *) copyObject(predicate)));
		}
		if (keeps_evaluation_state((Node *) checks, NULL) ||
			keeps_evaluation_state((Node *) predicates, NULL))
		{
			MemoryContextSwitchTo(old);
			return;
		}
		/* As ExecRelCheck (ExecPrepareExpr) and ExecPrepareQual compile them. */
		built.nchecks = list_length(checks);
		built.planned_checks = palloc(sizeof(Expr *) * Max(built.nchecks, 1));
		built.checks = palloc(sizeof(ExprState *) * Max(built.nchecks, 1));
		built.predicate_indexes = palloc(sizeof(Oid) * Max(rri->ri_NumIndices, 1));
		built.planned_predicates = palloc(sizeof(List *) * Max(rri->ri_NumIndices, 1));
		built.predicates = palloc(sizeof(ExprState *) * Max(rri->ri_NumIndices, 1));
		for (int i = 0; i < built.nchecks; i++)
		{
			built.planned_checks[i] = list_nth(checks, i);
			built.checks[i] = ExecInitExpr(built.planned_checks[i], NULL);
		}
		for (int i = 0; i < rri->ri_NumIndices; i++)
		{
			List	   *predicate = list_nth(predicates, i);

			if (predicate == NULL)
				continue;
			built.predicate_indexes[built.npredicates] = RelationGetRelid(rri->ri_IndexRelationDescs[i]);
			built.planned_predicates[built.npredicates] = predicate;
			built.predicates[built.npredicates] = ExecInitQual(predicate, NULL);
			built.npredicates++;
		}
		MemoryContextSwitchTo(old);
		if (generation != rel_exprs_generation)
			e = &built;			/* for this use only: it stays under estate_cxt */
		else
		{
			MemoryContextSetParent(built.cxt, CacheMemoryContext);
			if (rel_exprs_n == lengthof(rel_exprs))
				rel_exprs_drop(0);
			rel_exprs[rel_exprs_n] = built;
			e = &rel_exprs[rel_exprs_n++];
		}
	}

	/*
	 * Copied first: compiling (own_states) may process invalidations, which
	 * drop entries of rel_exprs[] (their memory stays until the transaction
	 * ends, the array's slots do not). What was just built for this use only
	 * is this writer's already.
	 */
	used = *e;
	if (e == &built)
		own_states = false;
	if (used.nchecks > 0 && !own_states)
		rri->ri_ConstraintExprs = used.checks;
	else if (used.nchecks > 0)
	{
		rri->ri_ConstraintExprs = palloc(sizeof(ExprState *) * used.nchecks);
		for (int i = 0; i < used.nchecks; i++)
			rri->ri_ConstraintExprs[i] = ExecInitExpr(used.planned_checks[i], NULL);
	}
	for (int i = 0; i < rri->ri_NumIndices; i++)
	{
		Oid			indexid = RelationGetRelid(rri->ri_IndexRelationDescs[i]);

		for (int j = 0; j < used.npredicates; j++)
			if (used.predicate_indexes[j] == indexid)
				rri->ri_IndexRelationInfo[i]->ii_PredicateState = own_states ?
					ExecInitQual(used.planned_predicates[j], NULL) : used.predicates[j];
	}
}

/*
 * Releases a kept writer's resource owner: what is left in it (nothing after
 * its relations were closed, everything after a failed open), its locks
 * handed to the top transaction on success (they are held to its end anyway).
 */
static void
release_owner(ResourceOwner owner, bool success)
{
	ResourceOwnerRelease(owner, RESOURCE_RELEASE_BEFORE_LOCKS, success, false);
	ResourceOwnerRelease(owner, RESOURCE_RELEASE_LOCKS, success, false);
	ResourceOwnerRelease(owner, RESOURCE_RELEASE_AFTER_LOCKS, success, false);
	ResourceOwnerDelete(owner);
}

/* The backend's memory for the executor states of kept writers. */
static MemoryContext kept_writers_cxt = NULL;

/*
 * A kept writer whose executor state has grown past this is closed rather
 * than parked: whatever the executor and the triggers allocate there for
 * one row is released with the row, but a parked state must not grow without
 * bound if some path does not.
 */
#define PARKED_WRITER_MAX_BYTES (1024 * 1024)

/*
 * Do the writer's trigger functions keep state in their FmgrInfo? They stay
 * with the writer when it is parked, and a function may keep one query's
 * state in fn_extra (PL/pgSQL its compiled function, a function with a SET
 * clause or SECURITY DEFINER its settings): such a writer is closed at
 * commit, as the executor would end its query. The extension's own trigger
 * functions keep none; a foreign key's are never fired by the rows C writes.
 */
static bool
triggers_keep_state(IeWriter *w)
{
	TriggerDesc *trigdesc = w->rri->ri_TrigDesc;

	if (trigdesc == NULL)
		return false;
	for (int i = 0; i < trigdesc->numtriggers; i++)
		if (w->rri->ri_TrigFunctions[i].fn_extra != NULL)
			return true;
	return false;
}

/* Writers built by the backend: each kept one is named by its number. */
static uint64 writer_builds = 0;

static void
writer_build(IeWriter *w, Oid relid, bool kept)
{
	RangeTblEntry *rte;
	MemoryContext old;
	Oid			table_relid;
	TupleDesc	desc;
	const TupleTableSlotOps *ops;

	w->relid = relid;
	w->userid = GetUserId();
	w->rel = table_open(relid, RowExclusiveLock);
	/* Taking the lock processed the invalidations that had arrived. */
	w->generation = rel_exprs_generation;
	if (kept)
	{
		if (kept_writers_cxt == NULL)
			kept_writers_cxt = AllocSetContextCreate(TopMemoryContext, "inventory_events kept writers",
													 ALLOCSET_SMALL_SIZES);
		old = MemoryContextSwitchTo(kept_writers_cxt);
		w->estate = CreateExecutorState();
		/* pg_backend_memory_contexts shows whose it is, and which build. */
		MemoryContextSwitchTo(w->estate->es_query_cxt);
		MemoryContextSetIdentifier(w->estate->es_query_cxt,
								   psprintf("%s, build %llu", RelationGetRelationName(w->rel),
											(unsigned long long) ++writer_builds));
		MemoryContextSwitchTo(old);
	}
	else
		w->estate = CreateExecutorState();
	/* Everything else with the executor state: freeing it frees all. */
	old = MemoryContextSwitchTo(w->estate->es_query_cxt);
	rte = makeNode(RangeTblEntry);
	rte->rtekind = RTE_RELATION;
	rte->relid = relid;
	rte->relkind = w->rel->rd_rel->relkind;
	rte->rellockmode = RowExclusiveLock;
	ExecInitRangeTable(w->estate, list_make1(rte));

	w->rri = makeNode(ResultRelInfo);
	InitResultRelInfo(w->rri, w->rel, 1, NULL, 0);
	w->estate->es_opened_result_relations = list_make1(w->rri);
	writer_open_indexes(w->rri);
	rel_exprs_assign(w->rri, w->estate->es_query_cxt, !kept);
	w->index_oids = palloc(sizeof(Oid) * Max(w->rri->ri_NumIndices, 1));
	for (int i = 0; i < w->rri->ri_NumIndices; i++)
		w->index_oids[i] = RelationGetRelid(w->rri->ri_IndexRelationDescs[i]);

	/*
	 * The slots, the triggers' among them, get a copy of the relation's
	 * descriptor: the relcache's would be pinned by the transaction's
	 * resource owner, and a parked writer holds nothing of a transaction.
	 * (With its constraints: the missing values of columns added since
	 * rows were written.)
	 */
	desc = CreateTupleDescCopyConstr(RelationGetDescr(w->rel));
	ops = table_slot_callbacks(w->rel);
	w->slot = ExecAllocTableSlot(&w->estate->es_tupleTable, desc, ops);
	w->oldslot = ExecAllocTableSlot(&w->estate->es_tupleTable, desc, ops);
	if (w->rri->ri_TrigDesc)
	{
		w->rri->ri_TrigOldSlot = ExecInitExtraTupleSlot(w->estate, desc, ops);
		w->rri->ri_TrigNewSlot = ExecInitExtraTupleSlot(w->estate, desc, ops);

		/*
		 * The trigger functions looked up now, in the writer's memory:
		 * ExecCallTriggerFunc would look one up when it first fires, in the
		 * caller's memory context, which a function's cache in fn_extra
		 * (fmgr_security_definer's, PL/pgSQL's) would outlive.
		 */
		for (int i = 0; i < w->rri->ri_TrigDesc->numtriggers; i++)
			fmgr_info_cxt(w->rri->ri_TrigDesc->triggers[i].tgfoid, &w->rri->ri_TrigFunctions[i],
						  w->estate->es_query_cxt);
	}

	/*
	 * Columns a DBA added to a table C writes get their defaults, as an
	 * INSERT would give them (C names only its own columns). The only
	 * partitions C writes are the log's, which have the log's layout
	 * (src/logpart.c checks it): its columns are the log's, found without
	 * a catalog lookup of the partition's parent in every transaction.
	 */
	table_relid = w->rel->rd_rel->relispartition ? ie_catalog()->event_rel : relid;
	for (int i = 0; i < RelationGetDescr(w->rel)->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(RelationGetDescr(w->rel), i);
		Node	   *expr;

		if (att->attisdropped || att->attgenerated || ie_attribute_written(table_relid, att->attnum))
			continue;
		expr = build_column_default(w->rel, att->attnum);
		if (expr == NULL)
			continue;
		if (w->default_atts == NULL)
		{
			w->default_atts = palloc(sizeof(AttrNumber) * RelationGetDescr(w->rel)->natts);
			w->default_exprs = palloc(sizeof(ExprState *) * RelationGetDescr(w->rel)->natts);
		}
		w->default_atts[w->ndefaults] = att->attnum;
		w->default_exprs[w->ndefaults] = ExecPrepareExpr((Expr *) expr, w->estate);
		w->ndefaults++;
	}
	MemoryContextSwitchTo(old);
}

/* A kept writer's entry, free for another relation. */
static void
writer_forget(IeWriter *w)
{
	w->relid = InvalidOid;
	w->rel = NULL;
	w->estate = NULL;
	w->owner = NULL;
	w->open = false;
	w->in_use = false;
}

/*
 * Frees a kept writer that holds no relation: parked, or open in a
 * transaction whose abort releases what it holds (its resource owner is the
 * transaction's child). Nothing here can fail, and no executor shutdown
 * runs: nothing outside its memory points into it.
 */
static void
writer_free(IeWriter *w)
{
	MemoryContextDelete(w->estate->es_query_cxt);
	writer_forget(w);
}

/*
 * Opens a writer. A kept one holds its relations and locks in a resource
 * owner of its own under the top transaction's: released whole if opening
 * fails half-way, and when the writer is parked or closed.
 */
static void
writer_open(IeWriter *w, Oid relid, bool kept)
{
	ResourceOwner saved = CurrentResourceOwner;

	memset(w, 0, sizeof(*w));
	if (kept)
	{
		w->owner = ResourceOwnerCreate(TopTransactionResourceOwner, "inventory_events writer");
		CurrentResourceOwner = w->owner;
		PG_TRY();
		{
			writer_build(w, relid, true);
		}
		PG_CATCH();
		{
			CurrentResourceOwner = saved;
			release_owner(w->owner, false);
			if (w->estate != NULL)
				MemoryContextDelete(w->estate->es_query_cxt);
			PG_RE_THROW();
		}
		PG_END_TRY();
		CurrentResourceOwner = saved;
	}
	else
		writer_build(w, relid, false);
	w->kept = kept;
	w->open = true;
}

static void
writer_close(IeWriter *w)
{
	ResourceOwner saved = CurrentResourceOwner;

	if (w->kept)
		CurrentResourceOwner = w->owner;

	/*
	 * The indexes are closed keeping their ROW EXCLUSIVE locks, which
	 * ExecCloseIndices would release one by one: the table's lock, held to
	 * the end of the transaction anyway, keeps out the DDL they would, and
	 * the transaction's end releases them all at once for less than the
	 * one-by-one releases cost (a tenth of a one-line reservation's writer
	 * work; doc/development.md).
	 */
	for (int i = 0; i < w->rri->ri_NumIndices; i++)
		if (w->rri->ri_IndexRelationDescs[i] != NULL)
			index_close(w->rri->ri_IndexRelationDescs[i], NoLock);
	w->rri->ri_NumIndices = 0;
	/* Relations opened for triggers. */
	ExecCloseResultRelations(w->estate);
	ExecCloseRangeTableRelations(w->estate);
	ExecResetTupleTable(w->estate->es_tupleTable, false);	/* drops the slots */
	FreeExecutorState(w->estate);
	table_close(w->rel, NoLock);
	CurrentResourceOwner = saved;
	if (w->kept)
		release_owner(w->owner, true);
}

/* Closes a kept writer that is open and not in use; its entry is free. */
static void
kept_writer_close(IeWriter *w)
{
	writer_close(w);
	writer_forget(w);
}

/*
 * The backend's kept writers, at most one per relation: opened on first use
 * in a transaction, parked when it commits, opened again by the next
 * transaction that writes the relation. Callers hold pointers into the array
 * while they write a row, so an entry is reopened in place, never moved.
 * Relations beyond these are written through writers opened and closed for
 * each row; when all entries are taken, the parked writer unused longest
 * makes room.
 */
static IeWriter kept_writers[12];
static int	n_kept_writers = 0;
static uint64 writer_uses = 0;

/*
 * Marks the writers of relid (the table, or one of its indexes; InvalidOid:
 * all) as built from what may have changed: a parked one is not used again
 * (writer_unpark), an open one is closed at commit instead of parked. Every
 * kept writer in the array is whole: its index_oids are set.
 */
static void
writers_invalidate(Oid relid)
{
	for (int i = 0; i < n_kept_writers; i++)
	{
		IeWriter   *w = &kept_writers[i];
		bool		hit = OidIsValid(w->relid) && (relid == InvalidOid || w->relid == relid);

		for (int j = 0; OidIsValid(w->relid) && !hit && j < w->rri->ri_NumIndices; j++)
			hit = (w->index_oids[j] == relid);
		if (hit)
			w->invalidated = true;
	}
}

/*
 * Parks a kept writer when its transaction commits: its relation and indexes
 * closed (their locks stay with the transaction until it ends), everything
 * else kept for the next transaction. A writer that cannot be parked (stale,
 * one whose trigger functions keep state, or holds relations the trigger
 * machinery opened, or grew) is closed instead.
 */
static void
writer_park(IeWriter *w)
{
	ResourceOwner saved = CurrentResourceOwner;
	EState	   *estate = w->estate;

	if (w->stale || w->invalidated || triggers_keep_state(w) || estate->es_trig_target_relations != NIL ||
		estate->es_relations[0] != NULL ||
		MemoryContextMemAllocated(estate->es_query_cxt, true) > PARKED_WRITER_MAX_BYTES)
	{
		kept_writer_close(w);
		return;
	}
	CurrentResourceOwner = w->owner;
	for (int i = 0; i < w->rri->ri_NumIndices; i++)
		index_close(w->rri->ri_IndexRelationDescs[i], NoLock);
	table_close(w->rel, NoLock);
	CurrentResourceOwner = saved;
	release_owner(w->owner, true);
	w->owner = NULL;
	w->open = false;
}

/*
 * Opens a parked writer again for the current transaction: its relation and
 * indexes, under a resource owner of its own as when it was built. Taking
 * the relation's lock processes the invalidations that arrived since the
 * transaction began (an index dropped meanwhile among them): false (the
 * writer freed, what was opened closed) when anything it was built from may
 * have changed, that is when an invalidation hit it since it was built
 * (writers_invalidate), another user writes, or the relcache entries are
 * not those it was built with. Its indexes are opened only once that is
 * known: with the table's lock held none of them can be dropped, and one
 * created meanwhile (CREATE INDEX CONCURRENTLY) invalidates the table.
 */
static bool
writer_unpark(IeWriter *w)
{
	ResourceOwner saved = CurrentResourceOwner;
	Relation   *indexes = w->rri->ri_IndexRelationDescs;
	volatile int nopened = 0;
	volatile bool same = false;

	w->owner = ResourceOwnerCreate(TopTransactionResourceOwner, "inventory_events writer");
	CurrentResourceOwner = w->owner;
	PG_TRY();
	{
		Relation	rel = table_open(w->relid, RowExclusiveLock);

		same = (rel == w->rel && !w->invalidated && w->userid == GetUserId());
		w->rel = rel;
		for (; same && nopened < w->rri->ri_NumIndices; nopened++)
		{
			Relation	idx = index_open(w->index_oids[nopened], RowExclusiveLock);

			same = (idx == indexes[nopened]);
			indexes[nopened] = idx;
		}
		same = same && !w->invalidated;
	}
	PG_CATCH();
	{
		CurrentResourceOwner = saved;
		release_owner(w->owner, false);
		writer_free(w);
		PG_RE_THROW();
	}
	PG_END_TRY();
	if (same)
	{
		w->open = true;
		CurrentResourceOwner = saved;
		return true;
	}
	for (int i = 0; i < nopened; i++)
		index_close(indexes[i], NoLock);
	table_close(w->rel, NoLock);
	CurrentResourceOwner = saved;
	release_owner(w->owner, true);
	writer_free(w);
	return false;
}

/*
 * The slots of a writer that was in use when a subtransaction aborted (its
 * own, and those its triggers fired with): the abort released their buffer
 * pins, so clearing them must not release them again.
 */
static void
drop_slot_pins(IeWriter *w)
{
	ListCell   *lc;

	foreach(lc, w->estate->es_tupleTable)
	{
		TupleTableSlot *slot = lfirst(lc);

		if (TTS_IS_BUFFERTUPLE(slot))
			((BufferHeapTupleTableSlot *) slot)->buffer = InvalidBuffer;
		ExecClearTuple(slot);
	}
}

/*
 * Closes a writer while its subtransaction aborts, as the abort releases its
 * own resources: nothing here can fail, and no executor shutdown runs. Its
 * relations and the locks it took go with its resource owner as in an abort
 * (ROLLBACK TO releases the locks its subtransaction took; a lock an outer
 * level holds too stays held by that level), and its executor state's memory
 * goes whole. The entry is free before anything is released, so an abort
 * retried after an error here does not free it twice.
 */
static void
writer_abandon(IeWriter *w)
{
	ResourceOwner owner = w->owner;
	MemoryContext estate_cxt = w->estate->es_query_cxt;

	writer_forget(w);
	release_owner(owner, false);
	MemoryContextDelete(estate_cxt);
}

static void
writers_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
		case XACT_EVENT_PARALLEL_PRE_COMMIT:
		case XACT_EVENT_PRE_PREPARE:
			for (int i = n_kept_writers - 1; i >= 0; i--)
				if (kept_writers[i].open)
					writer_park(&kept_writers[i]);
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			/* The abort releases what they hold; parked ones hold nothing. */
			for (int i = 0; i < n_kept_writers; i++)
				if (kept_writers[i].open)
					writer_free(&kept_writers[i]);
			break;
		default:
			break;
	}
}

/*
 * A subtransaction that aborts released the buffer pins its uses of writers
 * took: those writers are reopened before their next use. Writers in use by
 * an outer level (a trigger's subtransaction inside an append) keep going.
 * The writers it opened close at once: they may hold an index it created,
 * whose relcache entry its abort removes (it cannot while we hold it open).
 */
static void
writers_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						 SubTransactionId parentSubid, void *arg)
{
	for (int i = 0; i < n_kept_writers; i++)
	{
		IeWriter   *w = &kept_writers[i];
		bool		used_here = (w->in_use && w->use_subid == mySubid);

		if (!w->open)
			continue;
		if (event == SUBXACT_EVENT_COMMIT_SUB)
		{
			if (w->open_subid == mySubid)
				w->open_subid = parentSubid;
			if (used_here)
				w->use_subid = parentSubid;
		}
		else if (event == SUBXACT_EVENT_ABORT_SUB)
		{
			if (used_here)
			{
				drop_slot_pins(w);
				w->in_use = false;
				w->stale = true;
			}
			if (w->open_subid == mySubid && !w->in_use)
				writer_abandon(w);
		}
	}
}

/*
 * An open writer of the relation is reopened before its next use; a parked
 * one of the relation or of one of its indexes is invalidated.
 */
static void
writers_relcache_callback(Datum arg, Oid relid)
{
	rel_exprs_callback(arg, relid);
	writers_invalidate(relid);
	for (int i = 0; i < n_kept_writers; i++)
		if (kept_writers[i].open && (relid == InvalidOid || kept_writers[i].relid == relid))
			kept_writers[i].stale = true;
}

/*
 * Before any utility statement (ALTER TABLE, TRUNCATE, DROP, CREATE INDEX,
 * ... also from a function), the open idle writers close: DDL on a table
 * refuses to run while the session holds it open, and after it a writer
 * would be reopened anyway. Parked writers hold nothing open.
 */
static ProcessUtility_hook_type prev_process_utility = NULL;

static void
writers_close_idle(void)
{
	for (int i = 0; i < n_kept_writers; i++)
		if (kept_writers[i].open && !kept_writers[i].in_use)
			kept_writer_close(&kept_writers[i]);
}

/* Utility statements that cannot change or drop a relation. */
static bool
leaves_relations_alone(Node *stmt)
{
	switch (nodeTag(stmt))
	{
		case T_TransactionStmt:
		case T_VariableSetStmt:
		case T_VariableShowStmt:
		case T_FetchStmt:
		case T_ClosePortalStmt:
		case T_DeclareCursorStmt:
		case T_PrepareStmt:
		case T_ExecuteStmt:
		case T_DeallocateStmt:
		case T_NotifyStmt:
		case T_ListenStmt:
		case T_UnlistenStmt:
		case T_CopyStmt:
		case T_ExplainStmt:
		case T_CallStmt:
		case T_DoStmt:
			return true;
		default:
			return false;
	}
}

static void
writers_process_utility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
						ProcessUtilityContext context, ParamListInfo params,
						QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	if (n_kept_writers > 0 && IsTransactionState() && !leaves_relations_alone(pstmt->utilityStmt))
		writers_close_idle();
	if (prev_process_utility)
		prev_process_utility(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);
}

void
ie_writer_init(void)
{
	prev_process_utility = ProcessUtility_hook;
	ProcessUtility_hook = writers_process_utility;
	CacheRegisterRelcacheCallback(writers_relcache_callback, (Datum) 0);
	CacheRegisterSyscacheCallback(PROCOID, rel_exprs_syscache_callback, (Datum) 0);
	CacheRegisterSyscacheCallback(TYPEOID, rel_exprs_syscache_callback, (Datum) 0);
	CacheRegisterSyscacheCallback(CONSTROID, rel_exprs_syscache_callback, (Datum) 0);
	RegisterXactCallback(writers_xact_callback, NULL);
	RegisterSubXactCallback(writers_subxact_callback, NULL);
}

/* The kept writer of relid, open or parked, or NULL. */
static IeWriter *
kept_writer_of(Oid relid)
{
	for (int i = 0; i < n_kept_writers; i++)
		if (kept_writers[i].relid == relid)
			return &kept_writers[i];
	return NULL;
}

/*
 * A writer for relid, ready for one more row: current command id, slots
 * cleared. A kept one (opened, or unparked, for the transaction), or (when
 * it is in use already, or no entry is free) a fresh one in *local, closed
 * by ie_writer_done.
 */
IeWriter *
ie_writer_get(Oid relid, IeWriter *local)
{
	IeWriter   *w = NULL;
	IeWriter   *free_entry = NULL;
	IeWriter   *oldest_parked = NULL;

	writer_uses++;
	for (int i = 0; i < n_kept_writers; i++)
	{
		IeWriter   *e = &kept_writers[i];

		/* Parked, built from what an invalidation hit: not to be used again. */
		if (OidIsValid(e->relid) && !e->open && e->invalidated)
			writer_free(e);
		if (!OidIsValid(e->relid))
			free_entry = free_entry ? free_entry : e;
		else if (e->relid == relid)
			w = e;
		else if (!e->open && (oldest_parked == NULL || e->last_used < oldest_parked->last_used))
			oldest_parked = e;
	}
	if (w != NULL && !w->open)
	{
		if (writer_unpark(w))
			w->open_subid = GetCurrentSubTransactionId();
		else
		{
			/* Freed by writer_unpark: its entry is free. */
			free_entry = free_entry ? free_entry : w;
			w = NULL;
		}
	}
	else if (w != NULL && w->stale && !w->in_use)
	{
		/* Closed and reopened in place: callers hold pointers into the array. */
		kept_writer_close(w);
		free_entry = free_entry ? free_entry : w;
		w = NULL;
	}
	if (w == NULL)
	{
		if (free_entry == NULL && n_kept_writers < (int) lengthof(kept_writers))
		{
			free_entry = &kept_writers[n_kept_writers++];
			writer_forget(free_entry);
		}
		if (free_entry == NULL && oldest_parked != NULL)
		{
			writer_free(oldest_parked);
			free_entry = oldest_parked;
		}
		if (free_entry != NULL)
		{
			IeWriter	opened;

			/* Into the array only once whole: an error leaves the entry free. */
			writer_open(&opened, relid, true);
			opened.open_subid = GetCurrentSubTransactionId();
			/* An invalidation arrived while it was built: it missed it. */
			if (opened.generation != rel_exprs_generation)
				opened.invalidated = true;

			/*
			 * Opening it may have run a nested write (a function of a
			 * default or CHECK, planned, that writes) which took the entry
			 * or opened the relation: this one is then closed, and the row
			 * written through a writer of its own.
			 */
			if (!OidIsValid(free_entry->relid) && kept_writer_of(relid) == NULL)
			{
				*free_entry = opened;
				w = free_entry;
			}
			else
				writer_close(&opened);
		}
	}
	if (w == NULL || w->in_use)
	{
		w = local;
		writer_open(w, relid, false);
	}
	else
		w->last_used = writer_uses;
	w->in_use = true;
	w->use_subid = GetCurrentSubTransactionId();
	w->estate->es_output_cid = GetCurrentCommandId(true);
	w->estate->es_snapshot = ActiveSnapshotSet() ? GetActiveSnapshot() : InvalidSnapshot;
	ExecClearTuple(w->slot);
	ExecClearTuple(w->oldslot);
	return w;
}

/* Done with one row: a kept writer is reset for the next, any other closed. */
void
ie_writer_done(IeWriter *w)
{
	w->in_use = false;
	if (w->kept)
	{
		w->estate->es_snapshot = InvalidSnapshot;	/* the statement's; set at each use */
		ResetPerTupleExprContext(w->estate);
		ExecClearTuple(w->slot);
		ExecClearTuple(w->oldslot);
	}
	else
		writer_close(w);
}

/* The next value of the identity column (the first column) of relid. */
int64
ie_next_identity(Oid relid)
{
	const IeCatalog *c = ie_catalog();
	Oid			seq = InvalidOid;

	for (int i = 0; i < c->nidentities; i++)
		if (c->identity_rel[i] == relid)
			seq = c->identity_seq[i];
	if (!OidIsValid(seq))
		seq = getIdentitySequence(relid, 1, false);
	return nextval_internal(seq, false);
}

/*
 * Inserts a row that our C code built: the heap tuple, its index entries, and
 * its CHECK and NOT NULL constraints, but no triggers. The insert-side
 * foreign key checks are the caller's (reserve() has just read the channel,
 * item and reservation it names); the referenced side's checks, which refuse
 * deleting a channel or item in use, stay in force.
 */
void
ie_row_insert(Oid relid, const Datum *values, const bool *nulls)
{
	IeWriter	local;
	IeWriter   *w = ie_writer_get(relid, &local);
	int			natts = RelationGetDescr(w->rel)->natts;

	memcpy(w->slot->tts_values, values, sizeof(Datum) * natts);
	memcpy(w->slot->tts_isnull, nulls, sizeof(bool) * natts);
	ie_writer_store(w, CMD_INSERT);
	if (w->rel->rd_att->constr)
		ExecConstraints(w->rri, w->slot, w->estate);
	simple_table_tuple_insert(w->rel, w->slot);
	ExecInsertIndexTuples(w->rri, w->slot, w->estate, false, false, NULL, NIL);
	ie_writer_done(w);
}

/*
 * Runs fn(arg) in a subtransaction of its own, in memory context cxt.
 * Returns NULL when it committed, or the error that rolled it back, copied
 * into cxt; the current memory context is cxt and the caller's resource
 * owner is restored either way. An error that keep(sqlerrcode) does not
 * accept is thrown on after the rollback (keep NULL: every error returned).
 */
ErrorData *
ie_subxact_run(void (*fn) (void *arg), void *arg, MemoryContext cxt, bool (*keep) (int sqlerrcode))
{
	ResourceOwner owner = CurrentResourceOwner;
	ErrorData  *volatile edata = NULL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		fn(arg);
		ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	CurrentResourceOwner = owner;
	if (edata != NULL && keep != NULL && !keep(edata->sqlerrcode))
		ReThrowError(edata);
	return edata;
}

/*
 * The values and nulls of the row in slot, every attribute, copied into the
 * current memory context (palloc'd arrays): a row read to be replaced with
 * ie_row_update, which outlives the slot's next use.
 */
void
ie_slot_copy(TupleTableSlot *slot, Datum **values, bool **nulls)
{
	TupleDesc	desc = slot->tts_tupleDescriptor;

	slot_getallattrs(slot);
	*values = palloc(sizeof(Datum) * desc->natts);
	*nulls = palloc(sizeof(bool) * desc->natts);
	for (int a = 0; a < desc->natts; a++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, a);

		(*nulls)[a] = slot->tts_isnull[a];
		(*values)[a] = (*nulls)[a] ? (Datum) 0 :
			att->attlen == -1 ? PointerGetDatum(PG_DETOAST_DATUM_COPY(slot->tts_values[a])) :
			datumCopy(slot->tts_values[a], att->attbyval, att->attlen);
	}
}

/*
 * Sets, in the writer's slot (not yet stored), the defaults of the columns
 * that C does not write (see writer_build); evaluated in the per-tuple
 * context, reset here for each row.
 */
void
ie_writer_fill_defaults(IeWriter *w)
{
	ExprContext *econtext;

	if (w->ndefaults == 0)
		return;
	ResetPerTupleExprContext(w->estate);
	econtext = GetPerTupleExprContext(w->estate);
	for (int i = 0; i < w->ndefaults; i++)
	{
		AttrNumber	a = w->default_atts[i] - 1;

		w->slot->tts_values[a] = ExecEvalExprSwitchContext(w->default_exprs[i], econtext,
														   &w->slot->tts_isnull[a]);
	}
}

/*
 * Stores the row set in the writer's slot: with the defaults of the columns
 * C does not write for an insert, and the stored generated columns a DBA
 * added computed.
 */
void
ie_writer_store(IeWriter *w, CmdType operation)
{
	if (operation == CMD_INSERT)
		ie_writer_fill_defaults(w);
	ExecStoreVirtualTuple(w->slot);
	if (w->rel->rd_att->constr && w->rel->rd_att->constr->has_generated_stored)
		ExecComputeStoredGenerated(w->rri, w->estate, w->slot, operation);
}

static bool
row_update(Oid relid, ItemPointer tid, const Datum *values, const bool *nulls, bool may_be_deleted)
{
	IeWriter	local;
	IeWriter   *w = ie_writer_get(relid, &local);
	int			natts = RelationGetDescr(w->rel)->natts;
	bool		update_indexes;
	TM_FailureData tmfd;
	LockTupleMode lockmode;
	TM_Result	result;

	memcpy(w->slot->tts_values, values, sizeof(Datum) * natts);
	memcpy(w->slot->tts_isnull, nulls, sizeof(bool) * natts);
	ie_writer_store(w, CMD_UPDATE);
	if (w->rel->rd_att->constr)
		ExecConstraints(w->rri, w->slot, w->estate);
	result = table_tuple_update(w->rel, tid, w->slot, GetCurrentCommandId(true), w->estate->es_snapshot,
								InvalidSnapshot, true, &tmfd, &lockmode, &update_indexes);
	if (result == TM_Deleted && may_be_deleted)
	{
		ie_writer_done(w);
		return false;
	}
	if (result != TM_Ok)
		elog(ERROR, "could not replace row of relation \"%s\": %s", RelationGetRelationName(w->rel),
			 result == TM_Deleted ? "deleted concurrently" :
			 result == TM_Updated ? "updated concurrently" :
			 result == TM_SelfModified ? "already replaced by this command" : "not updatable");
	if (update_indexes)
		ExecInsertIndexTuples(w->rri, w->slot, w->estate, true, false, NULL, NIL);
	ie_writer_done(w);
	CommandCounterIncrement();
	return true;
}

/*
 * Replaces the row at tid, which the caller read with SnapshotSelf while
 * holding the lock that serialises every writer of that row (a sku lock).
 * Only non-key columns change, so no foreign key checks are due; the
 * constraints are checked and index entries (partial indexes included) made.
 */
void
ie_row_update(Oid relid, ItemPointer tid, const Datum *values, const bool *nulls)
{
	(void) row_update(relid, tid, values, nulls, false);
}

/*
 * The same for a row that someone may delete without the lock (a DBA, or
 * republish_drift() forgetting what a channel was shown): false, and nothing
 * written, when a transaction that deleted it committed meanwhile.
 */
bool
ie_row_update_unless_deleted(Oid relid, ItemPointer tid, const Datum *values, const bool *nulls)
{
	return row_update(relid, tid, values, nulls, true);
}
