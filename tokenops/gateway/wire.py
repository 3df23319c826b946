"""What the gateway learns from a request and its response, whatever the wire format."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from tokenops.events import TokenUsage


@dataclass(slots=True)
class RequestInfo:
    """The parts of a request the gateway acts on."""

    model: str | None
    """Model asked for."""
    stream: bool
    """Server-sent events requested."""
    body: bytes
    """Body to send upstream (unchanged unless usage reporting had to be switched on)."""
    hide_usage: bool = False
    """The gateway asked for a usage chunk the client did not; strip it from the stream."""


@dataclass(slots=True)
class ResponseInfo:
    """The parts of a response the gateway meters."""

    response_id: str | None = None
    """Provider's id for the call (the ledger's request_id)."""
    model: str | None = None
    """Model that served it."""
    usage: TokenUsage | None = None
    """Tokens billed, if reported."""
    error_type: str | None = None
    """Provider error type of a failed call or stream."""
    output_chunks: int = 0
    """Content deltas seen in a stream (about one token each) for estimates."""
    output_text_chars: int = 0
    """Characters of generated text seen, for estimates when usage never arrives."""


class StreamParser(Protocol):
    """Reads one provider's SSE events as they pass through."""

    info: ResponseInfo

    def feed(self, event: bytes) -> bool:
        """Take one complete SSE event; return False to keep it from the client."""
        ...

    @property
    def has_content(self) -> bool:
        """Whether generated content has started (time to first token)."""
        ...


def split_events(buffer: bytearray) -> list[bytes]:
    """Remove and return the complete SSE events (each with its blank-line terminator)."""
    events: list[bytes] = []
    start = 0
    while True:
        end = buffer.find(b"\n\n", start)
        crlf = buffer.find(b"\r\n\r\n", start)
        if crlf != -1 and (end == -1 or crlf < end):
            end, width = crlf, 4
        else:
            width = 2
        if end == -1:
            break
        events.append(bytes(buffer[start : end + width]))
        start = end + width
    del buffer[:start]
    return events


def event_data(event: bytes) -> bytes:
    """The `data:` payload of an SSE event (joined if split over lines)."""
    parts = [line[5:].lstrip(b" ") for line in event.splitlines() if line.startswith(b"data:")]
    return b"\n".join(parts)


def event_name(event: bytes) -> bytes:
    """The `event:` field of an SSE event, or b''."""
    for line in event.splitlines():
        if line.startswith(b"event:"):
            return line[6:].strip()
    return b""


def max_output(data: Mapping[str, Any]) -> int | None:
    """The request's own limit on generated tokens, whatever the wire format calls it."""
    for name in ("max_completion_tokens", "max_output_tokens", "max_tokens"):
        value = data.get(name)
        if isinstance(value, int):
            return value
    return None


def max_output_field(flavour: str, operation: str, data: Mapping[str, Any]) -> str:
    """Which field to set to limit generated tokens."""
    if flavour == "anthropic":
        return "max_tokens"
    if operation == "responses":
        return "max_output_tokens"
    return "max_completion_tokens" if "max_completion_tokens" in data else "max_tokens"
