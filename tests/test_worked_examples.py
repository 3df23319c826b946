"""The numbers quoted in tokenops' docs, as test vectors: each is computed by hand here.

(a) "a 12-call agent workflow of 180,000 tokens", priced call by call;
(b) Team A / Team B: 20 employees x 15 h/month x $65/h = $19,500 of labour value on $10,000
    of AI spend = 95% return.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from tokenops.analytics.yield_ import cost_per_hour_saved, labour_value, roi_pct, team_yield, yield_ratio
from tokenops.events import Cost, TokenUsage
from tokenops.pricing import Priced, Pricer

TS = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)

# -- (a) a 12-call agent workflow of 180,000 tokens ------------------------------------------------
#
# An agent loop whose context grows by 1,000 tokens per iteration (the previous step's tool result
# is appended): call i sends 8,000 + 1,000 x (i - 1) input tokens and writes 1,500 output tokens.
AGENT_INPUT = [8_000, 9_000, 10_000, 11_000, 12_000, 13_000, 14_000, 15_000, 16_000, 17_000, 18_000, 19_000]
AGENT_OUTPUT = [1_500] * 12
# sum(input) = 12 x 8,000 + 1,000 x (0 + 1 + ... + 11) = 96,000 + 66,000 = 162,000
# sum(output) = 12 x 1,500 = 18,000                      -> 180,000 tokens in 12 calls


def agent_calls() -> list[TokenUsage]:
    return [TokenUsage(input_tokens=i, output_tokens=o) for i, o in zip(AGENT_INPUT, AGENT_OUTPUT, strict=True)]


def agent_calls_with_prompt_caching() -> list[TokenUsage]:
    """The same loop with Anthropic prompt caching: each call re-reads the previous prompt from
    the cache and writes only what is new (call 1 writes its whole 8,000-token prompt)."""
    calls = [TokenUsage(input_tokens=8_000, cache_write_tokens=8_000, output_tokens=1_500)]
    for previous, current in zip(AGENT_INPUT, AGENT_INPUT[1:], strict=False):
        calls.append(
            TokenUsage(
                input_tokens=current,
                cache_read_tokens=previous,
                cache_write_tokens=current - previous,
                output_tokens=1_500,
            )
        )
    return calls


def workflow_cost(model: str, provider: str, calls: list[TokenUsage]) -> Cost:
    pricer = Pricer()
    costs: list[Cost] = []
    for call in calls:
        result = pricer.price(model, call, provider=provider, ts=TS)
        assert isinstance(result, Priced), result
        costs.append(result.cost)
    return Cost(
        input=sum((c.input for c in costs), Decimal(0)),
        cache_read=sum((c.cache_read for c in costs), Decimal(0)),
        cache_write=sum((c.cache_write for c in costs), Decimal(0)),
        output=sum((c.output for c in costs), Decimal(0)),
        other=sum((c.other for c in costs), Decimal(0)),
    )


def test_agent_workflow_is_12_calls_of_180000_tokens() -> None:
    calls = agent_calls()

    assert len(calls) == 12
    assert sum(call.input_tokens for call in calls) == 162_000
    assert sum(call.output_tokens for call in calls) == 18_000
    assert sum(call.total_tokens for call in calls) == 180_000
    assert sum(call.total_tokens for call in agent_calls_with_prompt_caching()) == 180_000


def test_agent_workflow_on_gpt_4o() -> None:
    cost = workflow_cost("gpt-4o", "openai", agent_calls())

    # input:  162,000 x $2.50/MTok = $0.405
    # output:  18,000 x $10.00/MTok = $0.18
    assert cost.input == Decimal("0.405")
    assert cost.output == Decimal("0.18")
    assert cost.total == Decimal("0.585")


def test_agent_workflow_on_claude_sonnet_4_5_with_prompt_caching() -> None:
    calls = agent_calls_with_prompt_caching()
    assert sum(call.cache_read_tokens for call in calls) == 143_000  # 8,000 + 9,000 + ... + 18,000
    assert sum(call.cache_write_tokens for call in calls) == 19_000  # 8,000 + 11 x 1,000
    assert sum(call.uncached_input_tokens for call in calls) == 0

    cost = workflow_cost("claude-sonnet-4-5", "anthropic", calls)

    # cache read:  143,000 x $0.30/MTok = $0.0429
    # cache write:  19,000 x $3.75/MTok = $0.07125
    # output:       18,000 x $15/MTok   = $0.27
    assert cost.input == 0
    assert cost.cache_read == Decimal("0.0429")
    assert cost.cache_write == Decimal("0.07125")
    assert cost.output == Decimal("0.27")
    assert cost.total == Decimal("0.38415")
    # without caching: 162,000 x $3 + 18,000 x $15 per MTok = $0.486 + $0.27 = $0.756
    assert workflow_cost("claude-sonnet-4-5", "anthropic", agent_calls()).total == Decimal("0.756")


# -- (b) Team A / Team B -----------------------------------------------------------------------------


def test_team_a_labour_value_returns_95_percent_on_ai_spend() -> None:
    value = labour_value(20, Decimal(15), Decimal(65))
    ai_cost = Decimal(10_000)

    assert value == Decimal(19_500)  # 20 people x 15 h/month x $65/h
    assert yield_ratio(value, ai_cost) == Decimal("1.95")
    assert roi_pct(value, ai_cost) == Decimal(95)  # ($19,500 - $10,000) / $10,000 x 100
    assert cost_per_hour_saved(ai_cost, Decimal(300)) == Decimal(10_000) / Decimal(300)  # $33.33 per hour
    assert team_yield(20, Decimal(15), Decimal(65), ai_cost).roi_pct == Decimal(95)


def test_team_b_same_spend_fewer_hours_saved_loses_money() -> None:
    # Team B (illustrative): the same $10,000 of spend, but 8 people x 10 h/month x $80/h = $6,400
    team_b = team_yield(8, Decimal(10), Decimal(80), Decimal(10_000))

    assert team_b.hours_saved == Decimal(80)
    assert team_b.value == Decimal(6_400)
    assert team_b.ratio == Decimal("0.64")
    assert team_b.roi_pct == Decimal(-36)
    assert team_b.cost_per_hour_saved == Decimal(125)


def test_yield_without_spend_or_saved_hours_is_undefined_not_zero() -> None:
    assert yield_ratio(Decimal(100), Decimal(0)) is None
    assert roi_pct(Decimal(100), Decimal(0)) is None
    assert cost_per_hour_saved(Decimal(100), Decimal(0)) is None
