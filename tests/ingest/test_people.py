"""Roster and seat licence CSVs: people with their loaded cost, seats, strict rows, re-imports update."""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tokenops.cli import app
from tokenops.ingest import get_importer, run_import
from tokenops.store import DuckDBLedger

# An HR system's export: its own header names (aliases), extra columns, a quoted multi-line cell.
ROSTER_HEADER = ["Employee ID", "Email", "Full Name", "Department", "Title", "Loaded Rate", "Hire Date", "Salary"]
ROSTER = [
    ["E-001", "Ana.Lima@Example.com", "Ana Lima", "support", "Support agent", "62.50", "2021-04-01", "98000"],
    ["E-002", "ben@example.com", "Ben Okafor", "support", "Team lead", "$81.25", "2019-09-16", "128000"],
    ["E-003", "chen@example.com", "Chen Wu", "sales", "Account executive\n(EMEA)", "95", "2022-01-10", "150000"],
    ["E-004", "dora@example.com", "Dora Petit", "sales", "SDR", "48.00", "", "76000"],
    ["E-005", "eli@example.com", "Eli Haddad", "engineering", "Staff engineer", "140.00", "2018-02-05", "220000"],
]
ROSTER_TOTAL_RATE = Decimal("426.75")


def write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[DuckDBLedger]:
    with DuckDBLedger(tmp_path / "ledger.duckdb") as store:
        yield store


def people(ledger: DuckDBLedger) -> dict[str, dict[str, object]]:
    return {str(r["person_id"]): r for r in ledger.query_rows("SELECT * FROM people")}


def test_roster_with_hr_header_names_gives_people_teams_and_rates(tmp_path: Path, ledger: DuckDBLedger) -> None:
    file = write_csv(tmp_path / "roster.csv", ROSTER_HEADER, ROSTER)
    report = run_import(get_importer("roster"), [file], ledger)
    assert (report.rows, report.imported, report.rejected) == (5, 5, 0)
    rows = people(ledger)
    assert len(rows) == 5
    ana = rows["ana.lima@example.com"]  # Email wins over Employee ID; emails are lower-cased
    assert (ana["team"], ana["name"], ana["role"]) == ("support", "Ana Lima", "Support agent")
    assert ana["loaded_hourly_cost"] == Decimal("62.5") and ana["start_date"] == date(2021, 4, 1)
    assert rows["chen@example.com"]["role"] == "Account executive\n(EMEA)"
    assert rows["dora@example.com"]["start_date"] is None
    assert sum(Decimal(str(r["loaded_hourly_cost"])) for r in rows.values()) == ROSTER_TOTAL_RATE
    teams = ledger.query_rows("SELECT team, count(*) AS n FROM people GROUP BY team ORDER BY team")
    assert [(t["team"], t["n"]) for t in teams] == [("engineering", 1), ("sales", 2), ("support", 2)]


def test_roster_bad_rows_are_named_by_line_and_the_good_ones_kept(tmp_path: Path, ledger: DuckDBLedger) -> None:
    header = ["person_id", "name", "team", "loaded_hourly_cost", "role", "start_date", "currency"]
    file = write_csv(
        tmp_path / "roster.csv",
        header,
        [
            ["ana@example.com", "Ana", "support", "62.50", "agent", "2021-04-01", "USD"],  # line 2
            ["ben@example.com", "Ben", "support", "", "lead", "2019-09-16", ""],  # 3: no rate
            ["chen@example.com", "Chen", "sales", "-95", "AE", "", ""],  # 4: negative
            ["dora@example.com", "Dora\nPetit", "sales", "48.00", "SDR", "", "usd"],  # 5-6: good, two lines
            ["eli@example.com", "Eli", "engineering", "140,00", "", "", ""],  # 7: decimal comma
            ["fay@example.com", "Fay", "", "70", "", "", ""],  # 8: no team
            ["gus@example.com", "Gus", "ops", "70", "", "01/02/2020", ""],  # 9: not ISO
            ["hal@example.com", "Hal", "ops", "70", "", "", "EUR"],  # 10: not USD
            ["ivy@example.com", "Ivy", "ops", "55"],  # 11: short row
            ["jo@example.com", "Jo", "ops", "0", "intern", "2026-01-05", ""],  # 12: $0 is a real rate
        ],
    )
    report = run_import(get_importer("roster"), [file], ledger)
    where = f"{file}:"
    assert [str(e) for e in report.errors] == [
        f"{where}3: loaded_hourly_cost is empty; every row needs one",
        f"{where}4: loaded_hourly_cost is '-95'; a cost cannot be negative",
        f"{where}7: loaded_hourly_cost is '140,00', expected an amount in USD such as 85.50 (use '.' for decimals)",
        f"{where}8: team is empty; every row needs one",
        f"{where}9: start_date is '01/02/2020', expected a date as YYYY-MM-DD",
        f"{where}10: currency is 'EUR'; tokenops values time in USD, convert first",
        f"{where}11: expected 7 fields as in the header, found 4",
    ]
    assert (report.rows, report.imported, report.rejected) == (10, 3, 7)
    assert sorted(people(ledger)) == ["ana@example.com", "dora@example.com", "jo@example.com"]


def test_roster_reimport_changes_nothing_and_a_new_rate_updates_in_place(tmp_path: Path, ledger: DuckDBLedger) -> None:
    file = write_csv(tmp_path / "roster.csv", ROSTER_HEADER, ROSTER)
    run_import(get_importer("roster"), [file], ledger)
    again = run_import(get_importer("roster"), [file], ledger)
    assert (again.imported, again.duplicates, again.rejected) == (0, 5, 0)
    assert len(people(ledger)) == 5

    raised = [row[:5] + ["70.00", *row[6:]] if row[0] == "E-001" else row for row in ROSTER]
    moved = [row[:3] + ["sales", *row[4:]] if row[0] == "E-002" else row for row in raised]
    update = run_import(
        get_importer("roster"), [write_csv(tmp_path / "roster-april.csv", ROSTER_HEADER, moved)], ledger
    )
    assert (update.imported, update.duplicates) == (0, 5)
    rows = people(ledger)
    assert len(rows) == 5
    assert rows["ana.lima@example.com"]["loaded_hourly_cost"] == Decimal("70")
    assert rows["ben@example.com"]["team"] == "sales"
    assert sum(Decimal(str(r["loaded_hourly_cost"])) for r in rows.values()) == ROSTER_TOTAL_RATE + Decimal("7.50")


def test_a_roster_without_a_cost_column_is_refused_once_at_line_1(tmp_path: Path, ledger: DuckDBLedger) -> None:
    file = write_csv(tmp_path / "roster.csv", ["email", "team", "salary"], [["ana@example.com", "support", "98000"]])
    report = run_import(get_importer("roster"), [file], ledger)
    assert report.imported == 0 and report.rejected == 1
    (error,) = report.errors
    assert error.line == 1
    assert error.reason.startswith("no 'loaded_hourly_cost' column (accepted names: loaded_hourly_cost, ")
    assert "hourly_cost" in error.reason and "found: email, team, salary" in error.reason


def test_roster_through_the_cli_exit_codes_and_summary(tmp_path: Path) -> None:
    runner = CliRunner()
    ledger_file = tmp_path / "cli.duckdb"
    good = write_csv(tmp_path / "roster.csv", ROSTER_HEADER, ROSTER)
    result = runner.invoke(app, ["import", "roster", str(good), "--ledger", str(ledger_file), "-q"])
    assert result.exit_code == 0, result.output
    assert "roster: 5 rows read from 1 file(s): 5 imported, 0 already in the ledger, 0 rejected" in result.output

    bad = write_csv(tmp_path / "bad.csv", ROSTER_HEADER, [[*ROSTER[0][:5], "lots", *ROSTER[0][6:]], ROSTER[1]])
    errors = tmp_path / "errors.txt"
    result = runner.invoke(
        app, ["import", "roster", str(bad), "--ledger", str(ledger_file), "-q", "--errors", str(errors)]
    )
    assert result.exit_code == 1
    reason = "Loaded Rate is 'lots', expected an amount in USD such as 85.50 (use '.' for decimals)"
    assert errors.read_text() == f"{bad}:2: {reason}\n"
    assert reason in " ".join(result.output.split())  # printed too (wrapped to the terminal)
    assert "1 already in the ledger, 1 rejected" in result.output

    nothing = write_csv(tmp_path / "nothing.csv", ["who"], [["x"]])
    result = runner.invoke(app, ["import", "roster", str(nothing), "--ledger", str(ledger_file), "-q"])
    assert result.exit_code == 2
    with DuckDBLedger(ledger_file) as store:
        assert len(people(store)) == 5


SEATS_HEADER = ["Email", "Product", "Monthly Cost (USD)", "Assigned On", "Revoked On"]
SEATS = [
    ["ana.lima@example.com", "github-copilot", "19.00", "2026-01-01", ""],
    ["ana.lima@example.com", "chatgpt-team", "30.00", "2026-01-01", "2026-02-28"],
    ["ben@example.com", "github-copilot", "19.00", "2025-11-15", ""],
    ["chen@example.com", "chatgpt-team", "30.00", "2026-02-01", ""],
    ["eli@example.com", "cursor-business", "40", "2026-01-20", ""],
]


def test_seats_give_each_persons_tools_and_monthly_cost(tmp_path: Path, ledger: DuckDBLedger) -> None:
    file = write_csv(tmp_path / "seats.csv", SEATS_HEADER, SEATS)
    report = run_import(get_importer("seats"), [file], ledger)
    assert (report.imported, report.rejected) == (5, 0)
    total = ledger.query_rows("SELECT sum(monthly_cost) AS c, count(*) AS n FROM seat_licenses")[0]
    assert (total["c"], total["n"]) == (Decimal("138"), 5)
    active = ledger.query_rows("SELECT sum(monthly_cost) AS c FROM seat_licenses WHERE end_date IS NULL")[0]
    assert active["c"] == Decimal("108")
    ana = ledger.query_rows(
        "SELECT tool, end_date FROM seat_licenses WHERE person_id = 'ana.lima@example.com' ORDER BY tool"
    )
    assert [(r["tool"], r["end_date"]) for r in ana] == [("chatgpt-team", date(2026, 2, 28)), ("github-copilot", None)]


def test_seats_bad_rows_named_and_a_later_end_date_updates_the_seat(tmp_path: Path, ledger: DuckDBLedger) -> None:
    rows = [
        *SEATS[:2],
        ["ben@example.com", "github-copilot", "19.00", "2026-03-01", "2026-02-01"],  # line 4: ends before it starts
        ["chen@example.com", "", "30.00", "2026-02-01", ""],  # 5: no tool
        ["dora@example.com", "chatgpt-team", "thirty", "2026-02-01", ""],  # 6: bad cost
        ["eli@example.com", "cursor-business", "40", "", ""],  # 7: no start
    ]
    file = write_csv(tmp_path / "seats.csv", SEATS_HEADER, rows)
    report = run_import(get_importer("seats"), [file], ledger)
    assert [(e.line, e.reason.split(" ")[0]) for e in report.errors] == [
        (4, "Revoked"),
        (5, "Product"),
        (6, "Monthly"),
        (7, "Assigned"),
    ]
    assert report.errors[0].reason == "Revoked On 2026-02-01 is before Assigned On 2026-03-01"
    assert report.imported == 2

    ended = [[*SEATS[0][:4], "2026-06-30"], SEATS[1]]
    again = run_import(get_importer("seats"), [write_csv(tmp_path / "seats-june.csv", SEATS_HEADER, ended)], ledger)
    assert (again.imported, again.duplicates) == (0, 2)
    copilot = ledger.query_rows("SELECT end_date FROM seat_licenses WHERE tool = 'github-copilot'")
    assert copilot == [{"end_date": date(2026, 6, 30)}]
