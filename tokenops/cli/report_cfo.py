"""`tokenops report cfo --month YYYY-MM --out report.pdf|report.html`: the month on one or two pages."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tokenops.cli.common import ConfigOption, LedgerOption, TeamOption, fail, querying, settings_from
from tokenops.pricing import Pricer
from tokenops.report import PdfError, month_bounds, month_figures, print_pdf, render_cfo
from tokenops.report.value import value_figures


def cfo(
    month: Annotated[str, typer.Option("--month", help="Calendar month (UTC), YYYY-MM.")],
    out: Annotated[Path, typer.Option("--out", help="Where to write it: a .pdf or .html file.")],
    team: TeamOption = None,
    config: ConfigOption = None,
    ledger: LedgerOption = None,
) -> None:
    """The CFO report: spend vs last month, by team, top workflows' cost per completed task, guardrail savings."""
    suffix = out.suffix.lower()
    if suffix not in (".pdf", ".html", ".htm"):
        raise fail(f"--out {str(out)!r} must end in .pdf or .html")
    try:
        month_bounds(month)
    except ValueError as exc:
        raise fail(str(exc)) from exc
    settings = settings_from(config, ledger=ledger)
    with querying(settings) as store:
        figures = month_figures(
            store, month, Pricer(settings.pricing.overrides), settings.guard.task_budgets, team=team
        )
        value = value_figures(
            store, figures.start, figures.end, team=team, policies=settings.guard, overrides=settings.pricing.overrides
        )
    html = render_cfo(figures, value)
    if suffix == ".pdf":
        try:
            print_pdf(html, out)
        except PdfError as exc:
            raise fail(str(exc)) from exc
    else:
        out.write_text(html, encoding="utf-8")
    typer.echo(f"CFO report for {month} written to {out}")


def register(app: typer.Typer) -> None:
    """Add the command to `tokenops report`."""
    app.command("cfo")(cfo)
