"""What the fake provider remembers and how it decides a reply (shared by both wire formats).

Deterministic rules, so tests can predict every number:

- input tokens: for each message, its whitespace-separated words + 4, plus 3 per request
  (system prompts count as a message);
- cached input tokens: half the input, rounded down to 128, once the input reaches 1,024;
- the reply echoes the last user message's first words, then counts up ("word1 word2 ..."):
  one word per token and one token per stream chunk; its length is
  `min(max_tokens, 16 + input_tokens % 24)` unless `x-fake-output-tokens` says otherwise;
- reasoning models (names starting with `o1`, `o3`, `o4`, `gpt-5`, or containing `reasoning`)
  also bill twice the visible tokens as reasoning tokens.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
from starlette.requests import Request
from starlette.responses import Response

Wire = Literal["openai", "anthropic"]


@dataclass(frozen=True)
class FakeConfig:
    """Behaviour of the whole fake (headers override it per request)."""

    latency_ms: float = 0.0
    """Wait before a non-streamed reply."""
    ttft_ms: float = 0.0
    """Wait before the first streamed content."""
    chunk_delay_ms: float = 0.0
    """Wait between streamed chunks."""
    model_map: dict[str, str] = field(default_factory=dict)
    """Requested model -> served model (e.g. a dated version)."""
    log_limit: int = 10_000
    """Requests kept for introspection."""
    expected_key: str | None = None
    """When set, any other API key gets a 401."""


@dataclass(frozen=True)
class SeenRequest:
    """A request as the provider received it."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class Reply:
    """A planned response."""

    id: str
    model: str
    text: str
    pieces: list[str]
    input_tokens: int
    cached_tokens: int
    output_tokens: int
    reasoning_tokens: int
    finish_reason: str
    with_usage: bool
    latency_ms: float
    ttft_ms: float
    chunk_delay_ms: float
    fail_after: int | None

    @property
    def completion_tokens(self) -> int:
        return self.output_tokens + self.reasoning_tokens


class FakeState:
    """The fake's memory: config, request log and what it billed per response id."""

    def __init__(self, config: FakeConfig) -> None:
        self.config = config
        self.requests: deque[SeenRequest] = deque(maxlen=config.log_limit)
        self.billed: dict[str, dict[str, Any] | None] = {}
        self._counter = itertools.count()

    def reset(self) -> None:
        """Forget requests and bills."""
        self.requests.clear()
        self.billed.clear()

    def new_id(self, prefix: str) -> str:
        """A unique response id."""
        return f"{prefix}{next(self._counter):06d}{secrets.token_hex(8)}"

    def bill(self, reply: Reply, usage: dict[str, Any] | None) -> None:
        """Record what this response costs (None: usage not reported to the client)."""
        self.billed[reply.id] = usage if usage is not None else {"unreported": True}

    def latency(self, request: Request) -> float:
        return _float(request.headers.get("x-fake-latency-ms"), self.config.latency_ms)

    async def pause(self, ms: float) -> None:
        if ms > 0:
            await asyncio.sleep(ms / 1000)

    async def receive(self, request: Request, wire: Wire) -> tuple[dict[str, Any], Response | None]:
        """Parse, log and apply forced errors; returns (body, error response or None)."""
        raw = await request.body()
        try:
            body = orjson.loads(raw) if raw else {}
        except orjson.JSONDecodeError:
            return {}, error_response(wire, 400, "We could not parse the JSON body of your request.")
        if not isinstance(body, dict):
            return {}, error_response(wire, 400, "Request body must be a JSON object.")
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.requests.append(SeenRequest(request.url.path, headers, body))
        if self.config.expected_key is not None:
            presented = headers.get("x-api-key") or headers.get("authorization", "").removeprefix("Bearer ")
            if presented != self.config.expected_key:
                return body, error_response(wire, 401, "Incorrect API key provided.")
        forced = headers.get("x-fake-error")
        if forced:
            status = int(forced)
            await self.pause(self.latency(request))
            return body, error_response(wire, status, f"Fake provider error {status} (x-fake-error)")
        if "model" not in body:
            return body, error_response(wire, 400, "you must provide a model parameter")
        return body, None


def error_response(wire: Wire, status: int, message: str) -> Response:
    """An error in the provider's own format and status."""
    if wire == "anthropic":
        kind = {
            400: "invalid_request_error",
            401: "authentication_error",
            403: "permission_error",
            404: "not_found_error",
            429: "rate_limit_error",
            529: "overloaded_error",
        }.get(status, "api_error")
        body: dict[str, Any] = {"type": "error", "error": {"type": kind, "message": message}}
    else:
        kind = {
            400: "invalid_request_error",
            401: "invalid_request_error",
            404: "invalid_request_error",
            429: "rate_limit_exceeded",
        }.get(status, "server_error")
        code = {401: "invalid_api_key", 429: "rate_limit_exceeded"}.get(status)
        body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    headers = {"retry-after": "1"} if status in (429, 529) else None
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


def _float(value: str | None, default: float) -> float:
    try:
        return float(value) if value is not None else default
    except ValueError:
        return default


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def count_input(body: dict[str, Any]) -> tuple[int, str]:
    """Input tokens by the fake's rule, and the last user text."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        raw = body.get("input")
        messages = [{"role": "user", "content": raw}] if isinstance(raw, str) else (raw or [])
    total, last = 3, ""
    system = body.get("system") or body.get("instructions")
    if system:
        total += len(_text(system).split()) + 4
    for message in messages:
        if not isinstance(message, dict):
            continue
        text = _text(message.get("content"))
        total += len(text.split()) + 4
        if message.get("role") == "user":
            last = text
    return total, last


def _is_reasoning(model: str) -> bool:
    lowered = model.lower()
    return lowered.startswith(("o1", "o3", "o4", "gpt-5")) or "reasoning" in lowered


def plan_reply(fake: FakeState, request: Request, body: dict[str, Any], id_prefix: str) -> Reply:
    """Decide the whole reply up front (so its usage is known before streaming starts)."""
    headers = request.headers
    requested = str(body.get("model"))
    model = fake.config.model_map.get(requested, requested)
    input_tokens, last = count_input(body)
    cached = (input_tokens // 2) // 128 * 128 if input_tokens >= 1024 else 0
    limit = body.get("max_tokens") or body.get("max_completion_tokens") or body.get("max_output_tokens")
    length = int(_float(headers.get("x-fake-output-tokens"), 16 + input_tokens % 24))
    truncated = isinstance(limit, int) and length > limit
    if isinstance(limit, int):
        length = min(length, limit)
    head = last.split()[:6]
    words = (head + [f"word{i}" for i in range(1, length + 1)])[: max(length, 1)]
    pieces = [w if i == 0 else " " + w for i, w in enumerate(words)]
    fail = headers.get("x-fake-fail-after-chunks")
    return Reply(
        id=fake.new_id(id_prefix),
        model=model,
        text="".join(pieces),
        pieces=pieces,
        input_tokens=input_tokens,
        cached_tokens=cached,
        output_tokens=len(words),
        reasoning_tokens=2 * len(words) if _is_reasoning(model) else 0,
        finish_reason="length" if truncated else "stop",
        with_usage=headers.get("x-fake-no-usage") is None,
        latency_ms=fake.latency(request),
        ttft_ms=_float(headers.get("x-fake-ttft-ms"), fake.config.ttft_ms),
        chunk_delay_ms=_float(headers.get("x-fake-chunk-delay-ms"), fake.config.chunk_delay_ms),
        fail_after=int(fail) if fail is not None else None,
    )


def sse_json(data: dict[str, Any], event: str | None = None) -> bytes:
    """One server-sent event with a JSON payload."""
    head = f"event: {event}\n".encode() if event else b""
    return head + b"data: " + orjson.dumps(data) + b"\n\n"
