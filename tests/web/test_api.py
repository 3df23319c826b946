from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from starlette.testclient import TestClient

from tests.factories import T0, event
from tokenops.config import Settings
from tokenops.store import DuckDBLedger
from tokenops.web import create_app


@pytest.fixture
def client() -> Iterator[TestClient]:
    ledger = DuckDBLedger(":memory:")
    ledger.record_events(
        [
            event("a1", team="support", input_tokens=1_000, output_tokens=500),
            event("a2", team="support", ts=T0 + timedelta(days=1)),
            event("b1", team="sales", model="gpt-4o-mini"),
            event("u1", team="sales", model="acme-internal-llm", provider="self-hosted"),
            event("n1", team=None, user=None),
        ]
    )
    with TestClient(create_app(Settings(), ledger)) as test_client:
        yield test_client
    ledger.close()


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
