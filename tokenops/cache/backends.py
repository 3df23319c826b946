"""Where cached answers live: in this process (a bounded LRU) or in Redis (shared by replicas).

Both store opaque bytes under a key with a TTL, behind one async interface. A backend failure
is the caller's to absorb: `CacheUnavailable` means "treat as a miss", never "fail the call".
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from tokenops.errors import TokenopsError

if TYPE_CHECKING:
    import redis.asyncio


class CacheUnavailable(TokenopsError):
    """The cache backend failed or timed out; the message says which and why."""


class CacheBackend(Protocol):
    """Bytes by key, each forgotten `ttl_s` seconds after it was stored."""

    async def get(self, key: str) -> bytes | None:
        """The stored value, or None if absent or expired."""
        ...

    async def set(self, key: str, value: bytes, ttl_s: int) -> None:
        """Store (or replace) a value."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


class MemoryBackend:
    """A least-recently-used cache bounded by bytes (keys and values), with per-entry expiry.

    Thread-safe; `clock` (monotonic seconds) is replaceable so expiry can be tested without sleeping.
    """

    def __init__(self, max_bytes: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_bytes = max_bytes
        self.clock = clock
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def size_bytes(self) -> int:
        """Bytes held now."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: str) -> bytes | None:
        now = self.clock()
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                return None
            expires, value = found
            if expires <= now:
                self._drop(key)
                return None
            self._entries.move_to_end(key)
            return value

    async def set(self, key: str, value: bytes, ttl_s: int) -> None:
        size = len(key) + len(value)
        if size > self.max_bytes:
            return
        expires = self.clock() + ttl_s
        with self._lock:
            if key in self._entries:
                self._drop(key)
            self._entries[key] = (expires, value)
            self._bytes += size
            while self._bytes > self.max_bytes:
                self._drop(next(iter(self._entries)))

    def _drop(self, key: str) -> None:
        _, value = self._entries.pop(key)
        self._bytes -= len(key) + len(value)

    async def aclose(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0


def redis_client(url: str, timeout_s: float, max_connections: int) -> redis.asyncio.Redis:
    """An asyncio client whose every wait (a free connection, connect, each reply) is bounded by `timeout_s`.

    A cache must answer fast or be skipped, so no wait may outlast the timeout.
    """
    import redis.asyncio  # imported here: only a deployment that shares its cache needs the client

    pool = redis.asyncio.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout_s,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
    )
    return redis.asyncio.Redis.from_pool(pool)


class RedisBackend:
    """Values in Redis under `prefix + key`, expiring by Redis' own TTL (`SET ... PX`).

    The asyncio client is created on first use, bound to the event loop that first uses it
    (the server's), and closed by `aclose` on that loop.
    """

    def __init__(
        self, url: str, *, prefix: str = "tokenops:cache:", timeout_s: float = 0.25, max_connections: int = 32
    ) -> None:
        self.url = url
        self.prefix = prefix
        self._timeout_s = timeout_s
        self._max_connections = max_connections
        self._client: redis.asyncio.Redis | None = None
        # imported here: only a deployment that shares its cache needs the client (~20 MB per process)
        import redis.asyncio

        self._errors: tuple[type[Exception], ...] = (redis.RedisError, OSError)

    def _redis(self) -> redis.asyncio.Redis:
        if self._client is None:
            self._client = redis_client(self.url, self._timeout_s, self._max_connections)
        return self._client

    def _fail(self, exc: Exception) -> CacheUnavailable:
        return CacheUnavailable(f"Redis cache at {self.url!r} failed: {type(exc).__name__}: {exc}")

    async def get(self, key: str) -> bytes | None:
        try:
            value = await self._redis().get(self.prefix + key)
        except self._errors as exc:
            raise self._fail(exc) from exc
        return value if isinstance(value, bytes) else None

    async def set(self, key: str, value: bytes, ttl_s: int) -> None:
        try:
            await self._redis().set(self.prefix + key, value, px=ttl_s * 1000)
        except self._errors as exc:
            raise self._fail(exc) from exc

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
