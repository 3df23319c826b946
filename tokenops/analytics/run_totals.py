"""Which task runs a report can read from `task_run_totals`, and which it must take from their calls.

Per-run KPIs need every call grouped by `task_run_id` (issue 7: 4M runs in 10M calls). The ledger
keeps one row of totals per run (`tokenops.store.schema.TASK_RUN_TOTALS`); a report reads a run
from it when the run is *whole* for that report: its calls agree on the report's dimensions, fall
in one time bucket and lie entirely inside the period. Every other run that has calls in the period
is *split* and is grouped from its calls as before; the two parts cover disjoint runs, so their
sums add up to exactly what grouping every call would give.

Backends that do not keep the totals (`has_run_totals` false) read every run from its calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tokenops.analytics.read_cache import uncached
from tokenops.analytics.spend import Filters
from tokenops.store import DuckDBLedger, Ledger
from tokenops.store.rows import utc_naive

RUN_COLUMNS = {"workflow": "workflow", "team": "team", "user": "user_id", "customer": "customer", "feature": "feature"}
"""Report dimensions a run's totals carry (a run has one model only by chance: `model` is not here)."""


def has_run_totals(ledger: Ledger) -> bool:
    """Whether the backend keeps `task_run_totals` as a table, up to date as calls arrive.

    Since m003 it is a view on every backend: each read groups every call by run again (with a
    min/max of five text columns per run), so the whole/split plan below would group 10M calls
    three times where grouping them once, straight from the calls, is several times cheaper.
    """
    ledger = uncached(ledger)
    if not isinstance(ledger, DuckDBLedger):
        return False
    rows = ledger.query_rows("SELECT table_type FROM information_schema.tables WHERE table_name = 'task_run_totals'")
    return bool(rows) and rows[0]["table_type"] == "BASE TABLE"


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


def usable(ledger: Ledger, dimensions: Sequence[str], filters: Filters) -> bool:
    """Whether the report can use the run totals at all (every dimension and filter is per run)."""
    return has_run_totals(ledger) and filters.model is None and all(d in RUN_COLUMNS for d in dimensions)


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
        whole.append(f"date_trunc('{grain}', first_ts) = date_trunc('{grain}', last_ts)")
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


def split_runs(ledger: Ledger, split: RunSplit) -> bool:
    """Whether any run must be grouped from its calls."""
    rows = ledger.query_rows(
        f"SELECT EXISTS (SELECT 1 FROM task_run_totals WHERE {split.split}) AS any", split.split_params
    )
    return bool(rows[0]["any"])
