"""Recommendations: hand-made ledgers with one opportunity each, and the demo organisation's idle seats."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import orjson
import pytest
from starlette.testclient import TestClient
from typer.testing import CliRunner

from tokenops.analytics.recommend import auto_hit_rates, recommendations
from tokenops.analytics.whatif import Scenario, replay
from tokenops.cli import app as cli
from tokenops.config import Settings
from tokenops.demo import DemoOrg, generate_org, load_demo
from tokenops.events import Attribution, Person, SeatLicense, TaskRun, TokenUsage, UsageEvent
from tokenops.pricing import Priced, Pricer
from tokenops.store import DuckDBLedger
from tokenops.web import create_app
from tokenops.web.users import user_store

END = datetime(2026, 10, 31, tzinfo=UTC)
T0 = datetime(2026, 10, 20, 10, tzinfo=UTC)


def call(
    request_id: str,
    *,
    model: str = "gpt-4o",
    workflow: str = "support_ticket",
    run: str | None = None,
    iteration: int | None = None,
    user: str = "ana",
    ts: datetime = T0,
    input_tokens: int = 1_000,
) -> UsageEvent:
    """1,000 input and 500 output tokens: $0.0075 on gpt-4o, $0.00045 on gpt-4o-mini."""
    usage = TokenUsage(input_tokens=input_tokens, output_tokens=500)
    priced = Pricer().price(model, usage, provider="openai", ts=ts)
    assert isinstance(priced, Priced)
    return UsageEvent(
        request_id=request_id,
        ts=ts,
        provider="openai",
        model=model,
        usage=usage,
        cost=priced.cost,
        price_source=priced.source,
        attribution=Attribution(
            user=user, team="support", workflow=workflow, task_run_id=run, iteration=iteration, step="act"
        ),
    )


@pytest.fixture
def ledger() -> Iterator[DuckDBLedger]:
    """support_ticket: 20 runs on gpt-4o and 20 on gpt-4o-mini, 18 of each complete; refund_agent: 20 runs of
    two iterations and one of 30; a seat for bob, who never calls a model, and one for ana, who does."""
    store = DuckDBLedger(":memory:")
    calls = [call("old", ts=END - timedelta(days=60))]  # history starts long before the 30 days read
    runs = []
    for i in range(40):
        calls.append(call(f"c{i}", model="gpt-4o" if i < 20 else "gpt-4o-mini", run=f"r{i}"))
        runs.append(TaskRun(f"r{i}", "support_ticket", T0, "failed" if i % 10 == 0 else "completed", T0))
    for i in range(21):
        for k in range(1, (30 if i == 20 else 2) + 1):
            calls.append(call(f"a{i}-{k}", model="gpt-4o-mini", workflow="refund_agent", run=f"a{i}", iteration=k))
    store.record_events(calls)
    store.record_task_runs(runs)
    store.record_people([Person("bob", "support", Decimal(50)), Person("ana", "support", Decimal(60))])
    store.record_seats(
        [
            SeatLicense("bob", "chatgpt-team", Decimal("30.00"), date(2026, 1, 1)),
            SeatLicense("ana", "chatgpt-team", Decimal("30.00"), date(2026, 1, 1)),
            SeatLicense("bob", "github-copilot", Decimal("19.00"), date(2026, 1, 1), end_date=date(2026, 9, 30)),
        ]
    )
    yield store
    store.close()


def test_each_opportunity_has_a_monthly_estimate_and_its_evidence(ledger: DuckDBLedger) -> None:
    found = {(r.kind, r.subject): r for r in recommendations(ledger, as_of=END)}

    cheaper = found[("cheaper_model", "support_ticket: gpt-4o -> gpt-4o-mini")]
    # 20 calls x ($0.0075 - $0.00045); both models complete 90% of 20 runs
    assert cheaper.monthly_saving == Decimal("0.14")
    assert "90.0% of 20" in cheaper.evidence
    loops = found[("agent_loops", "refund_agent")]
    # p50 = p95 = 2 iterations -> a limit of 4; the runaway run's iterations 5..30 cost 26 x $0.00045
    assert loops.monthly_saving == Decimal("0.01")
    assert "max 30" in loops.evidence and "cut 26 calls" in loops.evidence
    seat = found[("idle_seat", "bob / chatgpt-team")]
    assert seat.monthly_saving == Decimal("30.00") and "no AI calls in the 30 days to 2026-10-30" in seat.evidence
    assert ("idle_seat", "ana / chatgpt-team") not in found
    assert ("idle_seat", "bob / github-copilot") not in found  # cancelled before the period


def test_recommendations_are_ranked_by_saving(ledger: DuckDBLedger) -> None:
    savings = [r.monthly_saving for r in recommendations(ledger, as_of=END)]

    assert savings == sorted(savings, reverse=True) and savings[0] == Decimal("30.00")


@pytest.fixture(scope="module")
def demo() -> Iterator[tuple[DuckDBLedger, DemoOrg]]:
    org = generate_org(7, scale=0.1)
    store = DuckDBLedger(":memory:")
    load_demo(store, org)
    yield store, org
    store.close()


def test_demo_idle_seats_are_the_generators(demo: tuple[DuckDBLedger, DemoOrg]) -> None:
    store, org = demo

    found = recommendations(store)

    seats = {r.subject for r in found if r.kind == "idle_seat"}
    assert seats == {f"{s.person_id} / {s.tool}" for s in org.truth.idle_seats if s.end_date is None}
    kinds = {r.kind for r in found}
    assert {"cheaper_model", "prompt_caching", "over_retrieval", "unbounded_output"} <= kinds
    assert all(r.monthly_saving > 0 and any(c.isdigit() for c in r.evidence) for r in found)


def test_api_and_cli_list_recommendations(ledger: DuckDBLedger, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "state")
    user_store(settings).create("boss", "admin", None, "correct horse battery")
    with TestClient(create_app(settings, ledger)) as client:
        client.post("/signin", data={"name": "boss", "password": "correct horse battery"})
        body = client.get("/api/recommendations", params={"as_of": "2026-10-31"}).json()
    assert body["rows"][0] == {
        "kind": "idle_seat",
        "subject": "bob / chatgpt-team",
        "monthly_saving": "30",
        "evidence": "bob holds a chatgpt-team seat ($30.00/month) and made no AI calls in the 30 days to 2026-10-30",
    }

    path = tmp_path / "ledger.duckdb"
    with DuckDBLedger(path) as store:
        for table in ("usage_events", "task_runs", "people", "seat_licenses"):
            store.append(table, ledger.query(f"SELECT * FROM {table}"))
    args = ["report", "recommendations", "--as-of", "2026-10-31", "--ledger", str(path), "--format", "json"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert [r["kind"] for r in orjson.loads(result.stdout)][:2] == ["idle_seat", "cheaper_model"]


def test_auto_cache_hit_rate_comes_from_repeated_prefixes_within_a_run() -> None:
    store = DuckDBLedger(":memory:")
    first = call("p1", workflow="agent", run="r1", input_tokens=2_000)
    second = call("p2", workflow="agent", run="r1", input_tokens=3_000, ts=T0 + timedelta(seconds=5))
    store.record_events([first, second])

    shares, notes = auto_hit_rates(store, ["agent", "nothing"])
    result = replay(store, Scenario(cache_hit_rate=shares))

    # the second prompt repeats the first one's 2,000 tokens: 2,000 of 5,000 input tokens (40%) are cacheable
    assert shares == {"agent": 0.4, "nothing": 0.0} and len(notes) == 1 and "nothing" in notes[0]
    # 40% of each prompt read from cache at $1.25 instead of $2.50/MTok: (800 + 1,200) x $1.25/MTok
    assert result.saving == Decimal("0.0025")
    store.close()
