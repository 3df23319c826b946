"""The TokenOps KPIs: what a unit of work costs and how well it uses tokens, by any dimension.

One row per group (dimensions and an optional time bucket). Every definition is written from
ledger columns so it means the same on every backend (docs/analytics.md has them in full):

- **cost per completed task**: cost of every call (retries included) of task runs whose
  `task_runs.status` is `completed`, over those runs. A completed run with an unpriced call has
  an unknown cost: it is counted apart (`completed_runs_unpriced`), never at $0.
- **cache hit rate**: `cache_read_tokens / input_tokens` (provider prompt caching), and the
  share of calls tokenops' own cache answered (`status = 'cached'`).
- **retry**: a failed call (`status = 'error'`) of a task run that is not the run's last call,
  i.e. the run went on after it. Retry rate = retries / calls made in task runs.
- **iterations per task**: mean of `max(iteration)` over the runs that record iterations.
- **escalation**: a run escalates when one of its calls was served by a model with a higher list
  price than its `model_requested` (a router or fallback moved it up a tier); a dated snapshot of
  the requested alias has the same price and does not count.
- **business value**: outcome value / AI cost, outcomes credited through their linked task runs
  (or their own workflow, team or person); None when grouping or filtering by model or feature.

A run whose calls fall in several time buckets is counted in each. Ratios with a zero
denominator are None, never 0.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Literal, get_args

import pyarrow as pa

from tokenops.analytics.run_totals import has_run_totals, per_run_sql
from tokenops.analytics.spend import GRAINS, MEASURES, Filters, group_keys
from tokenops.events import TokenUsage
from tokenops.pricing import Priced, Pricer
from tokenops.store import Ledger
from tokenops.store.rows import utc_naive

KpiDimension = Literal["team", "user", "workflow", "model", "customer", "feature"]
KPI_DIMENSIONS: tuple[str, ...] = get_args(KpiDimension)
_COLUMN = {"user": "user_id"}
# where an outcome's group comes from: its own column, else its linked task run's
_OUTCOME_COLUMN = {"workflow": "workflow", "team": "team", "user": "person_id", "customer": None}

Key = tuple[object, ...]
AnomalousHours = Callable[[Ledger, Sequence[str], str | None, Filters], dict[Key, int]]
"""Hook for the anomaly detector: (ledger, dimensions, grain, filters) -> hours flagged anomalous
per group key (the group's values in `dimensions` order, the period first when there is a grain).
When given, `kpis` adds `hours`, `anomalous_hours` and `anomaly_rate`."""

EVERYTHING = Filters()
"""No filter: the whole ledger."""
_REFERENCE = TokenUsage(input_tokens=1_000_000, output_tokens=1_000_000)


def check_dimensions(dimensions: Sequence[str], grain: str | None) -> None:
    """Reject anything outside the closed sets before it could reach SQL text."""
    for d in dimensions:
        if d not in KPI_DIMENSIONS:
            raise ValueError(f"Unknown dimension {d!r}; choose from {', '.join(KPI_DIMENSIONS)}")
    if grain is not None and grain not in GRAINS:
        raise ValueError(f"Unknown grain {grain!r}; choose from {', '.join(GRAINS)}")


def _names(dimensions: Sequence[str], grain: str | None) -> list[str]:
    return (["period"] if grain is not None else []) + list(dimensions)


def _by(n: int) -> str:
    """GROUP BY the first n columns, returned in their order: rows tied on cost then sort alike on every backend."""
    columns = ", ".join(str(i + 1) for i in range(n))
    order = ", ".join(f"{i + 1} NULLS FIRST" for i in range(n))
    return f"GROUP BY {columns} ORDER BY {order}" if n else ""


def model_moves(
    ledger: Ledger, filters: Filters, pricer: Pricer, condition: str = "TRUE"
) -> list[tuple[str, str, Decimal, Decimal]]:
    """(requested, served, requested list price, served list price) of every priced pair of models where calls in
    `filters` (and `condition`) were served by another model than requested; prices are for a reference usage."""
    where, params = filters.where()
    rows = ledger.query_rows(
        f"""SELECT model_requested, model, max(provider) AS provider, max(ts) AS ts FROM usage_events
            WHERE {where} AND model_requested <> model AND {condition} GROUP BY model_requested, model""",
        params,
    )
    moves = []
    for row in rows:
        provider, requested, served = str(row["provider"]), str(row["model_requested"]), str(row["model"])
        ts = row["ts"]
        assert isinstance(ts, datetime)
        at = ts.replace(tzinfo=UTC)
        asked = pricer.price(requested, _REFERENCE, provider=provider, ts=at)
        got = pricer.price(served, _REFERENCE, provider=provider, ts=at)
        if isinstance(asked, Priced) and isinstance(got, Priced):
            moves.append((requested, served, asked.cost.total, got.cost.total))
    return moves


def escalation_pairs(ledger: Ledger, filters: Filters) -> list[tuple[str, str]]:
    """(requested, served) model pairs where the served model has a higher list price."""
    moves = model_moves(ledger, filters, Pricer())
    return [(requested, served) for requested, served, asked, got in moves if got > asked]


_CALL_SUMS = (
    *(("cached_input_tokens" if name == "cache_read_tokens" else name, calls) for name, calls, _ in MEASURES),
    ("tokenops_cache_hits", "count(*) FILTER (WHERE status = 'cached')"),
)
"""Per-call measures of a group (`spend.MEASURES`, and tokenops' own cache hits): each a sum, so sums of
per-(group, user, customer) sums give it too."""


def _calls_sql(dimensions: Sequence[str], grain: str | None, where: str, hours: bool) -> str:
    keys = group_keys(dimensions, grain)
    names = _names(dimensions, grain)
    if not hours and grain in (None, "week", "month"):
        # two steps: sums per group, user and customer (~10k rows at 10M calls), then per group, where the
        # distinct users and customers are cheap to count; one DISTINCT aggregate over the calls costs twice that
        own = [k for k in keys if not k.endswith((" AS user", " AS customer"))]
        inner = ", ".join([*own, "user_id AS _user", "customer AS _customer"])
        sums = ", ".join(f"{sql} AS {name}" for name, sql in _CALL_SUMS)
        outer = ", ".join(
            f"coalesce(sum({name}), 0){'::DECIMAL(38,12)' if name == 'cost' else ''} AS {name}"
            for name, _ in _CALL_SUMS
        )
        groups = ", ".join(str(i + 1) for i in range(len(own) + 2))
        picked = [f"_user AS {n}" if n == "user" else f"_customer AS {n}" if n == "customer" else n for n in names]
        return f"""
            SELECT {"".join(k + ", " for k in picked)} {outer},
                count(DISTINCT _user) AS users,
                count(DISTINCT _customer) AS customers,
                coalesce(sum(cost) FILTER (WHERE _customer IS NOT NULL), 0)::DECIMAL(38,12) AS customer_cost
            FROM (SELECT {inner}, {sums} FROM usage_events WHERE {where} GROUP BY {groups}) c {_by(len(names))}
        """
    hour_count = ", count(DISTINCT date_trunc('hour', ts)) AS hours" if hours else ""
    return f"""
        SELECT {"".join(k + ", " for k in keys)}
            {", ".join(f"{sql} AS {name}" for name, sql in _CALL_SUMS)},
            count(DISTINCT user_id) AS users,
            count(DISTINCT customer) AS customers,
            coalesce(sum(cost_total) FILTER (WHERE customer IS NOT NULL), 0)::DECIMAL(38,12) AS customer_cost
            {hour_count}
        FROM usage_events WHERE {where} {_by(len(keys))}
    """


def _runs_sql(dimensions: Sequence[str], grain: str | None, per_run: str, quantile: float | None = None) -> str:
    """Per-run KPIs per group over `per_run` (`run_totals.per_run_sql`: one row per group and task run)."""
    names = _names(dimensions, grain)
    # the distribution of tokens per run, as `spend.tokens_per_task` computes it, from the same per-run rows
    spread = (
        f"""avg(r.tokens) AS mean_tokens, quantile_cont(r.tokens, 0.5) AS median_tokens,
            quantile_cont(r.tokens, {float(quantile)}) AS p_tokens, avg(r.cost)::DECIMAL(38,12) AS mean_cost,"""
        if quantile is not None
        else ""
    )
    done = "r.status = 'completed'"
    return f"""
        SELECT {"".join(f"r.{n}, " for n in names)}
            {spread}
            count(*) AS task_runs,
            sum(r.calls) AS run_calls,
            sum(r.tokens) AS run_tokens,
            sum(r.errors - r.ends_in_error) AS retries,
            coalesce(sum(r.iterations), 0) AS iteration_sum,
            count(r.iterations) AS iteration_runs,
            count(*) FILTER (WHERE {done}) AS completed_runs,
            count(*) FILTER (WHERE {done} AND r.unpriced_calls > 0) AS completed_runs_unpriced,
            coalesce(sum(r.cost) FILTER (WHERE {done} AND r.unpriced_calls = 0), 0)::DECIMAL(38,12) AS completed_cost
        FROM ({per_run}) r
        {_by(len(names))}
    """


def _runs(
    ledger: Ledger,
    dimensions: Sequence[str],
    grain: str | None,
    filters: Filters,
    pairs: list[tuple[str, str]],
    quantile: float | None,
    totals: bool,
) -> list[dict[str, object]]:
    """Per-run KPIs per group (whole runs from their stored totals, the others from their calls), and escalation.

    A run escalates in a group when one of its calls there is an escalated pair: counted from those calls alone.
    `totals` is the report's `run_totals.has_run_totals` answer.
    """
    per_run, params = per_run_sql(ledger, dimensions, grain, filters, totals=totals)
    runs = ledger.query_rows(_runs_sql(dimensions, grain, per_run, quantile), params)
    if not pairs:
        return runs
    where, call_params = filters.where()
    escalated = " OR ".join(["(model_requested = ? AND model = ?)"] * len(pairs))
    keys = group_keys(dimensions, grain)
    sql = f"""SELECT {"".join(k + ", " for k in keys)} count(DISTINCT task_run_id) AS escalated_runs
        FROM usage_events WHERE {where} AND task_run_id IS NOT NULL AND ({escalated}) {_by(len(keys))}"""
    names = _names(dimensions, grain)
    merged: dict[Key, dict[str, object]] = {tuple(row[n] for n in names): row for row in runs}
    for row in ledger.query_rows(sql, [*call_params, *sum(pairs, ())]):
        merged.setdefault(tuple(row[n] for n in names), {n: row[n] for n in names})["escalated_runs"] = row[
            "escalated_runs"
        ]
    return list(merged.values())


def _credit(d: str, own_only: bool) -> str:
    """The group value of an outcome: its own column, else its linked task run's."""
    own, run = _OUTCOME_COLUMN[d], f"t.{_COLUMN.get(d, d)}"
    if own_only:  # an outcome has no customer column: that part is empty (WHERE FALSE)
        return f"o.{own}" if own else "NULL"
    return f"coalesce(o.{own}, {run})" if own else run


def outcome_value_sql(
    dimensions: Sequence[str], grain: str | None, filters: Filters, *, totals: bool = False
) -> tuple[str, list[object]]:
    """Outcome value and count per group: outcomes in the period, each counted once per group it reaches.

    Outcomes that carry every column the report needs skip the join through their task runs (the
    costly part on big ledgers); the others go through it. When every column comes from the runs
    (by customer), each outcome's distinct run values are taken from its links alone, before its
    own row joins them: the DISTINCT is narrower and the result the same (an outcome id is a key).
    When the ledger keeps `outcome_credit` current (`totals`: the report's `has_run_totals` answer),
    those distinct values are read from it, with no join at all.
    """
    needed = [*dimensions, *(d for d in ("team", "workflow", "customer", "user") if getattr(filters, d) is not None)]
    complete = " AND ".join(f"o.{_OUTCOME_COLUMN[d]} IS NOT NULL" for d in needed if _OUTCOME_COLUMN[d])
    if any(_OUTCOME_COLUMN[d] is None for d in needed):
        complete = "FALSE"
    complete = complete or "TRUE"
    run_only = bool(needed) and all(_OUTCOME_COLUMN[d] is None for d in needed)
    if run_only and totals:
        return _credited_sql(dimensions, grain, filters)

    def part(own_only: bool) -> tuple[str, list[object]]:
        keys = [f"{_credit(d, own_only)} AS {d}" for d in dimensions]
        if grain is not None:
            keys.insert(0, f"date_trunc('{grain}', o.ts) AS period")
        clauses = [complete if own_only else f"NOT ({complete})"]
        params: list[object] = []
        for name, clause in (("start", "o.ts >= ?"), ("end", "o.ts < ?")):
            if getattr(filters, name) is not None:
                clauses.append(clause)
                params.append(utc_naive(getattr(filters, name)))
        for d in ("team", "workflow", "customer", "user"):
            if getattr(filters, d) is not None:
                clauses.append(f"{_credit(d, own_only)} = ?")
                params.append(getattr(filters, d))
        joins = (
            ""
            if own_only
            else """LEFT JOIN outcome_task_runs l ON l.outcome_id = o.outcome_id
            LEFT JOIN task_runs t ON t.task_run_id = l.task_run_id"""
        )
        distinct = "" if own_only else "DISTINCT "
        if run_only and not own_only:
            columns = "".join(f", t.{c}" for c in dict.fromkeys(_COLUMN.get(d, d) for d in needed))
            joins = f"""LEFT JOIN (SELECT DISTINCT l.outcome_id{columns} FROM outcome_task_runs l
                LEFT JOIN task_runs t ON t.task_run_id = l.task_run_id) t ON t.outcome_id = o.outcome_id"""
            distinct = ""
        select = f"SELECT {distinct}o.outcome_id, o.value{''.join(', ' + k for k in keys)}"
        return f"{select} FROM outcomes o {joins} WHERE {' AND '.join(clauses)}", params

    (own_sql, own_params), (run_sql, run_params) = part(True), part(False)
    names = _names(dimensions, grain)
    sql = f"""
        WITH credited AS ({own_sql} UNION ALL {run_sql})
        SELECT {"".join(n + ", " for n in names)} count(*) AS outcomes,
               coalesce(sum(value), 0)::DECIMAL(38,12) AS outcome_value
        FROM credited {_by(len(names))}
    """
    return sql, [*own_params, *run_params]


def _credited_sql(dimensions: Sequence[str], grain: str | None, filters: Filters) -> tuple[str, list[object]]:
    """`outcome_value_sql` by customer from `outcome_credit`: one row per outcome and customer its runs reach.

    Only the period and the customer can narrow it (the caller's `run_only`); outcomes have no model.
    """
    keys = group_keys(dimensions, grain)
    where, params = replace(filters, model=None).where()
    sql = f"""SELECT {"".join(k + ", " for k in keys)} count(*) AS outcomes,
               coalesce(sum(value), 0)::DECIMAL(38,12) AS outcome_value
        FROM outcome_credit WHERE {where} {_by(len(keys))}"""
    return sql, params


MONEY = pa.decimal128(38, 12)
_SPREAD = ("mean_tokens", "median_tokens", "p_tokens", "mean_cost")
"""The tokens-per-run distribution columns `kpis(run_quantile=...)` adds."""
_PICO = Decimal("1e-12")
_COUNTS = ("events", "unpriced_events", "unpriced_tokens", "input_tokens", "cached_input_tokens", "output_tokens",
           "reasoning_tokens", "tokenops_cache_hits", "users", "customers", "task_runs", "completed_runs",
           "completed_runs_unpriced", "retries", "escalated_runs", "outcomes")  # fmt: skip


def money(value: Decimal | None) -> Decimal | None:
    """Rounded to the ledger's 10^-12 USD so it fits a DECIMAL(38,12) column."""
    return None if value is None else value.quantize(_PICO)


def ratio(num: float | int | Decimal, den: float | int | Decimal) -> float | None:
    """A share or a multiple; None when the denominator is zero."""
    return float(num) / float(den) if den else None


def per(cost: Decimal, count: int | Decimal) -> Decimal | None:
    """Exact money per unit, rounded to 10^-12 USD; None when there are no units."""
    return money(cost / Decimal(count)) if count else None


def kpis(
    ledger: Ledger,
    dimensions: Sequence[str] = ("workflow",),
    *,
    grain: str | None = None,
    filters: Filters = EVERYTHING,
    anomalous_hours: AnomalousHours | None = None,
    run_quantile: float | None = None,
) -> pa.Table:
    """Every TokenOps KPI per group of `dimensions` (and `grain` bucket), costliest first.

    `run_quantile` adds the distribution of tokens per task run (`mean_tokens`, `median_tokens`,
    `p_tokens` at that quantile, `mean_cost`): the numbers of `spend.tokens_per_task`, from the
    same pass over the calls, for pages that show both (grouping 10M calls by run is the costly part).
    """
    check_dimensions(dimensions, grain)
    if run_quantile is not None and not 0 < run_quantile < 1:
        raise ValueError(f"quantile must be between 0 and 1, got {run_quantile!r}")
    where, params = filters.where()
    names = _names(dimensions, grain)
    totals = has_run_totals(ledger)  # asked once for the runs and the outcomes
    calls = ledger.query_rows(_calls_sql(dimensions, grain, where, anomalous_hours is not None), params)
    runs = _runs(ledger, dimensions, grain, filters, escalation_pairs(ledger, filters), run_quantile, totals)
    value_dims = not {"model", "feature"} & set(dimensions) and filters.model is None
    values: list[dict[str, object]] = []
    if value_dims:
        sql, value_params = outcome_value_sql(dimensions, grain, filters, totals=totals)
        values = ledger.query_rows(sql, value_params)
    by_key: dict[Key, dict[str, object]] = {}
    for table in (calls, runs, values):
        for row in table:
            by_key.setdefault(tuple(row[n] for n in names), {}).update(row)
    flagged = anomalous_hours(ledger, dimensions, grain, filters) if anomalous_hours else None
    rows = [_kpi_row(row, names, value_dims, flagged, key) for key, row in by_key.items()]
    if run_quantile is not None:
        for row, source in zip(rows, by_key.values(), strict=True):
            row.update({n: source.get(n) for n in _SPREAD})
    # ties (groups with the same cost) in a fixed order, not the order the queries happened to return
    rows.sort(key=lambda r: [(v is not None, str(v)) for v in (r[n] for n in dimensions)])
    rows.sort(key=lambda r: (r["period"] if grain else 0, -(r["cost"] or 0)))  # type: ignore[operator]
    schema = _schema(dimensions, grain, value_dims, flagged is not None)
    if run_quantile is not None:
        schema = pa.schema([*schema, *(pa.field(n, pa.float64()) for n in _SPREAD[:3]), pa.field("mean_cost", MONEY)])
    return pa.Table.from_pylist(rows, schema=schema)


def _kpi_row(
    row: dict[str, object], names: list[str], value_dims: bool, flagged: dict[Key, int] | None, key: Key
) -> dict[str, object]:
    def count(name: str) -> int:
        value = row.get(name)
        return int(str(value)) if value is not None else 0

    def usd(name: str) -> Decimal:
        value = row.get(name)
        return Decimal(str(value)) if value is not None else Decimal(0)

    cost, events, run_calls = usd("cost"), count("events"), count("run_calls")
    out: dict[str, object] = {n: row[n] for n in names}
    out.update({n: count(n) for n in _COUNTS if n != "outcomes"})
    out["cost"] = money(cost)
    out["input_output_ratio"] = ratio(count("input_tokens"), count("output_tokens"))
    out["cache_hit_rate"] = ratio(count("cached_input_tokens"), count("input_tokens"))
    out["tokenops_cache_hit_rate"] = ratio(count("tokenops_cache_hits"), events)
    out["tokens_per_task"] = ratio(count("run_tokens"), count("task_runs"))
    out["cost_per_completed_task"] = per(
        usd("completed_cost"), count("completed_runs") - count("completed_runs_unpriced")
    )
    out["retry_rate"] = ratio(count("retries"), run_calls)
    out["iterations_per_task"] = ratio(count("iteration_sum"), count("iteration_runs"))
    out["escalation_rate"] = ratio(count("escalated_runs"), count("task_runs"))
    out["cost_per_user"] = per(cost, count("users"))
    out["cost_per_customer"] = per(usd("customer_cost"), count("customers"))
    if value_dims:
        out["outcomes"] = count("outcomes")
        out["outcome_value"] = money(usd("outcome_value"))
        out["value_per_cost"] = money(usd("outcome_value") / cost) if cost else None
    if flagged is not None:
        out["hours"] = count("hours")
        out["anomalous_hours"] = flagged.get(key, 0)
        out["anomaly_rate"] = ratio(flagged.get(key, 0), count("hours"))
    return out


def _schema(dimensions: Sequence[str], grain: str | None, value_dims: bool, anomalies: bool) -> pa.Schema:
    fields = [pa.field("period", pa.timestamp("us"))] if grain else []
    fields += [pa.field(d, pa.string()) for d in dimensions]
    fields += [pa.field("cost", MONEY), pa.field("cost_per_completed_task", MONEY)]
    fields += [pa.field(n, pa.int64()) for n in _COUNTS if n != "outcomes"]
    floats = ("input_output_ratio", "cache_hit_rate", "tokenops_cache_hit_rate", "tokens_per_task", "retry_rate",
              "iterations_per_task", "escalation_rate")  # fmt: skip
    fields += [pa.field(n, pa.float64()) for n in floats]
    fields += [pa.field("cost_per_user", MONEY), pa.field("cost_per_customer", MONEY)]
    if value_dims:
        fields += [
            pa.field("outcomes", pa.int64()),
            pa.field("outcome_value", MONEY),
            pa.field("value_per_cost", MONEY),
        ]
    if anomalies:
        fields += [pa.field(n, pa.int64()) for n in ("hours", "anomalous_hours")] + [
            pa.field("anomaly_rate", pa.float64())
        ]
    return pa.schema(fields)
