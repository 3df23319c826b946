"""The demo's time tracking: blocks of work before and after AI adoption, and the true hours saved.

Every working day each person books blocks of their team's activities. A block's length is the
activity's typical length x the person's speed x a common trend x noise; done with AI (an
adopter, after their adoption day, most of the time) it is shorter by the workflow's true
saving factor. The trend hits everyone, adopters or not, so a naive before/after comparison of
adopters mixes it into the saving and only difference-in-differences against non-adopters
recovers the factor.
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pyarrow as pa

from tokenops.demo.calls import ids, pick
from tokenops.demo.costs import decimal_array
from tokenops.demo.org import DAY_US, NON_AI_ACTIVITIES, TEAMS, WORKFLOWS, Roster, Window
from tokenops.demo.truth import Savings
from tokenops.store.schema import TABLES

TIME_TREND = 0.15
"""Task durations drift 15% longer from the first baseline day to the last day, for everyone."""
AI_USE_RATE = 0.85
"""After adopting, the share of an adopter's workflow tasks done with AI."""
NOISE = 0.25
"""Log-normal spread of one block's length."""
_HOUR_US = 3_600_000_000
_DURATION = pa.decimal128(12, 6)


def generate_time_entries(roster: Roster, window: Window, seed: int, ns: str) -> tuple[pa.Table, Savings]:
    """Time entries of every person over baseline + AI period, and the hours AI really saved."""
    rng = np.random.default_rng([seed, 3])
    activities = [w.activity for w in WORKFLOWS] + [a for a, _, _ in NON_AI_ACTIVITIES]
    n_wf = len(WORKFLOWS)
    hours = np.array([w.task_hours for w in WORKFLOWS] + [h for _, h, _ in NON_AI_ACTIVITIES])
    share = np.array([w.daily_share for w in WORKFLOWS] + [s for _, _, s in NON_AI_ACTIVITIES])
    saving = np.array([w.saving for w in WORKFLOWS] + [0.0] * len(NON_AI_ACTIVITIES))
    people, n_days, n_act = len(roster.team), window.baseline_days + window.days, len(activities)
    eligible = np.ones((people, n_act), dtype=bool)
    for a, wf in enumerate(WORKFLOWS):
        if wf.team is not None:
            eligible[:, a] = roster.team == TEAMS.index(wf.team)
    working = window.weekdays(-window.baseline_days, n_days) < 5
    grid = eligible[:, None, :] & working[None, :, None] & (rng.random((people, n_days, n_act)) < share)
    person, day, act = (a.astype(np.int64) for a in np.nonzero(grid))  # ordered by person, day, activity
    ai_day = day - window.baseline_days  # day of the AI period, negative in the baseline
    trend = 1.0 + TIME_TREND * day / max(n_days - 1, 1)
    counterfactual = hours[act] * roster.speed[person] * trend * rng.lognormal(0.0, NOISE, len(act))
    adopt = roster.adopt_day[person]
    with_ai = (act < n_wf) & (adopt >= 0) & (ai_day >= adopt) & (rng.random(len(act)) < AI_USE_RATE)
    actual = counterfactual * (1.0 - np.where(with_ai, saving[act], 0.0))
    micro_hours = np.maximum(np.rint(actual * 1e6).astype(np.int64), 1)
    start = _starts(rng, window, person, day, micro_hours)
    tools = [w.feature for w in WORKFLOWS]
    table = pa.Table.from_arrays(
        [
            ids(f"te-{ns}-", np.arange(len(act))),
            pick(roster.person_ids, person),
            pick(activities, act),
            pa.array(start.view("datetime64[us]")),
            decimal_array(micro_hours, type=_DURATION),
            pick([None, *tools], np.where(with_ai, act + 1, 0)),
            pick([w.name for w in WORKFLOWS] + [None] * len(NON_AI_ACTIVITIES), act),
        ],
        schema=TABLES["time_entries"].arrow_schema,
    )
    saved = np.where(with_ai, counterfactual - actual, 0.0)
    return table, _savings(roster, window, person, act, saved)


def roster_ids(roster: Roster) -> pa.Array:
    """person_id of each roster index."""
    return pa.array(roster.person_ids, pa.string())


def _starts(
    rng: np.random.Generator, window: Window, person: np.ndarray, day: np.ndarray, micro_hours: np.ndarray
) -> np.ndarray:
    """Blocks of one person's day follow each other from about 08:00 UTC, with short breaks."""
    n = len(person)
    length_us = micro_hours * 3600 + rng.integers(0, 15, n) * 60_000_000
    first = np.ones(n, dtype=bool)
    first[1:] = (person[1:] != person[:-1]) | (day[1:] != day[:-1])
    before = np.cumsum(length_us) - length_us
    offset = before - np.maximum.accumulate(np.where(first, before, 0))
    day_start = window.start_us + (day - window.baseline_days) * DAY_US + 8 * _HOUR_US
    late = rng.integers(0, 4, n)[np.maximum.accumulate(np.where(first, np.arange(n), 0))] * 900_000_000
    return day_start + late + offset


def _savings(roster: Roster, window: Window, person: np.ndarray, act: np.ndarray, saved: np.ndarray) -> Savings:
    per_month = 30.0 / window.days
    by_person = np.bincount(person, weights=saved, minlength=len(roster.team))
    by_workflow = np.bincount(act, weights=saved, minlength=len(WORKFLOWS) + len(NON_AI_ACTIVITIES))
    by_team = np.bincount(roster.team, weights=by_person, minlength=len(TEAMS))
    value = sum(
        (Decimal(repr(float(h))) * Decimal(int(c)) / 100 for h, c in zip(by_person, roster.hourly_cents, strict=True)),
        Decimal(0),
    )
    return Savings(
        by_person_month={p: float(h) * per_month for p, h in zip(roster.person_ids, by_person, strict=True)},
        by_team_month={t: float(h) * per_month for t, h in zip(TEAMS, by_team, strict=True)},
        by_workflow_month={w.name: float(by_workflow[i]) * per_month for i, w in enumerate(WORKFLOWS)},
        total_hours=float(saved.sum()),
        value_usd=value.quantize(Decimal("0.01")),
        time_trend=TIME_TREND,
        ai_use_rate=AI_USE_RATE,
    )
