"""`tokenops eval cache`: the semantic cache's decision (`semantic.choose`) on public labelled pairs.

Every protocol runs the product's own code with the configured threshold, margin and guards,
beside plain cosine at the same threshold (no guards, no margin) so the guards' effect is visible:

- GPTCache's benchmark (`gptcache/mock_data.json`): cache every `origin`, query every `similar`;
  a hit is positive when the served origin's text is the query's own, negative otherwise.
- fow-cache's traps (`fow_cache/pairs.jsonl`): cache `a`, query `b`; should-hit pairs served, and
  traps (negation, entity swap, number/date, scope) wrongly served, per category.
- fow-cache's conversations (`conv-parts`, `conv-long`): the same, with whole conversations.
- Quora Question Pairs (`gptcache/similiar_qqp_full.json`, an evaluation input only: never copied):
  precision and recall of "served" as "duplicate", on a seeded sample.

Texts are embedded once per run (deduplicated, batched).
"""

from __future__ import annotations

import glob
import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from tokenops.cache.embed import Embedder, Vectors
from tokenops.cache.guards import Conflict
from tokenops.cache.semantic import choose
from tokenops.cache.vectors import Record
from tokenops.config import SemanticCacheSettings

TRAPS = ("negation", "entity_swap", "number_date", "scope")
SHOULD_HIT = ("paraphrase", "near_repeat")


def default_root() -> Path:
    """The shared data's `semantic_cache` folder: `TOKENOPS_SHARED_DATA`, `../shared/data`, `/work/shared/data`."""
    import os

    roots = [Path(p) for p in [os.environ.get("TOKENOPS_SHARED_DATA")] if p]
    roots += [Path.cwd().parent / "shared" / "data", Path("/work/shared/data")]
    for root in roots:
        if (root / "semantic_cache").is_dir():
            return root / "semantic_cache"
    return roots[0] / "semantic_cache"


@dataclass(frozen=True, slots=True)
class Scorer:
    """One configuration of the decision."""

    name: str
    threshold: float
    margin: float
    checks: tuple[Conflict, ...]

    @classmethod
    def of(cls, settings: SemanticCacheSettings, threshold: float | None = None) -> tuple[Scorer, Scorer]:
        """tokenops as configured, and plain cosine at the same threshold."""
        t = settings.threshold if threshold is None else threshold
        return cls("tokenops", t, settings.margin, tuple(settings.checks)), cls("cosine", t, 0.0, ())


class Vectoriser:
    """Embeds each distinct text once per run."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder
        self._known: dict[str, Vectors] = {}

    def prime(self, texts: Iterable[str]) -> None:
        """Embed every new text in one batched pass."""
        new = sorted({t for t in texts if t not in self._known})
        if new:
            for text, vector in zip(new, self.embedder.embed(new), strict=True):
                self._known[text] = vector

    def __call__(self, texts: Sequence[str]) -> Vectors:
        self.prime(texts)
        return np.stack([self._known[t] for t in texts])

    def __len__(self) -> int:
        return len(self._known)


def _record(vectorise: Vectoriser, texts: tuple[str, ...], turns: tuple[str, ...] = (), rid: str = "") -> Record:
    return Record(rid, texts, vectorise(texts), float("inf"), turns)


def _served(
    vectorise: Vectoriser, scorer: Scorer, cached: Record, query: tuple[str, ...], turns: Sequence[str]
) -> bool:
    match = choose(
        query,
        vectorise(query),
        [cached],
        threshold=scorer.threshold,
        margin=scorer.margin,
        checks=scorer.checks,
        turns=turns,
    )
    return match is not None


def gptcache(
    root: Path, vectorise: Vectoriser, scorers: Sequence[Scorer], limit: int | None = None
) -> list[dict[str, Any]]:
    """GPTCache's protocol: positive / negative / miss per scorer."""
    pairs = orjson.loads((root / "gptcache" / "mock_data.json").read_bytes())[:limit]
    origins = list(dict.fromkeys(p["origin"] for p in pairs))
    vectorise.prime(origins + [p["similar"] for p in pairs])
    records = [_record(vectorise, (o,), rid=str(i)) for i, o in enumerate(origins)]
    rows = []
    for scorer in scorers:
        counts: Counter[str] = Counter()
        for pair in pairs:
            query = (pair["similar"],)
            match = choose(
                query, vectorise(query), records, threshold=scorer.threshold, margin=scorer.margin, checks=scorer.checks
            )
            if match is None:
                counts["miss"] += 1
            else:
                counts["positive" if match.record.texts[0] == pair["origin"] else "negative"] += 1
        rows.append(
            {
                "scorer": scorer.name,
                "threshold": scorer.threshold,
                "pairs": len(pairs),
                **{name: counts[name] for name in ("positive", "negative", "miss")},
            }
        )
    return rows


def fow_pairs(
    root: Path, vectorise: Vectoriser, scorers: Sequence[Scorer], limit: int | None = None
) -> list[dict[str, Any]]:
    """fow-cache's single questions: share of each category served (wrongly, for the traps)."""
    lines = (root / "fow_cache" / "pairs.jsonl").read_bytes().splitlines()
    pairs = [orjson.loads(line) for line in lines if line.strip()][:limit]
    vectorise.prime([p["a"] for p in pairs] + [p["b"] for p in pairs])
    rows = []
    for scorer in scorers:
        served: dict[str, list[bool]] = defaultdict(list)
        for pair in pairs:
            hit = _served(vectorise, scorer, _record(vectorise, (pair["a"],)), (pair["b"],), ())
            served[pair["category"]].append(hit)
            served["should-hit" if pair["same_answer"] else "traps"].append(hit)
        rows.append({"scorer": scorer.name, "threshold": scorer.threshold, **_shares(served)})
    return rows


_COLUMNS = ("should-hit", "traps", *SHOULD_HIT, *TRAPS)


def _shares(served: dict[str, list[bool]]) -> dict[str, float | None]:
    """Share served per column, in a fixed order (None when the run had no such item)."""
    hits = {name: served.get(name) for name in _COLUMNS}
    return {name: round(sum(h) / len(h), 3) if h else None for name, h in hits.items() if name in served}


def _conversation(messages: list[dict[str, str]]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    turns = tuple(m["content"] for m in messages if m["role"] != "system")
    earlier = "\n".join(f"{m['role']}: {m['content']}" for m in messages[:-1] if m["role"] != "system")
    return ((turns[-1], earlier) if len(turns) > 1 else (turns[-1],)), turns


def fow_conversations(
    root: Path, vectorise: Vectoriser, scorers: Sequence[Scorer], limit: int | None = None
) -> list[dict[str, Any]]:
    """fow-cache's multi-turn sets: should-hit served and traps wrongly served, and the last-message-only baseline."""
    rows = []
    for kind in ("conv-parts", "conv-long"):
        cases = []
        for file in sorted(glob.glob(str(root / "fow_cache" / kind / "*.jsonl"))):
            cases += [orjson.loads(line) for line in Path(file).read_bytes().splitlines() if line.strip()]
        cases = cases[:limit]
        vectorise.prime(t for c in cases for side in (c["a"], c["b"]) for t in _conversation(side)[0])
        for scorer in scorers:
            for mode in ("conversation", "last message") if scorer.name == "cosine" else ("conversation",):
                served: dict[str, list[bool]] = defaultdict(list)
                for case in cases:
                    (texts_a, turns_a), (texts_b, turns_b) = _conversation(case["a"]), _conversation(case["b"])
                    if mode == "last message" or len(texts_a) != len(texts_b):
                        texts_a, texts_b, turns_a, turns_b = texts_a[:1], texts_b[:1], (), ()
                    if len(turns_a) != len(turns_b):  # another conversation shape: another bucket
                        served["should-hit" if case["same_answer"] else "traps"].append(False)
                        continue
                    hit = _served(vectorise, scorer, _record(vectorise, texts_a, turns_a), texts_b, turns_b)
                    served["should-hit" if case["same_answer"] else "traps"].append(hit)
                name = scorer.name if mode == "conversation" else "cosine, last message only"
                rows.append({"set": kind, "scorer": name, "threshold": scorer.threshold, **_shares(served)})
    return rows


def qqp(
    root: Path, vectorise: Vectoriser, scorers: Sequence[Scorer], sample: int | None, seed: int = 0
) -> list[dict[str, Any]]:
    """Quora Question Pairs: precision and recall of "served" as "duplicate" (`sample` pairs, None for all)."""
    pairs = orjson.loads((root / "gptcache" / "similiar_qqp_full.json").read_bytes())
    if sample is not None and sample < len(pairs):
        pairs = random.Random(seed).sample(pairs, sample)
    vectorise.prime([p["text_a"] for p in pairs] + [p["text_b"] for p in pairs])
    rows = []
    for scorer in scorers:
        tp = fp = fn = 0
        for pair in pairs:
            hit = _served(vectorise, scorer, _record(vectorise, (pair["text_a"],)), (pair["text_b"],), ())
            duplicate = int(pair["label"]) == 1
            tp += hit and duplicate
            fp += hit and not duplicate
            fn += duplicate and not hit
        rows.append(
            {
                "scorer": scorer.name,
                "threshold": scorer.threshold,
                "pairs": len(pairs),
                "duplicates": tp + fn,
                "precision": round(tp / (tp + fp), 3) if tp + fp else None,
                "recall": round(tp / (tp + fn), 3) if tp + fn else None,
            }
        )
    return rows
