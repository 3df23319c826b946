"""Numenta Anomaly Benchmark scoring, written from NAB's description so a detector can be held to it.

NAB (Ahmad et al. 2017, github.com/numenta/NAB) labels windows around each anomaly and rewards a
detector by how early inside a window it first fires (a scaled sigmoid of the position), charges
every detection outside a window (less when it trails a window closely), and charges every window
missed. One threshold per profile is optimised over the whole corpus, then the raw score is
normalised so the null detector (never fires) scores 0 and the perfect one 100.

Owns the arithmetic and reading the corpus layout (`data/`, `labels/combined_windows.json`,
`config/profiles.json`, `results/`); the detector it is run on is
`tokenops.analytics.detectors.surprise` (`bench/nab`).
The sweep over thresholds is vectorised: each row's score change is known up front, except that a
window only counts its best (earliest) detection, which a running maximum per window handles.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

PROBATION_SHARE = 0.15
"""Leading share of each file a detector may use to learn; never scored."""
PROBATION_CAP = 750
"""...but at most this many rows (0.15 x 5000)."""


@dataclass(frozen=True, slots=True)
class Profile:
    """A NAB cost matrix."""

    name: str
    """`standard`, `reward_low_FP_rate` or `reward_low_FN_rate`."""
    tp: float
    """Reward of a detection at the very start of a window."""
    fp: float
    """Cost of a detection far from any window."""
    fn: float
    """Cost of a missed window."""


@dataclass(frozen=True, slots=True)
class LabelledFile:
    """One corpus file: its timestamps, values and anomaly windows as row indices."""

    name: str
    """`<category>/<file>.csv`, as in the labels."""
    timestamps: np.ndarray
    """datetime64[s], ascending."""
    values: np.ndarray
    """float64 values."""
    windows: tuple[tuple[int, int], ...]
    """Inclusive (first, last) row index of each window, in order."""

    @property
    def probation(self) -> int:
        """Rows at the start that are not scored."""
        return int(min(math.floor(PROBATION_SHARE * len(self.values)), PROBATION_SHARE * 5000))


@dataclass(frozen=True, slots=True)
class Sweep:
    """Scorable rows of one or more files with what each would add if it were a detection."""

    anomaly: np.ndarray
    """Detector score per row (a row is a detection when it is >= the threshold)."""
    gain: np.ndarray
    """The row's sweep score: scaled sigmoid x weight (negative outside windows)."""
    window: np.ndarray
    """Corpus-wide window number, -1 outside every window."""
    windows: int
    """Windows covered (some may have no scorable row)."""


@dataclass(frozen=True, slots=True)
class Score:
    """A detector's result on one profile."""

    profile: str
    """Profile name."""
    threshold: float
    """Optimised threshold."""
    raw: float
    """Raw score at that threshold (sum over files)."""
    normalised: float
    """100 x (raw - null) / (perfect - null)."""


def scaled_sigmoid(y: np.ndarray) -> np.ndarray:
    """NAB's S(y) = 2 / (1 + e^(5y)) - 1, and -1 from y >= 3 on (far past a window)."""
    with np.errstate(over="ignore"):
        s = 2.0 / (1.0 + np.exp(5.0 * y)) - 1.0
    return np.where(y >= 3.0, -1.0, s)


MAX_TP = float(scaled_sigmoid(np.array([-1.0]))[0])
"""S(-1) = 0.98661: the score of a detection on a window's first row, scaled to 1."""


def sweep(file: LabelledFile, anomaly: np.ndarray, profile: Profile, first_window: int = 0) -> Sweep:
    """What each scorable row of `file` adds to the raw score if the detector fires on it."""
    n = len(file.values)
    if len(anomaly) != n:
        raise ValueError(f"{file.name}: {len(anomaly)} anomaly scores for {n} rows")
    idx = np.arange(n)
    starts = np.array([a for a, _ in file.windows], dtype=np.int64)
    ends = np.array([b for _, b in file.windows], dtype=np.int64)
    k = np.searchsorted(starts, idx, side="right") - 1  # last window starting at or before the row
    inside = (k >= 0) & (idx <= ends[np.maximum(k, 0)]) if len(starts) else np.zeros(n, bool)
    gain = np.empty(n)
    if len(starts):
        width = (ends - starts + 1).astype(float)
        ki = k[inside]
        gain[inside] = scaled_sigmoid(-(ends[ki] - idx[inside] + 1) / width[ki]) * profile.tp / MAX_TP
        # outside: measured from the last window that ended before the row
        prev = np.searchsorted(ends, idx, side="left") - 1
        out = ~inside
        after = out & (prev >= 0)
        pi = prev[after]
        gain[after] = scaled_sigmoid(np.abs(ends[pi] - idx[after]) / (width[pi] - 1)) * profile.fp
        gain[out & (prev < 0)] = -profile.fp
    else:
        gain[:] = -profile.fp
    window = np.where(inside, k + first_window, -1)
    keep = idx >= file.probation
    return Sweep(np.asarray(anomaly, float)[keep], gain[keep], window[keep], len(file.windows))


def concat(sweeps: Iterable[Sweep]) -> Sweep:
    """One sweep of a whole corpus (window numbers must already be corpus-wide)."""
    parts = list(sweeps)
    return Sweep(
        np.concatenate([s.anomaly for s in parts]),
        np.concatenate([s.gain for s in parts]),
        np.concatenate([s.window for s in parts]),
        sum(s.windows for s in parts),
    )


def threshold_curve(s: Sweep, profile: Profile) -> tuple[np.ndarray, np.ndarray]:
    """Raw score at every candidate threshold (each distinct anomaly score, highest first).

    The first entry is +inf: no detections, every window missed.
    """
    order = np.argsort(-s.anomaly, kind="stable")
    a, gain, win = s.anomaly[order], s.gain[order], s.window[order]
    delta = np.where(win < 0, gain, 0.0)
    inw = np.flatnonzero(win >= 0)
    if len(inw):
        # per window, in detection order: running best gain; a window's first detection lifts it from -fn
        grouped = inw[np.argsort(win[inw], kind="stable")]
        g, v = win[grouped], gain[grouped]
        offset = (g - g.min()).astype(float) * 10.0  # gains lie in [-1, 1]: offsets keep groups apart
        best = np.maximum.accumulate(v + offset) - offset
        first = np.r_[True, g[1:] != g[:-1]]
        before = np.where(first, -profile.fn, np.r_[-profile.fn, best[:-1]])
        delta[grouped] = best - before
    total = -profile.fn * s.windows + np.cumsum(delta)
    last_of_tie = np.r_[a[1:] != a[:-1], True]
    return np.r_[np.inf, a[last_of_tie]], np.r_[-profile.fn * s.windows, total[last_of_tie]]


def normalise(raw: float, windows: int, profile: Profile) -> float:
    """100 x (raw - null) / (perfect - null): the null detector misses every window."""
    null, perfect = -profile.fn * windows, profile.tp * windows
    return 100.0 * (raw - null) / (perfect - null)


def score(files: list[LabelledFile], anomalies: Mapping[str, np.ndarray], profile: Profile) -> Score:
    """Optimise the threshold over the corpus and return the normalised score."""
    sweeps, first = [], 0
    for f in files:
        sweeps.append(sweep(f, anomalies[f.name], profile, first))
        first += len(f.windows)
    s = concat(sweeps)
    thresholds, raws = threshold_curve(s, profile)
    best = int(np.argmax(raws))
    raw = float(raws[best])
    return Score(profile.name, float(thresholds[best]), raw, normalise(raw, s.windows, profile))


def load_profiles(root: Path) -> tuple[Profile, ...]:
    """The cost matrices of `config/profiles.json`."""
    data = json.loads((root / "config" / "profiles.json").read_text())
    return tuple(
        Profile(
            name,
            float(m["CostMatrix"]["tpWeight"]),
            float(m["CostMatrix"]["fpWeight"]),
            float(m["CostMatrix"]["fnWeight"]),
        )
        for name, m in data.items()
    )


def _read(path: Path, value_column: str) -> tuple[np.ndarray, np.ndarray]:
    options = pacsv.ConvertOptions(column_types={"timestamp": pa.timestamp("s"), value_column: pa.float64()})
    table = pacsv.read_csv(path, convert_options=options)
    ts = table.column("timestamp").to_numpy().astype("datetime64[s]")
    return ts, table.column(value_column).to_numpy().astype(float)


def load_corpus(root: Path, only: Iterable[str] | None = None) -> list[LabelledFile]:
    """Every labelled file of the corpus (or those named in `only`), windows turned into row indices."""
    labels: dict[str, list[list[str]]] = json.loads((root / "labels" / "combined_windows.json").read_text())
    files = []
    for name in sorted(labels) if only is None else sorted(only):
        ts, values = _read(root / "data" / name, "value")
        windows = []
        for start, end in labels[name]:
            a, b = np.datetime64(start[:19]), np.datetime64(end[:19])
            i, j = int(np.searchsorted(ts, a)), int(np.searchsorted(ts, b))
            if i >= len(ts) or j >= len(ts) or ts[i] != a or ts[j] != b:
                raise ValueError(f"{name}: window {start} .. {end} does not start and end on rows of the file")
            windows.append((i, j))
        files.append(LabelledFile(name, ts, values, tuple(windows)))
    return files


def load_results(root: Path, detector: str, files: list[LabelledFile]) -> dict[str, np.ndarray]:
    """A published detector's per-row anomaly scores from `results/<detector>/<category>/`."""
    out = {}
    for f in files:
        category, base = f.name.split("/")
        _, scores = _read(root / "results" / detector / category / f"{detector}_{base}", "anomaly_score")
        out[f.name] = scores
    return out


def published(root: Path) -> dict[str, dict[str, float]]:
    """Normalised scores of every published detector, `{detector: {profile: score}}`."""
    data: dict[str, dict[str, float]] = json.loads((root / "results" / "final_results.json").read_text())
    return data


def published_raw(root: Path, detector: str, profile: str) -> float:
    """The `Totals` raw score of a published detector's per-file results."""
    with (root / "results" / detector / f"{detector}_{profile}_scores.csv").open() as fh:
        for row in csv.DictReader(fh):
            if row["Detector"] == "Totals":
                return float(row["Score"])
    raise ValueError(f"no Totals row in the {detector!r} {profile!r} results")
