"""OpenAI's wire protocol, faked: chat completions, responses, embeddings, models."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from tokenops.testing.fake_state import FakeState, Reply, plan_reply, sse_json


def _chat_usage(reply: Reply) -> dict[str, Any]:
    return {
        "prompt_tokens": reply.input_tokens,
        "completion_tokens": reply.completion_tokens,
        "total_tokens": reply.input_tokens + reply.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": reply.cached_tokens, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": reply.reasoning_tokens, "audio_tokens": 0},
    }


def _responses_usage(reply: Reply) -> dict[str, Any]:
    return {
        "input_tokens": reply.input_tokens,
        "input_tokens_details": {"cached_tokens": reply.cached_tokens},
        "output_tokens": reply.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": reply.reasoning_tokens},
        "total_tokens": reply.input_tokens + reply.completion_tokens,
    }


async def chat_completions(request: Request) -> Response:
    """`POST /v1/chat/completions`."""
    fake: FakeState = request.app.state.fake
    body, failure = await fake.receive(request, "openai")
    if failure is not None:
        return failure
    reply = plan_reply(fake, request, body, "chatcmpl-")
    if not body.get("stream"):
        await fake.pause(reply.latency_ms)
        data: dict[str, Any] = {
            "id": reply.id,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": reply.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": reply.text, "refusal": None},
                    "logprobs": None,
                    "finish_reason": reply.finish_reason,
                }
            ],
            "system_fingerprint": "fp_fake",
        }
        if reply.with_usage:
            data["usage"] = _chat_usage(reply)
        fake.bill(reply, data.get("usage"))
        return Response(orjson.dumps(data), media_type="application/json")
    options = body.get("stream_options") or {}
    include_usage = bool(options.get("include_usage")) and reply.with_usage
    fake.bill(reply, _chat_usage(reply) if include_usage else None)
    return StreamingResponse(_chat_stream(fake, reply, include_usage), media_type="text/event-stream")


async def _chat_stream(fake: FakeState, reply: Reply, include_usage: bool) -> AsyncIterator[bytes]:
    await fake.pause(reply.ttft_ms)
    created = int(time.time())
    base: dict[str, Any] = {
        "id": reply.id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": reply.model,
        "system_fingerprint": "fp_fake",
    }
    extra = {"usage": None} if include_usage else {}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return sse_json({**base, "choices": [choice], **extra})

    yield chunk({"role": "assistant", "content": "", "refusal": None})
    for n, piece in enumerate(reply.pieces):
        if reply.fail_after is not None and n >= reply.fail_after:
            raise ConnectionAbortedError("fake provider: stream broken on purpose (x-fake-fail-after-chunks)")
        if n:
            await fake.pause(reply.chunk_delay_ms)
        yield chunk({"content": piece})
    yield chunk({}, reply.finish_reason)
    if include_usage:
        yield sse_json({**base, "choices": [], "usage": _chat_usage(reply)})
    yield b"data: [DONE]\n\n"


def _response_object(reply: Reply, status: str, with_output: bool) -> dict[str, Any]:
    output = []
    if with_output:
        output = [
            {
                "id": "msg_" + reply.id[5:],
                "type": "message",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": reply.text, "annotations": [], "logprobs": []}],
            }
        ]
    data: dict[str, Any] = {
        "id": reply.id,
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "model": reply.model,
        "output": output,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": _responses_usage(reply) if with_output and reply.with_usage else None,
    }
    return data


async def responses(request: Request) -> Response:
    """`POST /v1/responses`."""
    fake: FakeState = request.app.state.fake
    body, failure = await fake.receive(request, "openai")
    if failure is not None:
        return failure
    reply = plan_reply(fake, request, body, "resp_")
    fake.bill(reply, _responses_usage(reply) if reply.with_usage else None)
    if not body.get("stream"):
        await fake.pause(reply.latency_ms)
        return Response(orjson.dumps(_response_object(reply, "completed", True)), media_type="application/json")
    return StreamingResponse(_responses_stream(fake, reply), media_type="text/event-stream")


async def _responses_stream(fake: FakeState, reply: Reply) -> AsyncIterator[bytes]:
    seq = iter(range(1_000_000))
    item_id = "msg_" + reply.id[5:]

    def event(kind: str, **fields: Any) -> bytes:
        return sse_json({"type": kind, "sequence_number": next(seq), **fields}, event=kind)

    yield event("response.created", response=_response_object(reply, "in_progress", False))
    await fake.pause(reply.ttft_ms)
    item = {"id": item_id, "type": "message", "role": "assistant", "status": "in_progress", "content": []}
    yield event("response.output_item.added", output_index=0, item=item)
    part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
    yield event("response.content_part.added", item_id=item_id, output_index=0, content_index=0, part=part)
    for n, piece in enumerate(reply.pieces):
        if reply.fail_after is not None and n >= reply.fail_after:
            raise ConnectionAbortedError("fake provider: stream broken on purpose (x-fake-fail-after-chunks)")
        if n:
            await fake.pause(reply.chunk_delay_ms)
        yield event(
            "response.output_text.delta", item_id=item_id, output_index=0, content_index=0, delta=piece, logprobs=[]
        )
    yield event(
        "response.output_text.done", item_id=item_id, output_index=0, content_index=0, text=reply.text, logprobs=[]
    )
    done_part = {**part, "text": reply.text}
    yield event("response.content_part.done", item_id=item_id, output_index=0, content_index=0, part=done_part)
    final = _response_object(reply, "completed", True)
    yield event("response.output_item.done", output_index=0, item=final["output"][0])
    yield event("response.completed", response=final)


async def embeddings(request: Request) -> Response:
    """`POST /v1/embeddings`: deterministic 8-dimensional vectors."""
    fake: FakeState = request.app.state.fake
    body, failure = await fake.receive(request, "openai")
    if failure is not None:
        return failure
    inputs = body.get("input")
    items = inputs if isinstance(inputs, list) else [inputs]
    tokens = sum(len(str(item).split()) for item in items)
    data = [
        {"object": "embedding", "index": i, "embedding": [((hash(str(item)) >> s) % 1000) / 1000 for s in range(8)]}
        for i, item in enumerate(items)
    ]
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    rid = fake.new_id("emb-")
    fake.billed[rid] = usage
    await fake.pause(fake.latency(request))
    return Response(
        orjson.dumps({"object": "list", "data": data, "model": body.get("model"), "usage": usage}),
        media_type="application/json",
    )


async def models(request: Request) -> Response:
    """`GET /v1/models`."""
    names = ("gpt-4o", "gpt-4o-mini", "gpt-4.1", "o4-mini", "text-embedding-3-small")
    data = [{"id": n, "object": "model", "created": 1_700_000_000, "owned_by": "fake"} for n in names]
    return Response(orjson.dumps({"object": "list", "data": data}), media_type="application/json")
