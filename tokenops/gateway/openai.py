"""OpenAI's wire format (also Azure OpenAI, vLLM, Ollama, llama.cpp): chat, responses, embeddings.

Streaming usage: chat completions only report usage when `stream_options.include_usage` is
set, so the gateway sets it and hides the extra usage-only chunk from clients that did not ask
(https://platform.openai.com/docs/api-reference/chat/create#chat-create-stream_options).
The Responses API always reports usage in `response.completed`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

from tokenops.gateway.wire import RequestInfo, ResponseInfo, event_data
from tokenops.meter.usage import openai_usage

_USAGE_OBJECT = re.compile(rb'"usage"\s*:\s*\{')
_CONTENT = re.compile(rb'"(?:content|delta|arguments)"\s*:\s*"((?:[^"\\]|\\.)+)"')


def prepare(body: dict[str, Any], raw: bytes, operation: str) -> RequestInfo:
    """Inspect a request and switch on streamed usage when the client left it off."""
    model = body.get("model")
    stream = body.get("stream") is True
    if not stream or operation != "chat":
        return RequestInfo(model=model if isinstance(model, str) else None, stream=stream, body=raw)
    options = body.get("stream_options")
    if isinstance(options, Mapping) and options.get("include_usage") is True:
        return RequestInfo(model=model if isinstance(model, str) else None, stream=True, body=raw)
    patched = dict(body)
    patched["stream_options"] = {**(options if isinstance(options, Mapping) else {}), "include_usage": True}
    return RequestInfo(
        model=model if isinstance(model, str) else None,
        stream=True,
        body=orjson.dumps(patched),
        hide_usage=True,
    )


def parse_response(data: Mapping[str, Any]) -> ResponseInfo:
    """Usage, id and served model of a JSON response (chat, responses or embeddings)."""
    usage = data.get("usage")
    model = data.get("model")
    rid = data.get("id")
    error = data.get("error")
    return ResponseInfo(
        response_id=rid if isinstance(rid, str) else None,
        model=model if isinstance(model, str) else None,
        usage=openai_usage(usage if isinstance(usage, Mapping) else None),
        error_type=_error_type(error),
    )


def _error_type(error: object) -> str | None:
    if isinstance(error, Mapping):
        kind = error.get("type") or error.get("code")
        return str(kind) if kind else "error"
    return None


class ChatStream:
    """Meters a chat-completions stream; parses only the chunks that can carry usage."""

    def __init__(self, hide_usage: bool) -> None:
        self.info = ResponseInfo()
        self._hide_usage = hide_usage
        self._content = False

    @property
    def has_content(self) -> bool:
        return self._content

    def feed(self, event: bytes) -> bool:
        data = event_data(event)
        if not data or data == b"[DONE]":
            return True
        if self.info.response_id is None or _USAGE_OBJECT.search(data) or b'"error"' in data:
            return self._parse(data)
        for match in _CONTENT.finditer(data):
            self._content = True
            self.info.output_chunks += 1
            self.info.output_text_chars += len(match.group(1))
        return True

    def _parse(self, data: bytes) -> bool:
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            return True
        if not isinstance(chunk, dict):
            return True
        if self.info.response_id is None and isinstance(chunk.get("id"), str):
            self.info.response_id = chunk["id"]
        if isinstance(chunk.get("model"), str):
            self.info.model = chunk["model"]
        if chunk.get("error") is not None:
            self.info.error_type = _error_type(chunk["error"])
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") if isinstance(choice, Mapping) else None
            if isinstance(delta, Mapping) and (delta.get("content") or delta.get("tool_calls")):
                self._content = True
                self.info.output_chunks += 1
                text = delta.get("content")
                self.info.output_text_chars += len(text) if isinstance(text, str) else 0
        usage = chunk.get("usage")
        if isinstance(usage, Mapping):
            self.info.usage = openai_usage(usage)
            if self._hide_usage and not chunk.get("choices"):
                return False
        return True


class ResponsesStream:
    """Meters a Responses API stream from its typed events."""

    def __init__(self) -> None:
        self.info = ResponseInfo()
        self._content = False

    @property
    def has_content(self) -> bool:
        return self._content

    def feed(self, event: bytes) -> bool:
        data = event_data(event)
        if b'"response.output_text.delta"' in data or b'"response.function_call_arguments.delta"' in data:
            self._content = True
            self.info.output_chunks += 1
            return True
        if not (b'"response.' in data and (b'"usage"' in data or b'"error"' in data or b"created" in data)):
            return True
        try:
            payload = orjson.loads(data)
        except orjson.JSONDecodeError:
            return True
        response = payload.get("response") if isinstance(payload, dict) else None
        if isinstance(response, Mapping):
            parsed = parse_response(response)
            self.info.response_id = parsed.response_id or self.info.response_id
            self.info.model = parsed.model or self.info.model
            self.info.usage = parsed.usage or self.info.usage
            self.info.error_type = parsed.error_type or self.info.error_type
        return True
