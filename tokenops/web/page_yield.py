"""The Yield page (`/yield`): what AI spend returns in people's time, with its uncertainty in plain view.

From `tokenops.analytics.yield_.ai_yield` (the numbers of `GET /api/yield`, same design parameters:
`end`, `baseline_end`, `resamples`, `confidence`, `seed`): the yield ratio and hours saved with their
bootstrap intervals drawn as error bars, groups without enough data shown as "insufficient data"
with the reason, AI spend by team (model calls and seats), hours saved per person per month, the
task-duration trend of adopters and non-adopters against their own baselines (the estimate's own
panel, `tokenops.analytics.did.load_panel`), and AI usage by person (`spend_by` user, `adoption`).

The estimate needs the whole baseline and every non-adopter as its control group, so of the global
filters only the end date (the period's end) and the team (which rows are shown) apply to it; the
usage tables take every filter. A team lead sees only their team's rows and people, as in the API.
"""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from decimal import Decimal
from html import escape

import numpy as np
from starlette.requests import Request
from starlette.responses import Response

from tokenops.analytics.adoption import Adoption, adoption
from tokenops.analytics.did import Panel, load_panel
from tokenops.analytics.spend import spend_by
from tokenops.analytics.yield_ import GroupYield, NoEstimate, YieldReport, ai_yield, group_costs, yield_table
from tokenops.web.access import scoped_filters
from tokenops.web.api_cache import cached_ledger
from tokenops.web.api_yield import design_from
from tokenops.web.charts import Bar, Interval, hbars, intervals, lines
from tokenops.web.frame import frame_for, respond
from tokenops.web.html import Column, Table, kv_table, money
from tokenops.web.page_planning import table_html_keeping
from tokenops.web.responses import decimal_text

_DAYS_PER_MONTH = Decimal("30.4375")
_HOURS = Decimal("0.01")
_GROUP_COLUMNS = (
    Column("status", "Status"),
    Column("adopters", "Adopters", "int"),
    Column("entries", "Entries", "int"),
    Column("hours_saved", "Hours saved"),
    Column("hours_low", "Low"),
    Column("hours_high", "High"),
    Column("naive_hours", "Naive before/after"),
    Column("value", "Value", "money"),
    Column("cost", "AI cost", "money"),
    Column("ratio", "Yield ratio"),
    Column("ratio_low", "Ratio low"),
    Column("ratio_high", "Ratio high"),
    Column("roi_pct", "ROI %"),
    Column("reason", "Why no estimate"),
)


def _ratio_interval(row: GroupYield | NoEstimate) -> Interval:
    if isinstance(row, NoEstimate) or row.ratio is None:
        why = row.reason if isinstance(row, NoEstimate) else "no AI cost: the ratio is undefined"
        return Interval(row.group, None, None, None, f"insufficient data: {why}")
    shown = f"{row.ratio:.2f}x ({row.ratio_low:.2f} to {row.ratio_high:.2f})"
    return Interval(row.group, row.ratio, row.ratio_low, row.ratio_high, shown)


def _headline(row: GroupYield | NoEstimate, confidence: float) -> str:
    if isinstance(row, NoEstimate):
        return (
            f'<p class="callout warn" data-kpi="yield" data-value="">'
            f"<strong>{escape(row.group)}: insufficient data.</strong> {escape(row.reason)}. "
            f"AI cost in the period: {escape(money(row.cost))}.</p>"
        )
    level = f"{confidence:.0%}"
    ratio = "undefined (no AI cost)" if row.ratio is None else f"{row.ratio:.2f}x"
    ratio_sub = "" if row.ratio_low is None else f"{level} interval {row.ratio_low:.2f} to {row.ratio_high:.2f}"
    hours_sub = f"{level} interval {row.hours_saved_low:,} to {row.hours_saved_high:,} h"
    roi = "undefined" if row.roi_pct is None else f"{row.roi_pct}%"
    cards = [
        ("ratio", "Yield ratio", ratio, row.ratio, ratio_sub),
        ("hours", "Hours saved", f"{row.hours_saved:,}", row.hours_saved, hours_sub),
        (
            "value",
            "Value of the hours",
            money(row.value),
            row.value,
            f"{money(row.value_low)} to {money(row.value_high)}",
        ),
        ("cost", "AI cost (calls + seats)", money(row.cost), row.cost, f"{row.unpriced_calls:,} unpriced calls"),
        ("roi", "ROI", roi, row.roi_pct, ""),
    ]
    return (
        '<div class="kpis">'
        + "".join(
            f'<div class="kpi" data-kpi="{key}" data-value="{decimal_text(raw) if raw is not None else ""}">'
            f'<span class="label">{escape(f"{label} ({row.group})")}</span><span class="value">{escape(shown)}</span>'
            f'<span class="sub">{escape(sub)}</span></div>'
            for key, label, shown, raw, sub in cards
        )
        + "</div>"
    )


def _months(report: YieldReport) -> Decimal:
    if report.baseline_end is None or report.end is None:
        return Decimal(1)
    return Decimal((report.end - report.baseline_end).days) / _DAYS_PER_MONTH


def _per_person(report: YieldReport, teams: dict[str, str]) -> tuple[str, Table]:
    months = _months(report)
    rows: list[dict[str, object]] = []
    marks = []
    for row in report.rows:
        line: dict[str, object] = {"person": row.group, "team": teams.get(row.group), "adopters": row.adopters}
        if isinstance(row, NoEstimate):
            line.update(status="insufficient data", cost=row.cost, reason=row.reason)
            marks.append(Interval(row.group, None, None, None, f"insufficient data: {row.reason}"))
        else:
            hours = (row.hours_saved, row.hours_saved_low, row.hours_saved_high)
            point, low, high = ((h / months).quantize(_HOURS) for h in hours)
            line.update(status="estimate", hours_per_month=point, low_per_month=low, high_per_month=high)
            line.update(hours_saved=row.hours_saved, value=row.value, cost=row.cost)
            marks.append(Interval(row.group, point, low, high, f"{point} h/month ({low} to {high})"))
        rows.append(line)
    order = sorted(range(len(rows)), key=lambda i: (marks[i].point is None, -(marks[i].point or 0)))
    table = Table(
        "people",
        "Hours saved per person per month",
        (
            Column("person", "Person"),
            Column("team", "Team"),
            Column("status", "Status"),
            Column("hours_per_month", "Hours / month"),
            Column("low_per_month", "Low"),
            Column("high_per_month", "High"),
            Column("hours_saved", "Hours in period"),
            Column("value", "Value", "money"),
            Column("cost", "AI cost", "money"),
            Column("reason", "Why no estimate"),
        ),
        [rows[i] for i in order],
        note=f"Hours saved over the period divided by its {months:.1f} months; intervals as estimated.",
        empty="Nobody in these filters has time entries after adopting AI.",
    )
    chart = intervals([marks[i] for i in order], label="Hours saved per person per month", reference=Decimal(0))
    return chart, table


def _trend(panel: Panel, team: str | None) -> str:
    """Weekly booked time over each person's own baseline: adopters (after adopting) and non-adopters."""
    monday = panel.baseline_end - timedelta(days=panel.baseline_end.weekday())
    weeks = panel.control_ratio.shape[1]
    control_n = panel.control_entries.sum(axis=0)
    control = panel.control_ratio.sum(axis=0)
    mask = np.ones(panel.cell_person.size, dtype=bool)
    if team is not None:
        mask = np.array(panel.teams, dtype=object)[panel.cell_person] == team if panel.people else mask[:0]
    scaled = panel.cell_actual[mask] * panel.cell_entries[mask] / np.maximum(panel.cell_expected[mask], 1e-12)
    adopted = np.bincount(panel.cell_week[mask], weights=scaled, minlength=weeks)
    adopted_n = np.bincount(panel.cell_week[mask], weights=panel.cell_entries[mask], minlength=weeks)

    def points(total: np.ndarray, count: np.ndarray) -> list[tuple[date, float]]:
        return [(monday + timedelta(weeks=w), float(total[w] / count[w])) for w in range(weeks) if count[w] > 0]

    series = {
        f"adopters{f' ({team})' if team else ''}, after adopting": points(adopted, adopted_n),
        "non-adopters (control group)": points(control, control_n),
    }
    return lines(series, label="Task duration against baseline", reference=1.0, ref_label="own baseline = 100%")


def _spend_by_team(costs: dict[str, tuple[Decimal, Decimal, int]], team: str | None) -> str:
    kept = sorted(((t, c) for t, c in costs.items() if team in (None, t)), key=lambda tc: -(tc[1][0] + tc[1][1]))
    bars = [Bar(t, (("model calls", api), ("seat licences", seats)), money(api + seats)) for t, (api, seats, _) in kept]
    return hbars(bars, label="AI spend by team")


def _usage(rows: list[dict[str, object]], spread: list[Adoption]) -> tuple[str, Table]:
    table = Table(
        "usage",
        "AI usage by person",
        (
            Column("user", "Person"),
            Column("cost", "Cost", "money"),
            Column("events", "Calls", "int"),
            Column("input_tokens", "Input tokens", "int"),
            Column("output_tokens", "Output tokens", "int"),
            Column("unpriced_events", "Unpriced calls", "int"),
        ),
        rows,
        note="Calls in the filtered period; calls without a user are grouped as '-'.",
    )
    facts = [
        (
            escape(a.scope),
            f"{a.active_people} of {a.people} people used AI; top 5 made "
            f"{'-' if a.top_cost_share is None else f'{a.top_cost_share * 100:.0f}%'} of spend; Gini "
            f"{'-' if a.cost_gini is None else a.cost_gini}",
        )
        for a in spread
    ]
    bars = [Bar(str(r.get("user") or "-"), (("cost", Decimal(str(r["cost"]))),), money(r["cost"])) for r in rows[:20]]
    return kv_table(facts) + hbars(bars, label="AI spend of the 20 heaviest users"), table


def yield_page(request: Request) -> Response:
    """AI yield with intervals, spend by team, hours saved per person, duration trend, usage by person."""
    filters = scoped_filters(request)
    design = design_from(request)
    team = filters.team
    frame = frame_for(request, "Yield", "yield")
    ledger = cached_ledger(request)
    with ThreadPoolExecutor(max_workers=4) as pool:
        usage_job = pool.submit(spend_by, ledger, ["user"], filters=filters)
        spread_job = pool.submit(adoption, ledger, filters)
        # the panel (every time entry) and the team costs are read once and shared by the three groupings
        panel = load_panel(ledger, design)
        costs = group_costs(ledger, "team", panel.baseline_end, panel.end) if isinstance(panel, Panel) else {}
        overall = pool.submit(ai_yield, ledger, "all", design, panel=panel) if team is None else None
        by_team = pool.submit(ai_yield, ledger, "team", design, panel=panel, costs=costs)
        by_person = pool.submit(ai_yield, ledger, "person", design, panel=panel)
        teams, people = by_team.result(), by_person.result()
    owners = dict(zip(panel.people, panel.teams, strict=True)) if isinstance(panel, Panel) else {}
    if team is not None:
        teams = dataclasses.replace(teams, rows=tuple(r for r in teams.rows if r.group == team))
        people = dataclasses.replace(people, rows=tuple(r for r in people.rows if owners.get(r.group) == team))
    head = overall.result().rows[0] if overall is not None else (teams.rows[0] if teams.rows else None)
    person_chart, person_table = _per_person(people, owners)
    usage_chart, usage_table = _usage(usage_job.result().to_pylist(), spread_job.result())
    team_table = Table(
        "teams", "Yield by team", (Column("group", "Team"), *_GROUP_COLUMNS), yield_table(teams).to_pylist()
    )
    period = (
        f"{teams.baseline_end} to {teams.end - timedelta(days=1)}" if teams.baseline_end and teams.end else "no period"
    )
    content = (
        f'<p class="note">Estimated by difference in differences over {escape(period)} ({design.resamples:,} '
        f"bootstrap resamples, {design.confidence:.0%} intervals). Only the end date and team filters apply to the "
        "estimate; the usage tables take every filter.</p>"
        + (_headline(head, design.confidence) if head is not None else "")
        + '<section class="panel"><h2>Yield ratio by team (value of hours saved per $1 of AI)</h2>'
        + intervals(
            [_ratio_interval(r) for r in teams.rows],
            label="Yield ratio by team",
            reference=Decimal(1),
            ref_label="break-even",
        )
        + "</section>"
        + table_html_keeping(team_table, request)
        + f'<section class="panel"><h2>AI spend by team, {escape(period)}</h2>{_spend_by_team(costs, team)}</section>'
        + f'<section class="panel"><h2>Hours saved per person per month</h2>{person_chart}</section>'
        + table_html_keeping(person_table, request)
        + '<section class="panel"><h2>Task duration before and after adopting AI</h2><p class="note">Time booked '
        "per week over each person's own mean before the baseline ended (100%): adopters after they adopted, "
        "non-adopters over the same weeks.</p>"
        + (_trend(panel, team) if isinstance(panel, Panel) else f'<p class="empty">{escape(panel)}</p>')
        + f'</section><section class="panel"><h2>Who uses AI</h2>{usage_chart}</section>'
        + table_html_keeping(usage_table, request)
    )
    return respond(request, frame, content, [team_table, person_table, usage_table])


pages = [("/yield", yield_page)]
