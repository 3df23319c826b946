"""`tokenops report anomalies`: spend incidents per team, workflow, model or user, optionally alerted."""

from __future__ import annotations

from typing import Annotated

import pyarrow as pa
import typer
from rich.console import Console

from tokenops.analytics.anomalies import SERIES_DIMENSIONS, Incident, IncidentWebhook, find_incidents
from tokenops.cli.common import (
    ConfigOption,
    LedgerOption,
    SinceOption,
    TeamOption,
    UntilOption,
    fail,
    make_filters,
    querying,
    settings_from,
)
from tokenops.cli.output import Format, FormatOption, emit

SCHEMA = pa.schema(
    [
        ("start", pa.timestamp("us", tz="UTC")),
        ("end", pa.timestamp("us", tz="UTC")),
        ("dimension", pa.string()),
        ("value", pa.string()),
        ("actual", pa.decimal128(38, 12)),
        ("expected", pa.decimal128(38, 12)),
        ("excess", pa.decimal128(38, 12)),
        ("ratio", pa.string()),
        ("driver", pa.string()),
        ("driver_share", pa.string()),
        ("text", pa.string()),
    ]
)


def incidents_table(incidents: list[Incident], *, with_text: bool = True) -> pa.Table:
    """One row per incident, money exact; without text, only the columns a terminal table has room for."""
    rows = [
        {
            "start": i.start,
            "end": i.end,
            "dimension": i.dimension,
            "value": i.value,
            "actual": i.actual,
            "expected": i.expected,
            "excess": i.excess,
            "ratio": None if i.ratio is None else f"{i.ratio}x",
            "driver": None if i.driver is None else ", ".join(f"{d}={v}" for d, v in i.driver.values),
            "driver_share": None if i.driver is None else f"{i.driver.share:.0%}",
            "text": i.text,
        }
        for i in incidents
    ]
    table = pa.Table.from_pylist(rows, schema=SCHEMA)
    return table if with_text else table.select(["start", "end", "value", "actual", "expected", "ratio"])


def anomalies_command(
    by: Annotated[str, typer.Option(help=f"Series to watch: {', '.join(SERIES_DIMENSIONS)}.")] = "team",
    since: SinceOption = None,
    until: UntilOption = None,
    team: TeamOption = None,
    webhook: Annotated[
        str | None, typer.Option(help="Post each incident once to this Slack-compatible webhook URL.")
    ] = None,
    fmt: FormatOption = Format.table,
    config: ConfigOption = None,
    ledger: LedgerOption = None,
) -> None:
    """Hours of spend far above their seasonal baseline, grouped into incidents, with what drove each.

    Default period: the last week of data. Each hour is judged from the weeks before it only.
    """
    settings = settings_from(config, ledger=ledger)
    window = make_filters(since=since, until=until, team=team)
    if window.start is not None and window.end is not None and window.end <= window.start:
        raise fail("--until must be after --since")
    with querying(settings) as store:
        found = find_incidents(store, by, since=window.start, until=window.end, team=window.team)
    emit(incidents_table(found, with_text=fmt is not Format.table), fmt, title=f"spend anomalies by {by}")
    if fmt is Format.table:
        for incident in found:
            Console().print(incident.text, highlight=False, soft_wrap=True)
    if webhook is not None:
        posted = IncidentWebhook(webhook).send(found)
        Console(stderr=True).print(f"posted {len(posted)} of {len(found)} incidents to the webhook", highlight=False)
        if len(posted) < len(found):
            raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add `anomalies` to `tokenops report`."""
    app.command("anomalies")(anomalies_command)
