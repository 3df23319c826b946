"""Where the semantic cache keeps request vectors and answers: in this process, or in Redis for every replica.

Entries are grouped by *bucket* (the tenant and everything of the request that must match exactly);
a lookup reads the bucket's entries and scores them by brute force, so each bucket is bounded
(`max_entries_per_scope`, newest kept). Redis holds a bucket as one list of records (vectors and
texts, `RPUSH` + `LTRIM`) and each answer under its own key with the TTL (`SET ... PX`), so a
lookup reads the small records of one bucket and then one answer.
"""

from __future__ import annotations

import struct
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import orjson
import redis
import redis.asyncio

from tokenops.cache.backends import CacheUnavailable, redis_client
from tokenops.cache.embed import DIMENSION, Vectors


@dataclass(frozen=True, slots=True)
class Record:
    """One cached request, as the search sees it."""

    id: str
    """Names its answer."""
    texts: tuple[str, ...]
    """The last user message, then the earlier turns (one text, or none for a single-turn request)."""
    vectors: Vectors
    """One unit vector per text, shape `(len(texts), 384)`."""
    expires: float
    """Unix seconds after which it is not served."""
    turns: tuple[str, ...] = ()
    """Every turn of a multi-turn request, oldest first (compared one by one by the guards); () for one turn."""

    def dumps(self) -> bytes:
        """Header length, JSON header, then the float32 vectors."""
        head = orjson.dumps(
            {"id": self.id, "texts": list(self.texts), "expires": self.expires, "turns": list(self.turns)}
        )
        return struct.pack("<I", len(head)) + head + np.ascontiguousarray(self.vectors, dtype="<f4").tobytes()

    @classmethod
    def loads(cls, raw: bytes) -> Record | None:
        """None for a record this version cannot read."""
        try:
            (size,) = struct.unpack_from("<I", raw)
            head = orjson.loads(raw[4 : 4 + size])
            texts = tuple(str(t) for t in head["texts"])
            vectors = np.frombuffer(raw[4 + size :], dtype="<f4").reshape(len(texts), DIMENSION)
            turns = tuple(str(t) for t in head.get("turns", ()))
            return cls(str(head["id"]), texts, vectors, float(head["expires"]), turns)
        except (struct.error, orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return None


def new_record(texts: tuple[str, ...], vectors: Vectors, ttl_s: int, turns: tuple[str, ...] = ()) -> Record:
    """A record for a request just answered."""
    return Record(uuid.uuid4().hex, texts, vectors, time.time() + ttl_s, turns if len(turns) > 1 else ())


class VectorIndex(Protocol):
    """Records by bucket, answers by record id."""

    async def records(self, bucket: str) -> list[Record]:
        """The bucket's unexpired records, oldest first."""
        ...

    async def answer(self, bucket: str, record_id: str) -> bytes | None:
        """The stored answer of a record (None once expired)."""
        ...

    async def add(self, bucket: str, record: Record, answer: bytes, ttl_s: int) -> None:
        """Keep a record and its answer for `ttl_s` seconds."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


class MemoryIndex:
    """In this process: at most `per_bucket` records per bucket and `max_entries` in all (oldest dropped first)."""

    def __init__(self, per_bucket: int, max_entries: int, *, clock: Callable[[], float] = time.time) -> None:
        self.per_bucket = per_bucket
        self.max_entries = max_entries
        self.clock = clock
        self._buckets: dict[str, OrderedDict[str, tuple[Record, bytes]]] = {}
        self._order: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._order)

    async def records(self, bucket: str) -> list[Record]:
        now = self.clock()
        with self._lock:
            found = self._buckets.get(bucket)
            return [record for record, _ in found.values() if record.expires > now] if found else []

    async def answer(self, bucket: str, record_id: str) -> bytes | None:
        with self._lock:
            entries = self._buckets.get(bucket)
            found = entries.get(record_id) if entries is not None else None
        if found is None or found[0].expires <= self.clock():
            return None
        return found[1]

    async def add(self, bucket: str, record: Record, answer: bytes, ttl_s: int) -> None:
        with self._lock:
            entries = self._buckets.setdefault(bucket, OrderedDict())
            entries[record.id] = (record, answer)
            self._order[(bucket, record.id)] = None
            while len(entries) > self.per_bucket:
                self._drop(bucket, next(iter(entries)))
            while len(self._order) > self.max_entries:
                self._drop(*next(iter(self._order)))

    def _drop(self, bucket: str, record_id: str) -> None:
        self._order.pop((bucket, record_id), None)
        entries = self._buckets[bucket]
        entries.pop(record_id, None)
        if not entries:
            del self._buckets[bucket]

    async def aclose(self) -> None:
        with self._lock:
            self._buckets.clear()
            self._order.clear()


class RedisIndex:
    """Shared by replicas: `{prefix}{bucket}` is a list of records, `{prefix}{bucket}:{id}` an answer."""

    def __init__(
        self, url: str, *, prefix: str, per_bucket: int, timeout_s: float = 0.25, max_connections: int = 32
    ) -> None:
        self.url = url
        self.prefix = prefix
        self.per_bucket = per_bucket
        self._timeout_s = timeout_s
        self._max_connections = max_connections
        self._client: redis.asyncio.Redis | None = None

    def _redis(self) -> redis.asyncio.Redis:
        if self._client is None:
            self._client = redis_client(self.url, self._timeout_s, self._max_connections)
        return self._client

    def _fail(self, exc: Exception) -> CacheUnavailable:
        return CacheUnavailable(f"Redis semantic cache at {self.url!r} failed: {type(exc).__name__}: {exc}")

    async def records(self, bucket: str) -> list[Record]:
        try:
            raw = await self._redis().lrange(self.prefix + bucket, 0, -1)
        except (redis.RedisError, OSError) as exc:
            raise self._fail(exc) from exc
        now = time.time()
        loaded = (Record.loads(item) for item in raw if isinstance(item, bytes))
        return [record for record in loaded if record is not None and record.expires > now]

    async def answer(self, bucket: str, record_id: str) -> bytes | None:
        try:
            value = await self._redis().get(f"{self.prefix}{bucket}:{record_id}")
        except (redis.RedisError, OSError) as exc:
            raise self._fail(exc) from exc
        return value if isinstance(value, bytes) else None

    async def add(self, bucket: str, record: Record, answer: bytes, ttl_s: int) -> None:
        key = self.prefix + bucket
        try:
            async with self._redis().pipeline(transaction=True) as pipe:
                pipe.set(f"{key}:{record.id}", answer, px=ttl_s * 1000)
                pipe.rpush(key, record.dumps())
                pipe.ltrim(key, -self.per_bucket, -1)
                pipe.pexpire(key, ttl_s * 1000)  # the list outlives none of its answers by more than one TTL
                await pipe.execute()
        except (redis.RedisError, OSError) as exc:
            raise self._fail(exc) from exc

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
