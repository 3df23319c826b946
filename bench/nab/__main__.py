"""The spend anomaly detector on the Numenta Anomaly Benchmark, scored by tokenops' own NAB scorer.

    .venv/bin/python bench/nab [--data ../shared/data/nab]

Scores the published windowedGaussian results first (must print 39.6 / 20.9 / 47.4: the scorer
is right), then runs `tokenops.analytics.detectors.surprise` (the anomaly core configured for raw
series) over the 58 series and prints its standard / reward_low_FP_rate / reward_low_FN_rate
scores next to the published detectors, and where its standard-profile detections fall.

The rest period after an alarm is a fifth of NAB's probationary period (15% of the file, at most
750 rows), the value CAD OSE uses: NAB hands every detector the probationary length, so this
uses nothing a detector may not know.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from tokenops.analytics import nab
from tokenops.analytics.detectors import surprise

DEFAULT_DATA = next(
    (
        p
        for p in (Path(__file__).resolve().parents[3] / "shared" / "data" / "nab", Path("/work/shared/data/nab"))
        if p.exists()
    ),
    Path(__file__).resolve().parents[3] / "shared" / "data" / "nab",
)
PUBLISHED = (
    ("numenta", "Numenta HTM"),
    ("contextOSE", "CAD OSE"),
    ("knncad", "KNN CAD"),
    ("randomCutForest", "Random Cut Forest"),
    ("twitterADVec", "Twitter ADVec"),
    ("windowedGaussian", "Windowed Gaussian"),
    ("null", "Null"),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, default=DEFAULT_DATA, help="NAB checkout (data/, labels/, config/, results/)"
    )
    args = parser.parse_args()
    root: Path = args.data
    files = nab.load_corpus(root)
    profiles = nab.load_profiles(root)
    rows = sum(len(f.values) for f in files)
    print(f"NAB {root}: {len(files)} files, {rows:,} rows, {sum(len(f.windows) for f in files)} windows")

    check = nab.load_results(root, "windowedGaussian", files)
    ours_wg = [nab.score(files, check, p) for p in profiles]
    print(
        "scorer check, windowedGaussian from results/: " + "  ".join(f"{s.profile} {s.normalised:.2f}" for s in ours_wg)
    )

    started = time.perf_counter()
    scores = {f.name: surprise(f.timestamps, f.values, rest=f.probation // 5) for f in files}
    elapsed = time.perf_counter() - started
    ours = [nab.score(files, scores, p) for p in profiles]

    published = nab.published(root)
    names = [p.name for p in profiles]
    print(f"\n{'detector':24s}" + "".join(f"{n:>22s}" for n in names))
    print(f"{'tokenops (this run)':24s}" + "".join(f"{s.normalised:22.1f}" for s in ours))
    for key, label in PUBLISHED:
        print(f"{label:24s}" + "".join(f"{published[key][n]:22.1f}" for n in names))
    print("(published: results/final_results.json; NAB's README table: Numenta HTM 70.5-69.7 / 62.6-61.7 / 75.2-74.2)")
    thresholds = "  ".join(f"{s.profile} {s.threshold:.3f} (raw {s.raw:.2f})" for s in ours)
    print(f"\ntokenops thresholds: {thresholds}")
    print(detections(files, scores, ours[0].threshold))
    per_row = elapsed / rows * 1e6
    print(f"detector time: {elapsed:.1f} s for {rows:,} rows ({per_row:.1f} µs/row, one core)")
    assert np.isfinite([s.normalised for s in ours]).all()


def detections(files: list[nab.LabelledFile], scores: dict[str, np.ndarray], threshold: float) -> str:
    """Windows caught and detections outside windows at `threshold`, per category (after probation)."""
    tally: dict[str, list[int]] = {}
    for f in files:
        fired = np.flatnonzero(scores[f.name] >= threshold)
        fired = fired[fired >= f.probation]
        inside = np.zeros(len(f.values), bool)
        for a, b in f.windows:
            inside[a : b + 1] = True
        row = tally.setdefault(f.name.split("/")[0], [0, 0, 0])
        row[0] += sum(bool(((fired >= a) & (fired <= b)).any()) for a, b in f.windows)
        row[1] += len(f.windows)
        row[2] += int((~inside[fired]).sum())
    lines = [f"  {c:24s} windows caught {tp:3d}/{n:3d}  false alarms {fp:4d}" for c, (tp, n, fp) in tally.items()]
    total = [sum(col) for col in zip(*tally.values(), strict=True)]
    lines.append(f"  {'all':24s} windows caught {total[0]:3d}/{total[1]:3d}  false alarms {total[2]:4d}")
    return "standard-profile detections:\n" + "\n".join(lines)


if __name__ == "__main__":
    main()
