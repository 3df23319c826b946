"""Printing results the way the user asked (`--format`): a rich table, CSV or JSON."""

from __future__ import annotations

import csv
import sys
from collections.abc import Mapping, Sequence
from decimal import Decimal
from enum import StrEnum
from typing import Annotated

import pyarrow as pa
import typer
from rich.console import Console
from rich.table import Table

from tokenops.web.responses import decimal_text, dumps


class Format(StrEnum):
    """Output formats of report-like commands."""

    table = "table"
    csv = "csv"
    json = "json"


FormatOption = Annotated[Format, typer.Option("--format", "-f", help="table, csv or json.")]


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return f"{value:,.6f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.1f}"
    return str(value)


def _csv(value: object) -> object:
    if value is None:
        return ""
    return decimal_text(value) if isinstance(value, Decimal) else value


def rows_table(rows: Sequence[Mapping[str, object]], *, empty_column: str = "result") -> pa.Table:
    """Rows as an Arrow table; no rows as an empty `empty_column` (Arrow cannot infer a schema from none)."""
    return pa.Table.from_pylist(rows) if rows else pa.table({empty_column: pa.array([], pa.string())})


def emit_json(content: object) -> None:
    """Print any JSON-able value, indented, with money exact."""
    sys.stdout.write(dumps(content, indent=True).decode() + "\n")


def emit(table: pa.Table, fmt: Format, *, title: str | None = None, console: Console | None = None) -> None:
    """Print an Arrow table in `fmt` (CSV and JSON keep money exact)."""
    rows = table.to_pylist()
    if fmt is Format.json:
        emit_json(rows)
        return
    if fmt is Format.csv:
        writer = csv.writer(sys.stdout)
        writer.writerow(table.column_names)
        for row in rows:
            writer.writerow([_csv(v) for v in row.values()])
        return
    out = Table(title=title, show_lines=False)
    for name, field in zip(table.column_names, table.schema, strict=True):
        numeric = pa.types.is_integer(field.type) or pa.types.is_decimal(field.type) or pa.types.is_floating(field.type)
        out.add_column(name, justify="right" if numeric else "left")
    for row in rows:
        out.add_row(*(_cell(v) for v in row.values()))
    (console or Console()).print(out)
