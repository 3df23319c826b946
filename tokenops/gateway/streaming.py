"""Relaying server-sent events chunk by chunk while metering them.

Events go to the client as soon as they are complete; nothing waits for the end of the
stream. If the client disconnects, the gateway by default keeps reading the upstream (without
forwarding) until the provider reports the final usage, so an aborted stream is still metered
for what the provider billed; `on_client_abort = "close"` stops at once and estimates instead.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import aiohttp
from starlette.types import Message, Receive, Send

from tokenops.gateway.wire import StreamParser, split_events

AbortPolicy = Literal["drain", "close"]


@dataclass(slots=True)
class StreamOutcome:
    """How a relayed stream ended."""

    ttft_ms: float | None = None
    """Time from request start to the first content event."""
    client_aborted: bool = False
    """The client went away before the end."""
    upstream_failed: str | None = None
    """Why the upstream stream broke, if it did."""


async def _watch_disconnect(receive: Receive, gone: asyncio.Event) -> None:
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            gone.set()
            return


async def relay(
    response: aiohttp.ClientResponse,
    parser: StreamParser,
    receive: Receive,
    send: Send,
    *,
    started: float,
    on_abort: AbortPolicy,
    drain_timeout_s: float,
    trailer: Callable[[StreamOutcome], bytes],
) -> StreamOutcome:
    """Copy an upstream SSE response to the client, feeding every event to `parser`."""
    outcome = StreamOutcome()
    gone = asyncio.Event()
    watcher = asyncio.create_task(_watch_disconnect(receive, gone))
    buffer = bytearray()
    deadline: float | None = None
    try:
        async for chunk in response.content.iter_any():
            buffer += chunk
            forward = [event for event in split_events(buffer) if parser.feed(event)]
            if outcome.ttft_ms is None and parser.has_content:
                outcome.ttft_ms = (time.perf_counter() - started) * 1000
            if gone.is_set():
                if not outcome.client_aborted:
                    outcome.client_aborted = True
                    deadline = time.monotonic() + drain_timeout_s
                if on_abort == "close" or (deadline is not None and time.monotonic() > deadline):
                    break
                continue
            if forward:
                try:
                    await send({"type": "http.response.body", "body": b"".join(forward), "more_body": True})
                except OSError:  # the server noticed the client left before we did
                    gone.set()
        if buffer.strip():
            parser.feed(bytes(buffer) + b"\n\n")
    except (TimeoutError, aiohttp.ClientError) as exc:
        outcome.upstream_failed = type(exc).__name__
    finally:
        watcher.cancel()
        if outcome.client_aborted and on_abort == "close":
            response.close()  # stop the provider generating (and billing) more
        else:
            response.release()
    if not gone.is_set():
        await send({"type": "http.response.body", "body": trailer(outcome), "more_body": False})
    else:
        outcome.client_aborted = True
    return outcome
