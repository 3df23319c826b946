"""Decision latency of the router (target: <= 5 ms per call, no GPU): rules, learned, and a long paste.

    .venv/bin/python bench/route.py [--calls 5000]

The learned model is trained on the GSM8K prompts of the shared RouteLLM data only to have realistic
weights to time; it is discarded (that data is an evaluation set). Decisions are timed on GSM8K,
MMLU and MT-Bench prompts, through `request_of` (reading the request body) and `Router.decide`,
one at a time as the gateway makes them. Not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from tokenops.route import Router, RouteSettings, request_of
from tokenops.route.evaluate import default_root, labels, load
from tokenops.route.learned import fit_texts


def timings(router: Router, prompts: list[str], calls: int) -> tuple[list[float], list[float]]:
    """Wall and CPU (this thread's) milliseconds per decision; CPU time ignores other processes' load."""
    wall, cpu = [], []
    for i in range(calls):
        body = {"model": "auto", "messages": [{"role": "user", "content": prompts[i % len(prompts)]}]}
        start, start_cpu = time.perf_counter(), time.thread_time()
        request = request_of(body, "bench")
        assert request is not None
        router.decide(request)
        cpu.append((time.thread_time() - start_cpu) * 1000)
        wall.append((time.perf_counter() - start) * 1000)
    return wall, cpu


def report(name: str, measured: tuple[list[float], list[float]]) -> None:
    for kind, ms in zip(("wall", "cpu"), measured, strict=True):
        ms = sorted(ms)
        p50, p99 = statistics.median(ms), ms[int(len(ms) * 0.99) - 1]
        print(f"{name:<28} {kind:<4} p50 {p50:7.3f} ms   p99 {p99:7.3f} ms   max {ms[-1]:7.3f} ms   ({len(ms)} calls)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--data", type=Path, default=None)
    args = parser.parse_args()
    root = args.data or default_root()
    gsm8k = load(root, "gsm8k")
    prompts = gsm8k.prompts + load(root, "mmlu").prompts[::7] + load(root, "mt-bench").prompts
    started = time.perf_counter()
    model = fit_texts(gsm8k.prompts, labels(gsm8k))
    print(f"training on {len(gsm8k.prompts)} prompts: {time.perf_counter() - started:.1f} s")
    rules = RouteSettings.model_validate(
        {
            "enabled": True,
            "rules": [
                {"name": f"r{i}", "workflow": f"wf{i}*", "keywords": ["prove", "derive"], "target": "x"}
                for i in range(20)
            ],
        }
    )
    learned = RouteSettings.model_validate(
        {**rules.model_dump(), "learned": {"path": "unused.npz", "weak": "small", "strong": "large"}}
    )
    report("20 rules, none matching", timings(Router(rules), prompts, args.calls))
    report("20 rules + learned router", timings(Router(learned, model), prompts, args.calls))
    paste = ["lorem ipsum dolor sit amet " * 16_000]  # ~80k words: cut to MAX_TOKENS before hashing
    report("learned, 80k-word prompt", timings(Router(learned, model), paste, max(args.calls // 50, 20)))


if __name__ == "__main__":
    main()
