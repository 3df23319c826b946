"""The one ASGI application `tokenops serve` runs: gateway, JSON API and dashboard."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.routing import Router as StarletteRouter
from starlette.types import Receive, Scope, Send

from tokenops.cache import open_cache
from tokenops.config import Settings
from tokenops.gateway.app import Gateway, gateway_routes
from tokenops.gateway.keys import KeyStore
from tokenops.guard import Guard, InProcessCounters, Policies, open_guard
from tokenops.guard.policy_store import FilePolicyStore, PolicyStore, PolicyStoreError, PolicySync, RedisPolicyStore
from tokenops.guard.restore import restore_quotas
from tokenops.meter import Meter
from tokenops.pricing import Pricer
from tokenops.route import Router
from tokenops.store import Ledger, open_ledger
from tokenops.store.writer import LedgerWriter
from tokenops.web.access import exception_handlers
from tokenops.web.session import Signer, load_secret
from tokenops.web.users import user_store

log = logging.getLogger(__name__)


def api_routes() -> list[BaseRoute]:
    """The JSON API, the ingest endpoints and the dashboard pages."""
    from tokenops.web import admin, api, api_anomalies, api_kpis, api_planning, api_yield, ingest, otlp, outcomes
    from tokenops.web.dashboard import dashboard_routes

    return [
        *dashboard_routes(),
        *api.routes,
        *api_yield.routes,
        *api_kpis.routes,
        *api_planning.routes,
        *api_anomalies.routes,
        *ingest.routes,
        *otlp.routes,
        *outcomes.routes,
        *admin.routes,
    ]


def healthz(request: Request) -> JSONResponse:
    """Liveness: the process answers and the ledger can be read (not deferred: probes must not load the pages)."""
    request.app.state.ledger.ping()  # the ledger itself, never a cached answer
    return JSONResponse({"status": "ok"})


class DeferredRoutes:
    """Everything but the gateway, imported on its first request.

    The analytics behind the pages bring numpy, SQLGlot and the report code: a gateway replica that
    nobody opens the dashboard on should not carry them (tens of MB per process).
    """

    def __init__(self) -> None:
        self._router: StarletteRouter | None = None

    @property
    def routes(self) -> list[BaseRoute]:
        """The routes, for `url_for` (loads them)."""
        return self._load().routes

    def _load(self) -> StarletteRouter:
        if self._router is None:
            self._router = StarletteRouter(routes=api_routes())
        return self._router

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._load()(scope, receive, send)


def key_store(settings: Settings) -> KeyStore:
    """The virtual-key store of a deployment."""
    return KeyStore(settings.data_dir / "keys.sqlite")


def policy_store(settings: Settings) -> PolicyStore:
    """Where admin policy changes are kept: Redis when replicas share counters, else the data directory."""
    backend = settings.guard_backend
    if backend.redis_url:
        return RedisPolicyStore(backend.redis_url, backend.key_prefix)
    return FilePolicyStore(settings.data_dir / "policies.json")


def _guard(settings: Settings, pricer: Pricer, ledger: Ledger) -> tuple[Guard, PolicySync]:
    guard = open_guard(settings.guard, pricer, settings.guard_backend)
    counters = guard.counters

    def restore(policies: Policies) -> None:
        # in-process counters start empty: give each quota back what its period has already spent
        if isinstance(counters, InProcessCounters):
            restore_quotas(counters, policies, ledger, datetime.now(UTC))

    sync = PolicySync(guard, policy_store(settings), settings.guard, on_change=restore)
    try:
        sync.refresh()  # an admin's stored set applies from the first call
    except PolicyStoreError as exc:
        log.error("tokenops guard: cannot read the stored policies, starting with the config file's: %s", exc)
        sync.apply(None)
    return guard, sync


def create_app(settings: Settings, ledger: Ledger | None = None, *, mounts: Sequence[BaseRoute] = ()) -> Starlette:
    """Build the server; it owns (and closes) the ledger unless one is passed in.

    `mounts` adds routes, e.g. the demo's built-in fake provider.
    """
    owned = ledger is None
    threads = settings.server.duckdb_threads
    store = ledger if ledger is not None else open_ledger(settings.ledger, duckdb_threads=threads)
    writer = LedgerWriter(store, settings.data_dir / "spool", flush_interval=1.0)
    pricer = Pricer(settings.pricing.overrides)
    guard, sync = _guard(settings, pricer, store)
    gateway = Gateway(
        settings.gateway,
        keys=key_store(settings),
        meter=Meter(pricer),
        writer=writer,
        guard=guard,
        cache=open_cache(settings.cache),
        router=Router.open(settings.route, settings.data_dir),
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        writer.start()
        await gateway.start()
        polling = asyncio.get_running_loop().create_task(sync.run())
        try:
            yield
        finally:
            polling.cancel()
            await gateway.stop()
            guard.close()
            writer.close()
            if owned:
                store.close()

    app = Starlette(
        routes=[
            *gateway_routes(gateway),  # first: the hot path should not be matched against every page
            Route("/healthz", healthz),
            *mounts,
            Mount("", app=DeferredRoutes()),
        ],
        lifespan=lifespan,
        exception_handlers=exception_handlers,
    )
    app.state.settings = settings
    app.state.ledger = store
    app.state.users = user_store(settings)
    app.state.session_signer = Signer(load_secret(settings.data_dir))
    app.state.gateway = gateway
    app.state.policy_sync = sync
    app.state.writer = writer
    return app
