"""After a restart, in-process quota counters start from what the ledger shows this period already spent."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tests.factories import event
from tests.store.conftest import fresh_database
from tokenops.guard import CallFacts, Guard, InProcessCounters, Policies, Quota, Refusal
from tokenops.guard.restore import restore_quotas
from tokenops.pricing import Pricer
from tokenops.store import Ledger, open_ledger

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
POLICIES = Policies(
    timezone="Europe/Paris",
    quotas=[Quota(name="team-month", scope="team", period="month", max_usd=Decimal("0.05"), max_tokens=50_000)],
)


@pytest.fixture(params=["duckdb", "postgresql"])
def ledger(request: pytest.FixtureRequest) -> Iterator[Ledger]:
    """Restore reads through `query_values`: DuckDB's plain fetch, or PostgreSQL's translated query."""
    if request.param == "duckdb":
        with open_ledger(":memory:") as seeded:
            yield _seed(seeded)
        return
    with fresh_database() as dsn, open_ledger(dsn) as seeded:
        yield _seed(seeded)


def _seed(ledger: Ledger) -> Ledger:
    this_month = [event(f"gw-{i}", ts=NOW - timedelta(days=i)) for i in range(4)]  # 4 x $0.0075 (gpt-4o 1k/500)
    last_month = [event("gw-old", ts=datetime(2026, 10, 31, 22, 30, tzinfo=UTC))]  # 23:30 in Paris: October
    imported = [dataclasses.replace(event("imp-1", ts=NOW), source="import:litellm")]
    other_team = [event("gw-sales", ts=NOW, team="sales")]
    ledger.record_events(this_month + last_month + imported + other_team)
    return ledger


def _call(team: str) -> CallFacts:
    return CallFacts(NOW, "gpt-4o", "openai", 1_000, 2_000, team=team)  # worst case $0.0225


def test_a_restarted_guard_remembers_this_periods_spend_per_team(ledger: Ledger) -> None:
    counters = InProcessCounters()
    assert restore_quotas(counters, POLICIES, ledger, NOW) == 2  # support and sales
    (spent,) = counters.peek(["q:team-month:support:2026-11:usd"])
    assert spent == 4 * 7_500_000  # gateway calls of November only: not October's, not the imported one
    assert counters.peek(["q:team-month:support:2026-11:tokens"]) == (4 * 1_500,)
    guard = Guard(POLICIES, Pricer(), counters=counters)
    refused = guard.admit(_call("support"))  # $0.03 spent + $0.0225 worst case > $0.05
    assert isinstance(refused, Refusal) and refused.type == "tokenops_quota_exceeded"
    assert not isinstance(guard.admit(_call("sales")), Refusal)  # sales spent $0.0075 only


def test_restoring_twice_never_double_counts(ledger: Ledger) -> None:
    counters = InProcessCounters()
    restore_quotas(counters, POLICIES, ledger, NOW)
    restore_quotas(counters, POLICIES, ledger, NOW)
    assert counters.peek(["q:team-month:support:2026-11:usd"]) == (30_000_000,)
