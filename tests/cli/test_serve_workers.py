"""`tokenops serve --workers N`: refused where workers could not share state, and on PostgreSQL + Redis every
worker answers calls, a worker killed with -9 is replaced, and every answered call lands in the ledger once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import openai
import pytest
from starlette.applications import Starlette
from typer.testing import CliRunner

from tests.e2e.conftest import fake_provider
from tests.e2e.test_guard_replicas import _wait_healthy
from tests.e2e.test_replicas_postgres import MODEL, replica_config
from tests.guard.conftest import redis_prefix, redis_url, unused_port
from tests.store.conftest import fresh_database
from tokenops.cli import app as cli
from tokenops.cli.serve import workers_refusal
from tokenops.config import Settings
from tokenops.guard import Policies
from tokenops.guard.policies import GuardBackend, IterationCap, Quota, RateLimit, TaskBudget
from tokenops.guard.policy_store import FilePolicyStore
from tokenops.store.postgres import PostgresLedger

__all__ = ["fake_provider", "redis_prefix", "redis_url"]  # fixtures used below

runner = CliRunner()
PG = "postgresql://postgres@127.0.0.1:5432/tokenops"
BUDGETS = Policies(task_budgets=[TaskBudget(name="agent-task", workflow="agent", max_usd=Decimal(5))])


def _settings(tmp_path: Path, ledger: str, policies: Policies | None = None, redis: str | None = None) -> Settings:
    guard = policies or Policies()
    return Settings(
        ledger=ledger, data_dir=tmp_path / "state", guard=guard, guard_backend=GuardBackend(redis_url=redis)
    )


def _config(tmp_path: Path, ledger: str, guard: str = "") -> Path:
    path = tmp_path / "tokenops.toml"
    path.write_text(f'ledger = "{ledger}"\ndata_dir = "{tmp_path / "state"}"\n{guard}')
    return path


# --- refusals ----------------------------------------------------------------------------------------------------


def test_a_duckdb_ledger_is_refused_with_the_migration_to_run(tmp_path: Path) -> None:
    result = runner.invoke(cli, ["serve", "--workers", "2", "--config", str(_config(tmp_path, "org.duckdb"))])
    assert result.exit_code == 2
    message = " ".join(result.output.split())
    assert "the DuckDB file 'org.duckdb' allows one writer process" in message
    assert "tokenops migrate --from duckdb:org.duckdb --to postgresql://" in message


def test_an_embedded_clickhouse_ledger_is_refused(tmp_path: Path) -> None:
    result = runner.invoke(cli, ["serve", "--workers", "3", "--config", str(_config(tmp_path, "chdb:/tmp/ch"))])
    assert result.exit_code == 2
    assert "one process per data directory" in " ".join(result.output.split())


def test_in_process_counters_with_budgets_are_refused_naming_them(tmp_path: Path) -> None:
    guard = '[[guard.task_budgets]]\nname = "agent-task"\nworkflow = "agent"\nmax_usd = "5"\n'
    result = runner.invoke(cli, ["serve", "--workers", "2", "--config", str(_config(tmp_path, PG, guard))])
    assert result.exit_code == 2
    message = " ".join(result.output.split())
    assert "task budget 'agent-task' separately in each worker" in message
    assert "up to 2 times its limit" in message and "redis_url" in message and "--allow-local-counters" in message


def test_every_counted_policy_kind_needs_shared_counters(tmp_path: Path) -> None:
    policies = Policies(
        quotas=[Quota(name="team-day", scope="team", period="day", max_usd=Decimal(10))],
        rate_limits=[RateLimit(name="rpm", requests_per_minute=60)],
        iteration_caps=[IterationCap(workflow="agent", max_calls=20)],
    )
    refusal = workers_refusal(_settings(tmp_path, PG, policies), 4)
    assert refusal is not None
    for name in ("quota 'team-day'", "rate limit 'rpm'", "iteration cap on workflow 'agent'", "4 times"):
        assert name in refusal


def test_budgets_an_admin_saved_count_too(tmp_path: Path) -> None:
    settings = _settings(tmp_path, PG)
    assert workers_refusal(settings, 2) is None
    FilePolicyStore(settings.data_dir / "policies.json").save(BUDGETS, "admin@example.com")
    assert "task budget 'agent-task'" in (workers_refusal(settings, 2) or "")


def test_shared_or_opted_in_counters_and_a_single_worker_are_accepted(tmp_path: Path) -> None:
    assert workers_refusal(_settings(tmp_path, PG, BUDGETS, redis="redis://127.0.0.1:6379/0"), 2) is None
    assert workers_refusal(_settings(tmp_path, PG, BUDGETS), 2, allow_local_counters=True) is None
    assert workers_refusal(_settings(tmp_path, "clickhouse://127.0.0.1:8123/t"), 2) is None
    assert workers_refusal(_settings(tmp_path, "org.duckdb", BUDGETS), 1) is None


def test_an_unreachable_ledger_is_reported_before_workers_start(tmp_path: Path) -> None:
    config = _config(tmp_path, f"postgresql://postgres@127.0.0.1:{unused_port()}/tokenops")
    result = runner.invoke(cli, ["serve", "--workers", "2", "--config", str(config)])
    assert result.exit_code == 2
    assert "cannot open the ledger" in result.output


# --- two workers on PostgreSQL + Redis ---------------------------------------------------------------------------


@pytest.fixture
def workers(
    tmp_path: Path, fake_provider: tuple[Starlette, str], redis_url: str, redis_prefix: str
) -> Iterator[tuple[str, str, subprocess.Popen[bytes]]]:
    """`tokenops serve --workers 2` on a fresh PostgreSQL ledger and Redis: (url, ledger, supervisor process)."""
    with fresh_database() as dsn:
        port = unused_port()
        config = replica_config(tmp_path, "workers", fake_provider[1], port, dsn, (redis_url, redis_prefix))
        command = [sys.executable, "-m", "tokenops", "serve", "--workers", "2", "--config", str(config)]
        env = {**os.environ, "FAKE_OPENAI_KEY": "sk-fake"}
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_healthy(url, process, timeout=120)
            yield url, dsn, process
        finally:
            if process.poll() is None:
                process.kill()  # the workers exit with their supervisor's socket
                process.wait(30)
            if process.stderr is not None:
                process.stderr.close()


async def _calls(url: str, first: int, count: int) -> list[tuple[str, int]]:
    """`count` calls, 16 at a time: (completion id, pid of the worker that answered) each."""
    gate = asyncio.Semaphore(16)
    async with openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=120) as client:

        async def one(i: int) -> tuple[str, int]:
            async with gate:
                raw = await client.chat.completions.with_raw_response.create(
                    model=MODEL,
                    messages=[{"role": "user", "content": f"call {i}"}],
                    max_tokens=50,
                    extra_headers={"X-Tokenops-Workflow": "agent", "X-Tokenops-Task": f"run-{i % 10}"},
                )
                return raw.parse().id, int(raw.headers["x-tokenops-worker"])

        return await asyncio.gather(*(one(first + i) for i in range(count)))


def _until_both_answer(url: str, answered: list[tuple[str, int]], first: int) -> set[int]:
    """Call in batches until two distinct workers have answered (a replacement takes a while to start)."""
    for batch in range(40):
        answered += asyncio.run(_calls(url, first + 50 * batch, 50))
        pids = {pid for _, pid in answered[-50:]}
        if len(pids) == 2:
            return pids
    raise AssertionError(f"only workers {pids} answered")


def test_two_workers_answer_and_a_killed_one_loses_nothing(
    workers: tuple[str, str, subprocess.Popen[bytes]], fake_provider: tuple[Starlette, str]
) -> None:
    url, dsn, supervisor = workers
    answered: list[tuple[str, int]] = []
    pids = _until_both_answer(url, answered, 0)
    assert supervisor.pid not in pids
    victim = min(pids)
    os.kill(victim, signal.SIGKILL)  # its latest calls may still be only in its spool segment
    replaced = _until_both_answer(url, answered, 10_000)
    assert victim not in replaced and len(replaced - pids) == 1
    supervisor.send_signal(signal.SIGTERM)
    assert supervisor.wait(60) == 0
    ids = [i for i, _ in answered]
    with PostgresLedger(dsn) as ledger:
        rows = ledger.query_rows("SELECT request_id, status FROM usage_events")
    assert len({r["request_id"] for r in rows}) == len(rows)
    assert sorted(str(r["request_id"]) for r in rows if r["status"] == "ok") == sorted(ids)
    assert set(fake_provider[0].state.fake.billed) == set(ids)
    assert {pid for _, pid in answered} == pids | replaced
