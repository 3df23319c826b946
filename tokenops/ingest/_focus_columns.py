"""FOCUS column names and values as bills really write them: nulls, case variants, zone-less times.

Kept apart from `focus.py` (which turns a row into a `BilledCost`) because the quirks are about
the format, not about tokenops: `NULL` written as a bare word, `Usage-based` next to
`Usage-Based`, datetimes without `T` or zone, column names in any case, numbers as quoted
strings. FOCUS itself is https://focus.finops.org (1.0-1.3 read alike for the columns used here).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Final

COLUMNS: Final = (
    "AvailabilityZone BilledCost BillingAccountId BillingAccountName BillingAccountType BillingCurrency "
    "BillingPeriodEnd BillingPeriodStart CapacityReservationId CapacityReservationStatus ChargeCategory "
    "ChargeClass ChargeDescription ChargeFrequency ChargePeriodEnd ChargePeriodStart CommitmentDiscountCategory "
    "CommitmentDiscountId CommitmentDiscountName CommitmentDiscountQuantity CommitmentDiscountStatus "
    "CommitmentDiscountType CommitmentDiscountUnit ConsumedQuantity ConsumedUnit ContractedCost "
    "ContractedUnitPrice EffectiveCost HostProviderName InvoiceId InvoiceIssuerName ListCost ListUnitPrice "
    "PricingCategory PricingCurrency PricingQuantity PricingUnit ProviderName PublisherName RegionId RegionName "
    "ResourceId ResourceName ResourceType ServiceCategory ServiceName ServiceProviderName ServiceSubcategory "
    "SkuId SkuMeter SkuPriceDetails SkuPriceId SubAccountId SubAccountName SubAccountType Tags"
).split()
"""FOCUS 1.0-1.3 Cost and Usage columns; a header is matched against them case-insensitively."""

_CANONICAL: Final = {name.lower(): name for name in COLUMNS}

REQUIRED: Final = ("BilledCost", "BillingCurrency", "ChargePeriodStart", "ChargePeriodEnd", "ChargeCategory")
"""Columns a file must have to be read at all (and, besides the provider, must be set on every row)."""

KEPT_AS_TAGS: Final = (
    "ResourceId",
    "ResourceName",
    "SkuId",
    "SkuPriceId",
    "SkuMeter",
    "RegionId",
    "ServiceCategory",
    "ServiceSubcategory",
    "ChargeClass",
    "ChargeFrequency",
    "PricingCategory",
    "PricingQuantity",
    "PricingUnit",
    "CommitmentDiscountId",
    "InvoiceId",
    "SubAccountName",
    "BillingAccountName",
    "ProviderName",
    "PublisherName",
    "ServiceProviderName",
    "HostProviderName",
    "InvoiceIssuerName",
)
"""FOCUS columns with no `BilledCost` field of their own, kept in its tags under their column names."""

NUMBERS: Final = frozenset(
    "BilledCost EffectiveCost ListCost ContractedCost ConsumedQuantity PricingQuantity ListUnitPrice "
    "ContractedUnitPrice CommitmentDiscountQuantity PricingCurrencyContractedUnitPrice "
    "PricingCurrencyEffectiveCost PricingCurrencyListUnitPrice".split()
)
"""Decimal columns: compared by value, so `0.00000080000` (CSV) and `8E-7` (Parquet) are one charge."""

DATETIMES: Final = frozenset(("BillingPeriodStart", "BillingPeriodEnd", "ChargePeriodStart", "ChargePeriodEnd"))
"""Date-time columns, compared as UTC instants."""

CHARGE_CATEGORIES: Final = {v.lower(): v for v in ("Usage", "Purchase", "Tax", "Credit", "Adjustment")}
ENUMS: Final = {
    "ChargeCategory": CHARGE_CATEGORIES,
    "ChargeFrequency": {v.lower(): v for v in ("One-Time", "Recurring", "Usage-Based")},
    "ChargeClass": {"correction": "Correction"},
    "PricingCategory": {v.lower(): v for v in ("Standard", "Dynamic", "Committed", "Other")},
}
"""Closed FOCUS value sets whose case varies in real files (`Usage-based` vs `Usage-Based`)."""

NULLS: Final = frozenset({"", "NULL", "null", "Null"})
"""How a null is written in the CSV files seen in the wild (the FOCUS sample uses a bare `NULL`)."""

_PROVIDERS: Final = {
    "aws": "aws",
    "amazon web services": "aws",
    "amazon web services, inc.": "aws",
    "microsoft": "azure",
    "microsoft azure": "azure",
    "azure": "azure",
    "google": "google",
    "google cloud": "google",
    "google cloud platform": "google",
    "gcp": "google",
    "oracle": "oracle",
    "oracle cloud infrastructure": "oracle",
    "openai": "openai",
    "anthropic": "anthropic",
}
"""ProviderName values to tokenops provider ids; anything else becomes a lower-case slug."""

MODEL_COLUMNS: Final = frozenset(("x_model", "x_modelid", "x_modelname"))
"""Lower-cased names of custom columns that state the model outright; they win over any guess."""

_BEDROCK_ARN = re.compile(r":(?:foundation-model|inference-profile|provisioned-model|custom-model)/([^/\s]+)$")
_MODEL_IN_TEXT = re.compile(
    r"\b((?:us|eu|apac|global)\.)?"
    r"((?:anthropic|amazon|meta|mistral|cohere|ai21|deepseek|openai|qwen|writer)\.[a-z0-9][\w.:-]*"
    r"|gpt-[0-9][\w.-]*|o[1-9](?:-mini|-pro)?\b|text-embedding-[\w-]+|claude-[\w.-]+|gemini-[\w.-]+)",
    re.IGNORECASE,
)
_AZURE_METER_SUFFIX = re.compile(r"-(?:inp|input|outp|output|opt|cchd|cached|batch|glbl|global|regnl|dzone)\b.*$", re.I)
_BEDROCK_EDITION = re.compile(r"^(.+?)\s*\(Amazon Bedrock Edition\)$", re.IGNORECASE)
_AI_SERVICE = re.compile(r"bedrock|openai|vertex ai|gemini|anthropic|claude|foundry", re.IGNORECASE)


def canonical_header(names: list[str]) -> list[str]:
    """Header names with FOCUS columns spelled as the spec does; `x_` and other columns kept as written."""
    return [_CANONICAL.get(name.strip().lower(), name.strip()) for name in names]


def is_null(value: object) -> bool:
    """Whether a cell holds no value (None, empty, or the word NULL)."""
    return value is None or (isinstance(value, str) and value.strip() in NULLS)


def text(value: object) -> str | None:
    """A string cell, or None when it is null."""
    if is_null(value):
        return None
    return value.strip() if isinstance(value, str) else str(value)


def decimal(value: object, column: str) -> Decimal | None:
    """A decimal cell (written as text, Parquet decimal, float or int); raises ValueError with a fix."""
    if is_null(value):
        return None
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, float):
        result = Decimal(repr(value))  # shortest repr: 8e-07 stays 8E-7, not 7.99999e-07
    elif isinstance(value, int) and not isinstance(value, bool):
        result = Decimal(value)
    else:
        try:
            result = Decimal(str(value).strip())
        except InvalidOperation:
            raise ValueError(f"{column} is {value!r}, expected a decimal number such as 12.34") from None
    if not result.is_finite():
        raise ValueError(f"{column} is {value!r}, expected a finite decimal number")
    return result


def timestamp(value: object, column: str) -> datetime | None:
    """A FOCUS datetime in UTC; a zone-less value is read as UTC (the spec requires UTC)."""
    if is_null(value):
        return None
    if isinstance(value, datetime):
        parsed = value
    else:
        raw = str(value).strip()
        try:
            parsed = datetime.fromisoformat(raw)
        except ValueError:
            raise ValueError(
                f"{column} is {raw!r}, expected an ISO 8601 date-time such as 2024-09-01T00:00:00Z"
            ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def enum_value(column: str, value: str | None) -> str | None:
    """A FOCUS closed-set value in its spec spelling when only the case differs; others kept as written."""
    if value is None:
        return None
    return ENUMS.get(column, {}).get(value.lower(), value)


def provider_id(name: str) -> str:
    """tokenops provider id of a FOCUS ProviderName (`AWS` -> `aws`, `Microsoft` -> `azure`)."""
    key = name.strip().lower()
    return _PROVIDERS.get(key) or re.sub(r"[^a-z0-9]+", "-", key).strip("-") or key


def model_name(columns: dict[str, str | None]) -> str | None:
    """The model a bill line names, if any: a Bedrock ARN, a meter or description (see `MODEL_COLUMNS`).

    Only AI lines are searched beyond explicit columns, and only for known model-id shapes, so an
    Azure ML workspace or an EC2 instance never turns into a "model".
    """
    resource = columns.get("ResourceId") or ""
    arn = _BEDROCK_ARN.search(resource)
    if arn:
        return arn.group(1)
    service = columns.get("ServiceName") or ""
    if not _AI_SERVICE.search(service):
        return None
    for key in ("SkuMeter", "x_SkuMeterName", "ChargeDescription"):
        value = columns.get(key)
        found = _MODEL_IN_TEXT.search(value) if value else None
        if found:
            return _AZURE_METER_SUFFIX.sub("", found.group(2)).rstrip(".:-")
    edition = _BEDROCK_EDITION.match(service)
    return edition.group(1) if edition else None


def cell_text(value: object) -> str | None:
    """Text of a typed (Parquet) cell in a text column, None for null; numbers and times as values."""
    if value is None:
        return None
    if isinstance(value, str):
        return None if value in NULLS else value
    if isinstance(value, float | Decimal):
        return format((Decimal(repr(value)) if isinstance(value, float) else value).normalize(), "f")
    if isinstance(value, datetime):
        return (value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)).isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):  # a struct or a map (Tags)
        return json.dumps(dict(value) if isinstance(value, list) else value, sort_keys=True, default=str)
    return str(value)


def user_tags(raw: object) -> dict[str, str]:
    """A line's Tags cell (JSON text, or a Parquet map or struct) as a dict; ValueError if not an object."""
    if is_null(raw):
        return {}
    if isinstance(raw, list):  # Parquet MAP<string, string> reads as [(key, value), ...]
        raw = dict(raw)
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ValueError(f"Tags is not valid JSON ({exc.msg}); FOCUS Tags is a JSON object such as {{}}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"Tags is a JSON {type(raw).__name__}, expected a JSON object of key-value pairs")
    return {str(k): _tag_value(v) for k, v in raw.items()}


def _tag_value(value: object) -> str:
    if value is None:
        return ""  # FOCUS allows a key without a value
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else json.dumps(value, default=str)
