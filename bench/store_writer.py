"""Speed of the ledger writer: hot-path cost of begin/submit, and sustained rows/s into DuckDB.

    .venv/bin/python bench/store_writer.py [--events 200000] [--prefill 0] [--batch-size 1000]

Not a test: numbers depend on the machine. Everything goes to a temporary directory on disk.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import threading
import time
from array import array
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from tokenops.events import Attribution, Cost, TokenUsage, UsageEvent
from tokenops.store import DuckDBLedger
from tokenops.store.rows import event_row, to_arrow
from tokenops.store.writer import LedgerWriter

BASE = UsageEvent(
    request_id="x",
    ts=datetime(2026, 11, 2, 9, 30, 0, 123456, tzinfo=UTC),
    provider="openai",
    model="gpt-4o",
    usage=TokenUsage(input_tokens=1234, cache_read_tokens=1000, output_tokens=567),
    cost=Cost(Decimal("0.000585"), Decimal("0.00125"), Decimal(0), Decimal("0.00567")),
    price_source="genai-prices:openai/gpt-4o",
    attribution=Attribution(api_key_id="k1", user="ana", team="support", workflow="ticket", tags={"env": "prod"}),
    latency_ms=812.5,
)


def events(prefix: str, n: int) -> list[UsageEvent]:
    return [replace(BASE, request_id=f"{prefix}{i}") for i in range(n)]


def hot_path(tmp: Path, n: int) -> None:
    """begin + submit with nobody draining the queue: the CPU the gateway pays per call."""
    batch = events("hot", n)
    with DuckDBLedger(tmp / "hot.duckdb") as ledger:
        writer = LedgerWriter(ledger, tmp / "hot-spool", max_queue=n + 1)
        t0 = time.perf_counter_ns()
        for e in batch:
            writer.begin(e.request_id, e.ts, e.provider, e.model, e.attribution)
        t1 = time.perf_counter_ns()
        for e in batch:
            writer.submit(e, e.request_id)
        t2 = time.perf_counter_ns()
        print(f"begin():  {(t1 - t0) / n / 1000:6.2f} us/event")
        print(f"submit(): {(t2 - t1) / n / 1000:6.2f} us/event  (spool write + queue put, {n} events)")
        logging.getLogger("tokenops").setLevel(logging.ERROR)  # "segments kept" is expected here
        writer.close(timeout=0)
        logging.getLogger("tokenops").setLevel(logging.NOTSET)


def sustained(tmp: Path, n: int, prefill: int, batch_size: int) -> None:
    """A producer thread submitting flat out; time until everything is committed to DuckDB."""
    with DuckDBLedger(tmp / "sustained.duckdb") as ledger:
        if prefill:
            print(f"prefilling {prefill} rows ...", flush=True)
            template = event_row(BASE)
            for start in range(0, prefill, 100_000):
                chunk = [template | {"request_id": f"old{i}"} for i in range(start, min(prefill, start + 100_000))]
                ledger.append("usage_events", to_arrow("usage_events", chunk))
        batch = events("new", n)
        writer = LedgerWriter(ledger, tmp / "spool", batch_size=batch_size)
        writer.start()

        latencies = array("q", bytes(8 * n))

        def produce() -> None:
            clock = time.perf_counter_ns
            for i, e in enumerate(batch):
                t = clock()
                writer.begin(e.request_id, e.ts, e.provider, e.model, e.attribution)
                writer.submit(e, e.request_id)
                latencies[i] = clock() - t

        cpu0, t0 = time.process_time(), time.perf_counter()
        producer = threading.Thread(target=produce)
        producer.start()
        producer.join()
        t1 = time.perf_counter()
        writer.flush(timeout=600)
        t2, cpu1 = time.perf_counter(), time.process_time()
        stats = writer.stats
        writer.close()
        rows = ledger.query_rows("SELECT count(*) AS n FROM usage_events")[0]["n"]
        print(
            f"sustained: {n / (t2 - t0):,.0f} events/s committed (batch_size={batch_size}, table had {prefill:,} rows) "
            f"- producer done after {t1 - t0:.2f}s, all committed after {t2 - t0:.2f}s"
        )
        ordered = sorted(latencies)
        p50, p99, p999 = (ordered[int(n * q)] / 1000 for q in (0.5, 0.99, 0.999))
        print(
            f"           begin+submit wall time under load: p50 {p50:.0f} us, p99 {p99:.0f} us, "
            f"p99.9 {p999:.0f} us, max {ordered[-1] / 1000:.0f} us (includes waiting for the GIL)"
        )
        print(f"           total process CPU {(cpu1 - cpu0) / n * 1e6:.1f} us/event (both threads); {stats}")
        assert rows == n + prefill, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--prefill", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        hot_path(tmp, min(args.events, 100_000))
        sustained(tmp, args.events, args.prefill, args.batch_size)


if __name__ == "__main__":
    main()
