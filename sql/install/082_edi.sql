-- ---------------------------------------------------------------------------
-- EDI 846 Inventory Inquiry/Advice from channel availability
-- ---------------------------------------------------------------------------

-- A channel that is an EDI trading partner: the interchange identifiers of
-- both sides, the qualifier of the partner's item identifiers (LIN), whether
-- it wants quantities per location (SDQ), the last control number used and
-- how far the last 846 covered the channel's publications.
CREATE TABLE inventory_events.edi_partner (
    channel               text PRIMARY KEY REFERENCES inventory_events.channel ON DELETE CASCADE,
    sender_qualifier      text NOT NULL DEFAULT 'ZZ' CHECK (sender_qualifier ~ '^[0-9A-Z]{2}$'),
    sender_id             text NOT NULL CHECK (sender_id ~ '^[0-9A-Za-z .&/()-]{1,15}$'),
    receiver_qualifier    text NOT NULL DEFAULT 'ZZ' CHECK (receiver_qualifier ~ '^[0-9A-Z]{2}$'),
    receiver_id           text NOT NULL CHECK (receiver_id ~ '^[0-9A-Za-z .&/()-]{1,15}$'),
    application_sender    text CHECK (application_sender ~ '^[0-9A-Za-z .&/()-]{2,15}$'),
    application_receiver  text CHECK (application_receiver ~ '^[0-9A-Za-z .&/()-]{2,15}$'),
    usage                 text NOT NULL DEFAULT 'P' CHECK (usage IN ('P', 'T')),
    item_qualifier        text NOT NULL DEFAULT 'BP' CHECK (item_qualifier ~ '^[0-9A-Z]{2}$'),
    by_location           boolean NOT NULL DEFAULT false,
    last_control          bigint NOT NULL DEFAULT 0 CHECK (last_control BETWEEN 0 AND 999999999),
    last_seq              bigint NOT NULL DEFAULT 0 CHECK (last_seq >= 0),
    last_sent_at          timestamptz,
    -- GS02 and GS03 are 2 to 15 characters: a one-character interchange id needs its application code.
    CHECK (application_sender IS NOT NULL OR length(sender_id) >= 2),
    CHECK (application_receiver IS NOT NULL OR length(receiver_id) >= 2)
);
COMMENT ON TABLE inventory_events.edi_partner IS
  'Channels that are EDI trading partners: interchange identifiers, control numbers, what the last 846 covered';
COMMENT ON COLUMN inventory_events.edi_partner.application_sender IS 'GS02; null: sender_id';
COMMENT ON COLUMN inventory_events.edi_partner.application_receiver IS 'GS03; null: receiver_id';
COMMENT ON COLUMN inventory_events.edi_partner.usage IS 'ISA15: P production, T test';
COMMENT ON COLUMN inventory_events.edi_partner.item_qualifier IS
  'LIN qualifier of the partner''s item identifier (channel_item.channel_sku): BP buyer''s part number, UP UPC, ...';
COMMENT ON COLUMN inventory_events.edi_partner.by_location IS 'SDQ segments: each sourcing location''s ATP';
COMMENT ON COLUMN inventory_events.edi_partner.last_control IS
  'The control number of the last 846 (ISA13, GS06 and ST02), 1 to 999999999, then 1 again';
COMMENT ON COLUMN inventory_events.edi_partner.last_seq IS
  'The channel''s publication sequence number the last 846 covered: an incremental 846 reports what was published after it';
SELECT pg_catalog.pg_extension_config_dump('inventory_events.edi_partner', '');

-- A value as an X12 data element of min to max characters: refused when it
-- is shorter or longer, or holds anything but printable ASCII (which the
-- 004010 basic and extended character sets need) or one of our delimiters
-- (element *, segment ~, component >).
CREATE FUNCTION inventory_events.x12_element(what text, value text, min integer, max integer)
RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF value ~ '[^ -~]' OR value ~ '[*~>]' OR length(value) NOT BETWEEN min AND max THEN
        RAISE EXCEPTION 'the % "%" cannot be sent in an X12 document', what, value
              USING ERRCODE = 'invalid_parameter_value',
                    DETAIL = format('An X12 %s is %s to %s printable ASCII characters, without *, ~ or >.', what, min, max);
    END IF;
    RETURN value;
END;
$$;

-- One 846 transaction set of an interchange: ST (its number in the group,
-- 0001 on), BIA (F or I with the control number), the LIN loops, CTT, SE.
CREATE FUNCTION inventory_events.x12_transaction_set(n integer, incremental boolean, control bigint,
                                                    utc timestamp, loops text[], lines integer)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
RETURN pg_catalog.format('ST*846*%s~', lpad(n::text, 4, '0'))
    || pg_catalog.format('BIA*00*SI*%s%s*%s*%s~', CASE WHEN incremental THEN 'I' ELSE 'F' END, control,
                         pg_catalog.to_char(utc, 'YYYYMMDD'), pg_catalog.to_char(utc, 'HH24MI'))
    || array_to_string(loops, '~') || '~'
    || pg_catalog.format('CTT*%s~', lines)
    || pg_catalog.format('SE*%s*%s~', cardinality(loops) + 4, lpad(n::text, 4, '0'));

-- An X12 846 Inventory Inquiry/Advice (version 004010) for a channel that is
-- an EDI trading partner, as one text: ISA/GS envelopes under the partner's
-- next control number, then transaction sets ST..SE of at most 10,000 LIN
-- loops each (ST02 0001, 0002, ...), per sku in sku order a LIN with the
-- partner's identifier (item_qualifier, the listing's channel_sku) and ours
-- (VN), where the partner wants it (by_location) SDQ with each sourcing
-- location's ATP, QTY*33 available for sale (channel_availability()),
-- QTY*17 on hand at the channel's sourcing locations (not for kits), and
-- for a channel with a future view QTY*29 projected available with its
-- DTM*018 date (per day of availability_timeline() after today); CTT, SE,
-- GE, IEA. A full 846 lists every sku the channel sells (what it lists, a
-- delisted one as 0, or, without listings, every item stocked at its
-- sourcing locations and every kit); an incremental one (incremental =>
-- true) lists the skus published to the channel since the last 846, each
-- with the value and identifier it was last published with (a delisting is
-- 0). Null, without using a control number, when there is no sku to send.
-- Segments end with ~, without line breaks; dates and times are UTC.
CREATE FUNCTION inventory_events.edi_846(channel text, incremental boolean DEFAULT false)
RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c        inventory_events.channel;
    p        inventory_events.edi_partner;
    control  bigint;
    upto     bigint;
    utc      timestamp := now() AT TIME ZONE 'UTC';
    sets     text[] := '{}';    -- the transaction sets ST..SE, one text each
    seg      text[] := '{}';    -- the segments of the set being built, LIN to the last QTY
    lines    integer := 0;      -- LIN loops in it
    r        record;
    f        record;
    pairs    text[];
BEGIN
    PERFORM inventory_events.require_writable('inventory_events.edi_846()');
    -- A null would read as neither variant: an empty full 846 that marks every publication as sent.
    IF incremental IS NULL THEN
        RAISE EXCEPTION 'incremental must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT * INTO c FROM inventory_events.channel x WHERE x.code = edi_846.channel;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown channel "%"', edi_846.channel
              USING ERRCODE = 'foreign_key_violation', HINT = 'Add it to inventory_events.channel first.';
    END IF;
    -- One 846 at a time per partner: control numbers in the order of the documents.
    SELECT * INTO p FROM inventory_events.edi_partner x WHERE x.channel = c.code FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'channel "%" is not an EDI trading partner', c.code
              USING ERRCODE = 'invalid_parameter_value',
                    HINT = 'Add its interchange identifiers to inventory_events.edi_partner.';
    END IF;
    upto := coalesce((SELECT cp.last_seq FROM inventory_events.channel_publisher cp WHERE cp.channel = c.code), 0);
    control := p.last_control % 999999999 + 1;

    FOR r IN
        SELECT s.sku, s.identifier, s.available,
               EXISTS (SELECT FROM inventory_events.kit_component k WHERE k.kit = s.sku) AS kit
          FROM (SELECT i.sku, coalesce(li.channel_sku, i.sku) AS identifier,
                       inventory_events.channel_availability(c.code, i.sku) AS available
                  FROM inventory_events.item i
                  LEFT JOIN inventory_events.channel_item li ON li.channel = c.code AND li.sku = i.sku
                 WHERE NOT incremental
                   AND CASE WHEN EXISTS (SELECT FROM inventory_events.channel_item x WHERE x.channel = c.code)
                            THEN li.sku IS NOT NULL     -- a delisted sku as 0
                            ELSE EXISTS (SELECT FROM inventory_events.stock st
                                           JOIN inventory_events.channel_sources(c.code) cl ON cl.location = st.location
                                          WHERE st.sku = i.sku)
                                 OR EXISTS (SELECT FROM inventory_events.kit_component k WHERE k.kit = i.sku) END
                UNION ALL
                -- The last publication of each (sku, identifier) since the last 846.
                (SELECT DISTINCT ON (pb.sku, coalesce(pb.channel_sku, pb.sku))
                        pb.sku, coalesce(pb.channel_sku, pb.sku), pb.available
                   FROM inventory_events.publication pb
                  WHERE incremental AND pb.channel = c.code AND pb.seq > p.last_seq AND pb.seq <= upto
                  ORDER BY pb.sku, coalesce(pb.channel_sku, pb.sku), pb.seq DESC)) s
         ORDER BY s.sku, s.identifier
    LOOP
        -- One segment per assignment: body := body || x appends in place.
        IF lines = 10000 THEN
            sets := sets || inventory_events.x12_transaction_set(cardinality(sets) + 1, incremental, control, utc, seg, lines);
            seg := '{}';
            lines := 0;
        END IF;
        lines := lines + 1;
        seg := seg || pg_catalog.format('LIN**%s*%s*VN*%s', p.item_qualifier,
                                        inventory_events.x12_element('product identifier', r.identifier, 1, 48),
                                        inventory_events.x12_element('product identifier', r.sku, 1, 48));
        IF p.by_location AND NOT r.kit THEN
            -- Up to ten location and quantity pairs per SDQ segment (before the QTY loop).
            SELECT array_agg(inventory_events.x12_element('identification code', b.location, 2, 50) || '*' || b.atp
                             ORDER BY b.location) INTO pairs
              FROM inventory_events.stock_by_location b
              JOIN inventory_events.channel_sources(c.code) cl ON cl.location = b.location
             WHERE b.sku = r.sku;
            FOR i IN 0 .. coalesce(cardinality(pairs), 0) - 1 BY 10 LOOP
                seg := seg || ('SDQ*EA*92*' || array_to_string(pairs[i + 1 : i + 10], '*'));
            END LOOP;
        END IF;
        seg := seg || pg_catalog.format('QTY*33*%s*EA', r.available);
        IF NOT r.kit THEN
            seg := seg || pg_catalog.format('QTY*17*%s*EA',
                                            (SELECT coalesce(sum(st.on_hand), 0)
                                               FROM inventory_events.stock st
                                               JOIN inventory_events.channel_sources(c.code) cl ON cl.location = st.location
                                              WHERE st.sku = r.sku));
            IF c.future_view THEN
                FOR f IN SELECT t.available_on, t.available
                           FROM inventory_events.availability_timeline(c.code, r.sku) t
                          WHERE t.available_on > current_date ORDER BY t.available_on
                LOOP
                    seg := seg || pg_catalog.format('QTY*29*%s*EA', f.available);
                    seg := seg || pg_catalog.format('DTM*018*%s', pg_catalog.to_char(f.available_on, 'YYYYMMDD'));
                END LOOP;
            END IF;
        END IF;
    END LOOP;
    -- Nothing to send (an 846 needs a LIN): no document, no control number used.
    IF lines = 0 THEN
        RETURN NULL;
    END IF;
    sets := sets || inventory_events.x12_transaction_set(cardinality(sets) + 1, incremental, control, utc, seg, lines);

    UPDATE inventory_events.edi_partner x SET last_control = control, last_seq = upto, last_sent_at = now()
     WHERE x.channel = c.code;
    RETURN pg_catalog.format('ISA*00*%s*00*%s*%s*%s*%s*%s*%s*%s*U*00401*%s*0*%s*>~',
                             repeat(' ', 10), repeat(' ', 10),
                             p.sender_qualifier, rpad(p.sender_id, 15), p.receiver_qualifier, rpad(p.receiver_id, 15),
                             pg_catalog.to_char(utc, 'YYMMDD'), pg_catalog.to_char(utc, 'HH24MI'),
                             lpad(control::text, 9, '0'), p.usage)
        || pg_catalog.format('GS*IB*%s*%s*%s*%s*%s*X*004010~',
                             coalesce(p.application_sender, p.sender_id), coalesce(p.application_receiver, p.receiver_id),
                             pg_catalog.to_char(utc, 'YYYYMMDD'), pg_catalog.to_char(utc, 'HH24MI'), control)
        || array_to_string(sets, '')
        || pg_catalog.format('GE*%s*%s~', cardinality(sets), control)
        || pg_catalog.format('IEA*1*%s~', lpad(control::text, 9, '0'));
END;
$$;
COMMENT ON FUNCTION inventory_events.edi_846(text, boolean) IS
  'An X12 846 Inventory Inquiry/Advice of a channel that is an EDI trading partner: full, or what was published since the last';
