"""What the month's AI spend bought, for the CFO report: yield with its interval, cost per outcome,
the maturity rung and the biggest savings, each computed by the analytics the dashboard uses."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from tokenops.analytics.maturity import maturity
from tokenops.analytics.recommend import Recommendation, recommendations
from tokenops.analytics.spend import Filters
from tokenops.analytics.unit_economics import cost_per_outcome
from tokenops.analytics.yield_ import GroupYield, NoEstimate, ai_yield
from tokenops.guard import Policies
from tokenops.pricing import PriceOverride
from tokenops.store import Ledger

TOP = 3
"""Workflows and savings shown."""


@dataclass(frozen=True, slots=True)
class ValueFigures:
    """The report's value section."""

    yield_: GroupYield | NoEstimate | None
    """The organisation's AI yield (with its interval), or why there is no estimate; None without time data."""
    outcomes: list[dict[str, object]]
    """Top workflows by cost per outcome in the month (rows of `cost_per_outcome`)."""
    rung: str
    """Current maturity rung."""
    next_rung: str | None
    """The next rung, if any."""
    missing: tuple[str, ...]
    """What the next rung needs."""
    savings: list[Recommendation]
    """Biggest savings opportunities as of the month's end."""


def value_figures(
    ledger: Ledger,
    start: datetime,
    end: datetime,
    *,
    team: str | None = None,
    policies: Policies | None = None,
    overrides: Sequence[PriceOverride] = (),
) -> ValueFigures:
    """Yield, cost per outcome, maturity and savings for the month [start, end)."""
    month = Filters(start=start, end=end, team=team)
    report = ai_yield(ledger, "team" if team else "all")
    rows = [r for r in report.rows if team is None or r.group == team]
    outcomes = [r for r in cost_per_outcome(ledger, "workflow", month).to_pylist() if r["cost_per_outcome"] is not None]
    rung = maturity(ledger, dataclasses.replace(month, start=None), policies)
    return ValueFigures(
        yield_=rows[0] if rows else None,
        outcomes=outcomes[:TOP],
        rung=rung.level,
        next_rung=rung.next_rung,
        missing=rung.missing,
        savings=recommendations(ledger, as_of=end, filters=Filters(team=team), overrides=overrides)[:TOP],
    )
