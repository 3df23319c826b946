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
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tokenops.events import ProviderUsage
from tokenops.ingest._provider_reports import (
    Bad,
    BucketPricer,
    Result,
    label,
    ordered,
    read_report,
    shown,
    token_usage,
    whole,
)
from tokenops.ingest._rows import Batch, stable_id
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
        pricer = BucketPricer(self.pricer)
        yield from read_report(path, anthropic_span, lambda result: usage_record(result, pricer))


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


IMPORTER = AnthropicUsageImporter()
