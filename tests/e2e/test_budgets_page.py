"""The Budgets and guardrails page in headless Chromium: it loads cleanly, its bars hold the API's numbers,
and a team lead sees only their team.

A small demo organisation ending today (so every quota's current period has spend) is served
under uvicorn in a thread with task budgets and quotas in force, plus a few blocked and
downgraded calls.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from tests.e2e.test_dashboard_browser import ARGS, CHROMIUM, PASSWORD, Site, Tab, api, signed_in
from tests.factories import event
from tokenops.config import Settings
from tokenops.demo import generate_org, load_demo
from tokenops.guard.policies import Policies
from tokenops.store import DuckDBLedger
from tokenops.testing import serve_in_thread
from tokenops.web import create_app
from tokenops.web.users import user_store

POLICIES = {
    "timezone": "Europe/Paris",
    "task_budgets": [
        {"name": "agents", "workflow": "*_agent", "max_usd": "0.50"},
        {"name": "everything", "max_usd": "0.05", "on_exceed": "downgrade", "downgrade_to": "gpt-4o-mini"},
    ],
    "quotas": [
        {"name": "team-monthly", "scope": "team", "period": "month", "max_usd": "20"},
        {"name": "org-daily", "scope": "org", "period": "day", "max_tokens": 2_000_000},
    ],
}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    folder = tmp_path_factory.mktemp("budgets")
    settings = Settings(
        ledger=str(folder / "demo.duckdb"), data_dir=folder / "state", guard=Policies.model_validate(POLICIES)
    )
    ledger = DuckDBLedger(folder / "demo.duckdb")
    now = datetime.now(UTC)
    load_demo(ledger, generate_org(7, end=now.date(), scale=0.05))
    extra = []
    for i, team in enumerate(("support", "support", "sales")):
        blocked = event(f"x{i}", ts=now - timedelta(days=i + 1), team=team, workflow="refund_agent", model="gpt-4o")
        extra.append(dataclasses.replace(blocked, cost=None, status="blocked", error_type="tokenops_quota_exceeded"))
    cheap = event("d1", ts=now - timedelta(days=2), team="sales", workflow="lead_enrichment", model="gpt-4o-mini")
    extra.append(dataclasses.replace(cheap, model_requested="gpt-4o"))
    ledger.record_events(extra)
    users = user_store(settings)
    users.create("admin", "admin", password=PASSWORD)
    users.create("support-lead", "lead", "support", password=PASSWORD)
    with serve_in_thread(create_app(settings, ledger)) as url:
        yield Site(url, ledger)
    ledger.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.skip("Chromium is not installed: `make test` installs it (apt-get install chromium)")
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        yield launched
        launched.close()


@pytest.fixture
def admin(browser: Browser, site: Site) -> Iterator[Tab]:
    yield from signed_in(browser, site, "admin")


@pytest.fixture
def lead(browser: Browser, site: Site) -> Iterator[Tab]:
    yield from signed_in(browser, site, "support-lead")


def _rows(tab: Tab, table: str, column: int) -> list[str]:
    found: list[str] = tab.page.eval_on_selector_all(
        f'table[data-table="{table}"] tbody tr', f"rows => rows.map(r => r.cells[{column}].dataset.raw)"
    )
    return found


def test_the_page_loads_and_its_bars_hold_the_apis_numbers(admin: Tab, site: Site, tmp_path: Path) -> None:
    page = admin.page
    reply = page.goto(site.url + "/budgets")
    assert reply is not None and reply.status == 200
    assert page.locator("header.top nav a.active").inner_text() == "Budgets"
    data = api(admin, site, "/api/budgets")
    budgets, quotas = data["task_budgets"], data["quotas"]
    assert isinstance(budgets, list) and isinstance(quotas, list)
    shares = page.eval_on_selector_all("rect.bar.limit", "bars => bars.map(b => b.dataset.share)")
    expected = [u["share"] for burn in (*budgets, *quotas) for u in burn["top"]]
    assert len(shares) > 10 and shares == expected
    assert quotas[0]["top"] and _rows(admin, "quota_0", 0) == [u["subject"] for u in quotas[0]["top"]]
    guard = data["guardrails"]
    assert isinstance(guard, dict)
    assert (guard["totals"]["blocked"], guard["totals"]["downgraded"]) == (3, 1)
    chart = page.locator('[data-section="actions"] figure.chart')
    assert chart.get_attribute("data-total") == "4"
    assert page.locator('[data-section="actions"] rect.bar').count() >= 3
    with page.expect_download() as download:
        page.click("#t-actions_rule a.csv")
    target = tmp_path / "rules.csv"
    download.value.save_as(target)
    assert "tokenops_quota_exceeded,3,0" in target.read_text()
    assert admin.errors == []


def test_a_lead_sees_only_their_team(lead: Tab, site: Site) -> None:
    page = lead.page
    reply = page.goto(site.url + "/budgets")
    assert reply is not None and reply.status == 200
    assert _rows(lead, "quota_0", 0) == ["support"]
    for table in ("budget_0", "budget_1"):
        assert set(_rows(lead, table, 2)) <= {"support"}
    assert _rows(lead, "actions_team", 0) == ["support"]
    assert lead.page.get_attribute('[data-kpi="blocked"]', "data-value") == "2"
    assert lead.errors == []  # before the refusals below, which the browser logs as failed loads
    assert page.request.get(site.url + "/api/budgets", params={"team": "sales"}).status == 403
    refused = page.goto(site.url + "/budgets?team=sales")
    assert refused is not None and refused.status == 403
