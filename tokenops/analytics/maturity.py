"""Where an organisation stands on the TokenOps maturity ladder, judged from its own ledger.

The rungs, each needing the ones below:

- **Blind**: no model call is metered.
- **Metered**: calls are recorded, and at least 95% of them are priced.
- **Attributed**: at least 90% of spend names both a team and a workflow.
- **Unit-economic**: at least 80% of the workflows that spend have business outcomes linked
  (an outcome of the workflow, or one linked to a task run of it, known from `task_runs` or from
  the calls that name the run).
- **Optimized**: the three levers are in use: routing (a call served by another model than the
  one asked for, not counting a dated snapshot of an alias, or a `route` tag), caching (a call
  answered from tokenops' cache or reading provider cached tokens) and budgets (a call blocked by
  a guardrail, or task budgets or quotas configured).

Every unmet check says what to do, with names and amounts, so the next rung is a to-do list.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal, get_args

import pyarrow as pa

from tokenops.analytics.spend import Filters
from tokenops.guard.policies import Policies
from tokenops.store import Ledger

Rung = Literal["Blind", "Metered", "Attributed", "Unit-economic", "Optimized"]
RUNGS: tuple[str, ...] = get_args(Rung)
PRICED = Decimal("0.95")
ATTRIBUTED = Decimal("0.90")
WITH_OUTCOMES = Decimal("0.80")
_SHOWN = 5

# one pass over the calls, grouped by (model, model_requested): the levers are judged on the few groups
_TALLY_SQL = """
    SELECT model, model_requested,
           count(*) AS calls,
           count(*) FILTER (WHERE unpriced) AS unpriced,
           count(*) FILTER (WHERE status = 'cached') AS cached,
           count(*) FILTER (WHERE cache_read_tokens > 0) AS cache_reads,
           count(*) FILTER (WHERE status = 'blocked') AS blocked,
           count(*) FILTER (WHERE tags LIKE '%"route%') AS tagged,
           coalesce(sum(cost_total), 0) AS cost,
           coalesce(sum(cost_total) FILTER (WHERE team IS NULL OR workflow IS NULL), 0) AS unattributed
    FROM usage_events WHERE {where} GROUP BY model, model_requested
"""


@dataclass(frozen=True, slots=True)
class _Tally:
    calls: int
    unpriced: dict[str, int]
    cached: int
    cache_reads: int
    blocked: int
    routed: int
    cost: Decimal
    unattributed: Decimal


def snapshot_of(requested: str, model: str) -> bool:
    """True when `model` is a dated snapshot of the alias asked for, which is not routing.

    'gpt-4o' -> 'gpt-4o-2024-08-06' and 'claude-3-5-haiku-latest' -> 'claude-3-5-haiku-20241022' are;
    'gpt-4o' -> 'gpt-4o-mini' is not.
    """
    base = requested.removesuffix("-latest")
    return model == base or (model.startswith(base + "-") and model[len(base) + 1 : len(base) + 2].isdigit())


def _tally(ledger: Ledger, where: str, params: list[object]) -> _Tally:
    rows = ledger.query_rows(_TALLY_SQL.format(where=where), params)

    def total(key: str) -> int:
        return sum(int(str(r[key])) for r in rows)

    unpriced: dict[str, int] = {}
    routed = 0
    for r in rows:
        if int(str(r["unpriced"])):
            unpriced[str(r["model"])] = unpriced.get(str(r["model"]), 0) + int(str(r["unpriced"]))
        requested, model = r["model_requested"], str(r["model"])
        if requested is not None and requested != model and not snapshot_of(str(requested), model):
            routed += int(str(r["calls"]))
        else:
            routed += int(str(r["tagged"]))
    return _Tally(
        calls=total("calls"),
        unpriced=unpriced,
        cached=total("cached"),
        cache_reads=total("cache_reads"),
        blocked=total("blocked"),
        routed=routed,
        cost=sum((Decimal(str(r["cost"])) for r in rows), Decimal(0)),
        unattributed=sum((Decimal(str(r["unattributed"])) for r in rows), Decimal(0)),
    )


@dataclass(frozen=True, slots=True)
class Check:
    """One criterion of one rung."""

    rung: str
    """The rung it belongs to."""
    name: str
    """What is checked."""
    met: bool
    """Whether the data meets it."""
    measured: str
    """What the data shows."""
    todo: str | None
    """What to do to meet it; None when met."""


@dataclass(frozen=True, slots=True)
class Maturity:
    """The rung reached and what the next one needs."""

    level: str
    """Highest rung whose checks, and every lower rung's, are met."""
    next_rung: str | None
    """The rung above; None at the top."""
    missing: tuple[str, ...]
    """What to do to reach the next rung."""
    checks: tuple[Check, ...]
    """Every criterion, met or not."""


def maturity(ledger: Ledger, filters: Filters | None = None, policies: Policies | None = None) -> Maturity:
    """Assess the rung from the calls `filters` select (and the guard policies in force, when given)."""
    where, params = (filters or Filters()).where()
    tally = _tally(ledger, where, params)
    checks = [*_metered(tally), _attributed(ledger, where, params, tally)]
    checks += [_outcomes(ledger, where, params), *_levers(tally, policies)]
    level = RUNGS[0]
    for rung in RUNGS[1:]:
        if not all(c.met for c in checks if c.rung == rung):
            break
        level = rung
    position = RUNGS.index(level)
    next_rung = RUNGS[position + 1] if position + 1 < len(RUNGS) else None
    missing = tuple(c.todo for c in checks if c.rung == next_rung and c.todo is not None)
    return Maturity(level, next_rung, missing, tuple(checks))


def _metered(tally: _Tally) -> list[Check]:
    calls, unpriced = tally.calls, sum(tally.unpriced.values())
    recorded = Check(
        "Metered",
        "calls recorded",
        calls > 0,
        f"{calls:,} calls",
        None
        if calls
        else "no model call in the ledger: send calls through the gateway (`tokenops serve`) "
        "or import provider usage (`tokenops import`)",
    )
    share = Decimal(calls - unpriced) / calls if calls else Decimal(0)
    todo = None
    if calls and share < PRICED:
        models = sorted(tally.unpriced.items(), key=lambda m: (-m[1], m[0]))[:_SHOWN]
        named = ", ".join(f"{model!r} ({n:,} calls)" for model, n in models)
        todo = f"price {unpriced:,} unpriced calls on {named}: add price overrides (pricing.overrides) in tokenops.toml"
    priced = Check(
        "Metered", f"at least {PRICED:.0%} of calls priced", calls > 0 and share >= PRICED, _pct(share), todo
    )
    return [recorded, priced]


def _attributed(ledger: Ledger, where: str, params: list[object], tally: _Tally) -> Check:
    total, missing = tally.cost, tally.unattributed
    share = (total - missing) / total if total else Decimal(0)
    met = total > 0 and share >= ATTRIBUTED
    todo = None
    if not met:  # only now is it worth finding where the unattributed spend comes from
        rows = ledger.query_rows(
            f"""
            SELECT coalesce(api_key_id, source) AS origin, sum(cost_total) AS unattributed
            FROM usage_events WHERE {where} AND (team IS NULL OR workflow IS NULL) AND cost_total > 0
            GROUP BY coalesce(api_key_id, source) ORDER BY unattributed DESC, origin LIMIT {_SHOWN}
            """,
            params,
        )
        named = ", ".join(f"{r['origin']!r} (${Decimal(str(r['unattributed'])):,.2f})" for r in rows)
        todo = (
            f"attribute ${missing:,.2f} of ${total:,.2f} spend that lacks a team or a workflow"
            + (f", mostly from {named}" if named else "")
            + ": give keys a team (`tokenops keys create --team`) and send X-Tokenops-Workflow"
        )
    measured = f"{_pct(share)} of ${total:,.2f} spend names a team and a workflow"
    return Check("Attributed", f"at least {ATTRIBUTED:.0%} of spend attributed", met, measured, todo)


def _outcomes(ledger: Ledger, where: str, params: list[object]) -> Check:
    rows = ledger.query_rows(
        f"""SELECT workflow, coalesce(sum(cost_total), 0) AS cost FROM usage_events
        WHERE {where} AND workflow IS NOT NULL GROUP BY workflow ORDER BY cost DESC, workflow""",
        params,
    )
    direct = ledger.query_rows("SELECT DISTINCT workflow FROM outcomes WHERE workflow IS NOT NULL")
    linked = {str(r["workflow"]) for r in direct}
    rest = [str(r["workflow"]) for r in rows if r["workflow"] not in linked]
    if rest:  # outcomes credited to task runs: only the workflows still unlinked are looked up
        marks = ", ".join("?" for _ in rest)
        via_runs = ledger.query_rows(
            f"""
            SELECT DISTINCT workflow FROM task_runs
            WHERE workflow IN ({marks}) AND task_run_id IN (SELECT task_run_id FROM outcome_task_runs)
            UNION
            SELECT DISTINCT workflow FROM usage_events
            WHERE workflow IN ({marks}) AND task_run_id IN (SELECT task_run_id FROM outcome_task_runs)
            """,
            [*rest, *rest],
        )
        linked |= {str(r["workflow"]) for r in via_runs}
    unlinked = [r for r in rows if r["workflow"] not in linked]
    n, done = len(rows), len(rows) - len(unlinked)
    share = Decimal(done) / n if n else Decimal(0)
    met = n > 0 and share >= WITH_OUTCOMES
    todo = None
    if not met:
        if n == 0:
            todo = "no call names a workflow: attribute calls to workflows first"
        else:
            named = ", ".join(f"{r['workflow']} (${Decimal(str(r['cost'])):,.2f})" for r in unlinked)
            todo = (
                f"link outcomes to {len(unlinked)} of {n} workflows: {named} "
                "(POST /api/outcomes or `tokenops import outcomes`)"
            )
    name = f"at least {WITH_OUTCOMES:.0%} of workflows with outcomes"
    return Check("Unit-economic", name, met, f"{done} of {n} workflows have outcomes linked", todo)


def _levers(tally: _Tally, policies: Policies | None) -> list[Check]:
    routed, cached, reads, blocked, calls = tally.routed, tally.cached, tally.cache_reads, tally.blocked, tally.calls
    limits = 0 if policies is None else len(policies.task_budgets) + len(policies.quotas)
    routing = Check(
        "Optimized",
        "routing",
        routed > 0,
        f"{routed:,} of {calls:,} calls served by another model than requested",
        None
        if routed
        else "route calls: every call was served by the model it asked for; add model rules, escalations or "
        "task budgets with downgrade_to to the guard policies in tokenops.toml, or tag routed calls `route`",
    )
    caching = Check(
        "Optimized",
        "caching",
        cached + reads > 0,
        f"{cached:,} calls answered from cache, {reads:,} read provider-cached tokens",
        None
        if cached + reads
        else "cache: no call was answered from cache or read cached tokens; put stable prompt prefixes first "
        "and turn on provider prompt caching",
    )
    policy_text = "no policies given" if policies is None else f"{limits} task budgets and quotas configured"
    budgets = Check(
        "Optimized",
        "budgets",
        blocked > 0 or limits > 0,
        f"{blocked:,} calls blocked by a guardrail; {policy_text}",
        None
        if blocked or limits
        else "set budgets: no call was blocked and no task budget or quota is configured; "
        "add them with `tokenops budgets task` or `tokenops budgets quota`",
    )
    return [routing, caching, budgets]


def _pct(share: Decimal) -> str:
    return f"{share * 100:.1f}%"


def checks_table(result: Maturity) -> pa.Table:
    """The checks as a table for `emit`."""
    return pa.Table.from_pylist(
        [
            {"rung": c.rung, "check": c.name, "met": c.met, "measured": c.measured, "todo": c.todo}
            for c in result.checks
        ],
        schema=pa.schema(
            [
                ("rung", pa.string()),
                ("check", pa.string()),
                ("met", pa.bool_()),
                ("measured", pa.string()),
                ("todo", pa.string()),
            ]
        ),
    )
