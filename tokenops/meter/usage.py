"""Each wire format's `usage` object, read into `TokenUsage` (totals include sub-counts)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tokenops.events import TokenUsage


def _int(obj: Mapping[str, Any] | None, key: str) -> int:
    if not obj:
        return 0
    value = obj.get(key)
    return int(value) if isinstance(value, int | float) and value > 0 else 0


def openai_usage(usage: Mapping[str, Any] | None) -> TokenUsage | None:
    """OpenAI chat completions, responses and embeddings usage (also Azure and compatible servers).

    Chat uses prompt/completion names, the Responses API input/output names; cached and
    reasoning counts are already inside the totals.
    """
    if not usage:
        return None
    if "input_tokens" in usage or "output_tokens" in usage:
        inputs, outputs = _int(usage, "input_tokens"), _int(usage, "output_tokens")
        in_details = usage.get("input_tokens_details")
        out_details = usage.get("output_tokens_details")
    else:
        inputs, outputs = _int(usage, "prompt_tokens"), _int(usage, "completion_tokens")
        in_details = usage.get("prompt_tokens_details")
        out_details = usage.get("completion_tokens_details")
    cached = min(_int(in_details, "cached_tokens"), inputs)
    reasoning = min(_int(out_details, "reasoning_tokens"), outputs)
    return TokenUsage(input_tokens=inputs, cache_read_tokens=cached, output_tokens=outputs, reasoning_tokens=reasoning)


def anthropic_usage(usage: Mapping[str, Any] | None) -> TokenUsage | None:
    """Anthropic Messages usage, where `input_tokens` excludes cache reads and writes."""
    if not usage:
        return None
    read = _int(usage, "cache_read_input_tokens")
    write = _int(usage, "cache_creation_input_tokens")
    split = usage.get("cache_creation")
    write_1h = _int(split, "ephemeral_1h_input_tokens") if isinstance(split, Mapping) else 0
    if isinstance(split, Mapping) and not write:
        write = _int(split, "ephemeral_5m_input_tokens") + write_1h
    return TokenUsage(
        input_tokens=_int(usage, "input_tokens") + read + write,
        cache_read_tokens=read,
        cache_write_tokens=write,
        cache_write_1h_tokens=min(write_1h, write),
        output_tokens=_int(usage, "output_tokens"),
    )
