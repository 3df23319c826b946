"""The CLI works on a server ledger as on a DuckDB file: import into PostgreSQL, report from it."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from tests.factories import event
from tokenops.cli import app
from tokenops.store import DuckDBLedger, open_ledger


def test_import_and_report_against_postgresql(tmp_path: Path, pg_dsn: str) -> None:
    local = tmp_path / "local.duckdb"
    with DuckDBLedger(local) as ledger:
        ledger.record_events([event("e1"), event("e2", team="sales"), event("e3", model="gpt-4o-mini")])
    runner = CliRunner()
    assert runner.invoke(app, ["migrate", "--from", f"duckdb:{local}", "--to", pg_dsn]).exit_code == 0
    roster = tmp_path / "roster.csv"
    roster.write_text("person_id,team,loaded_hourly_cost\nana,support,62.50\nbo,sales,80\n")
    imported = runner.invoke(app, ["import", "roster", str(roster), "--ledger", pg_dsn, "-q"])
    assert imported.exit_code == 0, imported.output
    assert "2 imported" in imported.output

    from_pg = runner.invoke(app, ["report", "spend", "--by", "team", "--format", "json", "--ledger", pg_dsn])
    from_file = runner.invoke(app, ["report", "spend", "--by", "team", "--format", "json", "--ledger", str(local)])
    assert from_pg.exit_code == 0, from_pg.output
    assert json.loads(from_pg.stdout) == json.loads(from_file.stdout) and len(json.loads(from_pg.stdout)) == 2
    server = open_ledger(pg_dsn)
    try:
        assert server.query_rows("SELECT count(*) AS n FROM people") == [{"n": 2}]
    finally:
        server.close()
