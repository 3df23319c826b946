"""The same reports on ClickHouse (the chdb engine) and on DuckDB, side by side (issue 10).

Loads `--rows` bulk events (1M by default) into both, then times each report (median of
`--repeat` runs after a warm-up) and prints DuckDB's time, ClickHouse's and their ratio.

    .venv/bin/python bench/clickhouse.py [--rows 10000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tokenops.analytics import kpis, recommend, spend
from tokenops.demo import bulk_events
from tokenops.store import DuckDBLedger, Ledger
from tokenops.store.clickhouse import ClickHouseLedger

REPORTS: dict[str, Callable[[Ledger], object]] = {
    "summary": lambda led: spend.summary(led),
    "spend by team, day": lambda led: spend.spend_by(led, ["team"], grain="day"),
    "spend by model, week": lambda led: spend.spend_by(led, ["model"], grain="week"),
    "spend by user": lambda led: spend.spend_by(led, ["user"]),
    "tokens per task (p95)": lambda led: spend.tokens_per_task(led),
    "kpis by workflow": lambda led: kpis.kpis(led, ["workflow"]),
    "kpis by team, month": lambda led: kpis.kpis(led, ["team"], grain="month"),
    "recommendations": lambda led: recommend.recommendations(led),
}


def _timed(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm-up (and, for ClickHouse, the translation and DuckDB's result types, cached)
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _load(ledger: Ledger, rows: int) -> float:
    started = time.perf_counter()
    for batch in bulk_events(rows, seed=1, batch_size=500_000):
        ledger.append("usage_events", batch)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        duck = DuckDBLedger(Path(folder) / "bench.duckdb")
        ch = ClickHouseLedger.embedded(str(Path(folder) / "chdb"))
        with duck, ch:
            load_duck, load_ch = _load(duck, args.rows), _load(ch, args.rows)
            print(f"{args.rows:,} events")
            print(f"{'report':<26}{'DuckDB s':>10}{'chdb s':>10}{'chdb/DuckDB':>13}")
            print(f"{'load (append)':<26}{load_duck:>10.3f}{load_ch:>10.3f}{load_ch / load_duck:>13.2f}")
            for name, report in REPORTS.items():
                d = _timed(lambda: report(duck), args.repeat)  # noqa: B023 - called before the loop moves on
                c = _timed(lambda: report(ch), args.repeat)  # noqa: B023
                print(f"{name:<26}{d:>10.3f}{c:>10.3f}{c / d:>13.2f}")


if __name__ == "__main__":
    main()
