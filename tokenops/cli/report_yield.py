"""`tokenops report yield|adoption|maturity`: what the spend buys, who uses it, and how far along we are."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Annotated

import pyarrow as pa
import typer
from rich.console import Console

from tokenops.analytics.adoption import adoption, adoption_table
from tokenops.analytics.did import YIELD_BY, Design
from tokenops.analytics.maturity import checks_table, maturity
from tokenops.analytics.yield_ import GroupYield, NoEstimate, YieldReport, ai_yield, yield_dict, yield_table
from tokenops.cli.common import (
    ConfigOption,
    LedgerOption,
    SinceOption,
    TeamOption,
    UntilOption,
    make_filters,
    querying,
    settings_from,
)
from tokenops.cli.output import Format, FormatOption, emit, emit_json


def yield_(
    by: Annotated[str, typer.Option(help=f"Group by: {', '.join(YIELD_BY)}.")] = "all",
    baseline_end: Annotated[
        datetime | None,
        typer.Option(formats=["%Y-%m-%d"], help="First day after the baseline (default: first AI use)."),
    ] = None,
    end: Annotated[
        datetime | None,
        typer.Option(formats=["%Y-%m-%d"], help="First day after the period (default: after the last time entry)."),
    ] = None,
    resamples: Annotated[int, typer.Option(min=1, max=100_000, help="Bootstrap resamples.")] = 1000,
    confidence: Annotated[float, typer.Option(min=0.5, max=0.999, help="Interval coverage.")] = 0.95,
    seed: Annotated[int, typer.Option(help="Bootstrap seed.")] = 0,
    fmt: FormatOption = Format.table,
    config: ConfigOption = None,
    ledger: LedgerOption = None,
) -> None:
    """Hours AI saved (adopters vs non-adopters), their value, and AI cost: yield ratio, ROI, cost per hour saved."""
    settings = settings_from(config, ledger=ledger)
    design = Design(
        baseline_end=None if baseline_end is None else baseline_end.date(),
        end=None if end is None else end.date(),
        resamples=resamples,
        confidence=confidence,
        seed=seed,
    )
    with querying(settings) as store:
        report = ai_yield(store, by, design)
    if fmt is Format.json:
        emit_json(yield_dict(report))
        return
    if fmt is Format.csv:
        emit(yield_table(report), fmt)
        return
    title = f"AI yield by {by}, {report.confidence:.0%} intervals from {report.resamples:,} resamples"
    emit(_compact(report), fmt, title=title)
    console = Console()
    for note in report.notes:
        console.print(note, style="dim", markup=False, highlight=False)


def _compact(report: YieldReport) -> pa.Table:
    """Estimates with their intervals folded into one cell each, so the table fits a terminal."""
    lines: list[dict[str, str]] = []
    for row in report.rows:
        if isinstance(row, NoEstimate):
            lines.append({"group": row.group, "cost $": f"{row.cost:,.2f}", "note": f"insufficient data: {row.reason}"})
            continue
        lines.append(
            {
                "group": row.group,
                "hours saved": f"{row.hours_saved:,.1f} ({row.hours_saved_low:,.1f}-{row.hours_saved_high:,.1f})",
                "naive": f"{row.naive_hours_saved:,.1f}",
                "value $": f"{row.value:,.0f}",
                "cost $": f"{row.cost:,.2f}",
                "yield": _ratio(row),
                "ROI %": "" if row.roi_pct is None else f"{row.roi_pct:,.0f}",
                "$/hour saved": "" if row.cost_per_hour_saved is None else f"{row.cost_per_hour_saved:,.2f}",
            }
        )
    names = ["group", "hours saved", "naive", "value $", "cost $", "yield", "ROI %", "$/hour saved", "note"]
    return pa.Table.from_pylist(lines, schema=pa.schema([(n, pa.string()) for n in names]))


def _ratio(row: GroupYield) -> str:
    if row.ratio is None or row.ratio_low is None or row.ratio_high is None:
        return ""
    return f"{row.ratio:,.1f} ({row.ratio_low:,.1f}-{row.ratio_high:,.1f})"


def adoption_(
    team: TeamOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    fmt: FormatOption = Format.table,
    config: ConfigOption = None,
    ledger: LedgerOption = None,
) -> None:
    """How AI use is spread across people: top-5 share, people without use, Gini; organisation then teams."""
    with querying(settings_from(config, ledger=ledger)) as store:
        rows = adoption(store, make_filters(since=since, until=until, team=team))
    if fmt is Format.json:
        emit_json([dataclasses.asdict(r) for r in rows])
        return
    emit(adoption_table(rows), fmt, title="AI adoption (top share: the 5 heaviest users)")


def maturity_(
    since: SinceOption = None,
    until: UntilOption = None,
    fmt: FormatOption = Format.table,
    config: ConfigOption = None,
    ledger: LedgerOption = None,
) -> None:
    """The maturity rung reached (Blind .. Optimized), every check, and what the next rung needs."""
    settings = settings_from(config, ledger=ledger)
    with querying(settings) as store:
        result = maturity(store, make_filters(since=since, until=until), settings.guard)
    if fmt is Format.json:
        emit_json(dataclasses.asdict(result))
        return
    emit(checks_table(result), fmt, title=f"maturity: {result.level}")
    if fmt is Format.table and result.next_rung is not None:
        console = Console()
        console.print(f"To reach {result.next_rung}:", markup=False, highlight=False)
        for todo in result.missing:
            console.print(f"  - {todo}", markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    """Add the commands to `tokenops report`."""
    app.command("yield")(yield_)
    app.command("adoption")(adoption_)
    app.command("maturity")(maturity_)
