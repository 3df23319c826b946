"""OTLP trace exports, decoded: binary protobuf or the OTLP JSON encoding -> `SpanIn`s.

The JSON encoding is read directly rather than through protobuf's `json_format`, which is ~6x
slower and expects base64 ids where OTLP JSON writes hex
(https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding): keys are lowerCamelCase
(protobuf field names are accepted too), 64-bit integers may be strings, enums integers, and
unknown fields are ignored. A malformed export raises `ValueError` saying where.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from types import UnionType
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Status

Attrs = dict[str, object]

_STATUS_ERROR = 2
"""`STATUS_CODE_ERROR` in `opentelemetry.proto.trace.v1.Status`."""


@dataclass(frozen=True, slots=True)
class SpanIn:
    """What a usage event is built from, whichever encoding the span came in."""

    name: str
    """Span name, e.g. `chat gpt-4o`."""
    trace_id: bytes
    """16 bytes when valid."""
    span_id: bytes
    """8 bytes when valid."""
    start_ns: int
    """Start, Unix nanoseconds (0 when missing)."""
    end_ns: int
    """End, Unix nanoseconds."""
    failed: bool
    """The span's status is ERROR."""
    status_message: str
    """The status description, if any."""
    attrs: Attrs
    """Span attributes."""
    resource: Attrs
    """Attributes of the resource that produced it (`service.name` ...)."""


# --- protobuf ----------------------------------------------------------------------------------


def _proto_value(any_value: AnyValue) -> object:
    kind = any_value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return tuple(_proto_value(v) for v in any_value.array_value.values)
    if kind == "kvlist_value":
        return _proto_attrs(any_value.kvlist_value.values)
    result: object = getattr(any_value, kind)
    return result


def _proto_attrs(pairs: Iterable[KeyValue]) -> Attrs:
    return {pair.key: _proto_value(pair.value) for pair in pairs}


def proto_spans(request: ExportTraceServiceRequest) -> Iterator[SpanIn]:
    """The spans of a protobuf export request."""
    for resource_spans in request.resource_spans:
        resource = _proto_attrs(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                yield SpanIn(
                    name=span.name,
                    trace_id=span.trace_id,
                    span_id=span.span_id,
                    start_ns=span.start_time_unix_nano,
                    end_ns=span.end_time_unix_nano,
                    failed=span.status.code == Status.STATUS_CODE_ERROR,
                    status_message=span.status.message,
                    attrs=_proto_attrs(span.attributes),
                    resource=resource,
                )


# --- OTLP JSON ---------------------------------------------------------------------------------


def _field(obj: dict[str, Any], camel: str, snake: str, default: Any = None) -> Any:
    found = obj.get(camel)
    return obj.get(snake, default) if found is None else found


def _list(obj: dict[str, Any], camel: str, snake: str, where: str) -> list[dict[str, Any]]:
    found = _field(obj, camel, snake, [])
    if not isinstance(found, list) or not all(isinstance(item, dict) for item in found):
        raise ValueError(f"{where}.{camel} must be a list of objects")
    return found


def _int(raw: Any, where: str) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise ValueError(f"{where} is {raw!r}, expected an integer (or a string of digits)")
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{where} is {raw!r}, expected an integer (or a string of digits)") from None


def _hex(raw: Any, where: str) -> bytes:
    if raw in (None, ""):
        return b""
    try:
        return bytes.fromhex(raw)
    except (TypeError, ValueError):
        raise ValueError(f"{where} is {raw!r}, expected hex digits (OTLP JSON writes ids as hex)") from None


_SCALARS: dict[str, type | UnionType] = {"stringValue": str, "boolValue": bool, "doubleValue": int | float}
_CAMEL = {f"{kind}_value": f"{kind}Value" for kind in ("string", "bool", "int", "double", "array", "kvlist", "bytes")}


def _json_value(raw: Any, where: str) -> object:
    if not isinstance(raw, dict) or not raw:
        return None
    key, inner = next(iter(raw.items()))
    key = _CAMEL.get(key, key)
    if key in _SCALARS:
        if not isinstance(inner, _SCALARS[key]) or (key == "doubleValue" and isinstance(inner, bool)):
            raise ValueError(f"{where}: {key} is {inner!r}")
        return float(inner) if isinstance(inner, int | float) and not isinstance(inner, bool) else inner
    if key == "intValue":
        return _int(inner, f"{where}.intValue")
    if key == "arrayValue":
        values = inner.get("values", []) if isinstance(inner, dict) else []
        return tuple(_json_value(v, where) for v in values)
    if key == "kvlistValue":
        return _json_attrs({"attributes": inner.get("values", [])} if isinstance(inner, dict) else {}, where)
    if key == "bytesValue":
        try:
            return base64.b64decode(inner, validate=True)
        except (binascii.Error, TypeError):
            raise ValueError(f"{where}: bytesValue is not base64") from None
    return None  # a value type newer than this reader


def _json_attrs(obj: dict[str, Any], where: str) -> Attrs:
    attrs: Attrs = {}
    for pair in _list(obj, "attributes", "attributes", where):
        key = pair.get("key")
        if not isinstance(key, str):
            raise ValueError(f"{where}: an attribute has no string key")
        attrs[key] = _json_value(pair.get("value"), f"{where} attribute {key!r}")
    return attrs


def _json_span(span: dict[str, Any], resource: Attrs, where: str) -> SpanIn:
    status = span.get("status") or {}
    code = status.get("code", 0) if isinstance(status, dict) else 0
    message = status.get("message", "") if isinstance(status, dict) else ""
    return SpanIn(
        name=str(span.get("name", "")),
        trace_id=_hex(_field(span, "traceId", "trace_id"), f"{where}.traceId"),
        span_id=_hex(_field(span, "spanId", "span_id"), f"{where}.spanId"),
        start_ns=_int(_field(span, "startTimeUnixNano", "start_time_unix_nano", 0), f"{where}.startTimeUnixNano"),
        end_ns=_int(_field(span, "endTimeUnixNano", "end_time_unix_nano", 0), f"{where}.endTimeUnixNano"),
        failed=code in (_STATUS_ERROR, "STATUS_CODE_ERROR"),
        status_message=message if isinstance(message, str) else str(message),
        attrs=_json_attrs(span, where),
        resource=resource,
    )


def json_spans(data: bytes | str) -> list[SpanIn]:
    """The spans of one OTLP JSON export request; `ValueError` naming the first malformed part."""
    try:
        doc = json.loads(data)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"not valid UTF-8 JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ValueError("expected a JSON object (an ExportTraceServiceRequest)")
    spans: list[SpanIn] = []
    for i, resource_spans in enumerate(_list(doc, "resourceSpans", "resource_spans", "request")):
        where = f"resourceSpans[{i}]"
        resource_obj = resource_spans.get("resource") or {}
        resource = _json_attrs(resource_obj, f"{where}.resource") if isinstance(resource_obj, dict) else {}
        for j, scope_spans in enumerate(_list(resource_spans, "scopeSpans", "scope_spans", where)):
            inner = f"{where}.scopeSpans[{j}]"
            for k, span in enumerate(_list(scope_spans, "spans", "spans", inner)):
                spans.append(_json_span(span, resource, f"{inner}.spans[{k}]"))
    return spans
