"""`tokenops report forecast | whatif | recommendations`: where spend is heading and what would cut it."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated

import typer
from rich.console import Console

from tokenops.analytics.forecast import month_end
from tokenops.analytics.recommend import auto_hit_rates, recommendations
from tokenops.analytics.spend import DIMENSIONS
from tokenops.analytics.whatif import ModelMap, Scenario, default_window, replay
from tokenops.cli.common import (
    ConfigOption,
    LedgerOption,
    SinceOption,
    TeamOption,
    UntilOption,
    WorkflowOption,
    fail,
    make_filters,
    querying,
    reading,
    settings_from,
    utc,
)
from tokenops.cli.output import Format, FormatOption, emit, rows_table
from tokenops.pricing import PriceOverride

AsOfOption = Annotated[
    datetime | None, typer.Option("--as-of", help="Known spend ends here (default: end of the last day with calls).")
]


def forecast_command(
    by: Annotated[str, typer.Option(help=f"One of {', '.join(DIMENSIONS)}.")] = "team",
    as_of: AsOfOption = None,
    level: Annotated[float, typer.Option(help="Interval coverage, e.g. 0.9.")] = 0.9,
    team: TeamOption = None,
    workflow: WorkflowOption = None,
    fmt: FormatOption = Format.table,
    config: ConfigOption = None,
    ledger: LedgerOption = None,
) -> None:
    """Month-end spend per team (or workflow ...) with an interval; says when history is too short."""
    with querying(settings_from(config, ledger=ledger)) as store:
        found = month_end(store, by, as_of=utc(as_of), filters=make_filters(team=team, workflow=workflow), level=level)
    rows = [{by: f.key, **{k: v for k, v in dataclasses.asdict(f).items() if k != "key"}} for f in found]
    title = f"month-end forecast by {by}" + (f" for {found[0].month:%B %Y}" if found else "")
    emit(rows_table(rows), fmt, title=title)


def _pair(text: str, option: str, example: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip() or not value.strip():
        raise fail(f"{option} {text!r} is not KEY=VALUE, e.g. {option} {example}")
    return key.strip(), value.strip()


def _mapping(text: str) -> ModelMap:
    """`workflow=model`, `workflow:from_model=model`, the model optionally as `provider/model`."""
    left, right = _pair(text, "--map", "support_qa=gpt-4o-mini")
    workflow, _, from_model = left.partition(":")
    provider, _, model = right.rpartition("/")
    return ModelMap(workflow, model, provider or None, from_model or None)


def _scenario(maps: list[str], cache: list[str], cap: list[str], discount: list[str]) -> tuple[Scenario, list[str]]:
    """The scenario of the options, and the workflows whose cache hit rate is `auto`."""
    hit: dict[str, float] = {}
    auto: list[str] = []
    for text in cache:
        workflow, value = _pair(text, "--cache", "coding_agent=0.6")
        try:
            if value == "auto":
                auto.append(workflow)
            else:
                hit[workflow] = float(value)
        except ValueError as exc:
            raise fail(f"--cache {text!r}: give a share between 0 and 1 or 'auto'") from exc
    if "*" in auto:
        raise fail("--cache '*=auto': 'auto' needs a workflow name")
    caps: dict[str, int] = {}
    for text in cap:
        workflow, value = _pair(text, "--cap", "campaign_content=2000")
        if not value.isdigit() or int(value) <= 0:
            raise fail(f"--cap {text!r}: give a positive whole number of output tokens")
        caps[workflow] = int(value)
    overrides: list[PriceOverride] = []
    for text in discount:
        pattern, value = _pair(text, "--discount", "'claude-*=0.2'")
        try:
            overrides.append(PriceOverride(model=pattern, discount=Decimal(value), name=f"what-if {pattern}"))
        except (ValueError, InvalidOperation) as exc:
            raise fail(f"--discount {text!r}: give a share between 0 and 1 (0.2 = 20% off)") from exc
    return Scenario(tuple(_mapping(m) for m in maps), hit, caps, tuple(overrides)), auto


def whatif_command(
    map_: Annotated[
        list[str] | None,
        typer.Option("--map", help="workflow=model, workflow:from_model=model or workflow=provider/model."),
    ] = None,
    cache: Annotated[list[str] | None, typer.Option(help="workflow=hit rate (0..1) or workflow=auto.")] = None,
    cap: Annotated[list[str] | None, typer.Option(help="workflow=max output tokens ('*' for all).")] = None,
    discount: Annotated[list[str] | None, typer.Option(help="model-glob=share off the list price.")] = None,
    team: TeamOption = None,
    workflow: WorkflowOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    fmt: FormatOption = Format.table,
    config: ConfigOption = None,
    ledger: LedgerOption = None,
) -> None:
    """Replay a period (default: the last 30 days) under another policy; saving per workflow, exact."""
    scenario, auto = _scenario(map_ or [], cache or [], cap or [], discount or [])
    settings = settings_from(config, ledger=ledger)
    with querying(settings) as store:
        filters = default_window(store, make_filters(since=since, until=until, team=team, workflow=workflow))
        shares, notes = auto_hit_rates(store, auto, filters) if auto else ({}, ())
        scenario = dataclasses.replace(scenario, cache_hit_rate={**scenario.cache_hit_rate, **shares})
        result = replay(store, scenario, filters=filters, overrides=settings.pricing.overrides)
    rows: list[dict[str, object]] = []
    for r in result.rows:
        q = r.quality
        rows.append(
            {
                "workflow": r.workflow,
                "events": r.events,
                "baseline_cost": r.baseline_cost,
                "scenario_cost": r.scenario_cost,
                "saving": r.saving,
                "unpriced_events": r.unpriced_events,
                "scenario_unpriced_events": r.scenario_unpriced_events,
                "clipped_calls": r.clipped_calls,
                "success_before": None if q is None else round(q.success_before, 4),
                "success_after": None if q is None else round(q.success_after, 4),
            }
        )
    assert filters.start is not None and filters.end is not None
    emit(
        rows_table(rows),
        fmt,
        title=f"what-if {filters.start:%Y-%m-%d}..{filters.end:%Y-%m-%d}: saving ${result.saving:,.2f}",
    )
    if fmt is Format.table:
        for note in (*notes, *result.notes):
            Console(stderr=True).print(f"note: {note}", highlight=False)


def recommendations_command(
    as_of: AsOfOption = None,
    team: TeamOption = None,
    fmt: FormatOption = Format.table,
    config: ConfigOption = None,
    ledger: LedgerOption = None,
) -> None:
    """Savings opportunities of the last 30 days, biggest first, each with its evidence."""
    settings = settings_from(config, ledger=ledger)
    with reading(settings) as store:
        found = recommendations(
            store, as_of=utc(as_of), filters=make_filters(team=team), overrides=settings.pricing.overrides
        )
    rows = [dataclasses.asdict(r) for r in found]
    emit(rows_table(rows), fmt, title="savings opportunities ($ per month)")


def register(app: typer.Typer) -> None:
    """Add the commands to `tokenops report`."""
    app.command("forecast")(forecast_command)
    app.command("whatif")(whatif_command)
    app.command("recommendations")(recommendations_command)
