"""How late the gateway's event loop runs while the ledger writer batches calls into DuckDB.

    .venv/bin/python bench/loop_lateness.py                       # this checkout, 15 s, on core 0
    .venv/bin/python bench/loop_lateness.py --postgres postgresql://postgres@127.0.0.1:5432   # a replica's ledger
    git archive HEAD tokenops | tar -x -C /tmp/before && .venv/bin/python bench/loop_lateness.py --before /tmp/before

A stand-in for `tokenops serve` at concurrency 1 with the ledger's work isolated: an asyncio loop
on one core that, like a request, burns ~0.6 ms of Python and submits one usage event to a
`LedgerWriter` (niced batch thread, 1 s flush interval as the server uses) over a DuckDB ledger
on disk, then sleeps 0.8 ms and records how much later than asked it woke up. A call arriving
while a batch is written waits just as long, so the lateness percentiles are what the batches add
to the gateway's p99, without the fake provider and load generator's noise. `--postgres SERVER`
writes to a fresh database there instead, as a replica does. With `--before`,
each round runs that checkout's code next (same core, same settings), for a side-by-side pair.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tokenops.store.writer import LedgerWriter

ROOT = Path(__file__).resolve().parents[1]
BUSY_S = 0.0006
"""Python work per simulated request (the gateway's own CPU per call at c=1)."""
SLEEP_S = 0.0008
"""Asked-for sleep between requests: the upstream's round trip, roughly."""


async def _loop(writer: LedgerWriter, seconds: float) -> tuple[int, list[float]]:
    from tests.factories import event

    late: list[float] = []
    n = 0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        asked = time.perf_counter()
        await asyncio.sleep(SLEEP_S)
        late.append((time.perf_counter() - asked - SLEEP_S) * 1000)
        busy = time.perf_counter() + BUSY_S
        while time.perf_counter() < busy:
            pass
        writer.submit(event(f"r{n}", task_run_id=f"t{n % 50}"))
        n += 1
    return n, sorted(late)


def probe(seconds: float, url: str | None) -> str:
    """One run in this process on ledger `url` (a DuckDB file if None): events and lateness percentiles, one line."""
    from tokenops.store import open_ledger
    from tokenops.store.writer import LedgerWriter

    with tempfile.TemporaryDirectory() as tmp:
        ledger = open_ledger(url or str(Path(tmp) / "ledger.duckdb"))
        with LedgerWriter(ledger, Path(tmp) / "spool", flush_interval=1.0) as writer:
            n, late = asyncio.run(_loop(writer, seconds))
            writer.flush()
        stored = ledger.query_rows("SELECT count(*) AS n FROM usage_events")[0]["n"]
        ledger.close()
    assert stored == n, f"{stored} rows for {n} events"

    def at(q: float) -> float:
        return late[min(len(late) - 1, int(len(late) * q))]

    return (
        f"{n:>7,} {at(0.5):>9.3f} {at(0.99):>9.3f} {at(0.999):>9.3f} {late[-1]:>9.3f}"
        f"   ({n / seconds:,.0f} events/s, every one a ledger row)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--core", type=int, default=0, help="the one core every run is pinned to")
    parser.add_argument("--before", help="directory holding an older `tokenops` package to compare with")
    parser.add_argument("--postgres", help="PostgreSQL server for the ledger (a fresh database each run)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(probe(args.seconds, args.child or None))
        return
    codes = [("after", str(ROOT))] + ([("before", args.before)] if args.before else [])
    print(f"{'code':<8} {'events':>7} {'p50 ms':>9} {'p99 ms':>9} {'p99.9 ms':>9} {'max ms':>9}")
    for _ in range(args.rounds):
        for label, path in codes:
            env = {**os.environ, "PYTHONPATH": os.pathsep.join([path, str(ROOT)])}
            with _ledger(args.postgres) as url:
                cmd = ["taskset", "-c", str(args.core), sys.executable, __file__, "--seconds", str(args.seconds)]
                cmd += ["--child", url]
                out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout.strip()
            print(f"{label:<8} {out}")


@contextmanager
def _ledger(postgres: str | None) -> Iterator[str]:
    """The child's ledger URL: "" for a DuckDB file of its own, else a fresh database on `postgres`."""
    if postgres is None:
        yield ""
        return
    from gateway import _postgres_database

    with _postgres_database(postgres) as dsn:
        yield dsn


if __name__ == "__main__":
    main()
