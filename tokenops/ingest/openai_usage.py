"""OpenAI Usage API pages (`/v1/organization/usage/completions`, `/embeddings`) -> `ProviderUsage`.

A page (`object: "page"`) holds buckets (`start_time`, `end_time` in Unix seconds) of result rows,
one per `group_by` combination (model, project_id, user_id, api_key_id, batch, service_tier).
Field names are those of the API and of the `openai` SDK's `UsageCompletionsResponse`:
`input_tokens` already includes `input_cached_tokens` and cache writes, as in tokenops.

Each row is priced at list price at its bucket start (`BucketPricer`); an unknown or missing
model is stored unpriced, never $0. Audio and image tokens are inside `input_tokens` /
`output_tokens` and are priced at the text rate (their counts are kept in `tags`).
Rows are kept apart from usage events: `tokenops reconcile` compares the two.

JSON Lines of pages are read by the chunk in columns (`_usage_columns`, `read_columns` here);
a row that is at all unusual is read by `usage_record`, so both paths store the same rows and
name the same errors.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tokenops.events import ProviderUsage
from tokenops.ingest._events import flags
from tokenops.ingest._provider_reports import (
    Bad,
    BucketPricer,
    Result,
    flag,
    label,
    ordered,
    token_usage,
    whole,
)
from tokenops.ingest._rows import Batch, stable_id
from tokenops.ingest._usage_columns import Layout, Read, Results, counts, id_text, read_usage, tags
from tokenops.pricing import Pricer

NAME = "openai-usage"
COMPLETIONS = "organization.usage.completions.result"
EMBEDDINGS = "organization.usage.embeddings.result"
_OPERATION = {COMPLETIONS: "chat", EMBEDDINGS: "embeddings"}
_KEPT_COUNTS = (
    "input_audio_tokens",
    "output_audio_tokens",
    "input_image_tokens",
    "output_image_tokens",
    "input_cached_audio_tokens",
    "input_cached_image_tokens",
    "input_cache_write_12h_tokens",
)
"""Sub-counts with no TokenUsage field of their own, kept as tags when not zero."""


def unix_time(row: Mapping[str, Any], key: str, where: str) -> datetime:
    """A bucket boundary in Unix seconds (OpenAI), as tz-aware UTC."""
    seconds = whole(row, key, where)
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        raise Bad(f"{where}.{key} is {seconds}, expected Unix seconds") from None


def openai_span(bucket: Mapping[str, Any], where: str) -> tuple[datetime, datetime]:
    """A Usage or Costs API bucket's (start_time, end_time)."""
    return ordered(unix_time(bucket, "start_time", where), unix_time(bucket, "end_time", where), where)


@dataclass(frozen=True, slots=True)
class OpenAIUsageImporter:
    """Saved OpenAI Usage API pages: JSON (one page, or a list of pages) or JSON Lines of pages."""

    pricer: Pricer | None = None
    """Prices buckets; the default is genai-prices' list prices without overrides."""
    name: str = NAME
    description: str = "OpenAI Usage API pages (completions, embeddings) as JSON or JSON Lines"
    patterns: tuple[str, ...] = ("*.json", "*.jsonl", "*.json.gz", "*.jsonl.gz")

    def read(self, path: Path) -> Iterator[Batch]:
        """Stream one saved file; a bad bucket or row is named, the others kept."""
        yield from read_usage(path, LAYOUT, BucketPricer(self.pricer))


def usage_record(result: Result, pricer: BucketPricer) -> ProviderUsage:
    """One usage result row as a provider usage bucket."""
    row, where = result.fields, result.where
    kind = row.get("object")
    if kind == "organization.costs.result":
        raise Bad(f"{where} is a Costs API row; import this file with `tokenops import openai-costs`")
    if kind not in _OPERATION:
        raise Bad(f"{where}.object is {kind!r}, expected {COMPLETIONS!r} or {EMBEDDINGS!r}")
    input_tokens = whole(row, "input_tokens", where)
    output_tokens = whole(row, "output_tokens", where, required=kind == COMPLETIONS)
    cached = whole(row, "input_cached_tokens", where, required=False)
    written = _cache_writes(row, where)
    usage = token_usage(
        where,
        input_tokens=input_tokens,
        cache_read_tokens=cached,
        cache_write_tokens=written,
        output_tokens=output_tokens,
    )
    requests = whole(row, "num_model_requests", where)
    model = label(row, "model", where)
    project_id = label(row, "project_id", where)
    user_id = label(row, "user_id", where)
    api_key_id = label(row, "api_key_id", where)
    service_tier = label(row, "service_tier", where)
    api_source = label(row, "api_source", where)
    batch = flag(row, "batch", where)
    tags = {"operation": _OPERATION[kind]}
    if service_tier is not None:
        tags["service_tier"] = service_tier
    if api_source is not None:
        tags["api_source"] = api_source
    for key in _KEPT_COUNTS:
        if row.get(key) is not None and (count := whole(row, key, where)):
            tags[key] = str(count)
    cost, source = pricer.price(
        model, usage, requests, provider="openai", ts=result.start, batch=bool(batch), service_tier=service_tier
    )
    return ProviderUsage(
        usage_id=stable_id(
            NAME,
            kind,
            *result.span,
            project_id,
            user_id,
            api_key_id,
            model,
            batch,
            service_tier,
            api_source,
        ),
        source=f"import:{NAME}",
        provider="openai",
        start=result.start,
        end=result.end,
        model=model,
        usage=usage,
        requests=requests,
        batch=bool(batch),
        project_id=project_id,
        user_id=user_id,
        api_key_id=api_key_id,
        cost=cost,
        price_source=source,
        tags=tags,
    )


def _cache_writes(row: Mapping[str, Any], where: str) -> int:
    """`input_cache_write_tokens`, or its 30-minute and 12-hour parts when only they are given."""
    if row.get("input_cache_write_tokens") is not None:
        return whole(row, "input_cache_write_tokens", where)
    return whole(row, "input_cache_write_30m_tokens", where, required=False) + whole(
        row, "input_cache_write_12h_tokens", where, required=False
    )


_COUNTS = tuple(
    dict.fromkeys(
        (
            "input_tokens",
            "output_tokens",
            "input_cached_tokens",
            "input_cache_write_tokens",
            "input_cache_write_30m_tokens",
            "input_cache_write_12h_tokens",
            "num_model_requests",
            *_KEPT_COUNTS,
        )
    )
)
_LABELS = ("model", "project_id", "user_id", "api_key_id", "service_tier", "api_source")


def read_columns(results: Results) -> Read:
    """`usage_record` over columns: the same values, and the rows it must read itself."""
    col = {field.name: pc.struct_field(results.fields, field.name) for field in results.fields.type}
    kind = col["object"]
    chat = _is(kind, COMPLETIONS)
    unusual = ~(chat | _is(kind, EMBEDDINGS))  # a Costs API row or an unknown object: the row path names it
    number: dict[str, np.ndarray] = {}
    for key in _COUNTS:
        required = chat if key == "output_tokens" else key in ("input_tokens", "num_model_requests")
        number[key], odd = counts(col[key], required=required)
        unusual |= odd
    given = flags(col["input_cache_write_tokens"].is_valid())
    written = np.where(
        given,
        number["input_cache_write_tokens"],
        number["input_cache_write_30m_tokens"] + number["input_cache_write_12h_tokens"],
    )
    cached = number["input_cached_tokens"]
    unusual |= cached + written > number["input_tokens"]
    pieces = {
        "operation": pc.if_else(pa.array(chat), "chat", "embeddings"),
        "service_tier": col["service_tier"],
        "api_source": col["api_source"],
    }
    for key in _KEPT_COUNTS:
        pieces[key] = pa.array(number[key], mask=number[key] == 0)  # a zero count is no tag
    tag_text = tags(pieces)
    batch = col["batch"]
    zero = pa.array(np.zeros(len(kind), dtype=np.int64))
    return Read(
        columns={
            "model": col["model"],
            "requests": pa.array(number["num_model_requests"]),
            "input_tokens": pa.array(number["input_tokens"]),
            "cache_read_tokens": pa.array(cached),
            "cache_write_tokens": pa.array(written),
            "cache_write_1h_tokens": zero,
            "output_tokens": pa.array(number["output_tokens"]),
            "reasoning_tokens": zero,
            "batch": pc.fill_null(batch, False),
            "project_id": col["project_id"],
            "user_id": col["user_id"],
            "api_key_id": col["api_key_id"],
            "tags": tag_text,
        },
        id_parts=[
            kind,
            id_text(pa.array(results.start_s)),
            id_text(pa.array(results.end_s)),
            *(id_text(col[key]) for key in ("project_id", "user_id", "api_key_id", "model")),
            id_text(batch),
            id_text(col["service_tier"]),
            id_text(col["api_source"]),
        ],
        price_model=col["model"],
        price_batch=flags(pc.fill_null(batch, False)),
        price_tier=col["service_tier"],
        price_long=np.zeros(len(kind), dtype=bool),
        unusual=unusual,
    )


def _is(values: pa.Array, expected: str) -> np.ndarray:
    return flags(pc.fill_null(pc.equal(values, expected), False))


LAYOUT = Layout(
    name=NAME,
    provider="openai",
    span_fields=(pa.field("start_time", pa.int64()), pa.field("end_time", pa.int64())),
    row_type=pa.struct(
        [
            ("object", pa.string()),
            *((key, pa.int64()) for key in _COUNTS),
            ("batch", pa.bool_()),
            *((key, pa.string()) for key in _LABELS),
        ]
    ),
    span=openai_span,
    convert=usage_record,
    read=read_columns,
)
"""The columnar reading of Usage API pages."""

IMPORTER = OpenAIUsageImporter()
