"""`tokenops import timesheet`: tokenops' own documented time-entry CSV, for any other tracker.

Columns (header names case-insensitive, any order; docs/ingest-people-time-outcomes.md):

    person          required  id or email (emails are lower-cased)
    activity        required  what was done, e.g. "Support / Tickets"
    start           required  ISO 8601, e.g. 2026-03-02T09:00:00+01:00; without an offset it is in
                              TOKENOPS_INGEST__TIME__TIMEZONE (default UTC)
    duration_hours  one of    decimal hours (1.5) or h:mm[:ss]
    end             these     ISO 8601 like start; if both are given they must agree
    tool            optional  AI tool used; empty: done without AI (unless a mapping rule names one)
    workflow        optional  tokenops workflow; empty: the mapping rules decide from `activity`
    entry_id        optional  the tracker's id; without one, a hash of person, start, duration and activity

Unknown columns are refused (a misspelt `workflow` column would otherwise be dropped silently).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import tzinfo
from decimal import Decimal
from functools import partial
from pathlib import Path

from tokenops.events import TimeEntry
from tokenops.ingest._rows import Batch, stable_id
from tokenops.ingest._time import (
    BadValue,
    Columns,
    Field,
    TimeSettings,
    WorkflowMap,
    failed,
    parse_hours,
    parse_instant,
    person_key,
    read_csv,
    within_ledger,
)

FIELDS = (
    Field("person", required=True),
    Field("activity", required=True),
    Field("start", required=True),
    Field("duration_hours"),
    Field("end"),
    Field("tool"),
    Field("workflow"),
    Field("entry_id"),
)

TOLERANCE_HOURS = Decimal(1) / 60
"""How far duration_hours and end - start may disagree (rounding to the minute)."""


@dataclass(frozen=True, slots=True)
class _Context:
    zone: tzinfo
    workflows: WorkflowMap


class Timesheet:
    """The generic timesheet CSV."""

    name = "timesheet"
    description = "generic timesheet CSV: person, activity, start, duration_hours or end, tool, workflow"
    patterns: tuple[str, ...] = ("*.csv", "*.csv.gz")

    def __init__(self, settings: TimeSettings | None = None) -> None:
        self.settings = settings
        """Fixed settings (tests, Python callers); None reads `TOKENOPS_INGEST__TIME__*` per import."""

    def read(self, path: Path) -> Iterator[Batch]:
        """Stream the file's entries; a wrong zone or mapping file rejects it at line 1."""
        try:
            settings = self.settings or TimeSettings.from_env()
            ctx = _Context(
                settings.zone(), WorkflowMap.load(settings.map) if settings.map is not None else WorkflowMap()
            )
        except BadValue as exc:
            yield failed(path, str(exc))
            return
        yield from read_csv(path, FIELDS, partial(_entry, ctx), strict=True)


def _entry(ctx: _Context, cols: Columns, row: Mapping[str, str]) -> TimeEntry:
    person = person_key(cols.need(row, "person"))
    activity = cols.need(row, "activity")
    raw_start = cols.need(row, "start")
    start = parse_instant(raw_start, cols.label("start"), ctx.zone)
    raw_hours, raw_end = cols.get(row, "duration_hours"), cols.get(row, "end")
    hours = parse_hours(raw_hours, cols.label("duration_hours")) if raw_hours is not None else None
    if raw_end is not None:
        end = parse_instant(raw_end, cols.label("end"), ctx.zone)
        if end < start:
            raise BadValue(f"{cols.label('end')} {raw_end!r} is before {cols.label('start')} {raw_start!r}")
        spanned = Decimal(int((end - start).total_seconds())) / 3600
        if hours is not None and abs(hours - spanned) > TOLERANCE_HOURS:
            raise BadValue(
                f"{cols.label('duration_hours')} is {raw_hours!r} but {cols.label('end')} - {cols.label('start')} "
                f"is {spanned:.2f} hours; give one or make them agree"
            )
        hours = spanned if hours is None else hours
    if hours is None:
        raise BadValue(f"{cols.label('duration_hours')} and {cols.label('end')} are both empty; give one")
    mapped_workflow, mapped_tool = ctx.workflows.resolve({"activity": activity})
    return TimeEntry(
        entry_id=cols.get(row, "entry_id") or stable_id("timesheet", person, raw_start, raw_hours, raw_end, activity),
        person_id=person,
        activity=activity,
        start=start,
        duration_hours=within_ledger(hours, repr(raw_hours) if raw_hours is not None else f"{raw_start} to {raw_end}"),
        tool=cols.get(row, "tool") or mapped_tool,
        workflow=cols.get(row, "workflow") or mapped_workflow,
    )


IMPORTER = Timesheet()
