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
#include "catalog/namespace.h"
#include "catalog/pg_enum.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "catalog.h"

static IeCatalog cat;
static bool cat_valid = false;

static void
ie_catalog_relcache_callback(Datum arg, Oid relid)
{
	if (!cat_valid)
		return;
	if (relid == InvalidOid ||
		relid == cat.event_rel || relid == cat.stock_rel || relid == cat.item_rel ||
		relid == cat.item_uom_rel || relid == cat.location_rel || relid == cat.lot_rel ||
		relid == cat.channel_rel || relid == cat.dead_letter_rel)
		cat_valid = false;
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

/* The C code relies on the event and stock column order; make sure of it. */
static void
check_columns(Oid relid, int natts, const char *const *names)
{
	Relation	rel = table_open(relid, AccessShareLock);
	TupleDesc	desc = RelationGetDescr(rel);

	if (desc->natts != natts)
		elog(ERROR, "relation %s has %d columns, expected %d",
			 RelationGetRelationName(rel), desc->natts, natts);
	for (int i = 0; i < natts; i++)
		if (strcmp(NameStr(TupleDescAttr(desc, i)->attname), names[i]) != 0)
			elog(ERROR, "column %d of %s is \"%s\", expected \"%s\"", i + 1,
				 RelationGetRelationName(rel), NameStr(TupleDescAttr(desc, i)->attname), names[i]);
	table_close(rel, AccessShareLock);
}

static const char *const event_columns[Natts_ie_event] = {
	"id", "sku", "location", "lot", "version", "event_type", "from_bucket", "to_bucket",
	"qty", "uom", "uom_qty", "effect", "occurred_at", "recorded_at", "source", "source_seq",
	"idempotency_key", "correlation_id", "causation_id", "channel", "ref", "reason",
	"expected_date", "xid", "payload"
};

static const char *const stock_columns[Natts_ie_stock] = {
	"sku", "location", "lot", "available", "reserved", "picked", "damaged", "quarantine",
	"in_transit", "inbound", "on_hand", "safety_stock", "version", "last_event_id", "updated_at"
};

const IeCatalog *
ie_catalog(void)
{
	IeCatalog	c;

	if (cat_valid)
		return &cat;

	memset(&c, 0, sizeof(c));
	c.namespace = get_namespace_oid("inventory_events", true);
	if (!OidIsValid(c.namespace))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension \"inventory_events\" is not installed in this database")));
	cat = c;
	cat.event_rel = lookup_rel("event");
	cat.event_pkey = lookup_rel("event_pkey");
	cat.event_stream_idx = lookup_rel("event_stream_version_key");
	cat.event_idempotency_idx = lookup_rel("event_idempotency_key");
	cat.event_id_seq = lookup_rel("event_id_seq");
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
	cat.event_type_typid = lookup_type("event_type");
	cat.bucket_typid = lookup_type("bucket");
	for (int i = 0; i < IE_NUM_EVENT_TYPES; i++)
		cat.event_type_label[i] = lookup_label(cat.event_type_typid, ie_event_type_names[i]);
	for (int i = 0; i < IE_NUM_BUCKETS; i++)
		cat.bucket_label[i] = lookup_label(cat.bucket_typid, ie_bucket_names[i]);
	check_columns(cat.event_rel, Natts_ie_event, event_columns);
	check_columns(cat.stock_rel, Natts_ie_stock, stock_columns);

	cat_valid = true;
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

bool
ie_index_lookup(Relation heap, Relation index, Snapshot snapshot,
				int nkeys, const Datum *keys, const RegProcedure *keyprocs,
				TupleTableSlot *slot)
{
	ScanKeyData skey[INDEX_MAX_KEYS];
	IndexScanDesc scan;
	bool		found;

	Assert(nkeys <= IndexRelationGetNumberOfKeyAttributes(index));
	/* Compare under the index's own collation, so text keys match its order. */
	for (int i = 0; i < nkeys; i++)
		ScanKeyEntryInitialize(&skey[i], 0, i + 1, BTEqualStrategyNumber, InvalidOid,
							   index->rd_indcollation[i], keyprocs[i], keys[i]);

	scan = index_beginscan(heap, index, snapshot, nkeys, 0);
	index_rescan(scan, skey, nkeys, NULL, 0);
	found = index_getnext_slot(scan, ForwardScanDirection, slot);
	index_endscan(scan);
	return found;
}
