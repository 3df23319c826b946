"""The dashboard's HTML, as small escaping string builders (no template engine is installed).

Owns the page frame (navigation to every page of the dashboard, the signed-in user, the global
filter bar), tables and their CSV twins, and how numbers are shown. Every value that reaches
HTML goes through `escape`; pages never concatenate raw user input.

A `Table` is rendered twice from the same rows: as HTML (formatted, each cell carrying its exact
value in `data-raw`) and as CSV (`?format=csv&table=<id>` on the same URL, so the same filters
apply), which is how a download always matches what is on screen.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from html import escape
from typing import Literal
from urllib.parse import urlencode

from tokenops.web.responses import decimal_text

FILTER_KEYS = ("start", "end", "team", "workflow", "model", "customer")
"""Query-string keys of the global filter bar, carried by every navigation link."""

NAV: tuple[tuple[str, str, str], ...] = (
    ("overview", "/", "Overview"),
    ("questions", "/questions", "Five questions"),
    ("workflows", "/workflows", "Workflows"),
    ("yield", "/yield", "Yield"),
    ("budgets", "/budgets", "Budgets"),
    ("recommendations", "/recommendations", "Recommendations"),
    ("maturity", "/maturity", "Maturity"),
)
"""Every page of the dashboard: (slug, path, label)."""

Kind = Literal["text", "money", "int", "time"]
Row = Mapping[str, object]


@dataclass(frozen=True, slots=True)
class Column:
    """One column of a table."""

    key: str
    """Row key, also the CSV header."""
    label: str
    """Header shown on the page."""
    kind: Kind = "text"
    """How the value is formatted."""
    link: Callable[[Row], str | None] | None = None
    """Where the cell links to (drill-down), if anywhere."""


@dataclass(frozen=True, slots=True)
class Table:
    """Rows shown as an HTML table and downloadable as CSV."""

    id: str
    """Unique on its page; the `table` parameter of the CSV download."""
    title: str
    """Heading."""
    columns: Sequence[Column]
    """What to show, in order."""
    rows: Sequence[Row]
    """The data."""
    note: str = ""
    """A line under the heading (plain text)."""
    empty: str = "No calls match these filters."
    """Shown instead of an empty table."""


@dataclass(frozen=True, slots=True)
class Frame:
    """Everything around a page's content."""

    title: str
    """Page title."""
    active: str
    """Slug of the navigation entry to highlight."""
    path: str
    """Path of the page, the filter bar's form action."""
    query: Mapping[str, str]
    """The request's query string."""
    user: str
    """Who is signed in, e.g. 'ana (lead, support)'."""
    options: Mapping[str, Sequence[str]] = field(default_factory=dict)
    """Choices for the filter bar's team, workflow, model and customer."""
    locked_team: str | None = None
    """A lead's team: shown, not choosable."""


def money(value: object) -> str:
    """Dollars for people: $1,234.56, small amounts to four places, unknown prices as 'unpriced'."""
    if value is None:
        return "unpriced"
    amount = value if isinstance(value, Decimal) else Decimal(str(value))
    if amount != 0 and abs(amount) < 1:
        return f"${amount:,.4f}"
    return f"${amount:,.2f}"


def _raw(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return decimal_text(value)
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def cell(value: object, kind: Kind) -> str:
    """A value formatted for the page (escaped)."""
    if kind == "money":
        return escape(money(value))
    if kind == "int" and isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        return f"{int(value):,}"
    if kind == "time" and isinstance(value, datetime):
        return escape(value.strftime("%Y-%m-%d %H:%M:%S"))
    return escape(_raw(value)) if value is not None else '<span class="muted">-</span>'


def filter_query(query: Mapping[str, str], **changes: str | None) -> str:
    """The filter part of a query string, with `changes` applied (None drops a key)."""
    kept = {k: query[k] for k in FILTER_KEYS if query.get(k)}
    for key, value in changes.items():
        if value:
            kept[key] = value
        else:
            kept.pop(key, None)
    return urlencode(kept)


def href(path: str, query: Mapping[str, str], **changes: str | None) -> str:
    """A link to `path` that keeps the current filters."""
    qs = filter_query(query, **changes)
    return f"{path}?{qs}" if qs else path


def table_html(table: Table, path: str, query: Mapping[str, str]) -> str:
    """A table with its heading and CSV download link."""
    csv_link = (
        href(path, query) + ("&" if filter_query(query) else "?") + urlencode({"format": "csv", "table": table.id})
    )
    head = "".join(f'<th data-key="{escape(c.key)}" class="{c.kind}">{escape(c.label)}</th>' for c in table.columns)
    body = []
    for row in table.rows:
        cells = []
        for c in table.columns:
            value = row.get(c.key)
            shown = cell(value, c.kind)
            target = c.link(row) if c.link else None
            if target:
                shown = f'<a href="{escape(target)}">{shown}</a>'
            cells.append(f'<td class="{c.kind}" data-raw="{escape(_raw(value))}">{shown}</td>')
        body.append(f"<tr>{''.join(cells)}</tr>")
    content = (
        f'<table data-table="{escape(table.id)}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'
        if table.rows
        else f'<p class="empty">{escape(table.empty)}</p>'
    )
    note = f'<p class="note">{escape(table.note)}</p>' if table.note else ""
    return (
        f'<section class="panel" id="t-{escape(table.id)}"><header><h2>{escape(table.title)}</h2>'
        f'<a class="csv" href="{escape(csv_link)}" download>CSV</a></header>{note}{content}</section>'
    )


def table_csv(table: Table) -> str:
    """The table as CSV: keys as header, exact values (money as exact decimals, unpriced empty)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([c.key for c in table.columns])
    for row in table.rows:
        writer.writerow([_raw(row.get(c.key)) for c in table.columns])
    return out.getvalue()


def _select(name: str, label: str, choices: Sequence[str], current: str, locked: str | None = None) -> str:
    if locked is not None:
        return (
            f'<label>{label}<select name="{name}" disabled><option selected>{escape(locked)}</option></select></label>'
        )
    options = ['<option value="">all</option>']
    options += [
        f'<option value="{escape(c)}"{" selected" if c == current else ""}>{escape(c)}</option>' for c in choices
    ]
    if current and current not in choices:
        options.append(f'<option value="{escape(current)}" selected>{escape(current)}</option>')
    return f'<label>{label}<select name="{name}">{"".join(options)}</select></label>'


def filter_bar(frame: Frame) -> str:
    """The global filters: a GET form, so the filters live in the query string and carry across pages."""
    q = frame.query
    customers = "".join(f'<option value="{escape(c)}">' for c in frame.options.get("customer", ()))
    return (
        f'<form class="filters" method="get" action="{escape(frame.path)}">'
        f'<label>From<input type="date" name="start" value="{escape(q.get("start", "")[:10])}"></label>'
        f'<label>To (excl.)<input type="date" name="end" value="{escape(q.get("end", "")[:10])}"></label>'
        + _select("team", "Team", frame.options.get("team", ()), q.get("team", ""), frame.locked_team)
        + _select("workflow", "Workflow", frame.options.get("workflow", ()), q.get("workflow", ""))
        + _select("model", "Model", frame.options.get("model", ()), q.get("model", ""))
        + f'<label>Customer<input name="customer" list="customers" value="{escape(q.get("customer", ""))}">'
        f'<datalist id="customers">{customers}</datalist></label>'
        '<button type="submit">Apply</button>'
        f'<a class="reset" href="{escape(frame.path)}">Reset</a></form>'
    )


def layout(frame: Frame, content: str) -> str:
    """A whole page: head, navigation (filters kept), user, filter bar and content."""
    links = "".join(
        f'<a href="{escape(href(path, frame.query))}"{" class=active" if slug == frame.active else ""}>'
        f"{escape(label)}</a>"
        for slug, path, label in NAV
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(frame.title)} - tokenops</title>"
        '<link rel="icon" href="data:,"><link rel="stylesheet" href="/static/dashboard.css">'
        '<script src="/static/dashboard.js" defer></script></head><body>'
        f'<header class="top"><a class="brand" href="{escape(href("/", frame.query))}">tokenops</a>'
        f'<nav>{links}</nav><div class="user">{escape(frame.user)}'
        '<form method="post" action="/signout"><button type="submit">Sign out</button></form></div></header>'
        f"{filter_bar(frame)}<main><h1>{escape(frame.title)}</h1>{content}</main></body></html>"
    )


def kv_table(pairs: Sequence[tuple[str, str]]) -> str:
    """A two-column table of already-escaped label/value HTML pairs."""
    rows = "".join(f"<tr><th>{label}</th><td>{value}</td></tr>" for label, value in pairs)
    return f'<table class="kv">{rows}</table>'
