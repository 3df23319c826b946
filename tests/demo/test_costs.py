from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import numpy as np
import pyarrow as pa
import pytest

from tokenops.demo import costs
from tokenops.demo.costs import FIELDS, build_rate_card, decimal_array
from tokenops.demo.org import MODELS
from tokenops.events import TokenUsage
from tokenops.pricing import Priced, Pricer


def test_decimal_array_holds_the_integers_as_pico_dollars() -> None:
    units = np.array([0, 1, 42, -7, 123_456_789_012_345, 999_999_999_999_999_999], dtype=np.int64)
    got = decimal_array(units).to_pylist()
    assert got == [Decimal(int(u)).scaleb(-12) for u in units]
    assert got[1] == Decimal("0.000000000001")
    assert got[2] == Decimal("0.000000000042")


def test_decimal_array_marks_nulls_and_supports_other_scales() -> None:
    valid = np.array([True, False, True])
    money = decimal_array(np.array([5, 6, 7]), valid)
    assert money.null_count == 1
    assert money.to_pylist() == [Decimal("5E-12"), None, Decimal("7E-12")]
    hours = decimal_array(np.array([1_500_000, 250_000]), type=pa.decimal128(12, 6))
    assert hours.to_pylist() == [Decimal("1.500000"), Decimal("0.250000")]


def test_rate_card_prices_like_pricer_on_every_model_across_a_price_change() -> None:
    # gemini-2.5-flash and gpt-4.1-mini get a batch price from 2026-10-14 in the bundled snapshot
    first = date(2026, 10, 1)
    card = build_rate_card(first, 30)
    pricer = Pricer()
    rnd = random.Random(3)
    checked = 0
    for m, spec in enumerate(MODELS):
        for batch in (False, True):
            for day in (0, 12, 13, 14, 29):
                inp = rnd.randint(1, costs.MAX_INPUT_TOKENS)
                read = rnd.randint(0, inp // 2)
                write = rnd.randint(0, inp // 3) if spec.caching == "explicit" else 0
                out = rnd.randint(0, 20_000)
                usage = TokenUsage(inp, read, write, write // 2, out, out // 3 if spec.reasoning else 0)
                counts = tuple(np.array([getattr(usage, f)]) for f in FIELDS)
                units, priced, source = card.cost_units(np.array([m * 2 + batch]), np.array([day]), counts)
                ts = datetime.combine(first + timedelta(days=day), datetime.min.time(), tzinfo=UTC)
                expected = pricer.price(spec.model, usage, provider=spec.provider, ts=ts, batch=batch)
                assert card.sources[source[0]] == expected.source
                if not isinstance(expected, Priced):
                    assert not priced[0]
                    continue
                c = expected.cost
                want = [c.input, c.cache_read, c.cache_write, c.output, c.other]
                assert [Decimal(int(u)).scaleb(-12) for u in units[:, 0]] == want, (spec.model, batch, day)
                checked += 1
    assert checked > 100


def test_rate_card_refuses_call_sizes_that_would_cross_a_long_context_tier(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(costs, "_EDGE", TokenUsage(250_000, 0, 0, 0, 1_000, 0))
    with pytest.raises(ValueError, match="long-context tier"):
        build_rate_card(date(2026, 10, 1), 1)


def test_private_models_are_unpriced_not_free() -> None:
    card = build_rate_card(date(2026, 10, 1), 2)
    private = [m for m, spec in enumerate(MODELS) if spec.provider == "self-hosted"]
    assert private
    for m in private:
        assert not card.priced[m * 2].any()
        assert card.sources[card.source[m * 2, 0]] == "unpriced"
    assert card.priced[[m * 2 for m, spec in enumerate(MODELS) if spec.provider != "self-hosted"]].all()
