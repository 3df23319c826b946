"""Virtual keys: what applications present to the gateway instead of provider keys.

Keys are 256-bit random secrets shown once; only their SHA-256 is stored (a slow password
hash is unnecessary for random secrets, and lookups sit on the hot path). The store is a
small SQLite file beside the ledger so `tokenops keys create` works while a server runs;
the gateway caches hits for two seconds and re-reads the file on a miss, so new keys work at
once and revoked ones stop within two seconds, without a restart.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, cast

KEY_PREFIX = "tok-"
Role = Literal["app", "admin"]
"""`app` keys call models through the gateway; `admin` keys may also change policies (the admin API)."""
_NEGATIVE_TTL_S = 1.0
_POSITIVE_TTL_S = 2.0  # a key revoked by another process is refused within this time


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """Who a virtual key belongs to."""

    key_id: str
    """Public id recorded in the ledger (`key_` + 8 hex); safe to show."""
    user: str | None
    """User the spend is charged to."""
    team: str | None
    """Team the spend is charged to."""
    name: str | None
    """Label, e.g. the application using it."""
    created_at: datetime
    """When it was created."""
    revoked: bool = False
    """Revoked keys are refused."""
    role: Role = "app"
    """What the key may do besides calling models."""


def hash_key(secret: str) -> str:
    """What is stored instead of the key."""
    return hashlib.sha256(secret.encode()).hexdigest()


class KeyStore:
    """Hashed virtual keys in SQLite, with an in-memory cache for the gateway."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[KeyInfo, float]] = {}
        self._misses: dict[str, float] = {}
        with self._connect() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS api_keys (key_id TEXT PRIMARY KEY, key_hash TEXT UNIQUE NOT NULL, "
                "user_id TEXT, team TEXT, name TEXT, created_at TEXT NOT NULL, revoked_at TEXT)"
            )
            columns = {row[1] for row in db.execute("PRAGMA table_info(api_keys)")}
            if "role" not in columns:  # key files from before roles existed
                db.execute("ALTER TABLE api_keys ADD COLUMN role TEXT NOT NULL DEFAULT 'app'")

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=10)
        try:
            with db:  # commits, or rolls back on error
                yield db
        finally:
            db.close()

    def create(
        self, *, user: str | None, team: str | None, name: str | None = None, role: Role = "app"
    ) -> tuple[KeyInfo, str]:
        """Create a key; returns its info and the secret, which is never stored or shown again."""
        secret = KEY_PREFIX + secrets.token_urlsafe(32)
        info = KeyInfo(
            key_id="key_" + secrets.token_hex(4),
            user=user,
            team=team,
            name=name,
            created_at=datetime.now(UTC),
            role=role,
        )
        with self._connect() as db:
            db.execute(
                "INSERT INTO api_keys (key_id, key_hash, user_id, team, name, created_at, role) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (info.key_id, hash_key(secret), user, team, name, info.created_at.isoformat(), role),
            )
        return info, secret

    def revoke(self, key_id: str) -> bool:
        """Refuse a key from now on; returns whether it existed."""
        with self._connect() as db:
            changed = db.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL",
                (datetime.now(UTC).isoformat(), key_id),
            ).rowcount
        with self._lock:
            self._cache = {h: entry for h, entry in self._cache.items() if entry[0].key_id != key_id}
        return bool(changed)

    def list(self) -> list[KeyInfo]:
        """Every key, newest first."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT key_id, user_id, team, name, created_at, revoked_at, role FROM api_keys "
                "ORDER BY created_at DESC"
            ).fetchall()
        return [_info(row) for row in rows]

    def lookup(self, secret: str) -> KeyInfo | None:
        """The key's owner, or None for an unknown or revoked key."""
        digest = hash_key(secret)
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and now - cached[1] < _POSITIVE_TTL_S:
            return cached[0]
        if now - self._misses.get(digest, -_NEGATIVE_TTL_S) < _NEGATIVE_TTL_S:
            return None
        with self._connect() as db:
            row = db.execute(
                "SELECT key_id, user_id, team, name, created_at, revoked_at, role FROM api_keys WHERE key_hash = ?",
                (digest,),
            ).fetchone()
        info = _info(row) if row else None
        with self._lock:
            if info is None or info.revoked:
                self._cache.pop(digest, None)
                if len(self._misses) > 10_000:
                    self._misses.clear()
                self._misses[digest] = now
                return None
            self._cache[digest] = (info, now)
        return info


def _info(row: tuple[str, str | None, str | None, str | None, str, str | None, str]) -> KeyInfo:
    key_id, user, team, name, created_at, revoked_at, role = row
    return KeyInfo(
        key_id,
        user,
        team,
        name,
        datetime.fromisoformat(created_at),
        revoked=revoked_at is not None,
        role=cast(Role, role),
    )
