"""The embedded default: one DuckDB file, bulk-loaded from Arrow.

DuckDB takes ~1k single-row inserts/s but hundreds of thousands of rows/s from Arrow, so every
write is a batch. Idempotency is an anti-join on the table's key rather than a PRIMARY KEY
index: the ART index would triple bulk-load time at 10M rows. One writer per file is DuckDB's
rule; writes are serialised by a lock and reads use their own cursors.

`task_run_totals` is a table here (m005), kept exactly as calls arrive: a small append folds its
new calls into the runs they touch in its own transaction; a bulk load leaves a watermark behind
that `sync_run_totals` (the next report, or the next open) catches up in one pass (docs/analytics.md).
`outcome_credit` (each outcome's customers, through its task runs) is kept alongside, from the same watermark.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import IO, TYPE_CHECKING

import duckdb
import orjson

from tokenops.store._bulk import CACHE_BYTES, KEEP_FREED
from tokenops.store.ledger import Ledger
from tokenops.store.migrations import (
    MIGRATIONS,
    OUTCOME_CREDIT,
    RUN_PARTIALS,
    RUN_TOTALS_TABLES,
    UNIFORM,
    run_totals_tables,
)
from tokenops.store.schema import TABLES, TASK_RUN_TOTALS, Table

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger(__name__)


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
        bulk_load: bool = False,
    ) -> None:
        """Open (and migrate) the ledger.

        Args:
            path: DuckDB file, or `":memory:"`.
            read_only: Open without taking the writer lock (no migrations).
            memory_limit: DuckDB's buffer pool cap (`tokenops import` passes `[duckdb] memory_limit`);
                DuckDB's default is 80% of RAM, and its cache of written blocks grows to it, so a long
                import's RSS would grow with the file.
            threads: DuckDB worker threads (default: one per core).
            bulk_load: Opened for an import: DuckDB keeps the memory a batch frees for the next one
                instead of flushing its allocators after each large free (12-14% of an import's CPU
                on two cores went to releasing pages and faulting them back in), and the blocks an
                append wrote are evicted from DuckDB's cache once it passes twice `CACHE_BYTES`, so
                memory stays flat however long the file (the cap is lowered for that moment: a
                reader running meanwhile could run out of memory, so an import's ledger has no
                other user). A server leaves both off: memory a large query freed goes back to the
                system, and the cache serves the dashboard's queries.
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
        if bulk_load:
            config.update(KEEP_FREED)
        self._conn = duckdb.connect(self.path, read_only=read_only, config=config)
        self._lock = threading.RLock()
        found = self._conn.execute("SELECT current_setting('threads')").fetchone()
        self._threads = int(found[0]) if found else 1
        self._memory_limit = memory_limit  # as given: DuckDB shows it rounded to 0.1 MiB
        self._shedding = bulk_load and self.path != ":memory:"  # in memory, evicting would only spill to disk
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
            _refresh_run_totals(self._conn)
            self._index_keys()
            self._writable = True
            self.sync_run_totals()
            return applied

    def append(self, table: str, data: pa.Table) -> int:
        spec = TABLES[table]
        data = data.select([c.name for c in spec.columns]).cast(spec.arrow_schema)

        def stage(cur: duckdb.DuckDBPyConnection) -> None:
            cur.register("_batch", data)

        def unstage(cur: duckdb.DuckDBPyConnection) -> None:
            cur.unregister("_batch")

        return self._append(spec, data.num_rows, stage, unstage)

    def append_rows(self, table: str, data: Sequence[Mapping[str, object]]) -> int:
        """Rows loaded through DuckDB's JSON reader: no pyarrow in the process, and no GIL while parsing.

        Converting rows to Arrow holds the GIL for ~3 us a row (the gateway's event loop waits) and
        pyarrow with numpy is ~50 MB a gateway process need not carry. The rows go to a temporary
        JSON file DuckDB reads with the table's exact column types.
        """
        if not data:
            return 0
        spec, clauses = TABLES[table], _clauses(table)
        fd, path = tempfile.mkstemp(prefix="tokenops-batch-", suffix=".json")
        try:
            with os.fdopen(fd, "wb") as out:
                written = _write_json_array(out, data)
            # no row is longer than the file: DuckDB's reader buffers twice this size (32 MB by default)
            object_size = written + 1024

            def stage(cur: duckdb.DuckDBPyConnection) -> None:
                cur.execute(
                    f"CREATE TEMP TABLE _batch AS SELECT {clauses.columns} FROM read_json({_sql_string(path)}, "
                    f"format = 'array', columns = {{{clauses.json_types}}}, maximum_object_size = {object_size})"
                )

            def unstage(cur: duckdb.DuckDBPyConnection) -> None:
                cur.execute("DROP TABLE IF EXISTS _batch")

            with self._single_threaded():
                return self._append(spec, len(data), stage, unstage)
        finally:
            os.unlink(path)

    @contextmanager
    def _single_threaded(self) -> Iterator[None]:
        """Run DuckDB on the calling thread alone meanwhile (a setting of the whole database).

        A gateway batch is hundreds of rows: parallel workers gain nothing on it, and they run at
        the server's priority, on the cores of its event loop, while the batch thread that waits
        for them is niced (`writer._run_in_background`). Measured with a loop on one core taking
        ~550 events/s: event-loop lateness p99 0.36 ms against 0.57-0.60 ms with DuckDB's workers.
        Queries of the dashboard running meanwhile get one thread for those milliseconds.
        """
        if self._threads <= 1:
            yield
            return
        with self._lock:
            self._conn.execute("SET threads = 1")
            try:
                yield
            finally:
                self._conn.execute(f"SET threads = {self._threads}")

    def _append(
        self,
        spec: Table,
        n_rows: int,
        stage: Callable[[duckdb.DuckDBPyConnection], None],
        unstage: Callable[[duckdb.DuckDBPyConnection], None],
    ) -> int:
        """Write the rows `stage` makes visible as `_batch`, in one transaction."""
        with self._lock:
            cur = self._conn.cursor()
            try:
                stage(cur)
                # a table the totals or the credit follow, current before: it stays so when this append is folded
                current = spec.name in _WATERMARKS and self._watermark_current(cur, spec.name)
                with _transaction(cur):
                    written = self._replace(cur, spec) if spec.replace else self._insert_new(cur, spec)
            finally:
                unstage(cur)
                cur.close()
            # after COMMIT: the new rows' rowids are only final now (a crash before: resync); a task run's status and
            # customer are always folded, outcomes and links when the batch is small (`_inserted`)
            if current and (spec.replace or n_rows <= EAGER_ROWS):
                self._conn.execute(f"UPDATE _run_totals_state SET {_mark(spec.name)}")
            if self._shedding:
                self._shed_cache()
        return written

    def _shed_cache(self) -> None:
        """Evict written blocks down to `CACHE_BYTES` once they pass twice that (`bulk_load`).

        DuckDB has no statement to drop its cache; lowering `memory_limit` evicts down to the new
        limit at once (with one allocator flush), and the limit is restored straight after. Only
        checkpointed blocks (`BASE_TABLE`) count, and the new limit leaves room for all the rest,
        so what is evicted is clean blocks, dropped; rows not yet checkpointed stay in memory
        rather than being spilled to a temporary file the next checkpoint would read back. (A
        CHECKPOINT before evicting would do too, but cost 1.5 s of CPU each on FOCUS bills.)
        """
        found = self._conn.execute(
            "SELECT coalesce(sum(memory_usage_bytes) FILTER (tag = 'BASE_TABLE'), 0), "
            "coalesce(sum(memory_usage_bytes), 0) FROM duckdb_memory()"
        ).fetchone()
        if not found or found[0] <= 2 * CACHE_BYTES:
            return
        cached, used = int(found[0]), int(found[1])
        try:
            self._conn.execute(f"SET memory_limit = '{used - cached + CACHE_BYTES}B'")
        except duckdb.Error as exc:  # the batch is committed: a failed eviction must not fail the import
            self._shedding = False
            log.warning("DuckDB's cache is no longer shed during this import (%s); memory may grow", exc)
        finally:
            if self._memory_limit is None:
                self._conn.execute("RESET memory_limit")
            else:
                self._conn.execute(f"SET memory_limit = {_sql_string(self._memory_limit)}")

    def _replace(self, cur: duckdb.DuckDBPyConnection, spec: Table) -> int:
        """Last row for a key wins, within the batch and against the table."""
        clauses = _clauses(spec.name)
        key, cols = clauses.key, clauses.columns
        cur.execute(
            f"CREATE TEMP TABLE _b AS SELECT {cols} FROM (SELECT *, row_number() OVER () AS _i "
            f"FROM _batch) QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY _i DESC) = 1"
        )
        new = cur.execute(
            f"SELECT count(*) FROM _b b WHERE NOT EXISTS (SELECT 1 FROM {spec.name} t WHERE {clauses.match})"
        )
        res = new.fetchone()
        credit = spec.name == "task_runs" and self._keeps_run_totals()
        if credit:  # runs whose customer changes (a new run counts as one whose customer was NULL)
            cur.execute(
                "CREATE TEMP TABLE _customer_moved AS SELECT b.task_run_id FROM _b b LEFT JOIN task_runs t "
                "ON t.task_run_id = b.task_run_id WHERE b.customer IS DISTINCT FROM t.customer"
            )
        cur.execute(f"DELETE FROM {spec.name} WHERE ({key}) IN (SELECT ({key}) FROM _b)")
        cur.execute(f"INSERT INTO {spec.name} ({cols}) SELECT {cols} FROM _b")
        if credit:
            cur.execute(
                "UPDATE task_run_totals SET status = b.status FROM _b b "
                "WHERE task_run_totals.task_run_id = b.task_run_id"
            )
            moved = cur.execute("SELECT count(*) FROM _customer_moved").fetchone()
            if moved and moved[0]:
                _recredit(
                    cur, "SELECT outcome_id FROM outcome_task_runs WHERE task_run_id IN (SELECT * FROM _customer_moved)"
                )
            cur.execute("DROP TABLE _customer_moved")
        cur.execute("DROP TABLE _b")
        return int(res[0]) if res else 0  # rows with a new key; replaced rows are not new

    def _insert_new(self, cur: duckdb.DuckDBPyConnection, spec: Table) -> int:
        """Insert rows whose key is new.

        Keys are checked first against `_keys_<table>`, a column of 64-bit key hashes: scanning
        integers is ~10x cheaper than joining the string keys of a growing table. Only when a
        hash matches (a real re-import, or a hash collision) is the exact string anti-join run.
        """
        clauses = _clauses(spec.name)
        key, cols = clauses.key, clauses.columns
        cur.execute(f"CREATE TEMP TABLE _h AS SELECT hash({key}) AS h FROM _batch")  # hash each key once
        try:
            unique = cur.execute("SELECT count(*) = count(DISTINCT h) FROM _h").fetchone()
            if unique and unique[0]:
                seen = cur.execute(f"SELECT count(*) FROM _h WHERE h IN (SELECT h FROM {_keys_table(spec)})").fetchone()
                if not (seen and seen[0]):  # the common case: nothing to check, insert straight from Arrow
                    return self._insert_all(cur, spec, "_batch", "SELECT h FROM _h")
        finally:
            cur.execute("DROP TABLE _h")
        # a key (or a hash) repeats within the batch or is already stored: check exactly
        source = f"(SELECT DISTINCT ON ({key}) * FROM _batch)"
        cur.execute(
            f"CREATE TEMP TABLE _new AS SELECT {cols} FROM {source} b "
            f"WHERE NOT EXISTS (SELECT 1 FROM {spec.name} t WHERE {clauses.match})"
        )
        written = self._insert_all(cur, spec, "_new", f"SELECT hash({key}) FROM _new")
        cur.execute("DROP TABLE _new")
        return written

    def _insert_all(self, cur: duckdb.DuckDBPyConnection, spec: Table, source: str, hashes: str) -> int:
        """Insert every row of `source` (known new), record their key hashes (the query `hashes`) and fold them in."""
        cols = _clauses(spec.name).columns
        res = cur.execute(f"INSERT INTO {spec.name} ({cols}) SELECT {cols} FROM {source}").fetchone()
        written = int(res[0]) if res else 0
        cur.execute(f"INSERT INTO {_keys_table(spec)} {hashes}")
        self._inserted(cur, spec, source, written)
        return written

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
                self._conn.execute(f"INSERT INTO {hashes} SELECT hash({_clauses(spec.name).key}) FROM {spec.name}")

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
                with _transaction(cur):
                    _catch_up(cur, lag)
                return True
            finally:
                cur.close()

    def _watermark_current(self, cur: duckdb.DuckDBPyConnection, table: str) -> bool:
        """Whether the state records `table` as it is (`_WATERMARKS`): what is derived from it is current."""
        if not self._keeps_run_totals():
            return False
        count, rowid = _WATERMARKS[table]
        row = cur.execute(
            f"SELECT {count} = ({_count(table)}) AND {rowid} = ({_max_rowid(table)}) FROM _run_totals_state"
        ).fetchone()
        return bool(row and row[0])

    def _inserted(self, cur: duckdb.DuckDBPyConnection, spec: Table, source: str, n: int) -> None:
        """Fold `n` new calls (the rows of `source`) into `task_run_totals`, in the append's transaction.

        Only when the totals were current before (so they stay a prefix of the calls) and the batch is
        small: a bulk load leaves the watermark behind and `sync_run_totals` catches up once, later.
        New outcomes and links re-credit their outcomes in `outcome_credit` (small batches only, likewise).
        """
        if not n or not self._keeps_run_totals():
            return
        if spec.name in ("outcomes", "outcome_task_runs") and n <= EAGER_ROWS:
            _recredit(cur, f"SELECT outcome_id FROM {source}")
        if spec.name != "usage_events":
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

    def query_values(self, sql: str, params: Sequence[object] = ()) -> list[dict[str, object]]:
        cur = self._conn.cursor()
        try:
            cur.execute(sql, list(params) or None)
            names = [d[0] for d in cur.description or ()]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
        finally:
            cur.close()

    def close(self) -> None:
        with self._lock:
            self._conn.close()


JSON_SLICE_ROWS = 100
"""Rows `orjson` encodes per call in `append_rows`: ~0.4 ms, the longest the GIL is held in one piece."""


def _write_json_array(out: IO[bytes], data: Sequence[Mapping[str, object]]) -> int:
    """Write `data` as one JSON array, `JSON_SLICE_ROWS` rows per `orjson` call; bytes written.

    One call holds the GIL to its end: on a 20,000-row backlog batch that was 110-120 ms in
    which the event loop could not run. Between calls the interpreter hands the GIL over as it
    does between any two bytecodes (after the 5 ms switch interval). Forcing a handover after each
    slice (`time.sleep(0)`) was measured and dropped: with the niced batch thread on the loop's
    core, every forced switch made the loop wait for that thread, and c=32 throughput fell ~12%.
    """
    written = out.write(b"[")
    for start in range(0, len(data), JSON_SLICE_ROWS):
        piece = orjson.dumps(data[start : start + JSON_SLICE_ROWS], default=_json_default)
        if start:
            written += out.write(b",")
        written += out.write(memoryview(piece)[1:-1])  # the slice's rows without its brackets
    return written + out.write(b"]")


def _json_default(value: object) -> str:
    if isinstance(value, Decimal):
        return format(value, "f")  # exact; DuckDB casts it to the column's DECIMAL
    raise TypeError(f"cannot load a value of type {type(value).__name__} as JSON")


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _keys_table(spec: Table) -> str:
    return f"_keys_{spec.name}"


@dataclass(frozen=True, slots=True)
class _Clauses:
    """The SQL fragments every append to a table repeats, built once per table (`_clauses`)."""

    columns: str
    """The table's columns in order, as a select list."""
    key: str
    """Its key columns, as a list."""
    match: str
    """A stored row `t` and a batch row `b` have the same key."""
    json_types: str
    """`read_json`'s `columns` map: every column with its exact SQL type."""


@cache
def _clauses(table: str) -> _Clauses:
    """The SQL fragments of the ledger table `table` (a name in `TABLES`)."""
    spec = TABLES[table]
    return _Clauses(
        columns=", ".join(c.name for c in spec.columns),
        key=", ".join(spec.key),
        match=" AND ".join(f"t.{k} = b.{k}" for k in spec.key),
        json_types=", ".join(f"{_sql_string(c.name)}: {_sql_string(c.sql)}" for c in spec.columns),
    )


@contextmanager
def _transaction(cur: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Run the block in one transaction: committed when it ends, rolled back when it raises."""
    cur.execute("BEGIN")
    try:
        yield
        cur.execute("COMMIT")
    except BaseException:
        cur.execute("ROLLBACK")
        raise


EAGER_ROWS = 100_000
"""Largest append whose calls are folded into `task_run_totals` at once; bigger ones (bulk loads) are caught up
by the next `sync_run_totals` (the next read, or the next open), which costs one pass instead of one per batch."""

_WATERMARKS = {
    "task_runs": ("task_runs", "task_runs_rowid"),
    "outcomes": ("outcomes", "outcomes_rowid"),
    "outcome_task_runs": ("links", "links_rowid"),
}
"""Tables `_run_totals_state` records by row count and highest rowid, and its columns for each."""


def _count(table: str) -> str:
    return f"SELECT count(*) FROM {table}"


def _max_rowid(table: str) -> str:
    return f"SELECT coalesce(max(rowid), -1) FROM {table}"


def _mark(table: str) -> str:
    """The assignments that record `table` as it is now in `_run_totals_state` (`_WATERMARKS`)."""
    count, rowid = _WATERMARKS[table]
    return f"{count} = ({_count(table)}), {rowid} = ({_max_rowid(table)})"


def _moved(table: str) -> str:
    """Whether `table` changed since the state recorded it (a condition over `_run_totals_state s`)."""
    count, rowid = _WATERMARKS[table]
    return f"(s.{count} <> ({_count(table)}) OR s.{rowid} <> ({_max_rowid(table)}))"


def _columns(columns: str) -> list[str]:
    """The column names of a column list (`RUN_TOTALS_TABLES`); commas inside parentheses are types'."""
    return [c.split()[0] for c in re.split(r",(?![^(]*\))", columns) if c.strip()]


def _refresh_run_totals(conn: duckdb.DuckDBPyConnection) -> None:
    """Recreate m005's tables, empty, when a ledger has them with other columns (m005 is unreleased and changed).

    The next `sync_run_totals` rebuilds them from the ledger, as after a fresh m005.
    """
    rows = conn.execute(
        "SELECT table_name, column_name FROM information_schema.columns "
        f"WHERE table_name IN ({', '.join(repr(n) for n in RUN_TOTALS_TABLES)}) ORDER BY table_name, ordinal_position"
    ).fetchall()
    found: dict[str, list[str]] = {}
    for table, column in rows:
        found.setdefault(str(table), []).append(str(column))
    if found == {name: _columns(columns) for name, columns in RUN_TOTALS_TABLES.items()}:
        return
    conn.execute("BEGIN")
    for name in RUN_TOTALS_TABLES:
        conn.execute(f"DROP TABLE IF EXISTS {name}")
    run_totals_tables(_Migrating(conn))
    conn.execute("COMMIT")


_TOTALS_COLUMNS = ", ".join(c.name for c in TASK_RUN_TOTALS)
"""`task_run_totals`' columns (`schema.TASK_RUN_TOTALS`), as a select list."""


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
    credit: bool
    """Whether `outcome_credit` is behind `task_runs`, `outcomes` or `outcome_task_runs` (a bulk or bypassing write)."""


def _lag(cur: duckdb.DuckDBPyConnection) -> _Lag | None:
    """What `task_run_totals` misses, None when it is current."""
    row = cur.execute(
        f"""SELECT s.events, (SELECT count(*) FROM usage_events), {_moved("task_runs")},
                   {_moved("outcomes")} OR {_moved("outcome_task_runs")}
            FROM _run_totals_state s"""
    ).fetchone()
    assert row is not None
    covered, events, statuses, outcomes = int(row[0]), int(row[1]), bool(row[2]), bool(row[3])
    if covered == events and not statuses and not outcomes:
        return None
    last = cur.execute(_max_rowid("usage_events")).fetchone()
    dense = last is not None and int(last[0]) + 1 == events
    return _Lag(covered, events, dense, statuses, statuses or outcomes)


def _catch_up(cur: duckdb.DuckDBPyConnection, lag: _Lag) -> None:
    """Fold the calls the totals miss (or rebuild them when the calls are not a plain extension) and the statuses;
    rebuild `outcome_credit` when its tables moved."""
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
    if lag.credit:
        cur.execute("DELETE FROM outcome_credit")
        cur.execute(f"INSERT INTO outcome_credit {OUTCOME_CREDIT.format(where='TRUE')}")
    marks = ", ".join(_mark(table) for table in _WATERMARKS)
    cur.execute(f"UPDATE _run_totals_state SET events = ?, {marks}", [lag.events])


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


def _recredit(cur: duckdb.DuckDBPyConnection, outcomes: str) -> None:
    """Recompute `outcome_credit` for the outcomes whose ids `outcomes` (a query) selects, from the ledger as it is."""
    cur.execute(f"CREATE TEMP TABLE _credited AS SELECT DISTINCT outcome_id FROM ({outcomes})")
    try:
        cur.execute("DELETE FROM outcome_credit WHERE outcome_id IN (SELECT outcome_id FROM _credited)")
        where = "o.outcome_id IN (SELECT outcome_id FROM _credited)"
        cur.execute(f"INSERT INTO outcome_credit {OUTCOME_CREDIT.format(where=where)}")
    finally:
        cur.execute("DROP TABLE _credited")


def _merge_runs(cur: duckdb.DuckDBPyConnection, source: str) -> None:
    """Fold the calls in `source` (a table or a subquery) into `task_run_totals`: only the runs they touch change."""
    partials = RUN_PARTIALS.format(uniform=UNIFORM, source=source)
    cur.execute(f"CREATE TEMP TABLE _runs AS {_MERGED.format(partials=partials)}")
    try:
        cur.execute("DELETE FROM task_run_totals WHERE task_run_id IN (SELECT task_run_id FROM _runs WHERE stored)")
        cur.execute(f"INSERT INTO task_run_totals ({_TOTALS_COLUMNS}) SELECT {_TOTALS_COLUMNS} FROM _runs")
    finally:
        cur.execute("DROP TABLE _runs")
