"""Budgets shared by gateway replicas on one Redis: the same guarantees as in-process."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from decimal import Decimal

import pytest
import redis

from tests.guard.conftest import facts, pricer, shared_counters
from tests.guard.test_engine import ACTUAL, BUDGET, assert_budget_held, run_200_calls
from tokenops.guard import Admission, Guard, Refusal
from tokenops.guard.counters import Charge


@pytest.fixture
def replicas(redis_url: str, redis_prefix: str) -> Iterator[list[Guard]]:
    """Two guards with their own connections to one Redis, like two gateway replicas."""
    guards = [Guard(BUDGET, pricer(), counters=shared_counters(redis_url, redis_prefix)) for _ in range(2)]
    yield guards
    for guard in guards:
        guard.close()


def _settled(guard: Guard) -> Decimal:
    return Decimal(guard.counters.peek(["t:t1:usd"])[0]) / 10**9


def test_200_concurrent_calls_on_two_replicas_never_overshoot_a_shared_budget(replicas: list[Guard]) -> None:
    decisions = run_200_calls(replicas)
    assert_budget_held(decisions, _settled(replicas[0]))


def test_200_concurrent_async_calls_on_two_replicas_never_overshoot_a_shared_budget(replicas: list[Guard]) -> None:
    async def call(guard: Guard) -> Admission | Refusal:
        decision = await guard.admit_async(facts())
        if isinstance(decision, Admission):
            await guard.settle_async(decision, ACTUAL, 1_500)
        return decision

    async def main() -> list[Admission | Refusal]:
        try:
            return await asyncio.gather(*(call(replicas[i % 2]) for i in range(200)))
        finally:
            for guard in replicas:
                await guard.counters.aclose()

    decisions = asyncio.run(main())
    assert_budget_held(decisions, _settled(replicas[0]))


def test_a_replica_that_dies_mid_call_blocks_the_budget_only_until_its_reservations_expire(
    redis_url: str, redis_prefix: str
) -> None:
    dying = Guard(BUDGET, pricer(), counters=shared_counters(redis_url, redis_prefix), reservation_ttl_s=0)
    healthy = Guard(BUDGET, pricer(), counters=shared_counters(redis_url, redis_prefix))
    try:
        for _ in range(50):  # 50 worst cases of $0.02 fill the $1.00 budget; none is ever settled
            assert isinstance(dying.admit(facts()), Admission)
        # the next admission releases the overdue reservations first (on Redis' clock), then fits
        decision = healthy.admit(facts())
        assert isinstance(decision, Admission) and decision.task_spent_usd == Decimal("0.02")
    finally:
        dying.close()
        healthy.close()


def test_keys_expire_with_their_period_and_reservations_are_bounded(redis_url: str, redis_prefix: str) -> None:
    counters = shared_counters(redis_url, redis_prefix)
    client = redis.Redis.from_url(redis_url)
    try:
        counters.reserve("r1", [Charge("q:team-day:support:2026-11-02:usd", 5, 100, 3_600)], 900)
        assert 3_590 <= client.ttl(f"{redis_prefix}c:q:team-day:support:2026-11-02:usd") <= 3_600
        assert 1_800 < client.ttl(f"{redis_prefix}r:r1") <= 1_860
        assert client.zscore(f"{redis_prefix}p", "r1") is not None
        counters.settle("r1", [("q:team-day:support:2026-11-02:usd", 4)])
        assert not client.exists(f"{redis_prefix}r:r1") and client.zscore(f"{redis_prefix}p", "r1") is None
    finally:
        counters.close()
        client.close()
