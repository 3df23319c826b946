"""Recommendations and what-if (`/recommendations`): what to change, what it would save, where the month ends.

- Ranked savings with the evidence each rests on (`tokenops.analytics.recommend`, as
  `GET /api/recommendations`; the filter's end date is its `as_of`).
- A what-if form: per workflow a model to move its calls to, a prompt-cache hit rate (a share or
  `auto`) and an output cap, plus a discount on every list price. It is a plain GET form, so the
  scenario lives in the URL; the page replays the filtered period under it
  (`tokenops.analytics.whatif.replay`, the same function `POST /api/whatif` runs, over the same
  default window: the 30 days up to the last day with calls) and shows the saving per workflow.
- Month-end spend per team with its interval (`tokenops.analytics.forecast`, as `GET /api/forecast`).

A team lead's filters fix their team, so recommendations, the replay and the forecast cover only it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal, InvalidOperation
from html import escape
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from tokenops.analytics.forecast import Forecast, month_end
from tokenops.analytics.recommend import Recommendation, auto_hit_rates, recommendations
from tokenops.analytics.spend import Filters
from tokenops.analytics.whatif import ModelMap, Scenario, WhatIf, default_window, replay
from tokenops.pricing import PriceOverride
from tokenops.store import Ledger
from tokenops.web.access import scoped_filters
from tokenops.web.api_cache import cached_ledger
from tokenops.web.charts import Bar, Interval, hbars, intervals
from tokenops.web.frame import frame_for, respond
from tokenops.web.html import FILTER_KEYS, Column, Frame, Table, filter_query, href, money, table_html
from tokenops.web.page_workflows import undefined_as_dash
from tokenops.web.responses import decimal_text

SCENARIO_KEYS = ("model:", "cache:", "cap:")
"""Prefixes of the what-if form's per-workflow fields (followed by the workflow name)."""


def table_html_keeping(table: Table, request: Request) -> str:
    """`table_html` whose CSV link also keeps the page's other parameters (a what-if scenario, a yield design)."""
    query = dict(request.query_params)
    extra = {k: v for k, v in query.items() if v and k not in (*FILTER_KEYS, "format", "table")}
    plain = href(request.url.path, query) + ("&" if filter_query(query) else "?")
    return table_html(table, request.url.path, query).replace(
        escape(plain + urlencode({"format": "csv", "table": table.id})),
        escape(plain + urlencode({**extra, "format": "csv", "table": table.id})),
    )


def _overrides(request: Request) -> tuple[PriceOverride, ...]:
    settings = getattr(request.app.state, "settings", None)
    return tuple(settings.pricing.overrides) if settings is not None else ()


def scenario_from(query: Mapping[str, str]) -> tuple[Scenario, list[str]]:
    """The what-if scenario of the form's fields, and the workflows whose cache rate is `auto`; ValueError says why."""
    models, caches, caps, auto = [], {}, {}, []
    for key, value in query.items():
        kind, _, workflow = key.partition(":")
        value = value.strip()
        if not value or not workflow or kind + ":" not in SCENARIO_KEYS:
            continue
        if kind == "model":
            models.append(ModelMap(workflow, value))
        elif kind == "cache" and value == "auto":
            auto.append(workflow)
        elif kind == "cache":
            share = _number(value, key) / 100
            if not 0 <= share <= 1:
                raise ValueError(f"{key}={value!r}: a cache hit rate is a percentage from 0 to 100")
            caches[workflow] = float(share)
        else:
            cap = _number(value, key)
            if cap != cap.to_integral_value() or cap <= 0:
                raise ValueError(f"{key}={value!r}: an output cap is a whole number of tokens above 0")
            caps[workflow] = int(cap)
    overrides: tuple[PriceOverride, ...] = ()
    if query.get("discount", "").strip():
        share = _number(query["discount"], "discount") / 100
        if not 0 < share < 1:
            raise ValueError(f"discount={query['discount']!r}: a discount is a percentage between 0 and 100")
        overrides = (PriceOverride(model="*", discount=share, name=f"what-if {share:.0%} off"),)
    return Scenario(tuple(models), caches, caps, overrides), auto


def _number(value: str, key: str) -> Decimal:
    try:
        number = Decimal(value.strip())
    except InvalidOperation as exc:
        raise ValueError(f"{key}={value!r} is not a number") from exc
    if not number.is_finite():
        raise ValueError(f"{key}={value!r} is not a number")
    return number


def run_whatif(ledger: Ledger, query: Mapping[str, str], filters: Filters, prices: Sequence[PriceOverride]) -> WhatIf:
    """Replay the filtered period (default: the last 30 days with calls) under the form's scenario."""
    scenario, auto = scenario_from(query)
    window = default_window(ledger, filters)
    notes: tuple[str, ...] = ()
    if auto:
        shares, notes = auto_hit_rates(ledger, auto, window)
        rates = {**scenario.cache_hit_rate, **shares}
        scenario = Scenario(scenario.models, rates, scenario.output_cap, scenario.overrides)
    result = replay(ledger, scenario, filters=window, overrides=prices)
    return WhatIf(result.rows, notes + result.notes)


def _form(frame: Frame, query: Mapping[str, str]) -> str:
    models = frame.options.get("model", ())
    hidden = "".join(
        f'<input type="hidden" name="{k}" value="{escape(query[k])}">' for k in FILTER_KEYS if query.get(k)
    )
    rows = []
    for workflow in frame.options.get("workflow", ()):
        current = query.get(f"model:{workflow}", "")
        options = '<option value="">keep</option>' + "".join(
            f"<option{' selected' if m == current else ''}>{escape(m)}</option>" for m in models
        )
        w, cache, cap = (
            escape(v) for v in (workflow, query.get(f"cache:{workflow}", ""), query.get(f"cap:{workflow}", ""))
        )
        rows.append(
            f'<tr><td>{w}</td><td><select name="model:{w}">{options}</select></td>'
            f'<td><input name="cache:{w}" size="6" placeholder="% or auto" value="{cache}"></td>'
            f'<td><input name="cap:{w}" size="8" placeholder="tokens" value="{cap}"></td></tr>'
        )
    discount = escape(query.get("discount", ""))
    return (
        f'<form class="whatif" method="get" action="{escape(frame.path)}">{hidden}<input type="hidden" name="whatif" '
        'value="1"><table><thead><tr><th>Workflow</th><th>Move its calls to</th><th>Cache hit rate %</th>'
        f'<th>Output cap</th></tr></thead><tbody>{"".join(rows)}</tbody></table><div class="actions">'
        f'<label>Discount on every list price, %<input name="discount" size="6" value="{discount}"></label>'
        '<button type="submit">Run the what-if</button></div></form>'
    )


def _whatif_html(result: WhatIf, request: Request) -> tuple[str, Table]:
    rows = [
        {
            "workflow": r.workflow,
            "events": r.events,
            "baseline_cost": r.baseline_cost,
            "scenario_cost": r.scenario_cost,
            "saving": r.saving,
            "clipped_calls": r.clipped_calls,
            "scenario_unpriced_events": r.scenario_unpriced_events,
            "success_before": None if r.quality is None else round(r.quality.success_before, 4),
            "success_after": None if r.quality is None else round(r.quality.success_after, 4),
        }
        for r in result.rows
    ]
    table = Table(
        "whatif",
        "Saving per workflow",
        (
            Column("workflow", "Workflow"),
            Column("events", "Calls", "int"),
            Column("baseline_cost", "Recorded cost", "money"),
            Column("scenario_cost", "Under the scenario", "money"),
            Column("saving", "Saving", "money"),
            Column("clipped_calls", "Answers cut by the cap", "int"),
            Column("scenario_unpriced_events", "No price under the scenario", "int"),
            Column("success_before", "Task success before"),
            Column("success_after", "Expected after"),
        ),
        rows,
        note=" ".join(result.notes),
        empty="No calls in the replayed period.",
    )
    bars = [Bar(str(r.workflow or "-"), (("saving", r.saving),), money(r.saving)) for r in result.rows if r.saving]
    total = result.saving
    kpi = (
        f'<div class="kpis"><div class="kpi" data-kpi="saving" data-value="{decimal_text(total)}"><span class="label">'
        f'Saving over the replayed period</span><span class="value">{escape(money(total))}</span></div></div>'
    )
    return kpi + hbars(bars, label="Saving per workflow") + table_html_keeping(table, request), table


def _forecast_html(found: list[Forecast]) -> tuple[str, Table]:
    marks = []
    for f in found:
        spread = " (run rate, no interval)" if f.low is None else f" ({money(f.low)} to {money(f.high)})"
        marks.append(Interval(f.key or "-", f.forecast, f.low, f.high, money(f.forecast) + spread))
    keys = ("key", "month", "actual_to_date", "forecast", "low", "high", "unpriced_events", "note")
    table = Table(
        "forecast",
        "Month-end spend per team",
        (
            Column("key", "Team"),
            Column("month", "Month"),
            Column("actual_to_date", "Spent so far", "money"),
            Column("forecast", "Month-end forecast", "money"),
            Column("low", "Low", "money"),
            Column("high", "High", "money"),
            Column("unpriced_events", "Unpriced calls", "int"),
            Column("note", "How"),
        ),
        [{k: getattr(f, k) for k in keys} for f in found],
    )
    return intervals(marks, label="Month-end forecast per team"), table


def planning(request: Request) -> Response:
    """Ranked savings, the what-if form and its result, and the month-end forecast."""
    filters = scoped_filters(request)
    frame = frame_for(request, "Recommendations and what-if", "recommendations")
    ledger = cached_ledger(request)
    query = dict(request.query_params)
    prices = _overrides(request)
    with ThreadPoolExecutor(max_workers=3) as pool:
        found = pool.submit(recommendations, ledger, as_of=filters.end, filters=filters, overrides=prices)
        forecast = pool.submit(month_end, ledger, "team", as_of=filters.end, filters=filters)
        whatif = pool.submit(run_whatif, ledger, query, filters, prices) if query.get("whatif") else None
        recs: list[Recommendation] = found.result()
    table = Table(
        "recommendations",
        "Savings opportunities, biggest first",
        (
            Column("rank", "#", "int"),
            Column("kind", "Change"),
            Column("subject", "Where"),
            Column("monthly_saving", "Saving per month", "money"),
            Column("evidence", "Evidence"),
        ),
        [{"rank": i, **_row(r)} for i, r in enumerate(recs, start=1)],
        note="Estimated from the 30 days up to the filter's end date (default: the last day with calls).",
        empty="No savings found in these filters.",
    )
    bars = [Bar(f"{r.kind}: {r.subject}", (("saving", r.monthly_saving),), money(r.monthly_saving)) for r in recs[:12]]
    forecast_chart, forecast_table = _forecast_html(forecast.result())
    tables = [table, forecast_table]
    result = ""
    if whatif is not None:
        result, whatif_table = _whatif_html(whatif.result(), request)
        tables.append(whatif_table)
    path = request.url.path
    content = (
        f'<section class="panel"><h2>Savings per month</h2>{hbars(bars, label="Savings per month")}</section>'
        + table_html(table, path, query)
        + '<section class="panel" id="whatif"><h2>What if?</h2><p class="note">Replays the filtered period (default: '
        "the 30 days up to the last day with calls) with these changes; empty fields change nothing.</p>"
        + _form(frame, query)
        + f"{result}</section>"
        + f'<section class="panel"><h2>Month-end forecast</h2>{forecast_chart}</section>'
        + undefined_as_dash(table_html(forecast_table, path, query))
    )
    return respond(request, frame, content, tables)


def _row(r: Recommendation) -> dict[str, object]:
    """A recommendation as a table row."""
    return {"kind": r.kind, "subject": r.subject, "monthly_saving": r.monthly_saving, "evidence": r.evidence}


pages = [("/recommendations", planning)]
