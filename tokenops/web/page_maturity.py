"""The Maturity page (`/maturity`): the rung of the TokenOps ladder reached, and the to-do list for the next.

The assessment is `tokenops.analytics.maturity.maturity` over the calls the global filters select
(as `GET /api/maturity`), with the guard policies in force (task budgets and quotas count as the
budgets lever). The ladder is drawn as five steps, the rung reached highlighted; under it, what the
next rung needs in the analytics' own words (names and amounts), then every check, met or not.
A team lead's filters fix their team: the ladder is their team's.
"""

from __future__ import annotations

from html import escape

from starlette.requests import Request
from starlette.responses import Response

from tokenops.analytics.maturity import ATTRIBUTED, PRICED, RUNGS, WITH_OUTCOMES, Maturity, maturity
from tokenops.guard.policies import Policies
from tokenops.web.access import scoped_filters
from tokenops.web.api_cache import cached_ledger
from tokenops.web.frame import frame_for, respond
from tokenops.web.html import Column, Table, table_html

NEEDS = {
    "Blind": "nothing: no call is metered",
    "Metered": f"calls recorded, at least {PRICED:.0%} of them priced",
    "Attributed": f"at least {ATTRIBUTED:.0%} of spend names a team and a workflow",
    "Unit-economic": f"at least {WITH_OUTCOMES:.0%} of the workflows that spend have outcomes linked",
    "Optimized": "routing, caching and budgets all in use",
}
"""What each rung needs (besides every rung below), for the ladder's captions."""


def _policies(request: Request) -> Policies | None:
    sync = getattr(request.app.state, "policy_sync", None)
    return None if sync is None else sync.guard.policies


def ladder(result: Maturity) -> str:
    """The five rungs left to right: reached ones filled, the current one outlined, the next one dashed."""
    reached = RUNGS.index(result.level)
    steps = []
    for index, rung in enumerate(RUNGS):
        state = "current" if index == reached else "reached" if index < reached else ""
        state = "next" if rung == result.next_rung else state
        classes = " ".join(c for c in ("rung", "reached" if index <= reached else "", state) if c)
        checks = [c for c in result.checks if c.rung == rung]
        met = sum(c.met for c in checks)
        tally = f"{met} of {len(checks)} checks met" if checks else ""
        steps.append(
            f'<li class="{classes}" data-rung="{escape(rung)}" data-reached="{str(index <= reached).lower()}">'
            f"<strong>{index}. {escape(rung)}</strong><br><small>{escape(NEEDS.get(rung, ''))}</small>"
            f'<br><small class="tally">{escape(tally)}</small></li>'
        )
    return f'<ol class="ladder" data-level="{escape(result.level)}">{"".join(steps)}</ol>'


def _missing(result: Maturity) -> str:
    if result.next_rung is None:
        return '<p class="callout" data-missing="0">Top rung reached: every check is met.</p>'
    items = "".join(f"<li>{escape(todo)}</li>" for todo in result.missing)
    return (
        f'<section class="panel" data-missing="{len(result.missing)}"><h2>To reach {escape(result.next_rung)}</h2>'
        f"<ul>{items}</ul></section>"
    )


def maturity_page(request: Request) -> Response:
    """The rung reached, what the next one needs, and every check."""
    filters = scoped_filters(request)
    frame = frame_for(request, "Maturity", "maturity")
    result = maturity(cached_ledger(request), filters, _policies(request))
    table = Table(
        "checks",
        "Every check",
        (
            Column("rung", "Rung"),
            Column("check", "Check"),
            Column("met", "Met"),
            Column("measured", "Measured"),
            Column("todo", "To do"),
        ),
        [
            {"rung": c.rung, "check": c.name, "met": "yes" if c.met else "no", "measured": c.measured, "todo": c.todo}
            for c in result.checks
        ],
        note="Judged from the calls these filters select and the guard policies in force.",
    )
    content = (
        f'<div class="kpis"><div class="kpi" data-kpi="level" data-value="{escape(result.level)}">'
        f'<span class="label">Current rung</span><span class="value">{escape(result.level)}</span>'
        f'<span class="sub">next: {escape(result.next_rung or "none, top reached")}</span></div></div>'
        f"{ladder(result)}{_missing(result)}{table_html(table, request.url.path, dict(request.query_params))}"
    )
    return respond(request, frame, content, [table])


pages = [("/maturity", maturity_page)]
