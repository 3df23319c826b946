"""The real `openai` SDK through the gateway: same answers as the provider, one exact ledger row per call."""

from __future__ import annotations

import time
from decimal import Decimal

import httpx
import openai
import pytest

from tests.e2e.conftest import Gateway
from tokenops.events import TokenUsage
from tokenops.pricing import Priced, Pricer

MESSAGES = [{"role": "user", "content": "Summarise the quarterly report in three bullet points please"}]
HEADERS = {"X-Tokenops-Workflow": "report_summary", "X-Tokenops-Task": "task-42", "X-Tokenops-Customer": "acme"}


def _client(gateway: Gateway, **kwargs: object) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=gateway.key, max_retries=0, **kwargs)


def _direct(gateway: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.fake_url}/v1", api_key="sk-direct", max_retries=0)


def _expected_cost(model: str, usage: TokenUsage, row: dict[str, object]) -> Decimal:
    priced = Pricer().price(model, usage, provider="openai", ts=row["ts"].replace(tzinfo=__import__("datetime").UTC))
    assert isinstance(priced, Priced)
    return priced.cost.total.quantize(Decimal("1e-12"))


def test_chat_completion_matches_the_provider_and_leaves_one_priced_attributed_row(gateway: Gateway) -> None:
    with _client(gateway) as client, _direct(gateway) as direct:
        via = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, extra_headers=HEADERS)
        raw = direct.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert via.choices[0].message.content == raw.choices[0].message.content
    assert via.usage == raw.usage
    (row,) = gateway.rows()
    assert row["request_id"] == via.id
    assert (row["model"], row["provider"], row["status"], row["source"]) == ("gpt-4o", "openai", "ok", "gateway")
    assert via.usage is not None
    assert (row["input_tokens"], row["output_tokens"]) == (via.usage.prompt_tokens, via.usage.completion_tokens)
    assert (row["user_id"], row["team"], row["workflow"], row["task_run_id"], row["customer"]) == (
        "ana",
        "support",
        "report_summary",
        "task-42",
        "acme",
    )
    usage = TokenUsage(input_tokens=via.usage.prompt_tokens, output_tokens=via.usage.completion_tokens)
    assert row["cost_total"] == _expected_cost("gpt-4o", usage, row)
    assert row["unpriced"] is False and row["estimated"] is False
    assert str(row["api_key_id"]).startswith("key_")


def test_cost_headers_tell_the_call_and_the_task_spend(gateway: Gateway) -> None:
    with _client(gateway) as client:
        first = client.chat.completions.with_raw_response.create(
            model="gpt-4o", messages=MESSAGES, extra_headers=HEADERS
        )
        second = client.chat.completions.with_raw_response.create(
            model="gpt-4o", messages=MESSAGES, extra_headers=HEADERS
        )
    one = Decimal(first.headers["x-tokenops-cost-usd"])
    assert one > 0
    assert Decimal(first.headers["x-tokenops-task-cost-usd"]) == one
    assert Decimal(second.headers["x-tokenops-task-cost-usd"]) == 2 * one
    rows = gateway.rows()
    assert sum(Decimal(str(r["cost_total"])) for r in rows) == 2 * one


@pytest.mark.parametrize("include_usage", [False, True])
def test_streaming_is_metered_and_the_client_sees_usage_only_if_it_asked(gateway: Gateway, include_usage: bool) -> None:
    options = {"stream_options": {"include_usage": True}} if include_usage else {}
    with _client(gateway) as client, _direct(gateway) as direct:
        chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True, **options))
        direct_chunks = list(
            direct.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True, **options)
        )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "".join(c.choices[0].delta.content or "" for c in direct_chunks if c.choices)
    usage_chunks = [c for c in chunks if c.usage is not None]
    assert len(usage_chunks) == (1 if include_usage else 0)
    (row,) = gateway.rows()
    assert row["request_id"] == chunks[0].id
    assert row["output_tokens"] > 0 and row["input_tokens"] > 0
    assert row["cost_total"] is not None and row["cost_total"] > 0  # never a $0 streamed call
    assert row["estimated"] is False
    assert row["ttft_ms"] is not None
    if include_usage:
        assert usage_chunks[0].usage is not None
        assert row["output_tokens"] == usage_chunks[0].usage.completion_tokens


@pytest.mark.anyio
async def test_async_client_streaming_and_not(gateway: Gateway) -> None:
    async with openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key=gateway.key, max_retries=0) as client:
        whole = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        stream = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
        ids = {chunk.id async for chunk in stream}
    rows = gateway.rows()
    assert {r["request_id"] for r in rows} == {whole.id, *ids}
    assert all(r["cost_total"] > 0 for r in rows)


def test_responses_api_streaming_and_not(gateway: Gateway) -> None:
    with _client(gateway) as client:
        whole = client.responses.create(model="gpt-4o", input="Write a haiku about invoices")
        with client.responses.stream(model="gpt-4o", input="Write a haiku about invoices") as stream:
            final = stream.get_final_response()
    rows = {r["request_id"]: r for r in gateway.rows()}
    assert set(rows) == {whole.id, final.id}
    assert final.usage is not None
    assert rows[final.id]["output_tokens"] == final.usage.output_tokens
    assert rows[final.id]["operation"] == "responses"


def test_embeddings(gateway: Gateway) -> None:
    with _client(gateway) as client:
        result = client.embeddings.create(model="text-embedding-3-small", input=["a", "b c d"])
    (row,) = gateway.rows()
    assert row["operation"] == "embeddings"
    assert row["input_tokens"] == result.usage.prompt_tokens
    assert row["cost_total"] is not None


def test_models_are_listed(gateway: Gateway) -> None:
    with _client(gateway) as client:
        assert len(client.models.list().data) > 0


def test_unknown_key_gets_openai_401(gateway: Gateway) -> None:
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="tok-nope", max_retries=0)
    with client, pytest.raises(openai.AuthenticationError, match="tokenops keys create"):
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert gateway.rows() == []


def test_upstream_429_is_passed_back_and_recorded_as_an_unbilled_error(gateway: Gateway) -> None:
    with _client(gateway) as client, pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES, extra_headers={"x-fake-error": "429"})
    assert caught.value.response.headers.get("retry-after") is not None
    (row,) = gateway.rows()
    assert (row["status"], row["cost_total"], row["unpriced"]) == ("error", Decimal(0), False)
    assert row["error_type"] is not None


def test_malformed_and_oversized_requests_get_openai_errors(gateway: Gateway) -> None:
    headers = {"authorization": f"Bearer {gateway.key}", "content-type": "application/json"}
    bad = httpx.post(f"{gateway.url}/v1/chat/completions", content=b"{not json", headers=headers)
    assert bad.status_code == 400
    assert bad.json()["error"]["type"] == "invalid_request_error"
    missing = httpx.post(f"{gateway.url}/v1/chat/completions", json={"messages": []}, headers=headers)
    assert missing.status_code == 400 and "model" in missing.json()["error"]["message"]
    big = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        content=b'{"model": "gpt-4o", "x": "' + b"a" * (33 * 1024 * 1024) + b'"}',
        headers=headers,
    )
    assert big.status_code == 413
    assert "limit" in big.json()["error"]["message"]
    assert gateway.rows() == []


def test_missing_usage_is_estimated_with_a_real_tokenizer(gateway: Gateway) -> None:
    with _client(gateway) as client:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES, extra_headers={"x-fake-no-usage": "1"})
    (row,) = gateway.rows()
    assert row["estimated"] is True
    assert row["input_tokens"] > 10 and row["output_tokens"] > 0
    assert row["cost_total"] > 0


def test_unknown_request_fields_pass_through_untouched(gateway: Gateway) -> None:
    with _client(gateway) as client:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES, extra_body={"vendor_knob": {"x": 1}})
    seen = gateway.fake.requests[-1]
    assert seen.body["vendor_knob"] == {"x": 1}
    assert "x-tokenops-workflow" not in {k.lower() for k in seen.headers}
    assert seen.headers.get("authorization") == "Bearer sk-fake-openai"


def test_metrics_count_calls_tokens_and_cost(gateway: Gateway) -> None:
    with _client(gateway) as client:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    text = httpx.get(f"{gateway.url}/metrics").text
    assert 'tokenops_requests_total{model="gpt-4o",route="chat",status="ok"} 1.0' in text
    assert 'tokenops_cost_usd_total{model="gpt-4o",team="support"}' in text


def _wait_for_rows(gateway: Gateway, n: int) -> list[dict[str, object]]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        rows = gateway.rows()
        if len(rows) >= n:
            return rows
        time.sleep(0.02)
    raise AssertionError(f"expected {n} ledger rows, found {len(gateway.rows())}")


def test_a_stream_the_client_aborts_is_metered_for_what_the_provider_billed(gateway: Gateway) -> None:
    slow = {"x-fake-chunk-delay-ms": "20", "x-fake-output-tokens": "40"}
    with _client(gateway) as client:
        stream = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True, extra_headers=slow)
        first = [next(stream), next(stream)]
        stream.close()  # the user closed the tab
    (row,) = _wait_for_rows(gateway, 1)
    billed = gateway.fake.billed[first[0].id]
    assert row["request_id"] == first[0].id
    assert (row["input_tokens"], row["output_tokens"]) == (billed["prompt_tokens"], billed["completion_tokens"])
    assert row["error_type"] == "client_aborted"
    assert row["estimated"] is False and row["cost_total"] > 0


def test_a_broken_upstream_stream_is_estimated_not_lost(gateway: Gateway) -> None:
    with _client(gateway) as client, pytest.raises(openai.APIError):
        list(
            client.chat.completions.create(
                model="gpt-4o", messages=MESSAGES, stream=True, extra_headers={"x-fake-fail-after-chunks": "3"}
            )
        )
    (row,) = _wait_for_rows(gateway, 1)
    assert row["estimated"] is True
    assert row["output_tokens"] >= 3 and row["cost_total"] > 0


def test_without_a_user_on_the_key_the_body_user_field_attributes_the_call(gateway: Gateway) -> None:
    team_key = gateway.new_key(user=None, team="platform")
    tags = {"X-Tokenops-Tags": "env=prod,tier=gold", "X-Tokenops-Feature": "search", "X-Tokenops-Team": "sales"}
    with openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=team_key, max_retries=0) as client:
        client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, user="bob@example.com", extra_headers=tags
        )
    (row,) = gateway.rows()
    assert (row["user_id"], row["team"], row["feature"]) == ("bob@example.com", "platform", "search")
    assert row["tags"] == '{"env":"prod","tier":"gold"}'


def test_revoked_keys_are_refused(gateway: Gateway) -> None:
    from tokenops.web.app import key_store

    store = key_store(gateway.settings)
    info, secret = store.create(user="eve", team="support")
    with openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=secret, max_retries=0) as client:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        store.revoke(info.key_id)  # as `tokenops keys revoke` does, from another process
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            except openai.AuthenticationError:
                break
            time.sleep(0.1)
        else:
            raise AssertionError("a revoked key was still accepted after 10 s")
