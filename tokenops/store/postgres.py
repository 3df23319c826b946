"""The shared store: one PostgreSQL database that several gateway replicas write to at once.

Every append is one transaction, and nothing is ever written row by row. Each table's key has
a UNIQUE index, so the database itself decides which keys are new and concurrent writers of
overlapping batches neither duplicate nor lose rows:

- Fast path (append-only tables): the Arrow batch, sorted by key, is streamed with `COPY` (CSV
  written by Arrow in C) straight into the table inside a savepoint. Fresh gateway events, the
  common case, cost one COPY.
- When a key already exists (a replay, a re-import, another writer's copy of the same rows), the
  COPY fails as a whole and the savepoint is rolled back; the batch is then copied into a
  temporary table and moved with one `INSERT ... SELECT ... ORDER BY key ON CONFLICT DO NOTHING`
  (`DO UPDATE` for the replace tables, which always take this path).

Rows go in key order on both paths, so two writers take their key locks in the same order and
do not deadlock each other; a deadlock or serialisation failure is retried anyway.

The spend rollups (`migrations.ROLLUPS`, hourly and daily) are tables here, updated in the
append's transaction by exactly the events it inserted, so a replayed or concurrently written
event is never counted twice. On the fast path every row of the batch is new, so DuckDB sums
the Arrow batch in-process with the rollup's own SELECT and the deltas are copied in and added
(`INSERT ... ON CONFLICT DO UPDATE SET calls = calls + EXCLUDED.calls, ...`). On the merge
path the `INSERT ... ON CONFLICT DO NOTHING RETURNING *` feeds the same sums in one statement.
Rollup rows are taken last and in key order, so writers hold those hot rows only until commit.

Queries are DuckDB-dialect SQL translated by SQLGlot, and come back with DuckDB's Arrow types
(`tokenops.store._sql`), so analytics run unchanged on either backend.
"""

from __future__ import annotations

import contextlib
import io
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

import psycopg
from psycopg import errors as pgerrors

from tokenops.store.ledger import Ledger
from tokenops.store.migrations import MIGRATIONS, ROLLUP_KEY, ROLLUP_SUMS, ROLLUPS, rollup_select
from tokenops.store.schema import TABLES, Table

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

    from tokenops.store.duckdb import DuckDBLedger

_MIGRATION_LOCK = 0x70_6B_6F_70_73  # pg_advisory_xact_lock key: one migrator at a time
_COPY_ROWS = 16_384
"""Rows encoded at a time while streaming a batch."""
_RETRIES = 5
_IDLE_CONNECTIONS = 4
_CACHE = 1_024
"""Translated queries (and their result schemas) kept per ledger."""


class _Translating:
    """Runs migrations written for DuckDB on PostgreSQL, statement by statement."""

    keeps_rollups = True
    """Rollups are tables, backfilled by their migration (`migrations.m004_usage_rollups`)."""

    def __init__(self, cur: psycopg.Cursor[tuple[object, ...]]) -> None:
        self._cur = cur

    def execute(self, sql: str, /) -> object:
        from tokenops.store._sql import ddl_to_postgres  # SQLGlot: only while a migration runs

        return self._cur.execute(ddl_to_postgres(sql))


class PostgresLedger(Ledger):
    """Ledger in a PostgreSQL database, e.g. `PostgresLedger("postgresql://user@host/tokenops")`."""

    keeps_rollups = True

    def __init__(self, dsn: str, *, migrate: bool = True) -> None:
        self.dsn = dsn
        self._lock = threading.Lock()
        self._idle: list[psycopg.Connection[tuple[object, ...]]] = []
        self._sql: dict[str, str] = {}
        self._schemas: dict[tuple[object, ...], pa.Schema | None] = {}
        self._oracle: DuckDBLedger | None = None
        self._summer: duckdb.DuckDBPyConnection | None = None
        """Sums fresh Arrow batches into rollup deltas (opened on first use); used under `_sum_lock`."""
        self._sum_lock = threading.Lock()
        if migrate:
            self.migrate()

    @contextlib.contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = psycopg.connect(self.dsn, autocommit=True)
        try:
            yield conn
        finally:
            with self._lock:
                if conn.closed or conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                    conn.close()
                elif len(self._idle) < _IDLE_CONNECTIONS:
                    self._idle.append(conn)
                else:
                    conn.close()

    def migrate(self) -> list[str]:
        """Apply pending migrations (one process at a time) and the key indexes; returns those applied."""
        applied: list[str] = []
        with self._connection() as conn, conn.transaction(), conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", [_MIGRATION_LOCK])
            cur.execute("CREATE TABLE IF NOT EXISTS _migrations (name VARCHAR PRIMARY KEY, applied_at TIMESTAMP)")
            done = {str(r[0]) for r in cur.execute("SELECT name FROM _migrations").fetchall()}
            if any(m.__name__ not in done for m in MIGRATIONS) and _exists(cur, "usage_events"):
                # appends wait until commit, so a backfill sees every event and misses none written meanwhile
                cur.execute("LOCK TABLE usage_events IN SHARE MODE")
            for migration in MIGRATIONS:
                if migration.__name__ in done:
                    continue
                migration(_Translating(cur))
                cur.execute(
                    "INSERT INTO _migrations VALUES (%s, now() AT TIME ZONE 'UTC')",
                    [migration.__name__],
                )
                applied.append(migration.__name__)
            for spec in TABLES.values():
                # the idempotency key: ON CONFLICT needs a unique index to arbitrate on
                cur.execute(f"CREATE UNIQUE INDEX IF NOT EXISTS {spec.name}_key ON {spec.name} ({', '.join(spec.key)})")
            for name in ROLLUPS:
                # NULL is a value of a rollup key (no team), which needs PostgreSQL 15
                key = ", ".join(ROLLUP_KEY)
                cur.execute(f"CREATE UNIQUE INDEX IF NOT EXISTS {name}_key ON {name} ({key}) NULLS NOT DISTINCT")
        return applied

    def append(self, table: str, data: pa.Table) -> int:
        spec = TABLES[table]
        data = data.select([c.name for c in spec.columns]).cast(spec.arrow_schema)
        if data.num_rows == 0:
            return 0
        rollups = self.keeps_rollups and spec.name == "usage_events"  # off only in a benchmark's baseline

        def write(conn: psycopg.Connection[tuple[object, ...]], cur: psycopg.Cursor[tuple[object, ...]]) -> int:
            if not spec.replace:
                try:
                    with conn.transaction():  # a savepoint: a failed COPY leaves nothing behind
                        self._copy(cur, spec, data.sort_by([(k, "ascending") for k in spec.key]), spec.name)
                    fresh = True  # no key existed, none repeated: every row is new
                except pgerrors.UniqueViolation:
                    fresh = False  # some keys exist: merge below
                if fresh:
                    if rollups:
                        self._add_to_rollups(cur, data)
                    return int(data.num_rows)
            self._copy_to_temp(cur, spec, data)
            if spec.replace:
                return self._upsert(cur, spec)
            return self._insert_new(cur, spec, rollups=rollups)

        return self._in_transaction(write)

    def append_rows(self, table: str, data: Sequence[Mapping[str, object]]) -> int:
        """The gateway's batches: COPY from Python rows, merged and rolled up in SQL, with no Arrow or DuckDB.

        A gateway replica thus never loads pyarrow, numpy, DuckDB or SQLGlot (~90 MB). Tables whose
        rows replace older ones take the Arrow path.
        """
        spec = TABLES[table]
        if not data:
            return 0
        if spec.replace:
            return super().append_rows(table, data)
        names = [c.name for c in spec.columns]
        rollups = self.keeps_rollups and spec.name == "usage_events"

        def write(conn: psycopg.Connection[tuple[object, ...]], cur: psycopg.Cursor[tuple[object, ...]]) -> int:
            self._create_batch(cur, spec)
            with cur.copy(f"COPY _batch ({', '.join(names)}) FROM STDIN") as copy:
                for row in data:
                    copy.write_row([row[name] for name in names])
            return self._insert_new(cur, spec, rollups=rollups)  # inserts in key order: locks taken in one order

        return self._in_transaction(write)

    def _in_transaction(
        self, write: Callable[[psycopg.Connection[tuple[object, ...]], psycopg.Cursor[tuple[object, ...]]], int]
    ) -> int:
        """`write` in one transaction, retried when concurrent writers deadlock or fail to serialise."""
        for attempt in range(_RETRIES):
            try:
                with self._connection() as conn, conn.transaction(), conn.cursor() as cur:
                    return write(conn, cur)
            except (pgerrors.DeadlockDetected, pgerrors.SerializationFailure):
                if attempt == _RETRIES - 1:
                    raise
                time.sleep(0.05 * 2**attempt)
        raise AssertionError("unreachable")

    def ping(self) -> None:
        with self._connection() as conn:
            conn.execute("SELECT 1").fetchone()

    def _copy_to_temp(self, cur: psycopg.Cursor[tuple[object, ...]], spec: Table, data: pa.Table) -> None:
        """Stream the batch into `_batch`."""
        self._create_batch(cur, spec)
        self._copy(cur, spec, data, "_batch")

    @staticmethod
    def _create_batch(cur: psycopg.Cursor[tuple[object, ...]], spec: Table) -> None:
        """`_batch`: a temporary copy of the table, dropped at commit (numbered rows for a replace table)."""
        order = ", _i bigint GENERATED ALWAYS AS IDENTITY" if spec.replace else ""
        cur.execute(f"CREATE TEMP TABLE _batch (LIKE {spec.name}{order}) ON COMMIT DROP")

    def _copy(self, cur: psycopg.Cursor[tuple[object, ...]], spec: Table, data: pa.Table, into: str) -> None:
        """Stream the batch into a table with COPY."""
        self._copy_columns(cur, [c.name for c in spec.columns], data, into)

    def _copy_columns(
        self, cur: psycopg.Cursor[tuple[object, ...]], names: Sequence[str], data: pa.Table, into: str
    ) -> None:
        """Stream Arrow columns `names` (in that order) into a table with COPY."""
        import pyarrow.csv as pacsv

        from tokenops.store import _pgbinary

        cols = ", ".join(names)
        data = data.select(list(names))
        if _pgbinary.supports(data.schema):  # the server parses binary rows about twice as fast as CSV
            with cur.copy(f"COPY {into} ({cols}) FROM STDIN (FORMAT binary)") as copy:
                copy.write(_pgbinary.HEADER)
                for batch in data.to_batches(max_chunksize=_COPY_ROWS):
                    copy.write(_pgbinary.encode(batch))
                copy.write(_pgbinary.TRAILER)
            return
        options = pacsv.WriteOptions(include_header=False)
        with cur.copy(f"COPY {into} ({cols}) FROM STDIN (FORMAT csv)") as copy:
            for batch in data.to_batches(max_chunksize=_COPY_ROWS):
                buffer = io.BytesIO()
                # CSV from Arrow's C writer: NULL is an empty field, an empty string is ""
                pacsv.write_csv(batch, buffer, options)
                copy.write(buffer.getbuffer())

    def _insert_new(self, cur: psycopg.Cursor[tuple[object, ...]], spec: Table, *, rollups: bool = False) -> int:
        """Insert rows whose key is new; a key repeated within the batch counts once.

        With `rollups`, the rows actually inserted (RETURNING) are summed into the rollups in the same statement
        (`rollup_select` is written in SQL both databases read alike, so no translation is needed).
        """
        key, cols = ", ".join(spec.key), ", ".join(c.name for c in spec.columns)
        insert = (
            f"INSERT INTO {spec.name} ({cols}) SELECT {cols} FROM _batch ORDER BY {key} ON CONFLICT ({key}) DO NOTHING"
        )
        if not rollups:
            cur.execute(insert)
            return max(cur.rowcount, 0)
        adds = [
            f"{name} AS ({self._rollup_upsert(name, '(' + rollup_select(bucket, '_new') + ')')})"
            for name, bucket in ROLLUPS.items()
        ]
        row = cur.execute(
            f"WITH _new AS ({insert} RETURNING *), {', '.join(adds)} SELECT count(*) FROM _new"
        ).fetchone()
        return int(str(row[0])) if row else 0

    def _add_to_rollups(self, cur: psycopg.Cursor[tuple[object, ...]], data: pa.Table) -> None:
        """Add a batch of events, all new, to every rollup: summed here, copied in, added on the server."""
        names = [*ROLLUP_KEY, *ROLLUP_SUMS]
        for name, bucket in ROLLUPS.items():
            with self._sum_lock:
                if self._summer is None:
                    import duckdb

                    self._summer = duckdb.connect(config={"threads": 1})
                self._summer.register("_fresh", data)
                try:
                    delta = self._summer.sql(rollup_select(bucket, "_fresh")).to_arrow_table()
                finally:
                    self._summer.unregister("_fresh")
            cur.execute(f"CREATE TEMP TABLE _delta_{name} (LIKE {name}) ON COMMIT DROP")
            self._copy_columns(cur, names, delta, f"_delta_{name}")
            cur.execute(self._rollup_upsert(name, f"(SELECT * FROM _delta_{name})"))

    @staticmethod
    def _rollup_upsert(name: str, rows: str) -> str:
        """Add rollup rows (a parenthesised query with the rollup's columns) to `name`, in key order."""
        key, cols = ", ".join(ROLLUP_KEY), ", ".join((*ROLLUP_KEY, *ROLLUP_SUMS))
        adds = ", ".join(f"{c} = {name}.{c} + EXCLUDED.{c}" for c in ROLLUP_SUMS)
        return (
            f"INSERT INTO {name} ({cols}) SELECT {cols} FROM {rows} AS d ORDER BY {key} "
            f"ON CONFLICT ({key}) DO UPDATE SET {adds}"
        )

    def _upsert(self, cur: psycopg.Cursor[tuple[object, ...]], spec: Table) -> int:
        """Last row for a key wins; counts rows with a new key (replaced rows are not new)."""
        key, cols = ", ".join(spec.key), ", ".join(c.name for c in spec.columns)
        updates = ", ".join(f"{c.name} = EXCLUDED.{c.name}" for c in spec.columns if c.name not in spec.key)
        action = f"DO UPDATE SET {updates}" if updates else "DO NOTHING"
        # xmax is 0 on a freshly inserted row version and set on one written by the UPDATE branch
        row = cur.execute(
            f"WITH written AS (INSERT INTO {spec.name} ({cols}) "
            f"SELECT DISTINCT ON ({key}) {cols} FROM _batch ORDER BY {key}, _i DESC "
            f"ON CONFLICT ({key}) {action} RETURNING xmax = 0 AS new) "
            "SELECT count(*) FILTER (WHERE new) FROM written"
        ).fetchone()
        return int(str(row[0])) if row else 0

    def query(self, sql: str, params: Sequence[object] = ()) -> pa.Table:
        text = self._translate(sql)
        schema = self._result_schema(sql, params)
        with self._connection() as conn, conn.cursor() as cur:
            cur.execute(text, list(params) or None)
            if cur.description is None:
                raise ValueError(f"query returned no result set: {sql[:80]!r}")
            names = [d.name for d in cur.description]
            from tokenops.store._sql import to_arrow

            return to_arrow(names, cur.fetchall(), schema)

    def query_values(self, sql: str, params: Sequence[object] = ()) -> list[dict[str, object]]:
        with self._connection() as conn, conn.cursor() as cur:
            cur.execute(self._translate(sql), list(params) or None)
            names = [d.name for d in cur.description or ()]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def _translate(self, sql: str) -> str:
        text = self._sql.get(sql)
        if text is None:
            from tokenops.store._sql import to_postgres  # SQLGlot loads on the first report, not in a gateway

            text = to_postgres(sql)
            if len(self._sql) >= _CACHE:
                self._sql.clear()
            self._sql[sql] = text
        return text

    def _result_schema(self, sql: str, params: Sequence[object]) -> pa.Schema | None:
        """DuckDB's result schema for the query, bound on an empty ledger; None if DuckDB cannot bind it."""
        cache_key = (sql, *(type(p) for p in params))
        if cache_key in self._schemas:
            return self._schemas[cache_key]
        import duckdb

        from tokenops.store.duckdb import DuckDBLedger

        with self._lock:
            if self._oracle is None:
                self._oracle = DuckDBLedger(":memory:")
            oracle = self._oracle
        try:
            schema: pa.Schema | None = oracle.query(sql, params).schema
        except duckdb.Error:
            schema = None  # PostgreSQL-only SQL (catalog queries): types as PostgreSQL returns them
        if len(self._schemas) >= _CACHE:
            self._schemas.clear()
        self._schemas[cache_key] = schema
        return schema

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
            oracle, self._oracle = self._oracle, None
        for conn in idle:
            conn.close()
        if oracle is not None:
            oracle.close()
        with self._sum_lock:
            if self._summer is not None:
                self._summer.close()


def _exists(cur: psycopg.Cursor[tuple[object, ...]], table: str) -> bool:
    row = cur.execute("SELECT to_regclass(%s) IS NOT NULL", [table]).fetchone()
    return bool(row and row[0])
