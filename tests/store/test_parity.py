"""Every report the CLI offers gives identical numbers on DuckDB, PostgreSQL and ClickHouse for the demo organisation.

`test_postgres.py` and `test_clickhouse.py` compare the reports both backends had when they were
written (spend, KPIs, unit economics, yield, adoption, maturity, forecast, recommendations; and on
ClickHouse budgets, incidents and reconciliation). This module adds what `tokenops report` and
`tokenops reconcile` also print, with the options they take: the CFO month and value figures
(guard actions included), what-if replays and their cache hit rates, filtered and non-default
variants; runs ClickHouse's extra reports on PostgreSQL too; and checks the web API on ClickHouse.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from pathlib import Path

import orjson
import pytest

from tests.analytics.clients import admin_client
from tests.store.conftest import fresh_database
from tests.store.test_clickhouse import REPORTS as CH_REPORTS
from tests.store.test_clickhouse import _same
from tests.store.test_postgres import API, Report, _comparable
from tests.store.test_postgres import REPORTS as PG_REPORTS
from tokenops.analytics import (
    adoption,
    anomalies,
    forecast,
    kpis,
    maturity,
    recommend,
    reconcile,
    spend,
    unit_economics,
    whatif,
    yield_,
)
from tokenops.analytics.did import Design
from tokenops.cli.demo import DEMO_POLICIES
from tokenops.demo import generate_org, load_demo
from tokenops.pricing import PriceOverride, Pricer
from tokenops.report import month_figures
from tokenops.report.monthly import MonthFigures
from tokenops.report.value import ValueFigures, value_figures
from tokenops.store import DuckDBLedger, Ledger
from tokenops.store.clickhouse import ClickHouseLedger
from tokenops.store.postgres import PostgresLedger


@pytest.fixture(scope="module")
def ledgers(engine_dir: str) -> Iterator[tuple[Ledger, Ledger, Ledger]]:
    """The small demo organisation in DuckDB, a fresh PostgreSQL database and chdb."""
    org = generate_org(7, scale=0.25)
    with (
        fresh_database() as dsn,
        DuckDBLedger(":memory:") as duck,
        PostgresLedger(dsn) as pg,
        ClickHouseLedger.embedded(engine_dir, "parity") as ch,
    ):
        counts = load_demo(duck, org)
        assert load_demo(pg, org) == counts == load_demo(ch, org)
        yield duck, pg, ch


_MID = datetime(2026, 10, 15, tzinfo=UTC)
_OCTOBER = spend.Filters(start=datetime(2026, 10, 1, tzinfo=UTC), end=datetime(2026, 11, 1, tzinfo=UTC))
_SUPPORT_LATE = spend.Filters(start=_MID, team="support")
_DISCOUNT = (PriceOverride(model="gpt-4o*", discount=Decimal("0.2")),)
_SCENARIOS: dict[str, whatif.Scenario] = {
    "models": whatif.Scenario(models=(whatif.ModelMap("*", "gpt-4o-mini"),)),
    "one workflow": whatif.Scenario(models=(whatif.ModelMap("refund_agent", "claude-haiku-4-5"),)),
    "cache": whatif.Scenario(cache_hit_rate={"*": 0.5, "ticket_triage": 0.8}),
    "output cap": whatif.Scenario(output_cap={"*": 300, "coding_agent": 800}),
    "overrides": whatif.Scenario(overrides=_DISCOUNT),
}


def _cfo(led: Ledger, month: str, team: str | None) -> tuple[MonthFigures, ValueFigures]:
    """What `tokenops report cfo` renders: the month's figures and its value section."""
    figures = month_figures(led, month, Pricer(), DEMO_POLICIES.task_budgets, team=team)
    value = value_figures(led, figures.start, figures.end, team=team, policies=DEMO_POLICIES, overrides=_DISCOUNT)
    return figures, value


def _whatif(led: Ledger, scenario: whatif.Scenario) -> tuple[spend.Filters, whatif.WhatIf]:
    """What `tokenops report whatif` prints: the default window's replay under the scenario."""
    window = whatif.default_window(led, spend.Filters())
    return window, whatif.replay(led, scenario, filters=window, overrides=_DISCOUNT)


def _reconcile(led: Ledger) -> object:
    """What `tokenops reconcile` prints for a window: the table and its totals."""
    window = reconcile.Window(start=_MID - timedelta(days=20), end=_MID + timedelta(days=10), provider="openai")
    return reconcile.reconcile_table(led, window), reconcile.totals(reconcile.reconcile(led, window))


EXTRA: dict[str, Report] = {
    **{f"cfo {m} {t}": partial(_cfo, month=m, team=t) for m in ("2026-09", "2026-10") for t in (None, "support")},
    **{f"whatif {name}": partial(_whatif, scenario=s) for name, s in _SCENARIOS.items()},
    "whatif auto hit rates": lambda led: recommend.auto_hit_rates(
        led, ["ticket_triage", "refund_agent", "nope"], whatif.default_window(led, spend.Filters())
    ),
    "tokens_per_task median filtered": lambda led: spend.tokens_per_task(led, quantile=0.5, filters=_SUPPORT_LATE),
    "kpis filtered": lambda led: kpis.kpis(led, ["model"], grain="week", filters=_SUPPORT_LATE),
    "cost_per_outcome filtered": lambda led: unit_economics.cost_per_outcome(led, "workflow", _OCTOBER),
    "outcome_variance team": lambda led: unit_economics.outcome_variance(
        led, spend.Filters(end=_MID), spend.Filters(start=_MID), "team"
    ),
    **{
        f"ai_yield {b} design": partial(
            yield_.ai_yield, by=b, design=Design(resamples=200, confidence=0.9, seed=3, end=_MID.date())
        )
        for b in ("all", "team")
    },
    "adoption filtered": lambda led: adoption.adoption(led, _SUPPORT_LATE),
    "maturity policies": lambda led: maturity.maturity(led, spend.Filters(start=_MID), DEMO_POLICIES),
    "forecast options": lambda led: forecast.month_end(
        led, "workflow", as_of=_MID, filters=spend.Filters(team="support"), level=0.8
    ),
    "recommendations options": lambda led: recommend.recommendations(
        led, as_of=_MID, filters=spend.Filters(team="engineering"), overrides=_DISCOUNT
    ),
    "incidents filtered": lambda led: anomalies.find_incidents(
        led, "model", since=_MID - timedelta(days=20), until=_MID, team="support"
    ),
    "reconcile window": _reconcile,
}
"""Reports (and options) of the CLI that the older per-backend tests do not cover."""

ON_POSTGRES_TOO: dict[str, Report] = {k: v for k, v in CH_REPORTS.items() if k not in PG_REPORTS}
"""Reports `test_clickhouse.py` added that `test_postgres.py` does not run."""


@pytest.mark.parametrize("name", EXTRA)
def test_every_cli_report_is_identical_on_the_three_backends(ledgers: tuple[Ledger, Ledger, Ledger], name: str) -> None:
    duck, pg, ch = ledgers
    want = _same(EXTRA[name](duck))
    assert _same(EXTRA[name](pg)) == want
    assert _same(EXTRA[name](ch)) == want


@pytest.mark.parametrize("name", ON_POSTGRES_TOO)
def test_clickhouse_only_reports_are_identical_on_postgres(ledgers: tuple[Ledger, Ledger, Ledger], name: str) -> None:
    duck, pg, _ = ledgers
    assert _same(ON_POSTGRES_TOO[name](pg)) == _same(ON_POSTGRES_TOO[name](duck))


def test_the_reports_are_not_empty(ledgers: tuple[Ledger, Ledger, Ledger]) -> None:
    """A comparison of empty results would prove nothing: the demo exercises each report."""
    duck = ledgers[0]
    figures, value = _cfo(duck, "2026-10", None)
    assert figures.total.cost > 0 and figures.teams and figures.workflows
    assert dataclasses.asdict(value)["outcomes"]
    for name in _SCENARIOS:
        _, result = _whatif(duck, _SCENARIOS[name])
        assert result.rows, name
    assert forecast.month_end(duck, "workflow", as_of=_MID, filters=spend.Filters(team="support"), level=0.8)


def test_the_web_api_answers_the_same_json_on_clickhouse(
    ledgers: tuple[Ledger, Ledger, Ledger], tmp_path: Path
) -> None:
    duck, _, ch = ledgers
    with admin_client(duck, tmp_path / "duck") as a, admin_client(ch, tmp_path / "ch") as b:
        for url in API:
            got, want = b.get(url), a.get(url)
            assert (url, got.status_code) == (url, 200)
            assert _comparable(orjson.loads(got.content)) == _comparable(orjson.loads(want.content)), url
