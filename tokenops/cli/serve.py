"""`tokenops serve`: run the server on an existing ledger, in one process or `--workers N` sharing the port.

With `--workers N` uvicorn binds the port once in a supervisor process and hands the socket to N
spawned worker processes (a dead worker is replaced). Each worker builds its own app from the
parent's settings, passed down as JSON in `_SETTINGS_ENV` (uvicorn's workers need an import-string
factory, `worker_app`). Workers share the data directory: the spool is per process inside it
(segments are named by pid and locked while open), so a worker killed with -9 is replayed by its
replacement or by a sibling's periodic rescan. Everything else the workers must agree on has to
live outside the process, so `workers_refusal` rejects a DuckDB or chdb ledger (one writer
process) and in-process guard counters while budgets, quotas or limits are set.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated

import typer
import uvicorn
from rich.console import Console
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tokenops.cli.common import ConfigOption, LedgerOption, fail, settings_from
from tokenops.config import Settings
from tokenops.errors import TokenopsError
from tokenops.events import TokenUsage
from tokenops.guard.policy_store import FilePolicyStore, PolicyStoreError
from tokenops.pricing import Pricer
from tokenops.store import is_server_ledger, open_ledger
from tokenops.web import create_app
from tokenops.web.app import key_store
from tokenops.web.session import load_secret
from tokenops.web.users import user_store

_SETTINGS_ENV = "_TOKENOPS_WORKER_SETTINGS"
"""Environment variable carrying the parent's settings (JSON) to the spawned workers."""
WORKER_HEADER = b"x-tokenops-worker"
"""Response header naming the worker process (its pid) that answered, when serving with several workers."""


def _warm_and_freeze() -> None:
    """Load the price list, then move long-lived objects out of the garbage collector's reach.

    The price list and libraries are millions of long-lived objects: frozen, full collections
    stop adding milliseconds to tail latency.
    """
    Pricer().price("gpt-4o-mini", TokenUsage(input_tokens=1, output_tokens=1), ts=datetime.now(UTC))
    gc.collect()
    gc.freeze()


def run_server(settings: Settings, *, console: Console, mounts: Sequence[BaseRoute] = ()) -> None:
    """Serve the app in this process until interrupted, printing where."""
    app = create_app(settings, mounts=mounts)
    _warm_and_freeze()
    url = f"http://{settings.server.host}:{settings.server.port}"
    console.print(f"tokenops serving ledger [bold]{settings.ledger}[/bold] at [bold cyan]{url}/[/bold cyan]")
    uvicorn.run(app, host=settings.server.host, port=settings.server.port, log_level="warning", access_log=False)


def _counted_policies(settings: Settings) -> list[str]:
    """Guard policies that keep counters (budgets, quotas, rate limits, iteration caps), from config and admin store."""
    sets = [settings.guard]
    try:
        stored = FilePolicyStore(settings.data_dir / "policies.json").load()
    except PolicyStoreError:
        stored = None  # the server reports an unreadable store when it starts
    if stored is not None:
        sets.append(stored.policies)
    names: list[str] = []
    for policies in sets:
        names += [f"task budget {b.name!r}" for b in policies.task_budgets]
        names += [f"quota {q.name!r}" for q in policies.quotas]
        names += [f"rate limit {r.name!r}" for r in policies.rate_limits]
        names += [f"iteration cap on workflow {c.workflow!r}" for c in policies.iteration_caps]
    return list(dict.fromkeys(names))


def workers_refusal(settings: Settings, workers: int, *, allow_local_counters: bool = False) -> str | None:
    """Why `workers` processes cannot share this configuration safely (None: they can).

    Workers share only what lives outside the process: a DuckDB file admits one writer process,
    and in-process guard counters would let every worker spend each budget in full.
    """
    if workers <= 1:
        return None
    ledger = str(settings.ledger)
    if ledger.startswith("chdb:"):
        return (
            f"--workers {workers} needs a ledger every worker process can write, but {ledger!r} is an embedded "
            "ClickHouse engine (one process per data directory). Use a clickhouse:// server or a postgresql:// "
            "ledger, or run one worker."
        )
    if not is_server_ledger(ledger):
        path = ledger.removeprefix("duckdb:")
        return (
            f"--workers {workers} needs a ledger every worker process can write, but the DuckDB file {path!r} allows "
            "one writer process. Move it to PostgreSQL (tokenops migrate --from duckdb:"
            f"{path} --to postgresql://USER@HOST/DB) and set `ledger` to that URL, or run one worker."
        )
    counted = _counted_policies(settings)
    if counted and settings.guard_backend.redis_url is None and not allow_local_counters:
        shown = ", ".join(counted[:5]) + (f" and {len(counted) - 5} more" if len(counted) > 5 else "")
        return (
            f"--workers {workers} with in-process guard counters would count {shown} separately in each worker, "
            f"so each could spend up to {workers} times its limit. Set [guard_backend] redis_url = "
            '"redis://HOST:6379/0" so the workers share them, or pass --allow-local-counters to accept per-worker '
            "counting."
        )
    return None


def _prepare_shared_state(settings: Settings) -> None:
    """Create what the workers share once, before they start, so they never race to create it.

    The ledger is migrated (and proven reachable), the session secret written, and the key and
    user databases created.
    """
    open_ledger(settings.ledger).close()
    load_secret(settings.data_dir)
    key_store(settings)
    user_store(settings)


class _NamesWorker:
    """Adds `X-Tokenops-Worker: <pid>` to every HTTP response, so callers and tests can tell workers apart."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.header = (WORKER_HEADER, str(os.getpid()).encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def tagged(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), self.header]
            await send(message)

        await self.app(scope, receive, tagged)


def worker_app() -> ASGIApp:
    """uvicorn's app factory in each worker process: the app for the settings the parent passed down."""
    settings = Settings.model_validate_json(os.environ[_SETTINGS_ENV])
    app = create_app(settings)
    _warm_and_freeze()
    return _NamesWorker(app)


def run_workers(settings: Settings, workers: int, *, console: Console) -> None:
    """Serve with `workers` processes sharing the listening port until interrupted.

    Call `workers_refusal` and `_prepare_shared_state` first.
    """
    os.environ[_SETTINGS_ENV] = settings.model_dump_json()
    url = f"http://{settings.server.host}:{settings.server.port}"
    console.print(
        f"tokenops serving ledger [bold]{settings.ledger}[/bold] at [bold cyan]{url}/[/bold cyan] "
        f"with {workers} worker processes"
    )
    uvicorn.run(
        "tokenops.cli.serve:worker_app",
        factory=True,
        workers=workers,
        host=settings.server.host,
        port=settings.server.port,
        log_level="warning",
        access_log=False,
    )


def serve(
    config: ConfigOption = None,
    ledger: LedgerOption = None,
    host: Annotated[str | None, typer.Option(help="Interface to bind.")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port.")] = None,
    workers: Annotated[
        int, typer.Option(min=1, help="Worker processes sharing the port (needs a PostgreSQL or ClickHouse ledger).")
    ] = 1,
    allow_local_counters: Annotated[
        bool,
        typer.Option(help="With --workers > 1, accept guard counters kept per worker instead of in Redis."),
    ] = False,
) -> None:
    """Serve the API (and gateway, dashboard) on an existing ledger."""
    server: dict[str, object] = {}
    if host:
        server["host"] = host
    if port:
        server["port"] = port
    settings = settings_from(config, ledger=ledger)
    if server:
        settings = settings.model_copy(update={"server": settings.server.model_copy(update=server)})
    refusal = workers_refusal(settings, workers, allow_local_counters=allow_local_counters)
    if refusal is not None:
        raise fail(refusal)
    if workers == 1:
        run_server(settings, console=Console())
        return
    import httpx  # imported on use: only the workers' shared state can raise its errors here
    import psycopg  # imported on use, as open_ledger does: it loads slowly

    try:
        _prepare_shared_state(settings)
    except (TokenopsError, OSError, RuntimeError, ValueError, psycopg.Error, httpx.HTTPError) as exc:
        raise fail(f"cannot open the ledger {settings.ledger!r} for the workers: {exc}") from exc
    run_workers(settings, workers, console=Console())
