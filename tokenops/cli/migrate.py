"""`tokenops migrate`: move a ledger between backends (DuckDB, PostgreSQL, ClickHouse) without loss.

Every table the schema declares is streamed in Arrow batches through the target's idempotent
`Ledger.append`, so an interrupted run can simply be run again: keys already there are skipped
(or, for the replace tables, rewritten with the same values) and nothing is counted twice. A
DuckDB file is read directly (read-only, one scan per table); a PostgreSQL or ClickHouse ledger is
read page by page in key order (`WHERE key > last ORDER BY key LIMIT n`, an index range on both).
Derived data (task-run totals, rollups) is not copied: the target keeps its own from what is
appended. Afterwards the row count and the sum of every money, quantity and token column are
compared on both sides; any difference is an error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Annotated

import duckdb
import pyarrow as pa
import typer
from rich.console import Console

from tokenops.cli.common import fail
from tokenops.cli.output import Format, FormatOption, emit
from tokenops.errors import TokenopsError
from tokenops.store import Ledger, is_server_ledger, open_ledger
from tokenops.store.schema import TABLES, Table

BATCH_ROWS = 100_000
"""Rows read from the source and appended to the target at a time."""

Query = Callable[[str], list[dict[str, object]]]


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
    differs: tuple[str, ...] = ()
    """Other summed columns (money, quantities, tokens) whose totals differ between the sides."""

    @property
    def ok(self) -> bool:
        """Both sides hold the same number of rows, the same money and the same token counts."""
        return self.source_rows == self.target_rows and self.source_cost == self.target_cost and not self.differs


def _summed(spec: Table) -> list[str]:
    """Columns whose totals prove a table arrived whole: money, quantities and counts."""
    return [c.name for c in spec.columns if c.sql.startswith(("DECIMAL", "BIGINT", "INTEGER"))]


def _totals(query: Query, spec: Table) -> dict[str, Decimal]:
    """Row count (`_rows`) and the sum of every summed column of a table."""
    sums = [f'coalesce(sum("{c}"), 0)::DECIMAL(38,12) AS "{c}"' for c in _summed(spec)]
    row = query(f"SELECT {', '.join(['count(*) AS _rows', *sums])} FROM {spec.name}")[0]
    return {k: Decimal(str(v)) for k, v in row.items()}


def _moved(spec: Table, new: int, source: dict[str, Decimal], target: dict[str, Decimal]) -> Moved:
    cost = "cost_total" in source
    differs = tuple(k for k in source if k not in ("_rows", "cost_total") and source[k] != target.get(k))
    return Moved(
        spec.name,
        int(source["_rows"]),
        new,
        int(target["_rows"]),
        source["cost_total"] if cost else None,
        target["cost_total"] if cost else None,
        differs,
    )


def _pages(ledger: Ledger, spec: Table, batch_rows: int) -> Iterator[pa.Table]:
    """A table of a server ledger in key order, `batch_rows` at a time (keyset paging: each page is an index range)."""
    cols = ", ".join(f'"{c.name}"' for c in spec.columns)
    key = ", ".join(f'"{k}"' for k in spec.key)
    after: list[object] = []
    while True:
        where = f"({key}) > ({', '.join('?' * len(after))})" if after else "TRUE"
        page = ledger.query(f"SELECT {cols} FROM {spec.name} WHERE {where} ORDER BY {key} LIMIT {batch_rows}", after)
        if page.num_rows:
            yield page
        if page.num_rows < batch_rows:
            return
        last = page.slice(page.num_rows - 1).select(list(spec.key)).to_pylist()[0]
        after = [last[k] for k in spec.key]


class _Source:
    """The ledger being copied: a DuckDB file read directly, or any ledger URL."""

    def __init__(self, location: str | Path, stack: ExitStack) -> None:
        text = str(location)
        self.ledger: Ledger | None = None
        self.conn: duckdb.DuckDBPyConnection | None = None
        if is_server_ledger(text):
            self.ledger = stack.enter_context(open_ledger(text))
            return
        path = Path(text.removeprefix("duckdb:").removeprefix("//"))
        if not path.is_file():
            raise FileNotFoundError(f"No DuckDB ledger at {str(path)!r}")
        self.conn = stack.enter_context(duckdb.connect(str(path), read_only=True))

    def tables(self) -> set[str]:
        """Ledger tables present (a ledger from before a table existed lacks it)."""
        if self.conn is None:
            return set(TABLES)  # server ledgers are migrated to the current schema when opened
        return {str(r["table_name"]) for r in self.query("SELECT table_name FROM information_schema.tables")}

    def query(self, sql: str) -> list[dict[str, object]]:
        """Rows of a small query."""
        if self.conn is not None:
            return self.conn.sql(sql).to_arrow_table().to_pylist()  # type: ignore[no-any-return]
        assert self.ledger is not None
        return self.ledger.query_rows(sql)

    def batches(self, spec: Table, batch_rows: int) -> Iterator[pa.Table]:
        """A table's rows in batches."""
        if self.ledger is not None:
            yield from _pages(self.ledger, spec, batch_rows)
            return
        assert self.conn is not None
        cols = ", ".join(f'"{c.name}"' for c in spec.columns)
        for batch in self.conn.sql(f"SELECT {cols} FROM {spec.name}").to_arrow_reader(batch_rows):
            yield pa.Table.from_batches([batch])


def migrate_ledger(
    source: str | Path,
    target: Ledger,
    *,
    batch_rows: int = BATCH_ROWS,
    progress: Callable[[str, int], None] | None = None,
) -> list[Moved]:
    """Copy every table of the ledger `source` into `target`; returns what moved per table.

    Args:
        source: A DuckDB ledger file (`duckdb:FILE` or a path), or a PostgreSQL or ClickHouse URL.
        target: Any ledger, e.g. `open_ledger("postgresql://...")`.
        batch_rows: Rows per Arrow batch.
        progress: Called with (table, rows read so far) after each batch.
    """
    moved: list[Moved] = []
    with ExitStack() as stack:
        reader = _Source(source, stack)
        present = reader.tables()
        for spec in TABLES.values():
            if spec.name not in present:  # nothing to move
                continue
            new = done = 0
            for batch in reader.batches(spec, batch_rows):
                new += target.append(spec.name, batch)
                done += batch.num_rows
                if progress is not None:
                    progress(spec.name, done)
            moved.append(_moved(spec, new, _totals(reader.query, spec), _totals(target.query_rows, spec)))
    return moved


def _location(text: str) -> str:
    """A ledger URL, or a DuckDB path without its `duckdb:` prefix, for comparing source and target."""
    if is_server_ledger(text):
        return text.rstrip("/")
    return str(Path(text.removeprefix("duckdb:").removeprefix("//")).resolve())


def _check_pair(source: str, target: str) -> None:
    if "://" in source and not source.startswith("duckdb:") and not is_server_ledger(source):
        raise ValueError(f"--from {source!r} is not a ledger: use duckdb:FILE, postgresql://... or clickhouse://...")
    if _location(source) == _location(target):
        raise ValueError(f"--from and --to are the same ledger ({_redacted(target)!r})")
    if source.startswith("chdb:") and target.startswith("chdb:"):
        raise ValueError("chdb opens one data directory per process: copy chdb to chdb through DuckDB or a server")


def migrate(
    source: Annotated[
        str,
        typer.Option("--from", help="The ledger to copy: duckdb:FILE (or a path), postgresql://..., clickhouse://..."),
    ],
    target: Annotated[
        str,
        typer.Option(
            "--to", help="The ledger to fill: postgresql://USER@HOST/DB, clickhouse://HOST:8123/DB, chdb:DIR."
        ),
    ],
    batch_rows: Annotated[int, typer.Option(help="Rows per batch.", min=1)] = BATCH_ROWS,
    fmt: FormatOption = Format.table,
) -> None:
    """Copy a ledger into another backend (DuckDB, PostgreSQL, ClickHouse); safe to re-run, verified afterwards.

    Prints per table the rows in the source, the rows this run added, and the row counts and
    sum(cost_total) on both sides (token and other money sums are compared too); exits with
    status 1 when they differ (a target that already held other data differs too).
    """
    status = Console(stderr=True)
    try:
        _check_pair(source, target)
        with open_ledger(target.removeprefix("duckdb:").removeprefix("//")) as ledger:
            moved = migrate_ledger(
                source, ledger, batch_rows=batch_rows, progress=lambda t, n: status.print(f"{t}: {n:,} rows", end="\r")
            )
    except _failures() as exc:
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
            "differs": ", ".join(m.differs),
        }
        for m in moved
    ]
    emit(pa.Table.from_pylist(rows, schema=_SCHEMA), fmt, title=f"{_redacted(source)} -> {_redacted(target)}")
    bad = [f"{m.table} ({', '.join(_differences(m))})" for m in moved if not m.ok]
    if bad:
        raise fail(f"Totals differ after the migration in {'; '.join(bad)}; is the target shared with other data?", 1)
    metered = next((m.target_cost for m in moved if m.table == "usage_events"), None) or Decimal(0)
    status.print(
        f"Verified: {sum(m.source_rows for m in moved):,} rows in {len(moved)} tables, ${metered:,.6f} of metered "
        f"calls, the same on both sides; {sum(m.new_rows for m in moved):,} rows were new in the target.",
        highlight=False,
    )


def _differences(m: Moved) -> list[str]:
    """What differs in one table, for the error message."""
    rows = [f"rows {m.source_rows:,} -> {m.target_rows:,}"] if m.source_rows != m.target_rows else []
    cost = ["cost_total"] if m.source_cost != m.target_cost else []
    return [*rows, *cost, *m.differs]


def _failures() -> tuple[type[Exception], ...]:
    """What opening or reading a ledger raises when it is missing, unreachable or refuses a statement."""
    import httpx  # imported on use, as open_ledger imports the drivers
    import psycopg

    return (ValueError, FileNotFoundError, duckdb.Error, TokenopsError, RuntimeError, psycopg.Error, httpx.HTTPError)


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
        pa.field("differs", pa.string()),
    ]
)
