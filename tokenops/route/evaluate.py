"""`tokenops eval routing`: RouteLLM's benchmarks and metrics, reimplemented exactly, on the shared data.

Protocol (RouteLLM's released harness, `routellm/evals/{benchmarks,evaluate}.py`, commit 0b64fda):
decontaminated prompts; a router scores each prompt (MT-Bench: turn 1 only); the scores' 11 deciles
(`pd.qcut(scores, 10)` edges, linear interpolation) are thresholds; at each, prompts scoring `>=` it
(`>` at the last) go to the strong model. APGR is the trapezoid area under (strong-call share,
quality) above the weak model's line, over the strong model's; CPT(x%) is
`np.interp(weak + x (strong - weak), qualities, strong_shares)` with points sorted by share.

The data's licence allows it as an evaluation set only, so the learned router is scored with
k-fold cross-validation: every prompt is scored by a model that never saw it, and no model trained
on this data is saved or shipped.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
import pyarrow.csv as pacsv

from tokenops.route.features import batch
from tokenops.route.learned import TrainConfig, fit

Benchmark = Literal["gsm8k", "mmlu", "mt-bench"]
BENCHMARKS: tuple[Benchmark, ...] = ("gsm8k", "mmlu", "mt-bench")
STRONG = "gpt-4-1106-preview"
WEAK = "mistralai/Mixtral-8x7B-Instruct-v0.1"

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Dataset:
    """One benchmark after decontamination: a prompt and both models' quality on it."""

    name: Benchmark
    """Benchmark name."""
    prompts: list[str]
    """What the router sees (MT-Bench: the first turn)."""
    strong: F64
    """Strong model's quality per prompt (1/0 correct, or the MT-Bench judge score averaged over turns)."""
    weak: F64
    """Weak model's quality per prompt."""
    scale: float
    """Multiplier of mean quality as the harness reports it (100 for accuracy %, 1 for MT-Bench)."""


@dataclass(frozen=True, slots=True)
class Result:
    """A router's metrics on one benchmark."""

    apgr: float
    """Average performance gap recovered."""
    cpt50: float
    """Strong-call % at which 50% of the gap is recovered."""
    cpt80: float
    """Strong-call % at which 80% of the gap is recovered."""


def _jsonl(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _contaminated(folder: Path) -> set[str]:
    return {str(row["eval_prompt"]) for row in _jsonl(folder / "contaminated_prompts.jsonl")}


def _csv(path: Path) -> tuple[list[str], F64, F64]:
    table = pacsv.read_csv(path, parse_options=pacsv.ParseOptions(newlines_in_values=True))
    prompts = [str(p) for p in table.column("prompt").to_pylist()]
    strong = np.array(table.column(STRONG).to_pylist(), dtype=np.float64)
    weak = np.array(table.column(WEAK).to_pylist(), dtype=np.float64)
    return prompts, strong, weak


def load(root: Path, name: Benchmark) -> Dataset:
    """Load and decontaminate a benchmark from `root` (the `routellm/` folder of the shared data)."""
    if name == "mt-bench":
        return _mt_bench(root / "mt_bench")
    folder = root / name
    if name == "gsm8k":
        prompts, strong, weak = _csv(folder / "gsm8k_responses.csv")
    else:
        parts = [_csv(p) for p in sorted((folder / "responses").glob("mmlu_*.csv"))]
        if not parts:
            raise FileNotFoundError(f"no mmlu_*.csv under {str(folder / 'responses')!r}")
        prompts = [p for part in parts for p in part[0]]
        strong = np.concatenate([part[1] for part in parts])
        weak = np.concatenate([part[2] for part in parts])
    bad = _contaminated(folder)
    keep = np.array([p not in bad for p in prompts], dtype=bool)
    return Dataset(name, [p for p, k in zip(prompts, keep, strict=True) if k], strong[keep], weak[keep], 100.0)


def _mt_bench(folder: Path) -> Dataset:
    bad = _contaminated(folder)
    questions = [q for q in _jsonl(folder / "question.jsonl") if not set(map(str, q["turns"])) & bad]  # type: ignore[call-overload]
    scores: dict[tuple[object, object], list[float]] = {}
    for row in _jsonl(folder / "judgements.jsonl"):
        scores.setdefault((row["question_id"], row["model"]), []).append(float(row["score"]))  # type: ignore[arg-type]

    def mean(qid: object, model: str) -> float:
        return float(np.mean(scores[(qid, model)]))

    return Dataset(
        "mt-bench",
        [str(q["turns"][0]) for q in questions],  # type: ignore[index]
        np.array([mean(q["question_id"], STRONG) for q in questions]),
        np.array([mean(q["question_id"], WEAK) for q in questions]),
        1.0,
    )


def curve(data: Dataset, scores: F64, bins: int = 10) -> tuple[F64, F64]:
    """(strong-call %, quality) at each decile threshold, sorted by strong-call % as the harness does."""
    edges = np.quantile(scores, np.linspace(0.0, 1.0, bins + 1))
    shares, quality = [], []
    for i, cut in enumerate(edges):
        chosen = scores >= cut if i < len(edges) - 1 else scores > cut
        shares.append(chosen.mean() * 100.0)
        quality.append(np.where(chosen, data.strong, data.weak).mean() * data.scale)
    order = np.argsort(np.array(shares), kind="stable")
    return np.array(shares)[order], np.array(quality)[order]


def metrics(data: Dataset, scores: F64) -> Result:
    """APGR and CPT(50%), CPT(80%) of a router's scores."""
    shares, quality = curve(data, np.asarray(scores, dtype=np.float64))
    weak, strong = data.weak.mean() * data.scale, data.strong.mean() * data.scale
    x = shares / 100.0
    auc = float(np.trapezoid(quality, x))
    weak_auc = float(np.trapezoid(np.full_like(x, weak), x))
    strong_auc = float(np.trapezoid(np.full_like(x, strong), x))

    def cpt(pct: float) -> float:
        return float(np.interp(weak + pct * (strong - weak), quality, shares))

    return Result((auc - weak_auc) / (strong_auc - weak_auc), cpt(0.5), cpt(0.8))


def random_router(data: Dataset, seeds: int = 10) -> Result:
    """A coin per prompt; the mean over `seeds` seeded draws."""
    runs = [metrics(data, np.random.default_rng(seed).uniform(size=len(data.prompts))) for seed in range(seeds)]
    return Result(*(float(np.mean([getattr(r, f) for r in runs])) for f in ("apgr", "cpt50", "cpt80")))


def length_router(data: Dataset) -> Result:
    """Longer prompts to the strong model (characters): the floor any learned router must clear."""
    return metrics(data, np.array([len(p) for p in data.prompts], dtype=np.float64))


def labels(data: Dataset) -> F64:
    """Training target: the strong model was needed, i.e. the weak one fell short of it."""
    return (data.strong > data.weak).astype(np.float64)


def cross_validated_scores(
    data: Dataset,
    folds: int = 5,
    seed: int = 0,
    config: TrainConfig | None = None,
    target: Callable[[Dataset], F64] = labels,
) -> F64:
    """Scores of the learned router where each prompt is scored by a model trained on the other folds."""
    cfg = config or TrainConfig()
    feats = batch(data.prompts, dim_bits=cfg.dim_bits)
    y = target(data)
    order = np.random.default_rng(seed).permutation(len(data.prompts))
    scores = np.zeros(len(data.prompts))
    for k in range(folds):
        test = np.sort(order[k::folds])
        train = np.setdiff1d(order, test)
        model = fit(feats.take(train), y[train], cfg)
        scores[test] = model.scores(feats.take(test))
    return scores


def learned_router(data: Dataset, folds: int = 5, seed: int = 0) -> Result:
    """The learned router under k-fold cross-validation."""
    return metrics(data, cross_validated_scores(data, folds, seed))


def learned_repeated(data: Dataset, folds: int = 5, repeats: int = 3) -> Result:
    """The learned router's metrics averaged over `repeats` seeded fold splits (GSM8K's vary by ~0.01 APGR)."""
    runs = [metrics(data, cross_validated_scores(data, folds, seed)) for seed in range(repeats)]
    return Result(*(float(np.mean([getattr(r, f) for r in runs])) for f in ("apgr", "cpt50", "cpt80")))


PUBLISHED: dict[Benchmark, list[tuple[str, Result]]] = {
    "mt-bench": [
        ("paper: random", Result(0.500, 49.03, 78.08)),
        ("paper best: matrix factorization", Result(0.802, 13.40, 31.31)),
    ],
    "mmlu": [
        ("paper: random", Result(0.500, 50.07, 79.93)),
        ("paper best: SW ranking (Arena+gold)", Result(0.603, 35.40, 71.55)),
    ],
    "gsm8k": [
        ("paper: random", Result(0.497, 50.00, 80.08)),
        ("paper best: causal LLM (Arena+judge)", Result(0.622, 33.64, 63.26)),
    ],
}
"""RouteLLM's Tables 1-4 (arXiv:2406.18665 v4), as quoted in the shared data's README."""


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the evaluation table."""

    benchmark: Benchmark
    """Benchmark."""
    router: str
    """Router and how it was scored."""
    result: Result
    """Its metrics."""
    source: Literal["measured", "published"]
    """Computed by this run, or quoted from the paper."""


def default_root() -> Path:
    """The shared data's `routing/routellm` folder: `TOKENOPS_SHARED_DATA`, `../shared/data`, `/work/shared/data`."""
    import os

    roots = [Path(p) for p in [os.environ.get("TOKENOPS_SHARED_DATA")] if p]
    roots += [Path.cwd().parent / "shared" / "data", Path("/work/shared/data")]
    for root in roots:
        if (root / "routing" / "routellm").is_dir():
            return root / "routing" / "routellm"
    return roots[0] / "routing" / "routellm"


def evaluate(root: Path, names: tuple[Benchmark, ...] = BENCHMARKS, folds: int = 5, repeats: int = 3) -> list[Row]:
    """Random, prompt-length and learned routers on each benchmark, beside the published anchors."""
    rows: list[Row] = []
    for name in names:
        data = load(root, name)
        rows.append(Row(name, "random (mean of 10 seeds)", random_router(data), "measured"))
        rows.append(Row(name, "prompt length (longer: strong)", length_router(data), "measured"))
        label = f"tokenops learned ({folds}-fold CV, {repeats} splits)"
        rows.append(Row(name, label, learned_repeated(data, folds, repeats), "measured"))
        rows += [Row(name, router, result, "published") for router, result in PUBLISHED[name]]
    return rows
