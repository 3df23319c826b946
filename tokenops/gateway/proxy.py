"""One gateway call: authenticate, attribute, (answer from the cache,) guard, forward, meter, answer.

Each provider route is a `ProxyEndpoint` (a raw ASGI app, so streaming and client
disconnects are under our control). Metering happens after the upstream answers and is handed
to the ledger writer, which spools it before the last byte goes back to the client.

The exact cache is asked after authentication and before the guardrails: a hit spends nothing,
so it is neither refused by a budget nor reserves against one; only the stateless model rules
(allow-lists, escalation) are checked first, so a hit never serves a model the caller may not use.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

import aiohttp
import orjson
from starlette.datastructures import Headers
from starlette.types import Message, Receive, Scope, Send

from tokenops.cache import HIT, Entry, Ticket, entry_of, replay
from tokenops.cache.replay import ChatAssembler, MessagesAssembler, Recorder
from tokenops.events import Attribution, UsageEvent
from tokenops.gateway import anthropic, openai
from tokenops.gateway.attribution import HEADER_PREFIX, attribute
from tokenops.gateway.errors import NO_RETRY, GatewayError, error_response, stream_error
from tokenops.gateway.estimate import estimate
from tokenops.gateway.streaming import StreamOutcome, relay
from tokenops.gateway.upstream import Flavour, NoUpstream, Upstream, select
from tokenops.gateway.wire import RequestInfo, ResponseInfo, StreamParser, max_output, max_output_field
from tokenops.guard import Admission, CallFacts, Refusal
from tokenops.guard.rules import check_model
from tokenops.meter import CallRecord
from tokenops.route.cascade import MODEL_REQUESTED_HEADER
from tokenops.route.gateway import route_call
from tokenops.route.gateway_cascade import cascade_of, run_cascade

if TYPE_CHECKING:
    from tokenops.cache.semantic import Query  # numpy and the embedder: loaded only when that cache is on
    from tokenops.gateway.app import Gateway

Operation = Literal["chat", "responses", "embeddings", "messages"]

# Request headers never forwarded upstream: hop-by-hop, our own, and the caller's credentials
_DROP_REQUEST = frozenset(
    {
        "host",
        "content-length",
        "connection",
        "keep-alive",
        "transfer-encoding",
        "authorization",
        "x-api-key",
        "api-key",
        "accept-encoding",
        "te",
        "upgrade",
        "proxy-authorization",
    }
)
_DROP_RESPONSE = frozenset(
    {"content-length", "transfer-encoding", "connection", "keep-alive", "content-encoding", "date", "server"}
)


@dataclass(slots=True)
class Call:
    """Everything known about a call in flight."""

    call_id: str
    ts: datetime
    started: float
    flavour: Flavour
    operation: Operation
    upstream: Upstream
    request: RequestInfo
    data: dict[str, Any]
    attribution: Attribution
    admission: Admission | None = None
    recorded: bool = False
    requested_model: str | None = None
    """The model the caller named, kept when a guardrail downgrades the call."""
    body_bytes: int = 0
    """Size of the request body as received."""
    cache: Ticket | None = None
    """What the exact cache does for this call (None when the cache is off)."""
    cache_header: bytes = b""
    """`x-tokenops-cache` to answer with."""
    semantic: Query | None = None
    """The request as the semantic cache sees it (None when that cache is off or cannot use it)."""


def _bearer(headers: Headers) -> str | None:
    value = headers.get("authorization")
    if value and value[:7].lower() == "bearer ":
        return value[7:].strip()
    return headers.get("x-api-key") or headers.get("api-key")


class ProxyEndpoint:
    """An OpenAI- or Anthropic-compatible route that meters what it forwards."""

    def __init__(self, gateway: Gateway, flavour: Flavour, operation: Operation, path: str) -> None:
        self.gateway = gateway
        self.flavour = flavour
        self.operation = operation
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            call = await self._admit(scope, receive)
            cascade = cascade_of(self.gateway.router, call, scope)  # docs/routing.md: gateway cascades
            if cascade is not None and await run_cascade(self, cascade, call, scope, send):
                return
            if await self._from_cache(call, send):
                return
            route_call(self.gateway.router, self.gateway.upstreams, call)  # docs/routing.md
            call = await self._guard(call)
        except GatewayError as exc:
            await exc.response(self.flavour, exc.headers)(scope, receive, send)
            return
        await self._forward(call, scope, receive, send)

    async def _read_body(self, headers: Headers, receive: Receive) -> bytes:
        limit = self.gateway.settings.max_body_bytes
        declared = headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise GatewayError(413, f"Request body of {declared} bytes exceeds the gateway limit of {limit} bytes")
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise GatewayError(400, "Client disconnected before sending the request body")
            body = message.get("body", b"")
            size += len(body)
            if size > limit:
                raise GatewayError(413, f"Request body exceeds the gateway limit of {limit} bytes")
            chunks.append(body)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _admit(self, scope: Scope, receive: Receive) -> Call:
        started = time.perf_counter()
        headers = Headers(scope=scope)
        key = None
        if self.gateway.settings.require_keys:
            secret = _bearer(headers)
            key = self.gateway.keys.lookup(secret) if secret else None
            if key is None:
                raise GatewayError(
                    401,
                    "Invalid or missing tokenops key; create one with `tokenops keys create --user U --team T`",
                    code="invalid_api_key",
                )
        raw = await self._read_body(headers, receive)
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise GatewayError(400, f"Request body is not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise GatewayError(400, "Request body must be a JSON object")
        request = (
            anthropic.prepare(data, raw) if self.flavour == "anthropic" else openai.prepare(data, raw, self.operation)
        )
        if request.model is None:
            raise GatewayError(400, "Missing required parameter: 'model'", code="missing_required_parameter")
        try:
            upstream = select(self.gateway.upstreams, self.flavour, request.model)
        except NoUpstream as exc:
            raise GatewayError(404, str(exc), code="model_not_found") from exc
        call = Call(
            call_id="gw-" + uuid.uuid4().hex,
            ts=datetime.now(UTC),
            started=started,
            flavour=self.flavour,
            operation=self.operation,
            upstream=upstream,
            request=request,
            data=data,
            attribution=attribute(headers, key, data),
            body_bytes=len(raw),
        )
        asked = headers.get(MODEL_REQUESTED_HEADER)  # an SDK cascade's later step: what was asked first
        if asked and asked != request.model:
            call.requested_model = asked
        cache = self.gateway.cache
        if cache is not None:
            call.cache = cache.ticket(
                route=self.path,
                upstream=upstream.name,
                operation=self.operation,
                headers=headers,
                data=data,
                stream=request.stream,
                attribution=call.attribution,
            )
            call.cache_header = call.cache.header
        return call

    def _facts(self, call: Call) -> CallFacts:
        assert call.request.model is not None
        return CallFacts(
            ts=call.ts,
            model=call.request.model,
            provider=call.upstream.pricing_provider,
            input_tokens=call.body_bytes // 3,  # an upper bound: JSON bytes per token is ~4 for text
            max_output_tokens=max_output(call.data),
            workflow=call.attribution.workflow,
            team=call.attribution.team,
            task_run_id=call.attribution.task_run_id,
            key_id=call.attribution.api_key_id,
            user=call.attribution.user,
            customer=call.attribution.customer,
            iteration=call.attribution.iteration,
        )

    async def _from_cache(self, call: Call, send: Send) -> bool:
        """Answer a hit (recorded as `cached` at $0, the original's cost as the saving); False on a miss."""
        gw = self.gateway
        if gw.cache is None or call.cache is None or call.cache.mode != "use":
            return False
        policies = gw.guard.policies
        if check_model(self._facts(call), policies.model_rules, policies.escalations) is not None:
            return False  # the guard refuses it (and records the refusal)
        entry, call.cache_header = await gw.cache.fetch(call.cache)
        similarity: float | None = None
        if entry is None and gw.cache.semantic is not None:  # docs/cache.md#the-semantic-cache
            call.semantic = gw.cache.semantic.query(
                route=self.path, upstream=call.upstream.name, operation=self.operation, data=call.data,
                attribution=call.attribution,
            )  # fmt: skip
            found = await gw.cache.semantic.fetch(call.semantic) if call.semantic is not None else None
            entry, similarity = found if found is not None else (None, None)
        if entry is None:
            return False
        hit = replay(entry, self.operation, call.data, call.request.stream)
        event = self._record_hit(call, entry, hit.response_id, similarity)
        headers = [
            (b"content-type", hit.media_type.encode()),
            (b"content-length", str(len(hit.body)).encode()),
            (b"x-tokenops-gateway", b"1"),
            (b"x-tokenops-cache", HIT),
            (b"age", str(max(int(time.time() - entry.created), 0)).encode()),
        ]
        if similarity is not None:
            headers.append((b"x-tokenops-cache-similarity", f"{similarity:.4f}".encode()))
        if gw.settings.cost_headers:
            headers.append((b"x-tokenops-cost-usd", b"0"))
            if entry.cost is not None:
                headers.append((b"x-tokenops-saved-usd", _usd(entry.cost).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": hit.body, "more_body": False})
        gw.metrics.observe(call.operation, event)
        return True

    def _record_hit(self, call: Call, entry: Entry, response_id: str | None, similarity: float | None) -> UsageEvent:
        elapsed = (time.perf_counter() - call.started) * 1000
        tags = dict(call.attribution.tags)
        if similarity is not None:
            tags["cache_kind"], tags["cache_similarity"] = "semantic", f"{similarity:.4f}"
        if entry.cost is not None:
            tags["cache_saved_usd"] = _usd(entry.cost)
        if entry.source_id is not None:
            tags["cache_source_id"] = entry.source_id
        record = CallRecord(
            request_id=response_id or call.call_id,
            ts=call.ts,
            provider=call.upstream.pricing_provider,
            model=entry.model,
            model_requested=call.request.model,
            usage=entry.usage,
            attribution=dataclasses.replace(call.attribution, tags=tags),
            operation=call.operation,
            status="cached",
            latency_ms=elapsed,
            ttft_ms=elapsed if call.request.stream else None,
            estimated=entry.estimated,
            source="gateway",
        )
        event = self.gateway.meter.event(record)
        self.gateway.writer.submit(event)
        return event

    def _storable(self, call: Call) -> bool:
        """A miss whose answer may be cached: not trimmed by a guardrail (downgraded or clamped)."""
        if self.gateway.cache is None or call.cache is None or call.cache.mode == "bypass":
            return False
        return call.requested_model is None and (call.admission is None or call.admission.max_output_tokens is None)

    async def _guard(self, call: Call) -> Call:
        """Ask the guardrails before any money is spent: refuse, or forward (maybe downgraded or clamped)."""
        decision = await self.gateway.guard.admit_async(self._facts(call))
        if isinstance(decision, Refusal):
            self._record_blocked(call, decision)
            retry_after = decision.retry_after_s if decision.retryable else None
            headers = {"retry-after": str(retry_after)} if retry_after else NO_RETRY
            raise GatewayError(
                decision.status, decision.message, error_type=decision.type, headers=headers, detail=decision.detail()
            )
        call.admission = decision
        if decision.model != call.request.model or decision.max_output_tokens is not None:
            data = dict(call.data)
            data["model"] = decision.model
            if decision.max_output_tokens is not None:
                data[max_output_field(self.flavour, self.operation, data)] = decision.max_output_tokens
            raw = orjson.dumps(data)
            request = (
                anthropic.prepare(data, raw)
                if self.flavour == "anthropic"
                else openai.prepare(data, raw, self.operation)
            )
            call.requested_model = call.request.model
            call.data, call.request = data, request
        return call

    def _record_blocked(self, call: Call, refusal: Refusal) -> None:
        record = CallRecord(
            request_id=call.call_id,
            ts=call.ts,
            provider=call.upstream.pricing_provider,
            model=call.request.model or "",
            usage=None,
            attribution=call.attribution,
            operation=call.operation,
            status="blocked",
            error_type=refusal.type,
            latency_ms=(time.perf_counter() - call.started) * 1000,
        )
        event = self.gateway.meter.event(record)
        self.gateway.writer.submit(event)
        self.gateway.metrics.observe(call.operation, event)

    def _upstream_headers(self, scope: Scope, upstream: Upstream) -> dict[str, str]:
        out: dict[str, str] = {}
        for raw_name, raw_value in scope["headers"]:
            name = raw_name.decode("latin-1").lower()
            if name in _DROP_REQUEST or name.startswith(HEADER_PREFIX):
                continue
            out[name] = raw_value.decode("latin-1")
        out["accept-encoding"] = "identity"
        out.update(upstream.auth_headers())
        return out

    async def _forward(self, call: Call, scope: Scope, receive: Receive, send: Send) -> None:
        with self.recording(call):
            await self._exchange(call, scope, receive, send)

    @contextmanager
    def recording(self, call: Call) -> Iterator[None]:
        """Around a forwarded call: the spool knows it began, and it is completed even on a bug or cancellation."""
        self.gateway.writer.begin(
            call.call_id,
            call.ts,
            call.upstream.pricing_provider,
            call.request.model or "",
            call.attribution,
            operation=call.operation,
        )
        try:
            yield
        except BaseException:
            if not call.recorded:  # every begin() gets its completion
                self._record(call, ResponseInfo(error_type="gateway_error"), status=500, ttft_ms=None, data=None)
            raise

    async def _exchange(self, call: Call, scope: Scope, receive: Receive, send: Send) -> None:
        url = call.upstream.url(self.path, call.request.model)
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=call.upstream.timeout_s)
        try:
            response = await self.gateway.session.post(
                url, data=call.request.body, headers=self._upstream_headers(scope, call.upstream), timeout=timeout
            )
        except TimeoutError:
            await self._fail(call, 504, "timeout", f"Upstream {call.upstream.name!r} timed out", scope, receive, send)
            return
        except aiohttp.ClientError as exc:
            message = f"Upstream {call.upstream.name!r} is unreachable: {exc}"
            await self._fail(call, 502, "upstream_unreachable", message, scope, receive, send)
            return
        is_sse = response.content_type == "text/event-stream"
        if call.request.stream and response.status == 200 and is_sse:
            await self._stream(call, response, receive, send)
        else:
            await self._whole(call, response, send)

    def _parser(self, call: Call) -> StreamParser:
        if self.flavour == "anthropic":
            return anthropic.MessagesStream()
        if self.operation == "responses":
            return openai.ResponsesStream()
        return openai.ChatStream(hide_usage=call.request.hide_usage)

    def _response_headers(self, call: Call, response: aiohttp.ClientResponse) -> list[tuple[bytes, bytes]]:
        headers = [
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in response.headers.items()
            if name.lower() not in _DROP_RESPONSE
        ]
        headers.append((b"x-tokenops-gateway", b"1"))  # tells the SDK this call is metered already
        if call.cache_header:
            headers.append((b"x-tokenops-cache", call.cache_header))
        return headers

    async def _stream(self, call: Call, response: aiohttp.ClientResponse, receive: Receive, send: Send) -> None:
        gw = self.gateway
        parser = self._parser(call)
        recorder: Recorder | None = None
        if self._storable(call) and self.operation in ("chat", "messages"):
            assembler = MessagesAssembler() if self.flavour == "anthropic" else ChatAssembler()
            recorder = parser = Recorder(parser, assembler)
        headers = self._response_headers(call, response)
        task = call.attribution.task_run_id
        if gw.settings.cost_headers and task:
            headers.append((b"x-tokenops-task-cost-usd", _usd(gw.task_spend.get(task)).encode()))
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        holder: list[UsageEvent] = []
        entries: list[Entry] = []

        async def send_after_storing(message: Message) -> None:
            # a streamed miss is stored before its last byte, so the caller's next identical call hits
            if entries and not message.get("more_body", False):
                await self._store(call, entries.pop())
            await send(message)

        def trailer(outcome: StreamOutcome) -> bytes:
            # record before the last byte reaches the client; tell it the cost in an SSE comment
            event = self._record(
                call,
                parser.info,
                status=200,
                ttft_ms=outcome.ttft_ms,
                data=None,
                error_type=outcome.upstream_failed,
            )
            holder.append(event)
            body = recorder.assembler.body() if recorder is not None and outcome.upstream_failed is None else None
            if body is not None:
                entries.append(self._entry(body, event))
            tail = b""
            if outcome.upstream_failed is not None:  # tell the client the way the provider would
                tail = stream_error(self.flavour, f"Upstream stream from {call.upstream.name!r} broke off")
            if not gw.settings.cost_headers or event.cost is None:
                return tail
            return tail + f": tokenops-cost-usd={_usd(event.cost.total)}\n\n".encode()

        outcome = await relay(
            response,
            parser,
            receive,
            send_after_storing,
            started=call.started,
            on_abort=gw.settings.on_client_abort,
            drain_timeout_s=gw.settings.drain_timeout_s,
            trailer=trailer,
        )
        if not holder:  # the client left: meter what the provider billed (or our estimate of it)
            error = "client_aborted" if outcome.upstream_failed is None else outcome.upstream_failed
            self._record(call, parser.info, status=200, ttft_ms=outcome.ttft_ms, data=None, error_type=error)

    async def _whole(self, call: Call, response: aiohttp.ClientResponse, send: Send) -> None:
        gw = self.gateway
        body = await response.read()
        data: Mapping[str, Any] | None = None
        if response.content_type == "application/json" and body:
            try:
                loaded = orjson.loads(body)
                data = loaded if isinstance(loaded, dict) else None
            except orjson.JSONDecodeError:
                data = None
        info = (
            (anthropic.parse_response(data) if self.flavour == "anthropic" else openai.parse_response(data))
            if (data is not None)
            else ResponseInfo()
        )
        event = self._record(call, info, status=response.status, ttft_ms=None, data=data)
        if response.status == 200 and isinstance(data, dict) and info.error_type is None:
            await self._store(call, self._entry(data, event))
        headers = self._response_headers(call, response)
        if gw.settings.cost_headers and event.cost is not None:
            headers.append((b"x-tokenops-cost-usd", _usd(event.cost.total).encode()))
            task = call.attribution.task_run_id
            if task:
                headers.append((b"x-tokenops-task-cost-usd", _usd(gw.task_spend.get(task)).encode()))
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    def _entry(self, body: dict[str, Any], event: UsageEvent) -> Entry:
        cost = event.cost.total if event.cost is not None else None
        return entry_of(body, event.model, event.usage, cost, event.estimated)

    async def _store(self, call: Call, entry: Entry) -> None:
        cache = self.gateway.cache
        if cache is not None and call.cache is not None and self._storable(call):
            if cache.storable(self.operation, entry.body):
                await cache.put(call.cache, entry)
                if cache.semantic is not None and call.semantic is not None:
                    await cache.semantic.put(call.semantic, entry)

    def _record(
        self,
        call: Call,
        info: ResponseInfo,
        *,
        status: int,
        ttft_ms: float | None,
        data: Mapping[str, Any] | None,
        error_type: str | None = None,
    ) -> UsageEvent:
        gw = self.gateway
        model = info.model or call.request.model or ""
        usage = info.usage
        estimated = False
        ok = status < 400 and info.error_type is None
        if usage is None and ok:
            usage = estimate(self.flavour, call.data, model, info, data)
            estimated = True
        record = CallRecord(
            request_id=info.response_id or call.call_id,
            ts=call.ts,
            provider=call.upstream.pricing_provider,
            model=model,
            model_requested=call.requested_model or call.request.model,
            usage=usage,
            attribution=call.attribution,
            operation=call.operation,
            status="ok" if ok else "error",
            error_type=error_type or info.error_type or (None if status < 400 else str(status)),
            latency_ms=(time.perf_counter() - call.started) * 1000,
            ttft_ms=ttft_ms,
            batch=False,
            service_tier=_service_tier(call.data),
            estimated=estimated,
            source="gateway",
        )
        event = gw.meter.event(record)
        call.recorded = True
        if call.admission is not None:
            gw.settle(call.admission, event.cost.total if event.cost else None, usage.total_tokens if usage else 0)
        if event.cost is not None and call.attribution.task_run_id:
            gw.task_spend.add(call.attribution.task_run_id, event.cost.total)
        gw.writer.submit(event, call.call_id)
        gw.metrics.observe(call.operation, event)
        return event

    async def _fail(
        self,
        call: Call,
        status: int,
        error_type: str,
        message: str,
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        self._record(call, ResponseInfo(error_type=error_type), status=status, ttft_ms=None, data=None)
        await error_response(self.flavour, status, message)(scope, receive, send)


def _service_tier(data: Mapping[str, Any]) -> str | None:
    tier = data.get("service_tier")
    return tier if isinstance(tier, str) and tier in ("flex", "priority") else None


def _usd(value: Decimal) -> str:
    return format(value.quantize(Decimal("1e-9")).normalize(), "f")
