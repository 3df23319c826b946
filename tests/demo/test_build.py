from __future__ import annotations

from datetime import date

import pyarrow.compute as pc
import pytest

from tokenops.demo import DemoOrg, generate_org, load_demo
from tokenops.store import DuckDBLedger


def test_loading_twice_writes_nothing_the_second_time(org: DemoOrg) -> None:
    seen: list[str] = []
    with DuckDBLedger(":memory:") as ledger:
        first = load_demo(ledger, org, progress=seen.append)
        assert first == {name: table.num_rows for name, table in org.tables().items()}
        assert seen == list(org.tables())
        second = load_demo(ledger, org)
        assert second == {name: 0 for name in org.tables()}
        for name, table in org.tables().items():
            assert ledger.query_rows(f"SELECT count(*) AS n FROM {name}")[0]["n"] == table.num_rows
        total = ledger.query_rows("SELECT sum(cost_total) AS c FROM usage_events")[0]["c"]
        assert total == org.truth.total_cost


def test_idle_seats_belong_to_people_who_never_call_a_model(org: DemoOrg) -> None:
    idle = org.truth.idle_seats
    assert idle
    users = set(org.usage_events.column("user_id").to_pylist())
    seats = {(s["person_id"], s["tool"]) for s in org.seat_licenses.to_pylist()}
    for seat in idle:
        assert seat.person_id in org.truth.non_adopters
        assert seat.person_id not in users
        assert (seat.person_id, seat.tool) in seats
    prices = {s["tool"]: s["monthly_cost"] for s in org.seat_licenses.to_pylist()}
    assert prices["github-copilot"] == 19 and prices["chatgpt-team"] == 30


def test_incidents_are_listed_with_their_windows(org: DemoOrg) -> None:
    kinds = {i.kind: i for i in org.truth.incidents}
    assert set(kinds) == {"runaway_loop", "prompt_change", "user_spike"}
    for incident in org.truth.incidents:
        assert org.truth.ai_start <= incident.start.date() <= org.truth.end
        assert incident.end is None or incident.end > incident.start
        assert incident.calls > 0 and incident.cost > 0


def test_other_windows_get_other_ids_and_reject_bad_arguments(org: DemoOrg) -> None:
    short = generate_org(7, end=date(2026, 3, 1), days=20, baseline_days=5, scale=0.05)
    assert short.truth.ai_start == date(2026, 2, 10)
    assert pc.max(short.usage_events.column("ts")).as_py().date() <= date(2026, 3, 1)
    assert short.truth.baseline_start == date(2026, 2, 5)
    namespace = {t.column(0)[0].as_py().rsplit("-", 1)[0] for t in (short.usage_events, org.usage_events)}
    assert len(namespace) == 2
    with pytest.raises(ValueError, match="14 days"):
        generate_org(7, days=10)
    with pytest.raises(ValueError, match="scale"):
        generate_org(7, scale=0)
