"""Ledger speed on DuckDB: bulk load, the two reference queries, and demo start-up.

Targets (issue 2): 10M demo events bulk-loaded in <= 15 s; cost by team by day over 10M events
<= 0.3 s; p95 tokens per task by workflow <= 1.5 s; `tokenops demo` from an empty folder to a
served URL in <= 60 s.

    .venv/bin/python bench/store.py [--events 10000000] [--skip-demo]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from tokenops.analytics.spend import spend_by, tokens_per_task
from tokenops.demo import bulk_events
from tokenops.store import DuckDBLedger


def _timed(fn: Callable[[], object], repeat: int = 5) -> tuple[float, float]:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), max(times)


def bench_ledger(events: int, folder: Path) -> list[tuple[str, str, str, bool]]:
    started = time.perf_counter()
    batches = list(bulk_events(events, seed=1, batch_size=1_000_000))
    generated = time.perf_counter() - started
    print(f"generated {events:,} events in {generated:.1f} s (not timed below)", flush=True)
    results = []
    with DuckDBLedger(folder / "bench.duckdb") as ledger:
        started = time.perf_counter()
        written = sum(ledger.append("usage_events", batch) for batch in batches)
        load = time.perf_counter() - started
        assert written == events, (written, events)
        results.append(
            (f"bulk load {events:,} events", f"{load:.2f} s ({events / load:,.0f} rows/s)", "<= 15 s", load <= 15)
        )
        started = time.perf_counter()
        again = ledger.append("usage_events", batches[len(batches) // 2])
        reload = time.perf_counter() - started
        results.append(
            ("re-append a 1M batch (idempotent)", f"{again} new rows in {reload:.2f} s", "0 new rows", again == 0)
        )
        del batches
        p50, worst = _timed(lambda: spend_by(ledger, ["team"], grain="day"))
        results.append(
            ("cost by team by day", f"median {p50 * 1000:.0f} ms (max {worst * 1000:.0f})", "<= 300 ms", p50 <= 0.3)
        )
        p50, worst = _timed(lambda: tokens_per_task(ledger, quantile=0.95))
        results.append(
            (
                "p95 tokens per task by workflow",
                f"median {p50 * 1000:.0f} ms (max {worst * 1000:.0f})",
                "<= 1.5 s",
                p50 <= 1.5,
            )
        )
    return results


def bench_demo(folder: Path) -> tuple[str, str, str, bool]:
    exe = Path(sys.executable).with_name("tokenops")
    port = "18787"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    started = time.perf_counter()
    proc = subprocess.Popen(
        [str(exe), "demo", "--dir", str(folder / "demo"), "--port", port],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while time.perf_counter() - started < 180:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        elapsed = time.perf_counter() - started
    finally:
        proc.terminate()
        proc.wait(30)
    return ("tokenops demo: empty folder -> served URL", f"{elapsed:.1f} s", "<= 60 s", elapsed <= 60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--skip-demo", action="store_true")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="tokenops-bench-"))
    try:
        rows = bench_ledger(args.events, folder)
        if not args.skip_demo:
            rows.append(bench_demo(folder))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    width = max(len(r[0]) for r in rows)
    print(f"\n{'measure':<{width}}  {'result':<34}  {'target':<12}  ok")
    for name, result, target, ok in rows:
        print(f"{name:<{width}}  {result:<34}  {target:<12}  {'yes' if ok else 'NO'}")


if __name__ == "__main__":
    main()
