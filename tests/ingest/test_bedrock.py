"""Bedrock model-invocation logs: real-format records, bad lines named, exact prices, both parse paths."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from tokenops.events import TokenUsage
from tokenops.ingest import run_import
from tokenops.ingest._events import RateBook, build_table, event_table
from tokenops.ingest._rows import line_chunks
from tokenops.ingest.bedrock import IMPORTER, SOURCE, event_row, fast_columns
from tokenops.pricing import Priced, Pricer
from tokenops.store import DuckDBLedger


def record(i: int, **changes: Any) -> dict[str, Any]:
    """A Converse invocation log record as Bedrock delivers it (fields from the AWS user guide)."""
    tokens_in, tokens_out = 100 + i * 7, 20 + i
    base: dict[str, Any] = {
        "schemaType": "ModelInvocationLog",
        "schemaVersion": "1.0",
        "timestamp": f"2025-01-{10 + i % 3:02d}T14:08:{i % 60:02d}Z",
        "accountId": "123456789012",
        "identity": {"arn": f"arn:aws:sts::123456789012:assumed-role/app-{i % 2}/session"},
        "region": "us-east-1",
        "requestId": f"915a6a04-3f83-4c70-a277-{i:012d}",
        "operation": "Converse",
        "modelId": "anthropic.claude-3-haiku-20240307-v1:0"
        if i % 2
        else "us.anthropic.claude-3-5-sonnet-20240620-v1:0",
        "input": {
            "inputContentType": "application/json",
            "inputBodyJson": {"messages": [{"role": "user", "content": [{"text": "hi"}]}]},
            "inputTokenCount": tokens_in,
        },
        "output": {
            "outputContentType": "application/json",
            "outputBodyJson": {
                "output": {"message": {"role": "assistant", "content": [{"text": "hello"}]}},
                "stopReason": "end_turn",
                "metrics": {"latencyMs": 364},
                "usage": {"inputTokens": tokens_in, "outputTokens": tokens_out, "totalTokens": tokens_in + tokens_out},
            },
            "outputTokenCount": tokens_out,
        },
    }
    base.update(changes)
    return base


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


def expected_cost(rec: dict[str, Any]) -> Decimal:
    inputs = rec["input"]
    read, write_ = inputs.get("cacheReadInputTokenCount", 0), inputs.get("cacheWriteInputTokenCount", 0)
    usage = TokenUsage(inputs["inputTokenCount"] + read + write_, read, write_, 0, rec["output"]["outputTokenCount"])
    model = rec["modelId"].rsplit("/", 1)[-1]
    ts = datetime.fromisoformat(rec["timestamp"]).astimezone(UTC)
    priced = Pricer().price(model, usage, provider="aws", ts=ts)
    assert isinstance(priced, Priced)
    return priced.cost.total


def test_invocation_logs_import_with_exact_prices_and_attribution(tmp_path: Path) -> None:
    records = [record(i) for i in range(20)]
    records[3]["input"].update(cacheReadInputTokenCount=40, cacheWriteInputTokenCount=10)
    records[4]["requestMetadata"] = {"project": "search", "env": "prod"}
    records[5]["modelId"] = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.amazon.nova-micro-v1:0"
    path = write(tmp_path / "invocations.jsonl", [json.dumps(r) for r in records])
    with DuckDBLedger(":memory:") as ledger:
        report = run_import(IMPORTER, [path], ledger)
        assert (report.rows, report.imported, report.rejected) == (20, 20, 0)
        rows = {r["request_id"]: r for r in ledger.query_rows("SELECT * FROM usage_events")}
        total = ledger.query_rows("SELECT sum(cost_total) AS c FROM usage_events")[0]["c"]
    assert total == sum(expected_cost(r) for r in records)
    cached = rows[records[3]["requestId"]]
    assert (cached["input_tokens"], cached["cache_read_tokens"], cached["cache_write_tokens"]) == (171, 40, 10)
    assert rows[records[5]["requestId"]]["model"] == "us.amazon.nova-micro-v1:0"
    first = rows[records[0]["requestId"]]
    assert first["provider"] == "aws" and first["source"] == SOURCE and first["operation"] == "chat"
    assert first["user_id"] == "arn:aws:sts::123456789012:assumed-role/app-0/session"
    assert first["price_source"] == "genai-prices:aws/regional.anthropic.claude-3-5-sonnet-20240620-v1:0"
    assert json.loads(str(rows[records[4]["requestId"]]["tags"])) == {
        "account_id": "123456789012",
        "env": "prod",
        "project": "search",
        "region": "us-east-1",
    }


def test_bad_lines_are_named_and_good_ones_kept_and_reimport_changes_nothing(tmp_path: Path) -> None:
    lines = [json.dumps(record(i)) for i in range(8)]
    lines[1] = json.dumps(record(1, schemaType="SomethingElse"))
    lines[2] = "{not json"
    lines[3] = json.dumps(record(3, input={"inputTokenCount": "12"}))
    lines[4] = ""
    lines[5] = json.dumps(record(5, timestamp="yesterday"))
    failed = record(6, errorCode="ThrottlingException")
    del failed["output"]
    lines[6] = json.dumps(failed)  # a failed call without usage is kept, as an error
    path = write(tmp_path / "mixed.jsonl", lines)
    with DuckDBLedger(":memory:") as ledger:
        report = run_import(IMPORTER, [path], ledger)
        assert [str(e) for e in report.errors] == [
            f"{path}:2: schemaType is 'SomethingElse', expected 'ModelInvocationLog': not an invocation log",
            f"{path}:3: not valid JSON: unexpected character, expected a string key at column 2",
            f"{path}:4: input.inputTokenCount is '12', expected a whole number of tokens >= 0",
            f"{path}:6: timestamp is 'yesterday', expected an ISO 8601 time such as 2025-01-10T14:08:32Z",
        ]
        assert (report.rows, report.imported, report.rejected) == (7, 3, 4)
        error = ledger.query_rows("SELECT status, error_type, output_tokens FROM usage_events WHERE status = 'error'")
        assert error == [{"status": "error", "error_type": "ThrottlingException", "output_tokens": 0}]
        before = ledger.query_rows("SELECT count(*) AS n, sum(cost_total) AS c FROM usage_events")
        again = run_import(IMPORTER, [path], ledger)
        assert (again.imported, again.duplicates) == (0, 3)
        assert ledger.query_rows("SELECT count(*) AS n, sum(cost_total) AS c FROM usage_events") == before


def test_the_columnar_path_equals_the_line_by_line_path(tmp_path: Path) -> None:
    records = [record(i) for i in range(30)]
    records[7]["input"]["cacheReadInputTokenCount"] = 50
    records[8]["modelId"] = "amazon.titan-embed-text-v2:0"
    records[9]["modelId"] = "no.such-model-v1:0"
    records[10]["requestMetadata"] = {"project": "search", "region": "overridden"}
    path = write(tmp_path / "clean.jsonl.gz", [])
    path.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in records).encode()))
    (chunk,) = list(line_chunks(path))
    columns = fast_columns(chunk)
    assert columns is not None
    fast = event_table(columns, RateBook(), SOURCE)
    slow = build_table([event_row(r) for r in records], RateBook(), SOURCE)
    assert fast.equals(slow)
    unknown = fast.filter(pa.compute.equal(fast["model"], "no.such-model-v1:0")).to_pylist()[0]
    assert unknown["unpriced"] and unknown["cost_total"] is None and unknown["price_source"] == "unpriced"


def test_chunks_with_anything_unusual_take_the_line_by_line_path(tmp_path: Path) -> None:
    clean = json.dumps(record(0))
    unusual = [
        [clean, "", clean],
        [clean, "[]"],
        [clean, json.dumps({k: v for k, v in record(1).items() if k != "requestId"})],
        [clean, json.dumps({k: v for k, v in record(1).items() if k != "schemaType"})],
        [clean, json.dumps(record(1, modelId=None))],
        [clean, json.dumps(record(1, input={"inputTokenCount": "12"}))],
        [clean, json.dumps(record(1, output={}))],  # a successful call must report its tokens
    ]
    for lines in unusual:
        (chunk,) = list(line_chunks(write(tmp_path / "x.jsonl", lines)))
        assert fast_columns(chunk) is None, lines[1]


def test_failed_calls_and_profile_arns_stay_columnar_and_equal_the_line_by_line_path(tmp_path: Path) -> None:
    records = [record(i) for i in range(12)]
    records[2] = {k: v for k, v in record(2, errorCode="ThrottlingException").items() if k not in ("input", "output")}
    records[3]["errorCode"] = "ValidationException"  # failed, but with usage
    records[4]["errorCode"] = "  "  # blank: not a failure
    records[5]["modelId"] = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.amazon.nova-pro-v1:0"
    records[6]["identity"] = None
    path = write(tmp_path / "mixed.jsonl", [json.dumps(r) for r in records])
    (chunk,) = list(line_chunks(path))
    columns = fast_columns(chunk)
    assert columns is not None
    fast = event_table(columns, RateBook(), SOURCE)
    assert fast.equals(build_table([event_row(r) for r in records], RateBook(), SOURCE))
    assert fast["status"].to_pylist()[2:5] == ["error", "error", "ok"]
    assert fast["model"][5].as_py() == "us.amazon.nova-pro-v1:0"


def test_a_file_with_bad_lines_interleaved_gives_the_same_ledger_as_the_line_by_line_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Small chunks: clean ones take the columnar path, the others the line path; nothing differs."""
    lines = [json.dumps(record(i, errorCode="Throttling") if i % 9 == 4 else record(i)) for i in range(150)]
    for i in range(3, 150, 23):
        lines[i] = lines[i].replace('"inputTokenCount": ', '"inputTokenCount": -')
    lines[70] = "{not json"
    lines[100] = ""
    path = write(tmp_path / "log.jsonl", lines)
    monkeypatch.setattr("tokenops.ingest.bedrock.CHUNK_BYTES", 8_000)
    paths: list[bool] = []

    def columnar(*args: Any) -> Any:
        columns = fast_columns(*args)
        paths.append(columns is not None)
        return columns

    monkeypatch.setattr("tokenops.ingest.bedrock.fast_columns", columnar)
    query = "SELECT * FROM usage_events ORDER BY request_id"
    with DuckDBLedger(":memory:") as ledger:
        report = run_import(IMPORTER, [path], ledger)
        fast = ledger.query(query)
    assert any(paths) and not all(paths)  # both paths were taken
    monkeypatch.setattr("tokenops.ingest.bedrock.fast_columns", lambda *args: None)
    with DuckDBLedger(":memory:") as ledger:
        slow_report = run_import(IMPORTER, [path], ledger)
        slow = ledger.query(query)
    assert [str(e) for e in report.errors] == [str(e) for e in slow_report.errors]
    assert (report.rows, report.rejected) == (149, 8)
    assert fast.equals(slow)
