/*
 * catalog.c
 *		Cached OIDs of the extension's relations, indexes, types and enum
 *		labels, so that hot paths never look anything up by name.
 *
 * The cache is filled on first use in a backend and thrown away by a relcache
 * invalidation callback whenever one of the cached relations is invalidated
 * (DROP EXTENSION, ALTER TABLE, ...) or on a full reset.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/relscan.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "catalog/indexing.h"
#include "catalog/pg_class.h"
#include "catalog/pg_enum.h"
#include "catalog/pg_extension.h"
#include "access/tableam.h"
#include "commands/trigger.h"
#include "common/hashfn.h"
#include "storage/lmgr.h"
#include "executor/tuptable.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgroids.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "catalog.h"
#include "standby.h"

static IeCatalog cat;
static bool cat_valid = false;
static uint64 cat_generation = 0;	/* counts the loads of cat */

/*
 * Master data cache: items (sku -> base unit, lot-controlled) and locations
 * that exist, so that an append does not search two indexes for them, and the
 * entries other subsystems keep here (channels and bills of materials, see
 * channel.c). Writes to item, location, channel, channel_location,
 * channel_item, intercompany and kit_component fire a statement trigger (ie_master_data_changed) that sends
 * a relcache invalidation for the table; every backend then drops the whole
 * cache in the callback below, at the latest when its next transaction
 * starts.
 */
typedef struct MasterEntry
{
	uint64		key;			/* hash of kind and name */
	char	   *name;
	text	   *base_uom;		/* items only */
	bool		lot_controlled;
	bool		serialized;
	void	   *payload;		/* other kinds: ie_cache_put's */
} MasterEntry;

static HTAB *master_cache = NULL;
static MemoryContext master_cxt = NULL;
static uint64 master_cache_resets = 0;	/* see ie_master_read_begin */

static void
master_cache_reset(void)
{
	master_cache_resets++;
	master_cache = NULL;
	if (master_cxt)
		MemoryContextReset(master_cxt);
}

static uint64 cat_invalidations = 0;	/* relevant relcache invalidations seen */
static int	catalog_table_of(Oid relid);

/*
 * The start of every call that writes (append, ingest, reserve, the
 * lifecycle, publish, transfers): refused on a standby or in a read-only
 * transaction (ie_require_writable), then the invalidations other
 * transactions committed are taken in, so that master data changed since
 * this transaction's previous call is seen by this one. Taking a lock not
 * yet held does the same, but the calls keep their locks to the end of the
 * transaction, so a later call in it may take none.
 */
void
ie_write_call_start(const char *function)
{
	ie_require_writable(function);
	ie_read_call_start();
}

/*
 * The start of a call that only reads master data (channel_availability(),
 * channel_position(), channel_sources()): the invalidations other
 * transactions committed are taken in, as a writing call takes them.
 */
void
ie_read_call_start(void)
{
	AcceptInvalidationMessages();
}

static void
ie_catalog_relcache_callback(Datum arg, Oid relid)
{
	/*
	 * The master data, and the channel and kit entries kept with it, follow
	 * their own tables only: an invalidation of the log or the stock table,
	 * which every VACUUM and ANALYZE of them sends, leaves them alone (it
	 * used to drop them all, and a backend then looked every sku up again).
	 */
	if (relid == InvalidOid || relid == cat.item_rel || relid == cat.location_rel ||
		relid == cat.channel_rel || relid == cat.channel_location_rel ||
		relid == cat.kit_component_rel || relid == cat.channel_item_rel ||
		relid == cat.intercompany_rel)
		master_cache_reset();
	/*
	 * The OIDs: any of these relations may have been dropped and created
	 * again; and the attribute numbers of their columns, which an ALTER TABLE
	 * may have moved. Zeroed, they are looked up again at their next use
	 * (IE_ATTNUM), and a load in progress starts over (ie_catalog).
	 */
	if (relid == InvalidOid || relid == cat.location_rel || catalog_table_of(relid) >= 0)
	{
		cat_valid = false;
		cat_invalidations++;
		memset(ie_attnums, 0, sizeof(ie_attnums));
	}
}

static void
master_cache_ensure(void)
{
	HASHCTL		ctl;

	if (master_cache != NULL)
		return;
	if (master_cxt == NULL)
		master_cxt = AllocSetContextCreate(CacheMemoryContext, "inventory_events master data",
										   ALLOCSET_SMALL_SIZES);
	ctl.keysize = sizeof(uint64);
	ctl.entrysize = sizeof(MasterEntry);
	ctl.hcxt = master_cxt;
	master_cache = hash_create("inventory_events master data", 1024, &ctl,
							   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
}

static MasterEntry *
master_cache_find(char kind, const text *name, uint64 *key, bool *hit)
{
	MasterEntry *e;
	Size		len = VARSIZE_ANY_EXHDR(name);

	*key = hash_bytes_extended((const unsigned char *) VARDATA_ANY(name), len, (uint64) kind);
	*hit = false;
	master_cache_ensure();
	e = hash_search(master_cache, key, HASH_FIND, NULL);
	if (e && strlen(e->name) == len && memcmp(e->name, VARDATA_ANY(name), len) == 0)
		*hit = true;
	return e;
}

/*
 * Stores an entry. Looks the cache up again: opening a relation to search it
 * may have processed an invalidation that dropped the cache.
 */
static MasterEntry *
master_cache_store(char kind, const text *name)
{
	uint64		key;
	bool		hit;
	MasterEntry *e;

	(void) master_cache_find(kind, name, &key, &hit);
	e = hash_search(master_cache, &key, HASH_ENTER, NULL);

	e->name = MemoryContextStrdup(master_cxt, text_to_cstring(name));
	e->base_uom = NULL;
	e->lot_controlled = false;
	e->payload = NULL;
	return e;
}

/*
 * Master data is read for the cache in one MVCC snapshot of the latest
 * committed state (and this transaction's earlier commands), and what was
 * read is cached only if no invalidation dropped the cache since that
 * snapshot was taken. A transaction sends its invalidations after it became
 * visible, so a change whose invalidation was taken in before the snapshot
 * is in it; one taken in during the read (opening a relation takes them in)
 * may not be, and the read is then used for the call at hand but not kept.
 * Before, items were read in the statement's snapshot, which under
 * REPEATABLE READ is the transaction's: a change committed after it began
 * reset the cache, and the next lookup filled it with the item as it was,
 * for this backend's later transactions too (master_data_cache.spec: a
 * lot-controlled item's receipts accepted without a lot). And channels were
 * read with SnapshotSelf, tuple by tuple: a row replaced (not HOT) while it
 * was read could be seen in both versions or in neither.
 */
void
ie_master_read_begin(IeMasterRead *r)
{
	r->resets = master_cache_resets;
	r->snapshot = RegisterSnapshot(GetLatestSnapshot());
}

/* Ends a read begun above; true if what it read may be cached. */
bool
ie_master_read_end(IeMasterRead *r)
{
	UnregisterSnapshot(r->snapshot);
	r->snapshot = InvalidSnapshot;
	return r->resets == master_cache_resets;
}

/*
 * The cache for other subsystems: ie_cache_get returns what ie_cache_put
 * stored under (kind, name), or NULL. The payload is allocated by the caller
 * in ie_cache_context() just before ie_cache_put, with no catalog access in
 * between (which could drop the cache). Callers copy what they get before
 * they next take a lock or open a relation.
 */
void *
ie_cache_get(char kind, const text *name)
{
	uint64		key;
	bool		hit;
	MasterEntry *e = master_cache_find(kind, name, &key, &hit);

	return hit ? e->payload : NULL;
}

MemoryContext
ie_cache_context(void)
{
	master_cache_ensure();
	return master_cxt;
}

void
ie_cache_put(char kind, const text *name, void *payload)
{
	master_cache_store(kind, name)->payload = payload;
}

/*
 * Looks a row up by key (equality on the leading columns of indexid) under
 * snapshot; false when absent. The values of the columns attnums are copied
 * into out, in the caller's memory context, and their nulls into nulls (if
 * given; a null is (Datum) 0 in out).
 */
bool
ie_lookup_row_as(Oid relid, Oid indexid, Snapshot snapshot, int nkeys, const Datum *keys,
				 const RegProcedure *procs, int natts, const int *attnums, Datum *out, bool *nulls)
{
	Relation	rel = table_open(relid, AccessShareLock);
	Relation	idx = index_open(indexid, AccessShareLock);
	TupleTableSlot *slot = table_slot_create(rel, NULL);
	bool		found;

	found = ie_index_lookup(rel, idx, snapshot, nkeys, keys, procs, slot);
	if (found)
	{
		slot_getallattrs(slot);
		for (int i = 0; i < natts; i++)
		{
			Form_pg_attribute att = TupleDescAttr(slot->tts_tupleDescriptor, attnums[i] - 1);
			bool		isnull = slot->tts_isnull[attnums[i] - 1];

			out[i] = isnull ? (Datum) 0 :
				datumCopy(slot->tts_values[attnums[i] - 1], att->attbyval, att->attlen);
			if (nulls)
				nulls[i] = isnull;
		}
	}
	ExecDropSingleTupleTableSlot(slot);
	/*
	 * The locks are kept to the end of the transaction, as the executor keeps a
	 * query's: the next lookup of the relation in the transaction (a reservation
	 * reads stock, items and channels several times) finds them held instead of
	 * taking them again, and the transaction's end releases them all at once.
	 * The readers of the append and reservation paths do the same.
	 */
	index_close(idx, NoLock);
	table_close(rel, NoLock);
	return found;
}

/* The same under the active snapshot. */
bool
ie_lookup_row(Oid relid, Oid indexid, int nkeys, const Datum *keys,
			  const RegProcedure *procs, int natts, const int *attnums, Datum *out)
{
	return ie_lookup_row_as(relid, indexid, GetActiveSnapshot(), nkeys, keys, procs, natts, attnums, out, NULL);
}

/*
 * What an insert-side foreign key check does, for the rows our C code
 * inserts without one (a new stock row, a reservation): finds the referenced
 * row as last committed and locks it FOR KEY SHARE until the transaction
 * ends, so that a concurrent DELETE (or key UPDATE) of that master data waits
 * for us, and then fails on our committed row instead of leaving it orphaned.
 * Waits for a deleter in progress; false when the row is gone or its key was
 * changed meanwhile.
 */
bool
ie_lock_referenced_row(Oid relid, Oid indexid, int nkeys, const Datum *keys,
					   const RegProcedure *procs)
{
	Relation	rel = table_open(relid, RowShareLock);
	Relation	idx = index_open(indexid, AccessShareLock);
	TupleTableSlot *slot = table_slot_create(rel, NULL);
	Snapshot	snapshot = RegisterSnapshot(GetLatestSnapshot());
	bool		found;

	found = ie_index_lookup(rel, idx, snapshot, nkeys, keys, procs, slot);
	if (found)
	{
		TM_FailureData tmfd;
		TM_Result	result;

		result = table_tuple_lock(rel, &slot->tts_tid, snapshot, slot, GetCurrentCommandId(false),
								  LockTupleKeyShare, LockWaitBlock,
								  TUPLE_LOCK_FLAG_FIND_LAST_VERSION, &tmfd);
		/* Modified by this transaction (as ExecLockRows has it): not ours to keep. */
		found = (result == TM_Ok);

		/*
		 * Followed to a newer version of the row, committed meanwhile: it is
		 * still the row we reference only if its key did not change (an
		 * UPDATE of the key is, for the reference, a DELETE).
		 */
		if (found && tmfd.traversed)
		{
			slot_getallattrs(slot);
			for (int i = 0; i < nkeys && found; i++)
			{
				AttrNumber	att = idx->rd_index->indkey.values[i];

				found = !slot->tts_isnull[att - 1] &&
					DatumGetBool(OidFunctionCall2Coll(procs[i], idx->rd_indcollation[i],
													  slot->tts_values[att - 1], keys[i]));
			}
		}
	}
	UnregisterSnapshot(snapshot);
	ExecDropSingleTupleTableSlot(slot);
	/* Locks kept to the end of the transaction (see ie_lookup_row_as). */
	index_close(idx, NoLock);
	table_close(rel, NoLock);	/* RowShareLock to the end, like SELECT FOR KEY SHARE */
	return found;
}

/*
 * Does the item exist? Its base unit (a copy in the caller's memory context:
 * the cache may be dropped at any lock acquisition) and lot control when it
 * does.
 */
bool
ie_master_item(text *sku, text **base_uom, bool *lot_controlled, bool *serialized)
{
	const IeCatalog *c = ie_catalog();
	const int	atts[3] = {Anum_ie_item_base_uom, Anum_ie_item_lot_controlled, Anum_ie_item_serialized};
	uint64		key;
	bool		hit;
	MasterEntry *e = master_cache_find('i', sku, &key, &hit);
	Datum		keys[1] = {PointerGetDatum(sku)};
	Datum		values[3];
	/* serialized: from 0.3.0 on */
	int			natts = Anum_ie_item_serialized != InvalidAttrNumber ? 3 : 2;
	IeMasterRead r;
	bool		found;
	bool		cacheable;
	bool		is_serialized;

	if (hit)
	{
		*base_uom = (text *) palloc(VARSIZE_ANY(e->base_uom));
		memcpy(*base_uom, e->base_uom, VARSIZE_ANY(e->base_uom));
		*lot_controlled = e->lot_controlled;
		if (serialized)
			*serialized = e->serialized;
		return true;
	}
	ie_master_read_begin(&r);
	found = ie_lookup_row_as(c->item_rel, c->item_pkey, r.snapshot, 1, keys, ie_text_keys, natts, atts,
							 values, NULL);
	cacheable = ie_master_read_end(&r);
	if (!found)
		return false;
	*base_uom = DatumGetTextPP(values[0]);
	*lot_controlled = DatumGetBool(values[1]);
	is_serialized = natts == 3 && DatumGetBool(values[2]);
	if (serialized)
		*serialized = is_serialized;
	if (cacheable)
	{
		e = master_cache_store('i', sku);
		e->base_uom = (text *) MemoryContextAlloc(master_cxt, VARSIZE_ANY(*base_uom));
		memcpy(e->base_uom, *base_uom, VARSIZE_ANY(*base_uom));
		e->lot_controlled = *lot_controlled;
		e->serialized = is_serialized;
	}
	return true;
}

/* Runs a kept statement (preparing it on first use); returns SPI_processed. */
uint64
ie_spi_run(IeSpiPlan *def, Datum *values, const char *nulls, int expected)
{
	return ie_spi_run_snapshot(def, values, nulls, InvalidSnapshot, expected);
}

/*
 * The same with a snapshot of the caller's (InvalidSnapshot: SPI's, the
 * transaction snapshot under REPEATABLE READ).
 */
uint64
ie_spi_run_snapshot(IeSpiPlan *def, Datum *values, const char *nulls, Snapshot snapshot,
					int expected)
{
	int			rc;

	if (def->plan == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare(def->sql, def->nargs, def->types);

		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed for \"%s\": %s", def->sql,
				 SPI_result_code_string(SPI_result));
		if (SPI_keepplan(plan) != 0)
			elog(ERROR, "SPI_keepplan failed");
		def->plan = plan;
	}
	if (snapshot == InvalidSnapshot)
		rc = SPI_execute_plan(def->plan, values, nulls, false, 0);
	else
		rc = SPI_execute_snapshot(def->plan, values, nulls, snapshot, InvalidSnapshot, false, true, 0);
	if (rc != expected)
		elog(ERROR, "SPI_execute_plan returned %s for \"%s\"", SPI_result_code_string(rc), def->sql);
	return SPI_processed;
}

/*
 * The equality procedures of index keys, for ie_index_scan_begin and
 * friends: the first n of ie_text_keys for n text columns; a stream key and
 * a version; a bigint.
 */
const RegProcedure ie_text_keys[3] = {F_TEXTEQ, F_TEXTEQ, F_TEXTEQ};
const RegProcedure ie_text_keys4[4] = {F_TEXTEQ, F_TEXTEQ, F_TEXTEQ, F_TEXTEQ};
const RegProcedure ie_stream_version_keys[4] = {F_TEXTEQ, F_TEXTEQ, F_TEXTEQ, F_INT8EQ};
const RegProcedure ie_int8_key[1] = {F_INT8EQ};

/* Does a row with this code exist (a location, a channel)? Cached per kind. */
static bool
master_exists(char kind, Oid relid, Oid pkey, text *code)
{
	uint64		key;
	bool		hit;
	Datum		keys[1] = {PointerGetDatum(code)};
	IeMasterRead r;
	bool		found;

	(void) master_cache_find(kind, code, &key, &hit);
	if (hit)
		return true;
	ie_master_read_begin(&r);
	found = ie_lookup_row_as(relid, pkey, r.snapshot, 1, keys, ie_text_keys, 0, NULL, NULL, NULL);
	if (ie_master_read_end(&r) && found)
		(void) master_cache_store(kind, code);
	return found;
}

bool
ie_master_location(text *code)
{
	const IeCatalog *c = ie_catalog();

	return master_exists('l', c->location_rel, c->location_pkey, code);
}

bool
ie_master_channel(text *code)
{
	const IeCatalog *c = ie_catalog();

	return master_exists('C', c->channel_rel, c->channel_pkey, code);
}

/*
 * AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE FOR EACH STATEMENT on item,
 * location, channel (and the other master data): tells every backend to drop its master data cache.
 */
PG_FUNCTION_INFO_V1(ie_master_data_changed);
Datum
ie_master_data_changed(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		elog(ERROR, "ie_master_data_changed must be called as a trigger");
	CacheInvalidateRelcache(trigdata->tg_relation);
	return PointerGetDatum(NULL);
}

void
ie_catalog_init(void)
{
	CacheRegisterRelcacheCallback(ie_catalog_relcache_callback, (Datum) 0);
}

static Oid
lookup_rel(const char *name)
{
	Oid			relid = get_relname_relid(name, cat.namespace);

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("relation \"inventory_events.%s\" does not exist", name),
				 errhint("The extension's objects are damaged; reinstall with DROP EXTENSION and CREATE EXTENSION inventory_events.")));
	return relid;
}

static Oid
lookup_type(const char *name)
{
	Oid			typid = GetSysCacheOid2(TYPENAMENSP, Anum_pg_type_oid,
										CStringGetDatum(name), ObjectIdGetDatum(cat.namespace));

	if (!OidIsValid(typid))
		elog(ERROR, "type inventory_events.%s does not exist", name);
	return typid;
}

static Oid
lookup_label(Oid typid, const char *label)
{
	Oid			oid = GetSysCacheOid2(ENUMTYPOIDNAME, Anum_pg_enum_oid,
									  ObjectIdGetDatum(typid), CStringGetDatum(label));

	if (!OidIsValid(oid))
		elog(ERROR, "enum label \"%s\" missing from type %u", label,
			 typid);
	return oid;
}

/* The column names and tables of IeColumn, in its order. */
#define IE_COLUMN_NAME(table, column) #column,
static const char *const column_names[IE_NUM_COLUMNS] = {IE_ALL_COLUMNS(IE_COLUMN_NAME)};
#undef IE_COLUMN_NAME
#define IE_COLUMN_TABLE(table, column) IE_TABLE_##table,
static const IeTable column_tables[IE_NUM_COLUMNS] = {IE_ALL_COLUMNS(IE_COLUMN_TABLE)};
#undef IE_COLUMN_TABLE
#define IE_COLUMN_LATE(table, column) [IE_COL_##table##_##column] = true,
static const bool column_from_0_3_0[IE_NUM_COLUMNS] = {IE_COLUMNS_FROM_0_3_0(IE_COLUMN_LATE)};
#undef IE_COLUMN_LATE

StaticAssertDecl(IE_COL_stock_inbound - IE_COL_stock_available == IE_BUCKET_INBOUND,
				 "the stock table's bucket columns follow IeBucket");

AttrNumber	ie_attnums[IE_NUM_COLUMNS];

/*
 * Per table: its number of attributes (dropped ones included) and the nulls
 * of a new row, true wherever C writes nothing (dropped columns, and columns
 * a DBA added, whose defaults the writer applies). In TopMemoryContext,
 * rebuilt with the cache.
 */
static Oid	table_relids[IE_NUM_TABLES];
static int	table_natts[IE_NUM_TABLES];
static bool *table_new_nulls[IE_NUM_TABLES];

/* The IeTable of a relation, or -1. */
static int
catalog_table_of(Oid relid)
{
	if (!OidIsValid(relid))
		return -1;
	for (int t = 0; t < IE_NUM_TABLES; t++)
		if (table_relids[t] == relid)
			return t;
	return -1;
}

/*
 * Looks up the attribute number of every column C uses, by name, in the
 * installed tables (relids: per IeTable; InvalidOid for a table that this
 * version of the SQL objects does not have).
 */
static void
resolve_columns(const Oid *relids, IeSqlVersion version)
{
	for (int t = 0; t < IE_NUM_TABLES; t++)
	{
		table_relids[t] = relids[t];
		table_natts[t] = 0;
		if (OidIsValid(relids[t]))
		{
			HeapTuple	tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(relids[t]));

			if (!HeapTupleIsValid(tuple))
				elog(ERROR, "cache lookup failed for relation %u", relids[t]);
			table_natts[t] = ((Form_pg_class) GETSTRUCT(tuple))->relnatts;
			ReleaseSysCache(tuple);
		}
		if (table_new_nulls[t] != NULL)
			pfree(table_new_nulls[t]);
		table_new_nulls[t] = NULL;
		if (table_natts[t] > 0)
		{
			table_new_nulls[t] = MemoryContextAlloc(TopMemoryContext, sizeof(bool) * table_natts[t]);
			memset(table_new_nulls[t], true, sizeof(bool) * table_natts[t]);
		}
	}
	for (int i = 0; i < IE_NUM_COLUMNS; i++)
	{
		Oid			relid = relids[column_tables[i]];
		AttrNumber	attnum;

		ie_attnums[i] = InvalidAttrNumber;
		if (!OidIsValid(relid) || (column_from_0_3_0[i] && version < IE_SQL_0_3_0))
			continue;
		attnum = get_attnum(relid, column_names[i]);
		if (attnum <= 0)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("column \"%s\" of relation \"inventory_events.%s\" does not exist",
							column_names[i], get_rel_name(relid)),
					 errdetail("The inventory_events library reads and writes this column."),
					 errhint("Restore the column, or reinstall the extension's SQL objects.")));
		ie_attnums[i] = attnum;
		table_new_nulls[column_tables[i]][attnum - 1] = false;
	}
}

const char *
ie_column_name(IeColumn column)
{
	return column_names[column];
}

IeTable
ie_column_table(IeColumn column)
{
	return column_tables[column];
}

/* Is this a column that tables made before 0.3.0 do not have? */
bool
ie_column_from_0_3_0(IeColumn column)
{
	return column_from_0_3_0[column];
}

/*
 * Does C write this attribute of relid? False for a dropped column and one a
 * DBA added to one of the tables above (whose default the writer applies);
 * true for every attribute of any other relation.
 */
bool
ie_attribute_written(Oid relid, AttrNumber attnum)
{
	(void) ie_catalog();
	for (int t = 0; t < IE_NUM_TABLES; t++)
		if (table_relids[t] == relid && OidIsValid(relid))
			return attnum <= table_natts[t] && !table_new_nulls[t][attnum - 1];
	return true;
}

/* IE_ATTNUM before the cache was loaded in this backend. */
AttrNumber
ie_attnum_load(IeColumn column)
{
	(void) ie_catalog();
	return ie_attnums[column];
}

int
ie_table_natts(IeTable table)
{
	(void) ie_catalog();
	return table_natts[table];
}

/*
 * The arrays of a new row of table (palloc'd in the current memory context):
 * values zeroed, nulls false for every column C writes and true for the
 * others; the caller sets the values and the nulls of its nullable columns.
 */
void
ie_row_alloc(IeTable table, Datum **values, bool **nulls)
{
	int			natts;

	/*
	 * The lock the row's writer takes, taken now: an ALTER TABLE that
	 * committed meanwhile is seen (its invalidation processed, the cache
	 * loaded again below), and none can commit until the transaction ends,
	 * so the arrays and attribute numbers stay those of the table written.
	 */
	LockRelationOid(ie_catalog_table_relid(table), RowExclusiveLock);
	natts = ie_table_natts(table);
	*values = palloc0(sizeof(Datum) * natts);
	*nulls = palloc(sizeof(bool) * natts);
	ie_row_new_nulls(table, *nulls);
}

/*
 * The same nulls, into an array of ie_table_natts(table) elements: for a
 * writer's slot, once the writer (so the table's lock) is held.
 */
void
ie_row_new_nulls(IeTable table, bool *nulls)
{
	int			natts = ie_table_natts(table);	/* may load the cache */

	memcpy(nulls, table_new_nulls[table], sizeof(bool) * natts);
}

/* The relation of an IeTable (InvalidOid when this version has none). */
Oid
ie_catalog_table_relid(IeTable table)
{
	(void) ie_catalog();
	return table_relids[table];
}

/* The installed version of the extension (palloc'd), or NULL when it is not installed. */
static char *
installed_version(void)
{
	Relation	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tuple;
	char	   *version = NULL;

	ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber, F_NAMEEQ,
				CStringGetDatum("inventory_events"));
	scan = systable_beginscan(rel, ExtensionNameIndexId, true, NULL, 1, &key);
	tuple = systable_getnext(scan);
	if (HeapTupleIsValid(tuple))
	{
		bool		isnull;
		Datum		d = heap_getattr(tuple, Anum_pg_extension_extversion, RelationGetDescr(rel), &isnull);

		if (!isnull)
			version = TextDatumGetCString(d);
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return version;
}

static bool
sql_version_of(const char *version, IeSqlVersion *out)
{
	if (strcmp(version, "0.1.0") == 0)
		*out = IE_SQL_0_1_0;
	else if (strcmp(version, "0.2.0") == 0)
		*out = IE_SQL_0_2_0;
	else if (strcmp(version, "0.3.0") == 0)
		*out = IE_SQL_0_3_0;
	else
		return false;
	return true;
}

/*
 * Can this library serve the installed SQL objects? False, with the installed
 * version in *installed, when they are newer than the library (or missing:
 * *installed is then NULL). The publisher asks before every step.
 */
bool
ie_sql_version_served(char **installed)
{
	IeSqlVersion v;

	*installed = installed_version();
	return *installed != NULL && sql_version_of(*installed, &v);
}

/* Does the relation hold a row visible to snapshot? */
bool
ie_relation_has_rows(Oid relid, Snapshot snapshot)
{
	Relation	rel = table_open(relid, AccessShareLock);
	TupleTableSlot *slot = table_slot_create(rel, NULL);
	TableScanDesc scan = table_beginscan(rel, snapshot, 0, NULL);
	bool		found = table_scan_getnextslot(scan, ForwardScanDirection, slot);

	table_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	table_close(rel, AccessShareLock);
	return found;
}

/* Counts the loads of the cache: whatever is derived from it is stale when this changed. */
uint64
ie_catalog_generation(void)
{
	return cat_generation;
}

const IeCatalog *
ie_catalog(void)
{
	IeCatalog	c;
	char	   *version;
	uint64		invalidations;

	if (cat_valid)
		return &cat;

reload:
	invalidations = cat_invalidations;
	memset(&c, 0, sizeof(c));
	c.namespace = get_namespace_oid("inventory_events", true);
	version = installed_version();
	if (!OidIsValid(c.namespace) || version == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension \"inventory_events\" is not installed in this database")));
	if (!sql_version_of(version, &c.sql_version))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the inventory_events library %s cannot serve version %s of the extension's SQL objects",
						IE_VERSION_STR, version),
				 errdetail("The SQL objects are newer than the shared library: they were installed or updated with a later release."),
				 errhint("Install the shared library of inventory_events %s or later, then restart the server.",
						 version)));
	cat = c;
	cat.event_rel = lookup_rel("event");
	if (c.sql_version >= IE_SQL_0_3_0)
	{
		/*
		 * Partitioned: the indexes are each partition's (src/logpart.c), the
		 * keys live in a table of their own.
		 */
		cat.event_key_rel = lookup_rel("event_key");
		cat.event_key_pkey = lookup_rel("event_key_pkey");
		cat.event_archive_rel = lookup_rel("event_archive");
		cat.event_archive_ref_rel = lookup_rel("event_archive_ref");
		cat.event_archive_ref_pkey = lookup_rel("event_archive_ref_pkey");
	}
	else
	{
		cat.event_pkey = lookup_rel("event_pkey");
		cat.event_stream_idx = lookup_rel("event_stream_version_key");
		cat.event_idempotency_idx = lookup_rel("event_idempotency_key");
		cat.event_xid_idx = lookup_rel("event_xid_id_idx");
	}
	cat.event_id_seq = lookup_rel("event_id_seq");
	if (cat.sql_version >= IE_SQL_0_2_0)
	{
		cat.log_home_rel = lookup_rel("log_home");
		cat.log_home_written_rel = lookup_rel("log_home_written");
	}
	cat.stock_rel = lookup_rel("stock");
	cat.stock_pkey = lookup_rel("stock_pkey");
	cat.item_rel = lookup_rel("item");
	cat.item_pkey = lookup_rel("item_pkey");
	cat.item_uom_rel = lookup_rel("item_uom");
	cat.item_uom_pkey = lookup_rel("item_uom_pkey");
	cat.location_rel = lookup_rel("location");
	cat.location_pkey = lookup_rel("location_pkey");
	cat.lot_rel = lookup_rel("lot");
	cat.lot_pkey = lookup_rel("lot_pkey");
	cat.channel_rel = lookup_rel("channel");
	cat.channel_pkey = lookup_rel("channel_pkey");
	cat.dead_letter_rel = lookup_rel("dead_letter");
	cat.publication_rel = lookup_rel("publication");
	cat.channel_shown_rel = lookup_rel("channel_shown");
	cat.channel_shown_pkey = lookup_rel("channel_shown_pkey");
	if (cat.sql_version >= IE_SQL_0_3_0)
	{
		cat.operation_key_rel = lookup_rel("operation_key");
		cat.operation_key_pkey = lookup_rel("operation_key_pkey");
		cat.channel_item_rel = lookup_rel("channel_item");
		cat.channel_item_pkey = lookup_rel("channel_item_pkey");
		cat.channel_item_channel_sku_idx = lookup_rel("channel_item_channel_sku_key");
		cat.intercompany_rel = lookup_rel("intercompany");
		cat.intercompany_pkey = lookup_rel("intercompany_pkey");
		cat.serial_event_rel = lookup_rel("serial_event");
		cat.stream_snapshot_rel = lookup_rel("stream_snapshot");
		cat.stream_snapshot_pkey = lookup_rel("stream_snapshot_pkey");
	}
	cat.channel_location_rel = lookup_rel("channel_location");
	cat.channel_location_pkey = lookup_rel("channel_location_pkey");
	cat.kit_component_rel = lookup_rel("kit_component");
	cat.kit_component_pkey = lookup_rel("kit_component_pkey");
	cat.reservation_rel = lookup_rel("reservation");
	cat.reservation_pkey = lookup_rel("reservation_pkey");
	cat.reservation_channel_ref_idx = lookup_rel("reservation_channel_ref_key");
	cat.reservation_idempotency_idx = lookup_rel("reservation_idempotency_key");
	cat.reservation_backorder_idx = lookup_rel("reservation_backorder_idx");
	cat.reservation_recent_idx = lookup_rel("reservation_recent_idx");
	cat.allocation_rel = lookup_rel("allocation");
	cat.allocation_reservation_idx = lookup_rel("allocation_reservation_idx");
	cat.exception_rel = lookup_rel("exception");
	{
		Oid			rels[4] = {cat.reservation_rel, cat.allocation_rel, cat.exception_rel, cat.dead_letter_rel};

		for (int i = 0; i < 4; i++)
		{
			cat.identity_rel[i] = rels[i];
			cat.identity_seq[i] = getIdentitySequence(rels[i], 1, false);
		}
		cat.nidentities = 4;
	}
	cat.event_type_typid = lookup_type("event_type");
	cat.bucket_typid = lookup_type("bucket");
	for (int i = 0; i < IE_NUM_EVENT_TYPES; i++)
		cat.event_type_label[i] = lookup_label(cat.event_type_typid, ie_event_type_names[i]);
	for (int i = 0; i < IE_NUM_BUCKETS; i++)
		cat.bucket_label[i] = lookup_label(cat.bucket_typid, ie_bucket_names[i]);
	{
		Oid			relids[IE_NUM_TABLES];

		relids[IE_TABLE_event] = cat.event_rel;
		relids[IE_TABLE_log_home] = cat.log_home_rel;
		relids[IE_TABLE_stock] = cat.stock_rel;
		relids[IE_TABLE_channel] = cat.channel_rel;
		relids[IE_TABLE_reservation] = cat.reservation_rel;
		relids[IE_TABLE_allocation] = cat.allocation_rel;
		relids[IE_TABLE_exception] = cat.exception_rel;
		relids[IE_TABLE_dead_letter] = cat.dead_letter_rel;
		relids[IE_TABLE_publication] = cat.publication_rel;
		relids[IE_TABLE_channel_shown] = cat.channel_shown_rel;
		relids[IE_TABLE_operation_key] = cat.operation_key_rel;
		relids[IE_TABLE_channel_item] = cat.channel_item_rel;
		relids[IE_TABLE_location] = cat.location_rel;
		relids[IE_TABLE_intercompany] = cat.intercompany_rel;
		relids[IE_TABLE_log_home_written] = cat.log_home_written_rel;
		relids[IE_TABLE_channel_location] = cat.channel_location_rel;
		relids[IE_TABLE_kit_component] = cat.kit_component_rel;
		relids[IE_TABLE_lot] = cat.lot_rel;
		relids[IE_TABLE_item] = cat.item_rel;
		relids[IE_TABLE_item_uom] = cat.item_uom_rel;
		relids[IE_TABLE_serial_event] = cat.serial_event_rel;
		relids[IE_TABLE_stream_snapshot] = cat.stream_snapshot_rel;
		relids[IE_TABLE_event_key] = cat.event_key_rel;
		relids[IE_TABLE_event_archive] = cat.event_archive_rel;
		relids[IE_TABLE_event_archive_ref] = cat.event_archive_ref_rel;
		resolve_columns(relids, cat.sql_version);
	}
	/* Invalidated while loading (a lock taken above processes them): again. */
	if (invalidations != cat_invalidations)
		goto reload;
	cat_valid = true;
	cat_generation++;
	return &cat;
}

IeEventType
ie_event_type_from_oid(Oid label)
{
	const IeCatalog *c = ie_catalog();

	for (int i = 0; i < IE_NUM_EVENT_TYPES; i++)
		if (c->event_type_label[i] == label)
			return (IeEventType) i;
	elog(ERROR, "unknown event_type label %u", label);
	pg_unreachable();
}

IeBucket
ie_bucket_from_oid(Oid label)
{
	const IeCatalog *c = ie_catalog();

	for (int i = 0; i < IE_NUM_BUCKETS; i++)
		if (c->bucket_label[i] == label)
			return (IeBucket) i;
	elog(ERROR, "unknown bucket label %u", label);
	pg_unreachable();
}

IndexScanDesc
ie_index_scan_begin(Relation heap, Relation index, Snapshot snapshot,
					int nkeys, const Datum *keys, const RegProcedure *keyprocs)
{
	ScanKeyData skey[INDEX_MAX_KEYS];
	IndexScanDesc scan;

	Assert(nkeys <= IndexRelationGetNumberOfKeyAttributes(index));
	/* Compare under the index's own collation, so text keys match its order. */
	for (int i = 0; i < nkeys; i++)
		ScanKeyEntryInitialize(&skey[i], 0, i + 1, BTEqualStrategyNumber, InvalidOid,
							   index->rd_indcollation[i], keyprocs[i], keys[i]);

	scan = index_beginscan(heap, index, snapshot, nkeys, 0);
	index_rescan(scan, skey, nkeys, NULL, 0);
	return scan;
}

bool
ie_index_lookup(Relation heap, Relation index, Snapshot snapshot,
				int nkeys, const Datum *keys, const RegProcedure *keyprocs,
				TupleTableSlot *slot)
{
	IndexScanDesc scan = ie_index_scan_begin(heap, index, snapshot, nkeys, keys, keyprocs);
	bool		found;

	found = index_getnext_slot(scan, ForwardScanDirection, slot);
	index_endscan(scan);
	return found;
}
