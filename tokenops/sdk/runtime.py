"""Where SDK events go, configured once per process by `tokenops.configure()`.

The SDK keeps one process-wide runtime, like `logging.basicConfig`: applications call
`configure()` at start-up (nothing happens at import time), and everything can also be given
an explicit `Runtime` instead.
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Sequence
from pathlib import Path

from tokenops.events import Outcome, TaskRun, UsageEvent
from tokenops.guard import Guard, GuardBackend, Policies, open_guard
from tokenops.meter import Meter
from tokenops.pricing import PriceOverride, Pricer
from tokenops.sdk.shipper import Shipper
from tokenops.store import DuckDBLedger, Ledger, rows
from tokenops.store.writer import LedgerWriter


class Runtime:
    """Where SDK rows go: a local ledger (DuckDB file, through the gateway's kill-safe writer)
    or a tokenops server (through a `Shipper`)."""

    def __init__(
        self,
        ledger: Ledger | None = None,
        *,
        spool_dir: Path,
        shipper: Shipper | None = None,
        overrides: Sequence[PriceOverride] = (),
        policies: Policies | None = None,
        guard_backend: GuardBackend | None = None,
        user: str | None = None,
        team: str | None = None,
    ) -> None:
        if (ledger is None) == (shipper is None):
            raise ValueError("a Runtime needs either a ledger or a shipper")
        self._ledger = ledger
        self.shipper = shipper
        pricer = Pricer(overrides)
        self.meter = Meter(pricer)
        self.guard: Guard = open_guard(policies or Policies(), pricer, guard_backend)
        """The same policy engine as the gateway's: counters per process, or on the gateways' Redis."""
        self.writer = LedgerWriter(ledger, spool_dir) if ledger is not None else None
        self.user = user
        self.team = team
        self._closed = False
        if self.writer is not None:
            self.writer.start()

    @property
    def ledger(self) -> Ledger:
        """The local ledger (a runtime that ships to a server has none)."""
        if self._ledger is None:
            raise RuntimeError("this runtime ships to a tokenops server; it has no local ledger")
        return self._ledger

    def record_event(self, event: UsageEvent) -> None:
        """Hand a metered call on (never raises into the application)."""
        if self.writer is not None:
            self.writer.submit(event)
        elif self.shipper is not None:
            self.shipper.submit("events", rows.event_row(event))

    def record_task_run(self, run: TaskRun) -> None:
        """Task runs are few; locally they are written at once."""
        if self.shipper is not None:
            self.shipper.submit("task_runs", rows.task_run_row(run))
        else:
            self.ledger.record_task_runs([run])

    def record_outcome(self, outcome: Outcome) -> None:
        """Outcomes are few; locally they are written at once."""
        if self.shipper is not None:
            row, links = rows.outcome_rows(outcome)
            self.shipper.submit("outcomes", {**row, "task_run_ids": [link["task_run_id"] for link in links]})
        else:
            self.ledger.record_outcomes([outcome])

    def flush(self) -> None:
        """Wait until every submitted row is in the ledger (or delivered to the server)."""
        if self.writer is not None:
            self.writer.flush()
        if self.shipper is not None:
            self.shipper.flush()

    def close(self) -> None:
        """Flush and release the ledger or stop shipping (undelivered rows stay spooled)."""
        if not self._closed:
            self._closed = True
            if self.writer is not None:
                self.writer.close()
            if self._ledger is not None:
                self._ledger.close()
            if self.shipper is not None:
                self.shipper.close()
            self.guard.close()


_lock = threading.Lock()
_runtime: list[Runtime] = []


def configure(
    ledger: str | Path = "tokenops.duckdb",
    *,
    server: str | None = None,
    api_key: str | None = None,
    spool_dir: str | Path | None = None,
    overrides: Sequence[PriceOverride] = (),
    policies: Policies | None = None,
    guard_backend: GuardBackend | None = None,
    user: str | None = None,
    team: str | None = None,
) -> Runtime:
    """Send this process's metered calls, task runs and outcomes to a local ledger file, or, with
    `server=` and `api_key=` (a tokenops key), to a tokenops server. `guard_backend=` with the
    gateways' `redis_url` makes this process share their budgets and quotas."""
    path = Path(ledger)
    spool = Path(spool_dir) if spool_dir else path.with_name(path.name + ".spool")
    if server is not None:
        if not api_key:
            raise ValueError("shipping to a tokenops server needs api_key= (a key from `tokenops keys create`)")
        runtime = Runtime(
            spool_dir=spool,
            shipper=Shipper(server, api_key, spool / "ship.jsonl"),
            overrides=overrides,
            policies=policies,
            guard_backend=guard_backend,
            user=user,
            team=team,
        )
    else:
        runtime = Runtime(
            DuckDBLedger(path),
            spool_dir=spool,
            overrides=overrides,
            policies=policies,
            guard_backend=guard_backend,
            user=user,
            team=team,
        )
    with _lock:
        for old in _runtime:
            old.close()
        _runtime[:] = [runtime]
    atexit.register(runtime.close)
    return runtime


def current_runtime() -> Runtime:
    """The configured runtime; a clear error if `configure()` was not called."""
    if not _runtime:
        raise RuntimeError("tokenops is not configured; call tokenops.configure(ledger='app.duckdb') at start-up")
    return _runtime[0]
