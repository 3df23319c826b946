"""Dashboard pages in-process: sign-in, the overview's numbers against the API, CSV, drill-down, team scope."""

from __future__ import annotations

import csv
import io
import re
from html.parser import HTMLParser

from starlette.applications import Starlette
from starlette.testclient import TestClient

from tests.web.conftest import PASSWORD, SignIn
from tokenops.config import Settings
from tokenops.web.html import NAV
from tokenops.web.users import user_store


class _Tables(HTMLParser):
    """Each `<table data-table=...>` as rows of its cells' exact `data-raw` values."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self._current: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "table" and found.get("data-table"):
            self._current = found["data-table"]
            self.tables[self._current or ""] = []
        elif tag == "tr" and self._current is not None:
            self.tables[self._current].append([])
        elif tag == "td" and self._current is not None:
            self.tables[self._current][-1].append(found.get("data-raw") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._current = None


def tables_of(html: str) -> dict[str, list[list[str]]]:
    parser = _Tables()
    parser.feed(html)
    return {name: [row for row in rows if row] for name, rows in parser.tables.items()}


def kpi(html: str, key: str) -> str:
    match = re.search(rf'data-kpi="{key}" data-value="([^"]*)"', html)
    assert match, key
    return match.group(1)


def test_pages_send_strangers_to_sign_in_and_back(app: Starlette, settings: Settings) -> None:
    user_store(settings).create("ana", "viewer", password=PASSWORD)
    with TestClient(app) as browser:
        away = browser.get("/workflows?team=sales", follow_redirects=False)
        assert away.status_code == 303
        assert away.headers["location"] == "/signin?next=%2Fworkflows%3Fteam%3Dsales"
        wrong = browser.post("/signin", data={"name": "ana", "password": "nope-nope"})
        assert wrong.status_code == 401
        assert "Unknown name or wrong password" in wrong.text
        cookie = browser.post(
            "/signin",
            data={"name": "ana", "password": PASSWORD, "next": "/workflows?team=sales"},
            follow_redirects=False,
        )
        assert cookie.headers["location"] == "/workflows?team=sales"
        assert "httponly" in cookie.headers["set-cookie"].lower()
        assert "samesite=lax" in cookie.headers["set-cookie"].lower()
        assert browser.get("/workflows").status_code == 200
        browser.post("/signout")
        assert browser.get("/", follow_redirects=False).status_code == 303


def test_sign_in_never_redirects_to_another_site(app: Starlette, settings: Settings) -> None:
    user_store(settings).create("ana", "viewer", password=PASSWORD)
    with TestClient(app) as browser:
        reply = browser.post(
            "/signin", data={"name": "ana", "password": PASSWORD, "next": "//evil.example/"}, follow_redirects=False
        )
        assert reply.headers["location"] == "/"


def test_removing_a_user_ends_their_session(sign_in: SignIn, settings: Settings) -> None:
    viewer = sign_in("viewer")
    assert viewer.get("/").status_code == 200
    name = user_store(settings).list()[0].name
    user_store(settings).remove(name)
    assert viewer.get("/api/summary").status_code == 401


def test_overview_numbers_match_the_api_and_call_out_unknowns(client: TestClient) -> None:
    page = client.get("/").text
    api = client.get("/api/summary").json()
    assert kpi(page, "cost") == api["cost"] == "0.02295"
    assert kpi(page, "unattributed") == api["unattributed_cost"]
    assert kpi(page, "unpriced") == "1"
    assert 'data-callout="unpriced"' in page and 'data-callout="unattributed"' in page
    chart = re.search(r'<figure class="chart" data-series="(\d+)" data-points="(\d+)" data-total="([^"]+)"', page)
    assert chart is not None
    assert chart.group(3) == api["cost"]
    assert int(chart.group(1)) == 3  # support, sales, (no team)
    teams = {row[0]: row[1] for row in tables_of(page)["top_teams"]}
    assert teams == {"support": "0.015", "sales": "0.00045", "": "0.0075"}


def test_filters_narrow_the_page_and_carry_across_the_navigation(client: TestClient) -> None:
    page = client.get("/", params={"team": "sales", "start": "2026-11-01"}).text
    assert kpi(page, "cost") == client.get("/api/summary", params={"team": "sales"}).json()["cost"] == "0.00045"
    for _, path, _ in NAV:
        assert f'href="{path}?start=2026-11-01&amp;team=sales"' in page
    bad = client.get("/", params={"start": "yesterday"})
    assert bad.status_code == 400
    assert "start=&#x27;yesterday&#x27; is not an ISO 8601 date" in bad.text


def test_every_table_downloads_as_the_csv_of_what_is_shown(client: TestClient) -> None:
    for path in ("/", "/workflows", "/workflows/support_ticket", "/runs/run-s1"):
        page = client.get(path, params={"team": "support"}).text
        shown = tables_of(page)
        assert shown, path
        for name, rows in shown.items():
            download = client.get(path, params={"team": "support", "format": "csv", "table": name})
            assert download.headers["content-type"].startswith("text/csv")
            assert list(csv.reader(io.StringIO(download.text)))[1:] == rows, (path, name)
    assert client.get("/", params={"format": "csv", "table": "planets"}).status_code == 404


def test_every_page_answers_on_a_ledger_with_little_data(client: TestClient) -> None:
    for _, path, _ in NAV:  # no time entries, outcomes or history: each page says what it cannot show
        assert client.get(path).status_code == 200, path
    assert "no time entries" in client.get("/yield").text


def test_drill_down_from_workflow_to_a_single_call(client: TestClient) -> None:
    workflows = client.get("/workflows").text
    assert 'href="/workflows/support_ticket"' in workflows
    runs = tables_of(client.get("/workflows/support_ticket").text)["runs"]
    assert [r[0] for r in runs] == ["run-s1"]
    calls = tables_of(client.get("/runs/run-s1").text)["calls"]
    assert [c[0] for c in calls] == ["a1", "a2"]
    call = client.get("/calls/a2").text
    assert '<span data-column="request_id">a2</span>' in call
    assert '<span data-column="cost_total">$0.0075</span>' in call
    assert client.get("/calls/nope").status_code == 404
    assert client.get("/runs/nope").status_code == 404


def test_a_lead_sees_only_their_team_on_every_page(sign_in: SignIn) -> None:
    lead = sign_in("lead", "support")
    overview = lead.get("/").text
    assert kpi(overview, "cost") == "0.015"
    assert {row[0] for row in tables_of(overview)["top_teams"]} == {"support"}
    assert '<select name="team" disabled><option selected>support</option>' in overview
    assert "lead_scoring" not in lead.get("/workflows").text
    assert lead.get("/", params={"team": "sales"}).status_code == 403
    assert lead.get("/runs/run-b1").status_code == 403
    assert lead.get("/calls/b1").status_code == 403
    assert lead.get("/calls/n1").status_code == 403  # unattributed calls belong to no team
    assert tables_of(lead.get("/workflows/lead_scoring").text) == {}  # no steps, no runs: none are support's
    assert lead.get("/runs/run-s1").status_code == 200
