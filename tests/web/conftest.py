"""A small ledger served in-process, and signed-in clients for each dashboard role."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from tests.factories import T0, event
from tokenops.config import Settings
from tokenops.store import DuckDBLedger
from tokenops.web import create_app
from tokenops.web.users import user_store

PASSWORD = "correct horse battery"
SignIn = Callable[..., TestClient]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "state")


@pytest.fixture
def app(settings: Settings) -> Iterator[Starlette]:
    ledger = DuckDBLedger(":memory:")
    ledger.record_events(
        [
            event("a1", team="support", input_tokens=1_000, output_tokens=500, task_run_id="run-s1"),
            event("a2", team="support", ts=T0 + timedelta(days=1), task_run_id="run-s1"),
            event("b1", team="sales", model="gpt-4o-mini", workflow="lead_scoring", task_run_id="run-b1"),
            event("u1", team="sales", model="acme-internal-llm", provider="self-hosted", workflow="lead_scoring"),
            event("n1", team=None, user=None),
        ]
    )
    yield create_app(settings, ledger)
    ledger.close()


@pytest.fixture
def sign_in(app: Starlette, settings: Settings) -> Iterator[SignIn]:
    """`sign_in(role, team=None)`: a client with a fresh user of that role, signed in through the form."""
    clients: list[TestClient] = []

    def make(role: str = "admin", team: str | None = None) -> TestClient:
        name = f"{role}-{team or 'all'}-{len(clients)}"
        user_store(settings).create(name, role, team, PASSWORD)
        client = TestClient(app).__enter__()
        clients.append(client)
        reply = client.post("/signin", data={"name": name, "password": PASSWORD}, follow_redirects=False)
        assert reply.status_code == 303, reply.text
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(sign_in: SignIn) -> TestClient:
    """Signed in as an admin."""
    return sign_in("admin")
