"""LiteLLM proxy spend logs (`LiteLLM_SpendLogs`): a CSV export, or the PostgreSQL table itself.

One row is one call through the LiteLLM proxy (schema.prisma `model LiteLLM_SpendLogs`). Tokens
follow OpenAI's convention, which LiteLLM normalises every provider to: `prompt_tokens` includes
cached tokens; cache reads and writes come from `metadata.additional_usage_values` (or
`usage_object`): `cache_read_input_tokens` / `prompt_tokens_details.cached_tokens` and
`cache_creation_input_tokens`, reasoning from `completion_tokens_details.reasoning_tokens`.

The ledger cost is tokenops' own exact price at `startTime`; LiteLLM's float `spend` is kept in
the `litellm_spend` tag for comparison. Attribution: `user` (LiteLLM internal user) -> user,
`team_id` -> team, `api_key` (LiteLLM stores its hash) -> api key, `end_user` -> customer;
`request_tags` and `metadata.spend_logs_metadata` become tags. `request_id` is kept, so a
re-import (or the same row from the CSV and the table) is one ledger row.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa

from tokenops.ingest._events import (
    Columns,
    Numbered,
    RateBook,
    event_table,
    numbered_table,
    parse_ts,
    ts_us,
    usage_problem,
)
from tokenops.ingest._litellm_columns import Extras, RowPath
from tokenops.ingest._litellm_columns import fast_columns as parse_columns
from tokenops.ingest._rows import (
    MAX_COUNT,
    READER_CONFIG,
    Batch,
    Chunk,
    RowError,
    chunk_records,
    coalesced,
    csv_records,
    in_order,
    line_chunks,
    open_text,
    shown,
    table_records,
    table_size,
    too_many,
)
from tokenops.pricing import Pricer

NAME = "litellm"
SOURCE = f"import:{NAME}"
BATCH_ROWS = 100_000
CHUNK_BYTES = 16 << 20
APPEND_ROWS = 200_000
"""Rows per ledger append (chunks are merged up to it)."""
REQUIRED = ("request_id", "startTime", "model", "prompt_tokens", "completion_tokens")
COLUMNS = (
    *REQUIRED,
    "call_type",
    "api_key",
    "spend",
    "endTime",
    "completionStartTime",
    "model_group",
    "custom_llm_provider",
    "user",
    "metadata",
    "cache_hit",
    "request_tags",
    "team_id",
    "end_user",
    "session_id",
    "status",
)
"""The columns read (messages, response and the rest are left alone)."""
TABLE = "LiteLLM_SpendLogs"

PROVIDERS = {
    "bedrock": "aws",
    "bedrock_converse": "aws",
    "vertex_ai": "google",
    "vertex_ai_beta": "google",
    "gemini": "google",
    "azure_ai": "azure",
    "xai": "x-ai",
    "together_ai": "together",
    "fireworks_ai": "fireworks",
    "mistral": "mistral",
    "text-completion-openai": "openai",
}
"""LiteLLM `custom_llm_provider` -> genai-prices provider id, where they differ."""

OPERATIONS = {
    "completion": "chat",
    "embedding": "embeddings",
    "text_completion": "text_completion",
    "responses": "responses",
    "anthropic_messages": "messages",
    "image_generation": "image_generation",
    "transcription": "transcription",
    "speech": "speech",
    "moderation": "moderation",
    "rerank": "rerank",
}
"""LiteLLM `call_type` (with or without its async `a` prefix) -> operation."""


class Invalid(ValueError):
    """A row value that cannot be imported; the message is the RowError reason."""


@dataclass(frozen=True, slots=True)
class LiteLLMImporter:
    """Reads `LiteLLM_SpendLogs` as CSV files or straight from PostgreSQL."""

    pricer: Pricer | None = None
    """Prices calls; the default is genai-prices' list prices without overrides."""
    name: str = NAME
    description: str = "LiteLLM proxy spend logs (LiteLLM_SpendLogs as CSV, or postgresql://... URL)"
    patterns: tuple[str, ...] = ("*.csv", "*.csv.gz")
    schemes: tuple[str, ...] = ("postgresql", "postgres")

    def read(self, path: Path) -> Iterator[Batch]:
        opened = open_text(path)
        with opened.text:
            header, _ = csv_records(opened, path)
        missing = [name for name in REQUIRED if name not in header]
        if missing:
            reason = f"not a LiteLLM_SpendLogs export: missing column(s) {', '.join(missing)}"
            yield Batch(errors=[RowError(str(path), 1, reason)])
            return
        yield from coalesced(self._chunks(path, header, RateBook(self.pricer)), APPEND_ROWS)

    def _chunks(self, path: Path, header: list[str], rates: RateBook) -> Iterator[Batch]:
        with duckdb.connect(config=READER_CONFIG) as conn:  # one for the whole file: opening one costs ~20 ms
            chunks = line_chunks(path, CHUNK_BYTES, quoted=True, skip=1)
            yield from in_order(chunks, lambda chunk: self._chunk(chunk, header, path, rates, conn))

    def _chunk(
        self, chunk: Chunk, header: list[str], path: Path, rates: RateBook, conn: duckdb.DuckDBPyConnection
    ) -> Batch:
        unusual: list[int] = []
        columns = fast_columns(chunk, header, conn, unusual)
        found = (
            None if columns is None else _records_at(chunk, header, path, unusual, len(columns.ts_us) + len(unusual))
        )
        if columns is None or found is None:
            return _slow(chunk, header, path, rates)
        costly: dict[int, Decimal] = {}
        parts = [event_table(columns, rates, SOURCE, costly)] if len(columns.ts_us) else []
        if costly:  # record by record, which names a row that costs too much
            return _slow(chunk, header, path, rates)
        rows: list[Numbered] = []
        errors: list[RowError] = []
        for line, record in found:  # the rows Arrow is not sure of, read as the record-by-record path reads them
            try:
                rows.append((line, event_row(record)))
            except Invalid as exc:
                errors.append(RowError(str(path), line, str(exc)))
        if (table := numbered_table(rows, rates, SOURCE, str(path), errors)) is not None:
            parts.append(table)
        tables = {"usage_events": pa.concat_tables(parts)} if parts else {}
        count = len(columns.ts_us) + len(unusual)
        return Batch(tables=tables, errors=errors, rows=count, bytes_read=chunk.position)

    def read_location(self, location: str) -> Iterator[Batch]:
        """Stream the spend-logs table at a `postgresql://` URL (`?table=schema.name` to pick it)."""
        name, rates = shown(location), RateBook(self.pricer)
        for chunk, first in table_records(location, TABLE, COLUMNS, REQUIRED, BATCH_ROWS, "startTime"):
            rows: list[Numbered] = []
            errors: list[RowError] = []
            for offset, record in enumerate(chunk):
                try:
                    rows.append((first + offset, event_row(record)))
                except Invalid as exc:
                    errors.append(RowError(name, first + offset, str(exc)))
            yield _batch(name, rows, errors, len(chunk), first + len(chunk) - 1, rates)

    def location_size(self, location: str) -> int:
        """Rows in the table (PostgreSQL's estimate when it has one): progress is counted in rows."""
        return table_size(location, TABLE)

    def display(self, location: str) -> str:
        return shown(location)


def _slow(chunk: Chunk, header: list[str], path: Path, rates: RateBook) -> Batch:
    """Record by record: every bad row named by its line, the good ones kept."""
    index = {name: i for i, name in enumerate(header) if name in COLUMNS}
    rows: list[Numbered] = []
    errors: list[RowError] = []
    count = 0
    for item in chunk_records(chunk, len(header), path):
        count += 1
        if isinstance(item, RowError):
            errors.append(item)
            continue
        line, values = item
        try:
            rows.append((line, event_row({k: values[i] for k, i in index.items()})))
        except Invalid as exc:
            errors.append(RowError(str(path), line, str(exc)))
    return _batch(str(path), rows, errors, count, chunk.position, rates)


def _records_at(
    chunk: Chunk, header: list[str], path: Path, indexes: list[int], records: int
) -> list[tuple[int, dict[str, str]]] | None:
    """(line, record) of the chunk's records at `indexes` (0-based, ascending; of `records`), as `_slow` reads them.

    None when Python's csv does not see the records Arrow read: the whole chunk then takes `_slow`.
    """
    if not indexes:
        return []
    index = {name: i for i, name in enumerate(header) if name in COLUMNS}
    found: list[tuple[int, dict[str, str]]] = []
    items: Iterator[tuple[int, list[str]] | RowError]
    lines = chunk.data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    if len(lines) == records:  # each record one line (a quoted newline or a blank line makes more lines)
        items = (item for i in indexes for item in _line_records(chunk, lines[i], i, len(header), path))
        wanted = range(len(indexes))
    else:
        items, wanted = chunk_records(chunk, len(header), path), range(records)
    kept = set(indexes) if len(lines) != records else None
    for k, item in zip(wanted, items, strict=False):
        if isinstance(item, RowError):
            return None
        if kept is None or k in kept:
            found.append((item[0], {name: item[1][j] for name, j in index.items()}))
    return found if len(found) == len(indexes) else None


def _line_records(
    chunk: Chunk, line: bytes | bytearray, i: int, width: int, path: Path
) -> list[tuple[int, list[str]] | RowError]:
    """The record on the chunk's line `i` (0-based), as `chunk_records` reads it."""
    return list(chunk_records(Chunk(line + b"\n", chunk.first_line + i, 1, chunk.position), width, path))


def _batch(
    name: str, rows: list[Numbered], errors: list[RowError], count: int, position: int, rates: RateBook
) -> Batch:
    table = numbered_table(rows, rates, SOURCE, name, errors)
    tables = {"usage_events": table} if table is not None else {}
    return Batch(tables=tables, errors=errors, rows=count, bytes_read=position)


def event_row(record: dict[str, Any]) -> tuple[object, ...]:
    """One spend-log row (CSV text or PostgreSQL values) as an `_events.ROW` tuple."""
    request_id = _text(record.get("request_id"))
    if request_id is None:
        raise Invalid("request_id is empty; every LiteLLM_SpendLogs row has one")
    start = _time(record, "startTime", required=True)
    assert start is not None
    end = _time(record, "endTime")
    first_token = _time(record, "completionStartTime")
    group = _text(record.get("model_group"))
    model = _text(record.get("model")) or group
    if model is None:
        raise Invalid("model and model_group are both empty; cannot tell which model was called")
    provider, model = _provider_model(_text(record.get("custom_llm_provider")) or "", model)
    prompt = _count(record.get("prompt_tokens"), "prompt_tokens")
    completion = _count(record.get("completion_tokens"), "completion_tokens")
    cache_read, cache_write, reasoning, status, error_type, user, team, tags = extras(record)
    problem = usage_problem(prompt, cache_read, cache_write, completion, reasoning)
    if problem:
        raise Invalid(problem)
    return (
        request_id,
        start,
        provider,
        model,
        group if group and group != model else None,
        _operation(_text(record.get("call_type")) or "completion"),
        prompt,
        cache_read,
        cache_write,
        0,
        completion,
        reasoning,
        False,
        status,
        error_type,
        (end - start) / 1000 if end is not None and end >= start else None,
        _ttft(start, end, first_token),
        _text(record.get("api_key")),
        _text(record.get("user")) or user,
        _text(record.get("team_id")) or team,
        _text(record.get("end_user")),
        tags,
    )


def extras(record: dict[str, Any]) -> Extras:
    """What comes out of `metadata` and the small columns around it (shared by both CSV paths).

    Returns (cache read, cache write, reasoning, status, error type, metadata user, metadata team, tags).
    """
    metadata = _json(record.get("metadata"), "metadata", dict) or {}
    usage = metadata.get("usage_object") or metadata.get("additional_usage_values") or {}
    if not isinstance(usage, dict):
        raise Invalid("metadata.additional_usage_values is not an object")
    cache_read, cache_write, reasoning = _details(usage)
    status, error_type = _status(record, metadata)
    user, team = _text(metadata.get("user_api_key_user_id")), _text(metadata.get("user_api_key_team_id"))
    return cache_read, cache_write, reasoning, status, error_type, user, team, _tags(record, metadata)


def _provider_model(name: str, model: str) -> tuple[str, str]:
    """genai-prices provider id for LiteLLM's `custom_llm_provider`, and the model without its prefix."""
    name = name.lower()
    if name and model.lower().startswith(name + "/"):
        model = model[len(name) + 1 :]
    return PROVIDERS.get(name, name), model


def _ttft(start: int, end: int | None, first_token: int | None) -> float | None:
    """Time to first token; LiteLLM writes completionStartTime = endTime for calls that did not stream."""
    if first_token is None or first_token == end or first_token < start:
        return None
    return (first_token - start) / 1000


def _text(value: object) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _count(value: object, name: str) -> int:
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        if value > MAX_COUNT:
            raise Invalid(too_many(name, value))
        return value
    if value is None or value == "":
        return 0  # schema.prisma: @default(0)
    raise Invalid(f"{name} is {value!r}, expected a whole number of tokens >= 0")


def _time(record: dict[str, Any], name: str, *, required: bool = False) -> int | None:
    value = record.get(name)
    if isinstance(value, datetime):
        return ts_us(value)  # PostgreSQL `timestamp(3)`: UTC without a zone, as Prisma writes it
    text = _text(value)
    if text is None:
        if required:
            raise Invalid(f"{name} is empty; it is when the call was made")
        return None
    try:
        return parse_ts(text)
    except ValueError:
        raise Invalid(f"{name} is {text!r}, expected an ISO 8601 time such as 2024-06-01T12:00:00.000Z") from None


def _json(value: object, name: str, kind: type) -> Any:
    if value is None or isinstance(value, kind):
        return value
    text = _text(value)
    if text is None:
        return None
    try:
        parsed = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise Invalid(f"{name} is not valid JSON ({exc.msg}); export the column as JSON text") from None
    if parsed is not None and not isinstance(parsed, kind):
        raise Invalid(f"{name} is JSON {type(parsed).__name__}, expected {kind.__name__}")
    return parsed


def _details(usage: dict[str, Any]) -> tuple[int, int, int]:
    """(cache read, cache write, reasoning) tokens from LiteLLM's usage details."""
    prompt_details = usage.get("prompt_tokens_details") or {}
    completion_details = usage.get("completion_tokens_details") or {}
    read = usage.get("cache_read_input_tokens")
    if read is None and isinstance(prompt_details, dict):
        read = prompt_details.get("cached_tokens")
    write = usage.get("cache_creation_input_tokens")
    reasoning = completion_details.get("reasoning_tokens") if isinstance(completion_details, dict) else None
    return (
        _count(read, "cache_read_input_tokens"),
        _count(write, "cache_creation_input_tokens"),
        _count(reasoning, "reasoning_tokens"),
    )


def _status(record: dict[str, Any], metadata: dict[str, Any]) -> tuple[str, str | None]:
    status = (_text(record.get("status")) or _text(metadata.get("status")) or "success").lower()
    if status == "failure":
        error = metadata.get("error_information") or {}
        code = error.get("error_code") or error.get("error_class") if isinstance(error, dict) else None
        return "error", _text(code) or "failure"
    if (_text(record.get("cache_hit")) or "").lower() == "true":
        return "cached", None  # answered from LiteLLM's cache: the provider billed nothing
    return "ok", None


def _operation(call_type: str) -> str:
    if call_type in OPERATIONS:
        return OPERATIONS[call_type]
    if call_type.startswith("a") and call_type[1:] in OPERATIONS:
        return OPERATIONS[call_type[1:]]
    return call_type


def _tags(record: dict[str, Any], metadata: dict[str, Any]) -> dict[str, str] | None:
    tags: dict[str, str] = {}
    custom = metadata.get("spend_logs_metadata")
    if isinstance(custom, dict):
        tags.update({str(k): str(v) for k, v in custom.items() if v is not None})
    raw = record.get("request_tags")
    tags.update(_tag_pairs(raw) if isinstance(raw, str) else _pairs(_json(raw, "request_tags", list) or []))
    for key, value in (
        ("litellm_spend", _text(record.get("spend"))),
        ("key_alias", _text(metadata.get("user_api_key_alias"))),
        ("session_id", _text(record.get("session_id"))),
    ):
        if value is not None:
            tags[key] = value
    return tags or None


@functools.lru_cache(maxsize=4096)
def _tag_pairs(text: str) -> tuple[tuple[str, str], ...]:
    """request_tags JSON text as (name, value) pairs; memoised: a log repeats a few tag lists."""
    return _pairs(_json(text, "request_tags", list) or [])


def _pairs(request_tags: list[object]) -> tuple[tuple[str, str], ...]:
    pairs = []
    for tag in request_tags:
        name, _, label = str(tag).partition(":")  # LiteLLM's convention: "jobID:214590" or a bare "prod"
        pairs.append((name, label or "true"))
    return tuple(pairs)


def fast_columns(
    chunk: Chunk,
    header: list[str],
    conn: duckdb.DuckDBPyConnection | None = None,
    unusual: list[int] | None = None,
) -> Columns | None:
    """A chunk of the CSV parsed by Arrow into columns; None when it needs the record-by-record path.

    See `_litellm_columns.fast_columns`: a row it is not sure of is left to `event_row` (its
    0-based index appended to `unusual`), or makes the result None without `unusual`.
    """
    return parse_columns(chunk, header, _ROW_PATH, conn, unusual)


_ROW_PATH = RowPath(COLUMNS, extras, _operation, _provider_model, _tag_pairs, Invalid)


IMPORTER = LiteLLMImporter()
