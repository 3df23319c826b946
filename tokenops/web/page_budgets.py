"""The Budgets and guardrails page (`/budgets`): how close spend runs to each limit, and what was stopped.

For each task budget in force, the task runs of the filtered period nearest to (or over) their
limit; for each quota, its current period's spend per scope value against the limit; then the
calls the guardrails blocked or downgraded, per day and by rule, team and workflow, with the
spend they avoided (estimated, and labelled so). Every table downloads as CSV, and the same
numbers are served as JSON by `GET /api/budgets` (`tokenops.web.api_budgets`). A team lead sees
only their team's runs, quota use and calls.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from html import escape
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response

from tokenops.analytics.budgets import BudgetBurn, QuotaBurn, Usage
from tokenops.analytics.guard_actions import RollupKey, rollup, totals
from tokenops.web.api_budgets import BudgetsView, view_for
from tokenops.web.chart_limits import LimitBar, daily_counts, limit_bars
from tokenops.web.frame import frame_for, respond
from tokenops.web.html import Column, Table, href, money, table_html
from tokenops.web.responses import decimal_text

_USAGE_COLUMNS = (
    Column("cost", "Spend", "money"),
    Column("tokens", "Tokens", "int"),
    Column("calls", "Calls", "int"),
    Column("unpriced_calls", "Unpriced calls", "int"),
    Column("share_pct", "% of limit"),
    Column("state", "State"),
)
_ACTION_COLUMNS = (
    Column("blocked", "Blocked calls", "int"),
    Column("downgraded", "Downgraded calls", "int"),
    Column("saving", "Avoided spend (est.)", "money"),
    Column("unestimated", "Calls not estimated", "int"),
)


def _limit_text(max_usd: Decimal | None, max_tokens: int | None) -> str:
    parts = [money(max_usd)] if max_usd is not None else []
    if max_tokens is not None:
        parts.append(f"{max_tokens:,} tokens")
    return " and ".join(parts)


def _used_text(usage: Usage, max_usd: Decimal | None, max_tokens: int | None) -> str:
    parts = [f"{money(usage.cost)} of {money(max_usd)}"] if max_usd is not None else []
    if max_tokens is not None:
        parts.append(f"{usage.tokens:,} of {max_tokens:,} tokens")
    return ", ".join(parts)


def _usage_row(usage: Usage, key: str) -> dict[str, object]:
    return {
        key: usage.subject,
        "workflow": usage.workflow,
        "team": usage.team,
        "cost": usage.cost,
        "tokens": usage.tokens,
        "calls": usage.calls,
        "unpriced_calls": usage.unpriced_calls,
        "share_pct": f"{usage.share * 100:.1f}",
        "state": usage.state,
    }


def _kpi(key: str, label: str, shown: str, raw: str) -> str:
    return (
        f'<div class="kpi" data-kpi="{key}" data-value="{escape(raw)}"><span class="label">{escape(label)}</span>'
        f'<span class="value">{escape(shown)}</span></div>'
    )


def _budget_panel(index: int, burn: BudgetBurn, query: dict[str, str], path: str) -> tuple[str, Table]:
    table = Table(
        f"budget_{index}",
        f"Task budget {burn.name}: runs nearest the limit",
        (
            Column("task_run_id", "Task run", link=lambda r: href(f"/runs/{quote(str(r['task_run_id']))}", query)),
            Column("workflow", "Workflow"),
            Column("team", "Team"),
            *_USAGE_COLUMNS,
        ),
        [_usage_row(u, "task_run_id") for u in burn.top],
        note=(
            f"Covers workflows {burn.workflow!r}; limit {_limit_text(burn.max_usd, burn.max_tokens)} per task run, "
            f"on exceed: {burn.on_exceed}. {burn.runs:,} runs in these filters ({money(burn.cost)}), "
            f"{burn.runs_over:,} at or over the limit, {burn.runs_warned:,} past {burn.warn_at * 100:.0f}%."
        ),
        empty="No task runs of this budget's workflows in these filters.",
    )
    bars = [LimitBar(u.subject, u.share, u.state, _used_text(u, burn.max_usd, burn.max_tokens)) for u in burn.top]
    chart = limit_bars(bars, warn_at=burn.warn_at, label=f"Task runs against budget {burn.name}")
    return f'<div data-budget="{escape(burn.name)}">{chart}{table_html(table, path, query)}</div>', table


def _quota_panel(index: int, burn: QuotaBurn, query: dict[str, str], path: str, team: str | None) -> tuple[str, Table]:
    scope_note = f" Only team {team!r}'s calls are counted." if team and burn.scope != "team" else ""
    table = Table(
        f"quota_{index}",
        f"Quota {burn.name}: {burn.scope} spend in {burn.label}",
        (Column("value", burn.scope.capitalize()), *_USAGE_COLUMNS),
        [_usage_row(u, "value") for u in burn.top],
        note=(
            f"Limit {_limit_text(burn.max_usd, burn.max_tokens)} per {burn.scope} ({burn.match!r}, workflows "
            f"{burn.workflow!r}) per {burn.period}; this period runs {burn.start:%Y-%m-%d %H:%M} to "
            f"{burn.end:%Y-%m-%d %H:%M} UTC (local midnight in {burn.zone}); on exceed: {burn.on_exceed}. "
            f"Computed from recorded calls.{scope_note}"
        ),
        empty="No calls covered by this quota in its current period.",
    )
    bars = [LimitBar(u.subject, u.share, u.state, _used_text(u, burn.max_usd, burn.max_tokens)) for u in burn.top]
    chart = limit_bars(bars, warn_at=burn.warn_at, label=f"Spend against quota {burn.name}")
    return f'<div data-quota="{escape(burn.name)}">{chart}{table_html(table, path, query)}</div>', table


def _action_tables(view: BudgetsView) -> list[Table]:
    tables = []
    keys: tuple[tuple[RollupKey, str], ...] = (
        ("day", "Day"),
        ("rule", "Rule"),
        ("team", "Team"),
        ("workflow", "Workflow"),
    )
    for key, title in keys:
        rows = rollup(view.actions, key)
        tables.append(
            Table(
                f"actions_{key}",
                f"Blocked and downgraded calls by {key}",
                (Column(key, title), *_ACTION_COLUMNS),
                rows,
                empty="No calls were blocked or downgraded in these filters.",
            )
        )
    return tables


def budgets(request: Request) -> Response:
    """Burn-down per task budget and quota, and the calls the guardrails blocked or downgraded."""
    view = view_for(request)
    frame = frame_for(request, "Budgets and guardrails", "budgets")
    query, path = dict(request.query_params), request.url.path
    team = frame.locked_team or query.get("team") or None
    done = totals(view.actions)
    saving = done["saving"]
    assert isinstance(saving, Decimal)
    kpis = "".join(
        (
            _kpi("task_budgets", "Task budgets in force", str(len(view.task_budgets)), str(len(view.task_budgets))),
            _kpi("quotas", "Quotas in force", str(len(view.quotas)), str(len(view.quotas))),
            _kpi("blocked", "Blocked calls", f"{done['blocked']:,}", str(done["blocked"])),
            _kpi("downgraded", "Downgraded calls", f"{done['downgraded']:,}", str(done["downgraded"])),
            _kpi("saving", "Avoided spend (estimate)", money(saving), decimal_text(saving)),
        )
    )
    parts, tables = [f'<section class="kpis">{kpis}</section>'], []
    if not view.task_budgets and not view.quotas:
        parts.append(
            '<section class="panel coming" data-empty="policies"><h2>No budgets or quotas in force</h2><p>Add them '
            "in <code>tokenops.toml</code> <code>[guard]</code> or on the running server with <code>tokenops "
            "budgets task</code> / <code>tokenops budgets quota</code> (docs/guardrails.md).</p></section>"
        )
    for index, burn in enumerate(view.task_budgets):
        html, table = _budget_panel(index, burn, query, path)
        parts.append(html)
        tables.append(table)
    for index, quota in enumerate(view.quotas):
        html, table = _quota_panel(index, quota, query, path, team)
        parts.append(html)
        tables.append(table)
    series: dict[str, dict[date, int]] = {"blocked": {}, "downgraded": {}}
    for group in view.actions:
        points = series[group.action]
        points[group.day] = points.get(group.day, 0) + group.calls
    chart = daily_counts({k: v for k, v in series.items() if v}, label="Blocked and downgraded calls per day")
    action_tables = _action_tables(view)
    parts.append(
        '<section class="panel" data-section="actions"><h2>Blocked and downgraded calls</h2>'
        '<p class="note">Avoided spend is an estimate: a blocked call at the mean cost of successful calls of the '
        "same workflow and model; a downgraded call at the requested model's price minus what it cost.</p>"
        f"{chart}</section>"
    )
    parts.append(f'<div class="grid">{"".join(table_html(t, path, query) for t in action_tables)}</div>')
    return respond(request, frame, "".join(parts), [*tables, *action_tables])


pages = [("/budgets", budgets)]
