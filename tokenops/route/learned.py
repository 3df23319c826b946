"""The learned router: logistic regression on hashed n-grams and prompt shape, numpy only, no GPU.

It scores P(the strong model is needed) for a prompt; prompts scoring at or above `threshold` go to
the strong model. Training is full-batch Adam with L2 on sparse features (seeded, so the same data
gives the same model bit for bit); a decision is one sparse dot product (see `bench/route.py`).

Training data is either labelled prompts (`fit`) or the ledger's own outcomes (`train_from_ledger`).
An artefact is one `.npz` file: `save` / `load`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from tokenops.route.features import DIM_BITS, SHAPE_NAMES, Batch, batch, featurize

FORMAT = 1
"""Artefact format version written by `save`; `load` refuses others."""

F32 = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class TrainConfig:
    """Hyper-parameters of `fit` (defaults chosen by cross-validation on the RouteLLM folds)."""

    epochs: int = 150
    """Full passes over the data."""
    lr: float = 0.05
    """Adam step size."""
    l2: float | None = None
    """L2 penalty on the hashed weights; None: `max(3e-4, 1 / n)`, more data needing less (a prior's weight
    shrinks as 1/n). Of the three settings tried on the RouteLLM folds, this suited both data sizes."""
    l2_shape: float = 1e-3
    """L2 penalty on the shape weights."""
    dim_bits: int = DIM_BITS
    """Hashed feature space of 2**dim_bits buckets."""


@dataclass(frozen=True, slots=True)
class LearnedRouter:
    """A trained model: weights, the shape features' scaling, and where its threshold sits."""

    weights: F32
    """One weight per hashed bucket."""
    shape_weights: F32
    """One weight per `SHAPE_NAMES` entry."""
    shape_mean: F32
    """Training mean of the shape features."""
    shape_std: F32
    """Training standard deviation of the shape features (never 0)."""
    bias: float
    """Intercept."""
    threshold: float = 0.5
    """Scores at or above this go to the strong model."""
    meta: dict[str, str] = field(default_factory=dict)
    """Free-form provenance (trained on what, when)."""

    @property
    def dim_bits(self) -> int:
        """Size of the hashed feature space."""
        return int(self.weights.shape[0]).bit_length() - 1

    def score(self, text: str, context: tuple[str, ...] = ()) -> float:
        """P(strong needed) for one prompt."""
        f = featurize(text, context, self.dim_bits)
        z = float(np.dot(self.weights[f.indices], f.values))
        z += float(np.dot(_standard(f.shape, self.shape_mean, self.shape_std), self.shape_weights)) + self.bias
        return float(1.0 / (1.0 + np.exp(-z))) if z > -30 else 0.0

    def scores(self, data: Batch) -> F32:
        """Scores of many prompts (same values as `score`, vectorised)."""
        return _sigmoid(self._logits(data))

    def _logits(self, data: Batch) -> F32:
        z: npt.NDArray[np.float64] = np.bincount(
            data.rows, weights=self.weights[data.indices] * data.values, minlength=data.n
        ).astype(np.float64)
        z += _standard(data.shape, self.shape_mean, self.shape_std) @ self.shape_weights + self.bias
        return z.astype(np.float32)

    def with_threshold(self, threshold: float) -> LearnedRouter:
        """The same model cut at another score."""
        return LearnedRouter(
            self.weights, self.shape_weights, self.shape_mean, self.shape_std, self.bias, threshold, dict(self.meta)
        )

    def calibrate(self, data: Batch, strong_share: float) -> LearnedRouter:
        """Set the threshold so that `strong_share` of these prompts go to the strong model."""
        if not 0.0 <= strong_share <= 1.0:
            raise ValueError(f"strong_share must be within [0, 1], got {strong_share!r}")
        cut = float(np.quantile(self.scores(data), 1.0 - strong_share)) if data.n else 0.5
        return self.with_threshold(cut)

    def save(self, path: Path) -> None:
        """Write the model as one compressed `.npz` (float16 weights: a few hundred KiB)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            path,
            format=np.array(FORMAT),
            weights=self.weights.astype(np.float16),
            shape_weights=self.shape_weights,
            shape_mean=self.shape_mean,
            shape_std=self.shape_std,
            bias=np.array(self.bias),
            threshold=np.array(self.threshold),
            meta_keys=np.array(list(self.meta.keys()), dtype=str),
            meta_values=np.array(list(self.meta.values()), dtype=str),
        )

    @classmethod
    def load(cls, path: Path) -> LearnedRouter:
        """Read a model written by `save`."""
        with np.load(path, allow_pickle=False) as npz:
            if int(npz["format"]) != FORMAT:
                raise ValueError(f"{str(path)!r} is a router artefact of format {int(npz['format'])}, not {FORMAT}")
            return cls(
                weights=npz["weights"].astype(np.float32),
                shape_weights=npz["shape_weights"].astype(np.float32),
                shape_mean=npz["shape_mean"].astype(np.float32),
                shape_std=npz["shape_std"].astype(np.float32),
                bias=float(npz["bias"]),
                threshold=float(npz["threshold"]),
                meta=dict(zip(npz["meta_keys"].tolist(), npz["meta_values"].tolist(), strict=True)),
            )


def _standard(shape: F32, mean: F32, std: F32) -> F32:
    # clipped: a prompt far outside the training range (a 100k-token paste) must not swamp the n-grams
    out: F32 = np.clip((shape - mean) / std, -5.0, 5.0).astype(np.float32)
    return out


def _sigmoid(z: npt.NDArray[np.floating]) -> F32:
    out: F32 = (1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))).astype(np.float32)
    return out


def fit(
    data: Batch,
    labels: npt.NDArray[np.floating],
    config: TrainConfig | None = None,
    meta: dict[str, str] | None = None,
) -> LearnedRouter:
    """Train on prompts with labels in [0, 1] (1: the strong model was needed). Deterministic."""
    cfg = config or TrainConfig()
    if data.n != len(labels) or data.n == 0:
        raise ValueError(f"need as many labels as prompts (and at least one): {data.n} prompts, {len(labels)} labels")
    y = np.asarray(labels, dtype=np.float64)
    dim = 1 << cfg.dim_bits
    mean = data.shape.mean(axis=0).astype(np.float32)
    std = np.maximum(data.shape.std(axis=0), 1e-3).astype(np.float32)
    shp = _standard(data.shape, mean, std).astype(np.float64)
    prior = float(np.clip(y.mean(), 1e-3, 1 - 1e-3))
    params = [np.zeros(dim), np.zeros(len(SHAPE_NAMES)), np.array([np.log(prior / (1 - prior))])]
    moments = [(np.zeros_like(p), np.zeros_like(p)) for p in params]
    vals = data.values.astype(np.float64)
    l2 = cfg.l2 if cfg.l2 is not None else max(3e-4, 1.0 / data.n)
    for step in range(1, cfg.epochs + 1):
        w, v, b = params
        z = np.bincount(data.rows, weights=w[data.indices] * vals, minlength=data.n) + shp @ v + b[0]
        err = (1.0 / (1.0 + np.exp(-np.clip(z, -30, 30))) - y) / data.n
        grads = [
            np.bincount(data.indices, weights=vals * err[data.rows], minlength=dim) + l2 * w,
            shp.T @ err + cfg.l2_shape * v,
            np.array([err.sum()]),
        ]
        for p, g, (m, s) in zip(params, grads, moments, strict=True):
            m *= 0.9
            m += 0.1 * g
            s *= 0.999
            s += 0.001 * g * g
            p -= cfg.lr * (m / (1 - 0.9**step)) / (np.sqrt(s / (1 - 0.999**step)) + 1e-8)
    return LearnedRouter(
        weights=params[0].astype(np.float32),
        shape_weights=params[1].astype(np.float32),
        shape_mean=mean,
        shape_std=std,
        bias=float(params[2][0]),
        meta=dict(meta or {}),
    )


def fit_texts(texts: list[str], labels: npt.NDArray[np.floating], config: TrainConfig | None = None) -> LearnedRouter:
    """`fit` on raw prompts."""
    cfg = config or TrainConfig()
    return fit(batch(texts, dim_bits=cfg.dim_bits), labels, cfg)
