"""Speed of one `Guard.admit` + `Guard.settle`, in-process and on Redis (targets: <= 0.2 ms CPU, <= 1 ms p50).

    .venv/bin/python bench/guard.py [--calls 20000] [--redis redis://127.0.0.1:6379/0]

Every policy kind is in force (model rule, escalation, input and output caps, iteration cap,
task budget, team quota, key rate limit), the most work one call can cause; calls are spread
over 997 task runs. Not a test: numbers depend on the machine. Redis keys go under a fresh
prefix that is deleted afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import redis

from tokenops.guard import (
    Admission,
    CallFacts,
    Escalation,
    Grant,
    Guard,
    InputCap,
    IterationCap,
    ModelRule,
    OutputCap,
    Policies,
    Quota,
    RateLimit,
    TaskBudget,
)
from tokenops.guard.redis_counters import RedisCounters
from tokenops.pricing import Pricer

POLICIES = Policies(
    timezone="America/New_York",
    task_budgets=[TaskBudget(workflow="bench*", max_usd=Decimal(5))],
    quotas=[Quota(name="team-day", scope="team", period="day", max_usd=Decimal(1_000_000))],
    rate_limits=[RateLimit(name="key-rpm", scope="key", requests_per_minute=10_000_000)],
    iteration_caps=[IterationCap(workflow="bench*", max_calls=1_000_000)],
    output_caps=[OutputCap(workflow="bench*", max_output_tokens=1024)],
    input_caps=[InputCap(max_input_tokens=100_000)],
    model_rules=[ModelRule(team="perf", workflow="bench*", allow=["gpt-4o*", "claude-*"])],
    escalations=[Escalation(models=["gpt-5*"], grants=[Grant(team="research")])],
)


def _facts(calls: int) -> list[CallFacts]:
    now = datetime.now(UTC)
    return [
        CallFacts(now, "gpt-4o-mini", "openai", 900, 400, "bench", "perf", f"run-{i % 997}", key_id="k1")
        for i in range(calls)
    ]


def _report(name: str, samples_ns: list[int], cpu_s: float | None = None) -> None:
    ordered = sorted(samples_ns)
    p50 = statistics.median(ordered) / 1000
    p99 = ordered[int(len(ordered) * 0.99)] / 1000
    cpu = f"  CPU {cpu_s / len(ordered) * 1e6:7.1f} us/call" if cpu_s is not None else ""
    print(f"{name:<28} p50 {p50:7.1f} us  p99 {p99:7.1f} us{cpu}")


def bench_sync(guard: Guard, calls: int) -> tuple[list[int], float]:
    facts = _facts(calls)
    guard.admit(facts[0])  # resolve the model's price once, as the first real call would
    samples = []
    cpu = time.process_time()
    for call in facts:
        start = time.perf_counter_ns()
        decision = guard.admit(call)
        assert isinstance(decision, Admission), decision
        guard.settle(decision, Decimal("0.0004"), 1_100)
        samples.append(time.perf_counter_ns() - start)
    return samples, time.process_time() - cpu


async def bench_async(guard: Guard, calls: int) -> list[int]:
    facts = _facts(calls)
    samples = []
    try:
        await guard.admit_async(facts[0])
        for call in facts:
            start = time.perf_counter_ns()
            decision = await guard.admit_async(call)
            assert isinstance(decision, Admission), decision
            await guard.settle_async(decision, Decimal("0.0004"), 1_100)
            samples.append(time.perf_counter_ns() - start)
    finally:
        await guard.counters.aclose()
    return samples


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    pricer = Pricer()

    samples, cpu = bench_sync(Guard(POLICIES, pricer), args.calls)
    _report("in-process admit+settle", samples, cpu)

    prefix = f"{{tokenops-bench-{uuid.uuid4().hex}}}:guard:"
    guard = Guard(POLICIES, pricer, counters=RedisCounters(args.redis, prefix=prefix), fail_open=False)
    try:
        samples, cpu = bench_sync(guard, args.calls)
        _report("redis admit+settle (sync)", samples, cpu)
        _report("redis admit+settle (async)", asyncio.run(bench_async(guard, args.calls)))
    finally:
        guard.close()
        client = redis.Redis.from_url(args.redis)
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


if __name__ == "__main__":
    main()
