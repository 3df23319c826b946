from __future__ import annotations

import random
from datetime import UTC
from decimal import Decimal

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from tokenops.demo import bulk, bulk_events
from tokenops.events import TokenUsage
from tokenops.pricing import Priced, Pricer
from tokenops.store import DuckDBLedger
from tokenops.store.schema import TABLES


@pytest.fixture(scope="module")
def batches() -> list[pa.Table]:
    return list(bulk_events(25_000, seed=3, batch_size=10_000))


def test_bulk_yields_exactly_n_events_in_ledger_batches(batches: list[pa.Table]) -> None:
    assert [b.num_rows for b in batches] == [10_000, 10_000, 5_000]
    assert all(b.schema == TABLES["usage_events"].arrow_schema for b in batches)
    assert list(bulk_events(0)) == []


def test_bulk_ids_are_unique_and_runs_group_calls(batches: list[pa.Table]) -> None:
    events = pa.concat_tables(batches)
    assert pc.count_distinct(events.column("request_id")).as_py() == events.num_rows
    per_run = events.group_by("task_run_id").aggregate([("request_id", "count")])
    assert pc.max(per_run.column("request_id_count")).as_py() > 5
    assert per_run.num_rows < events.num_rows / 2
    assert len(set(events.column("workflow").to_pylist())) >= 10
    assert events.column("user_id").null_count == 0


def test_bulk_is_deterministic_and_seeded(batches: list[pa.Table]) -> None:
    again = list(bulk_events(25_000, seed=3, batch_size=10_000))
    assert all(a.equals(b) for a, b in zip(batches, again, strict=True))
    other = next(bulk_events(10_000, seed=4, batch_size=10_000))
    assert not other.equals(batches[0])


def test_bulk_costs_are_exact(batches: list[pa.Table]) -> None:
    rows = random.Random(5).sample(pa.concat_tables(batches).to_pylist(), 200)
    pricer = Pricer()
    for r in rows:
        usage = TokenUsage(
            r["input_tokens"],
            r["cache_read_tokens"],
            r["cache_write_tokens"],
            r["cache_write_1h_tokens"],
            r["output_tokens"],
            r["reasoning_tokens"],
        )
        got = pricer.price(r["model"], usage, provider=r["provider"], ts=r["ts"].replace(tzinfo=UTC), batch=r["batch"])
        if isinstance(got, Priced):
            assert r["cost_total"] == got.cost.total.quantize(Decimal("1e-12"))
        else:
            assert r["unpriced"] and r["cost_total"] is None


def test_bulk_batches_load_into_the_ledger(batches: list[pa.Table]) -> None:
    with DuckDBLedger(":memory:") as ledger:
        assert sum(ledger.append("usage_events", b) for b in batches) == 25_000
        assert ledger.append("usage_events", batches[0]) == 0


def test_bulk_batches_are_built_from_chunks_that_keep_ids_unique(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bulk, "CHUNK", 3_000)
    (table,) = list(bulk_events(10_000, seed=3, batch_size=10_000))
    assert table.num_rows == 10_000
    assert pc.count_distinct(table.column("request_id")).as_py() == 10_000
    runs = table.group_by("task_run_id").aggregate([("user_id", "count_distinct"), ("workflow", "count_distinct")])
    assert pc.max(runs.column("user_id_count_distinct")).as_py() == 1
    assert pc.max(runs.column("workflow_count_distinct")).as_py() == 1


def test_bulk_batches_walk_through_the_window_in_order(batches: list[pa.Table]) -> None:
    spans = [pc.min_max(b.column("ts")).as_py() for b in batches]
    assert all(a["min"] < b["min"] for a, b in zip(spans, spans[1:], strict=False))
    assert (spans[-1]["max"] - spans[0]["min"]).days > 300
    days = {t.date() for t in pa.concat_tables(batches).column("ts").to_pylist()}
    assert sum(d.weekday() < 5 for d in days) > 200
