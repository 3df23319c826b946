"""The Budgets page and `/api/budgets` in-process: burn-down against limits, blocked/downgraded calls, team scope."""

from __future__ import annotations

import csv
import dataclasses
import io
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from tests.factories import T0, event
from tests.web.conftest import PASSWORD
from tests.web.test_dashboard import kpi, tables_of
from tokenops.config import Settings
from tokenops.events import UsageEvent
from tokenops.guard.policies import Policies
from tokenops.store import DuckDBLedger
from tokenops.web import create_app
from tokenops.web.users import user_store

POLICIES = {
    "timezone": "Europe/Paris",
    "task_budgets": [
        {"name": "tickets", "workflow": "support_*", "max_usd": "0.01"},
        {
            "name": "leads",
            "workflow": "lead_*",
            "max_usd": "1",
            "on_exceed": "downgrade",
            "downgrade_to": "gpt-4o-mini",
        },
    ],
    "quotas": [{"name": "team-monthly", "scope": "team", "period": "month", "max_usd": "0.02"}],
}


def _blocked(request_id: str, team: str, workflow: str, run: str) -> UsageEvent:
    base = event(request_id, team=team, workflow=workflow, task_run_id=run, input_tokens=0, output_tokens=0)
    return dataclasses.replace(base, cost=None, status="blocked", error_type="tokenops_task_budget_exceeded")


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[tuple[Starlette, Settings]]:
    settings = Settings(data_dir=tmp_path / "state", guard=Policies.model_validate(POLICIES))
    ledger = DuckDBLedger(":memory:")
    downgraded = event("d1", team="sales", model="gpt-4o-mini", workflow="lead_scoring", task_run_id="run-b2")
    ledger.record_events(
        [
            event("a1", team="support", input_tokens=1_000, output_tokens=500, task_run_id="run-s1"),
            event("a2", team="support", ts=T0 + timedelta(hours=1), task_run_id="run-s1"),
            event("a3", team="support", ts=T0 + timedelta(hours=2), task_run_id="run-s2", output_tokens=10),
            _blocked("x1", "support", "support_ticket", "run-s1"),
            _blocked("x2", "sales", "lead_scoring", "run-b1"),
            event("b1", team="sales", model="gpt-4o-mini", workflow="lead_scoring", task_run_id="run-b1"),
            dataclasses.replace(downgraded, model_requested="gpt-4o"),
        ]
    )
    yield create_app(settings, ledger), settings
    ledger.close()


def _client(app: Starlette, settings: Settings, role: str, team: str | None = None) -> TestClient:
    user_store(settings).create(f"{role}-x", role, team, PASSWORD)
    client = TestClient(app)
    assert client.post("/signin", data={"name": f"{role}-x", "password": PASSWORD}).status_code == 200
    return client


def test_task_runs_and_quota_use_are_shown_against_their_limits(guarded: tuple[Starlette, Settings]) -> None:
    client = _client(*guarded, "admin")
    api = client.get("/api/budgets", params={"at": T0.isoformat()}).json()
    tickets, leads = api["task_budgets"]
    assert (tickets["runs"], tickets["runs_over"]) == (2, 1)
    assert [r["subject"] for r in tickets["top"]] == ["run-s1", "run-s2"]
    assert tickets["top"][0]["cost"] == "0.015" and tickets["top"][0]["state"] == "over"
    assert leads["runs"] == 2
    quota = api["quotas"][0]
    assert quota["label"] == "2026-11" and quota["start"] == "2026-10-31T23:00:00Z"  # Paris midnight
    assert {r["subject"]: r["state"] for r in quota["top"]} == {"support": "warn", "sales": "ok"}
    page = client.get("/budgets", params={"at": T0.isoformat()}).text
    shown = tables_of(page)
    assert [row[0] for row in shown["budget_0"]] == ["run-s1", "run-s2"]
    assert page.count('class="bar limit"') == 2 + 2 + 2
    assert 'href="/runs/run-s1"' in page


def test_blocked_and_downgraded_calls_with_estimated_savings(guarded: tuple[Starlette, Settings]) -> None:
    client = _client(*guarded, "viewer")
    actions = client.get("/api/budgets").json()["guardrails"]
    assert {k: actions["totals"][k] for k in ("blocked", "downgraded")} == {"blocked": 2, "downgraded": 1}
    by_rule = {r["rule"]: r for r in actions["by_rule"]}
    assert by_rule["tokenops_task_budget_exceeded"]["blocked"] == 2
    assert by_rule["leads"]["downgraded"] == 1  # the downgrading budget of lead_* workflows
    # d1 at gpt-4o's price minus its gpt-4o-mini cost; x1 at the mean support_ticket gpt-4o call (a1, a2, a3)
    assert Decimal(by_rule["leads"]["saving"]) > 0
    page = client.get("/budgets").text
    assert kpi(page, "blocked") == "2" and kpi(page, "downgraded") == "1"
    assert kpi(page, "saving") == actions["totals"]["saving"]
    for name, rows in tables_of(page).items():
        download = client.get("/budgets", params={"format": "csv", "table": name})
        assert list(csv.reader(io.StringIO(download.text)))[1:] == rows, name


def test_a_lead_sees_only_their_team(guarded: tuple[Starlette, Settings]) -> None:
    lead = _client(*guarded, "lead", "sales")
    api = lead.get("/api/budgets", params={"at": T0.isoformat()}).json()
    assert api["task_budgets"][0]["runs"] == 0
    assert [r["subject"] for r in api["quotas"][0]["top"]] == ["sales"]
    assert {r["team"] for r in api["guardrails"]["by_team"]} == {"sales"}
    assert lead.get("/api/budgets", params={"team": "support"}).status_code == 403
    assert lead.get("/budgets", params={"team": "support"}).status_code == 403
    assert "run-s1" not in lead.get("/budgets", params={"at": T0.isoformat()}).text
    assert TestClient(guarded[0]).get("/api/budgets").status_code == 401
