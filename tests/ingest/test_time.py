"""Toggl, Clockify and generic timesheet exports: hours per person and workflow, local time to UTC."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from datetime import datetime, time
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.ingest.test_people import write_csv
from tokenops.cli import app
from tokenops.ingest import get_importer, run_import
from tokenops.ingest._time import BadValue, TimeSettings, WorkflowMap, parse_clock, parse_date, parse_hours
from tokenops.ingest.toggl import DetailedExport
from tokenops.store import DuckDBLedger

MAPPING = """\
# first matching rule with a workflow sets it; likewise for the tool
[[rule]]
project = "support"
workflow = "support_ticket"

[[rule]]
project = "report*"
workflow = "weekly_report"

[[rule]]
tag = "rag"
workflow = "knowledge_search"

[[rule]]
tag = "copilot"
tool = "github-copilot"
"""

TOGGL_HEADER = (
    "User,Email,Client,Project,Task,Description,Billable,Start date,Start time,End date,End time,Duration,Tags,"
    "Amount (USD)"
).split(",")
TOGGL = [
    [
        "Ana Lima",
        "Ana@Example.com",
        "Acme",
        "Support",
        "Tickets",
        "Refund,\norder 4711",
        "Yes",
        "2026-03-02",
        "09:00:00",
        "2026-03-02",
        "10:30:00",
        "01:30:00",
        "copilot, ai",
        "150.00",
    ],
    [
        "Ana Lima",
        "ana@example.com",
        "Acme",
        "Support",
        "Tickets",
        "Triage",
        "Yes",
        "2026-03-02",
        "11:00:00",
        "2026-03-02",
        "11:45:00",
        "00:45:00",
        "",
        "75.00",
    ],
    [
        "Ben Okafor",
        "ben@example.com",
        "Internal",
        "Reports",
        "",
        "Weekly report",
        "No",
        "2026-03-03",
        "14:00:00",
        "2026-03-03",
        "16:15:00",
        "02:15:00",
        "",
        "",
    ],
    [
        "Ben Okafor",
        "ben@example.com",
        "Internal",
        "Research",
        "KB",
        "Search",
        "No",
        "2026-07-01",
        "09:00:00",
        "2026-07-01",
        "09:30:00",
        "00:30:00",
        "rag",
        "",
    ],
    [
        "Chen Wu",
        "chen@example.com",
        "",
        "",
        "",
        "Email",
        "No",
        "2026-03-04",
        "23:30:00",
        "2026-03-05",
        "00:30:00",
        "01:00:00",
        "",
        "",
    ],
    [
        "Chen Wu",
        "chen@example.com",
        "Acme",
        "Support",
        "Escalations",
        "Call",
        "Yes",
        "2026-03-05",
        "08:00:00",
        "2026-03-05",
        "08:15:00",
        "0:15:00",
        "",
        "",
    ],
]
TOGGL_HOURS = {
    ("ana@example.com", "support_ticket"): Decimal("2.25"),
    ("ben@example.com", "knowledge_search"): Decimal("0.5"),
    ("ben@example.com", "weekly_report"): Decimal("2.25"),
    ("chen@example.com", None): Decimal("1"),
    ("chen@example.com", "support_ticket"): Decimal("0.25"),
}


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[DuckDBLedger]:
    with DuckDBLedger(tmp_path / "ledger.duckdb") as store:
        yield store


@pytest.fixture
def berlin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Exports in Europe/Berlin local time, mapped with MAPPING, as documented (environment variables)."""
    mapping = tmp_path / "mapping.toml"
    mapping.write_text(MAPPING)
    monkeypatch.setenv("TOKENOPS_INGEST__TIME__TIMEZONE", "Europe/Berlin")
    monkeypatch.setenv("TOKENOPS_INGEST__TIME__MAP", str(mapping))
    return mapping


def hours(ledger: DuckDBLedger) -> dict[tuple[object, object], object]:
    rows = ledger.query_rows(
        "SELECT person_id, workflow, sum(duration_hours) AS h FROM time_entries GROUP BY ALL ORDER BY ALL"
    )
    return {(r["person_id"], r["workflow"]): r["h"] for r in rows}


def test_toggl_detailed_export_gives_hours_per_person_and_workflow(
    tmp_path: Path, ledger: DuckDBLedger, berlin: Path
) -> None:
    file = write_csv(tmp_path / "Toggl_time_entries_2026-03-01_to_2026-07-31.csv", TOGGL_HEADER, TOGGL)
    report = run_import(get_importer("toggl"), [file], ledger)
    assert (report.rows, report.imported, report.rejected) == (6, 6, 0)
    assert hours(ledger) == TOGGL_HOURS
    rows = ledger.query_rows("SELECT * FROM time_entries ORDER BY start")
    first = rows[0]
    assert (first["activity"], first["tool"], first["workflow"]) == (
        "Support / Tickets",
        "github-copilot",
        "support_ticket",
    )
    assert first["start"] == datetime(2026, 3, 2, 8, 0)  # 09:00 CET is 08:00 UTC
    summer = next(r for r in rows if r["workflow"] == "knowledge_search")
    assert summer["start"] == datetime(2026, 7, 1, 7, 0)  # 09:00 CEST is 07:00 UTC
    no_project = next(r for r in rows if r["workflow"] is None)
    assert (no_project["activity"], no_project["start"]) == ("Email", datetime(2026, 3, 4, 22, 30))
    assert sum(1 for r in rows if r["tool"] is None) == 5


def test_toggl_bad_rows_are_named_by_line_and_reimport_is_a_no_op(
    tmp_path: Path, ledger: DuckDBLedger, berlin: Path
) -> None:
    good = TOGGL[1]
    bad = [
        [*good[:7], "2026-13-01", *good[8:]],  # line 4 (line 2's description spans two lines)
        [*good[:8], "25:00:00", *good[9:]],  # 5
        [*good[:11], "an hour", *good[12:]],  # 6
        ["", "", *good[2:]],  # 7
        [*good[:9], "", "", "", *good[12:]],  # 8: no duration, no end
        [*good[:9], "2026-03-02", "10:00:00", "", *good[12:]],  # 9: ends before it starts
        good[:5],  # 10
    ]
    rows = [TOGGL[0], *bad, *TOGGL[1:]]
    file = write_csv(tmp_path / "toggl.csv", TOGGL_HEADER, rows)
    report = run_import(get_importer("toggl"), [file], ledger)
    assert [str(e).removeprefix(f"{file}:") for e in report.errors] == [
        "4: Start date is '2026-13-01', not a valid date read as year/month/day",
        "5: Start time is '25:00:00', expected a time such as 14:30, 14:30:00 or 2:30 PM",
        "6: Duration is 'an hour', expected a duration such as 1:30:00, 1:30 or 1.5 (hours)",
        "7: Email and User are both empty; who tracked this time?",
        "8: no duration: Duration, End time are all empty",
        "9: ends (2026-03-02 10:00:00) before it starts; check the end date",
        "10: expected 14 fields as in the header, found 5",
    ]
    assert (report.imported, report.rejected) == (6, 7)
    assert hours(ledger) == TOGGL_HOURS

    same = write_csv(tmp_path / "same.csv", TOGGL_HEADER, TOGGL)
    gzipped = tmp_path / "same.csv.gz"
    gzipped.write_bytes(gzip.compress(same.read_bytes()))
    again = run_import(get_importer("toggl"), [file, same, gzipped], ledger)
    assert (again.imported, again.duplicates, again.rejected) == (0, 18, 7)
    assert hours(ledger) == TOGGL_HOURS


CLOCKIFY_HEADER = (
    "Project,Client,Description,Task,User,Group,Email,Tags,Billable,Start Date,Start Time,End Date,End Time,"
    "Duration (h),Duration (decimal),Billable Rate (USD),Billable Amount (USD)"
).split(",")


def clockify_row(
    project: str, user: str, day: str, start: str, end: str, dur: str, dec: str, tags: str = ""
) -> list[str]:
    email = f"{user.split()[0].lower()}@example.com"
    return [project, "Acme", "work", "", user, "Team", email, tags, "Yes", day, start, day, end, dur, dec, "100.00", ""]


def test_clockify_month_first_dates_and_12_hour_times_are_read_in_the_users_zone(
    tmp_path: Path, ledger: DuckDBLedger, berlin: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOKENOPS_INGEST__TIME__TIMEZONE", "America/New_York")
    rows = [
        clockify_row("Support", "Ana Lima", "03/02/2026", "09:00 AM", "10:30 AM", "01:30:00", "1.50", "copilot"),
        clockify_row("Support", "Ana Lima", "03/16/2026", "02:00 PM", "02:45 PM", "00:45:00", "0.75"),  # 16: mdy
        clockify_row("Reports", "Ben Okafor", "04/03/2026", "01:00 PM", "03:00 PM", "02:00:00", "2.00"),
        clockify_row("Research", "Ben Okafor", "04/03/2026", "12:00 AM", "12:30 AM", "0:30", ""),  # Duration (h) only
    ]
    file = write_csv(tmp_path / "Clockify_Time_Report_Detailed.csv", CLOCKIFY_HEADER, rows)
    report = run_import(get_importer("clockify"), [file], ledger)
    assert (report.imported, report.rejected) == (4, 0), report.errors
    assert hours(ledger) == {
        ("ana@example.com", "support_ticket"): Decimal("2.25"),
        ("ben@example.com", None): Decimal("0.5"),
        ("ben@example.com", "weekly_report"): Decimal("2"),
    }
    starts = [r["start"] for r in ledger.query_rows("SELECT start FROM time_entries ORDER BY start")]
    assert starts == [
        datetime(2026, 3, 2, 14, 0),  # 09:00 EST
        datetime(2026, 3, 16, 18, 0),  # 14:00 EDT (DST began 8 March)
        datetime(2026, 4, 3, 4, 0),  # 12:00 AM is midnight
        datetime(2026, 4, 3, 17, 0),  # 3 April, not 4 March
    ]


def test_clockify_dates_that_could_be_either_order_are_rejected_unless_the_order_is_set(
    tmp_path: Path, ledger: DuckDBLedger, berlin: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [
        clockify_row("Support", "Ana Lima", "03/04/2026", "09:00", "10:00", "1:00:00", "1.00"),
        clockify_row("Support", "Ana Lima", "05/05/2026", "09:00", "10:00", "1:00:00", "1.00"),  # same either way
        clockify_row("Support", "Ana Lima", "05/06/2026", "09:00", "10:00", "1:00:00", "1.00"),
    ]
    file = write_csv(tmp_path / "clockify.csv", CLOCKIFY_HEADER, rows)
    report = run_import(get_importer("clockify"), [file], ledger)
    assert [e.line for e in report.errors] == [2, 4]
    assert report.errors[0].reason == (
        "Start Date is '03/04/2026': day/month or month/day? Nothing in the file tells (no day above 12); "
        "set TOKENOPS_INGEST__TIME__DATE_ORDER=dmy or =mdy"
    )
    assert report.imported == 1

    monkeypatch.setenv("TOKENOPS_INGEST__TIME__DATE_ORDER", "dmy")
    again = run_import(get_importer("clockify"), [file], ledger)
    assert (again.imported, again.duplicates, again.rejected) == (2, 1, 0)
    days = [r["d"] for r in ledger.query_rows("SELECT CAST(start AS DATE) AS d FROM time_entries ORDER BY 1")]
    assert [d.isoformat() for d in days] == ["2026-04-03", "2026-05-05", "2026-06-05"]  # type: ignore[attr-defined]


def test_clockify_day_first_dotted_dates_are_inferred_from_the_file(tmp_path: Path, ledger: DuckDBLedger) -> None:
    rows = [
        clockify_row("Support", "Ana Lima", "02.03.2026", "09:00", "10:00", "1:00:00", "1,00"),
        clockify_row("Support", "Ana Lima", "31.03.2026", "09:00", "10:00", "1:00:00", "1,00"),
    ]
    file = write_csv(tmp_path / "clockify.csv", CLOCKIFY_HEADER, rows)
    importer = DetailedExport("clockify", "", ("duration_decimal", "duration_h"), TimeSettings())  # UTC, no map
    report = run_import(importer, [file], ledger)
    assert report.rejected == 0
    starts = [r["start"] for r in ledger.query_rows("SELECT start FROM time_entries ORDER BY start")]
    assert starts == [datetime(2026, 3, 2, 9), datetime(2026, 3, 31, 9)]


TIMESHEET_HEADER = ["person", "activity", "start", "duration_hours", "end", "tool", "workflow"]


def test_generic_timesheet_maps_activities_and_stores_utc(tmp_path: Path, ledger: DuckDBLedger, berlin: Path) -> None:
    (tmp_path / "mapping.toml").write_text('[[rule]]\nactivity = "support*"\nworkflow = "support_ticket"\n')
    rows = [
        ["ana@example.com", "Support / Tickets", "2026-03-02T09:00:00+01:00", "1.5", "", "chatgpt", ""],
        ["ana@example.com", "Support / Tickets", "2026-03-02T11:00:00", "", "2026-03-02T11:45:00", "", ""],
        ["Ben@Example.com", "Weekly report", "2026-03-03T14:00:00Z", "2:15", "", "", "weekly_report"],
        ["chen@example.com", "Support calls", "2026-03-05 08:00", "0.25", "2026-03-05 08:15", "", "escalation"],
    ]
    file = write_csv(tmp_path / "timesheet.csv", TIMESHEET_HEADER, rows)
    report = run_import(get_importer("timesheet"), [file], ledger)
    assert report.rejected == 0, report.errors
    assert hours(ledger) == {
        ("ana@example.com", "support_ticket"): Decimal("2.25"),
        ("ben@example.com", "weekly_report"): Decimal("2.25"),
        ("chen@example.com", "escalation"): Decimal("0.25"),  # an explicit workflow beats the mapping
    }
    starts = ledger.query_rows("SELECT start, tool FROM time_entries ORDER BY start")
    assert [(r["start"].time(), r["tool"]) for r in starts] == [  # type: ignore[attr-defined]
        (time(8, 0), "chatgpt"),
        (time(10, 0), None),  # zone-less: Berlin
        (time(14, 0), None),  # Z
        (time(7, 0), None),  # 08:00 Berlin
    ]


def test_generic_timesheet_bad_rows_and_unknown_columns(tmp_path: Path, ledger: DuckDBLedger) -> None:
    rows = [
        ["ana@example.com", "Support", "2026-03-02T09:00:00Z", "1.5", "", "", ""],
        ["ana@example.com", "Support", "yesterday", "1.5", "", "", ""],  # 3
        ["ana@example.com", "Support", "2026-03-02T09:00:00Z", "2", "2026-03-02T10:00:00Z", "", ""],  # 4
        ["ana@example.com", "", "2026-03-02T09:00:00Z", "1", "", "", ""],  # 5
        ["ana@example.com", "Support", "2026-03-02T09:00:00Z", "", "", "", ""],  # 6
        ["ana@example.com", "Support", "2026-03-02T09:00:00Z", "-1", "", "", ""],  # 7
    ]
    file = write_csv(tmp_path / "timesheet.csv", TIMESHEET_HEADER, rows)
    report = run_import(get_importer("timesheet"), [file], ledger)
    assert [str(e).removeprefix(f"{file}:") for e in report.errors] == [
        "3: start is 'yesterday', expected an ISO 8601 time such as 2026-03-31T14:30:00Z",
        "4: duration_hours is '2' but end - start is 1.00 hours; give one or make them agree",
        "5: activity is empty; every row needs one",
        "6: duration_hours and end are both empty; give one",
        "7: duration_hours is '-1', expected a duration such as 1:30:00, 1:30 or 1.5 (hours)",
    ]
    assert report.imported == 1

    typo = write_csv(tmp_path / "typo.csv", ["person", "activity", "start", "duration_hours", "workfow"], [rows[0][:5]])
    report = run_import(get_importer("timesheet"), [typo], ledger)
    assert [str(e) for e in report.errors] == [
        f"{typo}:1: unknown column(s) 'workfow'; this format has: "
        "person, activity, start, duration_hours, end, tool, workflow, entry_id"
    ]


def test_wrong_settings_reject_the_file_with_a_reason(
    tmp_path: Path, ledger: DuckDBLedger, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = write_csv(tmp_path / "toggl.csv", TOGGL_HEADER, TOGGL)
    monkeypatch.setenv("TOKENOPS_INGEST__TIME__TIMEZONE", "Mars/Olympus")
    report = run_import(get_importer("toggl"), [file], ledger)
    assert [str(e) for e in report.errors] == [
        f"{file}:1: TOKENOPS_INGEST__TIME__TIMEZONE is 'Mars/Olympus', not an IANA time zone; "
        "use e.g. 'Europe/Berlin' or 'UTC'"
    ]
    monkeypatch.setenv("TOKENOPS_INGEST__TIME__TIMEZONE", "UTC")
    monkeypatch.setenv("TOKENOPS_INGEST__TIME__DATE_ORDER", "ymd")
    (error,) = run_import(get_importer("timesheet"), [file], ledger).errors
    assert error.reason == "TOKENOPS_INGEST__TIME__DATE_ORDER is 'ymd': Input should be 'dmy' or 'mdy'"
    monkeypatch.delenv("TOKENOPS_INGEST__TIME__DATE_ORDER")
    mapping = tmp_path / "map.toml"
    mapping.write_text('[[rule]]\nproject = "x"\nworkfow = "y"\n')
    monkeypatch.setenv("TOKENOPS_INGEST__TIME__MAP", str(mapping))
    (error,) = run_import(get_importer("toggl"), [file], ledger).errors
    assert error.reason.startswith(f"workflow mapping {str(mapping)!r}: rule.0.workfow: Extra inputs are not permitted")
    mapping.write_text('[[rule]]\nproject = "x"\n')
    (error,) = run_import(get_importer("toggl"), [file], ledger).errors
    assert error.reason.endswith("rule.0: Value error, a rule needs a workflow, a tool, or both")
    assert ledger.query_rows("SELECT count(*) AS n FROM time_entries") == [{"n": 0}]


def test_toggl_through_the_cli_with_zone_and_mapping_from_the_environment(tmp_path: Path) -> None:
    mapping = tmp_path / "mapping.toml"
    mapping.write_text(MAPPING)
    write_csv(tmp_path / "toggl.csv", TOGGL_HEADER, TOGGL)
    ledger_file = tmp_path / "cli.duckdb"
    env = {"TOKENOPS_INGEST__TIME__TIMEZONE": "Europe/Berlin", "TOKENOPS_INGEST__TIME__MAP": str(mapping)}
    result = CliRunner().invoke(app, ["import", "toggl", str(tmp_path), "--ledger", str(ledger_file), "-q"], env=env)
    assert result.exit_code == 0, result.output
    assert "toggl: 6 rows read from 1 file(s): 6 imported" in result.output
    with DuckDBLedger(ledger_file) as store:
        assert hours(store) == TOGGL_HOURS
        assert store.query_rows("SELECT min(start) AS s FROM time_entries") == [{"s": datetime(2026, 3, 2, 8)}]


def test_values_as_the_exporters_write_them(tmp_path: Path) -> None:
    assert parse_clock("2:30 PM", "t") == time(14, 30)
    assert parse_clock("12:05 am", "t") == time(0, 5)
    assert parse_clock("23:59:59", "t") == time(23, 59, 59)
    for bad in ("24:00", "13:00 PM", "9", "9:60"):
        with pytest.raises(BadValue):
            parse_clock(bad, "t")
    assert parse_hours("01:30:00", "d") == Decimal("1.5")
    assert parse_hours("25:15", "d") == Decimal("25.25")
    assert parse_hours("1,25", "d") == Decimal("1.25")
    assert parse_date("2026-03-31", "d").isoformat() == "2026-03-31"
    assert parse_date("31/03/2026", "d").isoformat() == "2026-03-31"
    assert parse_date("03/31/2026", "d").isoformat() == "2026-03-31"
    assert parse_date("03/04/2026", "d", "mdy").isoformat() == "2026-03-04"
    with pytest.raises(BadValue, match="not a valid date read as month/day/year"):
        parse_date("31/03/2026", "d", "mdy")
    with pytest.raises(BadValue, match="expected a date"):
        parse_date("31/03/26", "d")
    (tmp_path / "m.toml").write_text(MAPPING)
    rules = WorkflowMap.load(tmp_path / "m.toml")
    assert rules.resolve({"project": "Support"}, ("Copilot",)) == ("support_ticket", "github-copilot")
    assert rules.resolve({"project": "Sales"}, ()) == (None, None)
