from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tokenops.cli import app
from tokenops.cli.demo import demo_settings, demo_users
from tokenops.config import Settings
from tokenops.web.users import user_store

runner = CliRunner()


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_users_create_prints_a_generated_password_once_and_stores_its_hash(workdir: Path) -> None:
    result = runner.invoke(app, ["users", "create", "--name", "lea", "--role", "lead", "--team", "support"])
    assert result.exit_code == 0, result.output
    password = result.stdout.strip().splitlines()[-1]
    store = user_store(Settings(data_dir=workdir / ".tokenops"))
    assert store.authenticate("lea", password) is not None
    assert password not in (workdir / ".tokenops" / "users.sqlite").read_bytes().decode("latin-1")
    listed = json.loads(runner.invoke(app, ["users", "list", "-f", "json"]).stdout)
    assert [(u["name"], u["role"], u["team"]) for u in listed] == [("lea", "lead", "support")]


def test_users_create_reads_a_password_from_stdin(workdir: Path) -> None:
    result = runner.invoke(
        app, ["users", "create", "--name", "ana", "--role", "admin", "--password-stdin"], input="s3cret-pass\n"
    )
    assert result.exit_code == 0, result.output
    assert "s3cret-pass" not in result.stdout
    assert user_store(Settings(data_dir=workdir / ".tokenops")).authenticate("ana", "s3cret-pass") is not None


def test_users_errors_say_what_to_fix(workdir: Path) -> None:
    lead = runner.invoke(app, ["users", "create", "--name", "lea", "--role", "lead"])
    assert lead.exit_code == 2 and "give --team" in lead.stderr
    assert runner.invoke(app, ["users", "remove", "ghost"]).exit_code == 2
    runner.invoke(app, ["users", "create", "--name", "ana"])
    removed = runner.invoke(app, ["users", "remove", "ana"])
    assert removed.exit_code == 0 and "removed ana" in removed.stdout


def test_the_demo_prints_an_admin_and_a_lead_that_can_sign_in(tmp_path: Path) -> None:
    settings = demo_settings(tmp_path, tmp_path / "tokenops.duckdb", "127.0.0.1", 8787)
    demo_users(settings)
    lines = demo_users(settings)  # every start makes fresh passwords for the same two users
    assert [line.split(" / ")[0] for line in lines] == ["admin", "support-lead"]
    store = user_store(settings)
    for line in lines:
        name, rest = line.split(" / ")
        user = store.authenticate(name, rest.split(" ")[0])
        assert user is not None
    assert [(u.name, u.role, u.team) for u in store.list()] == [
        ("admin", "admin", None),
        ("support-lead", "lead", "support"),
    ]
