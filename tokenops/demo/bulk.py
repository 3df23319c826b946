"""Millions of realistic usage events, fast, for benchmarks: the demo's shapes without its story.

Runs are drawn independently (workflow by volume, a member of its team, a day by the weekly
shape, an hour by the working day) and expanded by the same engine as the demo organisation,
so models, token sizes, retries, costs and attribution look the same; there is no adoption
curve, no time tracking and no incidents. Costs are exact.

Batches come in time order, each covering the next slice of the window, as a ledger fills up.
Each is a table of several `CHUNK`-row chunks, not one contiguous chunk: that keeps generation
cache-friendly, and DuckDB loaded 3M such rows in 4.1 s against 7.0 s once combined.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

import numpy as np
import pyarrow as pa

from tokenops.demo.build import DEFAULT_END
from tokenops.demo.calls import DAY_US, STEPS, Calls, People, Runs, draw_runs, expand, ids, take_calls, usage_table
from tokenops.demo.costs import RateCard, build_rate_card
from tokenops.demo.generate import HOUR_US, HOUR_WEIGHTS, WEEKDAY_FACTOR
from tokenops.demo.org import TEAMS, WORKFLOWS, Window, build_roster

CHUNK = 250_000
"""Calls generated at a time: a batch is several chunks, which keeps numpy's working set small."""


@dataclass(frozen=True, slots=True)
class _Plan:
    """What every chunk is drawn from."""

    seed: int
    """Random seed (also part of the ids)."""
    window: Window
    """Days the events spread over."""
    people: People
    """Who makes the calls."""
    card: RateCard
    """Prices of every model on every day."""
    members: tuple[np.ndarray, ...]
    """Roster indexes of each workflow's users."""
    workflow_p: np.ndarray
    """Probability of each workflow for a run (by its volume in the demo organisation)."""
    day_cdf: np.ndarray
    """Cumulative probability of each day (weekly shape, slow growth)."""
    mean_calls: float
    """Expected calls per run."""


def bulk_events(
    n: int, seed: int = 0, batch_size: int = 1_000_000, *, end: date = DEFAULT_END, days: int = 365
) -> Iterator[pa.Table]:
    """Yield `n` usage events in Arrow batches of at most `batch_size` rows.

    request_ids are unique across all batches of one seed; the calls of one task run share a
    task_run_id (a run cut by the end of a chunk continues under a new id).

    Args:
        n: Total events.
        seed: Random seed; the same seed gives the same events.
        batch_size: Rows per yielded table.
        end: Last day of the events.
        days: Days the events spread over, ending on `end`.
    """
    if n < 0 or batch_size <= 0:
        raise ValueError(f"need n >= 0 and batch_size > 0, got n={n!r}, batch_size={batch_size!r}")
    plan = _plan(seed, end, days)
    rng = np.random.default_rng([seed, 4])
    done = runs_done = 0
    while done < n:
        need = min(batch_size, n - done)
        parts: list[pa.Table] = []
        while need:
            size = min(need, CHUNK)
            # chunks walk through the window in order, as a ledger fills up: the k-th share of
            # the events covers the k-th share of the (weekly-shaped) calendar
            part, runs = _chunk(plan, rng, size, done, runs_done, (done / n, (done + size) / n))
            parts.append(part)
            done, runs_done, need = done + size, runs_done + runs, need - size
        yield parts[0] if len(parts) == 1 else pa.concat_tables(parts)


def _plan(seed: int, end: date, days: int) -> _Plan:
    window = Window(end, days, 0)
    roster = build_roster(seed, window.ai_start, days)
    members = tuple(
        np.arange(len(roster.team)) if w.team is None else np.flatnonzero(roster.team == TEAMS.index(w.team))
        for w in WORKFLOWS
    )
    volume = np.array([w.runs_per_day * len(m) for w, m in zip(WORKFLOWS, members, strict=True)])
    loops = np.array([1 + w.extra_iterations for w in WORKFLOWS])
    calls_per_run = STEPS["prefix"] + STEPS["suffix"] + STEPS["loop"] * loops
    day_p = WEEKDAY_FACTOR[window.weekdays(0, days)] * (1 + 0.15 * np.arange(days) / days)
    return _Plan(
        seed=seed,
        window=window,
        people=People(roster.person_ids, tuple(TEAMS[t] for t in roster.team)),
        card=build_rate_card(window.ai_start, days),
        members=members,
        workflow_p=volume / volume.sum(),
        day_cdf=np.cumsum(day_p) / day_p.sum(),
        mean_calls=float((volume * calls_per_run).sum() / volume.sum()),
    )


def _chunk(
    plan: _Plan, rng: np.random.Generator, need: int, done: int, runs_done: int, share: tuple[float, float]
) -> tuple[pa.Table, int]:
    """`need` calls from the `share` of the calendar, and how many run ids were used.

    A few percent more runs than needed are drawn and random ones dropped (not the latest, which
    would leave a gap at the end of every chunk); one run may be cut short.
    """
    count = math.ceil(need / plan.mean_calls * 1.03) + 64
    wf = rng.choice(len(WORKFLOWS), count, p=plan.workflow_p)
    person = np.empty(count, dtype=np.int64)
    for w, team in enumerate(plan.members):
        sel = np.flatnonzero(wf == w)
        person[sel] = team[rng.integers(0, len(team), len(sel))]
    low, high = share
    day = np.minimum(np.searchsorted(plan.day_cdf, low + (high - low) * rng.random(count)), plan.window.days - 1)
    hour = rng.choice(24, count, p=HOUR_WEIGHTS / HOUR_WEIGHTS.sum())
    start = np.sort(plan.window.start_us + day * DAY_US + hour * HOUR_US + rng.integers(0, HOUR_US, count))
    runs = draw_runs(rng, wf, person, (start - plan.window.start_us) // DAY_US, start)
    calls = expand(runs, rng, plan.card, plan.window.end_us)
    if len(calls.run) < need:  # an unlucky draw of short runs: top up with another draw
        more, extra = _chunk(plan, rng, need - len(calls.run), done + len(calls.run), runs_done + count, share)
        head, _ = _table(plan, calls, runs, done, runs_done, count)
        return pa.concat_tables([head, more]), count + extra
    per_run = np.bincount(calls.run, minlength=count)
    order = rng.permutation(count)
    kept = np.searchsorted(np.cumsum(per_run[order]), need)  # order[:kept] fit, order[kept] is cut
    keep = np.zeros(count, dtype=bool)
    keep[order[:kept]] = True
    cut = order[kept]
    room = need - int(per_run[order[:kept]].sum())
    position = np.arange(len(calls.run)) - np.searchsorted(calls.run, calls.run)
    calls = take_calls(calls, np.flatnonzero(keep[calls.run] | ((calls.run == cut) & (position < room))))
    return _table(plan, calls, runs, done, runs_done, count)


def _table(plan: _Plan, calls: Calls, runs: Runs, done: int, runs_done: int, count: int) -> tuple[pa.Table, int]:
    request_ids = ids(f"bulk-{plan.seed}-", done + np.arange(len(calls.run)), width=10)
    run_ids = ids(f"bulkrun-{plan.seed}-", runs_done + np.arange(count), width=10)
    return usage_table(calls, runs, plan.people, request_ids, run_ids, plan.card), count
