"""The biggest spenders along several dimensions at once, in one scan of the ledger.

`spend_by` answers one dimension per query; a dashboard page that ranks workflows, models and
teams side by side would scan the ledger three times. `rankings` groups by GROUPING SETS, so
it reads the events once and returns each dimension's rows with the same columns as
`spend_by` (unpriced calls counted apart, never as $0).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tokenops.analytics.spend import DIMENSIONS, Filters
from tokenops.store import Ledger

_COLUMN = {"user": "user_id"}


@dataclass(frozen=True, slots=True)
class Ranking:
    """One dimension's largest groups."""

    rows: list[dict[str, object]]
    """Up to `top` groups, biggest cost first (ties by name), keyed like `spend_by`'s rows."""
    total: int
    """How many groups there are in all."""


def rankings(ledger: Ledger, dimensions: Sequence[str], filters: Filters, *, top: int = 25) -> dict[str, Ranking]:
    """For each dimension, its `top` groups by cost and how many groups exist."""
    for dimension in dimensions:
        if dimension not in DIMENSIONS:
            raise ValueError(f"Unknown dimension {dimension!r}; choose from {', '.join(DIMENSIONS)}")
    columns = [_COLUMN.get(d, d) for d in dimensions]
    where, params = filters.where()
    keys = ", ".join(f"{c} AS {d}, GROUPING({c}) AS g_{d}" for c, d in zip(columns, dimensions, strict=True))
    table = ledger.query(
        f"""
        SELECT {keys},
            coalesce(sum(cost_total), 0)::DECIMAL(38,12) AS cost,
            count(*) AS events,
            count(*) FILTER (WHERE unpriced) AS unpriced_events,
            coalesce(sum(input_tokens + output_tokens) FILTER (WHERE unpriced), 0) AS unpriced_tokens,
            coalesce(sum(input_tokens), 0) AS input_tokens,
            coalesce(sum(cache_read_tokens), 0) AS cache_read_tokens,
            coalesce(sum(output_tokens), 0) AS output_tokens,
            coalesce(sum(reasoning_tokens), 0) AS reasoning_tokens
        FROM usage_events WHERE {where}
        GROUP BY GROUPING SETS ({", ".join(f"({c})" for c in columns)})
        """,
        params,
    ).to_pylist()
    result = {}
    for dimension in dimensions:
        others = [d for d in dimensions if d != dimension]
        rows = [
            {k: v for k, v in row.items() if not k.startswith("g_") and k not in others}
            for row in table
            if row[f"g_{dimension}"] == 0
        ]
        rows.sort(key=lambda r: (-_cost(r), str(r[dimension])))
        result[dimension] = Ranking(rows[:top], len(rows))
    return result


def _cost(row: dict[str, object]) -> float:
    # sorting only: the exact Decimal stays in the row
    return float(str(row["cost"]))
