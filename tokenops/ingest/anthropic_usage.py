"""Anthropic Admin API usage report (`/v1/organizations/usage_report/messages`) -> `ProviderUsage`.

A page is `{data, has_more, next_page}`; each bucket has `starting_at` / `ending_at` (RFC 3339)
and result rows with `uncached_input_tokens`, `cache_creation {ephemeral_5m_input_tokens,
ephemeral_1h_input_tokens}`, `cache_read_input_tokens`, `output_tokens`, `server_tool_use
{web_search_requests}` and, when grouped, `model`, `workspace_id`, `api_key_id`, `service_tier`,
`context_window`, `inference_geo`.

Anthropic's input count excludes cache traffic; tokenops' does not (see `events/usage.py`), so
`input_tokens` = uncached + cache writes (5m + 1h) + cache reads. The report has no request
count (`requests` is read when present, as in the newer analytics API). Rows are priced at list
price at the bucket start; `service_tier: batch` uses the batch price and `context_window:
200k-1M` the long-context rate; an unknown or missing model is stored unpriced, never $0.

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
    label,
    ordered,
    shown,
    token_usage,
    whole,
)
from tokenops.ingest._rows import Batch, stable_id
from tokenops.ingest._usage_columns import Layout, Read, Results, counts, id_text, read_usage, tags
from tokenops.pricing import Pricer

NAME = "anthropic-usage"
LONG_CONTEXT = "200k-1M"
_STANDARD_TIERS = (None, "standard", "batch")
_GROUPS = ("workspace_id", "api_key_id", "model", "service_tier", "context_window", "inference_geo", "speed")


def rfc3339(row: Mapping[str, Any], key: str, where: str) -> datetime:
    """A bucket boundary as an RFC 3339 timestamp with a zone (Anthropic), as tz-aware UTC."""
    value = row.get(key)
    if not isinstance(value, str):
        raise Bad(f"{where}.{key} is {shown(value)}, expected an RFC 3339 timestamp such as '2025-08-01T00:00:00Z'")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise Bad(
            f"{where}.{key} is {value!r}, expected an RFC 3339 timestamp such as '2025-08-01T00:00:00Z'"
        ) from None
    if parsed.tzinfo is None:
        raise Bad(f"{where}.{key} is {value!r} without a zone; reports are in UTC, e.g. '2025-08-01T00:00:00Z'")
    return parsed.astimezone(UTC)


def anthropic_span(bucket: Mapping[str, Any], where: str) -> tuple[datetime, datetime]:
    """A usage or cost report bucket's (starting_at, ending_at)."""
    return ordered(rfc3339(bucket, "starting_at", where), rfc3339(bucket, "ending_at", where), where)


@dataclass(frozen=True, slots=True)
class AnthropicUsageImporter:
    """Saved Anthropic usage report pages: JSON (one page, or a list of pages) or JSON Lines of pages."""

    pricer: Pricer | None = None
    """Prices buckets; the default is genai-prices' list prices without overrides."""
    name: str = NAME
    description: str = "Anthropic Admin API usage report (messages) pages as JSON or JSON Lines"
    patterns: tuple[str, ...] = ("*.json", "*.jsonl", "*.json.gz", "*.jsonl.gz")

    def read(self, path: Path) -> Iterator[Batch]:
        """Stream one saved file; a bad bucket or row is named, the others kept."""
        yield from read_usage(path, LAYOUT, BucketPricer(self.pricer))


def usage_record(result: Result, pricer: BucketPricer) -> ProviderUsage:
    """One usage report row as a provider usage bucket."""
    row, where = result.fields, result.where
    if "amount" in row and "uncached_input_tokens" not in row:
        raise Bad(f"{where} is a cost report row; import this file with `tokenops import anthropic-costs`")
    uncached = whole(row, "uncached_input_tokens", where)
    cache_read = whole(row, "cache_read_input_tokens", where)
    output = whole(row, "output_tokens", where)
    creation = row.get("cache_creation")
    if not isinstance(creation, dict):
        raise Bad(
            f"{where}.cache_creation is {'missing' if creation is None else 'not an object'}; expected "
            "{ephemeral_5m_input_tokens, ephemeral_1h_input_tokens}"
        )
    write_5m = whole(creation, "ephemeral_5m_input_tokens", f"{where}.cache_creation")
    write_1h = whole(creation, "ephemeral_1h_input_tokens", f"{where}.cache_creation")
    usage = token_usage(
        where,
        input_tokens=uncached + write_5m + write_1h + cache_read,
        cache_read_tokens=cache_read,
        cache_write_tokens=write_5m + write_1h,
        cache_write_1h_tokens=write_1h,
        output_tokens=output,
    )
    groups = {key: label(row, key, where) for key in _GROUPS}
    tags = {
        key: value
        for key, value in groups.items()
        if value is not None and key not in ("workspace_id", "api_key_id", "model")
    }
    tool_use = row.get("server_tool_use")
    if tool_use is not None:
        if not isinstance(tool_use, dict):
            raise Bad(f"{where}.server_tool_use is not an object; expected {{web_search_requests}}")
        if searches := whole(tool_use, "web_search_requests", f"{where}.server_tool_use", required=False):
            tags["web_search_requests"] = str(searches)
    requests = whole(row, "requests", where, required=False)
    tier = groups["service_tier"]
    batch = tier == "batch"
    model = groups["model"]
    cost, source = pricer.price(
        model,
        usage,
        requests,
        provider="anthropic",
        ts=result.start,
        batch=batch,
        service_tier=None if tier in _STANDARD_TIERS else tier,
        long_context=groups["context_window"] == LONG_CONTEXT,
    )
    return ProviderUsage(
        usage_id=stable_id(NAME, *result.span, *groups.values()),
        source=f"import:{NAME}",
        provider="anthropic",
        start=result.start,
        end=result.end,
        model=model,
        usage=usage,
        requests=requests,
        batch=batch,
        project_id=groups["workspace_id"],
        api_key_id=groups["api_key_id"],
        cost=cost,
        price_source=source,
        tags=tags,
    )


_TAGGED = ("service_tier", "context_window", "inference_geo", "speed")


def read_columns(results: Results) -> Read:
    """`usage_record` over columns: the same values, and the rows it must read itself."""
    col = {field.name: pc.struct_field(results.fields, field.name) for field in results.fields.type}
    creation, tool_use = col["cache_creation"], col["server_tool_use"]
    unusual = flags(creation.is_null())
    number: dict[str, np.ndarray] = {}
    for key, values, required in (
        ("uncached", col["uncached_input_tokens"], True),
        ("read", col["cache_read_input_tokens"], True),
        ("output", col["output_tokens"], True),
        ("5m", pc.struct_field(creation, "ephemeral_5m_input_tokens"), True),
        ("1h", pc.struct_field(creation, "ephemeral_1h_input_tokens"), True),
        ("searches", pc.struct_field(tool_use, "web_search_requests"), False),
        ("requests", col["requests"], False),
    ):
        number[key], odd = counts(values, required=required)
        unusual |= odd
    written = number["5m"] + number["1h"]
    pieces = {key: col[key] for key in _TAGGED}
    pieces["web_search_requests"] = pa.array(number["searches"], mask=number["searches"] == 0)
    tag_text = tags(pieces)
    tier, context = col["service_tier"], col["context_window"]
    batch = pc.fill_null(pc.equal(tier, "batch"), False)
    standard = pc.fill_null(pc.is_in(tier, pa.array(["standard", "batch"])), True)
    n = len(tier)
    return Read(
        columns={
            "model": col["model"],
            "requests": pa.array(number["requests"]),
            "input_tokens": pa.array(number["uncached"] + written + number["read"]),
            "cache_read_tokens": pa.array(number["read"]),
            "cache_write_tokens": pa.array(written),
            "cache_write_1h_tokens": pa.array(number["1h"]),
            "output_tokens": pa.array(number["output"]),
            "reasoning_tokens": pa.array(np.zeros(n, dtype=np.int64)),
            "batch": batch,
            "project_id": col["workspace_id"],
            "user_id": pa.nulls(n, pa.string()),
            "api_key_id": col["api_key_id"],
            "tags": tag_text,
        },
        id_parts=[
            id_text(pa.array(results.start_s)),
            id_text(pa.array(results.end_s)),
            *(id_text(col[key]) for key in _GROUPS),
        ],
        price_model=col["model"],
        price_batch=flags(batch),
        price_tier=pc.if_else(standard, pa.scalar(None, pa.string()), tier),
        price_long=flags(pc.fill_null(pc.equal(context, LONG_CONTEXT), False)),
        unusual=unusual,
    )


_COUNT = pa.int64()
LAYOUT = Layout(
    name=NAME,
    provider="anthropic",
    span_fields=(pa.field("starting_at", pa.string()), pa.field("ending_at", pa.string())),
    row_type=pa.struct(
        [
            ("uncached_input_tokens", _COUNT),
            ("cache_read_input_tokens", _COUNT),
            ("output_tokens", _COUNT),
            ("requests", _COUNT),
            (
                "cache_creation",
                pa.struct([("ephemeral_5m_input_tokens", _COUNT), ("ephemeral_1h_input_tokens", _COUNT)]),
            ),
            ("server_tool_use", pa.struct([("web_search_requests", _COUNT)])),
            *((key, pa.string()) for key in _GROUPS),
        ]
    ),
    span=anthropic_span,
    convert=usage_record,
    read=read_columns,
)
"""The columnar reading of usage report pages."""

IMPORTER = AnthropicUsageImporter()
