"""The learned router: deterministic training, a stable artefact, and training from the ledger."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.factories import T0, event
from tokenops.events import TaskRun
from tokenops.route import LearnedRouter, Router, RouteRequest, RouteSettings, fit_texts, train_from_ledger
from tokenops.route.features import batch, featurize
from tokenops.store import DuckDBLedger

HARD = ["prove the theorem about primes", "derive the integral step by step", "optimise this distributed system"]
EASY = ["say hello", "what colour is the sky", "translate cat to french"]


def corpus() -> tuple[list[str], np.ndarray]:
    texts = [f"{t} please {i}" for i in range(20) for t in HARD + EASY]
    labels = np.array([1.0, 1.0, 1.0, 0.0, 0.0, 0.0] * 20)
    return texts, labels


def test_training_is_deterministic_and_separates_the_classes():
    texts, labels = corpus()
    a, b = fit_texts(texts, labels), fit_texts(texts, labels)
    assert np.array_equal(a.weights, b.weights) and a.bias == b.bias
    assert a.score("prove the theorem about primes please 99") > 0.5 > a.score("say hello please 99")


def test_featurize_is_stable_across_processes_and_bounded():
    f = featurize("Derive the derivative of x^2", ("workflow=math",))
    assert f.indices.tolist() == featurize("Derive the derivative of x^2", ("workflow=math",)).indices.tolist()
    assert np.isclose(np.linalg.norm(f.values), 1.0)
    long = featurize("word " * 100_000)
    assert len(long.indices) < 10 and long.shape[0] > 12  # long prompts are cut before hashing, not measured


def test_vectorised_scores_equal_single_scores():
    texts, labels = corpus()
    model = fit_texts(texts, labels)
    assert np.allclose(model.scores(batch(texts[:6])), [model.score(t) for t in texts[:6]], atol=1e-6)


def test_artefact_round_trip_and_router_decision(tmp_path: Path):
    texts, labels = corpus()
    model = fit_texts(texts, labels).calibrate(batch(texts), strong_share=0.5)
    model.save(tmp_path / "router.npz")
    loaded = LearnedRouter.load(tmp_path / "router.npz")
    assert (tmp_path / "router.npz").stat().st_size < 300_000
    assert loaded.score("prove the theorem about primes please 7") == pytest.approx(
        model.score("prove the theorem about primes please 7"), abs=1e-3
    )
    settings = RouteSettings.model_validate(
        {"enabled": True, "learned": {"path": "router.npz", "weak": "small", "strong": "large", "models": ["auto"]}}
    )
    router = Router.open(settings, tmp_path)
    assert router is not None
    hard = router.decide(RouteRequest(model="auto", prompt="prove the theorem about primes please 7"))
    easy = router.decide(RouteRequest(model="auto", prompt="say hello please 7"))
    assert hard is not None and hard.model == "large" and hard.reason.startswith("learned:strong")
    assert easy is not None and easy.model == "small"
    assert router.decide(RouteRequest(model="gpt-4o", prompt="prove the theorem")) is None  # not asked for "auto"


def test_missing_artefact_is_a_config_error(tmp_path: Path):
    from tokenops.errors import ConfigError

    settings = RouteSettings.model_validate(
        {"enabled": True, "learned": {"path": "nope.npz", "weak": "a", "strong": "b"}}
    )
    with pytest.raises(ConfigError, match="nope.npz"):
        Router.open(settings, tmp_path)


def test_train_from_ledger_learns_which_workflows_fail_on_the_weak_model():
    ledger = DuckDBLedger(":memory:")
    runs, events = [], []
    for i in range(40):
        workflow = "legal_review" if i % 2 else "faq"
        status = "failed" if workflow == "legal_review" and i % 10 != 1 else "completed"
        runs.append(TaskRun(task_run_id=f"r{i}", workflow=workflow, started_at=T0, status=status, ended_at=T0))
        events.append(event(f"e{i}", model="gpt-4o-mini", workflow=workflow, task_run_id=f"r{i}"))
    events.append(event("mixed", model="gpt-4o", workflow="faq", task_run_id="r0"))  # r0 mixed models: left out
    ledger.record_task_runs(runs)
    ledger.record_events(events)
    model = train_from_ledger(ledger, weak="gpt-4o-mini", strong="gpt-4o")
    assert model.meta["runs"] == "39"
    settings = RouteSettings.model_validate(
        {"enabled": True, "learned": {"path": "x.npz", "weak": "gpt-4o-mini", "strong": "gpt-4o"}}
    )
    router = Router(settings, model)
    legal = router.decide(RouteRequest(model="auto", prompt="", workflow="legal_review", input_tokens=1000))
    faq = router.decide(RouteRequest(model="auto", prompt="", workflow="faq", input_tokens=1000))
    assert legal is not None and faq is not None
    assert (legal.model, faq.model) == ("gpt-4o", "gpt-4o-mini")
    with pytest.raises(ValueError, match="both completed and failed"):
        train_from_ledger(ledger, weak="gpt-4o-mini", strong="gpt-4o", workflow="faq")
    ledger.close()
