"""`explain`: a call's cost line by line, adding up to what the ledger records."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from decimal import Decimal

from inline_snapshot import snapshot
from rich.console import Console

from tokenops.events import TokenUsage
from tokenops.pricing import Priced, PriceOverride, Pricer, Unpriced
from tokenops.pricing.explain import Row, breakdown, explain, render

NOW = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
LONG = TokenUsage(
    input_tokens=400_000,
    cache_read_tokens=100_000,
    cache_write_tokens=20_000,
    cache_write_1h_tokens=5_000,
    output_tokens=2_000,
)


def printed(renderable: object) -> str:
    out = io.StringIO()
    Console(file=out, width=160, color_system=None).print(renderable, highlight=False)
    return out.getvalue()


def test_long_context_call_line_by_line() -> None:
    result = Pricer().price("claude-sonnet-4-5", LONG, provider="anthropic", ts=NOW)

    assert explain(result, "claude-sonnet-4-5", LONG) == snapshot(
        [
            "claude-sonnet-4-5: 400,000 input tokens (100,000 cache read, 20,000 cache write, 5,000 of them 1h), "
            "2,000 output tokens",
            "  input (uncached)  280,000 tok x $6.00/MTok (tier >200k)  = $1.680000",
            "  cache read        100,000 tok x $0.60/MTok (tier >200k)  = $0.060000",
            "  cache write (5m)   15,000 tok x $7.50/MTok (tier >200k)  = $0.112500",
            "  cache write (1h)    5,000 tok x $12.00/MTok (tier >200k) = $0.060000",
            "  output              2,000 tok x $22.50/MTok (tier >200k) = $0.045000",
            "  total                                                    = $1.957500",
            "  source: genai-prices:anthropic/claude-sonnet-4-5",
        ]
    )


def test_breakdown_adds_up_to_the_recorded_cost() -> None:
    result = Pricer().price("claude-sonnet-4-5", LONG, provider="anthropic", ts=NOW)
    assert isinstance(result, Priced)

    info = breakdown(result, "claude-sonnet-4-5", LONG)

    assert info.total == result.cost.total == Decimal("1.9575")
    assert sum((row.amount for row in info.rows), Decimal(0)) == info.total
    assert info.rows[0] == Row(
        label="input (uncached)",
        count=Decimal(280_000),
        unit="tok",
        rate=Decimal(6),
        per_label="MTok",
        note="tier >200k",
        amount=Decimal("1.68"),
    )


def test_reasoning_batch_and_request_fee_lines() -> None:
    pricer = Pricer()
    research_usage = TokenUsage(input_tokens=1_000, output_tokens=5_000, reasoning_tokens=3_000)
    research = pricer.price("sonar-deep-research", research_usage, provider="perplexity", ts=NOW)
    sonar_usage = TokenUsage(input_tokens=1_000, output_tokens=500)
    sonar = pricer.price("sonar", sonar_usage, provider="perplexity", ts=NOW)
    batch_usage = TokenUsage(input_tokens=1_000, cache_read_tokens=400, output_tokens=500)
    batch = pricer.price("gpt-4o", batch_usage, provider="openai", ts=NOW, batch=True)

    assert explain(research, "sonar-deep-research", research_usage) == snapshot(
        [
            "sonar-deep-research: 1,000 input tokens, 5,000 output tokens (3,000 reasoning)",
            "  input               1,000 tok x $2.00/MTok = $0.002000",
            "  output              2,000 tok x $8.00/MTok = $0.016000",
            "  output (reasoning)  3,000 tok x $3.00/MTok = $0.009000",
            "  total                                      = $0.027000",
            "  source: genai-prices:perplexity/sonar-deep-research",
        ]
    )
    assert explain(sonar, "sonar", sonar_usage)[1:5] == snapshot(
        [
            "  input        1,000 tok x $1.00/MTok            = $0.001000",
            "  output         500 tok x $1.00/MTok            = $0.000500",
            "  request fee      1 request x $12.00/K requests = $0.012000",
            "  total                                          = $0.013500",
        ]
    )
    assert explain(batch, "gpt-4o", batch_usage) == snapshot(
        [
            "gpt-4o: 1,000 input tokens (400 cache read), 500 output tokens",
            "  input (uncached)  600 tok x $1.25/MTok = $0.000750",
            "  cache read        400 tok x $1.25/MTok = $0.000500",
            "  output            500 tok x $5.00/MTok = $0.002500",
            "  total                                  = $0.003750",
            "  source: genai-prices:openai/gpt-4o+batch",
        ]
    )


def test_discount_and_gpu_hour_are_explained_in_notes() -> None:
    pricer = Pricer(
        [
            PriceOverride(model="gpt-4o", discount=Decimal("0.15"), name="contract"),
            PriceOverride(model="llama-internal", gpu_hour_usd=Decimal("2.50"), tokens_per_gpu_hour=3_600_000),
        ]
    )
    tokens = TokenUsage(input_tokens=1_000, output_tokens=500)

    discounted = explain(pricer.price("gpt-4o", tokens, provider="openai", ts=NOW), "gpt-4o", tokens)
    self_hosted = explain(pricer.price("llama-internal", tokens, ts=NOW), "llama-internal", tokens)

    assert discounted[1:] == snapshot(
        [
            "  input   1,000 tok x $2.125/MTok = $0.002125",
            "  output    500 tok x $8.50/MTok  = $0.004250",
            "  total                           = $0.006375",
            "  source: genai-prices:openai/gpt-4o-15%:contract",
            "  note: 15% off the list price (override 'contract')",
        ]
    )
    # $2.50 / 3.6M tokens recurs: rates and amounts are shown rounded, the ledger keeps 28 digits
    assert self_hosted[1:] == snapshot(
        [
            "  input   1,000 tok x $0.694444/MTok = $0.0006944444",
            "  output    500 tok x $0.694444/MTok = $0.0003472222",
            "  total                              = $0.0010416667",
            "  source: override:llama-internal",
            "  note: self-hosted: $2.50 per GPU-hour at 3,600,000 tokens per GPU-hour (override 'llama-internal')",
        ]
    )


def test_batch_price_not_listed_is_called_out() -> None:
    tokens = TokenUsage(input_tokens=1_000, output_tokens=500)
    result = Pricer().price("gpt-4o", tokens, provider="openai", ts=datetime(2025, 3, 1, tzinfo=UTC), batch=True)

    assert explain(result, "gpt-4o", tokens)[-1] == (
        "  note: no 'batch' price listed for openai/gpt-4o on 2025-03-01; charged at the standard price"
    )


def test_unpriced_call_says_why_and_never_shows_zero() -> None:
    tokens = TokenUsage(input_tokens=1_000, output_tokens=500)
    result = Pricer().price("acme-llm", tokens, provider="acme", ts=NOW)
    assert isinstance(result, Unpriced)

    lines = explain(result, "acme-llm", tokens)

    assert lines == [
        "acme-llm: 1,000 input tokens, 500 output tokens",
        f"  unpriced: {result.reason}",
    ]
    assert breakdown(result, "acme-llm", tokens).total is None
    assert "$0" not in "\n".join(lines)


def test_lines_print_verbatim_through_rich() -> None:
    tokens = TokenUsage(input_tokens=1_000, output_tokens=500)
    result = Pricer().price("acme-llm", tokens, provider="acme", ts=NOW)

    out = "".join(printed(line) for line in explain(result, "acme-llm", tokens))

    assert "[[pricing.overrides]] model = 'acme-llm'" in out


def test_rich_table_shows_every_line_and_the_total() -> None:
    result = Pricer().price("claude-sonnet-4-5", LONG, provider="anthropic", ts=NOW)

    out = printed(render(result, "claude-sonnet-4-5", LONG))

    for text in ("cache write (1h)", "5,000 tok", "$12.00/MTok", "tier >200k", "$1.957500", "source: genai-prices"):
        assert text in out


def test_rich_render_of_an_unpriced_call() -> None:
    tokens = TokenUsage(input_tokens=1_000, output_tokens=500)
    result = Pricer().price("acme-llm", tokens, provider="acme", ts=NOW)

    out = printed(render(result, "acme-llm", tokens))

    assert "unpriced: No price for model 'acme-llm' from 'acme'" in out
    assert "[[pricing.overrides]]" in out
