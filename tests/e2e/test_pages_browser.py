"""The analytics pages in headless Chromium: they load cleanly with charts that hold data, the what-if form
returns a saving equal to the API's, a filter moves the numbers as the API does, and a lead stays in their team.

A small demo organisation is served under uvicorn in a thread, built once for this module.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import Decimal

import pytest
from playwright.sync_api import Browser, sync_playwright

from tests.e2e.test_dashboard_browser import ARGS, CHROMIUM, PASSWORD, Site, Tab, api, signed_in
from tokenops.config import Settings
from tokenops.demo import generate_org, load_demo
from tokenops.store import DuckDBLedger
from tokenops.testing import serve_in_thread
from tokenops.web import create_app
from tokenops.web.users import user_store

CHARTS = {  # page -> charts it must draw with marks in them
    "/questions": "figure.chart.hbars rect.bar",
    "/workflows": "figure.chart.waterfall rect.step",
    "/yield?resamples=200": "figure.chart.intervals g.estimate",
    "/recommendations": "figure.chart.intervals g.estimate",
    "/maturity": "ol.ladder li.reached",
}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    folder = tmp_path_factory.mktemp("pages-browser")
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


@pytest.fixture
def admin(browser: Browser, site: Site) -> Iterator[Tab]:
    yield from signed_in(browser, site, "admin")


@pytest.fixture
def lead(browser: Browser, site: Site) -> Iterator[Tab]:
    yield from signed_in(browser, site, "support-lead")


def raw_column(tab: Tab, table: str, index: int) -> dict[str, str]:
    rows = tab.page.eval_on_selector_all(
        f'table[data-table="{table}"] tbody tr', "rows => rows.map(r => Array.from(r.cells, c => c.dataset.raw))"
    )
    return {row[0]: row[index] for row in rows}


def test_every_analytics_page_loads_with_charts_and_no_console_errors(admin: Tab, site: Site) -> None:
    for path, marks in CHARTS.items():
        reply = admin.page.goto(site.url + path)
        assert reply is not None and reply.status == 200, path
        assert admin.page.locator(marks).count() > 0, path
        assert admin.page.locator("table[data-table] tbody tr").count() > 0, path
        assert "Not built yet" not in admin.page.content(), path
    assert admin.page.locator("ol.ladder li").count() == 5
    assert admin.errors == []


def test_the_yield_page_draws_intervals_and_names_insufficient_data(admin: Tab, site: Site) -> None:
    page = admin.page
    page.goto(site.url + "/yield?resamples=200&end=2026-09-08")
    estimates = page.locator("figure.intervals").first
    assert int(estimates.get_attribute("data-estimates") or 0) > 0
    assert int(estimates.get_attribute("data-insufficient") or 0) > 0
    assert (page.locator("figure.intervals text.insufficient").first.text_content() or "").startswith("insufficient")
    whisker = page.locator("figure.intervals g.estimate line.whisker").first.bounding_box()
    assert whisker is not None and whisker["width"] > 1  # the interval is drawn, not just the dot
    assert admin.errors == []


def test_the_what_if_form_returns_the_apis_saving(admin: Tab, site: Site) -> None:
    page = admin.page
    page.goto(site.url + "/recommendations")
    model = page.eval_on_selector(
        'select[name="model:support_qa"]',
        "s => Array.from(s.options).map(o => o.value).find(v => v.startsWith('gpt-4o-mini'))",
    )
    page.select_option('select[name="model:support_qa"]', model)
    page.fill('input[name="cap:coding_agent"]', "2000")
    page.fill('input[name="discount"]', "10")
    page.click("form.whatif button[type=submit]")
    page.wait_for_url(re.compile(r"whatif=1"))
    shown = page.get_attribute('[data-kpi="saving"]', "data-value")
    body = {
        "models": [{"workflow": "support_qa", "model": model}],
        "output_cap": {"coding_agent": 2000},
        "overrides": [{"model": "*", "discount": "0.1"}],
    }
    reply = page.request.post(site.url + "/api/whatif", data=body)
    assert reply.ok, reply.text()
    expected = reply.json()
    assert shown == expected["saving"] and Decimal(expected["saving"]) > 0
    assert raw_column(admin, "whatif", 4) == {r["workflow"] or "": r["saving"] for r in expected["rows"]}
    assert page.locator("#whatif figure.chart rect.bar").count() > 0
    assert admin.errors == []


def test_a_filter_changes_the_numbers_like_the_api(admin: Tab, site: Site) -> None:
    page = admin.page
    page.goto(site.url + "/questions")
    everyone = raw_column(admin, "models", 1)
    page.select_option("select[name=team]", "support")  # applies on change
    page.wait_for_url(re.compile(r"team=support"))
    support = raw_column(admin, "models", 1)
    spend = api(admin, site, "/api/spend", by="model", team="support")["rows"]
    assert isinstance(spend, list)
    assert support == {r["model"]: r["cost"] for r in spend} != everyone
    assert set(raw_column(admin, "teams", 1)) == {"support"}
    page.click("header.top nav >> text=Workflows")  # and the filter carries to the next page
    assert "team=support" in page.url
    per_outcome = api(admin, site, "/api/cost-per-outcome", team="support")["rows"]
    assert isinstance(per_outcome, list)
    shown = raw_column(admin, "workflows", 10)
    assert shown == {r["workflow"]: r["cost_per_outcome"] or "" for r in per_outcome if r["workflow"] in shown}
    assert admin.errors == []


def test_drill_down_from_the_workflows_page_reaches_a_call(admin: Tab, site: Site) -> None:
    page = admin.page
    page.goto(site.url + "/workflows")
    page.click('table[data-table="workflows"] tbody tr:first-child td:first-child a')
    page.wait_for_url(re.compile(r"/workflows/"))
    assert page.locator("figure.chart.waterfall rect.step").count() == 5
    page.click('table[data-table="runs"] tbody tr:first-child td:first-child a')
    page.wait_for_url(re.compile(r"/runs/"))
    page.click('table[data-table="calls"] tbody tr:first-child td:first-child a')
    page.wait_for_url(re.compile(r"/calls/"))
    assert page.locator('[data-column="request_id"]').inner_text()
    assert admin.errors == []


def test_a_lead_sees_only_their_team_on_the_analytics_pages(lead: Tab, site: Site) -> None:
    page = lead.page
    page.goto(site.url + "/questions")
    assert set(raw_column(lead, "teams", 1)) == {"support"}
    page.goto(site.url + "/yield?resamples=200")
    assert set(raw_column(lead, "teams", 1)) == {"support"}
    assert set(raw_column(lead, "people", 1).values()) == {"support"}
    page.goto(site.url + "/recommendations")
    assert list(raw_column(lead, "forecast", 0)) == ["support"]
    for path in CHARTS:
        refused = page.goto(site.url + path + ("&" if "?" in path else "?") + "team=sales")
        assert refused is not None and refused.status == 403, path
    assert page.request.get(site.url + "/api/forecast", params={"team": "sales"}).status == 403
