"""`/signin` and `/signout`: dashboard credentials in, a signed session cookie out.

The form posts `application/x-www-form-urlencoded` (parsed here; no multipart parser is needed).
Password checking is scrypt, deliberately slow, so it runs in the thread pool. `next` only ever
redirects to a path on this server, never to another site.
"""

from __future__ import annotations

from html import escape
from urllib.parse import parse_qs

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from tokenops.web.access import current_principal
from tokenops.web.session import COOKIE, MAX_AGE_S, Signer
from tokenops.web.users import UserStore

_MAX_BODY = 4096


def _safe_next(value: str | None) -> str:
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


def _form(message: str, next_path: str, name: str = "") -> str:
    alert = f'<p class="denied" role="alert">{escape(message)}</p>' if message else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1"><title>Sign in - tokenops</title>'
        '<link rel="icon" href="data:,"><link rel="stylesheet" href="/static/dashboard.css"></head>'
        '<body><main class="narrow"><h1>tokenops</h1><p>Sign in with your dashboard credential '
        "(an admin creates one with <code>tokenops users create</code>).</p>"
        f'{alert}<form class="signin" method="post" action="/signin">'
        f'<input type="hidden" name="next" value="{escape(next_path)}">'
        f'<label>Name<input name="name" autocomplete="username" required value="{escape(name)}" autofocus></label>'
        '<label>Password<input name="password" type="password" autocomplete="current-password" required></label>'
        '<button type="submit">Sign in</button></form></main></body></html>'
    )


async def signin_page(request: Request) -> Response:
    """The sign-in form (or straight on, when already signed in)."""
    next_path = _safe_next(request.query_params.get("next"))
    if current_principal(request) is not None:
        return RedirectResponse(next_path, status_code=303)
    return HTMLResponse(_form("", next_path))


async def signin(request: Request) -> Response:
    """Check the credential; on success set the session cookie and go where the user was headed."""
    body = await request.body()
    if len(body) > _MAX_BODY:
        return HTMLResponse(_form("That form is too large.", "/"), status_code=413)
    fields = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
    name, password = fields.get("name", ""), fields.get("password", "")
    next_path = _safe_next(fields.get("next"))
    users: UserStore = request.app.state.users
    user = await run_in_threadpool(users.authenticate, name, password) if name and password else None
    if user is None:
        return HTMLResponse(_form("Unknown name or wrong password.", next_path, name), status_code=401)
    signer: Signer = request.app.state.session_signer
    response = RedirectResponse(next_path, status_code=303)
    response.set_cookie(
        COOKIE,
        signer.issue(user.name, user.created_at.isoformat()),
        max_age=MAX_AGE_S,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


async def signout(request: Request) -> Response:
    """Forget the session cookie."""
    response = RedirectResponse("/signin", status_code=303)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="lax")
    return response


routes = [
    Route("/signin", signin_page, methods=["GET"]),
    Route("/signin", signin, methods=["POST"]),
    Route("/signout", signout, methods=["POST"]),
]
