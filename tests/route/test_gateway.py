"""Routing at the gateway: the router's choice is served, and the ledger shows what was asked and why."""

from __future__ import annotations

import json
from pathlib import Path

import openai

from tests.e2e.conftest import gateway_settings
from tokenops.route import RouteSettings
from tokenops.store import DuckDBLedger
from tokenops.testing import serve_in_thread
from tokenops.web import create_app
from tokenops.web.app import key_store


def test_a_rule_routes_the_call_and_the_ledger_records_requested_served_and_reason(
    tmp_path: Path, fake_provider, monkeypatch
):
    monkeypatch.setenv("FAKE_OPENAI_KEY", "sk-fake")
    fake_app, fake_url = fake_provider
    route = RouteSettings.model_validate(
        {"enabled": True, "rules": [{"name": "triage-cheap", "workflow": "triage", "target": "gpt-4o-mini"}]}
    )
    settings = gateway_settings(tmp_path, fake_url).model_copy(update={"route": route})
    ledger = DuckDBLedger(settings.ledger)
    app = create_app(settings, ledger)
    _, key = key_store(settings).create(user="ana", team="support", name="t")
    with serve_in_thread(app) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)
        routed = client.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "is this urgent"}],
            extra_headers={"X-Tokenops-Workflow": "triage"},
        )
        kept = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "write a memo"}])
        app.state.writer.flush()
    rows = ledger.query_rows("SELECT model, model_requested, tags FROM usage_events ORDER BY ts")
    ledger.close()
    assert routed.model == "gpt-4o-mini" and kept.model == "gpt-4o"
    assert [r.body["model"] for r in fake_app.state.fake.requests] == ["gpt-4o-mini", "gpt-4o"]
    assert (rows[0]["model"], rows[0]["model_requested"]) == ("gpt-4o-mini", "gpt-4o")
    assert json.loads(str(rows[0]["tags"]))["route_reason"] == "rule:triage-cheap"
    assert (rows[1]["model"], rows[1]["model_requested"]) == ("gpt-4o", None)
