"""Report and dashboard speed on DuckDB, on the demo organisation and over 10M events (issues 7 and 8).

Targets: every analytics report answers in <= 1 s over 10M events (issue 7); every dashboard page's
data (the page itself, which renders its data server-side, and each `/api/...` it links to) in
<= 300 ms on the demo data and <= 1 s at 10M events (issue 8). Pages and APIs are called in-process
through the Starlette app (`TestClient`, signed in as an admin), so routing, access checks, rendering
and JSON are timed with the queries.

Both ledgers are built once and kept (`--ledger`: bulk demo events, then task runs, outcomes and
their links derived from those events in SQL; `--demo-ledger`: `tokenops demo`'s organisation), so
later runs only time:

    .venv/bin/python bench/analytics.py [--events 10000000] [--ledger /tmp/tokenops-bench-analytics.duckdb]
        [--demo-ledger /tmp/tokenops-bench-demo.duckdb] [--only yield] [--sizes demo,10m] [--repeat 3]

Each line prints the median wall time on the demo and at 10M, the median process CPU seconds at
10M (DuckDB's threads included), and ok/SLOW against the targets. Pages and APIs are timed cold
(the read cache emptied before each request: the first visitor after a write); "warm" is the same
request answered from the per-version read cache (`tokenops.analytics.read_cache`).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from starlette.testclient import TestClient

from tokenops.analytics.adoption import adoption
from tokenops.analytics.anomalies import find_incidents
from tokenops.analytics.forecast import month_end
from tokenops.analytics.kpis import kpis
from tokenops.analytics.maturity import maturity
from tokenops.analytics.recommend import recommendations
from tokenops.analytics.spend import Filters, spend_by, summary, tokens_per_task
from tokenops.analytics.unit_economics import cost_per_outcome, outcome_variance
from tokenops.analytics.yield_ import ai_yield
from tokenops.config import Settings
from tokenops.demo import bulk_events, generate_org, load_demo
from tokenops.store import DuckDBLedger
from tokenops.web import create_app
from tokenops.web.api_cache import read_cache
from tokenops.web.users import user_store

REPORT_S = 1.0
"""Every report over 10M events (issue 7)."""
PAGE_DEMO_S = 0.3
"""Every page's data on the demo organisation (issue 8)."""
PAGE_BIG_S = 1.0
"""Every page's data over 10M events (issue 8)."""
_PASSWORD = "bench password"

# Task runs derived from the calls: ~85% completed, the rest failed or abandoned (a hash picks
# them, so the ledger is reproducible); about half of the completed runs yield an outcome.
_TASK_RUNS = """
INSERT INTO task_runs
SELECT task_run_id, workflow,
       CASE WHEN hash(task_run_id) % 100 < 85 THEN 'completed'
            WHEN hash(task_run_id) % 100 < 95 THEN 'failed' ELSE 'abandoned' END,
       started_at, ended_at, user_id, team, customer, NULL
FROM (SELECT task_run_id, min(workflow) AS workflow, min(ts) AS started_at, max(ts) AS ended_at,
             min(user_id) AS user_id, min(team) AS team, min(customer) AS customer
      FROM usage_events WHERE task_run_id IS NOT NULL GROUP BY task_run_id) AS r
"""
_OUTCOMES = """
INSERT INTO outcomes
SELECT 'o-' || task_run_id, ended_at, workflow || '_done', CAST(1 + hash(task_run_id) % 40 AS DECIMAL(18,12)),
       workflow, user_id, team
FROM task_runs WHERE status = 'completed' AND hash(task_run_id) % 2 = 0
"""
_LINKS = "INSERT INTO outcome_task_runs SELECT outcome_id, substr(outcome_id, 3) FROM outcomes"


def build(path: Path, events: int) -> None:
    """Fill a fresh ledger at `path` with `events` bulk demo calls and their runs and outcomes."""
    started = time.perf_counter()
    with DuckDBLedger(path) as ledger:
        for batch in bulk_events(events, seed=1, batch_size=1_000_000):
            ledger.append("usage_events", batch)
        conn = ledger._conn  # bulk SQL inserts: a benchmark fixture, not ledger API
        for sql in (_TASK_RUNS, _OUTCOMES, _LINKS):
            conn.execute(sql)
    print(f"built {events:,} events into {path} in {time.perf_counter() - started:.0f} s", flush=True)


def build_demo(path: Path) -> None:
    """The organisation `tokenops demo` loads, at `path`."""
    started = time.perf_counter()
    with DuckDBLedger(path) as ledger:
        load_demo(ledger, generate_org())
    print(f"built the demo organisation into {path} in {time.perf_counter() - started:.0f} s", flush=True)


def _timed(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Median wall time and median CPU seconds of the process (DuckDB's threads included), after a warm-up.

    CPU time is what the call costs when the cores are shared: on a busy machine wall time is
    inflated by waiting, CPU time / threads is roughly the wall time of an idle one.
    """
    fn()  # warm-up
    times, cpu = [], []
    for _ in range(repeat):
        started, used = time.perf_counter(), time.process_time()
        fn()
        times.append(time.perf_counter() - started)
        cpu.append(time.process_time() - used)
    return statistics.median(times), statistics.median(cpu)


def reports(ledger: DuckDBLedger) -> dict[str, Callable[[], object]]:
    """Every report, as a user would ask for it."""
    a = Filters(start=datetime(2026, 5, 1, tzinfo=UTC), end=datetime(2026, 8, 1, tzinfo=UTC))
    b = Filters(start=datetime(2026, 8, 1, tzinfo=UTC), end=datetime(2026, 11, 1, tzinfo=UTC))
    return {
        "spend_by team per day": lambda: spend_by(ledger, ["team"], grain="day"),
        "summary": lambda: summary(ledger),
        "tokens_per_task p95": lambda: tokens_per_task(ledger, quantile=0.95),
        "kpis by workflow": lambda: kpis(ledger, ["workflow"]),
        "kpis by team per month": lambda: kpis(ledger, ["team"], grain="month"),
        "kpis by customer": lambda: kpis(ledger, ["customer"]),
        "cost_per_outcome by workflow": lambda: cost_per_outcome(ledger),
        "variance two quarters": lambda: outcome_variance(ledger, a, b),
        "forecast month end by team": lambda: month_end(ledger, "team"),
        "recommendations": lambda: recommendations(ledger),
        "ai_yield by team": lambda: ai_yield(ledger, "team"),
        "adoption": lambda: adoption(ledger),
        "maturity": lambda: maturity(ledger),
        "anomalies detect by team": lambda: find_incidents(ledger, "team"),
    }


def page_paths(ledger: DuckDBLedger) -> list[str]:
    """Every dashboard page (a workflow, a task run and a call of this ledger for the drill-down) and every API."""
    run = ledger.query_rows(
        "SELECT task_run_id, workflow FROM usage_events WHERE task_run_id IS NOT NULL AND workflow IS NOT NULL "
        "ORDER BY ts DESC LIMIT 1"
    )[0]
    call = ledger.query_rows("SELECT request_id FROM usage_events WHERE task_run_id = ?", [run["task_run_id"]])[0]
    return [
        "/",
        "/questions",
        "/workflows",
        f"/workflows/{run['workflow']}",
        f"/runs/{run['task_run_id']}",
        f"/calls/{call['request_id']}",
        "/yield",
        "/budgets",
        "/recommendations",
        "/maturity",
        "/api/summary",
        "/api/spend?by=team&grain=day",
        "/api/tokens-per-task",
        "/api/events",
        "/api/kpis",
        "/api/cost-per-outcome",
        "/api/forecast",
        "/api/recommendations",
        "/api/yield?by=team",
        "/api/adoption",
        "/api/maturity",
        "/api/anomalies",
        "/api/budgets",
    ]


@contextmanager
def signed_in(ledger: DuckDBLedger) -> Iterator[TestClient]:
    """The app over `ledger`, in-process, with an admin signed in."""
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp) / "state")
        user_store(settings).create("bench", "admin", None, _PASSWORD)
        with TestClient(create_app(settings, ledger)) as client:
            reply = client.post("/signin", data={"name": "bench", "password": _PASSWORD}, follow_redirects=False)
            assert reply.status_code == 303, reply.text
            yield client


def _get(client: TestClient, path: str, *, cold: bool) -> Callable[[], object]:
    """GET `path`; `cold` empties the app's read cache first (the first visitor after a write)."""
    cache = read_cache(client.app)  # type: ignore[arg-type]

    def call() -> object:
        if cold:
            cache.clear()
        reply = client.get(path)
        if reply.status_code != 200:
            raise SystemExit(f"{path}: HTTP {reply.status_code}: {reply.text[:300]}")
        return reply

    return call


Timing = tuple[float, float, float | None]
"""Median wall seconds, median CPU seconds (cold), median wall seconds answered from the read cache."""


def _measure(path: Path, only: str | None, repeat: int) -> dict[str, Timing]:
    """Timings of every report and page over the ledger at `path`, printed as they come."""
    found: dict[str, Timing] = {}
    with DuckDBLedger(path, read_only=True) as ledger:
        count = ledger.query_rows("SELECT count(*) AS n FROM usage_events")[0]["n"]
        load = os.getloadavg()[0]
        print(f"{count:,} events in {path}; load average {load:.1f} on {os.cpu_count()} cores", flush=True)
        for name, fn in reports(ledger).items():
            if not only or only in name:
                found[f"report {name}"] = (*_timed(fn, repeat), None)
                print(f"  {name}: {found[f'report {name}'][0] * 1000:.0f} ms", flush=True)
        with signed_in(ledger) as client:
            for page in page_paths(ledger):
                key = page if page.startswith("/api/") else _shape(page)
                if not only or only in key:
                    wall, cpu = _timed(_get(client, page, cold=True), repeat)
                    found[key] = (wall, cpu, _timed(_get(client, page, cold=False), repeat)[0])
                    print(f"  {key}: {wall * 1000:.0f} ms", flush=True)
    return found


def _shape(page: str) -> str:
    """A drill-down path without the ledger's own ids, so the demo and the 10M lines match."""
    for prefix in ("/workflows/", "/runs/", "/calls/"):
        if page.startswith(prefix):
            return prefix + "{id}"
    return page


def _ms(seconds: float | None) -> str:
    return f"{seconds * 1000:>7.0f}ms" if seconds is not None else f"{'-':>9}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--ledger", type=Path, default=Path("/tmp/tokenops-bench-analytics.duckdb"))
    parser.add_argument("--demo-ledger", type=Path, default=Path("/tmp/tokenops-bench-demo.duckdb"))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sizes", default="demo,10m", help="Which ledgers to time: demo, 10m or both.")
    parser.add_argument("--rebuild", action="store_true", help="Build the ledgers again even if they exist.")
    parser.add_argument("--build-only", action="store_true")
    parser.add_argument("--only", help="Time only the reports and pages whose name contains this text.")
    args = parser.parse_args()
    sizes = {s.strip() for s in args.sizes.split(",") if s.strip()}
    for size, path, make in (
        ("10m", args.ledger, lambda p: build(p, args.events)),
        ("demo", args.demo_ledger, build_demo),
    ):
        if size not in sizes:
            continue
        if args.rebuild and path.exists():
            path.unlink()
        if not path.exists():
            make(path)
        DuckDBLedger(path).close()  # apply pending migrations (e.g. the per-run totals) before reading
    if args.build_only:
        return
    demo = _measure(args.demo_ledger, args.only, args.repeat) if "demo" in sizes else {}
    big = _measure(args.ledger, args.only, args.repeat) if "10m" in sizes else {}
    print("\ntargets: report <= 1 s at 10M; page or API <= 300 ms on the demo and <= 1 s at 10M (cold, wall)")
    print(f"{'':<34} {'demo':>9} {'warm':>9} {'10M':>9} {'10M cpu':>8} {'warm':>9}")
    failed = 0
    for name in dict.fromkeys([*demo, *big]):
        report = name.startswith("report ")
        small, large = demo.get(name), big.get(name)
        ok = (large is None or large[0] <= (REPORT_S if report else PAGE_BIG_S)) and (
            report or small is None or small[0] <= PAGE_DEMO_S
        )
        failed += not ok
        cells = [
            _ms(small and small[0]),
            _ms(small and small[2]),
            _ms(large and large[0]),
            f"{large[1]:>7.2f}s" if large else f"{'-':>8}",
            _ms(large and large[2]),
        ]
        print(f"{name:<34} {' '.join(cells)}  {'ok' if ok else 'SLOW'}", flush=True)
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
