"""`tokenops eval`: reproducible evaluations on the shared public data sets."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import pyarrow as pa
import typer
from rich.console import Console

from tokenops.cli.common import fail
from tokenops.cli.output import Format, emit
from tokenops.route.evaluate import BENCHMARKS, Benchmark, default_root, evaluate

app = typer.Typer(help="Reproducible evaluations on the shared public data sets.", no_args_is_help=True)


class BenchmarkChoice(StrEnum):
    """`--benchmark` values."""

    gsm8k = "gsm8k"
    mmlu = "mmlu"
    mt_bench = "mt-bench"
    all = "all"


@app.command("routing")
def routing(
    benchmark: Annotated[BenchmarkChoice, typer.Option(help="RouteLLM benchmark.")] = BenchmarkChoice.all,
    data: Annotated[
        Path | None, typer.Option(help="The `routing/routellm` folder of the shared data (default: found).")
    ] = None,
    folds: Annotated[int, typer.Option(min=2, help="Cross-validation folds for the learned router.")] = 5,
    repeats: Annotated[int, typer.Option(min=1, help="Seeded fold splits averaged for the learned router.")] = 3,
    fmt: Annotated[Format, typer.Option("--format", help="table, csv or json.")] = Format.table,
) -> None:
    """Score the random, prompt-length and learned routers with RouteLLM's APGR and CPT, beside the paper's."""
    root = data or default_root()
    if not root.is_dir():
        raise fail(f"RouteLLM data not found at {str(root)!r}; pass --data or set TOKENOPS_SHARED_DATA")
    names: tuple[Benchmark, ...] = BENCHMARKS if benchmark is BenchmarkChoice.all else (benchmark.value,)  # type: ignore[assignment]
    rows = evaluate(root, names, folds=folds, repeats=repeats)
    table = pa.Table.from_pylist(
        [
            {
                "benchmark": r.benchmark,
                "router": r.router,
                "APGR": round(r.result.apgr, 3) if fmt is not Format.table else f"{r.result.apgr:.3f}",
                "CPT(50%)": round(r.result.cpt50, 2) if fmt is not Format.table else f"{r.result.cpt50:.2f}%",
                "CPT(80%)": round(r.result.cpt80, 2) if fmt is not Format.table else f"{r.result.cpt80:.2f}%",
                "source": r.source,
            }
            for r in rows
        ]
    )
    emit(table, fmt, title="Routing GPT-4 vs Mixtral (RouteLLM protocol)")
    if fmt is Format.table:
        Console().print(
            "Learned router: every prompt scored by a model trained on the other folds (the data is an "
            "evaluation set; nothing trained on it is kept).",
            highlight=False,
        )


@app.command("cache")
def cache(
    data: Annotated[
        Path | None, typer.Option(help="The `semantic_cache` folder of the shared data (default: found).")
    ] = None,
    threshold: Annotated[
        float | None, typer.Option(min=0.0, max=1.0, help="Cosine threshold (default: [cache.semantic] threshold).")
    ] = None,
    qqp_pairs: Annotated[int, typer.Option("--qqp", min=0, help="Quora pairs sampled (seed 0); 0 skips.")] = 10_000,
    full: Annotated[bool, typer.Option("--full", help="Every Quora pair (80,854).")] = False,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N items of each set (a quick run).")] = None,
    fmt: Annotated[Format, typer.Option("--format", help="table, csv or json.")] = Format.table,
) -> None:
    """Score the semantic cache (threshold, margin, guards) beside plain cosine on GPTCache, fow-cache and Quora."""
    import time

    from tokenops.cache.embed import Embedder
    from tokenops.cache.evaluate import Scorer, Vectoriser, fow_conversations, fow_pairs, gptcache, qqp
    from tokenops.cache.evaluate import default_root as cache_root
    from tokenops.config import SemanticCacheSettings

    root = data or cache_root()
    if not (root / "gptcache").is_dir() or not (root / "fow_cache").is_dir():
        raise fail(f"Semantic-cache data not found at {str(root)!r}; pass --data or set TOKENOPS_SHARED_DATA")
    settings = SemanticCacheSettings()
    scorers = Scorer.of(settings, threshold)
    vectorise = Vectoriser(Embedder(threads=2))
    started = time.perf_counter()
    emit(pa.Table.from_pylist(_shares(gptcache(root, vectorise, scorers, limit), fmt)), fmt, title="GPTCache mock_data")
    shares = _shares(fow_pairs(root, vectorise, scorers, limit), fmt)
    emit(pa.Table.from_pylist(shares), fmt, title="fow-cache pairs: share served (a trap served is a wrong answer)")
    conversations = _shares(fow_conversations(root, vectorise, scorers, limit), fmt)
    emit(pa.Table.from_pylist(conversations), fmt, title="fow-cache conversations: share served")
    sample = None if full else (limit or qqp_pairs)
    if full or qqp_pairs:
        emit(
            pa.Table.from_pylist(_shares(qqp(root, vectorise, scorers, sample), fmt)), fmt, title="Quora Question Pairs"
        )
    if fmt is Format.table:
        took = time.perf_counter() - started
        load = vectorise.embedder.load_s or 0.0
        Console().print(
            f"{len(vectorise)} distinct texts embedded; model load {load:.2f} s, whole run {took:.1f} s "
            f"(all-MiniLM-L6-v2 int8, margin {settings.margin}, checks {', '.join(settings.checks)}).",
            highlight=False,
        )


def _shares(rows: list[dict[str, object]], fmt: Format) -> list[dict[str, object]]:
    """Shares as percentages in a table (CSV and JSON keep the fractions)."""
    if fmt is not Format.table:
        return rows
    return [{k: _share_cell(k, v) for k, v in row.items()} for row in rows]


def _share_cell(key: str, value: object) -> object:
    if not isinstance(value, float):
        return value
    return f"{value:.2f}" if key == "threshold" else f"{value:.1%}"
