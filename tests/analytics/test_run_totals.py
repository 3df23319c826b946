"""The per-run totals the ledger keeps give the same KPIs as grouping every call (issue 7)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from tokenops.analytics import run_totals
from tokenops.analytics.drilldown import workflow_runs
from tokenops.analytics.kpis import kpis
from tokenops.analytics.spend import Filters, summary, tokens_per_task
from tokenops.analytics.unit_economics import levers
from tokenops.demo import generate_org
from tokenops.store import DuckDBLedger
from tokenops.store.migrations import RUN_PARTIALS, UNIFORM

_COLUMNS = "task_run_id, first_ts, last_ts, last_error_ts, calls, unpriced_calls, errors, tokens, cost, max_iteration"


def _ledger_in_pieces() -> DuckDBLedger:
    """Calls appended in slices that cut runs apart, half the task runs before and half after."""
    org = generate_org(7, days=30, baseline_days=7, scale=0.1)
    ledger = DuckDBLedger()
    events = org.usage_events.sort_by("ts")
    # one call in 97 moves to another team: its run is mixed, so every plan has runs to take from the calls
    moved = pc.equal(pc.bit_wise_and(pa.array(range(events.num_rows)), 127), 97)
    team = events.schema.get_field_index("team")
    events = events.set_column(team, "team", pc.if_else(moved, pa.scalar("moved"), events["team"]))
    runs = org.task_runs
    ledger.append("task_runs", runs.slice(0, runs.num_rows // 2))
    step = events.num_rows // 7 + 1
    for start in range(0, events.num_rows, step):
        ledger.append("usage_events", events.slice(start, step))
    ledger.append("usage_events", events.slice(0, step))  # a re-import changes nothing
    ledger.append("task_runs", runs)
    for name in ("outcomes", "outcome_task_runs"):
        ledger.append(name, getattr(org, name))
    return ledger


@pytest.fixture(scope="module")
def ledger() -> DuckDBLedger:
    return _ledger_in_pieces()


def _without_run_totals(monkeypatch: pytest.MonkeyPatch, ledger: DuckDBLedger) -> None:
    """Make `ledger` answer as a backend that keeps no run totals: reports read every run from its calls."""
    monkeypatch.setattr(ledger, "sync_run_totals", lambda: False)


def test_run_totals_match_a_recount_from_the_calls(ledger: DuckDBLedger) -> None:
    kept = ledger.query(f"SELECT {_COLUMNS}, mixed, status FROM task_run_totals ORDER BY task_run_id")
    recount = ledger.query(
        f"SELECT p.{_COLUMNS.replace(', ', ', p.')}, p.mixed, t.status "
        f"FROM ({RUN_PARTIALS.format(uniform=UNIFORM, source='usage_events')}) p "
        "LEFT JOIN task_runs t USING (task_run_id) ORDER BY task_run_id"
    )
    assert kept.num_rows > 100
    assert kept.to_pylist() == recount.to_pylist()


@pytest.mark.parametrize(
    ("dimensions", "grain", "filters"),
    [
        (["workflow"], None, Filters()),
        (["team"], "month", Filters()),
        (["user"], "hour", Filters()),
        (["customer", "feature"], "day", Filters()),
        (
            ["workflow"],
            "week",
            Filters(start=datetime(2026, 10, 3, 12, tzinfo=UTC), end=datetime(2026, 10, 20, tzinfo=UTC)),
        ),
        (["team"], None, Filters(workflow="support_qa", start=datetime(2026, 10, 10, 9, 30, tzinfo=UTC))),
    ],
)
def test_kpis_from_run_totals_equal_kpis_from_calls(
    ledger: DuckDBLedger,
    monkeypatch: pytest.MonkeyPatch,
    dimensions: list[str],
    grain: str | None,
    filters: Filters,
) -> None:
    fast = kpis(ledger, dimensions, grain=grain, filters=filters)
    _without_run_totals(monkeypatch, ledger)
    slow = kpis(ledger, dimensions, grain=grain, filters=filters)
    assert fast.num_rows > 0
    assert fast.equals(slow), pa.Table.to_pylist(fast)[:2]


_PERIOD = Filters(start=datetime(2026, 10, 25, 12, 7, tzinfo=UTC), end=datetime(2026, 11, 8, 15, 3, tzinfo=UTC))


@pytest.mark.parametrize("listed", [True, False], ids=["split runs listed", "split runs by subquery"])
@pytest.mark.parametrize("filters", [Filters(), _PERIOD, Filters(team="engineering", start=_PERIOD.start)])
def test_every_report_on_run_totals_equals_the_calls(
    ledger: DuckDBLedger, monkeypatch: pytest.MonkeyPatch, filters: Filters, listed: bool
) -> None:
    """KPIs with the tokens-per-run spread, tokens per task, the summary, the levers and a workflow's runs."""
    if not listed:
        monkeypatch.setattr(run_totals, "LISTED_SPLITS", 0)
    workflow = str(
        ledger.query_rows("SELECT workflow FROM usage_events WHERE workflow IS NOT NULL LIMIT 1")[0]["workflow"]
    )

    def every_report() -> list[object]:
        return [
            kpis(ledger, ["workflow"], filters=filters, run_quantile=0.95).to_pylist(),
            kpis(ledger, ["user"], grain="hour", filters=filters).to_pylist(),
            tokens_per_task(ledger, quantile=0.9, filters=filters).to_pylist(),
            summary(ledger, filters),
            levers(ledger, "team", filters),
            levers(ledger, "customer", filters),
            workflow_runs(ledger, workflow, filters, limit=30),
        ]

    assert run_totals.usable(ledger, ["workflow"], filters)
    fast = every_report()
    _without_run_totals(monkeypatch, ledger)
    slow = every_report()
    assert fast[0]
    for got, expected in zip(fast, slow, strict=True):
        assert got == expected


@pytest.mark.parametrize(
    ("dimensions", "grain", "filters"),
    [
        (["customer"], None, Filters()),
        (["customer"], "week", _PERIOD),
        ([], None, Filters(customer="cus-0001", start=_PERIOD.start)),
        (["customer"], "day", Filters(customer="cus-0001")),
    ],
)
def test_outcome_credit_by_customer_equals_the_joins(
    ledger: DuckDBLedger,
    monkeypatch: pytest.MonkeyPatch,
    dimensions: list[str],
    grain: str | None,
    filters: Filters,
) -> None:
    """Outcomes credited to customers from `outcome_credit` equal crediting them through links and task runs."""
    customers = ledger.query_rows("SELECT count(*) AS n FROM outcome_credit WHERE customer IS NOT NULL")
    assert customers[0]["n"] > 0
    fast = kpis(ledger, dimensions, grain=grain, filters=filters)
    fast_levers = levers(ledger, "customer", filters)
    _without_run_totals(monkeypatch, ledger)
    slow = kpis(ledger, dimensions, grain=grain, filters=filters)
    assert fast.equals(slow), pa.Table.to_pylist(fast)[:2]
    assert fast_levers == levers(ledger, "customer", filters)


@pytest.mark.parametrize(
    "report",
    [
        lambda ledger: kpis(ledger, ["customer"], grain="week", filters=_PERIOD, run_quantile=0.9),
        lambda ledger: kpis(ledger, ["model"]),
        lambda ledger: summary(ledger, _PERIOD),
        lambda ledger: levers(ledger, "customer", _PERIOD),
        lambda ledger: levers(ledger, "team"),
        lambda ledger: tokens_per_task(ledger, filters=_PERIOD),
    ],
    ids=["kpis by customer", "kpis by model", "summary", "levers by customer", "levers by team", "tokens per task"],
)
def test_a_report_asks_whether_the_run_totals_are_current_once(
    ledger: DuckDBLedger, monkeypatch: pytest.MonkeyPatch, report: Callable[[DuckDBLedger], object]
) -> None:
    """Each report asks once (the answer is passed down), and the next report asks again: nothing is kept."""
    asked: list[bool] = []
    sync = ledger.sync_run_totals

    def counted() -> bool:
        asked.append(sync())
        return asked[-1]

    monkeypatch.setattr(ledger, "sync_run_totals", counted)
    report(ledger)
    assert asked == [True]
    report(ledger)
    assert asked == [True, True]
