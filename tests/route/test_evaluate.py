"""The APGR / CPT reimplementation reproduces the numbers checked in the shared data's README."""

from __future__ import annotations

import numpy as np
import pytest

from tests.shared import shared_data
from tokenops.route import evaluate as ev


@pytest.fixture(scope="module")
def root():
    path = shared_data("routing", "routellm")
    assert path.is_dir(), f"shared RouteLLM data missing at {path}"
    return path


@pytest.fixture(scope="module")
def gsm8k(root):
    return ev.load(root, "gsm8k")


@pytest.fixture(scope="module")
def mmlu(root):
    return ev.load(root, "mmlu")


def test_decontamination_leaves_the_readme_counts_and_accuracies(root, gsm8k, mmlu):
    mt = ev.load(root, "mt-bench")
    assert (len(gsm8k.prompts), len(mmlu.prompts), len(mt.prompts)) == (1307, 14037, 72)
    assert gsm8k.weak.mean() * 100 == pytest.approx(63.73, abs=0.01)
    assert gsm8k.strong.mean() * 100 == pytest.approx(85.77, abs=0.01)
    assert mmlu.weak.mean() * 100 == pytest.approx(68.09, abs=0.01)
    assert mmlu.strong.mean() * 100 == pytest.approx(80.59, abs=0.01)
    assert mt.weak.mean() == pytest.approx(8.281, abs=0.001)
    assert mt.strong.mean() == pytest.approx(9.212, abs=0.001)


def test_random_router_recovers_half_the_gap(gsm8k, mmlu):
    g, m = ev.random_router(gsm8k), ev.random_router(mmlu)
    assert (g.apgr, g.cpt50, g.cpt80) == pytest.approx((0.492, 50.49, 79.89), abs=0.005)
    assert (m.apgr, m.cpt50, m.cpt80) == pytest.approx((0.500, 49.94, 79.91), abs=0.005)


def test_prompt_length_router_matches_the_floor(root, gsm8k, mmlu):
    g, m, t = ev.length_router(gsm8k), ev.length_router(mmlu), ev.length_router(ev.load(root, "mt-bench"))
    assert (g.apgr, g.cpt50, g.cpt80) == pytest.approx((0.599, 36.51, 66.66), abs=0.005)
    assert (m.apgr, m.cpt50, m.cpt80) == pytest.approx((0.584, 36.70, 69.20), abs=0.005)
    assert (t.apgr, t.cpt50, t.cpt80) == pytest.approx((0.556, 34.44, 77.57), abs=0.005)


def test_an_oracle_scores_above_one_and_a_constant_router_sits_on_the_weak_line(gsm8k):
    oracle = ev.metrics(gsm8k, (gsm8k.strong - gsm8k.weak).astype(float))
    # the README's oracle CPTs; its APGR (1.115) depends on how ties are broken, so only "> 1" is checked
    assert (oracle.cpt50, oracle.cpt80) == pytest.approx((11.02, 17.63), abs=0.01) and oracle.apgr > 1
    shares, quality = ev.curve(gsm8k, np.zeros(len(gsm8k.prompts)))
    assert shares[0] == 0.0 and shares[-1] == 100.0  # the last threshold (`>`) routes nothing to strong


def test_cross_validation_never_scores_a_prompt_with_a_model_trained_on_it(gsm8k, monkeypatch):
    seen: list[int] = []
    real_fit = ev.fit

    def spy(data, labels, config=None, meta=None):
        seen.append(data.n)
        return real_fit(data, labels, config, meta)

    monkeypatch.setattr(ev, "fit", spy)
    small = ev.Dataset("gsm8k", gsm8k.prompts[:200], gsm8k.strong[:200], gsm8k.weak[:200], 100.0)
    scores = ev.cross_validated_scores(small, folds=4, seed=0)
    assert seen == [150, 150, 150, 150]
    assert np.array_equal(scores, ev.cross_validated_scores(small, folds=4, seed=0))
