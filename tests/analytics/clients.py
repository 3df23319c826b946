"""A test client of the whole server, authenticated the way scripts and dashboards are."""

from __future__ import annotations

from pathlib import Path

from starlette.testclient import TestClient

from tokenops.config import Settings
from tokenops.store import Ledger
from tokenops.web import create_app
from tokenops.web.app import key_store


def admin_client(ledger: Ledger, tmp_path: Path, *, team: str | None = None) -> TestClient:
    """A client on the full app over `ledger`, sending an admin key (every team visible)."""
    settings = Settings(ledger=str(tmp_path / "unused.duckdb"), data_dir=tmp_path / "state")
    _, key = key_store(settings).create(user="ops", team=team or "platform", role="admin")
    return TestClient(create_app(settings, ledger), headers={"Authorization": f"Bearer {key}"})
