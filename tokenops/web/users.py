"""Dashboard users: who may sign in to the dashboard, with which role and team.

Passwords are people's secrets, not random keys, so unlike `tokenops.gateway.keys` they are
stored as a slow, salted hash: scrypt (RFC 7914) with a 16-byte per-user salt, its parameters
kept next to the hash so they can be raised later without invalidating old users. The store
is a small SQLite file in the data directory, so `tokenops users create` works while a server
runs; the server reads the file on every signed-in request, so a removed user is signed out
at once.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, cast, get_args

from tokenops.config import Settings

UserRole = Literal["admin", "lead", "viewer"]
"""`admin` sees and may do everything; `lead` sees only their team; `viewer` reads every team."""
USER_ROLES: tuple[str, ...] = get_args(UserRole)
_NAME = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")
# scrypt cost: 2**14 x 8 x 1 takes ~50 ms and 16 MiB, the interactive-login figure of RFC 7914 §2.
_N, _R, _P = 2**14, 8, 1


@dataclass(frozen=True, slots=True)
class User:
    """A dashboard user (never their password)."""

    name: str
    """Sign-in name."""
    role: UserRole
    """What they may see and do."""
    team: str | None
    """The one team a lead sees; None for admins and viewers."""
    created_at: datetime
    """When the user was created; sessions issued to an older user of the same name are refused."""


def hash_password(password: str, *, salt: bytes | None = None, n: int = _N, r: int = _R, p: int = _P) -> str:
    """`scrypt$n$r$p$salt$hash`, what is stored instead of the password."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=64 * 1024 * 1024, dklen=32)
    return f"scrypt${n}${r}${p}${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str) -> bool:
    """Whether `password` matches a `hash_password` result (constant-time comparison)."""
    try:
        scheme, n, r, p, salt, _ = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    again = hash_password(password, salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p))
    return hmac.compare_digest(again, stored)


def validate(name: str, role: str, team: str | None) -> UserRole:
    """Check a new user's fields; returns the role, or raises ValueError saying what to fix."""
    if not _NAME.match(name):
        raise ValueError(f"User name {name!r} must be 1-64 letters, digits, '.', '_', '@' or '-'")
    if role not in USER_ROLES:
        raise ValueError(f"Unknown role {role!r}; choose from {', '.join(USER_ROLES)}")
    if role == "lead" and not team:
        raise ValueError("A lead sees only their team: give --team")
    if role != "lead" and team:
        raise ValueError(f"Only leads have a team; a {role} sees every team (drop --team)")
    return cast(UserRole, role)


class UserStore:
    """Hashed dashboard users in SQLite."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS users (name TEXT PRIMARY KEY, role TEXT NOT NULL, team TEXT, "
                "password_hash TEXT NOT NULL, created_at TEXT NOT NULL)"
            )

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=10)
        try:
            with db:  # commits, or rolls back on error
                yield db
        finally:
            db.close()

    def create(self, name: str, role: str, team: str | None = None, password: str | None = None) -> tuple[User, str]:
        """Create a user; returns it and the password (generated when not given), which is never stored.

        Raises ValueError for a bad name, role or team, or a name already taken.
        """
        checked = validate(name, role, team)
        if password is not None and len(password) < 8:
            raise ValueError("A password needs at least 8 characters")
        secret = password if password is not None else secrets.token_urlsafe(12)
        user = User(name, checked, team or None, datetime.now(UTC))
        try:
            with self._connect() as db:
                db.execute(
                    "INSERT INTO users (name, role, team, password_hash, created_at) VALUES (?, ?, ?, ?, ?)",
                    (name, checked, user.team, hash_password(secret), user.created_at.isoformat()),
                )
        except sqlite3.IntegrityError as exc:
            raise ValueError(f"A user {name!r} exists already; remove it first with `tokenops users remove`") from exc
        return user, secret

    def get(self, name: str) -> User | None:
        """The user of that name, if any."""
        with self._connect() as db:
            row = db.execute("SELECT name, role, team, created_at FROM users WHERE name = ?", (name,)).fetchone()
        return _user(row) if row else None

    def authenticate(self, name: str, password: str) -> User | None:
        """The user if the password is theirs, else None (unknown names cost the same time)."""
        with self._connect() as db:
            row = db.execute(
                "SELECT name, role, team, created_at, password_hash FROM users WHERE name = ?", (name,)
            ).fetchone()
        if row is None:
            check_password(password, hash_password("timing"))  # no shortcut that reveals which names exist
            return None
        return _user(row[:4]) if check_password(password, row[4]) else None

    def list(self) -> list[User]:
        """Every user, by name."""
        with self._connect() as db:
            rows = db.execute("SELECT name, role, team, created_at FROM users ORDER BY name").fetchall()
        return [_user(row) for row in rows]

    def remove(self, name: str) -> bool:
        """Delete a user (their sessions stop working at once); returns whether they existed."""
        with self._connect() as db:
            return bool(db.execute("DELETE FROM users WHERE name = ?", (name,)).rowcount)


def _user(row: tuple[str, str, str | None, str]) -> User:
    name, role, team, created_at = row
    return User(name, cast(UserRole, role), team, datetime.fromisoformat(created_at))


def user_store(settings: Settings) -> UserStore:
    """The dashboard users of a deployment."""
    return UserStore(settings.data_dir / "users.sqlite")
