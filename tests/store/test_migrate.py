"""`tokenops migrate` between DuckDB, PostgreSQL and ClickHouse (chdb): every table, no loss, idempotent.

The source is the demo organisation plus a reconciliation's provider reports and bills, so every
ledger table holds rows. A round trip DuckDB -> PostgreSQL -> DuckDB and DuckDB -> ClickHouse ->
DuckDB must give back every row exactly, and every report the same numbers.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import duckdb
import orjson
import pytest
from typer.testing import CliRunner

from tests.guard.conftest import unused_port
from tests.ingest.test_reconcile import build as build_reconcile_ledger
from tests.store.conftest import fresh_database
from tests.store.test_clickhouse import REPORTS, _same
from tokenops.cli import app as cli
from tokenops.cli.migrate import migrate_ledger
from tokenops.demo import generate_org, load_demo
from tokenops.store import DuckDBLedger, Ledger, open_ledger
from tokenops.store.schema import TABLES

runner = CliRunner()


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DuckDB ledger with rows in every table: the small demo organisation and a reconciliation's imports."""
    folder = tmp_path_factory.mktemp("migrate")
    path = folder / "demo.duckdb"
    imports = build_reconcile_ledger(folder)
    with DuckDBLedger(path) as ledger, DuckDBLedger(imports, read_only=True) as extra:
        load_demo(ledger, generate_org(7, scale=0.25))
        for table in TABLES:
            ledger.append(table, extra.query(f"SELECT * FROM {table}"))
        assert all(ledger.query_rows(f"SELECT count(*) AS n FROM {t}")[0]["n"] for t in TABLES)
    return path


@pytest.fixture
def chdb_url(engine_dir: str) -> str:
    """A fresh database in the run's one chdb data directory (the engine opens one per process)."""
    return f"chdb:{engine_dir}?database=migrated_{uuid.uuid4().hex[:8]}"


@pytest.fixture
def pg() -> Iterator[str]:
    with fresh_database() as dsn:
        yield dsn


def _migrate(source: str, target: str, *extra: str) -> dict[str, dict[str, object]]:
    result = runner.invoke(cli, ["migrate", "--from", source, "--to", target, "-f", "json", *extra])
    assert result.exit_code == 0, result.output
    assert "Verified:" in result.stderr
    return {str(r["table"]): r for r in orjson.loads(result.stdout)}


def _rows(ledger: Ledger, table: str) -> list[dict[str, object]]:
    """A table's rows in key order (sorted here: backends may collate strings differently)."""
    spec = TABLES[table]
    rows = ledger.query_rows(f"SELECT * FROM {table}")
    return sorted(rows, key=lambda r: tuple(str(r[k]) for k in spec.key))


def _assert_same_ledgers(a: Ledger, b: Ledger) -> None:
    for table in TABLES:
        assert _rows(a, table) == _rows(b, table), table
    for name, report in REPORTS.items():
        assert _same(report(a)) == _same(report(b)), name


def _first_run(moved: dict[str, dict[str, object]], source: Path) -> None:
    assert set(moved) == set(TABLES)
    with DuckDBLedger(source, read_only=True) as duck:
        for table, row in moved.items():
            n = duck.query_rows(f"SELECT count(*) AS n FROM {table}")[0]["n"]
            assert row["ok"] and row["source_rows"] == row["new_rows"] == row["target_rows"] == n, row


def test_duckdb_to_postgres_and_back_keeps_every_row_and_every_report(source: Path, pg: str, tmp_path: Path) -> None:
    _first_run(_migrate(f"duckdb:{source}", pg), source)
    again = _migrate(str(source), pg)
    assert {t: r["new_rows"] for t, r in again.items()} == dict.fromkeys(TABLES, 0)
    back = tmp_path / "back.duckdb"
    returned = _migrate(pg, str(back), "--batch-rows", "4000")  # keyset pages over every table
    assert all(r["ok"] and r["new_rows"] == r["source_rows"] for r in returned.values())
    with DuckDBLedger(source, read_only=True) as original, DuckDBLedger(back, read_only=True) as copy:
        _assert_same_ledgers(original, copy)


def test_duckdb_to_clickhouse_and_back_keeps_every_row_and_every_report(
    source: Path, chdb_url: str, tmp_path: Path
) -> None:
    target = chdb_url
    _first_run(_migrate(f"duckdb:{source}", target), source)
    again = _migrate(f"duckdb:{source}", target)
    assert {t: r["new_rows"] for t, r in again.items()} == dict.fromkeys(TABLES, 0)
    assert all(r["ok"] for r in again.values())
    with DuckDBLedger(source, read_only=True) as original, open_ledger(target) as ch:
        _assert_same_ledgers(original, ch)
    back = tmp_path / "back.duckdb"
    returned = _migrate(target, str(back), "--batch-rows", "4000")
    assert all(r["ok"] and r["new_rows"] == r["source_rows"] for r in returned.values())
    with DuckDBLedger(source, read_only=True) as original, DuckDBLedger(back, read_only=True) as copy:
        for table in TABLES:
            assert _rows(original, table) == _rows(copy, table), table


def test_pages_of_one_row_walk_a_composite_key_without_skipping(source: Path, pg: str, tmp_path: Path) -> None:
    """Keyset paging on seat licences' (person_id, tool, start_date), one row per page."""
    with DuckDBLedger(source, read_only=True) as original, open_ledger(pg) as server:
        seats = original.query("SELECT * FROM seat_licenses")
        server.append("seat_licenses", seats)
    with DuckDBLedger(tmp_path / "copy.duckdb") as copy:
        moved = {m.table: m for m in migrate_ledger(pg, copy, batch_rows=1)}
        assert moved["seat_licenses"].ok and moved["seat_licenses"].new_rows == seats.num_rows > 1
        assert _rows(copy, "seat_licenses") == sorted(
            seats.to_pylist(), key=lambda r: (r["person_id"], r["tool"], str(r["start_date"]))
        )


def test_a_difference_in_tokens_fails_the_verification(source: Path, tmp_path: Path) -> None:
    target = tmp_path / "target.duckdb"
    with DuckDBLedger(target) as ledger:
        migrate_ledger(source, ledger)
    with duckdb.connect(str(target)) as conn:  # a row changed behind the ledger's back
        conn.execute("UPDATE usage_events SET output_tokens = output_tokens + 1 WHERE request_id = "
                     "(SELECT min(request_id) FROM usage_events)")  # fmt: skip
    with DuckDBLedger(target) as ledger:
        moved = {m.table: m for m in migrate_ledger(source, ledger)}
    events = moved["usage_events"]
    assert events.source_rows == events.target_rows and events.source_cost == events.target_cost
    assert events.differs == ("output_tokens",) and not events.ok
    result = runner.invoke(cli, ["migrate", "--from", str(source), "--to", str(target)])
    assert result.exit_code == 1 and "Totals differ" in result.output and "output_tokens" in result.output


@pytest.mark.parametrize(
    ("source_url", "target_url", "message"),
    [
        ("SOURCE", "duckdb:SOURCE", "the same ledger"),
        ("chdb:/tmp/a", "chdb:/tmp/b", "one data directory per process"),
        ("https://example.com/x", "out.duckdb", "is not a ledger"),
        ("missing.duckdb", "out.duckdb", "No DuckDB ledger at 'missing.duckdb'"),
        ("SOURCE", "postgresql://postgres@127.0.0.1:PORT/x", "Connection refused"),
    ],
)
def test_impossible_migrations_say_why(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source_url: str, target_url: str, message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    args = [u.replace("SOURCE", str(source)).replace("PORT", str(unused_port())) for u in (source_url, target_url)]
    result = runner.invoke(cli, ["migrate", "--from", args[0], "--to", args[1]])
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())
