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
from tokenops.ingest._langfuse_columns import parse_chunk
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


def _variants() -> list[dict[str, Any]]:
    """Observations covering every branch of `event_row`, good and bad."""
    g = generation
    return [
        g(0),
        g(1, usageDetails={"input": 500, "input_cached_tokens": 300, "input_cache_read": 7, "output": 90}),
        g(2, usageDetails={"input": 5, "cache_read_input_tokens": 3, "cache_creation_input_tokens": 2, "output": 4}),
        g(3, usageDetails={"input": 12.0, "output": 3.0, "output_reasoning": 2.0, "input_cache_creation": 1}),
        g(4, usageDetails=None, promptTokens=40, completionTokens=5),
        g(5, usageDetails={}, usage={"input": 9, "output": 1}),
        g(6, usageDetails={"total": 5}, promptTokens=40),
        g(7, usageDetails={"input": 0, "output": 0}, usage={"input": 11, "output": 2}),
        g(8, usageDetails={"input": -1, "output": 1}),
        g(9, usageDetails={"input": 12.5, "output": 1}),
        g(10, type="SPAN", model=None),
        g(11, type=None),
        g(12, id="  "),
        g(13, model=" "),
        g(14, startTime=None),
        g(15, metadata={"provider": "OpenAI", "team": 7, "customer": " acme ", "api_key_id": "k1", "x": 'a"b'}),
        g(16, metadata={"ls_provider": "anthropic", "user_id": "meta-user", "name": "from-meta", "é": "ü"}),
        g(17, userId=None, metadata={"user_id": "meta-user", "a": "1", "m": "2", "z": "3", "tier": ""}),
        g(18, metadata=None, costDetails={"total": 0}),
        g(19, metadata=["not", "an", "object"], costDetails=None),
        g(20, costDetails={"total": 1e-7}, traceId='trace "quoted"'),
        g(21, level="ERROR", statusMessage="  rate limited "),
        g(22, endTime="2025-02-01T08:00:00Z", completionStartTime=None),
        g(23, startTime="2025-02-01T10:00:00+02:00", endTime="2025-02-01T08:00:02Z"),
        g(24, name=None, traceId=None, costDetails={"input": 1}),
        g(25, usageDetails={"input": 3, "output": 2}, usage={"input": -4}),
    ]


def test_the_columnar_path_imports_exactly_what_the_row_path_does(tmp_path: Path, monkeypatch: Any) -> None:
    path = tmp_path / "observations.jsonl"
    lines = [json.dumps(dict(o, id=f"{o['id']}-{n}") if o["id"].strip() else o) for n in range(3) for o in _variants()]
    path.write_text("\n".join(lines) + "\n")
    results = []
    parsed: list[Any] = []

    def spy(*args: Any) -> Any:
        parsed.append(parse_chunk(*args))
        return parsed[-1]

    monkeypatch.setattr("tokenops.ingest.langfuse.parse_chunk", spy)
    for columnar in (True, False):
        if not columnar:
            monkeypatch.setattr("tokenops.ingest.langfuse.parse_chunk", lambda *args: None)
        with DuckDBLedger(":memory:") as ledger:
            report = run_import(IMPORTER, [path], ledger)
            stored = ledger.query_rows("SELECT * FROM usage_events ORDER BY request_id")
        results.append((report.as_dict(), stored))
    assert results[0] == results[1]
    assert parsed[0].columns is not None and len(parsed[0].columns.ts_us) == 39  # the rest went through event_row
    report, stored = results[0]
    assert (report["rows"], report["rejected"], len(stored)) == (72, 15, 57)
    by_id = {r["request_id"]: r for r in stored}
    assert by_id["obs-0015-0"]["tags"] == (
        '{"langfuse_cost":"0.0032","name":"chat","provider":"OpenAI","trace_id":"trace-5","x":"a\\"b"}'
    )
    assert (by_id["obs-0015-0"]["provider"], by_id["obs-0015-0"]["team"]) == ("openai", "7")
