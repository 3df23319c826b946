"""`POST /v1/traces`: an OTLP/HTTP receiver that records OpenTelemetry GenAI spans in the ledger.

Follows the OTLP/HTTP specification (https://opentelemetry.io/docs/specs/otlp/#otlphttp): a
binary protobuf or JSON `ExportTraceServiceRequest`, optionally gzipped; 200 with an
`ExportTraceServiceResponse` in the request's encoding, whose `partial_success` counts the
rejected spans and names why; 400 with a `google.rpc.Status` for a body that cannot be parsed
(not retryable, as the spec says); 415 for another content type or encoding.

Spans are converted by `tokenops.ingest.otel` with the gateway's meter (so price overrides
apply) and submitted to the server's `LedgerWriter`, which spools each event before `submit`
returns: a 200 means the events survive a crash. Senders authenticate with a tokenops virtual
key (`Authorization: Bearer tok-...`), whose user and team the spans are charged to; without one
the request gets 401 unless `[gateway] require_keys = false`, the same switch as the gateway's.
"""

from __future__ import annotations

import json
import logging
import zlib
from dataclasses import dataclass

from google.protobuf import json_format  # type: ignore[import-untyped]  # no types-protobuf in the lock
from google.protobuf.message import DecodeError  # type: ignore[import-untyped]
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tokenops.events import Attribution
from tokenops.gateway.app import Gateway
from tokenops.ingest._otlp import SpanIn, json_spans
from tokenops.ingest.otel import Converted, convert
from tokenops.store.writer import LedgerWriter

log = logging.getLogger(__name__)

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
LISTED_ERRORS = 20
"""Rejected spans named in `partial_success.error_message`; the rest are counted."""

# google.rpc.Code values (https://github.com/googleapis/googleapis/blob/master/google/rpc/code.proto)
_INVALID_ARGUMENT = 3
_UNAUTHENTICATED = 16


class _TooLarge(Exception):
    """The body, compressed or not, is over the gateway's `max_body_bytes`."""


@dataclass(frozen=True, slots=True)
class _Failure:
    status: int
    message: str


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def status_response(status: int, message: str, content_type: str) -> Response:
    """A `google.rpc.Status` body, as OTLP/HTTP requires for 4xx, in the request's encoding.

    Encoded by hand (fields 1 `code` and 2 `message`) so the server needs no googleapis protos.
    """
    code = _UNAUTHENTICATED if status == 401 else _INVALID_ARGUMENT
    if content_type == PROTOBUF:
        text = message.encode()
        body = b"\x08" + _varint(code) + b"\x12" + _varint(len(text)) + text
    else:
        content_type = JSON
        body = json.dumps({"code": code, "message": message}).encode()
    return Response(body, status_code=status, media_type=content_type)


async def _body(request: Request, limit: int) -> bytes:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _gunzip(data: bytes, limit: int) -> bytes:
    inflate = zlib.decompressobj(wbits=31)
    try:
        out = inflate.decompress(data, limit + 1)
    except zlib.error as exc:
        raise ValueError(f"Content-Encoding is gzip but the body is not gzip data: {exc}") from None
    if len(out) > limit:
        raise _TooLarge
    if not inflate.eof:
        raise ValueError("Content-Encoding is gzip but the gzip data is truncated")
    return out


def _parse(data: bytes, content_type: str) -> ExportTraceServiceRequest | list[SpanIn]:
    if content_type == JSON:
        return json_spans(data)
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(data)
    except DecodeError as exc:
        raise ValueError(f"not a protobuf ExportTraceServiceRequest: {exc}") from None
    return request


def _record(
    request: ExportTraceServiceRequest | list[SpanIn], gateway: Gateway, writer: LedgerWriter, owner: Attribution | None
) -> Converted:
    """Convert and spool (blocking: file writes), in a worker thread."""
    out = convert(request, gateway.meter, source="otel", owner=owner)
    for event in out.events:
        writer.submit(event)
    return out


def _response(out: Converted, content_type: str) -> Response:
    answer = ExportTraceServiceResponse()
    if out.rejected:
        listed = "; ".join(str(e) for e in out.rejected[:LISTED_ERRORS])
        more = len(out.rejected) - LISTED_ERRORS
        message = f"{len(out.rejected)} GenAI span(s) rejected: {listed}" + (f"; and {more} more" if more > 0 else "")
        answer.partial_success.CopyFrom(
            ExportTracePartialSuccess(rejected_spans=len(out.rejected), error_message=message)
        )
    body = (
        answer.SerializeToString()
        if content_type == PROTOBUF
        else json_format.MessageToJson(answer, indent=None).encode()
    )
    headers = {
        "x-tokenops-spans-recorded": str(len(out.events)),
        "x-tokenops-spans-rejected": str(len(out.rejected)),
        "x-tokenops-spans-ignored": str(out.ignored),
    }
    return Response(body, media_type=content_type, headers=headers)


def _check(request: Request, gateway: Gateway) -> tuple[str, Attribution | None] | _Failure:
    """The request's content type and sender, or why it is refused before its body is read."""
    content_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if content_type not in (PROTOBUF, JSON):
        return _Failure(415, f"Content-Type {content_type!r} is not supported; send {PROTOBUF} or {JSON} (OTLP/HTTP)")
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("identity", "gzip"):
        return _Failure(415, f"Content-Encoding {encoding!r} is not supported; send gzip or no encoding")
    header = request.headers.get("authorization", "")
    if header:
        key = gateway.keys.lookup(header[7:].strip()) if header[:7].lower() == "bearer " else None
        if key is None:
            return _Failure(
                401, "Invalid tokenops key; send `Authorization: Bearer tok-...` from `tokenops keys create`"
            )
        return content_type, Attribution(api_key_id=key.key_id, user=key.user, team=key.team)
    if gateway.settings.require_keys:
        return _Failure(
            401,
            "Missing tokenops key; set OTEL_EXPORTER_OTLP_HEADERS='Authorization=Bearer%20tok-...' "
            "(create one with `tokenops keys create`)",
        )
    return content_type, None


async def traces(request: Request) -> Response:
    """Record the GenAI spans of an OTLP export; other spans are counted and dropped."""
    gateway: Gateway = request.app.state.gateway
    checked = _check(request, gateway)
    if isinstance(checked, _Failure):
        reply_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
        return status_response(checked.status, checked.message, reply_type)
    content_type, owner = checked
    limit = gateway.settings.max_body_bytes
    try:
        data = await _body(request, limit)
        if request.headers.get("content-encoding", "identity").strip().lower() == "gzip":
            data = _gunzip(data, limit)
        export = _parse(data, content_type)
    except _TooLarge:
        return status_response(413, f"Body over {limit} bytes; lower the exporter's batch size", content_type)
    except ValueError as exc:
        return status_response(400, str(exc), content_type)
    out = await run_in_threadpool(_record, export, gateway, request.app.state.writer, owner)
    if out.rejected or out.events:
        log.info(
            "OTLP: %d GenAI spans recorded, %d rejected, %d other spans ignored",
            len(out.events),
            len(out.rejected),
            out.ignored,
        )
    return _response(out, content_type)


routes = [Route("/v1/traces", traces, methods=["POST"])]
