"""Ranked savings opportunities, each with a monthly $ estimate and the numbers behind it.

Six kinds, all read from the last 30 days of the ledger: chat calls that could move to a cheaper
model the same workflow already uses with a similar task success rate; repeated prompt prefixes
that provider prompt caching would discount; over-retrieval (prompts far longer than answers);
unbounded outputs (a long tail of answer lengths, as without `max_tokens`); loop-heavy agents;
idle seat licences. Token savings are priced with the rates of `whatif.RateBook` on the last day,
so they are estimates in USD per month, rounded to the cent; the evidence sentence says how.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Literal

from tokenops.analytics.forecast import default_as_of
from tokenops.analytics.spend import Filters
from tokenops.analytics.whatif import (
    ALL,
    MIN_QUALITY_RUNS,
    TOKEN_FIELDS,
    RateBook,
    Rates,
    price_tokens,
    same_model,
    success_rates,
)
from tokenops.pricing import PriceOverride, Pricer
from tokenops.store import Ledger
from tokenops.store.rows import utc_naive

Kind = Literal["cheaper_model", "prompt_caching", "over_retrieval", "unbounded_output", "agent_loops", "idle_seat"]
PERIOD_DAYS = 30
"""Days of history the recommendations read; savings are per 30 days."""
SIMILAR_SUCCESS = 0.02
"""A cheaper model qualifies when its runs complete at most this much less often."""
RETRIEVAL_RATIO = 20
"""Input:output tokens above which a workflow counts as over-retrieving."""
LONG_TAIL = 3.0
"""p99 / median of answer lengths above which outputs count as unbounded."""
MIN_CACHEABLE_TOKENS = 1024
"""Providers only cache prompts of at least this many tokens (OpenAI, Anthropic)."""
MIN_PROMPT_TOKENS = 2000
"""Over-retrieval needs prompts this long on average (short classification prompts are fine)."""
MIN_SAVING = Decimal("0.01")
CENT = Decimal("0.01")
_Found = list[tuple[str, Decimal, str]]
"""(subject, saving over the period, evidence) of one kind."""


@dataclass(frozen=True, slots=True)
class Recommendation:
    """One savings opportunity."""

    kind: Kind
    """What to change."""
    subject: str
    """Workflow, or person and tool for a seat."""
    monthly_saving: Decimal
    """Estimated USD saved per 30 days, to the cent."""
    evidence: str
    """The numbers it rests on, in one sentence."""


@dataclass(frozen=True, slots=True)
class _Usage:
    workflow: str
    provider: str
    model: str
    batch: bool
    events: int
    cost: Decimal
    tokens: dict[str, int]


def _usage(ledger: Ledger, filters: Filters) -> list[_Usage]:
    where, params = filters.where()
    rows = ledger.query_rows(
        f"""SELECT workflow, provider, model, batch, count(*) AS events,
                   CAST(sum(cost_total) AS DECIMAL(38, 12)) AS cost,
                   CAST(sum(input_tokens) AS BIGINT) AS input_tokens,
                   CAST(sum(cache_read_tokens) AS BIGINT) AS cache_read_tokens,
                   CAST(sum(cache_write_tokens) AS BIGINT) AS cache_write_tokens,
                   CAST(sum(cache_write_1h_tokens) AS BIGINT) AS cache_write_1h_tokens,
                   CAST(sum(output_tokens) AS BIGINT) AS output_tokens,
                   CAST(sum(reasoning_tokens) AS BIGINT) AS reasoning_tokens
            FROM usage_events
            WHERE {where} AND NOT unpriced AND status IN ('ok', 'error') AND workflow IS NOT NULL
                  AND operation <> 'embeddings'
            GROUP BY workflow, provider, model, batch""",
        params,
    )
    fields = TOKEN_FIELDS
    return [
        _Usage(
            str(r["workflow"]),
            str(r["provider"]),
            str(r["model"]),
            bool(r["batch"]),
            int(str(r["events"])),
            Decimal(str(r["cost"])),
            {f: int(str(r[f])) for f in fields},
        )
        for r in rows
    ]


def prefix_evidence(ledger: Ledger, filters: Filters = ALL) -> dict[str | None, tuple[int, int, int]]:
    """Per workflow: (input tokens, cache-read tokens, repeated-prefix tokens) of successful chat calls.

    A call's repeated prefix is estimated as the part of its prompt the previous call of the same
    task run already sent (min of the two sizes), for prompts long enough to be cached.
    """
    where, params = filters.where()
    rows = ledger.query_rows(
        f"""
        WITH c AS (
            SELECT workflow, input_tokens, cache_read_tokens,
                   lag(input_tokens) OVER (PARTITION BY task_run_id ORDER BY ts, request_id) AS prev
            FROM usage_events
            WHERE {where} AND task_run_id IS NOT NULL AND operation <> 'embeddings' AND status = 'ok'
        )
        SELECT workflow, CAST(sum(input_tokens) AS BIGINT) AS input_tokens,
               CAST(sum(cache_read_tokens) AS BIGINT) AS cache_read_tokens,
               CAST(coalesce(sum(CASE WHEN prev IS NOT NULL AND input_tokens >= {MIN_CACHEABLE_TOKENS}
                                      THEN least(input_tokens, prev) ELSE 0 END), 0) AS BIGINT) AS repeated
        FROM c GROUP BY workflow
        """,
        params,
    )
    return {
        (None if r["workflow"] is None else str(r["workflow"])): (
            int(str(r["input_tokens"] or 0)),
            int(str(r["cache_read_tokens"] or 0)),
            int(str(r["repeated"] or 0)),
        )
        for r in rows
    }


def auto_hit_rates(
    ledger: Ledger, workflows: Sequence[str], filters: Filters = ALL
) -> tuple[dict[str, float], tuple[str, ...]]:
    """A what-if cache hit rate per workflow from its repeated prompt prefixes, and notes where there are none."""
    evidence = prefix_evidence(ledger, filters)
    rates: dict[str, float] = {}
    notes: list[str] = []
    for workflow in workflows:
        inp, read, repeated = evidence.get(workflow, (0, 0, 0))
        rates[workflow] = repeated / inp if inp else 0.0
        if repeated <= read:
            notes.append(f"{workflow}: its prompts repeat no more than the cache already serves; hit rate unchanged")
    return rates, tuple(notes)


def _money(value: Decimal, scale: Decimal) -> Decimal:
    return (value * scale).quantize(CENT)


def _cheaper(
    usage: list[_Usage], book: RateBook, day: date, runs: dict[tuple[str | None, str], tuple[int, int]]
) -> _Found:
    """Per (workflow, model): the cheapest model the workflow already uses with a similar success rate."""
    out: _Found = []
    for u in usage:
        here = runs.get((u.workflow, u.model), (0, 0))
        if here[0] < MIN_QUALITY_RUNS:
            continue
        best: tuple[Decimal, str, str] | None = None
        for other in {(v.provider, v.model) for v in usage if v.workflow == u.workflow and v.model != u.model}:
            there = runs.get((u.workflow, other[1]), (0, 0))
            if there[0] < MIN_QUALITY_RUNS or there[1] / there[0] < here[1] / here[0] - SIMILAR_SUCCESS:
                continue
            rates = book.rates(other[1], other[0], day, u.batch)
            if rates is None:
                continue
            saving = u.cost - price_tokens(rates, u.events, u.tokens)
            if saving > 0 and (best is None or saving > best[0]):
                evidence = (
                    f"{u.events:,} calls on {u.model} cost ${u.cost:,.2f}; the same tokens on {other[1]} "
                    f"would cost ${u.cost - saving:,.2f}. Runs using {other[1]} completed "
                    f"{there[1] / there[0]:.1%} of {there[0]:,}, runs using {u.model} {here[1] / here[0]:.1%} "
                    f"of {here[0]:,}"
                )
                best = (saving, evidence, other[1])
        if best is not None:
            out.append((f"{u.workflow}: {u.model} -> {best[2]}", best[0], best[1]))
    return out


def _caching(
    usage: list[_Usage], book: RateBook, day: date, evidence: dict[str | None, tuple[int, int, int]]
) -> _Found:
    out: _Found = []
    for workflow in sorted({u.workflow for u in usage}):
        inp, read, repeated = evidence.get(workflow, (0, 0, 0))
        if not inp or repeated <= read:
            continue
        share = repeated / inp
        saving = Decimal(0)
        for u in (u for u in usage if u.workflow == workflow):
            rates = book.rates(u.model, u.provider, day, u.batch)
            extra = max(0, int(u.tokens["input_tokens"] * share) - u.tokens["cache_read_tokens"])
            if rates is not None and extra:
                saving += extra * (rates.input - rates.cache_read)
        text = (
            f"{share:.0%} of its {inp:,} prompt tokens repeat the previous call of the same task run, "
            f"but only {read / inp:.0%} were read from the provider's cache"
        )
        out.append((workflow, saving, text))
    return out


def _retrieval(usage: list[_Usage], book: RateBook, day: date) -> _Found:
    out: _Found = []
    for workflow in sorted({u.workflow for u in usage}):
        mine = [u for u in usage if u.workflow == workflow]
        inp = sum(u.tokens["input_tokens"] for u in mine)
        output = sum(u.tokens["output_tokens"] for u in mine)
        calls = sum(u.events for u in mine)
        if not output or inp / output < RETRIEVAL_RATIO or inp / calls < MIN_PROMPT_TOKENS:
            continue
        saving = Decimal(0)
        for u in mine:
            rates = book.rates(u.model, u.provider, day, u.batch)
            uncached = u.tokens["input_tokens"] - u.tokens["cache_read_tokens"] - u.tokens["cache_write_tokens"]
            if rates is not None:
                saving += uncached * rates.input / 2
        text = (
            f"prompts average {inp // calls:,} tokens for {output // calls:,} output tokens "
            f"({inp / output:.0f}:1); retrieving half as much context would halve the uncached input"
        )
        out.append((workflow, saving, text))
    return out


def _rates_of(book: RateBook, day: date, usage: list[_Usage]) -> dict[tuple[str, str], Rates | None]:
    return {(u.workflow, u.model): book.rates(u.model, u.provider, day, u.batch) for u in usage}


def _outputs(ledger: Ledger, filters: Filters, rates: dict[tuple[str, str], Rates | None]) -> _Found:
    where, params = filters.where()
    chat = f"{where} AND NOT unpriced AND operation <> 'embeddings' AND output_tokens > 0 AND workflow IS NOT NULL"
    shape = ledger.query_rows(
        f"""SELECT workflow, quantile_cont(output_tokens, 0.5) AS p50, quantile_cont(output_tokens, 0.95) AS p95,
                   quantile_cont(output_tokens, 0.99) AS p99, max(output_tokens) AS top
            FROM usage_events WHERE {chat} GROUP BY workflow""",
        params,
    )
    caps = {str(r["workflow"]): r for r in shape if float(str(r["p99"])) >= LONG_TAIL * float(str(r["p50"]))}
    if not caps:
        return []
    case = " ".join("WHEN workflow = ? THEN ?" for _ in caps)
    cap_params: list[object] = [x for w, r in caps.items() for x in (w, math.ceil(float(str(r["p95"]))))]
    excess = ledger.query_rows(
        f"""SELECT workflow, model, count(*) AS clipped,
                   CAST(sum(output_tokens - cap) AS BIGINT) AS excess
            FROM (SELECT workflow, model, output_tokens, CASE {case} END AS cap FROM usage_events WHERE {chat}) AS c
            WHERE output_tokens > cap GROUP BY workflow, model""",
        [*cap_params, *params],
    )
    out: _Found = []
    for workflow, r in caps.items():
        saving, clipped = Decimal(0), 0
        for e in (e for e in excess if e["workflow"] == workflow):
            rate = rates.get((workflow, str(e["model"])))
            clipped += int(str(e["clipped"]))
            if rate is not None:
                saving += int(str(e["excess"])) * rate.output
        text = (
            f"half of its answers are under {float(str(r['p50'])):,.0f} tokens but 1% run past "
            f"{float(str(r['p99'])):,.0f} (longest {int(str(r['top'])):,}); max_tokens = "
            f"{math.ceil(float(str(r['p95']))):,} (its p95) would have cut {clipped:,} calls short"
        )
        out.append((workflow, saving, text))
    return out


def _loops(ledger: Ledger, filters: Filters) -> _Found:
    where, params = filters.where()
    runs = ledger.query_rows(
        f"""WITH r AS (SELECT workflow, task_run_id, max(iteration) AS loops FROM usage_events
                       WHERE {where} AND iteration IS NOT NULL AND task_run_id IS NOT NULL AND workflow IS NOT NULL
                       GROUP BY workflow, task_run_id)
            SELECT workflow, count(*) AS runs, avg(loops) AS mean, quantile_cont(loops, 0.5) AS p50,
                   quantile_cont(loops, 0.95) AS p95, max(loops) AS top
            FROM r GROUP BY workflow""",
        params,
    )
    limits = {
        str(r["workflow"]): max(math.ceil(float(str(r["p95"]))), 2 * math.ceil(float(str(r["p50"])))) for r in runs
    }
    if not limits:
        return []
    # every workflow's calls past its own limit, in one scan rather than one per workflow
    case = " ".join("WHEN workflow = ? THEN ?" for _ in limits)
    cuts = {
        str(c["workflow"]): c
        for c in ledger.query_rows(
            f"""SELECT workflow, count(*) AS calls, CAST(coalesce(sum(cost_total), 0) AS DECIMAL(38, 12)) AS cost
                FROM usage_events WHERE {where} AND workflow IS NOT NULL AND iteration > CASE {case} END
                GROUP BY workflow""",
            [*params, *(x for item in limits.items() for x in item)],
        )
    }
    out: _Found = []
    for r in runs:
        workflow = str(r["workflow"])
        limit = limits[workflow]
        cut = cuts.get(workflow)
        if cut is None or not int(str(cut["calls"])):
            continue
        text = (
            f"its {int(str(r['runs'])):,} task runs loop {float(str(r['mean'])):.1f} times on average "
            f"(p95 {float(str(r['p95'])):.0f}, max {int(str(r['top'])):,}); a limit of {limit} iterations "
            f"would have cut {int(str(cut['calls'])):,} calls"
        )
        out.append((workflow, Decimal(str(cut["cost"])), text))
    return out


def _idle_seats(ledger: Ledger, start: datetime, end: datetime, team: str | None) -> list[Recommendation]:
    day = (end - timedelta(days=1)).date()
    mine = "" if team is None else "AND s.person_id IN (SELECT person_id FROM people WHERE team = ?)"
    rows = ledger.query_rows(
        f"""SELECT s.person_id, s.tool, CAST(s.monthly_cost AS DECIMAL(38, 12)) AS monthly_cost
           FROM seat_licenses s
           WHERE s.start_date <= ? AND (s.end_date IS NULL OR s.end_date >= ?)
             AND NOT EXISTS (SELECT 1 FROM usage_events e WHERE e.user_id = s.person_id AND e.ts >= ? AND e.ts < ?)
             {mine}
           ORDER BY s.person_id, s.tool""",
        [day, day, utc_naive(start), utc_naive(end), *([] if team is None else [team])],
    )
    return [
        Recommendation(
            "idle_seat",
            f"{r['person_id']} / {r['tool']}",
            Decimal(str(r["monthly_cost"])).quantize(CENT),
            f"{r['person_id']} holds a {r['tool']} seat (${Decimal(str(r['monthly_cost'])):,.2f}/month) and made "
            f"no AI calls in the {PERIOD_DAYS} days to {day}",
        )
        for r in rows
    ]


def recommendations(
    ledger: Ledger,
    *,
    as_of: datetime | None = None,
    filters: Filters = Filters(),  # noqa: B008 - frozen, never mutated
    overrides: Sequence[PriceOverride] = (),
) -> list[Recommendation]:
    """Savings opportunities of the 30 days before `as_of` (default: the last day with calls), biggest first."""
    end = as_of if as_of is not None else default_as_of(ledger)
    end = end if end.tzinfo else end.replace(tzinfo=UTC)
    start = end - timedelta(days=PERIOD_DAYS)
    scope = dataclasses.replace(filters, start=start, end=end)
    day = (end - timedelta(days=1)).date()
    book = RateBook(Pricer(overrides))
    # the reads do not depend on each other (outputs only on the usage): run them side by side
    with ThreadPoolExecutor(max_workers=3) as pool:
        first_job = pool.submit(ledger.query_rows, "SELECT min(ts) AS first FROM usage_events")
        runs_job = pool.submit(success_rates, ledger, scope)
        prefix_job = pool.submit(prefix_evidence, ledger, scope)
        loops_job = pool.submit(_loops, ledger, scope)
        seats_job = pool.submit(_idle_seats, ledger, start, end, filters.team)
        usage = _usage(ledger, scope)
        outputs = _outputs(ledger, scope, _rates_of(book, day, usage))
        first = first_job.result()[0]["first"]
        found: list[tuple[Kind, list[tuple[str, Decimal, str]]]] = [
            ("cheaper_model", _cheaper(usage, book, day, runs_job.result())),
            ("prompt_caching", _caching(usage, book, day, prefix_job.result())),
            ("over_retrieval", _retrieval(usage, book, day)),
            ("unbounded_output", outputs),
            ("agent_loops", loops_job.result()),
        ]
        seats = seats_job.result()
    covered = PERIOD_DAYS
    if isinstance(first, datetime):
        covered = max(1, min(PERIOD_DAYS, (end.replace(tzinfo=None) - first).days))
    scale = Decimal(PERIOD_DAYS) / Decimal(covered)
    out = [
        Recommendation(kind, subject, _money(saving, scale), evidence)
        for kind, items in found
        for subject, saving, evidence in items
        if _money(saving, scale) >= MIN_SAVING
    ]
    out += seats
    return sorted(out, key=lambda r: (-r.monthly_saving, r.kind, r.subject))


__all__ = ["Recommendation", "recommendations", "same_model"]
