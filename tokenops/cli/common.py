"""Pieces every command shares: settings, options, filters, and reading a ledger a server may hold."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, overload

import typer
from rich.console import Console

from tokenops.analytics.spend import GRAINS, Filters
from tokenops.config import Settings, load_settings
from tokenops.errors import ConfigError
from tokenops.store import Ledger, is_server_ledger, open_ledger

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="tokenops.toml to read (default: ./tokenops.toml if present)."),
]
LedgerOption = Annotated[str | None, typer.Option("--ledger", help="Ledger file (overrides the config).")]
TeamOption = Annotated[str | None, typer.Option(help="Only this team.")]
WorkflowOption = Annotated[str | None, typer.Option(help="Only this workflow.")]
ModelOption = Annotated[str | None, typer.Option(help="Only this model.")]
UserOption = Annotated[str | None, typer.Option(help="Only this user.")]
CustomerOption = Annotated[str | None, typer.Option(help="Only this customer.")]
SinceOption = Annotated[datetime | None, typer.Option(help="From this date/time (UTC unless given).")]
UntilOption = Annotated[datetime | None, typer.Option(help="Up to (excluding) this date/time.")]
GrainOption = Annotated[str | None, typer.Option(help=f"Time bucket: {', '.join(GRAINS)}.")]
PeriodOption = Annotated[
    str, typer.Option(help="START..END, ISO dates or times (END excluded), e.g. 2026-09-01..2026-10-01.")
]


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print an error without a traceback; raise the returned Exit."""
    Console(stderr=True).print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(code)


def settings_from(config: Path | None, **overrides: object) -> Settings:
    """Load settings or exit with the config error (no traceback)."""
    try:
        return load_settings(config, **overrides)
    except ConfigError as exc:
        raise fail(str(exc)) from exc


@overload
def utc(value: datetime) -> datetime: ...
@overload
def utc(value: None) -> None: ...
@overload
def utc(value: datetime | None) -> datetime | None: ...
def utc(value: datetime | None) -> datetime | None:
    """A date/time option in UTC: one given without a zone is taken as UTC."""
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def period(text: str, name: str) -> tuple[datetime, datetime]:
    """`START..END` (a `PeriodOption` named `name`) -> two UTC datetimes; a clear error otherwise."""
    start, sep, end = text.partition("..")
    try:
        if not sep:
            raise ValueError
        first, last = (utc(datetime.fromisoformat(t.strip())) for t in (start, end))
    except ValueError as exc:
        raise fail(f"--{name} {text!r} is not START..END, e.g. 2026-09-01..2026-10-01") from exc
    if last <= first:
        raise fail(f"--{name} {text!r} ends before it starts")
    return first, last


def dimensions(by: str) -> list[str]:
    """The dimensions of a comma-separated `--by`."""
    return [d for d in by.split(",") if d]


def make_filters(
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    team: str | None = None,
    workflow: str | None = None,
    model: str | None = None,
    user: str | None = None,
    customer: str | None = None,
) -> Filters:
    """Filters from command-line options."""
    return Filters(
        start=utc(since),
        end=utc(until),
        team=team,
        workflow=workflow,
        model=model,
        user=user,
        customer=customer,
    )


@contextmanager
def reading(settings: Settings) -> Iterator[Ledger]:
    """Open the ledger for reading, with a clear message when a running server holds it."""
    if is_server_ledger(settings.ledger):  # PostgreSQL or ClickHouse: many readers are fine
        server = open_ledger(settings.ledger)
        try:
            yield server
        finally:
            server.close()
        return
    import duckdb  # imported on use: `tokenops serve` on PostgreSQL never loads it

    from tokenops.store.duckdb import DuckDBLedger

    path = Path(settings.ledger.removeprefix("duckdb:"))
    if not path.exists():
        raise fail(f"No ledger at {str(path)!r}; run `tokenops demo` or point --ledger at one")
    try:
        ledger = DuckDBLedger(path, read_only=True)
    except duckdb.IOException as exc:
        raise fail(
            f"The ledger {str(path)!r} is held by a running tokenops server; "
            f"use --server http://{settings.server.host}:{settings.server.port} to ask it instead"
        ) from exc
    try:
        yield ledger
    finally:
        ledger.close()


@contextmanager
def querying(settings: Settings) -> Iterator[Ledger]:
    """`reading`, with an analysis's ValueError (a bad --by, --grain ...) shown as an error, exit 2."""
    with reading(settings) as ledger:
        try:
            yield ledger
        except ValueError as exc:
            raise fail(str(exc)) from exc
