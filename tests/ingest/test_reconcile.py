"""Reconciliation: gateway-metered events against imported provider usage and cost reports."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from tests.factories import event
from tokenops.analytics.reconcile import NO_MODEL, Window, reconcile, totals
from tokenops.cli import app
from tokenops.events import Cost
from tokenops.ingest import get_importer, run_import
from tokenops.store import DuckDBLedger

MINI = "gpt-4o-mini-2024-07-18"
SONNET = "claude-sonnet-4-5-20250929"
DAY1 = 1754006400  # 2025-08-01
T1 = datetime(2025, 8, 1, 10, tzinfo=UTC)
T2 = datetime(2025, 8, 2, 10, tzinfo=UTC)


def openai_page(kind: str, *results: dict[str, Any]) -> str:
    return json.dumps(
        {
            "object": "page",
            "data": [{"object": "bucket", "start_time": DAY1, "end_time": DAY1 + 86_400, "results": list(results)}],
            "has_more": False,
            "next_page": None,
        }
    )


def build(tmp_path: Path) -> Path:
    """Day 1: 2 metered gpt-4o-mini calls ($0.00045 each), 1 blocked, 1 unpriced; OpenAI billed $0.03.

    Day 2: 1 metered Sonnet call; Anthropic reported usage (no bill) of 3 calls' worth.
    """
    path = tmp_path / "ledger.duckdb"
    usage = openai_page(
        "usage",
        {
            "object": "organization.usage.completions.result",
            "input_tokens": 3_000,
            "output_tokens": 1_500,
            "input_cached_tokens": 0,
            "num_model_requests": 3,
            "model": MINI,
        },
    )
    costs = openai_page(
        "costs",
        {"object": "organization.costs.result", "amount": {"value": 0.01, "currency": "usd"},
         "line_item": f"{MINI}, input"},
        {"object": "organization.costs.result", "amount": {"value": 0.02, "currency": "usd"},
         "line_item": f"{MINI}, output"},
        {"object": "organization.costs.result", "amount": {"value": 0.005, "currency": "usd"},
         "line_item": "web search tool calls"},
    )  # fmt: skip
    anthropic = json.dumps(
        {
            "data": [
                {
                    "starting_at": "2025-08-02T00:00:00Z",
                    "ending_at": "2025-08-03T00:00:00Z",
                    "results": [
                        {
                            "uncached_input_tokens": 3_000,
                            "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
                            "cache_read_input_tokens": 0,
                            "output_tokens": 600,
                            "server_tool_use": {"web_search_requests": 0},
                            "model": SONNET,
                        }
                    ],
                }
            ],
            "has_more": False,
            "next_page": None,
        }
    )
    (tmp_path / "openai-usage.json").write_text(usage)
    (tmp_path / "openai-costs.json").write_text(costs)
    (tmp_path / "anthropic-usage.json").write_text(anthropic)
    with DuckDBLedger(path) as ledger:
        blocked = event("gw-blocked", model=MINI, ts=T1)
        ledger.record_events(
            [
                event("gw-1", model=MINI, ts=T1),
                event("gw-2", model=MINI, ts=T1, user=None, team=None),
                dataclasses.replace(blocked, status="blocked", cost=Cost.zero()),
                event("gw-3", model="acme-private-llm", ts=T1, provider="openai"),
                event("gw-4", model=SONNET, provider="anthropic", ts=T2, input_tokens=1_000, output_tokens=200),
            ]
        )
        for source, file in (
            ("openai-usage", "openai-usage.json"),
            ("openai-costs", "openai-costs.json"),
            ("anthropic-usage", "anthropic-usage.json"),
        ):
            assert run_import(get_importer(source), [tmp_path / file], ledger).ok
    return path


def test_reconcile_gives_the_exact_gap_per_day_and_model(tmp_path: Path) -> None:
    with DuckDBLedger(build(tmp_path)) as ledger:
        gaps = {(g.day, g.provider, g.model): g for g in reconcile(ledger)}
    assert sorted(gaps) == [
        (date(2025, 8, 1), "openai", NO_MODEL),
        (date(2025, 8, 1), "openai", "acme-private-llm"),
        (date(2025, 8, 1), "openai", MINI),
        (date(2025, 8, 2), "anthropic", SONNET),
    ]
    mini = gaps[(date(2025, 8, 1), "openai", MINI)]
    # 1,000 in x $0.15 + 500 out x $0.60 per MTok = $0.00045 per call; the blocked call is left out
    assert (mini.metered_calls, mini.metered_tokens, mini.metered_cost) == (2, 3_000, Decimal("0.0009"))
    assert mini.unattributed_cost == Decimal("0.00045")
    assert (mini.reported_requests, mini.reported_tokens, mini.token_gap) == (3, 4_500, 1_500)
    assert mini.reported_cost == Decimal("0.00135")
    assert (mini.billed, mini.basis) == (Decimal("0.03"), "billed")
    assert mini.gap == Decimal("0.0291")
    assert (mini.gap_pct, mini.captured_pct) == (Decimal("97.00"), Decimal("3.00"))

    unpriced = gaps[(date(2025, 8, 1), "openai", "acme-private-llm")]
    assert (unpriced.unpriced_calls, unpriced.unpriced_tokens, unpriced.metered_cost) == (1, 1_500, Decimal(0))
    assert (unpriced.basis, unpriced.gap) == (None, None)

    web = gaps[(date(2025, 8, 1), "openai", NO_MODEL)]
    assert (web.metered_calls, web.billed, web.gap) == (0, Decimal("0.005"), Decimal("0.005"))
    assert web.captured_pct == 0

    sonnet = gaps[(date(2025, 8, 2), "anthropic", SONNET)]
    # no bill imported for Anthropic: compared with the usage report at list price ($3 / $15 per MTok)
    assert (sonnet.basis, sonnet.billed) == ("usage", None)
    assert (sonnet.metered_cost, sonnet.reported_cost) == (Decimal("0.006"), Decimal("0.018"))
    assert (sonnet.gap, sonnet.captured_pct) == (Decimal("0.012"), Decimal("33.33"))


def test_totals_and_filters(tmp_path: Path) -> None:
    with DuckDBLedger(build(tmp_path)) as ledger:
        everything = totals(reconcile(ledger))
        openai_only = reconcile(ledger, Window(provider="openai"))
        day2 = reconcile(ledger, Window(start=datetime(2025, 8, 2, tzinfo=UTC)))
    assert everything.provider_cost == Decimal("0.03") + Decimal("0.005") + Decimal("0.018")
    assert everything.metered_cost == Decimal("0.0009") + Decimal("0.006")
    assert everything.gap == Decimal("0.053") - Decimal("0.0069")
    assert (everything.unpriced_calls, everything.unattributed_cost) == (1, Decimal("0.00045"))
    assert {g.provider for g in openai_only} == {"openai"}
    assert [(g.day, g.model) for g in day2] == [(date(2025, 8, 2), SONNET)]


def test_reconcile_command_prints_exact_money_as_json(tmp_path: Path) -> None:
    path = build(tmp_path)
    runner = CliRunner(env={"COLUMNS": "400"})
    result = runner.invoke(app, ["reconcile", "--ledger", str(path), "--provider", "openai", "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = {row["model"]: row for row in json.loads(result.output)}
    assert rows[MINI]["gap"] == "0.0291"
    assert rows[MINI]["billed"] == "0.03"
    assert rows[MINI]["day"] == "2025-08-01"
    table = runner.invoke(app, ["reconcile", "--ledger", str(path), "--until", "2025-08-02"])
    assert table.exit_code == 0, table.output
    assert "gap $0.0341" in table.output and "1 unpriced calls" in table.output
