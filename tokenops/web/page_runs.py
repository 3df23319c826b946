"""The end of the drill-down: one task run with its calls (`/runs/{id}`), one call (`/calls/{id}`).

A team lead reaches only their own team's runs and calls: the run's or call's team is checked
(`ensure_team`, 403 otherwise), and a run's calls are also read through the lead's filters.
"""

from __future__ import annotations

from html import escape
from urllib.parse import quote

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from tokenops.analytics.drilldown import call, run_calls, task_run
from tokenops.analytics.spend import Filters
from tokenops.web.access import ensure_team, require_principal
from tokenops.web.api_cache import cached_ledger
from tokenops.web.frame import frame_for, respond
from tokenops.web.html import Column, Kind, Table, cell, href, kv_table, table_html

_RUN_FACTS: tuple[tuple[str, str, Kind], ...] = (
    ("workflow", "Workflow", "text"),
    ("status", "Status", "text"),
    ("team", "Team", "text"),
    ("user", "User", "text"),
    ("customer", "Customer", "text"),
    ("started_at", "Started", "time"),
    ("ended_at", "Ended", "time"),
    ("calls", "Calls", "int"),
    ("tokens", "Tokens", "int"),
    ("cost", "Cost (priced calls)", "money"),
    ("unpriced_calls", "Unpriced calls", "int"),
    ("max_iteration", "Deepest iteration", "int"),
)
_MONEY_COLUMNS = {"cost_input", "cost_cache_read", "cost_cache_write", "cost_output", "cost_other", "cost_total"}


def run(request: Request) -> Response:
    """A task run: what it was, and each of its calls in order."""
    run_id = request.path_params["task_run_id"]
    require_principal(request)
    ledger = cached_ledger(request)
    record = task_run(ledger, run_id)
    if record is None:
        raise HTTPException(404, f"No task run {run_id!r}")
    ensure_team(request, _optional(record.get("team")))
    principal_team = require_principal(request).team
    frame = frame_for(request, f"Task run {run_id}", "workflows")
    query = dict(request.query_params)
    calls = Table(
        "calls",
        "Calls, in order",
        (
            Column("request_id", "Call", link=lambda r: href(f"/calls/{quote(str(r['request_id']), safe='')}", query)),
            Column("ts", "Time", "time"),
            Column("step", "Step"),
            Column("iteration", "Iteration", "int"),
            Column("model", "Model"),
            Column("status", "Status"),
            Column("input_tokens", "Input tokens", "int"),
            Column("cache_read_tokens", "Cached", "int"),
            Column("output_tokens", "Output tokens", "int"),
            Column("cost", "Cost", "money"),
        ),
        run_calls(ledger, run_id, Filters(team=principal_team)),
        empty="This task run has no recorded calls.",
    )
    workflow = _text(record.get("workflow"))
    back = f"<p>{_link('/workflows/', workflow, 'Workflow ', query)}</p>" if workflow else ""
    facts = kv_table([(escape(label), cell(record.get(key), kind)) for key, label, kind in _RUN_FACTS])
    content = f'{back}<section class="panel" data-run="{escape(run_id)}">{facts}</section>'
    return respond(request, frame, content + table_html(calls, request.url.path, query), [calls])


def call_page(request: Request) -> Response:
    """One call: every column of its ledger row."""
    request_id = request.path_params["request_id"]
    require_principal(request)
    row = call(cached_ledger(request), request_id)
    if row is None:
        raise HTTPException(404, f"No call {request_id!r}")
    ensure_team(request, _optional(row.get("team")))
    frame = frame_for(request, f"Call {request_id}", "workflows")
    query = dict(request.query_params)
    table = Table(
        "call",
        "Ledger row",
        (Column("column", "Column"), Column("value", "Value")),
        [{"column": key, "value": value} for key, value in row.items()],
    )
    pairs = []
    for key, value in row.items():
        kind: Kind = "money" if key in _MONEY_COLUMNS else "time" if key == "ts" else "text"
        shown = cell(value, kind) if not (kind == "money" and value is None and not row.get("unpriced")) else "-"
        pairs.append((f"<code>{escape(key)}</code>", f'<span data-column="{escape(key)}">{shown}</span>'))
    links = []
    if row.get("task_run_id"):
        run_id = str(row["task_run_id"])
        links.append(_link("/runs/", run_id, "Task run ", query))
    if row.get("workflow"):
        name = str(row["workflow"])
        links.append(_link("/workflows/", name, "Workflow ", query))
    content = (
        f"<p>{' · '.join(links)}</p>"
        f'<section class="panel" data-call="{escape(request_id)}"><header><h2>Ledger row</h2>'
        f'<a class="csv" href="{escape(request.url.path)}?format=csv&amp;table=call" download>CSV</a></header>'
        f"{kv_table(pairs)}</section>"
    )
    return respond(request, frame, content, [table])


def _text(value: object) -> str:
    return "" if value is None else str(value)


def _link(prefix: str, ident: str, label: str, query: dict[str, str]) -> str:
    target = href(prefix + quote(ident, safe=""), query)
    return f'<a href="{escape(target)}">{escape(label + ident)}</a>'


def _optional(value: object) -> str | None:
    return None if value is None else str(value)


pages = [("/runs/{task_run_id}", run), ("/calls/{request_id}", call_page)]
