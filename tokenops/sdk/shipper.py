"""Shipping SDK events to a tokenops server: batched, non-blocking, retried, bounded, spooled.

`submit` only puts a row on a bounded queue (or, when the queue is full, appends it to the local
spool file), so the application never waits on the network and never sees an exception. A
background thread posts batches to `POST /api/ingest`; a batch that cannot be delivered is
appended to the spool and re-sent, oldest first, once the server answers again. The server
writes idempotently, so a batch delivered twice is counted once.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

from tokenops.web.responses import dumps

log = logging.getLogger("tokenops.sdk")
_KINDS = ("events", "task_runs", "outcomes")


class Shipper:
    """Posts rows to a server in the background."""

    def __init__(
        self,
        server: str,
        api_key: str,
        spool: Path,
        *,
        batch_size: int = 500,
        flush_interval: float = 1.0,
        max_queue: int = 50_000,
        timeout: float = 10.0,
    ) -> None:
        self.url = server.rstrip("/") + "/api/ingest"
        self.spool = spool
        spool.parent.mkdir(parents=True, exist_ok=True)
        self._headers = {"authorization": f"Bearer {api_key}", "content-type": "application/json"}
        self._queue: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue(max_queue)
        self._batch_size, self._interval, self._timeout = batch_size, flush_interval, timeout
        self._spool_lock = threading.Lock()
        self._stop = threading.Event()
        self._idle = threading.Event()
        self.delivered = 0
        self._thread = threading.Thread(target=self._run, name="tokenops-shipper", daemon=True)
        self._thread.start()

    def submit(self, kind: str, row: dict[str, Any]) -> None:
        """Queue a row for shipping; never blocks, never raises."""
        self._idle.clear()
        try:
            self._queue.put_nowait((kind, row))
        except queue.Full:
            self._to_spool([(kind, row)])

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until everything is delivered (True) or the timeout passes (False: it stays spooled)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._queue.empty() and not self._spooled() and self._idle.is_set():
                return True
            time.sleep(0.02)
        return False

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what can be delivered in `timeout`, then stop (the rest stays in the spool)."""
        self.flush(timeout)
        self._stop.set()
        self._thread.join(timeout + self._timeout)

    def _spooled(self) -> bool:
        return self.spool.exists() and self.spool.stat().st_size > 0

    def _to_spool(self, items: list[tuple[str, dict[str, Any]]]) -> None:
        data = b"".join(orjson.dumps({"kind": k, "row": orjson.loads(dumps(r))}) + b"\n" for k, r in items)
        with self._spool_lock, self.spool.open("ab") as out:
            out.write(data)

    def _post(self, client: httpx.Client, items: list[tuple[str, dict[str, Any]]]) -> bool:
        body: dict[str, list[dict[str, Any]]] = {kind: [] for kind in _KINDS}
        for kind, row in items:
            body[kind].append(row)
        try:
            response = client.post(self.url, content=dumps(body), headers=self._headers, timeout=self._timeout)
        except httpx.HTTPError as exc:
            log.warning(
                "tokenops server %s unreachable (%s); %d rows spooled to %s", self.url, exc, len(items), self.spool
            )
            return False
        if response.status_code >= 500:
            log.warning("tokenops server answered %d; %d rows spooled", response.status_code, len(items))
            return False
        if response.status_code >= 400:  # our rows are wrong: retrying will not help; keep them for inspection
            log.error("tokenops server refused %d rows: %s", len(items), response.text[:500])
            with self._spool_lock, self.spool.with_suffix(".rejected").open("ab") as out:
                out.write(dumps(body) + b"\n")
            return True
        self.delivered += len(items)
        return True

    def _drain_spool(self, client: httpx.Client) -> bool:
        with self._spool_lock:
            if not self._spooled():
                return True
            lines = self.spool.read_bytes().splitlines()
            self.spool.write_bytes(b"")
        items = [(rec["kind"], rec["row"]) for rec in map(orjson.loads, lines) if rec]
        for start in range(0, len(items), self._batch_size):
            chunk = items[start : start + self._batch_size]
            if not self._post(client, chunk):
                self._to_spool(items[start:])
                return False
        return True

    def _run(self) -> None:
        backoff = self._interval
        with httpx.Client() as client:
            while not self._stop.is_set():
                items: list[tuple[str, dict[str, Any]]] = []
                deadline = time.monotonic() + self._interval
                while len(items) < self._batch_size and time.monotonic() < deadline:
                    try:
                        items.append(self._queue.get(timeout=max(0.0, deadline - time.monotonic())))
                    except queue.Empty:
                        break
                healthy = self._drain_spool(client)
                if items and not (healthy and self._post(client, items)):
                    self._to_spool(items)
                    healthy = False
                if healthy:
                    backoff = self._interval
                    if self._queue.empty():
                        self._idle.set()
                else:
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, 30.0)
