"""The semantic cache without a gateway: guards, the decision, the indexes, the real model, the eval command."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import Any

import numpy as np
import pytest
import redis
from typer.testing import CliRunner

from tests.guard.conftest import redis_prefix, redis_url
from tests.shared import shared_data
from tokenops.cache.embed import DIMENSION, Embedder
from tokenops.cache.evaluate import Scorer, Vectoriser, fow_pairs, gptcache
from tokenops.cache.exact import Entry, open_cache
from tokenops.cache.guards import conflict, numbers
from tokenops.cache.semantic import SemanticCache, choose, conversation, open_semantic
from tokenops.cache.vectors import MemoryIndex, Record, RedisIndex, new_record
from tokenops.cli import app
from tokenops.config import CacheSettings, SemanticCacheSettings
from tokenops.events import Attribution, TokenUsage

__all__ = ["redis_prefix", "redis_url"]  # fixtures used below

SUPPORT = Attribution(api_key_id="key_1", user="ana", team="support")
SALES = Attribution(api_key_id="key_2", user="bo", team="sales")
CHECKS = ("number", "negation", "entity", "swap")


@pytest.mark.parametrize(
    ("a", "b", "why"),
    [
        ("Is the clinic open on Sundays?", "Is the clinic closed on Sundays?", "negation"),
        ("Cancel my subscription", "Don't cancel my subscription", "negation"),
        (
            "Is this medicine suitable during breastfeeding?",
            "Is this medicine unsuitable during breastfeeding?",
            "negation",
        ),
        ("How much is an emergency call-out at 2pm?", "How much is an emergency call-out at 2am?", "number"),
        ("Is a 2-bedroom flat available in March?", "Is a 3-bedroom flat available in March?", "number"),
        ("What time does the pharmacy close on weekdays?", "What time does the pharmacy close on weekends?", "number"),
        ("Which terminal does BA fly from at Heathrow?", "Which terminal does Virgin fly from at Heathrow?", "entity"),
        ("Do you deliver to Hackney?", "Do you deliver to Hounslow?", "entity"),
        ("What's the paracetamol dose for adults?", "What's the paracetamol dose for children?", "swap"),
        (
            "How do I migrate my database from MySQL to Postgres?",
            "How do I migrate my database from Postgres to MySQL?",
            "swap",
        ),
        # verbs of stopping negate; scales with two ends; particles; "legal" / "illegal" across a rewording
        ("Should I water succulents in winter?", "Should I stop watering succulents in winter?", "negation"),
        ("How do I increase my overdraft limit?", "I want a smaller overdraft, how do I bring it down?", "negation"),
        ("Which schools are rated outstanding?", "Which local schools were judged inadequate?", "negation"),
        ("What's the check-in time?", "What's the check-out time?", "negation"),
        ("How do I opt in to the workplace pension?", "How do I opt out of the workplace pension?", "negation"),
        (
            "When can my employer lawfully make deductions from my wages?",
            "What deductions from my pay would be illegal for my boss to make?",
            "negation",
        ),
        # number words inside compounds, relative days
        ("What's the price for cleaning a two-bed flat?", "How much to clean a five-bedroom house?", "number"),
        ("Can I get a same-day appointment?", "Can I get a next-day appointment?", "number"),
        # a short name is not an inflection of a longer one ("Sam" is no "Sarah" minus a letter)
        ("Send the invoice to Sarah", "Send the invoice to Sam", "entity"),
        # the same two things on the other sides of "to"; two roles of one relation, in a long question
        ("How do I convert a Word document to PDF?", "How do I convert a PDF to a Word document?", "swap"),
        (
            "How much notice does a tenant need to give to end a periodic tenancy agreement in England?",
            "How much notice does a landlord need to give to end a periodic tenancy agreement in England?",
            "swap",
        ),
    ],
)
def test_guards_veto_the_near_misses_an_embedding_cannot_see(a: str, b: str, why: str) -> None:
    assert conflict(a, b) == why
    assert conflict(a, b, [why]) == why  # that check alone catches it


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("How do I fix a dripping tap?", "okay so how do i fix a dripping tap"),
        ("Can I get a copy of my bank statement by post?", "Can I get a copy of my bank statment by post?"),
        (
            "I can't log in to my online banking, what should I do?",
            "I cannot log in to my online banking, what should I do?",
        ),
        (
            "Can I pay for my prescription by card at the pharmacy?",
            "At the pharmacy, can I pay for my prescription by card?",
        ),
        ("I got a kettle about 10 days ago", "Ordered a kettle ten days back"),
        # greetings, sign-offs and answer particles say nothing about the question
        ("Morning! How do I get a bulky waste collection?", "How do I get a bulky waste collection?"),
        ("Hi! What is the notice period to end my tenancy? Cheers", "What is the notice period to end my tenancy?"),
        ("No, LOAD_HU doesn't exist in version 2.10.0.", "LOAD_HU does not exist in version 2.10.0."),
        # "I'm" is no "am"; "non-members" is "not a member"; a negation and an opposite cancel out
        ("What's the price for non-members?", "How much does it cost if I'm not a member?"),
        ("The parameter is not mandatory and is False by default.", "The parameter is optional and defaults to False."),
        ("It unpacks TAR archives without streaming.", "It extracts TAR archives in non-streaming mode."),
        # idioms that deny nothing
        (
            "You can decide whether a dataset is loaded from the local cache or not when mapping a function.",
            "You can decide whether a dataset is loaded from the local cache when mapping a function.",
        ),
        (
            "The loader reads not only audio files but also images from the local dataset folder.",
            "The loader reads audio files and also images from the local dataset folder.",
        ),
    ],
)
def test_guards_let_rewordings_typos_and_greetings_through(a: str, b: str) -> None:
    assert conflict(a, b) is None


def test_number_words_count_as_digits_and_meridiems_matter() -> None:
    assert numbers("ten days at 3pm on Sundays") == {"10", "3pm", "sunday"}
    assert numbers("10 days at 3 pm on Sunday") == {"10", "3pm", "sunday"}


def test_conversations_are_plain_text_turns_ending_with_the_user() -> None:
    data = {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
            {"role": "assistant", "content": "Hello"},
            {"role": "user", "content": "Cancel it"},
        ]
    }
    assert conversation("chat", data) == (
        [("user", "Hi"), ("assistant", "Hello"), ("user", "Cancel it")],
        ["Be brief."],
    )
    image = {"type": "image_url", "image_url": {"url": "data:"}}
    assert conversation("chat", {"messages": [{"role": "user", "content": [image]}]}) is None
    tool = {"role": "tool", "tool_call_id": "c1", "content": "42"}
    assert conversation("chat", {"messages": [{"role": "user", "content": "x"}, tool]}) is None
    assert conversation("messages", {"system": "S", "messages": [{"role": "user", "content": "q"}]}) == (
        [("user", "q")],
        ["S"],
    )
    assert conversation("responses", {"input": "q", "instructions": "S"}) == ([("user", "q")], ["S"])
    assert conversation("embeddings", {"input": "q"}) is None


def _unit(*values: float) -> np.ndarray:
    vector = np.zeros(DIMENSION, dtype=np.float32)
    vector[: len(values)] = values
    return vector / np.linalg.norm(vector)


def _rec(rid: str, texts: tuple[str, ...], *vectors: np.ndarray, turns: tuple[str, ...] = ()) -> Record:
    return Record(rid, texts, np.stack(vectors), time.time() + 60, turns)


def test_choose_needs_the_threshold_no_guard_objection_and_a_clear_winner() -> None:
    cached = [_rec("a", ("How do I reset my password?",), _unit(1, 0)), _rec("b", ("What is VAT?",), _unit(0, 1))]
    query = np.stack([_unit(1, 0.3)])  # cosine 0.958 with "a"
    pick = choose(("How can I reset my password?",), query, cached, threshold=0.9, margin=0.02, checks=CHECKS)
    assert pick is not None and pick.record.id == "a" and pick.similarity == pytest.approx(0.958, abs=1e-3)
    assert choose(("x",), query, cached, threshold=0.97, margin=0.02, checks=CHECKS) is None
    # a guard vetoes the best candidate; the next one is too far
    assert choose(("How do I not reset my password?",), query, cached, threshold=0.9, margin=0, checks=CHECKS) is None
    # two different cached requests equally close: ambiguous, no guess
    twins = [_rec("a", ("reset password",), _unit(1, 0.1)), _rec("b", ("reset passcode",), _unit(1, -0.1))]
    one = np.stack([_unit(1, 0)])
    assert choose(("reset pass",), one, twins, threshold=0.9, margin=0.02, checks=()) is None
    assert choose(("reset pass",), one, twins, threshold=0.9, margin=0.0, checks=()) is not None


def test_choose_compares_the_earlier_turns_too_not_only_the_last_message() -> None:
    turns = ("I ordered trainers, too small.", "You can return them within 30 days.", "how do i send it back?")
    cached = [_rec("a", (turns[-1], "ctx"), _unit(1, 0), _unit(0, 1), turns=turns)]
    same_context = np.stack([_unit(1, 0), _unit(0, 1)])
    other_context = np.stack([_unit(1, 0), _unit(1, 0)])
    texts = (turns[-1], "ctx")
    assert choose(texts, same_context, cached, threshold=0.9, margin=0, checks=CHECKS, turns=turns) is not None
    assert choose(texts, other_context, cached, threshold=0.9, margin=0, checks=CHECKS, turns=turns) is None
    # the same words, but the earlier turn names another order: the guards compare turn by turn
    swapped = ("Check order 70425 for me", *turns[1:])
    cached = [_rec("a", texts, _unit(1, 0), _unit(0, 1), turns=("Check order 70452 for me", *turns[1:]))]
    assert choose(texts, same_context, cached, threshold=0.9, margin=0, checks=CHECKS, turns=swapped) is None


def test_memory_index_is_bounded_per_bucket_and_in_all_and_expires() -> None:
    now = [1000.0]
    index = MemoryIndex(per_bucket=2, max_entries=3, clock=lambda: now[0])
    vector = np.stack([_unit(1)])

    async def scenario() -> None:
        for i in range(3):
            await index.add("b1", Record(f"r{i}", ("t",), vector, 1060.0), b"answer", 60)
        assert [r.id for r in await index.records("b1")] == ["r1", "r2"]
        await index.add("b2", Record("s0", ("t",), vector, 1030.0), b"other", 60)
        await index.add("b2", Record("s1", ("t",), vector, 1060.0), b"other", 60)
        assert len(index) == 3 and [r.id for r in await index.records("b1")] == ["r2"]
        assert await index.answer("b1", "r2") == b"answer"
        now[0] = 1045.0
        assert [r.id for r in await index.records("b2")] == ["s1"]
        assert await index.answer("b2", "s0") is None

    asyncio.run(scenario())


def test_records_survive_their_stored_form() -> None:
    record = new_record(("last", "ctx"), np.stack([_unit(1), _unit(0, 1)]), 60, ("a", "b", "last"))
    back = Record.loads(record.dumps())
    assert back is not None and back.texts == record.texts and back.turns == record.turns
    assert np.array_equal(back.vectors, record.vectors) and back.expires == record.expires
    assert Record.loads(b"\x00garbage") is None


def test_redis_index_is_shared_bounded_and_keeps_answers_with_a_ttl(redis_url: str, redis_prefix: str) -> None:
    vector = np.stack([_unit(1)])

    async def scenario() -> None:
        writer = RedisIndex(redis_url, prefix=redis_prefix, per_bucket=2)
        reader = RedisIndex(redis_url, prefix=redis_prefix, per_bucket=2)
        for i in range(3):
            await writer.add("b", new_record((f"q{i}",), vector, 30), f"a{i}".encode(), 30)
        found = await reader.records("b")
        assert [r.texts for r in found] == [("q1",), ("q2",)]
        assert await reader.answer("b", found[0].id) == b"a1"
        await writer.aclose()
        await reader.aclose()

    asyncio.run(scenario())
    client = redis.Redis.from_url(redis_url)
    try:
        assert 0 < client.pttl(redis_prefix + "b") <= 30_000
    finally:
        client.close()


def test_the_semantic_cache_is_built_only_when_enabled_and_loads_no_model_until_used() -> None:
    assert open_semantic(CacheSettings(enabled=True)) is None
    assert open_semantic(CacheSettings(semantic=SemanticCacheSettings(enabled=True))) is None
    exact = open_cache(CacheSettings(enabled=True, semantic=SemanticCacheSettings(enabled=True)))
    assert exact is not None and exact.semantic is not None
    assert exact.semantic.embedder.load_s is None
    assert open_cache(CacheSettings(enabled=True)).semantic is None  # type: ignore[union-attr]


def test_per_workflow_thresholds_first_glob_wins() -> None:
    settings = SemanticCacheSettings(enabled=True, workflow_thresholds={"faq-*": 0.7, "*": 0.95})
    cache = open_semantic(CacheSettings(enabled=True, semantic=settings))
    assert cache is not None
    assert cache.threshold("faq-billing") == 0.7 and cache.threshold("billing") == 0.95


def test_the_model_embeds_unit_vectors_and_scores_paraphrases_high(embedder: Embedder) -> None:
    vectors = embedder.embed(["How do I reset my password?", "How can I reset my password?", "What is the VAT rate?"])
    assert vectors.shape == (3, DIMENSION)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    assert vectors[0] @ vectors[1] > 0.9 > vectors[0] @ vectors[2]
    assert embedder.load_s is not None and np.array_equal(embedder.embed_one("x"), embedder.embed(["x"])[0])


def _entry(text: str) -> Entry:
    body: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "choices": [{"message": {"content": text}}],
    }
    usage = TokenUsage(input_tokens=10, output_tokens=5)
    return Entry(body, "gpt-4o", usage, Decimal("0.0001"), "chatcmpl-1", time.time())


def test_a_paraphrase_from_the_same_team_is_served_but_not_another_teams_or_a_negation(embedder: Embedder) -> None:
    settings = CacheSettings(enabled=True, semantic=SemanticCacheSettings(enabled=True))
    cache = SemanticCache(settings, MemoryIndex(100, 100), embedder)

    def query(text: str, who: Attribution = SUPPORT, **data: Any) -> Any:
        body = {"model": "gpt-4o", "temperature": 0, "messages": [{"role": "user", "content": text}], **data}
        return cache.query(route="/chat/completions", upstream="openai", operation="chat", data=body, attribution=who)

    async def scenario() -> None:
        await cache.put(query("How do I reset my password?"), _entry("Use the link."))
        found = await cache.fetch(query("How can I reset my password?"))
        assert found is not None and found[0].body["choices"][0]["message"]["content"] == "Use the link."
        assert found[1] >= 0.8
        assert await cache.fetch(query("How can I reset my password?", SALES)) is None
        assert await cache.fetch(query("How can I not reset my password?")) is None
        assert await cache.fetch(query("How can I reset my password?", max_tokens=5)) is None  # another bucket

    asyncio.run(scenario())


def test_eval_cache_runs_every_protocol_on_a_slice_of_the_shared_data() -> None:
    root = shared_data("semantic_cache")
    result = CliRunner().invoke(
        app, ["eval", "cache", "--data", str(root), "--limit", "12", "--qqp", "12", "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    for title in ("positive", "traps", "conv-long", "precision"):
        assert title in result.output


def test_the_defaults_keep_wrong_answers_rare_on_gptcache_and_fow_cache_traps(embedder: Embedder) -> None:
    """The measured goals (docs/cache.md#measured), on the full GPTCache and fow-cache single-question sets."""
    root = shared_data("semantic_cache")
    vectorise = Vectoriser(embedder)
    tokenops, cosine = Scorer.of(SemanticCacheSettings())
    mock = {row["scorer"]: row for row in gptcache(root, vectorise, (tokenops, cosine))}
    assert mock["tokenops"]["negative"] <= 0.02 * mock["tokenops"]["pairs"] < mock["cosine"]["negative"]
    assert mock["tokenops"]["positive"] > 804  # GPTCache's own best result on its benchmark (at 77 wrong)
    fow = {row["scorer"]: row for row in fow_pairs(root, vectorise, (tokenops, cosine))}
    assert fow["tokenops"]["traps"] <= 0.05 < fow["cosine"]["traps"]
    assert fow["tokenops"]["should-hit"] >= 0.55
