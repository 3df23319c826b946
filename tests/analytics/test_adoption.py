from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from typer.testing import CliRunner

from tests.factories import T0, event
from tokenops.analytics.adoption import adoption, gini, top_share
from tokenops.analytics.spend import Filters
from tokenops.cli import app as cli
from tokenops.config import Settings
from tokenops.events import Person
from tokenops.store import DuckDBLedger, Ledger
from tokenops.web import create_app
from tokenops.web.app import key_store

GPT_4O = Decimal("0.0075")  # 1,000 in / 500 out
GPT_4O_MINI = Decimal("0.00045")


def _fill(ledger: Ledger) -> None:
    """ana 3 calls and ben 1 (support); cy 1 cheap call, dee none (sales); zed calls but is not on the roster."""
    ledger.record_people(
        [
            Person("ana", "support", Decimal(50)),
            Person("ben", "support", Decimal(50)),
            Person("cy", "sales", Decimal(70)),
            Person("dee", "sales", Decimal(70)),
        ]
    )
    ledger.record_events(
        [event(f"ana{i}", user="ana", ts=T0 + timedelta(hours=i)) for i in range(3)]
        + [
            event("ben1", user="ben"),
            event("cy1", user="cy", team="sales", model="gpt-4o-mini"),
            event("zed1", user="zed", team="sales"),
        ]
    )


@pytest.fixture
def ledger() -> Iterator[Ledger]:
    with DuckDBLedger(":memory:") as ledger:
        _fill(ledger)
        yield ledger


def test_gini_and_top_share_by_hand() -> None:
    # pairs |a - b| over all ordered pairs: 2 x (0 + 10 + 30 + 10 + 30 + 20) = 200; / (2 x 4^2 x mean 10) = 0.625
    assert gini([Decimal(0), Decimal(0), Decimal(10), Decimal(30)]) == Decimal("0.625")
    assert gini([Decimal(5)] * 4) == 0
    assert gini([Decimal(0), Decimal(0)]) is None  # nobody spent: not "perfectly equal"
    assert top_share([Decimal(v) for v in range(1, 8)]) == Decimal(25) / Decimal(28)  # (3+4+5+6+7) / 28
    assert top_share([Decimal(0)]) is None


def test_everyone_on_the_roster_counts_with_zero_and_callers_off_the_roster_count_too(ledger: Ledger) -> None:
    rows = {r.scope: r for r in adoption(ledger)}
    assert list(rows) == ["all", "sales", "support"]
    org = rows["all"]
    assert (org.people, org.active_people, org.people_without_use, org.calls) == (5, 4, 1, 6)
    assert org.cost == 5 * GPT_4O + GPT_4O_MINI  # 0.03795
    assert org.without_use == ("dee",)
    assert org.top_cost_share == 1  # five people: the top 5 are everyone
    # spend sorted 0, 0.00045, 0.0075, 0.0075, 0.0225: 2 x (2 x 0.00045 + 3 x 0.0075 + 4 x 0.0075 + 5 x 0.0225)
    # / (5 x 0.03795) - 6/5 = 0.3318 / 0.18975 - 1.2 = 0.54862
    assert org.cost_gini == Decimal("0.5486")
    assert org.calls_gini == Decimal("0.4000")  # calls 0,1,1,1,3: 2 x 24 / (5 x 6) - 6/5
    support = rows["support"]
    assert (support.people, support.people_without_use, support.cost) == (2, 0, 4 * GPT_4O)
    assert support.cost_gini == Decimal("0.2500")  # 2 x (0.0075 + 2 x 0.0225) / (2 x 0.03) - 3/2
    sales = rows["sales"]
    assert (sales.people, sales.active_people, sales.without_use) == (3, 2, ("dee",))  # zed counts in sales
    assert sales.cost_gini == Decimal("0.6289")  # 2 x (2 x 0.00045 + 3 x 0.0075) / (3 x 0.00795) - 4/3


def test_a_team_filter_keeps_that_teams_people_and_a_period_can_leave_people_idle(ledger: Ledger) -> None:
    rows = adoption(ledger, Filters(team="sales"))
    assert [r.scope for r in rows] == ["all", "sales"]
    assert rows[0].people == 3 and rows[0].cost == GPT_4O + GPT_4O_MINI
    later = adoption(ledger, Filters(start=T0 + timedelta(hours=1)))[0]  # only ana's 2nd and 3rd calls
    # zed is known only from his calls, none in this period: four people, one spends it all
    assert (later.people, later.active_people, later.people_without_use, later.calls) == (4, 1, 3, 2)
    assert later.cost_gini == Decimal("0.7500")  # (n - 1) / n


def test_api_and_cli_adoption(ledger: Ledger, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "state")
    _, admin_key = key_store(settings).create(user="ops", team=None, role="admin")
    with TestClient(create_app(settings, ledger)) as client:
        assert client.get("/api/adoption").status_code == 401
        body = client.get("/api/adoption", headers={"Authorization": f"Bearer {admin_key}"}).json()
    org = body["rows"][0]
    assert (org["scope"], org["cost"], org["cost_gini"], org["without_use"]) == ("all", "0.03795", "0.5486", ["dee"])
    path = tmp_path / "org.duckdb"
    with DuckDBLedger(path) as file_ledger:
        _fill(file_ledger)
    runner = CliRunner()
    result = runner.invoke(cli, ["report", "adoption", "--ledger", str(path), "--format", "json"])
    assert result.exit_code == 0, result.output
    assert [r["people_without_use"] for r in json.loads(result.output)] == [1, 1, 0]
    table = runner.invoke(cli, ["report", "adoption", "--ledger", str(path)], env={"COLUMNS": "200"})
    assert table.exit_code == 0 and "support" in table.output and "0.548600" in table.output
