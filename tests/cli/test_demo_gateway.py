"""The demo server's gateway works out of the box: a built-in fake provider, a ready key."""

from __future__ import annotations

import socket
from pathlib import Path

import openai
from starlette.routing import Mount

from tokenops.analytics.budgets import task_budget_burn
from tokenops.analytics.spend import Filters
from tokenops.cli.demo import DEMO_POLICIES, DEMO_PROVIDER, demo_settings
from tokenops.demo import generate_org, load_demo
from tokenops.store import DuckDBLedger
from tokenops.testing import create_fake_provider, serve_in_thread
from tokenops.web import create_app
from tokenops.web.app import key_store


def test_demo_gateway_call_lands_in_the_demo_ledger(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    settings = demo_settings(tmp_path, tmp_path / "tokenops.duckdb", "127.0.0.1", port)
    _, key = key_store(settings).create(user="demo", team="engineering")
    ledger = DuckDBLedger(settings.ledger)
    app = create_app(settings, ledger, mounts=[Mount(DEMO_PROVIDER, app=create_fake_provider())])
    with serve_in_thread(app, port=port) as url, openai.OpenAI(base_url=f"{url}/v1", api_key=key) as client:
        reply = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        app.state.writer.flush()
        rows = ledger.query_rows("SELECT request_id, team, cost_total FROM usage_events")
    ledger.close()
    assert [(r["request_id"], r["team"]) for r in rows] == [(reply.id, "engineering")]
    assert rows[0]["cost_total"] > 0


def test_the_demo_runs_with_guardrails_that_would_have_stopped_its_runaway_loop(tmp_path: Path) -> None:
    """The demo server's policies give the Budgets page something real: the injected runaway refund loop
    ($130 in one run at full scale) is far over its $2 task budget."""
    settings = demo_settings(tmp_path, tmp_path / "ledger.duckdb", "127.0.0.1", 8787)
    assert settings.guard == DEMO_POLICIES
    ledger = DuckDBLedger(":memory:")
    load_demo(ledger, generate_org(7, scale=0.25))
    burns = {b.name: b for b in task_budget_burn(ledger, DEMO_POLICIES.task_budgets, Filters())}
    assert burns["refund-run"].runs_over >= 1
    assert burns["refund-run"].top[0].cost > 20 * burns["refund-run"].max_usd  # the loop, at any scale
    ledger.close()
