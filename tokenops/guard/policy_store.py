"""Where policy changes made through the admin API live, so every replica and every restart sees them.

The config file gives the starting policy set. Once an admin changes it (`PUT /api/admin/policies`,
`tokenops budgets ...`), the stored set wins until it is cleared. With Redis configured the stored
set is shared by every replica; otherwise it is a JSON file in the data directory. `PolicySync`
polls the store's version once a second and swaps the guard's policies when it changes, so a
change takes effect everywhere without a restart.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, cast

from tokenops.errors import TokenopsError
from tokenops.guard.engine import Guard
from tokenops.guard.policies import Policies

if TYPE_CHECKING:
    import redis

log = logging.getLogger(__name__)


class PolicyStoreError(TokenopsError):
    """The stored policy set cannot be read or written."""


@dataclass(frozen=True, slots=True)
class StoredPolicies:
    """A policy set saved by an admin."""

    version: int
    """Increases with every save."""
    policies: Policies
    """The set in force."""
    saved_at: datetime
    """When it was saved (UTC)."""
    saved_by: str
    """Admin key id that saved it."""


class PolicyStore(Protocol):
    """Persists the admin's policy set; `version()` is cheap enough to poll every second."""

    def version(self) -> int | None:
        """Version of the stored set, or None when none is stored (the config file's set applies)."""
        ...

    def load(self) -> StoredPolicies | None:
        """The stored set, or None."""
        ...

    def save(self, policies: Policies, saved_by: str) -> StoredPolicies:
        """Store a new set (its version is one more than the last)."""
        ...

    def clear(self) -> None:
        """Drop the stored set: the config file's policies apply again."""
        ...


def _encode(stored: StoredPolicies) -> str:
    return json.dumps(
        {
            "version": stored.version,
            "saved_at": stored.saved_at.isoformat(),
            "saved_by": stored.saved_by,
            "policies": stored.policies.model_dump(mode="json"),
        }
    )


def _decode(text: str, where: str) -> StoredPolicies:
    try:
        data = json.loads(text)
        return StoredPolicies(
            int(data["version"]),
            Policies.model_validate(data["policies"]),
            datetime.fromisoformat(data["saved_at"]),
            str(data["saved_by"]),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise PolicyStoreError(f"the stored policy set in {where} is unreadable: {exc}") from exc


class FilePolicyStore:
    """A JSON file, replaced atomically; replicas on one host share it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def version(self) -> int | None:
        stored = self.load()
        return None if stored is None else stored.version

    def load(self) -> StoredPolicies | None:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return None
        return _decode(text, repr(str(self.path)))

    def save(self, policies: Policies, saved_by: str) -> StoredPolicies:
        current = self.version() or 0
        stored = StoredPolicies(current + 1, policies, datetime.now(UTC), saved_by)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(_encode(stored))
        os.replace(tmp, self.path)
        return stored

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


_SAVE = """
local v = redis.call('HINCRBY', KEYS[1], 'version', 1)
redis.call('HSET', KEYS[1], 'doc', ARGV[1])
return v
"""


class RedisPolicyStore:
    """A Redis hash shared by every replica: `version` and the JSON `doc`, written atomically."""

    def __init__(self, url: str, prefix: str = "{tokenops}:guard:", timeout_s: float = 2.0) -> None:
        import redis  # imported here: only replicas that share policies need the client

        self.key = f"{prefix}policies"
        self._errors: tuple[type[Exception], ...] = (redis.RedisError,)
        self._redis: redis.Redis = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        self._save = self._redis.register_script(_SAVE)

    def version(self) -> int | None:
        try:
            value = self._redis.hget(self.key, "version")
        except self._errors as exc:
            raise PolicyStoreError(f"Redis: {exc}") from exc
        return None if value is None else int(value)

    def load(self) -> StoredPolicies | None:
        try:
            version, doc = cast(list[bytes | None], self._redis.hmget(self.key, ["version", "doc"]))
        except self._errors as exc:
            raise PolicyStoreError(f"Redis: {exc}") from exc
        if version is None or doc is None:
            return None
        stored = _decode(doc.decode(), f"Redis key {self.key!r}")
        return StoredPolicies(int(version), stored.policies, stored.saved_at, stored.saved_by)

    def save(self, policies: Policies, saved_by: str) -> StoredPolicies:
        draft = StoredPolicies(0, policies, datetime.now(UTC), saved_by)
        try:
            version = int(self._save(keys=[self.key], args=[_encode(draft)]))
        except self._errors as exc:
            raise PolicyStoreError(f"Redis: {exc}") from exc
        return StoredPolicies(version, policies, draft.saved_at, saved_by)

    def clear(self) -> None:
        try:
            self._redis.delete(self.key)
        except self._errors as exc:
            raise PolicyStoreError(f"Redis: {exc}") from exc

    def close(self) -> None:
        """Close the connection pool."""
        self._redis.close()


class PolicySync:
    """Keeps a guard's policies equal to the stored set (or the config file's when none is stored)."""

    def __init__(
        self,
        guard: Guard,
        store: PolicyStore,
        configured: Policies,
        interval_s: float = 1.0,
        on_change: Callable[[Policies], None] | None = None,
    ) -> None:
        self.guard = guard
        self.store = store
        self.configured = configured
        self.interval_s = interval_s
        self.on_change = on_change
        """Called with the new set after each change (e.g. to restore in-process quota counters)."""
        self.current: StoredPolicies | None = None
        self._seen: int | None = -1  # not looked yet: the first refresh always applies

    def refresh(self) -> None:
        """Apply the stored set if its version changed since the last look (blocking I/O: call off the loop)."""
        version = self.store.version()
        if version == self._seen:
            return
        stored = self.store.load() if version is not None else None
        self._put(stored)
        log.info("tokenops guard: policies now %s", f"admin version {self._seen}" if stored else "from config")

    def apply(self, stored: StoredPolicies | None) -> None:
        """Put a set just saved (or cleared) here into force at once, before the next poll."""
        self._put(stored)

    def _put(self, stored: StoredPolicies | None) -> None:
        self.current = stored
        policies = stored.policies if stored is not None else self.configured
        self.guard.update(policies)
        self._seen = None if stored is None else stored.version
        if self.on_change is not None:
            self.on_change(policies)

    async def run(self) -> None:
        """Poll until cancelled; a store outage is logged and retried, the policies in force stay."""
        while True:
            try:
                await asyncio.to_thread(self.refresh)
            except PolicyStoreError as exc:
                log.error("tokenops guard: cannot read the stored policies, keeping the current ones: %s", exc)
            await asyncio.sleep(self.interval_s)
