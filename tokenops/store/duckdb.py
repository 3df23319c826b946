"""The embedded default: one DuckDB file, bulk-loaded from Arrow.

DuckDB takes ~1k single-row inserts/s but hundreds of thousands of rows/s from Arrow, so every
write is a batch. Idempotency is an anti-join on the table's key rather than a PRIMARY KEY
index: the ART index would triple bulk-load time at 10M rows. One writer per file is DuckDB's
rule; writes are serialised by a lock and reads use their own cursors.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import duckdb
import pyarrow as pa

from tokenops.store.ledger import Ledger
from tokenops.store.migrations import MIGRATIONS
from tokenops.store.schema import TABLES, Table


class DuckDBLedger(Ledger):
    """Ledger in a DuckDB file (or in memory with `":memory:"`)."""

    def __init__(self, path: str | Path = ":memory:", *, read_only: bool = False) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        # rows have no meaningful order (every query sorts), and keeping it halves bulk-load speed
        self._conn = duckdb.connect(self.path, read_only=read_only, config={"preserve_insertion_order": False})
        self._lock = threading.RLock()
        if not read_only:
            self.migrate()

    def migrate(self) -> list[str]:
        """Apply pending migrations; returns the names of those applied."""
        with self._lock:
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS _migrations (name VARCHAR PRIMARY KEY, applied_at TIMESTAMP)"
            )
            done = {r[0] for r in self._conn.execute("SELECT name FROM _migrations").fetchall()}
            applied = []
            for migration in MIGRATIONS:
                if migration.__name__ in done:
                    continue
                self._conn.execute("BEGIN")
                migration(self._conn)
                self._conn.execute("INSERT INTO _migrations VALUES (?, now()::TIMESTAMP)", [migration.__name__])
                self._conn.execute("COMMIT")
                applied.append(migration.__name__)
            self._index_keys()
            return applied

    def append(self, table: str, data: pa.Table) -> int:
        spec = TABLES[table]
        data = data.select([c.name for c in spec.columns]).cast(spec.arrow_schema)
        with self._lock:
            cur = self._conn.cursor()
            try:
                cur.register("_batch", data)
                cur.execute("BEGIN")
                written = self._replace(cur, spec) if spec.replace else self._insert_new(cur, spec)
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            finally:
                cur.unregister("_batch")
                cur.close()
        return written

    def _replace(self, cur: duckdb.DuckDBPyConnection, spec: Table) -> int:
        """Last row for a key wins, within the batch and against the table."""
        key, cols = ", ".join(spec.key), ", ".join(c.name for c in spec.columns)
        cur.execute(
            f"CREATE TEMP TABLE _b AS SELECT {cols} FROM (SELECT *, row_number() OVER () AS _i "
            f"FROM _batch) QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY _i DESC) = 1"
        )
        match = " AND ".join(f"t.{k} = b.{k}" for k in spec.key)
        new = cur.execute(f"SELECT count(*) FROM _b b WHERE NOT EXISTS (SELECT 1 FROM {spec.name} t WHERE {match})")
        res = new.fetchone()
        cur.execute(f"DELETE FROM {spec.name} WHERE ({key}) IN (SELECT ({key}) FROM _b)")
        cur.execute(f"INSERT INTO {spec.name} ({cols}) SELECT {cols} FROM _b")
        cur.execute("DROP TABLE _b")
        return int(res[0]) if res else 0  # rows with a new key; replaced rows are not new

    def _insert_new(self, cur: duckdb.DuckDBPyConnection, spec: Table) -> int:
        """Insert rows whose key is new.

        Keys are checked first against `_keys_<table>`, a column of 64-bit key hashes: scanning
        integers is ~10x cheaper than joining the string keys of a growing table. Only when a
        hash matches (a real re-import, or a hash collision) is the exact string anti-join run.
        """
        key, cols, hashes = ", ".join(spec.key), ", ".join(c.name for c in spec.columns), _keys_table(spec)
        cur.execute(f"CREATE TEMP TABLE _h AS SELECT hash({key}) AS h FROM _batch")  # hash each key once
        try:
            unique = cur.execute("SELECT count(*) = count(DISTINCT h) FROM _h").fetchone()
            if unique and unique[0]:
                seen = cur.execute(f"SELECT count(*) FROM _h WHERE h IN (SELECT h FROM {hashes})").fetchone()
                if not (seen and seen[0]):  # the common case: nothing to check, insert straight from Arrow
                    res = cur.execute(f"INSERT INTO {spec.name} ({cols}) SELECT {cols} FROM _batch").fetchone()
                    cur.execute(f"INSERT INTO {hashes} SELECT h FROM _h")
                    return int(res[0]) if res else 0
        finally:
            cur.execute("DROP TABLE _h")
        # a key (or a hash) repeats within the batch or is already stored: check exactly
        source = f"(SELECT DISTINCT ON ({key}) * FROM _batch)"
        match = " AND ".join(f"t.{k} = b.{k}" for k in spec.key)
        cur.execute(
            f"CREATE TEMP TABLE _new AS SELECT {cols} FROM {source} b "
            f"WHERE NOT EXISTS (SELECT 1 FROM {spec.name} t WHERE {match})"
        )
        res = cur.execute(f"INSERT INTO {spec.name} ({cols}) SELECT {cols} FROM _new").fetchone()
        cur.execute(f"INSERT INTO {hashes} SELECT hash({key}) FROM _new")
        cur.execute("DROP TABLE _new")
        return int(res[0]) if res else 0

    def _index_keys(self) -> None:
        """Create or rebuild the key-hash tables (an acceleration structure, not ledger data)."""
        for spec in TABLES.values():
            if spec.replace:
                continue
            hashes = _keys_table(spec)
            self._conn.execute(f"CREATE TABLE IF NOT EXISTS {hashes} (h UBIGINT)")
            counts = self._conn.execute(
                f"SELECT (SELECT count(*) FROM {hashes}), (SELECT count(*) FROM {spec.name})"
            ).fetchone()
            if counts and counts[0] != counts[1]:
                self._conn.execute(f"DELETE FROM {hashes}")
                self._conn.execute(f"INSERT INTO {hashes} SELECT hash({', '.join(spec.key)}) FROM {spec.name}")

    def query(self, sql: str, params: Sequence[object] = ()) -> pa.Table:
        cur = self._conn.cursor()
        try:
            relation = cur.sql(sql, params=list(params) or None)
            if relation is None:
                raise ValueError(f"query returned no result set: {sql[:80]!r}")
            return relation.to_arrow_table()
        finally:
            cur.close()

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def _keys_table(spec: Table) -> str:
    return f"_keys_{spec.name}"
