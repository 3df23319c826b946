"""Pages and the API read through the per-version cache: repeat visits are free, new calls show at once."""

from __future__ import annotations

from datetime import timedelta

from starlette.applications import Starlette
from starlette.testclient import TestClient

from tests.factories import T0, event
from tests.web.conftest import SignIn
from tokenops.analytics.spend import Filters, summary
from tokenops.store import Ledger
from tokenops.web.api_cache import read_cache


def test_a_second_visit_is_answered_from_the_cache_with_the_same_numbers(app: Starlette, client: TestClient) -> None:
    cache = read_cache(app)
    first = client.get("/api/kpis?by=team")
    misses = cache.misses
    second = client.get("/api/kpis?by=team")
    assert first.status_code == second.status_code == 200
    assert second.json() == first.json()
    assert cache.misses == misses and cache.hits > 0


def test_new_calls_show_on_the_next_visit(app: Starlette, client: TestClient) -> None:
    before = client.get("/api/summary").json()["events"]
    ledger: Ledger = app.state.ledger
    ledger.record_events([event("late", team="support", ts=T0 + timedelta(days=2))])
    assert client.get("/api/summary").json()["events"] == before + 1


def test_pages_read_through_the_cache_too(app: Starlette, client: TestClient) -> None:
    first = client.get("/workflows")
    hits = read_cache(app).hits
    second = client.get("/workflows")
    assert first.status_code == second.status_code == 200
    assert second.text == first.text
    assert read_cache(app).hits > hits


def test_a_team_lead_gets_their_own_numbers_from_the_cache(app: Starlette, sign_in: SignIn) -> None:
    lead = sign_in("lead", "sales")
    sales = lead.get("/api/summary").json()
    hits = read_cache(app).hits
    assert lead.get("/api/summary").json() == sales
    assert read_cache(app).hits > hits
    everyone = summary(app.state.ledger)
    assert sales["events"] == summary(app.state.ledger, Filters(team="sales")).events < everyone.events
