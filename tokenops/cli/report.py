"""`tokenops report`: the ledger's numbers for people and spreadsheets."""

from __future__ import annotations

from typing import Annotated

import typer

from tokenops.analytics.spend import DIMENSIONS, spend_by, tokens_per_task
from tokenops.cli import report_anomalies, report_cfo, report_kpis, report_planning, report_yield
from tokenops.cli.common import (
    ConfigOption,
    CustomerOption,
    GrainOption,
    LedgerOption,
    ModelOption,
    SinceOption,
    TeamOption,
    UntilOption,
    UserOption,
    WorkflowOption,
    dimensions,
    make_filters,
    querying,
    settings_from,
)
from tokenops.cli.output import Format, FormatOption, emit

app = typer.Typer(help="Reports over the ledger.", no_args_is_help=True)


@app.command()
def spend(
    by: Annotated[str, typer.Option(help=f"Comma-separated dimensions: {', '.join(DIMENSIONS)}.")] = "team",
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
    """Spend, calls and tokens by dimension (unpriced calls counted apart, never as $0)."""
    settings = settings_from(config, ledger=ledger)
    filters = make_filters(
        since=since, until=until, team=team, workflow=workflow, model=model, user=user, customer=customer
    )
    with querying(settings) as store:
        table = spend_by(store, dimensions(by), grain=grain, filters=filters)
    emit(table, fmt, title=f"spend by {by}" + (f" per {grain}" if grain else ""))


@app.command()
def tasks(
    quantile: Annotated[float, typer.Option(help="Which quantile of tokens per task to show.")] = 0.95,
    team: TeamOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    fmt: FormatOption = Format.table,
    config: ConfigOption = None,
    ledger: LedgerOption = None,
) -> None:
    """Tokens and cost per task run, by workflow."""
    with querying(settings_from(config, ledger=ledger)) as store:
        table = tokens_per_task(store, quantile=quantile, filters=make_filters(since=since, until=until, team=team))
    emit(table, fmt, title="tokens per task run")


report_yield.register(app)
report_kpis.register(app)
report_planning.register(app)
report_cfo.register(app)
report_anomalies.register(app)
