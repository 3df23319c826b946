"""Langfuse JSON lines by the chunk: Arrow parses the observations, only unusual ones go through Python.

Arrow's JSON reader reads the fields `langfuse.event_row` uses into typed columns; DuckDB lifts
each line's `metadata` out as JSON text, whose tags and attribution are worked out once per
distinct value. A row whose reading is not plainly what `event_row` would make of it (an empty
id, a count given in several places, a tag value JSON must escape, a `null` type...) is marked
unusual and re-read line by line with `event_row` itself, which also names what is wrong with it.
A chunk Arrow cannot read at all (a line that is not JSON, a string where a count should be,
a blank line shifting line numbers) is left to the caller's line-by-line path.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import duckdb
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from tokenops.ingest._events import FIELDS, Columns, flags, iso_times, null_blank, per_distinct
from tokenops.ingest._rows import SINGLE_JSON, Chunk

_COUNT = pa.float64()  # Langfuse's ClickHouse export writes counts as 12.0; whole values are checked below
_DETAILS = (
    "input",
    "output",
    "input_cached_tokens",
    "input_cache_read",
    "cache_read_input_tokens",
    "input_cache_creation",
    "cache_creation_input_tokens",
    "output_reasoning_tokens",
    "output_reasoning",
)
_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("traceId", pa.string()),
        ("type", pa.string()),
        ("name", pa.string()),
        ("startTime", pa.string()),
        ("endTime", pa.string()),
        ("completionStartTime", pa.string()),
        ("model", pa.string()),
        ("usageDetails", pa.struct([(key, _COUNT) for key in _DETAILS])),
        ("usage", pa.struct([("input", _COUNT), ("output", _COUNT)])),
        ("promptTokens", _COUNT),
        ("completionTokens", _COUNT),
        ("costDetails", pa.struct([("total", pa.float64())])),
        ("userId", pa.string()),
        ("level", pa.string()),
        ("statusMessage", pa.string()),
    ]
)
_PARSE = pj.ParseOptions(explicit_schema=_SCHEMA, unexpected_field_behavior="ignore")
_ATTRIBUTION = ("team", "customer", "api_key_id", "user_id")
"""`metadata` keys that are attribution, not tags."""
_OWN_TAGS = ("langfuse_cost", "name", "trace_id")
"""Tags taken from the observation itself, in sorted order."""
_ESCAPED = r'["\\\x00-\x1f]'
"""Characters a JSON string escapes: such a value is serialised by `event_row`'s own path."""
_WHOLE_LIMIT = float(1 << 53)


@dataclass(frozen=True, slots=True)
class Parsed:
    """A chunk's generations as columns, and the lines `event_row` must read itself."""

    columns: Columns | None
    """The usual generations (None when there are none)."""
    unusual: list[int]
    """0-based line indexes in the chunk of the observations to read line by line."""


def parse_chunk(chunk: Chunk, conn: duckdb.DuckDBPyConnection, providers: Mapping[str, str]) -> Parsed | None:
    """The chunk's observations as columns; None when the whole chunk must be read line by line.

    Args:
        chunk: Whole lines of a JSON lines file.
        conn: DuckDB connection that reads `metadata` (one per file).
        providers: `metadata.provider` values taken as the genai-prices provider.
    """
    try:
        table = pj.read_json(pa.BufferReader(chunk.data), read_options=SINGLE_JSON, parse_options=_PARSE)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return None
    n = table.num_rows
    if not n or n != chunk.lines + (0 if chunk.data.endswith(b"\n") else 1):
        return None  # a blank line shifts line numbers: let the line-by-line path count them
    col = {name: table[name].combine_chunks() for name in table.column_names}
    kind = col["type"]
    generation = pc.fill_null(pc.equal(kind, "GENERATION"), True)
    unusual = flags(kind.is_null())  # `"type": null` is skipped
    request_id, model = _trimmed(col["id"]), _trimmed(col["model"])
    unusual |= _blank(request_id) | _blank(model)
    start, end, first = (iso_times(_trimmed(col[name])) for name in ("startTime", "endTime", "completionStartTime"))
    if start is None or end is None or first is None:
        return None
    unusual |= ~start[1]
    counts, odd_counts = _counts(col)
    unusual |= odd_counts
    meta = _metadata(chunk, conn, providers)
    unusual |= meta.unusual
    own = [_piece("langfuse_cost", _cost(col["costDetails"])), _piece("name", _trimmed(col["name"]))]
    own.append(_piece("trace_id", _trimmed(col["traceId"])))
    for piece in own:
        unusual |= piece[1]
    keep = ~unusual & flags(generation)
    lines = np.flatnonzero(unusual).tolist()
    if not keep.any():
        return Parsed(None, lines)
    mask = pa.array(keep)
    error = pc.equal(pc.fill_null(col["level"], ""), "ERROR")
    status_message = pc.if_else(error, null_blank(_trimmed(col["statusMessage"])), pa.scalar(None, pa.string()))
    tags = _tags(meta.segments, [piece[0] for piece in own])
    latency = np.where(end[1] & (end[0] >= start[0]), (end[0] - start[0]) / 1000, np.nan)
    ttft = np.where(first[1] & (first[0] >= start[0]), (first[0] - start[0]) / 1000, np.nan)
    m = int(keep.sum())
    none = pa.nulls(m, pa.string())
    return Parsed(
        Columns(
            request_id=request_id.filter(mask),
            ts_us=start[0][keep],
            provider=meta.provider.filter(mask),
            model=model.filter(mask),
            model_requested=none,
            operation=pa.array(np.full(m, "chat", dtype=object), pa.string()),
            counts=np.ascontiguousarray(counts[:, keep]),
            batch=np.zeros(m, dtype=bool),
            status=pc.if_else(error, "error", "ok").filter(mask),
            error_type=status_message.filter(mask),
            latency_ms=pa.array(latency[keep], pa.float64(), from_pandas=True),
            ttft_ms=pa.array(ttft[keep], pa.float64(), from_pandas=True),
            api_key_id=meta.api_key_id.filter(mask),
            user_id=pc.coalesce(null_blank(_trimmed(col["userId"])), meta.user_id).filter(mask),
            team=meta.team.filter(mask),
            customer=meta.customer.filter(mask),
            tags=tags.filter(mask),
        ),
        lines,
    )


def _trimmed(values: pa.Array) -> pa.Array:
    """Trimmed strings, "" for absent (as `_text` reads both as nothing)."""
    return pc.fill_null(pc.utf8_trim_whitespace(values), "")


def _blank(values: pa.Array) -> np.ndarray:
    return flags(pc.equal(values, ""))


def _numbers(values: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(values with 0 for null, present)."""
    present = flags(values.is_valid())
    return np.nan_to_num(values.to_numpy(zero_copy_only=False).astype(np.float64)), present


def _counts(col: dict[str, pa.Array]) -> tuple[np.ndarray, np.ndarray]:
    """Token counts in FIELDS order as `event_row` adds them up, and the rows it should read itself."""
    details, legacy = col["usageDetails"], col["usage"]
    d = {key: _numbers(pc.struct_field(details, key)) for key in _DETAILS}
    has_details = flags(details.is_valid())
    has_legacy = flags(legacy.is_valid())
    legacy_in, legacy_out = (_numbers(pc.struct_field(legacy, key)) for key in ("input", "output"))
    # an object with none of the keys read ({} or only `total`) is where "no usage" is told apart: Python decides
    unusual = has_details & ~np.logical_or.reduce([present for _, present in d.values()])
    unusual |= has_legacy & ~(legacy_in[1] | legacy_out[1])

    def first(keys: tuple[str, ...]) -> np.ndarray:
        out = np.zeros(len(has_details))
        for key in reversed(keys):  # the first key given wins
            values, present = d[key]
            out = np.where(present, values, out)
        return out

    prompt, completion = _numbers(col["promptTokens"]), _numbers(col["completionTokens"])
    plain_in = np.where(d["input"][0] != 0, d["input"][0], legacy_in[0])
    plain_out = np.where(d["output"][0] != 0, d["output"][0], legacy_out[0])
    neither = ~has_details & ~has_legacy
    plain_in, plain_out = np.where(neither, prompt[0], plain_in), np.where(neither, completion[0], plain_out)
    read, write = first(_DETAILS[2:5]), first(_DETAILS[5:7])
    reasoning = first(_DETAILS[7:9])
    for values in (plain_in, plain_out, read, write, reasoning):
        unusual |= (values < 0) | (values != np.floor(values)) | (values >= _WHOLE_LIMIT)
    # a value that was looked at but not taken (input 0 beside usage.input) is still checked by Python
    for values, present in (d["input"], d["output"], legacy_in, legacy_out):
        unusual |= present & ((values < 0) | (values != np.floor(values)))
    counts = np.zeros((len(FIELDS), len(has_details)), dtype=np.int64)
    safe = ~unusual
    counts[0] = np.where(safe, plain_in + read + write, 0).astype(np.int64)
    counts[1], counts[2] = np.where(safe, read, 0).astype(np.int64), np.where(safe, write, 0).astype(np.int64)
    counts[4] = np.where(safe, plain_out + reasoning, 0).astype(np.int64)
    counts[5] = np.where(safe, reasoning, 0).astype(np.int64)
    return counts, unusual


def _cost(details: pa.Array) -> pa.Array:
    """`repr` of `costDetails.total` as `event_row` writes it; "" where there is none, null where unsure."""
    total = pc.struct_field(details, "total")
    shown = per_distinct(total, lambda value: None if float(value).is_integer() else repr(value))  # 1 or 1.0? Python
    return pc.if_else(total.is_null(), "", shown)


def _piece(key: str, values: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """`"key":"value"` per row (null where the value is ""), and rows Python must serialise (null or escaped)."""
    escaped = pc.fill_null(pc.match_substring_regex(values, _ESCAPED), True)
    odd = flags(escaped)
    prefix = orjson.dumps(key).decode() + ':"'
    text = pc.binary_join_element_wise(prefix, null_blank(values), '"', "")
    return text, odd


@dataclass(frozen=True, slots=True)
class _Meta:
    provider: pa.Array
    api_key_id: pa.Array
    user_id: pa.Array
    team: pa.Array
    customer: pa.Array
    segments: list[pa.Array]
    """Tag pieces from metadata before, between and after the observation's own tags (null when none)."""
    unusual: np.ndarray


_METADATA_SQL = "SELECT json_extract(line, '$.metadata')::VARCHAR AS m FROM lines"


def _metadata(chunk: Chunk, conn: duckdb.DuckDBPyConnection, providers: Mapping[str, str]) -> _Meta:
    """Attribution and tag pieces from each line's `metadata`, worked out once per distinct value."""
    cursor = conn.cursor()
    try:
        cursor.register("lines", pa.table({"line": _lines(chunk.data)}))
        relation = cursor.sql(_METADATA_SQL)
        assert relation is not None
        texts = relation.to_arrow_table()["m"].combine_chunks()
    finally:
        cursor.close()
    encoded = pc.fill_null(texts, "").dictionary_encode()
    values: list[list[str | None]] = [[] for _ in range(10)]
    odd: list[bool] = []
    for text in encoded.dictionary.to_pylist():
        parsed = orjson.loads(text) if text else None
        metadata = parsed if isinstance(parsed, dict) else {}
        provider = providers.get(str(metadata.get("provider") or metadata.get("ls_provider") or "").lower(), "")
        tags = {
            str(k): v.strip() for k, v in metadata.items() if isinstance(v, str) and v.strip() and k not in _ATTRIBUTION
        }
        odd.append(any(key in tags for key in _OWN_TAGS))
        segments: list[list[str]] = [[] for _ in range(len(_OWN_TAGS) + 1)]
        for key in sorted(tags):
            segments[sum(key > own for own in _OWN_TAGS)].append(orjson.dumps({key: tags[key]}).decode()[1:-1])
        row = [provider, *(_text(metadata.get(k)) for k in ("api_key_id", "user_id", "team", "customer"))]
        row += [",".join(s) or None for s in segments]
        for column, value in zip(values, row, strict=False):
            column.append(value)
    index = encoded.indices
    arrays = [pc.take(pa.array(column, pa.string()), index) for column in values[:9]]
    unusual = flags(pc.take(pa.array(odd, pa.bool_()), index))
    provider, api_key_id, user_id, team, customer = arrays[:5]
    return _Meta(provider, api_key_id, user_id, team, customer, arrays[5:9], unusual)


def _text(value: object) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _lines(data: bytes | bytearray) -> pa.Array:
    """The lines of `data` as a string array, without copying them."""
    newlines = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10)
    ends = [newlines + 1] if data.endswith(b"\n") else [newlines + 1, np.array([len(data)])]
    offsets = np.concatenate([np.zeros(1, dtype=np.int64), *ends]).astype(np.int32)
    return pa.StringArray.from_buffers(len(offsets) - 1, pa.py_buffer(offsets), pa.py_buffer(data))


def _tags(segments: list[pa.Array], own: list[pa.Array]) -> pa.Array:
    """The sorted JSON object of each row's tags, or null when it has none."""
    parts = [segments[0], own[0], segments[1], own[1], segments[2], own[2], segments[3]]
    body = pc.binary_join_element_wise(*parts, ",", null_handling="skip")
    return pc.if_else(pc.equal(body, ""), pa.scalar(None, pa.string()), pc.binary_join_element_wise("{", body, "}", ""))
