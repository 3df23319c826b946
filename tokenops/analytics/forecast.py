"""Where this month's spend will end, per team or workflow, with an interval.

Each series is daily spend over the last eight weeks, modelled as a robust linear trend
(Theil-Sen on the last four weeks) plus a weekly profile (medians around a centred 7-day mean)
plus, when the history shows one, a month-end surge (last five and first three days of a month,
where finance closes). The interval comes from a residual bootstrap that refits the trend on
resampled histories, so it covers both day-to-day noise and an uncertain slope. Series with
fewer than two weeks of history get a run-rate estimate without interval, and say so.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import numpy as np

from tokenops.analytics.spend import DIMENSIONS, Filters
from tokenops.store import Ledger

HISTORY_DAYS = 56
"""Days of history read per series."""
MIN_HISTORY_DAYS = 14
"""Fewer days of history than this: no model, no interval."""
TREND_DAYS = 28
"""The trend is fitted on this many most recent days."""
DAMPING = 0.95
"""Daily damping of the trend beyond the last day (a damped trend: growth rarely lasts unchanged)."""
PATHS = 1000
"""Bootstrap paths."""
CENT = Decimal("0.01")
_COLUMN = {"user": "user_id"}


@dataclass(frozen=True, slots=True)
class Forecast:
    """One series' month-end spend."""

    key: str | None
    """Team, workflow ... (None: calls without one)."""
    month: date
    """First day of the month forecast."""
    actual_to_date: Decimal
    """Priced spend from the month's start up to `as_of` (exact)."""
    forecast: Decimal
    """Expected month-end total: actual so far plus the expected rest, to the cent."""
    low: Decimal | None
    """Lower end of the interval; None when the history is too short."""
    high: Decimal | None
    """Upper end of the interval."""
    history_days: int
    """Days of history the series has (up to `HISTORY_DAYS`)."""
    unpriced_events: int
    """Calls this month without a price: their cost is unknown, not in the numbers."""
    note: str
    """How the estimate was made, or why it is weak."""


@dataclass(frozen=True, slots=True)
class _Model:
    intercept: float
    slope: float
    weekly: np.ndarray
    surge: float


def month_window(day: date) -> bool:
    """Last five or first three days of a month: when month-end work (closing, reports) happens."""
    return day.day <= 3 or (day + timedelta(days=5)).month != day.month


def theil_sen(t: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Robust line per row of `z` (paths x days): median pairwise slope, median intercept."""
    i, j = np.triu_indices(len(t), 1)
    slopes = np.median((z[:, j] - z[:, i]) / (t[j] - t[i]), axis=1)
    return np.median(z - slopes[:, None] * t, axis=1), slopes


def _weekly(y: np.ndarray, weekday: np.ndarray) -> np.ndarray:
    """Multiplicative weekday profile (mean 1): medians of each day over its centred 7-day mean."""
    if len(y) < 14:
        return np.ones(7)
    mean7 = np.convolve(y, np.ones(7) / 7, mode="valid")  # centred on day 3 .. n-4
    ok = mean7 > 0
    ratio = y[3 : len(y) - 3][ok] / mean7[ok]
    wd = weekday[3 : len(y) - 3][ok]
    profile = np.array([np.median(ratio[wd == d]) if (wd == d).any() else 1.0 for d in range(7)])
    normal: np.ndarray = profile / profile.mean() if profile.mean() > 0 else np.ones(7)
    return normal


def _spread(ratios: np.ndarray) -> float:
    return 1.4826 * float(np.median(np.abs(ratios - np.median(ratios)))) if len(ratios) else 0.0


def fit(y: np.ndarray, weekday: np.ndarray, window: np.ndarray) -> _Model:
    """Trend, weekly profile and month-end surge of one daily series.

    The trend is fitted on deseasonalised working days only (quiet days say little about the level).
    """
    weekly = _weekly(y, weekday)
    active = weekly[weekday] >= 0.2
    z = y / np.where(active, weekly[weekday], 1.0)
    t = np.arange(len(y), dtype=float)
    recent = t >= len(y) - TREND_DAYS
    keep = np.flatnonzero(recent & active)
    a, b = theil_sen(t[keep], z[None, keep])
    surge = 1.0
    inside, outside = np.flatnonzero(window & active), np.flatnonzero(~window & active)
    if len(inside) >= 3 and len(outside) >= 7:
        base = outside[-TREND_DAYS:]
        a2, b2 = theil_sen(t[base], z[None, base])
        line = a2[0] + b2[0] * t
        if (line[inside] > 0).all() and (line[outside] > 0).all():
            factor = float(np.median(z[inside] / line[inside]))
            if abs(factor - 1) > max(3 * _spread(z[outside] / line[outside]), 0.1):
                a, b, surge = a2, b2, factor
    return _Model(float(a[0]), float(b[0]), weekly, surge)


def _shape(m: _Model, weekday: np.ndarray, window: np.ndarray) -> np.ndarray:
    shape: np.ndarray = m.weekly[weekday] * np.where(window, m.surge, 1.0)
    return shape


def project(
    y: np.ndarray, days: list[date], future: list[date], *, level: float = 0.9, seed: int = 0
) -> tuple[float, float, float]:
    """Expected sum of `future` days' spend and its `level` interval, from the daily history `y`."""
    weekday = np.array([d.weekday() for d in days], dtype=int)
    window = np.array([month_window(d) for d in days], dtype=bool)
    f_shape_args = (np.array([d.weekday() for d in future], dtype=int), np.array([month_window(d) for d in future]))
    model = fit(y, weekday, window)
    t = np.arange(len(y), dtype=float)
    # future days sit at the last day plus a damped number of trend steps
    tf = len(y) - 1 + np.cumsum(DAMPING ** np.arange(1, len(future) + 1))
    line = model.intercept + model.slope * t
    fitted = np.maximum(line, 0) * _shape(model, weekday, window)
    active = np.flatnonzero((model.weekly[weekday] >= 0.2) & (t >= len(y) - TREND_DAYS) & (fitted > 0))
    ratios = y[active] / fitted[active] if len(active) else np.ones(1)
    rng = np.random.default_rng(seed)
    # residual bootstrap: resampled histories -> refitted trend -> future days with fresh noise
    z_star = line[active] * rng.choice(ratios, (PATHS, len(active)))
    a, b = theil_sen(t[active], z_star)
    paths = np.maximum(a[:, None] + b[:, None] * tf, 0) * _shape(model, *f_shape_args)
    sums = (paths * rng.choice(ratios, (PATHS, len(future)))).sum(axis=1)
    tail = (1 - level) / 2
    low, point, high = np.quantile(sums, [tail, 0.5, 1 - tail])
    return float(point), float(low), float(high)


def _money(x: float) -> Decimal:
    return Decimal(repr(x)).quantize(CENT)


def default_as_of(ledger: Ledger, now: datetime | None = None) -> datetime:
    """Midnight after the last recorded call (at most today's midnight): the last complete day."""
    today = datetime.combine((now or datetime.now(UTC)).astimezone(UTC).date(), time(), tzinfo=UTC)
    last = ledger.query_rows("SELECT max(ts) AS last FROM usage_events")[0]["last"]
    if not isinstance(last, datetime):
        return today
    return min(today, datetime.combine(last.date() + timedelta(days=1), time(), tzinfo=UTC))


def _daily(ledger: Ledger, column: str, filters: Filters) -> list[dict[str, object]]:
    where, params = filters.where()
    return ledger.query_rows(
        f"""SELECT {column} AS key, CAST(ts AS DATE) AS day,
                   CAST(coalesce(sum(cost_total), 0) AS DECIMAL(38, 12)) AS cost,
                   count(*) FILTER (WHERE unpriced) AS unpriced
            FROM usage_events WHERE {where} GROUP BY {column}, CAST(ts AS DATE)""",
        params,
    )


def month_end(
    ledger: Ledger,
    by: str = "team",
    *,
    as_of: datetime | None = None,
    filters: Filters = Filters(),  # noqa: B008 - frozen, never mutated
    level: float = 0.9,
    seed: int = 0,
) -> list[Forecast]:
    """Month-end spend per `by` value for the month `as_of` falls in, biggest first.

    Args:
        ledger: Ledger to read.
        by: Dimension (team, workflow, user, model ...).
        as_of: Spend before this instant is known (rounded down to midnight UTC); default: the
            end of the last day with calls.
        filters: Narrows the calls (its start and end are replaced by the history window).
        level: Interval coverage (0.9 = 5th to 95th percentile).
        seed: Bootstrap seed, for reproducible intervals.
    """
    if by not in DIMENSIONS:
        raise ValueError(f"Unknown dimension {by!r}; choose from {', '.join(DIMENSIONS)}")
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, got {level!r}")
    moment = as_of if as_of is not None else default_as_of(ledger)
    cut = (moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)).date()
    first = cut.replace(day=1)
    next_month = (first + timedelta(days=32)).replace(day=1)
    start = cut - timedelta(days=HISTORY_DAYS)
    window = dataclasses.replace(
        filters,
        start=datetime.combine(start, time(), tzinfo=UTC),
        end=datetime.combine(cut, time(), tzinfo=UTC),
    )
    days = [start + timedelta(days=i) for i in range(HISTORY_DAYS)]
    future = [cut + timedelta(days=i) for i in range((next_month - cut).days)]
    series: dict[str | None, dict[date, tuple[Decimal, int]]] = {}
    for row in _daily(ledger, _COLUMN.get(by, by), window):
        key = None if row["key"] is None else str(row["key"])
        day = row["day"]
        assert isinstance(day, date)
        series.setdefault(key, {})[day] = (Decimal(str(row["cost"])), int(str(row["unpriced"])))
    out = [_one(key, daily, days, future, first, level, seed) for key, daily in series.items()]
    return sorted(out, key=lambda f: (-f.forecast, f.key or ""))


def _one(
    key: str | None,
    daily: dict[date, tuple[Decimal, int]],
    days: list[date],
    future: list[date],
    first: date,
    level: float,
    seed: int,
) -> Forecast:
    actual = sum((c for d, (c, _) in daily.items() if d >= first), Decimal(0))
    unpriced = sum(u for d, (_, u) in daily.items() if d >= first)
    since = days.index(min(daily))
    y = np.array([float(daily.get(d, (Decimal(0), 0))[0]) for d in days[since:]])
    if len(y) < MIN_HISTORY_DAYS:
        rest = float(y.mean()) * len(future)
        note = f"only {len(y)} days of history (need {MIN_HISTORY_DAYS}): run-rate estimate, no interval"
        return Forecast(key, first, actual, actual + _money(rest), None, None, len(y), unpriced, note)
    point, low, high = project(y, days[since:], future, level=level, seed=seed)
    note = f"trend + weekly profile over {len(y)} days, {level:.0%} bootstrap interval"
    return Forecast(
        key, first, actual, actual + _money(point), actual + _money(low), actual + _money(high), len(y), unpriced, note
    )
