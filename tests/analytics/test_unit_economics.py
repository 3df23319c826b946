"""Cost per outcome and its three levers; the variance between periods sums exactly to the change."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from tests.analytics.clients import admin_client
from tokenops.analytics.spend import Filters
from tokenops.analytics.unit_economics import (
    cost_per_outcome,
    levers,
    outcome_variance,
    round_parts,
    shapley,
    variance_table,
)
from tokenops.cli import app as cli
from tokenops.events import Attribution, Cost, Outcome, TaskRun, TokenUsage, UsageEvent
from tokenops.store import DuckDBLedger

JAN = datetime(2026, 1, 1, tzinfo=UTC)
FEB = datetime(2026, 2, 1, tzinfo=UTC)
MAR = datetime(2026, 3, 1, tzinfo=UTC)
A = Filters(start=JAN, end=FEB)
B = Filters(start=FEB, end=MAR)


def period(ledger: DuckDBLedger, start: datetime, runs: int, tokens: int, cost: str, outcomes: int) -> None:
    """`runs` task runs of `triage`, one call each of `tokens` tokens costing `cost`; the first `outcomes` runs win."""
    tag = start.strftime("%b")
    ledger.record_events(
        UsageEvent(
            request_id=f"{tag}-{i}",
            ts=start + timedelta(hours=i),
            provider="openai",
            model="gpt-4o",
            usage=TokenUsage(input_tokens=tokens - 1_000, output_tokens=1_000),
            cost=Cost(Decimal(0), Decimal(0), Decimal(0), Decimal(cost)),
            price_source="hand",
            attribution=Attribution(workflow="triage", task_run_id=f"{tag}-run-{i}", team="support"),
        )
        for i in range(runs)
    )
    ledger.record_task_runs(TaskRun(f"{tag}-run-{i}", "triage", start, status="completed") for i in range(runs))
    ledger.record_outcomes(
        Outcome(
            f"{tag}-o-{i}", start + timedelta(hours=i, minutes=5), "ticket_closed", Decimal(10), (f"{tag}-run-{i}",)
        )
        for i in range(outcomes)
    )


def hand_ledger(ledger: DuckDBLedger) -> None:
    # A (January): 50 runs x 20,000 tokens x $2.00 = $100 for 25 outcomes -> $4.00 per outcome
    period(ledger, JAN, 50, 20_000, "2.00", 25)
    # B (February): 60 runs x 25,000 tokens x $1.50 = $90 for 40 outcomes -> $2.25 per outcome
    period(ledger, FEB, 60, 25_000, "1.50", 40)


@pytest.fixture(scope="module")
def ledger() -> Iterator[DuckDBLedger]:
    with DuckDBLedger() as store:
        hand_ledger(store)
        yield store


def test_cost_per_outcome_is_the_product_of_three_levers(ledger: DuckDBLedger) -> None:
    (row,) = cost_per_outcome(ledger, "workflow", A).to_pylist()

    assert (row["cost"], row["tokens"], row["task_runs"], row["outcomes"]) == (Decimal(100), 1_000_000, 50, 25)
    assert row["cost_per_token"] == 0.0001  # $100 / 1,000,000 tokens
    assert row["tokens_per_task"] == 20_000.0
    assert row["tasks_per_outcome"] == 2.0
    assert row["cost_per_outcome"] == Decimal(4)  # 0.0001 x 20,000 x 2


def test_variance_matches_the_hand_computed_shapley_split(ledger: DuckDBLedger) -> None:
    (v,), undefined = outcome_variance(ledger, A, B)

    # a = cost/token 1/10,000 -> 3/50,000; b = tokens/task 20,000 -> 25,000; c = tasks/outcome 2 -> 3/2
    # share of a = (a1 - a0)(2 b0c0 + 2 b1c1 + b1c0 + b0c1) / 6
    #            = -1/25,000 x (80,000 + 75,000 + 50,000 + 30,000) / 6 = -47/30
    # share of b = 5,000 x (2 x 1/5,000 + 2 x 9/100,000 + 3/25,000 + 3/20,000) / 6 = 17/24
    # share of c = -1/2 x (2 x 2 + 2 x 3/2 + 6/5 + 5/2) / 6 = -107/120
    assert undefined == []
    assert v.key == "triage"
    assert (v.price, v.volume, v.conversion) == (Fraction(-47, 30), Fraction(17, 24), Fraction(-107, 120))
    assert v.total == Fraction(-7, 4) == v.price + v.volume + v.conversion  # $4.00 -> $2.25


def test_variance_table_rounds_so_the_shares_still_add_up(ledger: DuckDBLedger) -> None:
    variances, _ = outcome_variance(ledger, A, B)
    (row,) = variance_table(variances).to_pylist()

    assert (row["cost_per_outcome_a"], row["cost_per_outcome_b"], row["change"]) == (
        4,
        Decimal("2.25"),
        Decimal("-1.75"),
    )
    # each share is a third of a pico-dollar off; rounding all three to nearest would sum to -1.750000000001,
    # so the first of the (tied) largest remainders rounds the other way
    assert row["cost_per_token_effect"] == Decimal("-1.566666666666")
    assert row["tokens_per_task_effect"] == Decimal("0.708333333333")
    assert row["tasks_per_outcome_effect"] == Decimal("-0.891666666667")
    assert (
        row["cost_per_token_effect"] + row["tokens_per_task_effect"] + row["tasks_per_outcome_effect"] == row["change"]
    )


def test_shapley_shares_sum_exactly_for_any_periods() -> None:
    rng = random.Random(7)
    for _ in range(500):
        a = tuple(Fraction(rng.randint(1, 10**9), rng.randint(1, 10**6)) for _ in range(3))
        b = tuple(Fraction(rng.randint(1, 10**9), rng.randint(1, 10**6)) for _ in range(3))
        shares = shapley(a, b)  # type: ignore[arg-type]
        assert sum(shares) == b[0] * b[1] * b[2] - a[0] * a[1] * a[2]
        total, parts = round_parts(sum(shares, Fraction(0)), shares)
        assert sum(parts) == total


def test_shapley_gives_a_lever_that_did_not_move_nothing() -> None:
    a = (Fraction(1, 100), Fraction(500), Fraction(3))
    b = (Fraction(1, 100), Fraction(700), Fraction(3))

    assert shapley(a, b) == (Fraction(0), Fraction(6), Fraction(0))  # only tokens per task moved: 0.01 x 200 x 3


def test_unpriced_calls_stay_out_of_the_levers_and_are_counted_apart() -> None:
    with DuckDBLedger() as store:
        hand_ledger(store)
        store.record_events(
            [
                UsageEvent(
                    request_id="unknown-model",
                    ts=JAN + timedelta(days=3),
                    provider="acme",
                    model="acme-llm",
                    usage=TokenUsage(input_tokens=7_000, output_tokens=500),
                    cost=None,
                    price_source="unpriced",
                    attribution=Attribution(workflow="triage", task_run_id="Jan-run-0"),
                )
            ]
        )
        lv = levers(store, "workflow", A)["triage"]

    assert (lv.cost, lv.tokens, lv.task_runs) == (Decimal(100), 1_000_000, 50)
    assert (lv.unpriced_events, lv.unpriced_tokens) == (1, 7_500)


def test_outcomes_credited_to_a_workflow_directly_count() -> None:
    with DuckDBLedger() as store:
        hand_ledger(store)
        store.record_outcomes([Outcome("manual", JAN + timedelta(days=2), "ticket_closed", workflow="triage")])
        (row,) = cost_per_outcome(store, "workflow", A).to_pylist()

    assert row["outcomes"] == 26
    assert row["cost_per_outcome"] == Decimal("3.846153846154")  # $100 / 26


def test_a_period_without_outcomes_is_undefined_not_zero(ledger: DuckDBLedger) -> None:
    variances, undefined = outcome_variance(ledger, A, Filters(start=MAR, end=MAR + timedelta(days=30)))

    assert variances == [] and undefined == ["triage"]


def test_api_cost_per_outcome_and_variance(ledger: DuckDBLedger, tmp_path: Path) -> None:
    client = admin_client(ledger, tmp_path)

    rows = client.get("/api/cost-per-outcome", params={"by": "workflow", "since": "2026-02-01"}).json()["rows"]
    assert [(r["workflow"], r["cost_per_outcome"]) for r in rows] == [("triage", "2.25")]
    periods = {"a_since": "2026-01-01", "a_until": "2026-02-01", "b_since": "2026-02-01", "b_until": "2026-03-01"}
    body = client.get("/api/cost-per-outcome/variance", params=periods).json()
    assert body["rows"][0]["change"] == "-1.75"
    assert body["rows"][0]["tasks_per_outcome_effect"] == "-0.891666666667"
    missing = client.get("/api/cost-per-outcome/variance", params={"a_since": "2026-01-01"})
    assert missing.status_code == 400 and "a_until" in missing.json()["error"]["message"]
    assert client.get("/api/cost-per-outcome", params={"by": "model"}).status_code == 400


def test_cli_reports_outcomes_and_variance(tmp_path: Path) -> None:
    path = tmp_path / "ledger.duckdb"
    with DuckDBLedger(path) as store:
        hand_ledger(store)
    runner = CliRunner()

    outcomes = runner.invoke(cli, ["report", "outcomes", "--ledger", str(path), "--format", "json"])
    assert outcomes.exit_code == 0, outcomes.output
    assert orjson.loads(outcomes.stdout)[0]["cost_per_outcome"] == "2.923076923077"  # $190 / 65 outcomes

    args = ["report", "variance", "--before", "2026-01-01..2026-02-01", "--after", "2026-02-01..2026-03-01"]
    variance = runner.invoke(cli, [*args, "--ledger", str(path), "--format", "csv"])
    assert variance.exit_code == 0, variance.output
    assert variance.stdout.splitlines()[1] == "triage,4,2.25,-1.75,-1.566666666666,0.708333333333,-0.891666666667"
    bad = runner.invoke(cli, ["report", "variance", "--before", "January", "--after", "2026-02-01..2026-03-01"])
    assert bad.exit_code == 2 and "START..END" in bad.output
