"""`tokenops events`: look at individual calls in the ledger (or a running server's)."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Annotated

import httpx
import pyarrow as pa
import typer
from rich.console import Console

from tokenops.analytics.spend import Filters
from tokenops.cli.common import (
    ConfigOption,
    CustomerOption,
    LedgerOption,
    ModelOption,
    SinceOption,
    TeamOption,
    UntilOption,
    UserOption,
    WorkflowOption,
    fail,
    make_filters,
    reading,
    settings_from,
)
from tokenops.cli.output import Format, FormatOption, emit
from tokenops.config import Settings
from tokenops.store.rows import event_row

app = typer.Typer(help="Show individual model calls.", no_args_is_help=True)

COLUMNS = (
    "ts",
    "request_id",
    "model",
    "team",
    "user_id",
    "workflow",
    "task_run_id",
    "status",
    "input_tokens",
    "output_tokens",
    "cost_total",
    "price_source",
)
ServerOption = Annotated[
    str | None,
    typer.Option(help="Ask a running tokenops server (e.g. http://127.0.0.1:8787) instead of the file."),
]


def _fetch(settings: Settings, server: str | None, filters: Filters, limit: int) -> list[dict[str, object]]:
    if server:
        params: dict[str, str] = {"limit": str(limit)}
        for name in ("team", "workflow", "model", "user", "customer"):
            if (value := getattr(filters, name)) is not None:
                params[name] = value
        if filters.start is not None:
            params["start"] = filters.start.isoformat()
        if filters.end is not None:
            params["end"] = filters.end.isoformat()
        try:
            response = httpx.get(f"{server.rstrip('/')}/api/events", params=params, timeout=10)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise fail(f"Cannot read events from {server!r}: {exc}") from exc
        rows: list[dict[str, object]] = response.json()["events"]
        return rows
    where, values = filters.where()
    with reading(settings) as ledger:
        return [event_row(e) for e in ledger.events(where, values, limit=limit)]


def _shown(row: dict[str, object], column: str) -> object:
    value = row.get(column)
    if column == "cost_total":
        return "UNPRICED" if row.get("unpriced") else f"${Decimal(str(value)):.6f}"
    return value


def _table(rows: list[dict[str, object]]) -> pa.Table:
    if not rows:
        return pa.table({c: pa.array([], pa.string()) for c in COLUMNS})
    return pa.Table.from_pylist([{c: _shown(r, c) for c in COLUMNS} for r in rows])


@app.command()
def query(
    team: TeamOption = None,
    workflow: WorkflowOption = None,
    model: ModelOption = None,
    user: UserOption = None,
    customer: CustomerOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help="At most this many calls, newest first.")] = 50,
    fmt: FormatOption = Format.table,
    config: ConfigOption = None,
    ledger: LedgerOption = None,
    server: ServerOption = None,
) -> None:
    """List the calls that match the filters, newest first."""
    settings = settings_from(config, ledger=ledger)
    filters = make_filters(
        since=since, until=until, team=team, workflow=workflow, model=model, user=user, customer=customer
    )
    rows = _fetch(settings, server, filters, limit)
    emit(_table(rows) if fmt is Format.table else pa.Table.from_pylist(rows), fmt, title="model calls")


@app.command()
def tail(
    limit: Annotated[int, typer.Option("--lines", "-n", help="Show the last N calls.")] = 20,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new calls (needs --server).")] = False,
    team: TeamOption = None,
    workflow: WorkflowOption = None,
    config: ConfigOption = None,
    ledger: LedgerOption = None,
    server: ServerOption = None,
) -> None:
    """Show the latest calls; with --follow, keep watching a running server."""
    settings = settings_from(config, ledger=ledger)
    if follow and not server:
        raise fail("--follow needs --server: a running server holds the ledger file")
    filters = make_filters(team=team, workflow=workflow)
    rows = list(reversed(_fetch(settings, server, filters, limit)))
    console = Console()
    emit(_table(rows), Format.table, title="latest model calls", console=console)
    seen = {str(r["request_id"]) for r in rows}
    while follow:
        time.sleep(1.0)
        fresh = [r for r in reversed(_fetch(settings, server, filters, 200)) if str(r["request_id"]) not in seen]
        if fresh:
            seen.update(str(r["request_id"]) for r in fresh)
            emit(_table(fresh), Format.table, console=console)
