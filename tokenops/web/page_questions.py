"""The five questions (`/questions`): where the tokens go, what drives spend, who loops, who spends, what pays.

Each question is answered by a chart and a table (with its CSV) over the global filters:

1. Which workflows consume the most tokens: tokens per workflow split into uncached input, cached
   input, output and reasoning (`tokenops.analytics.kpis`, as `GET /api/kpis?by=workflow`).
2. Which models drive spend (`spend_by` model, as `GET /api/spend?by=model`).
3. Which agents retry or loop too often: retry rate and iterations per task by workflow (KPIs).
4. Which teams and products (the calls' `feature`) create the most cost (`/api/spend?by=team|feature`).
5. Which workflows produce enough value to justify their cost: business value per $ of AI cost (KPIs).

A team lead's filters are fixed to their team (`scoped_filters`), so every chart and table is theirs.
The independent queries run side by side in a small thread pool (DuckDB reads use their own cursors).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from html import escape
from urllib.parse import quote

import pyarrow as pa
from starlette.requests import Request
from starlette.responses import Response

from tokenops.analytics.kpis import kpis
from tokenops.analytics.spend import spend_by
from tokenops.web.access import scoped_filters
from tokenops.web.api_cache import cached_ledger
from tokenops.web.charts import Bar, hbars
from tokenops.web.frame import frame_for, respond
from tokenops.web.html import Column, Row, Table, href, money, table_html
from tokenops.web.page_workflows import undefined_as_dash

_PCT = Decimal("0.01")


def pct(rate: float | None) -> Decimal | None:
    """A share as a percentage to two decimals (0.02462 -> 2.46); None stays None (undefined)."""
    return None if rate is None else (Decimal(repr(rate)) * 100).quantize(_PCT)


def _int(row: Row, key: str) -> int:
    value = row.get(key)
    return int(str(value)) if value is not None else 0


def _workflow(query: dict[str, str]) -> Column:
    def link(row: Row) -> str | None:
        name = row.get("workflow")
        return href(f"/workflows/{quote(str(name), safe='')}", query) if name is not None else None

    return Column("workflow", "Workflow", link=link)


def _section(number: int, question: str, answers: list[tuple[str, Table]], request: Request) -> str:
    query = dict(request.query_params)
    body = "".join(
        f'<div class="panel">{chart}</div>{undefined_as_dash(table_html(t, request.url.path, query))}'
        for chart, t in answers
    )
    heading = f'<h2 class="question">{number}. {escape(question)}</h2>'
    return f'<section class="question" data-question="{number}">{heading}{body}</section>'


def _tokens(rows: list[dict[str, object]], query: dict[str, str]) -> tuple[str, Table]:
    ranked = sorted(rows, key=lambda r: -(_int(r, "input_tokens") + _int(r, "output_tokens")))
    bars = []
    for r in ranked:
        cached, reasoning = _int(r, "cached_input_tokens"), _int(r, "reasoning_tokens")
        total = _int(r, "input_tokens") + _int(r, "output_tokens")
        parts = (
            ("uncached input", _int(r, "input_tokens") - cached),
            ("cached input", cached),
            ("output", _int(r, "output_tokens") - reasoning),
            ("reasoning", reasoning),
        )
        bars.append(Bar(str(r.get("workflow") or "-"), tuple((k, float(v)) for k, v in parts), f"{total:,} tokens"))
    table = Table(
        "tokens",
        "Tokens per workflow",
        (
            _workflow(query),
            Column("input_tokens", "Input tokens", "int"),
            Column("cached_input_tokens", "of which cached", "int"),
            Column("output_tokens", "Output tokens", "int"),
            Column("reasoning_tokens", "of which reasoning", "int"),
            Column("task_runs", "Task runs", "int"),
            Column("tokens_per_task", "Tokens per task run", "int"),
            Column("unpriced_events", "Unpriced calls", "int"),
        ),
        ranked,
        note="Cached tokens are part of input, reasoning tokens part of output (as providers report them).",
    )
    return hbars(bars, label="Tokens per workflow"), table


def _spend(rows: list[dict[str, object]], key: str, title: str, label: str) -> tuple[str, Table]:
    total = sum((Decimal(str(r["cost"])) for r in rows), Decimal(0))
    shown = [
        {**r, "share_pct": (Decimal(str(r["cost"])) / total * 100).quantize(_PCT) if total else None} for r in rows
    ]
    bars = [
        Bar(str(r.get(key) or "-"), (("cost", Decimal(str(r["cost"]))),), f"{money(r['cost'])} ({r['share_pct']}%)")
        for r in shown[:20]
    ]
    table = Table(
        key + "s",
        title,
        (
            Column(key, label),
            Column("cost", "Cost", "money"),
            Column("share_pct", "% of spend"),
            Column("events", "Calls", "int"),
            Column("input_tokens", "Input tokens", "int"),
            Column("output_tokens", "Output tokens", "int"),
            Column("unpriced_events", "Unpriced calls", "int"),
        ),
        shown,
        note="Unpriced calls have an unknown cost: counted apart, not in the cost.",
    )
    return hbars(bars, label=title), table


def _retries(rows: list[dict[str, object]], query: dict[str, str]) -> tuple[str, Table]:
    runs = [r for r in rows if _int(r, "task_runs")]
    shown = [
        {
            **r,
            "retry_pct": pct(_rate(r, "retry_rate")),
            "escalation_pct": pct(_rate(r, "escalation_rate")),
            "iterations_per_task": _round(_rate(r, "iterations_per_task")),
        }
        for r in sorted(runs, key=lambda r: -(_rate(r, "retry_rate") or 0))
    ]
    bars = [
        Bar(str(r.get("workflow") or "-"), (("retry rate %", Decimal(str(r["retry_pct"] or 0))),), f"{r['retry_pct']}%")
        for r in shown
    ]
    loops = [
        Bar(str(r.get("workflow") or "-"), (("iterations per task", float(str(it))),), f"{float(str(it)):.2f}")
        for r in sorted(runs, key=lambda r: -(_rate(r, "iterations_per_task") or 0))
        if (it := r.get("iterations_per_task")) is not None
    ]
    table = Table(
        "retries",
        "Retries and loops by workflow",
        (
            _workflow(query),
            Column("task_runs", "Task runs", "int"),
            Column("retries", "Retries", "int"),
            Column("retry_pct", "Retry rate %"),
            Column("iterations_per_task", "Iterations per task"),
            Column("escalation_pct", "Escalated runs %"),
            Column("cost", "Cost", "money"),
        ),
        shown,
        note="A retry is a failed call its task run went on after; iterations are the deepest agent loop per run.",
    )
    chart = hbars(bars, label="Retry rate by workflow") + (
        hbars(loops, label="Iterations per task run") if loops else '<p class="empty">No workflow records loops.</p>'
    )
    return chart, table


def _round(value: float | None) -> Decimal | None:
    return None if value is None else Decimal(repr(value)).quantize(_PCT)


def _rate(row: Row, key: str) -> float | None:
    value = row.get(key)
    return None if value is None else float(str(value))


def _value(rows: list[dict[str, object]], defined: bool, query: dict[str, str]) -> tuple[str, Table]:
    ranked = sorted(rows, key=lambda r: -Decimal(str(r.get("value_per_cost") or 0)))
    bars = [
        Bar(
            str(r.get("workflow") or "-"),
            (("value per $", Decimal(str(r["value_per_cost"]))),),
            f"{money(r['value_per_cost'])} per $1" if _int(r, "outcomes") else "no outcomes linked",
        )
        for r in ranked
        if r.get("value_per_cost") is not None
    ]
    table = Table(
        "value",
        "Business value against AI cost",
        (
            _workflow(query),
            Column("cost", "AI cost", "money"),
            Column("outcomes", "Outcomes", "int"),
            Column("outcome_value", "Outcome value", "money"),
            Column("value_per_cost", "Value per $1 of AI", "money"),
        ),
        ranked if defined else [],
        note="Below $1 of value per $1 the workflow costs more than it returns; no outcomes linked means unknown.",
        empty="Outcomes have no model: business value is not defined when filtering by model.",
    )
    chart = hbars(bars, label="Value per $ of AI cost", reference=1.0, ref_label="$1") if defined else ""
    return chart, table


def questions(request: Request) -> Response:
    """The five questions, each a chart, a table and its CSV."""
    filters = scoped_filters(request)
    frame = frame_for(request, "The five questions", "questions")
    ledger = cached_ledger(request)
    query = dict(request.query_params)
    with ThreadPoolExecutor(max_workers=4) as pool:
        by_workflow = pool.submit(kpis, ledger, ["workflow"], filters=filters)
        by = {d: pool.submit(spend_by, ledger, [d], filters=filters) for d in ("model", "team", "feature")}
        workflows: pa.Table = by_workflow.result()
        spends = {d: future.result().to_pylist() for d, future in by.items()}
    rows = workflows.to_pylist()
    parts: list[tuple[int, str, list[tuple[str, Table]]]] = [
        (1, "Which workflows consume the most tokens?", [_tokens(rows, query)]),
        (2, "Which models drive spend?", [_spend(spends["model"], "model", "Spend by model", "Model")]),
        (3, "Which agents retry or loop too often?", [_retries(rows, query)]),
        (
            4,
            "Which teams and products create the most cost?",
            [
                _spend(spends["team"], "team", "Spend by team", "Team"),
                _spend(spends["feature"], "feature", "Spend by product (the calls' feature)", "Product"),
            ],
        ),
        (
            5,
            "Which workflows produce enough value to justify their cost?",
            [_value(rows, "value_per_cost" in workflows.column_names, query)],
        ),
    ]
    content = "".join(_section(n, q, answers, request) for n, q, answers in parts)
    return respond(request, frame, content, [table for _, _, answers in parts for _, table in answers])


pages = [("/questions", questions)]
