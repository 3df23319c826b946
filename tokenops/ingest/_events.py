"""Per-call logs of other tools as `usage_events` Arrow tables, priced exactly without pricing each row.

Importers of per-call logs (LiteLLM, Langfuse, Bedrock) parse each row into a plain tuple in
`ROW` order and hand a list of them to `EventTable.build`, which writes the ledger's columns
directly (no `UsageEvent` per row) and prices the whole batch with a `RateBook`.

A `RateBook` prices once per distinct (provider, model, batch, price period), not once per row.
List prices are USD per million tokens with at most six decimals, so one token costs a whole
number of 1e-12 USD (the ledger's money unit) and a call's cost is an integer dot product of
its token counts with a rate matrix. The matrix is measured through the public `Pricer` with
probe calls (finite differences, as `tokenops.demo.costs` does), so the result is exactly what
`Pricer.price` gives for that row, quantised to the ledger's 12 decimals. Whatever the probes
cannot reproduce falls back to `Pricer.price` per row: a rate that is not a whole number of
1e-12 USD per token (an override with an odd discount), and prompts above the size where a
long-context tier starts (found by bisection, per model).

A price period is a UTC day (genai-prices' start dates and tokenops' override validity are
days); for models with time-of-day prices (DeepSeek's off-peak hours) it is the longest slot
that divides every boundary of the day's windows.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
from genai_prices.types import TimeOfDateConstraint

from tokenops.events import Cost, TokenUsage
from tokenops.ingest._rows import MAX_MONEY, RowError, cost_problem, too_costly
from tokenops.pricing import Priced, Pricer
from tokenops.pricing.catalog import Catalog
from tokenops.store.schema import MONEY_ARROW, MONEY_QUANTUM, TABLES

ROW: tuple[str, ...] = (
    "request_id",
    "ts_us",
    "provider",
    "model",
    "model_requested",
    "operation",
    "input_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "output_tokens",
    "reasoning_tokens",
    "batch",
    "status",
    "error_type",
    "latency_ms",
    "ttft_ms",
    "api_key_id",
    "user_id",
    "team",
    "customer",
    "tags",
)
"""Order of the fields of a row tuple: ts_us is microseconds since the epoch (UTC), tags a dict or None."""

FIELDS = ROW[6:12]
COMPONENTS = ("input", "cache_read", "cache_write", "output", "other")
PICO = 10**12
DAY_US = 86_400_000_000
MINUTE_US = 60_000_000
BISECT_TOP = 1 << 24
"""Largest prompt the linear form is checked up to; bigger prompts are priced row by row."""
NOT_BILLED = "not-billed"
"""price_source of calls the provider did not bill (a proxy's cache hit), recorded at $0 as the gateway does."""

_EPOCH = datetime(1970, 1, 1)
_US = timedelta(microseconds=1)
_PROBE = TokenUsage(23_457, 3_109, 2_003, 1_001, 4_111, 1_337)  # odd counts: any rate change moves the cost
_DELTA = 1_000
_NEAR_LIMIT = 0.999e18
"""A cost bound (1e-12 USD, a float) below which a call's cost surely fits the ledger; above, it is checked exactly."""
_MAX_UNITS = int(MAX_MONEY.scaleb(12))
WHOLE = r"^[0-9]{0,18}$"
"""A count read in columns: up to 18 digits always fits int64; a longer one goes to the row path, which checks it."""
_SCHEMA = TABLES["usage_events"].arrow_schema


def parse_ts(text: str) -> int:
    """An ISO 8601 time (`Z`, an offset, or none meaning UTC) as microseconds since the epoch."""
    ts = datetime.fromisoformat(text)
    return ts_us(ts)


def ts_us(ts: datetime) -> int:
    """A datetime (naive means UTC) as microseconds since the epoch."""
    if ts.tzinfo is not None:
        ts = ts.astimezone(UTC).replace(tzinfo=None)
    return (ts - _EPOCH) // _US


def usage_problem(input_: int, cache_read: int, cache_write: int, output: int, reasoning: int) -> str | None:
    """Why these counts cannot be one call's usage (TokenUsage's rules), or None."""
    if cache_read + cache_write > input_:
        return (
            f"cached input tokens ({cache_read} read + {cache_write} written) exceed the {input_} input tokens; "
            "input must include cached tokens"
        )
    if reasoning > output:
        return f"reasoning tokens ({reasoning}) exceed the {output} output tokens"
    return None


@dataclass(frozen=True, slots=True)
class _Linear:
    """A price that is an integer dot product: cost = base + counts @ rates, in 1e-12 USD."""

    base: np.ndarray
    """int64 [component]: charged per call (per-request fees)."""
    rates: np.ndarray
    """int64 [field, component]: per token of each field."""
    limit: int
    """Largest input_tokens for which the dot product is exact (a long-context tier starts above)."""
    source: str
    """price_source to record."""


_Group = _Linear | str | None
"""A priced group's linear form, "unpriced", or None when every row needs `Pricer.price`."""
_UNKNOWN = object()


class RateBook:
    """Exact prices for columns of calls, memoised per (provider, model, batch, price period).

    One per import: it keeps what it measured for the whole run (a few entries per model and day).
    """

    def __init__(self, pricer: Pricer | None = None) -> None:
        self.pricer = pricer or Pricer()
        self._catalog = Catalog()
        self._slots: dict[tuple[str, str], int] = {}
        self._groups: dict[tuple[str, str, bool, int], _Group] = {}
        self._measured: dict[tuple[str, str, bool, Cost, str], _Linear | None] = {}

    def slot_us(self, provider: str, model: str) -> int:
        """Length of the periods a model's price is constant within: a day, or a time-of-day slot."""
        key = (provider, model)
        found = self._slots.get(key)
        if found is None:
            found = self._slots[key] = self._slot(provider, model)
        return found

    def _slot(self, provider: str, model: str) -> int:
        listed = self._catalog.find(model, provider or None)
        prices = listed.info.prices if listed is not None else None
        minutes = 1440
        for conditional in prices if isinstance(prices, list) else ():
            constraint = conditional.constraint
            if isinstance(constraint, TimeOfDateConstraint):
                for edge in (constraint.start_time, constraint.end_time):
                    aware = edge if edge.tzinfo is not None else edge.replace(tzinfo=UTC)
                    utc = datetime.combine(_EPOCH.date(), aware).astimezone(UTC)
                    minutes = math.gcd(minutes, utc.hour * 60 + utc.minute)
                    if utc.second or utc.microsecond:
                        minutes = 1
        return max(minutes, 1) * MINUTE_US

    def group(self, provider: str, model: str, batch: bool, start_us: int) -> _Group:
        """How calls in the period starting at `start_us` are priced (memoised)."""
        key = (provider, model, batch, start_us)
        known = self._groups.get(key, _UNKNOWN)  # one lookup: chunks are priced on two threads (`in_order`)
        if known is not _UNKNOWN:
            return known  # type: ignore[return-value]
        ts = datetime.fromtimestamp(start_us / 1e6, UTC)
        probe = self.pricer.price(model, _PROBE, provider=provider or None, ts=ts, batch=batch)
        found: _Group
        if not isinstance(probe, Priced):
            found = "unpriced"
        else:
            measured_key = (provider, model, batch, probe.cost, probe.source)
            if measured_key not in self._measured:
                self._measured[measured_key] = self._measure(provider, model, batch, ts, probe)
            found = self._measured[measured_key]
        if len(self._groups) > 100_000:  # a runaway of distinct model names: forget, do not grow
            self._groups.clear()
        self._groups[key] = found
        return found

    def _measure(self, provider: str, model: str, batch: bool, ts: datetime, probe: Priced) -> _Linear | None:
        def pico(usage: TokenUsage) -> np.ndarray | None:
            result = self.pricer.price(model, usage, provider=provider or None, ts=ts, batch=batch)
            if not isinstance(result, Priced) or result.source != probe.source:
                return None
            return cost_units(result.cost)

        base, at_probe = pico(TokenUsage()), cost_units(probe.cost)
        if base is None or at_probe is None:
            return None
        rates = np.zeros((len(FIELDS), len(COMPONENTS)), dtype=np.int64)
        for f, name in enumerate(FIELDS):
            bumped = pico(replace(_PROBE, **{name: getattr(_PROBE, name) + _DELTA}))
            if bumped is None or ((bumped - at_probe) % _DELTA).any():
                return None  # not a whole number of 1e-12 USD per token: price row by row
            rates[f] = (bumped - at_probe) // _DELTA
        linear = _Linear(base, rates, 0, probe.source)

        def exact(input_tokens: int) -> bool:
            usage = _scaled(input_tokens)
            measured = pico(usage)
            return measured is not None and np.array_equal(measured, _dot(linear, usage))

        if not exact(_PROBE.input_tokens):
            return None
        low, high = _PROBE.input_tokens, BISECT_TOP
        if exact(high):
            low = high
        while high - low > 1:  # the first prompt size priced differently: a long-context tier
            middle = (low + high) // 2
            low, high = (middle, high) if exact(middle) else (low, middle)
        return replace(linear, limit=low)

    def price(
        self, provider: pa.Array, model: pa.Array, batch: np.ndarray, ts: np.ndarray, counts: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray, dict[int, Decimal]]:
        """Costs of many calls.

        Args:
            provider: genai-prices provider id of each call ("" lets genai-prices guess).
            model: Model of each call.
            batch: bool [n], batch API calls.
            ts: int64 [n], microseconds since the epoch.
            counts: int64 [field, n], token counts in FIELDS order.

        Returns:
            (int64 [component, n] cost in 1e-12 USD, bool [n] priced, price sources, int32 [n] source index,
            {row: cost} of the calls whose cost the ledger cannot hold, their `units` meaningless).
        """
        encoded = pc.binary_join_element_wise(provider, model, "\x1f").dictionary_encode()
        pair = encoded.indices.to_numpy().astype(np.int64)
        names = [tuple(k.split("\x1f", 1)) for k in encoded.dictionary.to_pylist()]
        pair_slot = np.array([self.slot_us(p, m) for p, m in names], dtype=np.int64)
        # one int64 per row: (pair, batch) in the high bits, the index of its price period in the low 32
        keys = ((pair * 2 + batch) << 32) | (ts // pair_slot[pair])
        distinct, inverse = np.unique(keys, return_inverse=True)
        inverse = inverse.reshape(-1)
        groups = len(distinct)
        base = np.zeros((groups, len(COMPONENTS)), dtype=np.int64)
        rates = np.zeros((groups, len(FIELDS), len(COMPONENTS)), dtype=np.int64)
        limit = np.full(groups, -1, dtype=np.int64)  # -1: no linear form, every row by the Pricer
        priced = np.ones(groups, dtype=bool)
        sources: dict[str, int] = {}
        source = np.zeros(groups, dtype=np.int32)
        for g in range(groups):
            which = int(distinct[g] >> 32)
            p, m = names[which // 2]
            found = self.group(p, m, bool(which % 2), int(distinct[g] & 0xFFFFFFFF) * int(pair_slot[which // 2]))
            if isinstance(found, _Linear):
                base[g], rates[g], limit[g] = found.base, found.rates, found.limit
                source[g] = sources.setdefault(found.source, len(sources))
            elif found == "unpriced":
                priced[g] = False
                source[g] = sources.setdefault("unpriced", len(sources))
        units = base[inverse].T.copy()
        for f in range(len(FIELDS)):
            for c in range(len(COMPONENTS)):
                column = rates[:, f, c]
                if column.any():
                    units[c] += counts[f] * column[inverse]
        row_priced, row_source = priced[inverse], source[inverse]
        slow = row_priced & (counts[0] > limit[inverse])
        over = _over(base, rates, inverse, counts, row_priced & ~slow)
        for i in np.flatnonzero(slow).tolist():
            p, m = names[pair[i]]
            result = self.pricer.price(
                m,
                TokenUsage(*(int(c) for c in counts[:, i])),
                provider=p or None,
                ts=datetime.fromtimestamp(int(ts[i]) / 1e6, UTC),
                batch=bool(batch[i]),
            )
            row_source[i] = sources.setdefault(result.source, len(sources))
            if not isinstance(result, Priced):
                row_priced[i] = False
            elif cost_problem(result.cost) is None:
                units[:, i] = cost_units(result.cost)
            else:
                over[i] = result.cost.total
        units[:, ~row_priced] = 0
        return units, row_priced, list(sources), row_source, over


def _over(
    base: np.ndarray, rates: np.ndarray, inverse: np.ndarray, counts: np.ndarray, linear: np.ndarray
) -> dict[int, Decimal]:
    """{row: cost} of the `linear` rows whose cost the ledger cannot hold (their int64 dot product may wrap).

    A float bound finds the few rows that may come near the limit; only those are added up exactly.
    A cost that fits is exact in int64 even if a partial sum wrapped: the arithmetic is modulo 2^64.
    """
    bound = np.abs(base).sum(axis=1)[inverse].astype(np.float64)
    per_token = np.abs(rates).sum(axis=2).astype(np.float64)  # [group, field]
    for f in range(len(FIELDS)):
        column = per_token[:, f]
        if column.any():
            bound += counts[f] * column[inverse]
    over: dict[int, Decimal] = {}
    for i in np.flatnonzero(linear & (bound >= _NEAR_LIMIT)).tolist():
        g = int(inverse[i])
        parts = [
            int(base[g, c]) + sum(int(counts[f, i]) * int(rates[g, f, c]) for f in range(len(FIELDS)))
            for c in range(len(COMPONENTS))
        ]
        if max(abs(sum(parts)), *map(abs, parts)) > _MAX_UNITS:
            over[i] = units_decimal(sum(parts))
    return over


def _scaled(input_tokens: int) -> TokenUsage:
    """A call of `input_tokens` with every field in use (to see a tier on any of them)."""
    return TokenUsage(input_tokens, input_tokens // 4, input_tokens // 8, input_tokens // 16, 4_111, 1_337)


def _dot(linear: _Linear, usage: TokenUsage) -> np.ndarray:
    counts = np.array([getattr(usage, name) for name in FIELDS], dtype=np.int64)
    result: np.ndarray = linear.base + counts @ linear.rates
    return result


def cost_units(cost: Cost) -> np.ndarray:
    """A cost's components as the ledger stores them: integers of 1e-12 USD (quantised like `money`)."""
    values = (cost.input, cost.cache_read, cost.cache_write, cost.output, cost.other)
    return np.array([int(v.quantize(MONEY_QUANTUM) * PICO) for v in values], dtype=np.int64)


def decimal_array(units: np.ndarray, valid: np.ndarray) -> pa.Array:
    """A decimal128(18,12) column whose unscaled integers are `units`, null where not `valid`."""
    assert sys.byteorder == "little", "decimal128 buffers are little-endian"
    words = np.empty((len(units), 2), dtype=np.int64)
    words[:, 0] = units
    words[:, 1] = words[:, 0] >> 63
    buffers: list[pa.Buffer | None] = [None, pa.py_buffer(words)]
    nulls = int(len(valid) - np.count_nonzero(valid))
    if nulls:
        buffers[0] = pa.array(valid, type=pa.bool_()).buffers()[1]
    return pa.Array.from_buffers(MONEY_ARROW, len(units), buffers, null_count=nulls)


def units_decimal(units: int) -> Decimal:
    """One stored money integer as a Decimal."""
    return Decimal(units).scaleb(-12)


def tags_json(tags: dict[str, str] | None) -> str | None:
    """Tags as the ledger stores them: a JSON object with sorted keys, or None."""
    return orjson.dumps(tags, option=orjson.OPT_SORT_KEYS).decode() if tags else None


def _provider_of(source: str) -> str:
    """`genai-prices:aws/regional.x` -> `aws`: the provider genai-prices billed a guessed call to."""
    if source.startswith("genai-prices:"):
        return source.removeprefix("genai-prices:").split("/", 1)[0]
    return "unknown"


@dataclass(frozen=True, slots=True)
class Columns:
    """Parsed calls column by column: what a fast path builds without a Python object per row."""

    request_id: pa.Array
    """Idempotency keys (strings)."""
    ts_us: np.ndarray
    """int64: microseconds since the epoch, UTC."""
    provider: pa.Array
    """genai-prices provider ids; "" lets genai-prices guess from the model."""
    model: pa.Array
    """Models that served the calls."""
    model_requested: pa.Array
    """Models asked for, where different (strings or nulls)."""
    operation: pa.Array
    """chat, embeddings, ..."""
    counts: np.ndarray
    """int64 [field, n]: token counts in FIELDS order."""
    batch: np.ndarray
    """bool: batch API calls."""
    status: pa.Array
    """ok, error or cached."""
    error_type: pa.Array
    """Error codes of failed calls."""
    latency_ms: pa.Array
    """float64 wall times."""
    ttft_ms: pa.Array
    """float64 times to first token."""
    api_key_id: pa.Array
    """Key ids."""
    user_id: pa.Array
    """Users."""
    team: pa.Array
    """Teams."""
    customer: pa.Array
    """Customers."""
    tags: pa.Array
    """Tags as sorted JSON objects (strings or nulls)."""


def columns_of(rows: Sequence[tuple[object, ...]]) -> Columns:
    """Row tuples (in `ROW` order) as `Columns`."""
    n = len(rows)
    c = dict(zip(ROW, list(zip(*rows, strict=True)) if n else [() for _ in ROW], strict=True))

    def strings(name: str) -> pa.Array:
        return pa.array(c[name], pa.string())

    return Columns(
        request_id=strings("request_id"),
        ts_us=np.fromiter(c["ts_us"], np.int64, n),
        provider=strings("provider"),
        model=strings("model"),
        model_requested=strings("model_requested"),
        operation=strings("operation"),
        counts=np.array([np.fromiter(c[f], np.int64, n) for f in FIELDS], dtype=np.int64).reshape(len(FIELDS), n),
        batch=np.fromiter(c["batch"], bool, n),
        status=strings("status"),
        error_type=strings("error_type"),
        latency_ms=pa.array(c["latency_ms"], pa.float64()),
        ttft_ms=pa.array(c["ttft_ms"], pa.float64()),
        api_key_id=strings("api_key_id"),
        user_id=strings("user_id"),
        team=strings("team"),
        customer=strings("customer"),
        tags=pa.array([tags_json(t) for t in c["tags"]], pa.string()),
    )


def build_table(
    rows: Sequence[tuple[object, ...]], rates: RateBook, source: str, costly: dict[int, Decimal] | None = None
) -> pa.Table:
    """The `usage_events` table of parsed rows (tuples in `ROW` order), priced exactly (see `event_table`)."""
    return event_table(columns_of(rows), rates, source, costly)


Numbered = tuple[int, tuple[object, ...]]
"""A parsed row (in `ROW` order) with its line in the file."""


def numbered_table(
    rows: Sequence[Numbered], rates: RateBook, source: str, name: str, errors: list[RowError]
) -> pa.Table | None:
    """The `usage_events` table of parsed rows; a row costing more than the ledger holds is a RowError instead.

    Args:
        rows: (line, row) of each row, `row` as `build_table` takes it.
        rates: Prices the rows.
        source: The rows' `source`.
        name: The file, for the errors.
        errors: Where a row that costs too much is named (the list is kept in line order).
    """
    if not rows:
        return None
    costly: dict[int, Decimal] = {}
    table = build_table([row for _, row in rows], rates, source, costly)
    if costly:
        errors.extend(RowError(name, rows[i][0], too_costly("cost", cost)) for i, cost in costly.items())
        errors.sort(key=lambda error: error.line)
    return table if table.num_rows else None


def event_table(c: Columns, rates: RateBook, source: str, costly: dict[int, Decimal] | None = None) -> pa.Table:
    """The `usage_events` table of parsed calls, priced exactly.

    A call whose cost the ledger's DECIMAL(18,12) cannot hold is left out and added to `costly`
    as {index: cost}, for the caller to name it as a bad row; without `costly` it is a ValueError.
    """
    n = len(c.ts_us)
    units, priced, sources, source_index, over = rates.price(c.provider, c.model, c.batch, c.ts_us, c.counts)
    not_billed = flags(pc.equal(c.status, "cached"))
    over = {i: cost for i, cost in over.items() if not not_billed[i]}  # recorded at $0
    if over:
        if costly is None:
            raise ValueError(f"{len(over)} call(s) cost more than the ledger holds; pass `costly` to leave them out")
        costly.update(over)
        keep = np.ones(n, dtype=bool)
        keep[list(over)] = False
        return event_table(kept(c, keep), rates, source)
    if not_billed.any():  # a proxy's cache hit: $0 to the provider, as the gateway records its own
        units[:, not_billed] = 0
        priced = priced | not_billed
        source_index = np.where(not_billed, len(sources), source_index).astype(np.int32)
        sources = [*sources, NOT_BILLED]
    source_array = pc.take(pa.array(sources, pa.string()), pa.array(source_index, pa.int32()))
    provider = c.provider
    guessed = flags(pc.equal(provider, ""))
    if guessed.any():  # the provider genai-prices billed the call to, else "unknown"
        billed = pa.array([_provider_of(s) for s in sources], pa.string())
        provider = pc.if_else(pa.array(guessed), pc.take(billed, pa.array(source_index, pa.int32())), provider)
    none = pa.nulls(n, pa.string())
    arrays: dict[str, pa.Array] = {
        "request_id": c.request_id,
        "ts": pa.array(c.ts_us.view("datetime64[us]")),
        "provider": provider,
        "model": c.model,
        "model_requested": c.model_requested,
        "operation": c.operation,
        **{name: pa.array(c.counts[f]) for f, name in enumerate(FIELDS)},
        "batch": pa.array(c.batch),
        "status": c.status,
        "error_type": c.error_type,
        "latency_ms": c.latency_ms,
        "ttft_ms": c.ttft_ms,
        **{f"cost_{name}": decimal_array(units[i], priced) for i, name in enumerate(COMPONENTS)},
        "cost_total": decimal_array(units.sum(axis=0), priced),
        "unpriced": pa.array(~priced),
        "price_source": source_array,
        "estimated": pa.array(np.zeros(n, dtype=bool)),
        "source": pa.array(np.full(n, source, dtype=object), pa.string()),
        "api_key_id": c.api_key_id,
        "user_id": c.user_id,
        "team": c.team,
        "feature": none,
        "workflow": none,
        "task_run_id": none,
        "step": none,
        "iteration": pa.nulls(n, pa.int32()),
        "customer": c.customer,
        "tags": c.tags,
    }
    return pa.Table.from_arrays(list(arrays.values()), schema=_SCHEMA)


def kept(columns: Columns, keep: np.ndarray) -> Columns:
    """The rows of `columns` where `keep` is true."""
    mask = pa.array(keep)
    values = {
        field.name: value[..., keep] if isinstance(value, np.ndarray) else value.filter(mask)
        for field in dataclasses.fields(columns)
        for value in (getattr(columns, field.name),)
    }
    return Columns(**values)


def flags(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A boolean Arrow array (without nulls) as numpy."""
    return np.asarray(values.to_numpy(zero_copy_only=False), dtype=bool)


def iso_times(values: pa.Array) -> tuple[np.ndarray, np.ndarray] | None:
    """(microseconds, present) of ISO times ("" absent; no zone means UTC); None if any is not a time."""
    present = pc.not_equal(values, "")
    given = values.filter(present)
    zoned = pc.match_substring_regex(given, r"(Z|[+-][0-9]{2}(:?[0-9]{2})?)$")
    given = pc.if_else(zoned, given, pc.binary_join_element_wise(given, "+00:00", ""))  # as PostgreSQL exports
    try:
        parsed = pc.cast(given, pa.timestamp("us", tz="UTC"))
    except pa.ArrowInvalid:
        return None
    mask = present.to_numpy(zero_copy_only=False)
    out = np.zeros(len(values), dtype=np.int64)
    out[mask] = parsed.cast(pa.int64()).to_numpy()
    return out, mask


def whole_numbers(values: pa.Array) -> np.ndarray | None:
    """Whole numbers ("" is 0, as schema.prisma's @default(0)); None if any is not one (or may not fit int64)."""
    if not pc.all(pc.match_substring_regex(values, WHOLE)).as_py():
        return None
    counts: np.ndarray = pc.cast(pc.if_else(pc.equal(values, ""), "0", values), pa.int64()).to_numpy()
    return counts


def null_blank(values: pa.Array) -> pa.Array:
    """Empty strings as nulls."""
    return pc.if_else(pc.equal(values, ""), None, values)


def per_distinct(values: pa.Array, function: Callable[[Any], str | None]) -> pa.Array:
    """`function` applied once per distinct value (null stays null), as a string column."""
    encoded = values.dictionary_encode()
    return pc.take(pa.array([function(v) for v in encoded.dictionary.to_pylist()], pa.string()), encoded.indices)
