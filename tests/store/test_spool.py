from __future__ import annotations

import fcntl
import os
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from tests.factories import T0, event
from tokenops.events import Attribution, Cost, TokenUsage, UsageEvent
from tokenops.store import rows
from tokenops.store.spool import (
    EventRecord,
    Intent,
    Spool,
    decode_record,
    decode_row,
    encode_event,
    read_lines,
    replay,
)


def _odd_event() -> UsageEvent:
    return UsageEvent(
        request_id="resp_1",
        ts=datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=UTC),
        provider="anthropic",
        model="claude-sonnet-4",
        usage=TokenUsage(input_tokens=10, cache_read_tokens=3, cache_write_tokens=2, output_tokens=7),
        cost=Cost(
            input=Decimal("0.000000000001"),
            cache_read=Decimal("123456.123456789012"),
            cache_write=Decimal("0"),
            output=Decimal("1E-12"),
            other=Decimal("0.1"),
        ),
        price_source="override:x",
        attribution=Attribution(team="t", iteration=0, tags={"a": "b", "é": "ü"}),
        latency_ms=0.30000000000000004,
        ttft_ms=None,
    )


def test_event_rows_round_trip_exactly_money_and_microseconds_included() -> None:
    row = rows.event_row(_odd_event())
    line = encode_event(row, "call-1")
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    record = decode_record(line)
    assert record == EventRecord(row, "call-1")
    assert isinstance(record, EventRecord)
    assert rows.event_from_row(record.row) == _odd_event()
    assert b'"123456.123456789012"' in line  # money as exact decimal text, never a float


def test_intents_round_trip_and_become_interrupted_unpriced_events() -> None:
    intent = Intent("c1", T0, "openai", "gpt-4o", Attribution(user="ana", tags={"env": "prod"}))
    line = intent.encode()
    assert len(line) < 150
    assert decode_record(line) == intent
    interrupted = intent.interrupted_event()
    assert interrupted.request_id == "c1" and interrupted.ts == T0
    assert (interrupted.status, interrupted.error_type, interrupted.cost) == ("error", "interrupted", None)
    assert (interrupted.price_source, interrupted.estimated, interrupted.usage) == ("unpriced", True, TokenUsage())


def test_rows_from_an_older_spool_get_null_for_new_nullable_columns_only() -> None:
    raw = orjson.loads(encode_event(rows.event_row(event("r1")), None))["event"]
    del raw["customer"]
    assert decode_row(raw)["customer"] is None
    del raw["price_source"]
    with pytest.raises(ValueError, match="price_source"):
        decode_row(raw)


@pytest.mark.parametrize(
    "line",
    [b"not json", b"[]", b'{"event": {"request_id": "x"}}', b'{"begin": "c"}', b'{"event": {"cost_input": 1}}'],
)
def test_lines_that_are_not_records_are_rejected(line: bytes) -> None:
    with pytest.raises(ValueError, match="not a spool record"):
        decode_record(line)


def test_read_lines_flags_only_a_torn_tail(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"a\n\nbb\nccc")
    fd = os.open(path, os.O_RDONLY)
    try:
        assert list(read_lines(fd)) == [(b"a", True), (b"bb", True), (b"ccc", False)]
        assert list(read_lines(fd, 2, 6)) == [(b"bb", True)]
    finally:
        os.close(fd)


def _spool(tmp_path: Path, **kwargs: object) -> Spool:
    options: dict[str, object] = {"segment_bytes": 1 << 20, "segment_seconds": 3600.0, "fsync": "off"}
    options.update(kwargs)
    return Spool(tmp_path / "spool", **options)  # type: ignore[arg-type]


def test_segments_rotate_by_size_and_are_locked_while_open(tmp_path: Path) -> None:
    spool = _spool(tmp_path, segment_bytes=10)
    first, offset = spool.append(b"0123456789\n")
    second, _ = spool.append(b"x\n")
    assert offset == 0 and first is not second
    assert [s.path.name for s in spool.segments] == [f"{spool.instance}-00000{i}.jsonl" for i in (1, 2)]
    fd = os.open(first.path, os.O_RDONLY)
    try:
        with pytest.raises(BlockingIOError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(fd)
    spool.close()


def test_segments_rotate_by_age(tmp_path: Path) -> None:
    spool = _spool(tmp_path, segment_seconds=0.0)
    assert spool.append(b"a\n")[0] is not spool.append(b"b\n")[0]
    spool.close()


def test_only_committed_segments_with_no_call_in_flight_are_deleted(tmp_path: Path) -> None:
    spool = _spool(tmp_path, segment_bytes=1)
    pending, _ = spool.append(b"a\n")
    pending.pending = 1
    in_flight, _ = spool.append(b"b\n")
    in_flight.open_calls = 1
    done, _ = spool.append(b"c\n")
    spool.append(b"d\n")  # the active one is never reaped
    assert spool.reap() == 1
    assert not done.path.exists() and pending.path.exists() and in_flight.path.exists()
    kept = spool.close()
    assert kept == [pending, in_flight]
    assert sorted(p.name for p in (tmp_path / "spool").glob("*.jsonl")) == [pending.path.name, in_flight.path.name]


def test_replay_keeps_segments_when_the_ledger_refuses_them(tmp_path: Path) -> None:
    spool = _spool(tmp_path)
    segment, _ = spool.append(encode_event(rows.event_row(event("r1")), None))
    segment.pending = 1
    spool.close()  # closed with its event unwritten: left for replay

    def refuse(data: list[dict[str, object]]) -> int:
        raise ConnectionError("down")

    report = replay(tmp_path / "spool", refuse, batch_size=10)
    assert (report.segments, report.deferred) == (0, 1)
    assert len(list((tmp_path / "spool").glob("*.jsonl"))) == 1

    written: list[dict[str, object]] = []

    def accept(data: list[dict[str, object]]) -> int:
        written.extend(data)
        return len(data)

    report = replay(tmp_path / "spool", accept, batch_size=10)
    assert (report.segments, report.events, report.written, report.deferred) == (1, 1, 1, 0)
    assert [r["request_id"] for r in written] == ["r1"]
    assert list((tmp_path / "spool").glob("*.jsonl")) == []


def test_replay_of_a_missing_directory_is_empty(tmp_path: Path) -> None:
    assert replay(tmp_path / "nope", lambda data: len(data), batch_size=10).segments == 0
