"""What the gateway-cascade lookup adds to a call that is not cascaded (the hot path), side by side.

    .venv/bin/python bench/gateway_cascade.py [--calls 200000] [--repeats 7]

Times `cascade_of` (the one call `ProxyEndpoint.__call__` makes before the cache lookup) against a
no-op function with the same signature, on the headers an OpenAI SDK sends. CPU time of this process,
median and best of the repeats. Not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from tokenops.events import Attribution
from tokenops.route import Router, RouteSettings
from tokenops.route.gateway_cascade import cascade_of

HEADERS = [
    (b"host", b"127.0.0.1:8000"),
    (b"accept-encoding", b"gzip, deflate"),
    (b"connection", b"keep-alive"),
    (b"accept", b"application/json"),
    (b"content-type", b"application/json"),
    (b"user-agent", b"OpenAI/Python 1.99.0"),
    (b"x-stainless-lang", b"python"),
    (b"x-stainless-package-version", b"1.99.0"),
    (b"x-stainless-os", b"Linux"),
    (b"x-stainless-arch", b"x64"),
    (b"x-stainless-runtime", b"CPython"),
    (b"x-stainless-runtime-version", b"3.11.9"),
    (b"authorization", b"Bearer tk-0123456789"),
    (b"x-stainless-async", b"false"),
    (b"x-tokenops-workflow", b"chat"),
    (b"content-length", b"120"),
]


def noop(router: Router | None, call: Any, scope: Any) -> None:
    """The baseline: a call with the same arguments that does nothing."""
    return None


def per_call_ns(fn: Callable[..., object], router: Router | None, calls: int, repeats: int) -> list[float]:
    scope = {"headers": HEADERS}
    call = SimpleNamespace(attribution=Attribution(workflow="chat"), operation="chat")
    runs = []
    for _ in range(repeats):
        start = time.process_time_ns()
        for _ in range(calls):
            fn(router, call, scope)
        runs.append((time.process_time_ns() - start) / calls)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    cascades = [{"name": f"c{i}", "models": ["a", "b"], "workflows": [f"wf{i}"]} for i in range(20)]
    cases: list[tuple[str, Callable[..., object], Router | None]] = [
        ("no-op function (baseline)", noop, None),
        ("routing off", cascade_of, None),
        ("routing on, no cascades", cascade_of, Router(RouteSettings.model_validate({"enabled": True}))),
        (
            "20 cascades, call not cascaded",
            cascade_of,
            Router(RouteSettings.model_validate({"enabled": True, "cascades": cascades})),
        ),
    ]
    print(f"{'case':34s} {'CPU ns/call p50':>16s} {'best':>8s}")
    for name, fn, router in cases:
        runs = per_call_ns(fn, router, args.calls, args.repeats)
        print(f"{name:34s} {statistics.median(runs):16.0f} {min(runs):8.0f}")


if __name__ == "__main__":
    main()
