from __future__ import annotations

import stat
from pathlib import Path

from tokenops.web.session import MAX_AGE_S, Signer, load_secret


def test_a_session_round_trips_and_expires() -> None:
    signer = Signer(b"k" * 32)
    value = signer.issue("ana", "2026-01-01T00:00:00+00:00", now=1_000)
    session = signer.check(value, now=1_000 + MAX_AGE_S - 1)
    assert session is not None and session.user == "ana"
    assert signer.check(value, now=1_000 + MAX_AGE_S + 1) is None


def test_a_tampered_or_foreign_cookie_is_refused() -> None:
    signer = Signer(b"k" * 32)
    payload, mac = signer.issue("ana", "t", now=0).split(".")
    forged = Signer(b"x" * 32).issue("admin", "t", now=0)
    assert signer.check(forged, now=0) is None
    assert signer.check(payload[:-2] + "AA." + mac, now=0) is None
    assert signer.check("not-a-cookie", now=0) is None


def test_the_secret_is_made_once_and_readable_by_the_owner_only(tmp_path: Path) -> None:
    first = load_secret(tmp_path / "state")
    assert load_secret(tmp_path / "state") == first and len(first) == 32
    assert stat.S_IMODE((tmp_path / "state" / "session.key").stat().st_mode) == 0o600
