"""Where the ledger lives: an append-only, idempotent store behind one small interface.

Owns the schema, its migrations and the backends (DuckDB embedded by default). It does not
price or meter anything; analytics query it through `Ledger.query`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from tokenops.store.ledger import Ledger

if TYPE_CHECKING:
    from tokenops.store.duckdb import DuckDBLedger

POSTGRES_SCHEMES = ("postgresql://", "postgres://")
CLICKHOUSE_SCHEMES = ("clickhouse://", "clickhouses://", "chdb:")


def is_server_ledger(url: str | Path) -> bool:
    """Whether `url` names a PostgreSQL or ClickHouse ledger (many readers at once) rather than a DuckDB file."""
    return str(url).startswith(POSTGRES_SCHEMES + CLICKHOUSE_SCHEMES)


def open_ledger(url: str | Path, *, duckdb_threads: int | None = None) -> Ledger:
    """Open a ledger from a path or URL (`duckdb:path`, `path.duckdb`, `:memory:`, `postgresql://...`,
    `clickhouse://host:8123/db`, `chdb:path`, `chdb:path?database=name`); `duckdb_threads` applies to DuckDB."""
    text = str(url)
    if text.startswith(POSTGRES_SCHEMES):
        from tokenops.store.postgres import PostgresLedger  # imported on use: psycopg and SQLGlot load slowly

        return PostgresLedger(text)
    if text.startswith(CLICKHOUSE_SCHEMES):
        from tokenops.store.clickhouse import ClickHouseLedger  # imported on use: chdb is a large library

        if text.startswith("chdb:"):
            path, _, query = text.removeprefix("chdb:").removeprefix("//").partition("?")
            database = dict(parse_qsl(query)).get("database", "tokenops")
            return ClickHouseLedger.embedded(path, database)
        return ClickHouseLedger.http(text)
    if text.startswith("duckdb:"):
        text = text.removeprefix("duckdb:").removeprefix("//")
    if "://" in text:
        raise ValueError(f"Unsupported ledger URL {text!r}; use a DuckDB file or a postgresql:// URL")
    from tokenops.store.duckdb import DuckDBLedger

    return DuckDBLedger(text, threads=duckdb_threads)


def __getattr__(name: str) -> Any:
    # DuckDB is imported on use: a replica on PostgreSQL never loads it
    if name == "DuckDBLedger":
        from tokenops.store.duckdb import DuckDBLedger

        return DuckDBLedger
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["DuckDBLedger", "Ledger", "is_server_ledger", "open_ledger"]
