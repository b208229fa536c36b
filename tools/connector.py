#!/usr/bin/python3
"""Reference connector for inventory_events channel publications.

Delivers what a sales channel should show, in order, to a sink (here: JSON
lines on stdout), and survives disconnections, restarts and lost or forged
notifications:

    connect; LISTEN "inventory_events.<channel>"
    catch up: publications_since(channel, last acknowledged seq) -> sink -> ack
    loop: wait for a NOTIFY or a timeout -> catch up again
    connection lost: reconnect with backoff, and catch up again

The NOTIFY payload ({"seq": N}) is never trusted: any role that can connect
can NOTIFY any channel with any payload. A notification only says "read
now"; the values come from publications_since(), which checks privileges
(the role needs grant_access(role, 'reader')). A lost notification only
delays delivery until the next timeout.

Delivery is at least once: the last seq is acknowledged (persisted in the
state file) only after the sink accepted the rows, so a crash between the two
delivers those rows again on restart. Sequence numbers are gap-free per
channel, so a sink recognises a repeat by (channel, seq) <= the last it applied.

  connector.py --dsn 'host=... dbname=... user=...' --channel shopify,amazon \\
               --state-file /var/lib/ie/shopify.state [--once] [--max-seconds N]

Requires python3-psycopg2 (Debian).
"""
import argparse
import json
import os
import select
import sys
import tempfile
import time

import psycopg2
import psycopg2.extensions
from psycopg2 import sql

BATCH = 1000            # rows per round trip while catching up, and per acknowledgement
BACKOFF_MIN, BACKOFF_MAX = 0.5, 30.0


def log(msg):
    print('connector: ' + msg, file=sys.stderr, flush=True)


def notify_name(channel):
    # What inventory_events.notify_channel(channel) returns; computed here so
    # the connector needs nothing but publications_since().
    return 'inventory_events.' + channel


class State:
    """The last acknowledged seq per channel, in a small JSON file."""

    def __init__(self, path, channels):
        self.path = path
        self.seq = {c: 0 for c in channels}
        if path and os.path.exists(path):
            with open(path) as f:
                # A damaged file is an error, not a reason to start from 0.
                saved = json.load(f)
            self.seq.update({c: int(s) for c, s in saved.items() if c in self.seq})

    def ack(self, channel, seq):
        self.seq[channel] = seq
        if not self.path:
            return
        # Atomic: a temporary file in the same directory, flushed to disk,
        # renamed over the old one. A crash leaves the old or the new state,
        # never a torn one. (The directory is not flushed: a rename lost in a
        # power failure leaves the old state, so rows are delivered again,
        # which at-least-once allows; it would cost a second fsync per ack.)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(self.path)),
                                   prefix='.connector-state-')
        try:
            with os.fdopen(fd, 'w') as f:
                json.dump(self.seq, f, sort_keys=True)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            os.unlink(tmp)
            raise


class StdoutSink:
    """One JSON line per publication. Accepted once written and flushed."""

    def __init__(self, latency):
        self.latency = latency

    def send(self, channel, seq, sku, channel_sku, available, published_at):
        # channel_sku: the identifier the channel knows the sku by (its
        # listing's; our sku on a channel without listings).
        row = {'channel': channel, 'seq': seq, 'sku': sku, 'channel_sku': channel_sku,
               'available': available, 'published_at': published_at.isoformat()}
        if self.latency:
            # For test/bench: when this row reached the connector (epoch s).
            row['received_at'] = round(time.time(), 6)
        sys.stdout.write(json.dumps(row) + '\n')
        sys.stdout.flush()      # raises if the reader is gone: then no ack


class GapError(Exception):
    pass


def connect(dsn):
    # Named in pg_stat_activity (and channel_health's horizon column) unless
    # the DSN names it otherwise.
    name = {} if 'application_name' in psycopg2.extensions.parse_dsn(dsn) \
        else {'application_name': 'inventory_events connector'}
    conn = psycopg2.connect(dsn, **name)
    # Not autocommit: catch_up() reads through a server-side cursor, which
    # needs a transaction. Every read commits at once, so the connector never
    # sits idle in a transaction (notifications are only delivered outside
    # one) and holds a snapshot only while it reads.
    conn.set_session(readonly=True)
    return conn


def catch_up(conn, channel, state, sink):
    """Everything after the last acknowledged seq: to the sink, then ack."""
    # One call of publications_since() streamed in batches through a cursor:
    # calling it again per batch with a LIMIT would make it compute the whole
    # rest of the backlog every time.
    cur = conn.cursor(name='catch_up')
    cur.execute('SELECT seq, sku, channel_sku, available, published_at'
                '  FROM inventory_events.publications_since(%s, %s)', (channel, state.seq[channel]))
    expected = acked = state.seq[channel] + 1
    try:
        while True:
            rows = cur.fetchmany(BATCH)
            for seq, sku, channel_sku, available, published_at in rows:
                if seq != expected:
                    # Cannot happen while the publication log is gap-free; if
                    # it ever does, stop rather than acknowledge past a hole.
                    raise GapError(f'{channel}: expected seq {expected}, got {seq}')
                sink.send(channel, seq, sku, channel_sku, available, published_at)
                expected = seq + 1
            if len(rows) < BATCH:
                break
            state.ack(channel, expected - 1)
            acked = expected
    finally:
        # Acknowledge what the sink accepted, even when a later row failed.
        if expected != acked:
            state.ack(channel, expected - 1)
    cur.close()
    conn.commit()


def serve(conn, channels, state, sink, args, deadline):
    """LISTEN, catch up, then wait and catch up until the deadline."""
    by_name = {notify_name(c): c for c in channels}
    cur = conn.cursor()
    for name in by_name:
        # LISTEN before the first read: a publication committed in between is
        # then either in the read or announced by a notification.
        cur.execute(sql.SQL('LISTEN {}').format(sql.Identifier(name)))
    conn.commit()
    due = set(channels)             # at start and after every reconnect: read all
    while True:
        conn.notifies.clear()       # notifications for what the reads below return
        for c in sorted(due):
            catch_up(conn, c, state, sink)
        if args.once:
            return
        due = set()
        # Notifications that came in during the reads are already off the
        # socket (in conn.notifies): select() would not see them.
        while not conn.notifies:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            ready, _, _ = select.select([conn], [], [], min(args.timeout, remaining))
            if not ready:
                due = set(channels)     # a timeout: read anyway, a NOTIFY may be lost
                break
            conn.poll()                 # raises when the connection is gone
        # The payload is not read: only which channel to read now.
        due |= {by_name[n.channel] for n in conn.notifies if n.channel in by_name}


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--dsn', required=True, help='libpq connection string')
    p.add_argument('--channel', action='append', required=True,
                   help='sales channel code; repeatable or a comma-separated list')
    p.add_argument('--state-file', help='last acknowledged seq per channel (none: start at 0, keep nothing)')
    p.add_argument('--once', action='store_true', help='catch up and exit (no retry)')
    p.add_argument('--max-seconds', type=float, help='exit after this long (default: run forever)')
    p.add_argument('--timeout', type=float, default=10.0,
                   help='read anyway after this many seconds without a notification (default 10)')
    p.add_argument('--latency', action='store_true',
                   help='add received_at (epoch seconds) to every line, for test/bench')
    args = p.parse_args()
    channels = sorted({c.strip() for arg in args.channel for c in arg.split(',') if c.strip()})
    state = State(args.state_file, channels)
    sink = StdoutSink(args.latency)
    deadline = time.monotonic() + (args.max_seconds if args.max_seconds is not None else float('inf'))

    backoff = BACKOFF_MIN
    while True:
        conn = None
        try:
            conn = connect(args.dsn)
            backoff = BACKOFF_MIN
            serve(conn, channels, state, sink, args, deadline)
            return 0
        except (psycopg2.OperationalError, psycopg2.InterfaceError) as e:
            # The server went away or is not accepting connections yet:
            # transient. Anything else (no privilege, no such function) is not
            # going to get better by retrying.
            if args.once:
                log(' '.join(str(e).split()))
                return 1
            wait = min(backoff, max(0.0, deadline - time.monotonic()))
            log(f'no connection ({" ".join(str(e).split()) or type(e).__name__}); trying again in {wait:.1f} s')
            if wait <= 0:
                return 0
            time.sleep(wait)
            backoff = min(backoff * 2, BACKOFF_MAX)
        except psycopg2.Error as e:
            log(f'{e.pgcode}: {e.diag.message_primary}' if e.pgcode else str(e).strip())
            return 1
        except GapError as e:
            log(str(e))
            return 1
        except BrokenPipeError:
            return 1            # the sink's reader went away: nothing was acknowledged past it
        finally:
            if conn is not None:
                conn.close()


if __name__ == '__main__':
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
