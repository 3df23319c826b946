"""Langfuse observation exports: generations priced by tokenops, spans skipped, bad observations named."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

from typer.testing import CliRunner

from tokenops.cli import app
from tokenops.events import TokenUsage
from tokenops.ingest import run_import
from tokenops.ingest.langfuse import IMPORTER, SOURCE
from tokenops.pricing import Priced, Pricer
from tokenops.store import DuckDBLedger


def generation(i: int, **changes: Any) -> dict[str, Any]:
    """A GENERATION observation as GET /api/public/observations returns it."""
    base: dict[str, Any] = {
        "id": f"obs-{i:04d}",
        "traceId": f"trace-{i // 3}",
        "type": "GENERATION",
        "name": "chat",
        "startTime": f"2025-02-{1 + i % 4:02d}T09:00:00.000Z",
        "endTime": f"2025-02-{1 + i % 4:02d}T09:00:01.500Z",
        "completionStartTime": f"2025-02-{1 + i % 4:02d}T09:00:00.300Z",
        "model": "gpt-4o" if i % 2 else "claude-3-5-haiku-20241022",
        "modelParameters": {"temperature": 0},
        "input": [{"role": "user", "content": "hi"}],
        "output": {"role": "assistant", "content": "hello"},
        "usageDetails": {"input": 800 + i, "output": 120, "total": 920 + i},
        "costDetails": {"input": 0.002, "output": 0.0012, "total": 0.0032},
        "userId": f"user-{i % 3}",
        "metadata": {"team": "search", "env": "prod"},
        "level": "DEFAULT",
        "statusMessage": None,
        "promptTokens": 800 + i,
        "completionTokens": 120,
        "totalTokens": 920 + i,
    }
    base.update(changes)
    return base


def price(model: str, usage: TokenUsage, start: str) -> Decimal:
    priced = Pricer().price(model, usage, ts=datetime.fromisoformat(start))
    assert isinstance(priced, Priced)
    return priced.cost.total


def test_an_api_page_imports_generations_and_skips_spans(tmp_path: Path) -> None:
    observations = [generation(i) for i in range(12)]
    observations[2]["usageDetails"] = {
        "input": 500,
        "input_cached_tokens": 300,
        "output": 90,
        "output_reasoning_tokens": 10,
        "total": 900,
    }
    observations[3] = {"id": "span-1", "type": "SPAN", "traceId": "trace-1", "startTime": "2025-02-01T09:00:00Z"}
    observations[4].pop("usageDetails")  # an older export: promptTokens / completionTokens only
    path = tmp_path / "observations.json"
    path.write_text(json.dumps({"data": observations, "meta": {"page": 1, "limit": 50, "totalItems": 12}}))
    with DuckDBLedger(":memory:") as ledger:
        report = run_import(IMPORTER, [path], ledger)
        assert (report.rows, report.imported, report.rejected) == (11, 11, 0)
        stored = {r["request_id"]: r for r in ledger.query_rows("SELECT * FROM usage_events")}
    cached = stored["obs-0002"]
    assert (cached["input_tokens"], cached["cache_read_tokens"], cached["output_tokens"]) == (800, 300, 100)
    assert cached["reasoning_tokens"] == 10
    assert cached["cost_total"] == price(
        "claude-3-5-haiku-20241022", TokenUsage(800, 300, 0, 0, 100, 10), observations[2]["startTime"]
    )
    first = stored["obs-0001"]
    assert (first["provider"], first["user_id"], first["team"], first["source"]) == (
        "openai",
        "user-1",
        "search",
        SOURCE,
    )
    assert (first["latency_ms"], first["ttft_ms"]) == (1500.0, 300.0)
    assert json.loads(str(first["tags"])) == {
        "env": "prod",
        "langfuse_cost": "0.0032",
        "name": "chat",
        "trace_id": "trace-0",
    }
    assert stored["obs-0004"]["input_tokens"] == 804
    expected = sum(
        price(o["model"], TokenUsage(o["promptTokens"], 0, 0, 0, o["completionTokens"]), o["startTime"])
        for i, o in enumerate(observations)
        if i not in (2, 3)
    )
    others = [cast(Decimal, r["cost_total"]) for r in stored.values() if r["request_id"] != "obs-0002"]
    assert sum(others, Decimal(0)) == expected


def test_bad_observations_are_named_by_line_and_reimport_changes_nothing(tmp_path: Path) -> None:
    lines = [json.dumps(generation(i)) for i in range(8)]
    lines[1] = json.dumps(generation(1, model=None))
    lines[2] = json.dumps(generation(2, usageDetails={"input": "many", "output": 1}))
    lines[3] = '{"id": "x"'
    lines[5] = json.dumps(generation(5, startTime="last week"))
    lines[6] = json.dumps(generation(6, model="our-finetune-7b", level="ERROR", statusMessage="timeout"))
    path = tmp_path / "observations.jsonl"
    path.write_text("\n".join(lines) + "\n")
    ledger_path = tmp_path / "ledger.duckdb"
    result = CliRunner().invoke(app, ["import", "langfuse", str(path), "--ledger", f"duckdb:{ledger_path}", "-q"])
    assert result.exit_code == 1
    for expected in (
        f"{path}:2: model is missing; a generation without a model cannot be priced (set it in Langfuse)",
        f"{path}:3: usageDetails.input is 'many', expected a whole number of tokens >= 0",
        f"{path}:4: not valid JSON: unexpected end of data at column ",
        f"{path}:6: startTime is 'last week', expected an ISO 8601 time such as 2025-01-10T14:08:32.000Z",
    ):
        assert expected in result.output
    assert "8 rows read from 1 file(s): 4 imported, 0 already in the ledger, 4 rejected" in result.output
    with DuckDBLedger(ledger_path) as ledger:
        unknown = ledger.query_rows("SELECT * FROM usage_events WHERE request_id = 'obs-0006'")[0]
        assert (unknown["unpriced"], unknown["cost_total"], unknown["status"]) == (True, None, "error")
        assert unknown["error_type"] == "timeout"
        again = run_import(IMPORTER, [path], ledger)
        assert (again.imported, again.duplicates, again.rejected) == (0, 4, 4)
