"""OpenTelemetry into the ledger: the real `openai` SDK, instrumented, exporting to `POST /v1/traces`.

The instrumented client calls the fake provider directly (no gateway); its spans go through the
real OpenTelemetry SDK and OTLP/HTTP exporter to a running tokenops server. The rows they leave
must equal what the gateway records for the same calls.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from starlette.applications import Starlette
from starlette.testclient import TestClient

from tests.e2e.conftest import Gateway, gateway_settings
from tests.ingest.test_otel import CHAT, export, otlp_json, span
from tokenops.store import DuckDBLedger
from tokenops.web import create_app
from tokenops.web.app import key_store

SHORT: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Classify this ticket: my invoice is wrong"}]
LONG: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "Summarise the attached contract clause by clause please " * 20}
]
COMPARED = "model, input_tokens, output_tokens, cache_read_tokens, status, cost_total, unpriced, operation"


@contextmanager
def instrumented(url: str, key: str, service: str = "support-bot") -> Iterator[TracerProvider]:
    """The openai SDK instrumented by opentelemetry-instrumentation-openai-v2, exporting OTLP/HTTP protobuf."""
    try:
        from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
    except ImportError as exc:  # a broken dependency set must fail loudly, never skip
        pytest.fail(
            f"opentelemetry-instrumentation-openai-v2 does not import ({exc}); it needs "
            "opentelemetry-util-genai<1.2 (1.2 renamed util.genai.instruments)"
        )
    resource = Resource.create({"service.name": service, "tokenops.workflow": "ticket_triage"})
    provider = TracerProvider(resource=resource)
    exporter = OTLPSpanExporter(endpoint=f"{url}/v1/traces", headers={"Authorization": f"Bearer {key}"}, timeout=10)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = OpenAIInstrumentor()  # type: ignore[no-untyped-call]
    instrumentor.instrument(tracer_provider=provider)
    try:
        yield provider
    finally:
        instrumentor.uninstrument()
        provider.shutdown()


def _calls(client: openai.OpenAI) -> None:
    """The same mix of calls on either path: chat, reasoning, stream, embeddings, unknown model, a failure."""
    client.chat.completions.create(model="gpt-4o-mini", messages=SHORT)
    client.chat.completions.create(model="gpt-4o", messages=LONG)
    client.chat.completions.create(model="o3-mini", messages=SHORT)
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=LONG, stream=True, stream_options={"include_usage": True}
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    client.embeddings.create(model="text-embedding-3-small", input="refund policy for annual plans")
    client.chat.completions.create(model="acme-llm-1", messages=SHORT)
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="gpt-4o", messages=SHORT, extra_headers={"x-fake-error": "429"})


def _rows(gateway: Gateway, source: str) -> list[dict[str, object]]:
    gateway.flush()
    return gateway.ledger.query_rows(
        f"SELECT {COMPARED} FROM usage_events WHERE source = ? ORDER BY ts, request_id", [source]
    )


def test_instrumented_openai_calls_leave_the_rows_the_gateway_records(gateway: Gateway) -> None:
    with openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=gateway.key, max_retries=0) as via_gateway:
        _calls(via_gateway)
    with (
        instrumented(gateway.url, gateway.key),
        openai.OpenAI(base_url=f"{gateway.fake_url}/v1", api_key="sk-direct", max_retries=0) as direct,
    ):
        _calls(direct)
    via_otel, via_proxy = _rows(gateway, "otel"), _rows(gateway, "gateway")
    assert len(via_otel) == 7
    assert via_otel == via_proxy
    assert sum(Decimal(str(r["cost_total"])) for r in via_otel if r["cost_total"] is not None) > 0
    assert [r["status"] for r in via_otel].count("error") == 1
    assert [r["unpriced"] for r in via_otel].count(True) == 1
    otel = gateway.ledger.query_rows("SELECT * FROM usage_events WHERE source = 'otel' ORDER BY ts")
    assert {(r["user_id"], r["team"], r["workflow"]) for r in otel} == {("ana", "support", "ticket_triage")}
    assert all(str(r["api_key_id"]).startswith("key_") for r in otel)
    assert all(json.loads(str(r["tags"])) == {"service.name": "support-bot"} for r in otel)
    assert all(isinstance(r["latency_ms"], float) and r["latency_ms"] >= 0 for r in otel)


def test_a_call_both_proxied_and_traced_is_one_row(gateway: Gateway) -> None:
    with (
        instrumented(gateway.url, gateway.key),
        openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=gateway.key, max_retries=0) as client,
    ):
        first = client.chat.completions.create(model="gpt-4o-mini", messages=SHORT)
        second = client.chat.completions.create(model="gpt-4o", messages=LONG)
    rows = gateway.rows()
    assert [r["request_id"] for r in rows] == [first.id, second.id]
    assert {r["source"] for r in rows} == {"gateway"}


def _post(gateway: Gateway, body: bytes, content_type: str, **headers: str) -> httpx.Response:
    headers = {"content-type": content_type, "authorization": f"Bearer {gateway.key}", **headers}
    return httpx.post(f"{gateway.url}/v1/traces", content=body, headers=headers)


def test_json_and_gzip_bodies_and_bad_spans_reported_while_good_ones_are_kept(gateway: Gateway) -> None:
    good = {**CHAT, "gen_ai.response.id": "chatcmpl-json-1"}
    request = export(
        span(good, n=1),
        span({k: v for k, v in CHAT.items() if "model" not in k}, n=2, name="chat nomodel"),
        span({**CHAT, "gen_ai.response.id": "chatcmpl-neg", "gen_ai.usage.output_tokens": -3}, n=3),
        span({"http.request.method": "GET"}, n=4, name="GET /"),
    )
    answer = _post(gateway, otlp_json(request).encode(), "application/json")
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
    partial = answer.json()["partialSuccess"]
    assert partial["rejectedSpans"] == "2"
    assert "span 'chat nomodel'" in partial["errorMessage"] and "no gen_ai.response.model" in partial["errorMessage"]
    assert "gen_ai.usage.output_tokens is -3, expected a count >= 0" in partial["errorMessage"]
    assert (answer.headers["x-tokenops-spans-recorded"], answer.headers["x-tokenops-spans-ignored"]) == ("1", "1")

    zipped = export(span({**CHAT, "gen_ai.response.id": "chatcmpl-gz"}, n=5))
    answer = _post(
        gateway, gzip.compress(zipped.SerializeToString()), "application/x-protobuf", **{"content-encoding": "gzip"}
    )
    assert answer.status_code == 200
    assert ExportTraceServiceResponse.FromString(answer.content) == ExportTraceServiceResponse()

    rows = gateway.rows("source = 'otel'")
    assert [(r["request_id"], r["input_tokens"], r["output_tokens"]) for r in rows] == [
        ("chatcmpl-gz", 2_000, 300),
        ("chatcmpl-json-1", 2_000, 300),
    ]
    assert {(r["user_id"], r["team"]) for r in rows} == {("ana", "support")}
    again = _post(gateway, otlp_json(request).encode(), "application/json")  # an exporter retry
    assert again.status_code == 200 and len(gateway.rows("source = 'otel'")) == 2


def test_refusals_follow_the_otlp_spec(gateway: Gateway) -> None:
    from google.rpc.status_pb2 import Status  # type: ignore[import-untyped]

    body = export(span(CHAT)).SerializeToString()
    wrong_type = _post(gateway, body, "text/plain")
    assert wrong_type.status_code == 415 and "application/x-protobuf" in wrong_type.json()["message"]
    assert _post(gateway, body, "application/x-protobuf", **{"content-encoding": "br"}).status_code == 415
    garbage = _post(gateway, b"\xff\x00garbage", "application/x-protobuf")
    assert garbage.status_code == 400
    status = Status.FromString(garbage.content)
    assert status.code == 3 and "not a protobuf ExportTraceServiceRequest" in status.message
    assert _post(gateway, b"{not json", "application/json").json()["code"] == 3
    bad_gzip = _post(gateway, b"plain", "application/x-protobuf", **{"content-encoding": "gzip"})
    assert bad_gzip.status_code == 400
    anonymous = httpx.post(f"{gateway.url}/v1/traces", content=body, headers={"content-type": "application/x-protobuf"})
    assert anonymous.status_code == 401 and "Missing tokenops key" in Status.FromString(anonymous.content).message
    assert _post(gateway, body, "application/x-protobuf", authorization="Bearer tok-nope").status_code == 401
    assert gateway.rows() == []


def test_without_required_keys_spans_are_accepted_and_attributed_from_their_attributes(
    tmp_path: Path, fake_provider: tuple[Starlette, str]
) -> None:
    settings = gateway_settings(tmp_path, fake_provider[1], require_keys=False, max_body_bytes=4_096)
    ledger = DuckDBLedger(settings.ledger)
    resource = {"service.name": "batch-job", "tokenops.team": "research", "enduser.id": "svc-etl"}
    body = export(span(CHAT), resource=resource).SerializeToString()
    with TestClient(create_app(settings, ledger)) as client:
        answer = client.post("/v1/traces", content=body, headers={"content-type": "application/x-protobuf"})
        assert answer.status_code == 200
        bomb = gzip.compress(b"\0" * 100_000)  # small on the wire, over max_body_bytes once inflated
        headers = {"content-type": "application/x-protobuf", "content-encoding": "gzip"}
        assert len(bomb) < 4_096 and client.post("/v1/traces", content=bomb, headers=headers).status_code == 413
        client.app.state.writer.flush()  # type: ignore[attr-defined]
    (row,) = ledger.query_rows("SELECT user_id, team, api_key_id, source FROM usage_events")
    assert row == {"user_id": "svc-etl", "team": "research", "api_key_id": None, "source": "otel"}
    assert key_store(settings).list() == []
    ledger.close()
