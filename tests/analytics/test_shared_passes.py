"""A page that shows several reports reads the calls once: the shared passes give each report's exact numbers."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from tests.store.conftest import fresh_database
from tests.store.test_postgres import _comparable
from tokenops.analytics.did import Design, load_panel
from tokenops.analytics.kpis import kpis
from tokenops.analytics.spend import Filters, tokens_per_task
from tokenops.analytics.unit_economics import cost_per_outcome, levers, levers_from_kpis, outcome_table
from tokenops.analytics.yield_ import ai_yield, group_costs
from tokenops.demo import generate_org, load_demo
from tokenops.store import DuckDBLedger
from tokenops.store.postgres import PostgresLedger

MIDDLE = datetime(2026, 11, 1, tzinfo=UTC)
FILTERS = [
    Filters(),
    Filters(team="support"),
    Filters(start=MIDDLE),
    Filters(workflow="support_qa", end=MIDDLE),
    Filters(customer="cus-0014"),
]


@pytest.fixture(scope="module")
def ledger() -> Iterator[DuckDBLedger]:
    with DuckDBLedger() as ledger:
        load_demo(ledger, generate_org(7, days=30, baseline_days=14, scale=0.1))
        yield ledger


@pytest.mark.parametrize("filters", FILTERS)
def test_kpis_with_run_quantile_give_tokens_per_task(ledger: DuckDBLedger, filters: Filters) -> None:
    spread = {r["workflow"]: r for r in kpis(ledger, ["workflow"], filters=filters, run_quantile=0.9).to_pylist()}
    expected = tokens_per_task(ledger, quantile=0.9, filters=filters).to_pylist()
    assert expected
    for row in expected:
        got = spread[row["workflow"]]
        assert {k: got[k] for k in row if k != "workflow"} == {k: v for k, v in row.items() if k != "workflow"}


def test_kpis_with_run_quantile_keep_every_kpi(ledger: DuckDBLedger) -> None:
    plain = kpis(ledger, ["team"], grain="week")
    spread = kpis(ledger, ["team"], grain="week", run_quantile=0.5)
    assert spread.select(plain.column_names).equals(plain)
    assert spread.column_names[-4:] == ["mean_tokens", "median_tokens", "p_tokens", "mean_cost"]
    with pytest.raises(ValueError, match="quantile"):
        kpis(ledger, ["team"], run_quantile=1.0)


@pytest.mark.parametrize("by", ["workflow", "team", "user", "customer"])
@pytest.mark.parametrize("filters", FILTERS)
def test_levers_from_kpis_equal_levers_in_value_and_order(ledger: DuckDBLedger, by: str, filters: Filters) -> None:
    direct = levers(ledger, by, filters)
    shared = levers_from_kpis(kpis(ledger, [by], filters=filters), by)
    assert direct
    assert list(shared.items()) == list(direct.items())
    assert outcome_table(shared, by).equals(cost_per_outcome(ledger, by, filters))


def test_levers_from_kpis_refuse_rows_without_outcomes(ledger: DuckDBLedger) -> None:
    with pytest.raises(ValueError, match="levers"):
        levers_from_kpis(kpis(ledger, ["workflow"], filters=Filters(model="gpt-4o-mini")), "workflow")


@pytest.mark.parametrize("by", ["all", "team", "person"])
def test_yield_from_a_panel_read_once_equals_yield_read_alone(ledger: DuckDBLedger, by: str) -> None:
    design = Design(resamples=200)
    panel = load_panel(ledger, design)
    assert not isinstance(panel, str)
    costs = group_costs(ledger, by, panel.baseline_end, panel.end)
    kept = dict(costs)
    assert ai_yield(ledger, by, design, panel=panel, costs=costs) == ai_yield(ledger, by, design)
    assert costs == kept  # the caller's costs are not consumed


@pytest.fixture(scope="module")
def postgres(ledger: DuckDBLedger) -> Iterator[PostgresLedger]:
    """The same organisation in a fresh PostgreSQL database (fails on CI when the server is missing)."""
    with fresh_database() as dsn, PostgresLedger(dsn) as pg:
        load_demo(pg, generate_org(7, days=30, baseline_days=14, scale=0.1))
        yield pg


@pytest.mark.parametrize("filters", FILTERS[:3])
def test_the_shared_passes_are_the_same_query_on_postgres(
    ledger: DuckDBLedger, postgres: PostgresLedger, filters: Filters
) -> None:
    duck = kpis(ledger, ["workflow"], filters=filters, run_quantile=0.95)
    pg = kpis(postgres, ["workflow"], filters=filters, run_quantile=0.95)
    assert duck.num_rows > 0
    assert _comparable(pg) == _comparable(duck)
    assert levers_from_kpis(pg, "workflow") == levers_from_kpis(duck, "workflow")
