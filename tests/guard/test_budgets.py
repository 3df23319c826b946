"""Task budgets: block, downgrade to a cheaper model, or only alert; soft warnings; token budgets."""

from __future__ import annotations

from decimal import Decimal

from tests.guard.conftest import CHEAP, MODEL, facts, pricer
from tokenops.guard import Admission, Guard, Policies, Refusal, TaskBudget


def test_downgrade_switches_to_the_cheaper_model_once_the_share_is_spent() -> None:
    budget = TaskBudget(max_usd=Decimal("0.10"), on_exceed="downgrade", downgrade_to=CHEAP, downgrade_at=Decimal("0.5"))
    guard = Guard(Policies(task_budgets=[budget]), pricer())
    models = []
    for _ in range(12):
        decision = guard.admit(facts())
        assert isinstance(decision, Admission)
        models.append(decision.model)
        guard.settle(decision, Decimal("0.02") if decision.model == MODEL else Decimal("0.002"), 2_000)
    assert models == [MODEL] * 3 + [CHEAP] * 9  # $0.06 spent after three calls: past half of $0.10
    downgraded = guard.admit(facts())
    assert isinstance(downgraded, Admission) and downgraded.downgraded_from == MODEL
    assert "downgraded to 'guard-test-mini'" in downgraded.warnings[0]


def test_a_soft_warning_comes_at_the_configured_share() -> None:
    guard = Guard(Policies(task_budgets=[TaskBudget(max_usd=Decimal("0.10"), warn_at=Decimal("0.5"))]), pricer())
    first, second, third = (guard.admit(facts()) for _ in range(3))
    assert isinstance(first, Admission) and first.warnings == () and first.task_spent_usd == Decimal("0.02")
    assert isinstance(second, Admission) and second.warnings == ()
    assert isinstance(third, Admission) and third.warnings == (
        "task budget 'task-budget' for task run 't1' is at 60% (spent or reserved: $0.06 of $0.10)",
    )


def test_an_alert_only_budget_never_blocks() -> None:
    guard = Guard(Policies(task_budgets=[TaskBudget(max_usd=Decimal("0.05"), on_exceed="alert")]), pricer())
    decisions = [guard.admit(facts()) for _ in range(5)]
    assert all(isinstance(d, Admission) for d in decisions)
    assert decisions[-1].task_spent_usd == Decimal("0.10")  # type: ignore[union-attr]


def test_a_token_budget_blocks_on_tokens() -> None:
    guard = Guard(Policies(task_budgets=[TaskBudget(name="tok", max_tokens=5_000)]), pricer())
    for _ in range(2):
        decision = guard.admit(facts())
        assert isinstance(decision, Admission)
        guard.settle(decision, Decimal("0.02"), 2_000)
    refused = guard.admit(facts())
    assert isinstance(refused, Refusal)
    assert (refused.type, refused.unit, refused.spent, refused.limit) == (
        "tokenops_task_budget_exceeded",
        "tokens",
        4_000,
        5_000,
    )
    assert "4000 tokens of 5000 tokens" in refused.message


def test_a_budget_covers_only_its_workflows_and_calls_of_a_task_run() -> None:
    guard = Guard(Policies(task_budgets=[TaskBudget(workflow="research*", max_usd=Decimal("0.01"))]), pricer())
    assert isinstance(guard.admit(facts(workflow="research_deep")), Refusal)
    assert isinstance(guard.admit(facts(workflow="triage")), Admission)
    assert isinstance(guard.admit(facts(task=None, workflow="research_deep")), Admission)
