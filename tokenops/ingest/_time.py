"""What the people, time and outcome CSV importers share: headers, strict values, local time, workflows.

Time-tracking exports name things the way people do ("Support / Tickets", a `copilot` tag), in
the exporter's own date format and local time zone. This module reads such values strictly
(a bad one becomes the row's `RowError` reason via `BadValue`), turns local times into UTC, and
maps project/task/tags to a tokenops workflow with the rules of a mapping file.

Settings come from `TOKENOPS_INGEST__TIME__*` variables (the names a future `[ingest.time]`
section of tokenops.toml would take), read when an import starts, never at import time.
"""

from __future__ import annotations

import csv
import os
import re
import tomllib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, tzinfo
from decimal import Decimal, InvalidOperation
from fnmatch import fnmatchcase
from functools import lru_cache
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from tokenops.ingest._rows import MAX_MONEY, Batch, Record, RowError, csv_rows, open_text, too_costly

DateOrder = Literal["dmy", "mdy"]
ENV_PREFIX = "TOKENOPS_INGEST__TIME__"
BATCH_ROWS = 5_000


class BadValue(ValueError):
    """A value a row cannot be read with; its message is the row's rejection reason."""


# --- settings and the workflow mapping ----------------------------------------------------------


class TimeSettings(BaseModel):
    """`TOKENOPS_INGEST__TIME__{MAP,TIMEZONE,DATE_ORDER}`: how time-tracking exports are read."""

    model_config = ConfigDict(extra="forbid")

    map: Path | None = None
    """TOML file of rules mapping project/task/tags to workflows (and AI tools)."""
    timezone: str = "UTC"
    """IANA zone the exports' local times are in."""
    date_order: DateOrder | None = None
    """Day/month order of numeric dates; None: inferred per file, ambiguous dates rejected."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> TimeSettings:
        """Settings from the environment (unset variables keep their defaults); BadValue if one is wrong."""
        env = os.environ if environ is None else environ
        values = {name: env[ENV_PREFIX + name.upper()] for name in cls.model_fields if ENV_PREFIX + name.upper() in env}
        try:
            return cls.model_validate({k: v.strip() or None for k, v in values.items()})
        except ValidationError as exc:
            first = exc.errors()[0]
            name = ENV_PREFIX + str(first["loc"][0]).upper()
            raise BadValue(f"{name} is {values[str(first['loc'][0])]!r}: {first['msg']}") from None

    def zone(self) -> tzinfo:
        """The configured zone; BadValue if it is not an IANA name."""
        try:
            return ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise BadValue(
                f"{ENV_PREFIX}TIMEZONE is {self.timezone!r}, not an IANA time zone; use e.g. 'Europe/Berlin' or 'UTC'"
            ) from None


class _RuleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    project: str | None = None
    task: str | None = None
    client: str | None = None
    description: str | None = None
    activity: str | None = None
    tag: str | None = None
    workflow: str | None = None
    tool: str | None = None

    @model_validator(mode="after")
    def _complete(self) -> _RuleIn:
        if not any(getattr(self, f) for f in MATCH_FIELDS):
            raise ValueError(f"a rule needs at least one of {', '.join(MATCH_FIELDS)} to match on")
        if not (self.workflow or self.tool):
            raise ValueError("a rule needs a workflow, a tool, or both")
        return self


class _MapFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rule: list[_RuleIn]


MATCH_FIELDS = ("project", "task", "client", "description", "activity", "tag")


@dataclass(frozen=True, slots=True)
class Rule:
    """Glob patterns (case-insensitive) that must all match, and what a match sets."""

    patterns: tuple[tuple[str, str], ...]
    """(field, lower-cased glob) pairs; `tag` matches when any of the entry's tags does."""
    workflow: str | None
    """Workflow of matching entries."""
    tool: str | None
    """AI tool of matching entries."""

    def matches(self, fields: Mapping[str, str], tags: Sequence[str]) -> bool:
        """All patterns match the entry."""
        for name, glob in self.patterns:
            if name == "tag":
                if not any(fnmatchcase(t.lower(), glob) for t in tags):
                    return False
            elif not fnmatchcase(fields.get(name, "").lower(), glob):
                return False
        return True


@dataclass(frozen=True, slots=True)
class WorkflowMap:
    """Ordered rules: the first matching rule with a workflow sets it, likewise for the tool."""

    rules: tuple[Rule, ...] = ()
    """Rules in file order."""
    _seen: dict[tuple[object, ...], tuple[str | None, str | None]] = field(
        default_factory=dict, compare=False, hash=False, repr=False
    )

    @classmethod
    def load(cls, path: Path) -> WorkflowMap:
        """Read a mapping file; BadValue naming the file and the bad rule."""
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
            parsed = _MapFile.model_validate(data)
        except OSError as exc:
            raise BadValue(f"cannot read the workflow mapping {str(path)!r}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise BadValue(f"workflow mapping {str(path)!r} is not valid TOML: {exc}") from None
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise BadValue(f"workflow mapping {str(path)!r}: {where}: {first['msg']}") from None
        rules = tuple(
            Rule(
                tuple((f, p.lower()) for f in MATCH_FIELDS if (p := getattr(r, f)) is not None),
                r.workflow,
                r.tool,
            )
            for r in parsed.rule
        )
        return cls(rules)

    def resolve(self, fields: Mapping[str, str], tags: Sequence[str] = ()) -> tuple[str | None, str | None]:
        """(workflow, tool) for an entry; None where no rule says (remembered: exports repeat projects)."""
        key = (*sorted(fields.items()), tags)
        if (known := self._seen.get(key)) is not None:
            return known
        workflow = tool = None
        for rule in self.rules:
            if (workflow is None and rule.workflow) or (tool is None and rule.tool):
                if rule.matches(fields, tags):
                    workflow = workflow or rule.workflow
                    tool = tool or rule.tool
        if len(self._seen) < 100_000:
            self._seen[key] = (workflow, tool)
        return workflow, tool


# --- strict values -----------------------------------------------------------------------------

_DATE = re.compile(r"(\d{1,4})([./-])(\d{1,2})\2(\d{1,4})")
_CLOCK = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2}))?\s*([AaPp][Mm])?")
_HMS = re.compile(r"(\d+):([0-5]?\d)(?::([0-5]?\d))?")
_MONEY = re.compile(r"\$?\d+(\.\d+)?")


@lru_cache(maxsize=4096)  # exports repeat the same days, times and durations
def parse_date(text: str, label: str, order: DateOrder | None = None) -> date:
    """A date as exports write it: YYYY-MM-DD, or DD/MM/YYYY vs MM/DD/YYYY told apart by `order`."""
    match = _DATE.fullmatch(text.strip())
    if not match or (len(match[1]) != 4 and len(match[4]) != 4):
        raise BadValue(f"{label} is {text!r}, expected a date such as 2026-03-31, 31/03/2026 or 03/31/2026")
    a, b, c = int(match[1]), int(match[3]), int(match[4])
    if len(match[1]) == 4:
        y, m, d, shape = a, b, c, "year/month/day"
    else:
        if order is None:
            if a <= 12 and b <= 12 and a != b:
                raise BadValue(
                    f"{label} is {text!r}: day/month or month/day? Nothing in the file tells (no day above 12); "
                    f"set {ENV_PREFIX}DATE_ORDER=dmy or =mdy"
                )
            order = "dmy" if a > 12 else "mdy"
        (d, m), y = ((a, b) if order == "dmy" else (b, a)), c
        shape = "day/month/year" if order == "dmy" else "month/day/year"
    try:
        return date(y, m, d)
    except ValueError:
        raise BadValue(f"{label} is {text!r}, not a valid date read as {shape}") from None


def date_order(values: Iterator[str]) -> DateOrder | None:
    """The day/month order a file's numeric dates reveal (a part above 12), or None if they never do."""
    seen: set[DateOrder] = set()
    for text in values:
        match = _DATE.fullmatch(text.strip())
        if match and len(match[1]) != 4:
            a, b = int(match[1]), int(match[3])
            if a > 12 >= b:
                seen.add("dmy")
            elif b > 12 >= a:
                seen.add("mdy")
    return seen.pop() if len(seen) == 1 else None  # both seen: the file is inconsistent, decide per row


@lru_cache(maxsize=4096)  # exports repeat the same days, times and durations
def parse_clock(text: str, label: str) -> time:
    """A time of day: 14:05, 14:05:09, 2:05 PM, 02:05:09 pm."""
    match = _CLOCK.fullmatch(text.strip())
    hour = int(match[1]) if match else -1
    if match and match[4]:
        hour = hour % 12 + (12 if match[4].lower() == "pm" else 0) if 1 <= hour <= 12 else -1
    if not match or not 0 <= hour <= 23 or int(match[2]) > 59 or int(match[3] or 0) > 59:
        raise BadValue(f"{label} is {text!r}, expected a time such as 14:30, 14:30:00 or 2:30 PM")
    return time(hour, int(match[2]), int(match[3] or 0))


@lru_cache(maxsize=4096)  # exports repeat the same days, times and durations
def parse_hours(text: str, label: str) -> Decimal:
    """A duration in hours: h:mm:ss, h:mm, or decimal hours (1.5 or 1,5)."""
    value = text.strip()
    if match := _HMS.fullmatch(value):
        return Decimal(match[1]) + Decimal(match[2]) / 60 + Decimal(match[3] or 0) / 3600
    try:
        hours = Decimal(value.replace(",", ".") if value.count(",") == 1 and "." not in value else value)
    except InvalidOperation:
        hours = Decimal("NaN")
    if not hours.is_finite() or hours < 0:
        raise BadValue(f"{label} is {text!r}, expected a duration such as 1:30:00, 1:30 or 1.5 (hours)")
    return hours


MAX_HOURS = Decimal("999999.999999")
"""The longest time entry the ledger holds (DECIMAL(12,6) hours, ~114 years): a longer one is a bad row."""


def within_ledger(hours: Decimal, written: str) -> Decimal:
    """`hours` if the ledger can hold it; `written` is the duration as the row gives it, for the error."""
    if hours > MAX_HOURS:
        raise BadValue(f"a duration of {written} is {hours:.0f} hours, more than the ledger holds ({MAX_HOURS:f})")
    return hours


def parse_money(text: str, label: str) -> Decimal:
    """A non-negative USD amount: 85, 85.50 or $85.50 (no thousands separators)."""
    value = text.strip()
    if value.startswith("-"):
        raise BadValue(f"{label} is {text!r}; a cost cannot be negative")
    if not _MONEY.fullmatch(value):
        raise BadValue(f"{label} is {text!r}, expected an amount in USD such as 85.50 (use '.' for decimals)")
    amount = Decimal(value.removeprefix("$"))
    if amount > MAX_MONEY:
        raise BadValue(too_costly(label, amount))
    return amount


def parse_instant(text: str, label: str, zone: tzinfo = UTC) -> datetime:
    """An ISO 8601 date-time; one without an offset is in `zone`. Returned in UTC."""
    try:
        ts = datetime.fromisoformat(text.strip())
    except ValueError:
        raise BadValue(f"{label} is {text!r}, expected an ISO 8601 time such as 2026-03-31T14:30:00Z") from None
    return (ts if ts.tzinfo else ts.replace(tzinfo=zone)).astimezone(UTC)


@lru_cache(maxsize=4096)  # exports repeat the same days, times and durations
def local_instant(day: date, clock: time, zone: tzinfo) -> datetime:
    """A wall-clock time in `zone` as UTC (in a DST overlap, the earlier of the two)."""
    return datetime.combine(day, clock, tzinfo=zone).astimezone(UTC)


def person_key(text: str) -> str:
    """How a person is keyed: as written, emails lower-cased (so rosters and exports agree)."""
    value = text.strip()
    return value.lower() if "@" in value else value


def split_tags(text: str | None) -> tuple[str, ...]:
    """Toggl and Clockify write tags as one comma-separated field."""
    return tuple(t.strip() for t in (text or "").split(",") if t.strip())


# --- headers and the read loop -----------------------------------------------------------------


def header_key(name: str) -> str:
    """Header names compare case- and punctuation-insensitively: 'Start Date' == 'start_date'."""
    return re.sub(r"[^0-9a-z]+", "_", name.lower()).strip("_")


@dataclass(frozen=True, slots=True)
class Field:
    """A column an importer reads, under its own name or an alias (first present wins)."""

    name: str
    """Canonical name (also the first alias)."""
    aliases: tuple[str, ...] = ()
    """Other accepted header names, in order of preference."""
    required: bool = False
    """A file without the column is rejected."""


@dataclass(frozen=True, slots=True)
class Columns:
    """Where each field is in one file."""

    found: dict[str, str]
    """Field name -> header as written in the file."""

    def get(self, row: Mapping[str, str], name: str) -> str | None:
        """The stripped value, None when the column is absent or the cell empty."""
        header = self.found.get(name)
        value = row[header].strip() if header is not None else ""
        return value or None

    def need(self, row: Mapping[str, str], name: str) -> str:
        """A value the row cannot do without."""
        value = self.get(row, name)
        if value is None:
            raise BadValue(f"{self.label(name)} is empty; every row needs one")
        return value

    def label(self, name: str) -> str:
        """The column as the file names it, for messages."""
        return self.found.get(name, name)


def find_columns(header: Sequence[str], fields: Sequence[Field], *, strict: bool) -> Columns:
    """Match a header to fields; BadValue for a missing required column (or, if strict, an unknown one)."""
    by_key: dict[str, str] = {}
    for name in header:
        by_key.setdefault(header_key(name), name)
    found: dict[str, str] = {}
    for f in fields:
        for alias in (f.name, *f.aliases):
            if (key := header_key(alias)) in by_key:
                found[f.name] = by_key[key]
                break
        else:
            if f.required:
                accepted = ", ".join((f.name, *f.aliases))
                raise BadValue(f"no {f.name!r} column (accepted names: {accepted}); found: {', '.join(header)}")
    if strict and (unknown := [h for h in header if h not in found.values()]):
        known = ", ".join(f.name for f in fields)
        raise BadValue(f"unknown column(s) {', '.join(map(repr, unknown))}; this format has: {known}")
    return Columns(found)


Convert = Callable[[Columns, Mapping[str, str]], Record]
"""Turns one row into a record, raising BadValue for a row to reject."""


def read_csv(path: Path, fields: Sequence[Field], convert: Convert, *, strict: bool = False) -> Iterator[Batch]:
    """Stream a CSV as batches of records; every bad row a RowError, a bad header one error at line 1."""
    opened = open_text(path)
    with opened.text:
        columns: Columns | None = None
        batch = Batch()
        for item in csv_rows(opened, path):
            batch.rows += 1
            if isinstance(item, RowError):
                batch.errors.append(item)
                continue
            line, row = item
            try:
                if columns is None:
                    columns = find_columns(list(row), fields, strict=strict)
                batch.records.append(convert(columns, row))
            except BadValue as exc:
                batch.errors.append(RowError(str(path), 1 if columns is None else line, str(exc)))
                if columns is None:  # the header is unusable: no row can be read
                    batch.rows = 0
                    break
            if batch.rows >= BATCH_ROWS:
                batch.bytes_read = opened.position
                yield batch
                batch = Batch()
        batch.bytes_read = opened.position
        yield batch


def column_values(path: Path, names: Sequence[str]) -> Iterator[str]:
    """Every value of the named columns (a first pass, e.g. to learn a file's date order)."""
    wanted = {header_key(n) for n in names}
    opened = open_text(path)
    with opened.text:
        reader = csv.reader(opened.text)
        header = next(reader, [])
        at = [i for i, name in enumerate(header) if header_key(name) in wanted]
        for values in reader:
            yield from (values[i] for i in at if i < len(values))


def failed(path: Path, reason: str) -> Batch:
    """A file that could not be read at all (bad settings): one error, nothing imported."""
    return Batch(errors=[RowError(str(path), 1, reason)])
