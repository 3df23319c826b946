"""Anthropic's Messages wire format.

Streamed usage arrives in two parts: `message_start` carries the input side (uncached input,
cache reads and writes) and `message_delta` the cumulative output count
(https://docs.anthropic.com/en/docs/build-with-claude/streaming#event-types).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from tokenops.events import TokenUsage
from tokenops.gateway.wire import RequestInfo, ResponseInfo, event_data, event_name
from tokenops.meter.usage import anthropic_usage


def prepare(body: dict[str, Any], raw: bytes) -> RequestInfo:
    """Anthropic always reports usage; nothing to change."""
    model = body.get("model")
    return RequestInfo(model=model if isinstance(model, str) else None, stream=body.get("stream") is True, body=raw)


def parse_response(data: Mapping[str, Any]) -> ResponseInfo:
    """Usage, id and model of a JSON Messages response (or error)."""
    usage = data.get("usage")
    error = data.get("error")
    rid, model = data.get("id"), data.get("model")
    return ResponseInfo(
        response_id=rid if isinstance(rid, str) else None,
        model=model if isinstance(model, str) else None,
        usage=anthropic_usage(usage if isinstance(usage, Mapping) else None),
        error_type=str(error.get("type")) if isinstance(error, Mapping) else None,
    )


class MessagesStream:
    """Meters a Messages stream from `message_start` and `message_delta`."""

    def __init__(self) -> None:
        self.info = ResponseInfo()
        self._start_usage: dict[str, Any] = {}
        self._output_tokens = 0
        self._content = False

    @property
    def has_content(self) -> bool:
        return self._content

    def feed(self, event: bytes) -> bool:
        name = event_name(event)
        if name == b"content_block_delta":
            self._content = True
            self.info.output_chunks += 1
            return True
        if name not in (b"message_start", b"message_delta", b"error"):
            return True
        try:
            payload = orjson.loads(event_data(event))
        except orjson.JSONDecodeError:
            return True
        if not isinstance(payload, dict):
            return True
        if name == b"message_start":
            message = payload.get("message") or {}
            self.info.response_id = message.get("id")
            self.info.model = message.get("model")
            self._start_usage = dict(message.get("usage") or {})
            self._output_tokens = int(self._start_usage.get("output_tokens") or 0)
        elif name == b"message_delta":
            usage = payload.get("usage") or {}
            # message_delta usage is cumulative; newer APIs may repeat input-side counts here
            self._output_tokens = int(usage.get("output_tokens") or self._output_tokens)
            for key in ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"):
                if usage.get(key) is not None:
                    self._start_usage[key] = usage[key]
        else:
            error = payload.get("error")
            self.info.error_type = str(error.get("type")) if isinstance(error, Mapping) else "error"
        self.info.usage = self._usage()
        return True

    def _usage(self) -> TokenUsage | None:
        merged = {**self._start_usage, "output_tokens": self._output_tokens}
        return anthropic_usage(merged)
