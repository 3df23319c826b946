"""The semantic cache: a paraphrase of a cached request, from the same tenant, gets the stored answer.

Consulted by the gateway after an exact-cache miss, for requests the exact cache may serve
(same eligibility, scope and TTL: `ExactCache.ticket`). A request is split in two:

- what must match exactly (the *bucket*): the tenant, route, upstream, every parameter but the
  conversation (model, temperature, tools, response format ...), the system prompt, and the
  conversation's shape (roles, number of turns);
- what may be paraphrased: the last user message and, in a multi-turn conversation, the earlier
  turns (as one text). Both must reach the workflow's cosine threshold: the last message alone does
  not decide ("cancel it" after a talk about a gym membership is not "cancel it" after one about
  a streaming plan).

A candidate that passes the threshold is still vetoed when `guards.conflict` finds a changed
number, a negation, another name or a swapped word between the last messages, or between any two
earlier turns; and no answer is served when the two best candidates are within `margin` of each
other (the request sits between two cached ones). `choose` is that decision, shared by the
gateway and `tokenops eval cache`, which measures it.
"""

from __future__ import annotations

import asyncio
import fnmatch
import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from tokenops.cache.backends import CacheUnavailable
from tokenops.cache.embed import MODEL_ID, Embedder, Vectors
from tokenops.cache.exact import Entry
from tokenops.cache.guards import Conflict, conflict
from tokenops.cache.keys import _DROPPED, Operation, scope_of
from tokenops.cache.vectors import MemoryIndex, Record, RedisIndex, VectorIndex, new_record
from tokenops.config import CacheSettings
from tokenops.events import Attribution

log = logging.getLogger(__name__)

_CONVERSATION = {"chat": "messages", "messages": "messages", "responses": "input"}
_SYSTEM_ROLES = frozenset({"system", "developer"})


@dataclass(slots=True)
class Query:
    """A request as the semantic cache sees it."""

    bucket: str
    """SHA-256 of what must match exactly."""
    texts: tuple[str, ...]
    """The last user message, then the earlier turns joined (if any)."""
    turns: tuple[str, ...]
    """Every turn's text, oldest first (the guards compare earlier turns one by one)."""
    threshold: float
    """The workflow's least cosine."""
    vectors: Vectors | None = None
    """Filled by the first lookup."""


@dataclass(frozen=True, slots=True)
class Match:
    """A cached request close enough to answer this one."""

    record: Record
    similarity: float
    """Cosine of the last user messages (the least over the compared texts)."""


def conversation(operation: Operation, data: Mapping[str, Any]) -> tuple[list[tuple[str, str]], list[str]] | None:
    """(role, text) turns and the system texts of a request; None unless it is all text and ends with the user."""
    field = _CONVERSATION.get(operation)
    if field is None:
        return None
    raw = data.get(field)
    items = [{"role": "user", "content": raw}] if isinstance(raw, str) else raw
    if not isinstance(items, list) or not items:
        return None
    system: list[str] = []
    if operation == "messages" and data.get("system") is not None:
        text = _text(data["system"])
        if text is None:
            return None
        system.append(text)
    if operation == "responses" and isinstance(data.get("instructions"), str):
        system.append(data["instructions"])
    turns: list[tuple[str, str]] = []
    for item in items:
        if not isinstance(item, Mapping) or set(item) - {"role", "content", "type", "name"}:
            return None  # tool calls, tool results, reasoning items: not a plain conversation
        if item.get("type") not in (None, "message"):
            return None
        role, text = item.get("role"), _text(item.get("content"))
        if not isinstance(role, str) or text is None:
            return None
        if role in _SYSTEM_ROLES:
            system.append(text)
        else:
            turns.append((role, text))
    if not turns or turns[-1][0] != "user":
        return None
    return turns, system


def _text(content: object) -> str | None:
    """A message's text; None when it has anything else (images, files, tool blocks)."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return None
    parts: list[str] = []
    for part in content:
        if not isinstance(part, Mapping) or part.get("type") not in ("text", "input_text", "output_text"):
            return None
        if not isinstance(part.get("text"), str):
            return None
        parts.append(part["text"])
    return "\n".join(parts)


def choose(
    query: Sequence[str],
    vectors: Vectors,
    records: Sequence[Record],
    *,
    threshold: float,
    margin: float,
    checks: Sequence[Conflict],
    turns: Sequence[str] = (),
) -> Match | None:
    """The record that may answer `query` (texts and their unit vectors), or None.

    Candidates are scored on the last message; only the best one is tried: it must reach `threshold`,
    its earlier turns too, and no guard may object. No hit when the two best are within `margin` (the
    request is as close to one cached request as to another).
    """
    usable = [r for r in records if len(r.texts) == len(query)]
    if not usable:
        return None
    scores = np.stack([r.vectors[0] for r in usable]) @ vectors[0]
    order = np.argsort(-scores)[:2]
    best, score = usable[order[0]], float(scores[order[0]])
    if score < threshold:
        return None
    if len(order) > 1 and scores[order[1]] >= threshold and score - scores[order[1]] < margin:
        if usable[order[1]].texts != best.texts:
            return None
    similarity = score
    if len(query) > 1:
        similarity = min(score, float(best.vectors[1] @ vectors[1]))
        if similarity < threshold:
            return None
    if conflict(query[0], best.texts[0], checks) is not None:
        return None  # a vetoed best candidate is not replaced by a worse one: that one would be a wrong answer
    if len(query) > 1 and _context_conflict(turns, best, checks):
        return None
    return Match(best, similarity)


def _context_conflict(turns: Sequence[str], record: Record, checks: Sequence[Conflict]) -> bool:
    """A guard objects to some earlier turn (turn by turn: the shapes match, the bucket says so)."""
    if len(record.turns) != len(turns):
        return True
    return any(conflict(a, b, checks) is not None for a, b in zip(turns[:-1], record.turns[:-1], strict=True))


def _context_text(turns: Sequence[tuple[str, str]]) -> str:
    return "\n".join(f"{role}: {text}" for role, text in turns)


class SemanticCache:
    """Queries, lookups and stores over a `VectorIndex`, embedding with an `Embedder` (loaded on first use)."""

    def __init__(self, settings: CacheSettings, index: VectorIndex, embedder: Embedder | None = None) -> None:
        self.settings = settings
        self.semantic = settings.semantic
        self.index = index
        self.embedder = embedder or Embedder(threads=settings.semantic.threads)

    def threshold(self, workflow: str | None) -> float:
        """The workflow's least cosine (first matching glob of `workflow_thresholds`, else the default)."""
        for glob, value in self.semantic.workflow_thresholds.items():
            if fnmatch.fnmatchcase(workflow or "", glob):
                return value
        return self.semantic.threshold

    def query(
        self, *, route: str, upstream: str, operation: Operation, data: Mapping[str, Any], attribution: Attribution
    ) -> Query | None:
        """The request's bucket and texts; None when it is no plain text conversation (then only exact hits)."""
        found = conversation(operation, data)
        scope = scope_of(self.settings.scope, attribution)
        if found is None or scope is None:
            return None
        turns, system = found
        field = _CONVERSATION[operation]
        dropped = _DROPPED[operation] | {field, "system", "instructions"}
        params = {k: v for k, v in data.items() if k not in dropped}
        shape = [role for role, _ in turns]
        material = orjson.dumps(
            {"v": 1, "m": MODEL_ID, "s": scope, "r": route, "u": upstream, "p": params, "sys": system, "t": shape},
            option=orjson.OPT_SORT_KEYS,
        )
        texts = (turns[-1][1],) if len(turns) == 1 else (turns[-1][1], _context_text(turns[:-1]))
        bucket = hashlib.sha256(material).hexdigest()
        return Query(bucket, texts, tuple(t for _, t in turns), self.threshold(attribution.workflow))

    async def _vectors(self, query: Query) -> Vectors:
        if query.vectors is None:
            query.vectors = await asyncio.to_thread(self.embedder.embed, query.texts)
        return query.vectors

    async def fetch(self, query: Query) -> tuple[Entry, float] | None:
        """The answer of the closest acceptable cached request and its similarity, or None."""
        try:
            records = await self.index.records(query.bucket)
            if not records:
                return None
            vectors = await self._vectors(query)
            match = choose(
                query.texts,
                vectors,
                records,
                threshold=query.threshold,
                margin=self.semantic.margin,
                checks=self.semantic.checks,
                turns=query.turns if len(query.turns) > 1 else (),
            )
            if match is None:
                return None
            raw = await self.index.answer(query.bucket, match.record.id)
        except CacheUnavailable as exc:
            log.error("tokenops semantic cache: lookup failed, forwarding the call: %s", exc)
            return None
        entry = Entry.loads(raw) if raw is not None else None
        return (entry, match.similarity) if entry is not None else None

    async def put(self, query: Query, entry: Entry) -> None:
        """Keep a fresh answer under the request's texts (too large an answer or a failing backend: skipped)."""
        raw = entry.dumps()
        if len(raw) > self.settings.max_entry_bytes:
            return
        try:
            vectors = await self._vectors(query)
            record = new_record(query.texts, vectors, self.settings.ttl_s, query.turns)
            await self.index.add(query.bucket, record, raw, self.settings.ttl_s)
        except CacheUnavailable as exc:
            log.error("tokenops semantic cache: storing an answer failed: %s", exc)

    async def aclose(self) -> None:
        """Release the index's connections."""
        await self.index.aclose()


def open_semantic(settings: CacheSettings, embedder: Embedder | None = None) -> SemanticCache | None:
    """The configured semantic cache, or None when `[cache.semantic] enabled` (or `[cache] enabled`) is false."""
    if not (settings.enabled and settings.semantic.enabled):
        return None
    per_bucket = settings.semantic.max_entries_per_scope
    index: VectorIndex
    if settings.redis_url:
        prefix = f"{settings.redis_prefix}sem:"
        index = RedisIndex(settings.redis_url, prefix=prefix, per_bucket=per_bucket, timeout_s=settings.redis_timeout_s)
    else:
        index = MemoryIndex(per_bucket, settings.semantic.max_entries)
    return SemanticCache(settings, index, embedder)
