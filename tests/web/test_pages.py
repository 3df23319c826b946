"""The analytics pages in-process on a small demo organisation: each shows the numbers its API gives for the
same filters, draws them, downloads every table as CSV, and keeps a team lead to their team."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from tests.web.test_dashboard import tables_of
from tokenops.analytics.spend import Filters
from tokenops.config import Settings
from tokenops.demo import generate_org, load_demo
from tokenops.store import DuckDBLedger
from tokenops.web import create_app
from tokenops.web.page_workflows import periods
from tokenops.web.responses import decimal_text
from tokenops.web.users import user_store

PASSWORD = "pages-password-1"
PAGES = ("/questions", "/workflows", "/yield", "/recommendations", "/maturity")
FAST = {"resamples": "200"}  # the yield bootstrap: fewer draws keep the tests quick; page and API get the same
WHATIF = {"whatif": "1", "model:support_qa": "gpt-4o-mini", "cap:coding_agent": "2000", "discount": "10"}


@dataclass
class Demo:
    ledger: DuckDBLedger
    admin: TestClient
    lead: TestClient


def _sign_in(client: TestClient, name: str) -> TestClient:
    reply = client.post("/signin", data={"name": name, "password": PASSWORD}, follow_redirects=False)
    assert reply.status_code == 303, reply.text
    return client


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    folder: Path = tmp_path_factory.mktemp("pages")
    settings = Settings(ledger=str(folder / "unused.duckdb"), data_dir=folder / "state")
    ledger = DuckDBLedger(":memory:")
    load_demo(ledger, generate_org(7, scale=0.05))
    users = user_store(settings)
    users.create("admin", "admin", password=PASSWORD)
    users.create("support-lead", "lead", "support", password=PASSWORD)
    app = create_app(settings, ledger)
    with TestClient(app) as admin:  # runs the app's lifespan once; the lead's client shares the app
        yield Demo(ledger, _sign_in(admin, "admin"), _sign_in(TestClient(app), "support-lead"))
    ledger.close()


def column(html: str, table: str, index: int) -> dict[str, str]:
    """First column -> another column of a page's table, as exact raw values."""
    return {row[0]: row[index] for row in tables_of(html)[table]}


def text(value: object) -> str:
    return "" if value is None else str(value)


def pct(value: object) -> str:
    return "" if value is None else decimal_text((Decimal(repr(value)) * 100).quantize(Decimal("0.01")))


def test_the_five_questions_show_the_kpis_and_spend_of_the_api(demo: Demo) -> None:
    params = {"team": "engineering", "start": "2026-10-01"}
    page = demo.admin.get("/questions", params=params).text
    kpis = demo.admin.get("/api/kpis", params={"by": "workflow", **params}).json()["rows"]
    tokens = {r[0]: r[1:5] for r in tables_of(page)["tokens"]}
    assert tokens == {
        r["workflow"]: [str(r[k]) for k in ("input_tokens", "cached_input_tokens", "output_tokens", "reasoning_tokens")]
        for r in kpis
    }
    assert column(page, "retries", 3) == {r["workflow"]: pct(r["retry_rate"]) for r in kpis if r["task_runs"]}
    assert column(page, "value", 4) == {r["workflow"]: text(r["value_per_cost"]) for r in kpis}
    for key, table in (("model", "models"), ("team", "teams"), ("feature", "features")):
        spend = demo.admin.get("/api/spend", params={"by": key, **params}).json()["rows"]
        assert column(page, table, 1) == {text(r[key]): r["cost"] for r in spend}, key
    assert set(column(page, "teams", 1)) == {"engineering"}
    for number in range(1, 6):
        assert f'data-question="{number}"' in page
    assert len(re.findall(r'<rect class="bar"', page)) > 20
    stacked = re.search(r'<figure class="chart hbars" data-bars="(\d+)" data-points="(\d+)"', page)
    assert stacked is not None and int(stacked.group(2)) == 4 * int(stacked.group(1)) == 4 * len(kpis)


def test_the_yield_page_draws_the_api_estimates_with_their_intervals(demo: Demo) -> None:
    page = demo.admin.get("/yield", params=FAST).text
    api = demo.admin.get("/api/yield", params={"by": "team", **FAST}).json()["rows"]
    shown = {row[0]: row for row in tables_of(page)["teams"]}
    for row in api:
        assert shown[row["group"]][4:7] == [row["hours_saved"], row["hours_saved_low"], row["hours_saved_high"]]
        assert shown[row["group"]][10:13] == [row["ratio"], row["ratio_low"], row["ratio_high"]]
    overall = demo.admin.get("/api/yield", params={"by": "all", **FAST}).json()["rows"][0]
    assert re.search(rf'data-kpi="ratio" data-value="{overall["ratio"]}"', page)
    assert re.search(rf'data-kpi="hours" data-value="{overall["hours_saved"]}"', page)
    for row in api:  # every estimate is a dot with its error bar, at the API's numbers
        assert (
            f'data-label="{row["group"]}" data-point="{row["ratio"]}" data-low="{row["ratio_low"]}" '
            f'data-high="{row["ratio_high"]}"' in page
        )
    assert '<figure class="chart lines" data-series="2"' in page
    usage = demo.admin.get("/api/spend", params={"by": "user"}).json()["rows"]
    assert column(page, "usage", 1) == {text(r["user"]): r["cost"] for r in usage}


def test_groups_without_enough_data_say_so_instead_of_a_number(demo: Demo) -> None:
    params = {"end": "2026-09-08", **FAST}  # three weeks after the baseline: too little for most groups
    page = demo.admin.get("/yield", params=params).text
    api = demo.admin.get("/api/yield", params={"by": "team", **params}).json()["rows"]
    short = [r for r in api if r["status"] == "insufficient data"]
    assert short and len(short) < len(api)
    for row in short:
        assert column(page, "teams", 1)[row["group"]] == "insufficient data"
        assert column(page, "teams", 14)[row["group"]] == row["reason"]
        assert '<text class="insufficient" x="190" y="' in page
    figure = re.search(r'data-estimates="(\d+)" data-insufficient="(\d+)"', page)
    assert figure is not None and int(figure.group(2)) == len(short)
    people = tables_of(page)["people"]
    assert {r[2] for r in people} == {"estimate", "insufficient data"}


def test_workflows_show_unit_economics_and_what_moved_them_like_the_api(demo: Demo) -> None:
    params = {"team": "support"}
    page = demo.admin.get("/workflows", params=params).text
    per_outcome = demo.admin.get("/api/cost-per-outcome", params=params).json()["rows"]
    assert column(page, "workflows", 10) == {r["workflow"]: text(r["cost_per_outcome"]) for r in per_outcome}
    kpis = demo.admin.get("/api/kpis", params=params).json()["rows"]
    assert column(page, "workflows", 8) == {r["workflow"]: text(r["cost_per_completed_task"]) for r in kpis}
    a, b = periods(demo.ledger, Filters(team="support"))
    assert a.start is not None and b.start is not None and b.end is not None
    spans = {"a_since": a.start, "a_until": b.start, "b_since": b.start, "b_until": b.end}
    variance = demo.admin.get(
        "/api/cost-per-outcome/variance", params={**params, **{k: v.date().isoformat() for k, v in spans.items()}}
    ).json()["rows"]
    assert variance
    assert tables_of(page)["variance"] == [[r["workflow"], *(r[k] for k in list(r)[1:])] for r in variance]
    top = variance[0]
    steps = dict(re.findall(r'data-step="([^"]+)" data-value="([^"]+)"', page))
    assert Decimal(steps["Period B"]) == Decimal(top["cost_per_outcome_b"])
    levers = ("Cost per token", "Tokens per task", "Tasks per outcome")
    assert sum(Decimal(steps[name]) for name in levers) == Decimal(top["change"])


def test_drill_down_still_reaches_a_single_call(demo: Demo) -> None:
    name = tables_of(demo.admin.get("/workflows").text)["workflows"][0][0]
    detail = demo.admin.get(f"/workflows/{name}").text
    assert f'data-workflow="{name}"' in detail and "Cost per outcome" in detail
    run = tables_of(detail)["runs"][0][0]
    call = tables_of(demo.admin.get(f"/runs/{run}").text)["calls"][0][0]
    assert f'<span data-column="request_id">{call}</span>' in demo.admin.get(f"/calls/{call}").text


def test_recommendations_forecast_and_whatif_are_the_apis_numbers(demo: Demo) -> None:
    page = demo.admin.get("/recommendations", params=WHATIF).text
    recs = demo.admin.get("/api/recommendations").json()["rows"]
    assert [r[1:4] for r in tables_of(page)["recommendations"]] == [
        [r["kind"], r["subject"], r["monthly_saving"]] for r in recs
    ]
    forecast = demo.admin.get("/api/forecast", params={"by": "team"}).json()["rows"]
    assert [[r[0], r[3], r[4], r[5]] for r in tables_of(page)["forecast"]] == [
        [r["key"], r["forecast"], text(r["low"]), text(r["high"])] for r in forecast
    ]
    body = {
        "models": [{"workflow": "support_qa", "model": "gpt-4o-mini"}],
        "output_cap": {"coding_agent": 2000},
        "overrides": [{"model": "*", "discount": "0.1"}],
    }
    replay = demo.admin.post("/api/whatif", json=body).json()
    assert Decimal(replay["saving"]) > 0
    assert re.search(rf'data-kpi="saving" data-value="{replay["saving"]}"', page)
    assert column(page, "whatif", 4) == {text(r["workflow"]): r["saving"] for r in replay["rows"]}
    assert 'value="2000"' in page  # the form keeps the scenario


def test_a_malformed_what_if_is_refused_with_the_reason(demo: Demo) -> None:
    reply = demo.admin.get("/recommendations", params={"whatif": "1", "discount": "lots"})
    assert reply.status_code == 400
    assert "discount=&#x27;lots&#x27; is not a number" in reply.text
    for field, value in (("cap:coding_agent", "1.5"), ("cache:support_qa", "120"), ("discount", "nan")):
        assert demo.admin.get("/recommendations", params={"whatif": "1", field: value}).status_code == 400, field


def test_maturity_shows_the_apis_rung_and_what_is_missing(demo: Demo) -> None:
    page = demo.admin.get("/maturity").text
    api = demo.admin.get("/api/maturity").json()
    assert f'data-level="{api["level"]}"' in page
    assert [r[:3] for r in tables_of(page)["checks"]] == [
        [c["rung"], c["name"], "yes" if c["met"] else "no"] for c in api["checks"]
    ]
    assert f'data-missing="{len(api["missing"])}"' in page
    for todo in api["missing"]:
        assert todo.replace("'", "&#x27;") in page


def test_every_table_downloads_as_the_csv_of_what_is_shown(demo: Demo) -> None:
    for path, params in (*((p, FAST) for p in PAGES), ("/recommendations", WHATIF)):
        page = demo.admin.get(path, params=params).text
        links = dict(re.findall(r'id="t-([^"]+)"><header><h2>[^<]*</h2><a class="csv" href="([^"]+)"', page))
        shown = tables_of(page)
        assert shown, path
        for name, rows in shown.items():
            download = demo.admin.get(links[name].replace("&amp;", "&"))
            assert download.headers["content-type"].startswith("text/csv"), (path, name)
            assert list(csv.reader(io.StringIO(download.text)))[1:] == rows, (path, name)


def test_a_lead_sees_only_their_team_on_every_page(demo: Demo) -> None:
    for path in PAGES:
        assert demo.lead.get(path, params={"team": "sales"}).status_code == 403, path
    questions = demo.lead.get("/questions").text
    assert set(column(questions, "teams", 1)) == {"support"}
    spend = demo.lead.get("/api/spend", params={"by": "model"}).json()["rows"]
    assert column(questions, "models", 1) == {text(r["model"]): r["cost"] for r in spend}
    yields = demo.lead.get("/yield", params=FAST).text
    assert set(column(yields, "teams", 1)) == {"support"}
    assert {r[1] for r in tables_of(yields)["people"]} == {"support"}
    people = demo.lead.get("/api/yield", params={"by": "person", **FAST}).json()["rows"]
    assert {r[0] for r in tables_of(yields)["people"]} == {r["group"] for r in people}
    support = {r["workflow"] for r in demo.lead.get("/api/kpis").json()["rows"]}
    planning = demo.lead.get("/recommendations", params=WHATIF).text
    assert {r[0] for r in tables_of(planning)["whatif"]} <= support
    assert [r[0] for r in tables_of(planning)["forecast"]] == ["support"]
    assert {r[0] for r in tables_of(demo.lead.get("/workflows").text)["workflows"]} <= support
    maturity = demo.lead.get("/api/maturity").json()
    assert f'data-level="{maturity["level"]}"' in demo.lead.get("/maturity").text
