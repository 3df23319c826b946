"""Outcomes: the CSV import, `POST /api/outcomes` and the SDK call, all linking to the same task runs."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

import tokenops
from tests.ingest.test_people import write_csv
from tokenops.config import Settings
from tokenops.events import TaskRun
from tokenops.ingest import Batch, get_importer, import_batches, run_import
from tokenops.sdk.runtime import Runtime
from tokenops.store import DuckDBLedger
from tokenops.web import create_app
from tokenops.web.app import key_store

HEADER = ["outcome_id", "ts", "outcome_type", "value", "task_run_ids", "workflow", "person", "team"]
OUTCOMES = [
    ["zd-1001", "2026-03-02T10:31:00Z", "ticket_resolved", "42.00", "run-1", "support_ticket", "", "support"],
    ["zd-1002", "2026-03-02T11:05:00+01:00", "ticket_resolved", "42", "run-2;run-3", "support_ticket", "", "support"],
    ["crm-77", "2026-03-03 09:00:00", "lead_qualified", "120.50", "run-4", "lead_scoring", "", "sales"],
    ["crm-78", "2026-03-04T09:00:00Z", "deal_won", "", "", "", "Chen@Example.com", "sales"],
    ["zd-1003", "2026-03-05T16:00:00Z", "refund_issued", "-15.25", "run-5", "support_ticket", "", "support"],
]
TOTAL_VALUE = Decimal("189.25")


def task_runs() -> list[TaskRun]:
    t0 = datetime(2026, 3, 2, 9, tzinfo=UTC)
    return [
        TaskRun("run-1", "support_ticket", t0, "completed", team="support"),
        TaskRun("run-2", "support_ticket", t0, "completed", team="support"),
        TaskRun("run-3", "support_ticket", t0, "failed", team="support"),
        TaskRun("run-4", "lead_scoring", t0, "completed", team="sales"),
        TaskRun("run-5", "support_ticket", t0, "completed", team="support"),
    ]


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[DuckDBLedger]:
    with DuckDBLedger(tmp_path / "ledger.duckdb") as store:
        import_batches([Batch(records=list(task_runs()), rows=5)], store, "test")  # runs imported from elsewhere
        yield store


def value_by_workflow(ledger: DuckDBLedger) -> dict[object, object]:
    rows = ledger.query_rows(
        "SELECT workflow, sum(value) AS v, count(*) AS n FROM (SELECT DISTINCT r.workflow, o.outcome_id, o.value "
        "FROM outcomes o JOIN outcome_task_runs l USING (outcome_id) JOIN task_runs r USING (task_run_id)) "
        "GROUP BY ALL ORDER BY 1"
    )
    return {r["workflow"]: (r["v"], r["n"]) for r in rows}


def test_outcomes_csv_links_task_runs_and_people_with_their_values(tmp_path: Path, ledger: DuckDBLedger) -> None:
    file = write_csv(tmp_path / "outcomes.csv", HEADER, OUTCOMES)
    report = run_import(get_importer("outcomes"), [file], ledger)
    assert (report.rows, report.imported, report.rejected) == (5, 5, 0)
    total = ledger.query_rows("SELECT sum(value) AS v, count(*) AS n, count(value) AS valued FROM outcomes")[0]
    assert (total["v"], total["n"], total["valued"]) == (TOTAL_VALUE, 5, 4)
    assert value_by_workflow(ledger) == {"lead_scoring": (Decimal("120.5"), 1), "support_ticket": (Decimal("68.75"), 3)}
    links = ledger.query_rows("SELECT task_run_id FROM outcome_task_runs WHERE outcome_id = 'zd-1002' ORDER BY 1")
    assert [r["task_run_id"] for r in links] == ["run-2", "run-3"]
    deal = ledger.query_rows("SELECT person_id, ts FROM outcomes WHERE outcome_id = 'crm-78'")[0]
    assert deal == {"person_id": "chen@example.com", "ts": datetime(2026, 3, 4, 9)}
    shifted = ledger.query_rows("SELECT ts FROM outcomes WHERE outcome_id IN ('zd-1002', 'crm-77') ORDER BY ts")
    assert [r["ts"] for r in shifted] == [datetime(2026, 3, 2, 10, 5), datetime(2026, 3, 3, 9)]  # zone-less: UTC


def test_outcomes_csv_bad_rows_named_good_kept_and_reimport_is_a_no_op(tmp_path: Path, ledger: DuckDBLedger) -> None:
    bad = [
        ["zd-2001", "2026-03-02T10:31:00Z", "ticket_resolved", "42.00", "", "support_ticket", "", "support"],  # 3
        ["zd-2002", "last tuesday", "ticket_resolved", "42", "run-1", "", "", ""],  # 4
        ["zd-2003", "2026-03-02T10:31:00Z", "ticket_resolved", "$42", "run-1", "", "", ""],  # 5
        ["zd-2004", "2026-03-02T10:31:00Z", "", "42", "run-1", "", "", ""],  # 6
        ["", "2026-03-02T10:31:00Z", "ticket_resolved", "42", "run-1", "", "", ""],  # 7
    ]
    file = write_csv(tmp_path / "outcomes.csv", HEADER, [OUTCOMES[0], *bad, *OUTCOMES[1:]])
    report = run_import(get_importer("outcomes"), [file], ledger)
    assert [str(e).removeprefix(f"{file}:") for e in report.errors] == [
        "3: task_run_ids and person are both empty; link the outcome to the task runs that produced it or to the "
        "person credited",
        "4: ts is 'last tuesday', expected an ISO 8601 time such as 2026-03-31T14:30:00Z",
        "5: value is '$42', expected an amount in USD such as 42.50",
        "6: outcome_type is empty; every row needs one",
        "7: outcome_id is empty; every row needs one",
    ]
    assert (report.imported, report.rejected) == (5, 5)
    again = run_import(get_importer("outcomes"), [file], ledger)
    assert (again.imported, again.duplicates) == (0, 5)
    assert ledger.query_rows("SELECT sum(value) AS v, count(*) AS n FROM outcomes") == [{"v": TOTAL_VALUE, "n": 5}]
    assert ledger.query_rows("SELECT count(*) AS n FROM outcome_task_runs") == [{"n": 5}]

    typo = write_csv(tmp_path / "typo.csv", [*HEADER[:3], "amount"], [OUTCOMES[0][:4]])
    (error,) = run_import(get_importer("outcomes"), [typo], ledger).errors
    assert (error.line, error.reason.split(";")[0]) == (1, "unknown column(s) 'amount'")


def test_the_sdk_outcome_call_links_to_imported_task_runs(tmp_path: Path, ledger: DuckDBLedger) -> None:
    runtime = Runtime(ledger, spool_dir=tmp_path / "spool")
    try:
        recorded = tokenops.outcome("ticket_resolved", Decimal("42"), task_run_ids=("run-1", "run-5"), runtime=runtime)
        tokenops.outcome("deal_won", Decimal("900"), person="chen@example.com", runtime=runtime)
        runtime.flush()
    finally:
        runtime.writer.close()  # type: ignore[union-attr]  # the ledger is the fixture's to close
    assert value_by_workflow(ledger) == {"support_ticket": (Decimal("42"), 1)}
    linked = ledger.query_rows(
        "SELECT l.task_run_id, r.status FROM outcome_task_runs l JOIN task_runs r USING (task_run_id) "
        "WHERE l.outcome_id = ? ORDER BY 1",
        [recorded.outcome_id],
    )
    assert linked == [{"task_run_id": "run-1", "status": "completed"}, {"task_run_id": "run-5", "status": "completed"}]
    assert ledger.query_rows("SELECT person_id FROM outcomes WHERE outcome_type = 'deal_won'") == [
        {"person_id": "chen@example.com"}
    ]


@pytest.fixture
def api(tmp_path: Path, ledger: DuckDBLedger) -> Iterator[tuple[TestClient, dict[str, str]]]:
    """The server, and keys: `support` (team-scoped) and `admin` (no team)."""
    settings = Settings(data_dir=tmp_path / "state")
    keys = key_store(settings)
    secrets = {"support": keys.create(user="ana", team="support")[1], "admin": keys.create(user="ops", team=None)[1]}
    with TestClient(create_app(settings, ledger)) as client:
        yield client, {name: f"Bearer {secret}" for name, secret in secrets.items()}


def item(outcome_id: str, **fields: object) -> dict[str, object]:
    body: dict[str, object] = {
        "outcome_id": outcome_id,
        "ts": "2026-03-02T10:31:00Z",
        "outcome_type": "ticket_resolved",
    }
    return {**body, "value": "42.00", "task_run_ids": ["run-1"], **fields}


def test_api_records_outcomes_once_and_counts_them(
    api: tuple[TestClient, dict[str, str]], ledger: DuckDBLedger
) -> None:
    client, keys = api
    body = {"outcomes": [item("zd-1"), item("zd-2", task_run_ids=["run-2", "run-3"], value=17.5)]}
    response = client.post("/api/outcomes", json=body, headers={"authorization": keys["support"]})
    assert response.status_code == 200, response.text
    assert response.json() == {"received": 2, "written": 2, "duplicates": 0}
    retry = client.post("/api/outcomes", json=body, headers={"authorization": keys["support"]})
    assert retry.json() == {"received": 2, "written": 0, "duplicates": 2}
    rows = ledger.query_rows("SELECT outcome_id, value, team FROM outcomes ORDER BY 1")
    assert rows == [  # the team-scoped key's team fills in the team
        {"outcome_id": "zd-1", "value": Decimal("42"), "team": "support"},
        {"outcome_id": "zd-2", "value": Decimal("17.5"), "team": "support"},
    ]
    assert value_by_workflow(ledger) == {"support_ticket": (Decimal("59.5"), 2)}


def test_api_refuses_requests_without_a_valid_key(api: tuple[TestClient, dict[str, str]], ledger: DuckDBLedger) -> None:
    client, _ = api
    body = {"outcomes": [item("zd-1")]}
    for headers in ({}, {"authorization": "Bearer tok-not-a-key"}, {"authorization": "Basic abc"}):
        response = client.post("/api/outcomes", json=body, headers=headers)
        assert response.status_code == 401
        assert "tokenops key" in response.json()["error"]["message"]
    assert ledger.query_rows("SELECT count(*) AS n FROM outcomes") == [{"n": 0}]


def test_a_team_key_may_only_post_its_own_teams_outcomes(
    api: tuple[TestClient, dict[str, str]], ledger: DuckDBLedger
) -> None:
    client, keys = api
    support = {"authorization": keys["support"]}
    other_team = client.post("/api/outcomes", json={"outcomes": [item("a"), item("b", team="sales")]}, headers=support)
    assert other_team.status_code == 403
    assert other_team.json()["error"]["message"] == (
        "outcomes[1].team is 'sales' but this key may only post for 'support'"
    )
    other_runs = client.post("/api/outcomes", json={"outcomes": [item("c", task_run_ids=["run-4"])]}, headers=support)
    assert other_runs.status_code == 403
    assert other_runs.json()["error"]["message"].startswith(
        "outcomes[0].task_run_ids: task run 'run-4' belongs to team 'sales'"
    )
    assert ledger.query_rows("SELECT count(*) AS n FROM outcomes") == [{"n": 0}]  # nothing of a refused request

    admin = {"authorization": keys["admin"]}
    body = {
        "outcomes": [item("d", team="sales", task_run_ids=["run-4"]), item("e", task_run_ids=[], person="Ana@x.io")]
    }
    response = client.post("/api/outcomes", json=body, headers=admin)
    assert response.json() == {"received": 2, "written": 2, "duplicates": 0}
    rows = ledger.query_rows("SELECT outcome_id, team, person_id FROM outcomes ORDER BY 1")
    assert rows == [
        {"outcome_id": "d", "team": "sales", "person_id": None},
        {"outcome_id": "e", "team": None, "person_id": "ana@x.io"},
    ]


def test_api_bad_bodies_get_4xx_naming_the_item_and_field(api: tuple[TestClient, dict[str, str]]) -> None:
    client, keys = api
    headers = {"authorization": keys["support"], "content-type": "application/json"}

    def post(body: object) -> tuple[int, dict[str, Any]]:
        response = client.post("/api/outcomes", json=body, headers=headers)
        return response.status_code, response.json()["error"]

    status, err = post({"outcomes": [item("a"), item("b", value="lots")]})
    assert status == 422
    assert err["message"] == "Invalid outcomes: outcomes[1].value: Input should be a valid decimal"
    assert err["problems"] == [
        {"index": 1, "field": "value", "message": "outcomes[1].value: Input should be a valid decimal"}
    ]
    status, err = post({"outcomes": [item("a", colour="red"), {"ts": "2026-03-02", "outcome_type": "x"}]})
    assert status == 422
    assert [(p["index"], p["field"]) for p in err["problems"]] == [(0, "colour"), (1, "outcome_id")]
    status, err = post({"outcomes": [item("a", ts="tuesday")]})
    assert (status, err["problems"][0]["field"]) == (422, "ts")
    status, err = post({"outcomes": [item("a", value="NaN")]})
    assert (status, err["problems"][0]["field"]) == (422, "value")
    status, err = post({"outcomes": [item("a", task_run_ids=[], person=None)]})
    assert (status, err["message"]) == (
        422,
        "outcomes[0].task_run_ids: empty and no person; link the outcome to something",
    )
    status, err = post({"outcomes": []})
    assert (status, err["problems"]) == (
        422,
        [{"index": None, "field": "outcomes", "message": err["problems"][0]["message"]}],
    )
    status, err = post({"events": []})
    assert status == 422 and "outcomes: Field required" in str(err["message"])
    response = client.post("/api/outcomes", content=b"{not json", headers=headers)
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["error"]["message"]
