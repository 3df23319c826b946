"""The counter contract, run against both backends: all-or-nothing reservations, settle, expiry, markers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from decimal import Decimal

import pytest

from tests.guard.conftest import shared_counters
from tokenops.guard.counters import Charge, Counters, Exceeded, InProcessCounters, Reserved, from_nano, to_nano

Expire = Callable[[], None]
"""Make every reservation made so far overdue."""


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["in-process", "redis"])
def backend(request: pytest.FixtureRequest) -> Iterator[tuple[Counters, int, Expire]]:
    """(counters, a reservation TTL after which `expire()` makes reservations overdue, expire)."""
    if request.param == "in-process":
        clock = Clock()

        def advance() -> None:
            clock.now += 3_600

        yield InProcessCounters(clock=clock), 60, advance
        return
    url, prefix = request.getfixturevalue("redis_url"), request.getfixturevalue("redis_prefix")
    counters = shared_counters(url, prefix)
    yield counters, 0, lambda: None  # TTL 0: due at once, on Redis' own clock
    counters.close()


def test_money_is_counted_in_nano_dollars_rounded_up() -> None:
    assert to_nano(Decimal("0.015")) == 15_000_000
    assert to_nano(Decimal("0.0000000001")) == 1
    assert from_nano(1_000_000_000) == Decimal(1)


def test_a_reservation_is_all_or_nothing(backend: tuple[Counters, int, Expire]) -> None:
    counters = backend[0]
    assert counters.reserve("r1", [Charge("a", 60, 100, 600), Charge("b", 10, 100, 600)], 600) == Reserved((60, 10))
    # fits "b" but not "a": nothing at all is reserved
    assert counters.reserve("r2", [Charge("b", 10, 100, 600), Charge("a", 50, 100, 600)], 600) == Exceeded(1, 60)
    assert counters.peek(["a", "b", "never"]) == (60, 10, 0)
    assert counters.reserve("r3", [Charge("a", 1_000, None, 600)], 600) == Reserved((1_060,))  # tracked, no limit


def test_settle_replaces_the_reservation_once(backend: tuple[Counters, int, Expire]) -> None:
    counters = backend[0]
    counters.reserve("r1", [Charge("usd", 20, 100, 600), Charge("calls", 1, 5, 600)], 600)
    assert counters.settle("r1", [("usd", 15), ("calls", 1)]) == (15, 1)
    assert counters.settle("r1", [("usd", 15), ("calls", 1)]) is None  # a second settle changes nothing
    assert counters.peek(["usd", "calls"]) == (15, 1)


def test_a_reservation_never_settled_is_released_after_its_ttl(backend: tuple[Counters, int, Expire]) -> None:
    counters, ttl, expire = backend
    counters.reserve("dead", [Charge("usd", 90, 100, 600)], ttl)  # its replica died mid-call
    expire()
    assert counters.reserve("next", [Charge("usd", 90, 100, 600)], ttl) == Reserved((90,))
    # the late call's real cost still lands (its reservation was already released)
    assert counters.settle("dead", [("usd", 40)]) == (130,)


def test_alert_markers_are_set_once(backend: tuple[Counters, int, Expire]) -> None:
    counters = backend[0]
    assert counters.mark_once("budget:80", 60) is True
    assert counters.mark_once("budget:80", 60) is False
    assert counters.mark_once("budget:100", 60) is True


def test_async_methods_match_the_sync_ones(backend: tuple[Counters, int, Expire]) -> None:
    counters = backend[0]

    async def run() -> None:
        try:
            assert await counters.areserve("r1", [Charge("x", 5, 10, 60)], 600) == Reserved((5,))
            assert await counters.areserve("r2", [Charge("x", 6, 10, 60)], 600) == Exceeded(0, 5)
            assert await counters.asettle("r1", [("x", 2)]) == (2,)
            assert await counters.apeek(["x"]) == (2,)
            assert await counters.amark_once("m", 60) is True
            assert await counters.amark_once("m", 60) is False
        finally:
            await counters.aclose()

    asyncio.run(run())


def test_in_process_counters_forget_a_finished_period() -> None:
    clock = Clock()
    counters = InProcessCounters(clock=clock)
    counters.reserve("r1", [Charge("rl:minute-1", 3, 3, 120)], 600)
    counters.settle("r1", [("rl:minute-1", 3)])
    clock.now += 121
    assert counters.peek(["rl:minute-1"]) == (0,)
    assert counters.reserve("r2", [Charge("rl:minute-1", 3, 3, 120)], 600) == Reserved((3,))
