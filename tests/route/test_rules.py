"""Rules route as configured; settings are validated like the guard's policies."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tokenops.config import Settings
from tokenops.route import Router, RouteRequest, RouteSettings, request_of


def router(**route: object) -> Router:
    r = Router.open(RouteSettings.model_validate({"enabled": True, **route}), data_dir=__import__("pathlib").Path("."))
    assert r is not None
    return r


RULES = [
    {"name": "long", "min_input_tokens": 1000, "target": "gpt-4.1-mini"},
    {"name": "tools", "tools": True, "models": ["gpt-4o-mini"], "target": "gpt-4o"},
    {"name": "json", "json_mode": True, "workflow": "extract*", "target": "gpt-4o-mini"},
    {"name": "proofs", "keywords": ["prove", "step by step"], "target": "o3"},
]


def test_first_matching_rule_wins_and_is_the_reason():
    r = router(rules=RULES)
    long = RouteRequest(model="gpt-4o", prompt="prove it", input_tokens=5000)
    assert r.decide(long) is not None and (r.decide(long).model, r.decide(long).reason) == ("gpt-4.1-mini", "rule:long")
    assert r.decide(RouteRequest(model="gpt-4o", prompt="Please prove that 2+2=4")).model == "o3"
    assert r.decide(RouteRequest(model="gpt-4o", prompt="approve this")) is None  # whole words only


def test_tools_json_and_workflow_conditions():
    r = router(rules=RULES)
    assert r.decide(RouteRequest(model="gpt-4o-mini", prompt="hi", tools=True)).model == "gpt-4o"
    assert r.decide(RouteRequest(model="gpt-4.1", prompt="hi", tools=True)) is None  # models glob
    assert r.decide(RouteRequest(model="gpt-4o", prompt="hi", json_mode=True, workflow="extract_invoice")).model == (
        "gpt-4o-mini"
    )
    assert r.decide(RouteRequest(model="gpt-4o", prompt="hi", json_mode=True, workflow="chat")) is None


def test_request_of_reads_openai_and_anthropic_bodies():
    chat = {
        "model": "gpt-4o",
        "messages": [{"role": "system", "content": "x" * 400}, {"role": "user", "content": "last question"}],
        "tools": [{"type": "function", "function": {"name": "f"}}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": {}}},
    }
    req = request_of(chat, "wf")
    assert req is not None
    assert (req.prompt, req.tools, req.json_mode, req.workflow) == ("last question", True, True, "wf")
    assert req.input_tokens == (400 + len("last question")) // 4
    messages = {
        "model": "claude-x",
        "system": "be brief",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hey"}]}],
    }
    assert request_of(messages, None).prompt == "hey"  # type: ignore[union-attr]
    assert request_of({"model": "gpt-4o", "input": "responses api"}, None).prompt == "responses api"  # type: ignore[union-attr]
    assert request_of({"messages": []}, None) is None


def test_settings_are_validated_at_the_boundary():
    with pytest.raises(ValidationError, match="extra"):
        RouteSettings.model_validate({"rules": [{"name": "a", "target": "m", "colour": "red"}]})
    with pytest.raises(ValidationError, match="unique"):
        RouteSettings.model_validate({"rules": [{"name": "a", "target": "m"}, {"name": "a", "target": "n"}]})
    with pytest.raises(ValidationError, match="min_input_tokens"):
        RouteSettings.model_validate(
            {"rules": [{"name": "a", "target": "m", "min_input_tokens": 9, "max_input_tokens": 1}]}
        )
    with pytest.raises(ValidationError, match=r"\$ref"):
        RouteSettings.model_validate(
            {"cascades": [{"name": "c", "models": ["a", "b"], "json_schema": {"$ref": "#/x"}}]}
        )


def test_route_section_in_tokenops_toml(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tokenops.toml").write_text(
        '[route]\nenabled = true\n\n[[route.rules]]\nname = "cheap"\nworkflow = "triage"\ntarget = "gpt-4o-mini"\n\n'
        '[[route.cascades]]\nname = "extract"\nmodels = ["gpt-4o-mini", "gpt-4o"]\n'
        'json_schema = { type = "object", required = ["total"] }\n'
    )
    from tokenops.config import load_settings

    settings = load_settings()
    assert isinstance(settings, Settings)
    assert settings.route.rules[0].target == "gpt-4o-mini"
    assert settings.route.cascade("extract").json_schema == {"type": "object", "required": ["total"]}
    assert Router.open(RouteSettings(), tmp_path) is None  # off unless enabled
