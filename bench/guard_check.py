"""The guardrails' policy check, timed in-process (target: <= 0.2 ms CPU per call).

The gateway does not call `tokenops.guard` yet, so `bench/gateway.py` cannot see its cost end to
end; `--guard` runs this instead: `Guard.admit` then `Guard.settle` for calls spread over many
task runs, with a model rule, an output cap, an iteration cap and a task budget all in force
(the most work one call can cause). Once the guard is wired in, the gateway rows include it.

    .venv/bin/python bench/guard_check.py
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from decimal import Decimal

from tokenops.guard import Admission, CallFacts, Guard, IterationCap, ModelRule, OutputCap, Policies, TaskBudget
from tokenops.pricing import Pricer

CALLS = 50_000


def per_call_ms(calls: int = CALLS) -> float:
    """CPU ms of one admit + settle, averaged over `calls` calls."""
    policies = Policies(
        task_budgets=[TaskBudget(workflow="bench*", max_usd=Decimal("5"), on_exceed="block")],
        iteration_caps=[IterationCap(workflow="bench*", max_calls=1_000)],
        output_caps=[OutputCap(workflow="bench*", max_output_tokens=1024)],
        model_rules=[ModelRule(team="perf", workflow="bench*", allow=["gpt-4o*", "claude-*"])],
    )
    guard = Guard(policies, Pricer())
    now = datetime.now(UTC)
    facts = [
        CallFacts(now, "gpt-4o-mini", "openai", 900, 400, workflow="bench", team="perf", task_run_id=f"run-{i % 997}")
        for i in range(calls)
    ]
    guard.admit(facts[0])  # resolve the model's price once, as the first real call would
    started = time.process_time()
    for call in facts:
        admission = guard.admit(call)
        if isinstance(admission, Admission):
            guard.settle(admission, Decimal("0.0004"), 1_100)
    return (time.process_time() - started) * 1000 / calls


def report_guard() -> bool:
    """Print the guard's line of the report; True when within target."""
    ms = per_call_ms()
    ok = ms <= 0.2
    print(f"  {'ok  ' if ok else 'MISS'} guard policy check <= 0.2 ms CPU in-process ({ms:.4f} ms; not wired in yet)")
    return ok


if __name__ == "__main__":
    report_guard()
