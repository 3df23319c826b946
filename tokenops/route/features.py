"""A prompt as numbers the learned router can score in well under a millisecond: hashed n-grams + shape.

Hashing (the "hashing trick") keeps the model a fixed size whatever the vocabulary, so an artefact
is one weight vector and needs no tokenizer or vocabulary file. The hash is CRC-32, which is stable
across processes (Python's `hash()` is salted per process and would change the features on restart).

Very long prompts are cut to their first and last `MAX_TOKENS // 2` tokens before hashing, which
bounds the router's latency; the shape features still see the whole length.
"""

from __future__ import annotations

import math
import re
import zlib
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

DIM_BITS = 18
"""Hashed feature space: 2**18 buckets (a float32 weight vector of 1 MiB)."""
MAX_TOKENS = 1200
"""Tokens hashed per prompt (head and tail); bounds the decision time."""
MAX_CHARS = 8_000
"""Characters read per prompt (head and tail); longer prompts' shape counts are scaled up from them."""

_TOKEN = re.compile(r"[a-z]+|\d+(?:[.,]\d+)*|[^\sa-z\d]")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_MATH = re.compile(r"[=+*/^%$<>∑∫√]")
_OPTION = re.compile(r"^[A-D][.)]", re.MULTILINE)
_SENTENCE = re.compile(r"[.!?](?:\s|$)")
_CODE = re.compile(r"```|\bdef |\bclass |\breturn\b|;\s*$|\{\s*$", re.MULTILINE)

SHAPE_NAMES = (
    "log_chars",
    "log_words",
    "log_lines",
    "numbers",
    "distinct_numbers",
    "math_symbols",
    "questions",
    "code",
    "options",
    "sentences",
)
"""Dense features, in the order they are stored (standardised with the training set's mean and std)."""


@dataclass(frozen=True, slots=True)
class Features:
    """One prompt's features: sparse hashed n-grams plus dense shape values."""

    indices: npt.NDArray[np.int64]
    """Hashed buckets present (unique)."""
    values: npt.NDArray[np.float32]
    """Their weights (log counts, scaled to unit norm)."""
    shape: npt.NDArray[np.float32]
    """The raw `SHAPE_NAMES` values."""


def tokens(text: str) -> list[str]:
    """Lower-cased words, numbers and punctuation; numbers become `<num:digits>` classes."""
    out: list[str] = []
    for tok in _TOKEN.findall(_window(text).lower()):
        if tok[0].isdigit():
            out.append(f"<num{min(len(tok), 6)}>")
        else:
            out.append(tok)
    if len(out) > MAX_TOKENS:
        half = MAX_TOKENS // 2
        out = out[:half] + out[-half:]
    return out


def context_tokens(workflow: str | None, input_tokens: int) -> tuple[str, ...]:
    """What the gateway and the ledger both know of a call besides its text: workflow and size class."""
    return (f"workflow={workflow or ''}", f"size={int(math.log2(input_tokens + 1))}")


def _bucket(gram: str, mask: int) -> int:
    return zlib.crc32(gram.encode()) & mask


def _window(text: str) -> str:
    if len(text) <= MAX_CHARS:
        return text
    half = MAX_CHARS // 2
    return text[:half] + "\n" + text[-half:]


def shape(text: str) -> npt.NDArray[np.float32]:
    """Length and complexity signals of the whole prompt (the prompt-length floor, and more)."""
    seen = _window(text)
    scale = len(text) / len(seen) if seen else 1.0  # counts of a very long prompt, estimated from its ends
    numbers = _NUMBER.findall(seen)
    counts = [
        len(seen.split()),
        seen.count("\n"),
        len(numbers),
        len(set(numbers)),
        len(_MATH.findall(seen)),
        seen.count("?"),
        len(_CODE.findall(seen)),
        len(_OPTION.findall(seen)),
        len(_SENTENCE.findall(seen)),
    ]
    return np.array([math.log1p(len(text)), *(math.log1p(c * scale) for c in counts)], dtype=np.float32)


def featurize(text: str, context: tuple[str, ...] = (), dim_bits: int = DIM_BITS) -> Features:
    """Word unigrams and bigrams plus 4-grams inside long words, hashed into `2**dim_bits` buckets.

    `context` adds whole tokens such as `workflow=support_ticket` (what the ledger knows of a call).
    """
    mask = (1 << dim_bits) - 1
    toks = tokens(text)
    counts: dict[int, int] = {_bucket("ctx:" + c, mask): 1 for c in context}
    prev = "<s>"
    for tok in toks:
        for gram in (tok, prev + " " + tok):
            b = _bucket(gram, mask)
            counts[b] = counts.get(b, 0) + 1
        if len(tok) > 5:  # sub-word pieces generalise across inflections (e.g. "derivative"/"derivatives")
            for i in range(0, len(tok) - 3, 2):
                b = _bucket("#" + tok[i : i + 4], mask)
                counts[b] = counts.get(b, 0) + 1
        prev = tok
    indices = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
    values = np.log1p(np.fromiter(counts.values(), dtype=np.float32, count=len(counts)))
    norm = float(np.sqrt(np.dot(values, values))) or 1.0
    return Features(indices=indices, values=(values / norm).astype(np.float32), shape=shape(text))


@dataclass(frozen=True, slots=True)
class Batch:
    """Many prompts' features in CSR form, for training."""

    indices: npt.NDArray[np.int64]
    """Concatenated buckets."""
    values: npt.NDArray[np.float32]
    """Concatenated weights."""
    rows: npt.NDArray[np.int64]
    """Row of each entry."""
    shape: npt.NDArray[np.float32]
    """(n, len(SHAPE_NAMES)) raw shape features."""

    @property
    def n(self) -> int:
        """Number of prompts."""
        return int(self.shape.shape[0])

    def take(self, rows: npt.NDArray[np.int64]) -> Batch:
        """The prompts at `rows` (renumbered 0..len(rows)-1)."""
        new_row = np.full(self.n, -1, dtype=np.int64)
        new_row[rows] = np.arange(len(rows))
        keep = new_row[self.rows] >= 0
        return Batch(self.indices[keep], self.values[keep], new_row[self.rows[keep]], self.shape[rows])


def batch(texts: list[str], contexts: list[tuple[str, ...]] | None = None, dim_bits: int = DIM_BITS) -> Batch:
    """Featurize many prompts at once."""
    ctx = contexts or [()] * len(texts)
    feats = [featurize(t, c, dim_bits) for t, c in zip(texts, ctx, strict=True)]
    sizes = [len(f.indices) for f in feats]
    return Batch(
        indices=np.concatenate([f.indices for f in feats]) if feats else np.zeros(0, np.int64),
        values=np.concatenate([f.values for f in feats]) if feats else np.zeros(0, np.float32),
        rows=np.repeat(np.arange(len(feats), dtype=np.int64), sizes),
        shape=np.stack([f.shape for f in feats]) if feats else np.zeros((0, len(SHAPE_NAMES)), np.float32),
    )
