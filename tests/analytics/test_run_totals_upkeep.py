"""The `task_run_totals` table DuckDB keeps equals a from-scratch grouping of the calls, whatever the writes (issue 7).

Appends small and large, re-imports, task runs replaced, writes that bypass `append`, a failed append and a
restart: after each, the table (once `sync_run_totals` says it is current) must be exactly what grouping every
call by run gives. `outcome_credit` likewise equals crediting every outcome through its links again.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from tokenops.analytics.run_totals import has_run_totals
from tokenops.demo import DemoOrg, generate_org
from tokenops.store import DuckDBLedger
from tokenops.store import duckdb as duckdb_module
from tokenops.store.migrations import RUN_PARTIALS, UNIFORM

_COLUMNS = (
    "task_run_id, first_ts, last_ts, last_error_ts, calls, unpriced_calls, errors, tokens, cost, max_iteration, "
    "workflow, team, user_id, customer, feature, mixed, status"
)


def _kept(ledger: DuckDBLedger) -> list[dict[str, object]]:
    return ledger.query_rows(f"SELECT {_COLUMNS} FROM task_run_totals ORDER BY task_run_id")


def _recount(ledger: DuckDBLedger) -> list[dict[str, object]]:
    partials = RUN_PARTIALS.format(uniform=UNIFORM, source="usage_events")
    return ledger.query_rows(
        f"SELECT p.*, t.status FROM ({partials}) p LEFT JOIN task_runs t USING (task_run_id) ORDER BY task_run_id"
    )


def _credit_kept(ledger: DuckDBLedger) -> list[dict[str, object]]:
    return ledger.query_rows("SELECT * FROM outcome_credit ORDER BY outcome_id, customer NULLS FIRST")


def _credit_recount(ledger: DuckDBLedger) -> list[dict[str, object]]:
    """Each outcome once per distinct customer of its linked runs (NULL: no link, or a run not recorded)."""
    return ledger.query_rows(
        """SELECT o.outcome_id, o.ts, o.value, c.customer FROM outcomes o
           LEFT JOIN (SELECT DISTINCT l.outcome_id, t.customer FROM outcome_task_runs l
                      LEFT JOIN task_runs t ON t.task_run_id = l.task_run_id) c ON c.outcome_id = o.outcome_id
           ORDER BY o.outcome_id, c.customer NULLS FIRST"""
    )


def _assert_current(ledger: DuckDBLedger) -> None:
    assert ledger.sync_run_totals()
    kept = _kept(ledger)
    assert kept == _recount(ledger)
    assert _credit_kept(ledger) == _credit_recount(ledger)


@pytest.fixture(scope="module")
def org() -> tuple[pa.Table, pa.Table]:
    demo = generate_org(7, days=30, baseline_days=7, scale=0.1)
    return demo.usage_events.sort_by("ts"), demo.task_runs


@pytest.fixture(scope="module")
def demo() -> DemoOrg:
    return generate_org(7, days=30, baseline_days=7, scale=0.1)


def _slices(table: pa.Table, parts: int) -> list[pa.Table]:
    step = table.num_rows // parts + 1
    return [table.slice(start, step) for start in range(0, table.num_rows, step)]


def test_the_table_is_kept_on_every_small_append(org: tuple[pa.Table, pa.Table]) -> None:
    events, runs = org
    with DuckDBLedger() as ledger:
        ledger.append("task_runs", runs.slice(0, runs.num_rows // 3))
        for piece in _slices(events, 9):
            ledger.append("usage_events", piece)
            state = ledger.query_rows("SELECT events FROM _run_totals_state")[0]
            assert state["events"] == ledger.query_rows("SELECT count(*) AS n FROM usage_events")[0]["n"]
        assert len(_kept(ledger)) > 100
        assert _kept(ledger) == _recount(ledger)  # folded in by the appends themselves
        assert ledger.append("usage_events", events.slice(100, 2000)) == 0  # a re-import changes nothing
        ledger.append("task_runs", runs)  # statuses arrive (and replace the first third)
        assert _kept(ledger) == _recount(ledger)
        _assert_current(ledger)


def test_a_bulk_load_is_caught_up_once_by_the_next_read(
    org: tuple[pa.Table, pa.Table], monkeypatch: pytest.MonkeyPatch
) -> None:
    events, runs = org
    monkeypatch.setattr(duckdb_module, "EAGER_ROWS", 500)
    with DuckDBLedger() as ledger:
        ledger.append("task_runs", runs)
        pieces = _slices(events, 4)  # each bigger than EAGER_ROWS: left for later
        for piece in pieces[:2]:
            ledger.append("usage_events", piece)
        assert ledger.query_rows("SELECT count(*) AS n FROM task_run_totals")[0]["n"] == 0
        assert has_run_totals(ledger)  # a report's first question catches up
        assert _kept(ledger) == _recount(ledger)
        ledger.append("usage_events", pieces[2])  # behind again: merged into the stored runs, not rebuilt
        ledger.append("usage_events", pieces[3].slice(0, 10))  # small, but the totals are behind: waits too
        _assert_current(ledger)
        ledger.append("usage_events", pieces[3])  # the rest, with 10 re-imported rows
        _assert_current(ledger)


def test_runs_cut_across_appends_merge_exactly(org: tuple[pa.Table, pa.Table]) -> None:
    """A run whose calls arrive in several appends: sums add up, and it is mixed when the parts disagree."""
    events, _ = org
    run = events.filter(pc.equal(events["task_run_id"], events["task_run_id"][0]))
    first = run.slice(0, 1)

    def call(i: int, **columns: object) -> pa.Table:
        row = {**first.to_pylist()[0], "request_id": f"extra-{i}", **columns}
        return pa.Table.from_pylist([row], schema=events.schema)

    with DuckDBLedger() as ledger:
        ledger.append("usage_events", events)
        ledger.append("usage_events", call(1))  # same dimensions: stays uniform
        ledger.append("usage_events", call(2, cost_total=None, unpriced=True, status="error", iteration=99))
        ledger.append("usage_events", call(3, task_run_id="new-run", team=None, workflow=None))
        ledger.append("usage_events", call(4, task_run_id="new-run", team=None, workflow=None, cost_total=None))
        _assert_current(ledger)
        kept = {r["task_run_id"]: r for r in _kept(ledger)}
        assert not kept[first["task_run_id"][0].as_py()]["mixed"]
        assert not kept["new-run"]["mixed"] and kept["new-run"]["team"] is None
        ledger.append("usage_events", call(5, team="another team"))  # now the run's team varies
        ledger.append("usage_events", call(6, task_run_id="new-run", feature="x"))  # NULL then a value: varies
        _assert_current(ledger)
        kept = {r["task_run_id"]: r for r in _kept(ledger)}
        assert kept[first["task_run_id"][0].as_py()]["mixed"] and kept["new-run"]["mixed"]
        ledger.append("usage_events", call(7))  # a mixed run stays mixed, whichever value comes next
        ledger.append("usage_events", call(8, team="another team"))
        _assert_current(ledger)


def test_writes_that_bypass_append_are_caught_up(org: tuple[pa.Table, pa.Table]) -> None:
    events, runs = org
    with DuckDBLedger() as ledger:
        ledger.append("usage_events", events.slice(0, 3000))
        conn = ledger._conn  # a bulk SQL load, as bench/analytics.py does
        conn.register("_more", events.slice(3000))
        conn.execute("INSERT INTO usage_events SELECT * FROM _more")
        conn.register("_runs", runs)
        conn.execute("INSERT INTO task_runs SELECT * FROM _runs")
        _assert_current(ledger)
        conn.execute("UPDATE task_runs SET status = 'failed' WHERE task_run_id IN (SELECT task_run_id FROM _runs)")
        conn.execute("INSERT INTO task_runs SELECT * FROM _runs LIMIT 0")  # an UPDATE alone moves no count
        conn.execute("DELETE FROM usage_events WHERE rowid % 50 = 0")  # no longer a plain extension: rebuilt
        conn.execute("INSERT INTO task_runs SELECT * REPLACE ('x-' || task_run_id AS task_run_id) FROM _runs")
        _assert_current(ledger)


def test_a_failed_append_leaves_the_table_as_it_was(
    org: tuple[pa.Table, pa.Table], monkeypatch: pytest.MonkeyPatch
) -> None:
    events, runs = org
    with DuckDBLedger() as ledger:
        ledger.append("task_runs", runs)
        ledger.append("usage_events", events.slice(0, 3000))
        before = _kept(ledger)

        def crash(*_: object) -> None:
            raise RuntimeError("killed mid-append")

        monkeypatch.setattr(duckdb_module, "_merge_runs", crash)
        with pytest.raises(RuntimeError):
            ledger.append("usage_events", events.slice(3000, 1000))
        monkeypatch.undo()
        assert _kept(ledger) == before
        assert ledger.query_rows("SELECT count(*) AS n FROM usage_events")[0]["n"] == 3000
        ledger.append("usage_events", events.slice(3000))
        _assert_current(ledger)


def test_a_restart_catches_up_and_a_read_only_ledger_reads_the_calls(
    tmp_path: Path, org: tuple[pa.Table, pa.Table], monkeypatch: pytest.MonkeyPatch
) -> None:
    events, runs = org
    path = tmp_path / "ledger.duckdb"
    with DuckDBLedger(path) as ledger:
        ledger.append("task_runs", runs)
        ledger.append("usage_events", events.slice(0, 2000))
    monkeypatch.setattr(duckdb_module, "EAGER_ROWS", 10)
    with DuckDBLedger(path) as ledger:
        ledger.append("usage_events", events.slice(2000))  # a bulk load, left for later; then the process ends
    with DuckDBLedger(path, read_only=True) as reader:
        assert not reader.sync_run_totals()  # behind, and this connection cannot write
        assert not has_run_totals(reader)
    with DuckDBLedger(path) as ledger:  # opening catches up
        state = ledger.query_rows("SELECT events FROM _run_totals_state")[0]
        assert state["events"] == events.num_rows
        _assert_current(ledger)
    with DuckDBLedger(path, read_only=True) as reader:
        assert has_run_totals(reader)


def _more_links(demo: DemoOrg) -> pa.Table:
    """Second and third links for some outcomes (to runs of other customers, or to runs never recorded)."""
    links, runs = demo.outcome_task_runs.to_pylist(), demo.task_runs.to_pylist()
    extra = [{"outcome_id": link["outcome_id"], "task_run_id": runs[i * 7 % len(runs)]["task_run_id"]}
             for i, link in enumerate(links[::3])]  # fmt: skip
    extra += [{"outcome_id": link["outcome_id"], "task_run_id": f"unrecorded-{i}"} for i, link in enumerate(links[::5])]
    return pa.Table.from_pylist(extra, schema=demo.outcome_task_runs.schema)


def test_outcome_credit_is_kept_on_every_small_append(demo: DemoOrg) -> None:
    outcomes, links, runs = demo.outcomes, demo.outcome_task_runs, demo.task_runs
    with DuckDBLedger() as ledger:
        ledger.append("usage_events", demo.usage_events)
        ledger.append("outcomes", outcomes.slice(0, 300))  # before their links: credited to no customer
        assert _credit_kept(ledger) == _credit_recount(ledger)
        ledger.append("outcome_task_runs", links.slice(100, 400))  # links to outcomes not recorded yet, too
        ledger.append("task_runs", runs.slice(0, runs.num_rows // 2))  # half the runs: their customers now count
        ledger.append("outcomes", outcomes.slice(300))
        ledger.append("outcome_task_runs", links)  # the rest, re-importing the first 400
        ledger.append("outcome_task_runs", _more_links(demo))  # outcomes reaching several customers
        assert _credit_kept(ledger) == _credit_recount(ledger)  # kept by the appends themselves
        ledger.append("task_runs", runs)  # the other half arrive
        changed = runs.set_column(
            runs.schema.get_field_index("customer"), "customer", pa.array(["moved"] * runs.num_rows, pa.string())
        )
        ledger.append("task_runs", changed.slice(0, 40))  # some runs change customer
        ledger.append("task_runs", runs.slice(40, 40))  # others are replaced as they were
        kept = _credit_kept(ledger)
        assert kept == _credit_recount(ledger)
        assert {r["customer"] for r in kept} > {None, "moved"}
        state = ledger.query_rows("SELECT outcomes, links FROM _run_totals_state")[0]
        counts = ledger.query_rows(
            "SELECT (SELECT count(*) FROM outcomes) AS outcomes, (SELECT count(*) FROM outcome_task_runs) AS links"
        )[0]
        assert state == counts  # current without a catch-up
        _assert_current(ledger)


def test_outcome_credit_catches_up_after_bulk_and_bypassing_writes(
    demo: DemoOrg, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(duckdb_module, "EAGER_ROWS", 100)
    with DuckDBLedger() as ledger:
        ledger.append("task_runs", demo.task_runs)
        ledger.append("outcomes", demo.outcomes)  # bigger than EAGER_ROWS: left for the next read
        ledger.append("outcome_task_runs", demo.outcome_task_runs.slice(0, 50))
        assert ledger.query_rows("SELECT count(*) AS n FROM outcome_credit")[0]["n"] < demo.outcomes.num_rows
        _assert_current(ledger)
        conn = ledger._conn  # bulk SQL, as bench/analytics.py loads its outcomes
        conn.register("_links", demo.outcome_task_runs.slice(50))
        conn.execute("INSERT INTO outcome_task_runs SELECT * FROM _links")
        _assert_current(ledger)
        conn.execute("UPDATE task_runs SET customer = 'bulk' WHERE task_run_id IN (SELECT task_run_id FROM _links)")
        conn.execute("INSERT INTO task_runs SELECT * FROM task_runs LIMIT 0")  # an UPDATE alone moves no count
        conn.execute("DELETE FROM outcomes WHERE rowid % 9 = 0")
        _assert_current(ledger)
        ledger.append("outcome_task_runs", _more_links(demo).slice(0, 20))  # behind no more: folded again
        _assert_current(ledger)


def test_a_ledger_from_an_earlier_m005_is_rebuilt_on_open(tmp_path: Path, demo: DemoOrg) -> None:
    path = tmp_path / "ledger.duckdb"
    with DuckDBLedger(path) as ledger:
        for name in ("task_runs", "usage_events", "outcomes", "outcome_task_runs"):
            ledger.append(name, getattr(demo, name))
        conn = ledger._conn  # m005 as first written: no outcome credit, a three-column watermark
        conn.execute("DROP TABLE outcome_credit")
        conn.execute("DROP TABLE _run_totals_state")
        conn.execute("CREATE TABLE _run_totals_state (events BIGINT, task_runs BIGINT, task_runs_rowid BIGINT)")
        conn.execute("INSERT INTO _run_totals_state VALUES (0, -1, -1)")
    with DuckDBLedger(path) as ledger:
        assert ledger.query_rows("SELECT count(*) AS n FROM outcome_credit")[0]["n"] >= demo.outcomes.num_rows
        _assert_current(ledger)
