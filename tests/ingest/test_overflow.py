"""A token count too large for the ledger (BIGINT) is a bad row named by its line, never a crashed import."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.ingest import test_bedrock, test_langfuse, test_litellm
from tokenops.ingest import get_importer, run_import
from tokenops.store import DuckDBLedger

HUGE = 10**20  # more than a BIGINT holds (2^63 - 1)


def _litellm(tmp_path: Path, count: int | str) -> Path:
    rows = [test_litellm.row(i) for i in range(6)]
    rows[2]["prompt_tokens"] = str(count)
    rows[2]["total_tokens"] = str(int(count) + int(rows[2]["completion_tokens"]))
    return test_litellm.write_csv(tmp_path / "spend.csv", rows)


def _bedrock(tmp_path: Path, count: int | str) -> Path:
    records = [test_bedrock.record(i) for i in range(6)]
    records[2]["output"]["outputTokenCount"] = count
    return test_bedrock.write(tmp_path / "bedrock.jsonl", [json.dumps(r) for r in records])


def _langfuse(tmp_path: Path, count: int | str) -> Path:
    observations = [test_langfuse.generation(i) for i in range(6)]
    observations[2]["usageDetails"]["output"] = count
    path = tmp_path / "observations.jsonl"
    path.write_text("".join(json.dumps(o) + "\n" for o in observations))
    return path


SOURCES: dict[str, Any] = {"litellm": _litellm, "bedrock": _bedrock, "langfuse": _langfuse}


@pytest.mark.parametrize("source", SOURCES)
def test_a_count_beyond_bigint_is_a_bad_row_and_the_others_are_kept(tmp_path: Path, source: str) -> None:
    path = SOURCES[source](tmp_path, HUGE)
    with DuckDBLedger(":memory:") as ledger:
        report = run_import(get_importer(source), [path], ledger)
        assert (report.rows, report.imported, report.rejected) == (6, 5, 1)
        [error] = [str(e) for e in report.errors]
        line = 4 if source == "litellm" else 3  # a CSV header is line 1
        assert error.startswith(f"{path}:{line}: ") and "expected a whole number" in error, error
        assert ledger.query_rows("SELECT count(*) AS n FROM usage_events") == [{"n": 5}]
