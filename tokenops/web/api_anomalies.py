"""`/api/anomalies`: spend incidents per team, workflow, model or user, each with what drove it.

`GET /api/anomalies?by=team&since=2026-10-01&until=2026-10-08` lists the incidents whose first
hour falls in [since, until) (default: the last week of data), scored from the weeks before.
A team lead sees the series of their own team's calls only (`tokenops.web.access`).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.routing import Route

from tokenops.analytics.anomalies import SERIES_DIMENSIONS, find_incidents, incident_fields
from tokenops.store import Ledger
from tokenops.web.access import parse_time, scoped_filters
from tokenops.web.api_cache import cached_ledger
from tokenops.web.responses import JSON, error


def _ledger(request: Request) -> Ledger:
    return cached_ledger(request)


def api_anomalies(request: Request) -> JSON:
    """Incidents of `by` (team, workflow, model, user) between `since` and `until`."""
    q = request.query_params
    by = q.get("by", "team")
    if by not in SERIES_DIMENSIONS:
        return error(400, f"by={by!r} is not one of {', '.join(SERIES_DIMENSIONS)}")
    try:
        team = scoped_filters(request).team
        since, until = parse_time(q.get("since"), "since"), parse_time(q.get("until"), "until")
        if since is not None and until is not None and until <= since:
            raise ValueError(f"until={q.get('until')!r} is not after since={q.get('since')!r}")
        incidents = find_incidents(_ledger(request), by, since=since, until=until, team=team)
    except ValueError as exc:
        return error(400, str(exc))
    return JSON(
        {
            "by": by,
            "since": since,
            "until": until,
            "team": team,
            "incidents": [incident_fields(i) for i in incidents],
        }
    )


routes = [Route("/api/anomalies", api_anomalies)]
