"""The numbers of one calendar month for the CFO report: spend, its trend, top workflows, guardrail savings.

A month is a UTC calendar month, `[first day, first day of the next month)`, the same range as
`/api/summary?start=2026-11-01&end=2026-12-01`, so every figure can be checked against the API.

**Cost per completed task** (per workflow): the cost of every call in the month (retries
included) of task runs whose `task_runs.status` is `completed`, over the number of those runs.
A completed run with an unpriced call has an unknown cost: it is counted apart
(`completed_unpriced`), never at $0. None when no priced completed run exists.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from tokenops.analytics.guard_actions import guard_actions, totals
from tokenops.analytics.spend import Filters, Summary, spend_by, summary
from tokenops.guard.policies import TaskBudget
from tokenops.pricing import Pricer
from tokenops.store import Ledger

TOP_WORKFLOWS = 8
"""Workflows listed by cost."""
_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


@dataclass(frozen=True, slots=True)
class WorkflowCost:
    """One workflow's spend in the month and what a completed task cost."""

    workflow: str | None
    """Workflow (None: calls without one)."""
    cost: Decimal
    """Priced spend."""
    calls: int
    """Calls."""
    unpriced_calls: int
    """Calls without a known price."""
    completed: int
    """Completed task runs with a known cost."""
    completed_unpriced: int
    """Completed task runs with an unpriced call (cost unknown)."""
    cost_per_completed: Decimal | None
    """Mean cost of a completed task run; None without one."""


@dataclass(frozen=True, slots=True)
class MonthFigures:
    """Everything the CFO report states about a month."""

    month: str
    """`YYYY-MM`."""
    start: datetime
    """First instant (UTC)."""
    end: datetime
    """First instant of the next month (UTC)."""
    previous_start: datetime
    """First instant of the previous month."""
    total: Summary
    """The month's totals."""
    previous: Summary
    """The previous month's totals."""
    teams: list[dict[str, object]]
    """Per team: cost, previous_cost, change (Decimal share, None when there was no previous spend)."""
    daily: list[dict[str, object]]
    """Daily spend by team (period, team, cost)."""
    workflows: list[WorkflowCost]
    """Top workflows by cost."""
    guardrails: dict[str, object]
    """Blocked and downgraded calls and the estimated avoided spend."""


def month_bounds(month: str) -> tuple[datetime, datetime, datetime]:
    """(previous month start, month start, next month start) of `YYYY-MM`; ValueError says what is wrong."""
    found = _MONTH.match(month)
    if found is None:
        raise ValueError(f"month {month!r} is not YYYY-MM, e.g. '2026-11'")
    year, number = int(found.group(1)), int(found.group(2))
    start = datetime(year, number, 1, tzinfo=UTC)
    end = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=UTC)
    previous = datetime(year - (number == 1), (number - 2) % 12 + 1, 1, tzinfo=UTC)
    return previous, start, end


def change(now: Decimal, before: Decimal) -> Decimal | None:
    """Relative change (0.25 = +25%); None when there was nothing before."""
    return None if before == 0 else (now - before) / before


def completed_costs(ledger: Ledger, filters: Filters) -> dict[str | None, tuple[int, int, Decimal]]:
    """Per workflow: (priced completed runs, completed runs with an unpriced call, cost of the priced ones)."""
    where, params = filters.where()
    rows = ledger.query_rows(
        f"""
        WITH per_run AS (
            SELECT e.workflow, e.task_run_id, coalesce(sum(e.cost_total), 0) AS cost,
                   count(*) FILTER (WHERE e.unpriced) AS unpriced
            FROM (SELECT workflow, task_run_id, cost_total, unpriced FROM usage_events
                  WHERE {where} AND task_run_id IS NOT NULL) e
            JOIN task_runs r ON r.task_run_id = e.task_run_id
            WHERE r.status = 'completed'
            GROUP BY e.workflow, e.task_run_id
        )
        SELECT workflow, count(*) FILTER (WHERE unpriced = 0) AS completed,
               count(*) FILTER (WHERE unpriced > 0) AS completed_unpriced,
               coalesce(sum(cost) FILTER (WHERE unpriced = 0), 0) AS cost
        FROM per_run GROUP BY workflow
        """,
        params,
    )
    return {
        (None if r["workflow"] is None else str(r["workflow"])): (
            int(str(r["completed"])),
            int(str(r["completed_unpriced"])),
            Decimal(str(r["cost"])),
        )
        for r in rows
    }


def _workflows(ledger: Ledger, filters: Filters, top: int) -> list[WorkflowCost]:
    completed = completed_costs(ledger, filters)
    out = []
    for row in spend_by(ledger, ["workflow"], filters=filters).to_pylist()[:top]:
        name = row["workflow"]
        runs, unpriced_runs, cost = completed.get(name, (0, 0, Decimal(0)))
        out.append(
            WorkflowCost(
                workflow=name,
                cost=Decimal(str(row["cost"])),
                calls=int(row["events"]),
                unpriced_calls=int(row["unpriced_events"]),
                completed=runs,
                completed_unpriced=unpriced_runs,
                cost_per_completed=cost / runs if runs else None,
            )
        )
    return out


def month_figures(
    ledger: Ledger,
    month: str,
    pricer: Pricer,
    budgets: Sequence[TaskBudget] = (),
    *,
    team: str | None = None,
    top: int = TOP_WORKFLOWS,
) -> MonthFigures:
    """The month's spend (total, by team, vs the previous month), top workflows and guardrail savings."""
    previous_start, start, end = month_bounds(month)
    this = Filters(start=start, end=end, team=team)
    before = Filters(start=previous_start, end=start, team=team)
    prior = {r["team"]: Decimal(str(r["cost"])) for r in spend_by(ledger, ["team"], filters=before).to_pylist()}
    teams = []
    for row in spend_by(ledger, ["team"], filters=this).to_pylist():
        cost, was = Decimal(str(row["cost"])), prior.get(row["team"], Decimal(0))
        teams.append({"team": row["team"], "cost": cost, "previous_cost": was, "change": change(cost, was)})
    return MonthFigures(
        month=month,
        start=start,
        end=end,
        previous_start=previous_start,
        total=summary(ledger, this),
        previous=summary(ledger, before),
        teams=teams,
        daily=spend_by(ledger, ["team"], grain="day", filters=this).to_pylist(),
        workflows=_workflows(ledger, this, top),
        guardrails=totals(guard_actions(ledger, this, pricer, budgets)),
    )
