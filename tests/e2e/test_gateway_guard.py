"""Guardrails in the gateway: refused before money is spent, in the provider's format, and on the ledger."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import anthropic
import openai
import pytest
from starlette.applications import Starlette

from tests.e2e.conftest import Gateway, gateway_settings
from tokenops.guard import IterationCap, Policies, TaskBudget
from tokenops.store import DuckDBLedger
from tokenops.testing import serve_in_thread
from tokenops.web import create_app
from tokenops.web.app import key_store

POLICIES = Policies(
    task_budgets=[
        TaskBudget(workflow="research", name="research-task", max_usd=Decimal("0.05")),
        TaskBudget(
            workflow="triage",
            max_usd=Decimal("0.004"),
            on_exceed="downgrade",
            downgrade_to="gpt-4o-mini",
            downgrade_at=Decimal("0.5"),
        ),
    ],
    iteration_caps=[IterationCap(workflow="agent", max_calls=5)],
)


@pytest.fixture
def guarded(tmp_path: Path, fake_provider: tuple[Starlette, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Gateway]:
    fake_app, fake_url = fake_provider
    settings = gateway_settings(tmp_path, fake_url).model_copy(update={"guard": POLICIES})
    ledger = DuckDBLedger(settings.ledger)
    app = create_app(settings, ledger)
    _, key = key_store(settings).create(user="ana", team="support")
    with serve_in_thread(app) as url:
        yield Gateway(url, key, ledger, app, fake_app.state.fake, fake_url, settings)
    ledger.close()


def _ask(client: openai.OpenAI, workflow: str, task: str, model: str = "gpt-4o") -> str:
    reply = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "research the market " * 40}],
        max_tokens=300,
        extra_headers={"X-Tokenops-Workflow": workflow, "X-Tokenops-Task": task},
    )
    return reply.model


def test_a_task_budget_blocks_before_spending_and_the_ledger_shows_it(guarded: Gateway) -> None:
    with openai.OpenAI(base_url=f"{guarded.url}/v1", api_key=guarded.key, max_retries=0) as client:
        made = 0
        with pytest.raises(openai.RateLimitError) as caught:
            for _ in range(100):
                _ask(client, "research", "r-1")
                made += 1
    error = caught.value.body
    assert error["type"] == "tokenops_task_budget_exceeded"  # type: ignore[index]
    assert "research-task" in error["message"] and "0.05" in error["message"]  # type: ignore[index]
    rows = guarded.rows()
    billed = [r for r in rows if r["status"] == "ok"]
    blocked = [r for r in rows if r["status"] == "blocked"]
    assert len(billed) == made > 0
    assert sum(Decimal(str(r["cost_total"])) for r in billed) <= Decimal("0.05")
    assert [(r["cost_total"], r["error_type"]) for r in blocked] == [(Decimal(0), "tokenops_task_budget_exceeded")]
    assert len(guarded.fake.requests) == made  # the refused call never reached the provider


def test_an_agent_loop_stops_at_its_iteration_cap_in_anthropic_format(guarded: Gateway) -> None:
    with anthropic.Anthropic(base_url=guarded.url, api_key=guarded.key, max_retries=0) as client:
        made = 0
        with pytest.raises(anthropic.RateLimitError) as caught:
            for _ in range(50):
                client.messages.create(
                    model="claude-haiku-4-5",
                    max_tokens=50,
                    messages=[{"role": "user", "content": "next step"}],
                    extra_headers={"X-Tokenops-Workflow": "agent", "X-Tokenops-Task": "loop-1"},
                )
                made += 1
    assert made == 5
    assert caught.value.body["error"]["type"] == "tokenops_iteration_cap"  # type: ignore[index]


def test_downgrade_really_sends_later_calls_to_the_cheaper_model(guarded: Gateway) -> None:
    with openai.OpenAI(base_url=f"{guarded.url}/v1", api_key=guarded.key, max_retries=0) as client:
        served = [_ask(client, "triage", "t-1") for _ in range(8)]
    assert served[0] == "gpt-4o" and served[-1] == "gpt-4o-mini"
    models = [r["model"] for r in guarded.rows()]
    assert set(models) == {"gpt-4o", "gpt-4o-mini"}
    assert guarded.fake.requests[-1].body["model"] == "gpt-4o-mini"


def test_downgraded_rows_keep_the_model_the_caller_asked_for(guarded: Gateway) -> None:
    with openai.OpenAI(base_url=f"{guarded.url}/v1", api_key=guarded.key, max_retries=0) as client:
        for _ in range(8):
            _ask(client, "triage", "t-2")
    downgraded = [r for r in guarded.rows() if r["model"] == "gpt-4o-mini"]
    assert downgraded and {r["model_requested"] for r in downgraded} == {"gpt-4o"}
