#!/usr/bin/python3
"""Fuzzes inventory_events.ingest(jsonb) with mutated batches.

Valid event objects are built from the master data of the target database
(the demo's items, lots, units, locations and channels), then mutated with a
fixed seed: keys dropped or given twice, wrong JSON types, huge and negative
numbers, unknown skus, locations, event types and buckets, nulls, nested
garbage, deep nesting, very long strings, unicode, idempotency keys reused with
other content, elements that are not objects, empty arrays and batches that
are not arrays at all. Each batch is one ingest() call in its own transaction,
committed.

Checks, for every call:
  - an array returns one row per element, ordinals 1..n in order, each status
    one of applied, duplicate, dead_lettered (src/ingest.c), with the columns
    each status promises (an event id and version for applied and duplicate,
    a SQLSTATE and message for dead_lettered), an applied event_id naming an
    event with the element's sku, location and event type, and the
    dead_letter table grown by exactly the number of dead_lettered rows;
  - NULL or a non-array is refused, and nothing is dead-lettered;
  - every SQLSTATE (of an element, or of a refused call) is in class 22, 23
    or IE (doc/reference.md, SQLSTATEs); another one is a finding;
  - an array refused as a whole is a finding whatever its SQLSTATE: the
    documented causes of a whole-call failure (deadlock, lock timeout,
    cancel, out of memory or disk, too many locks) cannot happen in this
    single-session run with batches of at most 501 elements, so the element
    was valid (or should have been dead-lettered) and the call failed anyway;
    the batch is bisected to the element that makes the call fail, printed;
  - oracles: a plain valid receipt (fresh key, known master data) is applied;
    the exact replay of an applied keyed element is a duplicate naming the
    same event; the same key with another quantity is dead-lettered with IE003;
    an unmutated lifecycle event (reserved, released, picked, shipped,
    pick_short, moved into or out of reserved or picked) is dead-lettered
    with IE006.
Text that PostgreSQL's jsonb input itself refuses (\u0000, lone surrogates)
is counted apart: that is not ingest() speaking.
At the end: verify() returns no row, and a recount of every stream in numeric
(no overflow) equals its stored position, version and number of events.
--check-only runs only these end checks.

Findings listed in KNOWN_FINDINGS are reported on every run but fail it only
with --strict; a new finding or a failed check fails it.
Exits 0 when every check held, 1 otherwise (2 on a usage or connection error).
The last line is a summary; findings are printed above it.
Usage: ingest_fuzz.py --dsn "dbname=postgres user=fuzz_writer" --seed 1 --batches 300
"""
import argparse
import collections
import json
import random
import sys
import time

import psycopg2

STATUSES = ("applied", "duplicate", "dead_lettered")
ALLOWED_CLASSES = ("22", "23", "IE")
EVENT_TYPES = ["received", "adjusted", "counted", "reserved", "released", "picked", "shipped",
               "pick_short", "returned", "damaged", "moved", "inbound_expected", "inbound_cancelled",
               "transfer_out", "transfer_in_transit", "transfer_received", "safety_stock_set"]
LIFECYCLE = ("reserved", "released", "picked", "shipped", "pick_short")
BUCKETS = ["available", "reserved", "picked", "damaged", "quarantine", "in_transit", "inbound"]
FIELDS = ["sku", "location", "event_type", "qty", "source", "idempotency_key", "occurred_at", "lot",
          "uom", "ref", "channel", "expected_version", "payload", "from_bucket", "to_bucket", "reason",
          "expected_date", "source_seq", "correlation_id", "causation_id"]
HUGE_NUMBERS = ["9223372036854775807", "9223372036854775808", "-9223372036854775808",
                "-9223372036854775809", "123456789012345678901234567890", "1e18", "1e19", "1e308",
                "1e400", "-1e400", "1.5", "0.0000001", "-0", "0", "1.0", "1E2", "2147483648",
                "4611686018427387904", "99999999999999999999999999999999999999999999999999"]
STRANGE_STRINGS = ["", " ", "12", " 12", "12 ", "0x10", "1e3", "NaN", "Infinity", "-", "+5", "٣",
                   "null", "true", "[]", "{}", "received ", "RECEIVED", "Received", "received\u0000x",
                   "'; DROP TABLE inventory_events.event; --", "\\", "\"", "\n", "\t",
                   "\u00e9t\u00e9", "\u65e5\u672c\u8a9e", "\U0001F4E6\U0001F69A", "\u202eRTL",
                   "e\u0301", "\ufeffBOM", "\ud800", "\udfff", "%s%s%n", "$1", "\u0000"]
TIMESTAMPS = ["2026-01-01T10:00:00Z", "2020-02-29 23:59:59.999999+14", "1999-12-31", "infinity",
              "-infinity", "epoch", "now", "today", "yesterday", "4713-01-01 00:00:00 BC",
              "294276-12-31 23:59:59", "294277-01-01", "2026-13-01", "2026-02-30", "not a time",
              "", "10:00", "2026-01-01T10:00:00+25:00", "J2451187", "allballs"]


# What this fuzzer found and is not fixed yet: reported on every run as known
# findings, which fail the run only with --strict (IE_FUZZ_STRICT=1). A new
# finding always fails it. Each entry: (kind, SQLSTATE, a part of the message,
# what it is). Remove an entry when its bug is fixed.
KNOWN_FINDINGS = [
]

# The stored positions against the sum of the events, in numeric (no overflow):
# what verify() checks, independent of it.
CONSISTENCY_SQL = """
WITH d AS (
    SELECT sku, location, lot, count(*) AS events, max(version) AS version,
           sum(inventory_events.available(effect)::numeric) AS available,
           sum(inventory_events.reserved(effect)::numeric) AS reserved,
           sum(inventory_events.picked(effect)::numeric) AS picked,
           sum(inventory_events.damaged(effect)::numeric) AS damaged,
           sum(inventory_events.quarantine(effect)::numeric) AS quarantine,
           sum(inventory_events.in_transit(effect)::numeric) AS in_transit,
           sum(inventory_events.inbound(effect)::numeric) AS inbound
      FROM inventory_events.event
     GROUP BY sku, location, lot)
SELECT count(*)
  FROM inventory_events.stock s
  FULL JOIN d ON d.sku = s.sku AND d.location = s.location AND d.lot = s.lot
 WHERE s.sku IS NULL OR d.sku IS NULL OR s.version <> d.version OR d.version <> d.events
    OR (s.available::numeric, s.reserved::numeric, s.picked::numeric, s.damaged::numeric,
        s.quarantine::numeric, s.in_transit::numeric, s.inbound::numeric)
       IS DISTINCT FROM (d.available, d.reserved, d.picked, d.damaged, d.quarantine, d.in_transit, d.inbound)
"""


class Element:
    """One batch element: a JSON value, or an object kept as a list of (key,
    value) pairs so that duplicate keys can be written."""

    def __init__(self, pairs=None, raw=None):
        self.pairs = pairs      # list of [key, value] for objects
        self.raw = raw          # any other JSON value (already a Python value)
        self.expect = None      # an oracle: ("applied",), ("duplicate", original_key), ("IE003", key)
        self.record = None      # (source, key) whose outcome to remember when applied

    def get(self, key):
        for k, v in reversed(self.pairs or []):
            if k == key:
                return v
        return None

    def set(self, key, value):
        for p in self.pairs:
            if p[0] == key:
                p[1] = value
                return
        self.pairs.append([key, value])

    def to_json(self):
        if self.pairs is None:
            return json.dumps(self.raw)
        return "{" + ", ".join(json.dumps(k) + ": " + dump_value(v) for k, v in self.pairs) + "}"


class RawJson:
    """JSON text written as is (numbers that Python would reformat, deep nesting)."""

    def __init__(self, text):
        self.text = text


def dump_value(v):
    if isinstance(v, RawJson):
        return v.text
    if isinstance(v, Element):
        return v.to_json()
    if isinstance(v, list):
        return "[" + ", ".join(dump_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(json.dumps(k) + ": " + dump_value(x) for k, x in v.items()) + "}"
    return json.dumps(v)


class Fuzzer:
    def __init__(self, conn, seed, finding_limit):
        self.conn = conn
        self.rng = random.Random(seed)
        self.seed = seed
        self.finding_limit = finding_limit
        self.findings = collections.Counter()
        self.failures = []          # checks that did not hold (other than SQLSTATE findings)
        self.status_counts = collections.Counter()
        self.element_states = collections.Counter()   # SQLSTATE of dead-lettered elements
        self.call_states = collections.Counter()      # SQLSTATE of refused calls
        self.cast_states = collections.Counter()      # refused by the jsonb cast itself
        self.unexpected = collections.Counter()
        self.calls = 0
        self.elements = 0
        self.key_counter = 0
        self.applied_keys = {}      # (source, key) -> (event_id, element JSON, element)
        self.huge_streams = set()   # streams an applied huge quantity may have taken near bigint's ends
        self.load_master_data()

    # ----- master data -------------------------------------------------
    def query(self, sql, args=None):
        with self.conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall()

    def load_master_data(self):
        kits = {r[0] for r in self.query("SELECT DISTINCT kit FROM inventory_events.kit_component")}
        # Serialized items need a serial per unit (regress serial covers
        # them): not in the pool of items valid events are made of.
        self.items = [(r[0], r[1]) for r in self.query(
            "SELECT sku, lot_controlled FROM inventory_events.item WHERE NOT serialized ORDER BY sku")
            if r[0] not in kits]
        self.kits = sorted(kits)
        self.lots = collections.defaultdict(list)
        for sku, lot in self.query("SELECT sku, lot FROM inventory_events.lot ORDER BY sku, lot"):
            self.lots[sku].append(lot)
        self.uoms = collections.defaultdict(list)
        for sku, uom in self.query("SELECT sku, uom FROM inventory_events.item_uom ORDER BY sku, uom"):
            self.uoms[sku].append(uom)
        self.locations = [r[0] for r in self.query("SELECT code FROM inventory_events.location ORDER BY code")]
        self.channels = [r[0] for r in self.query("SELECT code FROM inventory_events.channel ORDER BY code")]
        # Keys unique to this run even when the same seed ran before on this database.
        self.key_prefix = "k%d-%d" % (self.seed, self.query("SELECT coalesce(max(id), 0) FROM inventory_events.event")[0][0])
        self.conn.commit()
        if not self.items or not self.locations:
            raise SystemExit("ingest_fuzz: the database has no items or locations")
        # Only lot-controlled items whose lots exist can take a valid receipt.
        self.receivable = [(s, lc) for s, lc in self.items if not lc or self.lots.get(s)]

    # ----- valid elements ----------------------------------------------
    def fresh_key(self):
        self.key_counter += 1
        return "%s-%d" % (self.key_prefix, self.key_counter)

    def valid_event(self, plain_receipt=False):
        rng = self.rng
        sku, lot_controlled = rng.choice(self.receivable)
        location = rng.choice(self.locations)
        if plain_receipt:
            etype = "received"
        else:
            etype = rng.choices(EVENT_TYPES, weights=[30, 5, 3, 8, 4, 4, 3, 2, 4, 3, 5, 4, 2, 3, 3, 3, 2])[0]
        qty = rng.randint(1, 20)
        if etype == "adjusted":
            qty = rng.choice([-1, 1]) * qty
        e = Element(pairs=[["sku", sku], ["location", location], ["event_type", etype]])
        e.pairs.append(["qty", qty if rng.random() < 0.8 else str(qty)])
        if lot_controlled and etype != "safety_stock_set":
            e.pairs.append(["lot", rng.choice(self.lots[sku])])
        if etype == "moved":
            frm, to = rng.sample(BUCKETS + [None], 2)
            if frm is None and to is None:
                to = "available"
            e.pairs.append(["from_bucket", frm])
            e.pairs.append(["to_bucket", to])
        if etype in ("inbound_expected", "transfer_in_transit") and rng.random() < 0.5:
            e.pairs.append(["expected_date", "2027-0%d-1%d" % (rng.randint(1, 9), rng.randint(0, 9))])
        if self.uoms.get(sku) and rng.random() < 0.2 and etype != "safety_stock_set":
            e.pairs.append(["uom", rng.choice(self.uoms[sku])])
        if rng.random() < 0.6 or plain_receipt:
            source = rng.choice(["fuzz-wms", "fuzz-erp", "fuzz-3pl"])
            key = self.fresh_key()
            e.pairs.append(["source", source])
            e.pairs.append(["idempotency_key", key])
            e.record = (source, key)
        if rng.random() < 0.3:
            e.pairs.append(["occurred_at", "2026-0%d-%02dT%02d:00:00Z" % (rng.randint(1, 9), rng.randint(1, 28),
                                                                          rng.randint(0, 23))])
        if rng.random() < 0.3:
            e.pairs.append(["ref", "REF-%d" % rng.randint(1, 500)])
        if rng.random() < 0.2 and self.channels:
            e.pairs.append(["channel", rng.choice(self.channels)])
        if rng.random() < 0.2:
            e.pairs.append(["reason", rng.choice(["cycle", "damage", "fuzz"])])
        if rng.random() < 0.2:
            e.pairs.append(["payload", {"asn": rng.randint(1, 99), "lines": [1, 2, {"x": None}]}])
        if rng.random() < 0.1:
            e.pairs.append(["source_seq", rng.randint(0, 10 ** 6)])
        if rng.random() < 0.1:
            e.pairs.append(["correlation_id", "%08x-0000-4000-8000-%012x" % (rng.getrandbits(32), rng.getrandbits(48))])
        if rng.random() < 0.05:
            e.pairs.append(["causation_id", "%08x-0000-4000-8000-%012x" % (rng.getrandbits(32), rng.getrandbits(48))])
        rng.shuffle(e.pairs)
        if plain_receipt:
            e.expect = ("applied",)
        elif etype in LIFECYCLE or (etype == "moved" and {e.get("from_bucket"), e.get("to_bucket")} & {"reserved", "picked"}):
            # Only the reservation functions append these (0.3.0): IE006.
            e.expect = ("IE006",)
        return e

    # ----- mutations ---------------------------------------------------
    def garbage(self, depth=0):
        rng = self.rng
        r = rng.random()
        if depth > 3 or r < 0.3:
            return rng.choice([None, True, False, 0, -1, 1.5, "x", "", [], {},
                               RawJson(rng.choice(HUGE_NUMBERS)), rng.choice(STRANGE_STRINGS)])
        if r < 0.65:
            return [self.garbage(depth + 1) for _ in range(rng.randint(0, 4))]
        return {rng.choice(FIELDS + ["x", "", "\u00e9"]): self.garbage(depth + 1) for _ in range(rng.randint(0, 4))}

    def deep(self, depth):
        kind = self.rng.random()
        if kind < 0.5:
            return RawJson("[" * depth + "1" + "]" * depth)
        return RawJson('{"a":' * depth + "null" + "}" * depth)

    def long_string(self):
        rng = self.rng
        n = rng.choice([300, 2000, 3000, 10000, 100000, 1000000])
        if rng.random() < 0.5:
            return "x" * n
        # Not compressible: random letters.
        return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(n))

    def mutate(self, e):
        """Applies one mutation to an object element; the oracle is dropped."""
        rng = self.rng
        e.expect = None
        m = rng.randrange(17)
        key = rng.choice([p[0] for p in e.pairs]) if e.pairs else "sku"
        if m == 0:      # drop a key
            e.pairs = [p for p in e.pairs if p[0] != key]
        elif m == 1:    # the same key twice, with another value
            e.pairs.insert(rng.randrange(len(e.pairs) + 1), [key, self.garbage()])
        elif m == 2:    # a wrong JSON type
            e.set(key, rng.choice([True, False, 0, 17, [], {}, [e.get(key)], {"v": e.get(key)}, 1.25]))
        elif m == 3:    # huge or fractional numbers
            e.set(rng.choice(["qty", "qty", "expected_version", "source_seq"]),
                  RawJson(rng.choice(HUGE_NUMBERS)) if rng.random() < 0.7 else rng.choice(HUGE_NUMBERS))
        elif m == 4:    # negative or zero quantity
            e.set("qty", rng.choice([-1, -5, 0, -9223372036854775807, "-3"]))
        elif m == 5:    # unknown master data or labels
            f = rng.choice(["sku", "location", "event_type", "lot", "uom", "channel", "from_bucket", "to_bucket"])
            e.set(f, rng.choice(["NO-SUCH", "", " ", "dal", "DAL ", "available", "received", "x" * 64] +
                                STRANGE_STRINGS[:20]))
        elif m == 6:    # nulls
            for p in e.pairs:
                if rng.random() < 0.4:
                    p[1] = None
        elif m == 7:    # nested garbage
            e.set(key, self.garbage())
        elif m == 8:    # deep nesting, in the payload or in a field
            e.set(rng.choice(["payload", "payload", key]), self.deep(rng.choice([50, 500, 2000, 5000])))
        elif m == 9:    # very long strings
            e.set(rng.choice(["sku", "location", "ref", "reason", "source", "idempotency_key", "lot",
                              "event_type", "channel", "uom"]), self.long_string())
        elif m == 10:   # unicode and odd strings
            e.set(rng.choice(["sku", "location", "ref", "reason", "source", "idempotency_key", "event_type",
                              "occurred_at", "expected_date", "correlation_id"]), rng.choice(STRANGE_STRINGS))
        elif m == 11:   # an unknown field
            e.pairs.append([rng.choice(["colour", "SKU", "sku ", "", "\u00e9", "qty\u0000", "Qty"]), self.garbage()])
        elif m == 12:   # odd timestamps and dates
            e.set(rng.choice(["occurred_at", "occurred_at", "expected_date"]), rng.choice(TIMESTAMPS))
        elif m == 13:   # odd uuids
            e.set(rng.choice(["correlation_id", "causation_id"]),
                  rng.choice(["", "not-a-uuid", "00000000-0000-0000-0000-000000000000",
                              "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}", "A0EEBC999C0B4EF8BB6D6BB9BD380A11", 12]))
        elif m == 14:   # expected_version, right or wrong
            e.set("expected_version", rng.choice([0, 1, 2, 1000, -1, "7"]))
        elif m == 15:   # moved with odd buckets, or buckets on other types
            e.set("from_bucket", rng.choice(BUCKETS + [None, "nowhere"]))
            e.set("to_bucket", rng.choice(BUCKETS + [None, "nowhere"]))
        else:           # a kit or a lot-controlled sku without its lot, a lot on a plain sku
            if self.kits and rng.random() < 0.4:
                e.set("sku", rng.choice(self.kits))
            else:
                e.set("lot", rng.choice(["L2027A", "L2024Z", "NOPE", ""]))
        return e

    def non_object(self):
        rng = self.rng
        return Element(raw=rng.choice([None, 1, -1, "not an object", "", True, False, [], [{}], {}, 1.5,
                                       ["sku", "MUG-WHT"], 9223372036854775807]))

    def replay(self):
        """An applied keyed element again: as is (a duplicate), or with another
        quantity (an idempotency conflict)."""
        rng = self.rng
        (source, key), (event_id, text, orig) = rng.choice(list(self.applied_keys.items()))
        e = Element(pairs=[list(p) for p in orig.pairs])
        if rng.random() < 0.6:
            if rng.random() < 0.5:
                # Key order does not matter to jsonb, once a key given twice is
                # given once (jsonb keeps the last value).
                last = {k: v for k, v in e.pairs}
                e.pairs = [[k, v] for k, v in last.items()]
                rng.shuffle(e.pairs)
            e.expect = ("duplicate", event_id)
        else:
            q = e.get("qty")
            q = int(q) if isinstance(q, (int, str)) and str(q).lstrip("-").isdigit() else None
            if q is not None and 0 < abs(q) < 10 ** 12:
                # Another quantity of the same sign: conflicts before any other check.
                e.set("qty", q + rng.randint(1, 5) if q > 0 else q - rng.randint(1, 5))
                e.expect = ("IE003",)
            else:
                e.expect = ("duplicate", event_id)
        return e

    def element(self):
        rng = self.rng
        r = rng.random()
        if r < 0.05:
            return self.non_object()
        if r < 0.15 and self.applied_keys:
            return self.replay()
        if r < 0.30:
            return self.valid_event(plain_receipt=True)
        e = self.valid_event()
        if rng.random() < 0.55:
            for _ in range(rng.choice([1, 1, 1, 2, 3])):
                self.mutate(e)
        return e

    def batch(self):
        """Returns (JSON text or None, list of elements or None when not an array)."""
        rng = self.rng
        r = rng.random()
        if r < 0.03:
            return None, None                               # SQL NULL
        if r < 0.07:
            return json.dumps(rng.choice([{}, {"sku": "MUG-WHT"}, "[]", 0, None, True, "x", 1.5])), None
        if r < 0.10:
            return "[]", []
        n = rng.choice([1, 1, 2, 3, 5, 8, 13, 20, 40]) if rng.random() < 0.97 else rng.choice([200, 500])
        elems = [self.element() for _ in range(n)]
        if n > 1 and rng.random() < 0.1:                    # an element twice in one batch
            i = rng.randrange(n)
            twin = Element(pairs=[list(p) for p in elems[i].pairs] if elems[i].pairs is not None else None,
                           raw=elems[i].raw)
            elems.insert(rng.randrange(i + 1, n + 1), twin)
        return "[" + ", ".join(e.to_json() for e in elems) + "]", elems

    # ----- checks ------------------------------------------------------
    def finding(self, kind, state, message, example):
        """Records a finding; prints the first few of each signature."""
        message = (message or "").strip().split("\n")[0]
        if message.startswith("ERROR:"):
            message = message[6:].strip()
        known = None
        for k in KNOWN_FINDINGS:
            if k[0] == kind and k[1] == state and k[2] in message:
                known = k
        sig = (kind, state, known[2] if known else message[:120], bool(known))
        self.findings[sig] += 1
        if self.findings[sig] <= 3:
            print("%s: %s, SQLSTATE %s: %s\n    %s" % ("known finding" if known else "FINDING", kind, state,
                                                    message[:300], example), flush=True)

    def failure(self, what):
        self.failures.append(what)
        if len(self.failures) <= self.finding_limit:
            print("FAIL: " + what, flush=True)

    def check_state(self, state, kind, message, example):
        if state is None or state[:2] not in ALLOWED_CLASSES:
            self.unexpected[state] += 1
            self.finding(kind, state, message, example)

    def dead_letters(self):
        return self.query("SELECT count(*) FROM inventory_events.dead_letter")[0][0]

    def run_batch(self, number):
        text, elems = self.batch()
        self.calls += 1
        before = self.dead_letters()
        self.conn.commit()
        cur = self.conn.cursor()
        try:
            cur.execute("SELECT ordinal, status, event_id, version, sqlstate, message "
                        "FROM inventory_events.ingest(%s::jsonb)", (text,))
            rows = cur.fetchall()
            self.conn.commit()
        except psycopg2.Error as err:
            self.conn.rollback()
            state = err.pgcode
            if state is None:               # the connection is gone: the server crashed
                self.failure("batch %d: no SQLSTATE (connection lost?): %s" % (number, str(err).strip()[:300]))
                raise
            if self.cast_error(text) == state:
                self.cast_states[state] += 1    # PostgreSQL's jsonb input refused it, not ingest()
            else:
                self.call_states[state] += 1
                if elems is None:
                    # NULL or not an array: refusing it is right, with a documented SQLSTATE.
                    self.check_state(state, "call SQLSTATE", err.pgerror, "batch: " + short(text))
                else:
                    # An array: every element should have had an outcome (doc/reference.md,
                    # ingest()); find the one that made the whole call fail.
                    if state[:2] not in ALLOWED_CLASSES:
                        self.unexpected[state] += 1
                    self.finding("batch refused", state, err.pgerror, self.culprit(elems))
            after = self.dead_letters()
            self.conn.commit()
            if after != before:
                self.failure("batch %d: refused with %s but dead_letter grew by %d" % (number, state, after - before))
            return
        finally:
            cur.close()

        if elems is None:
            self.failure("batch %d: a non-array batch was accepted (%d rows): %s" % (number, len(rows), short(text)))
            return
        self.elements += len(elems)
        if [r[0] for r in rows] != list(range(1, len(elems) + 1)):
            self.failure("batch %d: %d elements but ordinals %s" % (number, len(elems), [r[0] for r in rows][:50]))
            return
        applied_ids = []
        n_dead = 0
        for e, (ordinal, status, event_id, version, state, message) in zip(elems, rows):
            self.status_counts[status] += 1
            where = "batch %d element %d" % (number, ordinal)
            if status not in STATUSES:
                self.failure("%s: status %r not one of %s" % (where, status, ", ".join(STATUSES)))
                continue
            if status == "dead_lettered":
                n_dead += 1
                self.element_states[state] += 1
                if state is None or message is None or event_id is not None:
                    self.failure("%s: dead_lettered row %r" % (where, (event_id, version, state, message)))
                self.check_state(state, "element SQLSTATE", message, "element: " + short(e.to_json()))
            elif event_id is None or version is None or state is not None:
                self.failure("%s: %s row %r" % (where, status, (event_id, version, state, message)))
            if status == "applied" and event_id is not None:
                applied_ids.append((event_id, e))
                if e.record and e.record == (e.get("source"), e.get("idempotency_key")):
                    self.applied_keys[e.record] = (event_id, e.to_json(), e)
            # Oracles.
            stream = (e.get("sku"), e.get("location"), e.get("lot") or "") if e.pairs is not None else None
            if status == "applied" and not small_int(e.get("qty")):
                self.huge_streams.add(stream)
            if e.expect:
                if e.expect[0] == "applied" and stream in self.huge_streams:
                    pass        # a receipt may overflow the position there: no oracle
                elif e.expect[0] == "applied" and status != "applied":
                    self.failure("%s: a valid receipt was %s (%s %s): %s" % (where, status, state, message,
                                                                           short(e.to_json())))
                elif e.expect[0] == "duplicate" and (status != "duplicate" or event_id != e.expect[1]):
                    self.failure("%s: the replay of event %d was %s %s (%s %s)" % (where, e.expect[1], status,
                                                                                 event_id, state, message))
                elif e.expect[0] == "IE006" and (status != "dead_lettered" or state != "IE006"):
                    self.failure("%s: a lifecycle event was %s (%s %s): %s" % (where, status, state, message,
                                                                             short(e.to_json())))
                elif e.expect[0] == "IE003" and (status != "dead_lettered" or state != "IE003"):
                    self.failure("%s: a key reused with another quantity was %s (%s %s)" % (where, status, state,
                                                                                          message))
        after = self.dead_letters()
        if after - before != n_dead:
            self.failure("batch %d: %d dead_lettered statuses but dead_letter grew by %d" % (number, n_dead,
                                                                                          after - before))
        if applied_ids:
            found = {r[0]: r[1:] for r in self.query(
                "SELECT id, sku, location, event_type::text FROM inventory_events.event WHERE id = ANY(%s)",
                ([i for i, _ in applied_ids],))}
            for event_id, e in applied_ids:
                want = (e.get("sku"), e.get("location"), e.get("event_type"))
                if found.get(event_id) != want:
                    self.failure("batch %d: applied event %d is %r in the log, element says %r"
                                 % (number, event_id, found.get(event_id), want))
        self.conn.commit()

    def fails(self, elems):
        """The SQLSTATE with which ingest() refuses these elements as a whole, or
        None; in a transaction rolled back either way."""
        cur = self.conn.cursor()
        try:
            cur.execute("SELECT count(*) FROM inventory_events.ingest(%s::jsonb)",
                        ("[" + ", ".join(e.to_json() for e in elems) + "]",))
            return None
        except psycopg2.Error as err:
            return err.pgcode
        finally:
            cur.close()
            self.conn.rollback()

    def culprit(self, elems):
        """The first element whose prefix of the batch is refused as a whole."""
        if self.fails(elems) is None:
            return "batch of %d elements (not refused again alone)" % len(elems)
        lo, hi = 1, len(elems)      # the shortest failing prefix is in [lo, hi]
        while lo < hi:
            mid = (lo + hi) // 2
            if self.fails(elems[:mid]) is None:
                lo = mid + 1
            else:
                hi = mid
        return "element %d of %d: %s" % (lo, len(elems), short(elems[lo - 1].to_json(), 400))

    def cast_error(self, text):
        """The SQLSTATE with which the jsonb cast alone refuses the text, or None."""
        if text is None:
            return None
        cur = self.conn.cursor()
        try:
            cur.execute("SELECT %s::jsonb IS NULL", (text,))
            self.conn.commit()
            return None
        except psycopg2.Error as err:
            self.conn.rollback()
            return err.pgcode
        finally:
            cur.close()


def small_int(v):
    """Whether a JSON qty is an integer far from bigint's range."""
    if isinstance(v, bool):
        return False
    try:
        return abs(int(v)) < 10 ** 9 if isinstance(v, (int, str)) else False
    except ValueError:
        return False


def short(text, n=160):
    if text is None:
        return "NULL"
    text = text.replace("\n", " ")
    return text if len(text) <= n else text[:n] + "... (%d chars)" % len(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dsn", default="dbname=postgres")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--batches", type=int, default=300)
    ap.add_argument("--statement-timeout", default="60s")
    ap.add_argument("--show", type=int, default=20, help="failed checks printed at most")
    ap.add_argument("--strict", action="store_true", help="known findings fail the run too")
    ap.add_argument("--check-only", action="store_true",
                    help="no batches: only the end checks (verify(), positions = sum of events)")
    args = ap.parse_args()

    started = time.time()
    try:
        conn = psycopg2.connect(args.dsn)
    except psycopg2.Error as err:
        print("ingest_fuzz: cannot connect: %s" % err, file=sys.stderr)
        return 2
    with conn.cursor() as cur:
        cur.execute("SET statement_timeout = %s", (args.statement_timeout,))
    conn.commit()
    fz = Fuzzer(conn, args.seed, args.show)
    crashed = False
    for i in range(1, 0 if args.check_only else args.batches + 1):
        try:
            fz.run_batch(i)
        except psycopg2.Error as err:
            fz.failure("batch %d: stopped by %s: %s" % (i, err.pgcode or "a lost connection", str(err).strip()[:300]))
            crashed = True
            break

    unclean = None
    differing = None
    verify_error = None
    if not crashed:
        try:
            unclean = fz.query("SELECT count(*) FROM inventory_events.verify()")[0][0]
            conn.commit()
            if unclean != 0:
                fz.failure("verify() returns %d streams whose position is not the sum of their events" % unclean)
        except psycopg2.Error as err:
            conn.rollback()
            verify_error = err.pgcode
            fz.finding("verify() failed", err.pgcode, err.pgerror, "SELECT count(*) FROM inventory_events.verify()")
        try:
            differing = fz.query(CONSISTENCY_SQL)[0][0]
            conn.commit()
            if differing != 0:
                fz.failure("%d streams whose stored position, version or count of events differs from the "
                           "sum of their events (computed in numeric)" % differing)
        except psycopg2.Error as err:
            conn.rollback()
            fz.failure("the consistency query failed: %s" % str(err).strip())
    conn.close()

    def counts(c):
        return ", ".join("%s %d" % (k, v) for k, v in sorted(c.items(), key=lambda kv: (-kv[1], str(kv[0])))) or "none"

    checks = "verify(): %s; positions = sum of events (numeric): %s" % (
        "not run" if crashed else "failed with %s" % verify_error if verify_error else "%d streams wrong" % unclean,
        "not run" if differing is None else "%d streams wrong" % differing)
    if args.check_only:
        print("end checks: " + checks)
    else:
        print("ingest fuzz, seed %d: %d calls, %d elements in %.1f s" % (args.seed, fz.calls, fz.elements,
                                                                         time.time() - started))
        print("  element statuses: %s" % counts(fz.status_counts))
        print("  dead-lettered SQLSTATEs: %s" % counts(fz.element_states))
        print("  refused calls, SQLSTATEs: %s" % counts(fz.call_states))
        if fz.cast_states:
            print("  refused by the jsonb cast (before ingest()): %s" % counts(fz.cast_states))
        print("  " + checks)
    print("  SQLSTATEs outside 22/23/IE: %s" % counts(fz.unexpected))
    new = sum(n for sig, n in fz.findings.items() if not sig[3])
    known = sum(n for sig, n in fz.findings.items() if sig[3])
    for (kind, state, msg, is_known), n in sorted(fz.findings.items()):
        print("  %s x%d: %s, SQLSTATE %s: %s" % ("known finding" if is_known else "NEW FINDING", n, kind, state, msg))
    ok = not fz.failures and not crashed and new == 0 and (known == 0 or not args.strict)
    print("%s: %s, %d failed checks, %d new findings, %d known findings%s"
          % ("end checks" if args.check_only else "ingest fuzz", "ok" if ok else "FAILED", len(fz.failures), new, known,
             " (--strict: known findings fail)" if args.strict and known else ""))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
