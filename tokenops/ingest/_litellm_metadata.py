"""LiteLLM's `metadata` JSON and tags for whole columns: one JSON parse per row, tags per distinct group.

The columnar path of `litellm` reads the usual shape of `metadata` here; any other shape (and a
failed call) goes through the row function `litellm.extras`, which also says what is wrong.
"""

from __future__ import annotations

from collections.abc import Callable

import duckdb
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from tokenops.ingest._events import null_blank, tags_json

Pairs = Callable[[str], tuple[tuple[str, str], ...]]
"""`request_tags` JSON text -> (name, value) pairs; raises for a malformed list."""

_TOP = (
    "usage_object",
    "additional_usage_values",
    "status",
    "user_api_key_user_id",
    "user_api_key_team_id",
    "user_api_key_alias",
    "spend_logs_metadata",
)
_USAGE = (
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "prompt_tokens_details",
    "completion_tokens_details",
)


def _structure(keys: tuple[str, ...]) -> str:
    """A `json_transform` structure keeping each key's JSON text (NULL when absent or null)."""
    return "'" + orjson.dumps(dict.fromkeys(keys, "JSON")).decode() + "'"


def _kind(value: str, kind: str) -> str:
    """SQL: the JSON text `value` is absent, null or of `kind`, told by its first character."""
    tests = {
        "OBJECT": f"starts_with({value}, '{{')",
        "VARCHAR": f"starts_with({value}, '\"')",
        # a whole number >= 0 that fits in int64; bigger ones, and 1.0 or 1e3, are left to `extras`
        "COUNT": f"regexp_full_match({value}, '0|[1-9][0-9]{{0,17}}')",
    }
    return f"({value} IS NULL OR {tests[kind]})"


_SHAPE = {
    "o.additional_usage_values": "OBJECT",
    "u.cache_read_input_tokens": "COUNT",
    "u.cache_creation_input_tokens": "COUNT",
    "u.prompt_tokens_details": "OBJECT",
    "u.completion_tokens_details": "OBJECT",
    "cached": "COUNT",
    "reasoning": "COUNT",
    "o.status": "VARCHAR",
    "o.user_api_key_user_id": "VARCHAR",
    "o.user_api_key_team_id": "VARCHAR",
    "o.user_api_key_alias": "VARCHAR",
    "o.spend_logs_metadata": "OBJECT",
}
"""JSON kinds each value may have for DuckDB to read the row (besides a JSON object at the top)."""

# `json_transform` parses each (large) document once; the values it keeps are small JSON texts
_SQL = f"""
SELECT
    obj AND o.usage_object IS NULL
        AND {" AND ".join(_kind(value, kind) for value, kind in _SHAPE.items())} AS simple,
    coalesce(u.cache_read_input_tokens::UBIGINT, cached::UBIGINT, 0) AS read,
    coalesce(u.cache_creation_input_tokens::UBIGINT, 0) AS write,
    coalesce(reasoning::UBIGINT, 0) AS reasoning,
    o.status ->> '$' AS status,
    o.user_api_key_user_id ->> '$' AS user,
    o.user_api_key_team_id ->> '$' AS team,
    o.user_api_key_alias ->> '$' AS alias,
    o.spend_logs_metadata::VARCHAR AS custom
FROM (
    SELECT j, obj, o, u,
        u.prompt_tokens_details -> '$.cached_tokens' AS cached,
        u.completion_tokens_details -> '$.reasoning_tokens' AS reasoning
    FROM (
        SELECT j, obj, o, json_transform(o.additional_usage_values, {_structure(_USAGE)}) AS u
        FROM (
            SELECT j, obj, json_transform(j, {_structure(_TOP)}) AS o
            FROM (SELECT CASE WHEN blank THEN '{{}}' ELSE metadata END AS j, blank OR obj AS obj FROM batch)
        )
    )
)
"""
_GUARDED = """
SELECT metadata, blank OR NOT coalesce(json_valid(metadata), FALSE) AS blank, obj,
    blank OR coalesce(json_valid(metadata), FALSE) AS valid
FROM batch
"""
"""The batch with metadata that is not JSON read as none (`read_metadata` marks those rows)."""


def read_metadata(
    metadata: pa.Array, conn: duckdb.DuckDBPyConnection, odd: np.ndarray | None = None
) -> pa.Table | None:
    """Columns simple, read, write, reasoning, status, user, team, alias, custom; None if any row is not JSON.

    `simple` is false where the row's metadata has another shape: its other values are then
    meaningless and `extras` must read it. With `odd`, a row whose metadata is not JSON is marked
    there instead (its values are meaningless too), and None means DuckDB cannot read it even so.
    """
    blank = pc.match_substring_regex(metadata, r"^\s*$")  # `_json` reads blank as no metadata
    obj = pc.match_substring_regex(metadata, r"^[ \t\n\r]*\{")  # a JSON object (told here: DuckDB's ltrim copies)
    cursor = conn.cursor()
    try:
        cursor.register("batch", pa.table({"metadata": metadata, "blank": blank, "obj": obj}))
        try:
            return _arrow(cursor, _SQL)
        except duckdb.InvalidInputException:  # malformed JSON somewhere: the slow path names the row
            if odd is None:
                return None
        # second pass only when some row is not JSON: json_valid costs a parse of every row
        cursor.register("batch", _arrow(cursor, _GUARDED))
        valid = _arrow(cursor, "SELECT valid FROM batch")["valid"].to_numpy()
        odd |= ~np.asarray(valid, dtype=bool)
        return _arrow(cursor, _SQL)
    except duckdb.InvalidInputException:
        return None
    finally:
        cursor.close()


def _arrow(cursor: duckdb.DuckDBPyConnection, sql: str) -> pa.Table:
    relation = cursor.sql(sql)
    assert relation is not None
    return relation.to_arrow_table()


_SPEND, _SESSION = "\ue000litellm_spend\ue000", "\ue000session_id\ue000"
"""Stand-ins for the per-row values in a group's tags (private-use characters, kept as is by orjson)."""
_ESCAPED = r'["\\\x00-\x1f]'
"""Characters a JSON string escapes: a row whose spend or session id has one is serialised by orjson."""


def tag_texts(
    custom: pa.Array, request_tags: pa.Array, alias: pa.Array, spend: pa.Array, session: pa.Array, pairs: Pairs
) -> pa.Array:
    """The tags `litellm._tags` gives each row, as `tags_json` text, serialised once per distinct group.

    Args:
        custom: `spend_logs_metadata` JSON text (an object) or null.
        request_tags: `request_tags` as written ("" for none).
        alias: The key alias, or null.
        spend: LiteLLM's spend, or null.
        session: The session id, or null.
        pairs: Parses request tags (memoised by the caller).

    Rows sharing custom metadata, request tags, alias and which of spend and session id they have
    share a template; Arrow fills in the spend and session id, which differ on every row.
    """
    spend, session = null_blank(spend), null_blank(session)
    parts = [custom, request_tags, alias, spend.is_valid(), session.is_valid()]
    codes = np.zeros(len(custom), dtype=np.int64)
    for part in parts:
        encoded = part.dictionary_encode(null_encoding="encode")
        codes = codes * (len(encoded.dictionary) + 1) + encoded.indices.to_numpy(zero_copy_only=False)
    _, first, group = np.unique(codes, return_index=True, return_inverse=True)
    pieces: tuple[list[str], list[str], list[str]] = ([], [], [])
    present, exact, templates = [], [], []
    for row in first.tolist():
        has_spend, has_session = bool(parts[3][row].as_py()), bool(parts[4][row].as_py())
        tags = _group_tags(
            custom[row].as_py(), request_tags[row].as_py(), alias[row].as_py(), has_spend, has_session, pairs
        )
        text = tags_json(tags)
        split = _pieces(text, has_spend, has_session) if text is not None else ("", "", "")
        present.append(text is not None)
        exact.append(split is not None)
        templates.append(tags)
        for piece, value in zip(pieces, split or ("", "", ""), strict=True):
            piece.append(value)
    index = pa.array(group.reshape(-1), pa.int64())
    spend_text, session_text = pc.fill_null(spend, ""), pc.fill_null(session, "")
    filled = pc.binary_join_element_wise(
        pc.take(pa.array(pieces[0], pa.string()), index),
        spend_text,
        pc.take(pa.array(pieces[1], pa.string()), index),
        session_text,
        pc.take(pa.array(pieces[2], pa.string()), index),
        "",
    )
    texts = pc.if_else(pc.take(pa.array(present), index), filled, pa.scalar(None, pa.string()))
    odd = pc.or_(
        pc.invert(pc.take(pa.array(exact), index)),
        pc.or_(pc.match_substring_regex(spend_text, _ESCAPED), pc.match_substring_regex(session_text, _ESCAPED)),
    )
    rows = np.flatnonzero(odd.to_numpy(zero_copy_only=False)).tolist()
    if not rows:
        return texts
    values = texts.to_pylist()
    for row in rows:  # rare: serialise this row's own tags
        tags = dict(templates[int(group[row])])
        for key, value in (("litellm_spend", spend[row].as_py()), ("session_id", session[row].as_py())):
            if value is not None:
                tags[key] = value
        values[row] = tags_json(tags)
    return pa.array(values, pa.string())


def _group_tags(
    custom: str | None, request_tags: str, alias: str | None, spend: bool, session: bool, pairs: Pairs
) -> dict[str, str]:
    """A group's tags, in `litellm._tags`' order of precedence, with stand-ins for spend and session id."""
    tags: dict[str, str] = {}
    values = orjson.loads(custom) if custom else None
    if isinstance(values, dict):
        tags.update((str(k), str(v)) for k, v in values.items() if v is not None)
    if request_tags:
        tags.update(pairs(request_tags))
    for key, value in (
        ("litellm_spend", _SPEND if spend else None),
        ("key_alias", alias),
        ("session_id", _SESSION if session else None),
    ):
        if value is not None:
            tags[key] = value
    return tags


def _pieces(text: str, spend: bool, session: bool) -> tuple[str, str, str] | None:
    """`text` around the stand-ins (in sorted-key order the spend comes first); None if a value holds one."""
    if text.count(_SPEND) != spend or text.count(_SESSION) != session:
        return None
    before, found, rest = text.partition(_SPEND)
    if not found:
        before, rest = "", text
    middle, found, after = rest.partition(_SESSION)
    if not found:
        middle, after = rest, ""
    return before, middle, after
