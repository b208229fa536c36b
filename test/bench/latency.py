#!/usr/bin/python3
"""The two clients of the connector part of test/bench/run.sh (psycopg2).

  latency.py load DSN RATE SECONDS FIRST_SKU
      Appends one event per transaction (1 unit received at W1) at RATE per
      second for SECONDS, each to a different sku (SKU<FIRST_SKU>, the next
      ...). Right after each COMMIT returns it reads clock_timestamp() and,
      for the baseline, sends NOTIFY bench_plain with the sku itself, in one
      statement (its own transaction). Prints "sku,commit epoch" per event.

  latency.py listen DSN CHANNEL SECONDS
      A plain LISTEN client: prints "payload,receipt epoch" per notification.

The connector (tools/connector.py --latency) prints when it read each
publication; run.sh joins the three by sku.
"""
import select
import sys
import time

import psycopg2


def load(dsn, rate, seconds, first):
    conn = psycopg2.connect(dsn, application_name='bench load')
    conn.autocommit = True      # each statement is its own transaction
    cur = conn.cursor()
    start = time.monotonic()
    for i in range(int(rate * seconds)):
        # A steady rate: each event at its slot, however long the last took.
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        sku = f'SKU{first + i}'
        cur.execute("SELECT inventory_events.append(%s, 'W1', 'received', 1)", (sku,))
        cur.execute("SELECT extract(epoch FROM clock_timestamp()), pg_notify('bench_plain', %s)", (sku,))
        print(f'{sku},{cur.fetchone()[0]}')
    conn.close()


def listen(dsn, channel, seconds):
    conn = psycopg2.connect(dsn, application_name='bench plain listener')
    conn.autocommit = True
    conn.cursor().execute(f'LISTEN "{channel}"')
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if select.select([conn], [], [], end - time.monotonic())[0]:
            conn.poll()
            at = time.time()
            for n in conn.notifies:
                print(f'{n.payload},{at:.6f}', flush=True)
            conn.notifies.clear()
    conn.close()


if __name__ == '__main__':
    if sys.argv[1:2] == ['load'] and len(sys.argv) == 6:
        load(sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]))
    elif sys.argv[1:2] == ['listen'] and len(sys.argv) == 5:
        listen(sys.argv[2], sys.argv[3], float(sys.argv[4]))
    else:
        sys.exit(__doc__)
