"""The semantic cache through the real `openai` SDK, in front of the fake provider: paraphrases hit, traps do not."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import openai
import orjson
import pytest
from starlette.applications import Starlette

from tests.e2e.conftest import Gateway
from tests.e2e.test_gateway_cache import _serve, env
from tokenops.config import CacheSettings, SemanticCacheSettings

__all__ = ["env"]  # fixture used below

ASKED = "How do I reset my password?"


@pytest.fixture
def semantic(tmp_path: Path, fake_provider: tuple[Starlette, str], env: None) -> Iterator[Gateway]:
    fake_app, fake_url = fake_provider
    settings = CacheSettings(enabled=True, semantic=SemanticCacheSettings(enabled=True, threads=2))
    with _serve(tmp_path, fake_url, fake_app.state.fake, settings) as gateway:
        yield gateway


def _ask(client: openai.OpenAI, text: str, **kwargs: Any) -> Any:
    messages = [{"role": "user", "content": text}]
    return client.chat.completions.with_raw_response.create(model="gpt-4o", messages=messages, temperature=0, **kwargs)


def _client(gateway: Gateway, key: str | None = None) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key or gateway.key, max_retries=0)


def _tags(row: dict[str, object]) -> dict[str, str]:
    return orjson.loads(str(row["tags"])) if row["tags"] else {}


def test_a_paraphrase_is_served_from_the_semantic_cache_at_zero_with_its_saving(semantic: Gateway) -> None:
    with _client(semantic) as client:
        first = _ask(client, ASKED)
        arrived = len(semantic.fake.requests)
        second = _ask(client, "How can I reset my password?")
        streamed = client.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "how do i reset my password"}],
            temperature=0,
            stream=True,
        )
        text = "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
    assert len(semantic.fake.requests) == arrived  # neither paraphrase reached the provider
    assert (first.headers["x-tokenops-cache"], second.headers["x-tokenops-cache"]) == ("miss", "hit")
    assert float(second.headers["x-tokenops-cache-similarity"]) >= 0.8
    assert second.parse().choices[0].message.content == first.parse().choices[0].message.content == text
    original, hit, hit_streamed = semantic.rows()
    assert [r["status"] for r in (original, hit, hit_streamed)] == ["ok", "cached", "cached"]
    assert (hit["cost_total"], hit["price_source"]) == (Decimal(0), "not-billed")
    tags = _tags(hit)
    assert Decimal(tags["cache_saved_usd"]) == original["cost_total"] > 0
    assert tags["cache_kind"] == "semantic" and float(tags["cache_similarity"]) >= 0.8
    assert Decimal(second.headers["x-tokenops-saved-usd"]) == original["cost_total"]


def test_another_teams_paraphrase_a_negation_and_a_changed_number_go_to_the_provider(semantic: Gateway) -> None:
    other = semantic.new_key(user="bo", team="sales")
    with _client(semantic) as mine, _client(semantic, other) as theirs:
        _ask(mine, ASKED)
        _ask(mine, "Is the clinic open on Sundays?")
        _ask(mine, "How much is an emergency call-out at 2pm?")
        arrived = len(semantic.fake.requests)
        answers = [
            _ask(theirs, "How can I reset my password?"),
            _ask(mine, "Is the clinic closed on Sundays?"),
            _ask(mine, "How much is an emergency call-out at 2am?"),
        ]
    assert [a.headers["x-tokenops-cache"] for a in answers] == ["miss", "miss", "miss"]
    assert len(semantic.fake.requests) == arrived + 3
    assert [r["status"] for r in semantic.rows()] == ["ok"] * 6


def test_a_conversation_is_matched_on_its_earlier_turns_not_only_its_last_message(semantic: Gateway) -> None:
    def chat(subject: str, reply: str) -> list[dict[str, str]]:
        return [
            {"role": "user", "content": subject},
            {"role": "assistant", "content": reply},
            {"role": "user", "content": "Cancel it."},
        ]

    flixora = chat("I've got a Flixora subscription I barely use.", "Your Flixora plan renews on the 14th at £10.99.")
    gym = chat("My PulseFit gym membership costs too much.", "Your PulseFit membership is £24.99 with 30 days' notice.")
    with _client(semantic) as client:
        client.chat.completions.create(model="gpt-4o", messages=flixora, temperature=0)  # type: ignore[arg-type]
        other = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=gym, temperature=0)  # type: ignore[arg-type]
        again = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=flixora, temperature=0)  # type: ignore[arg-type]
    assert other.headers["x-tokenops-cache"] == "miss"
    assert again.headers["x-tokenops-cache"] == "hit"  # the exact cache answers a verbatim repeat first
    assert "x-tokenops-cache-similarity" not in again.headers
