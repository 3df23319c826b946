"""Assemble the whole demo organisation (roster, usage, time) and load it into a ledger."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pyarrow as pa

from tokenops.demo.costs import build_rate_card, decimal_array
from tokenops.demo.generate import generate_usage
from tokenops.demo.org import SEAT_PRICES, TEAMS, WORKFLOWS, Roster, Window, build_roster
from tokenops.demo.timesheets import generate_time_entries, roster_ids
from tokenops.demo.truth import GroundTruth, IdleSeat, WorkflowTruth
from tokenops.store import Ledger
from tokenops.store.schema import TABLES

DEFAULT_END = date(2026, 11, 15)
"""Fixed last day, so tests and screenshots are stable; `tokenops demo` passes today."""

Progress = Callable[[str], None]
"""Called with a stage or table name when it is done."""


@dataclass(frozen=True, slots=True)
class DemoOrg:
    """A generated organisation: one Arrow table per ledger table, and the truth behind them."""

    usage_events: pa.Table
    """Model calls."""
    task_runs: pa.Table
    """Workflow executions."""
    outcomes: pa.Table
    """Business outcomes with their USD value."""
    outcome_task_runs: pa.Table
    """Outcome -> task run links."""
    people: pa.Table
    """The roster with loaded hourly costs."""
    seat_licenses: pa.Table
    """Per-seat AI tool licences."""
    time_entries: pa.Table
    """Time tracking over baseline and AI period."""
    truth: GroundTruth
    """What the data was generated from."""

    def tables(self) -> dict[str, pa.Table]:
        """Ledger table name -> rows, in load order."""
        return {
            "people": self.people,
            "seat_licenses": self.seat_licenses,
            "task_runs": self.task_runs,
            "usage_events": self.usage_events,
            "outcomes": self.outcomes,
            "outcome_task_runs": self.outcome_task_runs,
            "time_entries": self.time_entries,
        }


def generate_org(
    seed: int = 7,
    *,
    end: date = DEFAULT_END,
    days: int = 90,
    baseline_days: int = 30,
    scale: float = 1.0,
    progress: Progress | None = None,
) -> DemoOrg:
    """Generate the seeded demo organisation; the same arguments always give identical tables.

    Args:
        seed: Random seed.
        end: Last day of data.
        days: Days of AI usage ending on `end` (at least 14).
        baseline_days: Days of time tracking before AI adoption.
        scale: Multiplier on usage volume (people and incidents keep their size).
        progress: Called with each stage's name as it finishes.
    """
    if scale <= 0:
        raise ValueError(f"scale must be positive, got {scale!r}")
    step = progress or (lambda _stage: None)
    window = Window(end, days, baseline_days)
    # ids depend on every argument: two different organisations never share a request_id
    ns = hashlib.sha256(f"{seed}|{end}|{days}|{baseline_days}|{scale!r}".encode()).hexdigest()[:6]
    roster = build_roster(seed, window.ai_start, days)
    card = build_rate_card(window.ai_start, days)
    step("prices")
    usage = generate_usage(roster, window, seed, scale, ns, card)
    step("usage")
    time_entries, savings = generate_time_entries(roster, window, seed, ns)
    step("time entries")
    adopters = [i for i in range(len(roster.team)) if roster.adopt_day[i] >= 0]
    truth = GroundTruth(
        seed=seed,
        baseline_start=window.baseline_start,
        ai_start=window.ai_start,
        end=end,
        adopters=tuple(roster.person_ids[i] for i in adopters),
        non_adopters=tuple(p for i, p in enumerate(roster.person_ids) if roster.adopt_day[i] < 0),
        adoption_dates={
            roster.person_ids[i]: window.ai_start + timedelta(days=int(roster.adopt_day[i])) for i in adopters
        },
        workflows={
            w.name: WorkflowTruth(
                w.name, w.team, w.saving, w.conversion, w.outcome_type, w.outcome_value, w.failure_rate, w.abandon_rate
            )
            for w in WORKFLOWS
        },
        idle_seats=_idle_seats(roster, window),
        savings=savings,
        incidents=usage.incidents,
        events=usage.usage_events.num_rows,
        unpriced_events=usage.unpriced,
        total_cost=usage.total_cost,
    )
    return DemoOrg(
        usage_events=usage.usage_events,
        task_runs=usage.task_runs,
        outcomes=usage.outcomes,
        outcome_task_runs=usage.outcome_task_runs,
        people=_people_table(roster),
        seat_licenses=_seats_table(roster, window),
        time_entries=time_entries,
        truth=truth,
    )


def load_demo(ledger: Ledger, org: DemoOrg, *, progress: Progress | None = None) -> dict[str, int]:
    """Append every table of `org` to `ledger`; returns the rows each table gained.

    Loading the same organisation again adds nothing: every table is keyed by stable ids. Rows
    gained is measured by counting, because replace-by-key tables (people, seats, task runs)
    report replaced rows as written.
    """
    written: dict[str, int] = {}
    for name, table in org.tables().items():
        before = _count(ledger, name)
        ledger.append(name, table)
        written[name] = _count(ledger, name) - before
        if progress is not None:
            progress(name)
    return written


def _count(ledger: Ledger, table: str) -> int:
    assert table in TABLES
    return int(ledger.query(f"SELECT count(*) AS n FROM {table}").column("n")[0].as_py())


def _people_table(roster: Roster) -> pa.Table:
    return pa.Table.from_arrays(
        [
            roster_ids(roster),
            pa.array([TEAMS[t] for t in roster.team], pa.string()),
            decimal_array(roster.hourly_cents * 10**10),
            pa.array(roster.names, pa.string()),
            pa.array(roster.roles, pa.string()),
            pa.array(roster.start_dates, pa.date32()),
        ],
        schema=TABLES["people"].arrow_schema,
    )


def _seats_table(roster: Roster, window: Window) -> pa.Table:
    seats = roster.seats
    cents = np.array([int(SEAT_PRICES[tool] * 100) for _, tool, _ in seats], dtype=np.int64)
    return pa.Table.from_arrays(
        [
            pa.array([roster.person_ids[p] for p, _, _ in seats], pa.string()),
            pa.array([tool for _, tool, _ in seats], pa.string()),
            decimal_array(cents * 10**10),
            pa.array([window.ai_start] * len(seats), pa.date32()),
            pa.array([_day(window, end) for _, _, end in seats], pa.date32()),
        ],
        schema=TABLES["seat_licenses"].arrow_schema,
    )


def _day(window: Window, day: int | None) -> date | None:
    return None if day is None else window.ai_start + timedelta(days=day)


def _idle_seats(roster: Roster, window: Window) -> tuple[IdleSeat, ...]:
    return tuple(
        IdleSeat(roster.person_ids[p], tool, SEAT_PRICES[tool], window.ai_start, _day(window, end))
        for p, tool, end in roster.seats
        if roster.adopt_day[p] < 0
    )
