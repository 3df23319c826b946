"""Labour value against AI cost: is the spend paying for itself?

Pure Decimal arithmetic. A ratio with a $0 denominator is None (undefined), never 0 or infinity.

Worked example: 20 people each save 15 h/month at a loaded $65/h, so the labour value is
20 x 15 x $65 = $19,500; on $10,000 of AI spend the yield ratio is 1.95 and the ROI 95%.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class Yield:
    """What a period's AI spend returned in people's time."""

    hours_saved: Decimal
    """People x hours saved per person."""
    value: Decimal
    """Labour value of the hours saved, USD."""
    cost: Decimal
    """AI cost of the period, USD."""
    ratio: Decimal | None
    """value / cost (1.95 = $1.95 back per $1); None at $0 cost."""
    roi_pct: Decimal | None
    """(value - cost) / cost x 100; None at $0 cost."""
    cost_per_hour_saved: Decimal | None
    """cost / hours saved, USD; None when no hours were saved."""


def labour_value(people: int, hours_saved_per_person: Decimal, loaded_hourly_cost: Decimal) -> Decimal:
    """USD worth of the time saved: people x hours saved per person x loaded hourly cost."""
    return Decimal(people) * hours_saved_per_person * loaded_hourly_cost


def yield_ratio(value: Decimal, cost: Decimal) -> Decimal | None:
    """Dollars of value per dollar of AI cost; None when nothing was spent."""
    return value / cost if cost else None


def roi_pct(value: Decimal, cost: Decimal) -> Decimal | None:
    """Return on the AI spend in percent (95 = 95%); None when nothing was spent."""
    return (value - cost) / cost * 100 if cost else None


def cost_per_hour_saved(cost: Decimal, hours_saved: Decimal) -> Decimal | None:
    """What one saved hour cost in AI spend; None when no hours were saved."""
    return cost / hours_saved if hours_saved else None


def team_yield(people: int, hours_saved_per_person: Decimal, loaded_hourly_cost: Decimal, cost: Decimal) -> Yield:
    """All of the above for one team and period."""
    hours = Decimal(people) * hours_saved_per_person
    value = labour_value(people, hours_saved_per_person, loaded_hourly_cost)
    return Yield(
        hours_saved=hours,
        value=value,
        cost=cost,
        ratio=yield_ratio(value, cost),
        roi_pct=roi_pct(value, cost),
        cost_per_hour_saved=cost_per_hour_saved(cost, hours),
    )
