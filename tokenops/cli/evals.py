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
