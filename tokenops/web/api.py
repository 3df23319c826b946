"""`/api/...`: the ledger's numbers as JSON, filtered the same way everywhere."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from starlette.requests import Request
from starlette.routing import Route

from tokenops.analytics.spend import Filters, spend_by, summary, tokens_per_task
from tokenops.store import Ledger
from tokenops.store.rows import event_row
from tokenops.web.responses import JSON, error


def _ledger(request: Request) -> Ledger:
    ledger: Ledger = request.app.state.ledger
    return ledger


def _time(value: str | None, name: str) -> datetime | None:
    if value is None or value == "":
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"{name}={value!r} is not an ISO 8601 date or time") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def filters_from(request: Request) -> Filters:
    """Filters from the query string (`start`, `end`, `team`, `workflow`, `model`, `customer`, `user`)."""
    q = request.query_params
    return Filters(
        start=_time(q.get("start"), "start"),
        end=_time(q.get("end"), "end"),
        team=q.get("team") or None,
        workflow=q.get("workflow") or None,
        model=q.get("model") or None,
        customer=q.get("customer") or None,
        user=q.get("user") or None,
    )


async def api_summary(request: Request) -> JSON:
    """Headline totals: spend, calls, unpriced and unattributed."""
    try:
        result = summary(_ledger(request), filters_from(request))
    except ValueError as exc:
        return error(400, str(exc))
    return JSON(dataclasses.asdict(result))


async def api_spend(request: Request) -> JSON:
    """Spend grouped by `by=team,model` and optional `grain=day`."""
    by = [d for d in request.query_params.get("by", "").split(",") if d]
    try:
        table = spend_by(
            _ledger(request),
            by,
            grain=request.query_params.get("grain") or None,
            filters=filters_from(request),
        )
    except ValueError as exc:
        return error(400, str(exc))
    return JSON({"by": by, "rows": table})


async def api_tokens_per_task(request: Request) -> JSON:
    """Token distribution per task run, by workflow."""
    try:
        quantile = float(request.query_params.get("quantile", "0.95"))
        table = tokens_per_task(_ledger(request), quantile=quantile, filters=filters_from(request))
    except ValueError as exc:
        return error(400, str(exc))
    return JSON({"rows": table})


async def api_events(request: Request) -> JSON:
    """The latest calls matching the filters (`limit` <= 1000)."""
    try:
        limit = min(int(request.query_params.get("limit", "50")), 1000)
        where, params = filters_from(request).where()
    except ValueError as exc:
        return error(400, str(exc))
    events = _ledger(request).events(where, params, limit=limit)
    return JSON({"events": [event_row(e) for e in events]})


async def healthz(request: Request) -> JSON:
    """Liveness: the process answers and the ledger can be read."""
    _ledger(request).query("SELECT 1")
    return JSON({"status": "ok"})


routes = [
    Route("/healthz", healthz),
    Route("/api/summary", api_summary),
    Route("/api/spend", api_spend),
    Route("/api/tokens-per-task", api_tokens_per_task),
    Route("/api/events", api_events),
]
