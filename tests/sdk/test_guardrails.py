"""The SDK enforces the same guardrails as the gateway, with the same policy engine."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import openai
import pytest
from starlette.applications import Starlette

import tokenops
from tests.guard.conftest import redis_prefix, redis_url
from tokenops.guard import GuardBackend, IterationCap, Policies, Quota, TaskBudget
from tokenops.sdk.runtime import Runtime
from tokenops.store import DuckDBLedger

__all__ = ["redis_prefix", "redis_url"]  # fixtures


def test_task_budget_and_iteration_cap_refuse_calls_before_they_are_made(
    tmp_path: Path, fake_provider: tuple[Starlette, str]
) -> None:
    fake_app, url = fake_provider
    policies = Policies(
        task_budgets=[TaskBudget(workflow="research", max_usd=Decimal("0.002"))],
        iteration_caps=[IterationCap(workflow="agent", max_calls=3)],
    )
    runtime = tokenops.configure(tmp_path / "app.duckdb", policies=policies)
    client = tokenops.instrument(openai.OpenAI(base_url=f"{url}/v1", api_key="x"))  # default retries stay on
    messages = [{"role": "user", "content": "find everything about this market " * 20}]
    with client:
        with tokenops.task("agent"), pytest.raises(openai.RateLimitError) as capped:
            for _ in range(50):
                client.chat.completions.create(model="gpt-4o-mini", messages=messages)
        with tokenops.task("research") as research, pytest.raises(openai.RateLimitError) as budget:
            for _ in range(50):
                client.chat.completions.create(model="gpt-4o", messages=messages, max_tokens=200)
    assert capped.value.body["type"] == "tokenops_iteration_cap"  # type: ignore[index]
    assert budget.value.body["type"] == "tokenops_task_budget_exceeded"  # type: ignore[index]
    assert research.spent <= Decimal("0.002")
    runtime.flush()
    rows = runtime.ledger.query_rows("SELECT workflow, status, cost_total FROM usage_events")
    assert sum(1 for r in rows if r["workflow"] == "agent" and r["status"] == "ok") == 3
    blocked = [r for r in rows if r["status"] == "blocked"]
    assert len(blocked) == 2 and all(r["cost_total"] == 0 for r in blocked)  # one refusal each, not retried
    assert len(fake_app.state.fake.requests) == sum(1 for r in rows if r["status"] == "ok")
    runtime.close()


def test_two_sdk_processes_share_a_quota_through_the_gateways_redis(
    tmp_path: Path, fake_provider: tuple[Starlette, str], redis_url: str, redis_prefix: str
) -> None:
    """Two runtimes on one Redis (as two application processes would be) draw on one team quota."""
    _, url = fake_provider
    policies = Policies(quotas=[Quota(name="team-day", scope="team", period="day", max_usd=Decimal("0.004"))])
    backend = GuardBackend(redis_url=redis_url, key_prefix=redis_prefix, fail_open=False)
    runtimes = [
        Runtime(
            DuckDBLedger(tmp_path / f"app{i}.duckdb"),
            spool_dir=tmp_path / f"spool{i}",
            policies=policies,
            guard_backend=backend,
            team="support",
        )
        for i in range(2)
    ]
    messages = [{"role": "user", "content": "find everything about this market " * 20}]
    spent, refused = Decimal(0), 0
    clients = [
        tokenops.instrument(openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0), runtime=r)
        for r in runtimes
    ]
    for i in range(40):
        try:
            clients[i % 2].chat.completions.create(model="gpt-4o", messages=messages, max_tokens=100)
        except openai.RateLimitError as exc:
            assert exc.body["type"] == "tokenops_quota_exceeded"  # type: ignore[index]
            refused += 1
    for runtime in runtimes:
        runtime.flush()
        spent += sum(
            (Decimal(str(r["cost_total"])) for r in runtime.ledger.query_rows("SELECT cost_total FROM usage_events")),
            Decimal(0),
        )
        runtime.close()
    # each call costs ~$0.0005 and reserves ~$0.0016: one shared counter admits ~5 calls, two would admit ~10
    assert refused > 0 and Decimal("0.002") < spent <= Decimal("0.004")
