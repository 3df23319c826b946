"""How close spend runs to each guardrail limit: task-budget and quota burn-down, from the ledger.

The guard (`tokenops.guard`) keeps live counters to decide calls; this module recomputes the same
quantities from recorded calls so they can be shown and audited:

- **task budgets**: every task run of the period whose workflow a budget covers (the *first*
  budget covering the workflow, as the guard picks it), its spend and tokens against the limit,
  the runs nearest to or over it first. A run's share is the larger of its dollar and token
  shares; a run with an unpriced call has an unknown dollar spend, counted apart, never as $0.
- **quotas**: the quota's *current* period (local midnight in the policy timezone, as
  `tokenops.guard.quotas.period_window` computes it), spend per scope value (each team, user,
  key ...) covered by the quota's `match` and `workflow` globs, against the limit.

Blocked and downgraded calls are in `tokenops.analytics.guard_actions`. Globs are matched in
Python on the few distinct values, so the SQL stays portable and user input never reaches it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from tokenops.analytics.spend import Filters
from tokenops.guard.policies import Quota, Scope, TaskBudget, matches
from tokenops.guard.quotas import period_window
from tokenops.store import Ledger
from tokenops.store.rows import utc_naive

TOP = 20
"""Task runs or scope values listed per policy (the nearest to their limit)."""

_SCOPE_COLUMN: dict[Scope, str] = {
    "org": "'*'",
    "key": "api_key_id",
    "user": "user_id",
    "team": "team",
    "customer": "customer",
    "workflow": "workflow",
    "model": "model",
}


@dataclass(frozen=True, slots=True)
class Usage:
    """Spend of one task run or one scope value against a limit."""

    subject: str
    """Task run id, or the scope value (`*` for the organisation)."""
    cost: Decimal
    """Priced spend in USD."""
    tokens: int
    """Input plus output tokens."""
    calls: int
    """Calls recorded."""
    unpriced_calls: int
    """Calls without a known price: their cost is unknown and not in `cost`."""
    share: Decimal
    """Larger of the dollar and token shares of the limit (1 = at the limit)."""
    state: str
    """`over` (at or past the limit), `warn` (past warn_at) or `ok`."""
    workflow: str | None = None
    """The run's workflow (task budgets only)."""
    team: str | None = None
    """The run's team (task budgets only)."""


@dataclass(frozen=True, slots=True)
class BudgetBurn:
    """One task budget over the filtered period."""

    name: str
    """Budget name."""
    workflow: str
    """Workflow glob it covers."""
    max_usd: Decimal | None
    """Dollar limit per task run."""
    max_tokens: int | None
    """Token limit per task run."""
    warn_at: Decimal
    """Share that counts as near the limit."""
    on_exceed: str
    """block, downgrade or alert."""
    runs: int
    """Task runs covered in the period."""
    runs_over: int
    """Runs at or past the limit."""
    runs_warned: int
    """Runs past warn_at but under the limit."""
    cost: Decimal
    """Priced spend of the covered runs."""
    top: tuple[Usage, ...]
    """The runs nearest to (or furthest over) the limit."""


@dataclass(frozen=True, slots=True)
class QuotaBurn:
    """One quota in its current period."""

    name: str
    """Quota name."""
    scope: Scope
    """What it counts per."""
    match: str
    """Glob of the scope values covered."""
    workflow: str
    """Workflow glob covered."""
    period: str
    """day, week or month."""
    label: str
    """The period, e.g. `2026-12` (with the zone in `zone`)."""
    start: datetime
    """Period start (UTC)."""
    end: datetime
    """When it resets (UTC)."""
    zone: str
    """Timezone whose local midnight resets it."""
    max_usd: Decimal | None
    """Dollar limit per scope value."""
    max_tokens: int | None
    """Token limit per scope value."""
    warn_at: Decimal
    """Share that counts as near the limit."""
    on_exceed: str
    """block or alert."""
    values: int
    """Scope values with spend in the period."""
    top: tuple[Usage, ...]
    """Scope values nearest to the limit."""


def share_of(limit_usd: Decimal | None, limit_tokens: int | None, cost: Decimal, tokens: int) -> Decimal:
    """The larger of the dollar and token shares of a limit."""
    shares = [Decimal(0)]
    if limit_usd is not None:
        shares.append(cost / limit_usd)
    if limit_tokens is not None:
        shares.append(Decimal(tokens) / limit_tokens)
    return max(shares)


def _state(share: Decimal, warn_at: Decimal) -> str:
    return "over" if share >= 1 else "warn" if share >= warn_at else "ok"


def _dec(value: object) -> Decimal:
    return Decimal(0) if value is None else Decimal(str(value))


def _int(value: object) -> int:
    return 0 if value is None else int(str(value))


def budget_workflows(ledger: Ledger, budgets: Sequence[TaskBudget], filters: Filters) -> dict[str, list[str | None]]:
    """Budget name -> workflows of the period it governs (the first budget covering a workflow wins)."""
    where, params = filters.where()
    rows = ledger.query_rows(
        f"SELECT DISTINCT workflow FROM usage_events WHERE {where} AND task_run_id IS NOT NULL", params
    )
    owned: dict[str, list[str | None]] = {b.name: [] for b in budgets}
    for row in rows:
        workflow = None if row["workflow"] is None else str(row["workflow"])
        budget = next((b for b in budgets if b.covers(workflow)), None)
        if budget is not None:
            owned[budget.name].append(workflow)
    return owned


def _in_workflows(workflows: Sequence[str | None]) -> tuple[str, list[object]]:
    named = [w for w in workflows if w is not None]
    clauses = [f"workflow IN ({', '.join('?' for _ in named)})"] if named else []
    if len(named) < len(workflows):
        clauses.append("workflow IS NULL")
    return "(" + " OR ".join(clauses) + ")", list(named)


def _budget_burn(
    ledger: Ledger, budget: TaskBudget, workflows: Sequence[str | None], filters: Filters, top: int
) -> BudgetBurn:
    where, params = filters.where()
    covered, wf_params = _in_workflows(workflows)
    usd = "NULL" if budget.max_usd is None else f"CAST(cost AS DOUBLE PRECISION) / {float(budget.max_usd)!r}"
    tok = "NULL" if budget.max_tokens is None else f"CAST(tokens AS DOUBLE PRECISION) / {budget.max_tokens}"
    warn = repr(float(budget.warn_at))
    sql = f"""
        WITH per_run AS (
            SELECT task_run_id, max(workflow) AS workflow, max(team) AS team,
                   coalesce(sum(cost_total), 0) AS cost,
                   coalesce(sum(input_tokens + output_tokens), 0) AS tokens,
                   count(*) AS calls, count(*) FILTER (WHERE unpriced) AS unpriced_calls
            FROM usage_events WHERE {where} AND task_run_id IS NOT NULL AND {covered}
            GROUP BY task_run_id
        ), ranked AS (
            SELECT *, coalesce(greatest(coalesce({usd}, 0), coalesce({tok}, 0)), 0) AS rank_share FROM per_run
        )
        SELECT *, count(*) OVER () AS runs,
               sum(CASE WHEN rank_share >= 1 THEN 1 ELSE 0 END) OVER () AS runs_over,
               sum(CASE WHEN rank_share >= {warn} AND rank_share < 1 THEN 1 ELSE 0 END) OVER () AS runs_warned,
               sum(cost) OVER () AS total_cost
        FROM ranked ORDER BY rank_share DESC, task_run_id LIMIT {int(top)}
    """
    rows = ledger.query_rows(sql, [*params, *wf_params]) if workflows else []
    shown = []
    for row in rows:
        cost, tokens = _dec(row["cost"]), _int(row["tokens"])
        share = share_of(budget.max_usd, budget.max_tokens, cost, tokens)
        shown.append(
            Usage(
                subject=str(row["task_run_id"]),
                cost=cost,
                tokens=tokens,
                calls=_int(row["calls"]),
                unpriced_calls=_int(row["unpriced_calls"]),
                share=share,
                state=_state(share, budget.warn_at),
                workflow=None if row["workflow"] is None else str(row["workflow"]),
                team=None if row["team"] is None else str(row["team"]),
            )
        )
    first = rows[0] if rows else {}
    return BudgetBurn(
        name=budget.name,
        workflow=budget.workflow,
        max_usd=budget.max_usd,
        max_tokens=budget.max_tokens,
        warn_at=budget.warn_at,
        on_exceed=budget.on_exceed,
        runs=_int(first.get("runs")),
        runs_over=_int(first.get("runs_over")),
        runs_warned=_int(first.get("runs_warned")),
        cost=_dec(first.get("total_cost")),
        top=tuple(shown),
    )


def task_budget_burn(
    ledger: Ledger, budgets: Sequence[TaskBudget], filters: Filters, *, top: int = TOP
) -> list[BudgetBurn]:
    """Every task budget: its task runs of the period against the limit, nearest to or over it first."""
    owned = budget_workflows(ledger, budgets, filters) if budgets else {}
    return [_budget_burn(ledger, b, owned.get(b.name, []), filters, top) for b in budgets]


def quota_burn(
    ledger: Ledger,
    quotas: Sequence[Quota],
    timezone: str,
    at: datetime,
    *,
    team: str | None = None,
    top: int = TOP,
) -> list[QuotaBurn]:
    """Every quota in the period containing `at`: spend per scope value against the limit.

    Args:
        ledger: The ledger.
        quotas: The quotas in force.
        timezone: IANA zone of the policy set (periods reset at its local midnight).
        at: The instant whose period is shown (tz-aware; usually now).
        team: Count only this team's calls (a team lead's view).
        top: Scope values listed per quota.
    """
    zone = ZoneInfo(timezone)
    out = []
    for quota in quotas:
        window = period_window(at, quota.period, zone)
        column = _SCOPE_COLUMN[quota.scope]
        params: list[object] = [utc_naive(window.start), utc_naive(window.end)]
        team_clause = ""
        if team is not None:
            team_clause = "AND team = ?"
            params.append(team)
        rows = ledger.query_rows(
            f"""SELECT {column} AS value, workflow, coalesce(sum(cost_total), 0) AS cost,
                       coalesce(sum(input_tokens + output_tokens), 0) AS tokens, count(*) AS calls,
                       count(*) FILTER (WHERE unpriced) AS unpriced_calls
                FROM usage_events WHERE ts >= ? AND ts < ? {team_clause} AND {column} IS NOT NULL
                GROUP BY 1, 2""",
            params,
        )
        per_value: dict[str, list[int | Decimal]] = {}
        for row in rows:
            value = str(row["value"])
            workflow = None if row["workflow"] is None else str(row["workflow"])
            if not matches(value, quota.match) or not quota.covers(workflow):
                continue
            sums = per_value.setdefault(value, [Decimal(0), 0, 0, 0])
            sums[0] += _dec(row["cost"])
            sums[1] += _int(row["tokens"])
            sums[2] += _int(row["calls"])
            sums[3] += _int(row["unpriced_calls"])
        used = []
        for value, (cost, tokens, calls, unpriced) in per_value.items():
            assert isinstance(cost, Decimal)
            share = share_of(quota.max_usd, quota.max_tokens, cost, int(tokens))
            used.append(Usage(value, cost, int(tokens), int(calls), int(unpriced), share, _state(share, quota.warn_at)))
        used.sort(key=lambda u: (-u.share, -u.cost, u.subject))
        out.append(
            QuotaBurn(
                name=quota.name,
                scope=quota.scope,
                match=quota.match,
                workflow=quota.workflow,
                period=quota.period,
                label=window.label,
                start=window.start,
                end=window.end,
                zone=zone.key,
                max_usd=quota.max_usd,
                max_tokens=quota.max_tokens,
                warn_at=quota.warn_at,
                on_exceed=quota.on_exceed,
                values=len(used),
                top=tuple(used[:top]),
            )
        )
    return out
