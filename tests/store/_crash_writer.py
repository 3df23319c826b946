"""A process for the kill -9 test: spool events, say "ready", wait to be killed.

Usage: python tests/store/_crash_writer.py DB SPOOL_DIR COMPLETED WRITTEN_FIRST IN_FLIGHT

The first WRITTEN_FIRST completed calls are flushed to the ledger; the rest are only spooled
(the batch never fills and never times out); IN_FLIGHT calls are begun and never completed.
"""

from __future__ import annotations

import sys
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from tests.factories import T0
from tokenops.events import Attribution, Cost, TokenUsage, UsageEvent
from tokenops.store import DuckDBLedger
from tokenops.store.writer import LedgerWriter


def completed_events(n: int) -> list[UsageEvent]:
    """Calls with awkward values: sub-micro-dollar costs, microsecond times, unpriced ones, tags."""
    out = []
    for i in range(n):
        priced = i % 7 != 3
        cost = Cost(
            input=Decimal("0.000000000001") * (i + 1),
            cache_read=Decimal("0"),
            cache_write=Decimal("1.5") if i % 5 == 0 else Decimal("0"),
            output=Decimal("123.456789012345"),
            other=Decimal("0.1") * i,
        )
        out.append(
            UsageEvent(
                request_id=f"resp-{i}",
                ts=T0 + timedelta(seconds=i, microseconds=i * 37),
                provider="openai",
                model="gpt-4o" if priced else "mystery-model",
                usage=TokenUsage(input_tokens=1000 + i, cache_read_tokens=i, output_tokens=10 * i),
                cost=cost if priced else None,
                price_source="genai-prices:openai/gpt-4o" if priced else "unpriced",
                attribution=Attribution(team="support", user=f"u{i % 3}", iteration=i, tags={"env": "prod"}),
                latency_ms=0.1 * i,
            )
        )
    return out


def in_flight_attribution(j: int) -> Attribution:
    """Attribution of the j-th call that never completes."""
    return Attribution(team="search", workflow="answer", tags={"k": str(j)})


def main() -> None:
    db, spool_dir, completed, written_first, in_flight = sys.argv[1:]
    ledger = DuckDBLedger(db)
    writer = LedgerWriter(ledger, Path(spool_dir), batch_size=10**9, flush_interval=3600.0, rescan_interval=None)
    writer.start()
    events = completed_events(int(completed))
    for i, event in enumerate(events):
        writer.begin(f"call-{i}", event.ts, event.provider, event.model, event.attribution)
        writer.submit(event, f"call-{i}")
        if i + 1 == int(written_first):
            writer.flush()
    for j in range(int(in_flight)):
        writer.begin(f"inflight-{j}", T0 + timedelta(hours=j), "anthropic", "claude-x", in_flight_attribution(j))
    print("ready", flush=True)
    sys.stdin.read()  # killed here, before anything else is written


if __name__ == "__main__":
    main()
