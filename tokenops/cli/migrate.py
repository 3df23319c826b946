"""`tokenops migrate`: move a DuckDB ledger into another backend (PostgreSQL) without loss.

Every table is streamed in Arrow batches through the target's idempotent `Ledger.append`, so an
interrupted run can simply be run again: keys already there are skipped (or, for the replace
tables, rewritten with the same values) and nothing is counted twice. Afterwards row counts and
`sum(cost_total)` are compared on both sides; any difference is an error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Annotated

import duckdb
import pyarrow as pa
import typer
from rich.console import Console

from tokenops.cli.common import fail
from tokenops.cli.output import Format, emit
from tokenops.store import Ledger, open_ledger
from tokenops.store.schema import TABLES

BATCH_ROWS = 100_000
"""Rows read from the source and appended to the target at a time."""


@dataclass(frozen=True, slots=True)
class Moved:
    """What one table's migration did, and the totals on both sides afterwards."""

    table: str
    """Ledger table."""
    source_rows: int
    """Rows in the source."""
    new_rows: int
    """Rows this run added to the target (0 when re-run)."""
    target_rows: int
    """Rows in the target afterwards."""
    source_cost: Decimal | None
    """sum(cost_total) in the source, for tables that have it."""
    target_cost: Decimal | None
    """sum(cost_total) in the target afterwards."""

    @property
    def ok(self) -> bool:
        """Both sides hold the same number of rows and the same money."""
        return self.source_rows == self.target_rows and self.source_cost == self.target_cost


def _totals(query: Callable[[str], list[dict[str, object]]], table: str) -> tuple[int, Decimal | None]:
    """Row count and sum(cost_total) of a table (None for tables without money)."""
    has_cost = any(c.name == "cost_total" for c in TABLES[table].columns)
    cost = "coalesce(sum(cost_total), 0)::DECIMAL(38,12)" if has_cost else "NULL::DECIMAL(38,12)"
    row = query(f"SELECT count(*) AS n, {cost} AS cost FROM {table}")[0]
    value = row["cost"]
    return int(str(row["n"])), Decimal(str(value)) if value is not None else None


def migrate_ledger(
    source: str | Path,
    target: Ledger,
    *,
    batch_rows: int = BATCH_ROWS,
    progress: Callable[[str, int], None] | None = None,
) -> list[Moved]:
    """Copy every table of the DuckDB file `source` into `target`; returns what moved per table.

    Args:
        source: A DuckDB ledger file, read directly (read-only) so tables stream in batches.
        target: Any ledger, e.g. `open_ledger("postgresql://...")`.
        batch_rows: Rows per Arrow batch.
        progress: Called with (table, rows read so far) after each batch.
    """
    if not Path(source).is_file():
        raise FileNotFoundError(f"No DuckDB ledger at {str(source)!r}")
    moved: list[Moved] = []
    with duckdb.connect(str(source), read_only=True) as conn:

        def read(sql: str) -> list[dict[str, object]]:
            return conn.sql(sql).to_arrow_table().to_pylist()  # type: ignore[no-any-return]

        present = {str(r["table_name"]) for r in read("SELECT table_name FROM information_schema.tables")}
        for spec in TABLES.values():
            if spec.name not in present:  # a ledger from before the table existed: nothing to move
                continue
            cols = ", ".join(c.name for c in spec.columns)
            reader = conn.sql(f"SELECT {cols} FROM {spec.name}").to_arrow_reader(batch_rows)
            new = done = 0
            for batch in reader:
                new += target.append(spec.name, pa.Table.from_batches([batch]))
                done += batch.num_rows
                if progress is not None:
                    progress(spec.name, done)
            source_rows, source_cost = _totals(read, spec.name)
            target_rows, target_cost = _totals(target.query_rows, spec.name)
            moved.append(Moved(spec.name, source_rows, new, target_rows, source_cost, target_cost))
    return moved


def _source_path(text: str) -> Path:
    if "://" in text and not text.startswith("duckdb://"):
        raise ValueError(f"--from must be a DuckDB ledger (duckdb:FILE or a path), not {text!r}")
    return Path(text.removeprefix("duckdb:").removeprefix("//"))


def migrate(
    source: Annotated[str, typer.Option("--from", help="The DuckDB ledger to copy: duckdb:FILE or a path.")],
    target: Annotated[str, typer.Option("--to", help="The ledger to fill, e.g. postgresql://user@host/tokenops.")],
    batch_rows: Annotated[int, typer.Option(help="Rows per batch.", min=1)] = BATCH_ROWS,
    fmt: Annotated[Format, typer.Option("--format", "-f", help="table, csv or json.")] = Format.table,
) -> None:
    """Copy a DuckDB ledger into PostgreSQL (or any ledger URL); safe to re-run, verified afterwards.

    Prints per table the rows in the source, the rows this run added, and the row counts and
    sum(cost_total) on both sides; exits with status 1 when they differ (a target that already
    held other data differs too).
    """
    status = Console(stderr=True)
    try:
        path = _source_path(source)
        with open_ledger(target) as ledger:
            moved = migrate_ledger(
                path, ledger, batch_rows=batch_rows, progress=lambda t, n: status.print(f"{t}: {n:,} rows", end="\r")
            )
    except (ValueError, FileNotFoundError, duckdb.Error) as exc:
        raise fail(str(exc)) from exc
    rows = [
        {
            "table": m.table,
            "source_rows": m.source_rows,
            "new_rows": m.new_rows,
            "target_rows": m.target_rows,
            "source_cost": m.source_cost,
            "target_cost": m.target_cost,
            "ok": m.ok,
        }
        for m in moved
    ]
    emit(pa.Table.from_pylist(rows, schema=_SCHEMA), fmt, title=f"{path} -> {_redacted(target)}")
    bad = [m.table for m in moved if not m.ok]
    if bad:
        raise fail(f"Totals differ after the migration in {', '.join(bad)}; is the target shared with other data?", 1)


def _redacted(url: str) -> str:
    """A URL without its password, for printing."""
    head, sep, tail = url.rpartition("@")
    if not sep or ":" not in head.split("//", 1)[-1]:
        return url
    scheme, _, userinfo = head.partition("//")
    return f"{scheme}//{userinfo.split(':', 1)[0]}:***@{tail}"


_SCHEMA = pa.schema(
    [
        pa.field("table", pa.string()),
        pa.field("source_rows", pa.int64()),
        pa.field("new_rows", pa.int64()),
        pa.field("target_rows", pa.int64()),
        pa.field("source_cost", pa.decimal128(38, 12)),
        pa.field("target_cost", pa.decimal128(38, 12)),
        pa.field("ok", pa.bool_()),
    ]
)
