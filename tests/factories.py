"""Small builders for ledger records used across tests."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from tokenops.events import Attribution, TokenUsage, UsageEvent
from tokenops.pricing import Priced, Pricer

T0 = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)


def event(
    request_id: str,
    *,
    model: str = "gpt-4o",
    provider: str = "openai",
    input_tokens: int = 1_000,
    output_tokens: int = 500,
    ts: datetime = T0,
    team: str | None = "support",
    user: str | None = "ana",
    workflow: str | None = "support_ticket",
    task_run_id: str | None = None,
) -> UsageEvent:
    """A usage event priced by the real Pricer (unpriced if the model is unknown)."""
    usage = TokenUsage(input_tokens=input_tokens, output_tokens=output_tokens)
    priced = Pricer().price(model, usage, provider=provider, ts=ts)
    return UsageEvent(
        request_id=request_id,
        ts=ts,
        provider=provider,
        model=model,
        usage=usage,
        cost=priced.cost if isinstance(priced, Priced) else None,
        price_source=priced.source,
        attribution=Attribution(user=user, team=team, workflow=workflow, task_run_id=task_run_id),
    )


def usd(text: str) -> Decimal:
    """Decimal literal helper."""
    return Decimal(text)
