"""Speed of `Pricer.price`, the gateway's per-call pricing, next to `genai_prices.calc_price`.

    .venv/bin/python bench/pricing.py [--calls 20000]

Not a test: numbers depend on the machine. Prices come from the bundled snapshot (no network).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial

from genai_prices import Usage, calc_price

from tokenops.events import TokenUsage
from tokenops.pricing import Pricer

TS = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
CASES: list[tuple[str, str, TokenUsage, bool]] = [
    ("gpt-4o", "openai", TokenUsage(input_tokens=1_234, cache_read_tokens=1_000, output_tokens=567), False),
    (
        "claude-sonnet-4-5",
        "anthropic",
        TokenUsage(
            input_tokens=250_000,
            cache_read_tokens=100_000,
            cache_write_tokens=20_000,
            cache_write_1h_tokens=5_000,
            output_tokens=2_000,
        ),
        False,
    ),
    ("gemini-2.5-pro", "google", TokenUsage(input_tokens=12_000, output_tokens=3_000, reasoning_tokens=1_000), True),
]


def per_call_us(fn: Callable[[], object], calls: int) -> float:
    for _ in range(calls // 10):
        fn()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=20_000)
    calls = parser.parse_args().calls
    pricer = Pricer()
    for model, provider, usage, batch in CASES:
        genai = Usage(
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cache_read_tokens=usage.cache_read_tokens,
            cache_write_tokens=usage.cache_write_tokens,
            cache_write_1h_tokens=usage.cache_write_1h_tokens,
            output_reasoning_tokens=usage.reasoning_tokens,
        )
        context = {"processing": "batch"} if batch else None
        ours = per_call_us(partial(pricer.price, model, usage, provider=provider, ts=TS, batch=batch), calls)
        theirs = per_call_us(
            partial(calc_price, genai, model, provider_id=provider, genai_request_timestamp=TS, price_context=context),
            calls,
        )
        label = f"{model}{' (batch)' if batch else ''}"
        print(f"{label:26} Pricer.price {ours:6.2f} us/call   genai_prices.calc_price {theirs:6.2f} us/call")


if __name__ == "__main__":
    main()
