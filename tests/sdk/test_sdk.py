"""The SDK: an agent loop inside `tokenops.task(...)`, directly and through the gateway."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC
from decimal import Decimal
from pathlib import Path

import anthropic
import openai
import pytest
from starlette.applications import Starlette

import tokenops
from tests.e2e.conftest import Gateway
from tokenops.events import TokenUsage
from tokenops.pricing import Priced, Pricer
from tokenops.sdk.runtime import Runtime

STEPS = ["plan the refund", "look up the order", "check the policy", "draft the reply", "validate the reply"]


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    rt = tokenops.configure(tmp_path / "app.duckdb")
    yield rt
    rt.close()


def _agent(client: openai.OpenAI) -> list[str]:
    ids = []
    with tokenops.task("refund_agent", user="ana", team="support", customer="acme") as t:
        for step in STEPS:
            reply = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": step}])
            ids.append(reply.id)
        t.outcome("refund_issued", value=Decimal("42.00"))
    return ids


def _rows(runtime: Runtime) -> list[dict[str, object]]:
    runtime.flush()
    return runtime.ledger.query_rows("SELECT * FROM usage_events ORDER BY iteration")


def test_agent_loop_gives_one_task_run_n_attributed_calls_their_cost_and_the_outcome(
    runtime: Runtime, fake_provider: tuple[Starlette, str]
) -> None:
    _, url = fake_provider
    client = tokenops.instrument(openai.OpenAI(base_url=f"{url}/v1", api_key="sk-direct"))
    with client:
        ids = _agent(client)
    rows = _rows(runtime)
    (run,) = runtime.ledger.query_rows("SELECT * FROM task_runs")
    assert run["status"] == "completed" and run["workflow"] == "refund_agent"
    assert [r["request_id"] for r in rows] == ids
    assert [r["iteration"] for r in rows] == [1, 2, 3, 4, 5]
    assert {(r["task_run_id"], r["workflow"], r["user_id"], r["team"], r["customer"], r["source"]) for r in rows} == {
        (run["task_run_id"], "refund_agent", "ana", "support", "acme", "sdk")
    }
    expected = Decimal(0)
    for r in rows:
        priced = Pricer().price(
            "gpt-4o",
            TokenUsage(input_tokens=r["input_tokens"], output_tokens=r["output_tokens"]),  # type: ignore[arg-type]
            provider="openai",
            ts=r["ts"].replace(tzinfo=UTC),  # type: ignore[union-attr]
        )
        assert isinstance(priced, Priced)
        expected += priced.cost.total
    assert sum(Decimal(str(r["cost_total"])) for r in rows) == expected.quantize(Decimal("1e-12"))
    (link,) = runtime.ledger.query_rows(
        "SELECT o.outcome_type, o.value, l.task_run_id FROM outcomes o JOIN outcome_task_runs l USING (outcome_id)"
    )
    assert link == {"outcome_type": "refund_issued", "value": Decimal("42"), "task_run_id": run["task_run_id"]}


def test_the_same_loop_through_the_gateway_gives_identical_rows_and_no_double_count(
    runtime: Runtime, gateway: Gateway, fake_provider: tuple[Starlette, str]
) -> None:
    _, url = fake_provider
    with tokenops.instrument(openai.OpenAI(base_url=f"{url}/v1", api_key="sk-direct")) as direct:
        _agent(direct)
    sdk_rows = _rows(runtime)
    with tokenops.instrument(openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=gateway.key)) as via:
        _agent(via)
    assert len(_rows(runtime)) == len(STEPS), "the SDK counted calls the gateway already metered"
    gateway_rows = gateway.rows()
    columns = ("input_tokens", "output_tokens", "cost_total", "workflow", "iteration", "user_id", "team", "customer")
    assert [tuple(r[c] for c in columns) for r in gateway_rows] == [tuple(r[c] for c in columns) for r in sdk_rows]
    runs = runtime.ledger.query_rows("SELECT task_run_id, status FROM task_runs ORDER BY started_at")
    assert [r["status"] for r in runs] == ["completed", "completed"]
    assert {r["task_run_id"] for r in gateway_rows} == {runs[1]["task_run_id"]}


def test_a_failing_task_is_recorded_failed_and_the_error_propagates(runtime: Runtime) -> None:
    with pytest.raises(ValueError, match="boom"), tokenops.task("triage"):
        raise ValueError("boom")
    (run,) = runtime.ledger.query_rows("SELECT status, ended_at FROM task_runs")
    assert run["status"] == "failed" and run["ended_at"] is not None


def test_streams_are_metered_once_and_clients_see_what_they_asked_for(
    runtime: Runtime, fake_provider: tuple[Starlette, str]
) -> None:
    _, url = fake_provider
    with tokenops.instrument(openai.OpenAI(base_url=f"{url}/v1", api_key="x")) as client, tokenops.task("chat"):
        chunks = list(
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True
            )
        )
    assert all(c.usage is None for c in chunks)  # the usage chunk the SDK asked for is hidden
    (row,) = _rows(runtime)
    assert row["request_id"] == chunks[0].id and row["output_tokens"] > 0 and row["estimated"] is False


@pytest.mark.anyio
async def test_async_decorated_task_crosses_await(runtime: Runtime, fake_provider: tuple[Starlette, str]) -> None:
    _, url = fake_provider
    client = tokenops.instrument(openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="x"))

    @tokenops.task("summarise", team="marketing")
    async def summarise(text: str) -> str:
        reply = await client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": text}])
        stream = await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": text}], stream=True
        )
        return reply.id + "".join([c.id async for c in stream][:1])

    await summarise("a long text")
    await summarise("another text")
    await client.close()
    rows = _rows(runtime)
    assert len(rows) == 4
    assert len({r["task_run_id"] for r in rows}) == 2
    assert {r["team"] for r in rows} == {"marketing"}


def test_anthropic_client_is_metered(runtime: Runtime, fake_provider: tuple[Starlette, str]) -> None:
    _, url = fake_provider
    with tokenops.instrument(anthropic.Anthropic(base_url=url, api_key="x")) as client, tokenops.task("legal_review"):
        message = client.messages.create(
            model="claude-haiku-4-5", max_tokens=50, messages=[{"role": "user", "content": "review this clause"}]
        )
    (row,) = _rows(runtime)
    assert (row["request_id"], row["provider"], row["workflow"]) == (message.id, "anthropic", "legal_review")
    assert row["cost_total"] > 0  # type: ignore[operator]


def test_threads_started_with_a_copied_context_join_the_task(
    runtime: Runtime, fake_provider: tuple[Starlette, str]
) -> None:
    import contextvars
    from concurrent.futures import ThreadPoolExecutor

    _, url = fake_provider
    with tokenops.instrument(openai.OpenAI(base_url=f"{url}/v1", api_key="x")) as client, tokenops.task("fan_out") as t:

        def ask(question: str) -> str:
            return client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": question}]
            ).id

        with ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(contextvars.copy_context().run, ask, f"q{i}") for i in range(8)]
            ids = {f.result() for f in futures}
    rows = _rows(runtime)
    assert {r["request_id"] for r in rows} == ids
    assert {r["task_run_id"] for r in rows} == {t.task_run_id}
    assert sorted(r["iteration"] for r in rows) == list(range(1, 9))  # type: ignore[type-var]


@pytest.mark.anyio
async def test_async_anthropic_and_module_level_outcomes(
    runtime: Runtime, fake_provider: tuple[Starlette, str]
) -> None:
    _, url = fake_provider
    client = tokenops.instrument(anthropic.AsyncAnthropic(base_url=url, api_key="x"))
    async with tokenops.task("contract_review", team="legal") as t:
        message = await client.messages.create(
            model="claude-haiku-4-5", max_tokens=40, messages=[{"role": "user", "content": "check clause 7"}]
        )
        tokenops.outcome("contract_signed", value=Decimal("1200"))
    tokenops.outcome("nps_promoter", person="ana", task_run_ids=())
    await client.close()
    (row,) = _rows(runtime)
    assert (row["request_id"], row["team"], row["task_run_id"]) == (message.id, "legal", t.task_run_id)
    outcomes = runtime.ledger.query_rows(
        "SELECT o.outcome_type, o.person_id, l.task_run_id FROM outcomes o "
        "LEFT JOIN outcome_task_runs l USING (outcome_id) ORDER BY o.outcome_type"
    )
    assert outcomes == [
        {"outcome_type": "contract_signed", "person_id": None, "task_run_id": t.task_run_id},
        {"outcome_type": "nps_promoter", "person_id": "ana", "task_run_id": None},
    ]
