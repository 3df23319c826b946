"""Which task runs a report can read from `task_run_totals`, and which it must take from their calls.

Per-run KPIs need every call grouped by `task_run_id` (issue 7: 4M runs in 10M calls). The ledger
keeps one row of totals per run (`tokenops.store.schema.TASK_RUN_TOTALS`); a report reads a run
from it when the run is *whole* for that report: its calls agree on the report's dimensions, fall
in one time bucket and lie entirely inside the period. Every other run that has calls in the period
is *split* and is grouped from its calls as before; the two parts cover disjoint runs, so their
sums add up to exactly what grouping every call would give. `per_run_sql` writes both parts as one
row per (group, run), so quantiles and distinct counts over runs come out exactly as well.

Backends that do not keep the totals (`has_run_totals` false) read every run from its calls.
Asking is not free (it may catch the totals up), so a report asks once, at its start, and passes
the answer down (`totals=`) to every query it writes; the next report asks again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tokenops.analytics.read_cache import uncached
from tokenops.analytics.spend import Filters, group_keys
from tokenops.store import DuckDBLedger, Ledger
from tokenops.store.rows import utc_naive

RUN_COLUMNS = {"workflow": "workflow", "team": "team", "user": "user_id", "customer": "customer", "feature": "feature"}
"""Report dimensions a run's totals carry (a run has one model only by chance: `model` is not here)."""


def has_run_totals(ledger: Ledger) -> bool:
    """Whether the backend keeps `task_run_totals` as a table and it is current (caught up now if it can be).

    On DuckDB it is a table kept by the ledger (m005); elsewhere a view that groups every call by run
    again on each read, so the whole/split plan below would group 10M calls three times where grouping
    them once, straight from the calls, is several times cheaper. A read-only DuckDB ledger whose totals
    are behind its calls reads the calls too.
    """
    ledger = uncached(ledger)
    return isinstance(ledger, DuckDBLedger) and ledger.sync_run_totals()


@dataclass(frozen=True, slots=True)
class RunSplit:
    """SQL conditions over `task_run_totals` for one report."""

    whole: str
    """Runs read from their totals (the report's filters applied)."""
    whole_params: list[object]
    """Parameters of `whole`."""
    split: str
    """Runs with calls in the period that must be grouped from their calls."""
    split_params: list[object]
    """Parameters of `split`."""


def usable(ledger: Ledger, dimensions: Sequence[str], filters: Filters, *, totals: bool | None = None) -> bool:
    """Whether the report can use the run totals at all (every dimension and filter is per run).

    `totals` is `has_run_totals(ledger)` when the report has already asked; None asks now.
    """
    current = has_run_totals(ledger) if totals is None else totals
    return current and filters.model is None and all(d in RUN_COLUMNS for d in dimensions)


def run_split(dimensions: Sequence[str], grain: str | None, filters: Filters) -> RunSplit:
    """The whole and the split runs of a report by `dimensions`, `grain` bucket and `filters`."""
    inside: list[str] = []
    overlap: list[str] = []
    inside_params: list[object] = []
    overlap_params: list[object] = []
    if filters.start is not None:
        inside.append("first_ts >= ?")
        overlap.append("last_ts >= ?")
        inside_params.append(utc_naive(filters.start))
        overlap_params.append(utc_naive(filters.start))
    if filters.end is not None:
        inside.append("last_ts < ?")
        overlap.append("first_ts < ?")
        inside_params.append(utc_naive(filters.end))
        overlap_params.append(utc_naive(filters.end))
    # `mixed` covers every run dimension, so a run whose team varies is split even by workflow
    whole = ["NOT mixed", *inside]
    if grain is not None:
        # in one bucket: first_ts (<= last_ts) is not before the start of last_ts's bucket; one date_trunc per run
        # instead of two, over every run
        whole.append(f"first_ts >= date_trunc('{grain}', last_ts)")
    whole_sql = " AND ".join(whole)
    dims: list[str] = []
    dim_params: list[object] = []
    for name in ("team", "workflow", "customer", "user"):
        value = getattr(filters, name)
        if value is not None:
            dims.append(f"{RUN_COLUMNS[name]} = ?")
            dim_params.append(value)
    return RunSplit(
        whole=" AND ".join([whole_sql, *dims]),
        whole_params=[*inside_params, *dim_params],
        split=" AND ".join([*overlap, f"NOT ({whole_sql})"]),
        split_params=[*overlap_params, *inside_params],
    )


# per-run measure: (name, from a `task_run_totals` row, from a run's calls when grouped); the same SQL types both
# ways (`tokens` as HUGEINT, which a sum of BIGINT calls is), so aggregates over the union equal those over the calls
RUN_MEASURES: tuple[tuple[str, str, str], ...] = (
    ("cost", "cost", "CAST(sum(cost_total) AS DECIMAL(38,12))"),
    ("calls", "calls", "count(*)"),
    ("unpriced_calls", "unpriced_calls", "count(*) FILTER (WHERE unpriced)"),
    ("tokens", "CAST(tokens AS HUGEINT)", "sum(input_tokens + output_tokens)"),
    ("errors", "errors", "count(*) FILTER (WHERE status = 'error')"),
    (
        "ends_in_error",
        "CASE WHEN last_error_ts = last_ts THEN 1 ELSE 0 END",
        "CASE WHEN max(ts) FILTER (WHERE status = 'error') = max(ts) THEN 1 ELSE 0 END",
    ),
    ("iterations", "max_iteration", "max(iteration)"),
)
"""What `per_run_sql` gives of each run, besides its group, `task_run_id` and `status`."""


def per_run_sql(
    ledger: Ledger,
    dimensions: Sequence[str],
    grain: str | None,
    filters: Filters,
    *,
    status: bool = True,
    extra: Sequence[tuple[str, str, str]] = (),
    totals: bool | None = None,
) -> tuple[str, list[object]]:
    """One row per (group, task run) of the calls in `filters`: the group, `task_run_id`, `RUN_MEASURES` and
    (with `status`) the run's `task_runs.status`; `extra` adds measures written as `RUN_MEASURES` are.

    Whole runs come from `task_run_totals`, the others from grouping their calls; without the totals
    (`usable` false) every run is grouped from its calls, as reports always did. Group columns are named
    after `dimensions` (`period` first with a grain). `totals` is the report's `has_run_totals` answer.
    """
    where, params = filters.where()
    keys = group_keys(dimensions, grain)
    measures = ", ".join(f"{calls} AS {name}" for name, _, calls in (*RUN_MEASURES, *extra))
    group = ", ".join(str(i + 1) for i in range(len(keys) + 1))

    def from_calls(condition: str, runs: str = "task_runs") -> str:
        grouped = f"""SELECT {"".join(k + ", " for k in keys)} task_run_id, {measures}
            FROM usage_events WHERE {condition} AND task_run_id IS NOT NULL GROUP BY {group}"""
        if not status:
            return grouped
        return f"SELECT g.*, t.status FROM ({grouped}) g LEFT JOIN {runs} t ON t.task_run_id = g.task_run_id"

    if not usable(ledger, dimensions, filters, totals=totals):
        return from_calls(where), params
    split = run_split(dimensions, grain, filters)
    whole_keys = [f"{RUN_COLUMNS[d]} AS {d}" for d in dimensions]
    if grain is not None:
        whole_keys.insert(0, f"date_trunc('{grain}', first_ts) AS period")
    stored = ", ".join(f"{total} AS {name}" for name, total, _ in (*RUN_MEASURES, *extra))
    whole = f"""SELECT {"".join(k + ", " for k in whole_keys)} task_run_id, {stored}{", status" if status else ""}
        FROM task_run_totals WHERE {split.whole}"""
    found = ledger.query_rows(
        f"""SELECT task_run_id, first_ts, last_ts, status FROM task_run_totals
            WHERE {split.split} LIMIT {LISTED_SPLITS + 1}""",
        split.split_params,
    )
    if not found:
        return whole, split.whole_params
    if len(found) > LISTED_SPLITS:
        only = f"{where} AND task_run_id IN (SELECT task_run_id FROM task_run_totals WHERE {split.split})"
        return f"{whole} UNION ALL {from_calls(only)}", [*split.whole_params, *params, *split.split_params]
    # a few runs: named, with their time spans, which DuckDB prunes the calls' row groups by, and their statuses
    # as the totals hold them (current: `has_run_totals`), given as values rather than scanning every task run
    ids, marks = [r["task_run_id"] for r in found], ", ".join(["?"] * len(found))
    spans = " OR ".join(["(ts >= ? AND ts <= ?)"] * len(found))
    only = f"{where} AND task_run_id IN ({marks}) AND ({spans})"
    statuses = ", ".join(["(?, CAST(? AS VARCHAR))"] * len(found))
    runs = f"(SELECT * FROM (VALUES {statuses}) AS s(task_run_id, status))"
    named = [v for r in found for v in (r["task_run_id"], r["status"])] if status else []
    listed = [*ids, *(t for r in found for t in (r["first_ts"], r["last_ts"])), *named]
    return f"{whole} UNION ALL {from_calls(only, runs)}", [*split.whole_params, *params, *listed]


def call_totals(
    ledger: Ledger,
    dimensions: Sequence[str],
    filters: Filters,
    measures: Sequence[tuple[str, str]],
    *,
    totals: bool | None = None,
) -> list[dict[str, object]]:
    """Per group of `dimensions` (in their order), the `measures` (name, aggregate over usage_events) of the calls
    in `filters` and `task_runs`, the distinct task runs of those calls.

    The runs are counted from their stored totals where the report can use them (`usable`): a DISTINCT over 10M
    calls is the costly part of a report that needs no other per-run number. `totals` is as in `per_run_sql`.
    """
    columns = ", ".join(str(i + 1) for i in range(len(dimensions)))
    runs: dict[tuple[object, ...], int] | None = None
    if usable(ledger, dimensions, filters, totals=totals):
        per_run, run_params = per_run_sql(ledger, dimensions, None, filters, status=False, totals=True)
        group = f"GROUP BY {columns}" if dimensions else ""
        found = ledger.query_rows(
            f"SELECT {''.join(f'r.{d}, ' for d in dimensions)}count(*) AS task_runs FROM ({per_run}) r {group}",
            run_params,
        )
        runs = {tuple(row[d] for d in dimensions): int(str(row["task_runs"])) for row in found}
    distinct = [("task_runs", "count(DISTINCT task_run_id)")] if runs is None else []
    select = ", ".join([*group_keys(dimensions, None), *(f"{sql} AS {name}" for name, sql in (*measures, *distinct))])
    where, params = filters.where()
    group = f"GROUP BY {columns} ORDER BY {columns}" if dimensions else ""
    rows = ledger.query_rows(f"SELECT {select} FROM usage_events WHERE {where} {group}", params)
    if runs is not None:
        for row in rows:
            row["task_runs"] = runs.get(tuple(row[d] for d in dimensions), 0)
    return rows


LISTED_SPLITS = 500
"""Split runs named in the calls' query (with their time spans); more are selected by a subquery."""
