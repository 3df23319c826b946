"""What the providers themselves report: usage aggregates and billed costs, for reconciliation.

These are not model calls. A provider's usage export or invoice covers every call on the
account, including those the gateway already metered, so they live apart from `UsageEvent`
and are compared with it (`tokenops reconcile`) instead of being added to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from tokenops.events.usage import Cost, TokenUsage


@dataclass(frozen=True, slots=True)
class ProviderUsage:
    """One bucket of a provider's usage report (OpenAI Usage API, Anthropic usage report)."""

    usage_id: str
    """Stable id of the bucket (a re-import is a no-op)."""
    source: str
    """`import:<importer>`."""
    provider: str
    """Provider that reported it (`openai`, `anthropic`, ...)."""
    start: datetime
    """Bucket start (tz-aware UTC)."""
    end: datetime
    """Bucket end, exclusive."""
    model: str | None
    """Model, when the report is grouped by model."""
    usage: TokenUsage
    """Tokens in the bucket."""
    requests: int = 0
    """Model requests in the bucket (`num_model_requests`)."""
    batch: bool = False
    """Batch API usage."""
    project_id: str | None = None
    """Project (OpenAI) or workspace (Anthropic)."""
    user_id: str | None = None
    """Provider user id, when grouped by user."""
    api_key_id: str | None = None
    """Provider API key id, when grouped by key."""
    cost: Cost | None = None
    """Tokens priced at list price by tokenops; None when the model has no price (flagged, never $0)."""
    price_source: str = ""
    """Where that price came from."""
    tags: dict[str, str] = field(default_factory=dict)
    """Other grouping fields of the report (service tier, context window, ...)."""


@dataclass(frozen=True, slots=True)
class BilledCost:
    """One line of what a provider or cloud bill charges (OpenAI Costs API, Anthropic cost report, FOCUS)."""

    cost_id: str
    """Stable id of the line (a re-import is a no-op)."""
    source: str
    """`import:<importer>`."""
    provider: str
    """Who charges it (`openai`, `anthropic`, `aws`, `azure`, ...)."""
    start: datetime
    """Charge period start (tz-aware UTC)."""
    end: datetime
    """Charge period end, exclusive."""
    billed: Decimal
    """Amount invoiced, in `currency` (FOCUS BilledCost)."""
    currency: str = "USD"
    """Billing currency."""
    effective: Decimal | None = None
    """Amortised cost after discounts and commitments (FOCUS EffectiveCost), when given."""
    list_cost: Decimal | None = None
    """Cost at list price (FOCUS ListCost), when given."""
    service: str | None = None
    """Service charged (FOCUS ServiceName: `Amazon Bedrock`, `Azure OpenAI`, `chat completions`)."""
    model: str | None = None
    """Model, when the line names one."""
    line_item: str | None = None
    """What the line is for (OpenAI line_item, Anthropic description, FOCUS ChargeDescription)."""
    charge_category: str = "Usage"
    """FOCUS ChargeCategory: Usage, Purchase, Tax, Credit, Adjustment."""
    project_id: str | None = None
    """Project, workspace or sub-account."""
    account_id: str | None = None
    """Billing account."""
    quantity: Decimal | None = None
    """Consumed quantity (tokens, requests ...), when given."""
    unit: str | None = None
    """Unit of `quantity`."""
    tags: dict[str, str] = field(default_factory=dict)
    """Provider tags and other columns kept for chargeback."""
