"""TokenOps KPIs from ledgers whose every row is known: numbers computed by hand, then API and CLI."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from tests.analytics.clients import admin_client
from tests.test_worked_examples import TS, agent_calls, agent_calls_with_prompt_caching
from tokenops.analytics.kpis import kpis
from tokenops.analytics.spend import Filters
from tokenops.cli import app as cli
from tokenops.demo import DemoOrg, generate_org, load_demo
from tokenops.demo.org import WORKFLOWS
from tokenops.events import Attribution, Cost, Outcome, TaskRun, TokenUsage, UsageEvent
from tokenops.pricing import Priced, Pricer
from tokenops.store import DuckDBLedger

T0 = datetime(2026, 9, 1, 10, 0, tzinfo=UTC)


def priced_run(ledger: DuckDBLedger, model: str, provider: str, calls: list[TokenUsage]) -> None:
    """One completed task run made of `calls`, each priced by the real Pricer as the foundation test does."""
    events = []
    for i, usage in enumerate(calls):
        priced = Pricer().price(model, usage, provider=provider, ts=TS)
        assert isinstance(priced, Priced)
        events.append(
            UsageEvent(
                request_id=f"agent-{i}",
                ts=TS + timedelta(seconds=i),
                provider=provider,
                model=model,
                usage=usage,
                cost=priced.cost,
                price_source=priced.source,
                attribution=Attribution(workflow="agent", task_run_id="run-1", iteration=i + 1, team="eng"),
            )
        )
    ledger.record_events(events)
    ledger.record_task_runs([TaskRun("run-1", "agent", TS, status="completed", ended_at=TS + timedelta(minutes=1))])


def test_worked_example_agent_workflow_on_gpt_4o_costs_0_585_per_completed_task() -> None:
    with DuckDBLedger() as ledger:
        priced_run(ledger, "gpt-4o", "openai", agent_calls())
        (row,) = kpis(ledger, ["workflow"]).to_pylist()

    assert row["cost_per_completed_task"] == Decimal("0.585")  # 162,000 x $2.50 + 18,000 x $10 per MTok
    assert (row["input_tokens"], row["output_tokens"], row["tokens_per_task"]) == (162_000, 18_000, 180_000)
    assert row["input_output_ratio"] == 9.0  # 162,000 / 18,000
    assert row["iterations_per_task"] == 12.0
    assert row["retries"] == 0 and row["escalated_runs"] == 0


def test_worked_example_prompt_cached_agent_on_sonnet_costs_0_38415() -> None:
    with DuckDBLedger() as ledger:
        priced_run(ledger, "claude-sonnet-4-5", "anthropic", agent_calls_with_prompt_caching())
        (row,) = kpis(ledger, ["workflow"]).to_pylist()

    assert row["cost_per_completed_task"] == Decimal("0.38415")
    assert row["cached_input_tokens"] == 143_000
    assert row["cache_hit_rate"] == 143_000 / 162_000


def call(
    rid: str,
    run: str | None,
    cost: str | None,
    *,
    minute: int = 0,
    status: str = "ok",
    model: str = "gpt-4o",
    requested: str | None = None,
    user: str = "ana",
    customer: str | None = None,
    iteration: int | None = None,
    step: str | None = "act",
) -> UsageEvent:
    """A call with a hand-set cost (None = unpriced) and 1,000 in / 100 out tokens, 400 of them cached."""
    return UsageEvent(
        request_id=rid,
        ts=T0 + timedelta(minutes=minute),
        provider="openai",
        model=model,
        usage=TokenUsage(input_tokens=1_000, cache_read_tokens=400, output_tokens=100),
        cost=None if cost is None else Cost(Decimal(0), Decimal(0), Decimal(0), Decimal(cost)),
        price_source="unpriced" if cost is None else "hand",
        status=status,  # type: ignore[arg-type]
        model_requested=requested,
        attribution=Attribution(
            user=user,
            team="support",
            workflow="support",
            task_run_id=run,
            customer=customer,
            iteration=iteration,
            step=step,
        ),
    )


def support_ledger(ledger: DuckDBLedger) -> None:
    """Four runs of `support`; the docstring of each KPI test says which rows it reads."""
    ledger.record_events(
        [
            # r1 completed: an error in iteration 1 then its retry, then iteration 2; a dated snapshot is no escalation
            call("r1-a", "r1", "0.10", step="plan", model="gpt-4o-2024-08-06", requested="gpt-4o"),
            call("r1-b", "r1", "0.01", minute=1, status="error", iteration=1),
            call("r1-c", "r1", "0.20", minute=2, iteration=1),
            call("r1-d", "r1", "0.20", minute=3, iteration=2),
            # r2 completed but one call unpriced: its cost is unknown
            call("r2-a", "r2", None, minute=4, model="acme-llm"),
            # r3 failed: it ends in an error, which nobody retried
            call("r3-a", "r3", "0.30", minute=5, user="ben"),
            call("r3-b", "r3", "0.02", minute=6, status="error", user="ben"),
            # r4 completed for a customer: asked for gpt-4o-mini, served gpt-4o (escalation); one tokenops cache hit
            call("r4-a", "r4", "0.40", minute=7, requested="gpt-4o-mini", user="ben", customer="acme"),
            call("r4-b", "r4", "0", minute=8, status="cached", user="ben", customer="acme"),
            # a call outside any task run
            call("x-a", None, "0.07", minute=70, user="ben"),
        ]
    )
    ledger.record_task_runs(
        [
            TaskRun("r1", "support", T0, status="completed", user="ana"),
            TaskRun("r2", "support", T0, status="completed"),
            TaskRun("r3", "support", T0, status="failed"),
            TaskRun("r4", "support", T0, status="completed", customer="acme"),
        ]
    )
    ledger.record_outcomes(
        [
            Outcome("o1", T0 + timedelta(hours=1), "ticket_resolved", Decimal(50), task_run_ids=("r1",)),
            Outcome("o2", T0 + timedelta(hours=1), "ticket_resolved", Decimal(30), workflow="support"),
        ]
    )


@pytest.fixture(scope="module")
def ledger() -> Iterator[DuckDBLedger]:
    with DuckDBLedger() as store:
        support_ledger(store)
        yield store


def test_kpis_by_workflow_from_a_hand_built_ledger(ledger: DuckDBLedger) -> None:
    (row,) = kpis(ledger, ["workflow"]).to_pylist()

    # priced cost 0.10 + 0.01 + 0.20 + 0.20 + 0.30 + 0.02 + 0.40 + 0 + 0.07 = 1.30; r2 is counted apart
    assert row["cost"] == Decimal("1.30")
    assert (row["events"], row["unpriced_events"], row["unpriced_tokens"]) == (10, 1, 1_100)
    # completed runs r1 (0.51), r2 (unknown), r4 (0.40): (0.51 + 0.40) / 2, never (.. + 0) / 3
    assert (row["completed_runs"], row["completed_runs_unpriced"]) == (3, 1)
    assert row["cost_per_completed_task"] == Decimal("0.455")
    assert row["task_runs"] == 4 and row["tokens_per_task"] == 9 * 1_100 / 4
    # r1-b failed and r1 went on: one retry in 9 calls made in task runs; r3-b ended its run
    assert row["retries"] == 1 and row["retry_rate"] == 1 / 9
    assert row["iterations_per_task"] == 2.0  # only r1 records iterations
    assert row["escalated_runs"] == 1 and row["escalation_rate"] == 1 / 4  # r4
    assert row["cache_hit_rate"] == 0.4  # 400 of every 1,000 input tokens
    assert row["tokenops_cache_hits"] == 1 and row["tokenops_cache_hit_rate"] == 1 / 10
    assert row["input_output_ratio"] == 10.0
    assert (row["users"], row["cost_per_user"]) == (2, Decimal("0.65"))
    assert (row["customers"], row["cost_per_customer"]) == (1, Decimal("0.40"))
    assert (row["outcomes"], row["outcome_value"]) == (2, Decimal(80))
    assert row["value_per_cost"] == Decimal("61.538461538462")  # 80 / 1.30


def test_kpis_by_user_per_hour_split_cost_and_value(ledger: DuckDBLedger) -> None:
    rows = kpis(ledger, ["user"], grain="hour").to_pylist()
    by = {(r["period"].hour, r["user"]): r for r in rows}

    assert set(by) == {(10, "ana"), (10, "ben"), (11, "ana"), (11, "ben"), (11, None)}
    assert by[(10, "ana")]["cost"] == Decimal("0.51") and by[(10, "ana")]["unpriced_events"] == 1
    assert by[(10, "ben")]["cost"] == Decimal("0.72")
    assert by[(11, "ben")]["cost"] == Decimal("0.07") and by[(11, "ben")]["task_runs"] == 0
    # outcomes land in their own hour: o1 reaches ana through r1, o2 has neither a person nor a run
    assert (by[(11, "ana")]["outcomes"], by[(11, "ana")]["outcome_value"], by[(11, "ana")]["cost"]) == (1, 50, 0)
    assert by[(11, "ana")]["value_per_cost"] is None  # $50 on $0 of AI cost is undefined, not infinite
    assert (by[(11, None)]["outcomes"], by[(11, None)]["outcome_value"]) == (1, 30)
    assert by[(10, "ana")]["outcomes"] == 0
    assert rows[0]["period"] <= rows[-1]["period"]


def test_kpis_by_model_leave_business_value_out(ledger: DuckDBLedger) -> None:
    table = kpis(ledger, ["model"], filters=Filters(customer="acme"))

    assert "outcome_value" not in table.column_names
    assert table.to_pylist()[0]["model"] == "gpt-4o" and table.to_pylist()[0]["cost"] == Decimal("0.40")


def test_kpis_by_customer_credit_outcomes_through_task_runs(ledger: DuckDBLedger) -> None:
    rows = {r["customer"]: r for r in kpis(ledger, ["customer"]).to_pylist()}

    assert (rows["acme"]["cost"], rows["acme"]["cost_per_completed_task"]) == (Decimal("0.40"), Decimal("0.40"))
    assert (rows["acme"]["outcomes"], rows[None]["outcomes"]) == (0, 2)  # o1 via r1 (no customer), o2 unlinked


def test_kpis_anomaly_hook_adds_the_rate(ledger: DuckDBLedger) -> None:
    seen = []

    def flagged(_ledger: object, dims: object, grain: object, filters: object) -> dict[tuple[object, ...], int]:
        seen.append((dims, grain))
        return {("ben",): 1}

    rows = {r["user"]: r for r in kpis(ledger, ["user"], anomalous_hours=flagged).to_pylist()}

    assert seen == [(["user"], None)]
    assert (rows["ben"]["hours"], rows["ben"]["anomalous_hours"], rows["ben"]["anomaly_rate"]) == (2, 1, 0.5)
    assert rows["ana"]["anomaly_rate"] == 0.0
    assert "anomaly_rate" not in kpis(ledger, ["user"]).column_names


def test_kpis_reject_unknown_dimensions_and_grains(ledger: DuckDBLedger) -> None:
    with pytest.raises(ValueError, match="Unknown dimension 'status; DROP'"):
        kpis(ledger, ["status; DROP"])
    with pytest.raises(ValueError, match="Unknown grain 'fortnight'"):
        kpis(ledger, ["team"], grain="fortnight")


def test_api_kpis_answers_json_with_exact_money(ledger: DuckDBLedger, tmp_path: Path) -> None:
    client = admin_client(ledger, tmp_path)

    body = client.get("/api/kpis", params={"by": "workflow", "since": "2026-09-01", "until": "2026-09-02"}).json()
    assert body["rows"][0]["cost_per_completed_task"] == "0.455"
    assert body["rows"][0]["cost"] == "1.3"
    late = client.get("/api/kpis", params={"by": "user", "since": "2026-09-01T11:00:00Z"}).json()
    # after 11:00 only ben's stray call costs anything; the outcomes of 11:00 still show, at $0 of AI cost
    assert [(r["user"], r["cost"], r["outcome_value"]) for r in late["rows"]] == [
        ("ben", "0.07", "0"),
        (None, "0", "30"),
        ("ana", "0", "50"),
    ]
    assert client.get("/api/kpis", params={"by": "nope"}).status_code == 400


def test_cli_report_kpis_prints_json(tmp_path: Path) -> None:
    path = tmp_path / "ledger.duckdb"
    with DuckDBLedger(path) as store:
        support_ledger(store)

    result = CliRunner().invoke(cli, ["report", "kpis", "--by", "workflow", "--ledger", str(path), "--format", "json"])

    assert result.exit_code == 0, result.output
    (row,) = orjson.loads(result.stdout)
    assert row["cost_per_completed_task"] == "0.455" and row["retries"] == 1
    wide = {"COLUMNS": "250"}
    table = CliRunner().invoke(
        cli, ["report", "kpis", "--by", "team", "--grain", "day", "--ledger", str(path)], env=wide
    )
    assert table.exit_code == 0, table.output
    assert "support" in table.stdout and "0.455000" in table.stdout and "11.1%" in table.stdout  # 1 retry in 9 calls


@pytest.fixture(scope="module")
def demo() -> Iterator[tuple[DemoOrg, DuckDBLedger]]:
    org = generate_org(7, days=30, baseline_days=7, scale=0.1)
    with DuckDBLedger() as store:
        load_demo(store, org)
        yield org, store


def test_demo_cost_per_completed_task_and_retries_match_the_generated_rows(demo: tuple[DemoOrg, DuckDBLedger]) -> None:
    org, store = demo
    completed = {r["task_run_id"] for r in org.task_runs.to_pylist() if r["status"] == "completed"}
    cost: dict[str, Decimal] = {}
    unpriced: set[str] = set()
    calls: dict[str, list[tuple[datetime, str]]] = {}
    for e in org.usage_events.select(["task_run_id", "cost_total", "ts", "status"]).to_pylist():
        run = e["task_run_id"]
        if run is None:
            continue
        calls.setdefault(run, []).append((e["ts"], e["status"]))
        if e["cost_total"] is None:
            unpriced.add(run)
        cost[run] = cost.get(run, Decimal(0)) + (e["cost_total"] or 0)
    priced = completed & set(cost) - unpriced
    want_cost = sum((cost[r] for r in priced), Decimal(0))
    want_retries = sum(sum(s == "error" for _, s in c) - (max(c)[1] == "error") for c in calls.values())

    (row,) = kpis(store, []).to_pylist()

    assert row["completed_runs"] - row["completed_runs_unpriced"] == len(priced)
    assert row["cost_per_completed_task"] == (want_cost / len(priced)).quantize(Decimal("1e-12"))
    assert row["retries"] == want_retries > 0


def test_demo_kpis_recover_the_generator_and_count_no_alias_as_escalation(demo: tuple[DemoOrg, DuckDBLedger]) -> None:
    org, store = demo
    rows = {r["workflow"]: r for r in kpis(store, ["workflow"]).to_pylist()}
    (runaway,) = [i for i in org.truth.incidents if i.kind == "runaway_loop"]

    # the demo asks for aliases (gpt-4o) and is served dated snapshots (gpt-4o-2024-08-06): same price
    assert all(r["escalated_runs"] == 0 for r in rows.values())
    for workflow in WORKFLOWS:
        if workflow.loop:  # 1 + Poisson(extra) iterations per run, and the runaway loop's one run
            row = rows[workflow.name]
            runs, usual = row["task_runs"], 1 + workflow.extra_iterations
            expected = usual if workflow.name != runaway.workflow else usual + (runaway.magnitude - usual) / runs
            assert row["iterations_per_task"] == pytest.approx(expected, rel=0.2)
        else:
            assert rows[workflow.name]["iterations_per_task"] is None
    assert rows["invoice_extraction"]["unpriced_events"] > 0  # the demo's private model has no price
