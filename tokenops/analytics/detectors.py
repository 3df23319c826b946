"""The online anomaly-detection core, and its configuration for raw series of any kind.

Every function here scores a point from the points before it only, so a series can be scored
hour by hour or all at once with the same result (a prefix's scores never change when points are
appended). Two configurations share this core:

- **hourly spend** (`tokenops.analytics.anomalies.score_hours`): the median of the same hour of
  the week over the past four weeks, a robust z on sqrt(spend), and the product's fixed
  thresholds (`Sensitivity`); incidents, drivers and alerts live there.
- **raw series** (`surprise`, evaluated on the Numenta Anomaly Benchmark by `bench/nab`): any unit
  and any sampling rate; four robust-z views calibrated into tail probabilities, one alarm per
  excursion, then a rest period after each alarm (as CAD OSE's `restPeriod`), and a score in
  [0, 1] where 0.5 is an alarm.

Owns no I/O and no ledger access; NAB scoring is `tokenops.analytics.nab`.
"""

from __future__ import annotations

import warnings

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

MAD_TO_SIGMA = 1.4826
"""Median absolute deviation to standard deviation, for normal noise."""


def past_median(x: np.ndarray, window: int) -> np.ndarray:
    """Median of the `window` points before each point (NaN for the first)."""
    padded = np.r_[np.full(window, np.nan), x]
    return _nanmedian(sliding_window_view(padded, window)[: len(x)], axis=1)


def seasonal_median(x: np.ndarray, period: int, cycles: int) -> np.ndarray:
    """Median of the same phase over the last `cycles` periods (NaN until one period has passed)."""
    n = len(x)
    lagged = [np.r_[np.full(min(k * period, n), np.nan), x[: max(n - k * period, 0)]] for k in range(1, cycles + 1)]
    return _nanmedian(np.vstack(lagged), axis=0)


def robust_scale(residual: np.ndarray, rows: int, refresh: int, floor: float, *, upper: bool = False) -> np.ndarray:
    """1.4826 x median |residual| over the `rows` points before each block of `refresh` points.

    NaN until ten residuals are known; never below `floor` (a flat series has a MAD of 0). With
    `upper`, also at least the 90th percentile of |residual| / 1.645: series of small counts have
    a median residual of 0 however much they move.
    """
    out = np.full(len(residual), np.nan)
    magnitude = np.abs(residual)
    for start in range(refresh, len(residual), refresh):
        past = magnitude[max(0, start - rows) : start]
        past = past[~np.isnan(past)]
        if len(past) >= 10:
            scale = MAD_TO_SIGMA * float(np.median(past))
            if upper:
                scale = max(scale, float(np.quantile(past, 0.9)) / 1.645)
            out[start : start + refresh] = max(scale, floor)
    return out


def past_quantile(x: np.ndarray, rows: int, refresh: int, q: float) -> np.ndarray:
    """The `q` quantile of the known values among the `rows` before each block of `refresh` (NaN if < 10)."""
    out = np.full(len(x), np.nan)
    for start in range(refresh, len(x), refresh):
        past = x[max(0, start - rows) : start]
        past = past[~np.isnan(past)]
        if len(past) >= 10:
            out[start : start + refresh] = np.quantile(past, q)
    return out


def _nanmedian(a: np.ndarray, axis: int) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows are expected before history exists
        return np.asarray(np.nanmedian(a, axis=axis))


# ---------------------------------------------------------------------------------------------
# raw series of any unit and sampling rate


def surprise(
    timestamps: np.ndarray,
    values: np.ndarray,
    *,
    local: int = 2,
    slow: int = 100,
    level: int = 6,
    cycles: int = 3,
    scale_rows: int = 2000,
    recheck: int = 250,
    alarm: float = 7.5,
    rest: int = 150,
) -> np.ndarray:
    """Anomaly score in [0, 1] of every point of a raw series, from its past only (0.5 = an alarm).

    Four views, each a robust z calibrated by `tail_surprise` into -ln P(Z >= z), the largest
    counting: the point against the median of the last `local` points (a jump), of the last `slow`
    points (a departure from the usual level), and of the same phase of the last `cycles` days or
    weeks once the past shows the series repeats on that cycle (rechecked every `recheck` rows);
    and the median of the last `level` points against the slow median (a level shift). Only the
    first alarm of an excursion is kept, and after a surprise of `alarm` (-ln p; 7.5 is p = 5.5e-4)
    the next `rest` rows are silent: a noisy stretch raises one alarm, not one per spike.
    Scores of a prefix never change when points are appended.
    """
    n = len(values)
    local_expected = past_median(values, local)
    slow_expected = past_median(values, slow)
    floor = np.empty(n)
    period = np.zeros(n, dtype=np.int64)
    for start in range(0, n, recheck):
        past = values[: max(start, 1)]
        spread = float(np.percentile(past, 95) - np.percentile(past, 5))
        floor[start : start + recheck] = 1e-3 * max(spread, abs(float(np.median(past))), 1e-9)
        period[start : start + recheck] = detect_period(timestamps[:start], values[:start]) if start >= 8 else 0
    seasonal = np.full(n, np.nan)
    for p in np.unique(period[period > 0]):
        rows = period == p
        seasonal[rows] = seasonal_median(values, int(p), cycles)[rows]
    recent_level = past_median(np.r_[values[1:], values[-1:]], level)  # median of the last `level` points
    views = (
        (values, local_expected),
        (values, slow_expected),
        (values, np.where(np.isnan(seasonal), local_expected, seasonal)),
        (recent_level, slow_expected),
    )
    score = np.zeros(n)
    for observed, expected in views:
        residual = observed - expected
        scale = np.maximum(robust_scale(residual, scale_rows, 20, 0.0, upper=True), floor)
        z = np.nan_to_num(np.abs(residual) / scale, nan=0.0)
        score = np.maximum(score, tail_surprise(np.minimum(z, 1000.0)))
    quiet = rest_after_alarms(suppress_repeats(score, 30), alarm, rest)
    return np.asarray(1.0 - np.exp2(-np.maximum(quiet, 0.0) / alarm))


def tail_surprise(v: np.ndarray, *, learn: int = 100, refresh: int = 50, q: float = 0.95) -> np.ndarray:
    """-ln P(V >= v) from an exponential tail fitted above the past's `q` quantile (0 while learning).

    Extreme-value style calibration (as in SPOT, Siffer et al. 2017): it makes a threshold mean
    the same rarity on a calm series and on a noisy one.
    """
    out = np.zeros(len(v))
    for start in range(learn, len(v), refresh):
        past = v[:start]
        level = float(np.quantile(past, q))
        excess = past[past > level] - level
        beta = max(float(excess.mean()) if len(excess) else 0.0, 1e-3 * max(level, 1e-3))
        out[start : start + refresh] = (v[start : start + refresh] - level) / beta - np.log(1 - q)
    return out


def detect_period(timestamps: np.ndarray, values: np.ndarray, *, min_correlation: float = 0.3) -> int:
    """Rows per day or per week when the series repeats on that cycle (autocorrelation), else 0."""
    if len(values) < 8:
        return 0
    step = float(np.median(np.diff(timestamps[:500]).astype("timedelta64[s]").astype(float)))
    best, best_corr = 0, min_correlation
    centred = values - values.mean()
    energy = max(float(centred @ centred), 1e-12)
    for seconds in (86_400, 7 * 86_400):
        period = round(seconds / step) if step > 0 else 0
        if period < 4 or 2 * period > len(values):
            continue
        corr = float(centred[period:] @ centred[:-period]) / energy
        if corr > best_corr:
            best, best_corr = period, corr
    return best


def suppress_repeats(score: np.ndarray, rows: int) -> np.ndarray:
    """Keep a score only when it beats every score of the `rows` before it (one alarm per excursion)."""
    padded = np.r_[np.full(rows, -np.inf), score]
    recent = sliding_window_view(padded, rows)[: len(score)].max(axis=1)
    return np.where(score > recent, score, np.minimum(score, 0.0))


def rest_after_alarms(score: np.ndarray, alarm: float, rows: int) -> np.ndarray:
    """Silence (score 0) the `rows` points after each alarm (score >= `alarm`), however high they score.

    A bigger spike soon after an alarm is usually the same trouble, and letting it through costs
    more false alarms than it gains (measured on NAB); the alarm that opened the rest stands.
    """
    out = score.copy()
    until = -1
    for i in np.flatnonzero(score >= alarm):
        if i <= until:
            out[i] = min(out[i], 0.0)
        else:
            until = int(i) + rows
    return out
