"""The organisation's own prices: negotiated discounts, private and self-hosted models."""

from __future__ import annotations

import fnmatch
from collections.abc import Collection
from datetime import UTC, date, datetime
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field, model_validator

MTOK = Decimal(1_000_000)


class PriceOverride(BaseModel):
    """One `[[pricing.overrides]]` entry of tokenops.toml; the first that matches a call wins.

    Either a `discount` on the list price, explicit per-million-token prices, or a GPU-hour
    price with the throughput that turns it into a per-token price.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(min_length=1)
    """Model name or glob (`gpt-4o*`), matched case-insensitively."""
    provider: str | None = Field(default=None, min_length=1)
    """Restrict to one provider id (as the call names it or as genai-prices resolves it, e.g.
    `azure`); None matches any. Case-insensitive."""
    name: str | None = None
    """Label shown as the price source; defaults to the model pattern."""
    discount: Decimal | None = None
    """Share taken off the list price (0.15 = 15% off)."""
    input_mtok: Decimal | None = Field(default=None, ge=0)
    """USD per million uncached input tokens."""
    cache_read_mtok: Decimal | None = Field(default=None, ge=0)
    """USD per million cached input tokens; defaults to `input_mtok`."""
    cache_write_mtok: Decimal | None = Field(default=None, ge=0)
    """USD per million cache-write tokens; defaults to `input_mtok`."""
    output_mtok: Decimal | None = Field(default=None, ge=0)
    """USD per million output tokens."""
    gpu_hour_usd: Decimal | None = Field(default=None, ge=0)
    """Cost of one GPU-hour of a self-hosted deployment."""
    tokens_per_gpu_hour: int | None = Field(default=None, gt=0)
    """Measured throughput (input + output tokens) of one GPU-hour."""
    valid_from: date | None = None
    """First day (UTC) the override applies (contract start)."""
    valid_until: date | None = None
    """Last day (UTC) the override applies, inclusive (contract end)."""

    @model_validator(mode="after")
    def _consistent(self) -> PriceOverride:
        who = f"override for {self.model!r}"
        per_token = self.input_mtok is not None or self.output_mtok is not None
        kinds = [self.discount is not None, per_token, self.gpu_hour_usd is not None]
        if sum(kinds) != 1:
            raise ValueError(
                f"{who} needs exactly one of: discount, input_mtok and output_mtok, "
                "or gpu_hour_usd with tokens_per_gpu_hour"
            )
        if self.discount is not None and not 0 <= self.discount <= 1:
            raise ValueError(f"{who}: discount is a share between 0 and 1 (0.15 = 15% off), got {self.discount}")
        if (self.input_mtok is None) != (self.output_mtok is None):
            raise ValueError(f"{who} needs both input_mtok and output_mtok")
        if not per_token and (self.cache_read_mtok is not None or self.cache_write_mtok is not None):
            raise ValueError(f"{who}: cache_read_mtok and cache_write_mtok only go with input_mtok and output_mtok")
        if (self.gpu_hour_usd is None) != (self.tokens_per_gpu_hour is None):
            raise ValueError(f"{who}: gpu_hour_usd and tokens_per_gpu_hour go together")
        if self.valid_from is not None and self.valid_until is not None and self.valid_from > self.valid_until:
            raise ValueError(
                f"{who}: valid_from ({self.valid_from}) is after valid_until ({self.valid_until}); "
                "valid_until is the contract's last day"
            )
        return self

    @property
    def label(self) -> str:
        """Name used in `price_source`."""
        return self.name or self.model

    @property
    def replaces_list_price(self) -> bool:
        """True for private prices that do not need a genai-prices entry at all."""
        return self.discount is None

    def matches(self, model: str, providers: Collection[str], ts: datetime) -> bool:
        """Whether this override applies to a call of `model` at `ts`.

        Args:
            model: Model name of the call.
            providers: Lower-case ids the call's provider goes by (as given, and as genai-prices
                resolved it). A provider-restricted override never matches a call with none.
            ts: When the call was made; compared with the validity dates as a UTC day.
        """
        if self.provider is not None and self.provider.lower() not in providers:
            return False
        if self.valid_from is not None or self.valid_until is not None:
            day = (ts.astimezone(UTC) if ts.tzinfo is not None else ts).date()
            if self.valid_from is not None and day < self.valid_from:
                return False
            if self.valid_until is not None and day > self.valid_until:
                return False
        return fnmatch.fnmatchcase(model.lower(), self.model.lower())

    def per_token_rates(self) -> tuple[Decimal, Decimal, Decimal, Decimal]:
        """(input, cache_read, cache_write, output) USD per million tokens for a private price."""
        if self.gpu_hour_usd is not None:
            assert self.tokens_per_gpu_hour is not None
            rate = self.gpu_hour_usd * MTOK / Decimal(self.tokens_per_gpu_hour)
            return rate, rate, rate, rate
        assert self.input_mtok is not None and self.output_mtok is not None
        return (
            self.input_mtok,
            self.cache_read_mtok if self.cache_read_mtok is not None else self.input_mtok,
            self.cache_write_mtok if self.cache_write_mtok is not None else self.input_mtok,
            self.output_mtok,
        )

    def amount(self, rate: Decimal, tokens: int) -> Decimal:
        """USD for `tokens` at `rate` per MTok; GPU-hour prices divide once, by the throughput."""
        if self.gpu_hour_usd is not None:
            assert self.tokens_per_gpu_hour is not None
            # gpu_hour_usd * tokens / throughput is exact whenever the result is; going through
            # the per-MTok rate first would round twice (e.g. $2.50 at 3,600,000 tok/h).
            return self.gpu_hour_usd * tokens / self.tokens_per_gpu_hour
        return rate * tokens / MTOK


def find_override(
    overrides: tuple[PriceOverride, ...], model: str, providers: Collection[str], ts: datetime
) -> PriceOverride | None:
    """First override that matches, in config order."""
    for override in overrides:
        if override.matches(model, providers, ts):
            return override
    return None


def percent(share: Decimal) -> str:
    """`0.15` -> `15`, `0.125` -> `12.5`: a share as a percentage without trailing zeros."""
    return format((share * 100).normalize(), "f")
