"""genai-prices' bundled snapshot, wrapped: the one module that touches its internals.

Prices come from the snapshot shipped in the installed package (no network at import or call
time). Per-unit pricing reuses genai-prices' own leaf decomposition and tier rule so a cost
split into components still sums to exactly what `genai_prices.calc_price` returns.

`genai_prices.calc_price` re-resolves and re-validates a model's prices on every call (~60 µs).
`Catalog` does that once per (model, provider, price period, request context) and keeps the
result as a `ListPrice`, so pricing a call is a few Decimal multiplications.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Literal

from genai_prices import data_snapshot
from genai_prices.types import (
    ModelInfo,
    ModelPrice,
    PriceVariant,
    TieredPrices,
    _collect_resolved_model_prices,
)
from genai_prices.units import UnitDef, _get_registry
from genai_prices.validation import validate_priced_units

from tokenops.events.usage import TokenUsage

Component = Literal["input", "cache_read", "cache_write", "output", "other"]

CACHE_LIMIT = 4096
"""Entries kept per cache; a gateway fed arbitrary model names must not grow without bound."""

# genai-prices usage key -> TokenUsage field. Same convention on both sides: sub-counts are
# inside their parent (cache reads inside input, reasoning inside output).
_USAGE_FIELDS: Mapping[str, str] = {
    "input_tokens": "input_tokens",
    "output_tokens": "output_tokens",
    "cache_read_tokens": "cache_read_tokens",
    "cache_write_tokens": "cache_write_tokens",
    "cache_write_1h_tokens": "cache_write_1h_tokens",
    "output_reasoning_tokens": "reasoning_tokens",
}


@dataclass(frozen=True, slots=True, eq=False)
class ListedModel:
    """A model found in the price list (compared by identity: one per lookup)."""

    provider_id: str
    """genai-prices provider id the call is billed by (`azure` for gpt-4o on Azure)."""
    model_id: str
    """genai-prices model id (the canonical name)."""
    info: ModelInfo
    """The price list entry."""
    variants_apply: bool
    """False when the entry is borrowed from another provider (`fallback_model_providers`):
    genai-prices then ignores its price variants (batch, service tier), and so do we."""


@dataclass(frozen=True, slots=True)
class UnitCharge:
    """One priced unit of a call, e.g. 1,200 uncached input tokens at $2.50/MTok."""

    component: Component
    """Invoice line it belongs to."""
    unit: str
    """genai-prices usage key (`input_tokens`, `cache_read_tokens` ...)."""
    count: Decimal
    """Units billed at this rate (leaf count: cached tokens are not in the input line)."""
    rate: Decimal
    """USD per `per` units, after any tier."""
    per: int
    """Rate denominator (1,000,000 for tokens)."""
    amount: Decimal
    """USD."""
    tier_start: int | None = None
    """Input-token threshold crossed to get `rate` (`200_000` = the >200k tier); None at base rate."""


@dataclass(frozen=True, slots=True)
class _Rate:
    """One priced unit of a `ListPrice`, ready for arithmetic."""

    usage_key: str
    """genai-prices usage key, e.g. `cache_write_1h_tokens`."""
    field: str | None
    """TokenUsage field holding the count; None for units tokenops does not meter (count 0)."""
    per_request: bool
    """The `requests` unit: counted once per call."""
    component: Component
    """Invoice line."""
    per: int
    """Rate denominator."""
    base: Decimal
    """Rate below the first tier (or the only rate)."""
    tiers: tuple[tuple[int, Decimal], ...]
    """(start, price), highest start first: the first one exceeded by input tokens applies."""
    descendants: tuple[int, ...]
    """Indexes (earlier in `ListPrice.rates`) of priced units nested in this one."""


@dataclass(frozen=True, slots=True)
class ListPrice:
    """A model's resolved list price for one period and request context."""

    rates: tuple[_Rate, ...]
    """Priced units, most specific first (the order leaf counts are computed in)."""
    source: str
    """`genai-prices:<provider>/<model>`, plus `+batch` or `+<tier>` for variants that changed a price."""
    applied: frozenset[str] = field(default_factory=frozenset)
    """Request-context values with a price variant in force (`batch`, `flex`, `default` ...)."""

    def charges(self, usage: TokenUsage) -> list[UnitCharge]:
        """Price every unit of the call the way genai-prices does, one line per billed unit."""
        total_input = usage.input_tokens
        leaves: list[int] = []
        charges: list[UnitCharge] = []
        for rate in self.rates:
            if rate.per_request:
                leaf = 1
            else:
                leaf = getattr(usage, rate.field) if rate.field is not None else 0
                for index in rate.descendants:
                    leaf -= leaves[index]
                if leaf < 0:  # genai-prices refuses this too; TokenUsage's checks should prevent it
                    raise ValueError(f"Invalid usage data: more-specific usage exceeds {rate.usage_key}")
            leaves.append(leaf)
            if not leaf:
                continue
            price, tier_start = rate.base, None
            for start, tier_price in rate.tiers:
                if total_input > start:
                    price, tier_start = tier_price, start
                    break
            count = Decimal(leaf)
            # same operations, in the same order, as genai_prices.types.calc_unit_price
            amount = price * count / rate.per
            charges.append(UnitCharge(rate.component, rate.usage_key, count, price, rate.per, amount, tier_start))
        return charges


class Catalog:
    """Model lookups and resolved prices, cached per instance (build a new one after a price refresh)."""

    def __init__(self) -> None:
        self._models: dict[tuple[str, str | None], ListedModel | None] = {}
        self._prices: dict[tuple[ListedModel, int, tuple[int, ...]], ListPrice] = {}

    def find(self, model: str, provider: str | None) -> ListedModel | None:
        """Look a model up in the price list; None when genai-prices does not know it."""
        key = (model, provider)
        try:
            return self._models[key]
        except KeyError:
            pass
        if len(self._models) >= CACHE_LIMIT:
            self._models.clear()
            self._prices.clear()
        found = self._models[key] = _lookup(model, provider)
        return found

    def list_price(
        self, listed: ListedModel, ts: datetime, *, batch: bool = False, service_tier: str | None = None
    ) -> ListPrice:
        """The model's price at `ts` for this kind of request (batch, service tier).

        Raises:
            ValueError: the price list entry is inconsistent (genai-prices would refuse it too).
        """
        info = listed.info
        context: dict[str, str] | None = None
        variants: tuple[int, ...] = ()
        if (batch or service_tier) and listed.variants_apply:
            context = {"processing": "batch"} if batch else {}
            if service_tier:
                context["service_tier"] = service_tier
            variants = _active_variants(info.price_variants, context, ts)
        key = (listed, _period(info, ts), variants)
        try:
            return self._prices[key]
        except KeyError:
            pass
        if len(self._prices) >= CACHE_LIMIT:
            self._prices.clear()
        resolved = self._prices[key] = _resolve(listed, info.get_prices(ts, context), variants)
        return resolved


def _lookup(model: str, provider: str | None) -> ListedModel | None:
    if not model.strip():
        return None
    snapshot = data_snapshot.get_snapshot()
    try:
        found_provider, info = snapshot.find_provider_model(model, None, provider, None)
    except LookupError:
        return None
    own = any(info is candidate for candidate in found_provider.models)
    return ListedModel(provider_id=found_provider.id, model_id=info.id, info=info, variants_apply=own)


def _period(info: ModelInfo, ts: datetime) -> int:
    """Index of the `ConditionalPrice` in force at `ts` (mirrors `ModelInfo.get_prices`); -1 if fixed."""
    if isinstance(info.prices, ModelPrice):
        return -1
    for index in range(len(info.prices) - 1, -1, -1):
        constraint = info.prices[index].constraint
        if constraint is None or constraint.active(ts):
            return index
    return 0


def _active_variants(variants: list[PriceVariant] | None, context: Mapping[str, str], ts: datetime) -> tuple[int, ...]:
    """Indexes of the price variants `ModelInfo.get_prices` would apply."""
    return tuple(
        index
        for index, variant in enumerate(variants or ())
        if (variant.constraint is None or variant.constraint.active(ts))
        and all(context.get(key) == value for key, value in variant.when.items())
    )


def _resolve(listed: ListedModel, price: ModelPrice, variants: tuple[int, ...]) -> ListPrice:
    registry = _get_registry()
    resolved = _collect_resolved_model_prices(price, registry)
    validate_priced_units(tuple(unit for unit, _ in resolved), registry)
    priced = sorted(
        ((unit, value) for unit, value in resolved), key=lambda pair: (-len(pair[0].dimensions), pair[0].usage_key)
    )
    units = [unit for unit, _ in priced]
    rates: list[_Rate] = []
    for index, (unit, value) in enumerate(priced):
        per_request = unit.usage_key == "requests"
        descendants = () if per_request else _descendants(unit, units[:index])
        if isinstance(value, TieredPrices):
            base, tiers = value.base, tuple((tier.start, tier.price) for tier in reversed(value.tiers))
        else:
            base, tiers = value, ()
        rates.append(
            _Rate(
                usage_key=unit.usage_key,
                field=_USAGE_FIELDS.get(unit.usage_key),
                per_request=per_request,
                component=_component(unit.dimensions),
                per=unit.per,
                base=base,
                tiers=tiers,
                descendants=descendants,
            )
        )
    applied: set[str] = set()
    shown: set[str] = set()
    for index in variants:
        variant = (listed.info.price_variants or [])[index]
        applied.update(variant.when.values())
        if any(value is not None for value in variant.prices.__dict__.values()):
            shown.update(variant.when.values())  # OpenAI's `default` tier changes nothing
    source = f"genai-prices:{listed.provider_id}/{listed.model_id}"
    for name in sorted(shown):
        source += f"+{name}"
    return ListPrice(rates=tuple(rates), source=source, applied=frozenset(applied))


def _descendants(unit: UnitDef, more_specific: list[UnitDef]) -> tuple[int, ...]:
    # genai_prices.decompose.compute_leaf_values: a unit's leaf count is its reported count minus
    # the leaf counts of every priced unit whose dimensions include its own (all more specific,
    # hence earlier in the sorted order). `requests` is not part of the decomposition.
    return tuple(
        index
        for index, other in enumerate(more_specific)
        if other.usage_key != "requests" and unit.dimensions.items() <= other.dimensions.items()
    )


def _component(dimensions: Mapping[str, str]) -> Component:
    if dimensions.get("family") != "tokens":
        return "other"
    token_type = dimensions.get("token_type")
    if token_type == "cache_read":
        return "cache_read"
    if token_type == "cache_write":
        return "cache_write"
    return "output" if dimensions.get("direction") == "output" else "input"
