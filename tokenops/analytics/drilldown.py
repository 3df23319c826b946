"""From a workflow down to single calls: its task runs, one run's calls, one ledger row.

The dashboard's drill-down (workflow -> task run -> call) reads these. Every query takes the
caller's `Filters` (the filter columns are those of `usage_events`, so no query joins before
filtering), so a team lead's scope applies at each level, and user input only ever
reaches SQL as parameters. Unpriced calls keep a NULL cost; sums over a run say how many of
its calls were unpriced instead of treating them as $0.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal

from tokenops.analytics.run_totals import per_run_sql
from tokenops.analytics.spend import Filters
from tokenops.store import Ledger

Rows = list[dict[str, object]]
EVERYTHING = Filters()
"""No filter: the whole ledger."""

_RUN_COLUMNS = """
    e.task_run_id,
    any_value(e.team) AS team,
    any_value(e.user_id) AS user,
    min(e.ts) AS first_call,
    max(e.ts) AS last_call,
    count(*) AS calls,
    coalesce(max(e.iteration), 0) AS max_iteration,
    coalesce(sum(e.input_tokens + e.output_tokens), 0) AS tokens,
    coalesce(sum(e.cost_total), 0)::DECIMAL(38,12) AS cost,
    count(*) FILTER (WHERE e.unpriced) AS unpriced_calls
"""

# a run's columns on the page besides `run_totals.RUN_MEASURES`, from its stored totals or from its calls: a whole
# run's calls agree on team and user, so `any_value` of its calls is the stored value
_RUN_EXTRA = (
    ("team", "team", "any_value(team)"),
    ("user", "user_id", "any_value(user_id)"),
    ("first_call", "first_ts", "min(ts)"),
    ("last_call", "last_ts", "max(ts)"),
)


def workflow_runs(ledger: Ledger, workflow: str, filters: Filters = EVERYTHING, *, limit: int = 100) -> Rows:
    """A workflow's task runs, most expensive first, with their status from `task_runs` when known.

    The runs come from `run_totals.per_run_sql`: a run wholly in the filters is read from its stored
    totals instead of grouping the workflow's calls (millions at 10M events).
    """
    if filters.workflow not in (None, workflow):
        return []  # two different workflows: no call is in both
    scoped = dataclasses.replace(filters, workflow=workflow)
    runs, params = per_run_sql(ledger, ["workflow"], None, scoped, status=False, extra=_RUN_EXTRA)
    # the costliest first, then their status: look up `limit` runs in task_runs, not every run of the workflow
    return ledger.query_rows(
        f"""
        WITH costliest AS (
            SELECT task_run_id, team, "user", first_call, last_call, calls,
                   coalesce(iterations, 0) AS max_iteration, coalesce(tokens, 0) AS tokens,
                   coalesce(cost, 0)::DECIMAL(38,12) AS cost, unpriced_calls
            FROM ({runs}) r ORDER BY cost DESC, task_run_id LIMIT {int(limit)}
        )
        SELECT costliest.*, t.status
        FROM costliest LEFT JOIN task_runs t USING (task_run_id)
        ORDER BY costliest.cost DESC, costliest.task_run_id
        """,
        params,
    )


def workflow_steps(ledger: Ledger, workflow: str, filters: Filters = EVERYTHING) -> Rows:
    """Where a workflow's money goes by agent step: calls, tokens, cost and the deepest loop iteration."""
    where, params = filters.where()
    return ledger.query_rows(
        f"""
        SELECT coalesce(e.step, '(no step)') AS step,
               count(*) AS calls,
               count(DISTINCT e.task_run_id) AS task_runs,
               coalesce(max(e.iteration), 0) AS max_iteration,
               coalesce(sum(e.input_tokens + e.output_tokens), 0) AS tokens,
               coalesce(sum(e.cost_total), 0)::DECIMAL(38,12) AS cost,
               count(*) FILTER (WHERE e.unpriced) AS unpriced_calls
        FROM usage_events e
        WHERE {where} AND e.workflow = ?
        GROUP BY 1 ORDER BY cost DESC, step
        """,
        [*params, workflow],
    )


def task_run(ledger: Ledger, task_run_id: str) -> dict[str, object] | None:
    """A task run's record, or a summary of its calls when only calls name it; None if unknown."""
    rows = ledger.query_rows(
        f"""
        WITH calls AS (
            SELECT {_RUN_COLUMNS}, any_value(e.workflow) AS workflow, any_value(e.customer) AS customer
            FROM usage_events e WHERE e.task_run_id = ? GROUP BY e.task_run_id
        )
        SELECT coalesce(t.task_run_id, c.task_run_id) AS task_run_id,
               coalesce(t.workflow, c.workflow) AS workflow,
               coalesce(t.team, c.team) AS team,
               coalesce(t.user_id, c.user) AS user,
               coalesce(t.customer, c.customer) AS customer,
               t.status, t.started_at, t.ended_at,
               coalesce(c.calls, 0) AS calls,
               coalesce(c.tokens, 0) AS tokens,
               coalesce(c.cost, 0)::DECIMAL(38,12) AS cost,
               coalesce(c.unpriced_calls, 0) AS unpriced_calls,
               coalesce(c.max_iteration, 0) AS max_iteration
        FROM (SELECT * FROM task_runs WHERE task_run_id = ?) t FULL OUTER JOIN calls c USING (task_run_id)
        """,
        [task_run_id, task_run_id],
    )
    return rows[0] if rows else None


def run_calls(ledger: Ledger, task_run_id: str, filters: Filters = EVERYTHING) -> Rows:
    """Every call of a task run, in the order they were made."""
    where, params = filters.where()
    return ledger.query_rows(
        f"""
        SELECT e.request_id, e.ts, e.step, e.iteration, e.model, e.status,
               e.input_tokens, e.cache_read_tokens, e.output_tokens,
               e.cost_total AS cost, e.unpriced, e.latency_ms
        FROM usage_events e
        WHERE {where} AND e.task_run_id = ?
        ORDER BY e.ts, e.request_id
        """,
        [*params, task_run_id],
    )


def call(ledger: Ledger, request_id: str) -> dict[str, object] | None:
    """One ledger row, every column, or None."""
    rows = ledger.query_rows("SELECT * FROM usage_events WHERE request_id = ? LIMIT 1", [request_id])
    return rows[0] if rows else None


def decimal_or_none(value: object) -> Decimal | None:
    """A money cell as Decimal (None stays None: unpriced is not zero)."""
    return None if value is None else Decimal(str(value))
