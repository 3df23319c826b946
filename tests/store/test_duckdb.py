from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from tests.factories import T0, event
from tokenops.events import Outcome, Person, TaskRun
from tokenops.store import DuckDBLedger, open_ledger
from tokenops.store.migrations import MIGRATIONS
from tokenops.store.schema import TABLES, TASK_RUN_TOTALS


@pytest.fixture
def ledger() -> DuckDBLedger:
    return DuckDBLedger(":memory:")


def test_fresh_database_has_exactly_the_declared_columns(ledger: DuckDBLedger) -> None:
    for table in TABLES.values():
        rows = ledger.query_rows(
            "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
            "WHERE table_name = ? ORDER BY ordinal_position",
            [table.name],
        )
        assert [r["column_name"] for r in rows] == [c.name for c in table.columns]
        assert [r["data_type"] for r in rows] == [c.sql for c in table.columns]
        assert [r["is_nullable"] == "YES" for r in rows] == [c.nullable for c in table.columns]


def test_fresh_database_keeps_task_run_totals_as_the_schema_declares(ledger: DuckDBLedger) -> None:
    """m005 spells its DDL out (a migration stays as it shipped); this keeps it and `schema.TASK_RUN_TOTALS` one."""
    rows = ledger.query_rows(
        "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
        "WHERE table_name = 'task_run_totals' ORDER BY ordinal_position"
    )
    assert [(r["column_name"], r["data_type"], r["is_nullable"] == "YES") for r in rows] == [
        (c.name, c.sql, c.nullable) for c in TASK_RUN_TOTALS
    ]


def test_migrations_are_recorded_and_not_reapplied(tmp_path: Path) -> None:
    path = tmp_path / "l.duckdb"
    with DuckDBLedger(path) as first:
        assert [r["name"] for r in first.query_rows("SELECT name FROM _migrations")] == [m.__name__ for m in MIGRATIONS]
    with DuckDBLedger(path) as second:
        assert second.migrate() == []


def test_events_round_trip_exactly(ledger: DuckDBLedger) -> None:
    original = event("r1", input_tokens=1_234, output_tokens=567)
    assert ledger.record_events([original]) == 1
    (stored,) = ledger.events()
    assert stored == original
    assert stored.cost is not None and stored.cost.total == Decimal("0.008755")


def test_recording_the_same_events_twice_never_double_counts(ledger: DuckDBLedger) -> None:
    batch = [event(f"r{i}", ts=T0 + timedelta(minutes=i)) for i in range(50)]
    assert ledger.record_events(batch + batch[:10]) == 50
    total = ledger.query_rows("SELECT sum(cost_total) AS c, count(*) AS n FROM usage_events")[0]
    assert ledger.record_events(batch) == 0
    assert ledger.query_rows("SELECT sum(cost_total) AS c, count(*) AS n FROM usage_events")[0] == total
    assert total["n"] == 50


def test_unpriced_model_is_stored_as_unpriced_not_zero(ledger: DuckDBLedger) -> None:
    ledger.record_events([event("known"), event("mystery", model="acme-internal-llm", provider="self-hosted")])
    row = ledger.query_rows("SELECT * FROM usage_events WHERE request_id = 'mystery'")[0]
    assert row["unpriced"] is True
    assert row["cost_total"] is None
    assert row["price_source"] == "unpriced"
    (stored,) = ledger.events("request_id = ?", ["mystery"])
    assert stored.unpriced


def test_task_runs_are_updated_as_they_finish(ledger: DuckDBLedger) -> None:
    running = TaskRun("t1", "support_ticket", T0)
    done = TaskRun("t1", "support_ticket", T0, status="completed", ended_at=T0 + timedelta(minutes=3))
    ledger.record_task_runs([running])
    assert ledger.record_task_runs([done]) == 0  # an update, not a new run
    rows = ledger.query_rows("SELECT status, ended_at FROM task_runs")
    assert rows == [{"status": "completed", "ended_at": datetime(2026, 11, 2, 9, 33)}]


def test_last_row_for_a_key_wins_within_one_batch(ledger: DuckDBLedger) -> None:
    ledger.record_people([Person("p1", "support", Decimal(60)), Person("p1", "sales", Decimal(70))])
    assert ledger.query_rows("SELECT team, loaded_hourly_cost FROM people") == [
        {"team": "sales", "loaded_hourly_cost": Decimal("70.000000000000")}
    ]


def test_outcomes_link_to_several_task_runs_once(ledger: DuckDBLedger) -> None:
    outcome = Outcome("o1", T0, "ticket_resolved", Decimal("42.00"), task_run_ids=("t1", "t2"))
    assert ledger.record_outcomes([outcome, outcome]) == 1
    assert ledger.record_outcomes([outcome]) == 0
    assert ledger.query_rows("SELECT count(*) AS n FROM outcome_task_runs") == [{"n": 2}]


def test_naive_timestamps_are_refused(ledger: DuckDBLedger) -> None:
    with pytest.raises(ValueError, match="no time zone"):
        ledger.record_events([event("r", ts=datetime(2026, 1, 1))])


def test_open_ledger_accepts_paths_and_duckdb_urls(tmp_path: Path) -> None:
    with open_ledger(f"duckdb:{tmp_path / 'a.duckdb'}") as a:
        a.record_events([event("x", ts=datetime(2026, 1, 1, tzinfo=UTC))])
    with open_ledger(tmp_path / "a.duckdb") as b:
        assert len(b.events()) == 1
    with pytest.raises(ValueError, match="Unsupported ledger URL"):
        open_ledger("mysql://nope")


def test_a_batch_of_old_and_new_events_writes_only_the_new(ledger: DuckDBLedger) -> None:
    old = [event(f"r{i}", ts=T0 + timedelta(minutes=i)) for i in range(50)]
    new = [event(f"n{i}", ts=T0 + timedelta(minutes=i)) for i in range(25)]
    ledger.record_events(old)
    assert ledger.record_events(old[:25] + new) == 25
    assert ledger.query_rows("SELECT count(*) AS n FROM usage_events") == [{"n": 75}]


def test_key_index_is_rebuilt_if_it_falls_out_of_step(tmp_path: Path) -> None:
    path = tmp_path / "l.duckdb"
    batch = [event(f"r{i}", ts=T0 + timedelta(minutes=i)) for i in range(20)]
    with DuckDBLedger(path) as ledger:
        ledger.record_events(batch)
        ledger._conn.execute("DELETE FROM _keys_usage_events")
    with DuckDBLedger(path) as reopened:
        assert reopened.record_events(batch) == 0
        assert reopened.query_rows("SELECT count(*) AS n FROM usage_events") == [{"n": 20}]
