"""Turn a call's token usage into a `Cost`, or say plainly that it cannot be priced."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import assert_never

from tokenops.events.usage import Cost, TokenUsage
from tokenops.pricing.catalog import Catalog, Component, ListedModel, UnitCharge
from tokenops.pricing.overrides import PriceOverride, find_override, percent

PriceLine = UnitCharge
MILLION = 1_000_000


@dataclass(frozen=True, slots=True)
class Priced:
    """A call with a known price."""

    cost: Cost
    """The cost, split by invoice line."""
    source: str
    """Where the price came from, e.g. `genai-prices:openai/gpt-4o` or `override:llama-internal`."""
    lines: tuple[PriceLine, ...]
    """How the cost was computed, one priced unit per line."""
    notes: tuple[str, ...] = ()
    """What else shaped the price: a discount, a GPU-hour rate, a batch price that is not listed."""


@dataclass(frozen=True, slots=True)
class Unpriced:
    """A call whose price is unknown: recorded and reported as such, never as $0."""

    reason: str
    """Why, and how to fix it."""

    @property
    def source(self) -> str:
        """`price_source` recorded in the ledger."""
        return "unpriced"


class Pricer:
    """Prices calls with the organisation's overrides first, then genai-prices' list prices.

    Model lookups and resolved list prices are cached per instance: build a new `Pricer` after
    refreshing genai-prices' data.
    """

    def __init__(self, overrides: Sequence[PriceOverride] = ()) -> None:
        self._overrides = tuple(overrides)
        self._catalog = Catalog()

    @property
    def overrides(self) -> tuple[PriceOverride, ...]:
        """The organisation's overrides, in the order they are tried."""
        return self._overrides

    def price(
        self,
        model: str,
        usage: TokenUsage,
        *,
        provider: str | None = None,
        ts: datetime,
        batch: bool = False,
        service_tier: str | None = None,
    ) -> Priced | Unpriced:
        """Price one call at the time it was made.

        Args:
            model: Model that served the call, as the provider reported it.
            usage: Tokens billed.
            provider: genai-prices provider id (`openai`, `azure` ...); None lets genai-prices
                guess it from the model name.
            ts: When the call was made; prices and override contracts are looked up at this time.
            batch: Submitted through a batch API (priced with the `processing: batch` variant).
            service_tier: Provider service tier (`flex`, `priority`) when it changes the price.
        """
        listed = self._catalog.find(model, provider)
        override = None
        if self._overrides:
            override = find_override(self._overrides, model, _provider_ids(provider, listed), ts)
            if override is not None and override.replaces_list_price:
                return _private_price(override, usage)
        if listed is None:
            return self._unlisted(model, provider)
        try:
            list_price = self._catalog.list_price(listed, ts, batch=batch, service_tier=service_tier)
            charges = list_price.charges(usage)
        except ValueError as exc:  # genai-prices' own consistency rules
            return Unpriced(f"Cannot price {model!r} from {listed.provider_id!r}: {exc}")
        source = list_price.source
        notes: tuple[str, ...] = ()
        if (batch and "batch" not in list_price.applied) or (service_tier and service_tier not in list_price.applied):
            notes = (_variant_missing(listed, ts, batch, service_tier, list_price.applied),)
        if override is not None:
            assert override.discount is not None
            keep = 1 - override.discount
            charges = [_scaled(charge, keep) for charge in charges]
            pct = percent(override.discount)
            source += f"-{pct}%:{override.label}"
            notes += (f"{pct}% off the list price (override {override.label!r})",)
        return Priced(cost=_cost(charges), source=source, lines=tuple(charges), notes=notes)

    def _unlisted(self, model: str, provider: str | None) -> Unpriced:
        where = f" from {provider!r}" if provider else ""
        hint = ""
        if provider and (elsewhere := self._catalog.find(model, None)) is not None:
            hint = f" (genai-prices lists it from {elsewhere.provider_id!r})"
        return Unpriced(
            f"No price for model {model!r}{where}{hint}; add an override in tokenops.toml: "
            f"[[pricing.overrides]] model = {model!r} with input_mtok and output_mtok "
            "(or gpu_hour_usd and tokens_per_gpu_hour)"
        )


def _provider_ids(provider: str | None, listed: ListedModel | None) -> tuple[str, ...]:
    """Names the call's provider goes by: as given, and as genai-prices resolved it."""
    ids: tuple[str, ...] = ()
    if provider:
        ids = (provider.lower(),)
    if listed is not None and listed.provider_id not in ids:
        ids += (listed.provider_id,)
    return ids


def _variant_missing(
    listed: ListedModel, ts: datetime, batch: bool, service_tier: str | None, applied: frozenset[str]
) -> str:
    asked = [name for name in ("batch" if batch else None, service_tier) if name and name not in applied]
    which = " and ".join(repr(name) for name in asked)
    why = "" if listed.variants_apply else " (genai-prices does not apply another provider's variants)"
    return (
        f"no {which} price listed for {listed.provider_id}/{listed.model_id} on {_utc_day(ts)}"
        f"{why}; charged at the standard price"
    )


def _utc_day(ts: datetime) -> str:
    return (ts.astimezone(UTC) if ts.tzinfo is not None else ts).date().isoformat()


def _private_price(override: PriceOverride, usage: TokenUsage) -> Priced:
    input_rate, read_rate, write_rate, output_rate = override.per_token_rates()
    lines: list[PriceLine] = []
    parts: tuple[tuple[Component, str, int, Decimal], ...] = (
        ("input", "input_tokens", usage.uncached_input_tokens, input_rate),
        ("cache_read", "cache_read_tokens", usage.cache_read_tokens, read_rate),
        ("cache_write", "cache_write_tokens", usage.cache_write_tokens, write_rate),
        ("output", "output_tokens", usage.output_tokens, output_rate),
    )
    for component, unit, count, rate in parts:
        if count:
            lines.append(UnitCharge(component, unit, Decimal(count), rate, MILLION, override.amount(rate, count)))
    notes: tuple[str, ...] = ()
    if override.gpu_hour_usd is not None:
        notes = (
            f"self-hosted: ${override.gpu_hour_usd} per GPU-hour at {override.tokens_per_gpu_hour:,} tokens "
            f"per GPU-hour (override {override.label!r})",
        )
    return Priced(cost=_cost(lines), source=f"override:{override.label}", lines=tuple(lines), notes=notes)


def _scaled(charge: UnitCharge, factor: Decimal) -> UnitCharge:
    return UnitCharge(
        component=charge.component,
        unit=charge.unit,
        count=charge.count,
        rate=charge.rate * factor,
        per=charge.per,
        amount=charge.amount * factor,
        tier_start=charge.tier_start,
    )


def _cost(lines: Sequence[UnitCharge]) -> Cost:
    input_ = cache_read = cache_write = output = other = Decimal(0)
    for line in lines:
        match line.component:
            case "input":
                input_ += line.amount
            case "output":
                output += line.amount
            case "cache_read":
                cache_read += line.amount
            case "cache_write":
                cache_write += line.amount
            case "other":
                other += line.amount
            case unreachable:
                assert_never(unreachable)
    return Cost(input=input_, cache_read=cache_read, cache_write=cache_write, output=output, other=other)
