from __future__ import annotations

import importlib.util
import logging
import os
import random
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import duckdb
import orjson
import pyarrow as pa
import pytest

from tests.factories import T0, event
from tokenops.errors import StoreError
from tokenops.events import Attribution, UsageEvent
from tokenops.store import DuckDBLedger, Ledger, rows
from tokenops.store import writer as writer_module
from tokenops.store.schema import TABLES
from tokenops.store.spool import Intent, encode_event
from tokenops.store.writer import LedgerWriter

REPO = Path(__file__).resolve().parents[2]
HELPER = Path(__file__).with_name("_crash_writer.py")


def _helper() -> ModuleType:
    spec = importlib.util.spec_from_file_location("_crash_writer", HELPER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


crash = _helper()


class FlakyLedger(DuckDBLedger):
    """A ledger whose first `failures` appends fail, like a database that is briefly down."""

    def __init__(self, failures: int) -> None:
        super().__init__(":memory:")
        self.failures = failures
        self.calls = 0

    def _fail_first(self) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionError(f"database unavailable (attempt {self.calls})")

    def append(self, table: str, data: pa.Table) -> int:
        self._fail_first()
        return super().append(table, data)

    def append_rows(self, table: str, data: Sequence[Mapping[str, object]]) -> int:
        self._fail_first()
        return super().append_rows(table, data)


@pytest.fixture
def ledger() -> Iterator[DuckDBLedger]:
    ledger = DuckDBLedger(":memory:")
    yield ledger
    ledger.close()


def _writer(ledger: Ledger, spool: Path, **kwargs: object) -> LedgerWriter:
    options: dict[str, object] = {"flush_interval": 0.01, "rescan_interval": None, "retry_initial": 0.001}
    options.update(kwargs)
    return LedgerWriter(ledger, spool, **options)  # type: ignore[arg-type]


def _ids(ledger: Ledger) -> list[str]:
    return [str(r["request_id"]) for r in ledger.query_rows("SELECT request_id FROM usage_events ORDER BY 1")]


def _segments(spool: Path) -> list[Path]:
    return sorted(spool.glob("*.jsonl"))


def _wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    done = threading.Event()
    for _ in range(int(timeout / 0.01)):
        if condition():
            return
        done.wait(0.01)
    raise AssertionError("condition not met in time")


def test_submitted_events_are_in_the_ledger_exactly_once_after_flush(ledger: DuckDBLedger, tmp_path: Path) -> None:
    events = [event(f"r{i}", ts=T0 + timedelta(minutes=i)) for i in range(25)]
    with _writer(ledger, tmp_path / "spool") as writer:
        for e in events:
            writer.submit(e)
        writer.flush()
        assert sorted(ledger.events(limit=100), key=lambda e: e.request_id) == sorted(
            events, key=lambda e: e.request_id
        )
        stats = writer.stats
    assert (stats.submitted, stats.written, stats.duplicates_ignored, stats.queue_depth) == (25, 25, 0, 0)


def test_submitting_the_same_event_twice_is_one_row(ledger: DuckDBLedger, tmp_path: Path) -> None:
    once = event("r1")
    with _writer(ledger, tmp_path / "spool") as writer:
        writer.submit(once)
        writer.submit(once)
        writer.flush()
        writer.submit(once)
        writer.flush()
        stats = writer.stats
    assert _ids(ledger) == ["r1"]
    assert (stats.submitted, stats.written, stats.duplicates_ignored) == (3, 1, 2)


def test_kill_9_loses_nothing_and_records_calls_in_flight_as_interrupted(tmp_path: Path) -> None:
    db, spool = tmp_path / "ledger.duckdb", tmp_path / "spool"
    completed, written_first, in_flight = 60, 20, 3
    args = [str(db), str(spool), str(completed), str(written_first), str(in_flight)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with subprocess.Popen(
        [sys.executable, str(HELPER), *args],
        cwd=REPO,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "ready\n"
        # while it lives its segment is locked: another writer must not replay (or delete) it
        with DuckDBLedger(":memory:") as other:
            bystander = _writer(other, spool)
            assert bystander.start().segments == 0
            bystander.close()
            assert _ids(other) == []
        assert _segments(spool)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL

    with DuckDBLedger(db) as ledger:
        assert len(_ids(ledger)) == written_first  # the rest existed only in the spool
        with _writer(ledger, spool) as writer:
            report = writer.replay_report
            stats = writer.stats
        assert report is not None
        assert (report.events, report.interrupted, report.duplicates) == (completed, in_flight, written_first)
        assert report.written == completed - written_first + in_flight
        assert (stats.replayed, stats.interrupted) == (completed, in_flight)
        assert _segments(spool) == []

        submitted = crash.completed_events(completed)
        stored = ledger.events("error_type IS DISTINCT FROM 'interrupted'", limit=1000)
        assert sorted(stored, key=lambda e: e.request_id) == sorted(submitted, key=lambda e: e.request_id)
        total = ledger.query_rows("SELECT sum(cost_total) AS c, count(*) AS n FROM usage_events")[0]
        assert total == {
            "c": sum(e.cost.total for e in submitted if e.cost is not None),
            "n": completed + in_flight,
        }

        interrupted = sorted(ledger.events("error_type = 'interrupted'"), key=lambda e: e.request_id)
        assert interrupted == [
            Intent(
                f"inflight-{j}", T0 + timedelta(hours=j), "anthropic", "claude-x", crash.in_flight_attribution(j)
            ).interrupted_event()
            for j in range(in_flight)
        ]
        first = interrupted[0]
        assert (first.status, first.cost, first.price_source, first.estimated) == ("error", None, "unpriced", True)
        assert first.usage.total_tokens == 0


def test_torn_last_line_is_skipped_and_everything_before_it_kept(
    ledger: DuckDBLedger, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()

    lines = [encode_event(rows.event_row(event(f"r{i}")), None) for i in range(4)]
    intent = Intent("c9", T0, "openai", "gpt-4o", Attribution(team="x")).encode()
    dead = spool / "4242-deadbeef-000001.jsonl"
    dead.write_bytes(lines[0] + intent + lines[1] + lines[2] + lines[3][: len(lines[3]) // 2])
    with caplog.at_level(logging.WARNING, logger="tokenops.store.spool"):
        with _writer(ledger, spool) as writer:
            report = writer.replay_report
    assert report is not None
    assert (report.segments, report.events, report.interrupted, report.torn) == (1, 3, 1, 1)
    assert _ids(ledger) == ["c9", "r0", "r1", "r2"]
    assert "torn last line" in caplog.text and "4242-deadbeef-000001.jsonl:5" in caplog.text
    assert not dead.exists()


def test_unreadable_line_is_skipped_and_its_segment_kept_aside(ledger: DuckDBLedger, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()

    good = [encode_event(rows.event_row(event(f"r{i}")), None) for i in range(2)]
    dead = spool / "4242-deadbeef-000001.jsonl"
    dead.write_bytes(good[0] + b'{"event": {"request_id": "x"}}\n' + b"\x00\x00\x00\n" + good[1])
    with _writer(ledger, spool) as writer:
        report = writer.replay_report
    assert report is not None and report.corrupt == 2
    assert _ids(ledger) == ["r0", "r1"]
    assert [p.name for p in spool.iterdir() if not p.name.startswith(".")] == ["4242-deadbeef-000001.corrupt"]


def test_a_live_writers_segments_are_not_replayed_by_another(ledger: DuckDBLedger, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    live = _writer(ledger, spool, batch_size=10**6, flush_interval=3600.0)
    live.start()
    live.begin("c1", T0, "openai", "gpt-4o", Attribution())
    live.submit(event("r1"), "c1")
    with DuckDBLedger(":memory:") as other:
        with _writer(other, spool) as second:
            assert second.replay_report is not None and second.replay_report.segments == 0
        assert _ids(other) == []
    assert len(_segments(spool)) == 1
    live.close()
    assert _ids(ledger) == ["r1"]
    assert _segments(spool) == []


def test_committed_segments_are_deleted_and_the_spool_is_empty_after_close(
    ledger: DuckDBLedger, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    writer = _writer(ledger, spool, segment_bytes=3000, batch_size=7)
    writer.start()
    for i in range(40):
        writer.begin(f"c{i}", T0, "openai", "gpt-4o", Attribution())
        writer.submit(event(f"r{i}"), f"c{i}")
    writer.flush()
    assert len(_segments(spool)) == 1  # only the active one; rotated ones went once committed
    writer.close()
    assert _segments(spool) == []
    assert len(_ids(ledger)) == 40


def test_a_call_still_in_flight_at_close_is_recorded_as_interrupted_at_next_start(
    ledger: DuckDBLedger, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    with _writer(ledger, spool) as writer:
        writer.begin("c1", T0, "openai", "gpt-4o", Attribution(user="ana"), operation="embeddings", source="sdk")
        writer.submit(event("r0"))
        assert writer.stats.in_flight == 1
    assert len(_segments(spool)) == 1
    with _writer(ledger, spool) as writer:
        assert writer.stats.interrupted == 1
    (interrupted,) = ledger.events("request_id = 'c1'")
    assert (interrupted.operation, interrupted.source, interrupted.attribution.user) == ("embeddings", "sdk", "ana")
    assert _ids(ledger) == ["c1", "r0"]
    assert _segments(spool) == []


def test_a_failing_ledger_loses_nothing(tmp_path: Path) -> None:
    with FlakyLedger(failures=3) as flaky:
        with _writer(flaky, tmp_path / "spool", batch_size=5) as writer:
            for i in range(20):
                writer.submit(event(f"r{i}"))
            writer.flush()
            stats = writer.stats
        assert len(_ids(flaky)) == 20
        assert (stats.flush_errors, stats.written) == (3, 20)
        assert stats.last_error == "ConnectionError: database unavailable (attempt 3)"


def test_a_ledger_down_across_restart_loses_nothing(ledger: DuckDBLedger, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    with FlakyLedger(failures=10**9) as down:
        writer = _writer(down, spool)
        writer.start()
        for i in range(10):
            writer.submit(event(f"r{i}"))
        with pytest.raises(StoreError, match="safe in the spool"):
            writer.flush(timeout=0.2)
        writer.close(timeout=0.2)
    assert _segments(spool)
    with _writer(ledger, spool) as writer:
        assert writer.stats.replayed == 10
    assert len(_ids(ledger)) == 10


def test_events_that_do_not_fit_in_the_queue_are_read_back_from_the_spool(ledger: DuckDBLedger, tmp_path: Path) -> None:
    writer = _writer(ledger, tmp_path / "spool", max_queue=3, batch_size=4)
    for i in range(40):  # not started yet: the queue fills up after three
        writer.begin(f"c{i}", T0, "openai", "gpt-4o", Attribution())
        writer.submit(event(f"r{i}", ts=T0 + timedelta(seconds=i)), f"c{i}")
    assert writer.stats.overflowed == 37
    with writer:
        writer.flush()
        stats = writer.stats
    assert (stats.written, stats.duplicates_ignored, stats.in_flight) == (40, 0, 0)
    assert len(_ids(ledger)) == 40
    assert _segments(tmp_path / "spool") == []


def test_an_invalid_event_is_logged_not_raised(
    ledger: DuckDBLedger, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    naive = replace(event("bad"), ts=datetime(2026, 1, 1))
    with _writer(ledger, tmp_path / "spool") as writer:
        writer.submit(naive)
        writer.submit(event("good"))
        writer.flush()
        assert writer.stats.rejected == 1
    assert _ids(ledger) == ["good"]
    assert "NOT in the ledger" in caplog.text


def test_events_submitted_after_close_are_spooled_for_the_next_start(
    ledger: DuckDBLedger, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = tmp_path / "spool"
    writer = _writer(ledger, spool)
    with writer:
        writer.begin("c1", T0, "openai", "gpt-4o", Attribution())
    writer.submit(event("late"), "c1")
    assert "closed" in caplog.text
    with _writer(ledger, spool):
        pass
    assert _ids(ledger) == ["late"]  # the late completion paired with its intent: not interrupted


@pytest.mark.parametrize("fsync", ["batch", "always"])
def test_fsync_modes_write_the_same_events(ledger: DuckDBLedger, tmp_path: Path, fsync: str) -> None:
    with _writer(ledger, tmp_path / "spool", fsync=fsync) as writer:
        for i in range(5):
            writer.submit(event(f"r{i}"))
        writer.flush()
    assert len(_ids(ledger)) == 5


def test_a_running_writer_picks_up_segments_of_a_sibling_that_died(ledger: DuckDBLedger, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    with _writer(ledger, spool, rescan_interval=0.01) as writer:
        spool.mkdir(exist_ok=True)
        tmp = spool / "sibling.tmp"  # complete before it appears, as the spool's own segments are
        tmp.write_bytes(encode_event(rows.event_row(event("sib")), None))
        tmp.rename(spool / "4242-deadbeef-000001.jsonl")
        _wait_for(lambda: writer.stats.replayed == 1)
    assert _ids(ledger) == ["sib"]


def test_start_twice_is_an_error(ledger: DuckDBLedger, tmp_path: Path) -> None:
    with _writer(ledger, tmp_path / "spool") as writer, pytest.raises(StoreError, match="twice"):
        writer.start()


def test_flush_before_start_says_what_to_do(ledger: DuckDBLedger, tmp_path: Path) -> None:
    writer = _writer(ledger, tmp_path / "spool")
    writer.submit(event("r1"))
    with pytest.raises(StoreError, match="call start"):
        writer.flush()
    writer.close()
    assert _segments(tmp_path / "spool")  # kept for the next start


def test_money_survives_the_spool_to_the_last_digit(ledger: DuckDBLedger, tmp_path: Path) -> None:
    tiny = crash.completed_events(1)[0]
    assert tiny.cost is not None and tiny.cost.input == Decimal("0.000000000001")
    writer = _writer(ledger, tmp_path / "spool", max_queue=1)
    writer.submit(replace(tiny, request_id="queued"))
    writer.submit(replace(tiny, request_id="overflowed"))
    with writer:
        writer.flush()
    stored: list[UsageEvent] = ledger.events()
    assert {e.request_id: e.cost for e in stored} == {"queued": tiny.cost, "overflowed": tiny.cost}


def batch_rows() -> list[dict[str, object]]:
    """Eight gateway rows with edge values: extreme money, quotes and newlines, NULLs, microseconds."""
    base: dict[str, object] = {c.name: None for c in TABLES["usage_events"].columns}
    return [
        base
        | {
            "request_id": f"r{i}",
            "ts": datetime(2025, 1, 31, 23, 59, 59, 999_999) if i else datetime(1999, 12, 31),
            "provider": "openai",
            "model": "gpt-4o-mini",
            "operation": "chat",
            "input_tokens": 2**40 + i,
            "cache_read_tokens": 0,
            "cache_write_tokens": 1,
            "cache_write_1h_tokens": 0,
            "output_tokens": i,
            "reasoning_tokens": 0,
            "batch": bool(i % 2),
            "status": "ok" if i % 3 else "error",
            "error_type": None if i else "it's \"quoted\"\nand 'multi-line' \\ ✓",
            "latency_ms": 1.25 * i,
            "cost_total": [Decimal("1E-12"), Decimal("999999.999999999999"), Decimal("0.1"), None][i % 4],
            "cost_input": Decimal("-0.000000000001") if i == 2 else None,
            "unpriced": i % 4 == 3,
            "price_source": "genai-prices",
            "estimated": False,
            "source": "gateway",
            "team": ["search", None][i % 2],
            "user_id": "ana",
            "task_run_id": f"t{i % 3}",
            "iteration": i,
            "tags": '{"k": "v\\u00e9"}',
        }
        for i in range(8)
    ]


def test_rows_appended_as_json_equal_rows_appended_as_arrow() -> None:
    """`DuckDBLedger.append_rows` (the gateway's path, no pyarrow) stores exactly what `append` stores from Arrow."""
    samples = batch_rows()
    with DuckDBLedger(":memory:") as by_json, DuckDBLedger(":memory:") as by_arrow:
        assert by_json.append_rows("usage_events", samples) == 8
        assert by_json.append_rows("usage_events", samples) == 0  # idempotent, like `append`
        assert by_arrow.append("usage_events", rows.to_arrow("usage_events", samples)) == 8
        query = "SELECT * FROM usage_events ORDER BY request_id"
        assert by_json.query_rows(query) == by_arrow.query_rows(query)
        totals = "SELECT * FROM task_run_totals ORDER BY task_run_id"
        assert by_json.query_rows(totals) == by_arrow.query_rows(totals)


def test_a_large_batch_is_encoded_a_slice_at_a_time_and_stored_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    """No `orjson` call holds the GIL for a whole batch (the gateway's p99), and no row is lost or changed."""
    from tokenops.store import duckdb as duckdb_store

    base = batch_rows()
    samples = [row | {"request_id": f"{row['request_id']}-{n}"} for n in range(32) for row in base]  # 256 rows
    sizes: list[int] = []

    def dumps(rows: Sequence[object], **options: Any) -> bytes:
        sizes.append(len(rows))
        return orjson.dumps(rows, **options)

    monkeypatch.setattr(duckdb_store, "orjson", SimpleNamespace(dumps=dumps))
    with DuckDBLedger(":memory:") as by_json, DuckDBLedger(":memory:") as by_arrow:
        assert by_json.append_rows("usage_events", samples) == 256
        assert sizes == [100, 100, 56]
        assert by_arrow.append("usage_events", rows.to_arrow("usage_events", samples)) == 256
        query = "SELECT * FROM usage_events ORDER BY request_id"
        assert by_json.query_rows(query) == by_arrow.query_rows(query)


def test_gateway_batches_run_duckdb_single_threaded_and_bulk_loads_do_not() -> None:
    """DuckDB's workers would take the event loop's cores for a few hundred rows; an import keeps them all."""
    seen: list[str] = []

    class Watching(DuckDBLedger):
        def _append(self, *args: Any, **kwargs: Any) -> int:
            seen.append(self.query_rows("SELECT current_setting('threads') AS n")[0]["n"])
            return super()._append(*args, **kwargs)

    samples = batch_rows()
    with Watching(":memory:", threads=2) as ledger:
        assert ledger.append_rows("usage_events", samples[:4]) == 4
        assert ledger.append("usage_events", rows.to_arrow("usage_events", samples[4:])) == 4
        assert seen == [1, 2]
        assert ledger.query_rows("SELECT current_setting('threads') AS n")[0]["n"] == 2  # restored


def test_the_batch_thread_runs_at_a_lower_priority_than_the_server(tmp_path: Path) -> None:
    """The event loop keeps its core while a batch is written: the writer thread is niced, the caller is not."""
    seen: list[int] = []

    class Watching(DuckDBLedger):
        def append_rows(self, table: str, data: Sequence[Mapping[str, object]]) -> int:
            seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
            return super().append_rows(table, data)

    mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    with Watching(":memory:") as watched, LedgerWriter(watched, tmp_path / "spool") as writer:
        writer.submit(event("r1"))
        writer.flush()
    assert seen == [min(19, mine + writer_module.BACKGROUND_NICE)]
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == mine


def test_a_ledger_opened_for_an_import_keeps_freed_memory_and_a_server_ledger_hands_it_back() -> None:
    """`bulk_load` lifts DuckDB's flush after large frees: an import reuses the memory, a server returns it."""
    flush = "SELECT current_setting('allocator_bulk_deallocation_flush_threshold') AS f"
    with DuckDBLedger(":memory:") as served, DuckDBLedger(":memory:", bulk_load=True) as importing:
        assert served.query_rows(flush)[0]["f"] == "512.0 MiB"  # DuckDB's default
        assert importing.query_rows(flush)[0]["f"] == "931.3 GiB"


def _cost_lines(n: int, start: int) -> pa.Table:
    """`n` billed-cost lines with ~800 bytes of incompressible tags each: a few appends fill DuckDB's cache."""
    spec = TABLES["billed_costs"]
    noise = random.Random(start)
    at = datetime(2025, 3, 1)
    columns: dict[str, list[object]] = {
        "cost_id": [f"focus:{start + i:032x}" for i in range(n)],
        "source": ["import:focus"] * n,
        "provider": ["aws"] * n,
        "start_ts": [at] * n,
        "end_ts": [at + timedelta(hours=1)] * n,
        "billed": [Decimal("0.25")] * n,
        "currency": ["USD"] * n,
        "charge_category": ["Usage"] * n,
        "tags": [orjson.dumps({"ResourceId": noise.randbytes(400).hex()}).decode() for _ in range(n)],
    }
    return pa.table({c.name: columns.get(c.name, [None] * n) for c in spec.columns}, schema=spec.arrow_schema)


def test_an_import_sheds_the_blocks_it_wrote_from_duckdbs_cache_and_a_server_keeps_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An import stays flat: past twice `CACHE_BYTES`, written blocks are dropped (not spilled), the cap restored."""
    from tokenops.store import duckdb as duckdb_ledger

    monkeypatch.setattr(duckdb_ledger, "CACHE_BYTES", 2 << 20)
    used = (
        "SELECT coalesce(sum(memory_usage_bytes) FILTER (tag = 'BASE_TABLE'), 0) AS cached, "
        "sum(temporary_storage_bytes) AS spilled FROM duckdb_memory()"
    )
    limit = "SELECT current_setting('memory_limit') AS m"
    with (
        DuckDBLedger(tmp_path / "served.duckdb", memory_limit="512MB") as served,
        DuckDBLedger(tmp_path / "imported.duckdb", memory_limit="512MB", bulk_load=True) as importing,
        DuckDBLedger(tmp_path / "default.duckdb", bulk_load=True) as uncapped,
    ):
        default = uncapped.query_rows(limit)[0]["m"]
        for k in range(12):
            lines = _cost_lines(5_000, k * 5_000)
            for ledger in (served, importing, uncapped):
                assert ledger.append("billed_costs", lines) == 5_000
                if ledger is not served:  # shed after the append, if past twice the cache
                    assert ledger.query_rows(used)[0]["cached"] <= 4 << 20
                assert ledger.query_rows(used)[0]["spilled"] == 0  # evicted blocks are dropped, not spilled
                ledger._conn.execute("CHECKPOINT")  # as a long import's log does by itself, every 16 MB
        assert served.query_rows(used)[0]["cached"] > 20 << 20  # a server's cache serves the next query
        assert served.query_rows(limit)[0]["m"] == importing.query_rows(limit)[0]["m"] == "488.2 MiB"
        assert uncapped.query_rows(limit)[0]["m"] == default  # DuckDB's own cap, restored by RESET
        assert importing.query_rows("SELECT count(*) AS n FROM billed_costs")[0]["n"] == 60_000


class _FailingEviction:
    """A DuckDB connection whose cache cannot be shed (say the disk is full)."""

    def __init__(self, conn: Any) -> None:
        self.conn, self.failed = conn, 0

    def execute(self, sql: str, *args: Any) -> Any:
        if re.fullmatch(r"SET memory_limit = '\d+B'", sql):
            self.failed += 1
            raise duckdb.IOException("could not write to the temporary directory: No space left on device")
        return self.conn.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)


def test_an_import_whose_cache_cannot_be_shed_keeps_its_rows_and_its_memory_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Shedding is an optimisation: failing it never fails a committed append, and is not retried."""
    from tokenops.store import duckdb as duckdb_ledger

    monkeypatch.setattr(duckdb_ledger, "CACHE_BYTES", 2 << 20)
    with DuckDBLedger(tmp_path / "imported.duckdb", memory_limit="512MB", bulk_load=True) as importing:
        failing = _FailingEviction(importing._conn)
        importing._conn = failing  # type: ignore[assignment]
        for k in range(6):
            assert importing.append("billed_costs", _cost_lines(5_000, k * 5_000)) == 5_000
            failing.execute("CHECKPOINT")
        assert failing.failed == 1
        assert "no longer shed" in caplog.text
        assert importing.query_rows("SELECT current_setting('memory_limit') AS m")[0]["m"] == "488.2 MiB"
        assert importing.query_rows("SELECT count(*) AS n FROM billed_costs")[0]["n"] == 30_000
