"""Month-end forecasts: a hand-made series with a known answer, a short history, and a back-test on the demo."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path

import orjson
import pytest
from starlette.testclient import TestClient
from typer.testing import CliRunner

from tokenops.analytics.forecast import month_end, month_window
from tokenops.cli import app as cli
from tokenops.config import Settings
from tokenops.demo import generate_org, load_demo
from tokenops.events import Attribution, Cost, TokenUsage, UsageEvent
from tokenops.store import DuckDBLedger
from tokenops.web import create_app
from tokenops.web.users import user_store

AS_OF = datetime(2026, 10, 15, tzinfo=UTC)  # a Thursday


def spend(request_id: str, day: date, usd: str, team: str = "support") -> UsageEvent:
    """One call on `day` costing exactly `usd`."""
    return UsageEvent(
        request_id=request_id,
        ts=datetime.combine(day, time(11), tzinfo=UTC),
        provider="openai",
        model="gpt-4o",
        usage=TokenUsage(input_tokens=100_000),
        cost=Cost(Decimal(usd), Decimal(0), Decimal(0), Decimal(0)),
        price_source="genai-prices:openai/gpt-4o",
        attribution=Attribution(team=team, workflow="support_ticket"),
    )


def weekly_ledger(days: int) -> DuckDBLedger:
    """Support spends $1.00 on each working day and $0.25 on each weekend day, for `days` days before AS_OF."""
    store = DuckDBLedger(":memory:")
    calls = []
    for i in range(1, days + 1):
        day = AS_OF.date() - timedelta(days=i)
        calls.append(spend(f"c{i}", day, "1.00" if day.weekday() < 5 else "0.25"))
    store.record_events(calls)
    return store


def test_weekly_series_forecast_is_exact() -> None:
    store = weekly_ledger(56)

    (support,) = month_end(store, "team", as_of=AS_OF)

    # Oct 1-14: 10 working days + 4 weekend days = $11.00; Oct 15-31: 12 working + 5 weekend days = $13.25
    assert support.actual_to_date == Decimal("11.00")
    assert (support.forecast, support.low, support.high) == (Decimal("24.25"), Decimal("24.25"), Decimal("24.25"))
    assert support.month == date(2026, 10, 1) and support.history_days == 56


def test_too_little_history_says_so_and_gives_a_run_rate() -> None:
    store = weekly_ledger(5)  # Oct 10-14: Sat, Sun, Mon, Tue, Wed

    (support,) = month_end(store, "team", as_of=AS_OF)

    assert support.low is None and support.high is None
    assert "only 5 days of history" in support.note
    # $3.50 over 5 days = $0.70 a day, for 17 more days
    assert support.forecast == Decimal("3.50") + Decimal("11.90")


def test_month_window_is_the_last_five_and_first_three_days() -> None:
    assert [d for d in range(1, 32) if month_window(date(2026, 10, d))] == [1, 2, 3, 27, 28, 29, 30, 31]


@pytest.fixture(scope="module")
def demo() -> Iterator[DuckDBLedger]:
    store = DuckDBLedger(":memory:")
    load_demo(store, generate_org(7, scale=0.25))
    yield store
    store.close()


@pytest.mark.parametrize("by", ["team", "workflow"])
def test_backtest_from_mid_october_covers_most_month_ends(demo: DuckDBLedger, by: str) -> None:
    forecasts = month_end(demo, by, as_of=AS_OF)
    actual = {
        r["key"]: Decimal(str(r["cost"]))
        for r in demo.query_rows(
            f"SELECT {by} AS key, sum(cost_total) AS cost FROM usage_events "
            "WHERE ts >= '2026-10-01' AND ts < '2026-11-01' GROUP BY 1"
        )
    }

    inside = [f.key for f in forecasts if f.low is not None and f.high is not None and f.low <= actual[f.key] <= f.high]
    assert len(forecasts) == len(actual)
    assert len(inside) / len(forecasts) > 0.6, inside
    assert all(f.low is not None and f.low <= f.forecast <= f.high for f in forecasts if f.high is not None)


def test_api_forecast_answers_json(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "state")
    user_store(settings).create("boss", "admin", None, "correct horse battery")
    store = weekly_ledger(56)
    with TestClient(create_app(settings, store)) as client:
        anonymous = client.get("/api/forecast")
        client.post("/signin", data={"name": "boss", "password": "correct horse battery"})
        body = client.get("/api/forecast", params={"by": "team", "as_of": "2026-10-15"}).json()
        bad = client.get("/api/forecast", params={"by": "planet"})

    assert anonymous.status_code == 401
    assert body["rows"][0]["key"] == "support" and body["rows"][0]["forecast"] == "24.25"
    assert bad.status_code == 400 and "planet" in bad.json()["error"]["message"]
    store.close()


def test_cli_report_forecast_prints_json(tmp_path: Path) -> None:
    path = tmp_path / "ledger.duckdb"
    with DuckDBLedger(path) as store:
        store.record_events(weekly_ledger(56).events("TRUE", limit=100))

    args = ["report", "forecast", "--by", "team", "--as-of", "2026-10-15", "--ledger", str(path), "--format", "json"]
    result = CliRunner().invoke(cli, args)

    assert result.exit_code == 0, result.output
    (row,) = orjson.loads(result.stdout)
    assert (row["team"], row["actual_to_date"], row["forecast"], row["low"]) == ("support", "11", "24.25", "24.25")
