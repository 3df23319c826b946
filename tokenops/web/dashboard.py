"""The dashboard: its pages (one module per page), sign-in and static files, as routes.

Adding a page: write `tokenops/web/page_<name>.py` with a `pages` list of (path, endpoint) pairs
built on `tokenops.web.frame`, add the module to `_PAGES` below, and (if it is new in the
navigation) its entry to `tokenops.web.html.NAV`.
"""

from __future__ import annotations

from pathlib import Path

from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from tokenops.web import (
    api_budgets,
    page_budgets,
    page_coming,
    page_maturity,
    page_overview,
    page_planning,
    page_questions,
    page_runs,
    page_workflows,
    page_yield,
    signin,
)
from tokenops.web.frame import page

_PAGES = (
    page_overview,
    page_questions,
    page_workflows,
    page_runs,
    page_yield,
    page_budgets,
    page_planning,
    page_maturity,
    page_coming,
)


def dashboard_routes() -> list[BaseRoute]:
    """Sign-in, every page and the dashboard's static files."""
    routes: list[BaseRoute] = [*signin.routes]
    for module in _PAGES:
        routes.extend(Route(path, page(endpoint)) for path, endpoint in module.pages)
    routes.extend(api_budgets.routes)
    routes.append(Mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static"))
    return routes
