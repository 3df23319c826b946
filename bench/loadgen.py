"""The load generator of `bench/gateway.py`, run as its own process on the fake provider's core.

    python bench/loadgen.py URL latency    --count 5000 --warmup 200 [--header 'name: value']
    python bench/loadgen.py URL stream     --count 2000 --warmup 100
    python bench/loadgen.py URL throughput --seconds 5 --concurrency 32

Prints one JSON object: requests sent (warm-up included, so the server's CPU time can be divided
by it), how many answered 200, the measured latencies in ms (warm-up excluded), wall time and
the client's own CPU time. `latency` and `stream` send one request at a time over one keep-alive
connection (httpx); `throughput` keeps `concurrency` requests in flight for `seconds` (aiohttp).
Every mode stops by itself: a fixed count, or a deadline.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import time

import aiohttp
import httpx
import orjson

BODY = {
    "model": "gpt-4o-mini",
    "messages": [
        {"role": "system", "content": "You sort support tickets into billing, bug or question."},
        {"role": "user", "content": "I was charged twice for my subscription this month, please help."},
    ],
    "max_tokens": 40,
}


def _sequential(url: str, headers: dict[str, str], count: int, warmup: int, stream: bool) -> dict[str, object]:
    body = orjson.dumps({**BODY, "stream": True} if stream else BODY)
    headers = {**headers, "content-type": "application/json"}
    latencies: list[float] = []
    ok = 0
    with httpx.Client(timeout=60) as client:
        for i in range(warmup + count):
            started = time.perf_counter()
            if stream:
                with client.stream("POST", url, content=body, headers=headers) as response:
                    for _ in response.iter_raw():
                        pass
            else:
                response = client.post(url, content=body, headers=headers)
            elapsed = (time.perf_counter() - started) * 1000
            ok += response.status_code == 200
            if i >= warmup:
                latencies.append(elapsed)
    return {"sent": warmup + count, "ok": ok, "latencies_ms": latencies}


async def _throughput(url: str, headers: dict[str, str], seconds: float, concurrency: int) -> dict[str, object]:
    body = orjson.dumps(BODY)
    headers = {**headers, "content-type": "application/json"}
    sent = ok = 0
    deadline = time.monotonic() + seconds

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal sent, ok
        while time.monotonic() < deadline:
            sent += 1
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                ok += response.status == 200

    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=timeout) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return {"sent": sent, "ok": ok, "latencies_ms": []}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url")
    parser.add_argument("mode", choices=["latency", "stream", "throughput"])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--header", action="append", default=[], help="'name: value', repeatable")
    args = parser.parse_args()
    headers = dict(h.split(": ", 1) for h in args.header)
    gc.collect()
    gc.freeze()  # the client's own collections would otherwise show up as proxy tail latency
    started, cpu = time.perf_counter(), time.process_time()
    if args.mode == "throughput":
        result = asyncio.run(_throughput(args.url, headers, args.seconds, args.concurrency))
    else:
        result = _sequential(args.url, headers, args.count, args.warmup, args.mode == "stream")
    result["wall_s"] = time.perf_counter() - started
    result["client_cpu_s"] = time.process_time() - cpu
    sys.stdout.buffer.write(orjson.dumps(result) + b"\n")


if __name__ == "__main__":
    main()
