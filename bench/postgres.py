"""Ingest speed into PostgreSQL from several writer processes, as gateway replicas write, and dashboard query speed.

Targets (issue 10): >= 50k events/s in total from two replicas with the spend rollups maintained,
and dashboard spend queries <= 300 ms through the rollups at 100M events.

Ingest: each writer process generates its share of `tokenops.demo.bulk_events` first (not
timed), waits for a common start signal, then appends its batches with `PostgresLedger.append`
(COPY, plus the rollup deltas in the same transaction). `--baseline` repeats the run with the
rollups not maintained, on another fresh database, to show what they cost. Events span `--days`
days: a fleet at 50k events/s fills each hourly rollup row with thousands of calls, while 1M
events spread over a year leave ~3 per row, so `--days 365` is the worst case, not the usual.
After the ingest, the dashboard's spend queries are timed through the rollups and from the
events on the same database.

`--rollup-events N` measures the queries at scale without loading N events (which would take
hours here): it generates the N-event workload in chunks, sums each chunk into rollup rows in
DuckDB (the rollups' own SELECT), merges them and COPYs only the rollup rows into PostgreSQL.
The events table stays empty then, so only the rollup side is timed.

    .venv/bin/python bench/postgres.py [--events 1000000] [--writers 2] [--batch 50000] [--days 1] [--baseline]
    .venv/bin/python bench/postgres.py --async-commit     # writers with synchronous_commit=off
    .venv/bin/python bench/postgres.py --rollup-events 100000000
"""

from __future__ import annotations

import argparse
import io
import multiprocessing
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from multiprocessing.synchronize import Event

import duckdb
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from tokenops.analytics import spend
from tokenops.demo import bulk_events
from tokenops.demo.build import DEFAULT_END
from tokenops.store.migrations import ROLLUP_KEY, ROLLUP_SUMS, ROLLUPS, rollup_select
from tokenops.store.postgres import PostgresLedger

SERVER = "postgresql://postgres@127.0.0.1:5432"


class _WithoutRollups(PostgresLedger):
    """The baseline: appends that leave the rollups alone, and reports that read the events."""

    keeps_rollups = False


def _ledger(dsn: str, rollups: bool) -> PostgresLedger:
    return PostgresLedger(dsn, migrate=False) if rollups else _WithoutRollups(dsn, migrate=False)


def _writer(
    dsn: str,
    rollups: bool,
    plan: tuple[int, int, int, int],
    ready: Event,
    start: Event,
    out: multiprocessing.Queue[tuple[int, int, float, float, int, float, int]],
) -> None:
    seed, events, batch, days = plan
    batches = list(bulk_events(events, seed=seed, batch_size=batch, days=days))
    with _ledger(dsn, rollups) as ledger:
        ledger.query("SELECT 1 AS warm")  # connect before the clock starts
        ready.set()
        start.wait()
        began = time.time()  # wall clock: comparable across processes
        written = sum(ledger.append("usage_events", b) for b in batches)
        ended = time.time()
        # the same batch again: every key exists, nothing may be written (nor counted in a rollup)
        began_again = time.perf_counter()
        again = ledger.append("usage_events", batches[0])
        out.put((seed, written, began, ended, again, time.perf_counter() - began_again, batches[0].num_rows))


def ingest(dsn: str, events: int, writers: int, batch: int, days: int, rollups: bool) -> float:
    """Append `events` from `writers` processes at once; prints per-writer and total rates, returns events/s."""
    PostgresLedger(dsn).close()  # migrations and key indexes, once, as a deployment does
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    readies = [ctx.Event() for _ in range(writers)]
    share = events // writers
    procs = [
        ctx.Process(target=_writer, args=(dsn, rollups, (w + 1, share, batch, days), readies[w], start, out))
        for w in range(writers)
    ]
    for p in procs:
        p.start()
    for ready in readies:
        ready.wait(timeout=900)
    label = "rollups maintained" if rollups else "baseline, rollups NOT maintained"
    print(f"{writers} writers generated {share:,} events each over {days} day(s) (not timed); go [{label}]", flush=True)
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
    rate = float(total / wall)
    with _ledger(dsn, rollups) as ledger:
        row = ledger.query_rows("SELECT count(*) AS n, count(DISTINCT request_id) AS k FROM usage_events")[0]
        ok = row["n"] == row["k"] == total == share * writers
        if rollups:
            for name in ROLLUPS:
                sums = ledger.query_rows(f"SELECT sum(calls) AS n, count(*) AS r FROM {name}")[0]
                ok = ok and sums["n"] == total
                print(f"  {name}: {sums['r']:,} rows holding {sums['n']:,} calls")
    print(f"ingest {total:,} events from {writers} writers [{label}]: {wall:.2f} s wall = {rate:,.0f} events/s "
          f"(target >= 50,000: {'ok' if rate >= 50_000 else 'MISSED'}); ledger rows {row['n']:,}, "
          f"distinct keys {row['k']:,}, rollups hold every event once: {'ok' if ok else 'MISMATCH'}")  # fmt: skip
    return rate


Query = tuple[list[str], str | None, spend.Filters]


def dashboard_queries(end: datetime) -> dict[str, Query]:
    """The dashboard's spend queries (overview, spend pages, report) as `spend_by` arguments; `end`: the last day."""
    month = end.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    day = end.replace(hour=0, minute=0, second=0, microsecond=0)
    last30 = spend.Filters(start=day - timedelta(days=30), end=day + timedelta(days=1))
    return {
        "month to date (overview)": ([], None, spend.Filters(start=month)),
        "daily spend by team, all time": (["team"], "day", spend.Filters()),
        "top models, all time": (["model"], None, spend.Filters()),
        "workflows x model, 30 days": (["workflow", "model"], None, last30),
        "spend by user, 30 days": (["user"], None, last30),
        "weekly by provider, one team": (["provider"], "week", spend.Filters(team="engineering")),
        "hourly by model, last day": (["model"], "hour", spend.Filters(start=day, end=day + timedelta(days=1))),
    }


def _time(query: Query, ledger: PostgresLedger, repeat: int) -> tuple[float, pa.Table]:
    dims, grain, filters = query
    result = spend.spend_by(ledger, dims, grain=grain, filters=filters)  # warm: translation, schema, buffers
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        result = spend.spend_by(ledger, dims, grain=grain, filters=filters)
        times.append(time.perf_counter() - began)
    return statistics.median(times) * 1000, result


def time_queries(dsn: str, end: datetime, *, events_too: bool, repeat: int = 5) -> None:
    """Median time of each dashboard query through the rollups (and from the events, on the same database)."""
    with PostgresLedger(dsn, migrate=False) as fast, _WithoutRollups(dsn, migrate=False) as slow:
        for name, query in dashboard_queries(end).items():
            dims, grain, filters = query
            source = spend.spend_source(fast, dims, grain=grain, filters=filters)
            rollup_ms, rolled = _time(query, fast, repeat)
            line = f"  {name:30} via {source:12} {rollup_ms:7.1f} ms ({rolled.num_rows:,} rows)"
            if events_too:
                events_ms, plain = _time(query, slow, repeat)
                same = "identical" if plain == rolled else "DIFFERENT"
                line += f" | from usage_events {events_ms:7.1f} ms ({same}, {events_ms / rollup_ms:,.1f}x)"
            else:
                line += f" (target <= 300 ms: {'ok' if rollup_ms <= 300 else 'MISSED'})"
            print(line, flush=True)


def _sum_share(plan: tuple[int, int, int, str]) -> str:
    """One generator process: its share of the workload, summed chunk by chunk into rollup rows, saved as Arrow IPC."""
    seed, events, chunk, prefix = plan
    con = duckdb.connect(config={"threads": 1})
    parts: dict[str, list[pa.Table]] = {name: [] for name in ROLLUPS}
    for batch in bulk_events(events, seed=seed, batch_size=chunk):
        con.register("_chunk", batch)
        for name, bucket in ROLLUPS.items():
            parts[name].append(con.sql(rollup_select(bucket, "_chunk")).to_arrow_table())
        con.unregister("_chunk")
    for name, tables in parts.items():
        with pa.OSFile(f"{prefix}.{name}.arrow", "wb") as sink, pa.ipc.new_file(sink, tables[0].schema) as out:
            for table in tables:
                out.write_table(table)
    return prefix


def load_rollups(dsn: str, events: int, jobs: int, chunk: int, scratch: str) -> None:
    """Fill the rollup tables with the rows of an `events`-event workload, without loading the events."""
    PostgresLedger(dsn).close()
    began = time.perf_counter()
    plans = [(seed + 1, events // jobs, chunk, f"{scratch}/share{seed}") for seed in range(jobs)]
    with multiprocessing.get_context("spawn").Pool(jobs) as pool:
        prefixes = pool.map(_sum_share, plans)
    print(f"generated {events // jobs * jobs:,} events in {jobs} processes and summed them into rollup rows in "
          f"{time.perf_counter() - began:.0f} s (DuckDB, chunks of {chunk:,})", flush=True)  # fmt: skip
    con = duckdb.connect()
    cols = ", ".join((*ROLLUP_KEY, *ROLLUP_SUMS))
    key = ", ".join(ROLLUP_KEY)
    sums = ", ".join(f"CAST(sum({c}) AS {'DECIMAL(38,12)' if c == 'cost' else 'BIGINT'}) AS {c}" for c in ROLLUP_SUMS)
    with psycopg.connect(dsn, autocommit=True) as conn:
        for name in ROLLUPS:
            began = time.perf_counter()
            parts = pa.concat_tables([pa.ipc.open_file(f"{p}.{name}.arrow").read_all() for p in prefixes])
            con.register("_parts", parts)
            # a bucket cut by a chunk or share boundary has one partial row per piece: add them up
            merged = con.sql(f"SELECT {key}, {sums} FROM _parts GROUP BY ALL ORDER BY {key}").to_arrow_table()
            con.unregister("_parts")
            with conn.cursor() as cur, cur.copy(f"COPY {name} ({cols}) FROM STDIN (FORMAT csv)") as copy:
                for batch in merged.to_batches(max_chunksize=100_000):
                    buffer = io.BytesIO()
                    pacsv.write_csv(batch, buffer, pacsv.WriteOptions(include_header=False))
                    copy.write(buffer.getbuffer())
            conn.execute(f"VACUUM ANALYZE {name}")  # what autovacuum does to a table that grew
            calls = pc.sum(merged.column("calls")).as_py()
            print(f"  {name}: {merged.num_rows:,} rows holding {calls:,} calls, copied in "
                  f"{time.perf_counter() - began:.1f} s", flush=True)  # fmt: skip


def _dsn(server: str, database: str) -> str:
    base, _, query = server.partition("?")
    return f"{base}/{database}" + (f"?{query}" if query else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--writers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=50_000, help="rows per append")
    parser.add_argument("--days", type=int, default=1, help="days the events span (365: sparse, the worst case)")
    parser.add_argument("--baseline", action="store_true", help="also ingest without maintaining the rollups")
    parser.add_argument("--rollup-events", type=int, default=0, help="time queries on rollups of this many events")
    parser.add_argument("--jobs", type=int, default=2, help="generator processes for --rollup-events")
    parser.add_argument("--async-commit", action="store_true", help="writers use synchronous_commit=off (see docs)")
    parser.add_argument("--server", default=SERVER, help="server URL; fresh databases are created on it")
    args = parser.parse_args()
    end = datetime.combine(DEFAULT_END, datetime.min.time(), UTC)  # the workload's last day
    server = args.server
    if args.async_commit:  # per session, from the DSN: what a deployment would put in its ledger URL
        server = f"{server}?options=-c%20synchronous_commit%3Doff"
    runs = [("rollups", True)] + ([("baseline", False)] if args.baseline else [])
    with psycopg.connect(f"{args.server}/postgres", autocommit=True) as admin:
        for label, rollups in runs if not args.rollup_events else []:
            name = f"tokenops_bench_{label}_{uuid.uuid4().hex[:8]}"
            admin.execute(f'CREATE DATABASE "{name}"')
            try:
                ingest(_dsn(server, name), args.events, args.writers, args.batch, args.days, rollups)
                if rollups:
                    print("dashboard spend queries, median of 5 (same database, same results):")
                    time_queries(_dsn(server, name), end, events_too=True)
            finally:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if args.rollup_events:
            name = f"tokenops_bench_scale_{uuid.uuid4().hex[:8]}"
            admin.execute(f'CREATE DATABASE "{name}"')
            try:
                with tempfile.TemporaryDirectory() as scratch:
                    load_rollups(f"{args.server}/{name}", args.rollup_events, args.jobs, 1_000_000, scratch)
                print(f"dashboard spend queries on the rollups of {args.rollup_events:,} events, median of 5 "
                      "(NOTE: usage_events is NOT populated at this scale; only the rollup tables are):")  # fmt: skip
                time_queries(f"{args.server}/{name}", end, events_too=False)
            finally:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    pa.set_cpu_count(1)  # two writers share two cores with the server
    main()
