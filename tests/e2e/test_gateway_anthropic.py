"""The real `anthropic` SDK through the gateway."""

from __future__ import annotations

import anthropic
import httpx
import pytest

from tests.e2e.conftest import Gateway

MESSAGES = [{"role": "user", "content": "Draft a polite reply to a customer asking for a refund"}]


def _client(gateway: Gateway) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway.url, api_key=gateway.key, max_retries=0)


def test_message_matches_the_provider_and_is_metered(gateway: Gateway) -> None:
    with (
        _client(gateway) as client,
        anthropic.Anthropic(base_url=gateway.fake_url, api_key="x", max_retries=0) as direct,
    ):
        via = client.messages.create(
            model="claude-sonnet-4-6", max_tokens=200, messages=MESSAGES, extra_headers={"X-Tokenops-Step": "3"}
        )
        raw = direct.messages.create(model="claude-sonnet-4-6", max_tokens=200, messages=MESSAGES)
    assert via.content == raw.content
    assert via.usage == raw.usage
    (row,) = gateway.rows()
    assert row["request_id"] == via.id
    expected_input = (
        via.usage.input_tokens + (via.usage.cache_read_input_tokens or 0) + (via.usage.cache_creation_input_tokens or 0)
    )
    assert (row["input_tokens"], row["output_tokens"]) == (expected_input, via.usage.output_tokens)
    assert (row["provider"], row["operation"], row["team"], row["iteration"]) == ("anthropic", "messages", "support", 3)
    assert row["cost_total"] > 0
    seen = gateway.fake.requests[-2]
    assert seen.headers.get("x-api-key") == "sk-ant-fake"


def test_streamed_message_takes_usage_from_start_and_delta(gateway: Gateway) -> None:
    with (
        _client(gateway) as client,
        client.messages.stream(model="claude-sonnet-4-6", max_tokens=300, messages=MESSAGES) as stream,
    ):
        final = stream.get_final_message()
    (row,) = gateway.rows()
    assert row["request_id"] == final.id
    assert row["output_tokens"] == final.usage.output_tokens
    assert row["cache_read_tokens"] == (final.usage.cache_read_input_tokens or 0)
    assert row["estimated"] is False and row["ttft_ms"] is not None
    assert row["cost_total"] > 0


@pytest.mark.anyio
async def test_async_anthropic_streaming_and_not(gateway: Gateway) -> None:
    async with anthropic.AsyncAnthropic(base_url=gateway.url, api_key=gateway.key, max_retries=0) as client:
        whole = await client.messages.create(model="claude-haiku-4-5", max_tokens=50, messages=MESSAGES)
        events = [
            e
            async for e in await client.messages.create(
                model="claude-haiku-4-5", max_tokens=50, messages=MESSAGES, stream=True
            )
        ]
    start = next(e for e in events if e.type == "message_start")
    rows = {r["request_id"]: r for r in gateway.rows()}
    assert set(rows) == {whole.id, start.message.id}


def test_unknown_key_gets_anthropic_401(gateway: Gateway) -> None:
    with (
        anthropic.Anthropic(base_url=gateway.url, api_key="tok-wrong", max_retries=0) as client,
        pytest.raises(anthropic.AuthenticationError) as caught,
    ):
        client.messages.create(model="claude-sonnet-4-6", max_tokens=10, messages=MESSAGES)
    assert caught.value.body["error"]["type"] == "authentication_error"


def test_overloaded_upstream_is_passed_back(gateway: Gateway) -> None:
    with _client(gateway) as client, pytest.raises(anthropic.APIStatusError) as caught:
        client.messages.create(
            model="claude-sonnet-4-6", max_tokens=10, messages=MESSAGES, extra_headers={"x-fake-error": "529"}
        )
    assert caught.value.status_code == 529
    (row,) = gateway.rows()
    assert row["status"] == "error"


def test_malformed_json_gets_an_anthropic_400(gateway: Gateway) -> None:
    response = httpx.post(
        f"{gateway.url}/v1/messages",
        content=b"[1,",
        headers={"x-api-key": gateway.key, "content-type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["type"] == "error"
    assert response.json()["error"]["type"] == "invalid_request_error"
