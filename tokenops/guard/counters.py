"""Counters behind the guard: check every limit and reserve in one atomic step, settle afterwards.

A call reserves its worst case on every counter it touches (task spend, quotas, rate windows,
call counts) before it is forwarded, or on none of them if any would go over its limit; so N
concurrent calls can never together overshoot a limit. `settle` replaces the reservation by
what the call really used. A reservation that is never settled (its process died mid-call)
is released after its TTL by the next `reserve`, so leaked reservations cannot block a budget
for ever.

Counters hold integers: tokens, calls, or nano-dollars (`to_nano`). Two backends share this
interface: `InProcessCounters` here (thread-safe) and `tokenops.guard.redis_counters.RedisCounters`
(shared by gateway replicas).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from typing import Protocol

from tokenops.errors import TokenopsError

NANO = Decimal("0.000000001")


def to_nano(usd: Decimal) -> int:
    """Dollars as whole nano-dollars, rounded up (a counter never under-counts spend)."""
    return int((usd / NANO).to_integral_value(ROUND_CEILING))


def from_nano(nano: int) -> Decimal:
    """Nano-dollars back to dollars."""
    return (Decimal(nano) * NANO).normalize()


def key_part(value: str) -> str:
    """A value made safe inside a `:`-separated counter key."""
    return value.replace("%", "%25").replace(":", "%3A")


class GuardUnavailable(TokenopsError):
    """The counters cannot be reached (Redis down or timing out); the message says why."""


@dataclass(frozen=True, slots=True)
class Charge:
    """One counter a call reserves on."""

    key: str
    """Counter name (without the backend's prefix)."""
    amount: int
    """Worst case reserved now."""
    limit: int | None
    """Refuse when the counter plus `amount` would exceed this; None only tracks."""
    ttl_s: int
    """The counter is forgotten this long after it was last charged (end of period plus grace)."""


@dataclass(frozen=True, slots=True)
class Reserved:
    """Every charge fitted and is now reserved."""

    values: tuple[int, ...]
    """Each counter after the reservation, in the order of the charges."""


@dataclass(frozen=True, slots=True)
class Exceeded:
    """A charge did not fit; nothing was reserved."""

    index: int
    """Position of the first charge over its limit."""
    value: int
    """That counter's value (settled plus in-flight reservations)."""


class Counters(Protocol):
    """A counter backend. Sync methods for threads, `a`-prefixed ones for the event loop.

    Implementations raise `GuardUnavailable` when their store cannot be reached.
    """

    def reserve(self, reservation_id: str, charges: Sequence[Charge], ttl_s: int) -> Reserved | Exceeded:
        """Check every charge against its limit and reserve all of them, or none."""
        ...

    def settle(self, reservation_id: str, finals: Sequence[tuple[str, int]]) -> tuple[int, ...] | None:
        """Replace a reservation by final amounts per counter; the new values, or None if already settled."""
        ...

    def peek(self, keys: Sequence[str]) -> tuple[int, ...]:
        """Current values (0 for unknown counters)."""
        ...

    def mark_once(self, marker: str, ttl_s: int) -> bool:
        """Set a marker; True only for the first caller (across every process sharing the store)."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...

    async def areserve(self, reservation_id: str, charges: Sequence[Charge], ttl_s: int) -> Reserved | Exceeded:
        """`reserve` without blocking the event loop."""
        ...

    async def asettle(self, reservation_id: str, finals: Sequence[tuple[str, int]]) -> tuple[int, ...] | None:
        """`settle` without blocking the event loop."""
        ...

    async def apeek(self, keys: Sequence[str]) -> tuple[int, ...]:
        """`peek` without blocking the event loop."""
        ...

    async def amark_once(self, marker: str, ttl_s: int) -> bool:
        """`mark_once` without blocking the event loop."""
        ...

    async def aclose(self) -> None:
        """Release async connections."""
        ...


@dataclass(slots=True)
class _Held:
    amounts: dict[str, int]
    """Reserved per counter."""
    due: float
    """Released at this time if not settled; forgotten one TTL later."""
    released: bool = False


class InProcessCounters:
    """Counters in this process, under one lock (the gateway's event loop and SDK threads alike).

    Its async methods run inline: nothing here waits on I/O.
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._values: dict[str, int] = {}
        self._expires: dict[str, float] = {}
        self._held: dict[str, _Held] = {}  # unsettled reservations only: as many as calls in flight
        self._markers: dict[str, float] = {}
        self._next_sweep = clock() + 1.0

    def _get(self, key: str, now: float) -> int:
        if self._expires.get(key, now) < now:
            self._values.pop(key, None)
            self._expires.pop(key, None)
        return self._values.get(key, 0)

    def _sweep(self, now: float, ttl_s: int) -> None:
        """At most once a second: release reservations past their TTL, forget expired counters."""
        self._next_sweep = now + 1.0
        for rid, held in list(self._held.items()):
            if held.due > now:
                continue
            if held.released:
                del self._held[rid]
                continue
            for key, amount in held.amounts.items():
                if key in self._values:
                    self._values[key] -= amount
            held.released, held.due = True, now + ttl_s
        for key in [k for k, when in self._expires.items() if when < now]:
            self._values.pop(key, None)
            del self._expires[key]
        for marker in [m for m, when in self._markers.items() if when < now]:
            del self._markers[marker]

    def reserve(self, reservation_id: str, charges: Sequence[Charge], ttl_s: int) -> Reserved | Exceeded:
        """Check every charge against its limit and reserve all of them, or none."""
        with self._lock:
            now = self._clock()
            if now >= self._next_sweep:
                self._sweep(now, ttl_s)
            for index, charge in enumerate(charges):
                value = self._get(charge.key, now)
                if charge.limit is not None and value + charge.amount > charge.limit:
                    return Exceeded(index, value)
            values = []
            amounts: dict[str, int] = {}
            for charge in charges:
                value = self._get(charge.key, now) + charge.amount
                self._values[charge.key] = value
                self._expires[charge.key] = now + charge.ttl_s
                amounts[charge.key] = amounts.get(charge.key, 0) + charge.amount
                values.append(value)
            self._held[reservation_id] = _Held(amounts, now + ttl_s)
            return Reserved(tuple(values))

    def settle(self, reservation_id: str, finals: Sequence[tuple[str, int]]) -> tuple[int, ...] | None:
        """Replace a reservation by final amounts per counter; the new values, or None if already settled."""
        with self._lock:
            now = self._clock()
            held = self._held.pop(reservation_id, None)
            if held is None:
                return None
            values = []
            for key, final in finals:
                reserved = 0 if held.released else held.amounts.get(key, 0)
                self._get(key, now)  # forget it if it expired: its period is over
                if key in self._values:
                    self._values[key] += final - reserved
                values.append(self._values.get(key, 0))
            return tuple(values)

    def peek(self, keys: Sequence[str]) -> tuple[int, ...]:
        """Current values (0 for unknown counters)."""
        with self._lock:
            now = self._clock()
            return tuple(self._get(key, now) for key in keys)

    def restore(self, key: str, amount: int, ttl_s: int) -> None:
        """Raise a counter to what the ledger shows was already spent (after a restart); never lowers it."""
        with self._lock:
            now = self._clock()
            if amount > self._get(key, now):
                self._values[key] = amount
            self._expires[key] = max(self._expires.get(key, 0.0), now + ttl_s)

    def mark_once(self, marker: str, ttl_s: int) -> bool:
        """Set a marker; True only for the first caller."""
        with self._lock:
            now = self._clock()
            if self._markers.get(marker, now - 1) >= now:
                return False
            self._markers[marker] = now + ttl_s
            return True

    def close(self) -> None:
        """Nothing to release."""

    async def areserve(self, reservation_id: str, charges: Sequence[Charge], ttl_s: int) -> Reserved | Exceeded:
        """`reserve`, inline."""
        return self.reserve(reservation_id, charges, ttl_s)

    async def asettle(self, reservation_id: str, finals: Sequence[tuple[str, int]]) -> tuple[int, ...] | None:
        """`settle`, inline."""
        return self.settle(reservation_id, finals)

    async def apeek(self, keys: Sequence[str]) -> tuple[int, ...]:
        """`peek`, inline."""
        return self.peek(keys)

    async def amark_once(self, marker: str, ttl_s: int) -> bool:
        """`mark_once`, inline."""
        return self.mark_once(marker, ttl_s)

    async def aclose(self) -> None:
        """Nothing to release."""
