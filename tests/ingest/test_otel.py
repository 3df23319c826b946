"""GenAI spans -> usage events, and `tokenops import otel` on Collector file-exporter output.

Spans are built with the OTLP protobuf classes and written the way the OpenTelemetry Collector's
`file` exporter writes them: one OTLP JSON `ExportTraceServiceRequest` a line, camelCase keys, hex
ids, 64-bit integers as strings.
"""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import pytest
from google.protobuf import json_format  # type: ignore[import-untyped]
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status
from typer.testing import CliRunner

from tokenops.cli import app
from tokenops.events import Attribution, TokenUsage, UsageEvent
from tokenops.ingest import get_importer, run_import
from tokenops.ingest._otlp import json_spans, proto_spans
from tokenops.ingest.otel import convert
from tokenops.meter import Meter
from tokenops.pricing import Priced, Pricer
from tokenops.store import DuckDBLedger

START = datetime(2026, 3, 2, 9, 30, 0, 250_000, tzinfo=UTC)
START_NS = int(START.timestamp()) * 1_000_000_000 + 250_000_000
CHAT = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "gpt-4o",
    "gen_ai.response.model": "gpt-4o-2024-08-06",
    "gen_ai.response.id": "chatcmpl-abc",
    "gen_ai.usage.input_tokens": 2_000,
    "gen_ai.usage.output_tokens": 300,
}


def _any(value: object) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    return AnyValue(string_value=str(value))


def _kvs(attrs: Mapping[str, object]) -> list[KeyValue]:
    return [KeyValue(key=k, value=_any(v)) for k, v in attrs.items()]


def span(
    attrs: dict[str, object],
    *,
    n: int = 1,
    name: str = "chat gpt-4o",
    duration_ms: int = 1_500,
    error: bool = False,
) -> Span:
    return Span(
        trace_id=bytes.fromhex("5b8efff798038103d269b633813fc60c"),
        span_id=n.to_bytes(8, "big"),
        name=name,
        kind=Span.SPAN_KIND_CLIENT,
        start_time_unix_nano=START_NS,
        end_time_unix_nano=START_NS + duration_ms * 1_000_000,
        attributes=_kvs(attrs),
        status=Status(code=Status.STATUS_CODE_ERROR if error else Status.STATUS_CODE_UNSET),
    )


def export(*spans: Span, resource: Mapping[str, object] | None = None) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    rs.resource.attributes.extend(_kvs(resource or {"service.name": "support-bot"}))
    ss = rs.scope_spans.add()
    ss.scope.name = "opentelemetry.instrumentation.openai_v2"
    ss.spans.extend(spans)
    return request


def otlp_json(request: ExportTraceServiceRequest) -> str:
    """The OTLP JSON encoding: protobuf's JSON mapping with hex instead of base64 ids."""
    doc = json_format.MessageToDict(request)
    for rs in doc.get("resourceSpans", []):
        for ss in rs.get("scopeSpans", []):
            for s in ss.get("spans", []):
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in s:
                        s[key] = base64.b64decode(s[key]).hex()
    return json.dumps(doc)


def one(attrs: dict[str, object], *, error: bool = False) -> UsageEvent:
    out = convert(export(span(attrs, error=error)), Meter(Pricer()))
    assert (out.calls, out.rejected) == (1, [])
    return out.events[0]


def rejection(attrs: dict[str, object]) -> str:
    out = convert(export(span(attrs)), Meter(Pricer()))
    assert (out.calls, out.events) == (1, [])
    return out.rejected[0].reason


def test_a_chat_span_becomes_the_event_the_gateway_would_record() -> None:
    attrs = {**CHAT, "gen_ai.usage.cache_read.input_tokens": 1_024, "gen_ai.usage.reasoning.output_tokens": 100}
    resource = {"service.name": "support-bot", "tokenops.team": "support", "tokenops.workflow": "triage"}
    out = convert(export(span(attrs), resource=resource), Meter(Pricer()))
    (event,) = out.events
    usage = TokenUsage(input_tokens=2_000, cache_read_tokens=1_024, output_tokens=300, reasoning_tokens=100)
    assert event.usage == usage
    assert (event.request_id, event.provider, event.model, event.model_requested) == (
        "chatcmpl-abc",
        "openai",
        "gpt-4o-2024-08-06",
        "gpt-4o",
    )
    assert (event.ts, event.latency_ms, event.status, event.source, event.operation) == (
        START,
        1_500.0,
        "ok",
        "otel",
        "chat",
    )
    priced = Pricer().price("gpt-4o-2024-08-06", usage, provider="openai", ts=START)
    assert isinstance(priced, Priced) and event.cost == priced.cost and event.price_source == priced.source
    assert event.cost is not None and event.cost.cache_read > 0
    assert (event.attribution.team, event.attribution.workflow) == ("support", "triage")
    assert event.attribution.tags == {"service.name": "support-bot"}


def test_older_attribute_names_are_read_and_providers_mapped_to_genai_prices_ids() -> None:
    old = {
        "gen_ai.system": "aws.bedrock",
        "gen_ai.request.model": "anthropic.claude-3-5-sonnet-20240620-v1:0",
        "gen_ai.usage.prompt_tokens": 900,
        "gen_ai.usage.completion_tokens": 80,
        "gen_ai.usage.cache_read_input_tokens": 400,
        "gen_ai.usage.cache_creation_input_tokens": 100,
        "gen_ai.usage.reasoning_tokens": 5,
    }
    event = one(old)
    assert event.provider == "aws"
    assert event.usage == TokenUsage(
        input_tokens=900, cache_read_tokens=400, cache_write_tokens=100, output_tokens=80, reasoning_tokens=5
    )
    assert event.request_id == "otel:5b8efff798038103d269b633813fc60c:0000000000000001"
    assert event.operation == "chat"  # no gen_ai.operation.name: a model call because it has a model and usage


@pytest.mark.parametrize(
    ("read", "write"),
    [
        ("gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.cache_creation.input_tokens"),
        ("gen_ai.usage.input_tokens.cached", "gen_ai.usage.input_tokens.cache_write"),
        ("gen_ai.usage.cache_read_input_tokens", "gen_ai.usage.cache_write_input_tokens"),
    ],
)
def test_cache_counts_under_each_known_name(read: str, write: str) -> None:
    event = one(
        {
            **CHAT,
            "gen_ai.provider.name": "anthropic",
            "gen_ai.response.model": "claude-sonnet-4-5",
            read: 700,
            write: 300,
        }
    )
    assert (event.usage.cache_read_tokens, event.usage.cache_write_tokens) == (700, 300)
    assert event.cost is not None and event.cost.cache_read > 0 and event.cost.cache_write > 0


def test_agent_tool_and_plain_spans_are_ignored_so_usage_is_not_counted_twice() -> None:
    spans = [
        span(CHAT, n=1),
        span({**CHAT, "gen_ai.operation.name": "invoke_agent"}, n=2, name="invoke_agent support"),
        span({"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search"}, n=3),
        span({"http.request.method": "POST", "url.full": "http://x/v1/chat"}, n=4, name="POST"),
    ]
    out = convert(export(*spans), Meter(Pricer()))
    assert (len(out.events), len(out.rejected), out.ignored, out.calls) == (1, 0, 3, 1)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (
            {"gen_ai.request.model": None, "gen_ai.response.model": None},
            "no gen_ai.response.model or gen_ai.request.model",
        ),
        ({"gen_ai.usage.input_tokens": -5}, "gen_ai.usage.input_tokens is -5, expected a count >= 0"),
        ({"gen_ai.usage.output_tokens": "abc"}, "gen_ai.usage.output_tokens is 'abc', expected a whole number"),
        ({"gen_ai.usage.output_tokens": 2.5}, "gen_ai.usage.output_tokens is 2.5, expected a whole number"),
        ({"gen_ai.usage.cache_read.input_tokens": 5_000}, "inconsistent token counts: cache_read_tokens"),
        ({"gen_ai.provider.name": None}, "no gen_ai.provider.name"),
        ({"gen_ai.usage.input_tokens": None, "gen_ai.usage.output_tokens": None}, "stream_options"),
        ({"tokenops.iteration": "third"}, "tokenops.iteration is 'third', expected a whole number"),
    ],
)
def test_a_bad_span_is_rejected_with_a_reason(change: dict[str, object], reason: str) -> None:
    attrs = {k: v for k, v in {**CHAT, **change}.items() if v is not None}
    assert reason in rejection(attrs)


def test_a_failed_call_without_usage_is_an_unbilled_error_row() -> None:
    attrs = {k: v for k, v in CHAT.items() if not k.startswith("gen_ai.usage")}
    event = one({**attrs, "error.type": "rate_limit_exceeded"}, error=True)
    assert (event.status, event.error_type, event.usage.total_tokens, event.price_source) == (
        "error",
        "rate_limit_exceeded",
        0,
        "not-billed",
    )


def test_an_unknown_model_is_unpriced_not_free() -> None:
    event = one({**CHAT, "gen_ai.response.model": "acme-llm-7"})
    assert event.cost is None and event.unpriced


def test_attribution_span_over_resource_and_the_senders_key_over_both() -> None:
    attrs = {**CHAT, "enduser.id": "bob", "tokenops.task_run_id": "run-7", "tokenops.iteration": 2, "session.id": "s1"}
    resource = {
        "service.name": "bot",
        "tokenops.team": "sales",
        "tokenops.customer": "acme",
        "tokenops.tag.env": "prod",
    }
    request = export(span(attrs), resource=resource)
    (anonymous,) = convert(request, Meter(Pricer())).events
    a = anonymous.attribution
    assert (a.user, a.team, a.customer, a.task_run_id, a.iteration) == ("bob", "sales", "acme", "run-7", 2)
    assert a.tags == {"service.name": "bot", "env": "prod", "session.id": "s1"}
    owner = Attribution(api_key_id="key_1234abcd", user="ana", team="support")
    (keyed,) = convert(request, Meter(Pricer()), owner=owner).events
    assert (keyed.attribution.api_key_id, keyed.attribution.user, keyed.attribution.team) == (
        "key_1234abcd",
        "ana",
        "support",
    )


def test_otlp_json_with_hex_ids_and_string_integers_parses_like_protobuf() -> None:
    literal = {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "bot"}}]},
                "scopeSpans": [
                    {
                        "scope": {"name": "manual"},
                        "spans": [
                            {
                                "traceId": "5b8efff798038103d269b633813fc60c",
                                "spanId": "eee19b7ec3c1b174",
                                "name": "chat gpt-4o-mini",
                                "kind": 3,
                                "startTimeUnixNano": str(START_NS),
                                "endTimeUnixNano": str(START_NS + 10**9),
                                "attributes": [
                                    {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                                    {"key": "gen_ai.provider.name", "value": {"stringValue": "openai"}},
                                    {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o-mini"}},
                                    {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "120"}},
                                    {"key": "gen_ai.usage.output_tokens", "value": {"intValue": "30"}},
                                ],
                                "futureField": {"ignored": True},
                            }
                        ],
                    }
                ],
            }
        ]
    }
    (event,) = convert(json_spans(json.dumps(literal)), Meter(Pricer())).events
    assert event.request_id == "otel:5b8efff798038103d269b633813fc60c:eee19b7ec3c1b174"
    assert (event.usage.input_tokens, event.usage.output_tokens, event.latency_ms) == (120, 30, 1000.0)
    request = export(span(CHAT, n=1), span({**CHAT, "gen_ai.request.seed": 7, "gen_ai.temperature": 0.5}, n=2))
    assert json_spans(otlp_json(request)) == list(proto_spans(request))
    with pytest.raises(ValueError, match=r"resourceSpans\[0\].scopeSpans\[0\].spans\[0\].spanId is 'not-hex'"):
        json_spans(json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [{"spanId": "not-hex"}]}]}]}))
    with pytest.raises(ValueError, match="startTimeUnixNano is 'soon', expected an integer"):
        json_spans(json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [{"startTimeUnixNano": "soon"}]}]}]}))
    with pytest.raises(ValueError, match="resourceSpans must be a list of objects"):
        json_spans('{"resourceSpans": {"not": "a list"}}')


def _collector_file(path: Path, *, bad: bool) -> Path:
    """Three export requests (5 calls, 1 HTTP span); with `bad`, a broken line and two bad spans."""
    lines = [
        otlp_json(export(span(CHAT, n=1), span({**CHAT, "gen_ai.response.id": "chatcmpl-2"}, n=2))),
        otlp_json(export(span({"http.request.method": "GET"}, n=3, name="GET"))),
        otlp_json(
            export(
                span({**CHAT, "gen_ai.response.id": "chatcmpl-3", "gen_ai.usage.output_tokens": 10}, n=4),
                *([span({**CHAT, "gen_ai.response.id": "bad-1", "gen_ai.usage.input_tokens": -1}, n=5)] if bad else []),
                span({**CHAT, "gen_ai.response.id": "chatcmpl-4", "gen_ai.response.model": "acme-llm"}, n=6),
            )
        ),
    ]
    if bad:
        lines.insert(1, '{"resourceSpans": [')
        lines.append(otlp_json(export(span({k: v for k, v in CHAT.items() if "model" not in k}, n=7))))
    lines.insert(2, "")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_import_a_collector_file_keeps_good_spans_names_bad_lines_and_reimports_nothing(tmp_path: Path) -> None:
    file = _collector_file(tmp_path / "traces.json", bad=True)
    with DuckDBLedger(tmp_path / "ledger.duckdb") as ledger:
        report = run_import(get_importer("otel"), [file], ledger)
        assert (report.rows, report.imported, report.rejected) == (7, 4, 3)
        assert [str(e).split(": ", 1)[0] for e in report.errors] == [f"{file}:2", f"{file}:5", f"{file}:6"]
        assert "not valid JSON" in str(report.errors[0])
        assert "gen_ai.usage.input_tokens is -1" in str(report.errors[1])
        assert "no gen_ai.response.model" in str(report.errors[2])
        (totals,) = ledger.query_rows(
            "SELECT count(*) n, sum(input_tokens) i, sum(output_tokens) o, count(*) FILTER (unpriced) u, "
            "min(source) s FROM usage_events"
        )
        assert totals == {"n": 4, "i": 8_000, "o": 300 * 3 + 10, "u": 1, "s": "import:otel"}
        again = run_import(get_importer("otel"), [file], ledger)
        assert (again.imported, again.duplicates) == (0, 4)
        assert ledger.query_rows("SELECT count(*) n FROM usage_events") == [{"n": 4}]


def test_cli_imports_a_gzipped_directory(tmp_path: Path) -> None:
    folder = tmp_path / "export"
    folder.mkdir()
    plain = _collector_file(tmp_path / "x.json", bad=False)
    (folder / "traces.json.gz").write_bytes(gzip.compress(plain.read_bytes()))
    ledger = tmp_path / "ledger.duckdb"
    result = CliRunner().invoke(app, ["import", "otel", str(folder), "-q", "--ledger", str(ledger)])
    assert result.exit_code == 0, result.output
    assert "otel: 4 rows read from 1 file(s): 4 imported, 0 already in the ledger, 0 rejected" in result.output
    with DuckDBLedger(ledger) as store:
        rows = store.query_rows("SELECT request_id FROM usage_events ORDER BY request_id")
    assert [r["request_id"] for r in rows] == ["chatcmpl-2", "chatcmpl-3", "chatcmpl-4", "chatcmpl-abc"]
    bad = _collector_file(tmp_path / "bad.json", bad=True)
    errors = tmp_path / "errors.txt"
    args = ["import", "otel", str(bad), "-q", "--ledger", str(ledger), "--errors", str(errors)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1
    assert "7 rows read from 1 file(s): 0 imported, 4 already in the ledger, 3 rejected" in result.output
    assert errors.read_text().splitlines() == [
        f"{bad}:2: not valid JSON: Expecting value at line 1 column 20",
        f"{bad}:5: span 'chat gpt-4o' (trace 5b8efff798038103d269b633813fc60c, span 0000000000000005): "
        "gen_ai.usage.input_tokens is -1, expected a count >= 0",
        f"{bad}:6: span 'chat gpt-4o' (trace 5b8efff798038103d269b633813fc60c, span 0000000000000007): "
        "no gen_ai.response.model or gen_ai.request.model; a call cannot be priced without its model",
    ]
