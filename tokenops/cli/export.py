"""`tokenops export focus`: the ledger as a FOCUS 1.2 file for chargeback in FinOps tools."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from tokenops.cli.common import ConfigOption, LedgerOption, SinceOption, UntilOption, fail, reading, settings_from, utc
from tokenops.export import UnsupportedFormat, export_focus

app = typer.Typer(help="Export the ledger in formats other tools read.", no_args_is_help=True)

_MONTH = re.compile(r"(\d{4})-(\d{2})")


@app.command()
def focus(
    out: Annotated[Path, typer.Option("--out", "-o", help="File to write: .csv, .csv.gz or .parquet.")],
    month: Annotated[str | None, typer.Option(help="Calendar month (UTC), YYYY-MM.")] = None,
    since: SinceOption = None,
    until: UntilOption = None,
    account_id: Annotated[str, typer.Option(help="FOCUS BillingAccountId of every row.")] = "tokenops",
    account_name: Annotated[str, typer.Option(help="FOCUS BillingAccountName of every row.")] = "tokenops",
    config: ConfigOption = None,
    ledger: LedgerOption = None,
) -> None:
    """Usage per day, provider, model, team, user, workflow and customer as FOCUS 1.2 rows.

    Unpriced usage is exported with cost 0, x_Unpriced=true and a ChargeDescription starting
    UNPRICED (FOCUS allows no NULL cost), and a warning here says how much of it there is.
    """
    start, end = _period(month, since, until)
    settings = settings_from(config, ledger=ledger)
    with reading(settings) as store:
        try:
            report = export_focus(store, out, start=start, end=end, account_id=account_id, account_name=account_name)
        except UnsupportedFormat as exc:
            raise fail(str(exc)) from exc
    if report.unpriced_rows:
        Console(stderr=True).print(
            f"warning: {report.unpriced_rows:,} rows ({report.unpriced_calls:,} calls, {report.unpriced_tokens:,} "
            "tokens) have no price: exported with cost 0 as a placeholder and x_Unpriced=true, not as free usage; "
            "add price overrides in tokenops.toml [pricing] and export again",
            style="yellow",
            highlight=False,
            markup=False,
        )
    typer.echo(
        f"focus: {report.rows:,} rows ({report.calls:,} calls, {report.billed.normalize():f} USD billed) "
        f"from {start:%Y-%m-%d} to {end:%Y-%m-%d} written to {report.path}"
    )


def _period(month: str | None, since: datetime | None, until: datetime | None) -> tuple[datetime, datetime]:
    """[start, end) in UTC from --month or --since/--until."""
    if month is not None:
        if since is not None or until is not None:
            raise fail("give either --month or --since/--until, not both")
        match = _MONTH.fullmatch(month)
        if match is None or not 1 <= int(match[2]) <= 12:
            raise fail(f"--month is {month!r}, expected YYYY-MM such as 2026-11")
        year, number = int(match[1]), int(match[2])
        start = datetime(year, number, 1, tzinfo=UTC)
        end = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=UTC)
        return start, end
    if since is None:
        raise fail("say which period to export: --month YYYY-MM, or --since DATE [--until DATE]")
    start, end = utc(since), utc(until or datetime.now(UTC))
    if end <= start:
        raise fail(f"--until {end:%Y-%m-%d %H:%M} is not after --since {start:%Y-%m-%d %H:%M}")
    return start, end
