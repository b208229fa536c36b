/*
 * catalog.h
 *		Cached OIDs of the extension's objects, and index point lookups.
 */
#ifndef IE_CATALOG_H
#define IE_CATALOG_H

#include "access/genam.h"
#include "access/tupdesc.h"
#include "executor/tuptable.h"
#include "utils/rel.h"
#include "utils/snapshot.h"

#include "types.h"

/* The prefix of the logical decoding messages the extension writes and decodes. */
#define IE_MESSAGE_PREFIX "inventory_events"

/*
 * The versions of the extension's SQL objects this library serves. The library
 * keeps working with the objects of every earlier release, so that the SQL
 * objects may be updated (ALTER EXTENSION ... UPDATE) after the new library
 * is installed; objects newer than the library are refused.
 */
typedef enum IeSqlVersion
{
	IE_SQL_0_1_0 = 1,
	IE_SQL_0_2_0,
	IE_SQL_0_3_0
} IeSqlVersion;

typedef struct IeCatalog
{
	IeSqlVersion sql_version;	/* of the installed SQL objects */
	Oid			namespace;
	Oid			event_rel;
	Oid			event_pkey;
	Oid			event_stream_idx;	/* (sku, location, lot, version) */
	Oid			event_idempotency_idx;	/* (source, idempotency_key) */
	Oid			event_id_seq;
	Oid			event_xid_idx;	/* (xid, id) */
	Oid			log_home_rel;	/* from 0.2.0; InvalidOid before */
	Oid			log_home_written_rel;	/* from 0.2.0 */
	Oid			stock_rel;
	Oid			stock_pkey;		/* (sku, location, lot) */
	Oid			item_rel;
	Oid			item_pkey;
	Oid			item_uom_rel;
	Oid			item_uom_pkey;
	Oid			location_rel;
	Oid			location_pkey;
	Oid			lot_rel;
	Oid			lot_pkey;
	Oid			channel_rel;
	Oid			channel_pkey;
	Oid			channel_location_rel;
	Oid			channel_location_pkey;	/* (channel, location) */
	Oid			kit_component_rel;
	Oid			kit_component_pkey; /* (kit, component) */
	Oid			reservation_rel;
	Oid			reservation_pkey;
	Oid			reservation_channel_ref_idx;	/* (channel, ref) */
	Oid			reservation_idempotency_idx;	/* (source, idempotency_key) */
	Oid			reservation_backorder_idx;	/* (sku, id) where backordered > 0 */
	Oid			reservation_recent_idx; /* (sku, created_at) */
	Oid			allocation_rel;
	Oid			allocation_reservation_idx; /* (reservation_id, id) */
	Oid			exception_rel;
	int			nidentities;	/* identity sequences of the tables we insert into */
	Oid			identity_rel[4];
	Oid			identity_seq[4];
	Oid			dead_letter_rel;
	Oid			event_type_typid;
	Oid			bucket_typid;
	Oid			event_type_label[IE_NUM_EVENT_TYPES];	/* pg_enum OIDs */
	Oid			bucket_label[IE_NUM_BUCKETS];
} IeCatalog;

/* Attribute numbers of inventory_events.event (checked when the cache loads). */
enum
{
	Anum_ie_event_id = 1,
	Anum_ie_event_sku,
	Anum_ie_event_location,
	Anum_ie_event_lot,
	Anum_ie_event_version,
	Anum_ie_event_event_type,
	Anum_ie_event_from_bucket,
	Anum_ie_event_to_bucket,
	Anum_ie_event_qty,
	Anum_ie_event_uom,
	Anum_ie_event_uom_qty,
	Anum_ie_event_effect,
	Anum_ie_event_occurred_at,
	Anum_ie_event_recorded_at,
	Anum_ie_event_source,
	Anum_ie_event_source_seq,
	Anum_ie_event_idempotency_key,
	Anum_ie_event_correlation_id,
	Anum_ie_event_causation_id,
	Anum_ie_event_channel,
	Anum_ie_event_ref,
	Anum_ie_event_reason,
	Anum_ie_event_expected_date,
	Anum_ie_event_xid,
	Anum_ie_event_payload,
	Natts_ie_event = Anum_ie_event_payload
};

/* ... of inventory_events.log_home */
enum
{
	Anum_ie_log_home_home = 1,
	Anum_ie_log_home_system_identifier,
	Anum_ie_log_home_database_oid,
	Anum_ie_log_home_xid_offset,
	Anum_ie_log_home_first_xid,
	Anum_ie_log_home_adopted_at,
	Natts_ie_log_home = Anum_ie_log_home_adopted_at
};

/* Attribute numbers of inventory_events.stock. */
enum
{
	Anum_ie_stock_sku = 1,
	Anum_ie_stock_location,
	Anum_ie_stock_lot,
	Anum_ie_stock_available,	/* then one column per bucket, in bucket order */
	Anum_ie_stock_on_hand = Anum_ie_stock_available + IE_NUM_BUCKETS,
	Anum_ie_stock_safety_stock,
	Anum_ie_stock_version,
	Anum_ie_stock_last_event_id,
	Anum_ie_stock_updated_at,
	Natts_ie_stock = Anum_ie_stock_updated_at
};

/* Attribute numbers of inventory_events.channel (checked when the cache loads). */
enum
{
	Anum_ie_channel_code = 1,
	Anum_ie_channel_kind,
	Anum_ie_channel_description,
	Anum_ie_channel_buffer_fixed,
	Anum_ie_channel_buffer_pct,
	Anum_ie_channel_allocation_pct,
	Anum_ie_channel_cap,
	Anum_ie_channel_publish_interval,
	Anum_ie_channel_allow_backorders,
	Anum_ie_channel_allow_split,
	Anum_ie_channel_future_view,
	Anum_ie_channel_horizon,
	Anum_ie_channel_velocity_buffer,
	Anum_ie_channel_velocity_window,
	Natts_ie_channel = Anum_ie_channel_velocity_window
};

/* ... of inventory_events.reservation */
enum
{
	Anum_ie_reservation_id = 1,
	Anum_ie_reservation_channel,
	Anum_ie_reservation_ref,
	Anum_ie_reservation_sku,
	Anum_ie_reservation_qty,
	Anum_ie_reservation_backordered,
	Anum_ie_reservation_cancelled,
	Anum_ie_reservation_location,
	Anum_ie_reservation_expires_at,
	Anum_ie_reservation_source,
	Anum_ie_reservation_idempotency_key,
	Anum_ie_reservation_created_at,
	Natts_ie_reservation = Anum_ie_reservation_created_at
};

/* ... of inventory_events.allocation */
enum
{
	Anum_ie_allocation_id = 1,
	Anum_ie_allocation_reservation_id,
	Anum_ie_allocation_sku,
	Anum_ie_allocation_location,
	Anum_ie_allocation_lot,
	Anum_ie_allocation_per_unit,
	Anum_ie_allocation_qty,
	Anum_ie_allocation_reserved,
	Anum_ie_allocation_picked,
	Anum_ie_allocation_shipped,
	Anum_ie_allocation_released,
	Anum_ie_allocation_short,
	Anum_ie_allocation_event_id,
	Anum_ie_allocation_created_at,
	Natts_ie_allocation = Anum_ie_allocation_created_at
};

/* ... of inventory_events.exception */
enum
{
	Anum_ie_exception_id = 1,
	Anum_ie_exception_kind,
	Anum_ie_exception_sku,
	Anum_ie_exception_location,
	Anum_ie_exception_channel,
	Anum_ie_exception_ref,
	Anum_ie_exception_detail,
	Anum_ie_exception_created_at,
	Anum_ie_exception_resolved_at,
	Natts_ie_exception = Anum_ie_exception_resolved_at
};

/* ... of channel_location, kit_component and lot */
#define Anum_ie_channel_location_location 2
#define Anum_ie_channel_location_priority 3
#define Anum_ie_kit_component_component 2
#define Anum_ie_kit_component_qty 3
#define Anum_ie_lot_expires_on 3

/* Attribute numbers of inventory_events.item used in C. */
#define Anum_ie_item_base_uom 3
#define Anum_ie_item_lot_controlled 4
/* ... and of inventory_events.item_uom. */
#define Anum_ie_item_uom_factor 3

extern void ie_catalog_init(void);
extern bool ie_lock_referenced_row(Oid relid, Oid indexid, int nkeys, const Datum *keys,
								   const RegProcedure *procs);
extern bool ie_lookup_row(Oid relid, Oid indexid, int nkeys, const Datum *keys,
						  const RegProcedure *procs, int natts, const int *attnums, Datum *out);
extern bool ie_master_item(text *sku, text **base_uom, bool *lot_controlled);
extern bool ie_master_location(text *code);
extern bool ie_master_channel(text *code);
extern void *ie_cache_get(char kind, const text *name);
extern MemoryContext ie_cache_context(void);
extern void ie_cache_put(char kind, const text *name, void *payload);
extern const IeCatalog *ie_catalog(void);
extern uint64 ie_catalog_generation(void);
extern bool ie_relation_has_rows(Oid relid, Snapshot snapshot);
extern bool ie_sql_version_served(char **installed);

extern IeEventType ie_event_type_from_oid(Oid label);
extern IeBucket ie_bucket_from_oid(Oid label);

/*
 * Equality scan on the leading columns of a btree index, under the given
 * snapshot; keyprocs are the equality functions (F_TEXTEQ, F_INT8EQ, ...).
 * ie_index_lookup returns the first row found, in slot.
 */
extern const RegProcedure ie_text_keys[3];
extern const RegProcedure ie_stream_version_keys[4];
extern const RegProcedure ie_int8_key[1];

extern IndexScanDesc ie_index_scan_begin(Relation heap, Relation index, Snapshot snapshot,
										 int nkeys, const Datum *keys,
										 const RegProcedure *keyprocs);
extern bool ie_index_lookup(Relation heap, Relation index, Snapshot snapshot,
							int nkeys, const Datum *keys, const RegProcedure *keyprocs,
							TupleTableSlot *slot);

#endif							/* IE_CATALOG_H */
