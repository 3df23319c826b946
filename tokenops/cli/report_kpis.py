"""`tokenops report kpis | outcomes | variance`: unit economics for people and spreadsheets."""

from __future__ import annotations

import dataclasses
from typing import Annotated

import pyarrow as pa
import typer

from tokenops.analytics.kpis import KPI_DIMENSIONS, kpis
from tokenops.analytics.unit_economics import OUTCOME_DIMENSIONS, cost_per_outcome, outcome_variance, variance_table
from tokenops.cli.common import (
    ConfigOption,
    CustomerOption,
    GrainOption,
    LedgerOption,
    ModelOption,
    PeriodOption,
    SinceOption,
    TeamOption,
    UntilOption,
    UserOption,
    WorkflowOption,
    dimensions,
    make_filters,
    period,
    querying,
    settings_from,
)
from tokenops.cli.output import Format, FormatOption, emit

TABLE_COLUMNS = (
    *("cost", "unpriced_events", "cost_per_completed_task", "tokens_per_task", "input_output_ratio", "cache_hit_rate"),
    *("retry_rate", "iterations_per_task", "escalation_rate", "value_per_cost"),
)


def kpis_command(
    by: Annotated[str, typer.Option(help=f"Comma-separated dimensions: {', '.join(KPI_DIMENSIONS)}.")] = "workflow",
    grain: GrainOption = None,
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
    with querying(settings) as store:
        table = kpis(store, dimensions(by), grain=grain, filters=filters)
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
    with querying(settings_from(config, ledger=ledger)) as store:
        table = cost_per_outcome(store, by, make_filters(since=since, until=until, team=team, workflow=workflow))
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
    with querying(settings) as store:
        variances, undefined = outcome_variance(store, a, b, by)
    emit(variance_table(variances, by), fmt, title=f"cost per outcome variance by {by}")
    if undefined and fmt is Format.table:
        typer.echo(f"no cost per outcome in one of the periods: {', '.join(str(k) for k in undefined)}")


def register(app: typer.Typer) -> None:
    """Add the commands to `tokenops report`."""
    app.command("kpis")(kpis_command)
    app.command("outcomes")(outcomes_command)
    app.command("variance")(variance_command)
