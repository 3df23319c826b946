"""Anthropic's Messages protocol, faked, with the real streaming event sequence."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from tokenops.testing.fake_state import FakeState, Reply, count_input, plan_reply, sse_json


def _usage(reply: Reply, cache_write: int, output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": reply.input_tokens - reply.cached_tokens - cache_write,
        "cache_creation_input_tokens": cache_write,
        "cache_read_input_tokens": reply.cached_tokens,
        "cache_creation": {"ephemeral_5m_input_tokens": cache_write, "ephemeral_1h_input_tokens": 0},
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }


def _cache_write(request: Request, reply: Reply) -> int:
    forced = request.headers.get("x-fake-cache-write")
    if forced is None:
        return 0
    return max(0, min(int(forced), reply.input_tokens - reply.cached_tokens))


def _message(reply: Reply, usage: dict[str, Any] | None, done: bool) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": reply.id,
        "type": "message",
        "role": "assistant",
        "model": reply.model,
        "content": [{"type": "text", "text": reply.text}] if done else [],
        "stop_reason": ("max_tokens" if reply.finish_reason == "length" else "end_turn") if done else None,
        "stop_sequence": None,
    }
    if usage is not None:
        data["usage"] = usage
    return data


async def messages(request: Request) -> Response:
    """`POST /v1/messages`."""
    fake: FakeState = request.app.state.fake
    body, failure = await fake.receive(request, "anthropic")
    if failure is not None:
        return failure
    reply = plan_reply(fake, request, body, "msg_")
    write = _cache_write(request, reply)
    usage = _usage(reply, write, reply.output_tokens)
    fake.bill(reply, usage if reply.with_usage else None)
    if not body.get("stream"):
        await fake.pause(reply.latency_ms)
        data = _message(reply, usage if reply.with_usage else None, done=True)
        return Response(orjson.dumps(data), media_type="application/json")
    return StreamingResponse(_stream(fake, reply, write), media_type="text/event-stream")


async def _stream(fake: FakeState, reply: Reply, write: int) -> AsyncIterator[bytes]:
    start = _message(reply, _usage(reply, write, 1) if reply.with_usage else None, done=False)
    yield sse_json({"type": "message_start", "message": start}, event="message_start")
    await fake.pause(reply.ttft_ms)
    block = {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
    yield sse_json(block, event="content_block_start")
    yield sse_json({"type": "ping"}, event="ping")
    for n, piece in enumerate(reply.pieces):
        if reply.fail_after is not None and n >= reply.fail_after:
            raise ConnectionAbortedError("fake provider: stream broken on purpose (x-fake-fail-after-chunks)")
        if n:
            await fake.pause(reply.chunk_delay_ms)
        delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}
        yield sse_json(delta, event="content_block_delta")
    yield sse_json({"type": "content_block_stop", "index": 0}, event="content_block_stop")
    stop = "max_tokens" if reply.finish_reason == "length" else "end_turn"
    message_delta: dict[str, Any] = {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None}}
    if reply.with_usage:
        message_delta["usage"] = {"output_tokens": reply.output_tokens}
    yield sse_json(message_delta, event="message_delta")
    yield sse_json({"type": "message_stop"}, event="message_stop")


async def count_tokens(request: Request) -> Response:
    """`POST /v1/messages/count_tokens` (free, not billed)."""
    fake: FakeState = request.app.state.fake
    body, failure = await fake.receive(request, "anthropic")
    if failure is not None:
        return failure
    tokens, _ = count_input(body)
    return Response(orjson.dumps({"input_tokens": tokens}), media_type="application/json")
