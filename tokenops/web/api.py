"""`/api/...`: the ledger's numbers as JSON, filtered the same way everywhere.

Every read route needs a signed-in dashboard user or an admin key, and is limited to what that
caller may see (`tokenops.web.access.scoped_filters`: a team lead gets only their team).
"""

from __future__ import annotations

import dataclasses

from starlette.requests import Request
from starlette.routing import Route

from tokenops.analytics.spend import spend_by, summary, tokens_per_task
from tokenops.store import Ledger
from tokenops.store.rows import event_row
from tokenops.web.access import filters_from, parse_time, scoped_filters
from tokenops.web.api_cache import cached_ledger
from tokenops.web.responses import JSON, error

_time = parse_time  # the name other API modules import


def _ledger(request: Request) -> Ledger:
    return cached_ledger(request)


def api_summary(request: Request) -> JSON:
    """Headline totals: spend, calls, unpriced and unattributed."""
    try:
        result = summary(_ledger(request), scoped_filters(request))
    except ValueError as exc:
        return error(400, str(exc))
    return JSON(dataclasses.asdict(result))


def api_spend(request: Request) -> JSON:
    """Spend grouped by `by=team,model` and optional `grain=day`."""
    by = [d for d in request.query_params.get("by", "").split(",") if d]
    try:
        table = spend_by(
            _ledger(request),
            by,
            grain=request.query_params.get("grain") or None,
            filters=scoped_filters(request),
        )
    except ValueError as exc:
        return error(400, str(exc))
    return JSON({"by": by, "rows": table})


def api_tokens_per_task(request: Request) -> JSON:
    """Token distribution per task run, by workflow."""
    try:
        quantile = float(request.query_params.get("quantile", "0.95"))
        table = tokens_per_task(_ledger(request), quantile=quantile, filters=scoped_filters(request))
    except ValueError as exc:
        return error(400, str(exc))
    return JSON({"rows": table})


def api_events(request: Request) -> JSON:
    """The latest calls matching the filters (`limit` <= 1000)."""
    try:
        limit = min(int(request.query_params.get("limit", "50")), 1000)
        where, params = scoped_filters(request).where()
    except ValueError as exc:
        return error(400, str(exc))
    events = _ledger(request).events(where, params, limit=limit)
    return JSON({"events": [event_row(e) for e in events]})


routes = [
    Route("/api/summary", api_summary),
    Route("/api/spend", api_spend),
    Route("/api/tokens-per-task", api_tokens_per_task),
    Route("/api/events", api_events),
]

__all__ = ["filters_from", "routes"]
