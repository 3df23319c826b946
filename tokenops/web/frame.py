"""What every dashboard page shares: its frame, its CSV downloads, its error handling.

A page module (`tokenops/web/page_<name>.py`) lists `pages`: (path, endpoint) pairs whose
endpoints build a `Frame` with `frame_for`, their content with `tokenops.web.html`, and answer
with `respond`, which also serves any of the page's tables as CSV (`?format=csv&table=<id>`)
from the very rows shown. Pages read data with the caller's `scoped_filters`
(`tokenops.web.access`), so a team lead's scope holds on every page and in every download.
Endpoints are plain functions: Starlette runs them in its thread pool, so the ledger queries do
not block the event loop.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from html import escape

from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response

from tokenops.store import Ledger
from tokenops.web.access import Principal, require_principal
from tokenops.web.html import Frame, Table, layout, table_csv

_OPTIONS_TTL_S = 60.0
_OPTION_LIMIT = 500


def ledger_of(request: Request) -> Ledger:
    """The ledger the app serves."""
    ledger: Ledger = request.app.state.ledger
    return ledger


def _who(principal: Principal) -> str:
    team = f", {principal.team}" if principal.team else ""
    return f"{principal.name} ({principal.role}{team})"


def filter_options(request: Request, principal: Principal) -> dict[str, list[str]]:
    """Distinct teams, workflows, models and customers in the ledger (a lead's team only), cached a minute."""
    cache: dict[str | None, tuple[float, dict[str, list[str]]]] = request.app.state.__dict__.setdefault(
        "_filter_options", {}
    )
    hit = cache.get(principal.team)
    if hit is not None and time.monotonic() - hit[0] < _OPTIONS_TTL_S:
        return hit[1]
    where, params = ("team = ?", [principal.team]) if principal.team else ("TRUE", [])
    rows = ledger_of(request).query_rows(
        " UNION ALL ".join(
            f"(SELECT '{dim}' AS dim, v FROM (SELECT DISTINCT {dim} AS v FROM usage_events "
            f"WHERE {where} AND {dim} IS NOT NULL) ORDER BY v LIMIT {_OPTION_LIMIT})"
            for dim in ("team", "workflow", "model", "customer")
        ),
        params * 4,
    )
    options: dict[str, list[str]] = {"team": [], "workflow": [], "model": [], "customer": []}
    for row in rows:
        options[str(row["dim"])].append(str(row["v"]))
    cache[principal.team] = (time.monotonic(), options)
    return options


def frame_for(request: Request, title: str, active: str) -> Frame:
    """The frame of a page for the signed-in caller (AccessDenied(401) sends others to sign in)."""
    principal = require_principal(request)
    return Frame(
        title=title,
        active=active,
        path=request.url.path,
        query=dict(request.query_params),
        user=_who(principal),
        options=filter_options(request, principal),
        locked_team=principal.team,
    )


def respond(request: Request, frame: Frame, content: str, tables: Sequence[Table] = ()) -> Response:
    """The page, or one of its tables as CSV when asked with `?format=csv&table=<id>`."""
    if request.query_params.get("format") == "csv":
        wanted = request.query_params.get("table", "")
        for table in tables:
            if table.id == wanted:
                name = f"tokenops-{frame.active}-{table.id}.csv"
                return PlainTextResponse(
                    table_csv(table),
                    media_type="text/csv",
                    headers={"content-disposition": f'attachment; filename="{name}"'},
                )
        known = ", ".join(t.id for t in tables) or "none"
        return PlainTextResponse(f"No table {wanted!r} on this page; tables: {known}", status_code=404)
    return HTMLResponse(layout(frame, content))


def page(endpoint: Callable[[Request], Response]) -> Callable[[Request], Response]:
    """Wrap a page endpoint so a malformed filter shows the page frame with the reason (400)."""

    def guarded(request: Request) -> Response:
        try:
            return endpoint(request)
        except ValueError as exc:
            frame = frame_for(request, "Cannot show this page", "")
            return HTMLResponse(layout(frame, f'<p class="denied">{escape(str(exc))}</p>'), status_code=400)

    guarded.__name__ = endpoint.__name__
    guarded.__doc__ = endpoint.__doc__
    return guarded


__all__ = ["filter_options", "frame_for", "ledger_of", "page", "respond"]
