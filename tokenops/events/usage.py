"""One metered model call: tokens as the provider reported them, what they cost, who they are for.

Token fields follow the OpenTelemetry GenAI conventions: `input_tokens` is the whole prompt,
cached reads and cache writes included (`gen_ai.usage.input_tokens`), and `output_tokens`
includes reasoning tokens. Sub-counts are never added on top of their parent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Literal

from tokenops.events.attribution import Attribution

Provider = str
"""genai-prices provider id (`openai`, `anthropic`, `azure`, `google` ...) or an org-defined one."""

EventStatus = Literal["ok", "error", "blocked", "cached"]
"""`ok` billed; `error` failed (billed only if usage came back); `blocked` by a guardrail ($0);
`cached` served from tokenops' cache ($0 to the provider)."""


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """Token counts of one call, as billed."""

    input_tokens: int = 0
    """All prompt tokens, cached and cache-write included."""
    cache_read_tokens: int = 0
    """Prompt tokens read from the provider's prompt cache (subset of input)."""
    cache_write_tokens: int = 0
    """Prompt tokens written to the provider's prompt cache (subset of input)."""
    cache_write_1h_tokens: int = 0
    """Of the cache writes, those with a one-hour TTL (Anthropic prices them higher)."""
    output_tokens: int = 0
    """All generated tokens, reasoning included."""
    reasoning_tokens: int = 0
    """Hidden reasoning tokens (subset of output)."""

    def __post_init__(self) -> None:
        for name in self.__slots__:
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.cache_read_tokens + self.cache_write_tokens > self.input_tokens:
            raise ValueError(
                f"cache_read_tokens + cache_write_tokens ({self.cache_read_tokens} + "
                f"{self.cache_write_tokens}) exceed input_tokens ({self.input_tokens}); "
                "input_tokens must include cached tokens"
            )
        if self.cache_write_1h_tokens > self.cache_write_tokens:
            raise ValueError("cache_write_1h_tokens must be a subset of cache_write_tokens")
        if self.reasoning_tokens > self.output_tokens:
            raise ValueError("reasoning_tokens must be a subset of output_tokens")

    @property
    def total_tokens(self) -> int:
        """Input plus output."""
        return self.input_tokens + self.output_tokens

    @property
    def uncached_input_tokens(self) -> int:
        """Prompt tokens billed at the full input rate."""
        return self.input_tokens - self.cache_read_tokens - self.cache_write_tokens


@dataclass(frozen=True, slots=True)
class Cost:
    """A priced call in USD, broken down the way invoices are."""

    input: Decimal
    """Uncached prompt tokens."""
    cache_read: Decimal
    """Prompt tokens read from cache."""
    cache_write: Decimal
    """Prompt tokens written to cache."""
    output: Decimal
    """Generated tokens, reasoning included."""
    other: Decimal = Decimal(0)
    """Anything else the price list charges for (per-request fees, GPU time)."""

    @property
    def total(self) -> Decimal:
        """Sum of the parts."""
        return self.input + self.cache_read + self.cache_write + self.output + self.other

    @classmethod
    def zero(cls) -> Cost:
        """A real $0 (a blocked or cached call), not an unknown price."""
        return cls(Decimal(0), Decimal(0), Decimal(0), Decimal(0))


@dataclass(frozen=True, slots=True)
class UsageEvent:
    """One model call in the ledger. Append-only, unique by `request_id`."""

    request_id: str
    """Idempotency key: the provider's response id, the gateway's id, or a stable hash on import."""
    ts: datetime
    """When the call was made (tz-aware UTC); prices are looked up at this time."""
    provider: Provider
    """Who served and billed the call."""
    model: str
    """Model that served the call (`gen_ai.response.model`)."""
    usage: TokenUsage
    """Tokens as billed."""
    cost: Cost | None
    """Price of the call; None when the model or price is unknown (never a silent $0)."""
    price_source: str
    """Where the price came from, e.g. `genai-prices:openai/gpt-4o` or `override:acme-llm`."""
    attribution: Attribution = field(default_factory=Attribution)
    """Who and what the call is charged to."""
    model_requested: str | None = None
    """Model the caller asked for (`gen_ai.request.model`) when it differs."""
    operation: str = "chat"
    """`gen_ai.operation.name`: chat, embeddings, responses, messages ..."""
    batch: bool = False
    """Submitted through a batch API (discounted)."""
    status: EventStatus = "ok"
    """Outcome of the call."""
    error_type: str | None = None
    """Provider error type or HTTP status for failed calls."""
    latency_ms: float | None = None
    """Wall time of the call."""
    ttft_ms: float | None = None
    """Time to first token for streamed calls."""
    estimated: bool = False
    """Tokens were counted by tokenops, not reported by the provider."""
    source: str = "gateway"
    """How the event arrived: gateway, sdk, import:<name>, demo."""

    @property
    def unpriced(self) -> bool:
        """True when no price could be found; such calls are reported apart, never as $0."""
        return self.cost is None
