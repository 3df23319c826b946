"""Token counts for calls the provider did not report usage for (marked `estimated`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tokenops.events import TokenUsage
from tokenops.gateway.upstream import Flavour
from tokenops.gateway.wire import ResponseInfo
from tokenops.meter.tokens import count_messages, count_text

_CHARS_PER_TOKEN = 4


def _input_tokens(flavour: Flavour, request: Mapping[str, Any], model: str) -> int:
    messages = request.get("messages")
    if isinstance(messages, list):
        return count_messages(messages, model, system=request.get("system") if flavour == "anthropic" else None)
    for key in ("input", "prompt"):
        value = request.get(key)
        if isinstance(value, str):
            return count_text(value, model)
        if isinstance(value, list):
            if all(isinstance(v, str) for v in value):
                return sum(count_text(v, model) for v in value)
            return count_messages([v for v in value if isinstance(v, Mapping)], model)
    return 0


def _output_text(response: Mapping[str, Any]) -> str:
    parts: list[str] = []
    for choice in response.get("choices") or ():
        message = choice.get("message") if isinstance(choice, Mapping) else None
        if isinstance(message, Mapping) and isinstance(message.get("content"), str):
            parts.append(message["content"])
    for block in response.get("content") or ():
        if isinstance(block, Mapping) and isinstance(block.get("text"), str):
            parts.append(block["text"])
    for item in response.get("output") or ():
        for block in (item.get("content") or ()) if isinstance(item, Mapping) else ():
            if isinstance(block, Mapping) and isinstance(block.get("text"), str):
                parts.append(block["text"])
    return "".join(parts)


def estimate(
    flavour: Flavour,
    request: Mapping[str, Any],
    model: str,
    info: ResponseInfo,
    response: Mapping[str, Any] | None = None,
) -> TokenUsage:
    """Input from the request with a real tokenizer; output from the response text or stream."""
    input_tokens = _input_tokens(flavour, request, model)
    if response is not None:
        output_tokens = count_text(_output_text(response), model)
    else:
        output_tokens = max(info.output_chunks, -(-info.output_text_chars // _CHARS_PER_TOKEN))
    return TokenUsage(input_tokens=input_tokens, output_tokens=output_tokens)
