"""Counters on Redis, shared by every gateway replica; each operation is one atomic Lua script.

Key layout under the prefix P (default `{tokenops}:guard:`; the hash tag keeps every key in one
Redis Cluster slot, since the scripts touch keys they compute):

    P c:<counter>     integer: settled amounts plus in-flight reservations; EXPIREs with its period
    P p               sorted set: reservation id -> release time (ms, Redis' own clock)
    P r:<id>          hash: counter -> amount reserved; `_x` once released by expiry
    P a:<marker>      alert dedupe marker (SET NX EX)

`reserve` first releases up to 64 reservations past their time (a replica that died mid-call),
then checks every charge and reserves all of them or none. `settle` applies final - reserved
(or the final amount alone if the reservation had expired and been released) and deletes the
reservation, so a second settle changes nothing. The Lua numbers are doubles: counters are
exact up to 2**53 (nano-dollars: $9M, see `policies.MAX_USD`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar, cast

import redis
import redis.asyncio
from redis.asyncio.connection import AbstractConnection
from redis.commands.core import Script

from tokenops.guard.counters import Charge, Exceeded, GuardUnavailable, Reserved

_RESERVE = """
local p, rid, ttl, n = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', p .. 'p', '-inf', now, 'LIMIT', 0, 64)
for _, id in ipairs(due) do
  local rk = p .. 'r:' .. id
  local held = redis.call('HGETALL', rk)
  for i = 1, #held, 2 do
    local ck = p .. 'c:' .. held[i]
    if held[i] ~= '_x' and redis.call('EXISTS', ck) == 1 then redis.call('DECRBY', ck, held[i + 1]) end
  end
  if #held > 0 then redis.call('HSET', rk, '_x', '1') end
  redis.call('ZREM', p .. 'p', id)
end
for i = 0, n - 1 do
  local limit = ARGV[7 + i * 4]
  if limit ~= '' then
    local value = tonumber(redis.call('GET', p .. 'c:' .. ARGV[5 + i * 4]) or '0')
    if value + tonumber(ARGV[6 + i * 4]) > tonumber(limit) then return {0, i, value} end
  end
end
local rk = p .. 'r:' .. rid
local out = {1}
for i = 0, n - 1 do
  local ck, amount = ARGV[5 + i * 4], ARGV[6 + i * 4]
  out[i + 2] = redis.call('INCRBY', p .. 'c:' .. ck, amount)
  redis.call('EXPIRE', p .. 'c:' .. ck, ARGV[8 + i * 4])
  redis.call('HINCRBY', rk, ck, amount)
end
redis.call('ZADD', p .. 'p', now + ttl * 1000, rid)
redis.call('EXPIRE', rk, ttl * 2 + 60)
return out
"""

_SETTLE = """
local p, rid, n = ARGV[1], ARGV[2], tonumber(ARGV[3])
local rk = p .. 'r:' .. rid
if redis.call('EXISTS', rk) == 0 then return false end
local released = redis.call('HEXISTS', rk, '_x') == 1
local out = {}
for i = 0, n - 1 do
  local ck, final = ARGV[4 + i * 2], tonumber(ARGV[5 + i * 2])
  local reserved = 0
  if not released then reserved = tonumber(redis.call('HGET', rk, ck) or '0') end
  if redis.call('EXISTS', p .. 'c:' .. ck) == 1 then
    out[i + 1] = redis.call('INCRBY', p .. 'c:' .. ck, final - reserved)
  else
    out[i + 1] = 0
  end
end
redis.call('DEL', rk)
redis.call('ZREM', p .. 'p', rid)
return out
"""

T = TypeVar("T")

POOL_WAIT_S = 1.0
"""Longest a call waits for a free pooled connection before the counters count as unavailable."""


class RedisCounters:
    """`Counters` on one Redis (or a Sentinel/Cluster primary), safe to share across threads and replicas.

    Sync methods use a `redis.Redis` pool; `a`-prefixed ones share one set of asyncio connections created on
    first use, bound to the event loop that first uses it (close it with `aclose` on that loop). Each of the two
    opens at most `max_connections`.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "{tokenops}:guard:",
        timeout_s: float = 0.5,
        connect_timeout_s: float = 1.0,
        max_connections: int = 32,
    ) -> None:
        self.url = url
        self.prefix = prefix
        # A bounded pool that waits for a free connection: a burst of calls must not open hundreds of
        # connections at once (their connects time out and the guard would fail open). Scripts run one at
        # a time in Redis anyway, so more connections would not add throughput.
        self._pool_options: dict[str, float | int] = {
            "max_connections": max_connections,
            "timeout": POOL_WAIT_S,
            "socket_timeout": timeout_s,
            "socket_connect_timeout": connect_timeout_s,
        }
        self._sync = redis.Redis.from_pool(redis.BlockingConnectionPool.from_url(url, **self._pool_options))
        # Both paths run these: the sync one calls them, the event loop's lane sends EVALSHA with their `.sha`
        # (redis-py's, encoded as the connections encode the script for SCRIPT LOAD).
        self._reserve: Script = self._sync.register_script(_RESERVE)
        self._settle: Script = self._sync.register_script(_SETTLE)
        self._async_lane: _AsyncLane | None = None

    def _lane(self) -> _AsyncLane:
        # One lane for every event-loop call, scripts and plain commands alike: a second connection set (a
        # `redis.asyncio.Redis` for MGET and SET) would let the event loop open up to 2x `max_connections`.
        if self._async_lane is None:
            options = self._pool_options
            self._async_lane = _AsyncLane(
                self.url,
                float(options["socket_timeout"]),
                float(options["socket_connect_timeout"]),
                int(options["max_connections"]),
            )
        return self._async_lane

    def _fail(self, exc: Exception) -> GuardUnavailable:
        return GuardUnavailable(f"Redis at {self.url!r} failed: {type(exc).__name__}: {exc}")

    def _call(self, fn: Callable[[], object]) -> object:
        try:
            return fn()
        except (redis.RedisError, OSError) as exc:
            raise self._fail(exc) from exc

    async def _acall(self, fn: Callable[[], Awaitable[T]]) -> T:
        try:
            return await fn()
        except (redis.RedisError, OSError) as exc:
            raise self._fail(exc) from exc

    def _reserve_args(self, reservation_id: str, charges: Sequence[Charge], ttl_s: int) -> list[str | int]:
        args: list[str | int] = [self.prefix, reservation_id, ttl_s, len(charges)]
        for charge in charges:
            args += [charge.key, charge.amount, "" if charge.limit is None else charge.limit, charge.ttl_s]
        return args

    def _settle_args(self, reservation_id: str, finals: Sequence[tuple[str, int]]) -> list[str | int]:
        args: list[str | int] = [self.prefix, reservation_id, len(finals)]
        for key, final in finals:
            args += [key, final]
        return args

    def _marker(self, marker: str) -> str:
        return f"{self.prefix}a:{marker}"

    def reserve(self, reservation_id: str, charges: Sequence[Charge], ttl_s: int) -> Reserved | Exceeded:
        """Check every charge against its limit and reserve all of them, or none (one script)."""
        args = self._reserve_args(reservation_id, charges, ttl_s)
        return _reserved(self._call(lambda: self._reserve(args=args)))

    def settle(self, reservation_id: str, finals: Sequence[tuple[str, int]]) -> tuple[int, ...] | None:
        """Replace a reservation by final amounts; the new values, or None if already settled."""
        args = self._settle_args(reservation_id, finals)
        return _settled(self._call(lambda: self._settle(args=args)))

    def peek(self, keys: Sequence[str]) -> tuple[int, ...]:
        """Current values (0 for unknown counters)."""
        names = [f"{self.prefix}c:{key}" for key in keys]
        return tuple(int(v or 0) for v in cast(list[bytes | None], self._call(lambda: self._sync.mget(names))))

    def mark_once(self, marker: str, ttl_s: int) -> bool:
        """SET NX: True only for the first caller across every replica."""
        return bool(self._call(lambda: self._sync.set(self._marker(marker), 1, nx=True, ex=ttl_s)))

    def close(self) -> None:
        """Close the sync pool."""
        self._sync.close()

    async def areserve(self, reservation_id: str, charges: Sequence[Charge], ttl_s: int) -> Reserved | Exceeded:
        """`reserve` on the event loop."""
        args = self._reserve_args(reservation_id, charges, ttl_s)
        return _reserved(await self._acall(lambda: self._lane().run(self._reserve, args)))

    async def asettle(self, reservation_id: str, finals: Sequence[tuple[str, int]]) -> tuple[int, ...] | None:
        """`settle` on the event loop."""
        args = self._settle_args(reservation_id, finals)
        return _settled(await self._acall(lambda: self._lane().run(self._settle, args)))

    async def apeek(self, keys: Sequence[str]) -> tuple[int, ...]:
        """`peek` on the event loop."""
        names = [f"{self.prefix}c:{key}" for key in keys]
        values = await self._acall(lambda: self._lane().execute("MGET", *names))
        return tuple(int(v or 0) for v in cast(list[bytes | None], values))

    async def amark_once(self, marker: str, ttl_s: int) -> bool:
        """`mark_once` on the event loop."""
        command = ("SET", self._marker(marker), 1, "NX", "EX", ttl_s)
        return bool(await self._acall(lambda: self._lane().execute(*command)))  # b"OK", or None if already set

    async def aclose(self) -> None:
        """Close the async connections (on the loop that used them)."""
        if self._async_lane is not None:
            await self._async_lane.aclose()
            self._async_lane = None


class _AsyncLane:
    """Commands on the event loop with as little client work as the round trip allows: the request path's calls.

    redis-py's `execute_command` costs several times the round trip's own CPU: a retry wrapper, metrics hooks,
    a blocking pool with a lock and a timer per checkout, and, with a socket timeout, `asyncio.wait_for` around
    every send (a new Task and an extra event-loop turn on Python 3.11). This keeps redis-py's connections (URL,
    AUTH, TLS, SELECT, the hiredis parser) and replaces the rest by an idle list, a semaphore for the bound and
    one `asyncio.timeout` per call.
    """

    def __init__(self, url: str, timeout_s: float, connect_timeout_s: float, max_connections: int) -> None:
        self._factory = redis.asyncio.ConnectionPool.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=connect_timeout_s
        )
        self._timeout = timeout_s
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: list[AbstractConnection] = []

    async def run(self, script: Script, args: Sequence[str | int]) -> object:
        """EVALSHA `script` (loading it if the server lacks it); its reply."""
        return await self._call(script, args)

    async def execute(self, *command: str | int) -> object:
        """One plain command; its raw reply (no redis-py response callbacks)."""
        return await self._call(None, command)

    async def _call(self, script: Script | None, args: Sequence[str | int]) -> object:
        """The reply; a connection that failed or timed out mid-call is dropped, never reused."""
        if self._slots.locked():
            try:
                async with asyncio.timeout(POOL_WAIT_S):
                    await self._slots.acquire()
            except TimeoutError:
                raise redis.ConnectionError("No connection available.") from None
        else:
            await self._slots.acquire()  # does not wait
        try:
            reused = bool(self._idle)
            conn = self._idle.pop() if reused else self._factory.make_connection()  # type: ignore[no-untyped-call]
            try:
                reply = await self._on(conn, script, args)
            except redis.ConnectionError:
                if not reused:
                    raise
                # a pooled connection the server dropped (restart, idle timeout): once more on a new one, as
                # redis-py's own retry did. Repeating is safe: a reserve repeated under the same id is settled as
                # one (its hash holds both amounts), a repeated settle finds nothing left to do, MGET only reads,
                # and a repeated SET NX whose first reply was lost answers "not first" (no alert, never two)
                conn = self._factory.make_connection()  # type: ignore[no-untyped-call]
                reply = await self._on(conn, script, args)
            self._idle.append(conn)
            return reply
        finally:
            self._slots.release()

    async def _on(self, conn: AbstractConnection, script: Script | None, args: Sequence[str | int]) -> object:
        try:
            if conn.is_connected and await conn.can_read():  # unread data or EOF: not safe to reuse
                await conn.disconnect()
            if not conn.is_connected:
                conn.socket_timeout = self._timeout  # redis-py's own timeouts bound the connect and its handshake,
                await conn.connect()  # type: ignore[no-untyped-call]
                conn.socket_timeout = None  # then the one deadline below bounds each call
            request = conn.pack_command(*args) if script is None else conn.pack_command("EVALSHA", script.sha, 0, *args)
            async with asyncio.timeout(self._timeout):
                await conn.send_packed_command(request, check_health=False)
                try:
                    return await conn.read_response()
                except redis.exceptions.NoScriptError:  # a new or flushed server: load it, once
                    if script is None:
                        raise
                    load = conn.pack_command("SCRIPT", "LOAD", script.script)
                    await conn.send_packed_command(load, check_health=False)
                    await conn.read_response()
                    await conn.send_packed_command(request, check_health=False)
                    return await conn.read_response()
        except TimeoutError:
            await conn.disconnect(nowait=True)
            raise redis.TimeoutError(f"Timeout after {self._timeout:g} s") from None
        except BaseException:
            await conn.disconnect(nowait=True)
            raise

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            await conn.disconnect()


def _reserved(reply: object) -> Reserved | Exceeded:
    values = [int(v) for v in cast(list[int], reply)]
    if values[0] == 0:
        return Exceeded(values[1], values[2])
    return Reserved(tuple(values[1:]))


def _settled(reply: object) -> tuple[int, ...] | None:
    if reply is None:
        return None
    return tuple(int(v) for v in cast(list[int], reply))
