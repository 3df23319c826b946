"""The organisation's own prices: discounts, private and self-hosted models, contracts, order."""

from __future__ import annotations

import tomllib
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from tokenops.config import PricingSettings
from tokenops.events import TokenUsage
from tokenops.pricing import Priced, PriceOverride, Pricer, Unpriced

NOW = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
GPT_4O_CALL = TokenUsage(input_tokens=1_000, output_tokens=500)
"""$0.0075 at list price: 1,000 x $2.50 + 500 x $10 per MTok."""


def priced(result: Priced | Unpriced) -> Priced:
    assert isinstance(result, Priced), result
    return result


def test_discount_takes_a_share_off_every_line() -> None:
    pricer = Pricer([PriceOverride(model="gpt-4o", discount=Decimal("0.15"), name="openai-contract")])

    result = priced(pricer.price("gpt-4o", GPT_4O_CALL, provider="openai", ts=NOW))

    assert result.cost.total == Decimal("0.006375")  # $0.0075 x 0.85
    assert [(line.rate, line.amount) for line in result.lines] == [
        (Decimal("2.125"), Decimal("0.002125")),
        (Decimal("8.5"), Decimal("0.00425")),
    ]
    assert result.source == "genai-prices:openai/gpt-4o-15%:openai-contract"
    assert result.notes == ("15% off the list price (override 'openai-contract')",)


def test_discount_stacks_on_the_batch_price() -> None:
    pricer = Pricer([PriceOverride(model="gpt-4o", discount=Decimal("0.125"))])

    result = priced(pricer.price("gpt-4o", GPT_4O_CALL, provider="openai", ts=NOW, batch=True))

    assert result.cost.total == Decimal("0.00328125")  # $0.00375 x 0.875
    assert result.source == "genai-prices:openai/gpt-4o+batch-12.5%:gpt-4o"


def test_explicit_per_mtok_price_for_a_private_model() -> None:
    override = PriceOverride(
        model="acme-llm", input_mtok=Decimal("0.50"), cache_read_mtok=Decimal("0.05"), output_mtok=Decimal("1.50")
    )
    tokens = TokenUsage(input_tokens=10_000, cache_read_tokens=4_000, output_tokens=2_000)

    result = priced(Pricer([override]).price("acme-llm", tokens, provider="acme", ts=NOW))

    assert result.cost.input == Decimal("0.003")  # 6,000 x $0.50/MTok
    assert result.cost.cache_read == Decimal("0.0002")  # 4,000 x $0.05/MTok
    assert result.cost.output == Decimal("0.003")  # 2,000 x $1.50/MTok
    assert result.cost.total == Decimal("0.0062")
    assert result.source == "override:acme-llm"


def test_private_cache_prices_default_to_the_input_price() -> None:
    override = PriceOverride(model="acme-llm", input_mtok=Decimal("1"), output_mtok=Decimal("2"))
    tokens = TokenUsage(input_tokens=10_000, cache_read_tokens=3_000, cache_write_tokens=2_000, output_tokens=1_000)

    result = priced(Pricer([override]).price("acme-llm", tokens, ts=NOW))

    assert (result.cost.input, result.cost.cache_read, result.cost.cache_write) == (
        Decimal("0.005"),
        Decimal("0.003"),
        Decimal("0.002"),
    )
    assert result.cost.total == Decimal("0.012")


def test_gpu_hour_price_for_a_self_hosted_model() -> None:
    # $2.40 per GPU-hour at 1,200,000 tokens per GPU-hour = $2 per million tokens
    override = PriceOverride(
        model="llama-3.3-70b-internal", gpu_hour_usd=Decimal("2.40"), tokens_per_gpu_hour=1_200_000
    )

    result = priced(Pricer([override]).price("llama-3.3-70b-internal", usage_of(9_000, 3_000), ts=NOW))

    assert result.cost.total == Decimal("0.024")  # 12,000 tokens x $2/MTok
    assert [line.rate for line in result.lines] == [Decimal(2), Decimal(2)]
    assert result.notes == (
        "self-hosted: $2.40 per GPU-hour at 1,200,000 tokens per GPU-hour (override 'llama-3.3-70b-internal')",
    )


def test_gpu_hour_price_divides_once_so_exact_amounts_stay_exact() -> None:
    # $2.50 / 3,600,000 tok has no finite decimal per token, but 1,800 tokens cost exactly $0.00125
    override = PriceOverride(model="mistral-internal", gpu_hour_usd=Decimal("2.50"), tokens_per_gpu_hour=3_600_000)

    result = priced(Pricer([override]).price("mistral-internal", usage_of(1_440, 360), ts=NOW))

    assert result.cost.total == Decimal("0.00125")


def usage_of(input_tokens: int, output_tokens: int) -> TokenUsage:
    return TokenUsage(input_tokens=input_tokens, output_tokens=output_tokens)


CONTRACT = PriceOverride(
    model="gpt-4o",
    discount=Decimal("0.20"),
    valid_from=date(2026, 1, 1),
    valid_until=date(2026, 6, 30),
)


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        (datetime(2025, 12, 31, 23, 59, tzinfo=UTC), Decimal("0.0075")),
        (datetime(2026, 1, 1, 0, 0, tzinfo=UTC), Decimal("0.006")),
        (datetime(2026, 6, 30, 23, 59, tzinfo=UTC), Decimal("0.006")),
        (datetime(2026, 7, 1, 0, 0, tzinfo=UTC), Decimal("0.0075")),
        # 19:30 on 30 June in New York is already 1 July in UTC: the contract has ended
        (datetime(2026, 6, 30, 19, 30, tzinfo=timezone(timedelta(hours=-5))), Decimal("0.0075")),
    ],
    ids=["day-before-start", "first-day", "last-day", "day-after-end", "last-day-local-but-not-utc"],
)
def test_contract_dates_bound_the_override(ts: datetime, expected: Decimal) -> None:
    result = priced(Pricer([CONTRACT]).price("gpt-4o", GPT_4O_CALL, provider="openai", ts=ts))

    assert result.cost.total == expected


def test_first_matching_override_wins() -> None:
    family = PriceOverride(model="gpt-4o*", discount=Decimal("0.10"), name="family")
    exact = PriceOverride(model="gpt-4o", discount=Decimal("0.30"), name="exact")

    family_first = priced(Pricer([family, exact]).price("gpt-4o", GPT_4O_CALL, provider="openai", ts=NOW))
    exact_first = priced(Pricer([exact, family]).price("gpt-4o", GPT_4O_CALL, provider="openai", ts=NOW))

    assert family_first.cost.total == Decimal("0.00675")
    assert family_first.source.endswith(":family")
    assert exact_first.cost.total == Decimal("0.00525")
    assert exact_first.source.endswith(":exact")


def test_expired_override_falls_through_to_the_next_one() -> None:
    expired = PriceOverride(model="gpt-4o", discount=Decimal("0.50"), valid_until=date(2025, 12, 31), name="old")
    current = PriceOverride(model="gpt-4o", discount=Decimal("0.20"), valid_from=date(2026, 1, 1), name="new")

    result = priced(Pricer([expired, current]).price("gpt-4o", GPT_4O_CALL, provider="openai", ts=NOW))

    assert result.source.endswith("-20%:new")


def test_model_glob_is_case_insensitive() -> None:
    pricer = Pricer([PriceOverride(model="GPT-4o*", discount=Decimal("0.5"))])

    mini = priced(pricer.price("gpt-4o-mini", GPT_4O_CALL, provider="openai", ts=NOW))
    other = priced(pricer.price("gpt-4.1", GPT_4O_CALL, provider="openai", ts=NOW))

    assert mini.cost.total == Decimal("0.00022500")  # (1,000 x $0.15 + 500 x $0.60) per MTok / 2
    assert other.source == "genai-prices:openai/gpt-4.1"


@pytest.mark.parametrize(
    ("provider", "discounted"),
    [("azure", True), ("Azure", True), ("openai", False), (None, False)],
    ids=["azure", "case-insensitive", "other-provider", "provider-guessed-as-openai"],
)
def test_provider_restriction(provider: str | None, discounted: bool) -> None:
    pricer = Pricer([PriceOverride(model="gpt-4o", provider="azure", discount=Decimal("0.15"))])

    result = priced(pricer.price("gpt-4o", GPT_4O_CALL, provider=provider, ts=NOW))

    assert result.cost.total == (Decimal("0.006375") if discounted else Decimal("0.0075"))


def test_provider_restricted_private_model_needs_that_provider() -> None:
    override = PriceOverride(model="acme-llm", provider="acme", input_mtok=Decimal(1), output_mtok=Decimal(2))
    pricer = Pricer([override])

    assert isinstance(pricer.price("acme-llm", GPT_4O_CALL, provider="acme", ts=NOW), Priced)
    assert isinstance(pricer.price("acme-llm", GPT_4O_CALL, provider="other", ts=NOW), Unpriced)
    assert isinstance(pricer.price("acme-llm", GPT_4O_CALL, ts=NOW), Unpriced)


def test_private_price_replaces_a_listed_one() -> None:
    pricer = Pricer([PriceOverride(model="gpt-4o", input_mtok=Decimal(1), output_mtok=Decimal(2), name="ptu")])

    result = priced(pricer.price("gpt-4o", GPT_4O_CALL, provider="azure", ts=NOW))

    assert result.cost.total == Decimal("0.002")
    assert result.source == "override:ptu"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {},
            "override for 'gpt-4o' needs exactly one of: discount, input_mtok and output_mtok, "
            "or gpu_hour_usd with tokens_per_gpu_hour",
        ),
        (
            {"discount": "0.1", "input_mtok": "1", "output_mtok": "2"},
            "override for 'gpt-4o' needs exactly one of: discount",
        ),
        ({"input_mtok": "1"}, "override for 'gpt-4o' needs both input_mtok and output_mtok"),
        ({"output_mtok": "1"}, "override for 'gpt-4o' needs both input_mtok and output_mtok"),
        ({"discount": "15"}, "override for 'gpt-4o': discount is a share between 0 and 1 (0.15 = 15% off), got 15"),
        ({"discount": "-0.1"}, "discount is a share between 0 and 1"),
        ({"gpu_hour_usd": "2.5"}, "override for 'gpt-4o': gpu_hour_usd and tokens_per_gpu_hour go together"),
        (
            {"discount": "0.1", "tokens_per_gpu_hour": 1000},
            "override for 'gpt-4o': gpu_hour_usd and tokens_per_gpu_hour go together",
        ),
        (
            {"discount": "0.1", "cache_read_mtok": "0.1"},
            "override for 'gpt-4o': cache_read_mtok and cache_write_mtok only go with input_mtok and output_mtok",
        ),
        (
            {"discount": "0.1", "valid_from": "2026-07-01", "valid_until": "2026-06-30"},
            "override for 'gpt-4o': valid_from (2026-07-01) is after valid_until (2026-06-30); "
            "valid_until is the contract's last day",
        ),
        ({"input_mtok": "-1", "output_mtok": "2"}, "input_mtok\n  Input should be greater than or equal to 0"),
        ({"discount": "0.1", "input_mtoks": "1"}, "input_mtoks\n  Extra inputs are not permitted"),
        ({"discount": "0.1", "provider": ""}, "provider\n  String should have at least 1 character"),
    ],
    ids=[
        "no-price",
        "two-kinds",
        "input-without-output",
        "output-without-input",
        "discount-as-percent",
        "negative-discount",
        "gpu-without-throughput",
        "throughput-without-gpu",
        "cache-price-with-discount",
        "contract-ends-before-it-starts",
        "negative-price",
        "typo",
        "empty-provider",
    ],
)
def test_inconsistent_override_is_rejected_with_a_clear_message(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as info:
        PriceOverride.model_validate({"model": "gpt-4o", **fields})

    assert message in str(info.value)


def test_overrides_read_from_tokenops_toml() -> None:
    text = """
    [[pricing.overrides]]
    model = "gpt-4o"
    provider = "azure"
    discount = "0.15"
    name = "azure-ea"
    valid_from = 2026-01-01
    valid_until = 2026-12-31

    [[pricing.overrides]]
    model = "llama-internal"
    gpu_hour_usd = "2.40"
    tokens_per_gpu_hour = 1200000
    """
    settings = PricingSettings.model_validate(tomllib.loads(text)["pricing"])
    pricer = Pricer(settings.overrides)

    azure = priced(pricer.price("gpt-4o", GPT_4O_CALL, provider="azure", ts=NOW))
    llama = priced(pricer.price("llama-internal", usage_of(9_000, 3_000), ts=NOW))

    assert azure.source == "genai-prices:azure/gpt-4o-15%:azure-ea"
    assert llama.cost.total == Decimal("0.024")
    assert pricer.overrides == tuple(settings.overrides)
