"""The dashboard in a real browser: headless Chromium (Debian's package) driven by Playwright.

A small demo organisation is served under uvicorn in a thread. Playwright never downloads a
browser here: it launches /usr/bin/chromium, which `make test` installs when it is missing.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tokenops.config import Settings
from tokenops.demo import generate_org, load_demo
from tokenops.store import DuckDBLedger
from tokenops.testing import serve_in_thread
from tokenops.web import create_app
from tokenops.web.html import NAV
from tokenops.web.users import user_store

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PASSWORD = "demo-password-1"


@dataclass
class Site:
    url: str
    ledger: DuckDBLedger


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    folder = tmp_path_factory.mktemp("dashboard")
    settings = Settings(ledger=str(folder / "demo.duckdb"), data_dir=folder / "state")
    ledger = DuckDBLedger(folder / "demo.duckdb")
    load_demo(ledger, generate_org(7, scale=0.05))
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


@dataclass
class Tab:
    page: Page
    errors: list[str]


def signed_in(browser: Browser, site: Site, name: str) -> Iterator[Tab]:
    context = browser.new_context(accept_downloads=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(site.url + "/")
    assert "/signin" in page.url
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", PASSWORD)
    page.click("form.signin button")
    page.wait_for_url(site.url + "/")
    yield Tab(page, errors)
    context.close()


@pytest.fixture
def admin(browser: Browser, site: Site) -> Iterator[Tab]:
    yield from signed_in(browser, site, "admin")


@pytest.fixture
def lead(browser: Browser, site: Site) -> Iterator[Tab]:
    yield from signed_in(browser, site, "support-lead")


def api(tab: Tab, site: Site, path: str, **params: str) -> dict[str, object]:
    query: dict[str, str | float | bool] = dict(params)
    reply = tab.page.request.get(site.url + path, params=query)
    assert reply.ok, reply.text()
    body: dict[str, object] = reply.json()
    return body


def kpi(tab: Tab, key: str) -> str:
    value = tab.page.get_attribute(f'[data-kpi="{key}"]', "data-value")
    assert isinstance(value, str)
    return value


def test_every_page_loads_without_console_errors(admin: Tab, site: Site) -> None:
    for _, path, label in NAV:
        reply = admin.page.goto(site.url + path)
        assert reply is not None and reply.status == 200, path
        assert admin.page.locator("h1").inner_text(), path
        assert admin.page.locator("header.top nav a.active").inner_text() == label
    assert admin.errors == []


def test_the_chart_has_data_and_a_filter_changes_the_numbers_like_the_api(admin: Tab, site: Site) -> None:
    page = admin.page
    assert page.locator("figure.chart rect.bar").count() > 30
    everyone = api(admin, site, "/api/summary")
    assert kpi(admin, "cost") == everyone["cost"] == page.get_attribute("figure.chart", "data-total")
    page.select_option("select[name=team]", "support")  # the filter applies on change
    page.wait_for_url(re.compile(r"team=support"))
    support = api(admin, site, "/api/summary", team="support")
    assert kpi(admin, "cost") == support["cost"] != everyone["cost"]
    assert page.get_attribute("figure.chart", "data-total") == support["cost"]
    assert page.locator("figure.chart").get_attribute("data-series") == "1"
    page.click("header.top nav >> text=Workflows")  # filters carry across pages
    assert "team=support" in page.url
    assert admin.errors == []


def test_drill_down_reaches_a_single_call(admin: Tab, site: Site) -> None:
    page = admin.page
    page.click('table[data-table="top_workflows"] tbody tr:first-child td:first-child a')
    page.wait_for_url(re.compile(r"/workflows/"))
    page.click('table[data-table="runs"] tbody tr:first-child td:first-child a')
    page.wait_for_url(re.compile(r"/runs/"))
    run_id = page.get_attribute("[data-run]", "data-run")
    page.click('table[data-table="calls"] tbody tr:first-child td:first-child a')
    page.wait_for_url(re.compile(r"/calls/"))
    request_id = page.get_attribute("[data-call]", "data-call")
    row = site.ledger.query_rows("SELECT task_run_id FROM usage_events WHERE request_id = ?", [request_id])
    assert row == [{"task_run_id": run_id}]
    assert page.locator('[data-column="request_id"]').inner_text() == request_id
    assert admin.errors == []


def test_csv_download_matches_the_table(admin: Tab, site: Site, tmp_path: Path) -> None:
    page = admin.page
    shown = page.eval_on_selector_all(
        'table[data-table="top_models"] tbody tr',
        "rows => rows.map(r => Array.from(r.cells, c => c.dataset.raw))",
    )
    with page.expect_download() as download:
        page.click("#t-top_models a.csv")
    target = tmp_path / "models.csv"
    download.value.save_as(target)
    with target.open() as handle:
        assert list(csv.reader(handle))[1:] == shown
    assert len(shown) > 3


def test_a_lead_cannot_see_another_teams_data(lead: Tab, site: Site) -> None:
    page = lead.page
    teams = page.eval_on_selector_all(
        'table[data-table="top_teams"] tbody tr', "rows => rows.map(r => r.cells[0].dataset.raw)"
    )
    assert teams == ["support"]
    assert kpi(lead, "cost") == api(lead, site, "/api/summary")["cost"]
    refused = page.goto(site.url + "/?team=sales")
    assert refused is not None and refused.status == 403
    assert page.request.get(site.url + "/api/spend", params={"team": "sales"}).status == 403
    sales_call = site.ledger.query_rows("SELECT request_id FROM usage_events WHERE team = 'sales' LIMIT 1")[0]
    call = page.goto(f"{site.url}/calls/{sales_call['request_id']}")
    assert call is not None and call.status == 403
