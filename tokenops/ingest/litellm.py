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

import dataclasses
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from tokenops.ingest._events import (
    FIELDS,
    WHOLE,
    Columns,
    RateBook,
    build_table,
    event_table,
    iso_times,
    null_blank,
    parse_ts,
    per_distinct,
    tags_json,
    ts_us,
    usage_problem,
    whole_numbers,
)
from tokenops.ingest._litellm_metadata import read_metadata, tag_texts
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
        rows: list[tuple[object, ...]] = []
        errors: list[RowError] = []
        for line, record in found:  # the rows Arrow is not sure of, read as the record-by-record path reads them
            try:
                rows.append(event_row(record))
            except Invalid as exc:
                errors.append(RowError(str(path), line, str(exc)))
        parts = [event_table(columns, rates, SOURCE)] if len(columns.ts_us) else []
        if rows:
            parts.append(build_table(rows, rates, SOURCE))
        tables = {"usage_events": pa.concat_tables(parts)} if parts else {}
        count = len(columns.ts_us) + len(unusual)
        return Batch(tables=tables, errors=errors, rows=count, bytes_read=chunk.position)

    def read_location(self, location: str) -> Iterator[Batch]:
        """Stream the spend-logs table at a `postgresql://` URL (`?table=schema.name` to pick it)."""
        name, rates = shown(location), RateBook(self.pricer)
        for chunk, first in table_records(location, TABLE, COLUMNS, REQUIRED, BATCH_ROWS, "startTime"):
            rows: list[tuple[object, ...]] = []
            errors: list[RowError] = []
            for offset, record in enumerate(chunk):
                try:
                    rows.append(event_row(record))
                except Invalid as exc:
                    errors.append(RowError(name, first + offset, str(exc)))
            yield _batch(rows, errors, len(chunk), first + len(chunk) - 1, rates)

    def location_size(self, location: str) -> int:
        """Rows in the table (PostgreSQL's estimate when it has one): progress is counted in rows."""
        return table_size(location, TABLE)

    def display(self, location: str) -> str:
        return shown(location)


def _slow(chunk: Chunk, header: list[str], path: Path, rates: RateBook) -> Batch:
    """Record by record: every bad row named by its line, the good ones kept."""
    index = {name: i for i, name in enumerate(header) if name in COLUMNS}
    rows: list[tuple[object, ...]] = []
    errors: list[RowError] = []
    count = 0
    for item in chunk_records(chunk, len(header), path):
        count += 1
        if isinstance(item, RowError):
            errors.append(item)
            continue
        line, values = item
        try:
            rows.append(event_row({k: values[i] for k, i in index.items()}))
        except Invalid as exc:
            errors.append(RowError(str(path), line, str(exc)))
    return _batch(rows, errors, count, chunk.position, rates)


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


def _line_records(chunk: Chunk, line: bytes, i: int, width: int, path: Path) -> list[tuple[int, list[str]] | RowError]:
    """The record on the chunk's line `i` (0-based), as `chunk_records` reads it."""
    return list(chunk_records(Chunk(line + b"\n", chunk.first_line + i, 1, chunk.position), width, path))


def _batch(rows: list[tuple[object, ...]], errors: list[RowError], count: int, position: int, rates: RateBook) -> Batch:
    tables = {"usage_events": build_table(rows, rates, SOURCE)} if rows else {}
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


Extras = tuple[int, int, int, str, str | None, str | None, str | None, dict[str, str] | None]


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
            raise Invalid(
                f"{name} is {value}, more than the ledger holds (2^63 - 1); expected a whole number of tokens"
            )
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

    Only `metadata` and the small columns `extras` reads are handled row by row (shared with the
    slow path); everything else is vectorised. A row Arrow reads but is not sure of (an empty id,
    a count or time that is not plainly one, malformed JSON...) makes the result None, unless
    `unusual` is given: the row is then left out of the columns and its 0-based index appended
    to `unusual`, for `event_row` to read (and name what is wrong with it).
    """
    wanted = [h for h in header if h in COLUMNS]
    try:
        table = pcsv.read_csv(
            pa.BufferReader(chunk.data),  # not a Python file: Arrow reads it without the GIL
            read_options=pcsv.ReadOptions(column_names=header, use_threads=False),  # serial: see READER_CONFIG
            parse_options=pcsv.ParseOptions(newlines_in_values=True),
            convert_options=pcsv.ConvertOptions(
                column_types=dict.fromkeys(wanted, pa.string()),
                include_columns=wanted,
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid:
        return None
    n = table.num_rows
    if not n:
        return None
    blank = pa.array(np.full(n, "", dtype=object), pa.string())

    def col(name: str) -> pa.Array:
        return pc.utf8_trim_whitespace(table[name].combine_chunks()) if name in table.column_names else blank

    odd = np.zeros(n, dtype=bool)
    request_id, model, group = col("request_id"), col("model"), col("model_group")
    model = pc.if_else(pc.equal(model, ""), group, model)
    odd |= _true(pc.equal(request_id, "")) | _true(pc.equal(model, ""))
    start, end, first = (_times(col(name), odd) for name in ("startTime", "endTime", "completionStartTime"))
    prompt, completion = _counts(col("prompt_tokens"), odd), _counts(col("completion_tokens"), odd)
    if start is None or end is None or first is None or prompt is None or completion is None:
        return None
    odd |= ~start[1]
    small = {name: col(name) for name in _EXTRAS if name != "metadata"}
    small["metadata"] = table["metadata"].combine_chunks() if "metadata" in table.column_names else blank
    if conn is None:
        with duckdb.connect(config=READER_CONFIG) as own:
            found = _metadata(small, own, odd)
    else:
        found = _metadata(small, conn, odd)
    if found is None:
        return None
    read, write, reasoning, status, error_type, meta_user, meta_team, tags = found
    counts = np.zeros((len(FIELDS), n), dtype=np.int64)
    counts[0], counts[1], counts[2], counts[4], counts[5] = prompt, read, write, completion, reasoning
    odd |= ((counts[1] + counts[2]) > counts[0]) | (counts[5] > counts[4])  # `event_row` says which and why
    if odd.any() and unusual is None:
        return None
    provider, model = _provider_models(col("custom_llm_provider"), model)
    latency = np.where(end[1] & (end[0] >= start[0]), (end[0] - start[0]) / 1000, np.nan)
    streamed = first[1] & ~(end[1] & (first[0] == end[0])) & (first[0] >= start[0])
    ttft = np.where(streamed, (first[0] - start[0]) / 1000, np.nan)
    columns = Columns(
        request_id=request_id,
        ts_us=start[0],
        provider=provider,
        model=model,
        model_requested=pc.if_else(pc.or_(pc.equal(group, ""), pc.equal(group, model)), None, group),
        operation=per_distinct(pc.if_else(pc.equal(col("call_type"), ""), "completion", col("call_type")), _operation),
        counts=counts,
        batch=np.zeros(n, dtype=bool),
        status=status,
        error_type=error_type,
        latency_ms=pa.array(latency, pa.float64(), from_pandas=True),
        ttft_ms=pa.array(ttft, pa.float64(), from_pandas=True),
        api_key_id=null_blank(col("api_key")),
        user_id=pc.coalesce(null_blank(col("user")), meta_user),
        team=pc.coalesce(null_blank(col("team_id")), meta_team),
        customer=null_blank(col("end_user")),
        tags=tags,
    )
    if not odd.any():
        return columns
    assert unusual is not None
    unusual.extend(np.flatnonzero(odd).tolist())
    return _kept(columns, ~odd)


def _true(values: pa.Array) -> np.ndarray:
    return np.asarray(values.to_numpy(zero_copy_only=False), dtype=bool)


_ISO = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?(Z|[+-][0-9]{2}(:?[0-9]{2})?)?$"
"""The time shapes left to Arrow when some value of a column is not a time: the others are `odd` rows."""


def _times(values: pa.Array, odd: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """`iso_times`, with the values it cannot read marked `odd` (and read as absent)."""
    found = iso_times(values)
    if found is not None:
        return found
    bad = pc.and_(pc.not_equal(values, ""), pc.invert(pc.match_substring_regex(values, _ISO)))
    odd |= _true(bad)
    return iso_times(pc.if_else(bad, "", values))


def _counts(values: pa.Array, odd: np.ndarray) -> np.ndarray | None:
    """`whole_numbers`, with the values that are not one marked `odd` (and read as 0)."""
    found = whole_numbers(values)
    if found is not None:
        return found
    bad = pc.invert(pc.match_substring_regex(values, WHOLE))
    odd |= _true(bad)
    return whole_numbers(pc.if_else(bad, "", values))


def _kept(columns: Columns, keep: np.ndarray) -> Columns:
    """The rows of `columns` where `keep` is true."""
    mask = pa.array(keep)
    values = {
        field.name: value[..., keep] if isinstance(value, np.ndarray) else value.filter(mask)
        for field in dataclasses.fields(columns)
        for value in (getattr(columns, field.name),)
    }
    return Columns(**values)


_EXTRAS = ("metadata", "request_tags", "spend", "session_id", "status", "cache_hit")


def _metadata(small: dict[str, pa.Array], conn: duckdb.DuckDBPyConnection, odd: np.ndarray) -> tuple[Any, ...] | None:
    """`extras` for every row: DuckDB reads the usual metadata shape, `extras` the rest (and says what is wrong).

    A row `extras` rejects, or whose metadata is not JSON, is marked `odd` (its values here are meaningless).
    None when DuckDB cannot read the metadata even so: the record-by-record path names the rows.
    """
    got = read_metadata(small["metadata"], conn, odd)
    if got is None:
        return None
    text = {name: null_blank(pc.utf8_trim_whitespace(got[name].combine_chunks())) for name in _METADATA_TEXTS}
    status_text = pc.utf8_lower(pc.coalesce(null_blank(small["status"]), text["status"], pa.scalar("success")))
    simple = pc.and_(got["simple"].combine_chunks(), pc.not_equal(status_text, "failure"))
    status = pc.if_else(pc.equal(pc.utf8_lower(small["cache_hit"]), "true"), "cached", "ok")
    counts = [got[name].to_numpy().astype(np.int64) for name in ("read", "write", "reasoning")]
    request_tags = _valid_tags(small["request_tags"], odd)
    try:
        tags = tag_texts(
            got["custom"].combine_chunks(), request_tags, text["alias"], small["spend"], small["session_id"], _tag_pairs
        )
    except Invalid:
        return None
    columns = [status, pa.nulls(len(status), pa.string()), text["user"], text["team"], tags]
    unusual = np.flatnonzero(~_true(simple) & ~odd).tolist()
    if not unusual:
        return (*counts, *columns)
    rows = {name: small[name].to_pylist() for name in _EXTRAS}
    lists = [column.to_pylist() for column in columns]
    for i in unusual:
        try:
            more = extras({name: rows[name][i] for name in _EXTRAS})
        except Invalid:
            odd[i] = True
            continue
        counts[0][i], counts[1][i], counts[2][i] = more[0], more[1], more[2]
        for values, value in zip(lists, (*more[3:7], tags_json(more[7])), strict=True):
            values[i] = value
    return (*counts, *(pa.array(values, pa.string()) for values in lists))


def _valid_tags(request_tags: pa.Array, odd: np.ndarray) -> pa.Array:
    """`request_tags` with the malformed lists marked `odd` (and read as none)."""
    encoded = request_tags.dictionary_encode()
    bad = []
    for text in encoded.dictionary.to_pylist():
        try:
            _tag_pairs(text) if text else None
        except Invalid:
            bad.append(True)
        else:
            bad.append(False)
    if not any(bad):
        return request_tags
    rows = pc.take(pa.array(bad), encoded.indices)
    odd |= _true(rows)
    return pc.if_else(rows, "", request_tags)


_METADATA_TEXTS = ("status", "user", "team", "alias")


def _provider_models(providers: pa.Array, models: pa.Array) -> tuple[pa.Array, pa.Array]:
    encoded = pc.binary_join_element_wise(providers, models, "\x1f").dictionary_encode()
    pairs = [_provider_model(*key.split("\x1f", 1)) for key in encoded.dictionary.to_pylist()]
    provider = pc.take(pa.array([p for p, _ in pairs], pa.string()), encoded.indices)
    return provider, pc.take(pa.array([m for _, m in pairs], pa.string()), encoded.indices)


IMPORTER = LiteLLMImporter()
