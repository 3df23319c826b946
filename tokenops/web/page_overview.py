"""The Overview page (`/`): where the money went, what is unknown, and where to look next.

Shows the period's spend and the month to date, calls out unpriced calls (cost unknown, not
zero) and unattributed spend, draws daily spend by team, and ranks workflows, models and teams;
each workflow links to its task runs (drill-down). The month-end forecast and anomalies come
from `tokenops.analytics.forecast` / `anomalies` once those exist; until then the page says so.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from decimal import Decimal
from html import escape
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response

from tokenops.analytics.rankings import rankings
from tokenops.analytics.spend import Filters, Summary, spend_by, summary
from tokenops.web.access import scoped_filters
from tokenops.web.api_cache import cached_ledger
from tokenops.web.charts import series_by, stacked_bars
from tokenops.web.frame import frame_for, respond
from tokenops.web.html import Column, Row, Table, href, money, table_html
from tokenops.web.responses import decimal_text

TOP = 25
"""Rows of each ranking."""


def _kpi(key: str, label: str, shown: str, raw: str, extra: str = "") -> str:
    return (
        f'<div class="kpi" data-kpi="{key}" data-value="{escape(raw)}"><span class="label">{escape(label)}</span>'
        f'<span class="value">{escape(shown)}</span>{extra}</div>'
    )


def _month_to_date(request: Request, filters: Filters) -> tuple[str, Decimal]:
    now = datetime.now(UTC)
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    mtd = spend_by(cached_ledger(request), filters=dataclasses.replace(filters, start=start, end=None)).to_pylist()[0]
    return start.strftime("%B %Y"), Decimal(str(mtd["cost"]))


def _callouts(totals: Summary) -> str:
    parts = []
    if totals.unpriced_events:
        parts.append(
            f'<p class="callout warn" data-callout="unpriced"><strong>{totals.unpriced_events:,} calls are unpriced'
            f"</strong> ({totals.unpriced_tokens:,} tokens): their cost is unknown, not $0, and is not in the totals. "
            "Add a price in <code>tokenops.toml</code> <code>[pricing.overrides]</code>; the models table shows "
            "which models lack one.</p>"
        )
    if totals.unattributed_cost:
        share = totals.unattributed_cost / totals.cost * 100 if totals.cost else 0
        parts.append(
            f'<p class="callout warn" data-callout="unattributed"><strong>{escape(money(totals.unattributed_cost))} '
            f"is unattributed</strong> ({share:.1f}% of spend has neither a user nor a team). Give those callers "
            "their own gateway keys or set the <code>X-Tokenops-User</code>/<code>-Team</code> headers.</p>"
        )
    return "".join(parts)


def _tables(request: Request, filters: Filters) -> list[Table]:
    query = dict(request.query_params)
    numbers = (
        Column("cost", "Cost", "money"),
        Column("events", "Calls", "int"),
        Column("input_tokens", "Input tokens", "int"),
        Column("output_tokens", "Output tokens", "int"),
        Column("unpriced_events", "Unpriced calls", "int"),
    )

    def to_workflow(row: Row) -> str | None:
        name = row.get("workflow")
        return href(f"/workflows/{quote(str(name), safe='')}", query) if name is not None else None

    def narrow(key: str) -> Column:
        return Column(key, key.capitalize(), link=lambda r: href("/", query, **{key: str(r[key])}) if r[key] else None)

    ranked = rankings(cached_ledger(request), ["workflow", "model", "team"], filters, top=TOP)
    tables = []
    for key, title, first in (
        ("workflow", "Top workflows", Column("workflow", "Workflow", link=to_workflow)),
        ("model", "Top models", narrow("model")),
        ("team", "Top teams", narrow("team")),
    ):
        rank = ranked[key]
        note = f"The {TOP} largest of {rank.total}." if rank.total > TOP else ""
        tables.append(Table(f"top_{key}s", title, (first, *numbers), rank.rows, note=note))
    return tables


def overview(request: Request) -> Response:
    """Spend, month to date, unknowns called out, daily trend by team and the top spenders."""
    filters = scoped_filters(request)
    frame = frame_for(request, "Overview", "overview")
    totals = summary(cached_ledger(request), filters)
    month, mtd = _month_to_date(request, filters)
    trend = spend_by(cached_ledger(request), ["team"], grain="day", filters=filters).to_pylist()
    tables = _tables(request, filters)
    query = dict(request.query_params)
    share = totals.unattributed_cost / totals.cost * 100 if totals.cost else 0
    kpis = "".join(
        (
            _kpi("cost", "Spend (filtered period)", money(totals.cost), decimal_text(totals.cost)),
            _kpi("mtd", f"Month to date ({month})", money(mtd), decimal_text(mtd)),
            _kpi("events", "Calls", f"{totals.events:,}", str(totals.events)),
            _kpi("task_runs", "Task runs", f"{totals.task_runs:,}", str(totals.task_runs)),
            _kpi(
                "unpriced",
                "Unpriced calls",
                f"{totals.unpriced_events:,}",
                str(totals.unpriced_events),
                f'<span class="sub">{totals.unpriced_tokens:,} tokens, cost unknown</span>',
            ),
            _kpi(
                "unattributed",
                "Unattributed spend",
                money(totals.unattributed_cost),
                decimal_text(totals.unattributed_cost),
                f'<span class="sub">{share:.1f}% of spend</span>',
            ),
        )
    )
    coming = (
        '<section class="panel coming"><h2>Coming next</h2><p>The month-end forecast and anomaly alerts '
        "(runaway loops, prompt changes that multiply tokens) will appear here once the forecasting and anomaly "
        "analytics land. Nothing here is estimated in the meantime.</p></section>"
    )
    content = (
        f'<div class="kpis">{kpis}</div>{_callouts(totals)}'
        f'<section class="panel"><header><h2>Daily spend by team</h2>'
        f'<a class="csv" href="{escape(href("/api/spend", query, by="team", grain="day"))}">JSON</a></header>'
        f"{stacked_bars(series_by(trend, 'team'), label='Daily spend by team')}</section>"
        f'<div class="grid">{"".join(table_html(t, request.url.path, query) for t in tables)}</div>{coming}'
    )
    return respond(request, frame, content, tables)


pages = [("/", overview)]
