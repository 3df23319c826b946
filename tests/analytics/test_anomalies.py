"""Spend anomalies: hand-built ledgers with one known spike, the demo organisation's injected
incidents, the webhook (a real receiver on 127.0.0.1), the JSON API and the CLI."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.testclient import TestClient
from typer.testing import CliRunner

from tests.factories import event
from tokenops.analytics.anomalies import (
    Incident,
    IncidentWebhook,
    find_incidents,
    hourly_spend,
    score_hours,
)
from tokenops.analytics.detectors import seasonal_median
from tokenops.cli import app as cli
from tokenops.config import Settings
from tokenops.demo import DemoOrg, generate_org, load_demo
from tokenops.demo import Incident as Injected
from tokenops.events import UsageEvent
from tokenops.store import DuckDBLedger, Ledger
from tokenops.testing import serve_in_thread
from tokenops.web import create_app
from tokenops.web.users import user_store

START = datetime(2026, 11, 2, tzinfo=UTC)  # a Monday
SPIKE = datetime(2026, 11, 24, 14, tzinfo=UTC)  # Tuesday of the fourth week
NORMAL_CALL = Decimal("0.0075")  # gpt-4o, 1,000 in ($0.0025) + 500 out ($0.005)
TRIAGE_CALL = Decimal("0.045")  # gpt-4o, 10,000 in ($0.025) + 2,000 out ($0.02)


def _calls() -> list[UsageEvent]:
    """24 days: support makes 2 calls and sales 1 in every hour 09-17; 40 triage calls on SPIKE's hour."""
    calls = []
    for day in range(24):
        for hour in range(9, 18):
            at = START + timedelta(days=day, hours=hour, minutes=10)
            calls += [event(f"s{day}-{hour}-{k}", ts=at + timedelta(minutes=k)) for k in range(2)]
            calls.append(event(f"b{day}-{hour}", ts=at, team="sales", user="bo", workflow="leads"))
    calls += [
        event(f"t{k}", ts=SPIKE + timedelta(minutes=k), workflow="triage", input_tokens=10_000, output_tokens=2_000)
        for k in range(40)
    ]
    return calls


@pytest.fixture(scope="module")
def ledger_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("anomalies") / "ledger.duckdb"
    with DuckDBLedger(path) as ledger:
        ledger.record_events(_calls())
    return path


@pytest.fixture(scope="module")
def ledger(ledger_path: Path) -> Iterator[Ledger]:
    with DuckDBLedger(ledger_path, read_only=True) as store:
        yield store


def test_the_spike_hour_is_one_incident_with_exact_amounts_and_its_driver(ledger: Ledger) -> None:
    found = find_incidents(ledger, "team", since=START + timedelta(days=21), until=START + timedelta(days=24))

    assert len(found) == 1
    spike = found[0]
    assert (spike.dimension, spike.value, spike.start, spike.end) == (
        "team",
        "support",
        SPIKE,
        SPIKE + timedelta(hours=1),
    )
    assert spike.actual == 40 * TRIAGE_CALL + 2 * NORMAL_CALL == Decimal("1.815")
    assert spike.expected == 2 * NORMAL_CALL  # the same hour of the three weeks before
    assert spike.excess == Decimal("1.800")
    assert spike.ratio == Decimal("121.0")
    assert spike.driver is not None
    assert spike.driver.values == (("workflow", "triage"), ("model", "gpt-4o"))
    assert (spike.driver.excess, spike.driver.share) == (Decimal("1.800"), Decimal("1.00"))
    assert not spike.unit_cost
    assert spike.text == (
        "tokenops anomaly: team 'support' spend 2026-11-24 14:00-15:00 UTC was $1.82 vs $0.015 expected "
        "(+$1.80, 121.0x); 100% of it from workflow 'triage' on model 'gpt-4o'"
    )


def test_each_hour_is_judged_from_the_past_only(ledger: Ledger) -> None:
    """The incident is the same whether the data ends right after it or days later (online)."""
    early = find_incidents(ledger, "team", since=SPIKE, until=SPIKE + timedelta(hours=1))
    late = find_incidents(ledger, "team", since=SPIKE - timedelta(days=2), until=START + timedelta(days=24))
    assert early == late
    spend = hourly_spend(ledger, "team", START, START + timedelta(days=24))
    row = spend.keys.index("support")
    full = score_hours(spend.spend[row], spend.calls[row])
    cut = int((np.datetime64("2026-11-24T15", "h") - spend.hours[0]).astype(int))
    prefix = score_hours(spend.spend[row][:cut], spend.calls[row][:cut])
    assert np.array_equal(prefix.anomalous, full.anomalous[:cut])
    assert np.array_equal(prefix.z, full.z[:cut])


def test_no_incident_without_a_week_of_history_or_for_quiet_series(ledger: Ledger) -> None:
    assert find_incidents(ledger, "team", since=START, until=START + timedelta(days=7)) == []
    # sales never changed; a workflow first seen in the spike hour has no baseline to be judged by
    assert find_incidents(ledger, "team", since=START, until=START + timedelta(days=24), team="sales") == []
    assert find_incidents(ledger, "workflow", since=SPIKE, until=SPIKE + timedelta(hours=1)) == []
    by_user = find_incidents(ledger, "user", since=START + timedelta(days=21), until=START + timedelta(days=24))
    assert [(i.value, i.actual) for i in by_user] == [("ana", Decimal("1.815"))]


def test_seasonal_median_uses_the_same_phase_of_past_cycles() -> None:
    x = np.array([1.0, 2, 3, 10, 20, 30, 5, 6, 7])
    assert np.array_equal(seasonal_median(x, 3, 2)[3:], [1, 2, 3, 5.5, 11, 16.5])
    assert np.isnan(seasonal_median(x, 3, 2)[:3]).all()


def test_unknown_dimension_is_refused(ledger: Ledger) -> None:
    with pytest.raises(ValueError, match="Unknown anomaly dimension 'customer'"):
        find_incidents(ledger, "customer")


# --- the webhook ------------------------------------------------------------------------------


@dataclass
class Receiver:
    url: str = ""
    posts: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    fail_next: int = 0


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A Slack-like incoming webhook served by uvicorn on 127.0.0.1."""
    hook = Receiver()

    async def receive(request: Request) -> Response:
        body = await request.json()
        with hook.lock:
            if hook.fail_next:
                hook.fail_next -= 1
                return Response("unavailable", status_code=503)
            hook.posts.append(body)
        return Response("ok")

    with serve_in_thread(Starlette(routes=[Route("/hook", receive, methods=["POST"])])) as base:
        hook.url = f"{base}/hook"
        yield hook


def test_each_incident_is_posted_once_and_a_failed_post_is_retried(ledger: Ledger, receiver: Receiver) -> None:
    found = find_incidents(ledger, "team", since=SPIKE - timedelta(days=1), until=SPIKE + timedelta(hours=1))
    hook = IncidentWebhook(receiver.url)
    receiver.fail_next = 1
    assert hook.send(found) == []  # 503: not marked as sent
    assert hook.send(found) == found
    grown: Incident = found[0]  # the same incident seen again later (same series and first hour)
    assert hook.send([grown]) == []
    assert len(receiver.posts) == 1
    body = receiver.posts[0]
    assert body["text"] == found[0].text
    assert body["tokenops"]["value"] == "support"
    assert body["tokenops"]["actual"] == "1.815"
    assert body["tokenops"]["expected"] == "0.015"
    assert body["tokenops"]["driver"] == {"workflow": "triage", "model": "gpt-4o"}
    assert body["tokenops"]["driver_share"] == "1.00"


# --- API and CLI ------------------------------------------------------------------------------


def test_api_lists_incidents_and_keeps_a_lead_to_their_team(ledger_path: Path, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "state")
    users = user_store(settings)
    users.create("ada", "admin", None, "correct horse battery")
    users.create("lee", "lead", "sales", "correct horse battery")
    with DuckDBLedger(ledger_path, read_only=True) as store, TestClient(create_app(settings, store)) as client:
        assert client.get("/api/anomalies").status_code == 401
        client.post("/signin", data={"name": "ada", "password": "correct horse battery"})
        reply = client.get("/api/anomalies", params={"by": "team", "since": "2026-11-23", "until": "2026-11-26"})
        assert reply.status_code == 200, reply.text
        body = reply.json()
        assert [(i["value"], i["start"], i["actual"], i["excess"], i["ratio"]) for i in body["incidents"]] == [
            ("support", "2026-11-24T14:00:00Z", "1.815", "1.8", "121.0")
        ]
        assert client.get("/api/anomalies", params={"by": "customer"}).status_code == 400
        assert client.get("/api/anomalies", params={"since": "yesterday"}).status_code == 400
    with DuckDBLedger(ledger_path, read_only=True) as store, TestClient(create_app(settings, store)) as client:
        client.post("/signin", data={"name": "lee", "password": "correct horse battery"})
        lead = client.get("/api/anomalies", params={"by": "workflow", "since": "2026-11-23", "until": "2026-11-26"})
        assert lead.status_code == 200, lead.text
        assert lead.json()["team"] == "sales"
        assert lead.json()["incidents"] == []
        assert client.get("/api/anomalies", params={"team": "support"}).status_code == 403


def test_cli_reports_incidents_as_json_and_as_a_table_with_the_alert_text(ledger_path: Path) -> None:
    runner = CliRunner()
    args = ["report", "anomalies", "--by", "user", "--since", "2026-11-23", "--until", "2026-11-26"]
    result = runner.invoke(cli, [*args, "--ledger", str(ledger_path), "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [(r["value"], r["actual"], r["expected"], r["ratio"], r["driver"], r["driver_share"]) for r in rows] == [
        ("ana", "1.815", "0.015", "121.0x", "workflow=triage, model=gpt-4o", "100%")
    ]
    table = runner.invoke(cli, [*args, "--ledger", str(ledger_path)], env={"COLUMNS": "200"})
    assert table.exit_code == 0, table.output
    assert (
        "tokenops anomaly: user 'ana' spend 2026-11-24 14:00-15:00 UTC was $1.82 vs $0.015 expected (+$1.80, 121.0x); "
        "100% of it from workflow 'triage' on model 'gpt-4o'" in table.stdout
    )


def test_cli_posts_to_the_webhook(ledger_path: Path, receiver: Receiver) -> None:
    args = ["report", "anomalies", "--since", "2026-11-23", "--until", "2026-11-26", "--webhook", receiver.url]
    result = CliRunner().invoke(cli, [*args, "--ledger", str(ledger_path), "--format", "csv"])
    assert result.exit_code == 0, result.output
    assert [p["tokenops"]["value"] for p in receiver.posts] == ["support"]


# --- the demo organisation --------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo() -> Iterator[tuple[DemoOrg, Ledger]]:
    org = generate_org(7)
    with DuckDBLedger(":memory:") as store:
        load_demo(store, org)
        yield org, store


def _related(ledger: Ledger, incident: Injected, alert: Incident, data_end: datetime) -> bool:
    """The alert's series carried some of the injected incident's calls while the alert lasted."""
    column = {"user": "user_id"}.get(alert.dimension, alert.dimension)
    sql = f"SELECT count(*) AS n FROM usage_events WHERE workflow = ? AND {column} = ? AND ts >= ? AND ts < ?"
    params: list[object] = [
        incident.workflow,
        alert.value,
        alert.start.replace(tzinfo=None),
        alert.end.replace(tzinfo=None),
    ]
    if incident.user_id is not None:
        sql += " AND user_id = ?"
        params.append(incident.user_id)
    overlaps = alert.start < (incident.end or data_end) and alert.end > incident.start - timedelta(hours=1)
    return overlaps and int(str(ledger.query_rows(sql, params)[0]["n"])) > 0


def test_demo_incidents_are_caught_within_an_hour_with_at_most_one_false_alert_a_week(
    demo: tuple[DemoOrg, Ledger],
) -> None:
    org, ledger = demo
    truth = org.truth
    start = datetime.combine(truth.ai_start, datetime.min.time(), UTC)
    end = datetime.combine(truth.end + timedelta(days=1), datetime.min.time(), UTC)
    alerts = [
        a for by in ("team", "workflow", "model", "user") for a in find_incidents(ledger, by, since=start, until=end)
    ]
    for incident in truth.incidents:
        hour = incident.start.replace(minute=0, second=0, microsecond=0)
        caught = [
            a for a in alerts if _related(ledger, incident, a, end) and hour <= a.start <= hour + timedelta(hours=1)
        ]
        assert caught, f"{incident.kind} at {incident.start} not flagged within an hour"
    false = [a for a in alerts if not any(_related(ledger, i, a, end) for i in truth.incidents)]
    weeks = (end - start) / timedelta(weeks=1)
    assert len(false) <= weeks, [a.text for a in false]
