"""Who is asking, and which part of the ledger they may see: the one place access is decided.

Every dashboard page and every read API (`/api/summary`, `/api/spend`, ...) goes through here:

    principal = current_principal(request)   # Principal or None; never raises
    principal = require_principal(request)   # raises AccessDenied(401) when nobody is signed in
    filters = scoped_filters(request)        # query-string Filters narrowed to what the caller may see
    ensure_team(request, row_team)           # AccessDenied(403) when a lead reaches another team's row

A caller is either a dashboard user signed in with the session cookie (`tokenops.web.session`,
users in `tokenops.web.users`) or a program presenting an **admin** gateway key as
`Authorization: Bearer tok-...` (treated as an admin). App keys only call models and ingest.

Roles: `admin` and `viewer` see every team (admins may also change things: `require_admin`);
a `lead` sees only their team. `scoped_filters` forces a lead's team onto the filters, and an
explicit other team (`?team=sales` from a support lead) is refused with 403 rather than quietly
answered with support's numbers, so a shared link never shows the wrong team's figures as if
they were the asked-for ones.

Errors are raised, not returned: `AccessDenied` is turned into a response by the handler in
`exception_handlers` (registered on the app in `tokenops.web.app.create_app`): JSON
`{"error": {...}}` under `/api/`, and for pages a redirect to `/signin` (401) or a short HTML
refusal (403). An analytics API module therefore needs only:

    async def api_yield(request: Request) -> JSON:
        filters = scoped_filters(request)    # before any query
        ...
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from typing import Literal
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from tokenops.analytics.spend import Filters
from tokenops.gateway.keys import KeyStore
from tokenops.web.responses import error
from tokenops.web.session import COOKIE, Signer
from tokenops.web.users import UserRole, UserStore


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller of a request."""

    name: str
    """User name, or the key id for an admin key."""
    role: UserRole
    """What they may see and do."""
    team: str | None
    """The team a lead is limited to; None means every team."""
    via: Literal["session", "key"]
    """How they proved who they are."""


class AccessDenied(Exception):
    """The caller is not signed in (401) or may not see this (403)."""

    def __init__(self, status: Literal[401, 403], message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def parse_time(value: str | None, name: str) -> datetime | None:
    """An ISO 8601 date or time from the query string (UTC when no zone is given); ValueError says which."""
    if value is None or value == "":
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"{name}={value!r} is not an ISO 8601 date or time") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def filters_from(request: Request) -> Filters:
    """Filters from the query string (`start`, `end`, `team`, `workflow`, `model`, `customer`, `user`), unscoped."""
    q = request.query_params
    return Filters(
        start=parse_time(q.get("start"), "start"),
        end=parse_time(q.get("end"), "end"),
        team=q.get("team") or None,
        workflow=q.get("workflow") or None,
        model=q.get("model") or None,
        customer=q.get("customer") or None,
        user=q.get("user") or None,
    )


def _from_key(request: Request) -> Principal | None:
    auth = request.headers.get("authorization", "")
    if auth[:7].lower() != "bearer ":
        return None
    keys: KeyStore = request.app.state.gateway.keys
    key = keys.lookup(auth[7:].strip())
    if key is None or key.role != "admin":
        return None
    return Principal(key.key_id, "admin", None, "key")


def current_principal(request: Request) -> Principal | None:
    """The signed-in user or admin key behind a request, or None; cached on the request."""
    if "principal" in request.scope:
        cached: Principal | None = request.scope["principal"]
        return cached
    principal = _from_key(request)
    cookie = request.cookies.get(COOKIE)
    if principal is None and cookie:
        signer: Signer = request.app.state.session_signer
        session = signer.check(cookie)
        users: UserStore = request.app.state.users
        user = users.get(session.user) if session else None
        if session and user and user.created_at.isoformat() == session.user_created:
            principal = Principal(user.name, user.role, user.team if user.role == "lead" else None, "session")
    request.scope["principal"] = principal
    return principal


def require_principal(request: Request) -> Principal:
    """The caller, or AccessDenied(401) when nobody is signed in."""
    principal = current_principal(request)
    if principal is None:
        raise AccessDenied(401, "Sign in at /signin, or pass an admin key as 'Authorization: Bearer tok-...'")
    return principal


def require_admin(request: Request) -> Principal:
    """The caller if an admin (for anything that changes state), else AccessDenied."""
    principal = require_principal(request)
    if principal.role != "admin":
        raise AccessDenied(403, f"{principal.name!r} is a {principal.role}; only admins may do this")
    return principal


def scoped_filters(request: Request) -> Filters:
    """The query string's Filters, limited to the caller's team; AccessDenied for other teams.

    Raises ValueError (a 400 for the caller) for malformed dates, like `filters_from`.
    """
    principal = require_principal(request)
    filters = filters_from(request)
    if principal.team is None:
        return filters
    if filters.team not in (None, principal.team):
        raise AccessDenied(403, f"{principal.name!r} leads team {principal.team!r} and may not see {filters.team!r}")
    return dataclasses.replace(filters, team=principal.team)


def ensure_team(request: Request, team: str | None) -> None:
    """AccessDenied(403) unless the caller may see a row of `team` (leads: only their own)."""
    principal = require_principal(request)
    if principal.team is not None and team != principal.team:
        raise AccessDenied(403, f"{principal.name!r} leads team {principal.team!r}; this belongs to {team!r}")


def _signin_target(request: Request) -> str:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return "/signin?next=" + quote(target, safe="")


async def _handle(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AccessDenied)  # registered for this class only
    if request.url.path.startswith("/api/"):
        return error(exc.status, exc.message)
    if exc.status == 401:
        return RedirectResponse(_signin_target(request), status_code=303)
    body = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Not allowed - tokenops</title>'
        '<link rel="stylesheet" href="/static/dashboard.css"></head><body><main class="narrow">'
        f'<h1>Not allowed</h1><p class="denied">{escape(exc.message)}</p><p><a href="/">Back to the overview</a></p>'
        "</main></body></html>"
    )
    return HTMLResponse(body, status_code=exc.status)


exception_handlers = {AccessDenied: _handle}
"""Register on the Starlette app so raised AccessDenied becomes the right response."""
