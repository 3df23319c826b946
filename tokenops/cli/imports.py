"""`tokenops import SOURCE FILE|DIR...`: bring in what did not pass through the gateway."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import duckdb
import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn

from tokenops.cli.common import ConfigOption, LedgerOption, fail, settings_from
from tokenops.ingest import UnknownSource, get_importer, importer_names, run_import
from tokenops.ingest.run import with_pricer
from tokenops.pricing import Pricer
from tokenops.store import DuckDBLedger, is_server_ledger, open_ledger

SHOWN_ERRORS = 50
"""Rejected rows printed; the rest are counted in the summary (and all are in --errors FILE)."""


def import_(
    source: Annotated[str, typer.Argument(help="Format of the files; `tokenops import list` shows them.")],
    paths: Annotated[list[Path] | None, typer.Argument(help="Files or directories to import.")] = None,
    errors_to: Annotated[
        Path | None, typer.Option("--errors", help="Write every rejected row (file:line: reason) here.")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    ledger: LedgerOption = None,
    config: ConfigOption = None,
) -> None:
    """Import files into the ledger. Re-importing never double counts; bad rows are named and skipped.

    Exit code: 0 all rows imported, 1 some rows rejected (the good ones are kept), 2 nothing could be read.
    """
    if source == "list":
        for name in importer_names():
            typer.echo(f"{name:20} {get_importer(name).description}")
        return
    try:
        importer = get_importer(source)
    except UnknownSource as exc:
        raise fail(str(exc)) from exc
    if not paths:
        raise fail("give at least one file or directory to import")
    settings = settings_from(config, **({"ledger": ledger} if ledger else {}))
    importer = with_pricer(importer, Pricer(settings.pricing.overrides))  # the organisation's prices apply
    path = Path(settings.ledger.removeprefix("duckdb:"))
    try:
        store = (
            open_ledger(settings.ledger)
            if is_server_ledger(settings.ledger)
            else DuckDBLedger(
                path, memory_limit=settings.duckdb.memory_limit, threads=settings.duckdb.threads, bulk_load=True
            )
        )
    except duckdb.IOException as exc:
        raise fail(f"the ledger {str(path)!r} is held by a running tokenops server; stop it or import there") from exc
    console = Console(stderr=True, soft_wrap=True)  # keep each `file:line: reason` on one line
    try:
        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
            disable=quiet,
            transient=True,
        ) as bar:
            task = bar.add_task(f"import {source}", total=None)
            report = run_import(
                importer, paths, store, progress=lambda done, total: bar.update(task, completed=done, total=total)
            )
    except FileNotFoundError as exc:
        raise fail(str(exc)) from exc
    finally:
        store.close()
    for error in report.errors[:SHOWN_ERRORS]:
        console.print(str(error), style="red", highlight=False, markup=False)
    if report.rejected > SHOWN_ERRORS:
        console.print(f"... and {report.rejected - SHOWN_ERRORS:,} more rejected rows", style="red")
    if errors_to is not None:
        errors_to.write_text("".join(f"{e}\n" for e in report.errors))
    typer.echo(report.summary())
    if report.rejected:
        raise typer.Exit(1 if report.imported or report.duplicates else 2)
