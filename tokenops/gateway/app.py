"""The gateway's shared state and routes, mounted into the one tokenops server."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from decimal import Decimal

import aiohttp
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from tokenops.cache import ExactCache
from tokenops.config import GatewaySettings
from tokenops.events import TokenUsage
from tokenops.gateway.errors import error_response
from tokenops.gateway.keys import KeyStore
from tokenops.gateway.metrics import Metrics
from tokenops.gateway.proxy import ProxyEndpoint
from tokenops.gateway.spend import TaskSpend
from tokenops.gateway.upstream import Upstream, select
from tokenops.guard import Admission, Guard, InProcessCounters
from tokenops.meter import Meter
from tokenops.route import Router
from tokenops.store.writer import LedgerWriter

log = logging.getLogger(__name__)


class Gateway:
    """What every gateway call shares: upstream sessions, keys, meter, writer, metrics, the cache."""

    def __init__(
        self,
        settings: GatewaySettings,
        *,
        keys: KeyStore,
        meter: Meter,
        writer: LedgerWriter,
        guard: Guard,
        cache: ExactCache | None = None,
        router: Router | None = None,
    ) -> None:
        self.settings = settings
        self.guard = guard
        self.cache = cache
        self.router = router
        self.upstreams: tuple[Upstream, ...] = tuple(settings.upstreams)
        self.keys = keys
        self.meter = meter
        self.writer = writer
        self.metrics = Metrics()
        self.task_spend = TaskSpend()
        self._session: aiohttp.ClientSession | None = None
        self._settling: set[asyncio.Task[None]] = set()

    @property
    def session(self) -> aiohttp.ClientSession:
        """The pooled upstream HTTP client (created on the server's event loop at startup)."""
        if self._session is None:
            raise RuntimeError("Gateway.start() has not run; the server lifespan starts it")
        return self._session

    async def start(self) -> None:
        """Open the upstream connection pool."""
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, keepalive_timeout=60)
        self._session = aiohttp.ClientSession(connector=connector, auto_decompress=False)
        # load the price list now rather than on the first caller's request
        self.meter.pricer.price("gpt-4o-mini", TokenUsage(input_tokens=1, output_tokens=1), ts=datetime.now(UTC))

    def settle(self, admission: Admission, cost: Decimal | None, tokens: int) -> None:
        """Settle a call's reservation without blocking the event loop on shared counters.

        In-process counters settle at once. Redis counters settle in a background task: until it
        lands the counter still holds the worst case, which only errs on the side of refusing.
        """
        if isinstance(self.guard.counters, InProcessCounters):
            self.guard.settle(admission, cost, tokens)
            return
        task = asyncio.get_running_loop().create_task(self.guard.settle_async(admission, cost, tokens))
        self._settling.add(task)
        task.add_done_callback(self._settled)

    def _settled(self, task: asyncio.Task[None]) -> None:
        self._settling.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("tokenops guard: settling a reservation failed: %r", exc)

    async def stop(self) -> None:
        """Wait for pending settlements, close the pool and the guard's async connections."""
        if self._settling:
            await asyncio.gather(*self._settling, return_exceptions=True)
        await self.guard.counters.aclose()
        if self.cache is not None:
            await self.cache.aclose()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def models(self, request: Request) -> Response:
        """`GET /v1/models`: the default OpenAI-format upstream's list, passed through."""
        try:
            upstream = select(self.upstreams, "openai", None)
        except LookupError as exc:
            return error_response("openai", 404, str(exc))
        try:
            async with self.session.get(
                upstream.url("/models", None),
                headers=upstream.auth_headers(),
                timeout=aiohttp.ClientTimeout(30),
            ) as response:
                body = await response.read()
                return Response(body, status_code=response.status, media_type=response.content_type)
        except (aiohttp.ClientError, TimeoutError) as exc:
            return error_response("openai", 502, f"Upstream {upstream.name!r} is unreachable: {exc}")


def gateway_routes(gateway: Gateway) -> list[BaseRoute]:
    """The provider-compatible routes (both with and without the `/v1` prefix for Anthropic SDKs)."""
    return [
        Route(
            "/v1/chat/completions",
            ProxyEndpoint(gateway, "openai", "chat", "/chat/completions"),
            methods=["POST"],
        ),
        Route("/v1/responses", ProxyEndpoint(gateway, "openai", "responses", "/responses"), methods=["POST"]),
        Route("/v1/embeddings", ProxyEndpoint(gateway, "openai", "embeddings", "/embeddings"), methods=["POST"]),
        Route("/v1/messages", ProxyEndpoint(gateway, "anthropic", "messages", "/messages"), methods=["POST"]),
        Route("/v1/models", gateway.models, methods=["GET"]),
        Route("/metrics", gateway.metrics.endpoint, methods=["GET"]),
    ]
