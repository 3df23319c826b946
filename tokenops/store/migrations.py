"""Append-only list of schema migrations, applied in order and recorded in `_migrations`.

Never edit a migration that has shipped: add a new function at the end. A test builds a fresh
database from these and checks it matches `tokenops.store.schema`, so the two cannot drift.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


class Executor(Protocol):
    """Anything that can run one SQL statement (a DuckDB or PostgreSQL connection)."""

    def execute(self, sql: str, /) -> object: ...


Migration = Callable[[Executor], None]


def m001_ledger(db: Executor) -> None:
    """The ledger: usage events, task runs, outcomes, people, seats and time."""
    for statement in _M001.split(";"):
        if statement.strip():
            db.execute(statement)


def m002_provider_reports(db: Executor) -> None:
    """What providers report themselves (usage buckets, billed costs), kept apart for reconciliation."""
    for statement in _M002.split(";"):
        if statement.strip():
            db.execute(statement)


def m003_task_run_totals(db: Executor) -> None:
    """Per-run totals of the calls (`schema.TASK_RUN_TOTALS`), as a view: always current, costs nothing on append.

    Keeping it as a table updated on every append doubled the 10M-event bulk load (27.5 s against 14.4 s).
    """
    for statement in _M003.split(";"):
        if statement.strip():
            db.execute(statement)


def m004_usage_rollups(db: Executor) -> None:
    """Spend per hour and per day by provider, model, team, workflow and user (`ROLLUPS`), so dashboards stay fast.

    A backend whose executor says `keeps_rollups` (PostgreSQL) gets tables, backfilled here from the events and kept
    in step by every append, in the same transaction, from the rows it actually inserted. Elsewhere they are views
    over the events: DuckDB scans its events fast, and its 10M bulk load has no time to spare for a second table.
    """
    keep = bool(getattr(db, "keeps_rollups", False))  # an optional capability, not part of `Executor`
    for name, bucket in ROLLUPS.items():
        select = rollup_select(bucket, "usage_events")
        if keep:
            db.execute(f"CREATE TABLE {name} ({ROLLUP_COLUMNS})")
            db.execute(f"INSERT INTO {name} {select}")
        else:
            db.execute(f"CREATE VIEW {name} AS {select}")


def m005_run_totals_table(db: Executor) -> None:
    """`task_run_totals` as a table on a backend whose executor says `keeps_run_totals` (DuckDB); elsewhere nothing.

    Reports then read 4M runs instead of grouping 10M calls (issue 7). The table starts empty with a watermark of
    0 events (`_run_totals_state`); the ledger fills it from the events on open and keeps it in step with
    appends (`tokenops.store.duckdb`). A bulk load leaves the watermark behind and the next read catches up once.
    `outcome_credit` (the customers each outcome reaches through its task runs) is kept the same way.
    """
    if not getattr(db, "keeps_run_totals", False):  # an optional capability, like `keeps_rollups`
        return
    db.execute("DROP VIEW task_run_totals")
    run_totals_tables(db)


def run_totals_tables(db: Executor) -> None:
    """Create the tables of m005 (`RUN_TOTALS_TABLES`), empty, with a watermark that covers nothing."""
    for name, columns in RUN_TOTALS_TABLES.items():
        db.execute(f"CREATE TABLE {name} ({columns})")
    db.execute("INSERT INTO _run_totals_state VALUES (0, -1, -1, -1, -1, -1, -1)")


MIGRATIONS: tuple[Migration, ...] = (
    m001_ledger, m002_provider_reports, m003_task_run_totals, m004_usage_rollups, m005_run_totals_table,
)  # fmt: skip


_M001 = """
CREATE TABLE usage_events (
  request_id VARCHAR NOT NULL,
  ts TIMESTAMP NOT NULL,
  provider VARCHAR NOT NULL,
  model VARCHAR NOT NULL,
  model_requested VARCHAR,
  operation VARCHAR NOT NULL,
  input_tokens BIGINT NOT NULL,
  cache_read_tokens BIGINT NOT NULL,
  cache_write_tokens BIGINT NOT NULL,
  cache_write_1h_tokens BIGINT NOT NULL,
  output_tokens BIGINT NOT NULL,
  reasoning_tokens BIGINT NOT NULL,
  batch BOOLEAN NOT NULL,
  status VARCHAR NOT NULL,
  error_type VARCHAR,
  latency_ms DOUBLE,
  ttft_ms DOUBLE,
  cost_input DECIMAL(18,12),
  cost_cache_read DECIMAL(18,12),
  cost_cache_write DECIMAL(18,12),
  cost_output DECIMAL(18,12),
  cost_other DECIMAL(18,12),
  cost_total DECIMAL(18,12),
  unpriced BOOLEAN NOT NULL,
  price_source VARCHAR NOT NULL,
  estimated BOOLEAN NOT NULL,
  source VARCHAR NOT NULL,
  api_key_id VARCHAR,
  user_id VARCHAR,
  team VARCHAR,
  feature VARCHAR,
  workflow VARCHAR,
  task_run_id VARCHAR,
  step VARCHAR,
  iteration INTEGER,
  customer VARCHAR,
  tags VARCHAR
);

CREATE TABLE task_runs (
  task_run_id VARCHAR NOT NULL,
  workflow VARCHAR NOT NULL,
  status VARCHAR NOT NULL,
  started_at TIMESTAMP NOT NULL,
  ended_at TIMESTAMP,
  user_id VARCHAR,
  team VARCHAR,
  customer VARCHAR,
  tags VARCHAR
);

CREATE TABLE outcomes (
  outcome_id VARCHAR NOT NULL,
  ts TIMESTAMP NOT NULL,
  outcome_type VARCHAR NOT NULL,
  value DECIMAL(18,12),
  workflow VARCHAR,
  person_id VARCHAR,
  team VARCHAR
);

CREATE TABLE outcome_task_runs (
  outcome_id VARCHAR NOT NULL,
  task_run_id VARCHAR NOT NULL
);

CREATE TABLE people (
  person_id VARCHAR NOT NULL,
  team VARCHAR NOT NULL,
  loaded_hourly_cost DECIMAL(18,12) NOT NULL,
  name VARCHAR,
  role VARCHAR,
  start_date DATE
);

CREATE TABLE seat_licenses (
  person_id VARCHAR NOT NULL,
  tool VARCHAR NOT NULL,
  monthly_cost DECIMAL(18,12) NOT NULL,
  start_date DATE NOT NULL,
  end_date DATE
);

CREATE TABLE time_entries (
  entry_id VARCHAR NOT NULL,
  person_id VARCHAR NOT NULL,
  activity VARCHAR NOT NULL,
  start TIMESTAMP NOT NULL,
  duration_hours DECIMAL(12,6) NOT NULL,
  tool VARCHAR,
  workflow VARCHAR
);

"""

_M002 = """
CREATE TABLE provider_usage (
  usage_id VARCHAR NOT NULL,
  source VARCHAR NOT NULL,
  provider VARCHAR NOT NULL,
  start_ts TIMESTAMP NOT NULL,
  end_ts TIMESTAMP NOT NULL,
  model VARCHAR,
  requests BIGINT NOT NULL,
  input_tokens BIGINT NOT NULL,
  cache_read_tokens BIGINT NOT NULL,
  cache_write_tokens BIGINT NOT NULL,
  cache_write_1h_tokens BIGINT NOT NULL,
  output_tokens BIGINT NOT NULL,
  reasoning_tokens BIGINT NOT NULL,
  batch BOOLEAN NOT NULL,
  project_id VARCHAR,
  user_id VARCHAR,
  api_key_id VARCHAR,
  cost_total DECIMAL(18,12),
  unpriced BOOLEAN NOT NULL,
  price_source VARCHAR NOT NULL,
  tags VARCHAR
);

CREATE TABLE billed_costs (
  cost_id VARCHAR NOT NULL,
  source VARCHAR NOT NULL,
  provider VARCHAR NOT NULL,
  start_ts TIMESTAMP NOT NULL,
  end_ts TIMESTAMP NOT NULL,
  billed DECIMAL(18,12) NOT NULL,
  currency VARCHAR NOT NULL,
  effective DECIMAL(18,12),
  list_cost DECIMAL(18,12),
  service VARCHAR,
  model VARCHAR,
  line_item VARCHAR,
  charge_category VARCHAR NOT NULL,
  project_id VARCHAR,
  account_id VARCHAR,
  quantity DECIMAL(28,6),
  unit VARCHAR,
  tags VARCHAR
);
"""

# a run's calls, summed; a dimension is kept when every call agrees on it (NULL included)
RUN_PARTIALS = """
SELECT task_run_id, min(ts) AS first_ts, max(ts) AS last_ts,
       max(ts) FILTER (WHERE status = 'error') AS last_error_ts,
       count(*) AS calls, count(*) FILTER (WHERE unpriced) AS unpriced_calls,
       count(*) FILTER (WHERE status = 'error') AS errors,
       CAST(sum(input_tokens + output_tokens) AS BIGINT) AS tokens,
       CAST(sum(cost_total) AS DECIMAL(38,12)) AS cost, max(iteration) AS max_iteration,
       min(workflow) AS workflow, min(team) AS team, min(user_id) AS user_id, min(customer) AS customer,
       min(feature) AS feature,
       NOT ({uniform}) AS mixed
FROM {source} WHERE task_run_id IS NOT NULL GROUP BY task_run_id
"""
UNIFORM = " AND ".join(
    f"(count({c}) = 0 OR (count({c}) = count(*) AND min({c}) = max({c})))"
    for c in ("workflow", "team", "user_id", "customer", "feature")
)

_M003 = f"""
CREATE VIEW task_run_totals AS
SELECT p.*, t.status
FROM ({RUN_PARTIALS.format(uniform=UNIFORM, source="usage_events")}) AS p
LEFT JOIN task_runs AS t ON t.task_run_id = p.task_run_id
"""

RUN_TOTALS_COLUMNS = """
  task_run_id VARCHAR NOT NULL, first_ts TIMESTAMP NOT NULL, last_ts TIMESTAMP NOT NULL, last_error_ts TIMESTAMP,
  calls BIGINT NOT NULL, unpriced_calls BIGINT NOT NULL, errors BIGINT NOT NULL, tokens BIGINT NOT NULL,
  cost DECIMAL(38,12), max_iteration INTEGER, workflow VARCHAR, team VARCHAR, user_id VARCHAR, customer VARCHAR,
  feature VARCHAR, mixed BOOLEAN NOT NULL, status VARCHAR
"""
"""`schema.TASK_RUN_TOTALS` as a table (m005).

Spelled out, not derived from the schema: it is m005's DDL, and a migration must keep creating what it did
whatever the schema says later. `tests/store/test_duckdb.py` checks that the table a fresh ledger gets and
`schema.TASK_RUN_TOTALS` agree."""
RUN_TOTALS_STATE_COLUMNS = """
  events BIGINT NOT NULL, task_runs BIGINT NOT NULL, task_runs_rowid BIGINT NOT NULL,
  outcomes BIGINT NOT NULL, outcomes_rowid BIGINT NOT NULL, links BIGINT NOT NULL, links_rowid BIGINT NOT NULL
"""
"""What `task_run_totals` and `outcome_credit` cover: the first `events` rows of `usage_events` (by rowid), and
`task_runs`, `outcomes` and `outcome_task_runs` (links) as they were when they had that many rows and that
highest rowid (a replaced run moves it)."""
OUTCOME_CREDIT_COLUMNS = "outcome_id VARCHAR NOT NULL, ts TIMESTAMP NOT NULL, value DECIMAL(18,12), customer VARCHAR"
"""One row per outcome and distinct `task_runs.customer` of its linked runs (m005): NULL when it has no link, or a
link to a run not recorded. Outcomes have no customer of their own, so this is their credit by customer."""
RUN_TOTALS_TABLES: dict[str, str] = {
    "task_run_totals": RUN_TOTALS_COLUMNS,
    "_run_totals_state": RUN_TOTALS_STATE_COLUMNS,
    "outcome_credit": OUTCOME_CREDIT_COLUMNS,
}
"""The tables m005 creates, and their columns."""
# `outcome_credit` of the outcomes `{where}` selects (`o` is `outcomes`); an outcome id is a key, so the DISTINCT
# is one row per (outcome, customer)
OUTCOME_CREDIT = """
SELECT DISTINCT o.outcome_id, o.ts, o.value, t.customer
FROM outcomes o LEFT JOIN outcome_task_runs l ON l.outcome_id = o.outcome_id
LEFT JOIN task_runs t ON t.task_run_id = l.task_run_id
WHERE {where}
"""

ROLLUPS: dict[str, str] = {"usage_hourly": "hour", "usage_daily": "day"}
"""Rollup name and the `date_trunc` unit of its `ts` (the bucket's start), finest first."""
ROLLUP_KEY: tuple[str, ...] = ("ts", "provider", "model", "team", "workflow", "user_id")
"""A rollup row's key: its bucket and the event columns it is grouped by."""
ROLLUP_SUMS: tuple[str, ...] = (
    "calls", "errors", "unpriced_calls", "unpriced_tokens", "input_tokens", "cache_read_tokens",
    "cache_write_tokens", "cache_write_1h_tokens", "output_tokens", "reasoning_tokens", "cost",
)  # fmt: skip
"""A rollup row's measures: each is a sum over the bucket's events, so deltas add up."""
ROLLUP_COLUMNS = """
  ts TIMESTAMP NOT NULL, provider VARCHAR NOT NULL, model VARCHAR NOT NULL,
  team VARCHAR, workflow VARCHAR, user_id VARCHAR,
  calls BIGINT NOT NULL, errors BIGINT NOT NULL, unpriced_calls BIGINT NOT NULL, unpriced_tokens BIGINT NOT NULL,
  input_tokens BIGINT NOT NULL, cache_read_tokens BIGINT NOT NULL, cache_write_tokens BIGINT NOT NULL,
  cache_write_1h_tokens BIGINT NOT NULL, output_tokens BIGINT NOT NULL, reasoning_tokens BIGINT NOT NULL,
  cost DECIMAL(38,12) NOT NULL
"""

# one definition for the backfill, the views and the per-append deltas; money stays exact (DECIMAL sums)
_ROLLUP_SELECT = """
SELECT date_trunc('{bucket}', ts) AS ts, provider, model, team, workflow, user_id,
       CAST(count(*) AS BIGINT) AS calls,
       CAST(count(*) FILTER (WHERE status = 'error') AS BIGINT) AS errors,
       CAST(count(*) FILTER (WHERE unpriced) AS BIGINT) AS unpriced_calls,
       CAST(coalesce(sum(input_tokens + output_tokens) FILTER (WHERE unpriced), 0) AS BIGINT) AS unpriced_tokens,
       CAST(sum(input_tokens) AS BIGINT) AS input_tokens,
       CAST(sum(cache_read_tokens) AS BIGINT) AS cache_read_tokens,
       CAST(sum(cache_write_tokens) AS BIGINT) AS cache_write_tokens,
       CAST(sum(cache_write_1h_tokens) AS BIGINT) AS cache_write_1h_tokens,
       CAST(sum(output_tokens) AS BIGINT) AS output_tokens,
       CAST(sum(reasoning_tokens) AS BIGINT) AS reasoning_tokens,
       CAST(coalesce(sum(cost_total), 0) AS DECIMAL(38,12)) AS cost
FROM {source}
GROUP BY 1, 2, 3, 4, 5, 6
"""


def rollup_select(bucket: str, source: str) -> str:
    """The rollup rows (DuckDB dialect) of the events in `source`, bucketed by `bucket` (`"hour"`, `"day"`)."""
    if bucket not in ROLLUPS.values():
        raise ValueError(f"Unknown rollup bucket {bucket!r}; choose from {', '.join(ROLLUPS.values())}")
    return _ROLLUP_SELECT.format(bucket=bucket, source=source)
