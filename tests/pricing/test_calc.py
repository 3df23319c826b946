"""`Pricer.price` against genai-prices' own `calc_price`, and against prices worked out by hand."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from genai_prices import Usage, calc_price, data_snapshot

from tokenops.events import TokenUsage
from tokenops.pricing import Priced, Pricer, Unpriced

NOW = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
"""Batch and service-tier variants are listed from 2026-10-12/14; DeepSeek is at peak price."""
EVENING = datetime(2026, 11, 2, 18, 0, tzinfo=UTC)
"""DeepSeek's off-peak window (16:30-00:30 UTC)."""
EARLY_2025 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
"""Before o3's June 2025 price cut, and before any batch variant is listed."""


def usage(
    input: int,
    output: int,
    *,
    cached: int = 0,
    write: int = 0,
    write_1h: int = 0,
    reasoning: int = 0,
) -> TokenUsage:
    return TokenUsage(
        input_tokens=input,
        output_tokens=output,
        cache_read_tokens=cached,
        cache_write_tokens=write,
        cache_write_1h_tokens=write_1h,
        reasoning_tokens=reasoning,
    )


def genai_usage(tokens: TokenUsage) -> Usage:
    """The same call in genai-prices' vocabulary, written out independently of tokenops.pricing."""
    values = {"input_tokens": tokens.input_tokens, "output_tokens": tokens.output_tokens}
    if tokens.cache_read_tokens:
        values["cache_read_tokens"] = tokens.cache_read_tokens
    if tokens.cache_write_tokens:
        values["cache_write_tokens"] = tokens.cache_write_tokens
    if tokens.cache_write_1h_tokens:
        values["cache_write_1h_tokens"] = tokens.cache_write_1h_tokens
    if tokens.reasoning_tokens:
        values["output_reasoning_tokens"] = tokens.reasoning_tokens
    return Usage(**values)


@dataclass(frozen=True)
class Case:
    model: str
    provider: str | None
    tokens: TokenUsage
    ts: datetime = NOW
    batch: bool = False
    service_tier: str | None = None


PLAIN = usage(1_000, 500)
CACHED = usage(10_000, 1_000, cached=6_000)
CACHE_WRITES = usage(10_000, 1_000, cached=6_000, write=2_000, write_1h=500)
REASONING = usage(5_000, 8_000, reasoning=6_000)
LONG = usage(250_000, 2_000, cached=100_000, write=20_000, write_1h=5_000)
LONG_CACHED_READS = usage(300_000, 4_000, cached=120_000)
AT_TIER = usage(200_000, 1_000)
OVER_TIER = usage(200_001, 1_000)

CASES: dict[str, Case] = {
    # OpenAI: cached reads, reasoning, batch, service tiers, a long-context tier, a historic price
    "openai/gpt-4o": Case("gpt-4o", "openai", PLAIN),
    "openai/gpt-4o cached": Case("gpt-4o", "openai", CACHED),
    "openai/gpt-4o cache writes (no write price: billed as input)": Case("gpt-4o", "openai", CACHE_WRITES),
    "openai/gpt-4o batch": Case("gpt-4o", "openai", CACHED, batch=True),
    "openai/gpt-4o batch before batch prices were listed": Case("gpt-4o", "openai", PLAIN, EARLY_2025, batch=True),
    "openai/gpt-4o priority": Case("gpt-4o", "openai", CACHED, service_tier="priority"),
    "openai/gpt-4o-2024-08-06 dated alias": Case("gpt-4o-2024-08-06", "openai", PLAIN),
    "openai/gpt-4o-mini cached": Case("gpt-4o-mini", "openai", CACHED),
    "openai/gpt-4.1 batch": Case("gpt-4.1", "openai", PLAIN, batch=True),
    "openai/o3 reasoning before price cut": Case("o3", "openai", REASONING, EARLY_2025),
    "openai/o3 reasoning after price cut": Case("o3", "openai", REASONING),
    "openai/o3 flex": Case("o3", "openai", REASONING, service_tier="flex"),
    "openai/o4-mini reasoning cached": Case("o4-mini", "openai", usage(20_000, 3_000, cached=15_000, reasoning=2_000)),
    "openai/gpt-5 batch cached": Case("gpt-5", "openai", CACHED, batch=True),
    "openai/gpt-5.4 below 272k": Case("gpt-5.4", "openai", usage(272_000, 1_000, cached=100_000)),
    "openai/gpt-5.4 above 272k": Case("gpt-5.4", "openai", usage(272_001, 1_000, cached=100_000)),
    "openai/gpt-5.4 batch above 272k": Case("gpt-5.4", "openai", LONG_CACHED_READS, batch=True),
    # Anthropic: 5m and 1h cache writes, >200k tier, batch, a price that changed over time
    "anthropic/claude-sonnet-4-5 cache writes": Case("claude-sonnet-4-5", "anthropic", CACHE_WRITES),
    "anthropic/claude-sonnet-4-5 at 200k": Case("claude-sonnet-4-5", "anthropic", AT_TIER),
    "anthropic/claude-sonnet-4-5 over 200k": Case("claude-sonnet-4-5", "anthropic", OVER_TIER),
    "anthropic/claude-sonnet-4-5 long with cache writes": Case("claude-sonnet-4-5", "anthropic", LONG),
    "anthropic/claude-sonnet-4-5 batch": Case("claude-sonnet-4-5", "anthropic", CACHE_WRITES, batch=True),
    "anthropic/claude-sonnet-4-5 batch long": Case("claude-sonnet-4-5", "anthropic", LONG, batch=True),
    "anthropic/claude-sonnet-4-5-20250929": Case("claude-sonnet-4-5-20250929", "anthropic", CACHED),
    "anthropic/claude-opus-4-6 long, tiered era": Case(
        "claude-opus-4-6", "anthropic", LONG, datetime(2026, 3, 12, 23, 59, tzinfo=UTC)
    ),
    "anthropic/claude-opus-4-6 long, flat era": Case(
        "claude-opus-4-6", "anthropic", LONG, datetime(2026, 3, 13, tzinfo=UTC)
    ),
    "anthropic/claude-sonnet-4-6 long, tiered era": Case("claude-sonnet-4-6", "anthropic", LONG, EARLY_2025),
    "anthropic/claude-sonnet-4-6 long, flat era": Case("claude-sonnet-4-6", "anthropic", LONG),
    "anthropic/claude-haiku-4-5 batch cache writes": Case("claude-haiku-4-5", "anthropic", CACHE_WRITES, batch=True),
    "anthropic/claude-3-5-haiku 1h writes": Case(
        "claude-3-5-haiku-latest", "anthropic", usage(8_000, 400, write=8_000, write_1h=8_000)
    ),
    "anthropic/claude-opus-4-1 cached": Case("claude-opus-4-1", "anthropic", CACHE_WRITES),
    # Google: long-context tiers and batch
    "google/gemini-2.5-pro": Case("gemini-2.5-pro", "google", CACHED),
    "google/gemini-2.5-pro over 200k": Case("gemini-2.5-pro", "google", LONG_CACHED_READS),
    "google/gemini-2.5-pro reasoning": Case("gemini-2.5-pro", "google", REASONING),
    "google/gemini-2.5-pro batch over 200k": Case("gemini-2.5-pro", "google", LONG_CACHED_READS, batch=True),
    "google/gemini-2.5-flash cached": Case("gemini-2.5-flash", "google", CACHED),
    "google/gemini-2.5-flash batch": Case("gemini-2.5-flash", "google", CACHED, batch=True),
    "google/gemini-3-pro-preview over 200k": Case("gemini-3-pro-preview", "google", LONG_CACHED_READS),
    "google/claude-sonnet-4-5 on Vertex": Case("claude-sonnet-4-5", "google", CACHE_WRITES),
    # Mistral: historic prices and batch
    "mistral/mistral-large-latest": Case("mistral-large-latest", "mistral", PLAIN),
    "mistral/mistral-small-latest old price": Case("mistral-small-latest", "mistral", PLAIN, EARLY_2025),
    "mistral/mistral-small-latest new price": Case("mistral-small-latest", "mistral", CACHED),
    "mistral/mistral-medium-latest batch": Case("mistral-medium-latest", "mistral", CACHED, batch=True),
    # DeepSeek: prices by time of day
    "deepseek/deepseek-chat peak": Case("deepseek-chat", "deepseek", CACHED),
    "deepseek/deepseek-chat off-peak": Case("deepseek-chat", "deepseek", CACHED, EVENING),
    "deepseek/deepseek-reasoner reasoning": Case("deepseek-reasoner", "deepseek", REASONING),
    "deepseek/deepseek-v4-pro": Case("deepseek-v4-pro", "deepseek", CACHED),
    # xAI: a tier starting at 199,999, a price cut, batch
    "x-ai/grok-4.20 at 199,999": Case("grok-4.20", "x-ai", usage(199_999, 1_000)),
    "x-ai/grok-4.20 at 200,000": Case("grok-4.20", "x-ai", AT_TIER),
    "x-ai/grok-4.20 before price cut": Case("grok-4.20", "x-ai", LONG_CACHED_READS, EARLY_2025),
    "x-ai/grok-4.20 batch": Case("grok-4.20", "x-ai", LONG_CACHED_READS, batch=True),
    "x-ai/grok-3 cached": Case("grok-3", "x-ai", CACHED),
    "x-ai/grok-4 alias": Case("grok-4", "x-ai", REASONING),
    # Azure: OpenAI and Anthropic prices borrowed through fallback_model_providers
    "azure/gpt-4o": Case("gpt-4o", "azure", CACHED),
    "azure/gpt-4o batch (variants not borrowed)": Case("gpt-4o", "azure", CACHED, batch=True),
    "azure/claude-sonnet-4-5 long": Case("claude-sonnet-4-5", "azure", LONG),
    # AWS Bedrock
    "aws/amazon.nova-pro cached": Case("amazon.nova-pro-v1:0", "aws", CACHED),
    "aws/claude-sonnet-4-5 cache writes": Case("global.anthropic.claude-sonnet-4-5-20250929-v1:0", "aws", CACHE_WRITES),
    "aws/llama-3.3-70b": Case("meta.llama3-3-70b-instruct-v1:0", "aws", PLAIN),
    # Groq
    "groq/gpt-oss-120b cached": Case("openai/gpt-oss-120b", "groq", CACHED),
    "groq/gpt-oss-120b batch": Case("openai/gpt-oss-120b", "groq", CACHED, batch=True),
    "groq/llama-3.3-70b-versatile": Case("llama-3.3-70b-versatile", "groq", PLAIN),
    # Perplexity: a per-request fee and separately priced reasoning tokens
    "perplexity/sonar request fee": Case("sonar", "perplexity", PLAIN),
    "perplexity/sonar-deep-research reasoning": Case("sonar-deep-research", "perplexity", REASONING),
    # Provider left for genai-prices to guess; and a call that used no tokens
    "guessed/gpt-4o": Case("gpt-4o", None, CACHED),
    "guessed/claude-sonnet-4-5": Case("claude-sonnet-4-5", None, LONG),
    "guessed/gemini-2.5-pro": Case("gemini-2.5-pro", None, LONG_CACHED_READS),
    "openai/gpt-4o zero tokens": Case("gpt-4o", "openai", TokenUsage()),
}


@pytest.fixture(scope="module")
def pricer() -> Pricer:
    # one Pricer for every case, so cached lookups are exercised across models, dates and variants
    return Pricer()


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_costs_equal_genai_prices_calc_price(pricer: Pricer, case: Case) -> None:
    context: dict[str, str] = {}
    if case.batch:
        context["processing"] = "batch"
    if case.service_tier:
        context["service_tier"] = case.service_tier
    expected = calc_price(
        genai_usage(case.tokens),
        case.model,
        provider_id=case.provider,
        genai_request_timestamp=case.ts,
        price_context=context or None,
    )

    result = pricer.price(
        case.model, case.tokens, provider=case.provider, ts=case.ts, batch=case.batch, service_tier=case.service_tier
    )

    assert isinstance(result, Priced), result
    cost = result.cost
    assert cost.input + cost.cache_read + cost.cache_write + cost.output + cost.other == expected.total_price
    assert cost.total == expected.total_price
    assert cost.input + cost.cache_read + cost.cache_write == expected.input_price
    assert cost.output == expected.output_price
    assert sum((line.amount for line in result.lines), Decimal(0)) == expected.total_price
    for component in ("input", "cache_read", "cache_write", "output", "other"):
        lines = [line.amount for line in result.lines if line.component == component]
        assert sum(lines, Decimal(0)) == getattr(cost, component)


def test_parity_cases_span_providers_and_features() -> None:
    assert len(CASES) >= 50
    providers = {case.provider for case in CASES.values()}
    assert {"openai", "anthropic", "google", "mistral", "deepseek", "x-ai", "azure", "aws", "groq"} <= providers


def test_every_listed_model_matches_genai_prices() -> None:
    """A sweep over the whole bundled snapshot: every model of every provider, standard and batch."""
    pricer = Pricer()
    tokens = usage(250_000, 3_000, cached=100_000, write=20_000, write_1h=5_000, reasoning=1_000)
    compared = 0
    for provider in data_snapshot.get_snapshot().providers:
        for model in provider.models:
            for batch in (False, True):
                try:
                    expected = calc_price(
                        genai_usage(tokens),
                        model.id,
                        provider_id=provider.id,
                        genai_request_timestamp=NOW,
                        price_context={"processing": "batch"} if batch else None,
                    )
                except LookupError:  # a few ids do not match their own model's match rule
                    assert isinstance(pricer.price(model.id, tokens, provider=provider.id, ts=NOW), Unpriced)
                    continue
                result = pricer.price(model.id, tokens, provider=provider.id, ts=NOW, batch=batch)
                assert isinstance(result, Priced), (provider.id, model.id, result)
                assert result.cost.total == expected.total_price, (provider.id, model.id, batch)
                compared += 1
    assert compared > 2_000


# -- worked out by hand --------------------------------------------------------------------------


def test_gpt_4o_thousand_in_five_hundred_out_costs_three_quarters_of_a_cent() -> None:
    result = Pricer().price("gpt-4o", usage(1_000, 500), provider="openai", ts=NOW)

    assert isinstance(result, Priced)
    # 1,000 x $2.50/MTok = $0.0025; 500 x $10/MTok = $0.005
    assert result.cost.input == Decimal("0.0025")
    assert result.cost.output == Decimal("0.005")
    assert result.cost.total == Decimal("0.0075")
    assert result.source == "genai-prices:openai/gpt-4o"
    assert result.notes == ()


def test_claude_cache_reads_and_5m_and_1h_cache_writes() -> None:
    tokens = usage(10_000, 1_000, cached=6_000, write=2_000, write_1h=500)

    result = Pricer().price("claude-sonnet-4-5", tokens, provider="anthropic", ts=NOW)

    assert isinstance(result, Priced)
    assert result.cost.input == Decimal("0.006")  # 2,000 uncached x $3/MTok
    assert result.cost.cache_read == Decimal("0.0018")  # 6,000 x $0.30/MTok
    assert result.cost.cache_write == Decimal("0.008625")  # 1,500 x $3.75 + 500 x $6 (1h) per MTok
    assert result.cost.output == Decimal("0.015")  # 1,000 x $15/MTok
    assert result.cost.total == Decimal("0.031425")
    counts = {line.unit: line.count for line in result.lines}
    assert counts == {
        "input_tokens": 2_000,
        "cache_read_tokens": 6_000,
        "cache_write_tokens": 1_500,
        "cache_write_1h_tokens": 500,
        "output_tokens": 1_000,
    }


def test_batch_call_costs_half_once_batch_prices_are_listed() -> None:
    pricer = Pricer()

    batch = pricer.price("gpt-4o", usage(1_000, 500), provider="openai", ts=NOW, batch=True)
    before = pricer.price("gpt-4o", usage(1_000, 500), provider="openai", ts=EARLY_2025, batch=True)

    assert isinstance(batch, Priced) and isinstance(before, Priced)
    assert batch.cost.total == Decimal("0.00375")  # 1,000 x $1.25 + 500 x $5 per MTok
    assert batch.source == "genai-prices:openai/gpt-4o+batch"
    assert before.cost.total == Decimal("0.0075")
    assert before.source == "genai-prices:openai/gpt-4o"
    assert before.notes == ("no 'batch' price listed for openai/gpt-4o on 2025-03-01; charged at the standard price",)


def test_borrowed_prices_do_not_take_the_owners_batch_discount() -> None:
    result = Pricer().price("gpt-4o", usage(1_000, 500), provider="azure", ts=NOW, batch=True)

    assert isinstance(result, Priced)
    assert result.cost.total == Decimal("0.0075")
    assert result.source == "genai-prices:azure/gpt-4o"
    assert "genai-prices does not apply another provider's variants" in result.notes[0]


def test_crossing_the_200k_tier_reprices_every_token() -> None:
    pricer = Pricer()

    at = pricer.price("claude-sonnet-4-5", usage(200_000, 1_000), provider="anthropic", ts=NOW)
    over = pricer.price("claude-sonnet-4-5", usage(200_001, 1_000), provider="anthropic", ts=NOW)

    assert isinstance(at, Priced) and isinstance(over, Priced)
    assert at.cost.total == Decimal("0.615")  # 200,000 x $3 + 1,000 x $15 per MTok
    assert over.cost.total == Decimal("1.222506")  # 200,001 x $6 + 1,000 x $22.50 per MTok
    assert [line.tier_start for line in at.lines] == [None, None]
    assert [line.tier_start for line in over.lines] == [200_000, 200_000]


def test_gemini_long_context_tier() -> None:
    result = Pricer().price("gemini-2.5-pro", usage(250_000, 1_000), provider="google", ts=NOW)

    assert isinstance(result, Priced)
    assert result.cost.total == Decimal("0.64")  # 250,000 x $2.50 + 1,000 x $15 per MTok


def test_historic_price_follows_the_call_time() -> None:
    pricer = Pricer()
    tokens = usage(1_000_000, 100_000)

    before = pricer.price("o3", tokens, provider="openai", ts=datetime(2025, 6, 9, 23, 59, tzinfo=UTC))
    after = pricer.price("o3", tokens, provider="openai", ts=datetime(2025, 6, 10, tzinfo=UTC))

    assert isinstance(before, Priced) and isinstance(after, Priced)
    assert before.cost.total == Decimal("14")  # $10 + 100,000 x $40/MTok
    assert after.cost.total == Decimal("2.8")  # $2 + 100,000 x $8/MTok


def test_off_peak_price_follows_the_time_of_day() -> None:
    pricer = Pricer()

    peak = pricer.price("deepseek-chat", usage(1_000_000, 1_000_000), provider="deepseek", ts=NOW)
    off_peak = pricer.price("deepseek-chat", usage(1_000_000, 1_000_000), provider="deepseek", ts=EVENING)

    assert isinstance(peak, Priced) and isinstance(off_peak, Priced)
    assert peak.cost.total == Decimal("1.37")  # $0.27 + $1.10
    assert off_peak.cost.total == Decimal("0.685")  # $0.135 + $0.55


def test_separately_priced_reasoning_and_a_request_fee() -> None:
    pricer = Pricer()

    research = pricer.price("sonar-deep-research", usage(1_000, 5_000, reasoning=3_000), provider="perplexity", ts=NOW)
    sonar = pricer.price("sonar", usage(1_000, 500), provider="perplexity", ts=NOW)

    assert isinstance(research, Priced) and isinstance(sonar, Priced)
    # 1,000 x $2 + 2,000 x $8 (visible output) + 3,000 x $3 (reasoning) per MTok
    assert research.cost.total == Decimal("0.027")
    assert research.cost.output == Decimal("0.025")
    # 1,000 x $1 + 500 x $1 per MTok, plus $12 per 1,000 requests
    assert sonar.cost.other == Decimal("0.012")
    assert sonar.cost.total == Decimal("0.0135")


# -- unknown models --------------------------------------------------------------------------------


def test_unknown_model_is_unpriced_with_a_fix() -> None:
    result = Pricer().price("acme-llm-7b", usage(1_000, 500), provider="acme", ts=NOW)

    assert result == Unpriced(
        "No price for model 'acme-llm-7b' from 'acme'; add an override in tokenops.toml: "
        "[[pricing.overrides]] model = 'acme-llm-7b' with input_mtok and output_mtok "
        "(or gpu_hour_usd and tokens_per_gpu_hour)"
    )
    assert result.source == "unpriced"


def test_known_model_from_an_unknown_provider_says_where_it_is_listed() -> None:
    result = Pricer().price("gpt-4o", usage(1_000, 500), provider="acme-cloud", ts=NOW)

    assert isinstance(result, Unpriced)
    assert "'gpt-4o' from 'acme-cloud' (genai-prices lists it from 'openai')" in result.reason


@pytest.mark.parametrize("model", ["", "   "])
def test_a_call_without_a_model_name_is_unpriced(model: str) -> None:
    assert isinstance(Pricer().price(model, usage(1_000, 500), provider="openai", ts=NOW), Unpriced)
    assert isinstance(Pricer().price(model, usage(1_000, 500), ts=NOW), Unpriced)


def test_service_tier_price_and_a_tier_that_changes_nothing() -> None:
    pricer = Pricer()

    flex = pricer.price("o3", usage(1_000_000, 100_000), provider="openai", ts=NOW, service_tier="flex")
    default = pricer.price("o3", usage(1_000_000, 100_000), provider="openai", ts=NOW, service_tier="default")
    unknown = pricer.price("o3", usage(1_000_000, 100_000), provider="openai", ts=NOW, service_tier="turbo")

    assert isinstance(flex, Priced) and isinstance(default, Priced) and isinstance(unknown, Priced)
    assert flex.cost.total == Decimal("1.4")  # $1 + 100,000 x $4/MTok
    assert flex.source == "genai-prices:openai/o3+flex"
    assert default.cost.total == Decimal("2.8")
    assert (default.source, default.notes) == ("genai-prices:openai/o3", ())
    assert unknown.cost.total == Decimal("2.8")
    assert unknown.notes == ("no 'turbo' price listed for openai/o3 on 2026-11-02; charged at the standard price",)
