"""Answers between their two forms: a streamed miss assembled into the provider's JSON response,
and a cached JSON response replayed as the provider's own server-sent events.

Replays follow the documented event sequences, so the official SDKs' stream accumulators rebuild
the same message: OpenAI chat chunks (role, content, tool calls, finish, then the usage chunk
only when the caller set `stream_options.include_usage`, then `[DONE]`;
https://platform.openai.com/docs/api-reference/chat-streaming) and Anthropic's
`message_start` ... `message_stop` (https://docs.anthropic.com/en/docs/build-with-claude/streaming).
"""

from __future__ import annotations

import copy
from typing import Any

import orjson

from tokenops.gateway.wire import ResponseInfo, StreamParser, event_data, event_name


class ChatAssembler:
    """Rebuilds a `chat.completion` from its chunks; `body()` is None unless it ended cleanly."""

    def __init__(self) -> None:
        self._head: dict[str, Any] = {}
        self._choices: dict[int, dict[str, Any]] = {}
        self._usage: Any = None
        self._done = False
        self._broken = False

    def feed(self, event: bytes) -> None:
        data = event_data(event)
        if not data or self._broken:
            return
        if data == b"[DONE]":
            self._done = True
            return
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            self._broken = True
            return
        if not isinstance(chunk, dict) or chunk.get("error") is not None:
            self._broken = True
            return
        for name in ("id", "created", "model", "system_fingerprint", "service_tier"):
            if chunk.get(name) is not None:
                self._head[name] = chunk[name]
        if chunk.get("usage") is not None:
            self._usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            self._choice(choice)

    def _choice(self, choice: dict[str, Any]) -> None:
        if choice.get("logprobs") is not None:
            self._broken = True  # logprobs are not reassembled: such answers are not cached
            return
        index = int(choice.get("index") or 0)
        slot = self._choices.setdefault(
            index,
            {
                "index": index,
                "message": {"role": "assistant", "content": None, "refusal": None},
                "logprobs": None,
                "finish_reason": None,
            },
        )
        message = slot["message"]
        delta = choice.get("delta") or {}
        for text in ("content", "refusal"):
            if isinstance(delta.get(text), str):
                message[text] = (message[text] or "") + delta[text]
        for call in delta.get("tool_calls") or ():
            calls = message.setdefault("tool_calls", [])
            position = int(call.get("index") or 0)
            while len(calls) <= position:
                calls.append({"id": None, "type": "function", "function": {"name": "", "arguments": ""}})
            target = calls[position]
            target["id"] = call.get("id") or target["id"]
            target["type"] = call.get("type") or target["type"]
            function = call.get("function") or {}
            target["function"]["name"] += function.get("name") or ""
            target["function"]["arguments"] += function.get("arguments") or ""
        if choice.get("finish_reason") is not None:
            slot["finish_reason"] = choice["finish_reason"]

    def body(self) -> dict[str, Any] | None:
        if not self._done or self._broken or not self._choices or "id" not in self._head:
            return None
        body: dict[str, Any] = {"object": "chat.completion", **self._head}
        body["choices"] = [self._choices[i] for i in sorted(self._choices)]
        if self._usage is not None:
            body["usage"] = self._usage
        return body


class MessagesAssembler:
    """Rebuilds an Anthropic `message` from its events; `body()` is None unless it ended cleanly."""

    def __init__(self) -> None:
        self._message: dict[str, Any] | None = None
        self._blocks: dict[int, dict[str, Any]] = {}
        self._json: dict[int, str] = {}
        self._done = False
        self._broken = False

    def feed(self, event: bytes) -> None:
        name = event_name(event)
        if self._broken or name in (b"ping", b""):
            return
        try:
            payload = orjson.loads(event_data(event))
        except orjson.JSONDecodeError:
            self._broken = True
            return
        if name == b"message_start":
            self._message = dict(payload["message"])
        elif name == b"content_block_start":
            self._blocks[int(payload["index"])] = dict(payload["content_block"])
        elif name == b"content_block_delta":
            self._delta(int(payload["index"]), payload["delta"])
        elif name == b"content_block_stop":
            index = int(payload["index"])
            if index in self._json:
                self._blocks[index]["input"] = orjson.loads(self._json.pop(index) or "{}")
        elif name == b"message_delta" and self._message is not None:
            self._message.update(payload.get("delta") or {})
            self._message["usage"] = {**(self._message.get("usage") or {}), **(payload.get("usage") or {})}
        elif name == b"message_stop":
            self._done = True
        else:
            self._broken = True  # an error event, or one this assembler does not know

    def _delta(self, index: int, delta: dict[str, Any]) -> None:
        block = self._blocks.get(index)
        kind = delta.get("type")
        if block is None:
            self._broken = True
        elif kind == "text_delta":
            block["text"] = block.get("text", "") + delta["text"]
        elif kind == "input_json_delta":
            self._json[index] = self._json.get(index, "") + delta["partial_json"]
        elif kind == "thinking_delta":
            block["thinking"] = block.get("thinking", "") + delta["thinking"]
        elif kind == "signature_delta":
            block["signature"] = delta["signature"]
        elif kind == "citations_delta":
            block.setdefault("citations", []).append(delta["citation"])
        else:
            self._broken = True

    def body(self) -> dict[str, Any] | None:
        if not self._done or self._broken or self._message is None:
            return None
        return {**self._message, "content": [self._blocks[i] for i in sorted(self._blocks)]}


class Recorder:
    """A `StreamParser` that meters through `inner` and also assembles the whole answer."""

    def __init__(self, inner: StreamParser, assembler: ChatAssembler | MessagesAssembler) -> None:
        self.inner = inner
        self.info: ResponseInfo = inner.info
        self.assembler = assembler

    @property
    def has_content(self) -> bool:
        return self.inner.has_content

    def feed(self, event: bytes) -> bool:
        self.assembler.feed(event)  # every upstream event, also those hidden from the client
        return self.inner.feed(event)


def _sse(payload: object, event: str | None = None) -> bytes:
    head = f"event: {event}\n".encode() if event else b""
    return head + b"data: " + orjson.dumps(payload) + b"\n\n"


def chat_sse(body: dict[str, Any], include_usage: bool) -> bytes:
    """A cached chat completion as the chunk stream OpenAI would have sent."""
    base: dict[str, Any] = {
        k: body[k] for k in ("id", "created", "model", "system_fingerprint", "service_tier") if k in body
    }
    base["object"] = "chat.completion.chunk"
    extra = {"usage": None} if include_usage else {}
    out: list[bytes] = []

    def chunk(index: int, delta: dict[str, Any], finish: str | None = None) -> None:
        choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
        out.append(_sse({**base, "choices": [choice], **extra}))

    for choice in body.get("choices") or ():
        index, message = choice.get("index", 0), choice.get("message") or {}
        chunk(index, {"role": "assistant", "content": "", "refusal": None})
        if message.get("content"):
            chunk(index, {"content": message["content"]})
        if message.get("refusal"):
            chunk(index, {"refusal": message["refusal"]})
        calls = message.get("tool_calls") or []
        if calls:
            chunk(index, {"tool_calls": [{"index": i, **call} for i, call in enumerate(calls)]})
        chunk(index, {}, choice.get("finish_reason") or "stop")
    if include_usage and body.get("usage") is not None:
        out.append(_sse({**base, "choices": [], "usage": body["usage"]}))
    out.append(b"data: [DONE]\n\n")
    return b"".join(out)


def messages_sse(body: dict[str, Any]) -> bytes:
    """A cached Anthropic message as the event stream Anthropic would have sent."""
    start = {**body, "content": [], "stop_reason": None, "stop_sequence": None}
    out = [_sse({"type": "message_start", "message": start}, "message_start")]
    for index, block in enumerate(body.get("content") or ()):
        kind = block.get("type")
        deltas: list[dict[str, Any]] = []
        opening = copy.deepcopy(block)
        if kind == "text" and not block.get("citations"):
            opening["text"] = ""
            deltas.append({"type": "text_delta", "text": block.get("text", "")})
        elif kind == "thinking":
            opening.update(thinking="", signature="")
            deltas.append({"type": "thinking_delta", "thinking": block.get("thinking", "")})
            deltas.append({"type": "signature_delta", "signature": block.get("signature", "")})
        elif kind == "tool_use":
            opening["input"] = {}
            deltas.append({"type": "input_json_delta", "partial_json": orjson.dumps(block.get("input", {})).decode()})
        # any other block (citations, server tool results, redacted thinking) arrives whole in its start event
        out.append(
            _sse({"type": "content_block_start", "index": index, "content_block": opening}, "content_block_start")
        )
        for delta in deltas:
            out.append(_sse({"type": "content_block_delta", "index": index, "delta": delta}, "content_block_delta"))
        out.append(_sse({"type": "content_block_stop", "index": index}, "content_block_stop"))
    usage = body.get("usage") or {}
    stop = {"stop_reason": body.get("stop_reason"), "stop_sequence": body.get("stop_sequence")}
    out.append(
        _sse(
            {"type": "message_delta", "delta": stop, "usage": {"output_tokens": usage.get("output_tokens", 0)}},
            "message_delta",
        )
    )
    out.append(_sse({"type": "message_stop"}, "message_stop"))
    return b"".join(out)
