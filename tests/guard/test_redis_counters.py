"""Budgets shared by gateway replicas on one Redis: the same guarantees as in-process."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal

import pytest
import redis
import redis.asyncio

from tests.guard.conftest import facts, pricer, shared_counters
from tests.guard.test_engine import ACTUAL, BUDGET, assert_budget_held, run_200_calls
from tokenops.guard import Admission, Guard, Refusal
from tokenops.guard.counters import Charge, GuardUnavailable, Reserved
from tokenops.guard.redis_counters import RedisCounters


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


def test_the_event_loop_path_loads_its_script_and_survives_a_dropped_connection(
    redis_url: str, redis_prefix: str
) -> None:
    """A server without the script (restart, SCRIPT FLUSH) or that closed an idle connection costs no call."""
    counters = shared_counters(redis_url, redis_prefix)
    unseen = counters._sync.register_script(f"return 7 -- {uuid.uuid4().hex}")  # a script this server never saw

    async def main() -> None:
        try:
            assert await counters.areserve("r1", [Charge("c1", 5, 100, 60)], 60) == Reserved((5,))
            lane = counters._lane()
            assert await lane.run(unseen, []) == 7  # NOSCRIPT, SCRIPT LOAD, EVALSHA
            (pooled,) = lane._idle
            await pooled.send_command("CLIENT", "ID")
            pooled_id = await pooled.read_response()
            admin = redis.asyncio.Redis.from_url(redis_url)
            try:  # the server closes the pooled connection, as after a restart or its idle timeout
                assert await admin.client_kill_filter(_id=pooled_id) == 1
            finally:
                await admin.aclose()
            await asyncio.sleep(0.05)
            assert await counters.asettle("r1", [("c1", 3)]) == (3,)
            assert await counters.asettle("r1", [("c1", 3)]) is None
        finally:
            await counters.aclose()
            counters.close()

    asyncio.run(main())


def test_a_redis_that_never_answers_times_out_on_the_event_loop_and_frees_its_connection() -> None:
    with socket.socket() as silent:  # accepts connections (the backlog) but never reads or answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        counters = RedisCounters(f"redis://127.0.0.1:{silent.getsockname()[1]}/0", timeout_s=0.2, max_connections=1)

        async def main() -> None:
            for _ in range(2):  # the timed-out call gave its one connection slot back
                started = time.perf_counter()
                with pytest.raises(GuardUnavailable, match="Timeout"):
                    await counters.areserve("r1", [Charge("c1", 5, 100, 60)], 60)
                assert time.perf_counter() - started < 1.0
            await counters.aclose()

        asyncio.run(main())
        counters.close()


def test_a_burst_of_every_event_loop_call_opens_no_more_than_max_connections(redis_url: str, redis_prefix: str) -> None:
    """Reserves, settles, peeks and alert markers share one bound (once two sets of connections, up to 2x)."""
    name = f"tokenops-test-{uuid.uuid4().hex[:12]}"  # tells this test's connections apart in CLIENT LIST
    url = f"{redis_url}{'&' if '?' in redis_url else '?'}client_name={name}"
    counters = RedisCounters(url, prefix=redis_prefix, timeout_s=5, connect_timeout_s=5, max_connections=3)
    admin = redis.Redis.from_url(redis_url)

    async def reserve_then_settle(i: int) -> None:
        assert isinstance(await counters.areserve(f"r{i}", [Charge("c1", 2, None, 60)], 60), Reserved)
        assert await counters.asettle(f"r{i}", [("c1", 1)]) is not None

    async def main() -> None:
        try:
            await asyncio.gather(
                *(reserve_then_settle(i) for i in range(40)),
                *(counters.apeek(["c1", "c2"]) for _ in range(40)),
                *(counters.amark_once(f"m{i}", 60) for i in range(40)),
            )
            # connections stay open (idle) until aclose, so the ones listed now are every one the burst opened
            opened = [c for c in admin.client_list() if c.get("name") == name]
            assert 0 < len(opened) <= 3, f"{len(opened)} connections open for max_connections=3"
            assert await counters.apeek(["c1"]) == (40,)
        finally:
            await counters.aclose()

    try:
        asyncio.run(main())
    finally:
        counters.close()
        admin.close()
