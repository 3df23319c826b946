"""Langfuse observations export: the GENERATION observations of a project, as JSON or JSON lines.

Reads what Langfuse's public API (`GET /api/public/observations`, pages of `{"data": [...]}`)
and the UI's export give: one observation per object with `id`, `traceId`, `type`, `startTime`,
`endTime`, `completionStartTime`, `model`, `usageDetails`, `costDetails`, `metadata`, and on
older exports `promptTokens` / `completionTokens` (or `usage.input` / `usage.output`). Spans,
events and other non-generation observations are skipped (they are not model calls).

Langfuse's usage types are disjoint and add up to `total`: `input` excludes the cached-read and
cache-creation keys (`input_cached_tokens`, `input_cache_read`, `cache_read_input_tokens`,
`input_cache_creation`, `cache_creation_input_tokens`), and `output` excludes
`output_reasoning_tokens` / `output_reasoning`. The ledger's input and output tokens are the sums.

`userId` comes from the observation (or its trace, when the export joins it in); `metadata`
entries named `team`, `customer` and `api_key_id` map to attribution, the rest of its string
values to tags, with `trace_id`. Langfuse's own cost (`costDetails.total`) is kept in the
`langfuse_cost` tag; the ledger cost is tokenops' price. The observation `id` is the request id.

A `.json` file is read whole (an array, or an API page); use JSON lines for large exports. In
a `.json` file the line of a bad observation is its position in the array. JSON lines are read by
the chunk, in columns (`_langfuse_columns`); an observation that is at all unusual is read by
`event_row` here, so both paths store the same rows and name the same errors.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa

from tokenops.ingest._events import Numbered, RateBook, event_table, numbered_table, parse_ts, usage_problem
from tokenops.ingest._langfuse_columns import parse_chunk
from tokenops.ingest._rows import (
    MAX_COUNT,
    READER_CONFIG,
    Batch,
    Chunk,
    RowError,
    coalesced,
    in_order,
    line_chunks,
    open_text,
    too_many,
)
from tokenops.pricing import Pricer

NAME = "langfuse"
SOURCE = f"import:{NAME}"
BATCH_ROWS = 50_000
CHUNK_BYTES = 16 << 20
APPEND_ROWS = 200_000
"""Rows per ledger append (chunks are merged up to it)."""
GENERATION = "GENERATION"

CACHE_READ_KEYS = ("input_cached_tokens", "input_cache_read", "cache_read_input_tokens")
CACHE_WRITE_KEYS = ("input_cache_creation", "cache_creation_input_tokens")
REASONING_KEYS = ("output_reasoning_tokens", "output_reasoning")
PROVIDERS = {"openai": "openai", "anthropic": "anthropic", "google": "google", "azure": "azure", "aws": "aws"}
"""`metadata.provider` / `metadata.ls_provider` values taken as the genai-prices provider."""


class Invalid(ValueError):
    """An observation that cannot be imported; the message is the RowError reason."""


@dataclass(frozen=True, slots=True)
class LangfuseImporter:
    """Reads Langfuse observation exports (.json arrays or API pages, .jsonl)."""

    pricer: Pricer | None = None
    """Prices calls; the default is genai-prices' list prices without overrides."""
    name: str = NAME
    description: str = "Langfuse observations export (GENERATION observations, JSON or JSON lines)"
    patterns: tuple[str, ...] = ("*.json", "*.jsonl", "*.json.gz", "*.jsonl.gz")

    def read(self, path: Path) -> Iterator[Batch]:
        rates = RateBook(self.pricer)
        if path.name.removesuffix(".gz").endswith(".json"):
            yield from _read_items(_whole_json(path), path, rates)
        else:
            yield from coalesced(_chunks(path, rates), APPEND_ROWS)


def _read_items(items: Iterator[Item], path: Path, rates: RateBook) -> Iterator[Batch]:
    """Observations one by one (a whole `.json` document)."""
    rows: list[Numbered] = []
    errors: list[RowError] = []
    count, position = 0, 0
    for item, position in items:
        if isinstance(item, RowError):
            count += 1
            errors.append(item)
            continue
        count += _observe(item[0], item[1], path, rows, errors)
        if count >= BATCH_ROWS:
            yield _batch(path, rows, errors, count, position, rates)
            rows, errors, count = [], [], 0
    if count:
        yield _batch(path, rows, errors, count, position, rates)


def _observe(line: int, observation: Any, path: Path, rows: list[Numbered], errors: list[RowError]) -> int:
    """Read one observation into `rows` or `errors`; 1 if it counts as a row, 0 for a span or event."""
    if isinstance(observation, dict) and observation.get("type", GENERATION) != GENERATION:
        return 0  # a span or an event: not a model call
    try:
        rows.append((line, event_row(observation)))
    except Invalid as exc:
        errors.append(RowError(str(path), line, str(exc)))
    return 1


def _chunks(path: Path, rates: RateBook) -> Iterator[Batch]:
    """JSON lines by the chunk: Arrow reads the usual observations, `event_row` the others."""
    with duckdb.connect(config=READER_CONFIG) as conn:  # one for the whole file: opening one costs ~20 ms
        yield from in_order(line_chunks(path, CHUNK_BYTES), lambda chunk: _chunk(chunk, path, rates, conn))


def _chunk(chunk: Chunk, path: Path, rates: RateBook, conn: duckdb.DuckDBPyConnection) -> Batch:
    parsed = parse_chunk(chunk, conn, PROVIDERS)
    rows: list[Numbered] = []
    errors: list[RowError] = []
    costly: dict[int, Decimal] = {}
    parts = (
        [event_table(parsed.columns, rates, SOURCE, costly)]
        if parsed is not None and parsed.columns is not None
        else []
    )
    if parsed is None or costly:  # line by line, which names a row that costs too much
        count = _slow(chunk, path, rows, errors)
        return _batch(path, rows, errors, count, chunk.position, rates)
    lines = chunk.data.split(b"\n") if parsed.unusual else []
    count = parts[0].num_rows if parts else 0
    for index in parsed.unusual:
        count += _line(chunk.first_line + index, lines[index], path, rows, errors)
    if (table := numbered_table(rows, rates, SOURCE, str(path), errors)) is not None:
        parts.append(table)
    tables = {"usage_events": pa.concat_tables(parts)} if parts else {}
    return Batch(tables=tables, errors=errors, rows=count, bytes_read=chunk.position)


def _slow(chunk: Chunk, path: Path, rows: list[Numbered], errors: list[RowError]) -> int:
    """Line by line, as `jsonl_rows` reads a file: every bad line named, the good ones kept."""
    count = 0
    for number, text in enumerate(chunk.text(), start=chunk.first_line):
        if text.strip():
            count += _line(number, text, path, rows, errors)
    return count


def _line(number: int, text: str | bytes | bytearray, path: Path, rows: list[Numbered], errors: list[RowError]) -> int:
    """One line of JSON lines, as `_observe` counts it."""
    try:
        observation = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        errors.append(RowError(str(path), number, f"not valid JSON: {exc.msg} at column {exc.colno}"))
        return 1
    return _observe(number, observation, path, rows, errors)


def _batch(
    path: Path, rows: list[Numbered], errors: list[RowError], count: int, position: int, rates: RateBook
) -> Batch:
    table = numbered_table(rows, rates, SOURCE, str(path), errors)
    tables = {"usage_events": table} if table is not None else {}
    return Batch(tables=tables, errors=errors, rows=count, bytes_read=position)


Item = tuple[tuple[int, Any] | RowError, int]


def _whole_json(path: Path) -> Iterator[Item]:
    opened = open_text(path)
    with opened.text:
        text = opened.text.read()
    try:
        document = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        yield RowError(str(path), exc.lineno, f"not valid JSON: {exc.msg} at column {exc.colno}"), opened.position
        return
    if isinstance(document, dict) and isinstance(document.get("data"), list):
        document = document["data"]  # a page of GET /api/public/observations
    if not isinstance(document, list):
        reason = 'expected a JSON array of observations or an API page {"data": [...]}'
        yield RowError(str(path), 1, reason), opened.position
        return
    for index, observation in enumerate(document, start=1):
        yield (index, observation), opened.position


def event_row(observation: Any) -> tuple[object, ...]:
    """One GENERATION observation as an `_events.ROW` tuple."""
    if not isinstance(observation, dict):
        raise Invalid(f"expected an observation object, found {type(observation).__name__}")
    request_id = _text(observation.get("id"))
    if request_id is None:
        raise Invalid("id is missing; every Langfuse observation has one")
    start = _time(observation, "startTime", required=True)
    assert start is not None
    end, first = _time(observation, "endTime"), _time(observation, "completionStartTime")
    model = _text(observation.get("model"))
    if model is None:
        raise Invalid("model is missing; a generation without a model cannot be priced (set it in Langfuse)")
    details = observation.get("usageDetails")
    if details is not None and not isinstance(details, dict):
        raise Invalid("usageDetails is not an object of usage type -> count")
    details = details or {}
    legacy = _object(observation.get("usage"))
    plain_input = _first(details, "usageDetails", ("input",)) or _first(legacy, "usage", ("input",))
    plain_output = _first(details, "usageDetails", ("output",)) or _first(legacy, "usage", ("output",))
    if not details and not legacy:
        plain_input = _count(observation.get("promptTokens"), "promptTokens")
        plain_output = _count(observation.get("completionTokens"), "completionTokens")
    read = _first(details, "usageDetails", CACHE_READ_KEYS)
    write = _first(details, "usageDetails", CACHE_WRITE_KEYS)
    reasoning = _first(details, "usageDetails", REASONING_KEYS)
    input_tokens, output_tokens = plain_input + read + write, plain_output + reasoning
    problem = usage_problem(input_tokens, read, write, output_tokens, reasoning)
    if problem:
        raise Invalid(problem)
    metadata = _object(observation.get("metadata"))
    provider = PROVIDERS.get(str(metadata.get("provider") or metadata.get("ls_provider") or "").lower(), "")
    error = observation.get("level") == "ERROR"
    return (
        request_id,
        start,
        provider,
        model,
        None,
        "chat",
        input_tokens,
        read,
        write,
        0,
        output_tokens,
        reasoning,
        False,
        "error" if error else "ok",
        _text(observation.get("statusMessage")) if error else None,
        (end - start) / 1000 if end is not None and end >= start else None,
        (first - start) / 1000 if first is not None and first >= start else None,
        _text(metadata.get("api_key_id")),
        _text(observation.get("userId")) or _text(metadata.get("user_id")),
        _text(metadata.get("team")),
        _text(metadata.get("customer")),
        _tags(observation, metadata),
    )


def _tags(observation: dict[str, Any], metadata: dict[str, Any]) -> dict[str, str] | None:
    tags = {
        str(k): v.strip()
        for k, v in metadata.items()
        if isinstance(v, str) and v.strip() and k not in ("team", "customer", "api_key_id", "user_id")
    }
    for key, value in (
        ("trace_id", _text(observation.get("traceId"))),
        ("langfuse_cost", _cost(observation.get("costDetails"))),
        ("name", _text(observation.get("name"))),
    ):
        if value is not None:
            tags[key] = value
    return tags or None


def _object(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _cost(details: object) -> str | None:
    if isinstance(details, dict) and isinstance(details.get("total"), int | float):
        return repr(details["total"])
    return None


def _first(parent: dict[str, Any], where: str, keys: tuple[str, ...]) -> int:
    for key in keys:
        if key in parent and parent[key] is not None:
            return _count(parent[key], f"{where}.{key}")
    return 0


def _count(value: object, name: str) -> int:
    if value is None:
        return 0
    if isinstance(value, float) and value.is_integer() and value >= 0:
        value = int(value)  # Langfuse's ClickHouse export writes counts as 12.0
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        if value > MAX_COUNT:
            raise Invalid(too_many(name, value))
        return value
    raise Invalid(f"{name} is {value!r}, expected a whole number of tokens >= 0")


def _time(observation: dict[str, Any], name: str, *, required: bool = False) -> int | None:
    text = _text(observation.get(name))
    if text is None:
        if required:
            raise Invalid(f"{name} is missing; it is when the generation ran")
        return None
    try:
        return parse_ts(text)
    except ValueError:
        raise Invalid(f"{name} is {text!r}, expected an ISO 8601 time such as 2025-01-10T14:08:32.000Z") from None


def _text(value: object) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


IMPORTER = LangfuseImporter()
