"""The demo organisation's AI usage: task runs planned per person and day, their calls, outcomes, incidents.

Volume follows adoption (each adopter ramps up over three weeks from their adoption day), the
week (weekdays far above weekends), the working day and a slow growth; finance's reports
cluster at month end. Three incidents are injected on top, at fixed sizes whatever the scale,
and their ground truth is measured from the generated calls.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pyarrow as pa

from tokenops.demo.calls import (
    DAY_US,
    STATUSES,
    Calls,
    People,
    Runs,
    customer_column,
    draw_runs,
    expand,
    ids,
    pick,
    tag_strings,
    take_calls,
    usage_table,
)
from tokenops.demo.costs import RateCard, decimal_array, units_to_decimal
from tokenops.demo.org import TEAMS, WORKFLOW_INDEX, WORKFLOWS, Roster, Window
from tokenops.demo.truth import Incident
from tokenops.store.schema import TABLES

WEEKDAY_FACTOR = np.array([1.0, 1.05, 1.05, 1.0, 0.85, 0.07, 0.05])
HOUR_WEIGHTS = np.array(
    [0.2, 0.1, 0.1, 0.1, 0.1, 0.2, 0.5, 1.5, 4, 7, 8, 7.5, 5, 6, 7.5, 7, 6, 4.5, 2.5, 1.5, 1, 0.8, 0.5, 0.3]
)
HOUR_US = 3_600_000_000
GROWTH = 0.15
"""Usage per active person grows by this share over the AI period."""
RAMP_DAYS = 21
"""An adopter reaches full usage this many days after adopting."""
RUNAWAY_ITERATIONS = 320
SPIKE_RUNS = 150
PROMPT_MULTIPLIER = 3.0
_NORMAL, _SPIKE, _RUNAWAY = 0, 1, 2


@dataclass(frozen=True, slots=True)
class Usage:
    """The usage-side ledger tables and what is known about them."""

    usage_events: pa.Table
    """One row per model call, ordered by time."""
    task_runs: pa.Table
    """One row per task run, ordered by start."""
    outcomes: pa.Table
    """Business outcomes, ordered by time."""
    outcome_task_runs: pa.Table
    """Which task run produced each outcome."""
    incidents: tuple[Incident, ...]
    """Ground truth of the injected incidents."""
    total_cost: Decimal
    """Sum of priced calls, USD."""
    unpriced: int
    """Calls without a list price."""


def generate_usage(roster: Roster, window: Window, seed: int, scale: float, ns: str, card: RateCard) -> Usage:
    """Plan, expand and price every task run of the AI period."""
    rng = np.random.default_rng([seed, 2])
    runs, marker = _plan(roster, window, rng, scale)
    extra, extra_marker, change_us = _inject(roster, window, rng)
    runs = _concat(runs, extra)
    marker = np.concatenate([marker, extra_marker])
    changed = (runs.workflow == WORKFLOW_INDEX["support_qa"]) & (runs.start_us >= change_us)
    runs = _with(runs, input_scale=np.where(changed, PROMPT_MULTIPLIER, 1.0), variant=changed.astype(np.int64))
    order = np.argsort(runs.start_us, kind="stable")
    runs, marker = _take_runs(runs, order), marker[order]
    calls = expand(runs, rng, card, window.end_us)
    calls = take_calls(calls, np.argsort(calls.ts_us, kind="stable"))
    people = People(roster.person_ids, tuple(TEAMS[t] for t in roster.team))
    run_ids = ids(f"run-{ns}-", np.arange(len(runs.workflow)))
    events = usage_table(calls, runs, people, ids(f"req-{ns}-", np.arange(len(calls.run))), run_ids, card)
    started = np.full(len(runs.workflow), np.iinfo(np.int64).max)
    ended = np.zeros(len(runs.workflow), dtype=np.int64)
    np.minimum.at(started, calls.run, calls.ts_us)
    np.maximum.at(ended, calls.run, calls.end_us)
    task_runs = _task_runs_table(runs, people, run_ids, started, ended)
    outcomes, links = _outcomes(runs, people, run_ids, ended, rng, window, ns)
    total = calls.cost[:, calls.priced].sum()
    incidents = _incident_truth(roster, window, runs, marker, calls, run_ids, change_us)
    return Usage(
        events, task_runs, outcomes, links, incidents, units_to_decimal(int(total)), int((~calls.priced).sum())
    )


def _plan(roster: Roster, window: Window, rng: np.random.Generator, scale: float) -> tuple[Runs, np.ndarray]:
    days = window.days
    day = np.arange(days)
    since = day[:, None] - roster.adopt_day[None, :]
    active = (roster.adopt_day[None, :] >= 0) & (since >= 0)
    ramp = np.where(active, np.minimum(1.0, 0.35 + 0.65 * since / RAMP_DAYS), 0.0)
    season = WEEKDAY_FACTOR[window.weekdays(0, days)] * (1 + GROWTH * day / days)
    base = season[:, None] * ramp * roster.intensity[None, :] * scale
    dom = np.array([(window.ai_start + timedelta(days=int(d))).day for d in day])
    month_end = np.where((dom >= 27) | (dom <= 3), 4.0, 0.4)
    wf_parts, person_parts, day_parts = [], [], []
    for w, wf in enumerate(WORKFLOWS):
        members = (
            np.arange(len(roster.team)) if wf.team is None else np.flatnonzero(roster.team == TEAMS.index(wf.team))
        )
        lam = base[:, members] * wf.runs_per_day * (month_end[:, None] if wf.month_end else 1.0)
        counts = rng.poisson(lam)
        flat = np.repeat(np.arange(counts.size), counts.ravel())
        wf_parts.append(np.full(len(flat), w))
        person_parts.append(members[flat % len(members)])
        day_parts.append(flat // len(members))
    workflow, person, run_day = np.concatenate(wf_parts), np.concatenate(person_parts), np.concatenate(day_parts)
    hour = rng.choice(24, len(workflow), p=HOUR_WEIGHTS / HOUR_WEIGHTS.sum())
    start = window.start_us + run_day * DAY_US + hour * HOUR_US + rng.integers(0, HOUR_US, len(workflow))
    return draw_runs(rng, workflow, person, run_day, start), np.full(len(workflow), _NORMAL)


def _inject(roster: Roster, window: Window, rng: np.random.Generator) -> tuple[Runs, np.ndarray, int]:
    """A user's scripted spike of runs, one runaway agent run, and the prompt change's start."""
    if window.days < 14:
        raise ValueError(f"the demo needs at least 14 days of AI usage to place its incidents, got {window.days}")
    days = window.days
    spike_day, runaway_day = _weekday_before(window, int(days * 0.48)), _weekday_before(window, int(days * 0.63))
    seller, agent = _pilot(roster, "sales"), _pilot(roster, "support")
    spike_start = window.start_us + spike_day * DAY_US + 15 * HOUR_US + rng.integers(0, 3 * HOUR_US, SPIKE_RUNS)
    spike = draw_runs(
        rng,
        np.full(SPIKE_RUNS, WORKFLOW_INDEX["lead_enrichment"]),
        np.full(SPIKE_RUNS, seller),
        np.full(SPIKE_RUNS, spike_day),
        np.sort(spike_start),
    )
    loop_start = (
        window.start_us + runaway_day * DAY_US + 13 * HOUR_US + 40 * 60_000_000 + int(rng.integers(0, 600_000_000))
    )
    runaway = draw_runs(
        rng,
        np.array([WORKFLOW_INDEX["refund_agent"]]),
        np.array([agent]),
        np.array([runaway_day]),
        np.array([loop_start]),
    )
    runaway = _with(runaway, iterations=np.array([RUNAWAY_ITERATIONS]), status=np.array([STATUSES.index("failed")]))
    change_us = window.start_us + int(days * 0.77) * DAY_US + 10 * HOUR_US
    marker = np.concatenate([np.full(SPIKE_RUNS, _SPIKE), [_RUNAWAY]])
    return _concat(spike, runaway), marker, change_us


def _weekday_before(window: Window, day: int) -> int:
    while window.weekdays(day, 1)[0] >= 5:
        day -= 1
    return day


def _pilot(roster: Roster, team: str) -> int:
    """The team's first adopter (adopted on day 0, so active on any day)."""
    return int(np.flatnonzero((roster.team == TEAMS.index(team)) & (roster.adopt_day == 0))[0])


def _concat(a: Runs, b: Runs) -> Runs:
    return Runs(*(np.concatenate([getattr(a, f), getattr(b, f)]) for f in Runs.__dataclass_fields__))


def _take_runs(runs: Runs, order: np.ndarray) -> Runs:
    return Runs(*(getattr(runs, f)[order] for f in Runs.__dataclass_fields__))


def _with(runs: Runs, **arrays: np.ndarray) -> Runs:
    return Runs(*(arrays.get(f, getattr(runs, f)) for f in Runs.__dataclass_fields__))


def _timestamps(us: np.ndarray) -> pa.Array:
    return pa.array(us.astype(np.int64).view("datetime64[us]"))


def _task_runs_table(runs: Runs, people: People, run_ids: pa.Array, started: np.ndarray, ended: np.ndarray) -> pa.Table:
    columns = [
        run_ids,
        pick([w.name for w in WORKFLOWS], runs.workflow),
        pick(STATUSES, runs.status),
        _timestamps(started),
        _timestamps(ended),
        pick(people.ids, runs.person),
        pick(people.teams, runs.person),
        customer_column(runs.customer),
        pick(tag_strings(), runs.workflow * 2 + runs.variant),
    ]
    return pa.Table.from_arrays(columns, schema=TABLES["task_runs"].arrow_schema)


def _outcomes(
    runs: Runs,
    people: People,
    run_ids: pa.Array,
    ended: np.ndarray,
    rng: np.random.Generator,
    window: Window,
    ns: str,
) -> tuple[pa.Table, pa.Table]:
    wf = runs.workflow
    n = len(wf)
    conversion = np.array([w.conversion if w.outcome_type else 0.0 for w in WORKFLOWS])
    delay_h = np.array([w.outcome_delay_hours for w in WORKFLOWS])[wf] * rng.exponential(1.0, n)
    ts = ended + (delay_h * HOUR_US).astype(np.int64)
    won = np.flatnonzero((runs.status == 0) & (rng.random(n) < conversion[wf]) & (ts <= window.end_us))
    won = won[np.argsort(ts[won], kind="stable")]
    outcome_ids = ids(f"out-{ns}-", np.arange(len(won)))
    values = np.array([int((w.outcome_value or 0) * 10**12) for w in WORKFLOWS], dtype=np.int64)
    outcomes = pa.Table.from_arrays(
        [
            outcome_ids,
            _timestamps(ts[won]),
            pick([w.outcome_type for w in WORKFLOWS], wf[won]),
            decimal_array(values[wf[won]]),
            pick([w.name for w in WORKFLOWS], wf[won]),
            pick(people.ids, runs.person[won]),
            pick(people.teams, runs.person[won]),
        ],
        schema=TABLES["outcomes"].arrow_schema,
    )
    links = pa.Table.from_arrays([outcome_ids, pick(run_ids, won)], schema=TABLES["outcome_task_runs"].arrow_schema)
    return outcomes, links


def _when(us: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(us))


def _incident_truth(
    roster: Roster,
    window: Window,
    runs: Runs,
    marker: np.ndarray,
    calls: Calls,
    run_ids: pa.Array,
    change_us: int,
) -> tuple[Incident, ...]:
    call_marker = marker[calls.run]
    call_wf = runs.workflow[calls.run]

    def cost(mask: np.ndarray) -> Decimal:
        return units_to_decimal(int(calls.cost[:, mask & calls.priced].sum()))

    loop = call_marker == _RUNAWAY
    loop_run = int(np.flatnonzero(marker == _RUNAWAY)[0])
    agent = int(runs.person[loop_run])
    runaway = Incident(
        kind="runaway_loop",
        start=_when(calls.ts_us[loop].min()),
        end=_when(calls.end_us[loop].max()),
        workflow="refund_agent",
        team=roster.team_name(agent),
        user_id=roster.person_ids[agent],
        task_run_id=str(run_ids[loop_run]),
        magnitude=float(RUNAWAY_ITERATIONS),
        calls=int(loop.sum()),
        cost=cost(loop),
        description=f"A refund agent run looped {RUNAWAY_ITERATIONS} times without converging until it was killed.",
    )
    changed = (call_wf == WORKFLOW_INDEX["support_qa"]) & (calls.ts_us >= change_us)
    prompt = Incident(
        kind="prompt_change",
        start=_when(change_us),
        end=None,
        workflow="support_qa",
        team="support",
        user_id=None,
        task_run_id=None,
        magnitude=PROMPT_MULTIPLIER,
        calls=int(changed.sum()),
        cost=cost(changed),
        description="Prompt v8 of the support answers pastes the whole help centre into the prompt: input tokens x3.",
    )
    return runaway, prompt, _spike_truth(roster, window, runs, marker, calls, cost)


def _spike_truth(
    roster: Roster, window: Window, runs: Runs, marker: np.ndarray, calls: Calls, cost: Callable[[np.ndarray], Decimal]
) -> Incident:
    spike_runs = np.flatnonzero(marker == _SPIKE)
    seller, spike_day = int(runs.person[spike_runs[0]]), int(runs.day[spike_runs[0]])
    mine = (runs.person[calls.run] == seller) & (runs.workflow[calls.run] == WORKFLOW_INDEX["lead_enrichment"])
    call_day = (calls.ts_us - window.start_us) // DAY_US
    per_day = np.bincount(call_day[mine], minlength=window.days)
    working = (window.weekdays(0, window.days) < 5) & (np.arange(window.days) != spike_day)
    usual = max(float(per_day[working].mean()), 1.0)
    that_day = mine & (call_day == spike_day)
    in_spike = marker[calls.run] == _SPIKE
    return Incident(
        kind="user_spike",
        start=_when(calls.ts_us[in_spike].min()),
        end=_when(calls.end_us[in_spike].max()),
        workflow="lead_enrichment",
        team=roster.team_name(seller),
        user_id=roster.person_ids[seller],
        task_run_id=None,
        magnitude=round(float(per_day[spike_day]) / usual, 2),
        calls=int(that_day.sum()),
        cost=cost(that_day),
        description=f"{roster.names[seller]} ran a script that enriched {SPIKE_RUNS} leads in one afternoon.",
    )
