"""Hours AI saved, net of what changed for everyone: difference in differences on time entries.

The design (docs/yield.md has it in full):

- A task category is a time-entry activity mapped to a workflow. Each person's baseline for a
  category is the mean duration of their entries in it before `baseline_end`: comparing people
  with themselves removes who is fast and which tasks are long.
- Non-adopters' entries after `baseline_end`, over their own baselines, give the common trend
  week by week: tasks that drift longer or shorter for reasons other than AI.
- Without AI, an adopter's entry after their adoption day would have taken their baseline x that
  week's trend. Hours saved are that counterfactual minus the time booked, summed over every
  entry after adoption, done with AI or not (intention to treat: which tasks people chose to do
  with AI cannot bias it).
- Intervals come from a cluster bootstrap: control people and the group's adopters are resampled
  apart (for one person, their weeks). Floats live only here; results are Decimal.

A person adopts on their first AI use: their first model call in `usage_events` or their first
time entry booked with an AI tool. Holding a seat licence is not use (idle seats are common), so
a seat holder who never used AI is a non-adopter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Literal, get_args

import numpy as np

from tokenops.store import Ledger

YieldBy = Literal["all", "team", "workflow", "person"]
YIELD_BY: tuple[str, ...] = get_args(YieldBy)
_HOURS = Decimal("0.01")
_CENTS = Decimal("0.01")

_ADOPTION_SQL = """
    WITH uses AS (
        SELECT user_id AS person_id, min(ts) AS first_use FROM usage_events
        WHERE user_id IS NOT NULL GROUP BY user_id
        UNION ALL
        SELECT person_id, min(start) AS first_use FROM time_entries
        WHERE tool IS NOT NULL GROUP BY person_id
    )
    SELECT person_id, CAST(min(first_use) AS DATE) AS adopted FROM uses GROUP BY person_id
"""

# one statement, so the calls are scanned once for adoption; the first row carries the period even without cells
_PANEL_SQL = f"""
    WITH adoption AS ({_ADOPTION_SQL}),
    bounds AS (
        SELECT COALESCE(CAST(? AS DATE), (SELECT min(adopted) FROM adoption)) AS baseline_end,
               COALESCE(CAST(? AS DATE), (SELECT CAST(max(start) AS DATE) + 1 FROM time_entries)) AS period_end
    ),
    baseline AS (
        SELECT e.person_id, e.workflow, count(*) AS n,
               CAST(avg(e.duration_hours) AS DOUBLE PRECISION) AS mean_hours,
               -- from exact sums, not stddev_samp: a parallel float aggregate differs in its last bits from run
               -- to run, and the seeded bootstrap must give the same intervals every time
               CASE WHEN count(*) > 1 THEN sqrt(greatest(
                   (CAST(sum(e.duration_hours * e.duration_hours) AS DOUBLE PRECISION)
                    - CAST(sum(e.duration_hours) AS DOUBLE PRECISION) * CAST(sum(e.duration_hours) AS DOUBLE PRECISION)
                      / count(*)) / (count(*) - 1), 0)) END AS sd_hours
        FROM time_entries AS e CROSS JOIN bounds AS d
        WHERE e.workflow IS NOT NULL AND e.start < d.baseline_end GROUP BY e.person_id, e.workflow
    ),
    cells AS (
        SELECT t.person_id, p.team, p.loaded_hourly_cost AS hourly, t.workflow, a.adopted,
               date_trunc('week', t.start) AS week, count(*) AS entries,
               CAST(sum(t.duration_hours) AS DOUBLE PRECISION) AS hours,
               b.n AS baseline_entries, b.mean_hours, b.sd_hours
        FROM time_entries AS t
        CROSS JOIN bounds AS d
        JOIN people AS p ON p.person_id = t.person_id
        LEFT JOIN adoption AS a ON a.person_id = t.person_id
        LEFT JOIN baseline AS b ON b.person_id = t.person_id AND b.workflow = t.workflow
        WHERE t.workflow IS NOT NULL AND t.start >= d.baseline_end AND t.start < d.period_end
          AND (a.adopted IS NULL OR a.adopted >= d.period_end OR t.start >= a.adopted)
        GROUP BY t.person_id, p.team, p.loaded_hourly_cost, t.workflow, a.adopted, date_trunc('week', t.start),
                 b.n, b.mean_hours, b.sd_hours
    )
    SELECT d.baseline_end, d.period_end, c.* FROM bounds AS d LEFT JOIN cells AS c ON TRUE
    ORDER BY c.person_id, c.workflow, c.week  -- the bootstrap resamples in row order: the same on every backend
"""


@dataclass(frozen=True, slots=True)
class Design:
    """How the estimate is made and when there is too little data to make it."""

    baseline_end: date | None = None
    """First day after the baseline; None: the organisation's first day of AI use."""
    end: date | None = None
    """First day after the period studied; None: the day after the last time entry."""
    min_adopters: int = 5
    """Fewer adopters with a baseline in a group: insufficient data."""
    min_non_adopters: int = 5
    """Fewer non-adopters with entries in both periods: insufficient data everywhere."""
    min_entries: int = 30
    """Fewer entries after adoption in a group: insufficient data."""
    min_baseline_entries: int = 3
    """A person's category needs this many baseline entries to serve as their baseline."""
    min_weeks: int = 4
    """One person's estimate needs entries after adoption in this many weeks."""
    resamples: int = 1000
    """Bootstrap resamples."""
    confidence: float = 0.95
    """Coverage of the intervals."""
    seed: int = 0
    """Bootstrap seed: the same data and seed give the same intervals."""


@dataclass(frozen=True, slots=True)
class Panel:
    """Time entries reduced to what the estimator needs: one cell per adopter, category and week."""

    baseline_end: date
    """First day after the baseline."""
    end: date
    """First day after the period studied."""
    people: tuple[str, ...]
    """Adopters, indexed by `cell_person`."""
    teams: tuple[str, ...]
    """Team of each adopter."""
    hourly: tuple[Decimal, ...]
    """Loaded hourly cost of each adopter, USD."""
    workflows: tuple[str, ...]
    """Task categories, indexed by `cell_workflow`."""
    all_teams: tuple[str, ...]
    """Teams of everyone with entries, adopters or not."""
    cell_person: np.ndarray
    cell_workflow: np.ndarray
    cell_week: np.ndarray
    cell_expected: np.ndarray
    """Entries x the person's baseline mean for the category: the hours before any trend."""
    cell_actual: np.ndarray
    """Hours booked."""
    cell_entries: np.ndarray
    cell_baseline_error: np.ndarray
    """Standard error of the person's baseline mean for the category, relative to the mean."""
    control_ratio: np.ndarray
    """(control person, week): sum of duration / own baseline."""
    control_entries: np.ndarray
    """(control person, week): entries."""
    unmatched_entries: int
    """Entries left out because their person had too few baseline entries in the category."""
    adopted_in_baseline: int
    """People left out because they used AI before `baseline_end` (their baseline is not AI-free)."""


@dataclass(frozen=True, slots=True)
class Saving:
    """Estimated hours saved by one group and their labour value, with bootstrap intervals."""

    group: str
    """Team, workflow, person or `all`."""
    adopters: int
    """Adopters whose entries count."""
    entries: int
    """Time entries after adoption."""
    hours: Decimal
    """Hours saved over the period."""
    hours_low: Decimal
    hours_high: Decimal
    naive_hours: Decimal
    """Before/after without the control group: what the trend makes of it."""
    value: Decimal
    """Hours saved x each person's loaded hourly cost, USD."""
    value_low: Decimal
    value_high: Decimal


@dataclass(frozen=True, slots=True)
class Insufficient:
    """A group for which the data cannot support an estimate, and why."""

    group: str
    """Team, workflow, person or `all`."""
    reason: str
    """What is missing, in numbers."""
    adopters: int
    """Adopters whose entries count."""
    entries: int
    """Time entries after adoption."""


def adoption_dates(ledger: Ledger) -> dict[str, date]:
    """Each person's first day of AI use (first model call or first time entry with an AI tool)."""
    return {str(r["person_id"]): _as_date(r["adopted"]) for r in ledger.query_rows(_ADOPTION_SQL)}


def load_panel(ledger: Ledger, design: Design = Design()) -> Panel | str:
    """Read the cells from the ledger; a string says why there is nothing to estimate from."""
    rows = ledger.query_rows(_PANEL_SQL, [design.baseline_end, design.end])
    baseline_end, end = rows[0]["baseline_end"], rows[0]["period_end"]
    if baseline_end is None:
        return "nobody has used AI yet: no model calls and no time entries with an AI tool"
    if end is None:
        return "no time entries: import timesheets to measure hours saved"
    baseline_end, end = _as_date(baseline_end), _as_date(end)
    if end <= baseline_end:
        return f"no time after the baseline: the period ends {end} but the baseline runs to {baseline_end}"
    return _panel([r for r in rows if r["person_id"] is not None], baseline_end, end, design)


def _panel(rows: Sequence[dict[str, object]], baseline_end: date, end: date, design: Design) -> Panel:
    weeks = (end - baseline_end).days // 7 + 2
    first_monday = baseline_end - timedelta(days=baseline_end.weekday())
    people: dict[str, int] = {}
    teams: list[str] = []
    hourly: list[Decimal] = []
    controls: dict[str, int] = {}
    workflows: dict[str, int] = {}
    cells: list[tuple[int, int, int, float, float, int, float]] = []
    ratio: dict[tuple[int, int], list[float]] = {}
    unmatched, early, all_teams = 0, set(), set()
    for r in rows:
        person, entries = str(r["person_id"]), int(str(r["entries"]))
        all_teams.add(str(r["team"]))
        adopted = None if r["adopted"] is None else _as_date(r["adopted"])
        if adopted is not None and adopted < baseline_end:
            early.add(person)
            continue
        if r["baseline_entries"] is None or int(str(r["baseline_entries"])) < design.min_baseline_entries:
            unmatched += entries
            continue
        week = (_as_date(r["week"]) - first_monday).days // 7
        mean, hours = float(str(r["mean_hours"])), float(str(r["hours"]))
        if adopted is None or adopted >= end:
            q = controls.setdefault(person, len(controls))
            ratio.setdefault((q, week), [0.0, 0.0])
            ratio[(q, week)][0] += hours / mean
            ratio[(q, week)][1] += entries
            continue
        if person not in people:
            people[person] = len(people)
            teams.append(str(r["team"]))
            hourly.append(Decimal(str(r["hourly"])))
        w = workflows.setdefault(str(r["workflow"]), len(workflows))
        n_base, sd = int(str(r["baseline_entries"])), float(str(r["sd_hours"] or 0.0))
        cells.append((people[person], w, week, entries * mean, hours, entries, sd / mean / n_base**0.5))
    control_ratio = np.zeros((len(controls), weeks))
    control_entries = np.zeros((len(controls), weeks))
    for (q, week), (total, n) in ratio.items():
        control_ratio[q, week], control_entries[q, week] = total, n
    cols = np.array(cells, dtype=float).reshape(-1, 7).T
    return Panel(
        baseline_end=baseline_end,
        end=end,
        people=tuple(people),
        teams=tuple(teams),
        hourly=tuple(hourly),
        workflows=tuple(workflows),
        all_teams=tuple(sorted(all_teams)),
        cell_person=cols[0].astype(np.int64),
        cell_workflow=cols[1].astype(np.int64),
        cell_week=cols[2].astype(np.int64),
        cell_expected=cols[3],
        cell_actual=cols[4],
        cell_entries=cols[5].astype(np.int64),
        cell_baseline_error=cols[6],
        control_ratio=control_ratio,
        control_entries=control_entries,
        unmatched_entries=unmatched,
        adopted_in_baseline=len(early),
    )


def estimate(panel: Panel, by: str, design: Design = Design()) -> list[Saving | Insufficient]:
    """Hours saved per group (`all`, `team`, `workflow` or `person`), or why a group has too little data."""
    if by not in YIELD_BY:
        raise ValueError(f"Unknown grouping {by!r}; choose from {', '.join(YIELD_BY)}")
    if not 0 < design.confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {design.confidence!r}")
    trend, trends = _trends(panel, design)
    groups = _groups(panel, by)
    results: list[Saving | Insufficient] = []
    for index, (name, mask) in enumerate(groups):
        adopters = int(np.unique(panel.cell_person[mask]).size)
        entries = int(panel.cell_entries[mask].sum())
        reason = _shortfall(panel, by, mask, adopters, entries, design)
        if reason is not None:
            results.append(Insufficient(name, reason, adopters, entries))
            continue
        rng = np.random.default_rng([design.seed, 1, index])
        results.append(_saving(panel, name, mask, by == "person", trend, trends, rng, design))
    return results


def _groups(panel: Panel, by: str) -> list[tuple[str, np.ndarray]]:
    if by == "all":
        return [("all", np.ones(len(panel.cell_person), dtype=bool))]
    if by == "team":
        team = np.array(panel.teams, dtype=object)[panel.cell_person] if panel.people else np.array([], dtype=object)
        return [(t, team == t) for t in panel.all_teams]
    if by == "workflow":
        return [(w, panel.cell_workflow == i) for i, w in sorted(enumerate(panel.workflows), key=lambda x: x[1])]
    return [(p, panel.cell_person == i) for i, p in sorted(enumerate(panel.people), key=lambda x: x[1])]


def _shortfall(panel: Panel, by: str, mask: np.ndarray, adopters: int, entries: int, design: Design) -> str | None:
    controls = int((panel.control_entries.sum(axis=1) > 0).sum())
    if controls < design.min_non_adopters:
        return (
            f"only {controls} non-adopters have {design.min_baseline_entries}+ baseline entries and entries after; "
            f"at least {design.min_non_adopters} are needed to tell AI from changes that hit everyone"
        )
    if by == "person":
        weeks = int(np.unique(panel.cell_week[mask]).size)
        if weeks < design.min_weeks:
            return f"entries after adoption in {weeks} weeks; at least {design.min_weeks} are needed"
    elif adopters < design.min_adopters:
        return (
            f"only {adopters} adopters have {design.min_baseline_entries}+ baseline entries and entries after "
            f"adoption; at least {design.min_adopters} are needed"
        )
    if entries < design.min_entries:
        return f"only {entries} time entries after adoption; at least {design.min_entries} are needed"
    return None


def _trends(panel: Panel, design: Design) -> tuple[np.ndarray, np.ndarray]:
    """The common trend per week (point estimate, and one row per resample of the control people)."""
    ratio, entries = panel.control_ratio, panel.control_entries
    n = ratio.shape[0]
    if n == 0:
        return np.ones(ratio.shape[1]), np.ones((design.resamples, ratio.shape[1]))
    rng = np.random.default_rng([design.seed, 0])
    draws = rng.multinomial(n, np.full(n, 1.0 / n), size=design.resamples).astype(float)
    return _trend(ratio.sum(axis=0)[None, :], entries.sum(axis=0)[None, :])[0], _trend(draws @ ratio, draws @ entries)


def _trend(ratio: np.ndarray, entries: np.ndarray) -> np.ndarray:
    """Mean ratio per week; weeks without control entries take the period's mean ratio."""
    overall = ratio.sum(axis=1) / np.maximum(entries.sum(axis=1), 1.0)
    out = np.broadcast_to(overall[:, None], ratio.shape).copy()
    np.divide(ratio, entries, out=out, where=entries > 0)
    return out


def _saving(
    panel: Panel,
    name: str,
    mask: np.ndarray,
    one_person: bool,
    trend: np.ndarray,
    trends: np.ndarray,
    rng: np.random.Generator,
    design: Design,
) -> Saving:
    person, week = panel.cell_person[mask], panel.cell_week[mask]
    expected, actual = panel.cell_expected[mask], panel.cell_actual[mask]
    # clusters: the group's people, or one person's (category, week) cells
    cluster = np.arange(person.size) if one_person else np.unique(person, return_inverse=True)[1]
    n = int(cluster.max()) + 1
    shape = np.zeros((n, trend.size))
    np.add.at(shape, (cluster, week), expected)
    booked = np.bincount(cluster, weights=actual, minlength=n)
    owner = np.zeros(n, dtype=np.int64)
    owner[cluster] = person  # every cluster belongs to one person
    rate = np.array([float(panel.hourly[p]) for p in owner])
    saved = [Decimal(repr(round(float(h), 6))) for h in shape @ trend - booked]
    hours = sum(saved, Decimal(0))
    value = sum((h * panel.hourly[p] for h, p in zip(saved, owner.tolist(), strict=True)), Decimal(0))
    draws = rng.multinomial(n, np.full(n, 1.0 / n), size=design.resamples).astype(float)
    if one_person:
        # resampling one person's weeks cannot see the error in their own baseline means, so draw it too
        category = np.unique(panel.cell_workflow[mask], return_inverse=True)[1]
        error = rng.standard_normal((design.resamples, int(category.max()) + 1))[:, category]
        scaled = expected[None, :] * (1.0 + error * panel.cell_baseline_error[mask][None, :])
        boot_hours = (draws * (scaled * trends[:, week] - actual[None, :])).sum(axis=1)
        boot_value = boot_hours * rate[0]
    else:
        boot_hours = ((draws @ shape) * trends).sum(axis=1) - draws @ booked
        boot_value = ((draws @ (shape * rate[:, None])) * trends).sum(axis=1) - draws @ (booked * rate)
    tail = (1 - design.confidence) / 2
    h_low, h_high = np.quantile(boot_hours, [tail, 1 - tail])
    v_low, v_high = np.quantile(boot_value, [tail, 1 - tail])
    return Saving(
        group=name,
        adopters=int(np.unique(person).size),
        entries=int(panel.cell_entries[mask].sum()),
        hours=hours.quantize(_HOURS),
        hours_low=_dec(h_low, _HOURS),
        hours_high=_dec(h_high, _HOURS),
        naive_hours=_dec(float(expected.sum() - actual.sum()), _HOURS),
        value=value.quantize(_CENTS),
        value_low=_dec(v_low, _CENTS),
        value_high=_dec(v_high, _CENTS),
    )


def _dec(value: float, step: Decimal) -> Decimal:
    return Decimal(repr(float(value))).quantize(step)


def _as_date(value: object) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])
