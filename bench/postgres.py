"""Ingest speed into PostgreSQL from several writer processes, as gateway replicas write.

Target (issue 10): >= 50k events/s from two replicas. Each writer process generates its share of
`tokenops.demo.bulk_events` first (not timed), waits for a common start signal, then appends
its batches with `PostgresLedger.append` (COPY into a temp table, INSERT ... ON CONFLICT). A
fresh database is created on the server and dropped afterwards.

    .venv/bin/python bench/postgres.py [--events 1000000] [--writers 2] [--batch 50000]
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
import uuid
from multiprocessing.synchronize import Event

import psycopg
import pyarrow as pa

from tokenops.demo import bulk_events
from tokenops.store.postgres import PostgresLedger

SERVER = "postgresql://postgres@127.0.0.1:5432"


def _writer(
    dsn: str, seed: int, events: int, batch: int, ready: Event, start: Event, out: multiprocessing.Queue
) -> None:  # type: ignore[type-arg]
    batches = list(bulk_events(events, seed=seed, batch_size=batch))
    with PostgresLedger(dsn, migrate=False) as ledger:
        ledger.query("SELECT 1 AS warm")  # connect before the clock starts
        ready.set()
        start.wait()
        began = time.time()  # wall clock: comparable across processes
        written = sum(ledger.append("usage_events", b) for b in batches)
        ended = time.time()
        # the same batch again: every key exists, nothing may be written
        began_again = time.perf_counter()
        again = ledger.append("usage_events", batches[0])
        out.put((seed, written, began, ended, again, time.perf_counter() - began_again, batches[0].num_rows))


def run(dsn: str, events: int, writers: int, batch: int) -> None:
    PostgresLedger(dsn).close()  # migrations and key indexes, once, as a deployment does
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    readies = [ctx.Event() for _ in range(writers)]
    share = events // writers
    procs = [
        ctx.Process(target=_writer, args=(dsn, seed + 1, share, batch, readies[seed], start, out))
        for seed in range(writers)
    ]
    for p in procs:
        p.start()
    for ready in readies:
        ready.wait(timeout=600)
    print(f"{writers} writers generated {share:,} events each (not timed); go", flush=True)
    start.set()
    results = [out.get(timeout=3600) for _ in procs]
    wall = max(r[3] for r in results) - min(r[2] for r in results)  # first append started to last one done
    for p in procs:
        p.join()
    total = sum(r[1] for r in results)
    for seed, written, began, ended, again, again_s, rows in sorted(results):
        took = ended - began
        print(f"  writer {seed}: {written:,} new rows in {took:.2f} s ({written / took:,.0f} events/s); "
              f"re-append of {rows:,} rows: {again} new in {again_s:.2f} s")  # fmt: skip
    with PostgresLedger(dsn, migrate=False) as ledger:
        row = ledger.query_rows("SELECT count(*) AS n, count(DISTINCT request_id) AS k FROM usage_events")[0]
    rate = total / wall
    ok = row["n"] == row["k"] == total == share * writers
    print(f"ingest {total:,} events from {writers} writers: {wall:.2f} s wall = {rate:,.0f} events/s "
          f"(target >= 50,000: {'ok' if rate >= 50_000 else 'MISSED'}); "
          f"ledger rows {row['n']:,}, distinct keys {row['k']:,}: {'ok' if ok else 'MISMATCH'}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--writers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=50_000, help="rows per append")
    parser.add_argument("--server", default=SERVER, help="server URL; a fresh database is created on it")
    args = parser.parse_args()
    name = f"tokenops_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(f"{args.server}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            run(f"{args.server}/{name}", args.events, args.writers, args.batch)
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    pa.set_cpu_count(1)  # two writers share two cores with the server
    main()
