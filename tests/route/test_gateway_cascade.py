"""Cascades run by the gateway: the application only changes its base_url, the ledger shows every attempt."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
from pydantic import ValidationError

import tokenops
from tests.e2e.conftest import Gateway, gateway_settings
from tokenops.gateway.upstream import Upstream
from tokenops.guard import Policies, TaskBudget
from tokenops.route import RouteSettings
from tokenops.route.gateway_cascade import gateway_checks, requested_json
from tokenops.store import DuckDBLedger
from tokenops.testing import serve_in_thread
from tokenops.web import create_app
from tokenops.web.app import key_store

# The fake provider echoes the prompt's first words and then counts ("{"answer":42} Reply ... word1 word2"),
# which is not JSON; capped at one token the answer is exactly {"answer":42}.
PROMPT = '{"answer":42} Reply with JSON only'
MESSAGES: list[Any] = [{"role": "user", "content": PROMPT}]  # SDK message params, untyped here
EXTRACT = {
    "name": "extract",
    "models": ["gpt-4o-mini", "gpt-4o"],
    "require_json": True,
    "overrides": {"gpt-4o": {"max_tokens": 1}},
    "workflows": ["extract_invoice"],
}
PLAIN = {"name": "plain", "models": ["gpt-4o-mini", "gpt-4o"]}  # no check of its own: the request's format decides
CLAUDE = {
    "name": "claude-json",
    "models": ["claude-haiku-4-5", "claude-sonnet-4-5"],
    "require_json": True,
    "overrides": {"claude-sonnet-4-5": {"max_tokens": 1}},
}


@pytest.fixture(autouse=True)
def provider_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_OPENAI_KEY", "sk-fake-openai")
    monkeypatch.setenv("FAKE_ANTHROPIC_KEY", "sk-ant-fake")


@contextmanager
def serve(
    tmp_path: Path,
    fake_provider: Any,
    cascades: list[dict[str, Any]],
    *,
    guard: Policies | None = None,
    first_upstreams: tuple[Upstream, ...] = (),
    rules: tuple[dict[str, Any], ...] = (),
) -> Iterator[Gateway]:
    fake_app, fake_url = fake_provider
    settings = gateway_settings(tmp_path, fake_url)
    upstreams = [*first_upstreams, *settings.gateway.upstreams]
    settings = settings.model_copy(
        update={
            "route": RouteSettings.model_validate({"enabled": True, "cascades": cascades, "rules": rules}),
            "guard": guard or Policies(),
            "gateway": settings.gateway.model_copy(update={"upstreams": upstreams}),
        }
    )
    ledger = DuckDBLedger(settings.ledger)
    app = create_app(settings, ledger)
    _, key = key_store(settings).create(user="ana", team="support", name="tests")
    with serve_in_thread(app) as url:
        yield Gateway(url, key, ledger, app, fake_app.state.fake, fake_url, settings)
    ledger.close()


def client(gateway: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=gateway.key, max_retries=0)


def tags(row: dict[str, object]) -> dict[str, str]:
    raw = row["tags"]
    return json.loads(raw) if isinstance(raw, str) else dict(raw or {})  # type: ignore[arg-type]


def cost(row: dict[str, object]) -> Decimal:
    return Decimal(str(row["cost_total"]))


def test_invalid_cheap_json_is_escalated_and_the_client_gets_the_strong_answer(tmp_path, fake_provider):
    with serve(tmp_path, fake_provider, [EXTRACT]) as gw, client(gw) as oa:
        raw = oa.chat.completions.with_raw_response.create(
            model="gpt-4o",  # the application's own choice: the cascade replaces it
            messages=MESSAGES,
            extra_headers={"X-Tokenops-Workflow": "extract_invoice", "X-Tokenops-Task": "inv-1"},
        )
        reply = raw.parse()
        rows = gw.rows()
    assert reply.model == "gpt-4o" and json.loads(reply.choices[0].message.content or "") == {"answer": 42}
    assert [(r.body["model"], r.body.get("max_tokens")) for r in gw.fake.requests] == [
        ("gpt-4o-mini", None),
        ("gpt-4o", 1),  # the strong step's override
    ]
    assert [(r["model"], r["model_requested"], r["status"], r["workflow"]) for r in rows] == [
        ("gpt-4o-mini", None, "ok", "extract_invoice"),  # the ledger keeps model_requested only when it differs
        ("gpt-4o", "gpt-4o-mini", "ok", "extract_invoice"),
    ]
    first, second = tags(rows[0]), tags(rows[1])
    assert (first["route_reason"], second["route_reason"]) == ("cascade:first", "cascade:escalated:json_invalid")
    assert first["cascade"] == second["cascade"] and (first["cascade_step"], second["cascade_step"]) == ("1", "2")
    assert first["cascade_name"] == second["cascade_name"] == "extract"
    total = cost(rows[0]) + cost(rows[1])
    assert cost(rows[0]) > 0 and cost(rows[1]) > 0
    assert Decimal(raw.headers["x-tokenops-cost-usd"]) == total  # what both attempts cost, not the last alone
    assert Decimal(raw.headers["x-tokenops-task-cost-usd"]) == total
    assert raw.headers["x-tokenops-cascade-attempts"] == "2"


def test_a_valid_cheap_answer_is_kept_in_one_row(tmp_path, fake_provider):
    with serve(tmp_path, fake_provider, [PLAIN]) as gw, client(gw) as oa:
        raw = oa.chat.completions.with_raw_response.create(
            model="gpt-4o",
            messages=MESSAGES,
            max_tokens=1,
            response_format={"type": "json_object"},  # the request's own format is the check
            extra_headers={"X-Tokenops-Cascade": "plain"},
        )
        (row,) = gw.rows()
    assert raw.parse().model == "gpt-4o-mini" and len(gw.fake.requests) == 1
    assert (row["model"], row["model_requested"], tags(row)["route_reason"]) == ("gpt-4o-mini", None, "cascade:first")
    assert Decimal(raw.headers["x-tokenops-cost-usd"]) == cost(row) > 0
    assert raw.headers["x-tokenops-cascade-attempts"] == "1"


def test_the_requests_own_json_schema_is_checked_and_the_last_answer_is_kept(tmp_path, fake_provider):
    schema = {"type": "object", "required": ["answer"], "properties": {"answer": {"type": "integer"}}}
    with serve(tmp_path, fake_provider, [PLAIN]) as gw, client(gw) as oa:
        reply = oa.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": '{"answer":"42"} Reply with JSON only'}],
            max_tokens=1,
            response_format={"type": "json_schema", "json_schema": {"name": "a", "schema": schema}},
            extra_headers={"X-Tokenops-Cascade": "plain"},
        )
        rows = gw.rows()
    assert reply.model == "gpt-4o" and reply.choices[0].message.content == '{"answer":"42"}'  # fails too, but last
    assert [tags(r)["route_reason"] for r in rows] == ["cascade:first", "cascade:escalated:schema_mismatch"]


def test_a_budget_refusing_the_escalation_answers_the_budget_error_and_records_the_block(tmp_path, fake_provider):
    # the cheap attempt's worst case fits in the budget; the strong one's does not
    budget = Policies(task_budgets=[TaskBudget(workflow="extract_invoice", name="inv", max_usd=Decimal("0.00005"))])
    with serve(tmp_path, fake_provider, [EXTRACT], guard=budget) as gw, client(gw) as oa:
        with pytest.raises(openai.RateLimitError) as caught:
            oa.chat.completions.create(
                model="gpt-4o",
                messages=MESSAGES,
                max_tokens=50,
                extra_headers={"X-Tokenops-Workflow": "extract_invoice", "X-Tokenops-Task": "inv-2"},
            )
        rows = gw.rows()
    assert caught.value.body["type"] == "tokenops_task_budget_exceeded"  # type: ignore[index]
    assert "inv" in caught.value.body["message"]  # type: ignore[index]
    assert [r.body["model"] for r in gw.fake.requests] == ["gpt-4o-mini"]  # the refused attempt never left
    assert [(r["model"], r["status"], r["error_type"]) for r in rows] == [
        ("gpt-4o-mini", "ok", None),
        ("gpt-4o", "blocked", "tokenops_task_budget_exceeded"),
    ]
    assert tags(rows[1])["route_reason"] == "cascade:escalated:json_invalid" and cost(rows[1]) == 0


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_cheap_upstream_escalates_and_is_recorded(tmp_path, fake_provider):
    down = Upstream(name="down", kind="openai", base_url=f"http://127.0.0.1:{closed_port()}/v1", models=["gpt-4o-mini"])
    with serve(tmp_path, fake_provider, [EXTRACT], first_upstreams=(down,)) as gw, client(gw) as oa:
        reply = oa.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, extra_headers={"X-Tokenops-Workflow": "extract_invoice"}
        )
        rows = gw.rows()
    assert reply.model == "gpt-4o" and json.loads(reply.choices[0].message.content or "") == {"answer": 42}
    assert [(r["model"], r["status"], r["error_type"]) for r in rows] == [
        ("gpt-4o-mini", "error", "upstream_unreachable"),
        ("gpt-4o", "ok", None),
    ]
    assert tags(rows[1])["route_reason"] == "cascade:escalated:upstream_unreachable"


def test_anthropic_sdk_call_is_escalated_in_messages_format(tmp_path, fake_provider):
    with (
        serve(tmp_path, fake_provider, [CLAUDE]) as gw,
        anthropic.Anthropic(base_url=gw.url, api_key=gw.key, max_retries=0) as claude,
    ):
        raw = claude.messages.with_raw_response.create(
            model="claude-haiku-4-5",
            max_tokens=50,
            messages=[{"role": "user", "content": PROMPT}],
            extra_headers={"X-Tokenops-Cascade": "claude-json"},
        )
        message = raw.parse()
        rows = gw.rows()
    block = message.content[0]
    assert message.model == "claude-sonnet-4-5" and block.type == "text" and json.loads(block.text) == {"answer": 42}
    assert [(r["model"], r["provider"]) for r in rows] == [
        ("claude-haiku-4-5", "anthropic"),
        ("claude-sonnet-4-5", "anthropic"),
    ]
    assert tags(rows[1])["route_reason"] == "cascade:escalated:json_invalid"
    assert Decimal(raw.headers["x-tokenops-cost-usd"]) == cost(rows[0]) + cost(rows[1])


def test_responses_api_is_cascaded_too(tmp_path, fake_provider):
    spec = {**EXTRACT, "overrides": {"gpt-4o": {"max_output_tokens": 1}}}
    with serve(tmp_path, fake_provider, [spec]) as gw, client(gw) as oa:
        reply = oa.responses.create(
            model="gpt-4o", input=PROMPT, extra_headers={"X-Tokenops-Workflow": "extract_invoice"}
        )
        rows = gw.rows()
    assert reply.model == "gpt-4o" and json.loads(reply.output_text) == {"answer": 42}
    assert [(r["model"], r["operation"]) for r in rows] == [("gpt-4o-mini", "responses"), ("gpt-4o", "responses")]


def test_a_streamed_call_goes_to_the_last_model_without_a_check(tmp_path, fake_provider):
    with serve(tmp_path, fake_provider, [EXTRACT]) as gw, client(gw) as oa:
        stream = oa.chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
            stream=True,
            extra_headers={"X-Tokenops-Workflow": "extract_invoice"},
        )
        text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
        (row,) = gw.rows()
    assert text == '{"answer":42}'  # the last model's override applies: max_tokens=1
    assert (row["model"], row["model_requested"]) == ("gpt-4o", "gpt-4o-mini")
    assert tags(row)["route_reason"] == "cascade:streamed:last" and tags(row)["cascade_name"] == "extract"


def test_sdk_cascade_steps_are_neither_cascaded_again_nor_routed_by_rules(tmp_path, fake_provider):
    everything = ({"name": "all", "target": "gpt-4.1-mini"},)
    with serve(tmp_path, fake_provider, [EXTRACT], rules=everything) as gw, client(gw) as oa:
        result = tokenops.cascade(
            oa,
            ["gpt-4o-mini", "gpt-4o"],
            messages=MESSAGES,
            max_tokens=1,
            extra_headers={"X-Tokenops-Workflow": "extract_invoice"},
        )
        plain = oa.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        rows = gw.rows()
    assert result.model == "gpt-4o-mini" and plain.model == "gpt-4.1-mini"  # the rule routes the plain call only
    assert [r.body["model"] for r in gw.fake.requests] == ["gpt-4o-mini", "gpt-4.1-mini"]
    assert [tags(r).get("cascade_name") for r in rows] == [None, None]
    assert [tags(r)["route_reason"] for r in rows] == ["cascade:first", "rule:all"]


def test_an_unknown_cascade_name_is_refused_before_any_call(tmp_path, fake_provider):
    with serve(tmp_path, fake_provider, [PLAIN]) as gw, client(gw) as oa:
        with pytest.raises(openai.BadRequestError, match="No cascade 'nope'.*'plain'"):
            oa.chat.completions.create(model="gpt-4o", messages=MESSAGES, extra_headers={"X-Tokenops-Cascade": "nope"})
        assert len(gw.fake.requests) == 0


def test_requested_json_reads_each_wire_format_and_builds_the_checks():
    schema = {"type": "object", "required": ["a"]}
    chat = {"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}}
    responses = {"text": {"format": {"type": "json_schema", "name": "x", "schema": schema}}}
    claude = {"output_config": {"format": {"type": "json_schema", "schema": schema}}}
    for body in (chat, responses, claude):
        assert requested_json(body) == (True, schema)
    assert requested_json({"response_format": {"type": "json_object"}}) == (True, None)
    assert requested_json({"response_format": {"type": "text"}}) == (False, None)
    spec = RouteSettings.model_validate({"cascades": [PLAIN]}).cascade("plain")
    answer = {"choices": [{"message": {"content": '{"b": 1}'}}]}
    (check,) = gateway_checks(spec, chat)
    assert check(answer).reason == "schema_mismatch"  # type: ignore[union-attr]
    with_ref = {"response_format": {"type": "json_schema", "json_schema": {"schema": {"$ref": "#/x"}}}}
    (check,) = gateway_checks(spec, with_ref)  # a schema the validator cannot apply: JSON validity only
    assert check(answer).passed  # type: ignore[union-attr]
    assert gateway_checks(spec, {}) == []  # nothing to check: only upstream failures escalate


def test_cascade_settings_are_validated():
    with pytest.raises(ValidationError, match="not in models"):
        RouteSettings.model_validate({"cascades": [{**PLAIN, "overrides": {"o3": {"max_tokens": 1}}}]})
    with pytest.raises(ValidationError, match="may not replace"):
        RouteSettings.model_validate({"cascades": [{**PLAIN, "overrides": {"gpt-4o": {"model": "x"}}}]})
    with pytest.raises(ValidationError, match="one gateway cascade"):
        RouteSettings.model_validate({"cascades": [EXTRACT, {**PLAIN, "workflows": ["extract_invoice"]}]})
    with pytest.raises(ValidationError, match="unique"):
        RouteSettings.model_validate({"cascades": [PLAIN, PLAIN]})
