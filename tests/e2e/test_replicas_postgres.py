"""2,000 calls through two `tokenops serve` processes on one PostgreSQL ledger and one Redis.

The real `openai` SDK (async) calls both replicas at once: streamed and non-streamed calls for four
teams, some inside task runs, and a few hundred inside one run whose $0.05 task budget (counted in
Redis) refuses the rest. Afterwards the ledger holds exactly what the clients were told: every
call the fake provider served once (no loss, no duplicate), the same total cost, the same spend
per team, per task run and in tokens, and one `blocked` row per refusal.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import openai
import orjson
import pytest
from openai.types.chat import ChatCompletionMessageParam
from starlette.applications import Starlette

from tests.e2e.test_guard_replicas import Replicas, _wait_healthy
from tests.guard.conftest import redis_prefix, redis_url, unused_port
from tests.store.conftest import fresh_database
from tokenops.analytics import spend
from tokenops.store.postgres import PostgresLedger

__all__ = ["redis_prefix", "redis_url"]  # fixtures used below

CALLS = 2_000
CONCURRENCY = 64
"""Calls in flight at once, spread over both replicas."""
MODEL = "replica-e2e"
"""Priced $10 per million tokens in and out by the config's override."""
TEAMS = ("support", "sales", "research", "platform")
CAPPED_BUDGET = Decimal("0.05")
"""Task budget of the `capped` workflow: about a hundred calls' worth."""


def replica_config(tmp_path: Path, name: str, fake_url: str, port: int, ledger: str, redis: tuple[str, str]) -> Path:
    """A replica's tokenops.toml: the shared ledger and Redis, a data directory of its own."""
    text = f"""
ledger = "{ledger}"
data_dir = "{tmp_path / name}-state"

[server]
host = "127.0.0.1"
port = {port}

[gateway]
require_keys = false
upstreams = [{{ name = "fake", kind = "openai", base_url = "{fake_url}/v1", api_key_env = "FAKE_OPENAI_KEY" }}]

[pricing]
overrides = [{{ model = "{MODEL}", input_mtok = "10", output_mtok = "10" }}]

[[guard.task_budgets]]
name = "capped-task"
workflow = "capped"
max_usd = "{CAPPED_BUDGET}"

[[guard.task_budgets]]
name = "agent-task"
workflow = "agent"
max_usd = "100"

[guard_backend]
redis_url = "{redis[0]}"
key_prefix = "{redis[1]}"
fail_open = false
redis_timeout_s = 5
"""
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return path


@pytest.fixture
def pg_ledger() -> Iterator[str]:
    """A fresh PostgreSQL database (skipped without a server locally, a failure under CI=true)."""
    with fresh_database() as dsn:
        yield dsn


@pytest.fixture
def replicas(
    tmp_path: Path, fake_provider: tuple[Starlette, str], pg_ledger: str, redis_url: str, redis_prefix: str
) -> Iterator[Replicas]:
    """Two `tokenops serve` processes sharing the PostgreSQL ledger and Redis."""
    env = {**os.environ, "FAKE_OPENAI_KEY": "sk-fake"}
    replicas = Replicas()
    try:
        for i in range(2):
            port = unused_port()
            config = replica_config(
                tmp_path, f"replica{i}", fake_provider[1], port, pg_ledger, (redis_url, redis_prefix)
            )
            command = [sys.executable, "-m", "tokenops", "serve", "--config", str(config)]
            replicas.processes.append(
                subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            )
            replicas.urls.append(f"http://127.0.0.1:{port}")
        for url, process in zip(replicas.urls, replicas.processes, strict=True):
            _wait_healthy(url, process, timeout=120)
        yield replicas
    finally:
        for process in replicas.processes:
            if process.poll() is None:
                process.kill()
                process.wait(30)
            if process.stderr is not None:
                process.stderr.close()


@dataclass(frozen=True, slots=True)
class Told:
    """What one call's client was told."""

    team: str
    task: str | None
    response_id: str | None = None
    """The completion id (None when refused)."""
    cost: Decimal | None = None
    """`X-Tokenops-Cost-USD`, or the `tokenops-cost-usd` SSE comment of a stream."""
    tokens: tuple[int, int] = (0, 0)
    """Prompt and completion tokens from the usage the client got."""
    refusal: str | None = None
    """The error type of a refused call."""


def plan(i: int) -> tuple[str, str | None, str | None, bool]:
    """Team, workflow, task run and streaming of call `i`: a fixed mix, so failures reproduce."""
    team = TEAMS[i % len(TEAMS)]
    stream = i % 3 == 0
    if i % 5 == 0:
        return team, "capped", "capped-run", stream
    if i % 5 == 1:
        return team, "agent", f"agent-run-{i % 40}", stream
    return team, None, None, stream


async def call(client: openai.AsyncOpenAI, i: int) -> Told:
    """Call `i` through `client`, returning what the gateway told it."""
    team, workflow, task, stream = plan(i)
    headers = {"X-Tokenops-Team": team, "x-fake-output-tokens": str(10 + i % 40)}
    if workflow is not None and task is not None:
        headers |= {"X-Tokenops-Workflow": workflow, "X-Tokenops-Task": task}
    messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": f"call {i}: summarise the ticket"}]
    try:
        if not stream:
            raw = await client.chat.completions.with_raw_response.create(
                model=MODEL,
                messages=messages,
                max_tokens=100,
                extra_headers=headers,
            )
            completion = raw.parse()
            usage = completion.usage
            assert usage is not None
            cost = Decimal(raw.headers["x-tokenops-cost-usd"])
            return Told(team, task, completion.id, cost, (usage.prompt_tokens, usage.completion_tokens))
        async with client.chat.completions.with_streaming_response.create(
            model=MODEL,
            messages=messages,
            max_tokens=100,
            stream=True,
            stream_options={"include_usage": True},
            extra_headers=headers,
        ) as response:
            return await _read_stream(response.iter_lines(), team, task)
    except openai.RateLimitError as exc:
        body = exc.body if isinstance(exc.body, dict) else {}
        return Told(team, task, refusal=str(body.get("type")))


async def _read_stream(lines: object, team: str, task: str | None) -> Told:
    """The id, usage and cost comment of a streamed completion, read line by line as the SDK receives them."""
    ids: set[str] = set()
    cost: Decimal | None = None
    tokens = (0, 0)
    async for line in lines:  # type: ignore[attr-defined]
        if line.startswith(": tokenops-cost-usd="):
            cost = Decimal(line.split("=", 1)[1])
        elif line.startswith("data: {"):
            chunk = orjson.loads(line.removeprefix("data: "))
            ids.add(chunk["id"])
            if chunk.get("usage"):
                tokens = (chunk["usage"]["prompt_tokens"], chunk["usage"]["completion_tokens"])
    assert len(ids) == 1 and cost is not None, (ids, cost)
    return Told(team, task, ids.pop(), cost, tokens)


async def storm(urls: list[str], calls: int = CALLS) -> list[Told]:
    """`calls` calls, alternating between the replicas, `CONCURRENCY` at a time."""
    clients = [openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=120) for url in urls]
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(i: int) -> Told:
        async with gate:
            return await call(clients[i % len(clients)], i)

    try:
        return await asyncio.gather(*(one(i) for i in range(calls)))
    finally:
        for client in clients:
            await client.close()


def _by(told: list[Told], key: str) -> dict[object, Decimal]:
    sums: dict[object, Decimal] = {}
    for t in told:
        assert t.cost is not None
        sums[getattr(t, key)] = sums.get(getattr(t, key), Decimal(0)) + t.cost
    return sums


def test_two_replicas_on_postgres_and_redis_record_every_call_once_at_the_price_told(
    replicas: Replicas, fake_provider: tuple[Starlette, str], pg_ledger: str
) -> None:
    results = asyncio.run(storm(replicas.urls))
    replicas.stop()  # SIGTERM: each replica flushes its writer before it exits

    served = [t for t in results if t.refusal is None]
    refused = [t for t in results if t.refusal is not None]
    assert {t.refusal for t in refused} == {"tokenops_task_budget_exceeded"}
    assert all(t.task == "capped-run" for t in refused) and len(served) > CALLS * 0.8
    billed = set(fake_provider[0].state.fake.billed)
    told_ids = [t.response_id for t in served]
    assert len(set(told_ids)) == len(told_ids) == len(billed) and set(told_ids) == billed

    with PostgresLedger(pg_ledger) as ledger:
        rows = ledger.query_rows(
            "SELECT request_id, status, team, task_run_id, cost_total, input_tokens, output_tokens FROM usage_events"
        )
        by_team = spend.spend_by(ledger, ["team"], filters=spend.Filters()).to_pylist()
        total = spend.summary(ledger)
    ok = [r for r in rows if r["status"] == "ok"]
    cost = {str(r["request_id"]): Decimal(str(r["cost_total"])) for r in ok}
    assert Counter(r["status"] for r in rows) == {"ok": len(served), "blocked": len(refused)}
    assert len({r["request_id"] for r in rows}) == len(rows)  # no duplicates
    assert {r["request_id"] for r in ok} == billed  # no losses: every call the provider served is in the ledger
    told_total = sum((t.cost for t in served if t.cost is not None), Decimal(0))
    assert sum(cost.values(), Decimal(0)) == told_total == total.cost
    assert total.events == len(rows)
    assert {r["team"]: r["cost"] for r in by_team} == _by(served, "team")
    per_task: dict[object, Decimal] = {}
    for r in ok:
        if r["task_run_id"] is not None:
            per_task[r["task_run_id"]] = per_task.get(r["task_run_id"], Decimal(0)) + cost[str(r["request_id"])]
    assert per_task == {k: v for k, v in _by(served, "task").items() if k is not None}
    assert per_task["capped-run"] <= CAPPED_BUDGET
    tokens = (sum(int(str(r["input_tokens"])) for r in ok), sum(int(str(r["output_tokens"])) for r in ok))
    assert tokens == (sum(t.tokens[0] for t in served), sum(t.tokens[1] for t in served))
