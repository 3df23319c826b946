"""The online anomaly core configured for raw series: past-only scores in [0, 1], one alarm per
excursion, a rest period after each alarm, and its verdicts on three small NAB files (the
full-corpus score is `bench/nab`'s job)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from tests.shared import shared_data
from tokenops.analytics import nab
from tokenops.analytics.detectors import detect_period, rest_after_alarms, surprise


def _series(n: int = 3000) -> tuple[np.ndarray, np.ndarray]:
    """A daily cycle at 5-minute steps with a little noise."""
    rng = np.random.default_rng(1)
    ts = (np.datetime64("2024-01-01T00:00") + np.arange(n) * np.timedelta64(5, "m")).astype("datetime64[s]")
    return ts, np.sin(np.arange(n) * 2 * np.pi / 288) + rng.normal(0, 0.1, n)


def test_a_point_is_scored_from_its_past_only_in_0_to_1() -> None:
    ts, x = _series()
    x[2500:2510] += 3.0  # a level burst
    full = surprise(ts, x)
    for k in (100, 777, 2505):
        assert np.array_equal(surprise(ts[:k], x[:k]), full[:k])
    assert ((full >= 0) & (full < 1)).all()
    assert full[2500] >= 0.5 > full[:2500].max()  # the burst's first point is the only alarm
    assert full[2501:].max() < 0.5  # one alarm for the whole excursion
    assert detect_period(ts, x) == 288


def test_a_second_spike_inside_the_rest_period_stays_silent() -> None:
    ts, x = _series()
    x[2500] += 3.0
    x[2600] += 6.0  # bigger, 100 rows later
    assert surprise(ts, x, rest=0)[2600] >= 0.5
    quiet = surprise(ts, x, rest=150)
    assert quiet[2500] >= 0.5
    assert quiet[2600] == 0.0
    assert surprise(ts, x, rest=50)[2600] >= 0.5  # the rest is over


def test_rest_after_alarms_keeps_the_opening_alarm_and_silences_the_rows_after_it() -> None:
    score = np.array([0.0, 8.0, 9.0, 1.0, 7.6, 0.0, 8.0, -1.0])
    assert rest_after_alarms(score, 7.5, 3).tolist() == [0.0, 8.0, 0.0, 1.0, 0.0, 0.0, 8.0, -1.0]


TRAFFIC = ("realTraffic/occupancy_t4013.csv", "realTraffic/speed_t4013.csv", "realTraffic/speed_7578.csv")


@pytest.fixture(scope="module")
def traffic() -> dict[str, nab.LabelledFile]:
    root = shared_data("nab")
    if not (root / "labels" / "combined_windows.json").exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but the NAB data is missing at {root}")
        pytest.skip(f"no NAB data at {root}")
    return {f.name: f for f in nab.load_corpus(root, TRAFFIC)}


@pytest.mark.parametrize(
    ("name", "first_alarm_in_each_window", "false_alarms"),
    [(TRAFFIC[0], [2147, 2397], [1688]), (TRAFFIC[1], [2144, 2391], []), (TRAFFIC[2], [317, 752, 920, None], [624])],
)
def test_alarms_on_nab_traffic_files(
    traffic: dict[str, nab.LabelledFile],
    name: str,
    first_alarm_in_each_window: list[int | None],
    false_alarms: list[int],
) -> None:
    f = traffic[name]
    fired = np.flatnonzero(surprise(f.timestamps, f.values, rest=f.probation // 5) >= 0.5)
    fired = fired[fired >= f.probation]
    caught = [next((int(i) for i in fired if a <= i <= b), None) for a, b in f.windows]
    assert caught == first_alarm_in_each_window
    assert [int(i) for i in fired if not any(a <= i <= b for a, b in f.windows)] == false_alarms
