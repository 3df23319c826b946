"""Exact list prices for millions of generated calls: the same answer as `Pricer`, in int64.

Ledger money is DECIMAL(18,12), an integer count of 1e-12 USD ("pico-dollars"). List prices are
USD per million tokens with at most six decimals, so one token costs a whole number of
pico-dollars and a call's cost is an integer dot product of its token counts with a rate matrix.

The rates are not read out of genai-prices' internals: they are measured through the public
`Pricer` with probe calls (one per token field, finite differences), so whatever genai-prices
does with a field (cache writes billed as input when a model has no cache-write price,
reasoning billed as output ...) is reproduced exactly, and a rate that is not a whole number of
pico-dollars, a per-request fee or a long-context tier within the demo's call sizes is refused
with an error instead of being approximated. Prices are measured per day, because list prices
and batch discounts have start dates.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import numpy as np
import pyarrow as pa

from tokenops.demo.org import MODELS, ModelSpec
from tokenops.events import Cost, TokenUsage
from tokenops.pricing import Priced, Pricer
from tokenops.store.schema import MONEY_ARROW

FIELDS: tuple[str, ...] = (
    "input_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "output_tokens",
    "reasoning_tokens",
)
COMPONENTS: tuple[str, ...] = ("input", "cache_read", "cache_write", "output", "other")
PICO = 10**12
MAX_INPUT_TOKENS = 180_000
"""Largest prompt the demo generates: below the 200k long-context tier of Claude and Gemini Pro."""
MAX_OUTPUT_TOKENS = 64_000
"""Largest answer the demo generates."""

# odd counts so that a price change on any field changes the probe's cost
_PROBE = TokenUsage(23_457, 3_109, 2_003, 1_001, 4_111, 1_337)
_DELTA = 1_000
_EDGE = TokenUsage(MAX_INPUT_TOKENS, 90_000, 40_000, 20_000, MAX_OUTPUT_TOKENS, 32_000)


@dataclass(frozen=True, slots=True)
class RateCard:
    """Per-token prices of every (model, batch) on every day of a window.

    A price key is `model_index * 2 + batch`, with models indexed as in `org.MODELS`.
    """

    first_day: date
    """Day 0 of the window."""
    days: int
    """Days covered."""
    rates: np.ndarray
    """int64 [key, day, field, component]: pico-dollars per token of FIELDS[field] in COMPONENTS[component]."""
    priced: np.ndarray
    """bool [key, day]: whether the list price is known (False for private models)."""
    source: np.ndarray
    """int32 [key, day]: index into `sources` of the `price_source` to record."""
    sources: tuple[str, ...]
    """Distinct price sources."""
    distinct: np.ndarray
    """int64 [rate, field, component]: the distinct rate matrices among `rates` (a few dozen)."""
    rate_id: np.ndarray
    """int32 [key * days + day]: index into `distinct`."""

    @property
    def first_day_us(self) -> int:
        """Start of day 0 in microseconds since the Unix epoch."""
        return (self.first_day - date(1970, 1, 1)).days * 86_400_000_000

    def cost_units(
        self, key: np.ndarray, day: np.ndarray, counts: tuple[np.ndarray, ...]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Cost components of many calls in pico-dollars, plus their priced mask and source index.

        Args:
            key: Price key of each call.
            day: Day of the window of each call.
            counts: Token counts of each call, one array per name in FIELDS.

        Returns:
            (int64 [5, n] cost per component, bool [n] priced, int32 [n] source index).
        """
        flat = key.astype(np.int64) * self.days + day
        # gather from the distinct rate matrices (a few dozen), not from the whole [key, day] grid
        distinct, rate_id = self.distinct, self.rate_id[flat]
        units = np.zeros((len(COMPONENTS), len(flat)), dtype=np.int64)
        for f, count in enumerate(counts):
            for c in range(len(COMPONENTS)):
                column = distinct[:, f, c]
                if column.any():
                    units[c] += count * column[rate_id]
        priced = self.priced.ravel()[flat]
        units[:, ~priced] = 0
        return units, priced, self.source.ravel()[flat]


def build_rate_card(first_day: date, days: int, pricer: Pricer | None = None) -> RateCard:
    """Measure the list price of every demo model, with and without batch, for each day of a window."""
    pricer = pricer or Pricer()
    keys = len(MODELS) * 2
    rates = np.zeros((keys, days, len(FIELDS), len(COMPONENTS)), dtype=np.int64)
    priced = np.zeros((keys, days), dtype=bool)
    source = np.zeros((keys, days), dtype=np.int32)
    sources: dict[str, int] = {}
    for m, spec in enumerate(MODELS):
        for batch in (False, True):
            key = m * 2 + batch
            last: tuple[Cost, str, np.ndarray] | None = None
            for d in range(days):
                ts = datetime.combine(first_day + timedelta(days=d), time(12), tzinfo=UTC)
                probe = pricer.price(spec.model, _PROBE, provider=spec.provider, ts=ts, batch=batch)
                source[key, d] = sources.setdefault(probe.source, len(sources))
                if not isinstance(probe, Priced):
                    continue
                priced[key, d] = True
                if last is None or (last[0], last[1]) != (probe.cost, probe.source):
                    last = (probe.cost, probe.source, _measure(pricer, spec, ts, batch, probe.cost))
                rates[key, d] = last[2]
    distinct, which = np.unique(rates.reshape(-1, len(FIELDS) * len(COMPONENTS)), axis=0, return_inverse=True)
    return RateCard(
        first_day,
        days,
        rates,
        priced,
        source,
        tuple(sources),
        distinct.reshape(-1, len(FIELDS), len(COMPONENTS)),
        which.reshape(-1).astype(np.int32),
    )


def _measure(pricer: Pricer, spec: ModelSpec, ts: datetime, batch: bool, probe_cost: Cost) -> np.ndarray:
    base = _pico(probe_cost, spec, "probe")
    matrix = np.zeros((len(FIELDS), len(COMPONENTS)), dtype=np.int64)
    for f, name in enumerate(FIELDS):
        bumped = replace(_PROBE, **{name: getattr(_PROBE, name) + _DELTA})
        result = pricer.price(spec.model, bumped, provider=spec.provider, ts=ts, batch=batch)
        assert isinstance(result, Priced), f"{spec.model!r} priced once but not twice"
        diff = _pico(result.cost, spec, name) - base
        if (diff % _DELTA).any():
            raise ValueError(f"{spec.model!r}: {name} does not cost a whole number of 1e-12 USD per token")
        matrix[f] = diff // _DELTA
    for usage, what in ((_PROBE, "a per-request fee"), (_EDGE, "a long-context tier below MAX_INPUT_TOKENS")):
        expected = np.array([getattr(usage, name) for name in FIELDS], dtype=np.int64) @ matrix
        result = pricer.price(spec.model, usage, provider=spec.provider, ts=ts, batch=batch)
        assert isinstance(result, Priced)
        if not np.array_equal(expected, _pico(result.cost, spec, "edge")):
            raise ValueError(f"{spec.model!r} has {what}; the demo's linear pricing cannot reproduce it")
    return matrix


def _pico(cost: Cost, spec: ModelSpec, what: str) -> np.ndarray:
    values = [cost.input, cost.cache_read, cost.cache_write, cost.output, cost.other]
    units = [v * PICO for v in values]
    if any(u != u.to_integral_value() for u in units):
        raise ValueError(f"{spec.model!r} ({what}): cost has more than 12 decimals")
    return np.array([int(u) for u in units], dtype=np.int64)


def decimal_array(units: np.ndarray, valid: np.ndarray | None = None, type: pa.DataType = MONEY_ARROW) -> pa.Array:
    """An Arrow decimal128 column whose unscaled integers are `units` (1e-12 USD for money).

    `pa.array(ints).cast(decimal)` would treat the integers as whole dollars, so the 128-bit
    two's-complement words are written directly: low word the value, high word its sign.
    """
    assert sys.byteorder == "little", "decimal128 buffers are little-endian"
    words = np.empty((len(units), 2), dtype=np.int64)
    words[:, 0] = units
    words[:, 1] = words[:, 0] >> 63
    buffers: list[pa.Buffer | None] = [None, pa.py_buffer(words)]
    null_count = 0
    if valid is not None and not valid.all():
        buffers[0] = pa.array(valid, type=pa.bool_()).buffers()[1]
        null_count = int(len(valid) - np.count_nonzero(valid))
    return pa.Array.from_buffers(type, len(units), buffers, null_count=null_count)


def units_to_decimal(units: int, scale: int = 12) -> Decimal:
    """One unscaled integer as a Decimal (for ground truth totals)."""
    return Decimal(units).scaleb(-scale)
