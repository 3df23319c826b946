"""The exact response cache: the same request from the same tenant gets the stored answer.

    ticket = cache.ticket(...)                 # eligible? under which key? (no I/O)
    entry, header = await cache.fetch(ticket)  # a hit, or None
    ...forward on a miss...
    await cache.put(ticket, entry)             # before the answer's last byte reaches the caller

An entry is the provider's complete JSON answer plus what metering needs (model, usage, the
original call's cost: the saving each hit makes). A hit gets a fresh response id (chat and
messages), is replayed as JSON or as the provider's own event stream, and is recorded by the
gateway as a `cached` ledger row at $0. Backend failures are logged and count as misses.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import orjson

from tokenops.cache.backends import CacheBackend, CacheUnavailable, MemoryBackend, RedisBackend
from tokenops.cache.keys import Operation, Ticket, cache_key, ineligible, opt_out, scope_of, workflow_allowed
from tokenops.cache.replay import chat_sse, messages_sse
from tokenops.config import CacheSettings
from tokenops.events import Attribution, TokenUsage

if TYPE_CHECKING:
    from tokenops.cache.semantic import SemanticCache

log = logging.getLogger(__name__)

HIT, MISS, BYPASS = b"hit", b"miss", b"bypass"
_USAGE_FIELDS = tuple(TokenUsage.__slots__)


@dataclass(frozen=True, slots=True)
class Entry:
    """One cached answer."""

    body: dict[str, Any]
    """The provider's complete JSON response (streamed answers assembled into it)."""
    model: str
    """Model that served the original call."""
    usage: TokenUsage
    """Tokens the original call was billed (also on the hit's ledger row, at $0)."""
    cost: Decimal | None
    """What the original call cost: the saving of every hit; None if it was unpriced."""
    source_id: str | None
    """Response id of the original call."""
    created: float
    """When the provider answered (Unix seconds)."""
    estimated: bool = False
    """The original's tokens were counted by tokenops, not reported."""

    def dumps(self) -> bytes:
        """The stored form."""
        return orjson.dumps(
            {
                "v": 1,
                "body": self.body,
                "model": self.model,
                "usage": {name: getattr(self.usage, name) for name in _USAGE_FIELDS},
                "cost": None if self.cost is None else str(self.cost),
                "source_id": self.source_id,
                "created": self.created,
                "estimated": self.estimated,
            }
        )

    @classmethod
    def loads(cls, raw: bytes) -> Entry | None:
        """Read a stored entry; None for one this version cannot read (treated as a miss)."""
        try:
            data = orjson.loads(raw)
            if data.get("v") != 1:
                return None
            return cls(
                body=data["body"],
                model=data["model"],
                usage=TokenUsage(**data["usage"]),
                cost=None if data["cost"] is None else Decimal(data["cost"]),
                source_id=data["source_id"],
                created=float(data["created"]),
                estimated=bool(data["estimated"]),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
            return None


@dataclass(frozen=True, slots=True)
class Replay:
    """A hit, ready to send."""

    response_id: str | None
    """The id the caller sees (None when the body has none of its own to rewrite)."""
    body: bytes
    """JSON, or the whole server-sent event stream."""
    media_type: str
    """`application/json` or `text/event-stream`."""


class ExactCache:
    """Eligibility, keys and replay over a `CacheBackend`."""

    def __init__(self, settings: CacheSettings, backend: CacheBackend, semantic: SemanticCache | None = None) -> None:
        self.settings = settings
        self.backend = backend
        self.semantic = semantic
        """Asked on an exact miss when `[cache.semantic]` is enabled (tokenops.cache.semantic)."""

    def ticket(
        self,
        *,
        route: str,
        upstream: str,
        operation: Operation,
        headers: Mapping[str, str],
        data: Mapping[str, Any],
        stream: bool,
        attribution: Attribution,
    ) -> Ticket:
        """What to do for this call: look up and store, only store, or neither (and why)."""
        settings = self.settings
        mode = opt_out(headers) or "use"
        if mode == "bypass":
            return Ticket("bypass", reason="client_opt_out")
        if not workflow_allowed(settings, attribution.workflow):
            return Ticket("bypass", reason="workflow_excluded")
        reason = ineligible(settings, operation, data, stream, attribution.workflow)
        if reason is not None:
            return Ticket("bypass", reason=reason)
        scope = scope_of(settings.scope, attribution)
        if scope is None:
            return Ticket("bypass", reason=f"no_{settings.scope}")
        return Ticket(mode, key=cache_key(scope, route, upstream, headers, operation, data))

    async def fetch(self, ticket: Ticket) -> tuple[Entry | None, bytes]:
        """The stored answer (if any) and the `x-tokenops-cache` value to send."""
        if ticket.mode != "use" or ticket.key is None:
            return None, ticket.header
        try:
            raw = await self.backend.get(ticket.key)
        except CacheUnavailable as exc:
            log.error("tokenops cache: lookup failed, forwarding the call uncached: %s", exc)
            return None, BYPASS
        entry = Entry.loads(raw) if raw is not None else None
        return entry, HIT if entry is not None else MISS

    def storable(self, operation: Operation, body: Mapping[str, Any]) -> bool:
        """Whether an answer may be kept: complete, not a tool call (unless configured)."""
        if self.settings.store_tool_calls:
            return True
        return not _asks_for_tools(operation, body)

    async def put(self, ticket: Ticket, entry: Entry) -> None:
        """Keep an answer for `ttl_s`; too large an answer, or a failing backend, is skipped (and logged)."""
        if ticket.mode == "bypass" or ticket.key is None:
            return
        raw = entry.dumps()
        if len(raw) > self.settings.max_entry_bytes:
            return
        try:
            await self.backend.set(ticket.key, raw, self.settings.ttl_s)
        except CacheUnavailable as exc:
            log.error("tokenops cache: storing an answer failed: %s", exc)

    async def aclose(self) -> None:
        """Release the backend's connections."""
        await self.backend.aclose()
        if self.semantic is not None:
            await self.semantic.aclose()


def replay(entry: Entry, operation: Operation, data: Mapping[str, Any], stream: bool) -> Replay:
    """A cached answer in the form this caller asked for, under a fresh id where the API has one."""
    body = dict(entry.body)
    response_id: str | None = None
    if operation == "chat":
        response_id = body["id"] = "chatcmpl-" + uuid.uuid4().hex
    elif operation == "messages":
        response_id = body["id"] = "msg_" + uuid.uuid4().hex[:24]
    # a Responses API id names a response stored at the provider (usable as previous_response_id): kept
    if not stream:
        return Replay(response_id, orjson.dumps(body), "application/json")
    if operation == "messages":
        return Replay(response_id, messages_sse(body), "text/event-stream")
    options = data.get("stream_options")
    include_usage = isinstance(options, Mapping) and options.get("include_usage") is True
    return Replay(response_id, chat_sse(body, include_usage), "text/event-stream")


def entry_of(body: dict[str, Any], model: str, usage: TokenUsage, cost: Decimal | None, estimated: bool) -> Entry:
    """An entry for an answer the provider just gave."""
    rid = body.get("id")
    return Entry(body, model, usage, cost, rid if isinstance(rid, str) else None, time.time(), estimated)


def open_cache(settings: CacheSettings) -> ExactCache | None:
    """The configured cache, or None when `[cache] enabled` is false."""
    if not settings.enabled:
        return None
    backend: CacheBackend
    if settings.redis_url:
        backend = RedisBackend(settings.redis_url, prefix=settings.redis_prefix, timeout_s=settings.redis_timeout_s)
    else:
        backend = MemoryBackend(settings.max_bytes)
    from tokenops.cache.semantic import open_semantic  # it builds on Entry: imported here, not at the top

    return ExactCache(settings, backend, open_semantic(settings))


def _asks_for_tools(operation: Operation, body: Mapping[str, Any]) -> bool:
    if operation == "chat":
        return any(
            isinstance(c, Mapping)
            and isinstance(c.get("message"), Mapping)
            and (c["message"].get("tool_calls") or c["message"].get("function_call"))
            for c in body.get("choices") or ()
        )
    if operation == "messages":
        return any(isinstance(b, Mapping) and b.get("type") == "tool_use" for b in body.get("content") or ())
    if operation == "responses":
        return any(
            isinstance(o, Mapping) and o.get("type") not in ("message", "reasoning") for o in body.get("output") or ()
        )
    return False
