"""Ledger writes off the hot path: spool first, batch into the ledger from a thread, lose nothing.

A metered call reaches the ledger in three steps:

1. `begin()` appends an *intent* to this process's spool before the call goes upstream, so a
   call still in flight when the process dies is recorded (as interrupted and unpriced).
2. `submit()` appends the event to the spool (from then on it survives `kill -9`) and puts its
   row on a bounded queue. It never blocks on the ledger and never raises: when the queue is
   full the event stays in the spool only and is re-read from there later.
3. A daemon thread drains the queue in batches (`batch_size` rows or `flush_interval` seconds,
   whichever comes first; up to `max_batch` rows while a backlog lasts), one `Ledger.append`
   per batch, retrying with backoff while the ledger fails. A spool segment is deleted once
   all its events are committed.

`start()` first replays the segments of writers that died (their file lock is free). Delivery
is at-least-once into a ledger that is idempotent by `request_id`: exactly once in the ledger.

Create the writer in the process that uses it (after any fork): segment locks belong to the
open file, and a forked child would share them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType

from tokenops.errors import StoreError
from tokenops.events import Attribution, UsageEvent
from tokenops.store import rows
from tokenops.store.ledger import Ledger
from tokenops.store.spool import (
    EventRecord,
    FsyncMode,
    Intent,
    ReplayReport,
    Segment,
    Spool,
    decode_record,
    encode_event,
    read_lines,
    replay,
    sync,
)

__all__ = ["FsyncMode", "LedgerWriter", "ReplayReport", "WriterStats"]

log = logging.getLogger(__name__)

_Item = tuple[int, Segment | None, dict[str, object]]
"""A queued event: (sequence number, its spool segment, its ledger row)."""


@dataclass(frozen=True, slots=True)
class WriterStats:
    """A snapshot of what the writer has done, for metrics and health checks."""

    submitted: int
    """Events passed to `submit` (rejected ones excluded)."""
    written: int
    """New ledger rows written from the queue and the spool overflow."""
    duplicates_ignored: int
    """Rows the ledger already had (same request_id)."""
    replayed: int
    """Completed events found in dead writers' segments."""
    interrupted: int
    """Calls found begun but never completed in dead writers' segments."""
    queue_depth: int
    """Events waiting in the queue."""
    flush_errors: int
    """Failed ledger writes; each was retried, none dropped."""
    overflowed: int
    """Events that found the queue full and were read back from the spool."""
    spool_errors: int
    """Spool writes that failed (the record was then only in memory)."""
    rejected: int
    """Events that could not be serialised, a bug in the caller (logged with the event)."""
    lost: int
    """Events neither spooled nor queued (spool failing while the queue was full; logged)."""
    in_flight: int
    """Calls begun and not yet submitted."""
    last_error: str | None
    """The last ledger write error, if any."""


@dataclass(slots=True)
class _Counts:
    submitted: int = 0
    written: int = 0
    duplicates: int = 0
    replayed: int = 0
    interrupted: int = 0
    flush_errors: int = 0
    overflowed: int = 0
    spool_errors: int = 0
    rejected: int = 0
    lost: int = 0


@dataclass(eq=False, slots=True)
class _Overflow:
    """Events that did not fit in the queue: a byte range of one segment, read back later."""

    seg: Segment
    start: int
    end: int
    last_seq: int
    count: int


class LedgerWriter:
    """Batched, crash-safe writer of usage events into a `Ledger`.

    ```python
    with LedgerWriter(ledger, data_dir / "spool") as writer:  # start(): replay, then run
        writer.begin(call_id, ts, "openai", "gpt-4o", attribution)
        ...  # the call goes upstream
        writer.submit(event, call_id)  # durable once this returns
    ```
    """

    def __init__(
        self,
        ledger: Ledger,
        spool_dir: Path,
        *,
        batch_size: int = 1000,
        flush_interval: float = 0.2,
        max_queue: int = 100_000,
        max_batch: int = 20_000,
        segment_bytes: int = 64 << 20,
        segment_seconds: float = 600.0,
        fsync: FsyncMode = "off",
        rescan_interval: float | None = 60.0,
        retry_initial: float = 0.05,
        retry_max: float = 5.0,
    ) -> None:
        """Prepare a writer; nothing is opened until the first record or `start()`.

        Args:
            ledger: Where events end up; must be idempotent by request_id.
            spool_dir: Directory of spool segments; several processes may share it.
            batch_size: Most rows per `Ledger.append`.
            flush_interval: Longest a queued event waits for its batch to fill, in seconds.
            max_queue: Events held in memory; beyond that they are read back from the spool.
            max_batch: When a backlog builds up, batches grow up to this many rows: each append
                costs a scan of the ledger's keys, so fewer, bigger appends keep up with load.
            segment_bytes: Rotate the active segment past this size.
            segment_seconds: Rotate the active segment past this age.
            fsync: `off` (survives kill -9), `batch` or `always` (also survives power loss).
            rescan_interval: Seconds between replays of dead writers' segments while running
                (a sibling worker that died, or a replay the ledger refused); None disables.
            retry_initial: First backoff after a failed ledger write, doubled up to `retry_max`.
            retry_max: Longest backoff between ledger write attempts.
        """
        self._ledger = ledger
        self.spool_dir = Path(spool_dir)
        self._batch_size = batch_size
        self._max_batch = max(batch_size, max_batch)
        self._flush_interval = flush_interval
        self._tick = max(0.01, min(1.0, flush_interval))
        self._fsync: FsyncMode = fsync
        self._rescan_interval = rescan_interval
        self._retry_initial = retry_initial
        self._retry_max = retry_max
        self._spool = Spool(self.spool_dir, segment_bytes=segment_bytes, segment_seconds=segment_seconds, fsync=fsync)
        self._queue: queue.Queue[_Item | None] = queue.Queue(max_queue)
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.replay_report: ReplayReport | None = None
        """What `start()` replayed."""
        # Everything below is guarded by _lock. Events are numbered; queued ones are committed in
        # order, and so are overflowed ones, so two watermarks tell `flush` when it is done.
        self._closed = False
        self._seq = 0
        self._last_queued = 0
        self._last_overflowed = 0
        self._done_queued = 0
        self._done_overflowed = 0
        self._calls: dict[str, Segment | None] = {}
        self._overflow: deque[_Overflow] = deque()
        self._overflow_open = False
        self._n = _Counts()
        self._last_error: str | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> ReplayReport:
        """Replay dead writers' segments into the ledger, then start the batch thread."""
        with self._lock:
            if self._thread is not None or self._closed:
                raise StoreError("LedgerWriter.start() called twice; create a new writer instead")
            self._thread = thread = threading.Thread(target=self._run, name="tokenops-ledger-writer", daemon=True)
        try:
            self.replay_report = report = self._replay()
        except BaseException:
            self._thread = None  # e.g. the spool directory is unreadable: fix it and start again
            raise
        thread.start()
        return report

    def close(self, timeout: float = 10.0) -> None:
        """Flush, stop the thread and delete fully committed segments; the rest wait for replay."""
        with self._lock:
            if self._closed:
                return
        thread = self._thread
        if thread is not None and thread.is_alive():
            try:
                self.flush(timeout)
            except StoreError as exc:
                log.error("%s", exc)
        self._stop.set()
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)
        if thread is not None and thread.is_alive():
            thread.join(timeout)
            if thread.is_alive():
                # stuck inside Ledger.append: leave the segments locked until the process exits
                log.error("Ledger writer thread did not stop within %ss; spool left for replay", timeout)
                return
        with self._lock:
            self._closed = True
            kept = self._spool.close()
            in_flight = len(self._calls)
        if kept:
            log.warning(
                "%d spool segment(s) in %r still hold unwritten events or %d in-flight call(s); "
                "they are replayed at the next start",
                len(kept),
                str(self.spool_dir),
                in_flight,
            )

    def __enter__(self) -> LedgerWriter:
        if self._thread is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- hot path ----------------------------------------------------------------------------

    def begin(
        self,
        call_id: str,
        ts: datetime,
        provider: str,
        model: str,
        attribution: Attribution,
        *,
        operation: str = "chat",
        source: str = "gateway",
    ) -> None:
        """Spool the intent of a call before it goes upstream; never raises."""
        intent = Intent(call_id, ts, provider, model, attribution, operation, source)
        try:
            line = intent.encode()
        except (ValueError, TypeError) as exc:
            log.error("Cannot spool the start of call %r (%s); a crash would not record it", call_id, exc)
            return
        with self._lock:
            if self._closed:
                self._write_detached(line)
                return
            seg, offset = self._spool_write(line)
            previous = self._calls.get(call_id)
            if previous is not None:
                previous.open_calls -= 1
            self._calls[call_id] = seg
            if seg is not None:
                seg.open_calls += 1
                tail = self._overflow[-1] if self._overflow_open else None
                if tail is not None and tail.seg is seg and tail.end == offset:
                    tail.end += len(line)  # keeps overflow ranges long when intents interleave

    def submit(self, event: UsageEvent, call_id: str | None = None) -> None:
        """Spool the event (kill -9 safe once this returns) and queue it; never blocks or raises."""
        try:
            row = rows.event_row(event)
            line = encode_event(row, call_id)
        except (ValueError, TypeError, ArithmeticError):
            log.exception("Cannot record usage event %r; it is NOT in the ledger", event)
            with self._lock:
                self._n.rejected += 1
            return
        with self._lock:
            self._n.submitted += 1
            if call_id is not None:
                started = self._calls.pop(call_id, None)
                if started is not None:
                    started.open_calls -= 1
            if self._closed:
                self._write_detached(line)
                return
            seg, offset = self._spool_write(line)
            self._seq += 1
            try:
                self._queue.put_nowait((self._seq, seg, row))
            except queue.Full:
                self._note_overflow(seg, offset, len(line), event)
            else:
                self._overflow_open = False
                self._last_queued = self._seq
                if seg is not None:
                    seg.pending += 1

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until every event submitted so far is in the ledger.

        Raises:
            StoreError: not done within `timeout` (the ledger keeps failing) or not started;
                the events are safe in the spool either way.
        """
        deadline = time.monotonic() + timeout
        with self._lock:
            targets = (self._last_queued, self._last_overflowed)
            if self._flushed(*targets):
                return
        if self._thread is None or not self._thread.is_alive():
            raise StoreError(
                f"LedgerWriter for spool {str(self.spool_dir)!r} is not running; call start() to write "
                "the submitted events (they are safe in the spool)"
            )
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=timeout)  # wake the batcher now, not at flush_interval
        with self._cond:
            done = self._cond.wait_for(lambda: self._flushed(*targets), timeout=max(0.0, deadline - time.monotonic()))
            waiting = self._seq - self._done_queued
        if not done:
            raise StoreError(
                f"Usage events not all written to the ledger after {timeout}s (last error: "
                f"{self._last_error}); about {waiting} are safe in the spool {str(self.spool_dir)!r} "
                "and are written once the ledger accepts them"
            )

    @property
    def stats(self) -> WriterStats:
        """Counters since this writer was created."""
        with self._lock:
            n = self._n
            return WriterStats(
                submitted=n.submitted,
                written=n.written,
                duplicates_ignored=n.duplicates,
                replayed=n.replayed,
                interrupted=n.interrupted,
                queue_depth=self._queue.qsize(),
                flush_errors=n.flush_errors,
                overflowed=n.overflowed,
                spool_errors=n.spool_errors,
                rejected=n.rejected,
                lost=n.lost,
                in_flight=len(self._calls),
                last_error=self._last_error,
            )

    # -- helpers of the hot path (called with _lock held) ------------------------------------

    def _spool_write(self, line: bytes) -> tuple[Segment | None, int]:
        try:
            return self._spool.append(line)
        except OSError as exc:
            self._n.spool_errors += 1
            log.error(
                "Cannot write to the spool %r (%s); this record is only in memory until it is in the ledger",
                str(self.spool_dir),
                exc,
            )
            return None, 0

    def _write_detached(self, line: bytes) -> None:
        try:
            path = self._spool.append_detached(line)
        except OSError as exc:
            log.error("LedgerWriter is closed and the spool is not writable (%s); LOST: %r", exc, line)
            return
        log.warning("LedgerWriter is closed; record spooled to %s for the next start", path.name)

    def _note_overflow(self, seg: Segment | None, offset: int, length: int, event: UsageEvent) -> None:
        if seg is None:
            self._n.lost += 1
            log.error("Usage event %r could not be spooled and the queue is full; it is LOST", event)
            return
        self._n.overflowed += 1
        seg.pending += 1
        self._last_overflowed = self._seq
        tail = self._overflow[-1] if self._overflow_open else None
        if tail is not None and tail.seg is seg and tail.end == offset:
            tail.end += length
            tail.last_seq = self._seq
            tail.count += 1
        else:
            self._overflow.append(_Overflow(seg, offset, offset + length, self._seq, 1))
            self._overflow_open = True

    def _flushed(self, queued: int, overflowed: int) -> bool:
        return self._done_queued >= queued and self._done_overflowed >= overflowed

    # -- the batch thread --------------------------------------------------------------------

    def _run(self) -> None:
        _run_in_background()
        next_rescan = self._next_rescan()
        while not self._stop.is_set():
            try:
                if not self._cycle():
                    break
                if time.monotonic() >= next_rescan:
                    self._replay()
                    next_rescan = self._next_rescan()
            except Exception:  # "nothing lost": broad and logged; the thread must live
                log.exception("Ledger writer cycle failed; the events are in the spool, retrying")
                self._stop.wait(self._retry_max)

    def _next_rescan(self) -> float:
        return time.monotonic() + (self._rescan_interval or float("inf"))

    def _cycle(self) -> bool:
        """One round: a batch from the queue, then spool overflow when the queue is short."""
        batch = self._collect()
        if batch and not self._commit_queued(batch):
            return False
        if self._queue.qsize() < self._batch_size and not self._commit_overflow():
            return False
        if self._fsync == "batch":
            with self._lock:
                segments = self._spool.segments
            sync(segments)  # only this thread closes segments, so their fds stay valid
        return True

    def _collect(self) -> list[_Item]:
        batch: list[_Item] = []
        try:
            item = self._queue.get(timeout=self._tick)
        except queue.Empty:
            return batch
        deadline = time.monotonic() + self._flush_interval
        limit = max(self._batch_size, min(self._max_batch, self._queue.qsize() + 1))
        while item is not None:
            batch.append(item)
            if len(batch) >= limit or self._stop.is_set():
                break
            remaining = deadline - time.monotonic()
            try:
                item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
        return batch

    def _commit_queued(self, batch: list[_Item]) -> bool:
        new = self._append([row for _, _, row in batch])
        if new is None:
            return False
        per_segment = Counter(seg for _, seg, _ in batch if seg is not None)
        with self._cond:
            for seg, count in per_segment.items():
                seg.pending -= count
            self._n.written += new
            self._n.duplicates += len(batch) - new
            self._done_queued = batch[-1][0]
            self._spool.reap()
            self._cond.notify_all()
        return True

    def _commit_overflow(self) -> bool:
        while True:
            with self._lock:
                if not self._overflow:
                    return True
                span = self._overflow.popleft()
                if not self._overflow:
                    self._overflow_open = False  # the span we took may no longer grow
            data: list[dict[str, object]] = []
            for line, _ in read_lines(span.seg.fd, span.start, span.end):
                record = decode_record(line)
                if isinstance(record, EventRecord):
                    data.append(record.row)
                if len(data) >= self._max_batch:  # a backlog by definition: big appends
                    if not self._commit_rows(data):
                        return False
                    data = []
            if data and not self._commit_rows(data):
                return False
            with self._cond:
                span.seg.pending -= span.count
                self._done_overflowed = span.last_seq
                self._spool.reap()
                self._cond.notify_all()

    def _commit_rows(self, data: list[dict[str, object]]) -> bool:
        new = self._append(data)
        if new is None:
            return False
        with self._lock:
            self._n.written += new
            self._n.duplicates += len(data) - new
        return True

    def _append(self, data: list[dict[str, object]]) -> int | None:
        """One `Ledger.append`, retried with backoff until it succeeds; None once stopped."""
        delay, failures = self._retry_initial, 0
        while True:
            try:
                new = self._ledger.append_rows("usage_events", data)
            except Exception as exc:  # "nothing lost": broad and logged; rows stay spooled
                failures += 1
                with self._lock:
                    self._n.flush_errors += 1
                    self._last_error = f"{type(exc).__name__}: {exc}"
                if failures == 1:
                    log.exception(
                        "Writing %d usage events to the ledger failed; they are safe in the spool %r, "
                        "retrying with backoff",
                        len(data),
                        str(self.spool_dir),
                    )
                else:
                    log.error("Ledger write failed %d times in a row: %s", failures, self._last_error)
                if self._stop.wait(delay):
                    return None
                delay = min(delay * 2, self._retry_max)
            else:
                if failures:
                    log.warning("Ledger write succeeded after %d failed attempts", failures)
                return new

    def _replay(self) -> ReplayReport:
        def append(data: list[dict[str, object]]) -> int:
            return self._ledger.append_rows("usage_events", data)

        report = replay(self.spool_dir, append, batch_size=self._max_batch)
        with self._lock:
            self._n.replayed += report.events
            self._n.interrupted += report.interrupted
        if report.segments:
            log.info("Replayed %d spool segment(s): %s", report.segments, report)
        if report.deferred:
            log.error(
                "%d spool segment(s) could not be replayed into the ledger; retried in %ss",
                report.deferred,
                self._rescan_interval,
            )
        return report


BACKGROUND_NICE = 10
"""How much lower than the server's the batch thread's CPU priority is (Linux nice levels)."""


def _run_in_background() -> None:
    """Give the calling thread (the batch thread) a lower CPU priority than the event loop's.

    A batch append is milliseconds of CPU; on a busy core it would otherwise take its fair share
    from the event loop and the calls that arrive meanwhile wait: the gateway's p99. The kernel
    still runs the batch whenever the loop is idle, so throughput does not change. On Linux a nice
    value belongs to a thread, and raising it needs no privilege.
    """
    if not hasattr(os, "setpriority"):
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + BACKGROUND_NICE))
    except OSError as exc:  # e.g. a sandbox forbidding it: correct, only slower at the tail
        log.debug("cannot lower the ledger writer's priority: %s", exc)
