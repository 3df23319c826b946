"""Reports read once per ledger version: query results kept until the ledger changes (issue 8).

Several people opening the same dashboard page run the same queries over the same ledger; at 10M
calls each costs seconds of CPU. `CachedLedger` is a read-through view of a ledger for one request:
it reads the ledger's *version* once, at its first query, and answers every query whose SQL and
parameters were already run at that version from `ReadCache`, the process-wide store of results
(Arrow tables are immutable, so they are shared as they are). A query that is running is not run
twice: a second caller waits for the first one's result.

The version is what changes whenever a table does, read cheaply: on DuckDB the row count of every
ledger table (free: kept in the metadata) and, for the tables whose rows are replaced by key
(`Table.replace`: task runs, people, seats), the highest rowid, which a replaced row moves up. The
server is the only writer of a DuckDB file, so no write is missed; in the rare case where a replace
and then a checkpoint that compacts the table bring both numbers back to an older pair, the entry's
`ttl` bounds how long a stale result can be served. Other backends have no such cheap version (a
PostgreSQL count scans the table): their queries are not cached.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass

import pyarrow as pa

from tokenops.store import DuckDBLedger, Ledger
from tokenops.store.schema import TABLES

TTL_S = 60.0
"""Longest a result is served, whatever the version says."""
MAX_BYTES = 256 * 1024 * 1024
"""Arrow bytes kept at most; the least recently used results go first."""
MAX_RESULT_BYTES = 16 * 1024 * 1024
"""A larger result is not kept (a drill-down export, not a page's numbers)."""

Version = tuple[object, ...]
_Key = tuple[Version, str, str]


def ledger_version(ledger: Ledger) -> Version | None:
    """A value that changes whenever any ledger table does; None when the backend has no cheap one."""
    if not isinstance(ledger, DuckDBLedger):
        return None
    parts = []
    for name, spec in TABLES.items():
        parts.append(f"(SELECT count(*) FROM {name})")
        if spec.replace:
            parts.append(f"(SELECT coalesce(max(rowid), -1) FROM {name})")
    row = ledger.query(f"SELECT {', '.join(f'{p} AS v{i}' for i, p in enumerate(parts))}").to_pylist()[0]
    return tuple(row.values())


@dataclass(slots=True)
class _Entry:
    table: pa.Table
    stored: float
    nbytes: int


class ReadCache:
    """Query results per ledger version, shared by every request of a process (thread-safe)."""

    def __init__(self, *, ttl: float = TTL_S, max_bytes: int = MAX_BYTES) -> None:
        self.ttl = ttl
        self.max_bytes = max_bytes
        self._entries: OrderedDict[_Key, _Entry] = OrderedDict()
        self._running: dict[_Key, Future[pa.Table]] = {}
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        """Queries answered from the cache (for tests and benchmarks)."""
        self.misses = 0
        """Queries run on the ledger."""

    def clear(self) -> None:
        """Forget every result (a benchmark timing cold pages)."""
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def query(self, ledger: Ledger, version: Version, sql: str, params: Sequence[object]) -> pa.Table:
        """`ledger.query(sql, params)`, from the cache when it already ran at `version`."""
        key: _Key = (version, sql, repr(list(params)))
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and time.monotonic() - entry.stored < self.ttl:
                self._entries.move_to_end(key)
                self.hits += 1
                return entry.table
            running = self._running.get(key)
            if running is None:
                mine: Future[pa.Table] = Future()
                self._running[key] = mine
                self.misses += 1
        if running is not None:  # the same query is running for another request: share its result
            return running.result()
        try:
            table = ledger.query(sql, params)
        except BaseException as exc:
            with self._lock:
                del self._running[key]
            mine.set_exception(exc)
            raise
        with self._lock:
            del self._running[key]
            self._store(key, table)
        mine.set_result(table)
        return table

    def _store(self, key: _Key, table: pa.Table) -> None:
        size = table.nbytes
        if size > MAX_RESULT_BYTES:
            return
        old = self._entries.pop(key, None)
        if old is not None:
            self._bytes -= old.nbytes
        self._entries[key] = _Entry(table, time.monotonic(), size)
        self._bytes += size
        while self._bytes > self.max_bytes and self._entries:
            _, dropped = self._entries.popitem(last=False)
            self._bytes -= dropped.nbytes


class CachedLedger(Ledger):
    """One request's read-through view of `inner`: its version is read once, at the first query.

    Writes go straight to `inner`; closing the view leaves `inner` open (the app owns it).
    """

    def __init__(self, inner: Ledger, cache: ReadCache) -> None:
        self.inner = inner
        self.cache = cache
        # what reports ask the backend about (rollup tables on PostgreSQL) is the real ledger's answer
        self.keeps_rollups: bool = bool(getattr(inner, "keeps_rollups", False))
        self._version: Version | None = None
        self._versioned = False
        self._lock = threading.Lock()

    def version(self) -> Version | None:
        """The ledger's version when this view first read it (None: not cacheable)."""
        with self._lock:
            if not self._versioned:
                self._version = ledger_version(self.inner)
                self._versioned = True
            return self._version

    def query(self, sql: str, params: Sequence[object] = ()) -> pa.Table:
        version = self.version()
        if version is None:
            return self.inner.query(sql, params)
        return self.cache.query(self.inner, version, sql, params)

    def append(self, table: str, data: pa.Table) -> int:
        return self.inner.append(table, data)

    def close(self) -> None:
        """Nothing to release: the view does not own the ledger."""


def uncached(ledger: Ledger) -> Ledger:
    """The ledger behind a `CachedLedger` (a report that checks the backend looks at the real one)."""
    return ledger.inner if isinstance(ledger, CachedLedger) else ledger
