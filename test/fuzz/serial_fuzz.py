#!/usr/bin/python3
"""Model-based fuzzer of the serial numbers of serialized items.

Creates a database of its own (--db, dropped first) with the extension and a
few items: two serialized skus (SA, SB), one lot-controlled serialized sku
(SL, lots A and B), one plain sku (PLAIN); three locations W1..W3; two
channels (C1 sourcing W1 then W2, C2 sourcing W2 then W3). Then runs random
operations, each its own transaction, with a Python model of where every
serial is (location, lot, bucket or outside, version, channel, ref):

  append received / returned / adjusted (+ and -) / damaged / moved
  (available <-> quarantine, damaged -> outside) / counted with serials (a
  census: every serial on hand at the stream, sometimes with serials that
  were unknown or outside, sometimes without some shelf serials) and counted
  by quantity alone; reserve, pick (serials), ship (with and without
  serials), release, pick_short; transfer (serials) and receive_transfer
  (with and without serials); inbound_expected then receive_po (serials);
  receive_return, dispose_return (restock, write_off; with and without
  serials); ingest() batches mixing valid and bad elements (a bad element is
  dead-lettered with its SQLSTATE, the others applied); deliberately wrong
  calls (a serial not there, received twice, wrong count, given twice, null,
  serials of a plain item, stock short) that must fail with the documented
  SQLSTATE (IE009, 22023, 22004, IE001) and change nothing.

Checks, after every operation (--check-every N: every N operations, and
after every failing call the "nothing changed" counters):
  - inventory_events.serial equals the model (location, lot, bucket, version,
    channel, ref of every serial);
  - per stream, the serials in each bucket equal the stock bucket (shelf =
    available + reserved), except the shelf of a stream with a pick_short (or
    a count of the quantity alone) not yet settled by a count with serials,
    which differs by what the model expects; serial_drift lists exactly the
    differing streams and buckets with those numbers;
  - serial_event: per serial versions 1..n without gaps, n = serial.version,
    its last row (event, location, bucket) is the serial's row;
  - verify() returns no row (at the end, and every --verify-every ops).
Exits 0 when every check held, 1 otherwise (2 on a usage or connection
error); the last line is a summary, FAIL lines above it.
Usage: serial_fuzz.py --dsn "dbname=postgres user=postgres" --seed 1 --ops 1500
"""
import argparse
import collections
import json
import random
import sys
import threading
import time

import psycopg2
import psycopg2.extras

SKUS = {"SA": [""], "SB": [""], "SL": ["A", "B"]}
LOCATIONS = ["W1", "W2", "W3"]
CHANNELS = {"C1": ["W1", "W2"], "C2": ["W2", "W3"]}
BUCKETS = ["available", "picked", "damaged", "quarantine", "in_transit"]
ON_HAND = ("available", "picked", "damaged", "quarantine")

SETUP_SQL = """
CREATE EXTENSION inventory_events;
INSERT INTO inventory_events.item (sku, serialized) VALUES ('SA', true), ('SB', true);
INSERT INTO inventory_events.item (sku, serialized, lot_controlled) VALUES ('SL', true, true);
INSERT INTO inventory_events.item (sku) VALUES ('PLAIN');
INSERT INTO inventory_events.lot (sku, lot) VALUES ('SL', 'A'), ('SL', 'B');
INSERT INTO inventory_events.location (code) VALUES ('W1'), ('W2'), ('W3');
INSERT INTO inventory_events.item_uom (sku, uom, factor) VALUES ('SA', 'PK2', 2);
INSERT INTO inventory_events.channel (code) VALUES ('C1');
INSERT INTO inventory_events.channel (code, allow_backorders) VALUES ('C2', true);
INSERT INTO inventory_events.channel_location (channel, location, priority)
     VALUES ('C1', 'W1', 0), ('C1', 'W2', 1), ('C2', 'W2', 0), ('C2', 'W3', 1);
"""

SERIAL_EVENT_SQL = """
SELECT s.sku, s.serial, s.version, e.n, e.lo, e.hi, l.event_id = s.event_id, l.location = s.location,
       l.bucket IS NOT DISTINCT FROM s.bucket
  FROM inventory_events.serial s
  LEFT JOIN LATERAL (SELECT count(*) AS n, min(version) AS lo, max(version) AS hi,
                            count(DISTINCT version) AS d
                       FROM inventory_events.serial_event e WHERE (e.sku, e.serial) = (s.sku, s.serial)) e ON true
  LEFT JOIN inventory_events.serial_event l ON (l.sku, l.serial, l.version) = (s.sku, s.serial, s.version)
 WHERE e.n <> s.version OR e.lo <> 1 OR e.hi <> s.version OR e.d <> e.n OR l.event_id IS NULL
    OR l.event_id <> s.event_id OR l.location <> s.location OR l.bucket IS DISTINCT FROM s.bucket
 LIMIT 5
"""

# Failing calls must change none of these.
COUNTERS_SQL = """
SELECT (SELECT count(*) FROM inventory_events.event), (SELECT count(*) FROM inventory_events.serial),
       (SELECT count(*) FROM inventory_events.serial_event),
       (SELECT coalesce(sum(version), 0) FROM inventory_events.serial)
"""


# What this fuzzer found and is not fixed yet: reported on every run as known
# findings, which fail the run only with --strict (IE_FUZZ_STRICT=1). A new
# finding always fails it. Each entry: (the wrong call, the SQLSTATE expected,
# the SQLSTATE got, what it is). Remove an entry when its bug is fixed.
KNOWN_FINDINGS = [
]


class Expected(Exception):
    pass


class Fuzzer:
    def __init__(self, conn, seed, show):
        self.conn = conn
        self.rng = random.Random(seed)
        self.show = show
        self.failures = []
        self.ops = collections.Counter()        # operation -> applied
        self.refused = collections.Counter()    # (operation, SQLSTATE) -> deliberately wrong calls refused
        self.skipped = collections.Counter()
        self.serials = {}       # (sku, serial) -> dict(location, lot, bucket, version, channel, ref, seq)
        self.offset = collections.Counter()   # stream -> expected shelf serials - stock shelf
        self.counter = 0
        self.seq = 0            # operation number: orders "first come first"
        self.refs = []          # open order lines: (channel, ref, sku)
        self.transfers = []     # (sku, to, lot, ref)
        self.returns = []       # (sku, location, lot, ref)
        self.pos = []           # (sku, location, lot, ref)
        self.op = None
        self.conn2 = None       # a second session, for op_race
        self.known = collections.Counter()    # known findings seen

    # ----- plumbing --------------------------------------------------------
    def query(self, sql, args=None):
        with self.conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall() if cur.description else None

    def fresh(self, prefix):
        self.counter += 1
        return "%s-%d" % (prefix, self.counter)

    def failure(self, what):
        self.failures.append("op %d (%s): %s" % (self.seq, self.op, what))
        if len(self.failures) <= self.show:
            print("FAIL: op %d (%s): %s" % (self.seq, self.op, what), flush=True)

    def call(self, sql, args):
        """Runs one operation in its own transaction; returns its rows, or
        raises psycopg2.Error after rolling back."""
        try:
            rows = self.query(sql, args)
            self.conn.commit()
            return rows
        except psycopg2.Error:
            self.conn.rollback()
            raise

    def must_fail(self, states, sql, args, what):
        """A deliberately wrong call: refused with one of states, nothing changed."""
        before = self.query(COUNTERS_SQL)[0]
        self.conn.commit()
        try:
            self.call(sql, args)
        except psycopg2.Error as err:
            known = [k for k in KNOWN_FINDINGS if k[0] == what and k[1] in states and k[2] == err.pgcode]
            if known:
                self.known[known[0][0]] += 1
                if self.known[known[0][0]] <= 3:
                    print("known finding: %s: expected SQLSTATE %s, got %s: %s" % (
                        what, "/".join(states), err.pgcode, str(err).strip().split("\n")[0]), flush=True)
            elif err.pgcode not in states:
                self.failure("%s: expected SQLSTATE %s, got %s: %s" % (what, "/".join(states), err.pgcode,
                                                                      str(err).strip().split("\n")[0]))
            else:
                self.refused[(self.op, err.pgcode)] += 1
        else:
            self.failure("%s: accepted, expected SQLSTATE %s (%s %r)" % (what, "/".join(states), sql, args))
            return False
        after = self.query(COUNTERS_SQL)[0]
        self.conn.commit()
        if after != before:
            self.failure("%s: refused but changed the counters (events, serials, moves, versions) %s -> %s"
                         % (what, before, after))
        return True

    def must_work(self, sql, args, what):
        try:
            return self.call(sql, args)
        except psycopg2.Error as err:
            self.failure("%s: refused with %s: %s (%s %r)" % (what, err.pgcode, str(err).strip().split("\n")[0],
                                                             sql, args))
            raise Expected()

    def stock(self):
        rows = self.query("SELECT sku, location, lot, available, reserved, picked, damaged, quarantine, in_transit,"
                          " inbound FROM inventory_events.stock")
        self.conn.commit()
        return {(r[0], r[1], r[2]): dict(zip(("available", "reserved", "picked", "damaged", "quarantine",
                                               "in_transit", "inbound"), r[3:])) for r in rows}

    # ----- the model -------------------------------------------------------
    def where(self, sku, location, lot, bucket):
        """The model's serials of a stream in a bucket, first come first."""
        out = [(v["seq"], s) for (k, s), v in self.serials.items()
               if k == sku and v["location"] == location and v["lot"] == lot and v["bucket"] == bucket]
        return [s for _, s in sorted(out)]

    def outside(self, sku):
        return sorted(s for (k, s), v in self.serials.items() if k == sku and v["bucket"] is None)

    def move(self, sku, serial, location, lot, bucket, channel=None, ref=None, moves=1):
        v = self.serials.get((sku, serial))
        if v is None:
            v = self.serials[(sku, serial)] = {"version": 0}
        v.update(location=location, lot=lot, bucket=bucket, channel=channel, ref=ref, seq=self.seq)
        v["version"] += moves

    def new_serials(self, sku, n):
        """n serials that are not in stock: fresh ones, or ones that left the books."""
        out = []
        gone = self.outside(sku)
        self.rng.shuffle(gone)
        for _ in range(n):
            if gone and self.rng.random() < 0.3:
                out.append(gone.pop())
            else:
                out.append(self.fresh(sku))
        return out

    def stream(self):
        sku = self.rng.choice(sorted(SKUS))
        return sku, self.rng.choice(LOCATIONS), self.rng.choice(SKUS[sku])

    @staticmethod
    def lot_arg(lot):
        return lot or None

    # ----- checks ----------------------------------------------------------
    def check(self):
        rows = self.query("SELECT sku, serial, location, lot, bucket::text, version, channel, ref"
                          " FROM inventory_events.serial")
        db = {(r[0], r[1]): r[2:] for r in rows}
        for key in sorted(set(db) | set(self.serials)):
            v = self.serials.get(key)
            want = None if v is None else (v["location"], v["lot"], v["bucket"], v["version"], v["channel"], v["ref"])
            if db.get(key) != want:
                self.failure("serial %s/%s: table says (location, lot, bucket, version, channel, ref) %s, the model %s"
                             % (key[0], key[1], db.get(key), want))
        # Serials against stock, and serial_drift.
        stock = self.stock()
        counts = collections.Counter()
        for (sku, _), v in self.serials.items():
            if v["bucket"] is not None:
                counts[(sku, v["location"], v["lot"], v["bucket"])] += 1
        expect = {}
        for st in set(stock) | {k[:3] for k in counts}:
            row = stock.get(st, {})
            for b in BUCKETS:
                qty = row.get(b, 0) + (row.get("reserved", 0) if b == "available" else 0)
                n = counts[st + (b,)]
                want_diff = self.offset[st] if b == "available" else 0
                if n - qty != want_diff:
                    self.failure("stream %s bucket %s: %d serials in the model, stock %d (expected difference %d)"
                                 % (st, b, n, qty, want_diff))
                if n != qty:
                    expect[st + (b,)] = (qty, n)
        drift = {(r[0], r[1], r[2], r[3]): (r[4], r[5]) for r in self.query(
            "SELECT sku, location, lot, bucket::text, stock_qty, serials FROM inventory_events.serial_drift")}
        if drift != expect:
            self.failure("serial_drift %s, expected %s" % (sorted(drift.items()), sorted(expect.items())))
        for r in self.query(SERIAL_EVENT_SQL):
            self.failure("serial_event of %s/%s (version %s): %s rows, versions %s..%s, last row matches "
                         "(event, location, bucket) %s" % (r[0], r[1], r[2], r[3], r[4], r[5], r[6:]))
        self.conn.commit()

    def verify(self):
        n = self.query("SELECT count(*) FROM inventory_events.verify()")[0][0]
        self.conn.commit()
        if n:
            self.failure("verify() returns %d rows" % n)

    # ----- operations ------------------------------------------------------
    def op_receive(self):
        sku, loc, lot = self.stream()
        n = self.rng.randint(1, 3)
        uom = "PK2" if sku == "SA" and self.rng.random() < 0.3 else None
        serials = self.new_serials(sku, n * (2 if uom else 1))
        kind = self.rng.choice(["received", "adjusted", "returned"])
        ref = self.fresh("R") if self.rng.random() < 0.5 else None
        self.must_work("SELECT inventory_events.append(%s, %s, %s, %s, lot => %s, ref => %s, uom => %s,"
                       " serials => %s)", (sku, loc, kind, n, self.lot_arg(lot), ref, uom, serials), kind)
        for s in serials:
            self.move(sku, s, loc, lot, "quarantine" if kind == "returned" else "available", None, ref)
        self.op = kind + (" (PK2)" if uom else "")
        if self.rng.random() < 0.3:
            # A retry with the key of an applied event moves nothing, whatever its serials.
            key = self.fresh("K")
            args = (sku, loc, kind, n, self.lot_arg(lot), uom, key)
            keyed = self.new_serials(sku, len(serials))
            e = self.must_work("SELECT inventory_events.append(%s, %s, %s, %s, lot => %s, uom => %s, source => 'fuzz',"
                               " idempotency_key => %s, serials => %s)", args + (keyed,), kind + " with a key")[0][0]
        else:
            return
        for sr in keyed:
            self.move(sku, sr, loc, lot, "quarantine" if kind == "returned" else "available")
        again = keyed if self.rng.random() < 0.5 else self.new_serials(sku, len(keyed))
        e2 = self.must_work("SELECT inventory_events.append(%s, %s, %s, %s, lot => %s, uom => %s, source => 'fuzz',"
                            " idempotency_key => %s, serials => %s)", args + (again,), kind + " retried")[0][0]
        if e2 != e:
            self.failure("a retry of event %s returned event %s" % (e, e2))
        self.op = kind + " retried"

    def op_return(self):
        """receive_return then, later, dispose_return."""
        sku, loc, lot = self.stream()
        n = self.rng.randint(1, 3)
        serials = self.new_serials(sku, n)
        ref = self.fresh("RMA")
        ch = self.rng.choice([None, "C1", "C2"])
        self.must_work("SELECT inventory_events.receive_return(%s, %s, %s, %s, lot => %s, channel => %s,"
                       " serials => %s)", (sku, loc, n, ref, self.lot_arg(lot), ch, serials), "receive_return")
        for s in serials:
            self.move(sku, s, loc, lot, "quarantine", ch, ref)
        self.returns.append((sku, loc, lot, ref))

    def op_dispose(self):
        if not self.returns:
            return self.skip()
        sku, loc, lot, ref = self.rng.choice(self.returns)
        mine = [s for s in self.where(sku, loc, lot, "quarantine") if self.serials[(sku, s)]["ref"] == ref]
        if not mine:
            self.returns.remove((sku, loc, lot, ref))
            return self.skip()
        k = self.rng.randint(1, len(mine))
        disp = self.rng.choice(["restock", "write_off"])
        named = self.rng.random() < 0.5
        serials = self.rng.sample(mine, k) if named else None
        self.must_work("SELECT inventory_events.dispose_return(%s, %s, %s, %s, ref => %s, lot => %s, serials => %s)",
                       (sku, loc, k, disp, ref, self.lot_arg(lot), serials), "dispose_return")
        for s in (serials if named else mine[:k]):
            self.move(sku, s, loc, lot, "available" if disp == "restock" else None, None, ref)

    def shelf_pick(self, sku, loc, lot, n):
        shelf = self.where(sku, loc, lot, "available")
        return self.rng.sample(shelf, n) if len(shelf) >= n else None

    def op_take(self):
        """adjusted -n, damaged, moved available -> quarantine: shelf serials out."""
        sku, loc, lot = self.stream()
        st = self.stock().get((sku, loc, lot), {})
        kind = self.rng.choice(["adjusted", "damaged", "moved"])
        n = self.rng.randint(1, 2)
        serials = self.shelf_pick(sku, loc, lot, n)
        if serials is None:
            return self.skip()
        if kind != "adjusted" and st.get("available", 0) < n:
            # Stock short (reserved, or a pick_short's drift): IE001.
            return self.must_fail(("IE001",), "SELECT inventory_events.append(%s, %s, %s, %s, lot => %s,"
                                  " from_bucket => %s, to_bucket => %s, serials => %s)",
                                  (sku, loc, kind, n, self.lot_arg(lot), "available" if kind == "moved" else None,
                                   "quarantine" if kind == "moved" else None, serials), "%s with stock short" % kind)
        self.must_work("SELECT inventory_events.append(%s, %s, %s, %s, lot => %s, from_bucket => %s,"
                       " to_bucket => %s, serials => %s)",
                       (sku, loc, kind, -n if kind == "adjusted" else n, self.lot_arg(lot),
                        "available" if kind == "moved" else None, "quarantine" if kind == "moved" else None, serials),
                       kind)
        for s in serials:
            self.move(sku, s, loc, lot, {"adjusted": None, "damaged": "damaged", "moved": "quarantine"}[kind])

    def op_move_back(self):
        """moved quarantine -> available, damaged -> outside."""
        sku, loc, lot = self.stream()
        frm = self.rng.choice(["quarantine", "damaged"])
        have = self.where(sku, loc, lot, frm)
        if not have:
            return self.skip()
        serials = self.rng.sample(have, self.rng.randint(1, min(2, len(have))))
        to = "available" if frm == "quarantine" else None
        self.must_work("SELECT inventory_events.append(%s, %s, 'moved', %s, lot => %s, from_bucket => %s,"
                       " to_bucket => %s, serials => %s)", (sku, loc, len(serials), self.lot_arg(lot), frm, to, serials),
                       "moved from " + frm)
        for s in serials:
            self.move(sku, s, loc, lot, to)

    def census(self, sku, loc, lot):
        return [s for b in ON_HAND for s in self.where(sku, loc, lot, b)]

    def op_count(self):
        sku, loc, lot = self.stream()
        listed = self.census(sku, loc, lot)
        shelf = self.where(sku, loc, lot, "available")
        r = self.rng.random()
        if r < 0.15:
            # A count of the quantity alone: the shelf's serials stay, stock follows the count.
            qty = max(0, len(listed) + self.rng.randint(-2, 2))
            self.must_work("SELECT inventory_events.append(%s, %s, 'counted', %s, lot => %s)",
                           (sku, loc, qty, self.lot_arg(lot)), "counted by quantity")
            st = self.stock().get((sku, loc, lot), {})
            self.offset[(sku, loc, lot)] = len(shelf) - st.get("available", 0) - st.get("reserved", 0)
            self.op = "counted by quantity"
            return
        lost = []
        if shelf and self.rng.random() < 0.3:
            lost = self.rng.sample(shelf, self.rng.randint(1, min(2, len(shelf))))
        found = self.new_serials(sku, self.rng.randint(1, 2)) if self.rng.random() < 0.3 else []
        listed = [s for s in listed if s not in lost] + found
        self.rng.shuffle(listed)
        self.must_work("SELECT inventory_events.append(%s, %s, 'counted', %s, lot => %s, serials => %s::text[])",
                       (sku, loc, len(listed), self.lot_arg(lot), listed), "counted with serials")
        for s in lost:
            self.move(sku, s, loc, lot, None)
        for s in found:
            self.move(sku, s, loc, lot, "available")
        self.offset[(sku, loc, lot)] = 0
        self.op = "counted with serials" + (" (lost)" if lost else "") + (" (found)" if found else "")

    def op_reserve(self):
        ch = self.rng.choice(sorted(CHANNELS))
        sku = self.rng.choice(sorted(SKUS))
        ref = self.fresh("O")
        try:
            self.call("SELECT * FROM inventory_events.reserve(%s, %s, %s, %s)", (ch, sku, self.rng.randint(1, 3), ref))
        except psycopg2.Error as err:
            if err.pgcode != "IE005":
                self.failure("reserve: %s %s" % (err.pgcode, str(err).strip().split("\n")[0]))
            return self.skip()
        self.refs.append((ch, ref, sku))

    def allocations(self, ch, ref):
        rows = self.query("SELECT a.location, a.lot, sum(a.reserved)::bigint, sum(a.picked)::bigint FROM inventory_events.allocation a"
                          " JOIN inventory_events.reservation r ON r.id = a.reservation_id"
                          " WHERE r.channel = %s AND r.ref = %s GROUP BY 1, 2 ORDER BY 1, 2", (ch, ref))
        self.conn.commit()
        return rows

    def reserved_line(self):
        """A random order line with units still reserved: (channel, ref, sku, its allocations with
        reserved units), or None."""
        if not self.refs:
            return None
        ch, ref, sku = self.rng.choice(self.refs)
        allocs = [a for a in self.allocations(ch, ref) if a[2] > 0]
        return (ch, ref, sku, allocs) if allocs else None

    def picked_of(self, sku, ch, ref):
        out = [(v["seq"], s, v["location"], v["lot"]) for (k, s), v in self.serials.items()
               if k == sku and v["bucket"] == "picked" and v["ref"] == ref and v["channel"] == ch]
        return sorted(out)

    def op_pick(self):
        line = self.reserved_line()
        if line is None:
            return self.skip()
        ch, ref, sku, allocs = line
        loc = self.rng.choice(allocs)[0]
        here = [a for a in allocs if a[0] == loc]
        qty = None
        if len(here) == 1 and self.rng.random() < 0.4:
            qty = self.rng.randint(1, here[0][2])
            want = {(loc, here[0][1]): qty}
        else:
            want = {(a[0], a[1]): a[2] for a in here}
        serials = []
        for (l, lot), n in sorted(want.items()):
            got = self.shelf_pick(sku, l, lot, n)
            if got is None:
                return self.skip()
            serials += got
        # Wrong calls first: one serial too few, a serial not on the shelf.
        r = self.rng.random()
        if r < 0.1:
            return self.must_fail(("22023",), "SELECT * FROM inventory_events.pick(%s, %s, %s, %s, serials => %s)",
                                  (ch, ref, qty, loc, serials[:-1]), "pick with one serial too few")
        if r < 0.2:
            other = [s for (k, s), v in self.serials.items() if k == sku and v["bucket"] != "available"] + \
                [self.fresh(sku)]
            bad = serials[:-1] + [self.rng.choice(other)]
            return self.must_fail(("IE009",), "SELECT * FROM inventory_events.pick(%s, %s, %s, %s, serials => %s)",
                                  (ch, ref, qty, loc, bad), "pick of a serial not on the shelf")
        rows = self.must_work("SELECT location, lot, qty FROM inventory_events.pick(%s, %s, %s, %s, serials => %s)",
                              (ch, ref, qty, loc, serials), "pick")
        got = collections.Counter()
        for l, lot, q in rows:
            got[(l, lot)] += q
        if dict(got) != want:
            self.failure("pick moved %s, expected %s" % (dict(got), want))
        for s in serials:
            self.move(sku, s, loc, self.serials[(sku, s)]["lot"], "picked", ch, ref)

    def op_ship(self):
        if not self.refs:
            return self.skip()
        ch, ref, sku = self.rng.choice(self.refs)
        picked = self.picked_of(sku, ch, ref)
        if not picked:
            return self.skip()
        streams = {(p[2], p[3]) for p in picked}
        named = self.rng.random() < 0.5
        if named and self.rng.random() < 0.1:
            shelf = [s for (k, s), v in self.serials.items() if k == sku and v["bucket"] == "available"]
            if shelf:
                return self.must_fail(("IE009",), "SELECT * FROM inventory_events.ship(%s, %s, 1, serials => %s)",
                                      (ch, ref, [self.rng.choice(shelf)]), "ship of a serial on the shelf")
        if named:
            if len(streams) == 1 and self.rng.random() < 0.5:
                chosen = self.rng.sample([p[1] for p in picked], self.rng.randint(1, len(picked)))
                qty = len(chosen)
            else:
                chosen, qty = [p[1] for p in picked], None
                self.rng.shuffle(chosen)
            rows = self.must_work("SELECT location, lot, qty FROM inventory_events.ship(%s, %s, %s, serials => %s)",
                                  (ch, ref, qty, chosen), "ship with serials")
            if sum(r[2] for r in rows) != len(chosen):
                self.failure("ship of %d serials shipped %s" % (len(chosen), rows))
            for s in chosen:
                v = self.serials[(sku, s)]
                self.move(sku, s, v["location"], v["lot"], None, ch, ref)
            return
        qty = self.rng.randint(1, len(picked)) if self.rng.random() < 0.5 else None
        rows = self.must_work("SELECT location, lot, qty FROM inventory_events.ship(%s, %s, %s)", (ch, ref, qty),
                              "ship without serials")
        shipped = set()
        for loc, lot, q in rows:
            mine = [p[1] for p in picked if (p[2], p[3]) == (loc, lot) and p[1] not in shipped][:q]
            shipped.update(mine)
            if len(mine) < q:
                self.failure("ship without serials shipped %d at %s/%s, the line picked %d there" % (q, loc, lot,
                                                                                                    len(mine)))
            for s in mine:
                self.move(sku, s, loc, lot, None, ch, ref)
        self.op = "ship without serials"

    def op_release(self):
        line = self.reserved_line()
        if line is None:
            return self.skip()
        ch, ref, sku, allocs = line
        self.must_work("SELECT * FROM inventory_events.release(%s, %s, %s)",
                       (ch, ref, self.rng.choice([None, 1])), "release")

    def op_pick_short(self):
        line = self.reserved_line()
        if line is None:
            return self.skip()
        ch, ref, sku, allocs = line
        rows = self.must_work("SELECT event_type::text, location, lot, qty FROM inventory_events.pick_short(%s, %s, 1)",
                              (ch, ref), "pick_short")
        for et, loc, lot, q in rows:
            if et == "pick_short":
                self.offset[(sku, loc, lot)] += q

    def op_transfer(self):
        sku, frm, lot = self.stream()
        to = self.rng.choice([l for l in LOCATIONS if l != frm])
        n = self.rng.randint(1, 2)
        serials = self.shelf_pick(sku, frm, lot, n)
        if serials is None:
            return self.skip()
        ref = self.fresh("T")
        args = (sku, frm, to, n, ref, self.lot_arg(lot), serials)
        sql = "SELECT * FROM inventory_events.transfer(%s, %s, %s, %s, %s, lot => %s, serials => %s)"
        if self.stock().get((sku, frm, lot), {}).get("available", 0) < n:
            return self.must_fail(("IE001",), sql, args, "transfer with stock short")
        if self.rng.random() < 0.1:
            bad = serials[:-1] + [self.fresh(sku)]
            return self.must_fail(("IE009",), sql, args[:-1] + (bad,), "transfer of an unknown serial")
        self.must_work(sql, args, "transfer")
        for s in serials:
            self.move(sku, s, to, lot, "in_transit", None, ref, moves=2)
        self.transfers.append((sku, to, lot, ref))

    def op_receive_transfer(self):
        if not self.transfers:
            return self.skip()
        t = self.rng.choice(self.transfers)
        sku, to, lot, ref = t
        mine = [s for s in self.where(sku, to, lot, "in_transit") if self.serials[(sku, s)]["ref"] == ref]
        if not mine:
            self.transfers.remove(t)
            return self.skip()
        k = self.rng.randint(1, len(mine))
        named = self.rng.random() < 0.5
        serials = self.rng.sample(mine, k) if named else None
        sql = "SELECT inventory_events.receive_transfer(%s, %s, %s, %s, lot => %s, serials => %s)"
        if named and self.rng.random() < 0.1:
            return self.must_fail(("22023",), sql, (sku, to, k, ref, self.lot_arg(lot), serials + [serials[0]]),
                                  "receive_transfer with a serial given twice")
        self.must_work(sql, (sku, to, k, ref, self.lot_arg(lot), serials),
                       "receive_transfer " + ("with" if named else "without") + " serials")
        for s in (serials if named else mine[:k]):
            self.move(sku, s, to, lot, "available", None, ref)
        self.op = "receive_transfer " + ("with" if named else "without") + " serials"

    def op_po(self):
        if self.pos and self.rng.random() < 0.6:
            sku, loc, lot, ref = self.rng.choice(self.pos)
            n = self.rng.randint(1, 3)
            serials = self.new_serials(sku, n)
            self.must_work("SELECT * FROM inventory_events.receive_po(%s, %s, %s, %s, lot => %s, serials => %s)",
                           (sku, loc, n, ref, self.lot_arg(lot), serials), "receive_po")
            for s in serials:
                self.move(sku, s, loc, lot, "available", None, ref)
            self.op = "receive_po"
            return
        sku, loc, lot = self.stream()
        ref = self.fresh("PO")
        self.must_work("SELECT inventory_events.append(%s, %s, 'inbound_expected', %s, lot => %s, ref => %s)",
                       (sku, loc, self.rng.randint(1, 3), self.lot_arg(lot), ref), "inbound_expected")
        self.pos.append((sku, loc, lot, ref))
        self.op = "inbound_expected"

    def op_wrong(self):
        """Deliberately wrong appends, each with its documented SQLSTATE."""
        sku, loc, lot = self.stream()
        instock = [s for (k, s), v in self.serials.items() if k == sku and v["bucket"] is not None]
        shelf = self.where(sku, loc, lot, "available")
        st = self.stock().get((sku, loc, lot), {})
        app = "SELECT inventory_events.append(%s, %s, %s, %s, lot => %s, serials => %s)"
        r = self.rng.randrange(8)
        if r == 0 and instock:
            self.must_fail(("IE009",), app, (sku, loc, "received", 1, self.lot_arg(lot), [self.rng.choice(instock)]),
                           "received a serial in stock")
        elif r == 1:
            self.must_fail(("22023",), app, (sku, loc, "received", 2, self.lot_arg(lot), [self.fresh(sku)]),
                           "received with too few serials")
        elif r == 2:
            s = self.fresh(sku)
            self.must_fail(("22023",), app, (sku, loc, "received", 2, self.lot_arg(lot), [s, s]),
                           "received with a serial given twice")
        elif r == 3:
            self.must_fail(("22004",), app, (sku, loc, "received", 1, self.lot_arg(lot), [None]),
                           "received with a null serial")
        elif r == 4:
            self.must_fail(("22023",), app, ("PLAIN", loc, "received", 1, None, [self.fresh("P")]),
                           "serials for a plain item")
        elif r == 5 and st.get("available", 0) >= 1:
            self.must_fail(("IE009",), app, (sku, loc, "damaged", 1, self.lot_arg(lot), [self.fresh(sku)]),
                           "damaged of an unknown serial")
        elif r == 6 and shelf and st.get("available", 0) < 1:
            self.must_fail(("IE001",), app, (sku, loc, "damaged", 1, self.lot_arg(lot), [shelf[0]]),
                           "damaged with stock short")
        elif r == 7:
            census = self.census(sku, loc, lot)
            others = [s for s in census if self.serials[(sku, s)]["bucket"] != "available"]
            elsewhere = [s for (k, s), v in self.serials.items() if k == sku and v["bucket"] in ON_HAND
                         and v["location"] != loc]
            sql = "SELECT inventory_events.append(%s, %s, 'counted', %s, lot => %s, serials => %s::text[])"
            transit = self.where(sku, loc, lot, "in_transit")
            if transit and self.rng.random() < 0.5:
                listed = census + [transit[0]]
                self.must_fail(("IE009",), sql, (sku, loc, len(listed), self.lot_arg(lot), listed),
                               "count listing a serial in transit to the location")
            elif others:
                listed = [s for s in census if s != others[0]]
                self.must_fail(("IE009",), sql, (sku, loc, len(listed), self.lot_arg(lot), listed),
                               "count leaving out a serial on hand off the shelf")
            elif elsewhere:
                listed = census + [elsewhere[0]]
                self.must_fail(("IE009",), sql, (sku, loc, len(listed), self.lot_arg(lot), listed),
                               "count listing a serial in stock elsewhere")
            else:
                self.must_fail(("22023",), sql, (sku, loc, len(census) + 1, self.lot_arg(lot), census),
                               "count with one serial too few")
        else:
            return self.skip()

    def op_ingest(self):
        """A batch: valid receipts and shelf moves, and bad elements dead-lettered."""
        elems = []
        expect = []
        stock = self.stock()
        used = set()
        moves = []
        for _ in range(self.rng.randint(2, 6)):
            sku, loc, lot = self.stream()
            e = {"sku": sku, "location": loc, "source": "fuzz", "idempotency_key": self.fresh("K")}
            if lot:
                e["lot"] = lot
            r = self.rng.randrange(6)
            if r <= 1:
                serials = [s for s in self.new_serials(sku, self.rng.randint(1, 2)) if (sku, s) not in used]
                if not serials:
                    continue
                e.update(event_type="received", qty=len(serials), serials=serials)
                used.update((sku, s) for s in serials)
                expect.append(None)
                moves.append([(sku, s, loc, lot, "available") for s in serials])
            elif r == 2:
                shelf = [s for s in self.where(sku, loc, lot, "available") if (sku, s) not in used]
                st = stock.setdefault((sku, loc, lot), {"available": 0})
                if not shelf or st["available"] < 1:
                    continue
                s = self.rng.choice(shelf)
                st["available"] -= 1
                e.update(event_type="damaged", qty=1, serials=[s])
                used.add((sku, s))
                expect.append(None)
                moves.append([(sku, s, loc, lot, "damaged")])
            elif r == 3:
                instock = [s for (k, s), v in self.serials.items() if k == sku and v["bucket"] is not None
                           and (sku, s) not in used]
                if not instock:
                    continue
                e.update(event_type="received", qty=1, serials=[self.rng.choice(instock)])
                expect.append("IE009")
                moves.append([])
            elif r == 4:
                s = self.fresh(sku)
                e.update(event_type="received", qty=2, serials=self.rng.choice([[s], [s, s], s, [1, 2]]))
                expect.append("22023")
                moves.append([])
            else:
                e.update(event_type="received", qty=1)
                expect.append("22023")  # no serials for a serialized item
                moves.append([])
            elems.append(e)
        if not elems:
            return self.skip()
        dl_before = self.query("SELECT count(*) FROM inventory_events.dead_letter")[0][0]
        rows = self.must_work("SELECT ordinal, status, sqlstate, message FROM inventory_events.ingest(%s::jsonb)"
                              " ORDER BY ordinal", (json.dumps(elems),), "ingest")
        dl_after = self.query("SELECT count(*) FROM inventory_events.dead_letter")[0][0]
        self.conn.commit()
        if len(rows) != len(elems):
            self.failure("ingest of %d elements returned %d rows" % (len(elems), len(rows)))
        dead = 0
        for (ordinal, status, state, msg), want, mv, e in zip(rows, expect, moves, elems):
            if want is None:
                if status != "applied":
                    self.failure("ingest element %d %s: %s %s %s, expected applied" % (ordinal, json.dumps(e), status,
                                                                                    state, msg))
                    continue
                for sku, s, loc, lot, b in mv:
                    self.move(sku, s, loc, lot, b)
            else:
                dead += 1
                if status != "dead_lettered" or state != want:
                    self.failure("ingest element %d %s: %s %s %s, expected dead_lettered %s"
                                 % (ordinal, json.dumps(e), status, state, msg, want))
                else:
                    self.refused[("ingest element", state)] += 1
        if dl_after - dl_before != dead:
            self.failure("ingest: dead_letter grew by %d, %d elements dead-lettered" % (dl_after - dl_before, dead))

    def op_race(self):
        """Two sessions move one serial at once: the second waits for the first;
        when the first commits the second is refused (IE009), when it rolls back
        the second is applied. Under READ COMMITTED or REPEATABLE READ."""
        if self.conn2 is None:
            return self.skip()
        sku, loc, lot = self.stream()
        app = "SELECT inventory_events.append(%s, %s, %s, %s, lot => %s, serials => %s)"
        if self.rng.random() < 0.5:
            # One new serial received at two locations (or the same one).
            s = self.fresh(sku)
            loc2 = self.rng.choice(LOCATIONS)
            first = (app, (sku, loc, "received", 1, self.lot_arg(lot), [s]), (loc, lot, "available"))
            second = (app, (sku, loc2, "adjusted", 1, self.lot_arg(lot), [s]), (loc2, lot, "available"))
            self.op = "race: one new serial received twice"
        else:
            shelf = self.where(sku, loc, lot, "available")
            if not shelf:
                return self.skip()
            s = self.rng.choice(shelf)
            first = (app, (sku, loc, "adjusted", -1, self.lot_arg(lot), [s]), (loc, lot, None))
            to = self.rng.choice(LOCATIONS)
            second = ("SELECT * FROM inventory_events.transfer(%s, %s, %s, 1, %s, lot => %s, serials => %s)",
                      (sku, loc, to, self.fresh("T"), self.lot_arg(lot), [s]), None) \
                if to != loc and self.stock().get((sku, loc, lot), {}).get("available", 0) >= 1 else \
                (app, (sku, loc, "adjusted", -1, self.lot_arg(lot), [s]), (loc, lot, None))
            self.op = "race: one shelf serial taken twice"
        iso = self.rng.choice(["READ COMMITTED", "REPEATABLE READ"])
        commit = self.rng.random() < 0.7
        c2 = self.conn2
        result = {}

        def run_second():
            try:
                with self.conn.cursor() as cur:
                    cur.execute("SET TRANSACTION ISOLATION LEVEL " + iso)
                    cur.execute(second[0], second[1])
                self.conn.commit()
                result["ok"] = True
            except psycopg2.Error as err:
                self.conn.rollback()
                result["err"] = err
        try:
            with c2.cursor() as cur:
                cur.execute(first[0], first[1])
        except psycopg2.Error as err:
            c2.rollback()
            self.failure("the first session's move was refused: %s %s" % (err.pgcode, str(err).strip()[:200]))
            return
        t = threading.Thread(target=run_second)
        t.start()
        t.join(0.2)
        if not t.is_alive():
            result["early"] = True
        (c2.commit if commit else c2.rollback)()
        t.join(30)
        if t.is_alive():
            self.failure("the second session still waits 30 s after the first ended")
            return
        if commit:
            self.move(sku, s, *first[2])
            # A transfer checks the stock first: IE001 once the first took the last unit.
            states = ("IE009", "IE001") if second[2] is None else ("IE009",)
            if "err" not in result or result["err"].pgcode not in states:
                self.failure("%s, %s: the second session %s after the first committed, expected IE009 (%s %r)"
                             % (self.op, iso, "succeeded" if "ok" in result else "failed with %s: %s" % (
                                 result["err"].pgcode, str(result["err"]).strip().split("\n")[0]),
                                second[0], second[1]))
                if "ok" in result:
                    self.reload(sku, s)
        else:
            if "ok" not in result:
                self.failure("%s, %s: the second session failed after the first rolled back: %s %s"
                             % (self.op, iso, result["err"].pgcode, str(result["err"]).strip().split("\n")[0]))
            elif second[2] is None:
                self.move(sku, s, second[1][2], lot, "in_transit", None, second[1][3], moves=2)
            else:
                self.move(sku, s, *second[2])
        self.op += " (%s, %s)" % (iso, "commit" if commit else "rollback")

    def reload(self, sku, serial):
        """After a failed check, the model takes the table's word for one serial."""
        r = self.query("SELECT location, lot, bucket::text, version, channel, ref FROM inventory_events.serial"
                       " WHERE sku = %s AND serial = %s", (sku, serial))
        self.conn.commit()
        if r:
            self.serials[(sku, serial)] = dict(zip(("location", "lot", "bucket", "version", "channel", "ref"), r[0]),
                                               seq=self.seq)

    def skip(self):
        self.skipped[self.op] += 1
        return None

    OPS = [("receive", op_receive, 10), ("return", op_return, 4), ("dispose_return", op_dispose, 4),
           ("take", op_take, 8), ("move_back", op_move_back, 5), ("count", op_count, 6), ("reserve", op_reserve, 10),
           ("pick", op_pick, 10), ("ship", op_ship, 8), ("release", op_release, 3), ("pick_short", op_pick_short, 3),
           ("transfer", op_transfer, 6), ("receive_transfer", op_receive_transfer, 6), ("po", op_po, 5),
           ("wrong", op_wrong, 8), ("ingest", op_ingest, 4), ("race", op_race, 3)]

    def step(self):
        self.seq += 1
        names, fns, weights = zip(*self.OPS)
        i = self.rng.choices(range(len(fns)), weights)[0]
        self.op = names[i]
        try:
            fns[i](self)
        except Expected:
            pass
        self.ops[self.op] += 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dsn", default="dbname=postgres", help="where to create the fuzz database (a superuser)")
    ap.add_argument("--db", default="serial_fuzz", help="the database created (dropped first) for the run")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--ops", type=int, default=1500)
    ap.add_argument("--check-every", type=int, default=1)
    ap.add_argument("--verify-every", type=int, default=200)
    ap.add_argument("--sessions", type=int, default=2, help="2: a second session races the first now and then")
    ap.add_argument("--strict", action="store_true", help="known findings fail the run too")
    ap.add_argument("--show", type=int, default=20, help="failed checks printed at most")
    args = ap.parse_args()
    started = time.time()
    try:
        admin = psycopg2.connect(args.dsn)
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute("DROP DATABASE IF EXISTS %s" % args.db)
            cur.execute("CREATE DATABASE %s" % args.db)
        admin.close()
        conn = psycopg2.connect(args.dsn + " dbname=" + args.db)
        with conn.cursor() as cur:
            cur.execute(SETUP_SQL)
        conn.commit()
    except psycopg2.Error as err:
        print("serial_fuzz: cannot set up: %s" % err, file=sys.stderr)
        return 2
    fz = Fuzzer(conn, args.seed, args.show)
    if args.sessions > 1:
        fz.conn2 = psycopg2.connect(args.dsn + " dbname=" + args.db)
    crashed = False
    for i in range(1, args.ops + 1):
        try:
            fz.step()
            if i % args.check_every == 0 or i == args.ops:
                fz.check()
            if i % args.verify_every == 0 or i == args.ops:
                fz.verify()
        except psycopg2.Error as err:
            fz.failure("stopped by %s: %s" % (err.pgcode or "a lost connection", str(err).strip()[:300]))
            crashed = True
            break
        if len(fz.failures) > 200:
            print("serial_fuzz: too many failures, stopping", flush=True)
            break
    conn.close()

    def counts(c):
        return ", ".join("%s %d" % (k if isinstance(k, str) else "/".join(k), v)
                         for k, v in sorted(c.items(), key=lambda kv: -kv[1])) or "none"

    print("serial fuzz, seed %d: %d operations in %.1f s, %d serials" % (args.seed, fz.seq, time.time() - started,
                                                                        len(fz.serials)))
    print("  operations: %s" % counts(fz.ops))
    print("  refused as expected: %s" % counts(fz.refused))
    print("  skipped (nothing to do): %s" % counts(fz.skipped))
    for what, n in sorted(fz.known.items()):
        print("  known finding x%d: %s" % (n, [k[3] for k in KNOWN_FINDINGS if k[0] == what][0]))
    ok = not fz.failures and not crashed and (not fz.known or not args.strict)
    print("serial fuzz: %s, %d failed checks, %d known findings%s (serial = model, serials = stock but known drift, serial_drift, "
          "serial_event versions, verify(), refusals with their SQLSTATE and nothing changed)"
          % ("ok" if ok else "FAILED", len(fz.failures), sum(fz.known.values()),
             " (--strict: known findings fail)" if args.strict and fz.known else ""))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
