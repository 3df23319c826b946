"""Signed session cookies for the dashboard, without a session table.

The cookie holds the user's name, the creation time of that user and an expiry, signed with
HMAC-SHA256 under a 256-bit secret kept in the data directory (`session.key`, mode 0600, made
on first use), so every replica sharing the data directory accepts the same sessions and a
restart signs nobody out. Nothing secret is in the cookie; it is only tamper-proof. Removing a
user, or re-creating one of the same name, invalidates their sessions because the server looks
the user up on every request.

The cookie is HttpOnly (scripts cannot read it) and SameSite=Lax, which keeps other sites from
making signed-in POSTs (the only state-changing dashboard requests are sign-in and sign-out).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

COOKIE = "tokenops_session"
MAX_AGE_S = 12 * 3600
"""A session lasts a working day."""


@dataclass(frozen=True, slots=True)
class Session:
    """What a valid cookie says."""

    user: str
    """Signed-in user's name."""
    user_created: str
    """Creation time of that user (ISO 8601), so a re-created user does not inherit old sessions."""
    expires: int
    """Unix time after which the cookie is refused."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def load_secret(data_dir: Path) -> bytes:
    """The signing secret of a data directory, created (readable by the owner only) if missing."""
    path = data_dir / "session.key"
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return bytes.fromhex(path.read_text().strip())
    secret = secrets.token_bytes(32)
    with os.fdopen(fd, "w") as out:
        out.write(secret.hex())
    return secret


class Signer:
    """Issues and checks session cookie values."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 32:
            raise ValueError("The session secret needs at least 32 bytes")
        self._secret = secret

    def _mac(self, payload: str) -> str:
        return _b64(hmac.new(self._secret, payload.encode(), hashlib.sha256).digest())

    def issue(self, user: str, user_created: str, *, now: float | None = None) -> str:
        """A cookie value for `user`, valid for MAX_AGE_S."""
        expires = int((now if now is not None else time.time()) + MAX_AGE_S)
        payload = _b64(orjson.dumps({"u": user, "c": user_created, "e": expires}))
        return f"{payload}.{self._mac(payload)}"

    def check(self, value: str, *, now: float | None = None) -> Session | None:
        """The session a cookie value carries, or None if forged, malformed or expired."""
        payload, _, mac = value.partition(".")
        if not payload or not hmac.compare_digest(mac, self._mac(payload)):
            return None
        try:
            data = orjson.loads(_unb64(payload))
            session = Session(str(data["u"]), str(data["c"]), int(data["e"]))
        except (ValueError, KeyError, TypeError):
            return None
        if session.expires < (now if now is not None else time.time()):
            return None
        return session
