"""Upstream timeouts and outages come back in the provider's format and are recorded."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from starlette.applications import Starlette

from tests.e2e.conftest import gateway_settings
from tokenops.config import GatewaySettings
from tokenops.gateway.upstream import Upstream
from tokenops.store import DuckDBLedger
from tokenops.testing import serve_in_thread
from tokenops.web import create_app
from tokenops.web.app import key_store


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def broken_gateway(tmp_path: Path, fake_provider: tuple[Starlette, str]) -> Iterator[tuple[str, str, DuckDBLedger]]:
    _, fake_url = fake_provider
    settings = gateway_settings(tmp_path, fake_url)
    upstreams = [
        Upstream(name="slow", kind="openai", base_url=f"{fake_url}/v1", models=["gpt-4o"], timeout_s=0.2),
        Upstream(name="down", kind="openai", base_url=f"http://127.0.0.1:{_closed_port()}/v1"),
    ]
    settings = settings.model_copy(update={"gateway": GatewaySettings(upstreams=upstreams)})
    ledger = DuckDBLedger(settings.ledger)
    app = create_app(settings, ledger)
    _, key = key_store(settings).create(user="ana", team="support")
    with serve_in_thread(app) as url:
        yield url, key, ledger
        app.state.writer.flush()
    ledger.close()


def test_timeout_is_a_504_and_unreachable_a_502(broken_gateway: tuple[str, str, DuckDBLedger]) -> None:
    url, key, ledger = broken_gateway
    messages = [{"role": "user", "content": "hi"}]
    with openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0) as client:
        with pytest.raises(openai.InternalServerError) as slow:
            client.chat.completions.create(
                model="gpt-4o", messages=messages, extra_headers={"x-fake-latency-ms": "2000"}
            )
        with pytest.raises(openai.APIStatusError) as down:
            client.chat.completions.create(model="gpt-4o-mini", messages=messages)
    assert slow.value.status_code == 504 and "timed out" in slow.value.message
    assert down.value.status_code == 502 and "unreachable" in down.value.message


def test_failed_calls_are_recorded_unbilled(broken_gateway: tuple[str, str, DuckDBLedger]) -> None:
    url, key, ledger = broken_gateway
    with (
        openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0) as client,
        pytest.raises(openai.APIStatusError),
    ):
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    deadline = time.monotonic() + 10
    rows: list[dict[str, object]] = []
    while time.monotonic() < deadline and not rows:
        rows = ledger.query_rows("SELECT status, error_type, cost_total, price_source FROM usage_events")
        time.sleep(0.05)
    assert rows == [
        {"status": "error", "error_type": "upstream_unreachable", "cost_total": 0, "price_source": "not-billed"}
    ]
