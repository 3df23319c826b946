"""FOCUS CSV read in columns (`_focus_arrow`): the same rows, ids and errors as the row-by-row path."""

from __future__ import annotations

import csv
import gzip
import io
import shutil
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.shared import shared_data
from tokenops.ingest import _focus_arrow, focus, run_import
from tokenops.ingest._rows import ImportReport, stable_id
from tokenops.store import DuckDBLedger

SAMPLE = shared_data("focus", "focus_1.0_sample_1000.csv")


def _sample() -> tuple[list[str], list[list[str]]]:
    with SAMPLE.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    return rows[0], rows[1:]


def _csv(header: list[str], rows: list[list[str]], *, terminator: str = "\r\n") -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator=terminator)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def _import(path: Path, *, columnar: bool, monkeypatch: pytest.MonkeyPatch) -> tuple[ImportReport, list[Any]]:
    with monkeypatch.context() as patch:
        if not columnar:
            patch.setattr(focus, "_csv_layout", lambda path: None)
        with DuckDBLedger() as ledger:
            report = run_import(focus.IMPORTER, [path], ledger)
            rows = ledger.query_rows("SELECT * FROM billed_costs ORDER BY cost_id")
    return report, rows


def _same_both_ways(path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[ImportReport, list[Any]]:
    """Import `path` by both paths; assert identical ledger rows, errors and counts; return the columnar one."""
    fast, fast_rows = _import(path, columnar=True, monkeypatch=monkeypatch)
    slow, slow_rows = _import(path, columnar=False, monkeypatch=monkeypatch)
    assert [str(e) for e in fast.errors] == [str(e) for e in slow.errors]
    assert (fast.rows, fast.imported, fast.rejected) == (slow.rows, slow.imported, slow.rejected)
    assert fast_rows == slow_rows
    return fast, fast_rows


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> list[_focus_arrow.Parsed | None]:
    """What `parse_chunk` made of each chunk (None: the chunk went line by line)."""
    seen: list[_focus_arrow.Parsed | None] = []
    real = focus.parse_chunk

    def parse(chunk: Any, plan: Any) -> _focus_arrow.Parsed | None:
        parsed = real(chunk, plan)
        seen.append(parsed)
        return parsed

    monkeypatch.setattr(focus, "parse_chunk", parse)
    return seen


def test_the_shared_sample_reads_the_same_in_columns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spy: list[_focus_arrow.Parsed | None]
) -> None:
    gz = tmp_path / "sample.csv.gz"
    with SAMPLE.open("rb") as src, gzip.open(gz, "wb") as dst:
        shutil.copyfileobj(src, dst)
    for path in (SAMPLE, gz):
        report, rows = _same_both_ways(path, monkeypatch)
        assert (report.rows, report.imported, report.rejected) == (1000, 1000, 0)
    parsed = [p for p in spy if p is not None]
    assert parsed and sum(p.table.num_rows for p in parsed if p.table is not None) == 2000  # all in columns


def _quirky(header: list[str], rows: list[list[str]], *, short: bool) -> list[list[str]]:
    """The sample's lines with the values the regular expressions must not misread, and bad ones."""
    col = {name: header.index(name) for name in header}
    out = [list(r) for r in rows[:160]]

    def put(i: int, **cells: str) -> None:
        for name, value in cells.items():
            out[i][col[name]] = value

    put(3, BilledCost="1E-7")  # a number Python reads: the row path
    put(5, BilledCost="0.1234567890125")  # 13 decimals: rounded by the row path
    put(7, ConsumedQuantity="0.0000025", PricingQuantity="000.500")  # a half-even tie; leading zeros
    put(9, ConsumedQuantity="-0.0000035", ListCost="-0.000", EffectiveCost="NULL")
    put(11, BilledCost=" 2.5 ", ListUnitPrice="null")  # padded: Python strips
    put(13, ChargeFrequency="usage-BASED", ChargeCategory="usage", BillingCurrency="usd")
    put(15, ChargePeriodStart="2024-09-18T22:00:00+02:00", ChargePeriodEnd="2024-09-18 23:00:00.5")
    put(17, Tags='{"ProviderName": "mine", "z": 1, "a": [1, 2], "b": null, "é": "ü"}')  # a key that is a column
    put(19, Tags='{"team": "a\\"b", "Aa": "x"}', ResourceName='say "hi"\nthere')  # escaped; a two-line field
    put(21, BilledCost="abc")  # bad rows, each in the middle of a chunk
    put(23, ChargePeriodStart="yesterday")
    put(25, ChargeCategory="Refund")
    put(27, Tags="[1, 2]")
    put(29, ChargePeriodEnd="2024-08-01 00:00:00")
    put(31, BilledCost="2500000")
    put(33, ProviderName="NULL")
    put(35, BillingCurrency="dollars")
    put(37, ServiceName="Amazon Bedrock", ChargeDescription="anthropic.claude-3-haiku-20240307-v1:0 input tokens")
    put(39, ResourceId="arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-pro-v1:0")
    put(41, ServiceName="Azure OpenAI", ChargeDescription="gpt-4o-0513-Inp-glbl")
    put(43, BilledCost="99999.999999999999", ConsumedQuantity="123456789012345678901.2345675")
    put(45, BilledCost="-0.00", ContractedCost="1.2345678901234567890123456789")
    out[47] = out[46]  # the same charge twice: copies #0 and #1, in one chunk or in chunks apart
    out[60] = out[2]
    out[140], out[145] = out[3], out[120]
    put(131, BilledCost="xyz", Tags='{"k": "v"}')  # in a later, small chunk
    if short:
        out[150] = out[150][:5]  # too few fields: its chunk goes line by line
    return out


@pytest.mark.parametrize("chunk_bytes", [1 << 20, 6000])  # one chunk; a few lines a chunk
def test_unusual_and_bad_lines_read_as_the_row_path_reads_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spy: list[_focus_arrow.Parsed | None], chunk_bytes: int
) -> None:
    short = chunk_bytes < 1 << 20
    monkeypatch.setattr(focus, "CHUNK_BYTES", chunk_bytes)
    monkeypatch.setattr(focus, "APPEND_ROWS", 1 if short else 100_000)  # copies counted across appends too
    header, rows = _sample()
    lines = _csv(header, _quirky(header, rows, short=short))
    lines = lines.replace("\r\n", "\r\n\r\n", 3)  # blank lines shift the line numbers
    path = tmp_path / "quirky.csv"
    path.write_text(lines, encoding="utf-8", newline="")
    report, stored = _same_both_ways(path, monkeypatch)
    assert (report.rows, report.rejected) == (160, 9 + short)
    reasons = {e.line: e.reason for e in report.errors}
    # line 2 + 21, after 3 blank lines and a field of two lines
    assert reasons[27] == "BilledCost is 'abc', expected a decimal number such as 12.34"
    assert len({r["cost_id"] for r in stored}) == len(stored) == 151 - short
    parsed = [p for p in spy if p is not None]
    mixed = [p for p in parsed if p.table is not None and p.unusual]
    assert len(mixed) == (3 if short else 1), "a bad line in a chunk read in columns is not handed to the row path"
    if short:
        assert reasons[156] == "expected 44 fields as in the header, found 5"
        assert None in spy  # the chunk with the short record was read line by line


def test_lines_split_oddly_fall_back_whole_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spy: list[_focus_arrow.Parsed | None]
) -> None:
    header, rows = _sample()
    text = _csv(header, rows[:30], terminator="\n")
    at = text.index("\n", len(text) // 2) + 1
    stray = text[:at] + text[at:].replace(",NULL,", ',ab"c,', 1)  # a quote inside an unquoted field
    cr = text[:at] + text[at:].replace("\n", "\r", 2)  # old Mac line ends
    for name, body in (("stray.csv", stray), ("cr.csv", cr), ("cr-header.csv", text.replace("\n", "\r", 1))):
        path = tmp_path / name
        path.write_text(body, encoding="utf-8", newline="")
        _same_both_ways(path, monkeypatch)
    assert spy == [None, None]  # the third is read line by line from the start: its header ends in \r


def test_money_is_summed_exactly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    header, rows = _sample()
    col = header.index("BilledCost")
    costs = ["0.1", "0.2", "0.000000000001", "999999.999999999999", "0.333333333333", "123456.789012345678"]
    lines = []
    for i in range(3000):
        line = list(rows[i % len(rows)])
        line[col] = costs[i % len(costs)]
        line[header.index("ResourceId")] += f"-{i}"
        lines.append(line)
    path = tmp_path / "money.csv"
    path.write_text(_csv(header, lines), encoding="utf-8", newline="")
    expected = sum((Decimal(c) for c in (costs[i % len(costs)] for i in range(3000))), Decimal(0))
    batches = list(focus.IMPORTER.read(path))
    billed = pa.concat_arrays([b.tables["billed_costs"]["billed"].combine_chunks() for b in batches])
    assert pa.types.is_decimal(billed.type) and not any(b.records for b in batches)  # no float on the way
    _same_both_ways(path, monkeypatch)
    with DuckDBLedger() as ledger:
        run_import(focus.IMPORTER, [path], ledger)
        total = ledger.query_rows("SELECT sum(billed) AS t FROM billed_costs")[0]["t"]
        pair = ledger.query_rows("SELECT sum(billed) AS t FROM billed_costs WHERE billed IN (0.1, 0.2)")[0]["t"]
    assert total == expected == 500 * sum((Decimal(c) for c in costs), Decimal(0))
    assert float(expected) != sum(float(costs[i % len(costs)]) for i in range(3000))  # floats would not do
    assert pair == Decimal("150")  # 500 x (0.1 + 0.2), exactly


def test_either_path_sees_the_other_paths_lines_as_already_imported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with DuckDBLedger() as ledger:
        first = run_import(focus.IMPORTER, [SAMPLE], ledger)
        with monkeypatch.context() as patch:
            patch.setattr(focus, "_csv_layout", lambda path: None)
            again = run_import(focus.IMPORTER, [SAMPLE], ledger)
    assert (first.imported, again.imported, again.duplicates) == (1000, 0, 1000)


@pytest.mark.parametrize("copies", [[0, 1, 2, 9] * 8, [0, 12, 3, 100] * 8])
def test_cost_ids_are_the_row_paths_stable_ids(copies: list[int]) -> None:
    digests = bytes(range(256)) * 2  # 32 digests of 16 bytes
    expected = [
        stable_id("focus", digests[i : i + 16].hex(), c) for i, c in zip(range(0, 512, 16), copies, strict=True)
    ]
    assert _focus_arrow.cost_ids(digests, copies).to_pylist() == expected


def _parquet_both_ways(path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[ImportReport, list[Any]]:
    with DuckDBLedger() as ledger:
        fast = run_import(focus.IMPORTER, [path], ledger)
        fast_rows = ledger.query_rows("SELECT * FROM billed_costs ORDER BY cost_id")
    monkeypatch.setattr(focus, "_parquet_layout", lambda path: None)
    with DuckDBLedger() as ledger:
        slow = run_import(focus.IMPORTER, [path], ledger)
        slow_rows = ledger.query_rows("SELECT * FROM billed_costs ORDER BY cost_id")
    assert [str(e) for e in fast.errors] == [str(e) for e in slow.errors]
    assert (fast.rows, fast.imported, fast.rejected) == (slow.rows, slow.imported, slow.rejected)
    assert fast_rows == slow_rows
    return fast, fast_rows


def test_a_typed_parquet_bill_reads_the_same_in_columns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.ingest.test_focus import _sample_as_parquet

    path = _sample_as_parquet(tmp_path / "sample.parquet")
    batches = list(focus.IMPORTER.read(path))
    assert sum(b.tables["billed_costs"].num_rows for b in batches) == 1000 and not any(b.records for b in batches)
    report, rows = _parquet_both_ways(path, monkeypatch)
    assert (report.rows, report.imported, report.rejected) == (1000, 1000, 0)
    with DuckDBLedger() as ledger:  # the CSV it came from is the same bill
        run_import(focus.IMPORTER, [path], ledger)
        assert run_import(focus.IMPORTER, [SAMPLE], ledger).imported == 0


def test_odd_parquet_cells_go_to_the_row_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    n = 8
    table = pa.table(
        {
            "BilledCost": pa.array([1.5, None, float("nan"), 0.1, 2e-7, 3.0, 1e7, 0.25], pa.float64()),
            "ListCost": pa.array([Decimal("1.50"), Decimal("1E-13"), None, Decimal("0.1"), None, None, None, None]),
            "ConsumedQuantity": pa.array([1, 2, 3, 4, 5, 6, 7, 2**62], pa.int64()),
            "BillingCurrency": ["USD", "USD", "USD", "usd", "EUR", "USD", "USD", "USD"],
            "ChargeCategory": ["Usage", "Usage", "Usage", "usage", "Credit", "Tax", "Usage", "Usage"],
            "ChargeFrequency": ["usage-based", None, "One-Time", "x", "Usage-Based", "", "NULL", "Recurring"],
            "PricingQuantity": pa.array([1, 2, None, 4, 5, 6, 7, 8], pa.int32()),
            "ChargePeriodStart": pa.array([1_790_000_000_000_000] * n, pa.timestamp("us", tz="UTC")),
            "ChargePeriodEnd": pa.array([1_790_003_600_000_000] * (n - 1) + [1], pa.timestamp("us")),
            "ProviderName": ["OpenAI", "OpenAI", "Microsoft", None, "AWS", "AWS", "AWS", "AWS"],
            "x_Flag": pa.array([True, False, None, True, False, True, True, True]),
            "Tags": pa.array(
                [[("team", "a")], None, [("t", 'q"')], [], [("ProviderName", "x")], [("a", None)], None, None],
                pa.map_(pa.string(), pa.string()),
            ),
        }
    )
    path = tmp_path / "odd.parquet"
    pq.write_table(table, path, row_group_size=3)
    in_columns = sum(b.tables["billed_costs"].num_rows for b in focus.IMPORTER.read(path) if b.tables)
    report, rows = _parquet_both_ways(path, monkeypatch)
    assert report.rejected == 5 and len(rows) == 3 and in_columns == 2  # 1.5 read in columns; 2e-7 too
