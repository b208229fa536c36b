-- ---------------------------------------------------------------------------
-- Privileges
-- ---------------------------------------------------------------------------

-- Nothing is open to PUBLIC; grant_access() gives a role one of three kinds
-- of access.
REVOKE ALL ON ALL TABLES IN SCHEMA inventory_events FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA inventory_events FROM PUBLIC;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA inventory_events FROM PUBLIC;
-- The stock_position type and its operators, accessors and sum() are pure
-- functions of their arguments: callable by anyone who may use the schema.
GRANT EXECUTE ON FUNCTION
    inventory_events.stock_position_in(cstring),
    inventory_events.stock_position_out(inventory_events.stock_position),
    inventory_events.stock_position_recv(internal),
    inventory_events.stock_position_send(inventory_events.stock_position),
    inventory_events.stock_position(bigint, bigint, bigint, bigint, bigint, bigint, bigint),
    inventory_events.stock_position_pl(inventory_events.stock_position, inventory_events.stock_position),
    inventory_events.stock_position_mi(inventory_events.stock_position, inventory_events.stock_position),
    inventory_events.stock_position_eq(inventory_events.stock_position, inventory_events.stock_position),
    inventory_events.stock_position_ne(inventory_events.stock_position, inventory_events.stock_position),
    inventory_events.stock_position_accum(inventory_events.stock_position, inventory_events.stock_position),
    inventory_events.sum(inventory_events.stock_position),
    inventory_events.on_hand(inventory_events.stock_position),
    inventory_events.available(inventory_events.stock_position),
    inventory_events.reserved(inventory_events.stock_position),
    inventory_events.picked(inventory_events.stock_position),
    inventory_events.damaged(inventory_events.stock_position),
    inventory_events.quarantine(inventory_events.stock_position),
    inventory_events.in_transit(inventory_events.stock_position),
    inventory_events.inbound(inventory_events.stock_position),
    inventory_events.position_of(inventory_events.stock),
    inventory_events.library_version()
    TO PUBLIC;
-- Where the log's transaction ids stand (what pg_current_snapshot() tells
-- anyone, offset): events_after() runs with its caller's rights and needs it.
GRANT EXECUTE ON FUNCTION inventory_events.log_xmin(), inventory_events.log_adopted() TO PUBLIC;

CREATE FUNCTION inventory_events.grant_access(role_name name, access text)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r text := quote_ident(role_name);
BEGIN
    PERFORM inventory_events.require_writable('inventory_events.grant_access()');
    IF access NOT IN ('reader', 'writer', 'admin') THEN
        RAISE EXCEPTION 'invalid access "%"', access
              USING ERRCODE = 'invalid_parameter_value',
                    HINT = 'Access is reader, writer or admin.';
    END IF;
    -- reader: read everything (pg_dump of the database included), append nothing
    EXECUTE format('GRANT USAGE ON SCHEMA inventory_events TO %s', r);
    EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA inventory_events TO %s', r);
    EXECUTE format('GRANT SELECT ON ALL SEQUENCES IN SCHEMA inventory_events TO %s', r);
    EXECUTE format('GRANT EXECUTE ON FUNCTION inventory_events.position_as_of(text, text, timestamptz, text),
                    inventory_events.sku_position_as_of(text, timestamptz),
                    inventory_events.lot_trace(text, text),
                    inventory_events.serial_trace(text, text),
                    inventory_events.events_after(text, integer), inventory_events.verify(),
                    inventory_events.verify_snapshots(boolean),
                    inventory_events.event_partitions(), inventory_events.archive_boundary(),
                    inventory_events.stream_fold(text, text, text, timestamptz, bigint, boolean),
                    inventory_events.channel_availability(text, text),
                    inventory_events.channel_position(text, text),
                    inventory_events.channel_sources(text),
                    inventory_events.channel_rules(bigint, inventory_events.channel, bigint),
                    inventory_events.availability_timeline(text, text, interval),
                    inventory_events.publications_since(text, bigint),
                    inventory_events.publisher_status(),
                    inventory_events.notify_channel(text),
                    inventory_events.shared_state(),
                    inventory_events.recon_variance(bigint),
                    inventory_events.recon_tolerance_of(text, text),
                    inventory_events.recon_within(bigint, bigint, numeric, numeric, bigint, numeric) TO %s', r);
    IF access IN ('writer', 'admin') THEN
        -- writer: append through the functions; never write the log directly
        EXECUTE format('GRANT EXECUTE ON FUNCTION inventory_events.append(text, text, inventory_events.event_type,
                        bigint, text, text, timestamptz, text, text, text, text, bigint, jsonb, inventory_events.bucket,
                        inventory_events.bucket, text, date, bigint, uuid, uuid, text[]),
                        inventory_events.ingest(jsonb), inventory_events.ingest_staged(integer),
                        inventory_events.reserve(text, text, bigint, text, text, timestamptz, text, text),
                        inventory_events.reserve_lines(jsonb),
                        inventory_events.release(text, text, bigint, text, text, text),
                        inventory_events.pick(text, text, bigint, text, text, text, text[]),
                        inventory_events.ship(text, text, bigint, text, text, text[]),
                        inventory_events.pick_short(text, text, bigint, text, text, text, text),
                        inventory_events.expire_reservations(integer),
                        inventory_events.fill_backorders(text),
                        inventory_events.transfer(text, text, text, bigint, text, date, text, text, text, text[]),
                        inventory_events.receive_transfer(text, text, bigint, text, text, text, text, text[]),
                        inventory_events.receive_po(text, text, bigint, text, text, text, text, text[]),
                        inventory_events.receive_return(text, text, bigint, text, text, text, text, text, text, text[]),
                        inventory_events.dispose_return(text, text, bigint, text, text, text, text, text, text[]),
                        inventory_events.reconcile(text, timestamptz, jsonb, boolean, text),
                        inventory_events.reconcile_staged(text, timestamptz, boolean, text),
                        inventory_events.resolve_recon_line(bigint, text, text),
                        inventory_events.republish_drift(bigint),
                        inventory_events.edi_846(text, boolean)
                        TO %s', r);
        EXECUTE format('GRANT INSERT ON inventory_events.event_staging TO %s', r);
        -- Not load_xid: a snapshot's lines are those its own transaction staged.
        EXECUTE format('GRANT INSERT (sku, location, lot, qty, uom, serials) ON inventory_events.recon_staging TO %s', r);
    END IF;
    IF access = 'admin' THEN
        -- admin: master data, repairs
        EXECUTE format('GRANT INSERT, UPDATE, DELETE ON inventory_events.item, inventory_events.item_uom,
                        inventory_events.location, inventory_events.lot, inventory_events.channel,
                        inventory_events.channel_location, inventory_events.kit_component,
                        inventory_events.channel_item, inventory_events.edi_partner,
                        inventory_events.entity, inventory_events.intercompany,
                        inventory_events.recon_source, inventory_events.recon_tolerance TO %s', r);
        EXECUTE format('GRANT UPDATE (resolved_at) ON inventory_events.exception TO %s', r);
        EXECUTE format('GRANT DELETE ON inventory_events.dead_letter TO %s', r);
        EXECUTE format('GRANT EXECUTE ON FUNCTION inventory_events.rebuild(integer),
                        inventory_events.publish(integer), inventory_events.republish(text),
                        inventory_events.publisher_start(text), inventory_events.publisher_stop(text),
                        inventory_events.resolve_exception(bigint),
                        inventory_events.report_progress(text),
                        inventory_events.approve_recon_line(bigint, text),
                        inventory_events.recon_reevaluate(integer),
                        inventory_events.refresh_metrics(interval),
                        inventory_events.record_verify(),
                        inventory_events.take_snapshots(integer, integer),
                        inventory_events.apply_retention(),
                        inventory_events.create_partitions(timestamptz, integer) TO %s', r);
    END IF;
END;
$$;
REVOKE EXECUTE ON FUNCTION inventory_events.grant_access(name, text) FROM PUBLIC;
COMMENT ON FUNCTION inventory_events.grant_access(name, text) IS
  'Grants a role reader, writer or admin access to inventory_events';

