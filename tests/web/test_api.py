from __future__ import annotations

from starlette.applications import Starlette
from starlette.testclient import TestClient

from tests.web.conftest import SignIn
from tokenops.config import Settings
from tokenops.web.app import key_store


def test_summary_calls_out_unpriced_and_unattributed_spend(client: TestClient) -> None:
    body = client.get("/api/summary").json()
    assert body["events"] == 5
    assert body["unpriced_events"] == 1
    assert body["unpriced_tokens"] == 1_500
    assert body["cost"] == "0.02295"  # 3 x gpt-4o 1,000/500 ($0.0075) + gpt-4o-mini ($0.00045)
    assert body["unattributed_cost"] == "0.0075"


def test_spend_by_team_and_day_is_exact_and_filterable(client: TestClient) -> None:
    rows = client.get("/api/spend", params={"by": "team", "grain": "day"}).json()["rows"]
    support = [r for r in rows if r["team"] == "support"]
    assert [(r["period"], r["cost"]) for r in support] == [
        ("2026-11-02T00:00:00Z", "0.0075"),
        ("2026-11-03T00:00:00Z", "0.0075"),
    ]
    only_sales = client.get("/api/spend", params={"by": "model", "team": "sales"}).json()["rows"]
    assert {r["model"]: r["unpriced_events"] for r in only_sales} == {"gpt-4o-mini": 0, "acme-internal-llm": 1}


def test_bad_query_parameters_get_a_400_that_says_why(client: TestClient) -> None:
    response = client.get("/api/spend", params={"by": "planet"})
    assert response.status_code == 400
    assert "Unknown dimension 'planet'" in response.json()["error"]["message"]
    assert client.get("/api/summary", params={"start": "yesterday"}).status_code == 400


def test_events_are_newest_first_with_their_attribution(client: TestClient) -> None:
    events = client.get("/api/events", params={"team": "support"}).json()["events"]
    assert [e["request_id"] for e in events] == ["a2", "a1"]
    assert events[0]["workflow"] == "support_ticket"


def test_healthz(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}


def test_read_routes_need_a_signed_in_user_or_an_admin_key(app: Starlette, settings: Settings) -> None:
    _, admin_key = key_store(settings).create(user="ops", team=None, role="admin")
    _, app_key = key_store(settings).create(user="ana", team="support")
    with TestClient(app) as anonymous:
        for path in ("/api/summary", "/api/spend", "/api/tokens-per-task", "/api/events"):
            reply = anonymous.get(path)
            assert reply.status_code == 401, path
            assert "Sign in" in reply.json()["error"]["message"]
        assert anonymous.get("/api/summary", headers={"Authorization": f"Bearer {app_key}"}).status_code == 401
        as_admin = anonymous.get("/api/summary", headers={"Authorization": f"Bearer {admin_key}"})
        assert as_admin.status_code == 200
        assert as_admin.json()["events"] == 5


def test_a_lead_gets_only_their_team_and_a_403_for_another(sign_in: SignIn) -> None:
    lead = sign_in("lead", "support")
    assert lead.get("/api/summary").json()["events"] == 2
    assert lead.get("/api/summary", params={"team": "support"}).json()["events"] == 2
    teams = {r["team"] for r in lead.get("/api/spend", params={"by": "team"}).json()["rows"]}
    assert teams == {"support"}
    assert {e["team"] for e in lead.get("/api/events").json()["events"]} == {"support"}
    assert [r["workflow"] for r in lead.get("/api/tokens-per-task").json()["rows"]] == ["support_ticket"]
    for path in ("/api/summary", "/api/spend", "/api/tokens-per-task", "/api/events"):
        denied = lead.get(path, params={"team": "sales"})
        assert denied.status_code == 403, path
        assert "may not see 'sales'" in denied.json()["error"]["message"]


def test_a_viewer_reads_every_team(sign_in: SignIn) -> None:
    viewer = sign_in("viewer")
    assert viewer.get("/api/summary").json()["events"] == 5
    assert viewer.get("/api/summary", params={"team": "sales"}).json()["events"] == 2
