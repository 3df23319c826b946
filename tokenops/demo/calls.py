"""Task runs to model calls, vectorised: the shared engine of the demo organisation and the bulk generator.

A run of a workflow makes its prefix calls, its loop calls once per iteration, then its suffix
calls when it completes. Some calls fail (429, 500, timeout) and are retried. Every per-call
quantity is drawn for all calls of all runs at once with numpy; no per-call Python objects.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tokenops.demo.costs import COMPONENTS, FIELDS, MAX_INPUT_TOKENS, MAX_OUTPUT_TOKENS, RateCard, decimal_array
from tokenops.demo.org import MODEL_INDEX, MODELS, WORKFLOWS
from tokenops.store.schema import TABLES

STATUSES: tuple[str, ...] = ("completed", "failed", "abandoned")
ERROR_TYPES: tuple[str, ...] = ("429", "500", "timeout")
US = 1_000_000
"""Microseconds per second."""
DAY_US = 86_400 * US


def _step_table() -> dict[str, np.ndarray]:
    names: list[str] = []
    ops: list[str] = []
    model: list[int] = []
    inp: list[int] = []
    out: list[int] = []
    in_sig: list[float] = []
    out_sig: list[float] = []
    offset: list[int] = []
    n_prefix: list[int] = []
    n_loop: list[int] = []
    n_suffix: list[int] = []
    for wf in WORKFLOWS:
        offset.append(len(names))
        n_prefix.append(len(wf.prefix))
        n_loop.append(len(wf.loop))
        n_suffix.append(len(wf.suffix))
        for step in (*wf.prefix, *wf.loop, *wf.suffix):
            names.append(step.name)
            ops.append(step.operation)
            model.append(MODEL_INDEX[step.model] if step.model else -1)
            inp.append(step.input_tokens)
            out.append(step.output_tokens)
            in_sig.append(step.input_sigma)
            out_sig.append(step.output_sigma)
    return {
        "offset": np.array(offset),
        "prefix": np.array(n_prefix),
        "loop": np.array(n_loop),
        "suffix": np.array(n_suffix),
        "model": np.array(model),
        "input": np.array(inp, dtype=float),
        "output": np.array(out, dtype=float),
        "input_sigma": np.array(in_sig),
        "output_sigma": np.array(out_sig),
        "embedding": np.array([op == "embeddings" for op in ops]),
    }


STEPS = _step_table()
STEP_NAMES: tuple[str, ...] = tuple(s.name for wf in WORKFLOWS for s in (*wf.prefix, *wf.loop, *wf.suffix))
STEP_OPERATIONS: tuple[str, ...] = tuple(s.operation for wf in WORKFLOWS for s in (*wf.prefix, *wf.loop, *wf.suffix))


def _wf(attr: str) -> np.ndarray:
    return np.array([getattr(wf, attr) for wf in WORKFLOWS])


WF_ERROR = _wf("error_rate")
WF_GROWTH = _wf("context_growth")
WF_GAP = _wf("gap_ms")
WF_BATCH = _wf("batch")
WF_CACHE_1H = _wf("cache_1h")
WF_CUSTOMER = _wf("customer_facing")
M_REASONING = np.array([m.reasoning for m in MODELS])
M_CACHING = np.array([("none", "auto", "explicit").index(m.caching) for m in MODELS])
M_LATENCY = np.array([m.latency_ms for m in MODELS])
M_PER_TOKEN = np.array([m.ms_per_token for m in MODELS])


@dataclass(frozen=True, slots=True)
class Runs:
    """Task runs as parallel arrays (index = run)."""

    workflow: np.ndarray
    """Index into WORKFLOWS."""
    person: np.ndarray
    """Index into the roster."""
    day: np.ndarray
    """Day of the rate card's window."""
    start_us: np.ndarray
    """Start, microseconds since the Unix epoch (UTC)."""
    model: np.ndarray
    """The run's main model (index into MODELS); steps may override it."""
    iterations: np.ndarray
    """Loop iterations (>= 1 when the workflow loops)."""
    status: np.ndarray
    """Index into STATUSES."""
    customer: np.ndarray
    """Customer index, -1 for internal work."""
    input_scale: np.ndarray
    """Multiplier on chat prompts (a prompt change), 1.0 normally."""
    variant: np.ndarray
    """Tag variant (1 after a prompt change)."""


def draw_runs(
    rng: np.random.Generator, workflow: np.ndarray, person: np.ndarray, day: np.ndarray, start_us: np.ndarray
) -> Runs:
    """Draw each run's model, iterations, status and customer from its workflow's parameters."""
    n = len(workflow)
    model = np.empty(n, dtype=np.int64)
    iterations = np.zeros(n, dtype=np.int64)
    status = np.zeros(n, dtype=np.int64)
    for w, wf in enumerate(WORKFLOWS):
        sel = np.flatnonzero(workflow == w)
        keys = [MODEL_INDEX[k] for k, _ in wf.models]
        weights = np.array([p for _, p in wf.models])
        model[sel] = np.array(keys)[rng.choice(len(keys), len(sel), p=weights / weights.sum())]
        if wf.loop:
            iterations[sel] = 1 + rng.poisson(wf.extra_iterations, len(sel))
        u = rng.random(len(sel))
        status[sel] = np.where(u < wf.failure_rate, 1, np.where(u < wf.failure_rate + wf.abandon_rate, 2, 0))
    customer = np.where(WF_CUSTOMER[workflow], _customers(rng, n), -1)
    return Runs(workflow, person, day, start_us, model, iterations, status, customer, np.ones(n), np.zeros(n, np.int64))


CUSTOMERS = 240
_CUSTOMER_P = 1.0 / np.arange(1, CUSTOMERS + 1) ** 1.1
_CUSTOMER_P /= _CUSTOMER_P.sum()


def _customers(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.choice(CUSTOMERS, n, p=_CUSTOMER_P)


@dataclass(frozen=True, slots=True)
class Calls:
    """Model calls as parallel arrays (index = call), in run order."""

    run: np.ndarray
    """Index into the Runs."""
    step: np.ndarray
    """Global step index (into STEP_NAMES)."""
    iteration: np.ndarray
    """Loop iteration, 0 outside the loop."""
    model: np.ndarray
    """Index into MODELS."""
    error: np.ndarray
    """Index into ERROR_TYPES, -1 for successful calls."""
    tokens: tuple[np.ndarray, ...]
    """int64 token counts in costs.FIELDS order."""
    latency_ms: np.ndarray
    """NaN when unknown (batch)."""
    ttft_ms: np.ndarray
    """NaN for embeddings, batch and failed calls."""
    ts_us: np.ndarray
    """Call start."""
    end_us: np.ndarray
    """Call end."""
    cost: np.ndarray
    """int64 [5, n] pico-dollars per cost component (COMPONENTS order)."""
    priced: np.ndarray
    """False for models without a list price."""
    source: np.ndarray
    """Index into the rate card's sources."""


def expand(runs: Runs, rng: np.random.Generator, card: RateCard, limit_us: int) -> Calls:
    """Every model call of every run, priced; runs that would end after `limit_us` start earlier."""
    wf = runs.workflow
    n_prefix, n_loop, n_suffix = STEPS["prefix"][wf], STEPS["loop"][wf], STEPS["suffix"][wf]
    n_calls = n_prefix + runs.iterations * n_loop + np.where(runs.status == 0, n_suffix, 0)
    run = np.repeat(np.arange(len(wf)), n_calls)
    pos = np.arange(len(run)) - np.repeat(np.cumsum(n_calls) - n_calls, n_calls)
    p, lp, it = n_prefix[run], np.maximum(n_loop[run], 1), runs.iterations[run]
    loop_end = p + it * n_loop[run]
    in_loop = (pos >= p) & (pos < loop_end)
    local = np.where(pos < p, pos, np.where(in_loop, p + (pos - p) % lp, p + n_loop[run] + pos - loop_end))
    iteration = np.where(in_loop, (pos - p) // lp + 1, 0)
    step = STEPS["offset"][wf[run]] + local
    # a failed call is followed by its retry: repeat those calls, the first copy is the error
    failed = rng.random(len(run)) < WF_ERROR[wf[run]]
    again = np.repeat(np.arange(len(run)), 1 + failed)
    first = np.ones(len(again), dtype=bool)
    first[1:] = again[1:] != again[:-1]
    error = np.full(len(again), -1)
    errored = np.flatnonzero(failed[again] & first)
    error[errored] = rng.choice(3, len(errored), p=[0.6, 0.25, 0.15])
    run, step, iteration = run[again], step[again], iteration[again]
    model = np.where(STEPS["model"][step] >= 0, STEPS["model"][step], runs.model[run])
    tokens = _tokens(rng, runs, run, step, iteration, model, error)
    latency, ttft = _latency(rng, model, step, error, tokens, WF_BATCH[runs.workflow[run]])
    ts, end = _timeline(rng, runs, run, error, latency, limit_us)
    day = np.clip((ts - card.first_day_us) // DAY_US, 0, card.days - 1)
    key = model * 2 + WF_BATCH[runs.workflow[run]]
    cost, priced, source = card.cost_units(key, day, tokens)
    return Calls(run, step, iteration, model, error, tokens, latency, ttft, ts, end, cost, priced, source)


def _tokens(
    rng: np.random.Generator,
    runs: Runs,
    run: np.ndarray,
    step: np.ndarray,
    iteration: np.ndarray,
    model: np.ndarray,
    error: np.ndarray,
) -> tuple[np.ndarray, ...]:
    n = len(run)
    wf = runs.workflow[run]
    embedding = STEPS["embedding"][step]
    size = rng.lognormal(0.0, 0.25, len(runs.workflow))[run]  # some tickets, diffs, contracts are longer
    growth = 1.0 + WF_GROWTH[wf] * np.maximum(iteration - 1, 0)
    scale = np.where(embedding, 1.0, runs.input_scale[run])
    noise = np.exp(STEPS["input_sigma"][step] * rng.standard_normal(n, dtype=np.float32))
    inp = np.clip(np.rint(STEPS["input"][step] * noise * size * growth * scale), 1, MAX_INPUT_TOKENS).astype(np.int64)
    noise = np.exp(STEPS["output_sigma"][step] * rng.standard_normal(n, dtype=np.float32))
    out = np.clip(np.rint(STEPS["output"][step] * noise), 0, MAX_OUTPUT_TOKENS).astype(np.int64)
    out[(out == 0) & ~embedding] = 1
    reasoning = np.zeros(n, dtype=np.int64)
    thinks = np.flatnonzero(M_REASONING[model])
    reasoning[thinks] = out[thinks] * rng.uniform(0.35, 0.8, len(thinks))
    caching = M_CACHING[model]
    u, share = rng.random(n, dtype=np.float32), rng.random(n, dtype=np.float32)
    read = np.zeros(n, dtype=np.int64)
    write = np.zeros(n, dtype=np.int64)
    # OpenAI and Google read from their cache automatically, for long enough prompts, sometimes
    auto = np.flatnonzero((caching == 1) & (inp >= 1024) & (u < 0.45))
    read[auto] = inp[auto] * (0.2 + 0.5 * share[auto])
    # Anthropic: a hit is likelier in later loop iterations; a miss writes the prompt's prefix
    explicit = caching == 2
    hit = np.flatnonzero(explicit & (u < np.where(iteration >= 2, 0.75, 0.45)))
    miss = np.flatnonzero(explicit & (u >= np.where(iteration >= 2, 0.75, 0.45)))
    read[hit] = inp[hit] * (0.4 + 0.45 * share[hit])
    write[hit] = inp[hit] * 0.06 * share[hit]
    write[miss] = inp[miss] * (0.2 + 0.3 * share[miss])
    write_1h = np.where(WF_CACHE_1H[wf], write, 0)
    # 429 and 500 bill nothing; a timeout bills the prompt but returns no tokens
    failed = np.flatnonzero(error >= 0)
    rejected = failed[error[failed] < 2]
    for column in (inp, read, write, write_1h):
        column[rejected] = 0
    out[failed] = 0
    reasoning[failed] = 0
    return inp, read, write, write_1h, out, reasoning


def _noise(rng: np.random.Generator, sigma: float, n: int) -> np.ndarray:
    """Log-normal factors around 1 (float32: twice as fast as `rng.lognormal`, precise enough)."""
    factors: np.ndarray = np.exp(np.float32(sigma) * rng.standard_normal(n, dtype=np.float32))
    return factors


def _latency(
    rng: np.random.Generator,
    model: np.ndarray,
    step: np.ndarray,
    error: np.ndarray,
    tokens: tuple[np.ndarray, ...],
    batch: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    n = len(model)
    inp, out = tokens[0], tokens[4]
    first = M_LATENCY[model] * _noise(rng, 0.3, n) + inp * 0.002
    latency = first + out * M_PER_TOKEN[model] * _noise(rng, 0.15, n)
    failed = np.flatnonzero(error >= 0)
    low, high = np.array([30.0, 400.0, 60_000.0]), np.array([150.0, 3000.0, 90_000.0])
    kind = error[failed]
    latency[failed] = rng.uniform(low[kind], high[kind])
    latency = np.round(np.where(batch, np.nan, latency), 1)
    no_ttft = batch | (error >= 0) | STEPS["embedding"][step]
    return latency, np.round(np.where(no_ttft, np.nan, first), 1)


def _timeline(
    rng: np.random.Generator, runs: Runs, run: np.ndarray, error: np.ndarray, latency: np.ndarray, limit_us: int
) -> tuple[np.ndarray, np.ndarray]:
    n = len(run)
    gap_ms = WF_GAP[runs.workflow[run]] * _noise(rng, 0.5, n)
    throttled = np.flatnonzero(error == 0)
    gap_ms[throttled] = rng.uniform(500, 4000, len(throttled))  # back off after a 429
    busy_us = (np.nan_to_num(latency, nan=0.0) * 1000).astype(np.int64)
    step_us = busy_us + (gap_ms * 1000).astype(np.int64)
    after = np.cumsum(step_us) - step_us
    first = np.ones(n, dtype=bool)
    first[1:] = run[1:] != run[:-1]
    run_base = np.maximum.accumulate(np.where(first, after, 0))
    ts = runs.start_us[run] + after - run_base
    end = ts + busy_us
    # a run that would finish after the end of the data happened a little earlier instead
    last = np.ones(n, dtype=bool)
    last[:-1] = first[1:]
    overflow = np.zeros(len(runs.workflow), dtype=np.int64)
    overflow[run[last]] = np.maximum(end[last] - limit_us, 0)
    return ts - overflow[run], end - overflow[run]


def take_calls(calls: Calls, order: np.ndarray | slice) -> Calls:
    """The same calls, reordered or filtered by an index array, or a slice of them (views)."""
    return Calls(
        calls.run[order],
        calls.step[order],
        calls.iteration[order],
        calls.model[order],
        calls.error[order],
        tuple(t[order] for t in calls.tokens),
        calls.latency_ms[order],
        calls.ttft_ms[order],
        calls.ts_us[order],
        calls.end_us[order],
        calls.cost[:, order],
        calls.priced[order],
        calls.source[order],
    )


@dataclass(frozen=True, slots=True)
class People:
    """What the usage table needs to know about each person (index = person)."""

    ids: tuple[str, ...]
    """person_id."""
    teams: tuple[str, ...]
    """Team name."""

    @property
    def keys(self) -> tuple[str, ...]:
        """Each person's own virtual key id."""
        return tuple("vk-" + p.split("@")[0] for p in self.ids)


_QUADS = np.frombuffer("".join(f"{i:04d}" for i in range(10_000)).encode(), dtype="<u4")
"""'0000' ... '9999' as four ASCII bytes each, to format numbers four digits at a time."""


def ids(prefix: str, numbers: np.ndarray, width: int = 8) -> pa.Array:
    """String ids `<prefix><zero-padded number>` for non-negative numbers, all of one length.

    The number is padded to `width` digits, rounded up to a multiple of four and widened when a
    number needs it. Equal lengths let numpy write the Arrow string buffers directly: several
    times faster than formatting through Arrow compute, which matters at 10M rows.
    """
    numbers = np.asarray(numbers, dtype=np.int64)
    if len(numbers):
        assert numbers.min() >= 0
        width = max(width, len(str(int(numbers.max()))))
    groups = -(-width // 4)
    quads = np.empty((len(numbers), groups), dtype="<u4")
    rest = numbers.copy()
    for group in range(groups - 1, -1, -1):
        quads[:, group] = _QUADS[rest % 10_000]
        rest //= 10_000
    head = prefix.encode()
    chars = np.empty((len(numbers), len(head) + 4 * groups), dtype=np.uint8)
    chars[:, : len(head)] = np.frombuffer(head, dtype=np.uint8)
    chars[:, len(head) :] = quads.view(np.uint8).reshape(len(numbers), 4 * groups)
    offsets = np.arange(len(numbers) + 1, dtype=np.int32) * chars.shape[1]
    return pa.Array.from_buffers(pa.string(), len(numbers), [None, pa.py_buffer(offsets), pa.py_buffer(chars)])


def pick(values: Sequence[str | None] | pa.Array, index: np.ndarray) -> pa.Array:
    """A string column from a few distinct values and an index per row (indices are trusted)."""
    array = values if isinstance(values, pa.Array) else pa.array(values, pa.string())
    return pc.take(array, pa.array(index), boundscheck=False)


def tag_strings() -> list[str]:
    """Tags JSON of each (workflow, variant), indexed `workflow * 2 + variant`."""
    out = []
    for wf in WORKFLOWS:
        for variant in (0, 1):
            tags = {"env": "prod", **dict(wf.tags)}
            if variant and "prompt_version" in tags:
                tags["prompt_version"] = "v8"
            out.append(json.dumps(tags, sort_keys=True, separators=(",", ":")))
    return out


def usage_table(
    calls: Calls, runs: Runs, people: People, request_ids: pa.Array, run_ids: pa.Array, card: RateCard
) -> pa.Table:
    """The `usage_events` rows of `calls`, in their order, with the ledger's exact Arrow schema."""
    run, wf = calls.run, runs.workflow[calls.run]
    person = runs.person[run]
    ok = calls.error < 0
    app_keys = ["vk-" + w.feature for w in WORKFLOWS]
    key_index = np.where(np.array([w.app_key for w in WORKFLOWS])[wf], wf, len(WORKFLOWS) + person)
    cost = calls.cost
    valid = calls.priced
    columns: dict[str, pa.Array] = {
        "request_id": request_ids,
        "ts": pa.array(calls.ts_us.view("datetime64[us]")),
        "provider": pick([m.provider for m in MODELS], calls.model),
        "model": pick([m.model for m in MODELS], calls.model),
        "model_requested": pick([m.requested for m in MODELS], calls.model),
        "operation": pick(STEP_OPERATIONS, calls.step),
        **{name: pa.array(t, pa.int64()) for name, t in zip(FIELDS, calls.tokens, strict=True)},
        "batch": pa.array(WF_BATCH[wf]),
        "status": pick(["ok", "error"], (~ok).astype(np.int64)),
        "error_type": pick([None, *ERROR_TYPES], calls.error + 1),
        "latency_ms": pa.array(calls.latency_ms, pa.float64(), mask=np.isnan(calls.latency_ms)),
        "ttft_ms": pa.array(calls.ttft_ms, pa.float64(), mask=np.isnan(calls.ttft_ms)),
        **{f"cost_{c}": decimal_array(cost[i], valid) for i, c in enumerate(COMPONENTS)},
        "cost_total": decimal_array(cost.sum(axis=0), valid),
        "unpriced": pa.array(~valid),
        "price_source": pick(card.sources, calls.source),
        "estimated": pa.array(np.zeros(len(run), dtype=bool)),
        "source": pick(["demo"], np.zeros(len(run), dtype=np.int64)),
        "api_key_id": pick(app_keys + list(people.keys), key_index),
        "user_id": pick(people.ids, person),
        "team": pick(people.teams, person),
        "feature": pick([w.feature for w in WORKFLOWS], wf),
        "workflow": pick([w.name for w in WORKFLOWS], wf),
        "task_run_id": pick(run_ids, run),
        "step": pick(STEP_NAMES, calls.step),
        "iteration": pa.array(calls.iteration, pa.int32(), mask=calls.iteration == 0),
        "customer": customer_column(runs.customer[run]),
        "tags": pick(tag_strings(), wf * 2 + runs.variant[run]),
    }
    return pa.Table.from_arrays(list(columns.values()), schema=TABLES["usage_events"].arrow_schema)


def customer_column(customer: np.ndarray) -> pa.Array:
    """Customer ids, null for internal work."""
    names = [None, *(f"cus-{i:04d}" for i in range(1, CUSTOMERS + 1))]
    return pick(names, customer + 1)
