/*
 * catalog.h
 *		Cached OIDs of the extension's objects, and index point lookups.
 */
#ifndef IE_CATALOG_H
#define IE_CATALOG_H

#include "access/genam.h"
#include "access/tupdesc.h"
#include "executor/spi.h"
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
	/* The log's indexes before 0.3.0; from 0.3.0 each partition's (logpart.c) */
	Oid			event_pkey;
	Oid			event_stream_idx;	/* (sku, location, lot, version) */
	Oid			event_idempotency_idx;	/* (source, idempotency_key) */
	Oid			event_key_rel;	/* from 0.3.0: the keys, out of the partitioned log */
	Oid			event_key_pkey; /* (source, idempotency_key) */
	Oid			event_archive_rel;	/* from 0.3.0: partitions archived */
	Oid			event_archive_ref_rel;	/* from 0.3.0: open quantities archived per ref */
	Oid			event_archive_ref_pkey; /* (sku, location, lot, ref) */
	Oid			event_id_seq;
	Oid			event_xid_idx;	/* (xid, id); before 0.3.0 */
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
	Oid			publication_rel;
	Oid			channel_shown_rel;
	Oid			channel_shown_pkey; /* (channel, sku) */
	Oid			operation_key_rel;	/* from 0.3.0 */
	Oid			operation_key_pkey; /* (source, idempotency_key) */
	Oid			channel_item_rel;	/* from 0.3.0 */
	Oid			channel_item_pkey;	/* (channel, sku) */
	Oid			channel_item_channel_sku_idx;	/* (channel, coalesce(channel_sku, sku)) */
	Oid			intercompany_rel;	/* from 0.3.0 */
	Oid			intercompany_pkey;	/* (seller, owner) */
	Oid			serial_event_rel;	/* from 0.3.0 */
	Oid			stream_snapshot_rel;	/* from 0.3.0 */
	Oid			stream_snapshot_pkey;	/* (sku, location, lot, version) */
	Oid			event_type_typid;
	Oid			bucket_typid;
	Oid			event_type_label[IE_NUM_EVENT_TYPES];	/* pg_enum OIDs */
	Oid			bucket_label[IE_NUM_BUCKETS];
} IeCatalog;

/*
 * The columns of the extension's tables that C reads or writes. Their
 * attribute numbers are looked up by name each time the catalog cache loads
 * (ie_catalog), never assumed from the column order: a column a DBA drops or
 * adds, or one an upgrade adds, moves nothing. Anum_ie_<table>_<column> is the
 * attribute number in the installed table, valid once ie_catalog() has been
 * called in the transaction; rows are built with ie_row_alloc(), whose arrays
 * cover every attribute of the table (columns C does not know are NULL).
 *
 * One list per table: IE_COLUMN(table, column). The stock table's bucket
 * columns follow the order of IeBucket.
 */
#define IE_EVENT_COLUMNS(C) \
	C(event, id) C(event, sku) C(event, location) C(event, lot) C(event, version) \
	C(event, event_type) C(event, from_bucket) C(event, to_bucket) C(event, qty) \
	C(event, uom) C(event, uom_qty) C(event, effect) C(event, occurred_at) \
	C(event, recorded_at) C(event, source) C(event, source_seq) \
	C(event, idempotency_key) C(event, correlation_id) C(event, causation_id) \
	C(event, channel) C(event, ref) C(event, reason) C(event, expected_date) \
	C(event, xid) C(event, payload)
#define IE_LOG_HOME_COLUMNS(C) \
	C(log_home, home) C(log_home, system_identifier) C(log_home, database_oid) \
	C(log_home, xid_offset) C(log_home, first_xid) C(log_home, adopted_at)
#define IE_STOCK_COLUMNS(C) \
	C(stock, sku) C(stock, location) C(stock, lot) \
	C(stock, available) C(stock, reserved) C(stock, picked) C(stock, damaged) \
	C(stock, quarantine) C(stock, in_transit) C(stock, inbound) \
	C(stock, on_hand) C(stock, safety_stock) C(stock, version) C(stock, last_event_id) \
	C(stock, updated_at)
#define IE_CHANNEL_COLUMNS(C) \
	C(channel, code) C(channel, kind) C(channel, description) C(channel, buffer_fixed) \
	C(channel, buffer_pct) C(channel, allocation_pct) C(channel, cap) \
	C(channel, publish_interval) C(channel, allow_backorders) C(channel, allow_split) \
	C(channel, future_view) C(channel, horizon) C(channel, velocity_buffer) \
	C(channel, velocity_window)
#define IE_RESERVATION_COLUMNS(C) \
	C(reservation, id) C(reservation, channel) C(reservation, ref) C(reservation, sku) \
	C(reservation, qty) C(reservation, backordered) C(reservation, cancelled) \
	C(reservation, location) C(reservation, expires_at) C(reservation, source) \
	C(reservation, idempotency_key) C(reservation, created_at)
#define IE_ALLOCATION_COLUMNS(C) \
	C(allocation, id) C(allocation, reservation_id) C(allocation, sku) \
	C(allocation, location) C(allocation, lot) C(allocation, per_unit) C(allocation, qty) \
	C(allocation, reserved) C(allocation, picked) C(allocation, shipped) \
	C(allocation, released) C(allocation, short) C(allocation, event_id) \
	C(allocation, created_at)
#define IE_EXCEPTION_COLUMNS(C) \
	C(exception, id) C(exception, kind) C(exception, sku) C(exception, location) \
	C(exception, channel) C(exception, ref) C(exception, detail) C(exception, created_at) \
	C(exception, resolved_at)
#define IE_DEAD_LETTER_COLUMNS(C) \
	C(dead_letter, id) C(dead_letter, failed_at) C(dead_letter, source) \
	C(dead_letter, idempotency_key) C(dead_letter, batch_ordinal) C(dead_letter, sqlstate) \
	C(dead_letter, message) C(dead_letter, detail) C(dead_letter, payload)
#define IE_PUBLICATION_COLUMNS(C) \
	C(publication, channel) C(publication, seq) C(publication, sku) C(publication, available) \
	C(publication, published_at) \
	C(channel_shown, channel) C(channel_shown, sku) C(channel_shown, available) C(channel_shown, seq)
#define IE_OPERATION_KEY_COLUMNS(C) \
	C(operation_key, source) C(operation_key, idempotency_key) C(operation_key, operation) \
	C(operation_key, reservation_id) C(operation_key, qty) C(operation_key, recorded_at)
#define IE_CHANNEL_ITEM_COLUMNS(C) \
	C(channel_item, channel) C(channel_item, sku) C(channel_item, channel_sku) \
	C(channel_item, listed) C(channel_item, buffer_fixed) C(channel_item, buffer_pct) \
	C(channel_item, allocation_pct) C(channel_item, cap)
/* Columns of older tables that the SQL objects have from 0.3.0 on (0 before). */
#define IE_COLUMNS_FROM_0_3_0(C) \
	C(publication, channel_sku) C(channel_shown, channel_sku) C(reservation, channel_sku) \
	C(location, entity) C(channel, entity) C(item, serialized)
/* Read by the output plugin only. */
#define IE_SERIAL_EVENT_COLUMNS(C) \
	C(serial_event, sku) C(serial_event, location) C(serial_event, event_id)
/* A table of 0.3.0: its columns are read only where it exists. */
#define IE_STREAM_SNAPSHOT_COLUMNS(C) \
	C(stream_snapshot, version) C(stream_snapshot, event_id) C(stream_snapshot, position) \
	C(stream_snapshot, safety_stock) C(stream_snapshot, occurred_max) C(stream_snapshot, sealed)
#define IE_EVENT_KEY_COLUMNS(C) \
	C(event_key, source) C(event_key, idempotency_key) C(event_key, event_id) \
	C(event_key, recorded_at) C(event_key, version) \
	C(event_archive, recorded_to) \
	C(event_archive_ref, in_transit) C(event_archive_ref, inbound)
#define IE_LOCATION_COLUMNS(C) \
	C(location, code) C(location, parent) \
	C(intercompany, seller) C(intercompany, owner)
#define IE_OTHER_COLUMNS(C) \
	C(log_home_written, written_at) C(log_home_written, pid) \
	C(channel_location, location) C(channel_location, priority) \
	C(kit_component, component) C(kit_component, qty) \
	C(lot, expires_on) \
	C(item, base_uom) C(item, lot_controlled) \
	C(item_uom, factor)
#define IE_ALL_COLUMNS(C) \
	IE_EVENT_COLUMNS(C) IE_LOG_HOME_COLUMNS(C) IE_STOCK_COLUMNS(C) IE_CHANNEL_COLUMNS(C) \
	IE_RESERVATION_COLUMNS(C) IE_ALLOCATION_COLUMNS(C) IE_EXCEPTION_COLUMNS(C) \
	IE_DEAD_LETTER_COLUMNS(C) IE_PUBLICATION_COLUMNS(C) IE_OPERATION_KEY_COLUMNS(C) \
	IE_CHANNEL_ITEM_COLUMNS(C) IE_LOCATION_COLUMNS(C) IE_COLUMNS_FROM_0_3_0(C) IE_OTHER_COLUMNS(C) \
	IE_SERIAL_EVENT_COLUMNS(C) IE_STREAM_SNAPSHOT_COLUMNS(C) IE_EVENT_KEY_COLUMNS(C)

/* The tables those columns belong to. */
typedef enum IeTable
{
	IE_TABLE_event,
	IE_TABLE_log_home,			/* from 0.2.0 */
	IE_TABLE_stock,
	IE_TABLE_channel,
	IE_TABLE_reservation,
	IE_TABLE_allocation,
	IE_TABLE_exception,
	IE_TABLE_dead_letter,
	IE_TABLE_log_home_written,	/* from 0.2.0 */
	IE_TABLE_publication,
	IE_TABLE_channel_shown,
	IE_TABLE_operation_key,		/* from 0.3.0 */
	IE_TABLE_channel_item,		/* from 0.3.0 */
	IE_TABLE_location,
	IE_TABLE_intercompany,		/* from 0.3.0 */
	IE_TABLE_channel_location,
	IE_TABLE_kit_component,
	IE_TABLE_lot,
	IE_TABLE_item,
	IE_TABLE_item_uom,
	IE_TABLE_serial_event,		/* from 0.3.0 */
	IE_TABLE_stream_snapshot,	/* from 0.3.0 */
	IE_TABLE_event_key,			/* from 0.3.0 */
	IE_TABLE_event_archive,		/* from 0.3.0 */
	IE_TABLE_event_archive_ref, /* from 0.3.0 */
	IE_NUM_TABLES
} IeTable;

/* One id per column of the lists above: IE_COL_<table>_<column>. */
#define IE_COLUMN_ID(table, column) IE_COL_##table##_##column,
typedef enum IeColumn
{
	IE_ALL_COLUMNS(IE_COLUMN_ID)
	IE_NUM_COLUMNS
} IeColumn;
#undef IE_COLUMN_ID

/* Attribute numbers by column id, filled by ie_catalog(). */
extern AttrNumber ie_attnums[IE_NUM_COLUMNS];

extern AttrNumber ie_attnum_load(IeColumn column);
extern const char *ie_column_name(IeColumn column);
extern IeTable ie_column_table(IeColumn column);
extern bool ie_column_from_0_3_0(IeColumn column);

/* Loads the catalog cache if nothing has yet (the attribute number is then 0). */
#define IE_ATTNUM(column) \
	(likely(ie_attnums[(column)] > 0) ? ie_attnums[(column)] : ie_attnum_load(column))

#define Anum_ie_event_id IE_ATTNUM(IE_COL_event_id)
#define Anum_ie_event_sku IE_ATTNUM(IE_COL_event_sku)
#define Anum_ie_event_location IE_ATTNUM(IE_COL_event_location)
#define Anum_ie_event_lot IE_ATTNUM(IE_COL_event_lot)
#define Anum_ie_event_version IE_ATTNUM(IE_COL_event_version)
#define Anum_ie_event_event_type IE_ATTNUM(IE_COL_event_event_type)
#define Anum_ie_event_from_bucket IE_ATTNUM(IE_COL_event_from_bucket)
#define Anum_ie_event_to_bucket IE_ATTNUM(IE_COL_event_to_bucket)
#define Anum_ie_event_qty IE_ATTNUM(IE_COL_event_qty)
#define Anum_ie_event_uom IE_ATTNUM(IE_COL_event_uom)
#define Anum_ie_event_uom_qty IE_ATTNUM(IE_COL_event_uom_qty)
#define Anum_ie_event_effect IE_ATTNUM(IE_COL_event_effect)
#define Anum_ie_event_occurred_at IE_ATTNUM(IE_COL_event_occurred_at)
#define Anum_ie_event_recorded_at IE_ATTNUM(IE_COL_event_recorded_at)
#define Anum_ie_event_source IE_ATTNUM(IE_COL_event_source)
#define Anum_ie_event_source_seq IE_ATTNUM(IE_COL_event_source_seq)
#define Anum_ie_event_idempotency_key IE_ATTNUM(IE_COL_event_idempotency_key)
#define Anum_ie_event_correlation_id IE_ATTNUM(IE_COL_event_correlation_id)
#define Anum_ie_event_causation_id IE_ATTNUM(IE_COL_event_causation_id)
#define Anum_ie_event_channel IE_ATTNUM(IE_COL_event_channel)
#define Anum_ie_event_ref IE_ATTNUM(IE_COL_event_ref)
#define Anum_ie_event_reason IE_ATTNUM(IE_COL_event_reason)
#define Anum_ie_event_expected_date IE_ATTNUM(IE_COL_event_expected_date)
#define Anum_ie_event_xid IE_ATTNUM(IE_COL_event_xid)
#define Anum_ie_event_payload IE_ATTNUM(IE_COL_event_payload)
#define Anum_ie_log_home_home IE_ATTNUM(IE_COL_log_home_home)
#define Anum_ie_log_home_system_identifier IE_ATTNUM(IE_COL_log_home_system_identifier)
#define Anum_ie_log_home_database_oid IE_ATTNUM(IE_COL_log_home_database_oid)
#define Anum_ie_log_home_xid_offset IE_ATTNUM(IE_COL_log_home_xid_offset)
#define Anum_ie_log_home_first_xid IE_ATTNUM(IE_COL_log_home_first_xid)
#define Anum_ie_log_home_adopted_at IE_ATTNUM(IE_COL_log_home_adopted_at)
#define Anum_ie_stock_sku IE_ATTNUM(IE_COL_stock_sku)
#define Anum_ie_stock_location IE_ATTNUM(IE_COL_stock_location)
#define Anum_ie_stock_lot IE_ATTNUM(IE_COL_stock_lot)
#define Anum_ie_stock_available IE_ATTNUM(IE_COL_stock_available)
#define Anum_ie_stock_reserved IE_ATTNUM(IE_COL_stock_reserved)
#define Anum_ie_stock_picked IE_ATTNUM(IE_COL_stock_picked)
#define Anum_ie_stock_damaged IE_ATTNUM(IE_COL_stock_damaged)
#define Anum_ie_stock_quarantine IE_ATTNUM(IE_COL_stock_quarantine)
#define Anum_ie_stock_in_transit IE_ATTNUM(IE_COL_stock_in_transit)
#define Anum_ie_stock_inbound IE_ATTNUM(IE_COL_stock_inbound)
#define Anum_ie_stock_on_hand IE_ATTNUM(IE_COL_stock_on_hand)
#define Anum_ie_stock_safety_stock IE_ATTNUM(IE_COL_stock_safety_stock)
#define Anum_ie_stock_version IE_ATTNUM(IE_COL_stock_version)
#define Anum_ie_stock_last_event_id IE_ATTNUM(IE_COL_stock_last_event_id)
#define Anum_ie_stock_updated_at IE_ATTNUM(IE_COL_stock_updated_at)
#define Anum_ie_channel_code IE_ATTNUM(IE_COL_channel_code)
#define Anum_ie_channel_kind IE_ATTNUM(IE_COL_channel_kind)
#define Anum_ie_channel_description IE_ATTNUM(IE_COL_channel_description)
#define Anum_ie_channel_buffer_fixed IE_ATTNUM(IE_COL_channel_buffer_fixed)
#define Anum_ie_channel_buffer_pct IE_ATTNUM(IE_COL_channel_buffer_pct)
#define Anum_ie_channel_allocation_pct IE_ATTNUM(IE_COL_channel_allocation_pct)
#define Anum_ie_channel_cap IE_ATTNUM(IE_COL_channel_cap)
#define Anum_ie_channel_publish_interval IE_ATTNUM(IE_COL_channel_publish_interval)
#define Anum_ie_channel_allow_backorders IE_ATTNUM(IE_COL_channel_allow_backorders)
#define Anum_ie_channel_allow_split IE_ATTNUM(IE_COL_channel_allow_split)
#define Anum_ie_channel_future_view IE_ATTNUM(IE_COL_channel_future_view)
#define Anum_ie_channel_horizon IE_ATTNUM(IE_COL_channel_horizon)
#define Anum_ie_channel_velocity_buffer IE_ATTNUM(IE_COL_channel_velocity_buffer)
#define Anum_ie_channel_velocity_window IE_ATTNUM(IE_COL_channel_velocity_window)
#define Anum_ie_reservation_id IE_ATTNUM(IE_COL_reservation_id)
#define Anum_ie_reservation_channel IE_ATTNUM(IE_COL_reservation_channel)
#define Anum_ie_reservation_ref IE_ATTNUM(IE_COL_reservation_ref)
#define Anum_ie_reservation_sku IE_ATTNUM(IE_COL_reservation_sku)
#define Anum_ie_reservation_qty IE_ATTNUM(IE_COL_reservation_qty)
#define Anum_ie_reservation_backordered IE_ATTNUM(IE_COL_reservation_backordered)
#define Anum_ie_reservation_cancelled IE_ATTNUM(IE_COL_reservation_cancelled)
#define Anum_ie_reservation_location IE_ATTNUM(IE_COL_reservation_location)
#define Anum_ie_reservation_expires_at IE_ATTNUM(IE_COL_reservation_expires_at)
#define Anum_ie_reservation_source IE_ATTNUM(IE_COL_reservation_source)
#define Anum_ie_reservation_idempotency_key IE_ATTNUM(IE_COL_reservation_idempotency_key)
#define Anum_ie_reservation_created_at IE_ATTNUM(IE_COL_reservation_created_at)
#define Anum_ie_allocation_id IE_ATTNUM(IE_COL_allocation_id)
#define Anum_ie_allocation_reservation_id IE_ATTNUM(IE_COL_allocation_reservation_id)
#define Anum_ie_allocation_sku IE_ATTNUM(IE_COL_allocation_sku)
#define Anum_ie_allocation_location IE_ATTNUM(IE_COL_allocation_location)
#define Anum_ie_allocation_lot IE_ATTNUM(IE_COL_allocation_lot)
#define Anum_ie_allocation_per_unit IE_ATTNUM(IE_COL_allocation_per_unit)
#define Anum_ie_allocation_qty IE_ATTNUM(IE_COL_allocation_qty)
#define Anum_ie_allocation_reserved IE_ATTNUM(IE_COL_allocation_reserved)
#define Anum_ie_allocation_picked IE_ATTNUM(IE_COL_allocation_picked)
#define Anum_ie_allocation_shipped IE_ATTNUM(IE_COL_allocation_shipped)
#define Anum_ie_allocation_released IE_ATTNUM(IE_COL_allocation_released)
#define Anum_ie_allocation_short IE_ATTNUM(IE_COL_allocation_short)
#define Anum_ie_allocation_event_id IE_ATTNUM(IE_COL_allocation_event_id)
#define Anum_ie_allocation_created_at IE_ATTNUM(IE_COL_allocation_created_at)
#define Anum_ie_exception_id IE_ATTNUM(IE_COL_exception_id)
#define Anum_ie_exception_kind IE_ATTNUM(IE_COL_exception_kind)
#define Anum_ie_exception_sku IE_ATTNUM(IE_COL_exception_sku)
#define Anum_ie_exception_location IE_ATTNUM(IE_COL_exception_location)
#define Anum_ie_exception_channel IE_ATTNUM(IE_COL_exception_channel)
#define Anum_ie_exception_ref IE_ATTNUM(IE_COL_exception_ref)
#define Anum_ie_exception_detail IE_ATTNUM(IE_COL_exception_detail)
#define Anum_ie_exception_created_at IE_ATTNUM(IE_COL_exception_created_at)
#define Anum_ie_exception_resolved_at IE_ATTNUM(IE_COL_exception_resolved_at)
#define Anum_ie_channel_location_location IE_ATTNUM(IE_COL_channel_location_location)
#define Anum_ie_channel_location_priority IE_ATTNUM(IE_COL_channel_location_priority)
#define Anum_ie_kit_component_component IE_ATTNUM(IE_COL_kit_component_component)
#define Anum_ie_kit_component_qty IE_ATTNUM(IE_COL_kit_component_qty)
#define Anum_ie_lot_expires_on IE_ATTNUM(IE_COL_lot_expires_on)
#define Anum_ie_item_base_uom IE_ATTNUM(IE_COL_item_base_uom)
#define Anum_ie_item_lot_controlled IE_ATTNUM(IE_COL_item_lot_controlled)
#define Anum_ie_item_serialized IE_ATTNUM(IE_COL_item_serialized)
#define Anum_ie_item_uom_factor IE_ATTNUM(IE_COL_item_uom_factor)
#define Anum_ie_stream_snapshot_version IE_ATTNUM(IE_COL_stream_snapshot_version)
#define Anum_ie_stream_snapshot_event_id IE_ATTNUM(IE_COL_stream_snapshot_event_id)
#define Anum_ie_stream_snapshot_position IE_ATTNUM(IE_COL_stream_snapshot_position)
#define Anum_ie_stream_snapshot_safety_stock IE_ATTNUM(IE_COL_stream_snapshot_safety_stock)
#define Anum_ie_stream_snapshot_occurred_max IE_ATTNUM(IE_COL_stream_snapshot_occurred_max)
#define Anum_ie_stream_snapshot_sealed IE_ATTNUM(IE_COL_stream_snapshot_sealed)
#define Anum_ie_event_key_source IE_ATTNUM(IE_COL_event_key_source)
#define Anum_ie_event_key_idempotency_key IE_ATTNUM(IE_COL_event_key_idempotency_key)
#define Anum_ie_event_key_event_id IE_ATTNUM(IE_COL_event_key_event_id)
#define Anum_ie_event_key_recorded_at IE_ATTNUM(IE_COL_event_key_recorded_at)
#define Anum_ie_event_key_version IE_ATTNUM(IE_COL_event_key_version)
#define Anum_ie_event_archive_recorded_to IE_ATTNUM(IE_COL_event_archive_recorded_to)
#define Anum_ie_event_archive_ref_in_transit IE_ATTNUM(IE_COL_event_archive_ref_in_transit)
#define Anum_ie_event_archive_ref_inbound IE_ATTNUM(IE_COL_event_archive_ref_inbound)
#define Anum_ie_dead_letter_id IE_ATTNUM(IE_COL_dead_letter_id)
#define Anum_ie_dead_letter_failed_at IE_ATTNUM(IE_COL_dead_letter_failed_at)
#define Anum_ie_dead_letter_source IE_ATTNUM(IE_COL_dead_letter_source)
#define Anum_ie_dead_letter_idempotency_key IE_ATTNUM(IE_COL_dead_letter_idempotency_key)
#define Anum_ie_dead_letter_batch_ordinal IE_ATTNUM(IE_COL_dead_letter_batch_ordinal)
#define Anum_ie_dead_letter_sqlstate IE_ATTNUM(IE_COL_dead_letter_sqlstate)
#define Anum_ie_dead_letter_message IE_ATTNUM(IE_COL_dead_letter_message)
#define Anum_ie_dead_letter_detail IE_ATTNUM(IE_COL_dead_letter_detail)
#define Anum_ie_dead_letter_payload IE_ATTNUM(IE_COL_dead_letter_payload)
#define Anum_ie_log_home_written_written_at IE_ATTNUM(IE_COL_log_home_written_written_at)
#define Anum_ie_log_home_written_pid IE_ATTNUM(IE_COL_log_home_written_pid)

#define Anum_ie_publication_channel IE_ATTNUM(IE_COL_publication_channel)
#define Anum_ie_publication_seq IE_ATTNUM(IE_COL_publication_seq)
#define Anum_ie_publication_sku IE_ATTNUM(IE_COL_publication_sku)
#define Anum_ie_publication_available IE_ATTNUM(IE_COL_publication_available)
#define Anum_ie_publication_published_at IE_ATTNUM(IE_COL_publication_published_at)
#define Anum_ie_channel_shown_channel IE_ATTNUM(IE_COL_channel_shown_channel)
#define Anum_ie_channel_shown_sku IE_ATTNUM(IE_COL_channel_shown_sku)
#define Anum_ie_channel_shown_available IE_ATTNUM(IE_COL_channel_shown_available)
#define Anum_ie_channel_shown_seq IE_ATTNUM(IE_COL_channel_shown_seq)
#define Anum_ie_operation_key_source IE_ATTNUM(IE_COL_operation_key_source)
#define Anum_ie_operation_key_idempotency_key IE_ATTNUM(IE_COL_operation_key_idempotency_key)
#define Anum_ie_operation_key_operation IE_ATTNUM(IE_COL_operation_key_operation)
#define Anum_ie_operation_key_reservation_id IE_ATTNUM(IE_COL_operation_key_reservation_id)
#define Anum_ie_operation_key_qty IE_ATTNUM(IE_COL_operation_key_qty)
#define Anum_ie_operation_key_recorded_at IE_ATTNUM(IE_COL_operation_key_recorded_at)
#define Anum_ie_channel_item_channel_sku IE_ATTNUM(IE_COL_channel_item_channel_sku)
#define Anum_ie_channel_item_sku IE_ATTNUM(IE_COL_channel_item_sku)
#define Anum_ie_channel_item_listed IE_ATTNUM(IE_COL_channel_item_listed)
#define Anum_ie_channel_item_buffer_fixed IE_ATTNUM(IE_COL_channel_item_buffer_fixed)
#define Anum_ie_channel_item_buffer_pct IE_ATTNUM(IE_COL_channel_item_buffer_pct)
#define Anum_ie_channel_item_allocation_pct IE_ATTNUM(IE_COL_channel_item_allocation_pct)
#define Anum_ie_channel_item_cap IE_ATTNUM(IE_COL_channel_item_cap)
/* 0 (InvalidAttrNumber) when the SQL objects are older than 0.3.0. */
#define Anum_ie_publication_channel_sku IE_ATTNUM(IE_COL_publication_channel_sku)
#define Anum_ie_channel_shown_channel_sku IE_ATTNUM(IE_COL_channel_shown_channel_sku)
#define Anum_ie_reservation_channel_sku IE_ATTNUM(IE_COL_reservation_channel_sku)
#define Anum_ie_location_entity IE_ATTNUM(IE_COL_location_entity)
#define Anum_ie_channel_entity IE_ATTNUM(IE_COL_channel_entity)
#define Anum_ie_location_code IE_ATTNUM(IE_COL_location_code)
#define Anum_ie_location_parent IE_ATTNUM(IE_COL_location_parent)
#define Anum_ie_intercompany_owner IE_ATTNUM(IE_COL_intercompany_owner)

/* The stock column of bucket b. */
#define Anum_ie_stock_bucket(b) IE_ATTNUM(IE_COL_stock_available + (b))

/* Number of attributes of a table, dropped ones included (the length of its rows' arrays). */
extern int	ie_table_natts(IeTable table);
extern void ie_row_alloc(IeTable table, Datum **values, bool **nulls);
extern void ie_row_new_nulls(IeTable table, bool *nulls);
extern bool ie_attribute_written(Oid relid, AttrNumber attnum);
extern Oid	ie_catalog_table_relid(IeTable table);

extern void ie_catalog_init(void);
extern bool ie_lock_referenced_row(Oid relid, Oid indexid, int nkeys, const Datum *keys,
								   const RegProcedure *procs);
extern bool ie_lookup_row(Oid relid, Oid indexid, int nkeys, const Datum *keys,
						  const RegProcedure *procs, int natts, const int *attnums, Datum *out);
extern bool ie_lookup_row_as(Oid relid, Oid indexid, Snapshot snapshot, int nkeys, const Datum *keys,
							 const RegProcedure *procs, int natts, const int *attnums, Datum *out,
							 bool *nulls);
/* A read of master data for the cache (see catalog.c). */
typedef struct IeMasterRead
{
	Snapshot	snapshot;		/* read in this */
	uint64		resets;			/* the cache's resets when it was taken */
} IeMasterRead;

extern void ie_master_read_begin(IeMasterRead *r);
extern bool ie_master_read_end(IeMasterRead *r);
extern bool ie_master_item(text *sku, text **base_uom, bool *lot_controlled, bool *serialized);
extern bool ie_master_location(text *code);
extern bool ie_master_channel(text *code);
extern void *ie_cache_get(char kind, const text *name);
extern MemoryContext ie_cache_context(void);
extern void ie_cache_put(char kind, const text *name, void *payload);
extern const IeCatalog *ie_catalog(void);

/*
 * A statement run through SPI, prepared on first use and kept for the
 * backend's life (the plan cache replans it after DDL). Within SPI_connect.
 */
typedef struct IeSpiPlan
{
	const char *sql;
	int			nargs;
	Oid			types[10];
	SPIPlanPtr	plan;			/* NULL until first use */
} IeSpiPlan;
extern uint64 ie_spi_run(IeSpiPlan *def, Datum *values, const char *nulls, int expected);
extern uint64 ie_spi_run_snapshot(IeSpiPlan *def, Datum *values, const char *nulls, Snapshot snapshot,
								  int expected);
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
extern const RegProcedure ie_text_keys4[4];
extern const RegProcedure ie_stream_version_keys[4];
extern const RegProcedure ie_int8_key[1];

extern IndexScanDesc ie_index_scan_begin(Relation heap, Relation index, Snapshot snapshot,
										 int nkeys, const Datum *keys,
										 const RegProcedure *keyprocs);
extern bool ie_index_lookup(Relation heap, Relation index, Snapshot snapshot,
							int nkeys, const Datum *keys, const RegProcedure *keyprocs,
							TupleTableSlot *slot);

/*
 * Starts a set-returning function's materialized result with the tuple
 * descriptor its caller expects (the executor built it for the call site),
 * instead of building another from the function's OUT parameters in
 * pg_proc on every call: 2 % of a one-line reserve_lines() (profile in
 * doc/development.md).
 */
#define ie_init_materialized_srf(fcinfo) \
	InitMaterializedSRF((fcinfo), MAT_SRF_USE_EXPECTED_DESC)

/* Every call that writes starts here (see catalog.c). */
extern void ie_write_call_start(const char *function);
extern void ie_read_call_start(void);

#endif							/* IE_CATALOG_H */
