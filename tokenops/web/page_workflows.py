"""The Workflows pages: what a unit of work costs, which lever moved it, and the drill-down to each call.

`/workflows` ranks workflows by spend with tokens per task run, cost per completed task
(`tokenops.analytics.kpis`) and cost per outcome with its three levers (cost per token x tokens per
task x tasks per outcome, `tokenops.analytics.unit_economics`); then how cost per outcome moved
between two periods, lever by lever (the exact Shapley split of `outcome_variance`, as
`GET /api/cost-per-outcome/variance`), with a waterfall of the biggest mover. `/workflows/{name}`
shows one workflow's levers and waterfall, its cost by agent step and its most expensive task runs,
each linking to the run's calls (`tokenops.web.page_runs`).

The periods compared: B is the filtered range (by default the 30 days up to the last day with
calls, as the what-if replay uses), A the range of the same length just before it.
"""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from html import escape
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response

from tokenops.analytics.drilldown import workflow_runs, workflow_steps
from tokenops.analytics.kpis import kpis
from tokenops.analytics.spend import Filters
from tokenops.analytics.unit_economics import (
    cost_per_outcome,
    levers_from_kpis,
    outcome_table,
    outcome_variance,
    variance_table,
)
from tokenops.analytics.whatif import default_window
from tokenops.store import Ledger
from tokenops.web.access import scoped_filters
from tokenops.web.api_cache import cached_ledger
from tokenops.web.charts import waterfall
from tokenops.web.frame import frame_for, respond
from tokenops.web.html import Column, Row, Table, href, kv_table, money, table_html
from tokenops.web.responses import decimal_text

RUNS_SHOWN = 100
"""Task runs listed on a workflow's page (the most expensive)."""

_MICRO, _MILLI = Decimal("0.000001"), Decimal("0.001")
_LEVERS = (
    ("cost_per_token_effect", "Cost per token"),
    ("tokens_per_task_effect", "Tokens per task"),
    ("tasks_per_outcome_effect", "Tasks per outcome"),
)
_VARIANCE_COLUMNS = (
    Column("cost_per_outcome_a", "Cost / outcome, A", "money"),
    Column("cost_per_outcome_b", "Cost / outcome, B", "money"),
    Column("change", "Change", "money"),
    Column("cost_per_token_effect", "Cost per token effect", "money"),
    Column("tokens_per_task_effect", "Tokens per task effect", "money"),
    Column("tasks_per_outcome_effect", "Tasks per outcome effect", "money"),
)


def undefined_as_dash(table: str) -> str:
    """A table's HTML with empty money cells shown as '-' (undefined, e.g. no outcomes) rather than 'unpriced'."""
    return table.replace('<td class="money" data-raw="">unpriced</td>', '<td class="money" data-raw="">-</td>')


def _levers(row: Row) -> dict[str, object]:
    """The levers for people: $ per million tokens, tasks per outcome to three places (None when undefined)."""
    per_token, per_outcome = row.get("cost_per_token"), row.get("tasks_per_outcome")
    return {
        "usd_per_mtok": None if per_token is None else (Decimal(repr(per_token)) * 1_000_000).quantize(_MICRO),
        "tasks_per_outcome": None if per_outcome is None else Decimal(repr(per_outcome)).quantize(_MILLI),
    }


def periods(ledger: Ledger, filters: Filters) -> tuple[Filters, Filters]:
    """(A, B): B the filtered range (default the last 30 days with calls), A the same length just before."""
    b = default_window(ledger, filters)
    assert b.start is not None and b.end is not None  # default_window fills both
    return dataclasses.replace(b, start=b.start - (b.end - b.start), end=b.start), b


def _span(f: Filters) -> str:
    assert f.start is not None and f.end is not None
    return f"{f.start:%Y-%m-%d} to {f.end:%Y-%m-%d} (excl.)"


def _waterfall(row: Row) -> str:
    before, after = row["cost_per_outcome_a"], row["cost_per_outcome_b"]
    assert isinstance(before, Decimal) and isinstance(after, Decimal)
    steps = [(label, Decimal(str(row[key]))) for key, label in _LEVERS]
    return waterfall(("Period A", before), steps, ("Period B", after))


def _variance(ledger: Ledger, filters: Filters, query: dict[str, str]) -> tuple[str, Table]:
    """The lever-by-lever change of cost per outcome between the two periods, table and waterfall."""
    a, b = periods(ledger, filters)
    found, undefined = outcome_variance(ledger, a, b, "workflow")
    rows = variance_table(found, "workflow").to_pylist()
    api = href(
        "/api/cost-per-outcome/variance",
        {k: v for k, v in query.items() if k not in ("start", "end")},
    )
    link = f"{api}{'&' if '?' in api else '?'}" + "&".join(
        f"{k}={v:%Y-%m-%d}"
        for k, v in (("a_since", a.start), ("a_until", a.end), ("b_since", b.start), ("b_until", b.end))
    )
    note = f"A: {_span(a)}; B: {_span(b)}. The three effects add up exactly to the change."
    if undefined:
        note += f" Undefined (no outcomes or calls in one period): {', '.join(str(u) for u in undefined)}."
    table = Table(
        "variance",
        "What moved cost per outcome",
        (_workflow_link(query), *_VARIANCE_COLUMNS),
        rows,
        note=note,
        empty="Cost per outcome is undefined in one of the periods for every workflow (no outcomes or no calls).",
    )
    chart = ""
    if rows:
        top = rows[0]
        chart = (
            f'<section class="panel" data-waterfall="{escape(str(top["workflow"]))}"><header><h2>Cost per outcome of '
            f"{escape(str(top['workflow']))}, period A to B</h2>"
            f'<a class="csv" href="{escape(link)}">JSON</a></header>{_waterfall(top)}</section>'
        )
    return chart, table


def _workflow_link(query: dict[str, str]) -> Column:
    def link(row: Row) -> str | None:
        name = row.get("workflow")
        return href(f"/workflows/{quote(str(name), safe='')}", query) if name is not None else None

    return Column("workflow", "Workflow", link=link)


def workflows(request: Request) -> Response:
    """Workflows by spend: tokens per run, cost per completed task and per outcome, and what moved it."""
    filters = scoped_filters(request)
    frame = frame_for(request, "Workflows", "workflows")
    ledger = cached_ledger(request)
    query = dict(request.query_params)
    with ThreadPoolExecutor(max_workers=2) as pool:
        variance_job = pool.submit(_variance, ledger, filters, query)
        # one pass over the calls gives the KPIs, the tokens per run (as tokens_per_task) and the levers
        table = kpis(ledger, ["workflow"], filters=filters, run_quantile=0.95)
        outcomes = (
            outcome_table(levers_from_kpis(table, "workflow"), "workflow")
            if "outcomes" in table.column_names
            else cost_per_outcome(ledger, "workflow", filters)
        )
    spend = table.to_pylist()  # cost, calls, completed runs, costliest first
    extra: dict[object, dict[str, object]] = {}
    for r in outcomes.to_pylist():
        keys = ("outcomes", "cost_per_outcome", "cost_per_token", "tokens_per_task", "tasks_per_outcome")
        extra.setdefault(r["workflow"], {}).update({k: r.get(k) for k in keys})
    rows = [{**row, **extra.get(row["workflow"], {})} for row in spend]
    for row in rows:
        row.update(_levers(row))
    shown = Table(
        "workflows",
        "Workflows by spend",
        (
            _workflow_link(query),
            Column("cost", "Cost", "money"),
            Column("events", "Calls", "int"),
            Column("task_runs", "Task runs", "int"),
            Column("mean_cost", "Mean cost / run", "money"),
            Column("median_tokens", "Median tokens / run", "int"),
            Column("p_tokens", "p95 tokens / run", "int"),
            Column("completed_runs", "Completed runs", "int"),
            Column("cost_per_completed_task", "Cost / completed task", "money"),
            Column("outcomes", "Outcomes", "int"),
            Column("cost_per_outcome", "Cost / outcome", "money"),
            Column("usd_per_mtok", "$ / 1M tokens", "money"),
            Column("tokens_per_task", "Tokens / task", "int"),
            Column("tasks_per_outcome", "Tasks / outcome"),
            Column("unpriced_events", "Unpriced calls", "int"),
        ),
        rows,
        note="Cost per outcome = $ per token x tokens per task x tasks per outcome. Calls without a workflow are "
        "grouped as '-'; select a workflow for its steps and task runs.",
    )
    chart, variance = variance_job.result()
    content = undefined_as_dash(table_html(shown, request.url.path, query)) + chart
    content += table_html(variance, request.url.path, query)
    return respond(request, frame, content, [shown, variance])


def _unit_facts(unit: Row, per_task: Row) -> list[tuple[str, str]]:
    def shown(key: str, row: Row) -> str:
        value = row.get(key)
        return (
            f'<span data-value="{decimal_text(value)}">{escape(money(value))}</span>'
            if isinstance(value, Decimal)
            else '<span class="muted" data-value="">undefined</span>'
        )

    levers = _levers(unit)
    product = (
        f"{money(levers['usd_per_mtok']) if levers['usd_per_mtok'] is not None else '-'} x "
        f"{unit.get('tokens_per_task') or 0:,.0f} x "
        f"{levers['tasks_per_outcome'] or '-'}"
    )
    return [
        ("Cost per completed task", shown("cost_per_completed_task", per_task)),
        ("Outcomes", f"{unit.get('outcomes') or 0:,}"),
        ("Cost per outcome", shown("cost_per_outcome", unit)),
        ("= $ per 1M tokens x tokens per task x tasks per outcome", escape(product)),
    ]


@dataclasses.dataclass(frozen=True, slots=True)
class _Totals:
    """A workflow's totals in the filters (what `spend.summary` gives), from its KPI row."""

    cost: Decimal
    """Priced spend."""
    events: int
    """Calls."""
    task_runs: int
    """Distinct task runs of the calls."""
    unpriced_events: int
    """Calls without a price."""
    unpriced_tokens: int
    """Their tokens."""

    @classmethod
    def of(cls, row: Row) -> _Totals:
        def count(key: str) -> int:
            return int(str(row.get(key) or 0))

        cost = row.get("cost")
        return cls(
            cost=cost if isinstance(cost, Decimal) else Decimal(0),
            events=count("events"),
            task_runs=count("task_runs"),
            unpriced_events=count("unpriced_events"),
            unpriced_tokens=count("unpriced_tokens"),
        )


def workflow(request: Request) -> Response:
    """One workflow: totals and unit economics, what moved them, cost by agent step, its costliest task runs."""
    name = request.path_params["workflow"]
    filters = dataclasses.replace(scoped_filters(request), workflow=name)
    frame = frame_for(request, f"Workflow {name}", "workflows")
    ledger = cached_ledger(request)
    query = dict(request.query_params)
    with ThreadPoolExecutor(max_workers=4) as pool:
        variance_job = pool.submit(_variance, ledger, filters, query)
        steps_job = pool.submit(workflow_steps, ledger, name, filters)
        runs_job = pool.submit(workflow_runs, ledger, name, filters, limit=RUNS_SHOWN)
        # the workflow's KPI row has its totals and its levers too: one pass over its calls, not three
        kpi_table = kpis(ledger, ["workflow"], filters=filters)
        unit_table = (
            outcome_table(levers_from_kpis(kpi_table, "workflow"), "workflow")
            if "outcomes" in kpi_table.column_names
            else cost_per_outcome(ledger, "workflow", filters)
        )
    per_task: Row = next((r for r in kpi_table.to_pylist() if r["workflow"] == name), {})
    totals = _Totals.of(per_task)
    steps = Table(
        "steps",
        "Cost by step",
        (
            Column("step", "Step"),
            Column("cost", "Cost", "money"),
            Column("calls", "Calls", "int"),
            Column("task_runs", "Task runs", "int"),
            Column("max_iteration", "Deepest iteration", "int"),
            Column("tokens", "Tokens", "int"),
            Column("unpriced_calls", "Unpriced calls", "int"),
        ),
        steps_job.result(),
    )
    runs = Table(
        "runs",
        "Most expensive task runs",
        (
            Column("task_run_id", "Task run", link=lambda r: href(f"/runs/{quote(str(r['task_run_id']))}", query)),
            Column("cost", "Cost", "money"),
            Column("calls", "Calls", "int"),
            Column("max_iteration", "Deepest iteration", "int"),
            Column("tokens", "Tokens", "int"),
            Column("status", "Status"),
            Column("team", "Team"),
            Column("user", "User"),
            Column("first_call", "First call", "time"),
        ),
        runs_job.result(),
        note=f"The {RUNS_SHOWN} most expensive of {totals.task_runs:,} task runs in these filters.",
    )
    mean = totals.cost / totals.task_runs if totals.task_runs else Decimal(0)
    unit: Row = next((r for r in unit_table.to_pylist() if r["workflow"] == name), {})
    facts = kv_table(
        [
            ("Spend", f'<span data-value="{decimal_text(totals.cost)}">{escape(money(totals.cost))}</span>'),
            ("Calls", f"{totals.events:,}"),
            ("Task runs", f"{totals.task_runs:,}"),
            ("Mean cost per task run", escape(money(mean))),
            ("Unpriced calls", f"{totals.unpriced_events:,} ({totals.unpriced_tokens:,} tokens, cost unknown)"),
            *_unit_facts(unit, per_task),
        ]
    )
    chart, variance = variance_job.result()
    back = f'<p><a href="{escape(href("/workflows", query))}">All workflows</a></p>'
    content = (
        back
        + f'<section class="panel" data-workflow="{escape(name)}">{facts}</section>'
        + (chart or '<p class="empty">Cost per outcome is undefined in one of the two periods: no waterfall.</p>')
        + table_html(variance, request.url.path, query)
        + table_html(steps, request.url.path, query)
        + table_html(runs, request.url.path, query)
    )
    return respond(request, frame, content, [variance, steps, runs])


pages = [("/workflows", workflows), ("/workflows/{workflow}", workflow)]
