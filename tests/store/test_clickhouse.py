"""The ClickHouse ledger on the chdb engine: schema, idempotency, and every report identical to DuckDB's.

chdb runs one data directory per process, so every test shares one (`engine_dir`) and takes a
database of its own. The HTTP transport is tested against `tests.store.clickhouse_http`, a small
server speaking ClickHouse's HTTP interface over the same engine: the one ClickHouse server
Debian packages (18.16, 2018) has neither Arrow formats, DateTime64 nor window functions.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import httpx
import numpy as np
import pyarrow as pa
import pytest

from tests.factories import T0, event
from tests.ingest.test_reconcile import build as build_reconcile_ledger
from tests.store.test_postgres import REPORTS as PG_REPORTS
from tests.store.test_postgres import Report, _comparable
from tokenops.analytics import anomalies, budgets, reconcile, spend
from tokenops.cli.demo import DEMO_POLICIES
from tokenops.demo import bulk_events, generate_org, load_demo
from tokenops.events import Person, TaskRun
from tokenops.store import DuckDBLedger, Ledger, open_ledger
from tokenops.store.clickhouse import ClickHouseError, ClickHouseLedger, EmbeddedTransport, HttpTransport
from tokenops.store.migrations import MIGRATIONS
from tokenops.store.schema import TABLES


def _fresh(engine_dir: str) -> ClickHouseLedger:
    return ClickHouseLedger(EmbeddedTransport(engine_dir, f"t_{uuid.uuid4().hex[:10]}"))


@pytest.fixture
def ledger(engine_dir: str) -> Iterator[ClickHouseLedger]:
    with _fresh(engine_dir) as opened:
        yield opened


CH_TYPES = {"VARCHAR": "String", "TIMESTAMP": "DateTime64(6, 'UTC')", "BIGINT": "Int64", "DATE": "Date32",
            "BOOLEAN": "Bool", "DOUBLE": "Float64", "INTEGER": "Int32"}  # fmt: skip


def test_fresh_database_has_exactly_the_declared_columns(ledger: ClickHouseLedger) -> None:
    for table in TABLES.values():
        rows = ledger.query_rows(
            "SELECT name, type FROM system.columns WHERE database = currentDatabase() AND table = ? ORDER BY position",
            [table.name],
        )
        assert [r["name"] for r in rows] == [c.name for c in table.columns]
        types = [str(r["type"]).removeprefix("LowCardinality(").removesuffix(")") if "LowCard" in str(r["type"])
                 else str(r["type"]) for r in rows]  # fmt: skip
        nullable = [t.startswith("Nullable(") for t in types]
        bare = [t.removeprefix("Nullable(").removesuffix(")") if n else t for t, n in zip(types, nullable, strict=True)]
        assert bare == [
            CH_TYPES.get(c.sql, c.sql.replace("DECIMAL", "Decimal").replace(",", ", ")) for c in table.columns
        ]
        assert nullable == [c.nullable for c in table.columns]


def test_migrations_are_recorded_once(engine_dir: str) -> None:
    database = f"t_{uuid.uuid4().hex[:10]}"
    with ClickHouseLedger(EmbeddedTransport(engine_dir, database)) as first:
        names = [r["name"] for r in first.query_rows("SELECT name FROM _migrations ORDER BY name")]
        assert names == [m.__name__ for m in MIGRATIONS]
    with ClickHouseLedger(EmbeddedTransport(engine_dir, database)) as second:
        assert second.migrate() == []


def test_events_round_trip_exactly(ledger: ClickHouseLedger) -> None:
    original = event("r1", input_tokens=1_234, output_tokens=567)
    assert ledger.record_events([original]) == 1
    (stored,) = ledger.events()
    assert stored == original
    assert stored.cost is not None and stored.cost.total == Decimal("0.008755")


def test_recording_the_same_events_twice_never_double_counts(ledger: ClickHouseLedger) -> None:
    batch = [event(f"r{i}", ts=T0 + timedelta(minutes=i)) for i in range(50)]
    assert ledger.record_events(batch + batch[:10]) == 50
    total = ledger.query_rows("SELECT sum(cost_total) AS c, count(*) AS n FROM usage_events")[0]
    assert ledger.record_events(batch) == 0
    assert ledger.record_events(batch[40:] + [event("r-new")]) == 1
    assert ledger.query_rows("SELECT sum(cost_total) AS c, count(*) AS n FROM usage_events WHERE request_id <> ?",
                             ["r-new"])[0] == total  # fmt: skip
    assert total["n"] == 50


def test_replace_tables_keep_the_last_row_and_count_only_new_keys(ledger: ClickHouseLedger) -> None:
    running = TaskRun("t1", "support_ticket", started_at=T0)
    done = dataclasses.replace(running, status="completed", ended_at=T0 + timedelta(minutes=1))
    assert ledger.record_task_runs([running, done]) == 1
    assert ledger.record_task_runs([running, TaskRun("t2", "triage", started_at=T0)]) == 1
    assert ledger.query_rows("SELECT task_run_id, status FROM task_runs ORDER BY 1") == [
        {"task_run_id": "t1", "status": "running"},
        {"task_run_id": "t2", "status": "running"},
    ]
    ana = Person("ana", "support", Decimal("80"), name="Ana")
    assert ledger.record_people([ana, dataclasses.replace(ana, team="sales")]) == 1
    assert ledger.query_rows("SELECT team, loaded_hourly_cost FROM people") == [
        {"team": "sales", "loaded_hourly_cost": Decimal("80.000000000000")}
    ]


def test_strings_and_parameters_are_bound_not_spliced(ledger: ClickHouseLedger) -> None:
    odd = event("r'1\\\t\n", team="", user="a 'b'; DROP TABLE usage_events", workflow="\\N")
    assert ledger.record_events([odd, event("r2", team=None)]) == 2
    assert sorted(ledger.events(), key=lambda e: e.request_id) == [odd, event("r2", team=None)]
    assert [
        e.request_id for e in ledger.events("user_id = ? AND team = ?", ["a 'b'; DROP TABLE usage_events", ""])
    ] == [odd.request_id]
    assert ledger.events("team = ?", [None]) == []  # NULL = NULL is not true, as in DuckDB
    with pytest.raises(ClickHouseError):
        ledger.query("SELECT no_such_column FROM usage_events")


def test_open_ledger_opens_chdb_directories(engine_dir: str) -> None:
    name = f"opened_{uuid.uuid4().hex[:8]}"
    with open_ledger(f"chdb:{engine_dir}?database={name}") as opened:
        assert isinstance(opened, ClickHouseLedger)
        assert opened.query_rows("SELECT currentDatabase() AS db") == [{"db": name}]
        assert opened.query_rows("SELECT count(*) AS n FROM usage_events") == [{"n": 0}]


# --- identical reports on DuckDB and ClickHouse ------------------------------------------------------------------


@pytest.fixture(scope="module")
def both(engine_dir: str) -> Iterator[tuple[Ledger, Ledger]]:
    """The small demo organisation loaded into DuckDB and into chdb."""
    org = generate_org(7, scale=0.25)
    with DuckDBLedger(":memory:") as duck, _fresh(engine_dir) as ch:
        assert load_demo(duck, org) == load_demo(ch, org)
        yield duck, ch


_MID = datetime(2026, 10, 15, tzinfo=UTC)
REPORTS: dict[str, Report] = {
    **PG_REPORTS,
    "reconcile": lambda led: reconcile.reconcile_table(led),
    "task budgets": lambda led: budgets.task_budget_burn(led, DEMO_POLICIES.task_budgets, spend.Filters()),
    "quotas": lambda led: budgets.quota_burn(led, DEMO_POLICIES.quotas, "Europe/Paris", _MID),
    "incidents team": lambda led: anomalies.find_incidents(led, "team"),
    "incidents workflow": lambda led: anomalies.find_incidents(led, "workflow"),
    "hourly spend": lambda led: anomalies.hourly_spend(led, "model", _MID - timedelta(days=14), _MID),
}


@pytest.mark.parametrize("name", REPORTS)
def test_every_report_is_identical_on_duckdb_and_clickhouse(both: tuple[Ledger, Ledger], name: str) -> None:
    duck, ch = both
    assert _same(REPORTS[name](ch)) == _same(REPORTS[name](duck))


def _same(value: object) -> object:
    """`_comparable`, through dataclasses and numpy arrays too."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _same(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, np.ndarray):
        return _comparable(value.tolist())
    if isinstance(value, list | tuple):
        return [_same(v) for v in value]
    return _comparable(value)


def test_loading_the_demo_again_adds_nothing(both: tuple[Ledger, Ledger]) -> None:
    _, ch = both
    before = ch.query_rows("SELECT count(*) AS n, sum(cost_total) AS c FROM usage_events")
    assert set(load_demo(ch, generate_org(7, scale=0.25)).values()) == {0}
    assert ch.query_rows("SELECT count(*) AS n, sum(cost_total) AS c FROM usage_events") == before


def test_reconcile_is_identical_on_provider_reports(tmp_path: Path, engine_dir: str) -> None:
    source = build_reconcile_ledger(tmp_path)
    with DuckDBLedger(source, read_only=True) as duck, _fresh(engine_dir) as ch:
        for table in TABLES:
            ch.append(table, duck.query(f"SELECT * FROM {table}"))
        assert _comparable(reconcile.reconcile_table(ch)) == _comparable(reconcile.reconcile_table(duck))
        assert reconcile.reconcile(ch) == reconcile.reconcile(duck)


# --- the HTTP transport ------------------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    """ClickHouse's HTTP interface over the chdb engine: POST /?database=..&param_x=.. with the query as body,
    or `query=INSERT ... FORMAT ArrowStream` with the data as body; results as ArrowStream, errors as HTTP 500."""

    engine_dir = ""
    databases: dict[str, EmbeddedTransport] = {}

    def do_POST(self) -> None:
        args = dict(parse_qsl(urlsplit(self.path).query, keep_blank_values=True))
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        name = args.get("database", "default")
        if name not in self.databases:
            self.databases[name] = EmbeddedTransport(self.engine_dir, name)
        db = self.databases[name]
        try:
            if "query" in args:
                table = args["query"].removeprefix("INSERT INTO ").removesuffix(" FORMAT ArrowStream")
                db.insert(table, pa.ipc.open_stream(body).read_all())
                out = b""
            else:
                params = {k.removeprefix("param_"): v for k, v in args.items() if k.startswith("param_")}
                result = db.execute(body.decode(), params)
                if args.get("default_format") == "TabSeparated":
                    out = "".join("\t".join(map(str, r.values())) + "\n" for r in result.to_pylist()).encode()
                else:
                    out = b"" if result.num_columns == 0 else _stream(result)
        except ClickHouseError as exc:
            self.send_response(500)
            out = str(exc).encode()
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, format: str, *args: object) -> None:
        pass


def _stream(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


@contextmanager
def serve_clickhouse(engine_dir: str) -> Iterator[str]:
    """A local server speaking ClickHouse's HTTP interface over chdb; yields its `clickhouse://` URL."""
    handler = type("Handler", (_Handler,), {"engine_dir": engine_dir, "databases": {}})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"clickhouse://default@127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_the_http_transport_loads_and_queries_the_same(engine_dir: str) -> None:
    batches = list(bulk_events(3_000, seed=5, batch_size=1_000))
    with serve_clickhouse(engine_dir) as url, open_ledger(f"{url}/http_{uuid.uuid4().hex[:8]}") as remote:
        assert isinstance(remote, ClickHouseLedger)
        assert [remote.append("usage_events", b) for b in batches] == [1_000] * 3
        assert remote.append("usage_events", batches[0]) == 0
        with pytest.raises(ClickHouseError, match="no_such_column"):
            remote.query("SELECT no_such_column FROM usage_events")
        with DuckDBLedger(":memory:") as duck:
            for b in batches:
                duck.append("usage_events", b)
            for name in ("spend_by team day", "summary", "tokens_per_task", "spend_by model month"):
                assert _same(REPORTS[name](remote)) == _same(REPORTS[name](duck)), name


SERVER = shutil.which("clickhouse-server") or "/usr/sbin/clickhouse-server"


@pytest.fixture(scope="module")
def debian_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Debian's ClickHouse server (18.16, `make clickhouse`) on 127.0.0.1; yields its URL."""
    if not Path(SERVER).exists():
        message = f"{SERVER} is not installed; `make clickhouse` installs it"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    data = tmp_path_factory.mktemp("clickhouse18")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    args = [
        SERVER,
        "--config-file=/etc/clickhouse-server/config.xml",
        "--",
        f"--path={data}/",
        f"--http_port={port}",
        "--tcp_port=0",
        "--listen_host=127.0.0.1",
        f"--logger.log={data}/log",
        f"--logger.errorlog={data}/err",
    ]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):  # the server takes a few seconds to open its port
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ping", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                proc.poll()
                assert proc.returncode is None, "clickhouse-server exited"
                time.sleep(0.1)
        yield f"clickhouse://default@127.0.0.1:{port}/default"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_the_http_transport_talks_to_a_real_clickhouse_server(debian_server: str) -> None:
    transport = HttpTransport(debian_server)
    try:
        assert transport.version().startswith("18.")
        with pytest.raises(ClickHouseError, match="Unknown setting|ArrowStream|Unknown format"):
            transport.execute("SELECT 1 AS one")  # the settings and Arrow format the ledger needs are newer
    finally:
        transport.close()
    with pytest.raises(ClickHouseError, match="too old"):
        ClickHouseLedger.http(debian_server)
