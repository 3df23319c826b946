"""The writer's local spool: append-only JSON-lines segments that outlive the process.

Every record is one `os.write` of one line on an `O_APPEND` file descriptor. Once that call
returns the line is in the kernel page cache, which survives `kill -9` of the process (only a
power loss needs `fsync`). Two kinds of record:

    {"begin": "<call_id>", "ts": ..., "provider": ..., "model": ..., "attribution": {...}}
    {"event": {<ledger row>}, "call": "<call_id>"}

Rows are `rows.event_row` dicts; money is written as a decimal string and timestamps as ISO
8601 (naive UTC, as stored), so both round-trip exactly.

Segment files are named `<pid>-<token>-<counter>.jsonl`, one series per writer instance, and
each is held under `fcntl.flock` for as long as its owner has it open. A segment whose lock can
be taken therefore belongs to a dead (or closed) writer: `replay` sends its events to the ledger,
records intents that never completed as interrupted calls, and deletes it. New segments are
created under a hidden temporary name and renamed once locked, so no reader ever sees a live
segment unlocked.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import logging
import os
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Literal

import orjson

from tokenops.events import Attribution, TokenUsage, UsageEvent
from tokenops.store import rows
from tokenops.store.schema import MONEY_SQL, TABLES

log = logging.getLogger(__name__)

FsyncMode = Literal["off", "batch", "always"]
"""`off`: page cache only (survives kill -9); `batch`: fdatasync once per writer cycle;
`always`: fdatasync in every write (survives power loss once `submit` returns, ~ms each)."""

SUFFIX = ".jsonl"
_LOCK_NAME = ".replay.lock"
_CHUNK = 1 << 20
_STALE_TMP_SECONDS = 60.0
_OPEN_FLAGS = os.O_RDWR | os.O_APPEND | os.O_CLOEXEC

_COLUMNS: tuple[tuple[str, bool, str], ...] = tuple(
    (c.name, c.nullable, "money" if c.sql == MONEY_SQL else "ts" if c.sql == "TIMESTAMP" else "")
    for c in TABLES["usage_events"].columns
)
_ATTRIBUTION_FIELDS = tuple(f.name for f in dataclasses.fields(Attribution))


# -- records -------------------------------------------------------------------------------


def _default(value: object) -> str:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"cannot spool a value of type {type(value).__name__}")


def encode_event(row: Mapping[str, object], call_id: str | None) -> bytes:
    """A completed call as one spool line."""
    record: dict[str, object] = {"event": row}
    if call_id is not None:
        record["call"] = call_id
    return orjson.dumps(record, default=_default, option=orjson.OPT_APPEND_NEWLINE)


@dataclass(frozen=True, slots=True)
class Intent:
    """A call about to be forwarded upstream: what to record if it never completes."""

    call_id: str
    """Gateway id of the call; becomes the interrupted event's `request_id`."""
    ts: datetime
    """When the call started (tz-aware UTC)."""
    provider: str
    """Provider the call was sent to."""
    model: str
    """Model requested."""
    attribution: Attribution
    """Who the call is charged to."""
    operation: str = "chat"
    """`gen_ai.operation.name` of the call."""
    source: str = "gateway"
    """Who metered it: gateway or sdk."""

    def encode(self) -> bytes:
        """This intent as one spool line."""
        record: dict[str, object] = {
            "begin": self.call_id,
            "ts": rows.utc_naive(self.ts),
            "provider": self.provider,
            "model": self.model,
        }
        attribution = {
            name: value
            for name in _ATTRIBUTION_FIELDS
            if (value := getattr(self.attribution, name)) is not None and value != {}
        }
        if attribution:
            record["attribution"] = attribution
        if self.operation != "chat":
            record["operation"] = self.operation
        if self.source != "gateway":
            record["source"] = self.source
        return orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)

    def interrupted_event(self) -> UsageEvent:
        """The ledger event of a call whose process died in flight: unpriced, never $0."""
        return UsageEvent(
            request_id=self.call_id,
            ts=self.ts,
            provider=self.provider,
            model=self.model,
            usage=TokenUsage(),
            cost=None,
            price_source="unpriced",
            attribution=self.attribution,
            status="error",
            error_type="interrupted",
            estimated=True,
            operation=self.operation,
            source=self.source,
        )


@dataclass(frozen=True, slots=True)
class EventRecord:
    """A completed call read back from the spool."""

    row: dict[str, object]
    """Ledger row with Decimals and datetimes restored."""
    call_id: str | None
    """The intent it completes, if any."""


def decode_row(raw: Mapping[str, object]) -> dict[str, object]:
    """Restore a spooled ledger row; missing nullable columns (older spools) become NULL."""
    row: dict[str, object] = {}
    for name, nullable, kind in _COLUMNS:
        value = raw.get(name)
        if value is None:
            if not nullable:
                raise ValueError(f"spooled event lacks required column {name!r}")
        elif kind:
            if not isinstance(value, str):
                raise ValueError(f"spooled column {name!r} is not a string: {value!r}")
            value = Decimal(value) if kind == "money" else datetime.fromisoformat(value)
        row[name] = value
    return row


def decode_record(line: bytes) -> EventRecord | Intent:
    """Parse one spool line; raises ValueError when it is not a record this module wrote."""
    try:
        raw = orjson.loads(line)
        if "event" in raw:
            call_id = raw.get("call")
            return EventRecord(decode_row(raw["event"]), None if call_id is None else str(call_id))
        return Intent(
            call_id=str(raw["begin"]),
            ts=rows.utc_aware(datetime.fromisoformat(raw["ts"])),
            provider=str(raw["provider"]),
            model=str(raw["model"]),
            attribution=Attribution(**raw.get("attribution", {})),
            operation=str(raw.get("operation", "chat")),
            source=str(raw.get("source", "gateway")),
        )
    except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
        raise ValueError(f"not a spool record ({exc}): {line[:80]!r}") from exc


def read_lines(fd: int, start: int = 0, end: int | None = None) -> Iterator[tuple[bytes, bool]]:
    """Lines of a file region as (line, complete); only the last can be incomplete (torn)."""
    pos, tail = start, b""
    while end is None or pos < end:
        chunk = os.pread(fd, _CHUNK if end is None else min(_CHUNK, end - pos), pos)
        if not chunk:
            break
        pos += len(chunk)
        *lines, tail = (tail + chunk).split(b"\n")
        for line in lines:
            if line:
                yield line, True
    if tail:
        yield tail, False


# -- segments this process owns ------------------------------------------------------------


@dataclass(eq=False, slots=True)
class Segment:
    """A spool file this writer owns and holds locked until all its events are committed."""

    path: Path
    """Where it is."""
    fd: int
    """Open, flock-ed descriptor (O_RDWR | O_APPEND)."""
    created: float
    """`time.monotonic()` at creation, for rotation by age."""
    size: int = 0
    """Bytes written so far (this process is its only writer)."""
    pending: int = 0
    """Events written here and not yet committed to the ledger."""
    open_calls: int = 0
    """Intents written here whose completion has not been submitted yet."""
    dirty: bool = False
    """Written since the last fdatasync."""


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class Spool:
    """The live segments of one writer. Not thread-safe: the writer serialises calls."""

    def __init__(self, directory: Path, *, segment_bytes: int, segment_seconds: float, fsync: FsyncMode) -> None:
        self.directory = directory
        self.instance = f"{os.getpid()}-{secrets.token_hex(4)}"
        self._segment_bytes = segment_bytes
        self._segment_seconds = segment_seconds
        self._fsync = fsync
        self._counter = 0
        self._active: Segment | None = None
        self._sealed: list[Segment] = []

    @property
    def segments(self) -> list[Segment]:
        """Every segment still on disk, oldest first."""
        return self._sealed + ([self._active] if self._active else [])

    def append(self, line: bytes) -> tuple[Segment, int]:
        """Write one record; returns its segment and offset. Raises OSError (segment sealed)."""
        seg = self._active
        if seg is None or seg.size >= self._segment_bytes or time.monotonic() - seg.created >= self._segment_seconds:
            seg = self._rotate()
        offset = seg.size
        try:
            _write_all(seg.fd, line)
            if self._fsync == "always":
                os.fdatasync(seg.fd)
        except OSError:
            # a partial line may be on disk: never append after it, start a new segment next time
            seg.size = os.fstat(seg.fd).st_size
            self._seal()
            raise
        seg.size += len(line)
        seg.dirty = True
        return seg, offset

    def append_detached(self, line: bytes) -> Path:
        """Write one record to a fresh, unlocked segment (the writer is closed): replayed at the next start."""
        seg = self._create()
        try:
            _write_all(seg.fd, line)
            if self._fsync != "off":
                os.fdatasync(seg.fd)
        finally:
            os.close(seg.fd)
        return seg.path

    def reap(self) -> int:
        """Delete sealed segments whose events are all committed and calls all completed."""
        done = [s for s in self._sealed if s.pending == 0 and s.open_calls == 0]
        for seg in done:
            self._sealed.remove(seg)
            _delete(seg.path, seg.fd)
        return len(done)

    def close(self) -> list[Segment]:
        """Delete fully committed segments, unlock the rest; returns those left for replay."""
        self._seal()
        self.reap()
        kept, self._sealed = self._sealed, []
        for seg in kept:
            os.close(seg.fd)
        return kept

    def _seal(self) -> None:
        if self._active is not None:
            self._sealed.append(self._active)
            self._active = None

    def _rotate(self) -> Segment:
        self._seal()
        self._active = self._create()
        return self._active

    def _create(self) -> Segment:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._counter += 1
        name = f"{self.instance}-{self._counter:06d}{SUFFIX}"
        tmp = self.directory / f".{name}.tmp"
        fd = os.open(tmp, _OPEN_FLAGS | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.rename(tmp, self.directory / name)
            if self._fsync != "off":
                _fsync_dir(self.directory)
        except BaseException:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        return Segment(self.directory / name, fd, time.monotonic())


def sync(segments: list[Segment]) -> None:
    """fdatasync segments written since their last sync (`fsync="batch"`)."""
    for seg in segments:
        if seg.dirty:
            seg.dirty = False  # before the sync: a write racing with it marks the segment again
            os.fdatasync(seg.fd)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _delete(path: Path, fd: int) -> None:
    # unlink before close: the lock is held until the name is gone, so nobody replays it meanwhile
    try:
        path.unlink(missing_ok=True)
    finally:
        os.close(fd)


# -- replay of dead writers' segments ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReplayReport:
    """What `replay` found in segments left by dead writers."""

    segments: int = 0
    """Segments replayed and deleted."""
    events: int = 0
    """Completed events found in them."""
    interrupted: int = 0
    """Calls begun but never completed, recorded as interrupted and unpriced."""
    written: int = 0
    """Ledger rows that were new (completed plus interrupted)."""
    duplicates: int = 0
    """Rows the ledger already had (written before the crash)."""
    torn: int = 0
    """Torn last lines (the process died mid-write), skipped."""
    corrupt: int = 0
    """Other unreadable lines, skipped; their segment is kept as `*.corrupt`."""
    deferred: int = 0
    """Segments left for later because the ledger could not be written."""


AppendRows = Callable[[list[dict[str, object]]], int]
"""Writes ledger rows of `usage_events`; returns how many were new."""


@dataclass(eq=False, slots=True)
class _Claimed:
    path: Path
    fd: int
    corrupt: bool = False


@dataclass(slots=True)
class _Tally:
    events: int = 0
    interrupted: int = 0
    written: int = 0
    rows: int = 0
    torn: int = 0
    corrupt: int = 0


def replay(directory: Path, append: AppendRows, *, batch_size: int) -> ReplayReport:
    """Write the events of every dead writer's segments to the ledger, then delete them.

    Safe to run concurrently from several processes (a directory lock serialises them) and to
    repeat: the ledger ignores request_ids it already has. When `append` fails the segments are
    kept and counted as deferred.
    """
    if not directory.is_dir():
        return ReplayReport()
    fd = os.open(directory / _LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return _replay_locked(directory, append, batch_size)
    finally:
        os.close(fd)


def _replay_locked(directory: Path, append: AppendRows, batch_size: int) -> ReplayReport:
    _remove_stale_tmp(directory)
    groups = _claim_dead(directory)
    total, done, deferred, failed = _Tally(), 0, 0, False
    for _, segments in sorted(groups.items()):
        try:
            if failed:
                deferred += len(segments)
                continue
            try:
                tally = _replay_group(segments, append, batch_size)
            except Exception:  # "nothing lost": broad and logged; segments kept
                log.exception(
                    "Replaying spool segments %s failed; they are kept and retried later",
                    [s.path.name for s in segments],
                )
                failed = True
                deferred += len(segments)
                continue
            for seg in segments:
                if seg.corrupt:
                    seg.path.rename(seg.path.with_suffix(".corrupt"))
                else:
                    seg.path.unlink(missing_ok=True)
            done += len(segments)
            for field in dataclasses.fields(_Tally):
                setattr(total, field.name, getattr(total, field.name) + getattr(tally, field.name))
        finally:
            for seg in segments:
                os.close(seg.fd)
    return ReplayReport(
        segments=done,
        events=total.events,
        interrupted=total.interrupted,
        written=total.written,
        duplicates=total.rows - total.written,
        torn=total.torn,
        corrupt=total.corrupt,
        deferred=deferred,
    )


def _remove_stale_tmp(directory: Path) -> None:
    # A writer that died between creating and renaming a segment leaves an empty temp file.
    # Young ones may be being created right now (created, not yet locked): leave them be.
    cutoff = time.time() - _STALE_TMP_SECONDS
    for tmp in directory.glob(f".*{SUFFIX}.tmp"):
        with contextlib.suppress(FileNotFoundError):
            if tmp.stat().st_mtime < cutoff:
                tmp.unlink()


def _claim_dead(directory: Path) -> dict[str, list[_Claimed]]:
    """Lock every segment whose owner is gone, grouped by writer instance, oldest first."""
    groups: dict[str, list[_Claimed]] = {}
    for path in sorted(directory.glob(f"*{SUFFIX}")):
        instance, _, counter = path.stem.rpartition("-")
        if not instance or not counter.isdigit():
            continue
        try:
            fd = os.open(path, _OPEN_FLAGS)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if os.stat(path).st_ino != os.fstat(fd).st_ino:
                raise FileNotFoundError(path)  # replaced since we opened it
        except (BlockingIOError, FileNotFoundError):
            os.close(fd)  # its writer is alive (or it just went away)
            continue
        groups.setdefault(instance, []).append(_Claimed(path, fd))
    return groups


def _replay_group(segments: list[_Claimed], append: AppendRows, batch_size: int) -> _Tally:
    # Segments of one writer are replayed together: an intent's completion may be in a later one.
    tally = _Tally()
    open_calls: dict[str, Intent] = {}
    batch: list[dict[str, object]] = []

    def commit() -> None:
        tally.written += append(batch)
        tally.rows += len(batch)
        batch.clear()

    for seg in segments:
        for number, (line, complete) in enumerate(read_lines(seg.fd), start=1):
            try:
                record = decode_record(line)
            except ValueError as exc:
                if complete:
                    log.warning("%s:%d: unreadable spool line skipped: %s", seg.path, number, exc)
                    tally.corrupt += 1
                    seg.corrupt = True
                else:
                    log.warning(
                        "%s:%d: torn last line skipped (its writer died mid-write); the %d records before it are kept",
                        seg.path,
                        number,
                        number - 1,
                    )
                    tally.torn += 1
                continue
            if isinstance(record, Intent):
                open_calls[record.call_id] = record
                continue
            if record.call_id is not None:
                open_calls.pop(record.call_id, None)
            batch.append(record.row)
            tally.events += 1
            if len(batch) >= batch_size:
                commit()
    for intent in open_calls.values():
        log.warning(
            "Call %r (%s %s) was in flight when its process died; recorded as interrupted, unpriced",
            intent.call_id,
            intent.provider,
            intent.model,
        )
        batch.append(rows.event_row(intent.interrupted_event()))
        tally.interrupted += 1
        if len(batch) >= batch_size:
            commit()
    if batch:
        commit()
    return tally
