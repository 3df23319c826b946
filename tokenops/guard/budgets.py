"""Task budgets: the total across every call of one task run, and what happens when it runs out."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from tokenops.guard.caps import TASK_TTL_S
from tokenops.guard.counters import Charge, from_nano, key_part, to_nano
from tokenops.guard.decisions import CallFacts, Metered
from tokenops.guard.policies import TaskBudget


def task_budget(facts: CallFacts, budgets: Sequence[TaskBudget]) -> TaskBudget | None:
    """The first budget covering the call's workflow, if the call belongs to a task run."""
    if facts.task_run_id is None:
        return None
    return next((b for b in budgets if b.covers(facts.workflow)), None)


def task_keys(task_run_id: str) -> tuple[str, str]:
    """Counter keys of a task run's dollars and tokens."""
    task = key_part(task_run_id)
    return f"t:{task}:usd", f"t:{task}:tok"


def downgrade_due(budget: TaskBudget, usd_nano: int, tokens: int) -> bool:
    """Whether a downgrading budget is spent past its `downgrade_at` share."""
    return budget.on_exceed == "downgrade" and share(budget, usd_nano, tokens) >= budget.downgrade_at


def share(budget: TaskBudget, usd_nano: int, tokens: int) -> Decimal:
    """The larger of the dollar and token shares spent."""
    shares = []
    if budget.max_usd is not None:
        shares.append(from_nano(usd_nano) / budget.max_usd)
    if budget.max_tokens is not None:
        shares.append(Decimal(tokens) / budget.max_tokens)
    return max(shares, default=Decimal(0))


def task_counters(facts: CallFacts, budget: TaskBudget | None, usd_nano: int, tokens: int) -> list[Metered]:
    """The task run's dollar and token counters under its budget; limits enforced only by `block`.

    Dollars are counted whenever a budget covers the run (the admission reports the task's spend),
    tokens only when the budget limits them.
    """
    if facts.task_run_id is None or budget is None:
        return []
    usd_key, tok_key = task_keys(facts.task_run_id)
    subject = f"task run {facts.task_run_id!r}"
    block = budget.on_exceed == "block"
    hint = f"start a new task run, or raise the limit of [[guard.task_budgets]] {budget.name!r}"
    usd_budget = None if budget.max_usd is None else to_nano(budget.max_usd)
    out = [
        Metered(
            Charge(usd_key, usd_nano, usd_budget if block else None, TASK_TTL_S),
            "task_budget",
            budget.name,
            "usd",
            subject,
            budget=usd_budget,
            warn_at=budget.warn_at if usd_budget is not None else None,
            hint=hint,
        )
    ]
    if budget.max_tokens is not None:
        out.append(
            Metered(
                Charge(tok_key, tokens, budget.max_tokens if block else None, TASK_TTL_S),
                "task_budget",
                budget.name,
                "tokens",
                subject,
                budget=budget.max_tokens,
                warn_at=budget.warn_at,
                hint=hint,
            )
        )
    return out
