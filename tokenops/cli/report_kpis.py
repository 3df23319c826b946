"""`tokenops report kpis | outcomes | variance`: unit economics for people and spreadsheets."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Annotated

import pyarrow as pa
import typer

from tokenops.analytics.kpis import KPI_DIMENSIONS, kpis
from tokenops.analytics.spend import GRAINS
from tokenops.analytics.unit_economics import OUTCOME_DIMENSIONS, cost_per_outcome, outcome_variance, variance_table
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
from tokenops.cli.output import Format, emit

FormatOption = Annotated[Format, typer.Option("--format", "-f", help="table, csv or json.")]
TABLE_COLUMNS = (
    *("cost", "unpriced_events", "cost_per_completed_task", "tokens_per_task", "input_output_ratio", "cache_hit_rate"),
    *("retry_rate", "iterations_per_task", "escalation_rate", "value_per_cost"),
)
PeriodOption = Annotated[
    str, typer.Option(help="START..END, ISO dates or times (END excluded), e.g. 2026-09-01..2026-10-01.")
]


def period(text: str, name: str) -> tuple[datetime, datetime]:
    """`START..END` -> two UTC datetimes; a clear error otherwise."""
    start, sep, end = text.partition("..")
    try:
        if not sep:
            raise ValueError
        bounds = [datetime.fromisoformat(t.strip()) for t in (start, end)]
    except ValueError as exc:
        raise fail(f"--{name} {text!r} is not START..END, e.g. 2026-09-01..2026-10-01") from exc
    first, last = (b if b.tzinfo else b.replace(tzinfo=UTC) for b in bounds)
    if last <= first:
        raise fail(f"--{name} {text!r} ends before it starts")
    return first, last


def kpis_command(
    by: Annotated[str, typer.Option(help=f"Comma-separated dimensions: {', '.join(KPI_DIMENSIONS)}.")] = "workflow",
    grain: Annotated[str | None, typer.Option(help=f"Time bucket: {', '.join(GRAINS)}.")] = None,
    team: TeamOption = None,
    workflow: WorkflowOption = None,
    model: ModelOption = None,
    user: UserOption = None,
    customer: CustomerOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    fmt: FormatOption = Format.table,
    config: ConfigOption = None,
    ledger: LedgerOption = None,
) -> None:
    """TokenOps KPIs: cost per completed task, tokens, cache hits, retries, escalations, value per $."""
    settings = settings_from(config, ledger=ledger)
    filters = make_filters(
        since=since, until=until, team=team, workflow=workflow, model=model, user=user, customer=customer
    )
    with reading(settings) as store:
        try:
            table = kpis(store, [d for d in by.split(",") if d], grain=grain, filters=filters)
        except ValueError as exc:
            raise fail(str(exc)) from exc
    if fmt is Format.table:  # the headline KPIs fit a terminal; csv and json carry every column
        keys = [c for c in table.column_names if c == "period" or c in KPI_DIMENSIONS]
        table = table.select(keys + [c for c in TABLE_COLUMNS if c in table.column_names])
        for i, name in enumerate(table.column_names):
            if name.endswith("_rate"):
                shown = [None if v is None else f"{v:.1%}" for v in table.column(i).to_pylist()]
                table = table.set_column(i, name, pa.array(shown, pa.string()))
        table = table.rename_columns([c.replace("_", " ") for c in table.column_names])
    emit(table, fmt, title=f"KPIs by {by}" + (f" per {grain}" if grain else ""))


def outcomes_command(
    by: Annotated[str, typer.Option(help=f"One of {', '.join(OUTCOME_DIMENSIONS)}.")] = "workflow",
    team: TeamOption = None,
    workflow: WorkflowOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    fmt: FormatOption = Format.table,
    config: ConfigOption = None,
    ledger: LedgerOption = None,
) -> None:
    """Cost per outcome = cost per token x tokens per task x tasks per outcome."""
    settings = settings_from(config, ledger=ledger)
    with reading(settings) as store:
        try:
            table = cost_per_outcome(store, by, make_filters(since=since, until=until, team=team, workflow=workflow))
        except ValueError as exc:
            raise fail(str(exc)) from exc
    if fmt is Format.table:  # a cost per token reads as $0.0; per million tokens it is legible
        i = table.column_names.index("cost_per_token")
        shown = [None if v is None else f"{v * 1_000_000:,.4f}" for v in table.column(i).to_pylist()]
        table = table.set_column(i, "usd_per_mtok", pa.array(shown, pa.string()))
    emit(table, fmt, title=f"cost per outcome by {by}")


def variance_command(
    before: PeriodOption,
    after: PeriodOption,
    by: Annotated[str, typer.Option(help=f"One of {', '.join(OUTCOME_DIMENSIONS)}.")] = "workflow",
    team: TeamOption = None,
    workflow: WorkflowOption = None,
    fmt: FormatOption = Format.table,
    config: ConfigOption = None,
    ledger: LedgerOption = None,
) -> None:
    """Which lever moved cost per outcome from the --before period to the --after period (exact)."""
    settings = settings_from(config, ledger=ledger)
    base = make_filters(team=team, workflow=workflow)
    (a_start, a_end), (b_start, b_end) = period(before, "before"), period(after, "after")
    a = dataclasses.replace(base, start=a_start, end=a_end)
    b = dataclasses.replace(base, start=b_start, end=b_end)
    with reading(settings) as store:
        try:
            variances, undefined = outcome_variance(store, a, b, by)
        except ValueError as exc:
            raise fail(str(exc)) from exc
    emit(variance_table(variances, by), fmt, title=f"cost per outcome variance by {by}")
    if undefined and fmt is Format.table:
        typer.echo(f"no cost per outcome in one of the periods: {', '.join(str(k) for k in undefined)}")


def register(app: typer.Typer) -> None:
    """Add the commands to `tokenops report`."""
    app.command("kpis")(kpis_command)
    app.command("outcomes")(outcomes_command)
    app.command("variance")(variance_command)
