"""The ledger's tables, declared once: DDL, Arrow schema and row conversion all derive from here.

Timestamps are stored as UTC without a zone (`TIMESTAMP`) so every backend agrees on day
boundaries; money is `DECIMAL(18,12)`: exact to a millionth of a micro-dollar, stored as a
64-bit integer, and summed into `DECIMAL(38,12)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

MONEY_SQL = "DECIMAL(18,12)"
MONEY_QUANTUM = Decimal("1e-12")


def arrow_type(sql: str) -> pa.DataType:
    """The Arrow type bulk loads use for a column's SQL type.

    Derived rather than declared so that a process that never bulk-loads (a gateway replica,
    which appends its rows as JSON) does not load pyarrow and numpy (~50 MB) to describe its tables.
    """
    import pyarrow as pa

    if sql.startswith("DECIMAL("):
        precision, scale = sql.removeprefix("DECIMAL(").removesuffix(")").split(",")
        return pa.decimal128(int(precision), int(scale))
    return {
        "VARCHAR": pa.string(),
        "TIMESTAMP": pa.timestamp("us"),
        "BIGINT": pa.int64(),
        "INTEGER": pa.int32(),
        "BOOLEAN": pa.bool_(),
        "DOUBLE": pa.float64(),
        "DATE": pa.date32(),
    }[sql]


def __getattr__(name: str) -> Any:
    # MONEY_ARROW, kept for the importers' bulk paths without importing pyarrow here
    if name == "MONEY_ARROW":
        return arrow_type(MONEY_SQL)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True, slots=True)
class Column:
    """One column of a ledger table."""

    name: str
    """Column name."""
    sql: str
    """Portable SQL type."""
    nullable: bool = True
    """Whether NULL is allowed."""

    @property
    def arrow(self) -> pa.DataType:
        """Arrow type used for bulk loads."""
        return arrow_type(self.sql)


@cache
def _arrow_schema(columns: tuple[Column, ...]) -> pa.Schema:
    import pyarrow as pa

    return pa.schema([pa.field(c.name, c.arrow, c.nullable) for c in columns])


def _c(name: str, sql: str, nullable: bool = True) -> Column:
    return Column(name, sql, nullable)


USAGE_EVENTS: tuple[Column, ...] = (
    _c("request_id", "VARCHAR", False),
    _c("ts", "TIMESTAMP", False),
    _c("provider", "VARCHAR", False),
    _c("model", "VARCHAR", False),
    _c("model_requested", "VARCHAR"),
    _c("operation", "VARCHAR", False),
    _c("input_tokens", "BIGINT", False),
    _c("cache_read_tokens", "BIGINT", False),
    _c("cache_write_tokens", "BIGINT", False),
    _c("cache_write_1h_tokens", "BIGINT", False),
    _c("output_tokens", "BIGINT", False),
    _c("reasoning_tokens", "BIGINT", False),
    _c("batch", "BOOLEAN", False),
    _c("status", "VARCHAR", False),
    _c("error_type", "VARCHAR"),
    _c("latency_ms", "DOUBLE"),
    _c("ttft_ms", "DOUBLE"),
    _c("cost_input", MONEY_SQL),
    _c("cost_cache_read", MONEY_SQL),
    _c("cost_cache_write", MONEY_SQL),
    _c("cost_output", MONEY_SQL),
    _c("cost_other", MONEY_SQL),
    _c("cost_total", MONEY_SQL),
    _c("unpriced", "BOOLEAN", False),
    _c("price_source", "VARCHAR", False),
    _c("estimated", "BOOLEAN", False),
    _c("source", "VARCHAR", False),
    _c("api_key_id", "VARCHAR"),
    _c("user_id", "VARCHAR"),
    _c("team", "VARCHAR"),
    _c("feature", "VARCHAR"),
    _c("workflow", "VARCHAR"),
    _c("task_run_id", "VARCHAR"),
    _c("step", "VARCHAR"),
    _c("iteration", "INTEGER"),
    _c("customer", "VARCHAR"),
    _c("tags", "VARCHAR"),
)

TASK_RUNS: tuple[Column, ...] = (
    _c("task_run_id", "VARCHAR", False),
    _c("workflow", "VARCHAR", False),
    _c("status", "VARCHAR", False),
    _c("started_at", "TIMESTAMP", False),
    _c("ended_at", "TIMESTAMP"),
    _c("user_id", "VARCHAR"),
    _c("team", "VARCHAR"),
    _c("customer", "VARCHAR"),
    _c("tags", "VARCHAR"),
)

OUTCOMES: tuple[Column, ...] = (
    _c("outcome_id", "VARCHAR", False),
    _c("ts", "TIMESTAMP", False),
    _c("outcome_type", "VARCHAR", False),
    _c("value", MONEY_SQL),
    _c("workflow", "VARCHAR"),
    _c("person_id", "VARCHAR"),
    _c("team", "VARCHAR"),
)

OUTCOME_TASK_RUNS: tuple[Column, ...] = (
    _c("outcome_id", "VARCHAR", False),
    _c("task_run_id", "VARCHAR", False),
)

PEOPLE: tuple[Column, ...] = (
    _c("person_id", "VARCHAR", False),
    _c("team", "VARCHAR", False),
    _c("loaded_hourly_cost", MONEY_SQL, False),
    _c("name", "VARCHAR"),
    _c("role", "VARCHAR"),
    _c("start_date", "DATE"),
)

SEAT_LICENSES: tuple[Column, ...] = (
    _c("person_id", "VARCHAR", False),
    _c("tool", "VARCHAR", False),
    _c("monthly_cost", MONEY_SQL, False),
    _c("start_date", "DATE", False),
    _c("end_date", "DATE"),
)

TIME_ENTRIES: tuple[Column, ...] = (
    _c("entry_id", "VARCHAR", False),
    _c("person_id", "VARCHAR", False),
    _c("activity", "VARCHAR", False),
    _c("start", "TIMESTAMP", False),
    _c("duration_hours", "DECIMAL(12,6)", False),
    _c("tool", "VARCHAR"),
    _c("workflow", "VARCHAR"),
)

PROVIDER_USAGE: tuple[Column, ...] = (
    _c("usage_id", "VARCHAR", False),
    _c("source", "VARCHAR", False),
    _c("provider", "VARCHAR", False),
    _c("start_ts", "TIMESTAMP", False),
    _c("end_ts", "TIMESTAMP", False),
    _c("model", "VARCHAR"),
    _c("requests", "BIGINT", False),
    _c("input_tokens", "BIGINT", False),
    _c("cache_read_tokens", "BIGINT", False),
    _c("cache_write_tokens", "BIGINT", False),
    _c("cache_write_1h_tokens", "BIGINT", False),
    _c("output_tokens", "BIGINT", False),
    _c("reasoning_tokens", "BIGINT", False),
    _c("batch", "BOOLEAN", False),
    _c("project_id", "VARCHAR"),
    _c("user_id", "VARCHAR"),
    _c("api_key_id", "VARCHAR"),
    _c("cost_total", MONEY_SQL),
    _c("unpriced", "BOOLEAN", False),
    _c("price_source", "VARCHAR", False),
    _c("tags", "VARCHAR"),
)

BILLED_COSTS: tuple[Column, ...] = (
    _c("cost_id", "VARCHAR", False),
    _c("source", "VARCHAR", False),
    _c("provider", "VARCHAR", False),
    _c("start_ts", "TIMESTAMP", False),
    _c("end_ts", "TIMESTAMP", False),
    _c("billed", MONEY_SQL, False),
    _c("currency", "VARCHAR", False),
    _c("effective", MONEY_SQL),
    _c("list_cost", MONEY_SQL),
    _c("service", "VARCHAR"),
    _c("model", "VARCHAR"),
    _c("line_item", "VARCHAR"),
    _c("charge_category", "VARCHAR", False),
    _c("project_id", "VARCHAR"),
    _c("account_id", "VARCHAR"),
    _c("quantity", "DECIMAL(28,6)"),
    _c("unit", "VARCHAR"),
    _c("tags", "VARCHAR"),
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
        return _arrow_schema(self.columns)

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
    _c("task_run_id", "VARCHAR", False),
    _c("first_ts", "TIMESTAMP", False),
    _c("last_ts", "TIMESTAMP", False),
    _c("last_error_ts", "TIMESTAMP"),
    _c("calls", "BIGINT", False),
    _c("unpriced_calls", "BIGINT", False),
    _c("errors", "BIGINT", False),
    _c("tokens", "BIGINT", False),
    _c("cost", "DECIMAL(38,12)"),
    _c("max_iteration", "INTEGER"),
    _c("workflow", "VARCHAR"),
    _c("team", "VARCHAR"),
    _c("user_id", "VARCHAR"),
    _c("customer", "VARCHAR"),
    _c("feature", "VARCHAR"),
    _c("mixed", "BOOLEAN", False),
    _c("status", "VARCHAR"),
)
"""One row per task run: the totals of its calls, kept by the ledger as calls arrive (issue 7).

Derived data, not ledger input (so not in `TABLES`): reports read 4M runs instead of grouping
10M calls by `task_run_id`. `workflow` ... `feature` are the run's value when every call agrees
(NULL included), else `mixed` is true and reports take that run from its calls. `status` is the
run's `task_runs.status` (NULL while the run is not recorded)."""

RUN_DIMENSIONS: tuple[str, ...] = ("workflow", "team", "user_id", "customer", "feature")
"""Call columns a `task_run_totals` row carries when they are uniform across the run."""
