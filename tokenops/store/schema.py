"""The ledger's tables, declared once: DDL, Arrow schema and row conversion all derive from here.

Timestamps are stored as UTC without a zone (`TIMESTAMP`) so every backend agrees on day
boundaries; money is `DECIMAL(18,12)`: exact to a millionth of a micro-dollar, stored as a
64-bit integer, and summed into `DECIMAL(38,12)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import pyarrow as pa

MONEY_SQL = "DECIMAL(18,12)"
MONEY_ARROW = pa.decimal128(18, 12)
MONEY_QUANTUM = Decimal("1e-12")


@dataclass(frozen=True, slots=True)
class Column:
    """One column of a ledger table."""

    name: str
    """Column name."""
    sql: str
    """Portable SQL type."""
    arrow: pa.DataType
    """Arrow type used for bulk loads."""
    nullable: bool = True
    """Whether NULL is allowed."""


def _c(name: str, sql: str, arrow: pa.DataType, nullable: bool = True) -> Column:
    return Column(name, sql, arrow, nullable)


TS = pa.timestamp("us")

USAGE_EVENTS: tuple[Column, ...] = (
    _c("request_id", "VARCHAR", pa.string(), False),
    _c("ts", "TIMESTAMP", TS, False),
    _c("provider", "VARCHAR", pa.string(), False),
    _c("model", "VARCHAR", pa.string(), False),
    _c("model_requested", "VARCHAR", pa.string()),
    _c("operation", "VARCHAR", pa.string(), False),
    _c("input_tokens", "BIGINT", pa.int64(), False),
    _c("cache_read_tokens", "BIGINT", pa.int64(), False),
    _c("cache_write_tokens", "BIGINT", pa.int64(), False),
    _c("cache_write_1h_tokens", "BIGINT", pa.int64(), False),
    _c("output_tokens", "BIGINT", pa.int64(), False),
    _c("reasoning_tokens", "BIGINT", pa.int64(), False),
    _c("batch", "BOOLEAN", pa.bool_(), False),
    _c("status", "VARCHAR", pa.string(), False),
    _c("error_type", "VARCHAR", pa.string()),
    _c("latency_ms", "DOUBLE", pa.float64()),
    _c("ttft_ms", "DOUBLE", pa.float64()),
    _c("cost_input", MONEY_SQL, MONEY_ARROW),
    _c("cost_cache_read", MONEY_SQL, MONEY_ARROW),
    _c("cost_cache_write", MONEY_SQL, MONEY_ARROW),
    _c("cost_output", MONEY_SQL, MONEY_ARROW),
    _c("cost_other", MONEY_SQL, MONEY_ARROW),
    _c("cost_total", MONEY_SQL, MONEY_ARROW),
    _c("unpriced", "BOOLEAN", pa.bool_(), False),
    _c("price_source", "VARCHAR", pa.string(), False),
    _c("estimated", "BOOLEAN", pa.bool_(), False),
    _c("source", "VARCHAR", pa.string(), False),
    _c("api_key_id", "VARCHAR", pa.string()),
    _c("user_id", "VARCHAR", pa.string()),
    _c("team", "VARCHAR", pa.string()),
    _c("feature", "VARCHAR", pa.string()),
    _c("workflow", "VARCHAR", pa.string()),
    _c("task_run_id", "VARCHAR", pa.string()),
    _c("step", "VARCHAR", pa.string()),
    _c("iteration", "INTEGER", pa.int32()),
    _c("customer", "VARCHAR", pa.string()),
    _c("tags", "VARCHAR", pa.string()),
)

TASK_RUNS: tuple[Column, ...] = (
    _c("task_run_id", "VARCHAR", pa.string(), False),
    _c("workflow", "VARCHAR", pa.string(), False),
    _c("status", "VARCHAR", pa.string(), False),
    _c("started_at", "TIMESTAMP", TS, False),
    _c("ended_at", "TIMESTAMP", TS),
    _c("user_id", "VARCHAR", pa.string()),
    _c("team", "VARCHAR", pa.string()),
    _c("customer", "VARCHAR", pa.string()),
    _c("tags", "VARCHAR", pa.string()),
)

OUTCOMES: tuple[Column, ...] = (
    _c("outcome_id", "VARCHAR", pa.string(), False),
    _c("ts", "TIMESTAMP", TS, False),
    _c("outcome_type", "VARCHAR", pa.string(), False),
    _c("value", MONEY_SQL, MONEY_ARROW),
    _c("workflow", "VARCHAR", pa.string()),
    _c("person_id", "VARCHAR", pa.string()),
    _c("team", "VARCHAR", pa.string()),
)

OUTCOME_TASK_RUNS: tuple[Column, ...] = (
    _c("outcome_id", "VARCHAR", pa.string(), False),
    _c("task_run_id", "VARCHAR", pa.string(), False),
)

PEOPLE: tuple[Column, ...] = (
    _c("person_id", "VARCHAR", pa.string(), False),
    _c("team", "VARCHAR", pa.string(), False),
    _c("loaded_hourly_cost", MONEY_SQL, MONEY_ARROW, False),
    _c("name", "VARCHAR", pa.string()),
    _c("role", "VARCHAR", pa.string()),
    _c("start_date", "DATE", pa.date32()),
)

SEAT_LICENSES: tuple[Column, ...] = (
    _c("person_id", "VARCHAR", pa.string(), False),
    _c("tool", "VARCHAR", pa.string(), False),
    _c("monthly_cost", MONEY_SQL, MONEY_ARROW, False),
    _c("start_date", "DATE", pa.date32(), False),
    _c("end_date", "DATE", pa.date32()),
)

TIME_ENTRIES: tuple[Column, ...] = (
    _c("entry_id", "VARCHAR", pa.string(), False),
    _c("person_id", "VARCHAR", pa.string(), False),
    _c("activity", "VARCHAR", pa.string(), False),
    _c("start", "TIMESTAMP", TS, False),
    _c("duration_hours", "DECIMAL(12,6)", pa.decimal128(12, 6), False),
    _c("tool", "VARCHAR", pa.string()),
    _c("workflow", "VARCHAR", pa.string()),
)

PROVIDER_USAGE: tuple[Column, ...] = (
    _c("usage_id", "VARCHAR", pa.string(), False),
    _c("source", "VARCHAR", pa.string(), False),
    _c("provider", "VARCHAR", pa.string(), False),
    _c("start_ts", "TIMESTAMP", TS, False),
    _c("end_ts", "TIMESTAMP", TS, False),
    _c("model", "VARCHAR", pa.string()),
    _c("requests", "BIGINT", pa.int64(), False),
    _c("input_tokens", "BIGINT", pa.int64(), False),
    _c("cache_read_tokens", "BIGINT", pa.int64(), False),
    _c("cache_write_tokens", "BIGINT", pa.int64(), False),
    _c("cache_write_1h_tokens", "BIGINT", pa.int64(), False),
    _c("output_tokens", "BIGINT", pa.int64(), False),
    _c("reasoning_tokens", "BIGINT", pa.int64(), False),
    _c("batch", "BOOLEAN", pa.bool_(), False),
    _c("project_id", "VARCHAR", pa.string()),
    _c("user_id", "VARCHAR", pa.string()),
    _c("api_key_id", "VARCHAR", pa.string()),
    _c("cost_total", MONEY_SQL, MONEY_ARROW),
    _c("unpriced", "BOOLEAN", pa.bool_(), False),
    _c("price_source", "VARCHAR", pa.string(), False),
    _c("tags", "VARCHAR", pa.string()),
)

BILLED_COSTS: tuple[Column, ...] = (
    _c("cost_id", "VARCHAR", pa.string(), False),
    _c("source", "VARCHAR", pa.string(), False),
    _c("provider", "VARCHAR", pa.string(), False),
    _c("start_ts", "TIMESTAMP", TS, False),
    _c("end_ts", "TIMESTAMP", TS, False),
    _c("billed", MONEY_SQL, MONEY_ARROW, False),
    _c("currency", "VARCHAR", pa.string(), False),
    _c("effective", MONEY_SQL, MONEY_ARROW),
    _c("list_cost", MONEY_SQL, MONEY_ARROW),
    _c("service", "VARCHAR", pa.string()),
    _c("model", "VARCHAR", pa.string()),
    _c("line_item", "VARCHAR", pa.string()),
    _c("charge_category", "VARCHAR", pa.string(), False),
    _c("project_id", "VARCHAR", pa.string()),
    _c("account_id", "VARCHAR", pa.string()),
    _c("quantity", "DECIMAL(28,6)", pa.decimal128(28, 6)),
    _c("unit", "VARCHAR", pa.string()),
    _c("tags", "VARCHAR", pa.string()),
)


@dataclass(frozen=True, slots=True)
class Table:
    """A ledger table and the columns that make a row unique (its idempotency key)."""

    name: str
    """Table name."""
    columns: tuple[Column, ...]
    """Columns in order."""
    key: tuple[str, ...]
    """Natural key: a second row with the same key is ignored (or replaces, see `replace`)."""
    replace: bool = False
    """Later rows replace earlier ones (task runs change status; rosters change)."""

    @property
    def arrow_schema(self) -> pa.Schema:
        """Arrow schema for bulk loads."""
        return pa.schema([pa.field(c.name, c.arrow, c.nullable) for c in self.columns])

    def create_sql(self) -> str:
        """Portable CREATE TABLE."""
        cols = ",\n  ".join(f"{c.name} {c.sql}{'' if c.nullable else ' NOT NULL'}" for c in self.columns)
        return f"CREATE TABLE {self.name} (\n  {cols}\n)"


TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        Table("usage_events", USAGE_EVENTS, ("request_id",)),
        Table("task_runs", TASK_RUNS, ("task_run_id",), replace=True),
        Table("outcomes", OUTCOMES, ("outcome_id",)),
        Table("outcome_task_runs", OUTCOME_TASK_RUNS, ("outcome_id", "task_run_id")),
        Table("people", PEOPLE, ("person_id",), replace=True),
        Table("seat_licenses", SEAT_LICENSES, ("person_id", "tool", "start_date"), replace=True),
        Table("time_entries", TIME_ENTRIES, ("entry_id",)),
        Table("provider_usage", PROVIDER_USAGE, ("usage_id",)),
        Table("billed_costs", BILLED_COSTS, ("cost_id",)),
    )
}


TASK_RUN_TOTALS: tuple[Column, ...] = (
    _c("task_run_id", "VARCHAR", pa.string(), False),
    _c("first_ts", "TIMESTAMP", TS, False),
    _c("last_ts", "TIMESTAMP", TS, False),
    _c("last_error_ts", "TIMESTAMP", TS),
    _c("calls", "BIGINT", pa.int64(), False),
    _c("unpriced_calls", "BIGINT", pa.int64(), False),
    _c("errors", "BIGINT", pa.int64(), False),
    _c("tokens", "BIGINT", pa.int64(), False),
    _c("cost", "DECIMAL(38,12)", pa.decimal128(38, 12)),
    _c("max_iteration", "INTEGER", pa.int32()),
    _c("workflow", "VARCHAR", pa.string()),
    _c("team", "VARCHAR", pa.string()),
    _c("user_id", "VARCHAR", pa.string()),
    _c("customer", "VARCHAR", pa.string()),
    _c("feature", "VARCHAR", pa.string()),
    _c("mixed", "BOOLEAN", pa.bool_(), False),
    _c("status", "VARCHAR", pa.string()),
)
"""One row per task run: the totals of its calls, kept by the ledger as calls arrive (issue 7).

Derived data, not ledger input (so not in `TABLES`): reports read 4M runs instead of grouping
10M calls by `task_run_id`. `workflow` ... `feature` are the run's value when every call agrees
(NULL included), else `mixed` is true and reports take that run from its calls. `status` is the
run's `task_runs.status` (NULL while the run is not recorded)."""

RUN_DIMENSIONS: tuple[str, ...] = ("workflow", "team", "user_id", "customer", "feature")
"""Call columns a `task_run_totals` row carries when they are uniform across the run."""
