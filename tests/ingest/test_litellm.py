"""LiteLLM spend logs: a real-format CSV export, the PostgreSQL table, and exact columnar prices."""

from __future__ import annotations

import csv
import json
import os
import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from tokenops.cli import app
from tokenops.events import TokenUsage
from tokenops.ingest import run_import
from tokenops.ingest._events import FIELDS, RateBook, build_table, cost_units, event_table
from tokenops.ingest._litellm_metadata import read_metadata
from tokenops.ingest._rows import READER_CONFIG, line_chunks
from tokenops.ingest.litellm import IMPORTER, SOURCE, LiteLLMImporter, event_row, fast_columns
from tokenops.pricing import Priced, PriceOverride, Pricer
from tokenops.store import DuckDBLedger

PG = "postgresql://postgres@127.0.0.1:5432/test"
# columns of `model LiteLLM_SpendLogs` in LiteLLM's schema.prisma, in its order
HEADER = [
    "request_id", "call_type", "api_key", "spend", "total_tokens", "prompt_tokens", "completion_tokens",
    "startTime", "endTime", "request_duration_ms", "completionStartTime", "model", "model_id", "model_group",
    "custom_llm_provider", "api_base", "user", "metadata", "cache_hit", "cache_key", "request_tags", "team_id",
    "organization_id", "end_user", "requester_ip_address", "messages", "response", "session_id", "status",
    "mcp_namespaced_tool_name", "agent_id", "proxy_server_request",
]  # fmt: skip


def row(i: int, **changes: Any) -> dict[str, Any]:
    """One spend-log row as LiteLLM writes it (metadata per SpendLogsMetadata)."""
    prompt, completion, cached = 1_000 + i * 13, 200 + i, (i * 37) % 500
    metadata = {
        "user_api_key": "88dc28d0f030c55ed4ab77ed8faf098196cb1c05df778539800c9f1243fe6b4b",
        "user_api_key_alias": f"svc-{i % 2}",
        "user_api_key_team_id": f"team-{i % 3}",
        "user_api_key_user_id": f"user-{i % 4}",
        "spend_logs_metadata": {"env": "prod"},
        "additional_usage_values": {
            "prompt_tokens_details": {"cached_tokens": cached},
            "completion_tokens_details": {"reasoning_tokens": 0},
        },
        "status": "success",
    }
    base = {
        "request_id": f"chatcmpl-{i:06d}",
        "call_type": "acompletion",
        "api_key": "88dc28d0f030c55ed4ab77ed8faf098196cb1c05df778539800c9f1243fe6b4b",
        "spend": "0.00123",
        "total_tokens": str(prompt + completion),
        "prompt_tokens": str(prompt),
        "completion_tokens": str(completion),
        "startTime": f"2025-03-{1 + i % 5:02d}T10:00:{i % 60:02d}.250Z",
        "endTime": f"2025-03-{1 + i % 5:02d}T10:00:{i % 60:02d}.750Z",
        "request_duration_ms": "500",
        "completionStartTime": f"2025-03-{1 + i % 5:02d}T10:00:{i % 60:02d}.750Z",
        "model": "gpt-4o-mini" if i % 2 else "claude-3-5-sonnet-20241022",
        "model_id": "m-1",
        "model_group": "fast" if i % 2 else "smart",
        "custom_llm_provider": "openai" if i % 2 else "anthropic",
        "api_base": "https://api.openai.com/v1",
        "user": "",
        "metadata": json.dumps(metadata),
        "cache_hit": "False",
        "cache_key": "",
        "request_tags": '["prod", "jobID:214590dsff09fds"]',
        "team_id": "",
        "organization_id": "",
        "end_user": f"cus-{i % 5}" if i % 3 else "",
        "requester_ip_address": "10.0.0.1",
        "messages": "{}",
        "response": "{}",
        "session_id": "",
        "status": "success",
        "mcp_namespaced_tool_name": "",
        "agent_id": "",
        "proxy_server_request": "{}",
    }
    base.update(changes)
    return base


def write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    with path.open("w", newline="") as f:
        out = csv.DictWriter(f, HEADER)
        out.writeheader()
        out.writerows(rows)
    return path


def cost(r: dict[str, Any]) -> Decimal | None:
    details = json.loads(r["metadata"]).get("additional_usage_values", {}).get("prompt_tokens_details", {})
    usage = TokenUsage(int(r["prompt_tokens"]), details.get("cached_tokens", 0), 0, 0, int(r["completion_tokens"]))
    ts = datetime.fromisoformat(r["startTime"])
    priced = Pricer().price(r["model"], usage, provider=r["custom_llm_provider"], ts=ts)
    return priced.cost.total if isinstance(priced, Priced) else None


def test_csv_export_imports_with_exact_prices_and_attribution(tmp_path: Path) -> None:
    rows = [row(i) for i in range(40)]
    rows[5].update(model="bedrock/anthropic.claude-3-haiku-20240307-v1:0", custom_llm_provider="bedrock")
    rows[6]["model"] = "acme-private-llm"  # unknown: unpriced, never $0
    rows[7]["cache_hit"] = "True"
    rows[8].update(status="failure", metadata=json.dumps({"error_information": {"error_code": "429"}}))
    path = write_csv(tmp_path / "spend_logs.csv", rows)
    with DuckDBLedger(":memory:") as ledger:
        report = run_import(IMPORTER, [path], ledger)
        assert (report.rows, report.imported, report.rejected) == (40, 40, 0)
        stored = {r["request_id"]: r for r in ledger.query_rows("SELECT * FROM usage_events")}
    stored_total = sum((cast(Decimal, s["cost_total"] or Decimal(0)) for s in stored.values()), Decimal(0))
    assert stored_total == sum((cost(r) or Decimal(0) for r in rows if r is not rows[7]), Decimal(0))
    first = stored["chatcmpl-000001"]
    assert (first["team"], first["user_id"], first["customer"]) == ("team-1", "user-1", "cus-1")
    assert (first["provider"], first["model"], first["model_requested"]) == ("openai", "gpt-4o-mini", "fast")
    assert (first["cache_read_tokens"], first["operation"], first["latency_ms"], first["ttft_ms"]) == (
        37,
        "chat",
        500.0,
        None,
    )
    assert json.loads(str(first["tags"])) == {
        "env": "prod",
        "jobID": "214590dsff09fds",
        "key_alias": "svc-1",
        "litellm_spend": "0.00123",
        "prod": "true",
    }
    bedrock = stored["chatcmpl-000005"]
    assert (bedrock["provider"], bedrock["model"]) == ("aws", "anthropic.claude-3-haiku-20240307-v1:0")
    unknown = stored["chatcmpl-000006"]
    assert unknown["unpriced"] and unknown["cost_total"] is None and unknown["price_source"] == "unpriced"
    hit = stored["chatcmpl-000007"]
    assert (hit["status"], hit["cost_total"], hit["price_source"]) == ("cached", Decimal(0), "not-billed")
    failed = stored["chatcmpl-000008"]
    assert (failed["status"], failed["error_type"], failed["source"]) == ("error", "429", SOURCE)


def test_bad_rows_are_named_by_line_good_ones_kept_reimport_changes_nothing(tmp_path: Path) -> None:
    rows = [row(i) for i in range(10)]
    rows[1]["prompt_tokens"] = "abc"
    rows[3]["startTime"] = "03/01/2025"
    rows[4]["metadata"] = '{"additional_usage_values": {"prompt_tokens_details": {"cached_tokens": 99999}}}'
    rows[6]["request_id"] = ""
    rows[7]["messages"] = "line one\nline two"  # a quoted newline: later lines shift by one
    rows[8]["metadata"] = "{broken"
    path = write_csv(tmp_path / "spend_logs.csv", rows)
    with DuckDBLedger(":memory:") as ledger:
        report = run_import(IMPORTER, [path], ledger)
        assert [str(e) for e in report.errors] == [
            f"{path}:3: prompt_tokens is 'abc', expected a whole number of tokens >= 0",
            f"{path}:5: startTime is '03/01/2025', expected an ISO 8601 time such as 2024-06-01T12:00:00.000Z",
            f"{path}:6: cached input tokens (99999 read + 0 written) exceed the 1052 input tokens; "
            "input must include cached tokens",
            f"{path}:8: request_id is empty; every LiteLLM_SpendLogs row has one",
            f"{path}:11: metadata is not valid JSON (unexpected character, expected a string key); "
            "export the column as JSON text",
        ]
        assert (report.rows, report.imported, report.rejected) == (10, 5, 5)
        before = ledger.query_rows("SELECT count(*) AS n, sum(cost_total) AS c FROM usage_events")
        again = run_import(IMPORTER, [path], ledger)
        assert (again.imported, again.duplicates, again.rejected) == (0, 5, 5)
        assert ledger.query_rows("SELECT count(*) AS n, sum(cost_total) AS c FROM usage_events") == before


def test_a_file_that_is_not_a_spend_log_is_refused_through_the_cli(tmp_path: Path) -> None:
    path = tmp_path / "other.csv"
    path.write_text("a,b\n1,2\n")
    result = CliRunner().invoke(app, ["import", "litellm", str(path), "--ledger", f"duckdb:{tmp_path / 'l.duckdb'}"])
    assert result.exit_code == 2
    assert "missing column(s) request_id, startTime, model, prompt_tokens, completion_tokens" in result.output


def test_the_columnar_path_equals_the_record_by_record_path(tmp_path: Path) -> None:
    rows = [row(i) for i in range(25)]
    rows[2].update(user="ana", team_id="platform", session_id="s-1", completionStartTime="2025-03-03T10:00:02.500Z")
    rows[3].update(startTime="2025-03-04 10:00:03.250", endTime="", completionStartTime="", model="")
    rows[4].update(call_type="aembedding", model="text-embedding-3-small", request_tags="[]", metadata="")
    # shapes DuckDB leaves to the row-by-row `extras`: they must come out the same
    rows[5].update(status="failure", metadata=json.dumps({"error_information": {"error_class": "RateLimitError"}}))
    rows[6]["metadata"] = json.dumps({"usage_object": {"cache_read_input_tokens": 7, "cache_creation_input_tokens": 3}})
    rows[7]["metadata"] = json.dumps({"spend_logs_metadata": {"n": 3, "x": None}, "user_api_key_user_id": 42})
    rows[8].update(cache_hit="True", status="", spend="", request_tags="")
    rows[9]["metadata"] = json.dumps({"spend_logs_metadata": None, "user_api_key_alias": " padded "})
    rows[10]["metadata"] = " \n\t" + json.dumps({"user_api_key_alias": "spaced", "status": "success"})
    path = write_csv(tmp_path / "spend_logs.csv", rows)
    (chunk,) = list(line_chunks(path, quoted=True, skip=1))
    columns = fast_columns(chunk, HEADER)
    assert columns is not None
    fast = event_table(columns, RateBook(), SOURCE)
    slow = build_table([event_row({k: str(v) for k, v in r.items()}) for r in rows], RateBook(), SOURCE)
    assert fast.equals(slow), [
        (name, fast[name].to_pylist()[:5], slow[name].to_pylist()[:5])
        for name in fast.column_names
        if not fast[name].equals(slow[name])
    ]


def test_duckdb_reads_metadata_objects_after_whitespace_and_leaves_other_json_to_the_row_path() -> None:
    """The columnar reader takes an object with blanks before it; a list or a string is `extras`' to name."""
    texts = [' \n\t{"user_api_key_alias": "spaced"}', '{"user_api_key_alias": "plain"}', "[1, 2]", '"text"', ""]
    with duckdb.connect(config=READER_CONFIG) as conn:
        got = read_metadata(pa.array(texts, pa.string()), conn)
    assert got is not None
    assert got["simple"].to_pylist() == [True, True, False, False, True]
    assert got["alias"].to_pylist()[:2] == ["spaced", "plain"]


def test_columnar_tags_equal_the_record_by_record_tags(tmp_path: Path) -> None:
    """Tags are serialised once per group and filled in by Arrow: every precedence and escape as `_tags`."""
    rows = [row(i, session_id=f"sess-{i % 4}") for i in range(30)]
    rows[1].update(session_id='say "hi"', spend="1\\2")  # JSON escapes: serialised row by row
    rows[2].update(session_id="multi\nline", spend="")  # a quoted newline, no spend
    rows[3].update(request_tags='["litellm_spend:override", "session_id:tag", "env:tag"]')
    rows[4]["metadata"] = json.dumps({"spend_logs_metadata": {"session_id": "meta", "n": 1, "d": {"a": [1]}}})
    rows[5].update(request_tags="[]", spend="", session_id="")
    rows[6]["metadata"] = json.dumps({"spend_logs_metadata": {}, "user_api_key_alias": "é-ünïcode"})
    rows[7].update(metadata="", request_tags="", spend="", session_id="")  # no tags at all: null
    rows[8]["session_id"] = "\ue000litellm_spend\ue000"  # the template's own stand-in, as data
    path = write_csv(tmp_path / "spend_logs.csv", rows)
    (chunk,) = list(line_chunks(path, quoted=True, skip=1))
    columns = fast_columns(chunk, HEADER)
    assert columns is not None
    slow = build_table([event_row({k: str(v) for k, v in r.items()}) for r in rows], RateBook(), SOURCE)
    assert columns.tags.to_pylist() == slow["tags"].to_pylist()
    assert columns.tags[7].as_py() is None and json.loads(columns.tags[1].as_py())["session_id"] == 'say "hi"'


def test_a_malformed_request_tags_list_is_named_by_line(tmp_path: Path) -> None:
    rows = [row(i) for i in range(6)]
    rows[2]["request_tags"] = '["prod", '
    path = write_csv(tmp_path / "spend_logs.csv", rows)
    with DuckDBLedger(":memory:") as ledger:
        report = run_import(IMPORTER, [path], ledger)
    assert (report.imported, report.rejected) == (5, 1)
    assert str(report.errors[0]).startswith(f"{path}:4: request_tags is not valid JSON")


def test_columnar_prices_equal_the_pricer_row_by_row() -> None:
    """Every row's cost components, as stored, equal Pricer.price quantised to 12 decimals."""
    rnd = random.Random(6)
    models = [
        ("openai", "gpt-4o-mini"),
        ("anthropic", "claude-sonnet-4-20250514"),
        ("google", "gemini-1.5-pro"),  # a long-context tier at 128k
        ("deepseek", "deepseek-chat"),  # off-peak hours
        ("aws", "us.anthropic.claude-3-5-sonnet-20240620-v1:0"),
        ("acme", "no-such-model"),
        ("", "gpt-4o"),  # provider guessed by genai-prices
        ("openai", "o3-mini"),  # an override whose rate is not a whole number of 1e-12 USD
    ]
    pricer = Pricer([PriceOverride(model="o3-mini", discount=Decimal("0.3333333"))])
    provider, model, ts, batch, counts = [], [], [], [], []
    for _ in range(3_000):
        p, m = rnd.choice(models)
        provider.append(p)
        model.append(m)
        ts.append(1_735_689_600_000_000 + rnd.randrange(300 * 86_400) * 1_000_000)
        batch.append(rnd.random() < 0.2)
        size = rnd.choice([rnd.randrange(5_000), rnd.randrange(400_000)])
        read = rnd.randrange(size // 2 + 1)
        write = rnd.randrange((size - read) // 2 + 1)
        output = rnd.randrange(3_000)
        counts.append((size, read, write, rnd.randrange(write + 1), output, rnd.randrange(output + 1)))
    grid = np.array(counts, dtype=np.int64).T.copy()
    units, priced, sources, index, over = RateBook(pricer).price(
        pa.array(provider), pa.array(model), np.array(batch), np.array(ts, dtype=np.int64), grid
    )
    assert over == {}  # every call here costs far less than the ledger holds
    for i in range(len(ts)):
        at = datetime.fromtimestamp(ts[i] / 1e6, UTC)
        result = pricer.price(model[i], TokenUsage(*counts[i]), provider=provider[i] or None, ts=at, batch=batch[i])
        assert sources[index[i]] == result.source
        if isinstance(result, Priced):
            assert priced[i] and units[:, i].tolist() == cost_units(result.cost).tolist(), (model[i], counts[i])
        else:
            assert not priced[i] and not units[:, i].any()
    assert len(FIELDS) == grid.shape[0]


@pytest.fixture
def spend_table() -> Iterator[tuple[Any, str]]:
    """A LiteLLM_SpendLogs table in a throwaway schema of the test PostgreSQL, dropped afterwards."""
    psycopg = pytest.importorskip("psycopg")
    try:
        conn = psycopg.connect(PG, connect_timeout=3, autocommit=True)
    except psycopg.OperationalError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but PostgreSQL at {PG} is unusable: {exc}")
        pytest.skip(f"no PostgreSQL at {PG}: {exc}")
    schema = f"tokenops_litellm_{uuid.uuid4().hex[:8]}"
    conn.execute(f'CREATE SCHEMA "{schema}"')
    # the DDL Prisma generates from schema.prisma (`model LiteLLM_SpendLogs`)
    conn.execute(
        f'CREATE TABLE "{schema}"."LiteLLM_SpendLogs" ('
        '"request_id" TEXT PRIMARY KEY, "call_type" TEXT NOT NULL, "api_key" TEXT NOT NULL DEFAULT \'\', '
        '"spend" DOUBLE PRECISION NOT NULL DEFAULT 0.0, "total_tokens" INTEGER NOT NULL DEFAULT 0, '
        '"prompt_tokens" INTEGER NOT NULL DEFAULT 0, "completion_tokens" INTEGER NOT NULL DEFAULT 0, '
        '"startTime" TIMESTAMP(3) NOT NULL, "endTime" TIMESTAMP(3) NOT NULL, "request_duration_ms" INTEGER, '
        '"completionStartTime" TIMESTAMP(3), "model" TEXT NOT NULL DEFAULT \'\', "model_id" TEXT DEFAULT \'\', '
        "\"model_group\" TEXT DEFAULT '', \"custom_llm_provider\" TEXT DEFAULT '', \"api_base\" TEXT DEFAULT '', "
        "\"user\" TEXT DEFAULT '', \"metadata\" JSONB DEFAULT '{}', \"cache_hit\" TEXT DEFAULT '', "
        '"cache_key" TEXT DEFAULT \'\', "request_tags" JSONB DEFAULT \'[]\', "team_id" TEXT, '
        '"organization_id" TEXT, "end_user" TEXT, "requester_ip_address" TEXT, "messages" JSONB DEFAULT \'{}\', '
        '"response" JSONB DEFAULT \'{}\', "session_id" TEXT, "status" TEXT)'
    )
    try:
        yield conn, schema
    finally:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        conn.close()


def test_the_postgresql_table_imports_like_the_csv_export(spend_table: tuple[Any, str], tmp_path: Path) -> None:
    conn, schema = spend_table
    rows = [row(i) for i in range(30)]
    columns = [c for c in HEADER if c not in ("mcp_namespaced_tool_name", "agent_id", "proxy_server_request")]
    placeholders = ", ".join(["%s"] * len(columns))
    names = ", ".join(f'"{c}"' for c in columns)
    with conn.cursor() as cur:
        for r in rows:
            values = [
                datetime.fromisoformat(r[c]).replace(tzinfo=None) if c.endswith("Time") else r[c] or None
                for c in columns
            ]
            values[columns.index("spend")] = float(r["spend"])
            for c in ("total_tokens", "prompt_tokens", "completion_tokens", "request_duration_ms"):
                values[columns.index(c)] = int(r[c])
            cur.execute(f'INSERT INTO "{schema}"."LiteLLM_SpendLogs" ({names}) VALUES ({placeholders})', values)
    url = f"{PG}?table={schema}.LiteLLM_SpendLogs"
    with DuckDBLedger(":memory:") as from_table, DuckDBLedger(":memory:") as from_csv:
        report = run_import(LiteLLMImporter(), [url], from_table)
        assert (report.rows, report.imported, report.rejected, report.files) == (30, 30, 0, [url])
        run_import(IMPORTER, [write_csv(tmp_path / "spend_logs.csv", rows)], from_csv)
        query = "SELECT * EXCLUDE (tags) FROM usage_events ORDER BY request_id"
        assert from_table.query_rows(query) == from_csv.query_rows(query)
        again = run_import(LiteLLMImporter(), [url], from_table)
        assert (again.imported, again.duplicates) == (0, 30)


def test_the_cli_reads_a_postgresql_url(spend_table: tuple[Any, str], tmp_path: Path) -> None:
    conn, schema = spend_table
    conn.execute(
        f'INSERT INTO "{schema}"."LiteLLM_SpendLogs" ("request_id", "call_type", "prompt_tokens", '
        '"completion_tokens", "startTime", "endTime", "model", "custom_llm_provider") '
        "VALUES ('r1', 'completion', 10, 5, '2025-03-01 10:00:00', '2025-03-01 10:00:01', 'gpt-4o', 'openai'), "
        "('r2', 'completion', -1, 5, '2025-03-01 10:00:00', '2025-03-01 10:00:01', 'gpt-4o', 'openai')"
    )
    ledger = tmp_path / "ledger.duckdb"
    url = f"{PG}?table={schema}.LiteLLM_SpendLogs"
    result = CliRunner().invoke(app, ["import", "litellm", url, "--ledger", f"duckdb:{ledger}", "-q"])
    assert result.exit_code == 1, result.output
    assert f"{url}:2: prompt_tokens is -1, expected a whole number of tokens >= 0" in result.output
    assert "1 imported" in result.output


def test_a_file_with_bad_rows_interleaved_gives_the_same_ledger_as_the_record_by_record_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Small chunks: clean ones take the columnar path, the others the record path; nothing differs."""
    rows = [row(i, session_id=f"s-{i % 3}", metadata=row(i)["metadata"] if i % 11 else "") for i in range(120)]
    for i in range(0, 120, 17):
        rows[i]["prompt_tokens"] = "-5"
    rows[40]["messages"] = "quoted\nnewline"
    rows[41].update(status="failure", metadata=json.dumps({"error_information": {"error_code": "500"}}))
    rows[90]["request_tags"] = "not json"
    path = write_csv(tmp_path / "spend_logs.csv", rows)
    monkeypatch.setattr("tokenops.ingest.litellm.CHUNK_BYTES", 6_000)  # a few rows per chunk
    paths: list[bool] = []

    def columnar(*args: Any) -> Any:
        columns = fast_columns(*args)
        paths.append(columns is not None)
        return columns

    monkeypatch.setattr("tokenops.ingest.litellm.fast_columns", columnar)
    query = "SELECT * FROM usage_events ORDER BY request_id"
    with DuckDBLedger(":memory:") as ledger:
        report = run_import(IMPORTER, [path], ledger)
        fast = ledger.query(query)
    assert all(paths)  # a bad row no longer sends its chunk to the record path: only the row goes (`_records_at`)
    monkeypatch.setattr("tokenops.ingest.litellm.fast_columns", lambda *args: None)
    with DuckDBLedger(":memory:") as ledger:
        slow_report = run_import(IMPORTER, [path], ledger)
        slow = ledger.query(query)
    assert [str(e) for e in report.errors] == [str(e) for e in slow_report.errors]
    assert (report.rows, report.imported, report.rejected) == (120, 111, 9)
    assert fast.equals(slow)


@pytest.mark.parametrize("layout", ["one line per record", "quoted newlines", "blank line"])
def test_bad_rows_in_the_middle_of_a_columnar_chunk_are_read_by_the_record_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, layout: str
) -> None:
    """One chunk, good rows around bad ones: only the bad rows go record by record; rows and errors as that path's."""
    rows = [row(i, session_id=f"s-{i % 3}") for i in range(40)]
    rows[3]["prompt_tokens"] = "12.5"
    rows[5]["startTime"] = "yesterday"
    rows[6]["endTime"] = "2025-03-01T10:00:00.123456789Z"  # a time only Python reads: the row is kept
    rows[8]["request_id"] = " "
    rows[11]["metadata"] = '{"user_api_key_alias": "svc", '  # not JSON
    rows[13]["request_tags"] = '["prod", '
    rows[17]["metadata"] = json.dumps({"additional_usage_values": "none"})  # a shape `extras` rejects
    rows[19].update(prompt_tokens="10", metadata=json.dumps({"usage_object": {"cache_read_input_tokens": 50}}))
    rows[23]["startTime"] = ""
    rows[29].update(model="", model_group="")
    rows[31]["metadata"] = json.dumps({"usage_object": {"cache_read_input_tokens": 7}, "status": "failure"})
    rows[33]["metadata"] = "[1, 2]"  # JSON, but not an object
    rows[37]["completion_tokens"] = "-1"
    if layout == "quoted newlines":
        rows[20]["messages"] = "quoted\nnewline"
    path = write_csv(tmp_path / "spend_logs.csv", rows)
    if layout == "blank line":
        lines = path.read_text().splitlines(keepends=True)
        path.write_text("".join([*lines[:15], "\n", *lines[15:]]))
    (chunk,) = list(line_chunks(path, quoted=True, skip=1))
    unusual: list[int] = []
    columns = fast_columns(chunk, HEADER, None, unusual)
    assert columns is not None and unusual == [3, 5, 6, 8, 11, 13, 17, 19, 23, 29, 33, 37], unusual
    assert fast_columns(chunk, HEADER) is None  # without `unusual`: all or nothing, as before
    query = "SELECT * FROM usage_events ORDER BY request_id"
    with DuckDBLedger(":memory:") as ledger:
        report = run_import(IMPORTER, [path], ledger)
        fast = ledger.query(query)
    monkeypatch.setattr("tokenops.ingest.litellm.fast_columns", lambda *args: None)
    with DuckDBLedger(":memory:") as ledger:
        slow_report = run_import(IMPORTER, [path], ledger)
        slow = ledger.query(query)
    assert [str(e) for e in report.errors] == [str(e) for e in slow_report.errors]
    assert (report.rows, report.imported, report.rejected) == (40, 29, 11)
    assert fast.equals(slow)
