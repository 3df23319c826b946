"""Where the money went: spend and tokens by any dimension and time grain.

Unpriced calls are counted apart (`unpriced_events`, `unpriced_tokens`), never folded into
cost as $0. Dimensions and grains are closed sets mapped to columns, so user input never
reaches SQL text.

`spend_by` reads a rollup (`tokenops.store.migrations.ROLLUPS`: spend per hour and per day by
provider, model, team, workflow and user) instead of the events when the ledger keeps them as
tables (PostgreSQL) and the answer is the same: every dimension and filter is a rollup column
and the period starts and ends on the rollup's bucket boundaries. The query is written once;
only its source and the aggregate over each measure change (`count(*)` becomes `sum(calls)`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Literal, get_args

from tokenops.store import Ledger
from tokenops.store.migrations import ROLLUP_KEY, ROLLUPS
from tokenops.store.rows import utc_naive

if TYPE_CHECKING:
    import pyarrow as pa

Dimension = Literal["team", "user", "workflow", "model", "provider", "customer", "feature", "source", "status"]
Grain = Literal["hour", "day", "week", "month"]

DIMENSIONS: tuple[str, ...] = get_args(Dimension)
GRAINS: tuple[str, ...] = get_args(Grain)
_COLUMN = {"user": "user_id"}
_FILTERED = ("team", "workflow", "model", "customer", "user")
"""Filters fields that narrow by a column (the others bound the period)."""
_GRAIN_RANK = {"hour": 0, "day": 1, "week": 2, "month": 3}

EVENTS = "usage_events"
"""The source every report can read; rollups are an equivalent shortcut for some."""

MEASURES: tuple[tuple[str, str, str], ...] = (
    ("cost", "coalesce(sum(cost_total), 0)::DECIMAL(38,12)", "coalesce(sum(cost), 0)::DECIMAL(38,12)"),
    ("events", "count(*)", "coalesce(sum(calls), 0)::BIGINT"),
    ("unpriced_events", "count(*) FILTER (WHERE unpriced)", "coalesce(sum(unpriced_calls), 0)::BIGINT"),
    (
        "unpriced_tokens",
        "coalesce(sum(input_tokens + output_tokens) FILTER (WHERE unpriced), 0)",
        "coalesce(sum(unpriced_tokens), 0)",
    ),
    *(
        (t, f"coalesce(sum({t}), 0)", f"coalesce(sum({t}), 0)")
        for t in ("input_tokens", "cache_read_tokens", "output_tokens", "reasoning_tokens")
    ),
)
"""The spend measures: (name, aggregate over usage_events, aggregate over a rollup: sums of per-bucket sums), of the
same SQL type both ways. Each is a sum, so sums of per-group sums give it too (`kpis` builds on this)."""
EVENT_MEASURE = {name: calls for name, calls, _ in MEASURES}
"""Each measure's aggregate over usage_events, by name."""


@dataclass(frozen=True, slots=True)
class Filters:
    """Which events a report covers; every field narrows it."""

    start: datetime | None = None
    """Inclusive start (tz-aware)."""
    end: datetime | None = None
    """Exclusive end (tz-aware)."""
    team: str | None = None
    """Only this team."""
    workflow: str | None = None
    """Only this workflow."""
    model: str | None = None
    """Only this model."""
    customer: str | None = None
    """Only this customer."""
    user: str | None = None
    """Only this user."""

    def where(self) -> tuple[str, list[object]]:
        """SQL condition and its parameters."""
        clauses: list[str] = ["TRUE"]
        params: list[object] = []
        if self.start is not None:
            clauses.append("ts >= ?")
            params.append(utc_naive(self.start))
        if self.end is not None:
            clauses.append("ts < ?")
            params.append(utc_naive(self.end))
        for name in _FILTERED:
            value = getattr(self, name)
            if value is not None:
                clauses.append(f"{_COLUMN.get(name, name)} = ?")  # also a rollup column, for `spend_source`
                params.append(value)
        return " AND ".join(clauses), params


def _column(dimension: str) -> str:
    if dimension not in DIMENSIONS:
        raise ValueError(f"Unknown dimension {dimension!r}; choose from {', '.join(DIMENSIONS)}")
    return _COLUMN.get(dimension, dimension)


def group_keys(dimensions: Sequence[str], grain: str | None) -> list[str]:
    """`SELECT` expressions of the group: the period first, then each dimension under its own name."""
    keys = [f"{_COLUMN.get(d, d)} AS {d}" for d in dimensions]
    if grain is not None:
        keys.insert(0, f"date_trunc('{grain}', ts) AS period")
    return keys


def spend_source(
    ledger: Ledger, dimensions: Sequence[str] = (), *, grain: str | None = None, filters: Filters = Filters()
) -> str:
    """The table to read: the coarsest rollup that gives exactly the events' answer, else `EVENTS`."""
    if grain is not None and grain not in GRAINS:
        raise ValueError(f"Unknown grain {grain!r}; choose from {', '.join(GRAINS)}")
    columns = [_column(d) for d in dimensions]
    columns += [_COLUMN.get(f, f) for f in _FILTERED if getattr(filters, f) is not None]
    if not ledger.keeps_rollups or not set(columns) <= set(ROLLUP_KEY):
        return EVENTS
    for name, bucket in reversed(ROLLUPS.items()):  # coarsest first: fewest rows
        if grain is not None and _GRAIN_RANK[grain] < _GRAIN_RANK[bucket]:
            continue
        if all(_on_boundary(t, bucket) for t in (filters.start, filters.end) if t is not None):
            return name
    return EVENTS


def measures_sql(source: str) -> str:
    """The SELECT list of spend measures (cost, calls, unpriced, tokens) over `source`, from `spend_source`."""
    at = 1 if source == EVENTS else 2
    return ",\n".join(f"{m[at]} AS {m[0]}" for m in MEASURES)


def _on_boundary(moment: datetime, bucket: str) -> bool:
    """Whether a period bound falls between buckets, so a whole bucket is in or out."""
    t = utc_naive(moment)
    return t.minute == t.second == t.microsecond == 0 and (bucket == "hour" or t.hour == 0)


def spend_by(
    ledger: Ledger,
    dimensions: Sequence[str] = (),
    *,
    grain: str | None = None,
    filters: Filters = Filters(),
) -> pa.Table:
    """Cost, calls and tokens grouped by dimensions (and a time bucket), biggest cost first."""
    source = spend_source(ledger, dimensions, grain=grain, filters=filters)  # checks dimensions and grain
    keys = group_keys(dimensions, grain)  # a rollup's ts is its bucket's start
    where, params = filters.where()
    select_keys = ", ".join(keys) + ", " if keys else ""
    group = f"GROUP BY {', '.join(str(i + 1) for i in range(len(keys)))}" if keys else ""
    # the dimensions break ties between equal costs, so every backend returns the same order
    order = ("period, cost DESC" if grain is not None else "cost DESC") + "".join(f", {d}" for d in dimensions)
    sql = f"""
        SELECT {select_keys}
            {measures_sql(source)}
        FROM {source} WHERE {where} {group} ORDER BY {order}
    """
    return ledger.query(sql, params)


@dataclass(frozen=True, slots=True)
class Summary:
    """The headline numbers of a period."""

    cost: Decimal
    """Priced spend in USD."""
    events: int
    """Model calls."""
    unpriced_events: int
    """Calls without a known price (their cost is unknown, not zero)."""
    unpriced_tokens: int
    """Tokens of those calls."""
    unattributed_cost: Decimal
    """Spend with neither a user nor a team."""
    task_runs: int
    """Distinct task runs seen in the calls."""


def summary(ledger: Ledger, filters: Filters = Filters()) -> Summary:
    """Totals of a period, with unpriced and unattributed spend called out.

    Where the ledger keeps per-run totals the distinct task runs are counted from them (`run_totals`): a
    DISTINCT over 10M calls is the costly part of this report.
    """
    from tokenops.analytics.run_totals import call_totals  # run_totals builds on this module's Filters

    measures = [(name, EVENT_MEASURE[name]) for name in ("cost", "events", "unpriced_events", "unpriced_tokens")]
    unattributed = "coalesce(sum(cost_total) FILTER (WHERE user_id IS NULL AND team IS NULL), 0)::DECIMAL(38,12)"
    row = call_totals(ledger, [], filters, [*measures, ("unattributed_cost", unattributed)])[0]
    return Summary(
        cost=Decimal(str(row["cost"])),
        events=int(str(row["events"])),
        unpriced_events=int(str(row["unpriced_events"])),
        unpriced_tokens=int(str(row["unpriced_tokens"])),
        unattributed_cost=Decimal(str(row["unattributed_cost"])),
        task_runs=int(str(row["task_runs"])),
    )


def tokens_per_task(ledger: Ledger, *, quantile: float = 0.95, filters: Filters = Filters()) -> pa.Table:
    """Per workflow: task runs and the mean, median and `quantile` tokens per task run."""
    if not 0 < quantile < 1:
        raise ValueError(f"quantile must be between 0 and 1, got {quantile!r}")
    from tokenops.analytics.run_totals import per_run_sql  # run_totals builds on this module's Filters

    per_task, params = per_run_sql(ledger, ["workflow"], None, filters, status=False)
    sql = f"""
        WITH per_task AS ({per_task})
        SELECT workflow, count(*) AS task_runs,
               avg(tokens) AS mean_tokens,
               quantile_cont(tokens, 0.5) AS median_tokens,
               quantile_cont(tokens, {float(quantile)}) AS p_tokens,
               avg(cost)::DECIMAL(38,12) AS mean_cost
        FROM per_task GROUP BY workflow ORDER BY p_tokens DESC, workflow
    """
    return ledger.query(sql, params)
