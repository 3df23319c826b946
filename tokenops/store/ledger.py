"""The ledger interface every store backend implements, and the record-level API on top of it.

A backend only knows how to append Arrow batches idempotently and run SQL; turning records
into rows happens once, here, for all of them.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Self

from tokenops.events import BilledCost, Outcome, Person, ProviderUsage, SeatLicense, TaskRun, TimeEntry, UsageEvent
from tokenops.store import rows
from tokenops.store.schema import TABLES

if TYPE_CHECKING:
    import pyarrow as pa


class Ledger(abc.ABC):
    """Append-only store of usage events and the business data around them."""

    keeps_rollups: bool = False
    """Whether `migrations.ROLLUPS` are tables kept in step by `append` (else views, or absent)."""

    @abc.abstractmethod
    def append(self, table: str, data: pa.Table) -> int:
        """Write rows, skipping (or, for replace tables, replacing) rows whose key exists.

        Returns how many rows were new. Safe to call twice with the same data.
        """

    def append_rows(self, table: str, data: Sequence[Mapping[str, object]]) -> int:
        """`append` for a batch of rows as `tokenops.store.rows` makes them: the gateway's batch thread.

        Backends may load them without Arrow (DuckDB does, through its JSON reader); the default
        converts. Bulk writers (importers, `record_*`) build Arrow and call `append`.
        """
        if not data:
            return 0
        return self.append(table, rows.to_arrow(table, data))

    @abc.abstractmethod
    def query(self, sql: str, params: Sequence[object] = ()) -> pa.Table:
        """Run a read-only query and return its result as Arrow."""

    def ping(self) -> None:
        """Prove the database answers (health checks); raises if it does not."""
        self.query_values("SELECT 1")

    @abc.abstractmethod
    def close(self) -> None:
        """Release the database."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def query_rows(self, sql: str, params: Sequence[object] = ()) -> list[dict[str, object]]:
        """`query` as a list of dicts, for small results."""
        return self.query(sql, params).to_pylist()  # type: ignore[no-any-return]

    def query_values(self, sql: str, params: Sequence[object] = ()) -> list[dict[str, object]]:
        """`query_rows` for the serving path: small results as plain Python values, without loading Arrow where
        the backend can avoid it. Numbers may be int or Decimal (as the driver returns them): convert, don't compare."""
        return self.query_rows(sql, params)

    def record_events(self, events: Iterable[UsageEvent]) -> int:
        """Append usage events; ones already recorded (same request_id) are ignored."""
        return self._append_rows("usage_events", (rows.event_row(e) for e in events))

    def record_task_runs(self, runs: Iterable[TaskRun]) -> int:
        """Insert or update task runs (their status changes as they finish)."""
        return self._append_rows("task_runs", (rows.task_run_row(r) for r in runs))

    def record_outcomes(self, outcomes: Iterable[Outcome]) -> int:
        """Append outcomes and their links to task runs."""
        outcome_rows: list[dict[str, object]] = []
        links: list[dict[str, object]] = []
        for outcome in outcomes:
            row, outcome_links = rows.outcome_rows(outcome)
            outcome_rows.append(row)
            links.extend(outcome_links)
        written = self._append_rows("outcomes", outcome_rows)
        self._append_rows("outcome_task_runs", links)
        return written

    def record_people(self, people: Iterable[Person]) -> int:
        """Insert or update people (rosters are re-imported as they change)."""
        return self._append_rows("people", (rows.person_row(p) for p in people))

    def record_seats(self, seats: Iterable[SeatLicense]) -> int:
        """Insert or update seat licences."""
        return self._append_rows("seat_licenses", (rows.seat_row(s) for s in seats))

    def record_time_entries(self, entries: Iterable[TimeEntry]) -> int:
        """Append time entries; re-imports are ignored."""
        return self._append_rows("time_entries", (rows.time_entry_row(e) for e in entries))

    def record_provider_usage(self, reports: Iterable[ProviderUsage]) -> int:
        """Append provider usage buckets; re-imports are ignored."""
        return self._append_rows("provider_usage", (rows.provider_usage_row(r) for r in reports))

    def record_billed_costs(self, lines: Iterable[BilledCost]) -> int:
        """Append billed cost lines; re-imports are ignored."""
        return self._append_rows("billed_costs", (rows.billed_cost_row(c) for c in lines))

    def events(self, where: str = "TRUE", params: Sequence[object] = (), limit: int = 100) -> list[UsageEvent]:
        """Usage events matching a SQL condition, newest first."""
        table = self.query(
            f"SELECT * FROM usage_events WHERE {where} ORDER BY ts DESC, request_id LIMIT {int(limit)}",
            params,
        )
        return [rows.event_from_row(r) for r in table.to_pylist()]

    def _append_rows(self, table: str, data: Iterable[dict[str, object]]) -> int:
        batch = list(data)
        if not batch:
            return 0
        return self.append(table, rows.to_arrow(table, batch))


def key_columns(table: str) -> tuple[str, ...]:
    """Idempotency key of a table."""
    return TABLES[table].key
