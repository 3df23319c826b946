"""The fake provider speaks the real protocols: the official SDKs work against it unchanged."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import httpx
import openai
import pytest
from starlette.applications import Starlette

from tokenops.testing import FakeConfig, create_fake_provider, serve_in_thread

MESSAGES = [{"role": "user", "content": "one two three four five"}]


@pytest.fixture
def fake() -> Iterator[tuple[Starlette, str]]:
    app = create_fake_provider(FakeConfig(model_map={"gpt-4o": "gpt-4o-2024-08-06"}))
    with serve_in_thread(app) as url:
        yield app, url


def test_chat_usage_follows_the_documented_rules(fake: tuple[Starlette, str]) -> None:
    app, url = fake
    with openai.OpenAI(base_url=f"{url}/v1", api_key="x") as client:
        reply = client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        reasoning = client.chat.completions.create(model="o4-mini", messages=MESSAGES, max_completion_tokens=5)
    assert reply.model == "gpt-4o-2024-08-06"
    assert reply.usage is not None and reply.usage.prompt_tokens == 3 + 5 + 4
    assert reply.usage.completion_tokens == 16 + 12 % 24
    assert reasoning.usage is not None and reasoning.usage.completion_tokens_details is not None
    assert reasoning.usage.completion_tokens_details.reasoning_tokens == 10
    assert reasoning.choices[0].finish_reason == "length"
    assert app.state.fake.billed[reply.id]["prompt_tokens"] == 12


def test_stream_reports_usage_only_when_asked(fake: tuple[Starlette, str]) -> None:
    _, url = fake
    with openai.OpenAI(base_url=f"{url}/v1", api_key="x") as client:
        plain = list(client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
        counted = list(
            client.chat.completions.create(
                model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
            )
        )
    assert all(chunk.usage is None for chunk in plain)
    assert counted[-1].choices == [] and counted[-1].usage is not None


def test_errors_come_in_each_providers_format(fake: tuple[Starlette, str]) -> None:
    _, url = fake
    with (
        openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0) as client,
        pytest.raises(openai.RateLimitError),
    ):
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES, extra_headers={"x-fake-error": "429"})
    with (
        anthropic.Anthropic(base_url=url, api_key="x", max_retries=0) as client,
        pytest.raises(anthropic.APIStatusError) as caught,
    ):
        client.messages.create(
            model="claude-haiku-4-5", max_tokens=5, messages=MESSAGES, extra_headers={"x-fake-error": "529"}
        )
    assert caught.value.status_code == 529
    assert caught.value.body["error"]["type"] == "overloaded_error"


def test_anthropic_stream_and_cache_writes(fake: tuple[Starlette, str]) -> None:
    _, url = fake
    with (
        anthropic.Anthropic(base_url=url, api_key="x") as client,
        client.messages.stream(
            model="claude-haiku-4-5", max_tokens=50, messages=MESSAGES, extra_headers={"x-fake-cache-write": "6"}
        ) as stream,
    ):
        final = stream.get_final_message()
    assert final.usage.cache_creation_input_tokens == 6
    assert final.usage.input_tokens == 12 - 6
    assert final.usage.output_tokens == len(final.content[0].text.split())  # type: ignore[union-attr]


def test_introspection_over_http_and_reset(fake: tuple[Starlette, str]) -> None:
    app, url = fake
    with openai.OpenAI(base_url=f"{url}/v1", api_key="secret") as client:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES, extra_body={"vendor": 1})
    seen = httpx.get(f"{url}/_fake/requests").json()
    assert seen[-1]["body"]["vendor"] == 1 and seen[-1]["headers"]["authorization"] == "Bearer secret"
    assert len(httpx.get(f"{url}/_fake/billed").json()) == 1
    httpx.post(f"{url}/_fake/reset")
    assert len(app.state.fake.requests) == 0
