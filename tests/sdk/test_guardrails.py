"""The SDK enforces the same guardrails as the gateway, with the same policy engine."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import openai
import pytest
from starlette.applications import Starlette

import tokenops
from tokenops.guard import IterationCap, Policies, TaskBudget


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
