from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tokenops.web.users import UserStore, check_password, hash_password


def test_passwords_are_stored_as_salted_scrypt_hashes(tmp_path: Path) -> None:
    store = UserStore(tmp_path / "users.sqlite")
    _, first = store.create("ana", "viewer", password="same password")
    store.create("ben", "viewer", password="same password")
    hashes = [row[0] for row in sqlite3.connect(tmp_path / "users.sqlite").execute("SELECT password_hash FROM users")]
    assert all(h.startswith("scrypt$16384$8$1$") for h in hashes)
    assert hashes[0] != hashes[1]  # per-user salt
    assert first not in "".join(hashes)


def test_authenticate_accepts_only_the_right_password(tmp_path: Path) -> None:
    store = UserStore(tmp_path / "users.sqlite")
    user, generated = store.create("lea", "lead", "support")
    assert len(generated) >= 16
    assert store.authenticate("lea", generated) == user
    assert store.authenticate("lea", generated + "x") is None
    assert store.authenticate("nobody", generated) is None


@pytest.mark.parametrize(
    ("name", "role", "team", "message"),
    [
        ("lea", "lead", None, "give --team"),
        ("ana", "viewer", "support", "Only leads have a team"),
        ("ana", "owner", None, "Unknown role 'owner'"),
        ("a b", "viewer", None, "must be 1-64 letters"),
    ],
)
def test_bad_users_are_refused_with_the_fix(
    tmp_path: Path, name: str, role: str, team: str | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        UserStore(tmp_path / "users.sqlite").create(name, role, team)


def test_names_are_unique_and_removal_is_reported(tmp_path: Path) -> None:
    store = UserStore(tmp_path / "users.sqlite")
    store.create("ana", "admin")
    with pytest.raises(ValueError, match="exists already"):
        store.create("ana", "viewer")
    assert store.remove("ana") is True
    assert store.remove("ana") is False
    assert store.list() == []


def test_check_password_rejects_other_schemes() -> None:
    assert check_password("pw", hash_password("pw"))
    assert not check_password("pw", "md5$abc")
    assert not check_password("pw", "garbage")
