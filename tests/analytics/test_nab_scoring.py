"""NAB scoring written from the paper and NAB's README, checked by hand and against published results.

The corpus checks need the NAB snapshot in ../shared/data/nab (or TOKENOPS_NAB_DIR): skipped
without it, a failure when CI=true.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest

from tests.shared import shared_data
from tokenops.analytics import nab

STANDARD = nab.Profile("standard", tp=1.0, fp=0.11, fn=1.0)
LOW_FN = nab.Profile("reward_low_FN_rate", tp=1.0, fp=0.11, fn=2.0)
NAB_DIR = Path(os.environ["TOKENOPS_NAB_DIR"]) if "TOKENOPS_NAB_DIR" in os.environ else shared_data("nab")


def S(y: float) -> float:
    """The scaled sigmoid, by hand."""
    return -1.0 if y >= 3 else 2 / (1 + math.exp(5 * y)) - 1


def tiny(windows: tuple[tuple[int, int], ...] = ((40, 49),), n: int = 100) -> nab.LabelledFile:
    ts = np.datetime64("2024-01-01T00:00") + np.arange(n) * np.timedelta64(5, "m")
    return nab.LabelledFile("tiny/a.csv", ts.astype("datetime64[s]"), np.zeros(n), windows)


def fire(n: int, rows: dict[int, float]) -> np.ndarray:
    scores = np.zeros(n)
    for row, value in rows.items():
        scores[row] = value
    return scores


def test_probation_is_15_percent_capped_at_750_rows() -> None:
    assert tiny(n=100).probation == 15
    assert tiny(n=4032).probation == 604
    assert tiny(n=22695).probation == 750


def test_a_detection_scores_by_its_place_in_the_window_and_only_the_earliest_counts() -> None:
    f = tiny()
    # rows 45 and 47 fire inside the window [40, 49] (width 10): only 45, the earliest, counts
    s = nab.sweep(f, fire(100, {45: 1.0, 47: 1.0}), STANDARD)
    curve = nab.threshold_curve(s, STANDARD)
    tp = S(-(49 - 45 + 1) / 10) / S(-1.0)
    assert curve[1][-2] == pytest.approx(tp)  # at threshold 1.0
    assert tp == pytest.approx(0.859793, abs=1e-6)
    assert nab.score([f], {f.name: fire(100, {45: 1.0, 47: 1.0})}, STANDARD).raw == pytest.approx(tp)


def test_false_positives_cost_fully_before_any_window_and_less_just_after_one() -> None:
    f = tiny()
    # row 10 is in probation (ignored); 20 precedes every window; 52 trails the window closely; 90 is far
    scores = fire(100, {10: 0.9, 20: 0.9, 52: 0.9, 90: 0.9, 40: 0.95})
    result = nab.score([f], {f.name: scores}, STANDARD)
    expected = 1.0 - 0.11 + S(abs(49 - 52) / 9) * 0.11 + S(abs(49 - 90) / 9) * 0.11
    # the optimum: the window's first row alone (1.0) beats adding the false positives
    assert result.threshold == 0.95
    assert result.raw == pytest.approx(1.0)
    thresholds, raws = nab.threshold_curve(nab.sweep(f, scores, STANDARD), STANDARD)
    assert list(thresholds) == [math.inf, 0.95, 0.9, 0.0]  # every row fires at 0
    assert list(raws[:3]) == pytest.approx([-1.0, 1.0, expected])


def test_a_missed_window_costs_fn_and_normalisation_maps_null_to_0_and_perfect_to_100() -> None:
    f = tiny(((30, 39), (70, 79)))
    thresholds, raws = nab.threshold_curve(nab.sweep(f, fire(100, {}), LOW_FN), LOW_FN)
    assert raws[0] == -4.0  # nothing fires: two windows missed, fn weight 2
    assert nab.normalise(-4.0, 2, LOW_FN) == 0.0
    perfect = nab.score([f], {f.name: fire(100, {30: 1.0, 70: 1.0})}, LOW_FN)
    assert perfect.raw == pytest.approx(2.0)
    assert perfect.normalised == pytest.approx(100.0)


def test_windows_are_numbered_across_files_when_a_corpus_is_scored() -> None:
    a, b = tiny(), tiny()
    b = nab.LabelledFile("tiny/b.csv", b.timestamps, b.values, b.windows)
    result = nab.score([a, b], {a.name: fire(100, {40: 1.0}), b.name: fire(100, {49: 1.0})}, STANDARD)
    assert result.raw == pytest.approx(1.0 + S(-0.1) / S(-1.0))


@pytest.fixture(scope="module")
def corpus() -> list[nab.LabelledFile]:
    if not (NAB_DIR / "labels" / "combined_windows.json").exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but the NAB data is missing at {NAB_DIR} (set TOKENOPS_NAB_DIR)")
        pytest.skip(f"no NAB data at {NAB_DIR} (set TOKENOPS_NAB_DIR)")
    return nab.load_corpus(NAB_DIR)


def test_the_corpus_has_58_files_and_116_windows(corpus: list[nab.LabelledFile]) -> None:
    assert len(corpus) == 58
    assert sum(len(f.windows) for f in corpus) == 116
    assert sum(len(f.values) for f in corpus) == 365_558


def test_windowed_gaussian_published_scores_are_reproduced(corpus: list[nab.LabelledFile]) -> None:
    scores = nab.load_results(NAB_DIR, "windowedGaussian", corpus)
    published = nab.published(NAB_DIR)["windowedGaussian"]
    for profile in nab.load_profiles(NAB_DIR):
        ours = nab.score(corpus, scores, profile)
        assert ours.normalised == pytest.approx(published[profile.name], abs=0.1)
        assert ours.raw == pytest.approx(nab.published_raw(NAB_DIR, "windowedGaussian", profile.name), abs=1e-6)
    assert published["standard"] == pytest.approx(39.6, abs=0.1)


@pytest.mark.parametrize("detector", ["numenta", "contextOSE", "knncad", "randomCutForest", "twitterADVec", "null"])
def test_published_raw_totals_normalise_to_the_published_scores(detector: str) -> None:
    if not NAB_DIR.exists():
        pytest.skip(f"no NAB data at {NAB_DIR}")
    for profile in nab.load_profiles(NAB_DIR):
        raw = nab.published_raw(NAB_DIR, detector, profile.name)
        assert nab.normalise(raw, 116, profile) == pytest.approx(nab.published(NAB_DIR)[detector][profile.name])
