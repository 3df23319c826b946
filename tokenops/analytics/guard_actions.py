"""What the guardrails did: calls blocked and calls downgraded, with the spend they avoided.

- **blocked**: rows with `status = 'blocked'` (recorded at $0 by the gateway and the SDK); the rule
  is the refusal type in `error_type` (`tokenops_task_budget_exceeded`, `tokenops_quota_exceeded` ...).
- **downgraded**: rows served by a model with a *lower* list price than the `model_requested`
  (a downgrading task budget, or a router). A dated snapshot of the requested alias has the same
  price and does not count, so `gpt-4o` served as `gpt-4o-2024-08-06` is not a downgrade. The
  rule is the task budget that downgrades the workflow, when one does.

Savings are **estimates**, labelled as such wherever shown: a blocked call is valued at the mean
cost of the priced, successful calls of the same workflow and model in the same filters (else of
the same model); a downgraded call at the requested model's price for the group's mean tokens,
minus what it cost. Either is None (unknown, never $0) when no price applies.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Literal

from tokenops.analytics.kpis import model_moves
from tokenops.analytics.spend import Filters
from tokenops.events import TokenUsage
from tokenops.guard.policies import TaskBudget
from tokenops.pricing import Priced, Pricer
from tokenops.store import Ledger

Action = Literal["blocked", "downgraded"]
RollupKey = Literal["day", "rule", "team", "workflow"]
_TOKENS = ("input_tokens", "cache_read_tokens", "cache_write_tokens", "cache_write_1h_tokens", "output_tokens")
OTHER_DOWNGRADE = "downgraded by a router or fallback"


@dataclass(frozen=True, slots=True)
class ActionGroup:
    """Calls of one day, rule, team, workflow and model pair that a guardrail blocked or downgraded."""

    day: date
    """UTC day."""
    action: Action
    """blocked or downgraded."""
    rule: str
    """Refusal type (blocked), or the downgrading task budget."""
    team: str | None
    """Team of the calls."""
    workflow: str | None
    """Workflow of the calls."""
    model_requested: str
    """Model asked for."""
    model: str
    """Model that served (the requested one when blocked)."""
    calls: int
    """Calls in the group."""
    cost: Decimal
    """What they cost (blocked calls: $0)."""
    saving: Decimal | None
    """Estimated spend avoided; None when it cannot be priced."""


def _at_noon(day: date) -> datetime:
    return datetime.combine(day, time(12), tzinfo=UTC)


def _day(value: object) -> date:
    return value.date() if isinstance(value, datetime) else date.fromisoformat(str(value)[:10])


def downgrade_pairs(ledger: Ledger, filters: Filters, pricer: Pricer) -> list[tuple[str, str]]:
    """(requested, served) model pairs where the served model has a lower list price."""
    moves = model_moves(ledger, filters, pricer, "status <> 'blocked'")
    return sorted((requested, served) for requested, served, asked, got in moves if got < asked)


def _mean_costs(ledger: Ledger, filters: Filters, models: set[str]) -> dict[tuple[str | None, str], Decimal]:
    """Mean cost of priced successful calls per (workflow, model), and per (None, model) across workflows."""
    if not models:
        return {}
    where, params = filters.where()
    marks = ", ".join("?" for _ in models)
    rows = ledger.query_rows(
        f"""SELECT workflow, model, count(*) AS calls, sum(cost_total) AS cost FROM usage_events
            WHERE {where} AND status = 'ok' AND NOT unpriced AND model IN ({marks}) GROUP BY workflow, model""",
        [*params, *sorted(models)],
    )
    means: dict[tuple[str | None, str], Decimal] = {}
    overall: dict[str, tuple[int, Decimal]] = {}
    for row in rows:
        calls, cost, model = int(str(row["calls"])), Decimal(str(row["cost"])), str(row["model"])
        if row["workflow"] is not None:
            means[(str(row["workflow"]), model)] = cost / calls
        seen = overall.get(model, (0, Decimal(0)))
        overall[model] = (seen[0] + calls, seen[1] + cost)
    for model, (calls, cost) in overall.items():
        means[(None, model)] = cost / calls
    return means


def _downgrade_rule(workflow: str | None, budgets: Sequence[TaskBudget]) -> str:
    budget = next((b for b in budgets if b.covers(workflow)), None)
    return budget.name if budget is not None and budget.on_exceed == "downgrade" else OTHER_DOWNGRADE


def _downgrade_saving(row: dict[str, object], pricer: Pricer, calls: int, cost: Decimal) -> Decimal | None:
    if int(str(row["unpriced_calls"])) or not calls:
        return None
    mean = {name: int(str(row[name])) // calls for name in _TOKENS}
    reasoning = min(int(str(row["reasoning_tokens"])) // calls, mean["output_tokens"])
    usage = TokenUsage(**mean, reasoning_tokens=reasoning)
    asked = pricer.price(
        str(row["model_requested"]), usage, provider=str(row["provider"]), ts=_at_noon(_day(row["day"]))
    )
    return asked.cost.total * calls - cost if isinstance(asked, Priced) else None


def guard_actions(
    ledger: Ledger, filters: Filters, pricer: Pricer, budgets: Sequence[TaskBudget] = ()
) -> list[ActionGroup]:
    """Blocked and downgraded calls of the filters, grouped by day, rule, team, workflow and model pair."""
    pairs = downgrade_pairs(ledger, filters, pricer)
    where, params = filters.where()
    pair_sql = " OR ".join("(model_requested = ? AND model = ?)" for _ in pairs) or "FALSE"
    sums = ", ".join(f"coalesce(sum({name}), 0) AS {name}" for name in (*_TOKENS, "reasoning_tokens"))
    rows = ledger.query_rows(
        f"""SELECT date_trunc('day', ts) AS day,
                   CASE WHEN status = 'blocked' THEN 'blocked' ELSE 'downgraded' END AS action,
                   error_type, team, workflow, model_requested, model, max(provider) AS provider,
                   count(*) AS calls, coalesce(sum(cost_total), 0) AS cost,
                   count(*) FILTER (WHERE unpriced) AS unpriced_calls, {sums}
            FROM usage_events
            WHERE {where} AND (status = 'blocked' OR (status <> 'blocked' AND ({pair_sql})))
            GROUP BY 1, 2, 3, 4, 5, 6, 7 ORDER BY 1, 2, 3, 4, 5, 6, 7""",
        [*params, *(name for pair in pairs for name in pair)],
    )
    blocked_models = {str(r["model"]) for r in rows if r["action"] == "blocked"}
    means = _mean_costs(ledger, filters, blocked_models)
    out = []
    for row in rows:
        calls, cost = int(str(row["calls"])), Decimal(str(row["cost"]))
        workflow = None if row["workflow"] is None else str(row["workflow"])
        model = str(row["model"])
        saving: Decimal | None
        if row["action"] == "blocked":
            rule = str(row["error_type"] or "blocked")
            mean = means.get((workflow, model)) if workflow is not None else None
            mean = mean if mean is not None else means.get((None, model))
            saving = None if mean is None else mean * calls
            requested, action = model, "blocked"
        else:
            rule = _downgrade_rule(workflow, budgets)
            saving = _downgrade_saving(row, pricer, calls, cost)
            requested, action = str(row["model_requested"]), "downgraded"
        out.append(
            ActionGroup(
                day=_day(row["day"]),
                action="blocked" if action == "blocked" else "downgraded",
                rule=rule,
                team=None if row["team"] is None else str(row["team"]),
                workflow=workflow,
                model_requested=requested,
                model=model,
                calls=calls,
                cost=cost,
                saving=saving,
            )
        )
    return out


def rollup(groups: Iterable[ActionGroup], key: RollupKey) -> list[dict[str, object]]:
    """Blocked and downgraded calls and estimated savings per day, rule, team or workflow (biggest first).

    `unestimated` counts the calls whose saving could not be priced (left out of `saving`).
    """
    table: dict[object, dict[str, object]] = {}
    for group in groups:
        value: object = getattr(group, key)
        row = table.setdefault(
            value, {key: value, "blocked": 0, "downgraded": 0, "saving": Decimal(0), "unestimated": 0}
        )
        row[group.action] = int(str(row[group.action])) + group.calls
        if group.saving is None:
            row["unestimated"] = int(str(row["unestimated"])) + group.calls
        else:
            saved = row["saving"]
            assert isinstance(saved, Decimal)
            row["saving"] = saved + group.saving
    rows = list(table.values())
    if key == "day":
        return sorted(rows, key=lambda r: str(r["day"]))
    return sorted(rows, key=lambda r: (-int(str(r["blocked"])) - int(str(r["downgraded"])), str(r[key])))


def totals(groups: Iterable[ActionGroup]) -> dict[str, object]:
    """Blocked and downgraded calls and the estimated saving over all groups."""
    calls = {"blocked": 0, "downgraded": 0}
    saving, unestimated = Decimal(0), 0
    for group in groups:
        calls[group.action] += group.calls
        if group.saving is None:
            unestimated += group.calls
        else:
            saving += group.saving
    return {**calls, "saving": saving, "unestimated": unestimated}
