"""A token count (BIGINT), an amount of money (DECIMAL(18,12)) or a duration (DECIMAL(12,6) hours) too large
for the ledger is a bad row named by its line, never a crashed import."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.ingest import (
    test_anthropic_reports,
    test_bedrock,
    test_focus,
    test_langfuse,
    test_litellm,
    test_openai_reports,
    test_people,
    test_time,
)
from tokenops.ingest import focus, get_importer, run_import
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


COSTLY = 10**15  # fits a BIGINT, but at any model's price costs far more than the ledger's DECIMAL(18,12) holds
ROW_PATHS = {
    "litellm": "tokenops.ingest.litellm.fast_columns",
    "bedrock": "tokenops.ingest.bedrock.fast_columns",
    "langfuse": "tokenops.ingest.langfuse.parse_chunk",
}


@pytest.mark.parametrize("columnar", [True, False], ids=["columns", "rows"])
@pytest.mark.parametrize("source", SOURCES)
def test_a_call_costing_a_million_dollars_or_more_is_a_bad_row_and_the_others_are_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str, columnar: bool
) -> None:
    if not columnar:
        monkeypatch.setattr(ROW_PATHS[source], lambda *args: None)
    path = SOURCES[source](tmp_path, COSTLY)
    with DuckDBLedger(":memory:") as ledger:
        report = run_import(get_importer(source), [path], ledger)
        assert (report.rows, report.imported, report.rejected) == (6, 5, 1)
        [error] = [str(e) for e in report.errors]
        line = 4 if source == "litellm" else 3
        assert error.startswith(f"{path}:{line}: cost ") and "exceeds the ledger's limit" in error, error
        assert ledger.query_rows("SELECT count(*) AS n, max(cost_total) < 1 AS cheap FROM usage_events") == [
            {"n": 5, "cheap": True}
        ]


def test_a_costly_observation_in_a_json_document_is_a_bad_row(tmp_path: Path) -> None:
    observations = [test_langfuse.generation(i) for i in range(3)]
    observations[1]["usageDetails"]["output"] = COSTLY
    path = tmp_path / "observations.json"
    path.write_text(json.dumps(observations))
    with DuckDBLedger(":memory:") as ledger:
        report = run_import(get_importer("langfuse"), [path], ledger)
        assert (report.rows, report.imported, report.rejected) == (3, 2, 1)
        assert str(report.errors[0]).startswith(f"{path}:2: cost ")


def _report_file(tmp_path: Path, page: dict[str, Any], pretty: bool) -> Path:
    path = tmp_path / ("page.json" if pretty else "page.jsonl")
    path.write_text(json.dumps(page, indent=2) if pretty else json.dumps(page) + "\n")
    return path


def _openai_usage() -> dict[str, Any]:
    rows = [
        test_openai_reports.completions(test_openai_reports.MINI, n, 1_000, 3, project_id=f"proj_{i}")
        for i, n in enumerate((10_000, COSTLY, 20_000))
    ]
    return test_openai_reports.page(test_openai_reports.bucket(test_openai_reports.DAY1, *rows))


def _anthropic_usage() -> dict[str, Any]:
    rows = [
        test_anthropic_reports.usage_row(test_anthropic_reports.SONNET, n, 800, workspace_id=f"wrkspc_{i}")
        for i, n in enumerate((1_000, COSTLY, 2_000))
    ]
    return test_anthropic_reports.page(test_anthropic_reports.bucket(1, *rows))


def _openai_costs() -> dict[str, Any]:
    rows = [test_openai_reports.cost(v, f"item {v}") for v in ("1.5", "1000000", "999999.999999999999")]
    return test_openai_reports.page(test_openai_reports.bucket(test_openai_reports.DAY1, *rows))


def _anthropic_costs() -> dict[str, Any]:  # cents
    rows = [test_anthropic_reports.cost_row(v, f"item {v}") for v in ("150", "100000000", "99999999.9999999999")]
    return test_anthropic_reports.page(test_anthropic_reports.bucket(1, *rows))


REPORTS: dict[str, Any] = {
    "openai_usage": (_openai_usage, "cost "),
    "anthropic_usage": (_anthropic_usage, "cost "),
    "openai_costs": (_openai_costs, "billed 1000000 "),
    "anthropic_costs": (_anthropic_costs, "billed 1000000"),
}


@pytest.mark.parametrize("pretty", [False, True], ids=["json-lines", "document"])
@pytest.mark.parametrize("source", REPORTS)
def test_a_report_row_costing_a_million_dollars_or_more_is_a_bad_row(tmp_path: Path, source: str, pretty: bool) -> None:
    page, reason = REPORTS[source]
    path = _report_file(tmp_path, page(), pretty)
    with DuckDBLedger(":memory:") as ledger:
        report = run_import(get_importer(source), [path], ledger)
        assert (report.rows, report.imported, report.rejected) == (3, 2, 1)
        [error] = [str(e) for e in report.errors]
        assert error.startswith(f"{path}:") and f": {reason}" in error and "exceeds the ledger's limit" in error, error


@pytest.mark.parametrize("columnar", [True, False], ids=["columns", "rows"])
@pytest.mark.parametrize("column", ["BilledCost", "EffectiveCost", "ListCost"])
def test_a_focus_amount_beyond_the_ledgers_limit_is_a_bad_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, column: str, columnar: bool
) -> None:
    if not columnar:
        monkeypatch.setattr(focus, "_csv_layout", lambda path: None)
    amounts = ["999999.999999999999", "1000000", "-1000000", "999999.9999999999995", "2"]
    lines = [test_focus._line(**{column: amount}) for amount in amounts]
    path = test_focus._write(tmp_path / "bill.csv", *lines)
    with DuckDBLedger(":memory:") as ledger:
        report = run_import(get_importer("focus"), [path], ledger)
        assert (report.rows, report.imported, report.rejected) == (5, 2, 3)
        assert [e.line for e in report.errors] == [3, 4, 5]
        assert all("exceeds the ledger's limit" in e.reason for e in report.errors), report.errors


PEOPLE: dict[str, tuple[list[str], list[list[str]]]] = {
    "roster": (
        ["person_id", "team", "loaded_hourly_cost"],
        [["ana@example.com", "support", v] for v in ("62.50", "1000000", "999999.999999999999")],
    ),
    "seats": (
        ["person_id", "tool", "monthly_cost", "start_date"],
        [[f"{p}@example.com", "copilot", v, "2025-01-01"] for p, v in (("a", "19"), ("b", "2500000"), ("c", "39"))],
    ),
    "outcomes": (
        ["outcome_id", "ts", "outcome_type", "value", "person"],
        [[f"o-{v}", "2026-03-02T10:31:00Z", "deal_won", v, "chen@example.com"] for v in ("42", "-1000000", "120.5")],
    ),
}


@pytest.mark.parametrize("source", PEOPLE)
def test_a_people_or_outcome_amount_beyond_the_ledgers_limit_is_a_bad_row(tmp_path: Path, source: str) -> None:
    header, rows = PEOPLE[source]
    path = test_people.write_csv(tmp_path / f"{source}.csv", header, rows)
    with DuckDBLedger(":memory:") as ledger:
        report = run_import(get_importer(source), [path], ledger)
        assert (report.rows, report.rejected) == (3, 1), report.errors
        [error] = [str(e) for e in report.errors]
        assert error.startswith(f"{path}:3: ") and "exceeds the ledger's limit" in error, error


TIME: dict[str, tuple[list[str], list[list[str]]]] = {
    "timesheet": (
        ["person", "activity", "start", "duration_hours", "end"],
        [
            ["ana@example.com", "tickets", "2026-03-02T09:00:00Z", "1.5", ""],
            ["ana@example.com", "tickets", "2026-03-02T11:00:00Z", "1000000", ""],
            ["ana@example.com", "tickets", "1890-01-01T00:00:00Z", "", "2026-03-02T12:00:00Z"],
            ["ana@example.com", "tickets", "2026-03-02T13:00:00Z", "999999.9999995", ""],
            ["ana@example.com", "tickets", "2026-03-02T14:00:00Z", "0:45", ""],
        ],
    ),
    "toggl": (
        test_time.TOGGL_HEADER,
        [
            test_time.TOGGL[1],
            [*test_time.TOGGL[1][:9], "", "", "99999999:00:00", *test_time.TOGGL[1][12:]],
            [*test_time.TOGGL[1][:7], "1890-01-01", "09:00:00", "2026-03-02", "10:00:00", "", *test_time.TOGGL[1][12:]],
            [*test_time.TOGGL[1][:11], "999999.9999995", *test_time.TOGGL[1][12:]],
            test_time.TOGGL[2],
        ],
    ),
}


@pytest.mark.parametrize("source", TIME)
def test_a_time_entry_longer_than_the_ledger_holds_is_a_bad_row(tmp_path: Path, source: str) -> None:
    """Given as hours, as h:mm:ss or as a span from start to end (1890 to 2026 is 1.2M hours)."""
    header, rows = TIME[source]
    path = test_people.write_csv(tmp_path / f"{source}.csv", header, rows)
    with DuckDBLedger(":memory:") as ledger:
        report = run_import(get_importer(source), [path], ledger)
        assert (report.imported, report.rejected) == (2, 3), report.errors
        assert [e.line for e in report.errors] == [3, 4, 5]
        assert all("more than the ledger holds" in e.reason for e in report.errors), report.errors
