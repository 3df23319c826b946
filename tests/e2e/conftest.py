"""A real gateway (uvicorn, in a thread) in front of the fake provider, with a fresh ledger."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette

from tokenops.config import GatewaySettings, Settings
from tokenops.gateway.upstream import Upstream
from tokenops.store import DuckDBLedger
from tokenops.store.writer import LedgerWriter
from tokenops.testing import create_fake_provider, serve_in_thread
from tokenops.web import create_app
from tokenops.web.app import key_store


@dataclass
class Gateway:
    """Handles for a running gateway."""

    url: str
    key: str
    ledger: DuckDBLedger
    app: Starlette
    fake: Any
    fake_url: str
    settings: Settings

    def flush(self) -> None:
        writer: LedgerWriter = self.app.state.writer
        writer.flush()

    def rows(self, where: str = "TRUE", params: list[object] | None = None) -> list[dict[str, object]]:
        self.flush()
        return self.ledger.query_rows(f"SELECT * FROM usage_events WHERE {where} ORDER BY ts, request_id", params or [])

    def new_key(self, user: str | None, team: str | None) -> str:
        return key_store(self.settings).create(user=user, team=team)[1]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def fake_provider() -> Iterator[tuple[Starlette, str]]:
    app = create_fake_provider()
    with serve_in_thread(app) as url:
        yield app, url


def gateway_settings(tmp_path: Path, fake_url: str, **gateway: object) -> Settings:
    upstreams = [
        Upstream(name="fake-openai", kind="openai", base_url=f"{fake_url}/v1", api_key_env="FAKE_OPENAI_KEY"),
        Upstream(name="fake-anthropic", kind="anthropic", base_url=fake_url, api_key_env="FAKE_ANTHROPIC_KEY"),
    ]
    return Settings(
        ledger=str(tmp_path / "ledger.duckdb"),
        data_dir=tmp_path / "state",
        gateway=GatewaySettings(upstreams=upstreams, **gateway),
    )


@pytest.fixture
def gateway(tmp_path: Path, fake_provider: tuple[Starlette, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Gateway]:
    monkeypatch.setenv("FAKE_OPENAI_KEY", "sk-fake-openai")
    monkeypatch.setenv("FAKE_ANTHROPIC_KEY", "sk-ant-fake")
    fake_app, fake_url = fake_provider
    settings = gateway_settings(tmp_path, fake_url)
    ledger = DuckDBLedger(settings.ledger)
    app = create_app(settings, ledger)
    _, secret = key_store(settings).create(user="ana", team="support", name="tests")
    with serve_in_thread(app) as url:
        yield Gateway(url, secret, ledger, app, fake_app.state.fake, fake_url, settings)
    ledger.close()
