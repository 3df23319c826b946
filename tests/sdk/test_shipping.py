"""Shipping to a tokenops server: the app keeps working while it is down; events arrive once it is back."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import openai
from starlette.applications import Starlette

import tokenops
from tests.e2e.conftest import gateway_settings
from tokenops.store import DuckDBLedger
from tokenops.testing import serve_in_thread
from tokenops.web import create_app
from tokenops.web.app import key_store


def test_events_survive_a_server_outage_and_arrive_exactly_once(
    tmp_path: Path, fake_provider: tuple[Starlette, str]
) -> None:
    _, fake_url = fake_provider
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    settings = gateway_settings(tmp_path / "server", fake_url)
    _, key = key_store(settings).create(user="svc", team="support")

    runtime = tokenops.configure(server=f"http://127.0.0.1:{port}", api_key=key, spool_dir=tmp_path / "app-spool")
    client = tokenops.instrument(openai.OpenAI(base_url=f"{fake_url}/v1", api_key="sk-direct"))
    with client, tokenops.task("support_ticket", user="ana") as t:  # the server is down: nothing raises
        ids = [
            client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": f"q{i}"}]).id
            for i in range(5)
        ]
        t.outcome("ticket_resolved")
    assert runtime.shipper is not None
    assert not runtime.shipper.flush(timeout=1.5), "nothing can be delivered while the server is down"
    assert (tmp_path / "app-spool" / "ship.jsonl").stat().st_size > 0

    ledger = DuckDBLedger(settings.ledger)
    with serve_in_thread(create_app(settings, ledger), port=port):
        assert runtime.shipper.flush(timeout=30)
        runtime.close()
    events = ledger.query_rows("SELECT request_id, task_run_id, user_id, team, source FROM usage_events")
    assert sorted(e["request_id"] for e in events) == sorted(ids)
    assert {(e["task_run_id"], e["user_id"], e["team"], e["source"]) for e in events} == {
        (t.task_run_id, "ana", "support", "sdk")
    }
    assert ledger.query_rows("SELECT status FROM task_runs") == [{"status": "completed"}]
    assert ledger.query_rows("SELECT task_run_id FROM outcome_task_runs") == [{"task_run_id": t.task_run_id}]
    ledger.close()


def test_ingest_refuses_unknown_keys_and_bad_rows(tmp_path: Path, fake_provider: tuple[Starlette, str]) -> None:
    _, fake_url = fake_provider
    settings = gateway_settings(tmp_path, fake_url)
    _, key = key_store(settings).create(user="svc", team="support")
    ledger = DuckDBLedger(settings.ledger)
    with serve_in_thread(create_app(settings, ledger)) as url:
        assert httpx.post(f"{url}/api/ingest", json={}, headers={"authorization": "Bearer nope"}).status_code == 401
        bad = httpx.post(
            f"{url}/api/ingest", json={"events": [{"request_id": "x"}]}, headers={"authorization": f"Bearer {key}"}
        )
        assert bad.status_code == 422 and "ts" in bad.json()["error"]["message"]
    ledger.close()
