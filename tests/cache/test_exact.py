"""The exact cache without a gateway: keys, eligibility, backends, entries, stream assembly and replay."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import orjson
import pytest
import redis

from tests.guard.conftest import redis_prefix, redis_url, unused_port
from tokenops.cache import CacheUnavailable, Entry, ExactCache, MemoryBackend, RedisBackend, cache_key, replay
from tokenops.cache.exact import entry_of, open_cache
from tokenops.cache.keys import ineligible, opt_out, scope_of, workflow_allowed
from tokenops.cache.replay import ChatAssembler, MessagesAssembler, chat_sse, messages_sse
from tokenops.config import CacheSettings
from tokenops.events import Attribution, TokenUsage
from tokenops.gateway.wire import split_events

__all__ = ["redis_prefix", "redis_url"]  # fixtures used below

CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "temperature": 0}
SUPPORT = Attribution(api_key_id="key_1", user="ana", team="support")


def _key(data: dict[str, Any], scope: str = "team=support", headers: dict[str, str] | None = None) -> str:
    return cache_key(scope, "/chat/completions", "openai", headers or {}, "chat", data)


def _cache(**settings: Any) -> ExactCache:
    return ExactCache(CacheSettings(enabled=True, **settings), MemoryBackend(1 << 20))


def _ticket(cache: ExactCache, data: dict[str, Any], headers: dict[str, str] | None = None, **kw: Any) -> Any:
    return cache.ticket(
        route="/chat/completions",
        upstream="openai",
        operation=kw.get("operation", "chat"),
        headers=headers or {},
        data=data,
        stream=kw.get("stream", False),
        attribution=kw.get("attribution", SUPPORT),
    )


def test_the_key_ignores_field_order_number_spelling_and_fields_that_do_not_change_the_answer() -> None:
    base = _key(CHAT)
    same = {"temperature": 0.0, "n": 1, "messages": CHAT["messages"], "model": "gpt-4o", "stream": True}
    same |= {"user": "bo", "metadata": {"a": "b"}, "stream_options": {"include_usage": True}, "service_tier": "flex"}
    assert _key(same) == base
    assert _key({**CHAT, "max_tokens": 10}) != base
    assert _key({**CHAT, "tools": [{"type": "function", "function": {"name": "f"}}]}) != base
    assert _key({**CHAT, "seed": 7}) != base
    assert _key(CHAT, scope="team=sales") != base
    assert _key(CHAT, headers={"openai-beta": "x"}) != base


def test_anthropic_keys_ignore_prompt_cache_markers_but_not_beta_headers() -> None:
    system = [{"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}}]
    plain = {"model": "claude-haiku-4-5", "max_tokens": 10, "system": [{"type": "text", "text": "You are terse."}]}

    def key(data: dict[str, Any], headers: dict[str, str] | None = None) -> str:
        return cache_key("org", "/messages", "anthropic", headers or {}, "messages", data)

    assert key({**plain, "system": system, "metadata": {"user_id": "u"}}) == key(plain)
    assert key(plain, {"anthropic-beta": "some-beta"}) != key(plain)


def test_eligibility_reasons() -> None:
    settings = CacheSettings(enabled=True)
    assert ineligible(settings, "chat", CHAT, False, None) is None
    assert ineligible(settings, "chat", {**CHAT, "temperature": 0.7}, False, None) == "nondeterministic"
    assert ineligible(settings, "chat", {"model": "m"}, False, None) == "nondeterministic"
    assert ineligible(settings, "chat", {"model": "m"}, False, "triage") == "nondeterministic"
    sampled = CacheSettings(enabled=True, sampled_workflows=["tri*"])
    assert ineligible(sampled, "chat", {"model": "m"}, False, "triage") is None
    assert ineligible(CacheSettings(deterministic_only=False), "chat", {"model": "m"}, False, None) is None
    assert ineligible(settings, "embeddings", {"model": "e", "input": "x"}, False, None) is None
    assert ineligible(settings, "chat", {**CHAT, "n": 2}, False, None) == "n>1"
    assert ineligible(settings, "responses", {**CHAT}, True, None) == "responses_stream"
    assert ineligible(settings, "responses", {**CHAT, "conversation": "conv_1"}, False, None) == "stateful"
    web = {**CHAT, "tools": [{"type": "web_search"}]}
    assert ineligible(settings, "responses", web, False, None) == "server_tools"
    client_tools = {**CHAT, "tools": [{"name": "lookup", "input_schema": {}}]}
    assert ineligible(settings, "messages", client_tools, False, None) is None


def test_workflow_globs_and_scopes() -> None:
    settings = CacheSettings(workflows=["support*", ""], exclude_workflows=["support-hr"])
    assert workflow_allowed(settings, "support-triage") and workflow_allowed(settings, None)
    assert not workflow_allowed(settings, "support-hr") and not workflow_allowed(settings, "billing")
    assert scope_of("team", SUPPORT) == "team=support"
    assert scope_of("team", Attribution(api_key_id="key_9")) == "key=key_9"
    assert scope_of("team", Attribution()) is None
    assert scope_of("user", SUPPORT) == "user=ana" and scope_of("key", SUPPORT) == "key=key_1"
    assert scope_of("org", Attribution()) == "org"


@pytest.mark.parametrize(
    ("headers", "mode"),
    [
        ({}, None),
        ({"cache-control": "no-store"}, "bypass"),
        ({"cache-control": "max-age=0, no-cache"}, "refresh"),
        ({"x-tokenops-cache": "off"}, "bypass"),
        ({"x-tokenops-cache": "refresh"}, "refresh"),
    ],
)
def test_client_directives(headers: dict[str, str], mode: str | None) -> None:
    assert opt_out(headers) == mode


def test_tickets_say_what_to_do_and_why() -> None:
    cache = _cache(exclude_workflows=["hr"])
    assert _ticket(cache, CHAT).mode == "use"
    assert _ticket(cache, CHAT, {"cache-control": "no-store"}).reason == "client_opt_out"
    assert _ticket(cache, CHAT, {"x-tokenops-cache": "refresh"}).header == b"miss"
    assert _ticket(cache, CHAT, attribution=Attribution(team="t", workflow="hr")).reason == "workflow_excluded"
    assert _ticket(cache, CHAT, attribution=Attribution()).reason == "no_team"
    assert _ticket(cache, {"model": "m"}).header == b"bypass"


def test_memory_backend_evicts_least_recently_used_by_bytes_and_expires() -> None:
    now = [100.0]
    backend = MemoryBackend(100, clock=lambda: now[0])

    async def scenario() -> None:
        await backend.set("a", b"x" * 40, 10)
        await backend.set("b", b"y" * 40, 10)
        assert await backend.get("a") == b"x" * 40  # a is now the most recently used
        await backend.set("c", b"z" * 40, 10)  # 123 bytes: b goes
        assert await backend.get("b") is None and await backend.get("a") is not None
        assert backend.size_bytes == 82 and len(backend) == 2
        await backend.set("huge", b"h" * 200, 10)  # larger than the whole cache: not kept
        assert await backend.get("huge") is None and len(backend) == 2
        now[0] = 110.0
        assert await backend.get("a") is None and await backend.get("c") is None
        assert backend.size_bytes == 0

    asyncio.run(scenario())


def test_entries_round_trip_and_unknown_versions_are_misses() -> None:
    entry = entry_of(
        {"id": "chatcmpl-1", "choices": []}, "gpt-4o", TokenUsage(10, 2, 0, 0, 5), Decimal("0.00012"), False
    )
    assert Entry.loads(entry.dumps()) == entry
    assert Entry.loads(b'{"v": 99}') is None and Entry.loads(b"not json") is None


def test_a_hit_gets_a_fresh_id_and_tool_call_answers_are_not_kept_by_default() -> None:
    cache = _cache()
    body = {"id": "chatcmpl-1", "object": "chat.completion", "choices": [_choice("hello")]}
    entry = entry_of(body, "gpt-4o", TokenUsage(1, output_tokens=1), Decimal(1), False)
    again = replay(entry, "chat", CHAT, stream=False)
    assert again.response_id is not None and again.response_id != "chatcmpl-1"
    assert orjson.loads(again.body)["choices"] == body["choices"]
    calls = {**body, "choices": [_choice(None, [{"id": "call_1", "type": "function", "function": {}}])]}
    assert cache.storable("chat", body) and not cache.storable("chat", calls)
    assert _cache(store_tool_calls=True).storable("chat", calls)
    assert not cache.storable("messages", {"content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]})


def _choice(content: str | None, tool_calls: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}


def _events(stream: bytes) -> list[bytes]:
    return split_events(bytearray(stream))


def test_chat_replay_reassembles_to_the_same_completion() -> None:
    calls = [{"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": '{"q": 1}'}}]
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o",
        "choices": [{**_choice("Hi there", calls), "finish_reason": "tool_calls"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }
    assembler = ChatAssembler()
    for event in _events(chat_sse(body, include_usage=True)):
        assembler.feed(event)
    assert assembler.body() == body
    without = _events(chat_sse(body, include_usage=False))
    assert not any(b'"usage"' in event for event in without) and without[-1] == b"data: [DONE]\n\n"


def test_an_unfinished_or_failed_stream_is_not_assembled() -> None:
    body = {"id": "c", "created": 1, "model": "m", "choices": [_choice("x")]}
    assembler = ChatAssembler()
    for event in _events(chat_sse(body, include_usage=False))[:-1]:  # no [DONE]
        assembler.feed(event)
    assert assembler.body() is None
    broken = MessagesAssembler()
    broken.feed(b'event: error\ndata: {"type": "error", "error": {"type": "overloaded_error"}}\n\n')
    assert broken.body() is None


def test_messages_replay_reassembles_text_thinking_and_tool_use() -> None:
    body = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-6",
        "content": [
            {"type": "thinking", "thinking": "Let me see.", "signature": "sig"},
            {"type": "text", "text": "I will look it up."},
            {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"q": [1, 2]}},
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 7},
    }
    assembler = MessagesAssembler()
    for event in _events(messages_sse(body)):
        assembler.feed(event)
    assert assembler.body() == body


def test_a_failing_redis_is_a_bypass_not_an_error() -> None:
    cache = ExactCache(CacheSettings(enabled=True), RedisBackend(f"redis://127.0.0.1:{unused_port()}/0", timeout_s=0.5))
    ticket = _ticket(cache, CHAT)

    async def scenario() -> tuple[Any, bytes]:
        found = await cache.fetch(ticket)
        await cache.put(ticket, entry_of({"id": "x"}, "m", TokenUsage(), None, False))  # logged, not raised
        await cache.aclose()
        return found

    assert asyncio.run(scenario()) == (None, b"bypass")


def test_redis_backend_stores_with_a_ttl(redis_url: str, redis_prefix: str) -> None:
    backend = RedisBackend(redis_url, prefix=redis_prefix)

    async def scenario() -> tuple[bytes | None, bytes | None]:
        await backend.set("k", b"value", 30)
        found = await backend.get("k"), await backend.get("absent")
        await backend.aclose()
        return found

    assert asyncio.run(scenario()) == (b"value", None)
    client = redis.Redis.from_url(redis_url)
    try:
        assert 0 < client.pttl(redis_prefix + "k") <= 30_000
    finally:
        client.close()


def test_open_cache_picks_the_backend() -> None:
    assert open_cache(CacheSettings()) is None
    memory = open_cache(CacheSettings(enabled=True, max_bytes=1000))
    assert memory is not None and isinstance(memory.backend, MemoryBackend) and memory.backend.max_bytes == 1000
    shared = open_cache(CacheSettings(enabled=True, redis_url="redis://127.0.0.1:6379/0"))
    assert shared is not None and isinstance(shared.backend, RedisBackend)


def test_backend_errors_are_cache_unavailable() -> None:
    backend = RedisBackend(f"redis://127.0.0.1:{unused_port()}/0", timeout_s=0.5)

    async def scenario() -> None:
        try:
            await backend.get("k")
        finally:
            await backend.aclose()

    with pytest.raises(CacheUnavailable, match="Redis cache at"):
        asyncio.run(scenario())
