"""Output length clamp or reject, input size limit, loop iteration cap."""

from __future__ import annotations

from decimal import Decimal

from tests.guard.conftest import facts, pricer
from tokenops.guard import Admission, Guard, InputCap, IterationCap, OutputCap, Policies, Refusal, TaskBudget


def test_output_caps_clamp_or_reject_above_the_ceiling() -> None:
    policies = Policies(
        output_caps=[
            OutputCap(workflow="summary", max_output_tokens=300),
            OutputCap(workflow="report", max_output_tokens=800, mode="reject"),
        ]
    )
    guard = Guard(policies, pricer())
    clamped = guard.admit(facts(task=None, max_out=2_000, workflow="summary"))
    assert isinstance(clamped, Admission) and clamped.max_output_tokens == 300
    unset = guard.admit(facts(task=None, max_out=None, workflow="summary"))  # no limit asked: one is set
    assert isinstance(unset, Admission) and unset.max_output_tokens == 300
    within = guard.admit(facts(task=None, max_out=200, workflow="summary"))
    assert isinstance(within, Admission) and within.max_output_tokens is None  # left as asked
    rejected = guard.admit(facts(task=None, max_out=2_000, workflow="report"))
    assert isinstance(rejected, Refusal)
    assert (rejected.status, rejected.type, rejected.limit, rejected.spent) == (400, "tokenops_output_cap", 800, 2_000)
    assert "ask for at most 800" in rejected.message
    at_ceiling = guard.admit(facts(task=None, max_out=800, workflow="report"))
    assert isinstance(at_ceiling, Admission) and at_ceiling.max_output_tokens is None


def test_a_clamp_lowers_the_worst_case_that_is_reserved() -> None:
    policies = Policies(task_budgets=[TaskBudget(max_usd=Decimal(1))], output_caps=[OutputCap(max_output_tokens=200)])
    decision = Guard(policies, pricer()).admit(facts(max_out=None))
    assert isinstance(decision, Admission) and decision.task_spent_usd == Decimal("0.012")  # 1,000 in + 200 out


def test_an_input_larger_than_the_context_limit_is_refused() -> None:
    guard = Guard(Policies(input_caps=[InputCap(workflow="rag*", max_input_tokens=800)]), pricer())
    refused = guard.admit(facts(workflow="rag_answer"))
    assert isinstance(refused, Refusal)
    assert (refused.status, refused.type, refused.limit, refused.spent) == (400, "tokenops_input_too_large", 800, 1_000)
    assert "send less context" in refused.message
    assert isinstance(guard.admit(facts(workflow="chat")), Admission)


def test_a_loop_past_its_iteration_cap_is_refused_without_counting() -> None:
    guard = Guard(Policies(iteration_caps=[IterationCap(workflow="agent", max_iterations=5)]), pricer())
    assert isinstance(guard.admit(facts(workflow="agent", iteration=5)), Admission)
    refused = guard.admit(facts(workflow="agent", iteration=6))
    assert isinstance(refused, Refusal)
    assert (refused.status, refused.type, refused.limit, refused.spent) == (429, "tokenops_iteration_cap", 5, 6)
