"""The spend anomaly detector on the Numenta Anomaly Benchmark, scored by tokenops' own NAB scorer.

    .venv/bin/python bench/nab [--data ../shared/data/nab]

Scores the published windowedGaussian results first (must print 39.6 / 20.9 / 47.4: the scorer
is right), then runs `tokenops.analytics.nab.surprise` (the spend detector's core on raw series)
over the 58 series and prints its standard / reward_low_FP_rate / reward_low_FN_rate scores next
to the published detectors.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from tokenops.analytics import nab
from tokenops.analytics.nab import surprise

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
    scores = {f.name: surprise(f.timestamps, f.values) for f in files}
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
    per_row = elapsed / rows * 1e6
    print(f"detector time: {elapsed:.1f} s for {rows:,} rows ({per_row:.1f} µs/row, one core)")
    assert np.isfinite([s.normalised for s in ours]).all()


if __name__ == "__main__":
    main()
