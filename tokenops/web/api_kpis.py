"""`/api/kpis` and `/api/cost-per-outcome[/variance]`: unit economics as JSON, money exact.

Time windows are `since` / `until` (ISO 8601, UTC unless a zone is given; `start` / `end` work
too); the other filters (`team`, `workflow`, `model`, `customer`, `user`) are those of /api/spend.
"""

from __future__ import annotations

import dataclasses

from starlette.requests import Request
from starlette.routing import Route

from tokenops.analytics.kpis import kpis
from tokenops.analytics.spend import Filters
from tokenops.analytics.unit_economics import cost_per_outcome, outcome_variance, variance_table
from tokenops.store import Ledger
from tokenops.web.access import scoped_filters
from tokenops.web.api import _time
from tokenops.web.api_cache import cached_ledger
from tokenops.web.responses import JSON, error


def _ledger(request: Request) -> Ledger:
    return cached_ledger(request)


def _filters(request: Request, since: str = "since", until: str = "until") -> Filters:
    q = request.query_params
    base = scoped_filters(request)
    start = _time(q.get(since), since)
    end = _time(q.get(until), until)
    return dataclasses.replace(
        base, start=start if start is not None else base.start, end=end if end is not None else base.end
    )


def api_kpis(request: Request) -> JSON:
    """Every KPI grouped by `by=workflow,team` (default workflow) and optional `grain=day`."""
    by = [d for d in request.query_params.get("by", "workflow").split(",") if d]
    grain = request.query_params.get("grain") or None
    try:
        table = kpis(_ledger(request), by, grain=grain, filters=_filters(request))
    except ValueError as exc:
        return error(400, str(exc))
    return JSON({"by": by, "grain": grain, "rows": table})


def api_cost_per_outcome(request: Request) -> JSON:
    """Cost per outcome and its three levers by `by=workflow|team|user|customer`."""
    by = request.query_params.get("by", "workflow")
    try:
        table = cost_per_outcome(_ledger(request), by, _filters(request))
    except ValueError as exc:
        return error(400, str(exc))
    return JSON({"by": by, "rows": table})


def api_outcome_variance(request: Request) -> JSON:
    """Which lever moved cost per outcome between `a_since..a_until` and `b_since..b_until`."""
    q = request.query_params
    by = q.get("by", "workflow")
    missing = [name for name in ("a_since", "a_until", "b_since", "b_until") if not q.get(name)]
    if missing:
        return error(400, f"give both periods: {', '.join(missing)} missing (ISO 8601 dates)")
    try:
        a = _filters(request, "a_since", "a_until")
        b = _filters(request, "b_since", "b_until")
        variances, undefined = outcome_variance(_ledger(request), a, b, by)
    except ValueError as exc:
        return error(400, str(exc))
    return JSON({"by": by, "rows": variance_table(variances, by), "undefined": undefined})


routes = [
    Route("/api/kpis", api_kpis),
    Route("/api/cost-per-outcome", api_cost_per_outcome),
    Route("/api/cost-per-outcome/variance", api_outcome_variance),
]
