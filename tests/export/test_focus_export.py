"""FOCUS 1.2 export: columns, exact money, unpriced usage flagged, and a round trip through `import focus`."""

from __future__ import annotations

import csv
import gzip
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from tests.factories import T0, event
from tokenops.cli import app
from tokenops.events import Cost, UsageEvent
from tokenops.export import FOCUS_COLUMNS, UnsupportedFormat, export_focus
from tokenops.ingest import get_importer, run_import
from tokenops.store import DuckDBLedger

MANDATORY_1_2 = (
    "BilledCost BillingAccountId BillingAccountName BillingCurrency BillingPeriodEnd BillingPeriodStart "
    "ChargeCategory ChargeClass ChargeDescription ChargePeriodEnd ChargePeriodStart ContractedCost EffectiveCost "
    "InvoiceIssuerName ListCost PricingQuantity PricingUnit ProviderName PublisherName ServiceCategory ServiceName"
).split()
"""FOCUS 1.2 columns of feature level Mandatory."""

NOV = (datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))


def _events() -> list[UsageEvent]:
    day2 = T0 + timedelta(days=1)
    return [
        event("a1", input_tokens=1_000, output_tokens=500, task_run_id="t1"),
        event("a2", input_tokens=2_000, output_tokens=100, task_run_id="t1"),
        event("a3", input_tokens=3_000, output_tokens=700, task_run_id="t2"),
        event("b1", model="gpt-4o-mini", team="sales", user="bo", workflow="lead_score", input_tokens=9_000),
        event("c1", model="claude-3-5-sonnet-latest", provider="anthropic", ts=day2, input_tokens=1_234),
        event("u1", model="acme-internal-llm", provider="acme", input_tokens=4_000, output_tokens=1_000),
        event("u2", model="acme-internal-llm", provider="acme", input_tokens=1_000, output_tokens=10),
        event("oct", ts=T0 - timedelta(days=30)),  # previous month: not in a November export
    ]


def _ledger(tmp_path: Path) -> tuple[Path, list[UsageEvent]]:
    events = _events()
    blocked = replace(event("x1", input_tokens=777), status="blocked", cost=Cost.zero())  # no provider call
    path = tmp_path / "ledger.duckdb"
    with DuckDBLedger(path) as ledger:
        ledger.record_events([*events, blocked])
    return path, events


def _priced_total(events: list[UsageEvent]) -> Decimal:
    nov = [e for e in events if NOV[0] <= e.ts < NOV[1] and e.cost is not None]
    return sum((e.cost.total.quantize(Decimal("1e-12")) for e in nov if e.cost), Decimal(0))


def _read_csv(path: Path) -> list[dict[str, str]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_the_csv_has_every_mandatory_column_exact_money_and_the_documented_grain(tmp_path: Path) -> None:
    path, events = _ledger(tmp_path)
    out = tmp_path / "nov.csv"
    with DuckDBLedger(path, read_only=True) as ledger:
        report = export_focus(ledger, out, start=NOV[0], end=NOV[1], account_id="acme-corp")
    rows = _read_csv(out)
    header = list(rows[0])
    assert header == [name for name, _ in FOCUS_COLUMNS]
    assert set(MANDATORY_1_2) <= set(header)
    assert {"x_Team", "x_User", "x_Workflow", "x_Customer", "x_TaskRuns", "x_InputTokens", "x_Unpriced"} <= set(header)
    assert all(not name.startswith("x") or name.startswith("x_") for name in header)
    # support/ana/gpt-4o (3 calls, 2 task runs), sales/bo/gpt-4o-mini, anthropic next day, unpriced acme
    assert (report.rows, report.calls, len(rows)) == (4, 7, 4)
    assert sum(Decimal(r["BilledCost"]) for r in rows) == report.billed == _priced_total(events)
    gpt = next(r for r in rows if r["x_Model"] == "gpt-4o")
    expected = sum((e.cost.total for e in events[:3] if e.cost), Decimal(0))
    assert Decimal(gpt["BilledCost"]) == Decimal(gpt["EffectiveCost"]) == Decimal(gpt["ListCost"]) == expected
    assert Decimal(gpt["ContractedCost"]) == expected
    assert gpt["ChargePeriodStart"] == "2026-11-02T00:00:00Z" and gpt["ChargePeriodEnd"] == "2026-11-03T00:00:00Z"
    assert (gpt["BillingPeriodStart"], gpt["BillingPeriodEnd"]) == ("2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z")
    assert (gpt["ConsumedQuantity"], gpt["PricingQuantity"], gpt["x_InputTokens"]) == ("7300", "7300", "6000")
    assert (gpt["x_Calls"], gpt["x_TaskRuns"], gpt["x_Unpriced"]) == ("3", "2", "false")
    assert (gpt["ChargeCategory"], gpt["ChargeClass"], gpt["ChargeFrequency"]) == ("Usage", "", "Usage-Based")
    assert (gpt["ServiceCategory"], gpt["ProviderName"], gpt["BillingAccountId"]) == (
        "AI and Machine Learning",
        "OpenAI",
        "acme-corp",
    )
    assert json.loads(gpt["Tags"]) == {"team": "support", "user": "ana", "workflow": "support_ticket"}
    assert gpt["SubAccountId"] == "support" and gpt["SkuId"] == "openai/gpt-4o"


def test_unpriced_usage_is_flagged_never_passed_off_as_free(tmp_path: Path) -> None:
    path, _ = _ledger(tmp_path)
    out = tmp_path / "nov.csv.gz"
    with DuckDBLedger(path, read_only=True) as ledger:
        report = export_focus(ledger, out, start=NOV[0], end=NOV[1])
    (row,) = [r for r in _read_csv(out) if r["x_Unpriced"] == "true"]
    assert (report.unpriced_rows, report.unpriced_calls, report.unpriced_tokens) == (1, 2, 6_010)
    assert row["x_Model"] == "acme-internal-llm" and row["x_Calls"] == "2"
    assert row["ChargeDescription"].startswith("UNPRICED: acme-internal-llm via acme")
    assert "not a price" in row["ChargeDescription"]
    assert Decimal(row["BilledCost"]) == 0 and row["SkuPriceId"] == ""  # no price: no price id
    assert all(r["SkuPriceId"] for r in _read_csv(out) if r["x_Unpriced"] == "false")


def test_parquet_has_typed_columns_and_the_same_rows(tmp_path: Path) -> None:
    path, events = _ledger(tmp_path)
    with DuckDBLedger(path, read_only=True) as ledger:
        export_focus(ledger, tmp_path / "nov.parquet", start=NOV[0], end=NOV[1])
        export_focus(ledger, tmp_path / "nov.csv", start=NOV[0], end=NOV[1])
    table = pq.read_table(tmp_path / "nov.parquet")
    assert table.column_names == [name for name, _ in FOCUS_COLUMNS]
    assert str(table.schema.field("BilledCost").type) == "decimal128(38, 12)"
    assert str(table.schema.field("ChargePeriodStart").type) == "timestamp[us, tz=UTC]"
    assert sum(table.column("BilledCost").to_pylist()) == _priced_total(events)
    assert table.column("x_Unpriced").to_pylist().count(True) == 1
    assert table.num_rows == len(_read_csv(tmp_path / "nov.csv"))


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_the_export_imports_back_with_the_same_totals(tmp_path: Path, suffix: str) -> None:
    path, events = _ledger(tmp_path)
    out = tmp_path / f"nov{suffix}"
    with DuckDBLedger(path, read_only=True) as ledger:
        report = export_focus(ledger, out, start=NOV[0], end=NOV[1])
    with DuckDBLedger() as ledger:
        imported = run_import(get_importer("focus"), [out], ledger)
        assert (imported.imported, imported.rejected) == (report.rows, 0)
        rows = ledger.query_rows("SELECT * FROM billed_costs ORDER BY start_ts, model")
        assert sum(r["billed"] for r in rows) == _priced_total(events)  # type: ignore[misc]
        assert [r["model"] for r in rows] == ["acme-internal-llm", "gpt-4o", "gpt-4o-mini", "claude-3-5-sonnet-latest"]
        assert {r["provider"] for r in rows} == {"openai", "anthropic", "acme"}
        assert all(r["unit"] == "Tokens" and r["currency"] == "USD" for r in rows)
        unpriced = next(r for r in rows if r["model"] == "acme-internal-llm")
        assert json.loads(str(unpriced["tags"]))["x_Unpriced"] == "true"
        assert run_import(get_importer("focus"), [out], ledger).imported == 0


def test_the_cli_writes_the_month_and_warns_about_unpriced_usage_on_stderr(tmp_path: Path) -> None:
    path, events = _ledger(tmp_path)
    out = tmp_path / "nov.csv"
    runner = CliRunner()
    result = runner.invoke(app, ["export", "focus", "--month", "2026-11", "--out", str(out), "--ledger", str(path)])
    assert result.exit_code == 0, result.output
    assert "focus: 4 rows (7 calls" in result.stdout and str(out) in result.stdout
    warning = " ".join(result.stderr.split())
    assert "warning: 1 rows (2 calls, 6,010 tokens) have no price" in warning and "x_Unpriced=true" in warning
    assert sum(Decimal(r["BilledCost"]) for r in _read_csv(out)) == _priced_total(events)
    back = runner.invoke(app, ["import", "focus", str(out), "--ledger", str(path), "-q"])
    assert back.exit_code == 0 and "4 imported" in back.output
    with DuckDBLedger(path, read_only=True) as ledger:
        assert ledger.query_rows("SELECT sum(billed) AS b FROM billed_costs")[0]["b"] == _priced_total(events)


def test_the_cli_exports_since_until(tmp_path: Path) -> None:
    path, _ = _ledger(tmp_path)
    out = tmp_path / "one-day.csv"
    args = [
        "export",
        "focus",
        "--since",
        "2026-11-03",
        "--until",
        "2026-11-04",
        "--out",
        str(out),
        "--ledger",
        str(path),
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert [r["x_Model"] for r in _read_csv(out)] == ["claude-3-5-sonnet-latest"]
    assert result.stderr == ""  # no unpriced usage that day, no warning


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--month", "2026-13"], "--month is '2026-13', expected YYYY-MM"),
        (["--month", "2026-11", "--since", "2026-11-01"], "either --month or --since/--until"),
        ([], "say which period to export"),
        (["--since", "2026-11-05", "--until", "2026-11-01"], "is not after --since"),
        (["--month", "2026-11", "--out", "x.xlsx"], "name it .csv, .csv.gz or .parquet"),
    ],
)
def test_the_cli_refuses_bad_options(tmp_path: Path, args: list[str], message: str) -> None:
    path, _ = _ledger(tmp_path)
    out = ["--out", str(tmp_path / "x.csv")] if "--out" not in args else []
    result = CliRunner().invoke(app, ["export", "focus", *args, *out, "--ledger", str(path)])
    assert result.exit_code == 2
    assert message in " ".join(result.stderr.split())


def test_an_unknown_suffix_is_refused_before_reading(tmp_path: Path) -> None:
    with DuckDBLedger() as ledger, pytest.raises(UnsupportedFormat, match=r"name it \.csv, \.csv\.gz or \.parquet"):
        export_focus(ledger, tmp_path / "out.json", start=NOV[0], end=NOV[1])
