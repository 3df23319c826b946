"""`tokenops import outcomes`: business outcomes CSV -> outcomes linked to task runs or to a person.

Outcomes are the numerators of unit economics (cost per resolved ticket, value per dollar). A
row links to the task runs that produced it, or to the person credited when no run did; a row
linked to neither is rejected. Outcomes are keyed by `outcome_id`: importing one twice, or
posting it to `POST /api/outcomes` as well, records it once.

Columns (header names case-insensitive, any order; unknown columns are refused):

    outcome_id    required  unique id of the outcome in your system
    ts            required  ISO 8601, e.g. 2026-03-02T14:05:00Z (without an offset: UTC)
    outcome_type  required  e.g. ticket_resolved, lead_qualified
    value         optional  business value in USD, e.g. 42.50 (negative for a refund)
    task_run_ids  optional  task runs that produced it, separated by ';'
    workflow      optional  workflow it belongs to
    person        optional  person credited (id or email; emails are lower-cased)
    team          optional  team credited
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from decimal import Decimal
from pathlib import Path

from tokenops.events import Outcome
from tokenops.ingest._rows import MAX_MONEY, Batch, too_costly
from tokenops.ingest._time import BadValue, Columns, Field, parse_instant, person_key, read_csv

FIELDS = (
    Field("outcome_id", required=True),
    Field("ts", required=True),
    Field("outcome_type", required=True),
    Field("value"),
    Field("task_run_ids"),
    Field("workflow"),
    Field("person"),
    Field("team"),
)

_VALUE = re.compile(r"-?\d+(\.\d+)?")


def split_ids(text: str | None) -> tuple[str, ...]:
    """`run-1; run-2` -> ('run-1', 'run-2'), blanks and repeats dropped."""
    return tuple(dict.fromkeys(p.strip() for p in (text or "").split(";") if p.strip()))


def _outcome(cols: Columns, row: Mapping[str, str]) -> Outcome:
    raw_value = cols.get(row, "value")
    if raw_value is not None and not _VALUE.fullmatch(raw_value):
        raise BadValue(f"{cols.label('value')} is {raw_value!r}, expected an amount in USD such as 42.50")
    value = Decimal(raw_value) if raw_value is not None else None
    if value is not None and abs(value) > MAX_MONEY:
        raise BadValue(too_costly(cols.label("value"), value))
    runs = split_ids(cols.get(row, "task_run_ids"))
    person = cols.get(row, "person")
    if not runs and person is None:
        raise BadValue(
            f"{cols.label('task_run_ids')} and {cols.label('person')} are both empty; "
            "link the outcome to the task runs that produced it or to the person credited"
        )
    return Outcome(
        outcome_id=cols.need(row, "outcome_id"),
        ts=parse_instant(cols.need(row, "ts"), cols.label("ts")),
        outcome_type=cols.need(row, "outcome_type"),
        value=value,
        task_run_ids=runs,
        workflow=cols.get(row, "workflow"),
        person=person_key(person) if person is not None else None,
        team=cols.get(row, "team"),
    )


class Outcomes:
    """The outcomes CSV."""

    name = "outcomes"
    description = "business outcomes CSV: outcome_id, ts, outcome_type, value, task_run_ids (;), workflow, person"
    patterns: tuple[str, ...] = ("*.csv", "*.csv.gz")

    def read(self, path: Path) -> Iterator[Batch]:
        """Stream the file's outcomes."""
        yield from read_csv(path, FIELDS, _outcome, strict=True)


IMPORTER = Outcomes()
