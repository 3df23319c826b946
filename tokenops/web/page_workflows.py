"""The Workflows pages: every workflow's cost per task run, then one workflow's steps and task runs.

`/workflows` ranks workflows by spend with tokens and cost per task run; `/workflows/{name}`
breaks one workflow down by agent step and lists its most expensive task runs, each linking to
the run's calls (`tokenops.web.page_runs`). Cost per completed task, per outcome and the
three-lever decomposition come from `tokenops.analytics.unit_economics` once it exists; the page
says so rather than showing a stand-in.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from html import escape
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response

from tokenops.analytics.drilldown import workflow_runs, workflow_steps
from tokenops.analytics.spend import spend_by, summary, tokens_per_task
from tokenops.web.access import scoped_filters
from tokenops.web.frame import frame_for, ledger_of, respond
from tokenops.web.html import Column, Row, Table, href, kv_table, money, table_html
from tokenops.web.responses import decimal_text

RUNS_SHOWN = 100
"""Task runs listed on a workflow's page (the most expensive)."""

_COMING = (
    '<section class="panel coming"><h2>Coming next</h2><p>Cost per completed task and per outcome, and the '
    "three-lever decomposition (price per token, tokens per task, tasks per outcome), will appear here once the "
    "unit-economics analytics land.</p></section>"
)


def _workflow_link(query: dict[str, str]) -> Column:
    def link(row: Row) -> str | None:
        name = row.get("workflow")
        return href(f"/workflows/{quote(str(name), safe='')}", query) if name is not None else None

    return Column("workflow", "Workflow", link=link)


def workflows(request: Request) -> Response:
    """Workflows by spend, with the distribution of tokens per task run."""
    filters = scoped_filters(request)
    frame = frame_for(request, "Workflows", "workflows")
    ledger = ledger_of(request)
    per_task = {r["workflow"]: r for r in tokens_per_task(ledger, filters=filters).to_pylist()}
    rows = []
    for row in spend_by(ledger, ["workflow"], filters=filters).to_pylist():
        task = per_task.get(row["workflow"], {})
        rows.append({**row, **{k: v for k, v in task.items() if k != "workflow"}})
    query = dict(request.query_params)
    table = Table(
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
            Column("unpriced_events", "Unpriced calls", "int"),
        ),
        rows,
        note="Calls without a workflow are grouped as '-'. Select a workflow to see its steps and task runs.",
    )
    return respond(request, frame, table_html(table, request.url.path, query) + _COMING, [table])


def workflow(request: Request) -> Response:
    """One workflow: totals, cost by agent step, and its most expensive task runs."""
    name = request.path_params["workflow"]
    filters = dataclasses.replace(scoped_filters(request), workflow=name)
    frame = frame_for(request, f"Workflow {name}", "workflows")
    ledger = ledger_of(request)
    totals = summary(ledger, filters)
    query = dict(request.query_params)
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
        workflow_steps(ledger, name, filters),
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
        workflow_runs(ledger, name, filters, limit=RUNS_SHOWN),
        note=f"The {RUNS_SHOWN} most expensive of {totals.task_runs:,} task runs in these filters.",
    )
    mean = totals.cost / totals.task_runs if totals.task_runs else Decimal(0)
    facts = kv_table(
        [
            ("Spend", f'<span data-value="{decimal_text(totals.cost)}">{escape(money(totals.cost))}</span>'),
            ("Calls", f"{totals.events:,}"),
            ("Task runs", f"{totals.task_runs:,}"),
            ("Mean cost per task run", escape(money(mean))),
            ("Unpriced calls", f"{totals.unpriced_events:,} ({totals.unpriced_tokens:,} tokens, cost unknown)"),
        ]
    )
    back = f'<p><a href="{escape(href("/workflows", query))}">All workflows</a></p>'
    content = (
        back
        + f'<section class="panel">{facts}</section>'
        + table_html(steps, request.url.path, query)
        + table_html(runs, request.url.path, query)
        + _COMING
    )
    return respond(request, frame, content, [steps, runs])


pages = [("/workflows", workflows), ("/workflows/{workflow}", workflow)]
