"""PostgreSQL for the store tests: a fresh database per use on 127.0.0.1:5432, dropped afterwards.

Without a server the tests skip locally and fail under CI (`CI=true`), where the server is part
of the environment and its absence is a broken build, not a reason to pass.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest

SERVER = "postgresql://postgres@127.0.0.1:5432"
"""The test server (trust auth); databases are created and dropped through its `postgres` database."""


def _admin() -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(f"{SERVER}/postgres", autocommit=True, connect_timeout=3)


@contextmanager
def fresh_database() -> Iterator[str]:
    """A new empty database for one test or module; yields its DSN and drops it on exit."""
    try:
        admin = _admin()
    except psycopg.OperationalError as exc:
        message = f"PostgreSQL is not reachable at {SERVER}: {exc}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    name = f"tokenops_test_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"{SERVER}/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_dsn() -> Iterator[str]:
    """DSN of a fresh PostgreSQL database, dropped after the test."""
    with fresh_database() as dsn:
        yield dsn


@pytest.fixture(scope="session")
def engine_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The chdb data directory of the whole run: the engine opens one directory per process, ever.

    Tests share it and each takes a database of its own (`chdb:DIR?database=NAME`).
    """
    return str(tmp_path_factory.mktemp("chdb"))
