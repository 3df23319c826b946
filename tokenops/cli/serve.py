"""`tokenops serve`: run the server on an existing ledger."""

from __future__ import annotations

import gc
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated

import typer
import uvicorn
from rich.console import Console
from starlette.routing import BaseRoute

from tokenops.cli.common import ConfigOption, LedgerOption, settings_from
from tokenops.config import Settings
from tokenops.events import TokenUsage
from tokenops.pricing import Pricer
from tokenops.web import create_app


def run_server(settings: Settings, *, console: Console, mounts: Sequence[BaseRoute] = ()) -> None:
    """Serve the app until interrupted, printing where."""
    app = create_app(settings, mounts=mounts)
    Pricer().price("gpt-4o-mini", TokenUsage(input_tokens=1, output_tokens=1), ts=datetime.now(UTC))
    # the price list and libraries are millions of long-lived objects: move them out of the
    # garbage collector's reach so full collections stop adding milliseconds to tail latency
    gc.collect()
    gc.freeze()
    url = f"http://{settings.server.host}:{settings.server.port}"
    console.print(f"tokenops serving ledger [bold]{settings.ledger}[/bold] at [bold cyan]{url}/[/bold cyan]")
    uvicorn.run(app, host=settings.server.host, port=settings.server.port, log_level="warning", access_log=False)


def serve(
    config: ConfigOption = None,
    ledger: LedgerOption = None,
    host: Annotated[str | None, typer.Option(help="Interface to bind.")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port.")] = None,
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
    run_server(settings, console=Console())
