"""FOCUS import: the shared sample as shipped, identity and re-import, bad rows, AI lines, Parquet and gzip."""

from __future__ import annotations

import csv
import gzip
import json
import shutil
from collections import Counter, defaultdict
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from tests.shared import shared_data
from tokenops.cli import app
from tokenops.ingest import focus, get_importer, run_import
from tokenops.store import DuckDBLedger

SAMPLE = shared_data("focus", "focus_1.0_sample_1000.csv")
HEADER = (
    "BilledCost,BillingAccountId,BillingCurrency,ChargeCategory,ChargeDescription,ChargeFrequency,ChargePeriodStart,"
    "ChargePeriodEnd,ConsumedQuantity,ConsumedUnit,EffectiveCost,ListCost,ProviderName,ResourceId,ServiceCategory,"
    "ServiceName,SkuId,SubAccountId,Tags,x_SkuMeterName"
)


def _import(ledger: DuckDBLedger, *paths: Path):  # type: ignore[no-untyped-def]
    return run_import(get_importer("focus"), list(paths), ledger)


def _billed(ledger: DuckDBLedger) -> Decimal:
    total = ledger.query_rows("SELECT coalesce(sum(billed), 0) AS t FROM billed_costs")[0]["t"]
    assert isinstance(total, Decimal)
    return total


def _expected_sample() -> dict[str, object]:
    """Totals of the sample read with the csv module alone, as Decimal."""
    billed: dict[str, Decimal] = defaultdict(Decimal)
    effective = Decimal(0)
    categories: Counter[str] = Counter()
    with SAMPLE.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        billed[row["ProviderName"]] += Decimal(row["BilledCost"])
        effective += Decimal(row["EffectiveCost"]) if row["EffectiveCost"] != "NULL" else 0
        categories[row["ChargeCategory"]] += 1
    return {"rows": len(rows), "billed": billed, "effective": effective, "categories": categories}


def _line(**overrides: str) -> str:
    cells = {
        "BilledCost": "1.25",
        "BillingAccountId": "123",
        "BillingCurrency": "USD",
        "ChargeCategory": "Usage",
        "ChargeDescription": "usage",
        "ChargeFrequency": "Usage-Based",
        "ChargePeriodStart": "2026-10-01T00:00:00Z",
        "ChargePeriodEnd": "2026-10-02T00:00:00Z",
        "ConsumedQuantity": "1000",
        "ConsumedUnit": "Tokens",
        "EffectiveCost": "1.25",
        "ListCost": "1.50",
        "ProviderName": "AWS",
        "ResourceId": "",
        "ServiceCategory": "AI and Machine Learning",
        "ServiceName": "Amazon Bedrock",
        "SkuId": "SKU1",
        "SubAccountId": "acct-1",
        "Tags": "",
        "x_SkuMeterName": "",
    } | overrides
    out = []
    for name in HEADER.split(","):
        value = cells[name]
        out.append('"' + value.replace('"', '""') + '"' if any(c in value for c in ',"\n{') else value)
    return ",".join(out)


def _write(path: Path, *lines: str, header: str = HEADER) -> Path:
    path.write_text("\n".join((header, *lines)) + "\n", encoding="utf-8")
    return path


def test_the_shared_sample_as_shipped_gives_the_independently_summed_totals() -> None:
    expected = _expected_sample()
    with DuckDBLedger() as ledger:
        report = _import(ledger, SAMPLE)
        assert (report.rows, report.imported, report.rejected) == (expected["rows"], 1000, 0)
        by_provider = {
            r["p"]: r["b"]
            for r in ledger.query_rows(
                "SELECT tags::JSON->>'ProviderName' AS p, sum(billed) AS b FROM billed_costs GROUP BY 1"
            )
        }
        assert by_provider == expected["billed"]
        effective = ledger.query_rows("SELECT sum(effective) AS e FROM billed_costs")[0]["e"]
        assert effective == expected["effective"]
        categories = ledger.query_rows("SELECT charge_category AS c, count(*) AS n FROM billed_costs GROUP BY 1")
        assert {r["c"]: r["n"] for r in categories} == expected["categories"]
        providers = ledger.query_rows("SELECT DISTINCT provider FROM billed_costs ORDER BY 1")
        assert [r["provider"] for r in providers] == ["aws", "azure", "oracle"]


def test_the_sample_quirks_are_read_as_meant() -> None:
    with DuckDBLedger() as ledger:
        _import(ledger, SAMPLE)
        # zone-less "2024-09-18 22:00:00" is UTC; `Usage-based` and `Usage-Based` are one value
        first = ledger.query_rows(
            "SELECT start_ts, end_ts, tags FROM billed_costs WHERE line_item LIKE '$0.40 per million Amazon SQS%' "
            "AND start_ts = TIMESTAMP '2024-09-18 22:00:00'"
        )
        assert len(first) == 1 and str(first[0]["end_ts"]) == "2024-09-18 23:00:00"
        frequencies = ledger.query_rows("SELECT DISTINCT tags::JSON->>'ChargeFrequency' AS f FROM billed_costs")
        assert {r["f"] for r in frequencies} == {"Usage-Based", "One-Time"}  # never "Usage-based"
        # NULL is no value, not the text "NULL"; Tags JSON keys join the line's tags
        lines = ledger.query_rows("SELECT tags, unit, service, line_item FROM billed_costs")
        assert not [r for r in lines if "NULL" in (r["unit"], r["service"], r["line_item"])]
        assert not [r for r in lines if "NULL" in json.loads(str(r["tags"])).values()]
        tagged = ledger.query_rows(
            "SELECT count(*) AS n FROM billed_costs WHERE tags::JSON->>'environment' IS NOT NULL"
        )
        with SAMPLE.open(newline="", encoding="utf-8") as handle:
            with_env = sum(
                1 for r in csv.DictReader(handle) if r["Tags"] != "NULL" and "environment" in json.loads(r["Tags"])
            )
        assert tagged[0]["n"] == with_env > 0
        # Azure ML workspaces are AI lines but name no model
        assert ledger.query_rows("SELECT count(model) AS n FROM billed_costs")[0]["n"] == 0


def test_reimporting_the_sample_changes_nothing() -> None:
    with DuckDBLedger() as ledger:
        _import(ledger, SAMPLE)
        before = _billed(ledger)
        again = _import(ledger, SAMPLE)
        assert (again.imported, again.duplicates, again.rejected) == (0, 1000, 0)
        assert _billed(ledger) == before
        assert ledger.query_rows("SELECT count(*) AS n FROM billed_costs")[0]["n"] == 1000


@pytest.mark.parametrize("batch_rows", [10_000, 1])  # copies counted within a batch and across batches
def test_identical_lines_stay_two_charges_and_a_refreshed_export_adds_only_new_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, batch_rows: int
) -> None:
    monkeypatch.setattr(focus, "BATCH_ROWS", batch_rows)
    same = _line(BilledCost="2.00")
    first = _write(tmp_path / "day1.csv", same, same, _line(BilledCost="0.50"))
    # a refreshed export of the month: reordered, renamed, the earlier lines repeated plus a new one
    columns = HEADER.split(",")
    reordered = ",".join(reversed(columns))

    def flip(line: str) -> str:
        return ",".join(reversed(next(csv.reader([line]))))

    def quoted(line: str) -> str:
        return ",".join('"' + v.replace('"', '""') + '"' for v in next(csv.reader([flip(line)])))

    refreshed = _write(
        tmp_path / "day2.csv",
        quoted(_line(BilledCost="0.50")),
        quoted(same),
        quoted(_line(BilledCost="4.00")),
        quoted(same),
        header=reordered,
    )
    with DuckDBLedger() as ledger:
        assert _import(ledger, first).imported == 3
        assert _billed(ledger) == Decimal("4.50")
        assert _import(ledger, first).imported == 0
        report = _import(ledger, refreshed)
        assert (report.imported, report.duplicates) == (1, 3)
        assert _billed(ledger) == Decimal("8.50")


def test_bad_rows_are_named_by_line_and_good_rows_kept(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "bill.csv",
        _line(BilledCost="1.00"),  # line 2
        _line(BilledCost="abc"),  # 3
        _line(ChargeDescription="two\nlines", BilledCost="2.00"),  # 4-5
        _line(ChargePeriodStart="yesterday"),  # 6
        _line(ChargeCategory="Refund"),  # 7
        _line(BillingCurrency="dollars"),  # 8
        _line(Tags="[1, 2]"),  # 9
        "1.00,only,three",  # 10
        _line(ChargePeriodEnd="2026-09-30T00:00:00Z"),  # 11
        _line(BilledCost="NULL"),  # 12
        _line(BilledCost="2500000"),  # 13
        _line(ProviderName="NULL"),  # 14
        _line(BilledCost="4.00", ChargeCategory="credit"),  # 15: case variant is fine
    )
    with DuckDBLedger() as ledger:
        report = _import(ledger, path)
        assert (report.rows, report.imported, report.rejected) == (13, 3, 10)
        assert _billed(ledger) == Decimal("7.00")
    errors = {e.line: e.reason for e in report.errors}
    assert all(e.path == str(path) for e in report.errors)
    assert errors[3] == "BilledCost is 'abc', expected a decimal number such as 12.34"
    assert "ChargePeriodStart is 'yesterday', expected an ISO 8601 date-time" in errors[6]
    assert errors[7].startswith("ChargeCategory is 'Refund', expected one of Usage, Purchase")
    assert errors[8].startswith("BillingCurrency is 'dollars', expected a three-letter ISO 4217 code")
    assert errors[9] == "Tags is a JSON list, expected a JSON object of key-value pairs"
    assert errors[10] == "expected 20 fields as in the header, found 3"
    assert "is before ChargePeriodStart" in errors[11]
    assert errors[12].startswith("BilledCost is empty")
    assert "exceeds the ledger's limit" in errors[13]
    assert errors[14].startswith("ProviderName is empty")
    assert str(report.errors[0]) == f"{path}:3: BilledCost is 'abc', expected a decimal number such as 12.34"


def test_bedrock_and_azure_openai_lines_name_their_model(tmp_path: Path) -> None:
    arn = "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-5-sonnet-20240620-v1:0"
    path = _write(
        tmp_path / "ai.csv",
        _line(ResourceId=arn, SkuId="A"),
        _line(
            ServiceName="Claude 3.5 Sonnet (Amazon Bedrock Edition)",
            ChargeDescription="USE1-Claude3.5-input",
            SkuId="B",
        ),
        _line(
            ProviderName="Microsoft",
            ServiceName="Azure OpenAI",
            x_SkuMeterName="gpt-4o-0513-Inp-glbl Tokens",
            ResourceId="/subscriptions/x/providers/Microsoft.CognitiveServices/accounts/aoai",
            Tags='{"team": "support", "cost-center": 42, "empty": null}',
            SkuId="C",
        ),
        _line(
            ServiceName="Amazon Elastic Compute Cloud",
            ServiceCategory="Compute",
            ChargeDescription="gpt-4 box",
            SkuId="D",
        ),
    )
    with DuckDBLedger() as ledger:
        assert _import(ledger, path).imported == 4
        rows = {r["sku"]: r for r in ledger.query_rows("SELECT tags::JSON->>'SkuId' AS sku, * FROM billed_costs")}
    assert rows["A"]["model"] == "anthropic.claude-3-5-sonnet-20240620-v1:0"
    assert rows["B"]["model"] == "Claude 3.5 Sonnet"
    assert rows["C"]["model"] == "gpt-4o-0513" and rows["C"]["provider"] == "azure"
    assert rows["D"]["model"] is None  # not an AI service: no model guessed from free text
    tags = json.loads(str(rows["C"]["tags"]))
    assert tags["team"] == "support" and tags["cost-center"] == "42" and tags["empty"] == ""
    assert (
        tags["x_SkuMeterName"] == "gpt-4o-0513-Inp-glbl Tokens" and tags["ServiceCategory"] == "AI and Machine Learning"
    )
    assert rows["C"]["project_id"] == "acct-1" and rows["C"]["account_id"] == "123"
    assert rows["C"]["quantity"] == Decimal("1000") and rows["C"]["unit"] == "Tokens"
    assert rows["C"]["list_cost"] == Decimal("1.5") and rows["C"]["effective"] == Decimal("1.25")


def test_column_names_in_any_case_and_offset_times_are_read(tmp_path: Path) -> None:
    header = HEADER.lower().replace("providername", "PROVIDERNAME")
    path = _write(
        tmp_path / "lower.csv",
        _line(ChargePeriodStart="2026-10-01T02:00:00+02:00", ChargePeriodEnd="2026-10-01 01:00:00", Tags='{"a": "b"}'),
        header=header,
    )
    with DuckDBLedger() as ledger:
        assert _import(ledger, path).imported == 1
        (row,) = ledger.query_rows("SELECT * FROM billed_costs")
    assert (str(row["start_ts"]), str(row["end_ts"])) == ("2026-10-01 00:00:00", "2026-10-01 01:00:00")
    assert row["provider"] == "aws" and json.loads(str(row["tags"]))["a"] == "b"
    assert row["service"] == "Amazon Bedrock" and row["billed"] == Decimal("1.25")


def _sample_as_parquet(path: Path) -> Path:
    """The sample as a typed Parquet file: costs as doubles (as AWS writes them), times as timestamps, Tags a map."""
    with SAMPLE.open(encoding="utf-8") as handle:
        header = handle.readline().strip().replace('"', "").split(",")
    types: dict[str, pa.DataType] = {name: pa.string() for name in header}
    types |= {
        c: pa.float64() for c in ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost", "ConsumedQuantity")
    }
    types |= {
        c: pa.timestamp("s") for c in ("ChargePeriodStart", "ChargePeriodEnd", "BillingPeriodStart", "BillingPeriodEnd")
    }
    table = pacsv.read_csv(
        SAMPLE,
        convert_options=pacsv.ConvertOptions(column_types=types, null_values=["NULL"], strings_can_be_null=True),
    )
    tags = [list(json.loads(t).items()) if t is not None else None for t in table.column("Tags").to_pylist()]
    table = table.set_column(header.index("Tags"), "Tags", pa.array(tags, pa.map_(pa.string(), pa.string())))
    pq.write_table(table, path, row_group_size=300)
    return path


def test_parquet_and_gzip_copies_are_the_same_bill(tmp_path: Path) -> None:
    parquet = _sample_as_parquet(tmp_path / "sample.parquet")
    gz = tmp_path / "sample.csv.gz"
    with SAMPLE.open("rb") as src, gzip.open(gz, "wb") as dst:
        shutil.copyfileobj(src, dst)
    expected = sum(_expected_sample()["billed"].values(), Decimal(0))  # type: ignore[attr-defined]
    with DuckDBLedger() as ledger:
        report = _import(ledger, parquet)
        assert (report.rows, report.imported, report.rejected) == (1000, 1000, 0)
        assert _billed(ledger) == expected
        assert _import(ledger, gz).imported == 0  # same lines, other format: nothing new
        assert _import(ledger, SAMPLE).imported == 0


def test_a_bad_parquet_row_is_named_by_row_number(tmp_path: Path) -> None:
    table = pa.table(
        {
            "BilledCost": pa.array([Decimal("1.5"), None, Decimal("2.25")], pa.decimal128(18, 6)),
            "BillingCurrency": ["USD", "USD", "USD"],
            "ChargeCategory": ["Usage", "Usage", "usage"],
            "ChargePeriodStart": pa.array([1_790_000_000_000_000] * 3, pa.timestamp("us", tz="UTC")),
            "ChargePeriodEnd": pa.array([1_790_003_600_000_000] * 3, pa.timestamp("us", tz="UTC")),
            "ProviderName": ["OpenAI", "OpenAI", "OpenAI"],
            "Tags": pa.array([[("team", "a")], None, [("team", "b")]], pa.map_(pa.string(), pa.string())),
        }
    )
    path = tmp_path / "bill.parquet"
    pq.write_table(table, path)
    with DuckDBLedger() as ledger:
        report = _import(ledger, path)
        assert (report.imported, report.rejected) == (2, 1)
        assert _billed(ledger) == Decimal("3.75")
        tags = [
            json.loads(str(r["tags"]))["team"]
            for r in ledger.query_rows("SELECT tags FROM billed_costs ORDER BY billed")
        ]
        assert tags == ["a", "b"]
    assert str(report.errors[0]).startswith(f"{path}:2: BilledCost is empty")


def test_a_broken_parquet_file_is_refused_once(tmp_path: Path) -> None:
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"PAR1" + b"\x00" * 64)
    with DuckDBLedger() as ledger:
        report = _import(ledger, path)
    assert (report.rows, report.rejected) == (0, 1)
    assert str(report.errors[0]).startswith(f"{path}:1: not a readable Parquet file (")


def test_a_file_without_focus_columns_is_refused_once(tmp_path: Path) -> None:
    path = _write(tmp_path / "other.csv", "1,2", "3,4", header="cost,date")
    with DuckDBLedger() as ledger:
        report = _import(ledger, path)
    assert (report.rows, report.imported, report.rejected) == (0, 0, 1)
    assert str(report.errors[0]) == (
        f"{path}:1: not a FOCUS cost and usage file: missing column(s) BilledCost, BillingCurrency, "
        "ChargePeriodStart, ChargePeriodEnd, ChargeCategory, ProviderName (or ServiceProviderName); "
        "export it as FOCUS 1.x"
    )


@pytest.mark.parametrize("twice", [False, True])
def test_the_cli_imports_the_sample(tmp_path: Path, twice: bool) -> None:
    ledger = tmp_path / "ledger.duckdb"
    runner = CliRunner()
    args = ["import", "focus", str(SAMPLE), "--ledger", str(ledger), "-q"]
    result = runner.invoke(app, args)
    if twice:
        result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert ("0 imported, 1,000 already" if twice else "1,000 imported, 0 already") in result.output
    with DuckDBLedger(ledger) as store:
        assert _billed(store) == sum(_expected_sample()["billed"].values(), Decimal(0))  # type: ignore[attr-defined]


def test_the_cli_exits_2_when_nothing_could_be_read(tmp_path: Path) -> None:
    path = _write(tmp_path / "other.csv", "1,2", header="cost,date")
    result = CliRunner().invoke(app, ["import", "focus", str(path), "--ledger", str(tmp_path / "l.duckdb"), "-q"])
    assert result.exit_code == 2
    assert f"{path}:1: not a FOCUS cost and usage file" in " ".join(result.output.split())  # rich wraps lines


@pytest.mark.parametrize("columnar", [True, False], ids=["columns", "rows"])
def test_a_field_longer_than_the_csv_modules_default_limit_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, columnar: bool
) -> None:
    if not columnar:
        monkeypatch.setattr(focus, "_csv_layout", lambda path: None)
    long = "a long description, " * 10_000  # 200 KB: csv.field_size_limit() is 128 KB by default
    path = _write(tmp_path / "bill.csv", _line(), _line(ChargeDescription=long, BilledCost="2"), _line(BilledCost="3"))
    with DuckDBLedger() as ledger:
        report = _import(ledger, path)
        assert (report.rows, report.imported, report.rejected) == (3, 3, 0), report.errors
        assert ledger.query_rows("SELECT line_item FROM billed_costs WHERE billed = 2") == [{"line_item": long}]
