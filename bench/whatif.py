"""What-if replay speed over 10M events on DuckDB: a replay must finish in <= 10 s (issue 7).

The ledger is built once from bulk demo events (plus task runs derived from them, so the quality
comparison has runs to read) and cached under bench/out/, so later runs only time the replay:

    .venv/bin/python bench/whatif.py [--events 10000000] [--ledger bench/out/whatif-10000000.duckdb]

The scenario touches every priced call: two model mappings, a cache hit rate, an output cap and a
10% discount on every OpenAI model, so each of the ~10M calls is repriced (set-based).
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from tokenops.analytics.spend import Filters
from tokenops.analytics.whatif import ModelMap, Scenario, replay
from tokenops.demo import bulk_events
from tokenops.pricing import PriceOverride
from tokenops.store import DuckDBLedger

TARGET_S = 10.0
OUT = Path(__file__).parent / "out"
SCENARIO = Scenario(
    models=(
        ModelMap("lead_enrichment", "gpt-4o-mini", from_model="gpt-4.1"),
        ModelMap("coding_agent", "claude-3-5-haiku", from_model="claude-sonnet-4-5"),
    ),
    cache_hit_rate={"code_review": 0.5},
    output_cap={"campaign_content": 2000},
    overrides=(PriceOverride(model="gpt-*", discount=Decimal("0.1"), name="what-if 10% off"),),
)
_TASK_RUNS = """
INSERT INTO task_runs
SELECT task_run_id, workflow, CASE WHEN hash(task_run_id) % 100 < 88 THEN 'completed' ELSE 'failed' END,
       started_at, ended_at, user_id, team, customer, NULL
FROM (SELECT task_run_id, min(workflow) AS workflow, min(ts) AS started_at, max(ts) AS ended_at,
             min(user_id) AS user_id, min(team) AS team, min(customer) AS customer
      FROM usage_events WHERE task_run_id IS NOT NULL GROUP BY task_run_id) AS r
"""


def build(path: Path, events: int) -> None:
    """Fill a fresh ledger at `path` with `events` bulk demo calls and their task runs."""
    started = time.perf_counter()
    partial = path.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    with DuckDBLedger(partial) as ledger:
        for batch in bulk_events(events, seed=1, batch_size=1_000_000):
            ledger.append("usage_events", batch)
        ledger._conn.execute(_TASK_RUNS)  # bulk SQL insert: a benchmark fixture, not ledger API
    partial.rename(path)
    print(f"built {events:,} events into {path} in {time.perf_counter() - started:.0f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--ledger", type=Path, default=None)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    path: Path = args.ledger or OUT / f"whatif-{args.events}.duckdb"
    if not path.exists():
        build(path, args.events)
    everything = Filters(start=datetime(2000, 1, 1, tzinfo=UTC), end=datetime(2100, 1, 1, tzinfo=UTC))
    with DuckDBLedger(path, read_only=True) as ledger:
        n = int(str(ledger.query_rows("SELECT count(*) AS n FROM usage_events")[0]["n"]))
        times = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            result = replay(ledger, SCENARIO, filters=everything)
            times.append(time.perf_counter() - started)
    replayed = sum(r.events + r.unpriced_events for r in result.rows)
    print(f"replayed {replayed:,} of {n:,} events: saving ${result.saving:,.2f}")
    for row in result.rows[:5]:
        print(f"  {row.workflow:<20} {row.baseline_cost:>14,.2f} -> {row.scenario_cost:>14,.2f}")
    best, median = min(times), statistics.median(times)
    verdict = "OK" if median <= TARGET_S else "TOO SLOW"
    print(
        f"what-if replay: median {median:.2f} s, best {best:.2f} s over {args.repeat} runs "
        f"(target <= {TARGET_S:.0f} s) {verdict}"
    )


if __name__ == "__main__":
    main()
