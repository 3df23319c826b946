"""The analytics store at scale: ClickHouse, embedded (chdb) or a server over HTTP.

Two transports run the same SQL: `chdb:PATH` opens the ClickHouse engine in-process on a data
directory (one directory per process: a chdb rule), and `clickhouse://[user[:password]@]host:8123/db`
talks to a server's HTTP interface with httpx. Both insert Arrow (`FORMAT ArrowStream`) and read
Arrow back.

ClickHouse has no unique constraint, so idempotency is decided at insert: a batch is loaded into
a scratch `Memory` table, deduplicated on the table's key, anti-joined against the keys already
stored (a primary-key range lookup: tables are sorted by their key), and only new rows are
inserted. Tables are `ReplacingMergeTree`s on that key, so even rows two concurrent writers both
found new collapse into one at the next merge. Replace tables (task runs, people, seats) delete the
batch's keys (a lightweight DELETE) and insert the batch's last row per key.

`task_run_totals` is a view here, as on DuckDB and PostgreSQL: summing a run's calls when asked
costs less than keeping a second table in step on every append.

Queries are DuckDB-dialect SQL transpiled by SQLGlot (`tokenops.store._clickhouse_sql`), and come
back in DuckDB's Arrow types, bound on an empty in-memory DuckDB ledger, so reports read the same
values whichever backend holds the ledger.
"""

from __future__ import annotations

import io
import threading
import uuid
from collections.abc import Callable, Sequence
from typing import Protocol, cast
from urllib.parse import unquote, urlsplit

import duckdb
import httpx
import pyarrow as pa

from tokenops.store._clickhouse_sql import SETTINGS, bind, column_type, conform, create_table, to_clickhouse
from tokenops.store.duckdb import DuckDBLedger
from tokenops.store.ledger import Ledger
from tokenops.store.migrations import MIGRATIONS, RUN_PARTIALS, UNIFORM
from tokenops.store.schema import TABLES, Table

_MIN_VERSION = (23, 3)
"""Oldest ClickHouse server with everything the ledger uses (lightweight DELETE became generally available)."""
_CACHE = 1_024
"""Translated queries (and their DuckDB result schemas) kept per ledger."""
_TOTALS_VIEW = f"""
SELECT p.*, t.status AS status
FROM ({RUN_PARTIALS.format(uniform=UNIFORM, source="usage_events")}) AS p
LEFT JOIN task_runs AS t ON t.task_run_id = p.task_run_id
"""


class ClickHouseError(RuntimeError):
    """ClickHouse refused a statement; the message is the server's."""


class _Transport(Protocol):
    def execute(self, sql: str, params: dict[str, str] | None = None) -> pa.Table: ...

    def insert(self, table: str, data: pa.Table) -> None: ...

    def close(self) -> None: ...


def _ipc(data: pa.Table) -> bytes:
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, data.schema) as writer:
        writer.write_table(data)
    return sink.getvalue()


class EmbeddedTransport:
    """The ClickHouse engine in this process (chdb), on a data directory."""

    def __init__(self, path: str, database: str) -> None:
        import chdb.session  # imported on use: the engine is a large library

        self._session = chdb.session.Session(path)  # type: ignore[no-untyped-call]
        self._query = cast("Callable[..., object]", self._session.query)  # chdb is untyped
        self._lock = threading.Lock()
        self._query(f"CREATE DATABASE IF NOT EXISTS `{database}`")
        self._query(f"USE `{database}`")
        self._query("SET " + ", ".join(f"{k} = '{v}'" for k, v in SETTINGS.items()))

    def execute(self, sql: str, params: dict[str, str] | None = None) -> pa.Table:
        with self._lock:
            try:
                result = self._query(sql, "ArrowTable", params=params or None)
            except RuntimeError as exc:
                raise ClickHouseError(str(exc)) from exc
        return result if isinstance(result, pa.Table) else pa.table({})

    def insert(self, table: str, data: pa.Table) -> None:
        with self._lock:
            try:
                with self._session.send_insert(f"INSERT INTO {table}", "ArrowStream") as stream:
                    stream.append(_ipc(data))
                    stream.finish()
            except RuntimeError as exc:
                raise ClickHouseError(str(exc)) from exc

    def close(self) -> None:
        with self._lock:
            self._session.close()  # type: ignore[no-untyped-call]


class HttpTransport:
    """A ClickHouse server's HTTP interface: the query in the body (or URL when the body is data)."""

    def __init__(self, url: str, *, timeout: float = 300.0) -> None:
        parts = urlsplit(url)
        self.database = parts.path.strip("/") or "default"
        headers = {"X-ClickHouse-User": unquote(parts.username or "default")}
        if parts.password:
            headers["X-ClickHouse-Key"] = unquote(parts.password)
        scheme = "https" if parts.scheme in ("clickhouses", "https") else "http"
        self._client = httpx.Client(
            base_url=f"{scheme}://{parts.hostname or '127.0.0.1'}:{parts.port or 8123}/",
            headers=headers,
            timeout=timeout,
        )
        self._settings = {"database": self.database, **SETTINGS}

    def _post(self, params: dict[str, str], content: bytes) -> httpx.Response:
        response = self._client.post("/", params=params, content=content)
        if response.status_code != 200:
            raise ClickHouseError(response.text.strip() or f"HTTP {response.status_code}")
        return response

    def execute(self, sql: str, params: dict[str, str] | None = None) -> pa.Table:
        query = {**self._settings, **{f"param_{k}": v for k, v in (params or {}).items()}}
        query["default_format"] = "ArrowStream"
        body = self._post(query, sql.encode()).content
        if not body:
            return pa.table({})  # statements without a result set
        with pa.ipc.open_stream(body) as reader:
            return reader.read_all()

    def version(self) -> str:
        """The server's version, asked in the one format and with the settings every version knows."""
        return self._post({"default_format": "TabSeparated"}, b"SELECT version()").text.strip()

    def insert(self, table: str, data: pa.Table) -> None:
        self._post({**self._settings, "query": f"INSERT INTO {table} FORMAT ArrowStream"}, _ipc(data))

    def close(self) -> None:
        self._client.close()


class ClickHouseLedger(Ledger):
    """Ledger in ClickHouse: `ClickHouseLedger.embedded(path)` or `ClickHouseLedger.http("clickhouse://...")`."""

    def __init__(self, transport: _Transport, *, migrate: bool = True) -> None:
        self._db = transport
        self._lock = threading.RLock()
        self._sql: dict[tuple[object, ...], str] = {}
        self._schemas: dict[tuple[object, ...], pa.Schema | None] = {}
        self._oracle: DuckDBLedger | None = None
        if migrate:
            self.migrate()

    @classmethod
    def embedded(cls, path: str, database: str = "tokenops") -> ClickHouseLedger:
        """The chdb engine on a data directory (one directory per process)."""
        return cls(EmbeddedTransport(path, database))

    @classmethod
    def http(cls, url: str) -> ClickHouseLedger:
        """A ClickHouse server, e.g. `clickhouse://default@127.0.0.1:8123/tokenops` (created if missing)."""
        transport = HttpTransport(url)
        version = transport.version()
        if tuple(int(p) for p in version.split(".")[:2]) < _MIN_VERSION:
            transport.close()
            raise ClickHouseError(
                f"ClickHouse {version} at {url!r} is too old: the ledger needs {'.'.join(map(str, _MIN_VERSION))} "
                "or later (DateTime64, window functions, ArrowStream, lightweight DELETE)"
            )
        if transport.database != "default":
            bootstrap = HttpTransport(url.replace(f"/{transport.database}", "/default", 1))
            try:
                bootstrap.execute(f"CREATE DATABASE IF NOT EXISTS `{transport.database}`")
            finally:
                bootstrap.close()
        return cls(transport)

    def migrate(self) -> list[str]:
        """Create missing tables and columns from the declared schema, and the totals view; returns new migrations."""
        with self._lock:
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS _migrations (name String, applied_at DateTime64(6, 'UTC')) "
                "ENGINE = ReplacingMergeTree ORDER BY name"
            )
            done = set(self._db.execute("SELECT name FROM _migrations").column("name").to_pylist() or [])
            for spec in TABLES.values():
                self._db.execute(create_table(spec.name, spec.columns, spec.key))
                self._add_columns(spec)
            self._db.execute(f"CREATE OR REPLACE VIEW task_run_totals AS {to_clickhouse(_TOTALS_VIEW)}")
            applied = [m.__name__ for m in MIGRATIONS if m.__name__ not in done]
            for name in applied:
                self._db.execute(
                    "INSERT INTO _migrations VALUES ({n:String}, now64(6))", {"n": name}
                )  # the schema is declared, not migrated: the names record what it includes
            return applied

    def _add_columns(self, spec: Table) -> None:
        """Columns the declared schema gained since the table was created (the one schema change ever made)."""
        have = set(
            self._db.execute(
                "SELECT name FROM system.columns WHERE database = currentDatabase() AND table = {t:String}",
                {"t": spec.name},
            )
            .column("name")
            .to_pylist()
        )
        for column in spec.columns:
            if column.name not in have:
                self._db.execute(f"ALTER TABLE {spec.name} ADD COLUMN `{column.name}` {column_type(column)}")

    def append(self, table: str, data: pa.Table) -> int:
        spec = TABLES[table]
        data = data.select([c.name for c in spec.columns]).cast(spec.arrow_schema)
        if data.num_rows == 0:
            return 0
        scratch = f"_batch_{uuid.uuid4().hex[:12]}"
        with self._lock:
            self._db.execute(f"CREATE TABLE {scratch} AS {spec.name} ENGINE = Memory")
            try:
                self._db.insert(scratch, data)
                return self._replace(spec, scratch) if spec.replace else self._insert_new(spec, scratch)
            finally:
                self._db.execute(f"DROP TABLE IF EXISTS {scratch}")

    def _insert_new(self, spec: Table, scratch: str) -> int:
        """Insert the batch's rows whose key is not stored; a key repeated within the batch counts once."""
        key = ", ".join(f"`{k}`" for k in spec.key)
        stored = f"SELECT {key} FROM {spec.name} WHERE ({key}) IN (SELECT {key} FROM {scratch})"
        new = f"SELECT * FROM {scratch} WHERE ({key}) NOT IN ({stored}) LIMIT 1 BY {key}"
        count = self._db.execute(f"SELECT count() AS n FROM ({new})").column("n")[0].as_py()
        if count:
            self._db.execute(f"INSERT INTO {spec.name} {new}")
        return int(count)

    def _replace(self, spec: Table, scratch: str) -> int:
        """The batch's last row per key replaces the stored one; counts keys that were new."""
        key = ", ".join(f"`{k}`" for k in spec.key)
        last = f"_last_{scratch.removeprefix('_batch_')}"
        # a Memory table keeps insertion order: the highest row number of a key is its last row
        self._db.execute(
            f"CREATE TABLE {last} ENGINE = Memory AS SELECT * EXCEPT _i FROM "
            f"(SELECT *, rowNumberInAllBlocks() AS _i FROM {scratch}) ORDER BY _i DESC LIMIT 1 BY {key}"
        )
        try:
            stored = f"SELECT {key} FROM {spec.name} WHERE ({key}) IN (SELECT {key} FROM {last})"
            count = self._db.execute(f"SELECT count() AS n FROM {last} WHERE ({key}) NOT IN ({stored})")
            new = int(count.column("n")[0].as_py())
            self._db.execute(f"DELETE FROM {spec.name} WHERE ({key}) IN (SELECT {key} FROM {last})")
            self._db.execute(f"INSERT INTO {spec.name} SELECT * FROM {last}")
            return new
        finally:
            self._db.execute(f"DROP TABLE IF EXISTS {last}")

    def query(self, sql: str, params: Sequence[object] = ()) -> pa.Table:
        kinds = (sql, *(type(p) for p in params))
        text = self._sql.get(kinds)
        if text is None:
            text = to_clickhouse(sql, params)
            if len(self._sql) >= _CACHE:
                self._sql.clear()
            self._sql[kinds] = text
        schema = self._result_schema(kinds, sql, params)
        result = self._db.execute(text, bind(params))
        if result.num_columns == 0 and schema is not None:
            return schema.empty_table()
        return conform(result, schema)

    def _result_schema(self, kinds: tuple[object, ...], sql: str, params: Sequence[object]) -> pa.Schema | None:
        """DuckDB's result schema for the query, bound on an empty ledger; None if DuckDB cannot bind it."""
        if kinds in self._schemas:
            return self._schemas[kinds]
        with self._lock:
            if self._oracle is None:
                self._oracle = DuckDBLedger(":memory:")
            oracle = self._oracle
        try:
            schema: pa.Schema | None = oracle.query(sql, params).schema
        except duckdb.Error:
            schema = None  # ClickHouse-only SQL (system tables): types as ClickHouse returns them
        if len(self._schemas) >= _CACHE:
            self._schemas.clear()
        self._schemas[kinds] = schema
        return schema

    def close(self) -> None:
        with self._lock:
            oracle, self._oracle = self._oracle, None
            self._db.close()
        if oracle is not None:
            oracle.close()
