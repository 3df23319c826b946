"""`Guard.admit` / `Guard.settle`: concurrency-safe admission, refusals, policy swaps, counter outages."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest

from tests.guard.conftest import MODEL, facts, pricer, unused_port
from tokenops.guard import (
    Admission,
    Guard,
    IterationCap,
    ModelRule,
    Policies,
    Quota,
    Refusal,
    TaskBudget,
    open_guard,
)
from tokenops.guard.policies import GuardBackend
from tokenops.guard.redis_counters import RedisCounters

WORST, ACTUAL = Decimal("0.02"), Decimal("0.015")
BUDGET = Policies(task_budgets=[TaskBudget(name="run-budget", max_usd=Decimal("1.00"))])


def run_200_calls(guards: list[Guard]) -> list[Admission | Refusal]:
    """200 calls of one task run from 16 threads, spread over `guards` (replicas)."""

    def call(i: int) -> Admission | Refusal:
        guard = guards[i % len(guards)]
        decision = guard.admit(facts())
        if isinstance(decision, Admission):
            guard.settle(decision, ACTUAL, 1_500)
        return decision

    with ThreadPoolExecutor(16) as pool:
        return list(pool.map(call, range(200)))


def assert_budget_held(decisions: list[Admission | Refusal], settled_total: Decimal) -> None:
    admitted = [d for d in decisions if isinstance(d, Admission)]
    refused = [d for d in decisions if isinstance(d, Refusal)]
    assert len(admitted) + len(refused) == 200
    assert len(admitted) >= 50 and refused  # 50 worst cases always fit; settling frees room for more
    assert ACTUAL * len(admitted) == settled_total <= Decimal("1.00")
    assert {(r.status, r.type, r.policy, r.limit) for r in refused} == {
        (429, "tokenops_task_budget_exceeded", "run-budget", Decimal("1.00"))
    }
    assert all(r.spent is not None and r.spent + WORST > Decimal("1.00") for r in refused)


def test_200_concurrent_calls_never_overshoot_a_task_budget() -> None:
    guard = Guard(BUDGET, pricer())
    decisions = run_200_calls([guard])
    last = guard.admit(facts())
    assert isinstance(last, Refusal) and isinstance(last.spent, Decimal)
    assert_budget_held(decisions, last.spent)


def test_the_refusal_says_what_was_spent_the_limit_and_how_to_fix_it() -> None:
    guard = Guard(BUDGET, pricer())
    for _ in range(66):
        decision = guard.admit(facts())
        assert isinstance(decision, Admission)
        guard.settle(decision, ACTUAL, 1_500)
    refusal = guard.admit(facts())
    assert isinstance(refusal, Refusal)
    assert refusal.message == (
        "Task budget 'run-budget' for task run 't1' would be exceeded: $0.99 of $1.00 spent or reserved; this call "
        "could use up to $0.02; start a new task run, or raise the limit of [[guard.task_budgets]] 'run-budget'"
    )
    assert refusal.detail() == {
        "type": "tokenops_task_budget_exceeded",
        "policy": "run-budget",
        "unit": "usd",
        "limit": "1",
        "spent": "0.99",
        "resets_at": None,
        "retry_after_s": None,
    }
    assert not refusal.retryable
    assert isinstance(guard.admit(facts(task="t2")), Admission)  # other task runs are unaffected


def test_an_agent_loop_stops_at_its_iteration_cap() -> None:
    guard = Guard(Policies(iteration_caps=[IterationCap(workflow="agent*", max_calls=12)]), pricer())
    made = 0
    for _ in range(50):
        decision = guard.admit(facts(workflow="agent_refund"))
        if isinstance(decision, Refusal):
            assert (decision.status, decision.type, decision.spent, decision.limit) == (
                429,
                "tokenops_iteration_cap",
                12,
                12,
            )
            assert "reached its cap of 12 model calls" in decision.message and "max_calls" in decision.message
            break
        guard.settle(decision, Decimal(0), 0)  # a failed call still counts as an iteration
        made += 1
    assert made == 12
    assert isinstance(guard.admit(facts(task="other", workflow="agent_refund")), Admission)


def test_a_call_refused_by_one_budget_reserves_nothing_on_the_others() -> None:
    policies = Policies(
        task_budgets=[TaskBudget(max_usd=Decimal("1.00"))],
        quotas=[Quota(name="team-day", scope="team", period="day", max_usd=Decimal("0.05"))],
    )
    guard = Guard(policies, pricer())
    for _ in range(2):
        admitted = guard.admit(facts(team="support"))
        assert isinstance(admitted, Admission) and admitted.reservation is not None
    refused = guard.admit(facts(team="support"))
    assert isinstance(refused, Refusal) and refused.type == "tokenops_quota_exceeded"
    assert guard.counters.peek(["t:t1:usd"]) == (40_000_000,)  # two worst cases; the refused call left no trace


def test_settle_releases_a_failed_unbilled_call_and_keeps_the_worst_case_of_an_unpriced_one() -> None:
    guard = Guard(BUDGET, pricer())
    failed = guard.admit(facts())
    assert isinstance(failed, Admission) and failed.task_spent_usd == WORST
    guard.settle(failed, None, 0)
    billed = guard.admit(facts())
    assert isinstance(billed, Admission) and billed.task_spent_usd == WORST
    guard.settle(billed, None, 1_800)  # billed, but its price is unknown: the worst case stays counted
    guard.settle(billed, ACTUAL, 1_800)  # a second settle of the same call changes nothing
    assert guard.counters.peek(["t:t1:usd"]) == (20_000_000,)


def test_policy_updates_take_effect_at_once() -> None:
    guard = Guard(Policies(), pricer())
    assert isinstance(guard.admit(facts(team="support")), Admission)
    guard.update(Policies(model_rules=[ModelRule(team="support", allow=["gpt-4o-mini"])]))
    assert isinstance(guard.admit(facts(team="support")), Refusal)
    assert guard.policies.model_rules[0].team == "support"


def test_a_call_with_nothing_to_count_holds_no_reservation() -> None:
    guard = Guard(BUDGET, pricer())
    decision = guard.admit(facts(task=None))
    assert decision == Admission(MODEL, None)


def test_admit_async_and_settle_async_keep_the_budget_on_an_event_loop() -> None:
    guard = Guard(BUDGET, pricer())

    async def call() -> Admission | Refusal:
        decision = await guard.admit_async(facts())
        if isinstance(decision, Admission):
            await asyncio.sleep(0)  # let other calls in while this one is in flight
            await guard.settle_async(decision, ACTUAL, 1_500)
        return decision

    async def main() -> list[Admission | Refusal]:
        return await asyncio.gather(*(call() for _ in range(200)))

    decisions = asyncio.run(main())
    assert_budget_held(decisions, ACTUAL * sum(isinstance(d, Admission) for d in decisions))


@pytest.mark.parametrize("fail_open", [True, False])
def test_unreachable_redis_fails_open_or_closed_and_says_so(fail_open: bool, caplog: pytest.LogCaptureFixture) -> None:
    url = f"redis://127.0.0.1:{unused_port()}/0"
    guard = Guard(BUDGET, pricer(), counters=RedisCounters(url), fail_open=fail_open)
    with caplog.at_level(logging.ERROR, logger="tokenops.guard.engine"):
        decision = guard.admit(facts())
        decision_async = asyncio.run(_admit_and_close(guard))
    guard.close()
    for d in (decision, decision_async):
        if fail_open:
            assert isinstance(d, Admission) and not d.enforced and d.reservation is None
            assert "limits not enforced" in d.warnings[0]
        else:
            assert isinstance(d, Refusal) and (d.status, d.type) == (503, "tokenops_guard_unavailable")
            assert "fails closed" in d.message
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 2 and all(url in e and "ConnectionError" in e for e in errors)
    assert all(("UNCHECKED" if fail_open else "fail closed") in e for e in errors)


async def _admit_and_close(guard: Guard) -> Admission | Refusal:
    try:
        return await guard.admit_async(facts())
    finally:
        await guard.counters.aclose()


def test_open_guard_builds_the_backend_from_settings() -> None:
    guard = open_guard(BUDGET, pricer())
    assert type(guard.counters).__name__ == "InProcessCounters" and guard.alerts is None and guard.fail_open
    guard.close()
    shared = open_guard(BUDGET, pricer(), GuardBackend(redis_url="redis://127.0.0.1:1/0", fail_open=False))
    assert isinstance(shared.counters, RedisCounters) and not shared.fail_open
    shared.close()
