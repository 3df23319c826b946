"""Where the ledger lives: an append-only, idempotent store behind one small interface.

Owns the schema, its migrations and the backends (DuckDB embedded by default). It does not
price or meter anything; analytics query it through `Ledger.query`.
"""

from __future__ import annotations

from pathlib import Path

from tokenops.store.duckdb import DuckDBLedger
from tokenops.store.ledger import Ledger


def open_ledger(url: str | Path) -> Ledger:
    """Open a ledger from a path or URL (`duckdb:path`, `path.duckdb`, `:memory:`, `postgresql://...`,
    `clickhouse://host:8123/db`, `chdb:path`)."""
    text = str(url)
    if text.startswith(("postgresql://", "postgres://")):
        from tokenops.store.postgres import PostgresLedger  # imported on use: psycopg and SQLGlot load slowly

        return PostgresLedger(text)
    if text.startswith(("clickhouse://", "clickhouses://", "chdb:")):
        from tokenops.store.clickhouse import ClickHouseLedger  # imported on use: chdb is a large library

        if text.startswith("chdb:"):
            return ClickHouseLedger.embedded(text.removeprefix("chdb:").removeprefix("//"))
        return ClickHouseLedger.http(text)
    if text.startswith("duckdb:"):
        text = text.removeprefix("duckdb:").removeprefix("//")
    if "://" in text:
        raise ValueError(f"Unsupported ledger URL {text!r}; use a DuckDB file or a postgresql:// URL")
    return DuckDBLedger(text)


__all__ = ["DuckDBLedger", "Ledger", "open_ledger"]
