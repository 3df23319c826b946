"""`tokenops.instrument(client)`: meter an OpenAI or Anthropic SDK client from inside the app.

The client's HTTP transport is wrapped: each model call gets the current task's attribution
headers, and its response is metered with the gateway's own parsers and meter. When the client
talks to a tokenops gateway (its responses carry `x-tokenops-gateway`), the SDK only adds the
headers: the gateway has metered the call, so nothing is counted twice.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx2
import orjson

from tokenops.events import Attribution
from tokenops.gateway import anthropic as anthropic_wire
from tokenops.gateway import openai as openai_wire
from tokenops.gateway.attribution import parse_tags
from tokenops.gateway.errors import NO_RETRY, error_body
from tokenops.gateway.estimate import estimate
from tokenops.gateway.upstream import Flavour
from tokenops.gateway.wire import RequestInfo, ResponseInfo, StreamParser, max_output, max_output_field, split_events
from tokenops.guard import Admission, CallFacts, Refusal
from tokenops.meter import CallRecord
from tokenops.sdk.context import TaskState, current_task
from tokenops.sdk.runtime import Runtime, current_runtime

GATEWAY_MARKER = "x-tokenops-gateway"
_OPERATIONS = (
    ("/chat/completions", "chat"),
    ("/responses", "responses"),
    ("/embeddings", "embeddings"),
    ("/messages", "messages"),
)
C = TypeVar("C")


@dataclass
class _Call:
    flavour: Flavour
    operation: str
    provider: str
    data: dict[str, Any]
    request: RequestInfo
    state: TaskState | None
    iteration: int | None
    ts: datetime
    started: float
    runtime: Runtime
    admission: Admission | None = None
    refusal: Refusal | None = None
    requested_model: str | None = None
    tags: dict[str, str] | None = None
    """Tags the call itself carries (`x-tokenops-tags`, e.g. a cascade's), merged over the task's."""


def _operation(path: str) -> str | None:
    for suffix, operation in _OPERATIONS:
        if path.endswith(suffix):
            return operation
    return None


class _Meter:
    """What both transports share: preparing a call and recording it."""

    def __init__(self, flavour: Flavour, provider: str, runtime: Runtime | None) -> None:
        self.flavour = flavour
        self.provider = provider
        self._runtime = runtime

    def prepare(self, request: Any) -> tuple[Any, _Call | None]:
        operation = _operation(request.url.path)
        if operation is None or request.method != "POST":
            return request, None
        state = current_task.get()
        iteration = state.next_iteration() if state else None
        own_tags = parse_tags(request.headers.get("x-tokenops-tags"))
        if state is not None and iteration is not None:
            for name, value in state.headers(iteration).items():
                request.headers[name] = value
            if own_tags:  # a call's own tags (a cascade step's) join the task's instead of being replaced
                merged = {**state.tags, **own_tags}
                request.headers["x-tokenops-tags"] = ",".join(f"{k}={v}" for k, v in merged.items())
        try:
            data = orjson.loads(request.content)
        except orjson.JSONDecodeError:
            return request, None
        if not isinstance(data, dict):
            return request, None
        runtime = self._runtime or current_runtime()
        info = self._wire(data, request.content, operation)
        call = _Call(
            self.flavour,
            operation,
            self.provider,
            data,
            info,
            state,
            iteration,
            datetime.now(UTC),
            time.perf_counter(),
            runtime,
            requested_model=request.headers.get("x-tokenops-model-requested"),
            tags=own_tags or None,
        )
        decision = runtime.guard.admit(
            CallFacts(
                ts=call.ts,
                model=info.model or "",
                provider=self.provider,
                input_tokens=len(request.content) // 3,  # an upper bound, as in the gateway
                max_output_tokens=max_output(data),
                workflow=state.workflow if state else None,
                team=(state.team if state else None) or runtime.team,
                task_run_id=state.task_run_id if state else None,
                user=(state.user if state else None) or runtime.user,
                customer=state.customer if state else None,
                iteration=call.iteration,
            )
        )
        if isinstance(decision, Refusal):
            call.refusal = decision
            self._blocked(call, decision)
            return request, call
        call.admission = decision
        if decision.model != info.model or decision.max_output_tokens is not None:
            data = {**data, "model": decision.model}
            if decision.max_output_tokens is not None:
                data[max_output_field(self.flavour, operation, data)] = decision.max_output_tokens
            call.requested_model = info.model
            call.data, call.request = data, self._wire(data, orjson.dumps(data), operation)
        if call.request.body is not request.content:  # downgraded, clamped, or usage switched on for a stream
            headers = {k: v for k, v in request.headers.items() if k.lower() != "content-length"}
            request = type(request)(
                request.method, request.url, headers=headers, content=call.request.body, extensions=request.extensions
            )
        return request, call

    def _wire(self, data: dict[str, Any], raw: bytes, operation: str) -> RequestInfo:
        if self.flavour == "anthropic":
            return anthropic_wire.prepare(data, raw)
        return openai_wire.prepare(data, raw, operation)

    def _blocked(self, call: _Call, refusal: Refusal) -> None:
        event = call.runtime.meter.event(
            CallRecord(
                request_id="sdk-" + uuid.uuid4().hex,
                ts=call.ts,
                provider=call.provider,
                model=call.request.model or "",
                usage=None,
                attribution=self._attribution(call),
                operation=call.operation,
                status="blocked",
                error_type=refusal.type,
                source="sdk",
            )
        )
        call.runtime.record_event(event)

    def refusal_response(self, call: _Call, request: Any) -> Any:
        """The provider-format error the SDK raises for a refused call (never retried)."""
        assert call.refusal is not None
        body = error_body(self.flavour, call.refusal.status, call.refusal.message, error_type=call.refusal.type)
        return httpx2.Response(
            call.refusal.status,
            headers={"content-type": "application/json", **NO_RETRY},
            content=body,
            request=request,
        )

    def parser(self, call: _Call) -> StreamParser:
        if self.flavour == "anthropic":
            return anthropic_wire.MessagesStream()
        if call.operation == "responses":
            return openai_wire.ResponsesStream()
        return openai_wire.ChatStream(hide_usage=call.request.hide_usage)

    def record(
        self,
        call: _Call,
        info: ResponseInfo,
        status: int,
        response_data: dict[str, Any] | None,
        ttft_ms: float | None = None,
    ) -> None:
        model = info.model or call.request.model or ""
        usage, estimated = info.usage, False
        ok = status < 400 and info.error_type is None
        if usage is None and ok:
            usage, estimated = estimate(call.flavour, call.data, model, info, response_data), True
        attribution = self._attribution(call)
        event = call.runtime.meter.event(
            CallRecord(
                request_id=info.response_id or "sdk-" + uuid.uuid4().hex,
                ts=call.ts,
                provider=call.provider,
                model=model,
                model_requested=call.requested_model or call.request.model,
                usage=usage,
                attribution=attribution,
                operation=call.operation,
                status="ok" if ok else "error",
                error_type=info.error_type or (None if status < 400 else str(status)),
                latency_ms=(time.perf_counter() - call.started) * 1000,
                ttft_ms=ttft_ms,
                estimated=estimated,
                source="sdk",
            )
        )
        if call.state is not None and event.cost is not None:
            call.state.add_cost(event.cost.total)
        if call.admission is not None:
            call.runtime.guard.settle(
                call.admission, event.cost.total if event.cost else None, usage.total_tokens if usage else 0
            )
        call.runtime.record_event(event)

    def _attribution(self, call: _Call) -> Attribution:
        state = call.state
        return Attribution(
            user=(state.user if state else None) or call.runtime.user,
            team=(state.team if state else None) or call.runtime.team,
            feature=state.feature if state else None,
            workflow=state.workflow if state else None,
            task_run_id=state.task_run_id if state else None,
            iteration=call.iteration,
            customer=state.customer if state else None,
            tags={**(state.tags if state else {}), **(call.tags or {})},
        )

    def whole(self, call: _Call, status: int, body: bytes) -> None:
        data: dict[str, Any] | None = None
        try:
            loaded = orjson.loads(body) if body else None
            data = loaded if isinstance(loaded, dict) else None
        except orjson.JSONDecodeError:
            data = None
        if data is None:
            info = ResponseInfo()
        elif self.flavour == "anthropic":
            info = anthropic_wire.parse_response(data)
        else:
            info = openai_wire.parse_response(data)
        self.record(call, info, status, data)


class _StreamMeter:
    """Meters an SSE stream chunk by chunk; records the call once, when the stream ends or closes."""

    def __init__(self, meter: _Meter, call: _Call) -> None:
        self._meter, self._call = meter, call
        self._parser = meter.parser(call)
        self._buffer = bytearray()
        self._ttft: float | None = None
        self._done = False

    def feed(self, chunk: bytes) -> bytes:
        """The complete events of `chunk` the client should see (the rest waits for more bytes)."""
        self._buffer += chunk
        kept = [event for event in split_events(self._buffer) if self._parser.feed(event)]
        if self._ttft is None and self._parser.has_content:
            self._ttft = (time.perf_counter() - self._call.started) * 1000
        return b"".join(kept)

    def rest(self) -> bytes:
        """Bytes after the last complete event."""
        rest, self._buffer = bytes(self._buffer), bytearray()
        return rest

    def finish(self) -> None:
        if not self._done:
            self._done = True
            self._meter.record(self._call, self._parser.info, 200, None, self._ttft)


class _SyncStream(httpx2.SyncByteStream):
    """Passes SSE events through, metering them."""

    def __init__(self, inner: Any, meter: _StreamMeter) -> None:
        self._inner, self._meter = inner, meter

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._inner:
            if out := self._meter.feed(chunk):
                yield out
        if rest := self._meter.rest():
            yield rest
        self._meter.finish()

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            self._meter.finish()


class _AsyncStream(httpx2.AsyncByteStream):
    """The async twin of `_SyncStream`."""

    def __init__(self, inner: Any, meter: _StreamMeter) -> None:
        self._inner, self._meter = inner, meter

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            if out := self._meter.feed(chunk):
                yield out
        if rest := self._meter.rest():
            yield rest
        self._meter.finish()

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            self._meter.finish()


def _rebuild(response: Any, stream: Any, request: Any) -> Any:
    return type(response)(
        status_code=response.status_code,
        headers=response.headers,
        stream=stream,
        request=request,
        extensions=response.extensions,
    )


class MeteringTransport:
    """Wraps a sync httpx transport of an SDK client."""

    def __init__(self, inner: Any, meter: _Meter) -> None:
        self._inner, self._meter = inner, meter

    def handle_request(self, request: Any) -> Any:
        request, call = self._meter.prepare(request)
        if call is not None and call.refusal is not None:
            return self._meter.refusal_response(call, request)
        response = self._inner.handle_request(request)
        if call is None or GATEWAY_MARKER in response.headers:
            return response
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            return _rebuild(response, _SyncStream(response.stream, _StreamMeter(self._meter, call)), request)
        body = response.read()
        self._meter.whole(call, response.status_code, body)
        return response

    def close(self) -> None:
        self._inner.close()


class AsyncMeteringTransport:
    """Wraps an async httpx transport of an SDK client."""

    def __init__(self, inner: Any, meter: _Meter) -> None:
        self._inner, self._meter = inner, meter

    async def handle_async_request(self, request: Any) -> Any:
        request, call = self._meter.prepare(request)
        if call is not None and call.refusal is not None:
            return self._meter.refusal_response(call, request)
        response = await self._inner.handle_async_request(request)
        if call is None or GATEWAY_MARKER in response.headers:
            return response
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            return _rebuild(response, _AsyncStream(response.stream, _StreamMeter(self._meter, call)), request)
        body = await response.aread()
        self._meter.whole(call, response.status_code, body)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


def instrument(client: C, *, provider: str | None = None, runtime: Runtime | None = None) -> C:
    """Meter every model call `client` makes (OpenAI or Anthropic, sync or async); returns it."""
    module = type(client).__module__
    flavour: Flavour = "anthropic" if module.startswith("anthropic") else "openai"
    http = getattr(client, "_client", None)
    if http is None or not hasattr(http, "_transport"):
        raise TypeError(f"tokenops.instrument() needs an openai or anthropic client, not {type(client).__name__}")
    meter = _Meter(flavour, provider or flavour, runtime)
    if isinstance(http._transport, MeteringTransport | AsyncMeteringTransport):
        return client
    if hasattr(http._transport, "handle_async_request"):
        http._transport = AsyncMeteringTransport(http._transport, meter)
    else:
        http._transport = MeteringTransport(http._transport, meter)
    return client
