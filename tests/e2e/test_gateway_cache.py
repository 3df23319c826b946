"""The exact response cache through the real `openai` and `anthropic` SDKs, in front of the fake provider."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import anthropic
import openai
import orjson
import pytest
import redis
from starlette.applications import Starlette

from tests.e2e.conftest import Gateway, gateway_settings
from tests.guard.conftest import redis_prefix, redis_url
from tokenops.cache import MemoryBackend
from tokenops.config import CacheSettings
from tokenops.guard import Policies, TaskBudget
from tokenops.store import DuckDBLedger
from tokenops.testing import serve_in_thread
from tokenops.web import create_app
from tokenops.web.app import key_store

__all__ = ["redis_prefix", "redis_url"]  # fixtures used below

MESSAGES: list[Any] = [{"role": "user", "content": "Classify this support ticket about a late invoice"}]
TRIAGE = {"X-Tokenops-Workflow": "triage"}
"""A workflow whose sampled answers may be cached: Anthropic's current SDK has no temperature."""


@contextlib.contextmanager
def _serve(root: Path, fake_url: str, fake: Any, cache: CacheSettings, **settings: Any) -> Iterator[Gateway]:
    root.mkdir(parents=True, exist_ok=True)
    config = gateway_settings(root, fake_url).model_copy(update={"cache": cache, **settings})
    ledger = DuckDBLedger(config.ledger)
    app = create_app(config, ledger)
    _, secret = key_store(config).create(user="ana", team="support", name="tests")
    try:
        with serve_in_thread(app) as url:
            yield Gateway(url, secret, ledger, app, fake, fake_url, config)
    finally:
        ledger.close()


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_OPENAI_KEY", "sk-fake-openai")
    monkeypatch.setenv("FAKE_ANTHROPIC_KEY", "sk-ant-fake")


@pytest.fixture
def cached(tmp_path: Path, fake_provider: tuple[Starlette, str], env: None) -> Iterator[Gateway]:
    fake_app, fake_url = fake_provider
    settings = CacheSettings(enabled=True, sampled_workflows=["triage"])
    with _serve(tmp_path, fake_url, fake_app.state.fake, settings) as gateway:
        yield gateway


def _openai(gateway: Gateway, key: str | None = None) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key or gateway.key, max_retries=0)


def _anthropic(gateway: Gateway) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway.url, api_key=gateway.key, max_retries=0)


def _chat(client: openai.OpenAI, **kwargs: Any) -> Any:
    params: dict[str, Any] = {"model": "gpt-4o", "messages": MESSAGES, "temperature": 0, **kwargs}
    return client.chat.completions.with_raw_response.create(**params)


def _tags(row: dict[str, object]) -> dict[str, str]:
    return orjson.loads(str(row["tags"])) if row["tags"] else {}


def test_a_repeated_request_is_answered_from_the_cache_and_recorded_at_zero_with_its_saving(cached: Gateway) -> None:
    with _openai(cached) as client:
        first = _chat(client)
        arrived = len(cached.fake.requests)
        second = _chat(client)
    assert len(cached.fake.requests) == arrived  # the provider never saw the second call
    assert (first.headers["x-tokenops-cache"], second.headers["x-tokenops-cache"]) == ("miss", "hit")
    one, two = first.parse(), second.parse()
    assert two.choices[0].message.content == one.choices[0].message.content
    assert two.usage == one.usage and two.id != one.id
    original, hit = cached.rows()
    assert original["status"] == "ok" and Decimal(str(original["cost_total"])) > 0
    assert hit["request_id"] == two.id and hit["status"] == "cached"
    assert (hit["cost_total"], hit["unpriced"], hit["price_source"]) == (Decimal(0), False, "not-billed")
    assert Decimal(_tags(hit)["cache_saved_usd"]) == original["cost_total"]
    assert _tags(hit)["cache_source_id"] == one.id
    assert (hit["team"], hit["user_id"], hit["input_tokens"]) == ("support", "ana", original["input_tokens"])
    assert Decimal(second.headers["x-tokenops-saved-usd"]) == original["cost_total"]
    assert second.headers["x-tokenops-cost-usd"] == "0"


def test_another_team_never_gets_the_answer(cached: Gateway) -> None:
    other = cached.new_key(user="bo", team="sales")
    with _openai(cached) as mine, _openai(cached, other) as theirs:
        _chat(mine)
        arrived = len(cached.fake.requests)
        response = _chat(theirs)
        again = _chat(theirs)
    assert response.headers["x-tokenops-cache"] == "miss"
    assert len(cached.fake.requests) == arrived + 1
    assert again.headers["x-tokenops-cache"] == "hit"
    assert [r["status"] for r in cached.rows()] == ["ok", "ok", "cached"]


def test_an_answer_expires_after_its_ttl(cached: Gateway) -> None:
    backend = cached.app.state.gateway.cache.backend
    assert isinstance(backend, MemoryBackend)
    now = backend.clock()
    with _openai(cached) as client:
        _chat(client)
        backend.clock = lambda: now + cached.settings.cache.ttl_s + 1
        late = _chat(client)
    assert late.headers["x-tokenops-cache"] == "miss"
    assert [r["status"] for r in cached.rows()] == ["ok", "ok"]


@pytest.mark.parametrize("include_usage", [False, True])
def test_a_streamed_hit_is_replayed_as_openai_chunks(cached: Gateway, include_usage: bool) -> None:
    options: dict[str, Any] = {"stream_options": {"include_usage": True}} if include_usage else {}
    with _openai(cached) as client:
        first = list(client.chat.completions.create(model="gpt-4o", messages=MESSAGES, temperature=0, stream=True))
        arrived = len(cached.fake.requests)
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4o", messages=MESSAGES, temperature=0, stream=True, **options
        )
        chunks = list(raw.parse())
        whole = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, temperature=0)
    assert raw.headers["x-tokenops-cache"] == "hit" and len(cached.fake.requests) == arrived
    text = "".join(c.choices[0].delta.content or "" for c in first if c.choices)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text
    assert whole.choices[0].message.content == text  # a stored stream answers a plain request too
    usage = [c.usage for c in chunks if c.usage is not None]
    assert len(usage) == (1 if include_usage else 0)
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    rows = cached.rows()
    assert [r["status"] for r in rows] == ["ok", "cached", "cached"]
    if include_usage:
        assert usage[0] is not None and usage[0].completion_tokens == rows[0]["output_tokens"]


def test_anthropic_messages_hit_as_json_and_as_a_stream(cached: Gateway) -> None:
    params: dict[str, Any] = {"model": "claude-sonnet-4-6", "max_tokens": 200, "messages": MESSAGES}
    with _anthropic(cached) as client:
        sampled = client.messages.with_raw_response.create(**params)  # no workflow that allows sampling
        params["extra_headers"] = TRIAGE
        first = client.messages.with_raw_response.create(**params)
        arrived = len(cached.fake.requests)
        second = client.messages.with_raw_response.create(**params)
        with client.messages.stream(**params) as stream:
            text = "".join(stream.text_stream)
            final = stream.get_final_message()
    assert sampled.headers["x-tokenops-cache"] == "bypass"
    assert (first.headers["x-tokenops-cache"], second.headers["x-tokenops-cache"]) == ("miss", "hit")
    assert len(cached.fake.requests) == arrived
    original = first.parse()
    assert second.parse().content == original.content
    original_text = [b.text for b in original.content if b.type == "text"]
    assert [b.text for b in final.content if b.type == "text"] == original_text == [text]
    assert final.usage.output_tokens == original.usage.output_tokens and final.stop_reason == original.stop_reason
    rows = cached.rows()
    assert [r["status"] for r in rows] == ["ok", "ok", "cached", "cached"]
    assert rows[3]["request_id"] == final.id and rows[3]["operation"] == "messages"


def test_a_streamed_anthropic_miss_is_stored_once_complete(cached: Gateway) -> None:
    params: dict[str, Any] = {"model": "claude-haiku-4-5", "max_tokens": 100, "messages": MESSAGES}
    params["extra_headers"] = TRIAGE
    with _anthropic(cached) as client:
        with client.messages.stream(**params) as stream:
            streamed = stream.get_final_message()
        again = client.messages.with_raw_response.create(**params)
    assert again.headers["x-tokenops-cache"] == "hit"
    assert [b.model_dump() for b in again.parse().content] == [
        {k: v for k, v in b.model_dump().items() if k != "parsed_output"} for b in streamed.content
    ]


def test_the_caller_can_opt_out(cached: Gateway) -> None:
    with _openai(cached) as client:
        _chat(client)
        arrived = len(cached.fake.requests)
        no_store = _chat(client, extra_headers={"Cache-Control": "no-store"})
        off = _chat(client, extra_headers={"X-Tokenops-Cache": "off"})
        refresh = _chat(client, extra_headers={"Cache-Control": "no-cache"})
        after = _chat(client)
    assert [r.headers["x-tokenops-cache"] for r in (no_store, off, refresh, after)] == [
        "bypass",
        "bypass",
        "miss",
        "hit",
    ]
    assert len(cached.fake.requests) == arrived + 3
    assert after.parse().id != refresh.parse().id


def test_nondeterministic_and_excluded_requests_bypass(
    tmp_path: Path, fake_provider: tuple[Starlette, str], env: None
) -> None:
    fake_app, fake_url = fake_provider
    settings = CacheSettings(enabled=True, exclude_workflows=["hr-*"])
    with _serve(tmp_path, fake_url, fake_app.state.fake, settings) as gateway, _openai(gateway) as client:
        sampled = [client.chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES) for _ in "ab"]
        hr = [_chat(client, extra_headers={"X-Tokenops-Workflow": "hr-review"}) for _ in "ab"]
        assert [r.headers["x-tokenops-cache"] for r in sampled + hr] == ["bypass"] * 4
        assert len(gateway.fake.requests) == 4
        assert [r["status"] for r in gateway.rows()] == ["ok"] * 4


def test_a_hit_is_never_refused_by_a_budget_and_reserves_nothing(
    tmp_path: Path, fake_provider: tuple[Starlette, str], env: None
) -> None:
    fake_app, fake_url = fake_provider
    broke = Policies(task_budgets=[TaskBudget(workflow="capped", max_usd=Decimal("0.000001"))])
    with (
        _serve(tmp_path, fake_url, fake_app.state.fake, CacheSettings(enabled=True), guard=broke) as gateway,
        _openai(gateway) as client,
    ):
        _chat(client, extra_headers={"X-Tokenops-Workflow": "open"})
        capped = {"X-Tokenops-Workflow": "capped", "X-Tokenops-Task": "t1"}
        hit = _chat(client, extra_headers=capped)  # the budget could not hold any call, but this one is free
        with pytest.raises(openai.RateLimitError, match="budget"):
            _chat(client, extra_headers=capped, max_tokens=7)  # a different request: forwarded, so refused
        assert hit.headers["x-tokenops-cache"] == "hit"
        assert [r["status"] for r in gateway.rows()] == ["ok", "cached", "blocked"]


def test_responses_and_embeddings_hit_too(cached: Gateway) -> None:
    with _openai(cached) as client:
        first = client.responses.create(model="gpt-4o", input="Write a haiku about invoices", temperature=0)
        again = client.responses.with_raw_response.create(
            model="gpt-4o", input="Write a haiku about invoices", temperature=0
        )
        vectors = [client.embeddings.with_raw_response.create(model="text-embedding-3-small", input="ab") for _ in "ab"]
    assert again.headers["x-tokenops-cache"] == "hit" and again.parse().output_text == first.output_text
    assert [v.headers["x-tokenops-cache"] for v in vectors] == ["miss", "hit"]
    assert vectors[1].parse().data[0].embedding == vectors[0].parse().data[0].embedding
    assert [r["status"] for r in cached.rows()] == ["ok", "cached", "ok", "cached"]


def test_redis_shares_answers_between_two_gateways(
    tmp_path: Path, fake_provider: tuple[Starlette, str], env: None, redis_url: str, redis_prefix: str
) -> None:
    fake_app, fake_url = fake_provider
    settings = CacheSettings(enabled=True, redis_url=redis_url, redis_prefix=redis_prefix, ttl_s=120)
    fake = fake_app.state.fake
    with (
        _serve(tmp_path / "a", fake_url, fake, settings) as one,
        _serve(tmp_path / "b", fake_url, fake, settings) as two,
        _openai(one) as first_client,
        _openai(two) as second_client,
    ):
        miss = _chat(first_client)
        arrived = len(fake.requests)
        hit = _chat(second_client)
        assert (miss.headers["x-tokenops-cache"], hit.headers["x-tokenops-cache"]) == ("miss", "hit")
        assert len(fake.requests) == arrived
        assert [r["status"] for r in two.rows()] == ["cached"]
    client = redis.Redis.from_url(redis_url)
    try:
        (key,) = client.keys(redis_prefix + "*")
        assert 0 < client.pttl(key) <= 120_000
    finally:
        client.close()
