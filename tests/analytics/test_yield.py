from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from typer.testing import CliRunner

from tests.factories import event
from tokenops.analytics.did import Design
from tokenops.analytics.yield_ import GroupYield, NoEstimate, YieldReport, ai_yield, prorated_seat_cost
from tokenops.cli import app as cli
from tokenops.config import Settings
from tokenops.demo import DemoOrg, generate_org, load_demo
from tokenops.events import Person, SeatLicense, TimeEntry
from tokenops.store import DuckDBLedger, Ledger
from tokenops.web import create_app
from tokenops.web.app import key_store
from tokenops.web.users import user_store

_SUPPORT = "SELECT person_id FROM people WHERE team = 'support'"

# small enough for the hand-computed ledger below; the defaults ask for 5 adopters and 5 non-adopters
LOW = Design(
    end=date(2026, 10, 1),
    min_adopters=2,
    min_non_adopters=2,
    min_entries=2,
    min_baseline_entries=1,
    min_weeks=1,
    resamples=400,
)


def _at(day: date, hour: int = 9) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def _entry(entry_id: str, person: str, day: date, hours: str, tool: str | None = None) -> TimeEntry:
    return TimeEntry(entry_id, person, "ticket triage", _at(day), Decimal(hours), tool, "triage")


@pytest.fixture
def small() -> Iterator[Ledger]:
    """Two adopters and two non-adopters; every task took 2 h in the August baseline.

    In September the non-adopters' tasks take 2.2 h (a 10% trend that hits everyone) and the
    adopters' 1.1 h. Without AI an adopter's task would have taken 2.0 x 1.1 = 2.2 h, so each
    saves 1.1 h (the naive before/after says 0.9 h).
    """
    with DuckDBLedger(":memory:") as ledger:
        ledger.record_people(
            [
                Person("ana", "support", Decimal(50)),
                Person("ben", "support", Decimal(100)),
                Person("cy", "support", Decimal(60)),
                Person("dee", "support", Decimal(60)),
            ]
        )
        baseline, later = date(2026, 8, 24), date(2026, 9, 2)
        ledger.record_time_entries(
            [_entry(f"b-{p}", p, baseline, "2.0") for p in ("ana", "ben", "cy", "dee")]
            + [_entry("c1", "cy", later, "2.2"), _entry("c2", "dee", later, "2.2")]
            + [_entry("a1", "ana", later, "1.1"), _entry("a2", "ben", later, "1.1", tool="helpdesk")]
        )
        # ana adopts with her first model call (Sep 1); ben with his first time entry booked with an AI tool
        ledger.record_events([event("e1", ts=_at(date(2026, 9, 1), 10), user="ana", workflow="triage")])
        ledger.record_seats([SeatLicense("ben", "claude-team", Decimal(30), date(2026, 9, 1))])
        yield ledger


def test_hours_saved_net_of_the_common_trend_valued_against_calls_and_seats(small: Ledger) -> None:
    report = ai_yield(small, "all", LOW)
    assert (report.baseline_end, report.end) == (date(2026, 9, 1), date(2026, 10, 1))
    (row,) = report.rows
    assert isinstance(row, GroupYield)
    assert (row.adopters, row.entries) == (2, 2)
    assert row.hours_saved == Decimal("2.20")  # 2 x (2.0 x 1.1 - 1.1)
    assert row.naive_hours_saved == Decimal("1.80")  # 2 x (2.0 - 1.1): the trend hides 0.4 h
    assert row.value == Decimal("165.00")  # 1.1 h x $50 + 1.1 h x $100
    # resampling the two adopters: both ana ($110 of value), one each ($165) or both ben ($220)
    assert (row.value_low, row.value_high) == (Decimal("110.00"), Decimal("220.00"))
    assert (row.hours_saved_low, row.hours_saved_high) == (Decimal("2.20"), Decimal("2.20"))
    assert row.api_cost == Decimal("0.0075")  # gpt-4o, 1,000 in / 500 out
    assert row.seat_cost == Decimal(30)  # all of September
    assert row.cost == Decimal("30.0075")
    assert row.ratio == (Decimal(165) / Decimal("30.0075")).quantize(Decimal("0.0001"))  # 5.4986
    assert (row.ratio_low, row.ratio_high) == (Decimal("3.6658"), Decimal("7.3315"))  # 110 and 220 / 30.0075
    assert row.roi_pct == Decimal("449.86")  # (165 - 30.0075) / 30.0075 x 100
    assert row.cost_per_hour_saved == Decimal("13.64")  # 30.0075 / 2.2


def test_per_person_each_adopter_gets_their_own_value_and_cost(small: Ledger) -> None:
    rows = {r.group: r for r in ai_yield(small, "person", replace(LOW, min_entries=1)).rows}
    assert set(rows) == {"ana", "ben"}  # non-adopters are the control group, not rows
    ana, ben = rows["ana"], rows["ben"]
    assert isinstance(ana, GroupYield) and isinstance(ben, GroupYield)
    assert (ana.hours_saved, ana.value, ana.cost) == (Decimal("1.10"), Decimal("55.00"), Decimal("0.0075"))
    assert (ben.hours_saved, ben.value, ben.cost) == (Decimal("1.10"), Decimal("110.00"), Decimal(30))
    assert ben.unpriced_calls == 0 and ben.api_cost == 0


def test_too_few_people_is_reported_as_insufficient_data_not_a_number(small: Ledger) -> None:
    (row,) = ai_yield(small, "team", replace(LOW, min_non_adopters=5)).rows
    assert isinstance(row, NoEstimate)
    assert row.group == "support"
    assert row.reason == (
        "only 2 non-adopters have 1+ baseline entries and entries after; at least 5 are needed to tell AI from "
        "changes that hit everyone"
    )
    assert row.cost == Decimal("30.0075")  # the cost is known even when the benefit is not
    (row,) = ai_yield(small, "all", replace(LOW, min_adopters=3)).rows
    assert isinstance(row, NoEstimate)
    assert row.reason == "only 2 adopters have 1+ baseline entries and entries after adoption; at least 3 are needed"
    ana = ai_yield(small, "person", replace(LOW, min_weeks=2)).rows[0]
    assert isinstance(ana, NoEstimate)
    assert (ana.group, ana.reason) == ("ana", "entries after adoption in 1 weeks; at least 2 are needed")


def test_an_empty_ledger_says_why_there_is_no_yield() -> None:
    with DuckDBLedger(":memory:") as ledger:
        report = ai_yield(ledger)
    (row,) = report.rows
    assert isinstance(row, NoEstimate)
    assert row.reason == "nobody has used AI yet: no model calls and no time entries with an AI tool"
    with pytest.raises(ValueError, match="Unknown grouping 'planet'"):
        ai_yield(ledger, "planet")


def test_seat_licences_are_prorated_by_the_days_of_each_month() -> None:
    # September, October and the first 15 of 30 days of November
    assert prorated_seat_cost(Decimal(30), date(2026, 9, 1), None, date(2026, 8, 18), date(2026, 11, 16)) == 75
    # cancelled after 15 October (last paid day): all of September and 15 of October's 31 days
    cost = prorated_seat_cost(Decimal(30), date(2026, 9, 1), date(2026, 10, 15), date(2026, 8, 18), date(2026, 12, 1))
    assert cost == (Decimal(30) + Decimal(30) * 15 / 31).quantize(Decimal("1e-12"))
    assert prorated_seat_cost(Decimal(30), date(2026, 12, 1), None, date(2026, 9, 1), date(2026, 10, 1)) == 0


# --- the demo organisation knows the true hours saved -------------------------------------


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[DemoOrg, Path]:
    org = generate_org(7, scale=0.05)  # time entries do not depend on the usage volume
    path = tmp_path_factory.mktemp("demo") / "demo.duckdb"
    with DuckDBLedger(path) as ledger:
        load_demo(ledger, org)
    return org, path


@pytest.fixture(scope="module")
def demo_ledger(demo: tuple[DemoOrg, Path]) -> Iterator[Ledger]:
    with DuckDBLedger(demo[1], read_only=True) as ledger:
        yield ledger


def _estimates(report: YieldReport) -> dict[str, GroupYield]:
    return {r.group: r for r in report.rows if isinstance(r, GroupYield)}


def test_on_the_demo_the_interval_holds_the_true_hours_saved_and_the_naive_estimate_does_not(
    demo: tuple[DemoOrg, Path], demo_ledger: Ledger
) -> None:
    truth = demo[0].truth
    report = ai_yield(demo_ledger)
    assert report.baseline_end == truth.ai_start
    row = _estimates(report)["all"]
    assert row.adopters == len(truth.adopters)
    assert row.hours_saved_low <= Decimal(repr(truth.savings.total_hours)) <= row.hours_saved_high
    assert abs(row.hours_saved / Decimal(repr(truth.savings.total_hours)) - 1) < Decimal("0.05")
    assert row.value_low <= truth.savings.value_usd <= row.value_high
    # everyone's tasks drift 15% longer: before/after alone understates the saving, outside the interval
    assert row.naive_hours_saved < row.hours_saved_low
    assert row.ratio is not None and row.ratio_low is not None and row.ratio_low > 1
    assert "11 non-adopters form the control group" in report.notes


@pytest.mark.parametrize("by", ["team", "workflow"])
def test_on_the_demo_every_team_and_workflow_interval_holds_its_true_hours(
    demo: tuple[DemoOrg, Path], demo_ledger: Ledger, by: str
) -> None:
    savings = demo[0].truth.savings
    true_month = savings.by_team_month if by == "team" else savings.by_workflow_month
    estimates = _estimates(ai_yield(demo_ledger, by))
    assert set(estimates) == set(true_month)
    for group, row in estimates.items():
        true_hours = Decimal(repr(true_month[group] * 90 / 30))
        assert row.hours_saved_low <= true_hours <= row.hours_saved_high, group


def test_on_the_demo_per_person_intervals_cover_nearly_everyone(
    demo: tuple[DemoOrg, Path], demo_ledger: Ledger
) -> None:
    truth = demo[0].truth
    estimates = _estimates(ai_yield(demo_ledger, "person"))
    assert set(estimates) == set(truth.adopters)
    covered = [
        r.hours_saved_low <= Decimal(repr(truth.savings.by_person_month[p] * 3)) <= r.hours_saved_high
        for p, r in estimates.items()
    ]
    assert sum(covered) >= 0.9 * len(covered)


def test_the_same_seed_gives_the_same_intervals_and_another_seed_others(demo_ledger: Ledger) -> None:
    first, again = ai_yield(demo_ledger, design=Design(seed=3)), ai_yield(demo_ledger, design=Design(seed=3))
    other = ai_yield(demo_ledger, design=Design(seed=4))
    assert first == again
    assert _estimates(first)["all"].hours_saved == _estimates(other)["all"].hours_saved
    assert _estimates(first)["all"].hours_saved_low != _estimates(other)["all"].hours_saved_low


def test_api_yield_by_team_is_exact_json_and_explains_missing_estimates(
    demo_ledger: Ledger, small: Ledger, tmp_path: Path
) -> None:
    settings = Settings(data_dir=tmp_path / "state")
    _, admin_key = key_store(settings).create(user="ops", team=None, role="admin")
    headers = {"Authorization": f"Bearer {admin_key}"}
    with TestClient(create_app(settings, demo_ledger)) as client:
        assert client.get("/api/yield").status_code == 401
        body = client.get("/api/yield", params={"by": "team"}, headers=headers).json()
        expected = _estimates(ai_yield(demo_ledger, "team"))
        assert {r["group"]: Decimal(r["hours_saved"]) for r in body["rows"]} == {
            g: r.hours_saved for g, r in expected.items()
        }
        assert {r["group"]: Decimal(r["cost"]) for r in body["rows"]} == {g: r.cost for g, r in expected.items()}
        assert {r["status"] for r in body["rows"]} == {"estimate"}
        assert body["baseline_end"] == "2026-08-18"
        support = client.get("/api/yield", params={"by": "team", "team": "support"}, headers=headers).json()
        assert [r["group"] for r in support["rows"]] == ["support"]
        bad = client.get("/api/yield", params={"by": "planet"}, headers=headers)
        assert bad.status_code == 400 and "Unknown grouping 'planet'" in bad.json()["error"]["message"]
        assert client.get("/api/yield", params={"resamples": "0"}, headers=headers).status_code == 400
    user_store(settings).create("lea", "lead", "support", "correct horse battery")
    with TestClient(create_app(settings, demo_ledger)) as lead:
        signed_in = lead.post("/signin", data={"name": "lea", "password": "correct horse battery"})
        assert signed_in.status_code == 200
        assert [r["group"] for r in lead.get("/api/yield", params={"by": "team"}).json()["rows"]] == ["support"]
        people = {r["group"] for r in lead.get("/api/yield", params={"by": "person"}).json()["rows"]}
        assert people and people <= set(demo_ledger.query(_SUPPORT).column("person_id").to_pylist())
        assert lead.get("/api/yield").status_code == 403  # the organisation's total is not a team's
        assert lead.get("/api/yield", params={"by": "team", "team": "sales"}).status_code == 403
    with TestClient(create_app(settings, small)) as client:
        (row,) = client.get("/api/yield", headers=headers).json()["rows"]
        assert row["status"] == "insufficient data"
        # by default a baseline needs 3 entries per person and category; here there is 1
        assert row["reason"].startswith("only 0 non-adopters have 3+ baseline entries")
        assert row["cost"] == "2.0075"  # the period ends after the last entry: 2 of September's 30 days of seat


def test_cli_report_yield_prints_json_csv_and_a_table(demo: tuple[DemoOrg, Path], tmp_path: Path) -> None:
    runner = CliRunner()
    args = ["report", "yield", "--ledger", str(demo[1])]
    result = runner.invoke(cli, [*args, "--by", "workflow", "--format", "json"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert len(body["rows"]) == len(demo[0].truth.workflows)
    assert "seat licences are not per workflow: workflow costs are model calls only" in body["notes"]
    csv = runner.invoke(cli, [*args, "--format", "csv"])
    assert csv.exit_code == 0
    header, line = csv.output.splitlines()
    assert header.startswith("group,status,adopters,entries,hours_saved,hours_low,hours_high,naive_hours")
    assert line.startswith("all,estimate,49,")
    table = runner.invoke(cli, [*args, "--by", "team"], env={"COLUMNS": "160"})
    assert table.exit_code == 0
    assert "support" in table.output and "11 non-adopters form the control group" in table.output
    bad = runner.invoke(cli, [*args, "--by", "planet"])
    assert bad.exit_code == 2 and "Unknown grouping 'planet'" in bad.output
