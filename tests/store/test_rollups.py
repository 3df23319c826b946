"""Spend rollups equal the events grouped, whatever was re-sent or written at once; reports read them unchanged."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from multiprocessing.synchronize import Event

import psycopg
import pyarrow as pa
import pytest

from tests.factories import T0, event
from tests.store.conftest import fresh_database
from tokenops.analytics import spend
from tokenops.demo import bulk_events, generate_org, load_demo
from tokenops.store import DuckDBLedger, Ledger
from tokenops.store.migrations import ROLLUP_KEY, ROLLUP_SUMS, ROLLUPS, rollup_select
from tokenops.store.postgres import PostgresLedger


class _DuckDBWithRollups(DuckDBLedger):
    """DuckDB reading its rollup views, so the rollup form of each query runs against the events form."""

    keeps_rollups = True


class _PostgresEventsOnly(PostgresLedger):
    """PostgreSQL answering every report from the events (it must not append: it would skip the rollups)."""

    keeps_rollups = False


def _mismatches(ledger: Ledger) -> dict[str, int]:
    """Per rollup, rows that differ from a fresh GROUP BY over the events (both directions)."""
    out = {}
    for name, bucket in ROLLUPS.items():
        fresh = f"({rollup_select(bucket, 'usage_events')}) AS g"
        cols = ", ".join((*ROLLUP_KEY, *ROLLUP_SUMS))
        sql = (
            f"SELECT count(*) AS n FROM ((SELECT {cols} FROM {name} EXCEPT ALL SELECT {cols} FROM {fresh}) "
            f"UNION ALL (SELECT {cols} FROM {fresh} EXCEPT ALL SELECT {cols} FROM {name})) AS d"
        )
        out[name] = int(str(ledger.query_rows(sql)[0]["n"]))
    return out


def _totals(ledger: Ledger) -> dict[str, object]:
    sums = ledger.query_rows("SELECT count(*) AS calls, sum(cost_total) AS cost FROM usage_events")[0]
    for name in ROLLUPS:
        row = ledger.query_rows(f"SELECT sum(calls) AS calls, sum(cost) AS cost FROM {name}")[0]
        assert (row["calls"], row["cost"]) == (sums["calls"], sums["cost"]), name
    return sums


@pytest.fixture
def pg(pg_dsn: str) -> Iterator[PostgresLedger]:
    with PostgresLedger(pg_dsn) as opened:
        yield opened


def test_rollups_equal_the_events_grouped_after_appends_and_re_appends(pg: PostgresLedger) -> None:
    batches = list(bulk_events(9_000, seed=1, batch_size=3_000))
    assert sum(pg.append("usage_events", b) for b in batches) == 9_000
    assert int(str(pg.query_rows("SELECT count(*) AS n FROM usage_hourly")[0]["n"])) > 0
    assert _mismatches(pg) == {name: 0 for name in ROLLUPS}
    before = _totals(pg)
    # a replay (every key exists), a replay with new rows mixed in, and keys repeated within one batch
    assert pg.append("usage_events", batches[0]) == 0
    extra = next(bulk_events(500, seed=2, batch_size=500))
    assert pg.append("usage_events", pa.concat_tables([batches[1].slice(0, 700), extra])) == 500
    twice = next(bulk_events(300, seed=3, batch_size=300))
    assert pg.append("usage_events", pa.concat_tables([twice, twice.slice(0, 100)])) == 300
    after = _totals(pg)
    assert after["calls"] == int(str(before["calls"])) + 800
    assert _mismatches(pg) == {name: 0 for name in ROLLUPS}


def test_rollup_keys_keep_null_empty_and_unpriced_apart(pg: PostgresLedger) -> None:
    hour = T0.replace(minute=0)
    events = [
        event("a", team=None, user=None, ts=hour),
        event("b", team="", user="", ts=hour + timedelta(minutes=5)),
        event("c", team=None, user=None, ts=hour + timedelta(minutes=59)),
        event("d", model="no-such-model", ts=hour + timedelta(hours=1)),
    ]
    assert pg.record_events(events) == 4
    assert pg.record_events(events[:2]) == 0
    rows = pg.query_rows(
        "SELECT ts, model, team, calls, unpriced_calls, unpriced_tokens FROM usage_hourly ORDER BY 1, 3"
    )
    naive = hour.replace(tzinfo=None)
    assert [(r["ts"], r["team"], r["calls"], r["unpriced_calls"], r["unpriced_tokens"]) for r in rows] == [
        (naive, "", 1, 0, 0),
        (naive, None, 2, 0, 0),
        (naive + timedelta(hours=1), "support", 1, 1, 1_500),
    ]
    assert _mismatches(pg) == {name: 0 for name in ROLLUPS}


def _writer(dsn: str, start: Event, seeds: list[int], out: multiprocessing.Queue[int]) -> None:
    """One replica: waits for the start signal, appends every batch of `seeds`, reports new rows."""
    batches = [b for seed in seeds for b in bulk_events(4_000, seed=seed, batch_size=1_000, days=2)]
    with PostgresLedger(dsn, migrate=False) as ledger:
        start.wait()
        out.put(sum(ledger.append("usage_events", b) for b in batches))


def test_two_concurrent_writers_count_every_event_once_in_the_rollups(pg_dsn: str) -> None:
    PostgresLedger(pg_dsn).close()
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    # both write seed 1 (the same events, racing for the same keys) and one seed of their own; two days of
    # events in 1,000-row batches, so both writers keep adding to the same hourly rows
    procs = [ctx.Process(target=_writer, args=(pg_dsn, start, seeds, out)) for seeds in ([1, 2], [1, 3])]
    for p in procs:
        p.start()
    start.set()
    new = [out.get(timeout=180) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    with PostgresLedger(pg_dsn, migrate=False) as ledger:
        assert sum(new) == _totals(ledger)["calls"] == 12_000
        assert _mismatches(ledger) == {name: 0 for name in ROLLUPS}


def test_the_migration_backfills_rollups_from_existing_events(pg_dsn: str) -> None:
    with PostgresLedger(pg_dsn) as ledger:
        ledger.append("usage_events", next(bulk_events(2_000, seed=5, batch_size=2_000)))
    with psycopg.connect(pg_dsn, autocommit=True) as conn:  # back to a ledger from before m004
        conn.execute("DROP TABLE usage_hourly, usage_daily")
        conn.execute("DELETE FROM _migrations WHERE name = 'm004_usage_rollups'")
    with PostgresLedger(pg_dsn) as ledger:
        assert int(str(ledger.query_rows("SELECT count(*) AS n FROM usage_daily")[0]["n"])) > 0
        assert _mismatches(ledger) == {name: 0 for name in ROLLUPS}
        _totals(ledger)


# --- reports: through a rollup, identical to the events ------------------------------------------------------------

_HOUR = datetime(2026, 10, 15, 13, tzinfo=UTC)
_DAY = datetime(2026, 10, 1, tzinfo=UTC)
CASES: dict[str, tuple[list[str], str | None, spend.Filters, str]] = {
    # name: dimensions, grain, filters, the source PostgreSQL reads
    "total": ([], None, spend.Filters(), "usage_daily"),
    "by day": ([], "day", spend.Filters(), "usage_daily"),
    "team by day": (["team"], "day", spend.Filters(), "usage_daily"),
    "team by week": (["team"], "week", spend.Filters(start=_DAY), "usage_daily"),
    "model by month, one team": (["model"], "month", spend.Filters(team="support"), "usage_daily"),
    "by hour": ([], "hour", spend.Filters(), "usage_hourly"),
    "user by hour, a day": (["user"], "hour", spend.Filters(start=_DAY, end=_DAY + timedelta(days=1)), "usage_hourly"),
    "all five": (["team", "workflow", "model", "user", "provider"], None, spend.Filters(end=_DAY), "usage_daily"),
    "workflow from 13:00": (["workflow"], None, spend.Filters(start=_HOUR, workflow="refund_agent"), "usage_hourly"),
    "model, one user": (["model"], "day", spend.Filters(user="adele.silva@acme.example", start=_DAY), "usage_daily"),
    "from 13:30": (["team"], None, spend.Filters(start=_HOUR + timedelta(minutes=30)), "usage_events"),
    "by customer": (["customer"], None, spend.Filters(), "usage_events"),
    "one customer": (["team"], "day", spend.Filters(customer="cus-0001"), "usage_events"),
    "by feature": (["feature"], "day", spend.Filters(), "usage_events"),
    "by status": (["status"], None, spend.Filters(), "usage_events"),
}


def _extras() -> list[object]:
    """Events the demo lacks: no team or user, an empty team, an unknown (unpriced) model."""
    at = datetime(2026, 10, 20, 9, 15, tzinfo=UTC)
    return [
        event("x-null", team=None, user=None, workflow=None, ts=at),
        event("x-empty", team="", user="", ts=at + timedelta(minutes=1)),
        event("x-unpriced", model="no-such-model", ts=at + timedelta(hours=2)),
    ]


@pytest.fixture(scope="module")
def demo() -> Iterator[dict[str, Ledger]]:
    """The small demo organisation in DuckDB (views) and PostgreSQL (tables), each read both ways."""
    org = generate_org(7, scale=0.25)
    with (
        fresh_database() as dsn,
        _DuckDBWithRollups(":memory:") as duck,
        PostgresLedger(dsn) as pg,
        _PostgresEventsOnly(dsn, migrate=False) as pg_events,
    ):
        for ledger in (duck, pg):
            load_demo(ledger, org)
            ledger.record_events(_extras())  # type: ignore[arg-type]
        yield {"duckdb": duck, "postgres": pg, "postgres events": pg_events}


Run = Callable[[Ledger], pa.Table]


def _run(case: str) -> Run:
    dimensions, grain, filters, _ = CASES[case]
    return lambda ledger: spend.spend_by(ledger, dimensions, grain=grain, filters=filters)


@pytest.mark.parametrize("case", CASES)
def test_spend_through_a_rollup_equals_spend_from_the_events(demo: dict[str, Ledger], case: str) -> None:
    dimensions, grain, filters, source = CASES[case]
    duck, pg, pg_events = demo["duckdb"], demo["postgres"], demo["postgres events"]
    assert spend.spend_source(pg, dimensions, grain=grain, filters=filters) == source
    assert spend.spend_source(pg_events, dimensions, grain=grain, filters=filters) == "usage_events"
    via_events = _run(case)(pg_events)
    assert via_events.num_rows > 0
    assert _run(case)(pg) == via_events
    # DuckDB: the same rollup SQL over its views, against DuckDB's own events query
    assert spend.spend_source(duck, dimensions, grain=grain, filters=filters) == source
    assert _run(case)(duck) == _run(case)(_EventsView(duck))
    assert _run(case)(duck).to_pylist() == via_events.to_pylist()


class _EventsView(Ledger):
    """Another ledger's queries, with rollups turned off: spend reads its events."""

    def __init__(self, inner: Ledger) -> None:
        self._inner = inner

    def append(self, table: str, data: pa.Table) -> int:
        raise AssertionError("read-only")

    def query(self, sql: str, params: Sequence[object] = ()) -> pa.Table:
        return self._inner.query(sql, params)

    def close(self) -> None:
        pass


def test_ledgers_without_rollup_tables_read_the_events() -> None:
    with DuckDBLedger(":memory:") as duck:
        assert not duck.keeps_rollups
        assert spend.spend_source(duck, ["team"], grain="day") == "usage_events"
