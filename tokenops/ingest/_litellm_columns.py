"""LiteLLM spend logs in columns: Arrow parses a chunk of the CSV, Python reads only the unusual rows.

The columnar path of `litellm`. `metadata` and the small columns around it go through
`_litellm_metadata` (its usual shape) or the row path's own `extras` (any other shape); a row
this module is not sure of (an empty id, a count or time that is not plainly one, malformed
JSON...) is left to the row path's `event_row`, which stores it or names what is wrong with it.
The row path's functions come in as a `RowPath`, since `litellm` imports this module.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from tokenops.ingest._events import (
    FIELDS,
    WHOLE,
    Columns,
    flags,
    iso_times,
    kept,
    null_blank,
    per_distinct,
    tags_json,
    whole_numbers,
)
from tokenops.ingest._litellm_metadata import Pairs, read_metadata, tag_texts
from tokenops.ingest._rows import READER_CONFIG, Chunk

Extras = tuple[int, int, int, str, str | None, str | None, str | None, dict[str, str] | None]
"""(cache read, cache write, reasoning, status, error type, metadata user, metadata team, tags) of a row."""


@dataclass(frozen=True, slots=True)
class RowPath:
    """What the columns share with `litellm`'s record-by-record path."""

    columns: tuple[str, ...]
    """The columns read."""
    extras: Callable[[dict[str, Any]], Extras]
    """`metadata` and the small columns around it, of one row; raises `invalid` for a bad one."""
    operation: Callable[[str], str]
    """LiteLLM `call_type` -> operation."""
    provider_model: Callable[[str, str], tuple[str, str]]
    """(custom_llm_provider, model) -> (genai-prices provider id, model without its prefix)."""
    tag_pairs: Pairs
    """`request_tags` JSON text -> (name, value) pairs; raises `invalid` for a malformed list."""
    invalid: type[Exception]
    """What the row path raises for a bad value."""


def fast_columns(
    chunk: Chunk,
    header: list[str],
    row: RowPath,
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
    wanted = [h for h in header if h in row.columns]
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
    odd |= flags(pc.equal(request_id, "")) | flags(pc.equal(model, ""))
    start, end, first = (_times(col(name), odd) for name in ("startTime", "endTime", "completionStartTime"))
    prompt, completion = _counts(col("prompt_tokens"), odd), _counts(col("completion_tokens"), odd)
    if start is None or end is None or first is None or prompt is None or completion is None:
        return None
    odd |= ~start[1]
    small = {name: col(name) for name in _EXTRAS if name != "metadata"}
    small["metadata"] = table["metadata"].combine_chunks() if "metadata" in table.column_names else blank
    if conn is None:
        with duckdb.connect(config=READER_CONFIG) as own:
            found = _metadata(small, own, odd, row)
    else:
        found = _metadata(small, conn, odd, row)
    if found is None:
        return None
    read, write, reasoning, status, error_type, meta_user, meta_team, tags = found
    counts = np.zeros((len(FIELDS), n), dtype=np.int64)
    counts[0], counts[1], counts[2], counts[4], counts[5] = prompt, read, write, completion, reasoning
    odd |= ((counts[1] + counts[2]) > counts[0]) | (counts[5] > counts[4])  # `event_row` says which and why
    if odd.any() and unusual is None:
        return None
    provider, model = _provider_models(col("custom_llm_provider"), model, row.provider_model)
    latency = np.where(end[1] & (end[0] >= start[0]), (end[0] - start[0]) / 1000, np.nan)
    streamed = first[1] & ~(end[1] & (first[0] == end[0])) & (first[0] >= start[0])
    ttft = np.where(streamed, (first[0] - start[0]) / 1000, np.nan)
    call_type = col("call_type")
    columns = Columns(
        request_id=request_id,
        ts_us=start[0],
        provider=provider,
        model=model,
        model_requested=pc.if_else(pc.or_(pc.equal(group, ""), pc.equal(group, model)), None, group),
        operation=per_distinct(pc.if_else(pc.equal(call_type, ""), "completion", call_type), row.operation),
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
    return kept(columns, ~odd)


_ISO = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?(Z|[+-][0-9]{2}(:?[0-9]{2})?)?$"
"""The time shapes left to Arrow when some value of a column is not a time: the others are `odd` rows."""


def _times(values: pa.Array, odd: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """`iso_times`, with the values it cannot read marked `odd` (and read as absent)."""
    found = iso_times(values)
    if found is not None:
        return found
    bad = pc.and_(pc.not_equal(values, ""), pc.invert(pc.match_substring_regex(values, _ISO)))
    odd |= flags(bad)
    return iso_times(pc.if_else(bad, "", values))


def _counts(values: pa.Array, odd: np.ndarray) -> np.ndarray | None:
    """`whole_numbers`, with the values that are not one marked `odd` (and read as 0)."""
    found = whole_numbers(values)
    if found is not None:
        return found
    bad = pc.invert(pc.match_substring_regex(values, WHOLE))
    odd |= flags(bad)
    return whole_numbers(pc.if_else(bad, "", values))


_EXTRAS = ("metadata", "request_tags", "spend", "session_id", "status", "cache_hit")


def _metadata(
    small: dict[str, pa.Array], conn: duckdb.DuckDBPyConnection, odd: np.ndarray, row: RowPath
) -> tuple[Any, ...] | None:
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
    request_tags = _valid_tags(small["request_tags"], odd, row)
    try:
        custom = got["custom"].combine_chunks()
        tags = tag_texts(custom, request_tags, text["alias"], small["spend"], small["session_id"], row.tag_pairs)
    except row.invalid:
        return None
    columns = [status, pa.nulls(len(status), pa.string()), text["user"], text["team"], tags]
    unusual = np.flatnonzero(~flags(simple) & ~odd).tolist()
    if not unusual:
        return (*counts, *columns)
    rows = {name: small[name].to_pylist() for name in _EXTRAS}
    lists = [column.to_pylist() for column in columns]
    for i in unusual:
        try:
            more = row.extras({name: rows[name][i] for name in _EXTRAS})
        except row.invalid:
            odd[i] = True
            continue
        counts[0][i], counts[1][i], counts[2][i] = more[0], more[1], more[2]
        for values, value in zip(lists, (*more[3:7], tags_json(more[7])), strict=True):
            values[i] = value
    return (*counts, *(pa.array(values, pa.string()) for values in lists))


def _valid_tags(request_tags: pa.Array, odd: np.ndarray, row: RowPath) -> pa.Array:
    """`request_tags` with the malformed lists marked `odd` (and read as none)."""
    encoded = request_tags.dictionary_encode()
    bad = []
    for text in encoded.dictionary.to_pylist():
        try:
            row.tag_pairs(text) if text else None
        except row.invalid:
            bad.append(True)
        else:
            bad.append(False)
    if not any(bad):
        return request_tags
    rows = pc.take(pa.array(bad), encoded.indices)
    odd |= flags(rows)
    return pc.if_else(rows, "", request_tags)


_METADATA_TEXTS = ("status", "user", "team", "alias")


def _provider_models(
    providers: pa.Array, models: pa.Array, provider_model: Callable[[str, str], tuple[str, str]]
) -> tuple[pa.Array, pa.Array]:
    encoded = pc.binary_join_element_wise(providers, models, "\x1f").dictionary_encode()
    pairs = [provider_model(*key.split("\x1f", 1)) for key in encoded.dictionary.to_pylist()]
    provider = pc.take(pa.array([p for p, _ in pairs], pa.string()), encoded.indices)
    return provider, pc.take(pa.array([m for _, m in pairs], pa.string()), encoded.indices)
