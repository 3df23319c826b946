"""AWS Bedrock model-invocation logs: the JSON lines Bedrock delivers to S3 or CloudWatch Logs.

One record (`schemaType` "ModelInvocationLog") is one call: `requestId`, `timestamp`, `accountId`,
`identity.arn`, `region`, `operation`, `modelId`, `input.inputTokenCount`,
`output.outputTokenCount`, `input.cacheReadInputTokenCount` / `cacheWriteInputTokenCount` and,
for failed calls, `errorCode`. As in the Converse API's usage, `inputTokenCount` does not include
cache reads and writes, so the ledger's input tokens are the three added up.

`modelId` is priced as an AWS model (genai-prices provider `aws`, which knows the `us.`/`eu.`
cross-region inference profiles); an inference-profile ARN is priced by the model id at its end.
The caller's IAM identity (`identity.arn`) is the user; `requestMetadata` (Converse's own
key-value labels) become tags, with `account_id` and `region`.

Clean chunks are parsed by Arrow's JSON reader into columns; a chunk with anything unusual (a
bad line, a blank line, a string where a count should be) is read line by line, so every bad
record is named by its line and the good ones around it kept.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from tokenops.ingest._events import (
    FIELDS,
    Columns,
    Numbered,
    RateBook,
    event_table,
    numbered_table,
    parse_ts,
    per_distinct,
    tags_json,
    usage_problem,
)
from tokenops.ingest._rows import (
    MAX_COUNT,
    SINGLE_JSON,
    Batch,
    Chunk,
    RowError,
    coalesced,
    in_order,
    line_chunks,
    too_many,
)
from tokenops.pricing import Pricer

NAME = "bedrock"
SOURCE = f"import:{NAME}"
SCHEMA_TYPE = "ModelInvocationLog"
CHUNK_BYTES = 16 << 20
APPEND_ROWS = 200_000
"""Rows per ledger append (chunks are merged up to it)."""

_COUNT = pa.int64()
_SCHEMA = pa.schema(
    [
        ("schemaType", pa.string()),
        ("timestamp", pa.string()),
        ("accountId", pa.string()),
        ("identity", pa.struct([("arn", pa.string())])),
        ("region", pa.string()),
        ("requestId", pa.string()),
        ("operation", pa.string()),
        ("modelId", pa.string()),
        ("errorCode", pa.string()),
        (
            "input",
            pa.struct(
                [
                    ("inputTokenCount", _COUNT),
                    ("cacheReadInputTokenCount", _COUNT),
                    ("cacheWriteInputTokenCount", _COUNT),
                ]
            ),
        ),
        ("output", pa.struct([("outputTokenCount", _COUNT)])),
    ]
)
_PARSE = pj.ParseOptions(explicit_schema=_SCHEMA, unexpected_field_behavior="ignore")


class Invalid(ValueError):
    """A record that cannot be imported; the message is the RowError reason."""


@dataclass(frozen=True, slots=True)
class BedrockImporter:
    """Reads Bedrock model-invocation logs (JSON lines, gzipped or not)."""

    pricer: Pricer | None = None
    """Prices calls; the default is genai-prices' list prices without overrides."""
    name: str = NAME
    description: str = "AWS Bedrock model-invocation logs (JSON lines from S3 or CloudWatch)"
    patterns: tuple[str, ...] = ("*.json", "*.jsonl", "*.json.gz", "*.jsonl.gz")

    def read(self, path: Path) -> Iterator[Batch]:
        yield from coalesced(self._chunks(path, RateBook(self.pricer)), APPEND_ROWS)

    def _chunks(self, path: Path, rates: RateBook) -> Iterator[Batch]:
        return in_order(line_chunks(path, CHUNK_BYTES), lambda chunk: _chunk(chunk, path, rates))


def _chunk(chunk: Chunk, path: Path, rates: RateBook) -> Batch:
    columns = fast_columns(chunk)
    if columns is None:
        return _slow(chunk, path, rates)
    costly: dict[int, Decimal] = {}
    table = event_table(columns, rates, SOURCE, costly)
    if costly:  # the line by line path names them
        return _slow(chunk, path, rates)
    return Batch(tables={"usage_events": table}, rows=table.num_rows, bytes_read=chunk.position)


def _slow(chunk: Chunk, path: Path, rates: RateBook) -> Batch:
    """Line by line: every bad record named, the good ones kept."""
    rows: list[Numbered] = []
    errors: list[RowError] = []
    count = 0
    for number, text in enumerate(chunk.text(), start=chunk.first_line):
        if not text.strip():
            continue
        count += 1
        try:
            rows.append((number, event_row(orjson.loads(text))))
        except orjson.JSONDecodeError as exc:
            errors.append(RowError(str(path), number, f"not valid JSON: {exc.msg} at column {exc.colno}"))
        except Invalid as exc:
            errors.append(RowError(str(path), number, str(exc)))
    table = numbered_table(rows, rates, SOURCE, str(path), errors)
    tables = {"usage_events": table} if table is not None else {}
    return Batch(tables=tables, errors=errors, rows=count, bytes_read=chunk.position)


def event_row(record: Any) -> tuple[object, ...]:
    """One invocation log record as an `_events.ROW` tuple."""
    if not isinstance(record, dict):
        raise Invalid(f"expected a JSON object per line, found {type(record).__name__}")
    if record.get("schemaType") != SCHEMA_TYPE:
        raise Invalid(f"schemaType is {record.get('schemaType')!r}, expected {SCHEMA_TYPE!r}: not an invocation log")
    request_id = _text(record.get("requestId"))
    if request_id is None:
        raise Invalid("requestId is missing; every invocation log record has one")
    stamp = _text(record.get("timestamp"))
    try:
        ts = parse_ts(stamp or "")
    except ValueError:
        raise Invalid(f"timestamp is {stamp!r}, expected an ISO 8601 time such as 2025-01-10T14:08:32Z") from None
    model = model_id(_text(record.get("modelId")) or "")
    if not model:
        raise Invalid("modelId is missing; cannot tell which model was called")
    inputs, outputs = _object(record, "input"), _object(record, "output")
    error = _text(record.get("errorCode"))
    required = error is None  # a failed call may have no usage at all
    uncached = _count(inputs, "input", "inputTokenCount", required)
    read = _count(inputs, "input", "cacheReadInputTokenCount", False)
    write = _count(inputs, "input", "cacheWriteInputTokenCount", False)
    output = _count(outputs, "output", "outputTokenCount", required)
    problem = usage_problem(uncached + read + write, read, write, output, 0)
    if problem:
        raise Invalid(problem)
    tags = {"account_id": _text(record.get("accountId")), "region": _text(record.get("region"))}
    metadata = record.get("requestMetadata")
    if isinstance(metadata, dict):
        tags.update({str(k): str(v) for k, v in metadata.items()})
    identity = record.get("identity")
    return (
        request_id,
        ts,
        "aws",
        model,
        None,
        _operation(model),
        uncached + read + write,
        read,
        write,
        0,
        output,
        0,
        False,
        "ok" if error is None else "error",
        error,
        None,
        None,
        None,
        _text(identity.get("arn")) if isinstance(identity, dict) else None,
        None,
        None,
        {k: v for k, v in tags.items() if v is not None} or None,
    )


def fast_columns(chunk: Chunk) -> Columns | None:
    """The chunk parsed as columns, or None when it needs the line-by-line path."""
    try:
        table = pj.read_json(pa.BufferReader(chunk.data), read_options=SINGLE_JSON, parse_options=_PARSE)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None
    expected = chunk.lines + (0 if chunk.data.endswith(b"\n") else 1)
    n = table.num_rows
    if n != expected or not n:  # a blank line shifts line numbers: let the slow path count them
        return None
    inputs, outputs = table["input"].combine_chunks(), table["output"].combine_chunks()
    counts = [  # struct_field, not .field: an absent `input` leaves its children null
        pc.struct_field(inputs, "inputTokenCount"),
        pc.struct_field(inputs, "cacheReadInputTokenCount"),
        pc.struct_field(inputs, "cacheWriteInputTokenCount"),
        pc.struct_field(outputs, "outputTokenCount"),
    ]
    request_id = pc.utf8_trim_whitespace(table["requestId"].combine_chunks())
    # an inference-profile ARN is priced by the model id at its end (`model_id`)
    model = pc.replace_substring_regex(pc.utf8_trim_whitespace(table["modelId"].combine_chunks()), r"(?s)^arn:.*/", "")
    error = _blank_to_null(table["errorCode"].combine_chunks())
    failed = error.is_valid()  # a failed call may have no usage at all
    clean = (  # a null anywhere makes a test null, not true: the slow path names the row
        pc.all(pc.equal(table["schemaType"], SCHEMA_TYPE), skip_nulls=False).as_py()
        and pc.all(pc.greater(pc.utf8_length(request_id), 0), skip_nulls=False).as_py()
        and pc.all(pc.greater(pc.utf8_length(model), 0), skip_nulls=False).as_py()
        and pc.all(pc.or_(failed, pc.and_(counts[0].is_valid(), counts[3].is_valid()))).as_py()
        and all(pc.min(c).as_py() is None or pc.min(c).as_py() >= 0 for c in counts)
    )
    if not clean:
        return None
    try:
        ts = pc.cast(table["timestamp"], pa.timestamp("us", tz="UTC")).combine_chunks()
    except pa.ArrowInvalid:
        return None
    if ts.null_count:
        return None
    uncached, read, write, output = (np.nan_to_num(c.to_numpy(zero_copy_only=False)).astype(np.int64) for c in counts)
    token_counts = np.zeros((len(FIELDS), n), dtype=np.int64)
    token_counts[0], token_counts[1], token_counts[2], token_counts[4] = uncached + read + write, read, write, output
    strings = pa.nulls(n, pa.string())
    return Columns(
        request_id=request_id,
        ts_us=ts.cast(pa.int64()).to_numpy(),
        provider=pa.array(np.full(n, "aws", dtype=object), pa.string()),
        model=model,
        model_requested=strings,
        operation=pc.if_else(pc.match_substring(model, "embed"), "embeddings", "chat"),
        counts=token_counts,
        batch=np.zeros(n, dtype=bool),
        status=pc.if_else(failed, "error", "ok"),
        error_type=error,
        latency_ms=pa.nulls(n, pa.float64()),
        ttft_ms=pa.nulls(n, pa.float64()),
        api_key_id=strings,
        user_id=_blank_to_null(pc.struct_field(table["identity"].combine_chunks(), "arn")),
        team=strings,
        customer=strings,
        tags=_with_request_metadata(
            _tag_column(table["accountId"].combine_chunks(), table["region"].combine_chunks()), chunk
        ),
    )


def _with_request_metadata(tags: pa.Array, chunk: Chunk) -> pa.Array:
    """Add Converse's `requestMetadata` labels to the tags of the lines that carry them (read line by line)."""
    if b'"requestMetadata"' not in chunk.data:
        return tags
    texts = tags.to_pylist()
    lines: Sequence[bytes | bytearray] = chunk.data.split(b"\n")
    for index, line in enumerate(lines[: len(texts)]):
        if b'"requestMetadata"' in line:
            metadata = orjson.loads(line).get("requestMetadata")
            if isinstance(metadata, dict):
                merged = orjson.loads(texts[index]) if texts[index] else {}
                merged.update({str(k): str(v) for k, v in metadata.items()})
                texts[index] = tags_json(merged)
    return pa.array(texts, pa.string())


def _tag_column(account: pa.Array, region: pa.Array) -> pa.Array:
    """`{"account_id": ..., "region": ...}` per row, sorted and serialised as `build_table` does."""
    joined = pc.binary_join_element_wise(pc.fill_null(account, "\x00"), pc.fill_null(region, "\x00"), "\x1f")
    return per_distinct(joined, _tags_text)


def _tags_text(joined: str) -> str | None:
    values = zip(("account_id", "region"), joined.split("\x1f"), strict=True)
    return tags_json({k: v.strip() for k, v in values if v != "\x00" and v.strip()})


def _blank_to_null(values: pa.Array) -> pa.Array:
    trimmed = pc.utf8_trim_whitespace(values)
    return pc.if_else(pc.equal(trimmed, ""), pa.scalar(None, pa.string()), trimmed)


def model_id(value: str) -> str:
    """A model id as genai-prices knows it: an inference-profile ARN is priced by the id at its end."""
    if value.startswith("arn:"):
        return value.rsplit("/", 1)[-1]
    return value


def _operation(model: str) -> str:
    return "embeddings" if "embed" in model else "chat"


def _text(value: object) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _object(record: dict[str, Any], name: str) -> dict[str, Any]:
    value = record.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise Invalid(f"{name} is {type(value).__name__}, expected an object with token counts")
    return value


def _count(parent: dict[str, Any], where: str, name: str, required: bool) -> int:
    value = parent.get(name)
    if value is None:
        if required:
            raise Invalid(f"{where}.{name} is missing; a successful call reports its tokens")
        return 0
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        if value > MAX_COUNT:
            raise Invalid(too_many(f"{where}.{name}", value))
        return value
    raise Invalid(f"{where}.{name} is {value!r}, expected a whole number of tokens >= 0")


IMPORTER = BedrockImporter()
