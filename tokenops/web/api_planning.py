"""`/api/forecast`, `/api/whatif` and `/api/recommendations`: planning numbers as JSON, money exact.

`POST /api/whatif` takes a JSON scenario, validated strictly (unknown fields are refused):

    {"start": "2026-10-01", "end": "2026-11-01", "team": "support",
     "models": [{"workflow": "support_qa", "model": "gpt-4o-mini"}],
     "cache_hit_rate": {"coding_agent": "auto", "refund_agent": 0.6},
     "output_cap": {"*": 2000},
     "overrides": [{"model": "claude-*", "discount": "0.2"}]}
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.routing import Route

from tokenops.analytics.forecast import month_end
from tokenops.analytics.recommend import auto_hit_rates, recommendations
from tokenops.analytics.spend import Filters
from tokenops.analytics.whatif import ModelMap, Scenario, WhatIf, default_window, replay
from tokenops.pricing import PriceOverride
from tokenops.store import Ledger
from tokenops.web.access import AccessDenied, parse_time, require_principal, scoped_filters
from tokenops.web.api_cache import cached_ledger
from tokenops.web.responses import JSON, error


def _ledger(request: Request) -> Ledger:
    return cached_ledger(request)


def _overrides(request: Request) -> tuple[PriceOverride, ...]:
    settings = getattr(request.app.state, "settings", None)
    return tuple(settings.pricing.overrides) if settings is not None else ()


class MapBody(BaseModel):
    """One model mapping of a what-if scenario."""

    model_config = ConfigDict(extra="forbid")

    workflow: str = Field(min_length=1)
    """Workflow whose calls move (`*` for all)."""
    model: str = Field(min_length=1)
    """Model that would serve them."""
    provider: str | None = Field(default=None, min_length=1)
    """Its provider, when the model name is ambiguous."""
    from_model: str | None = Field(default=None, min_length=1)
    """Only move calls served by this model."""


class WhatIfBody(BaseModel):
    """`POST /api/whatif`: a period and the policy to replay it under."""

    model_config = ConfigDict(extra="forbid")

    start: datetime | None = None
    """Inclusive start (default: 30 days before `end`)."""
    end: datetime | None = None
    """Exclusive end (default: the end of the last day with calls)."""
    team: str | None = None
    """Only this team's calls."""
    workflow: str | None = None
    """Only this workflow's calls."""
    models: list[MapBody] = Field(default_factory=list)
    """Model mappings, first match wins."""
    cache_hit_rate: dict[str, Annotated[float, Field(ge=0, le=1)] | Literal["auto"]] = Field(default_factory=dict)
    """Workflow -> share of input tokens read from cache, or `auto`."""
    output_cap: dict[str, Annotated[int, Field(gt=0)]] = Field(default_factory=dict)
    """Workflow -> max output tokens."""
    overrides: list[PriceOverride] = Field(default_factory=list)
    """Prices tried first (another price list, a discount)."""


def _utc(value: datetime | None) -> datetime | None:
    return value if value is None or value.tzinfo else value.replace(tzinfo=UTC)


def whatif_json(result: WhatIf, filters: Filters) -> dict[str, object]:
    """The replay as JSON: per workflow, the saving included."""
    rows = [{**dataclasses.asdict(r), "saving": r.saving} for r in result.rows]
    return {"start": filters.start, "end": filters.end, "saving": result.saving, "rows": rows, "notes": result.notes}


def api_forecast(request: Request) -> JSON:
    """Month-end spend per `by=team|workflow|...` with an interval; `as_of`, `level` optional."""
    q = request.query_params
    try:
        forecasts = month_end(
            _ledger(request),
            q.get("by", "team"),
            as_of=parse_time(q.get("as_of"), "as_of"),
            filters=scoped_filters(request),
            level=float(q.get("level", "0.9")),
        )
    except ValueError as exc:
        return error(400, str(exc))
    return JSON({"by": q.get("by", "team"), "rows": [dataclasses.asdict(f) for f in forecasts]})


async def api_whatif(request: Request) -> JSON:
    """Replay a period under the scenario in the JSON body; saving per workflow."""
    principal = require_principal(request)
    try:
        body = WhatIfBody.model_validate_json(await request.body())
    except ValidationError as exc:
        return error(422, "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()))
    if principal.team is not None and body.team not in (None, principal.team):
        raise AccessDenied(403, f"{principal.name!r} leads team {principal.team!r} and may not see {body.team!r}")
    filters = Filters(
        start=_utc(body.start), end=_utc(body.end), team=principal.team or body.team, workflow=body.workflow
    )
    # the replay reads the ledger for seconds: off the event loop, like every other read endpoint
    return await run_in_threadpool(_whatif, request, body, filters)


def _whatif(request: Request, body: WhatIfBody, filters: Filters) -> JSON:
    ledger = _ledger(request)
    auto = [w for w, v in body.cache_hit_rate.items() if v == "auto"]
    if "*" in auto:
        return error(400, "cache_hit_rate 'auto' needs a workflow name, not '*'")
    try:
        filters = default_window(ledger, filters)
        shares, notes = auto_hit_rates(ledger, auto, filters) if auto else ({}, ())
        scenario = Scenario(
            models=tuple(ModelMap(m.workflow, m.model, m.provider, m.from_model) for m in body.models),
            cache_hit_rate={**{w: v for w, v in body.cache_hit_rate.items() if not isinstance(v, str)}, **shares},
            output_cap=dict(body.output_cap),
            overrides=tuple(body.overrides),
        )
        result = replay(ledger, scenario, filters=filters, overrides=_overrides(request))
    except ValueError as exc:
        return error(400, str(exc))
    result = dataclasses.replace(result, notes=notes + result.notes)
    return JSON(whatif_json(result, filters))


def api_recommendations(request: Request) -> JSON:
    """Ranked savings opportunities of the last 30 days (`as_of` optional), with evidence."""
    try:
        found = recommendations(
            _ledger(request),
            as_of=parse_time(request.query_params.get("as_of"), "as_of"),
            filters=scoped_filters(request),
            overrides=_overrides(request),
        )
    except ValueError as exc:
        return error(400, str(exc))
    return JSON({"rows": [dataclasses.asdict(r) for r in found]})


routes = [
    Route("/api/forecast", api_forecast),
    Route("/api/whatif", api_whatif, methods=["POST"]),
    Route("/api/recommendations", api_recommendations),
]
