"""OpenTelemetry GenAI spans -> usage events, for the OTLP receiver and the `otel` file importer.

A span is a model call when its `gen_ai.operation.name` is one of `MODEL_CALL_OPERATIONS`, or,
for instrumentations older than that attribute, when it carries both a model and token usage.
Agent, tool and workflow spans are skipped: their usage, if any, repeats their children's.
Attribute names follow the GenAI semantic conventions (docs/ingest-otel.md lists every name read,
including the deprecated and vendor variants). Token counts are strict: a span whose counts are
not whole non-negative numbers, or whose cache counts exceed its input, is rejected with a reason
rather than guessed at. The provider's response id is the event's id, so a call seen twice (its
span exported twice, or the call also metered by the gateway) is one ledger row.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tokenops.events import Attribution, TokenUsage, UsageEvent
from tokenops.ingest._otlp import SpanIn, json_spans, proto_spans
from tokenops.ingest._rows import Batch, Record, RowError, open_text
from tokenops.meter import CallRecord, Meter
from tokenops.pricing import Pricer

MODEL_CALL_OPERATIONS = frozenset({"chat", "text_completion", "generate_content", "embeddings"})
"""`gen_ai.operation.name` values of a call to a model (not an agent, tool or workflow span)."""

Attrs = Mapping[str, object]

# Token counts: the current name first, then deprecated and vendor names (OpenLLMetry, Sentry, Strands).
_INPUT = ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens")
_OUTPUT = ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens")
_CACHE_READ = (
    "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.usage.cache_read_input_tokens",
    "gen_ai.usage.input_tokens.cached",
)
_CACHE_WRITE = (
    "gen_ai.usage.cache_creation.input_tokens",
    "gen_ai.usage.cache_creation_input_tokens",
    "gen_ai.usage.input_tokens.cache_write",
    "gen_ai.usage.cache_write_input_tokens",
)
_REASONING = (
    "gen_ai.usage.reasoning.output_tokens",
    "gen_ai.usage.reasoning_tokens",
    "gen_ai.usage.output_tokens.reasoning",
)
_USAGE = _INPUT + _OUTPUT

PROVIDERS = {
    "aws.bedrock": "aws",
    "azure.ai.openai": "azure",
    "azure.ai.inference": "azure",
    "az.ai.openai": "azure",
    "az.ai.inference": "azure",
    "gcp.gemini": "google",
    "gcp.vertex_ai": "google",
    "gcp.gen_ai": "google",
    "gemini": "google",
    "vertex_ai": "google",
    "mistral_ai": "mistral",
    "x_ai": "x-ai",
}
"""`gen_ai.provider.name` values that genai-prices names differently; others are used as they are."""

_OLD_REQUEST_TYPES = {"chat": "chat", "completion": "text_completion", "embedding": "embeddings"}
"""OpenLLMetry's `llm.request.type`, for spans without `gen_ai.operation.name`."""

ATTRIBUTION = {
    "user": ("tokenops.user", "enduser.id", "user.id"),
    "team": ("tokenops.team",),
    "feature": ("tokenops.feature",),
    "workflow": ("tokenops.workflow", "gen_ai.workflow.name"),
    "task_run_id": ("tokenops.task_run_id", "tokenops.task"),
    "step": ("tokenops.step",),
    "customer": ("tokenops.customer",),
}
"""Attribution field -> attribute names, first found wins (span attributes before resource ones)."""

TAGGED = ("service.name", "deployment.environment.name", "session.id", "gen_ai.conversation.id", "gen_ai.agent.name")
"""Attributes kept as tags under their own name; `tokenops.tag.<name>` attributes become tag `<name>`."""


class BadSpan(ValueError):
    """A model-call span that cannot be recorded; the message says why."""


@dataclass(frozen=True, slots=True)
class SpanError:
    """A rejected span, named so its sender can find it."""

    name: str
    """Span name (`chat gpt-4o`)."""
    trace_id: str
    """Hex trace id."""
    span_id: str
    """Hex span id."""
    reason: str
    """What is wrong and how to fix it."""

    def __str__(self) -> str:
        return f"span {self.name!r} (trace {self.trace_id}, span {self.span_id}): {self.reason}"


@dataclass(slots=True)
class Converted:
    """What one export request turned into."""

    events: list[UsageEvent] = field(default_factory=list)
    """One priced event per good model-call span."""
    rejected: list[SpanError] = field(default_factory=list)
    """Model-call spans that could not be recorded."""
    ignored: int = 0
    """Spans that are not model calls."""

    @property
    def calls(self) -> int:
        """Model-call spans seen, good and bad."""
        return len(self.events) + len(self.rejected)


def _first(attrs: Attrs, names: tuple[str, ...]) -> tuple[str, object] | None:
    for name in names:
        found = attrs.get(name)
        if found is not None and found != "":
            return name, found
    return None


def _whole(name: str, raw: object) -> int:
    """A count attribute as a whole number >= 0, else `BadSpan` saying what was sent."""
    number: int | None = None
    if isinstance(raw, bool):
        number = None
    elif isinstance(raw, int):
        number = raw
    elif isinstance(raw, float) and raw.is_integer():
        number = int(raw)
    elif isinstance(raw, str) and raw.strip().lstrip("-").isdigit():
        number = int(raw)
    if number is None:
        raise BadSpan(f"{name} is {raw!r}, expected a whole number")
    if number < 0:
        raise BadSpan(f"{name} is {number}, expected a count >= 0")
    return number


def _count(attrs: Attrs, names: tuple[str, ...]) -> int | None:
    found = _first(attrs, names)
    return None if found is None else _whole(*found)


def model_call(attrs: Attrs) -> str | None:
    """The operation if a span with these attributes is a model call, else None."""
    operation = attrs.get("gen_ai.operation.name")
    if isinstance(operation, str) and operation:
        return operation if operation in MODEL_CALL_OPERATIONS else None
    has_model = _first(attrs, ("gen_ai.response.model", "gen_ai.request.model")) is not None
    if has_model and _first(attrs, _USAGE) is not None:
        request_type = attrs.get("llm.request.type")
        return _OLD_REQUEST_TYPES.get(request_type, "chat") if isinstance(request_type, str) else "chat"
    return None


def usage(attrs: Attrs) -> TokenUsage | None:
    """Token counts of a span; None when it reports none."""
    inputs, outputs = _count(attrs, _INPUT), _count(attrs, _OUTPUT)
    if inputs is None and outputs is None:
        return None
    read, write, reasoning = _count(attrs, _CACHE_READ), _count(attrs, _CACHE_WRITE), _count(attrs, _REASONING)
    try:
        return TokenUsage(
            input_tokens=inputs or 0,
            cache_read_tokens=read or 0,
            cache_write_tokens=write or 0,
            output_tokens=outputs or 0,
            reasoning_tokens=reasoning or 0,
        )
    except ValueError as exc:
        raise BadSpan(
            f"inconsistent token counts: {exc} (the GenAI conventions count cached tokens inside "
            "gen_ai.usage.input_tokens and reasoning tokens inside gen_ai.usage.output_tokens)"
        ) from None


def attribution(attrs: Attrs, resource: Attrs, owner: Attribution | None = None) -> Attribution:
    """Who a span's call is charged to: the sender's key user/team first (as on the gateway), then attributes."""
    found: dict[str, str | None] = {}
    for target, names in ATTRIBUTION.items():
        hit = _first(attrs, names) or _first(resource, names)
        found[target] = str(hit[1]) if hit is not None else None
    hit = _first(attrs, ("tokenops.iteration",)) or _first(resource, ("tokenops.iteration",))
    iteration = _whole(*hit) if hit is not None else None
    tags: dict[str, str] = {}
    for source in (resource, attrs):  # span attributes override the resource's
        tags.update({name: str(source[name]) for name in TAGGED if source.get(name) not in (None, "")})
        tags.update(
            {k.removeprefix("tokenops.tag."): str(v) for k, v in source.items() if k.startswith("tokenops.tag.")}
        )
    key_user, key_team = (owner.user, owner.team) if owner is not None else (None, None)
    return Attribution(
        api_key_id=owner.api_key_id if owner is not None else None,
        user=key_user or found["user"],
        team=key_team or found["team"],
        feature=found["feature"],
        workflow=found["workflow"],
        task_run_id=found["task_run_id"],
        step=found["step"],
        iteration=iteration,
        customer=found["customer"],
        tags=tags,
    )


def _text(attrs: Attrs, *names: str) -> str | None:
    found = _first(attrs, names)
    return None if found is None else str(found[1])


def call_record(span: SpanIn, operation: str, *, source: str, owner: Attribution | None) -> CallRecord:
    """A model-call span as the call the gateway would have recorded; `BadSpan` if it cannot be."""
    attrs = span.attrs
    if len(span.trace_id) != 16 or len(span.span_id) != 8:
        raise BadSpan("traceId must be 16 bytes and spanId 8 bytes (32 and 16 hex digits in OTLP JSON)")
    if not span.start_ns:
        raise BadSpan("startTimeUnixNano is missing; the call's time is needed to price it")
    model = _text(attrs, "gen_ai.response.model", "gen_ai.request.model")
    if model is None:
        raise BadSpan("no gen_ai.response.model or gen_ai.request.model; a call cannot be priced without its model")
    provider = _text(attrs, "gen_ai.provider.name", "gen_ai.system")
    if provider is None:
        raise BadSpan("no gen_ai.provider.name (or the older gen_ai.system); set it to the provider, e.g. 'openai'")
    error_type = _text(attrs, "error.type")
    failed = error_type is not None or span.failed
    tokens = usage(attrs)
    if tokens is None and not failed:
        raise BadSpan(
            "no gen_ai.usage.input_tokens or gen_ai.usage.output_tokens on a successful call "
            "(for OpenAI streams pass stream_options={'include_usage': True})"
        )
    ttft = attrs.get("gen_ai.response.time_to_first_chunk")
    tier = _text(attrs, "openai.request.service_tier", "gen_ai.openai.request.service_tier")
    seconds, nanos = divmod(span.start_ns, 1_000_000_000)
    return CallRecord(
        request_id=_text(attrs, "gen_ai.response.id") or f"otel:{span.trace_id.hex()}:{span.span_id.hex()}",
        ts=datetime.fromtimestamp(seconds, UTC).replace(microsecond=nanos // 1000),
        provider=PROVIDERS.get(provider.lower(), provider.lower()),
        model=model,
        model_requested=_text(attrs, "gen_ai.request.model"),
        usage=tokens,
        attribution=attribution(attrs, span.resource, owner),
        operation=operation,
        status="error" if failed else "ok",
        error_type=(error_type or span.status_message or "error") if failed else None,
        latency_ms=(span.end_ns - span.start_ns) / 1e6 if span.end_ns >= span.start_ns else None,
        ttft_ms=float(ttft) * 1000 if isinstance(ttft, int | float) and not isinstance(ttft, bool) else None,
        service_tier=tier if tier in ("flex", "priority") else None,
        source=source,
    )


def convert(
    spans: Iterable[SpanIn] | ExportTraceServiceRequest,
    meter: Meter,
    *,
    source: str = "otel",
    owner: Attribution | None = None,
) -> Converted:
    """Every model-call span as a priced event; the rest rejected (with a reason) or ignored.

    Args:
        spans: A protobuf export request, or spans from `json_spans`.
        meter: Prices calls (the server's, so price overrides apply).
        source: `source` of the events: `otel` from the receiver, `import:otel` from files.
        owner: The sender's key: its id is recorded and its user and team win over span attributes.
    """
    out = Converted()
    for span in proto_spans(spans) if isinstance(spans, ExportTraceServiceRequest) else spans:
        operation = model_call(span.attrs)
        if operation is None:
            out.ignored += 1
            continue
        try:
            out.events.append(meter.event(call_record(span, operation, source=source, owner=owner)))
        except BadSpan as exc:
            out.rejected.append(SpanError(span.name, span.trace_id.hex(), span.span_id.hex(), str(exc)))
    return out


BATCH_LINES = 200
"""Export requests (lines) per batch written to the ledger; a collector writes up to ~8k spans a line."""


@dataclass(slots=True)
class OtelImporter:
    """Files of OTLP JSON export requests, one a line: the OpenTelemetry Collector's `file` exporter."""

    name: str = "otel"
    description: str = "OpenTelemetry GenAI spans: OTLP JSON lines (the Collector's file exporter)"
    patterns: tuple[str, ...] = ("*.json", "*.jsonl", "*.json.gz", "*.jsonl.gz")
    pricer: Pricer | None = None
    """List prices unless given (the CLI has no server whose overrides apply)."""

    def read(self, path: Path) -> Iterator[Batch]:
        """Each line one export request; each model-call span one event, each bad one a `file:line` error."""
        meter = Meter(self.pricer or Pricer())
        opened = open_text(path)
        with opened.text:
            batch = Batch()
            for number, line in enumerate(opened.text, start=1):
                if line.strip():
                    self._line(path, number, line, meter, batch)
                if number % BATCH_LINES == 0:
                    batch.bytes_read = opened.position
                    yield batch
                    batch = Batch()
            batch.bytes_read = opened.position
            yield batch

    def _line(self, path: Path, number: int, line: str, meter: Meter, batch: Batch) -> None:
        try:
            spans = json_spans(line.rstrip("\r\n"))
        except ValueError as exc:
            batch.errors.append(RowError(str(path), number, str(exc)))
            batch.rows += 1
            return
        out = convert(spans, meter, source=f"import:{self.name}")
        events: list[Record] = list(out.events)
        batch.records.extend(events)
        batch.errors.extend(RowError(str(path), number, str(error)) for error in out.rejected)
        batch.rows += out.calls


IMPORTER = OtelImporter()
