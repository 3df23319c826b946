"""The embedded default: one DuckDB file, bulk-loaded from Arrow.

DuckDB takes ~1k single-row inserts/s but hundreds of thousands of rows/s from Arrow, so every
write is a batch. Idempotency is an anti-join on the table's key rather than a PRIMARY KEY
index: the ART index would triple bulk-load time at 10M rows. One writer per file is DuckDB's
rule; writes are serialised by a lock and reads use their own cursors.

`task_run_totals` is a table here (m005), kept exactly as calls arrive: a small append folds its
new calls into the runs they touch in its own transaction; a bulk load leaves a watermark behind
that `sync_run_totals` (the next report, or the next open) catches up in one pass (docs/analytics.md).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from tokenops.store.ledger import Ledger
from tokenops.store.migrations import MIGRATIONS, RUN_PARTIALS, UNIFORM
from tokenops.store.schema import TABLES, Table


class DuckDBLedger(Ledger):
    """Ledger in a DuckDB file (or in memory with `":memory:"`)."""

    _run_totals: bool | None = None
    """Whether `task_run_totals` is a table (m005); None until first asked."""
    _writable: bool = False
    """Whether this connection may write (set once migrations ran)."""

    def __init__(
        self,
        path: str | Path = ":memory:",
        *,
        read_only: bool = False,
        memory_limit: str | None = None,
        threads: int | None = None,
    ) -> None:
        """Open (and migrate) the ledger.

        Args:
            path: DuckDB file, or `":memory:"`.
            read_only: Open without taking the writer lock (no migrations).
            memory_limit: DuckDB's buffer pool cap (`"256MB"`); DuckDB's default is 80% of RAM, and
                its cache of written blocks grows to it, so a long import's RSS grows with the file.
            threads: DuckDB worker threads (default: one per core).
        """
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        # rows have no meaningful order (every query sorts), and keeping it halves bulk-load speed
        config: dict[str, str | bool | int | float | list[str]] = {"preserve_insertion_order": False}
        if memory_limit is not None:
            config["memory_limit"] = memory_limit
        if threads is not None:
            config["threads"] = threads
        self._conn = duckdb.connect(self.path, read_only=read_only, config=config)
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
                migration(_Migrating(self._conn))
                self._conn.execute("INSERT INTO _migrations VALUES (?, now()::TIMESTAMP)", [migration.__name__])
                self._conn.execute("COMMIT")
                applied.append(migration.__name__)
            self._index_keys()
            self._writable = True
            self.sync_run_totals()
            return applied

    def append(self, table: str, data: pa.Table) -> int:
        spec = TABLES[table]
        data = data.select([c.name for c in spec.columns]).cast(spec.arrow_schema)
        with self._lock:
            cur = self._conn.cursor()
            try:
                cur.register("_batch", data)
                runs_current = spec.name == "task_runs" and self._task_runs_current(cur)
                cur.execute("BEGIN")
                written = self._replace(cur, spec) if spec.replace else self._insert_new(cur, spec)
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            finally:
                cur.unregister("_batch")
                cur.close()
            if runs_current:  # after COMMIT: the replaced runs' rowids are only final now (a crash before: resync)
                self._conn.execute(
                    f"UPDATE _run_totals_state SET task_runs = ({_RUNS_COUNT}), task_runs_rowid = ({_RUNS_ROWID})"
                )
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
        if spec.name == "task_runs" and self._keeps_run_totals():
            cur.execute(
                "UPDATE task_run_totals SET status = b.status FROM _b b "
                "WHERE task_run_totals.task_run_id = b.task_run_id"
            )
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
                    self._inserted(cur, spec, "_batch", int(res[0]) if res else 0)
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
        self._inserted(cur, spec, "_new", int(res[0]) if res else 0)
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

    def _keeps_run_totals(self) -> bool:
        """Whether `task_run_totals` is a table here (m005 applied), read once."""
        if self._run_totals is None:
            with self._lock:
                rows = self._conn.execute(
                    "SELECT table_type FROM information_schema.tables WHERE table_name = 'task_run_totals'"
                ).fetchall()
                self._run_totals = bool(rows) and rows[0][0] == "BASE TABLE"
        return self._run_totals

    def sync_run_totals(self) -> bool:
        """Bring `task_run_totals` up to date with the calls and task runs; whether it now is.

        False when the ledger keeps no such table or is read-only and behind: read the calls then.
        """
        if not self._keeps_run_totals():
            return False
        reader = self._conn.cursor()  # the common case, current, is answered without waiting for a writer
        try:
            if _lag(reader) is None:
                return True
        finally:
            reader.close()
        with self._lock:
            cur = self._conn.cursor()
            try:
                lag = _lag(cur)
                if lag is None:
                    return True
                if not self._writable:
                    return False
                cur.execute("BEGIN")
                try:
                    _catch_up(cur, lag)
                    cur.execute("COMMIT")
                except BaseException:
                    cur.execute("ROLLBACK")
                    raise
                return True
            finally:
                cur.close()

    def _task_runs_current(self, cur: duckdb.DuckDBPyConnection) -> bool:
        """Whether the statuses in `task_run_totals` are those of `task_runs` (as the state records it)."""
        if not self._keeps_run_totals():
            return False
        row = cur.execute(
            f"SELECT task_runs = ({_RUNS_COUNT}) AND task_runs_rowid = ({_RUNS_ROWID}) FROM _run_totals_state"
        ).fetchone()
        return bool(row and row[0])

    def _inserted(self, cur: duckdb.DuckDBPyConnection, spec: Table, source: str, n: int) -> None:
        """Fold `n` new calls (the rows of `source`) into `task_run_totals`, in the append's transaction.

        Only when the totals were current before (so they stay a prefix of the calls) and the batch is
        small: a bulk load leaves the watermark behind and `sync_run_totals` catches up once, later.
        """
        if spec.name != "usage_events" or not n or not self._keeps_run_totals():
            return
        row = cur.execute("SELECT events, (SELECT count(*) FROM usage_events) FROM _run_totals_state").fetchone()
        if row is None or row[0] != row[1] - n or n > EAGER_ROWS:
            return
        _merge_runs(cur, source)
        cur.execute("UPDATE _run_totals_state SET events = ?", [row[1]])

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


EAGER_ROWS = 100_000
"""Largest append whose calls are folded into `task_run_totals` at once; bigger ones (bulk loads) are caught up
by the next `sync_run_totals` (the next read, or the next open), which costs one pass instead of one per batch."""

_RUNS_COUNT = "SELECT count(*) FROM task_runs"
_RUNS_ROWID = "SELECT coalesce(max(rowid), -1) FROM task_runs"
_TOTALS_COLUMNS = (
    "task_run_id, first_ts, last_ts, last_error_ts, calls, unpriced_calls, errors, tokens, cost, max_iteration, "
    "workflow, team, user_id, customer, feature, mixed, status"
)


class _Migrating:
    """The connection as migrations see it: this backend keeps `task_run_totals` as a table (m005)."""

    keeps_run_totals = True

    def __init__(self, conn: duckdb.DuckDBPyConnection) -> None:
        self._conn = conn

    def execute(self, sql: str, /) -> object:
        return self._conn.execute(sql)


@dataclass(frozen=True, slots=True)
class _Lag:
    """How far `task_run_totals` is behind the ledger."""

    covered: int
    """Calls (the first rows of `usage_events`) already in the totals."""
    events: int
    """Calls in the ledger."""
    dense: bool
    """Whether `usage_events` rowids run 0..events-1 (append-only): the new calls are then rowid >= covered."""
    statuses: bool
    """Whether `task_runs` changed since the statuses were copied (a write that bypassed `append`)."""


def _lag(cur: duckdb.DuckDBPyConnection) -> _Lag | None:
    """What `task_run_totals` misses, None when it is current."""
    row = cur.execute(
        f"""SELECT s.events, (SELECT count(*) FROM usage_events),
                   s.task_runs <> ({_RUNS_COUNT}) OR s.task_runs_rowid <> ({_RUNS_ROWID})
            FROM _run_totals_state s"""
    ).fetchone()
    assert row is not None
    covered, events, statuses = int(row[0]), int(row[1]), bool(row[2])
    if covered == events and not statuses:
        return None
    last = cur.execute("SELECT coalesce(max(rowid), -1) FROM usage_events").fetchone()
    return _Lag(covered, events, last is not None and int(last[0]) + 1 == events, statuses)


def _catch_up(cur: duckdb.DuckDBPyConnection, lag: _Lag) -> None:
    """Fold the calls the totals miss (or rebuild them when the calls are not a plain extension) and the statuses."""
    if lag.covered == 0 or lag.covered > lag.events or not lag.dense:
        cur.execute("DELETE FROM task_run_totals")
        partials = RUN_PARTIALS.format(uniform=UNIFORM, source="usage_events")
        cur.execute(
            f"INSERT INTO task_run_totals SELECT p.*, r.status FROM ({partials}) p "
            "LEFT JOIN task_runs r ON r.task_run_id = p.task_run_id"
        )
    elif lag.covered < lag.events:
        _merge_runs(cur, f"(SELECT * FROM usage_events WHERE rowid >= {int(lag.covered)})")
    if lag.statuses:
        cur.execute(
            """UPDATE task_run_totals SET status = c.status FROM (
                   SELECT t.task_run_id, r.status FROM task_run_totals t LEFT JOIN task_runs r USING (task_run_id)
                   WHERE t.status IS DISTINCT FROM r.status) c
               WHERE task_run_totals.task_run_id = c.task_run_id"""
        )
    cur.execute(
        f"UPDATE _run_totals_state SET events = ?, task_runs = ({_RUNS_COUNT}), task_runs_rowid = ({_RUNS_ROWID})",
        [lag.events],
    )


# a run's stored totals and the partials of its new calls, combined: sums add, extremes extend, and a run stays
# uniform only when both parts are uniform on the same values (least/greatest skip NULLs, as min/max do)
_MERGED = """
SELECT d.task_run_id, least(t.first_ts, d.first_ts) AS first_ts, greatest(t.last_ts, d.last_ts) AS last_ts,
       greatest(t.last_error_ts, d.last_error_ts) AS last_error_ts,
       coalesce(t.calls, 0) + d.calls AS calls, coalesce(t.unpriced_calls, 0) + d.unpriced_calls AS unpriced_calls,
       coalesce(t.errors, 0) + d.errors AS errors, coalesce(t.tokens, 0) + d.tokens AS tokens,
       CAST(CASE WHEN t.cost IS NULL THEN d.cost WHEN d.cost IS NULL THEN t.cost ELSE t.cost + d.cost END
            AS DECIMAL(38,12)) AS cost,
       greatest(t.max_iteration, d.max_iteration) AS max_iteration,
       least(t.workflow, d.workflow) AS workflow, least(t.team, d.team) AS team,
       least(t.user_id, d.user_id) AS user_id, least(t.customer, d.customer) AS customer,
       least(t.feature, d.feature) AS feature,
       coalesce(t.mixed, FALSE) OR d.mixed OR (t.task_run_id IS NOT NULL AND (
           t.workflow IS DISTINCT FROM d.workflow OR t.team IS DISTINCT FROM d.team
           OR t.user_id IS DISTINCT FROM d.user_id OR t.customer IS DISTINCT FROM d.customer
           OR t.feature IS DISTINCT FROM d.feature)) AS mixed,
       r.status, t.task_run_id IS NOT NULL AS stored
FROM ({partials}) d
LEFT JOIN task_run_totals t ON t.task_run_id = d.task_run_id
LEFT JOIN task_runs r ON r.task_run_id = d.task_run_id
"""


def _merge_runs(cur: duckdb.DuckDBPyConnection, source: str) -> None:
    """Fold the calls in `source` (a table or a subquery) into `task_run_totals`: only the runs they touch change."""
    partials = RUN_PARTIALS.format(uniform=UNIFORM, source=source)
    cur.execute(f"CREATE TEMP TABLE _runs AS {_MERGED.format(partials=partials)}")
    try:
        cur.execute("DELETE FROM task_run_totals WHERE task_run_id IN (SELECT task_run_id FROM _runs WHERE stored)")
        cur.execute(f"INSERT INTO task_run_totals SELECT {_TOTALS_COLUMNS} FROM _runs")
    finally:
        cur.execute("DROP TABLE _runs")
