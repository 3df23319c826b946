"""`tokenops import toggl`: Toggl Track "Detailed report" CSV exports -> time entries.

The export's header (Reports > Detailed > Export > Download as CSV) is
`User,Email,Client,Project,Task,Description,Billable,Start date,Start time,End date,End time,
Duration,Tags,Amount (USD)`; dates are YYYY-MM-DD, times HH:MM:SS in the exporting user's zone,
Duration as the profile's duration format (hh:mm:ss, h:mm or decimal). Clockify's detailed
export has the same shape under other names, so `DetailedExport` reads both (`clockify.py`).

The exports carry no entry id: an entry's id is a hash of the values that identify it as
written (person, start date and time, duration, project, task, description), so re-importing a
file, or an overlapping one, never double counts hours.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, tzinfo
from decimal import Decimal
from functools import partial
from pathlib import Path

from tokenops.events import TimeEntry
from tokenops.ingest._rows import Batch, stable_id
from tokenops.ingest._time import (
    BadValue,
    Columns,
    DateOrder,
    Field,
    TimeSettings,
    WorkflowMap,
    column_values,
    date_order,
    failed,
    local_instant,
    parse_clock,
    parse_date,
    parse_hours,
    person_key,
    read_csv,
    split_tags,
    within_ledger,
)

FIELDS = (
    Field("user"),
    Field("email"),
    Field("client"),
    Field("project"),
    Field("task"),
    Field("description"),
    Field("tags"),
    Field("start_date", required=True),
    Field("start_time", required=True),
    Field("end_date"),
    Field("end_time"),
    Field("duration"),  # Toggl
    Field("duration_decimal"),  # Clockify "Duration (decimal)"
    Field("duration_h"),  # Clockify "Duration (h)"
)
"""Columns of both detailed exports, by header key ("Start date" and "Start Date" are `start_date`)."""

NO_PROJECT = "(no project)"


@dataclass(frozen=True, slots=True)
class Context:
    """How one file is read: settings resolved once per file."""

    zone: tzinfo
    """Zone of the export's local times."""
    workflows: WorkflowMap
    """Project/task/tags -> workflow rules."""
    order: DateOrder | None
    """Day/month order of the file's numeric dates, when known."""


def context(path: Path, settings: TimeSettings, date_columns: tuple[str, ...]) -> Context:
    """Resolve the zone, the mapping file and the file's date order (BadValue if the settings are wrong)."""
    zone = settings.zone()
    workflows = WorkflowMap.load(settings.map) if settings.map is not None else WorkflowMap()
    order = settings.date_order or date_order(column_values(path, date_columns))
    return Context(zone, workflows, order)


class DetailedExport:
    """A time tracker's detailed CSV export: one time entry per row."""

    patterns: tuple[str, ...] = ("*.csv", "*.csv.gz")

    def __init__(
        self, name: str, description: str, durations: tuple[str, ...], settings: TimeSettings | None = None
    ) -> None:
        self.name = name
        self.description = description
        self.durations = durations
        """Duration columns tried in order; when all are empty the end date/time gives it."""
        self.settings = settings
        """Fixed settings (tests, Python callers); None reads `TOKENOPS_INGEST__TIME__*` per import."""

    def read(self, path: Path) -> Iterator[Batch]:
        """Stream the export's entries; a wrong zone, mapping or date order rejects the file at line 1."""
        try:
            ctx = context(path, self.settings or TimeSettings.from_env(), ("start_date", "end_date"))
        except BadValue as exc:
            yield failed(path, str(exc))
            return
        yield from read_csv(path, FIELDS, partial(self.entry, ctx))

    def entry(self, ctx: Context, cols: Columns, row: Mapping[str, str]) -> TimeEntry:
        """One row as a time entry."""
        person = cols.get(row, "email") or cols.get(row, "user")
        if person is None:
            raise BadValue(f"{cols.label('email')} and {cols.label('user')} are both empty; who tracked this time?")
        raw_day, raw_clock = cols.need(row, "start_date"), cols.need(row, "start_time")
        start = local_instant(
            parse_date(raw_day, cols.label("start_date"), ctx.order),
            parse_clock(raw_clock, cols.label("start_time")),
            ctx.zone,
        )
        raw_hours, hours = self.hours(ctx, cols, row, start)
        project, task, client, description = (cols.get(row, f) for f in ("project", "task", "client", "description"))
        tags = split_tags(cols.get(row, "tags"))
        activity = " / ".join(p for p in (project, task) if p) or description or NO_PROJECT
        fields = {"project": project, "task": task, "client": client, "description": description, "activity": activity}
        workflow, tool = ctx.workflows.resolve({k: v or "" for k, v in fields.items()}, tags)
        key = person_key(person)
        entry_id = stable_id(self.name, key, raw_day, raw_clock, raw_hours, project, task, description)
        hours = within_ledger(hours, repr(raw_hours))
        return TimeEntry(entry_id, key, activity, start, hours, tool=tool, workflow=workflow)

    def hours(self, ctx: Context, cols: Columns, row: Mapping[str, str], start: datetime) -> tuple[str, Decimal]:
        """(duration as written, hours): a duration column, else end - start."""
        for name in self.durations:
            if (text := cols.get(row, name)) is not None:
                return text, parse_hours(text, cols.label(name))
        end_day, end_clock = cols.get(row, "end_date"), cols.get(row, "end_time")
        if end_clock is None:
            names = ", ".join(cols.label(n) for n in (*self.durations, "end_time"))
            raise BadValue(f"no duration: {names} are all empty")
        end = local_instant(
            parse_date(end_day, cols.label("end_date"), ctx.order) if end_day else start.astimezone(ctx.zone).date(),
            parse_clock(end_clock, cols.label("end_time")),
            ctx.zone,
        )
        if end < start:
            raise BadValue(f"ends ({end_day or ''} {end_clock}) before it starts; check the end date")
        return f"{end_day} {end_clock}", Decimal(int((end - start).total_seconds())) / 3600


IMPORTER = DetailedExport(
    "toggl",
    "Toggl Track detailed report CSV (time entries; TOKENOPS_INGEST__TIME__* for zone and workflow map)",
    durations=("duration",),
)
