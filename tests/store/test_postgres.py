"""The PostgreSQL ledger: same schema and idempotency as DuckDB, several writers, identical reports."""

from __future__ import annotations

import dataclasses
import multiprocessing
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from pathlib import Path

import orjson
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from tests.analytics.clients import admin_client
from tests.factories import T0, event
from tests.ingest.test_reconcile import build as build_reconcile_ledger
from tests.store.conftest import fresh_database
from tokenops.analytics import adoption, forecast, kpis, maturity, recommend, reconcile, spend, unit_economics, yield_
from tokenops.cli import app as cli
from tokenops.cli.migrate import migrate_ledger
from tokenops.demo import bulk_events, generate_org, load_demo
from tokenops.events import Person, TaskRun
from tokenops.store import DuckDBLedger, Ledger, open_ledger
from tokenops.store.migrations import MIGRATIONS
from tokenops.store.postgres import PostgresLedger
from tokenops.store.schema import TABLES

PG_TYPES = {"VARCHAR": "text", "TIMESTAMP": "timestamp without time zone", "BIGINT": "bigint", "DATE": "date",
            "BOOLEAN": "boolean", "DOUBLE": "double precision", "INTEGER": "integer"}  # fmt: skip


@pytest.fixture
def ledger(pg_dsn: str) -> Iterator[PostgresLedger]:
    with PostgresLedger(pg_dsn) as opened:
        yield opened


def test_fresh_database_has_exactly_the_declared_columns(ledger: PostgresLedger) -> None:
    for table in TABLES.values():
        rows = ledger.query_rows(
            "SELECT column_name, data_type, numeric_precision, numeric_scale, is_nullable "
            "FROM information_schema.columns WHERE table_name = ? ORDER BY ordinal_position",
            [table.name],
        )
        assert [r["column_name"] for r in rows] == [c.name for c in table.columns]
        types = [f"DECIMAL({r['numeric_precision']},{r['numeric_scale']})" for r in rows]
        types = [t if r["data_type"] == "numeric" else str(r["data_type"]) for t, r in zip(types, rows, strict=True)]
        assert types == [PG_TYPES.get(c.sql, c.sql) for c in table.columns]
        assert [r["is_nullable"] == "YES" for r in rows] == [c.nullable for c in table.columns]


def test_migrations_are_recorded_and_not_reapplied(pg_dsn: str) -> None:
    with open_ledger(pg_dsn) as first:
        assert isinstance(first, PostgresLedger)
        assert [r["name"] for r in first.query_rows("SELECT name FROM _migrations ORDER BY name")] == [
            m.__name__ for m in MIGRATIONS
        ]
    with PostgresLedger(pg_dsn) as second:
        assert second.migrate() == []


def test_events_round_trip_exactly(ledger: PostgresLedger) -> None:
    original = event("r1", input_tokens=1_234, output_tokens=567)
    assert ledger.record_events([original]) == 1
    (stored,) = ledger.events()
    assert stored == original
    assert stored.cost is not None and stored.cost.total == Decimal("0.008755")


def test_recording_the_same_events_twice_never_double_counts(ledger: PostgresLedger) -> None:
    batch = [event(f"r{i}", ts=T0 + timedelta(minutes=i)) for i in range(50)]
    assert ledger.record_events(batch + batch[:10]) == 50
    total = ledger.query_rows("SELECT sum(cost_total) AS c, count(*) AS n FROM usage_events")[0]
    assert ledger.record_events(batch) == 0
    assert ledger.query_rows("SELECT sum(cost_total) AS c, count(*) AS n FROM usage_events")[0] == total
    assert total["n"] == 50


def test_replace_tables_keep_the_last_row_and_count_only_new_keys(ledger: PostgresLedger) -> None:
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


def test_strings_with_csv_syntax_and_empty_strings_are_not_nulls(ledger: PostgresLedger) -> None:
    odd = event('r,"1"\n', team="", user='a "b", c', workflow="\\N")
    assert ledger.record_events([odd, event("r2", team=None)]) == 2
    assert sorted(ledger.events(), key=lambda e: e.request_id) == [odd, event("r2", team=None)]


def _writer(
    dsn: str, start: multiprocessing.synchronize.Event, seeds: list[int], out: multiprocessing.Queue[int]
) -> None:
    """One writer process: waits for the start signal, appends every batch of `seeds`, reports new rows."""
    batches = [b for seed in seeds for b in bulk_events(6_000, seed=seed, batch_size=2_000)]
    with PostgresLedger(dsn) as ledger:
        start.wait()
        out.put(sum(ledger.append("usage_events", b) for b in batches))


def test_two_writer_processes_lose_nothing_and_duplicate_nothing(pg_dsn: str) -> None:
    PostgresLedger(pg_dsn).close()  # migrate once up front, as a deployment does
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    # both write seed 1 (the same rows, in opposite orders) and one seed of their own
    procs = [ctx.Process(target=_writer, args=(pg_dsn, start, seeds, out)) for seeds in ([1, 2], [3, 1])]
    for p in procs:
        p.start()
    start.set()
    new = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    expected = pa.concat_tables([b for seed in (1, 2, 3) for b in bulk_events(6_000, seed=seed, batch_size=2_000)])
    with PostgresLedger(pg_dsn) as ledger:
        row = ledger.query_rows("SELECT count(*) AS n, count(DISTINCT request_id) AS keys, sum(cost_total) AS c "
                                "FROM usage_events")[0]  # fmt: skip
    assert sum(new) == row["n"] == row["keys"] == expected.num_rows == 18_000
    assert row["c"] == sum(v for v in expected.column("cost_total").to_pylist() if v is not None)


# --- identical reports on DuckDB and PostgreSQL --------------------------------------------------------------------


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Ledger, Ledger]]:
    """The small demo organisation loaded into DuckDB and into a fresh PostgreSQL database."""
    org = generate_org(7, scale=0.25)
    with fresh_database() as dsn, DuckDBLedger(":memory:") as duck, PostgresLedger(dsn) as pg:
        assert load_demo(duck, org) == load_demo(pg, org)
        yield duck, pg


Report = Callable[[Ledger], object]
_MID = datetime(2026, 10, 15, tzinfo=UTC)
_EARLY, _LATE = spend.Filters(end=_MID), spend.Filters(start=_MID)
REPORTS: dict[str, Report] = {
    **{
        f"spend_by {d or '-'} {g or '-'}": partial(spend.spend_by, dimensions=[d] if d else [], grain=g)
        for d in (None, *spend.DIMENSIONS)
        for g in (None, *spend.GRAINS)
    },
    "spend_by filtered": lambda led: spend.spend_by(led, ["model"], filters=spend.Filters(team="support", start=_MID)),
    "summary": lambda led: spend.summary(led),
    "summary filtered": lambda led: spend.summary(led, _LATE),
    "tokens_per_task": lambda led: spend.tokens_per_task(led),
    **{f"kpis {d}": partial(kpis.kpis, dimensions=[d]) for d in kpis.KPI_DIMENSIONS},
    **{f"kpis team {g}": partial(kpis.kpis, dimensions=["team"], grain=g) for g in spend.GRAINS},
    "kpis workflow,model filtered": lambda led: kpis.kpis(led, ["workflow", "model"], filters=_LATE),
    **{f"cost_per_outcome {b}": partial(unit_economics.cost_per_outcome, by=b) for b in ("workflow", "team")},
    "outcome_variance": lambda led: unit_economics.outcome_variance(led, _EARLY, _LATE),
    **{f"ai_yield {b}": partial(yield_.ai_yield, by=b) for b in ("all", "team", "workflow")},
    "adoption": lambda led: adoption.adoption(led),
    "maturity": lambda led: maturity.maturity(led),
    **{f"forecast {b}": partial(forecast.month_end, by=b) for b in ("team", "workflow", "user")},
    "recommendations": lambda led: recommend.recommendations(led),
}


def _comparable(value: object) -> object:
    """Arrow tables as their schema and rows, so a difference shows which cell differs; floats to 12 digits.

    Money, counts, strings and times must match exactly. Floats are cut to 12 significant digits:
    DuckDB and PostgreSQL interpolate quantiles (`quantile_cont`, `percentile_cont`) with the same
    formula but in a different order of operations, so the last bit of the result can differ.
    """
    if isinstance(value, pa.Table):
        return str(value.schema), _comparable(value.to_pylist())
    if isinstance(value, float):
        return float(f"{value:.12g}")
    if isinstance(value, list | tuple):
        return [_comparable(v) for v in value]
    if isinstance(value, dict):
        return {k: _comparable(v) for k, v in value.items()}
    return value


@pytest.mark.parametrize("name", REPORTS)
def test_every_report_is_identical_on_duckdb_and_postgres(both: tuple[Ledger, Ledger], name: str) -> None:
    duck, pg = both
    assert _comparable(REPORTS[name](pg)) == _comparable(REPORTS[name](duck))


API = ("/api/summary", "/api/spend?by=team,model&grain=week", "/api/tokens-per-task", "/api/events?limit=200",
       "/api/kpis?by=workflow", "/api/kpis?by=team&grain=day", "/api/cost-per-outcome", "/api/forecast",
       "/api/recommendations", "/api/yield?by=team", "/api/adoption", "/api/maturity")  # fmt: skip


def test_the_web_api_answers_the_same_json(both: tuple[Ledger, Ledger], tmp_path: Path) -> None:
    duck, pg = both
    with admin_client(duck, tmp_path / "duck") as a, admin_client(pg, tmp_path / "pg") as b:
        for url in API:
            got, want = b.get(url), a.get(url)
            assert (url, got.status_code) == (url, 200)
            assert _comparable(orjson.loads(got.content)) == _comparable(orjson.loads(want.content)), url


# --- tokenops migrate ---------------------------------------------------------------------------------------------


def test_migrate_moves_everything_once_and_reconciles_identically(tmp_path: Path, pg_dsn: str) -> None:
    source = build_reconcile_ledger(tmp_path)
    runner = CliRunner()
    first = runner.invoke(cli, ["migrate", "--from", f"duckdb:{source}", "--to", pg_dsn, "-f", "json"])
    assert first.exit_code == 0, first.output
    moved = {r["table"]: r for r in orjson.loads(first.stdout)}
    assert moved["usage_events"]["new_rows"] == moved["usage_events"]["target_rows"] == 5
    assert moved["provider_usage"]["new_rows"] > 0 and moved["billed_costs"]["new_rows"] > 0
    assert all(r["ok"] for r in moved.values())
    again = runner.invoke(cli, ["migrate", "--from", str(source), "--to", pg_dsn, "-f", "json"])
    assert again.exit_code == 0, again.output
    assert [r["new_rows"] for r in orjson.loads(again.stdout)] == [0] * len(moved)
    with DuckDBLedger(source, read_only=True) as duck, PostgresLedger(pg_dsn) as pg:
        assert _comparable(reconcile.reconcile_table(pg)) == _comparable(reconcile.reconcile_table(duck))
        assert reconcile.reconcile(pg) == reconcile.reconcile(duck)


def test_migrate_reports_a_target_holding_other_data(tmp_path: Path, pg_dsn: str) -> None:
    source = build_reconcile_ledger(tmp_path)
    with PostgresLedger(pg_dsn) as pg:
        pg.record_events([event("already-there")])
        moved = {m.table: m for m in migrate_ledger(source, pg, batch_rows=2)}
    assert (moved["usage_events"].source_rows, moved["usage_events"].target_rows) == (5, 6)
    assert not moved["usage_events"].ok and moved["people"].ok
    result = CliRunner().invoke(cli, ["migrate", "--from", str(source), "--to", pg_dsn])
    assert result.exit_code == 1 and "Totals differ" in result.output


def test_the_gateways_batches_copy_without_arrow_and_match_arrow_appends(pg_dsn: str) -> None:
    """`PostgresLedger.append_rows` (COPY from Python rows, rollups in SQL) equals `append` from Arrow."""
    from tests.store.test_writer import batch_rows
    from tokenops.store import rows as store_rows

    samples = batch_rows()
    ORDER = {
        "usage_events": "request_id",
        "usage_hourly": "ts, team NULLS FIRST",
        "usage_daily": "ts, team NULLS FIRST",
    }
    with PostgresLedger(pg_dsn) as ledger:
        assert ledger.append_rows("usage_events", samples[:5]) == 5
        assert ledger.append_rows("usage_events", samples) == 3  # a replayed batch: only the new rows count
        assert ledger.append_rows("usage_events", samples) == 0
        by_rows = {
            table: ledger.query_rows(f"SELECT * FROM {table} ORDER BY {ORDER[table]}")
            for table in ("usage_events", "usage_hourly", "usage_daily")
        }
    with fresh_database() as other, PostgresLedger(other) as ledger:
        assert ledger.append("usage_events", store_rows.to_arrow("usage_events", samples)) == 8
        by_arrow = {table: ledger.query_rows(f"SELECT * FROM {table} ORDER BY {ORDER[table]}") for table in by_rows}
    assert by_rows == by_arrow
    assert sum(int(str(r["calls"])) for r in by_rows["usage_daily"]) == 8
