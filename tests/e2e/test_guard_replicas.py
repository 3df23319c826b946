"""200 concurrent calls against a $1.00 task budget: through two `tokenops serve` processes sharing
Redis, and through one process with in-process counters. Spend never passes the budget, every
refused call gets the budget error, and the ledgers hold exactly what the clients were told."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import openai
import pytest
from starlette.applications import Starlette

from tests.guard.conftest import redis_prefix, redis_url, unused_port
from tokenops.store import DuckDBLedger

__all__ = ["redis_prefix", "redis_url"]  # fixtures used below

BUDGET = Decimal("1.00")
CALLS = 200
PROMPT = "plan the next step of the migration " * 20


def _config(tmp_path: Path, name: str, fake_url: str, port: int, redis: tuple[str, str] | None) -> Path:
    backend = (
        f'[guard_backend]\nredis_url = "{redis[0]}"\nkey_prefix = "{redis[1]}"\nfail_open = false\n' if redis else ""
    )
    text = f"""
ledger = "{tmp_path / name}.duckdb"
data_dir = "{tmp_path / name}-state"

[server]
host = "127.0.0.1"
port = {port}

[gateway]
require_keys = false
upstreams = [{{ name = "fake", kind = "openai", base_url = "{fake_url}/v1", api_key_env = "FAKE_OPENAI_KEY" }}]

[pricing]
overrides = [{{ model = "guard-e2e", input_mtok = "10", output_mtok = "10" }}]

[[guard.task_budgets]]
name = "migration-task"
workflow = "migration"
max_usd = "{BUDGET}"

{backend}
"""
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return path


def _wait_healthy(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited early: {process.stderr.read().decode() if process.stderr else ''}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} did not become healthy")


class Replicas:
    """Running `tokenops serve` processes."""

    def __init__(self) -> None:
        self.urls: list[str] = []
        self.processes: list[subprocess.Popen[bytes]] = []

    def stop(self) -> None:
        """SIGTERM, as an orchestrator would: each process flushes its ledger and exits."""
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            # uvicorn shuts down gracefully, then re-raises the signal it caught
            assert process.wait(30) in (0, -signal.SIGTERM)


@pytest.fixture
def servers(request: pytest.FixtureRequest, tmp_path: Path, fake_provider: tuple[Starlette, str]) -> Iterator[Replicas]:
    """`tokenops serve` processes: two sharing Redis, or one with in-process counters."""
    shared: tuple[str, str] | None = None
    count = 1
    if request.param == "redis":
        shared = (request.getfixturevalue("redis_url"), request.getfixturevalue("redis_prefix"))
        count = 2
    env = {**os.environ, "FAKE_OPENAI_KEY": "sk-fake"}
    replicas = Replicas()
    processes, urls = replicas.processes, replicas.urls
    try:
        for i in range(count):
            port = unused_port()
            config = _config(tmp_path, f"replica{i}", fake_provider[1], port, shared)
            command = [sys.executable, "-m", "tokenops", "serve", "--config", str(config)]
            processes.append(subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
            urls.append(f"http://127.0.0.1:{port}")
        for url, process in zip(urls, processes, strict=True):
            _wait_healthy(url, process)
        yield replicas
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait(30)
            if process.stderr is not None:
                process.stderr.close()


async def _call(client: openai.AsyncOpenAI) -> tuple[Decimal | None, dict[str, object] | None]:
    """One call of the task: its cost as the gateway told the client, or the refusal body."""
    try:
        raw = await client.chat.completions.with_raw_response.create(
            model="guard-e2e",
            messages=[{"role": "user", "content": PROMPT}],
            max_tokens=600,
            extra_headers={
                "X-Tokenops-Workflow": "migration",
                "X-Tokenops-Task": "run-1",
                "x-fake-output-tokens": "500",
                "x-fake-latency-ms": "30",
            },
        )
    except openai.RateLimitError as exc:
        return None, exc.body  # type: ignore[return-value]
    return Decimal(raw.headers["x-tokenops-cost-usd"]), None


async def _storm(urls: list[str]) -> list[tuple[Decimal | None, dict[str, object] | None]]:
    clients = [openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=60) for url in urls]
    try:
        return await asyncio.gather(*(_call(clients[i % len(clients)]) for i in range(CALLS)))
    finally:
        for client in clients:
            await client.close()


@pytest.mark.parametrize("servers", ["redis", "in-process"], indirect=True)
def test_200_concurrent_calls_never_overshoot_a_one_dollar_task_budget(servers: Replicas, tmp_path: Path) -> None:
    results = asyncio.run(_storm(servers.urls))
    told = [cost for cost, _ in results if cost is not None]
    refusals = [body for cost, body in results if cost is None]
    assert sum(told, Decimal(0)) <= BUDGET
    assert len(told) > 100  # the budget was used, not refused wholesale
    assert len(told) + len(refusals) == CALLS and refusals
    for body in refusals:
        assert body is not None and body["type"] == "tokenops_task_budget_exceeded"
        assert "migration-task" in str(body["message"]) and "1" in str(body["message"])
    servers.stop()  # a server holds its ledger file; stopped, it has flushed every row
    spent, ok_rows, blocked_rows = Decimal(0), 0, 0
    for path in sorted(tmp_path.glob("replica*.duckdb")):
        with DuckDBLedger(path, read_only=True) as ledger:
            row = ledger.query_rows(
                "SELECT coalesce(sum(cost_total), 0) AS spent, count(*) FILTER (status = 'ok') AS ok, "
                "count(*) FILTER (status = 'blocked') AS blocked FROM usage_events"
            )[0]
        spent += Decimal(str(row["spent"]))
        ok_rows += int(str(row["ok"]))
        blocked_rows += int(str(row["blocked"]))
    assert (spent, ok_rows, blocked_rows) == (sum(told, Decimal(0)), len(told), len(refusals))
