"""One finished call -> one priced `UsageEvent`, the same way on every path."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from tokenops.events import Attribution, Cost, TokenUsage, UsageEvent
from tokenops.events.usage import EventStatus
from tokenops.pricing import Priced, Pricer


@dataclass(frozen=True, slots=True)
class CallRecord:
    """What a path (gateway, SDK, importer) knows about a finished call."""

    request_id: str
    """Provider response id when there is one, else a generated id."""
    ts: datetime
    """When the call started (tz-aware UTC)."""
    provider: str
    """Pricing provider id (`openai`, `anthropic`, `azure` ...)."""
    model: str
    """Model that served the call (or was asked for, if the call failed)."""
    usage: TokenUsage | None
    """Tokens billed; None when nothing was billed (a failed or blocked call)."""
    attribution: Attribution = field(default_factory=Attribution)
    """Who pays."""
    model_requested: str | None = None
    """Model the caller named, if different."""
    operation: str = "chat"
    """chat, responses, embeddings, messages."""
    status: EventStatus = "ok"
    """ok, error, blocked, cached."""
    error_type: str | None = None
    """Provider error type or HTTP status."""
    latency_ms: float | None = None
    """Wall time."""
    ttft_ms: float | None = None
    """Time to first token of a stream."""
    batch: bool = False
    """Batch API call."""
    service_tier: str | None = None
    """Provider service tier (flex, priority) when it changes the price."""
    estimated: bool = False
    """Tokens counted by tokenops, not reported by the provider."""
    source: str = "gateway"
    """gateway, sdk, import:<name>."""


class Meter:
    """Prices calls and turns them into ledger events."""

    def __init__(self, pricer: Pricer) -> None:
        self.pricer = pricer

    def event(self, call: CallRecord) -> UsageEvent:
        """The ledger row for a call: priced if billed, $0 if not billed, unpriced if unknown."""
        usage = call.usage or TokenUsage()
        cost: Cost | None
        if call.usage is None or call.status in ("blocked", "cached"):
            cost, source = Cost.zero(), "not-billed"
        else:
            priced = self.pricer.price(
                call.model,
                usage,
                provider=call.provider,
                ts=call.ts,
                batch=call.batch,
                service_tier=call.service_tier,
            )
            if isinstance(priced, Priced):
                cost, source = priced.cost, priced.source
            else:
                cost, source = None, priced.source
        return UsageEvent(
            request_id=call.request_id,
            ts=call.ts,
            provider=call.provider,
            model=call.model,
            model_requested=call.model_requested if call.model_requested != call.model else None,
            usage=usage,
            cost=cost,
            price_source=source,
            attribution=call.attribution,
            operation=call.operation,
            batch=call.batch,
            status=call.status,
            error_type=call.error_type,
            latency_ms=call.latency_ms,
            ttft_ms=call.ttft_ms,
            estimated=call.estimated,
            source=call.source,
        )
