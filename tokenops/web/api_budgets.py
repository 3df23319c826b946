"""`GET /api/budgets`: task-budget and quota burn-down and what the guardrails blocked or downgraded.

The same numbers as the Budgets page (`tokenops.web.page_budgets`), which is built from
`budgets_view` too. Scoped like every read API (`scoped_filters`): a team lead sees only their
team's task runs, quota use and blocked calls; asking for another team is a 403.

Query string: the global filters (`start`, `end`, `team`, `workflow`, `model`, `customer`) narrow
the task runs and the blocked/downgraded calls; `at` (ISO date or time, default now) picks the
quota periods shown, which always cover the whole period (only the team filter applies to them).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime

from starlette.requests import Request
from starlette.routing import Route

from tokenops.analytics.budgets import BudgetBurn, QuotaBurn, quota_burn, task_budget_burn
from tokenops.analytics.guard_actions import ActionGroup, guard_actions, rollup, totals
from tokenops.analytics.spend import Filters
from tokenops.guard.policies import Policies
from tokenops.pricing import Pricer
from tokenops.store import Ledger
from tokenops.web.access import parse_time, scoped_filters
from tokenops.web.api_cache import cached_ledger
from tokenops.web.responses import JSON, error


@dataclass(frozen=True, slots=True)
class BudgetsView:
    """Everything the Budgets page and API show."""

    at: datetime
    """The instant whose quota periods are shown."""
    timezone: str
    """Zone of the quota periods."""
    task_budgets: list[BudgetBurn]
    """Each task budget over the filtered period."""
    quotas: list[QuotaBurn]
    """Each quota in its period containing `at`."""
    actions: list[ActionGroup]
    """Blocked and downgraded calls, grouped."""


def budgets_view(
    ledger: Ledger, policies: Policies, filters: Filters, pricer: Pricer, at: datetime | None = None
) -> BudgetsView:
    """The burn-down of every budget and quota in force, and the guardrails' blocked/downgraded calls."""
    moment = at or datetime.now(UTC)
    return BudgetsView(
        at=moment,
        timezone=policies.timezone,
        task_budgets=task_budget_burn(ledger, policies.task_budgets, filters),
        quotas=quota_burn(ledger, policies.quotas, policies.timezone, moment, team=filters.team),
        actions=guard_actions(ledger, filters, pricer, policies.task_budgets),
    )


def view_for(request: Request) -> BudgetsView:
    """The view for a request: the caller's scoped filters, the policies in force, `at` from the query."""
    filters = scoped_filters(request)
    at = parse_time(request.query_params.get("at"), "at")
    policies: Policies = request.app.state.policy_sync.guard.policies
    ledger = cached_ledger(request)
    pricer: Pricer = request.app.state.gateway.meter.pricer
    return budgets_view(ledger, policies, filters, pricer, at)


def view_dict(view: BudgetsView) -> dict[str, object]:
    """The view as JSON-ready data (money stays Decimal; `tokenops.web.responses` writes it exactly)."""
    return {
        "at": view.at,
        "timezone": view.timezone,
        "task_budgets": [dataclasses.asdict(b) for b in view.task_budgets],
        "quotas": [dataclasses.asdict(q) for q in view.quotas],
        "guardrails": {
            "totals": totals(view.actions),
            "by_day": rollup(view.actions, "day"),
            "by_rule": rollup(view.actions, "rule"),
            "by_team": rollup(view.actions, "team"),
            "by_workflow": rollup(view.actions, "workflow"),
        },
    }


def api_budgets(request: Request) -> JSON:
    """Burn-down per task budget and quota, and blocked/downgraded calls, for the caller's scope."""
    try:
        view = view_for(request)
    except ValueError as exc:
        return error(400, str(exc))
    return JSON(view_dict(view))


routes = [Route("/api/budgets", api_budgets)]
