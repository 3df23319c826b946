"""The CFO report as one self-contained HTML page (inline CSS and SVG, no scripts, no fetches).

Readable on one or two A4 pages: the month's spend (total, by team, against the previous month,
unpriced calls called out), the top workflows with their cost per completed task, and what the
guardrails avoided. Sections for yield with intervals, cost per outcome, the maturity rung and
the top savings opportunities say plainly that they are not yet available: they show no numbers
until the analytics behind them land. Every figure carries its exact value in `data-value`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from html import escape

from tokenops.analytics.yield_ import NoEstimate
from tokenops.report.monthly import MonthFigures, change
from tokenops.report.value import ValueFigures
from tokenops.web.charts import series_by, stacked_bars
from tokenops.web.html import money
from tokenops.web.responses import decimal_text

PENDING = (
    ("yield", "Yield, with confidence intervals", "hours saved, their value and the yield ratio per team"),
    ("cost_per_outcome", "Cost per outcome", "AI cost per business outcome for the top workflows"),
    ("maturity", "Maturity rung", "the organisation's current rung and what the next one needs"),
    ("savings", "Top savings opportunities", "ranked savings with their evidence"),
)
"""Sections shown when the report is rendered without a ledger's value figures: (key, title, what they show)."""

_CSS = """
@page { size: A4; margin: 14mm 12mm; }
* { box-sizing: border-box; }
body { font: 10.5pt/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1f2933; margin: 0; }
h1 { font-size: 17pt; margin: 0 0 2px; }
h2 { font-size: 12pt; margin: 14px 0 6px; border-bottom: 1px solid #d9e2ec; padding-bottom: 2px; }
.sub, .note, .muted { color: #66788a; font-size: 9pt; }
.kpis { display: flex; gap: 8px; margin: 10px 0; }
.kpi { flex: 1; border: 1px solid #d9e2ec; border-radius: 5px; padding: 6px 9px; }
.kpi .label { display: block; color: #66788a; font-size: 8.5pt; }
.kpi .value { display: block; font-size: 15pt; font-weight: 600; }
.callout { background: #fff4e5; border: 1px solid #f0b429; border-radius: 5px; padding: 5px 9px; margin: 6px 0; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; font-size: 9.5pt; }
th, td { padding: 2px 6px; border-bottom: 1px solid #e4ecf4; text-align: left; }
th { color: #66788a; font-weight: 600; font-size: 8.5pt; }
td.num, th.num { text-align: right; }
.chart svg { width: 100%; height: auto; }
.chart text { font-size: 11px; fill: #66788a; }
.chart line.grid { stroke: #d9e2ec; }
ul.legend { list-style: none; padding: 0; margin: 2px 0 0; display: flex; gap: 10px; flex-wrap: wrap;
  font-size: 8.5pt; }
.swatch { display: inline-block; width: 9px; height: 9px; margin-right: 3px; border-radius: 2px; }
.pending { border: 1px dashed #9fb3c8; border-radius: 5px; padding: 3px 8px; margin: 4px 0; background: #f5f7fa;
  font-size: 9pt; }
.pending strong { display: block; }
.columns { display: flex; gap: 14px; }
.columns > section { flex: 1; }
section { break-inside: avoid; }
"""


def _value(key: str, raw: str, shown: str) -> str:
    return f'<span data-figure="{escape(key)}" data-value="{escape(raw)}">{escape(shown)}</span>'


def _money(key: str, amount: Decimal) -> str:
    return _value(key, decimal_text(amount), money(amount))


def _pct(share: Decimal | None) -> str:
    return "new" if share is None else f"{share * 100:+.1f}%"


def _kpi(label: str, body: str, sub: str = "") -> str:
    extra = f'<span class="sub">{sub}</span>' if sub else ""
    return f'<div class="kpi"><span class="label">{escape(label)}</span><span class="value">{body}</span>{extra}</div>'


def _headline(f: MonthFigures) -> str:
    trend = change(f.total.cost, f.previous.cost)
    saving = f.guardrails["saving"]
    assert isinstance(saving, Decimal)
    kpis = (
        _kpi("AI spend", _money("total", f.total.cost), f"{f.total.events:,} calls, {f.total.task_runs:,} task runs")
        + _kpi(
            f"vs {f.previous_start:%B}",
            _value("change", "" if trend is None else decimal_text(trend), _pct(trend)),
            f"previous month {escape(money(f.previous.cost))}",
        )
        + _kpi("Unpriced calls", _value("unpriced", str(f.total.unpriced_events), f"{f.total.unpriced_events:,}"),
               "cost unknown, not in the total")
        + _kpi("Guardrails avoided (est.)", _money("guard_saving", saving),
               f"{f.guardrails['blocked']:,} blocked, {f.guardrails['downgraded']:,} downgraded")
    )  # fmt: skip
    callouts = ""
    if f.total.unpriced_events:
        callouts += (
            f'<p class="callout" data-callout="unpriced"><strong>{f.total.unpriced_events:,} calls are unpriced'
            "</strong>"
            f" ({f.total.unpriced_tokens:,} tokens): their cost is unknown and is <em>not</em> in the totals above.</p>"
        )
    if f.total.unattributed_cost:
        callouts += (
            f'<p class="callout" data-callout="unattributed">{escape(money(f.total.unattributed_cost))} of spend has '
            "no user or team.</p>"
        )
    return f'<div class="kpis">{kpis}</div>{callouts}'


def _teams(f: MonthFigures) -> str:
    rows = "".join(
        f'<tr data-team="{escape(str(r["team"] or ""))}"><td>{escape(str(r["team"] or "(no team)"))}</td>'
        f'<td class="num">{_money("team_cost", _dec(r["cost"]))}</td>'
        f'<td class="num">{escape(money(_dec(r["previous_cost"])))}</td>'
        f'<td class="num">{escape(_pct(r["change"] if isinstance(r["change"], Decimal) else None))}</td></tr>'
        for r in f.teams
    )
    return (
        '<section data-section="teams"><h2>Spend by team</h2><table><thead><tr><th>Team</th><th class="num">'
        f'{f.start:%B}</th><th class="num">{f.previous_start:%B}</th><th class="num">Change</th></tr></thead>'
        f"<tbody>{rows}</tbody></table></section>"
    )


def _dec(value: object) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


def _workflows(f: MonthFigures) -> str:
    rows = []
    for w in f.workflows:
        per_task = (
            '<span class="muted">no completed runs</span>'
            if w.cost_per_completed is None
            else _money("cost_per_completed", w.cost_per_completed)
        )
        unknown = f' <span class="muted">(+{w.completed_unpriced} unpriced)</span>' if w.completed_unpriced else ""
        rows.append(
            f'<tr data-workflow="{escape(w.workflow or "")}"><td>{escape(w.workflow or "(no workflow)")}</td>'
            f'<td class="num">{_money("workflow_cost", w.cost)}</td><td class="num">{w.calls:,}</td>'
            f'<td class="num">{w.completed:,}{unknown}</td><td class="num">{per_task}</td></tr>'
        )
    return (
        '<section data-section="workflows"><h2>Top workflows by cost</h2><table><thead><tr><th>Workflow</th>'
        '<th class="num">Spend</th><th class="num">Calls</th><th class="num">Completed tasks</th>'
        f'<th class="num">Cost per completed task</th></tr></thead><tbody>{"".join(rows)}</tbody></table>'
        '<p class="note">Cost per completed task: every call (retries included) of the month\'s completed task runs, '
        "over those runs; runs with an unpriced call are counted apart.</p></section>"
    )


def _pending() -> str:
    items = "".join(
        f'<div class="pending" data-pending="{key}"><strong>{escape(title)}</strong>Not yet available: '
        f"will show {escape(what)}.</div>"
        for key, title, what in PENDING
    )
    note = (
        '<p class="note">These wait for the yield, unit-economics, maturity and recommendation analytics; '
        "no estimate is shown until then.</p>"
    )
    return f'<section data-section="pending"><h2>Value and opportunities</h2>{items}{note}</section>'


def _yield(value: ValueFigures) -> str:
    y = value.yield_
    if y is None:
        body = "No time entries yet: import a time-tracking export to measure hours saved."
    elif isinstance(y, NoEstimate):
        body = f"No estimate: {escape(y.reason)}. AI cost {_money('yield_cost', y.cost)}."
    else:
        ratio = "undefined" if y.ratio is None else f"{y.ratio:.2f}"
        interval = "" if y.ratio_low is None or y.ratio_high is None else f" ({y.ratio_low:.2f} to {y.ratio_high:.2f})"
        body = (
            f"Hours saved {_value('hours_saved', decimal_text(y.hours_saved), f'{y.hours_saved:,.0f} h')} "
            f"({y.hours_saved_low:,.0f} to {y.hours_saved_high:,.0f} h, 90% interval, {y.adopters} adopters), "
            f"worth {_money('yield_value', y.value)} against {_money('yield_cost', y.cost)} of AI cost: "
            f"yield ratio {_value('yield_ratio', '' if y.ratio is None else decimal_text(y.ratio), ratio)}{interval}."
        )
    return f'<div data-part="yield"><strong>Yield (difference in differences)</strong>{body}</div>'


def _outcomes(value: ValueFigures) -> str:
    if not value.outcomes:
        return '<div data-part="cost_per_outcome"><strong>Cost per outcome</strong>No outcomes linked this month.</div>'
    rows = "".join(
        f"<li>{escape(str(r['workflow']))}: "
        f"{_money('cost_per_outcome', r['cost_per_outcome'])} per outcome ({r['outcomes']} outcomes)</li>"  # type: ignore[arg-type]
        for r in value.outcomes
    )
    return f'<div data-part="cost_per_outcome"><strong>Cost per outcome, top workflows</strong><ul>{rows}</ul></div>'


def _maturity(value: ValueFigures) -> str:
    nxt = (
        ""
        if value.next_rung is None
        else f" Next: {escape(value.next_rung)}, which needs: " + "; ".join(escape(m) for m in value.missing)
    )
    rung = _value("rung", value.rung, value.rung)
    return f'<div data-part="maturity"><strong>Maturity rung</strong>{rung}.{nxt}</div>'


def _savings(value: ValueFigures) -> str:
    if not value.savings:
        return '<div data-part="savings"><strong>Top savings</strong>None found in the last 30 days.</div>'
    rows = "".join(
        f"<li>{_money('saving', r.monthly_saving)} a month: {escape(r.evidence)}</li>" for r in value.savings
    )
    return f'<div data-part="savings"><strong>Top savings opportunities</strong><ul>{rows}</ul></div>'


def _value_section(value: ValueFigures | None) -> str:
    if value is None:
        return _pending()
    parts = _yield(value) + _outcomes(value) + _maturity(value) + _savings(value)
    return f'<section data-section="value"><h2>Value and opportunities</h2>{parts}</section>'


def render_cfo(
    figures: MonthFigures,
    value: ValueFigures | None = None,
    *,
    organisation: str = "tokenops",
    generated: datetime | None = None,
) -> str:
    """The whole report for `figures` as a standalone HTML document."""
    made = (generated or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    chart = stacked_bars(series_by(figures.daily, "team"), label=f"Daily AI spend by team, {figures.month}")
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>CFO report {escape(figures.month)} - {escape(organisation)}</title><style>{_CSS}</style></head><body>"
        f'<header><h1>AI spend report: {figures.start:%B %Y}</h1><p class="sub">{escape(organisation)} · '
        f"{figures.start:%Y-%m-%d} to {figures.end:%Y-%m-%d} (UTC, end excluded) · generated {made}</p></header>"
        f"{_headline(figures)}"
        f'<section data-section="trend"><h2>Daily spend by team</h2>{chart}</section>'
        f'<div class="columns">{_teams(figures)}{_value_section(value)}</div>'
        f"{_workflows(figures)}"
        "</body></html>"
    )
