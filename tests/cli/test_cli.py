from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.factories import event
from tokenops.cli import app
from tokenops.store import DuckDBLedger

runner = CliRunner()


@pytest.fixture
def ledger_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "org.duckdb"
    with DuckDBLedger(path) as ledger:
        ledger.record_events(
            [
                event("a1", team="support"),
                event("a2", team="sales", model="gpt-4o-mini"),
                event("u1", team="sales", model="acme-internal-llm", provider="self-hosted"),
            ]
        )
    return path


def test_report_spend_as_json_keeps_money_exact_and_flags_unpriced(ledger_file: Path) -> None:
    result = runner.invoke(app, ["report", "spend", "--by", "team", "--format", "json", "--ledger", str(ledger_file)])
    assert result.exit_code == 0, result.output
    rows = {r["team"]: r for r in json.loads(result.stdout)}
    assert rows["support"]["cost"] == "0.0075"
    assert rows["sales"]["cost"] == "0.00045"
    assert rows["sales"]["unpriced_events"] == 1


def test_report_spend_csv_has_a_header_and_one_row_per_group(ledger_file: Path) -> None:
    result = runner.invoke(app, ["report", "spend", "--by", "model", "-f", "csv", "--ledger", str(ledger_file)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("model,cost,events,unpriced_events")
    assert len(lines) == 4


def test_unknown_dimension_is_a_clear_error(ledger_file: Path) -> None:
    result = runner.invoke(app, ["report", "spend", "--by", "planet", "--ledger", str(ledger_file)])
    assert result.exit_code == 2
    assert "Unknown dimension 'planet'" in result.output


def test_events_query_filters_and_shows_unpriced(ledger_file: Path) -> None:
    result = runner.invoke(app, ["events", "query", "--team", "sales", "-f", "json", "--ledger", str(ledger_file)])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert {r["request_id"] for r in rows} == {"a2", "u1"}
    table = runner.invoke(
        app, ["events", "query", "--team", "sales", "--ledger", str(ledger_file)], env={"COLUMNS": "250"}
    )
    assert "UNPRICED" in table.stdout


def test_missing_ledger_says_how_to_get_one(tmp_path: Path) -> None:
    result = runner.invoke(app, ["events", "query", "--ledger", str(tmp_path / "none.duckdb")])
    assert result.exit_code == 2
    assert "tokenops demo" in result.output


def test_keys_are_shown_once_and_stored_hashed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    created = runner.invoke(app, ["keys", "create", "--user", "ana", "--team", "support"])
    assert created.exit_code == 0, created.output
    secret = created.stdout.strip().splitlines()[-1]
    assert secret.startswith("tok-")
    store = (tmp_path / ".tokenops" / "keys.sqlite").read_bytes()
    assert secret.encode() not in store
    listed = runner.invoke(app, ["keys", "list", "-f", "json"])
    (key,) = json.loads(listed.stdout)
    assert (key["user"], key["team"], key["revoked"]) == ("ana", "support", False)
    assert runner.invoke(app, ["keys", "revoke", key["key_id"]]).exit_code == 0
    assert json.loads(runner.invoke(app, ["keys", "list", "-f", "json"]).stdout)[0]["revoked"] is True


def test_help_reads_well() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("demo", "serve", "price", "events", "report", "keys"):
        assert command in result.stdout


def test_price_explains_a_cost_line_by_line() -> None:
    result = runner.invoke(
        app, ["price", "gpt-4o", "--input", "1000", "--output", "500", "--at", "2026-11-01"], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    assert "$0.0075" in result.stdout
    assert "genai-prices:openai/gpt-4o" in result.stdout
    assert "output" in result.stdout and "$10" in result.stdout


def test_price_of_an_unknown_model_is_unpriced_not_zero() -> None:
    result = runner.invoke(app, ["price", "acme-llm-7b", "--input", "10", "--output", "5"], env={"COLUMNS": "200"})
    assert result.exit_code == 1
    assert "No price for model 'acme-llm-7b'" in result.stdout
    assert "$0.00" not in result.stdout


def test_demo_builds_a_ledger_that_the_reports_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    built = runner.invoke(app, ["demo", "--dir", "org", "--no-serve"])
    assert built.exit_code == 0, built.output
    assert "model calls" in built.stdout
    ledger = str(tmp_path / "org" / "tokenops.duckdb")
    report = runner.invoke(app, ["report", "spend", "--by", "team", "-f", "json", "--ledger", ledger])
    teams = json.loads(report.stdout)
    assert len(teams) == 6
    assert sum(t["unpriced_events"] for t in teams) > 0
    again = runner.invoke(app, ["demo", "--dir", "org", "--no-serve"])
    assert "reusing" in again.stdout


def test_events_tail_shows_the_latest_calls_oldest_first(ledger_file: Path) -> None:
    result = runner.invoke(app, ["events", "tail", "-n", "2", "--ledger", str(ledger_file)], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "a1" in result.stdout and "a2" in result.stdout
    follow = runner.invoke(app, ["events", "tail", "--follow", "--ledger", str(ledger_file)])
    assert follow.exit_code == 2 and "--server" in follow.output
