from __future__ import annotations

import math
from collections import defaultdict
from datetime import datetime

import pytest

from tokenops.demo import DemoOrg
from tokenops.demo.org import WORKFLOWS

TASK_HOURS = {w.name: w.task_hours for w in WORKFLOWS}


def test_time_entries_cover_the_baseline_and_the_ai_period(org: DemoOrg) -> None:
    truth = org.truth
    rows = org.time_entries.to_pylist()
    baseline_start = datetime.combine(truth.baseline_start, datetime.min.time())
    ai_start = datetime.combine(truth.ai_start, datetime.min.time())
    assert min(r["start"] for r in rows) >= baseline_start
    assert any(r["start"] < ai_start for r in rows)
    assert all(r["tool"] is None for r in rows if r["start"] < ai_start)
    assert all(r["tool"] is None for r in rows if r["person_id"] in truth.non_adopters)
    for r in rows:
        if r["tool"] is not None:
            assert r["start"].date() >= truth.adoption_dates[r["person_id"]]
            assert r["workflow"] is not None
    assert {r["person_id"] for r in rows} == set(truth.adopters) | set(truth.non_adopters)
    assert len({r["entry_id"] for r in rows}) == len(rows)


def _did(org: DemoOrg) -> tuple[float, float, float]:
    """(naive, difference-in-differences, truth): mean change in log duration of AI-assisted work.

    Each entry is compared with its own person's baseline (person fixed effects) and normalised
    by its activity's typical length, so neither who adopts nor which tasks they do biases it.
    """
    truth = org.truth
    baseline: dict[str, list[float]] = defaultdict(list)
    later: list[tuple[str, float, bool]] = []
    expected: list[float] = []
    for r in org.time_entries.to_pylist():
        if r["workflow"] is None:
            continue
        log_d = math.log(float(r["duration_hours"]) / TASK_HOURS[r["workflow"]])
        if r["start"].date() < truth.ai_start:
            baseline[r["person_id"]].append(log_d)
        elif r["tool"] is not None or r["person_id"] in truth.non_adopters:
            later.append((r["person_id"], log_d, r["tool"] is not None))
            if r["tool"] is not None:
                expected.append(math.log(1 - truth.workflows[r["workflow"]].saving_factor))
    own = {p: sum(v) / len(v) for p, v in baseline.items()}
    treated = [d - own[p] for p, d, ai in later if ai]
    control = [d - own[p] for p, d, ai in later if not ai]
    naive = sum(treated) / len(treated)
    return naive, naive - sum(control) / len(control), sum(expected) / len(expected)


def test_difference_in_differences_recovers_the_true_saving_and_naive_does_not(org: DemoOrg) -> None:
    naive, did, true_effect = _did(org)
    assert did == pytest.approx(true_effect, abs=0.04)
    assert naive - did > 0.05  # the common trend makes a naive before/after understate the saving


def test_savings_truth_adds_up(org: DemoOrg) -> None:
    savings = org.truth.savings
    assert all(savings.by_person_month[p] == 0 for p in org.truth.non_adopters)
    assert all(savings.by_person_month[p] > 0 for p in org.truth.adopters)
    per_month = sum(savings.by_person_month.values())
    assert sum(savings.by_team_month.values()) == pytest.approx(per_month)
    assert sum(savings.by_workflow_month.values()) == pytest.approx(per_month)
    assert per_month == pytest.approx(savings.total_hours * 30 / 90)
    assert 1 < per_month / len(org.truth.adopters) < 60
    assert savings.value_usd > 0
    assert set(savings.by_team_month) == {"support", "sales", "engineering", "marketing", "finance", "legal-ops"}
