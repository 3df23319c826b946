"""Cascades through the real OpenAI SDK and the gateway: escalation on a failing check, both calls in the ledger."""

from __future__ import annotations

import json

import openai
import pytest

import tokenops
from tokenops.route import CascadeSpec, json_schema, min_logprob, response_text, verifier
from tokenops.route.schema import errors

SCHEMA = {"type": "object", "required": ["answer"], "properties": {"answer": {"type": "integer"}}}
# The fake provider echoes the prompt's first words and then counts: "{"answer":42} Reply ... word1 word2",
# which is not JSON; capped at one token (the strong step's override) the answer is exactly {"answer":42}.
PROMPT = '{"answer":42} Reply with JSON only'


def client(gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=gateway.key, max_retries=0)


def tags(row: dict[str, object]) -> dict[str, str]:
    raw = row["tags"]
    return json.loads(raw) if isinstance(raw, str) else dict(raw or {})  # type: ignore[arg-type]


def test_cascade_escalates_when_the_cheap_json_fails_validation(gateway):
    result = tokenops.cascade(
        client(gateway),
        ["gpt-4o-mini", ("gpt-4o", {"max_tokens": 1})],
        check=json_schema(SCHEMA),
        messages=[{"role": "user", "content": PROMPT}],
    )
    assert result.escalated and result.model == "gpt-4o"
    assert [(a.model, a.verdict.reason) for a in result.attempts] == [("gpt-4o-mini", "json_invalid"), ("gpt-4o", "ok")]
    assert json.loads(response_text(result.response)) == {"answer": 42}
    assert [r.body["model"] for r in gateway.fake.requests] == ["gpt-4o-mini", "gpt-4o"]

    rows = gateway.rows()
    assert [(r["model"], r["model_requested"], r["status"]) for r in rows] == [
        ("gpt-4o-mini", None, "ok"),  # the ledger keeps model_requested only when it differs
        ("gpt-4o", "gpt-4o-mini", "ok"),
    ]
    first, second = tags(rows[0]), tags(rows[1])
    assert first["route_reason"] == "cascade:first" and second["route_reason"] == "cascade:escalated:json_invalid"
    assert first["cascade"] == second["cascade"] and (first["cascade_step"], second["cascade_step"]) == ("1", "2")


def test_a_passing_cheap_answer_is_kept_and_a_configured_spec_names_the_cascade(gateway):
    spec = CascadeSpec(name="extract", models=["gpt-4o-mini", "gpt-4o"], json_schema=SCHEMA)
    result = tokenops.cascade(client(gateway), spec, messages=[{"role": "user", "content": PROMPT}], max_tokens=1)
    assert not result.escalated and result.model == "gpt-4o-mini"
    (row,) = gateway.rows()
    assert tags(row)["cascade_name"] == "extract"


def test_verifier_callback_decides_and_the_last_answer_is_kept_even_if_it_fails(gateway):
    result = tokenops.cascade(
        client(gateway),
        ["gpt-4o-mini", "gpt-4o"],
        check=verifier(lambda text: "never" in text),
        messages=[{"role": "user", "content": "hello there"}],
    )
    assert result.model == "gpt-4o" and [a.verdict.passed for a in result.attempts] == [False, False]
    assert tags(gateway.rows()[1])["route_reason"] == "cascade:escalated:verifier_failed"


def test_logprob_check_and_schema_errors_without_a_server():
    confident = {"choices": [{"message": {"content": "x"}, "logprobs": {"content": [{"logprob": -0.01}]}}]}
    unsure = {"choices": [{"message": {"content": "x"}, "logprobs": {"content": [{"logprob": -2.5}]}}]}
    check = min_logprob(-0.5)
    assert check(confident).passed and check(unsure).reason == "low_confidence"
    assert check({"choices": [{"message": {"content": "x"}}]}).passed  # no logprobs: cannot judge, keep
    assert errors({"answer": "42", "x": 1}, {**SCHEMA, "additionalProperties": False}) == [
        "$.answer: expected integer, got str",
        "$: unexpected property 'x'",
    ]
    assert errors(True, {"type": "integer"}) and not errors(3.0, {"type": "integer"})
    with pytest.raises(TypeError, match="single model"):
        tokenops.cascade(object(), "gpt-4o")  # type: ignore[arg-type]
