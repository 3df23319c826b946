"""What a period would have cost under another policy: model mapping, prompt caching, prices, output caps.

The ledger's calls are replayed set-based: one query sums their token counts per (workflow,
provider, model, batch, day, price tier), and each group is priced with per-token rates measured
once per distinct (provider, model, day) through the public `Pricer` (finite differences, exact
in Decimal), never call by call. The baseline is what the ledger recorded; calls the ledger could
not price stay unpriced and are reported apart, as are calls the scenario cannot price.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from tokenops.analytics.forecast import default_as_of
from tokenops.analytics.spend import Filters
from tokenops.events import TokenUsage
from tokenops.pricing import Priced, PriceOverride, Pricer
from tokenops.store import Ledger
from tokenops.store.rows import utc_naive

MIN_QUALITY_RUNS = 20
"""Task runs per (workflow, model) before its success rate counts as evidence."""
_TIER_PROBE_MAX = 2_000_000
ALL = Filters()
"""No filter: every call."""
_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class ModelMap:
    """Move a workflow's calls to another model (embedding calls are never moved)."""

    workflow: str
    """Workflow whose calls move."""
    model: str
    """Model that would serve them."""
    provider: str | None = None
    """Its provider; None lets genai-prices resolve it from the model name."""
    from_model: str | None = None
    """Only move calls served by this model; None moves every chat call of the workflow."""


@dataclass(frozen=True, slots=True)
class Scenario:
    """Another policy to replay the ledger under; `*` as a workflow means every workflow."""

    models: tuple[ModelMap, ...] = ()
    """Model mappings, first match wins."""
    cache_hit_rate: Mapping[str, float] = field(default_factory=dict)
    """Workflow -> share of input tokens read from the provider's prompt cache
    (`recommend.auto_hit_rates` estimates it from repeated prompt prefixes)."""
    output_cap: Mapping[str, int] = field(default_factory=dict)
    """Workflow -> max_tokens: output (and reasoning) tokens are clamped to it."""
    overrides: tuple[PriceOverride, ...] = ()
    """Prices tried before the organisation's own (another price list, a discount)."""


@dataclass(frozen=True, slots=True)
class Rates:
    """USD per token of each leaf unit, and per call, for one (provider, model, day, tier)."""

    input: Decimal
    """Uncached prompt token."""
    cache_read: Decimal
    """Prompt token read from cache."""
    cache_write: Decimal
    """Prompt token written to cache (5-minute TTL)."""
    cache_write_1h: Decimal
    """Prompt token written to cache with a one-hour TTL."""
    output: Decimal
    """Generated token that is not reasoning."""
    reasoning: Decimal
    """Hidden reasoning token."""
    per_call: Decimal
    """Fee per request."""


@dataclass(frozen=True, slots=True)
class QualityChange:
    """Expected change in task success when calls move models, from the ledger's own task runs."""

    success_before: float
    """Share of the workflow's finished task runs that completed."""
    success_after: float
    """Expected share once the mapped calls use the new models."""
    evidence: str
    """Which runs the estimate rests on."""


@dataclass(frozen=True, slots=True)
class WorkflowWhatIf:
    """One workflow's spend in the ledger and under the scenario."""

    workflow: str | None
    """Workflow (None for calls without one)."""
    events: int
    """Calls replayed."""
    baseline_cost: Decimal
    """What the ledger recorded for the calls priced both ways (USD)."""
    scenario_cost: Decimal
    """What the same calls would cost under the scenario (USD)."""
    unpriced_events: int
    """Calls the ledger could not price: they stay unpriced (never $0)."""
    unpriced_tokens: int
    """Their input + output tokens."""
    scenario_unpriced_events: int
    """Calls priced in the ledger that the scenario cannot price (left out of the saving)."""
    scenario_unpriced_cost: Decimal
    """Their ledger cost."""
    clipped_calls: int
    """Calls whose output the cap would have cut short."""
    quality: QualityChange | None
    """Expected success change of model mappings, when the ledger has evidence for it."""

    @property
    def saving(self) -> Decimal:
        """Baseline minus scenario cost, exact."""
        return self.baseline_cost - self.scenario_cost


@dataclass(frozen=True, slots=True)
class WhatIf:
    """A replayed period."""

    rows: tuple[WorkflowWhatIf, ...]
    """Per workflow, biggest saving first."""
    notes: tuple[str, ...]
    """What could not be replayed or estimated, and why."""

    @property
    def saving(self) -> Decimal:
        """Total saving over the priced calls."""
        return sum((r.saving for r in self.rows), _ZERO)


class RateBook:
    """Per-token rates measured through a `Pricer`, memoised per (provider, model, batch, day, tier)."""

    def __init__(self, pricer: Pricer) -> None:
        self._pricer = pricer
        self._rates: dict[tuple[str | None, str, bool, date, int], Rates | None] = {}
        self._tiers: dict[tuple[str | None, str, bool, date], tuple[int, ...]] = {}

    def _total(self, model: str, provider: str | None, day: date, batch: bool, usage: TokenUsage) -> Decimal | None:
        ts = datetime.combine(day, time(12), tzinfo=UTC)
        priced = self._pricer.price(model, usage, provider=provider, ts=ts, batch=batch)
        return priced.cost.total if isinstance(priced, Priced) else None

    def rates(self, model: str, provider: str | None, day: date, batch: bool, base: int = 1) -> Rates | None:
        """Rates for calls with more than `base - 1` input tokens (up to the next tier); None if unpriced."""
        key = (provider, model, batch, day, base)
        if key in self._rates:
            return self._rates[key]

        def p(i: int = 0, cr: int = 0, cw: int = 0, cw1h: int = 0, out: int = 0, reas: int = 0) -> Decimal | None:
            return self._total(model, provider, day, batch, TokenUsage(base + i, cr, cw, cw1h, out, reas))

        probes = [p(), p(i=1), p(cr=1), p(cw=1), p(cw=1, cw1h=1), p(out=1), p(out=1, reas=1)]
        found: Rates | None = None
        if all(v is not None for v in probes):
            b, i, cr, cw, cw1h, out, reas = (v for v in probes if v is not None)
            r_in = i - b
            r_out = out - b
            found = Rates(
                input=r_in,
                cache_read=r_in + cr - b,
                cache_write=r_in + cw - b,
                cache_write_1h=r_in + cw1h - b,
                output=r_out,
                reasoning=r_out + reas - out,
                per_call=b - base * r_in,
            )
        self._rates[key] = found
        return found

    def by_day(
        self, model: str, provider: str | None, batch: bool, base: int, days: Sequence[date]
    ) -> list[Rates | None]:
        """Rates on each of the sorted `days`, measured only where they may change.

        List prices change rarely (and do not change back within weeks), so when the first,
        middle and last day of a run agree, the whole run has their rates; otherwise it is halved.
        """
        out: list[Rates | None] = [None] * len(days)

        def walk(lo: int, hi: int) -> None:
            mid = (lo + hi) // 2
            probe = range(lo, hi + 1) if hi - lo <= 2 else (lo, mid, hi)
            found = [self.rates(model, provider, days[i], batch, base) for i in probe]
            if hi - lo <= 2 or found.count(found[0]) == 3:
                out[lo : hi + 1] = found if hi - lo <= 2 else [found[0]] * (hi - lo + 1)
            else:
                walk(lo, mid)
                walk(mid + 1, hi)

        if days:
            walk(0, len(days) - 1)
        return out

    def tiers(self, model: str, provider: str | None, day: date, batch: bool) -> tuple[int, ...]:
        """Input-token thresholds where the model's rates change (long-context tiers), by bisection."""
        key = (provider, model, batch, day)
        if key not in self._tiers:
            found: list[int] = []
            self._bisect(model, provider, day, batch, 1, _TIER_PROBE_MAX, found)
            self._tiers[key] = tuple(sorted(found))
        return self._tiers[key]

    def _bisect(
        self, model: str, provider: str | None, day: date, batch: bool, lo: int, hi: int, out: list[int]
    ) -> None:
        # genai-prices applies a tier to the whole call once total input exceeds its start
        if self.rates(model, provider, day, batch, lo) == self.rates(model, provider, day, batch, hi):
            return
        if hi - lo == 1:
            out.append(lo)
            return
        mid = (lo + hi) // 2
        self._bisect(model, provider, day, batch, lo, mid, out)
        self._bisect(model, provider, day, batch, mid, hi, out)


def price_tokens(rates: Rates, calls: int, tokens: Mapping[str, int]) -> Decimal:
    """Exact USD of summed token counts (input includes cache reads/writes, output includes reasoning)."""
    inp, cr, cw, cw1h = tokens["input_tokens"], tokens["cache_read_tokens"], tokens["cache_write_tokens"], 0
    cw1h = tokens["cache_write_1h_tokens"]
    out, reas = tokens["output_tokens"], tokens["reasoning_tokens"]
    return (
        (inp - cr - cw) * rates.input
        + cr * rates.cache_read
        + (cw - cw1h) * rates.cache_write
        + cw1h * rates.cache_write_1h
        + (out - reas) * rates.output
        + reas * rates.reasoning
        + calls * rates.per_call
    )


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _int(value: object) -> int:
    return 0 if value is None else int(str(value))


def success_rates(
    ledger: Ledger, filters: Filters = ALL, workflows: Sequence[str] = ()
) -> dict[tuple[str | None, str], tuple[int, int]]:
    """(finished task runs, completed ones) per (workflow, model used by the run's chat calls); model `*`: any.

    Args:
        ledger: Ledger to read.
        filters: Which calls.
        workflows: Only these workflows (all when empty).
    """
    where, params = filters.where()
    if workflows:
        where += f" AND workflow IN ({', '.join('?' for _ in workflows)})"
        params = [*params, *workflows]
    # a run with calls in [start, end) started before end and ended after start: lets the store skip old runs
    runs, run_params = "status <> 'running'", []
    if filters.end is not None:
        runs += " AND started_at < ?"
        run_params.append(utc_naive(filters.end))
    if filters.start is not None:
        runs += " AND (ended_at IS NULL OR ended_at >= ?)"
        run_params.append(utc_naive(filters.start))
    rows = ledger.query_rows(
        f"""
        WITH rm AS (
            SELECT DISTINCT workflow, model, task_run_id FROM usage_events
            WHERE {where} AND task_run_id IS NOT NULL AND operation <> 'embeddings'
        ),
        t AS (SELECT task_run_id, status FROM task_runs WHERE {runs})
        SELECT rm.workflow, rm.model, count(*) AS runs, count(*) FILTER (WHERE t.status = 'completed') AS completed
        FROM rm JOIN t ON t.task_run_id = rm.task_run_id
        GROUP BY rm.workflow, rm.model
        UNION ALL
        SELECT w.workflow, '*' AS model, count(*) AS runs,
               count(*) FILTER (WHERE t.status = 'completed') AS completed
        FROM (SELECT DISTINCT workflow, task_run_id FROM rm) AS w JOIN t ON t.task_run_id = w.task_run_id
        GROUP BY w.workflow
        """,
        [*params, *run_params],
    )
    return {(_text(r["workflow"]), str(r["model"])): (_int(r["runs"]), _int(r["completed"])) for r in rows}


def _lookup(mapping: Mapping[str, object], workflow: str | None) -> object | None:
    if workflow is not None and workflow in mapping:
        return mapping[workflow]
    return mapping.get("*")


def same_model(served: str, name: str) -> bool:
    """Whether a served model is `name` or one of its dated snapshots (`gpt-4o-2024-08-06` is `gpt-4o`)."""
    return served == name or re.fullmatch(re.escape(name) + r"-\d{4}-?\d{2}-?\d{2}", served) is not None


def target(scenario: Scenario, workflow: str | None, model: str, operation: str) -> ModelMap | None:
    """The mapping that moves a call, if any."""
    if operation == "embeddings":
        return None
    for m in scenario.models:
        moves = m.from_model is None or same_model(model, m.from_model)
        if m.workflow in ("*", workflow) and moves and not same_model(model, m.model):
            return m
    return None


def _shares(scenario: Scenario) -> dict[str, float]:
    for workflow, share in scenario.cache_hit_rate.items():
        if not 0 <= share <= 1:
            raise ValueError(f"cache hit rate for {workflow!r} must be between 0 and 1, got {share!r}")
    return dict(scenario.cache_hit_rate)


def _runs_of(rates: Mapping[str, tuple[int, int]], name: str) -> tuple[int, int]:
    pairs = [v for m, v in rates.items() if same_model(m, name)]
    return sum(p[0] for p in pairs), sum(p[1] for p in pairs)


def quality_change(
    rates: Mapping[tuple[str | None, str], tuple[int, int]], workflow: str | None, moved: Mapping[str, ModelMap]
) -> tuple[QualityChange | None, str | None]:
    """Expected success rate once `moved` (from model -> mapping) applies, or why it cannot be said."""
    mine = {m: v for (w, m), v in rates.items() if w == workflow}
    runs, done = mine.pop("*", (0, 0))
    if not runs or not moved:
        return None, None
    before = done / runs
    after = before
    used: list[str] = []
    for old, mapping in sorted(moved.items()):
        old_runs, old_done = _runs_of(mine, old)
        new_runs, new_done = _runs_of(mine, mapping.model)
        if min(old_runs, new_runs) < MIN_QUALITY_RUNS:
            return None, (
                f"{workflow}: too few finished task runs to compare {old!r} ({old_runs}) with "
                f"{mapping.model!r} ({new_runs}); need {MIN_QUALITY_RUNS} each"
            )
        delta = new_done / new_runs - old_done / old_runs
        after += old_runs / runs * delta
        used.append(
            f"{old} completed {old_done / old_runs:.1%} of {old_runs} runs, "
            f"{mapping.model} {new_done / new_runs:.1%} of {new_runs}"
        )
    evidence = "; ".join(used)
    return QualityChange(before, min(1.0, max(0.0, after)), evidence), None


def _cap_sql(caps: Mapping[str, int]) -> tuple[str, list[object]]:
    """SQL for each call's output cap (NULL: none), with its parameters."""
    for workflow, cap in caps.items():
        if int(cap) <= 0:
            raise ValueError(f"output cap for {workflow!r} must be a positive number of tokens, got {cap!r}")
    named = [(w, int(c)) for w, c in caps.items() if w != "*"]
    default = caps.get("*")
    if not named:
        return "CAST(? AS BIGINT)", [None if default is None else int(default)]
    params: list[object] = []
    whens = ""
    for workflow, cap in named:
        whens += " WHEN workflow = ? THEN CAST(? AS BIGINT)"
        params += [workflow, cap]
    params.append(None if default is None else int(default))
    return f"CASE{whens} ELSE CAST(? AS BIGINT) END", params


def _tier_sql(thresholds: Sequence[int]) -> tuple[str, list[object]]:
    if not thresholds:
        return "0", []
    return " + ".join("CASE WHEN input_tokens > ? THEN 1 ELSE 0 END" for _ in thresholds), list(thresholds)


def _groups(
    ledger: Ledger, filters: Filters, thresholds: Sequence[int], caps: Mapping[str, int]
) -> list[dict[str, object]]:
    """Token sums per (workflow, provider, model, operation, batch, pricing state, day, tier)."""
    where, params = filters.where()
    tier, tier_params = _tier_sql(thresholds)
    cap, cap_params = _cap_sql(caps)
    sql = f"""
        WITH e AS (
            SELECT workflow, provider, model, operation, batch, unpriced,
                   status IN ('blocked', 'cached') AS fixed, CAST(ts AS DATE) AS day, {tier} AS tier,
                   input_tokens, cache_read_tokens, cache_write_tokens, cache_write_1h_tokens,
                   output_tokens, reasoning_tokens, cost_total, {cap} AS cap
            FROM usage_events WHERE {where}
        )
        SELECT workflow, provider, model, operation, batch, unpriced, fixed, day, tier,
               count(*) AS events,
               CAST(sum(input_tokens) AS BIGINT) AS input_tokens,
               CAST(sum(cache_read_tokens) AS BIGINT) AS cache_read_tokens,
               CAST(sum(cache_write_tokens) AS BIGINT) AS cache_write_tokens,
               CAST(sum(cache_write_1h_tokens) AS BIGINT) AS cache_write_1h_tokens,
               CAST(sum(input_tokens + output_tokens) AS BIGINT) AS tokens,
               CAST(sum(CASE WHEN cap IS NULL THEN output_tokens ELSE least(output_tokens, cap) END) AS BIGINT)
                   AS output_tokens,
               CAST(sum(CASE WHEN cap IS NULL THEN reasoning_tokens ELSE least(reasoning_tokens, cap) END)
                   AS BIGINT) AS reasoning_tokens,
               count(*) FILTER (WHERE output_tokens > cap) AS clipped, max(input_tokens) AS max_input,
               CAST(coalesce(sum(cost_total), 0) AS DECIMAL(38, 12)) AS cost
        FROM e
        GROUP BY workflow, provider, model, operation, batch, unpriced, fixed, day, tier
    """
    return ledger.query_rows(sql, [*tier_params, *cap_params, *params])


@dataclass(slots=True)
class _Acc:
    events: int = 0
    baseline: Decimal = _ZERO
    scenario: Decimal = _ZERO
    unpriced_events: int = 0
    unpriced_tokens: int = 0
    lost_events: int = 0
    lost_cost: Decimal = _ZERO
    clipped: int = 0
    moved: dict[str, ModelMap] = field(default_factory=dict)


def _cached(tokens: dict[str, int], share: float | None) -> bool:
    """Apply a cache hit rate to summed tokens in place; True if it changed them."""
    if share is None:
        return False
    inp, cr = tokens["input_tokens"], tokens["cache_read_tokens"]
    read = max(cr, int(inp * share))
    if read == cr:
        return False
    tokens["cache_read_tokens"] = read
    tokens["cache_write_tokens"] = min(tokens["cache_write_tokens"], inp - read)
    tokens["cache_write_1h_tokens"] = min(tokens["cache_write_1h_tokens"], tokens["cache_write_tokens"])
    return True


TOKEN_FIELDS = (
    "input_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "output_tokens",
    "reasoning_tokens",
)


def default_window(ledger: Ledger, filters: Filters, days: int = 30) -> Filters:
    """`filters` with a missing end set to the end of the last day with calls, and a missing start `days` before."""
    end = filters.end if filters.end is not None else default_as_of(ledger)
    start = filters.start if filters.start is not None else end - timedelta(days=days)
    return dataclasses.replace(filters, start=start, end=end)


def _target_tiers(
    scenario: Scenario, book: RateBook, day: date, groups: list[dict[str, object]], known: Sequence[int]
) -> list[int]:
    """Thresholds of the models the groups are priced on that some group's largest call crosses."""
    found: set[int] = set()
    for g in groups:
        model, provider = str(g["model"]), _text(g["provider"])
        mapping = target(scenario, _text(g["workflow"]), model, str(g["operation"]))
        if mapping is not None:
            model, provider = mapping.model, mapping.provider
        if not g["unpriced"]:
            found.update(t for t in book.tiers(model, provider, day, bool(g["batch"])) if t < _int(g["max_input"]))
    return sorted(found - set(known))


@dataclass(frozen=True, slots=True)
class _Job:
    """One group to price: its accumulator, the model it is priced on, its tokens."""

    acc: _Acc
    """Workflow totals it adds to."""
    key: tuple[str, str | None, bool, int]
    """(model, provider, batch, tier base)."""
    day: date
    """Day of its calls."""
    events: int
    """Calls."""
    cost: Decimal
    """Their ledger cost."""
    tokens: dict[str, int]
    """Token sums under the scenario."""


def _plan(
    groups: list[dict[str, object]], scenario: Scenario, shares: Mapping[str, float], bases: Sequence[int]
) -> tuple[dict[str | None, _Acc], list[_Job]]:
    """Totals of what the scenario leaves alone, and the groups it reprices."""
    accs: dict[str | None, _Acc] = {}
    jobs: list[_Job] = []
    for g in groups:
        workflow, model, operation = _text(g["workflow"]), str(g["model"]), str(g["operation"])
        acc = accs.setdefault(workflow, _Acc())
        events, cost = _int(g["events"]), Decimal(str(g["cost"]))
        if g["unpriced"]:
            acc.unpriced_events += events
            acc.unpriced_tokens += _int(g["tokens"])
            continue
        acc.events += events
        acc.clipped += _int(g["clipped"])
        tokens = {f: _int(g[f]) for f in TOKEN_FIELDS}
        mapping = target(scenario, workflow, model, operation)
        share = None if operation == "embeddings" else _lookup(shares, workflow)
        changed = _cached(tokens, None if share is None else float(str(share)))
        changed = changed or _int(g["clipped"]) > 0 or mapping is not None or bool(scenario.overrides)
        if g["fixed"] or not changed:  # blocked/cached calls cost $0 whatever the policy
            acc.baseline += cost
            acc.scenario += cost
            continue
        provider = _text(g["provider"])
        if mapping is not None:
            acc.moved[model] = mapping
            model, provider = mapping.model, mapping.provider
        day = g["day"]
        assert isinstance(day, date)
        jobs.append(_Job(acc, (model, provider, bool(g["batch"]), bases[_int(g["tier"])]), day, events, cost, tokens))
    return accs, jobs


def replay(
    ledger: Ledger, scenario: Scenario, *, filters: Filters = ALL, overrides: Sequence[PriceOverride] = ()
) -> WhatIf:
    """Replay the calls `filters` selects under `scenario`; saving per workflow, exact.

    Args:
        ledger: Ledger to read.
        scenario: The other policy.
        filters: Which calls (period, team ...).
        overrides: The organisation's own price overrides (tokenops.toml), tried after the scenario's.
    """
    book = RateBook(Pricer((*scenario.overrides, *overrides)))
    shares = _shares(scenario)
    last = (filters.end or datetime.now(UTC)).astimezone(UTC).date() - timedelta(days=1)
    thresholds: list[int] = []
    groups = _groups(ledger, filters, thresholds, scenario.output_cap)
    # long-context tiers: group again, split at them, only when some call crosses one (rare)
    if more := _target_tiers(scenario, book, last, groups, thresholds):
        thresholds = more
        groups = _groups(ledger, filters, thresholds, scenario.output_cap)
    accs, jobs = _plan(groups, scenario, shares, [1, *(t + 1 for t in thresholds)])
    days: dict[tuple[str, str | None, bool, int], set[date]] = {}
    for job in jobs:
        days.setdefault(job.key, set()).add(job.day)
    rates: dict[tuple[tuple[str, str | None, bool, int], date], Rates | None] = {}
    for key, wanted in days.items():
        ordered = sorted(wanted)
        measured = book.by_day(key[0], key[1], key[2], key[3], ordered)
        rates.update(((key, d), r) for d, r in zip(ordered, measured, strict=True))
    for job in jobs:
        found = rates[(job.key, job.day)]
        if found is None:
            job.acc.lost_events += job.events
            job.acc.lost_cost += job.cost
            continue
        job.acc.baseline += job.cost
        job.acc.scenario += price_tokens(found, job.events, job.tokens)
    return WhatIf(*_finish(ledger, filters, accs))


def _finish(
    ledger: Ledger, filters: Filters, accs: dict[str | None, _Acc]
) -> tuple[tuple[WorkflowWhatIf, ...], tuple[str, ...]]:
    """Rows per workflow with the quality change of their mappings (evidence: the period's last 30 days)."""
    quality: dict[tuple[str | None, str], tuple[int, int]] = {}
    moved = sorted(w for w, acc in accs.items() if acc.moved and w is not None)
    if moved:
        recent = filters
        if filters.end is not None:
            start = filters.end - timedelta(days=30)
            recent = dataclasses.replace(filters, start=max(start, filters.start) if filters.start else start)
        quality = success_rates(ledger, recent, moved)
    rows: list[WorkflowWhatIf] = []
    notes: tuple[str, ...] = ()
    # workflows in name order: the notes must not follow the order a backend happened to group rows in
    for workflow, acc in sorted(accs.items(), key=lambda item: item[0] or ""):
        change, why = quality_change(quality, workflow, acc.moved)
        if why:
            notes += (why,)
        if acc.lost_events:
            models = ", ".join(sorted({m.model for m in acc.moved.values()}))
            notes += (f"{workflow}: {acc.lost_events} calls have no price on {models or 'the new price list'}",)
        counts = (acc.unpriced_events, acc.unpriced_tokens, acc.lost_events, acc.lost_cost, acc.clipped)
        rows.append(WorkflowWhatIf(workflow, acc.events, acc.baseline, acc.scenario, *counts, change))
    rows.sort(key=lambda r: (-r.saving, r.workflow or ""))
    return tuple(rows), notes
