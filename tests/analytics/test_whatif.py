"""What-if replay: known calls -> another policy -> savings computed by hand, exact to the pico-dollar."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import orjson
import pytest
from starlette.testclient import TestClient
from typer.testing import CliRunner

from tokenops.analytics.spend import Filters
from tokenops.analytics.whatif import ModelMap, Scenario, WhatIf, replay
from tokenops.cli import app as cli
from tokenops.config import Settings
from tokenops.demo import DemoOrg, generate_org, load_demo
from tokenops.events import Attribution, TaskRun, TokenUsage, UsageEvent
from tokenops.pricing import Priced, PriceOverride, Pricer
from tokenops.store import DuckDBLedger
from tokenops.web import create_app
from tokenops.web.users import user_store

T0 = datetime(2026, 10, 5, 10, tzinfo=UTC)
OCTOBER = Filters(start=datetime(2026, 10, 1, tzinfo=UTC), end=datetime(2026, 11, 1, tzinfo=UTC))


def call(
    request_id: str,
    *,
    model: str = "gpt-4o",
    provider: str = "openai",
    workflow: str | None = "support_ticket",
    input_tokens: int = 1_000,
    output_tokens: int = 500,
    ts: datetime = T0,
    run: str | None = None,
) -> UsageEvent:
    """A call priced by the real Pricer (unpriced when the model is unknown)."""
    usage = TokenUsage(input_tokens=input_tokens, output_tokens=output_tokens)
    priced = Pricer().price(model, usage, provider=provider, ts=ts)
    return UsageEvent(
        request_id=request_id,
        ts=ts,
        provider=provider,
        model=model,
        usage=usage,
        cost=priced.cost if isinstance(priced, Priced) else None,
        price_source=priced.source,
        attribution=Attribution(user="ana", team="support", workflow=workflow, task_run_id=run),
    )


@pytest.fixture
def ledger() -> Iterator[DuckDBLedger]:
    """Three gpt-4o calls of support_ticket ($0.0075 each: 1,000 in at $2.50/MTok, 500 out at $10/MTok),
    one of triage, one on a private model nobody priced."""
    store = DuckDBLedger(":memory:")
    store.record_events(
        [
            *(call(f"s{i}", ts=T0 + timedelta(hours=i)) for i in range(3)),
            call("t1", workflow="triage"),
            call("u1", model="acme-internal-llm", provider="self-hosted", input_tokens=700, output_tokens=300),
        ]
    )
    yield store
    store.close()


def rows(result: WhatIf) -> dict[str | None, tuple[Decimal, Decimal, Decimal]]:
    return {r.workflow: (r.baseline_cost, r.scenario_cost, r.saving) for r in result.rows}


def test_model_mapping_prices_the_same_tokens_on_the_new_model(ledger: DuckDBLedger) -> None:
    result = replay(ledger, Scenario(models=(ModelMap("support_ticket", "gpt-4o-mini"),)), filters=OCTOBER)

    # gpt-4o-mini: 1,000 x $0.15/MTok + 500 x $0.60/MTok = $0.00045 per call
    assert rows(result)["support_ticket"] == (Decimal("0.0225"), Decimal("0.00135"), Decimal("0.02115"))
    assert rows(result)["triage"] == (Decimal("0.0075"), Decimal("0.0075"), Decimal(0))
    assert result.saving == Decimal("0.02115")


def test_unpriced_calls_stay_unpriced_and_an_unknown_target_is_reported_apart(ledger: DuckDBLedger) -> None:
    result = replay(ledger, Scenario(models=(ModelMap("triage", "no-such-model"),)), filters=OCTOBER)

    support = next(r for r in result.rows if r.workflow == "support_ticket")
    assert (support.unpriced_events, support.unpriced_tokens) == (1, 1_000)
    triage = next(r for r in result.rows if r.workflow == "triage")
    assert (triage.scenario_unpriced_events, triage.scenario_unpriced_cost) == (1, Decimal("0.0075"))
    assert (triage.baseline_cost, triage.scenario_cost) == (
        Decimal(0),
        Decimal(0),
    )  # left out of the saving, not priced at $0
    assert any("no-such-model" in note for note in result.notes)


def test_output_cap_clamps_output_tokens(ledger: DuckDBLedger) -> None:
    result = replay(ledger, Scenario(output_cap={"support_ticket": 200}), filters=OCTOBER)

    # 1,000 x $2.50/MTok + 200 x $10/MTok = $0.0045 per call
    assert rows(result)["support_ticket"] == (Decimal("0.0225"), Decimal("0.0135"), Decimal("0.009"))
    assert next(r for r in result.rows if r.workflow == "support_ticket").clipped_calls == 3


def test_cache_hit_rate_moves_input_to_the_cache_read_price(ledger: DuckDBLedger) -> None:
    result = replay(ledger, Scenario(cache_hit_rate={"*": 0.5}), filters=OCTOBER)

    # 500 x $2.50/MTok + 500 cached x $1.25/MTok + 500 x $10/MTok = $0.006875 per call
    assert rows(result)["support_ticket"][1] == Decimal("0.020625")
    assert result.saving == Decimal("0.0025")


def test_discount_override_is_a_price_list_scenario(ledger: DuckDBLedger) -> None:
    result = replay(ledger, Scenario(overrides=(PriceOverride(model="gpt-4o*", discount=Decimal("0.2")),)))

    assert rows(result)["support_ticket"][1] == Decimal("0.018")
    assert result.saving == Decimal("0.006")


def test_long_context_tier_is_priced_like_each_call() -> None:
    store = DuckDBLedger(":memory:")
    store.record_events([call("big", input_tokens=250_000, output_tokens=1_000), call("small")])

    result = replay(store, Scenario(models=(ModelMap("*", "claude-sonnet-4-5"),)), filters=OCTOBER)

    # over 200k input tokens Claude Sonnet 4.5 costs $6 / $22.50 per MTok, below $3 / $15
    expected = Decimal("1.5") + Decimal("0.0225") + Decimal("0.003") + Decimal("0.0075")
    assert result.rows[0].scenario_cost == expected
    store.close()


def test_quality_change_comes_from_task_success_by_model() -> None:
    store = DuckDBLedger(":memory:")
    runs, calls = [], []
    for i in range(40):
        model = "gpt-4o" if i < 20 else "gpt-4o-mini"
        ok = i % 4 != 0 if i < 20 else i % 10 != 0  # gpt-4o: 15 of 20 complete, gpt-4o-mini: 18 of 20
        runs.append(TaskRun(f"r{i}", "support_ticket", T0, "completed" if ok else "failed", T0, "ana", "support"))
        calls.append(call(f"c{i}", model=model, run=f"r{i}"))
    store.record_events(calls)
    store.record_task_runs(runs)

    result = replay(store, Scenario(models=(ModelMap("support_ticket", "gpt-4o-mini"),)), filters=OCTOBER)

    quality = result.rows[0].quality
    assert quality is not None
    # 33 of 40 complete now; the 20 gpt-4o runs would complete 90% instead of 75%
    assert quality.success_before == pytest.approx(0.825)
    assert quality.success_after == pytest.approx(0.825 + 20 / 40 * (0.9 - 0.75))
    store.close()


@pytest.fixture(scope="module")
def demo() -> Iterator[tuple[DuckDBLedger, DemoOrg]]:
    org = generate_org(7, scale=0.1)
    store = DuckDBLedger(":memory:")
    load_demo(store, org)
    yield store, org
    store.close()


def test_replaying_the_demo_org_reprices_every_call_exactly(demo: tuple[DuckDBLedger, DemoOrg]) -> None:
    store, org = demo
    everything = Filters(start=datetime(2026, 1, 1, tzinfo=UTC), end=datetime(2027, 1, 1, tzinfo=UTC))

    # a cap nobody reaches forces every priced call through the set-based rates
    result = replay(store, Scenario(output_cap={"*": 10**9}), filters=everything)

    assert sum(r.baseline_cost for r in result.rows) == org.truth.total_cost
    assert result.saving == 0
    assert sum(r.unpriced_events for r in result.rows) == org.truth.unpriced_events


def test_demo_mapping_reports_saving_and_quality(demo: tuple[DuckDBLedger, DemoOrg]) -> None:
    store, _ = demo
    scenario = Scenario(models=(ModelMap("lead_enrichment", "gemini-2.5-flash", from_model="gpt-4.1"),))

    result = replay(store, scenario, filters=OCTOBER)

    lead = next(r for r in result.rows if r.workflow == "lead_enrichment")
    assert lead.saving > 0 and lead.quality is not None and "gpt-4.1" in lead.quality.evidence
    assert all(r.saving == 0 for r in result.rows if r.workflow != "lead_enrichment")


def test_api_whatif_validates_the_body_and_answers_exact_money(ledger: DuckDBLedger, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "state")
    user_store(settings).create("boss", "admin", None, "correct horse battery")
    with TestClient(create_app(settings, ledger)) as client:
        client.post("/signin", data={"name": "boss", "password": "correct horse battery"})
        body = {
            "start": "2026-10-01",
            "end": "2026-11-01",
            "models": [{"workflow": "support_ticket", "model": "gpt-4o-mini"}],
        }
        answer = client.post("/api/whatif", json=body)
        refused = client.post("/api/whatif", json={**body, "budget": 10})
        bad_rate = client.post("/api/whatif", json={"cache_hit_rate": {"support_ticket": 1.5}})

    assert answer.status_code == 200, answer.text
    assert answer.json()["saving"] == "0.02115"
    assert answer.json()["rows"][0]["scenario_cost"] == "0.00135"
    assert refused.status_code == 422 and "budget" in refused.json()["error"]["message"]
    assert bad_rate.status_code == 422


def test_cli_report_whatif_prints_the_saving(ledger: DuckDBLedger, tmp_path: Path) -> None:
    path = tmp_path / "ledger.duckdb"
    with DuckDBLedger(path) as store:
        store.record_events(ledger.events("TRUE", limit=100))

    args = ["report", "whatif", "--map", "support_ticket=gpt-4o-mini", "--cap", "triage=100", "--cache", "triage=auto"]
    result = CliRunner().invoke(cli, [*args, "--ledger", str(path), "--format", "json", "--since", "2026-10-01"])

    assert result.exit_code == 0, result.output
    saving = {r["workflow"]: r["saving"] for r in orjson.loads(result.stdout)}
    # triage: 400 output tokens fewer at $10/MTok
    assert saving == {"support_ticket": "0.02115", "triage": "0.004"}
    bad = CliRunner().invoke(cli, ["report", "whatif", "--map", "support_ticket", "--ledger", str(path)])
    assert bad.exit_code == 2 and "KEY=VALUE" in bad.output


def test_api_whatif_keeps_a_team_lead_to_their_team(ledger: DuckDBLedger, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "state")
    user_store(settings).create("lea", "lead", "sales", "correct horse battery")
    with TestClient(create_app(settings, ledger)) as client:
        client.post("/signin", data={"name": "lea", "password": "correct horse battery"})
        other = client.post("/api/whatif", json={"team": "support", "output_cap": {"*": 10}})
        own = client.post("/api/whatif", json={"start": "2026-10-01", "output_cap": {"*": 10}})

    assert other.status_code == 403
    assert own.status_code == 200 and own.json()["rows"] == []  # every call in the ledger is support's
