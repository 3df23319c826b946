from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from starlette.testclient import TestClient
from typer.testing import CliRunner

from tests.factories import T0, event
from tokenops.analytics.maturity import maturity
from tokenops.cli import app as cli
from tokenops.config import Settings
from tokenops.events import Cost, Outcome
from tokenops.guard.policies import Policies, Quota
from tokenops.store import DuckDBLedger, Ledger
from tokenops.web import create_app
from tokenops.web.app import key_store


def _met(ledger: Ledger, policies: Policies | None = None) -> dict[str, bool]:
    return {c.name: c.met for c in maturity(ledger, policies=policies).checks}


def test_an_empty_ledger_is_blind_and_is_told_to_meter_calls() -> None:
    with DuckDBLedger(":memory:") as ledger:
        result = maturity(ledger)
    assert (result.level, result.next_rung) == ("Blind", "Metered")
    assert result.missing[0].startswith("no model call in the ledger: send calls through the gateway")


def test_unpriced_calls_keep_an_organisation_blind_and_are_named() -> None:
    with DuckDBLedger(":memory:") as ledger:
        ledger.record_events([event(f"p{i}") for i in range(9)])
        ledger.record_events([event("u1", model="acme-internal-llm", provider="self-hosted")])
        result = maturity(ledger)
    assert result.level == "Blind"
    assert result.checks[1].measured == "90.0%"
    assert result.missing == (
        "price 1 unpriced calls on 'acme-internal-llm' (1 calls): add price overrides (pricing.overrides) "
        "in tokenops.toml",
    )


def test_the_ladder_is_climbed_rung_by_rung_with_concrete_gaps() -> None:
    with DuckDBLedger(":memory:") as ledger:
        # three priced calls, one without a workflow: $0.0075 of $0.0225 unattributed (66.7% attributed)
        ledger.record_events(
            [
                event("a1", workflow="triage", task_run_id="run-1"),
                event("a2", workflow="refunds"),
                replace(event("a3", workflow=None), source="sdk"),
            ]
        )
        result = maturity(ledger)
        assert (result.level, result.next_rung) == ("Metered", "Attributed")
        assert result.checks[2].measured == "66.7% of $0.02 spend names a team and a workflow"
        assert result.missing == (
            "attribute $0.01 of $0.02 spend that lacks a team or a workflow, mostly from 'sdk' ($0.01): "
            "give keys a team (`tokenops keys create --team`) and send X-Tokenops-Workflow",
        )

        ledger.record_events([event(f"b{i}", workflow="triage", task_run_id="run-1") for i in range(30)])
        result = maturity(ledger)
        assert (result.level, result.next_rung) == ("Attributed", "Unit-economic")
        assert result.missing == (
            "link outcomes to 2 of 2 workflows: triage ($0.23), refunds ($0.01) "
            "(POST /api/outcomes or `tokenops import outcomes`)",
        )

        # an outcome linked to a triage task run counts for triage; refunds credits its own workflow
        ledger.record_outcomes([Outcome("o1", T0, "ticket_resolved", Decimal(42), task_run_ids=("run-1",))])
        assert maturity(ledger).missing[0].startswith("link outcomes to 1 of 2 workflows: refunds ($0.01)")
        ledger.record_outcomes([Outcome("o2", T0, "refund_paid", Decimal(10), workflow="refunds")])
        result = maturity(ledger)
        assert (result.level, result.next_rung) == ("Unit-economic", "Optimized")
        assert [todo.split(":")[0] for todo in result.missing] == ["route calls", "cache", "set budgets"]

        # a dated snapshot of the alias asked for is not routing; a cheaper model instead is
        ledger.record_events(
            [replace(event("s1", model="gpt-4o-2024-08-06", workflow="triage"), model_requested="gpt-4o")]
        )
        assert not _met(ledger)["routing"]
        later = T0 + timedelta(hours=1)
        ledger.record_events(
            [
                replace(event("r1", model="gpt-4o-mini", ts=later, workflow="triage"), model_requested="gpt-4o"),
                replace(
                    event("c1", ts=later, workflow="triage"),
                    status="cached",
                    cost=Cost.zero(),
                    price_source="not-billed",
                ),
            ]
        )
        met = _met(ledger)
        assert met["routing"] and met["caching"] and not met["budgets"]
        policies = Policies(quotas=[Quota(name="support-month", scope="team", period="month", max_usd=Decimal(100))])
        result = maturity(ledger, policies=policies)
        assert (result.level, result.next_rung, result.missing) == ("Optimized", None, ())
        ledger.record_events([replace(event("x1", ts=later, workflow="triage"), status="blocked", cost=Cost.zero())])
        assert _met(ledger)["budgets"]  # a blocked call shows budgets in force without the policy set


def test_api_and_cli_maturity(tmp_path: Path) -> None:
    path = tmp_path / "org.duckdb"
    with DuckDBLedger(path) as ledger:
        ledger.record_events([event("a1", workflow="triage")])
    settings = Settings(data_dir=tmp_path / "state")
    _, admin_key = key_store(settings).create(user="ops", team=None, role="admin")
    with DuckDBLedger(path, read_only=True) as ledger, TestClient(create_app(settings, ledger)) as client:
        assert client.get("/api/maturity").status_code == 401
        body = client.get("/api/maturity", headers={"Authorization": f"Bearer {admin_key}"}).json()
    assert (body["level"], body["next_rung"]) == ("Attributed", "Unit-economic")
    assert body["missing"] == [
        "link outcomes to 1 of 1 workflows: triage ($0.01) (POST /api/outcomes or `tokenops import outcomes`)"
    ]
    runner = CliRunner()
    result = runner.invoke(cli, ["report", "maturity", "--ledger", str(path), "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["level"] == "Attributed"
    table = runner.invoke(cli, ["report", "maturity", "--ledger", str(path)], env={"COLUMNS": "200"})
    assert table.exit_code == 0
    assert "maturity: Attributed" in table.output
    assert "To reach Unit-economic:" in table.output and "link outcomes to 1 of 1 workflows" in table.output
