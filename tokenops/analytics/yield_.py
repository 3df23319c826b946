"""Labour value against AI cost: is the spend paying for itself?

The arithmetic (`labour_value`, `yield_ratio`, `roi_pct`, `team_yield`) is pure Decimal. `ai_yield`
measures it from the ledger: hours saved by difference in differences (`tokenops.analytics.did`),
valued at each person's loaded hourly cost, against model calls plus seat licences prorated per
month. A ratio with a $0 denominator is None (undefined), never 0 or infinity; a group with too
little data gets a `NoEstimate` that says why, never a number.

Worked example: 20 people each save 15 h/month at a loaded $65/h, so the labour value is
20 x 15 x $65 = $19,500; on $10,000 of AI spend the yield ratio is 1.95 and the ROI 95%.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

import pyarrow as pa

from tokenops.analytics.did import YIELD_BY, Design, Insufficient, Panel, Saving, estimate, load_panel
from tokenops.store import Ledger


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


# --- AI yield measured from the ledger -------------------------------------------------------

_COST_COLUMN = {"team": "team", "workflow": "workflow", "person": "user_id"}
_RATIO = Decimal("0.0001")
_CENTS = Decimal("0.01")
_PICO = Decimal("0.000000000001")


@dataclass(frozen=True, slots=True)
class GroupYield:
    """One group's measured AI yield: hours saved (difference in differences) against what AI cost it."""

    group: str
    """Team, workflow, person_id or `all`."""
    adopters: int
    """Adopters whose time entries count."""
    entries: int
    """Their time entries after adoption."""
    hours_saved: Decimal
    """Estimated hours saved over the period."""
    hours_saved_low: Decimal
    """Lower end of the bootstrap interval."""
    hours_saved_high: Decimal
    """Upper end of the bootstrap interval."""
    naive_hours_saved: Decimal
    """Before/after of the adopters alone, which mixes in whatever changed for everyone."""
    value: Decimal
    """Labour value of the hours saved at each person's loaded hourly cost, USD."""
    value_low: Decimal
    """Lower end of the value interval, USD."""
    value_high: Decimal
    """Upper end of the value interval, USD."""
    api_cost: Decimal
    """Priced model calls of the group in the period, USD."""
    seat_cost: Decimal
    """Seat licences prorated to the period, USD."""
    cost: Decimal
    """api_cost + seat_cost."""
    unpriced_calls: int
    """Calls without a price, so not in api_cost (their cost is unknown, not zero)."""
    ratio: Decimal | None
    """value / cost; None at $0 cost."""
    ratio_low: Decimal | None
    """value_low / cost."""
    ratio_high: Decimal | None
    """value_high / cost."""
    roi_pct: Decimal | None
    """(value - cost) / cost x 100."""
    cost_per_hour_saved: Decimal | None
    """cost / hours saved; None unless hours were saved."""


@dataclass(frozen=True, slots=True)
class NoEstimate:
    """A group whose hours saved cannot be estimated from the data, and why (never a made-up number)."""

    group: str
    """Team, workflow, person_id or `all`."""
    reason: str
    """What is missing, in numbers."""
    adopters: int
    """Adopters whose time entries count."""
    entries: int
    """Their time entries after adoption."""
    cost: Decimal
    """What AI cost the group in the period anyway, USD."""


@dataclass(frozen=True, slots=True)
class YieldReport:
    """AI yield per group over one period, with how it was measured."""

    by: str
    """`all`, `team`, `workflow` or `person`."""
    baseline_end: date | None
    """First day after the baseline (the period starts here); None when there is no data at all."""
    end: date | None
    """First day after the period."""
    rows: tuple[GroupYield | NoEstimate, ...]
    """One per group."""
    confidence: float
    """Coverage of the intervals."""
    resamples: int
    """Bootstrap resamples."""
    notes: tuple[str, ...]
    """What was left out and why."""


def ai_yield(
    ledger: Ledger,
    by: str = "all",
    design: Design | None = None,
    *,
    panel: Panel | str | None = None,
    costs: dict[str, tuple[Decimal, Decimal, int]] | None = None,
) -> YieldReport:
    """Hours AI saved per group, valued and set against AI cost, honest about causality and sample size.

    Args:
        ledger: The ledger (time entries, people, seat licences, usage events).
        by: `all`, `team`, `workflow` or `person`.
        design: Baseline, period, thresholds for "insufficient data" and the bootstrap (defaults: `Design()`).
        panel: `load_panel(ledger, design)` when the caller already has it (a page showing several
            groupings reads the panel once).
        costs: `group_costs(ledger, by, ...)` over the panel's period, when the caller already has it.
    """
    design = design or Design()
    if by not in YIELD_BY:
        raise ValueError(f"Unknown grouping {by!r}; choose from {', '.join(YIELD_BY)}")
    if panel is None:
        panel = load_panel(ledger, design)
    if isinstance(panel, str):
        row = NoEstimate("all", panel, 0, 0, Decimal(0))
        return YieldReport(by, None, None, (row,), design.confidence, design.resamples, ())
    costs = dict(costs) if costs is not None else group_costs(ledger, by, panel.baseline_end, panel.end)
    rows: list[GroupYield | NoEstimate] = []
    for result in estimate(panel, by, design):
        api, seats, unpriced = costs.pop(result.group, (Decimal(0), Decimal(0), 0))
        if isinstance(result, Insufficient):
            rows.append(NoEstimate(result.group, result.reason, result.adopters, result.entries, api + seats))
        else:
            rows.append(_measured(result, api, seats, unpriced))
    if by != "person":  # groups that spent on AI but book no time: no hours to set against the cost
        for group, (api, seats, _) in sorted(costs.items()):
            reason = "no time entries in task categories for this group: hours saved cannot be measured"
            rows.append(NoEstimate(group, reason, 0, 0, api + seats))
    notes = _notes(panel, by)
    return YieldReport(by, panel.baseline_end, panel.end, tuple(rows), design.confidence, design.resamples, notes)


def _measured(s: Saving, api: Decimal, seats: Decimal, unpriced: int) -> GroupYield:
    cost = api + seats
    ratio = yield_ratio(s.value, cost)
    roi = roi_pct(s.value, cost)
    per_hour = cost_per_hour_saved(cost, s.hours) if s.hours > 0 else None
    return GroupYield(
        group=s.group,
        adopters=s.adopters,
        entries=s.entries,
        hours_saved=s.hours,
        hours_saved_low=s.hours_low,
        hours_saved_high=s.hours_high,
        naive_hours_saved=s.naive_hours,
        value=s.value,
        value_low=s.value_low,
        value_high=s.value_high,
        api_cost=api,
        seat_cost=seats,
        cost=cost,
        unpriced_calls=unpriced,
        ratio=None if ratio is None else ratio.quantize(_RATIO),
        ratio_low=None if ratio is None else (s.value_low / cost).quantize(_RATIO),
        ratio_high=None if ratio is None else (s.value_high / cost).quantize(_RATIO),
        roi_pct=None if roi is None else roi.quantize(_CENTS),
        cost_per_hour_saved=None if per_hour is None else per_hour.quantize(_CENTS),
    )


def _notes(panel: Panel, by: str) -> tuple[str, ...]:
    notes = [
        f"period {panel.baseline_end} to {panel.end - timedelta(days=1)}; baseline: time entries before "
        f"{panel.baseline_end}",
        f"{panel.control_ratio.shape[0]} non-adopters form the control group",
    ]
    if panel.unmatched_entries:
        notes.append(f"{panel.unmatched_entries} time entries left out: too few baseline entries in their category")
    if panel.adopted_in_baseline:
        notes.append(f"{panel.adopted_in_baseline} people left out: they used AI before the baseline ended")
    if by == "workflow":
        notes.append("seat licences are not per workflow: workflow costs are model calls only")
    return tuple(notes)


def group_costs(ledger: Ledger, by: str, start: date, end: date) -> dict[str, tuple[Decimal, Decimal, int]]:
    """(API cost, prorated seat cost, unpriced calls) per group over [start, end)."""
    column = _COST_COLUMN.get(by)
    key = column if column is not None else "'all'"
    group = f"GROUP BY {column}" if column is not None else ""
    rows = ledger.query_rows(
        f"""
        SELECT {key} AS grp, coalesce(sum(cost_total), 0) AS cost, count(*) FILTER (WHERE unpriced) AS unpriced
        FROM usage_events WHERE ts >= ? AND ts < ? {group}
        """,
        [start, end],
    )
    costs = {
        str(r["grp"]): (Decimal(str(r["cost"])), Decimal(0), int(str(r["unpriced"])))
        for r in rows
        if r["grp"] is not None
    }
    if by == "workflow":
        return costs
    seats = ledger.query_rows(
        """
        SELECT s.person_id, p.team, s.monthly_cost, s.start_date, s.end_date
        FROM seat_licenses AS s LEFT JOIN people AS p ON p.person_id = s.person_id
        WHERE s.start_date < ? AND (s.end_date IS NULL OR s.end_date >= ?)
        """,
        [end, start],
    )
    for seat in seats:
        owner = {"all": "all", "team": seat["team"], "person": seat["person_id"]}[by]
        if owner is None:
            continue
        end_date = seat["end_date"]
        share = prorated_seat_cost(
            Decimal(str(seat["monthly_cost"])),
            _day(seat["start_date"]),
            None if end_date is None else _day(end_date),
            start,
            end,
        )
        api, seat_cost, unpriced = costs.get(str(owner), (Decimal(0), Decimal(0), 0))
        costs[str(owner)] = (api, seat_cost + share, unpriced)
    return costs


def prorated_seat_cost(monthly: Decimal, first: date, last: date | None, start: date, end: date) -> Decimal:
    """A seat's cost inside [start, end): each month's fee x the share of that month's days it was held.

    `last` is the last day paid for (inclusive), None while the seat is active.
    """
    day = max(first, start)
    stop = end if last is None else min(end, last + timedelta(days=1))
    total = Decimal(0)
    while day < stop:
        next_month = (day.replace(day=1) + timedelta(days=32)).replace(day=1)
        upto = min(next_month, stop)
        days_in_month = (next_month - day.replace(day=1)).days
        total += monthly * (upto - day).days / days_in_month
        day = upto
    return total.quantize(_PICO)


def _day(value: object) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value))


def yield_dict(report: YieldReport) -> dict[str, object]:
    """The report as JSON-ready data, each row marked `estimate` or `insufficient data`."""
    rows = [
        {"status": "estimate" if isinstance(row, GroupYield) else "insufficient data", **asdict(row)}
        for row in report.rows
    ]
    return {**asdict(report), "rows": rows}


_TABLE = pa.schema(
    [
        ("group", pa.string()),
        ("status", pa.string()),
        ("adopters", pa.int64()),
        ("entries", pa.int64()),
        ("hours_saved", pa.decimal128(18, 2)),
        ("hours_low", pa.decimal128(18, 2)),
        ("hours_high", pa.decimal128(18, 2)),
        ("naive_hours", pa.decimal128(18, 2)),
        ("value", pa.decimal128(18, 2)),
        ("cost", pa.decimal128(38, 12)),
        ("ratio", pa.decimal128(18, 4)),
        ("ratio_low", pa.decimal128(18, 4)),
        ("ratio_high", pa.decimal128(18, 4)),
        ("roi_pct", pa.decimal128(18, 2)),
        ("cost_per_hour_saved", pa.decimal128(18, 2)),
        ("reason", pa.string()),
    ]
)


def yield_table(report: YieldReport) -> pa.Table:
    """One line per group for `emit`: estimates with their intervals, or the reason there is none."""
    lines: list[dict[str, object]] = []
    for row in report.rows:
        line: dict[str, object] = {"group": row.group, "adopters": row.adopters, "entries": row.entries}
        if isinstance(row, NoEstimate):
            line.update(status="insufficient data", cost=row.cost, reason=row.reason)
        else:
            line.update(
                status="estimate",
                hours_saved=row.hours_saved,
                hours_low=row.hours_saved_low,
                hours_high=row.hours_saved_high,
                naive_hours=row.naive_hours_saved,
                value=row.value,
                cost=row.cost,
                ratio=row.ratio,
                ratio_low=row.ratio_low,
                ratio_high=row.ratio_high,
                roi_pct=row.roi_pct,
                cost_per_hour_saved=row.cost_per_hour_saved,
            )
        lines.append(line)
    return pa.Table.from_pylist(lines, schema=_TABLE)
