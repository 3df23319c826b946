"""`/api/yield`, `/api/adoption`, `/api/maturity`: what the spend buys, who uses it, and how far along we are.

Access goes through `tokenops.web.access`: a team lead sees adoption and maturity of their team's
calls, and yield by team or person of their team only (the estimate itself still uses every
non-adopter as the control group; only the rows shown are narrowed).
"""

from __future__ import annotations

import dataclasses
from datetime import date

from starlette.requests import Request
from starlette.routing import Route

from tokenops.analytics.adoption import adoption
from tokenops.analytics.did import Design
from tokenops.analytics.maturity import maturity
from tokenops.analytics.yield_ import YieldReport, ai_yield, yield_dict
from tokenops.guard.policies import Policies
from tokenops.store import Ledger
from tokenops.web.access import AccessDenied, require_principal, scoped_filters
from tokenops.web.api_cache import cached_ledger
from tokenops.web.responses import JSON, error

MAX_RESAMPLES = 10_000


def _ledger(request: Request) -> Ledger:
    return cached_ledger(request)


def _date(value: str | None, name: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"{name}={value!r} is not a date (YYYY-MM-DD)") from exc


def design_from(request: Request) -> Design:
    """The estimate's design from `baseline_end`, `end`, `resamples`, `confidence`, `seed`."""
    q = request.query_params
    try:
        resamples = int(q.get("resamples", "1000"))
        confidence = float(q.get("confidence", "0.95"))
        seed = int(q.get("seed", "0"))
    except ValueError as exc:
        raise ValueError(f"resamples and seed must be whole numbers and confidence a number: {exc}") from exc
    if not 1 <= resamples <= MAX_RESAMPLES:
        raise ValueError(f"resamples must be between 1 and {MAX_RESAMPLES}, got {resamples}")
    return Design(
        baseline_end=_date(q.get("baseline_end"), "baseline_end"),
        end=_date(q.get("end"), "end"),
        resamples=resamples,
        confidence=confidence,
        seed=seed,
    )


def api_yield(request: Request) -> JSON:
    """AI yield by `by=all|team|workflow|person` (`team=` narrows team and person rows), with intervals or reasons."""
    principal = require_principal(request)
    by = request.query_params.get("by", "all")
    try:
        team = scoped_filters(request).team
        if team is not None and by not in ("team", "person"):
            if principal.team is not None:
                raise AccessDenied(403, f"{principal.name!r} leads team {team!r}: ask for by=team or by=person")
            raise ValueError(f"team= narrows by=team or by=person, not by={by}")
        report = ai_yield(_ledger(request), by, design_from(request))
    except ValueError as exc:
        return error(400, str(exc))
    if team is not None:
        report = _only_team(_ledger(request), report, team)
    return JSON(yield_dict(report))


def _only_team(ledger: Ledger, report: YieldReport, team: str) -> YieldReport:
    if report.by == "team":
        members = {team}
    else:
        rows = ledger.query_rows("SELECT person_id FROM people WHERE team = ?", [team])
        members = {str(r["person_id"]) for r in rows}
    kept = tuple(r for r in report.rows if r.group in members)
    return dataclasses.replace(report, rows=kept)


def api_adoption(request: Request) -> JSON:
    """Spend and calls across people: top-5 share, people without use, Gini; organisation then teams."""
    try:
        rows = adoption(_ledger(request), scoped_filters(request))
    except ValueError as exc:
        return error(400, str(exc))
    return JSON({"rows": [dataclasses.asdict(r) for r in rows]})


def api_maturity(request: Request) -> JSON:
    """The maturity rung reached, every check, and what the next rung needs."""
    sync = getattr(request.app.state, "policy_sync", None)
    policies: Policies | None = None if sync is None else sync.guard.policies
    try:
        result = maturity(_ledger(request), scoped_filters(request), policies)
    except ValueError as exc:
        return error(400, str(exc))
    return JSON(dataclasses.asdict(result))


routes = [
    Route("/api/yield", api_yield),
    Route("/api/adoption", api_adoption),
    Route("/api/maturity", api_maturity),
]
