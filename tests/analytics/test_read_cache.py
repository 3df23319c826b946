"""Query results are kept per ledger version: every write shows at once, the same read runs once."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from datetime import timedelta

import pyarrow as pa
import pytest

from tests.factories import T0, event
from tokenops.analytics.kpis import kpis
from tokenops.analytics.read_cache import CachedLedger, ReadCache, ledger_version, uncached
from tokenops.analytics.run_totals import has_run_totals
from tokenops.events import TaskRun
from tokenops.store import DuckDBLedger, Ledger

COST = "SELECT count(*) AS calls, sum(cost_total) AS cost FROM usage_events"


@pytest.fixture
def ledger() -> Iterator[DuckDBLedger]:
    with DuckDBLedger() as ledger:
        ledger.record_events([event("a1", team="support", task_run_id="run-1"), event("a2", team="sales")])
        yield ledger


def test_a_second_request_reads_the_first_ones_result(ledger: DuckDBLedger) -> None:
    cache = ReadCache()
    first = CachedLedger(ledger, cache).query(COST)
    second = CachedLedger(ledger, cache).query(COST)
    assert second is first  # the very same Arrow table, not a recount
    assert (cache.hits, cache.misses) == (1, 1)
    assert kpis(CachedLedger(ledger, cache), ["team"]).equals(kpis(ledger, ["team"]))


def test_new_calls_change_the_version_and_the_answer(ledger: DuckDBLedger) -> None:
    cache = ReadCache()
    assert CachedLedger(ledger, cache).query_rows(COST)[0]["calls"] == 2
    ledger.record_events([event("a3", team="support", ts=T0 + timedelta(hours=1))])
    assert CachedLedger(ledger, cache).query_rows(COST)[0]["calls"] == 3
    assert cache.misses == 2


def test_a_replaced_task_run_changes_the_version(ledger: DuckDBLedger) -> None:
    run = TaskRun(task_run_id="run-1", workflow="support_qa", status="running", started_at=T0)
    ledger.record_task_runs([run])
    before = ledger_version(ledger)
    ledger.record_task_runs([TaskRun(task_run_id="run-1", workflow="support_qa", status="completed", started_at=T0)])
    assert ledger.query_rows("SELECT count(*) AS n FROM task_runs")[0]["n"] == 1  # same count, new row
    assert ledger_version(ledger) != before
    done = "SELECT count(*) FILTER (WHERE status = 'completed') AS done FROM task_runs"
    cache = ReadCache()
    assert CachedLedger(ledger, cache).query_rows(done)[0]["done"] == 1


def test_one_request_reads_one_version_even_while_calls_arrive(ledger: DuckDBLedger) -> None:
    view = CachedLedger(ledger, ReadCache())
    assert view.query_rows(COST)[0]["calls"] == 2
    ledger.record_events([event("a3", ts=T0 + timedelta(hours=1))])
    assert view.query_rows(COST)[0]["calls"] == 2  # the page's sections agree with each other
    assert CachedLedger(ledger, view.cache).query_rows(COST)[0]["calls"] == 3


def test_results_expire_after_the_ttl(ledger: DuckDBLedger) -> None:
    cache = ReadCache(ttl=0.0)
    CachedLedger(ledger, cache).query(COST)
    CachedLedger(ledger, cache).query(COST)
    assert (cache.hits, cache.misses) == (0, 2)


def test_the_oldest_results_go_when_the_cache_is_full(ledger: DuckDBLedger) -> None:
    cache = ReadCache(max_bytes=1)
    view = CachedLedger(ledger, cache)
    view.query(COST)
    view.query(COST + " WHERE team = 'sales'")
    view.query(COST)
    assert cache.hits == 0


class _Slow(Ledger):
    """A backend without a cheap version whose queries wait for a signal."""

    def __init__(self) -> None:
        self.calls = 0
        self.release = threading.Event()

    def query(self, sql: str, params: Sequence[object] = ()) -> pa.Table:
        self.calls += 1
        self.release.wait(5)
        return pa.table({"n": [self.calls]})

    def append(self, table: str, data: pa.Table) -> int:
        raise NotImplementedError

    def close(self) -> None:
        pass


def test_a_backend_without_a_version_is_not_cached() -> None:
    slow = _Slow()
    slow.release.set()
    cache = ReadCache()
    assert ledger_version(slow) is None
    CachedLedger(slow, cache).query("SELECT 1")
    CachedLedger(slow, cache).query("SELECT 1")
    assert slow.calls == 2 and cache.misses == 0
    slow.keeps_rollups = True  # e.g. PostgreSQL: spend reports read its rollup tables through the view too
    assert CachedLedger(slow, cache).keeps_rollups


def test_the_same_query_running_for_two_requests_runs_once() -> None:
    slow = _Slow()
    cache = ReadCache()
    results: list[pa.Table] = []
    threads = [threading.Thread(target=lambda: results.append(cache.query(slow, (1,), "SELECT n", []))) for _ in "ab"]
    for t in threads:
        t.start()
    while not cache._running:  # the first request is inside the query
        threading.Event().wait(0.01)
    threading.Event().wait(0.05)
    slow.release.set()
    for t in threads:
        t.join(5)
    assert slow.calls == 1
    assert (cache.hits, cache.misses) == (0, 1)  # the second waited for the first, it was no later cache hit
    assert len(results) == 2 and results[0] is results[1]


def test_reports_that_check_the_backend_see_the_real_ledger(ledger: DuckDBLedger) -> None:
    view = CachedLedger(ledger, ReadCache())
    assert uncached(view) is ledger and uncached(ledger) is ledger
    assert has_run_totals(view) == has_run_totals(ledger)
    assert view.keeps_rollups == ledger.keeps_rollups
