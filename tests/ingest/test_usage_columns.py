"""The columnar reader of usage report pages stores exactly what the row path stores, and names the same errors.

Each file mixes usual rows with every kind of unusual one: bad rows in the middle of otherwise
usual pages, pages Arrow cannot read, buckets the row path rejects, blank lines and CRLF. The
row path is the reference: the same file is imported with `is_json_lines` forced off, which
sends it through `read_report` line by line.
"""

from __future__ import annotations

import dataclasses
import gzip
import importlib
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tokenops.ingest import _usage_columns as usage_columns
from tokenops.ingest import get_importer, run_import
from tokenops.ingest.anthropic_usage import AnthropicUsageImporter
from tokenops.ingest.openai_usage import OpenAIUsageImporter
from tokenops.pricing import PriceOverride, Pricer
from tokenops.store import DuckDBLedger

DAY1 = 1754006400  # 2025-08-01 UTC
DAY = 86_400
MINI = "gpt-4o-mini-2024-07-18"
SONNET = "claude-sonnet-4-5-20250929"
HAIKU = "claude-3-5-haiku-20241022"


def oai(n: int, **more: Any) -> dict[str, Any]:
    row = {
        "object": "organization.usage.completions.result",
        "input_tokens": 1_000 + n,
        "output_tokens": 100 + n,
        "input_cached_tokens": n % 300,
        "input_audio_tokens": 0,
        "num_model_requests": 1 + n % 5,
        "project_id": f"proj_{n % 3}",
        "user_id": f"user-{n}",
        "api_key_id": None,
        "model": (MINI, "gpt-4o-2024-08-06", "o3-mini")[n % 3],
        "batch": n % 4 == 0,
        "service_tier": "default",
    }
    return row | more


def oai_bucket(day: int, *results: Any, **more: Any) -> dict[str, Any]:
    start = DAY1 + day * DAY
    return {"object": "bucket", "start_time": start, "end_time": start + DAY, "results": list(results)} | more


def oai_page(*buckets: Any, **more: Any) -> dict[str, Any]:
    return {"object": "page", "data": list(buckets), "has_more": False, "next_page": None} | more


def openai_lines() -> list[str]:
    """Pages of usual rows with every kind of unusual row, bucket and page among them."""
    usual = [oai(n) for n in range(40)]
    odd_rows = [
        oai(1, input_tokens=-5),
        oai(2, input_tokens=None),
        oai(3, output_tokens=None),
        {"object": "organization.usage.embeddings.result", "input_tokens": 30, "num_model_requests": 2, "model": None},
        oai(4, object="organization.costs.result"),
        oai(5, object="organization.usage.images.result"),
        oai(6, input_cached_tokens=5_000),
        oai(7, input_cache_write_tokens=10, input_cache_write_30m_tokens=-1),
        oai(8, input_cache_write_30m_tokens=20, input_cache_write_12h_tokens=7),
        oai(9, input_audio_tokens=300, output_image_tokens=4, api_source="responses"),
        oai(10, service_tier='quo"ted', user_id="é ü \u2028"),
        oai(11, model="acme-private-llm"),
        oai(12, model=None, batch=None, service_tier=None),
        oai(13, input_tokens=2**53 + 1, model="acme-private-llm"),  # past what the columns add up
    ]
    lines = [json.dumps(oai_page(oai_bucket(0, *usual[:20]), oai_bucket(1, *usual[20:])))]
    # a bad row in the middle of otherwise usual pages
    for i, odd in enumerate(odd_rows):
        lines.append(json.dumps(oai_page(oai_bucket(2 + i, oai(100 + i), odd, oai(200 + i)))))
    lines += [
        json.dumps(oai_page(oai_bucket(20, oai(300), oai(301, input_tokens="12")))),  # Arrow rejects the page
        json.dumps(oai_page(oai_bucket(21, oai(302, input_tokens=1.5)))),
        json.dumps(oai_page(oai_bucket(22, 5, oai(303)))),  # a row that is not an object
        json.dumps(oai_page(oai_bucket(23, None, oai(304)))),
        json.dumps(oai_page(oai_bucket(24, oai(305)) | {"end_time": DAY1}, oai_bucket(25, oai(306)))),
        json.dumps(oai_page({"object": "bucket", "start_time": DAY1, "results": [oai(307)]})),
        json.dumps(oai_page({"object": "bucket", "start_time": DAY1, "end_time": DAY1 + DAY, "result": [oai(308)]})),
        json.dumps(oai_page(oai_bucket(26, oai(309), object=None))),  # an explicit null is not the default
        json.dumps(oai_page(oai_bucket(27, oai(310), object="day"))),
        json.dumps(oai_page(None, oai_bucket(28, oai(311)))),
        json.dumps(oai_page(oai_bucket(29, oai(312)), object="list")),
        json.dumps(oai_page(oai_bucket(30, oai(313))))[:-9],  # truncated
        "",
        "   ",
        json.dumps([oai_page(oai_bucket(31, oai(314)))]),
        json.dumps(oai_page(oai_bucket(32, oai(315)))) + json.dumps(oai_page(oai_bucket(33, oai(316)))),
        '{"object":"page","data":[{"object":"bucket","start_time":%d,"end_time":%d,"results":[{"object":'
        '"organization.usage.completions.result","input_tokens":1,"input_tokens":2,"output_tokens":0,'
        '"num_model_requests":1}]}]}'.replace("%d", str(DAY1), 1).replace("%d", str(DAY1 + DAY), 1),
        json.dumps(oai_page(oai_bucket(34, oai(317, batch=0)))),
        json.dumps(oai_page(oai_bucket(35, oai(318, model=7)))),
        json.dumps(oai_page(oai_bucket(36, oai(319, num_model_requests=2**62, model=None)))),
        json.dumps(oai_page(oai_bucket(0, oai(0)))),  # a row already seen: one ledger row
        json.dumps(oai_page(oai_bucket(37, *[oai(400 + n) for n in range(30)]))),
    ]
    return lines


def ant(n: int, **more: Any) -> dict[str, Any]:
    row = {
        "uncached_input_tokens": 1_000 + n,
        "cache_creation": {"ephemeral_1h_input_tokens": n % 7, "ephemeral_5m_input_tokens": n % 300},
        "cache_read_input_tokens": n % 500,
        "output_tokens": 200 + n,
        "server_tool_use": {"web_search_requests": n % 2},
        "api_key_id": f"apikey_{n}",
        "workspace_id": f"wrkspc_{n % 5}",
        "model": (SONNET, HAIKU)[n % 2],
        "service_tier": ("standard", "batch", "priority")[n % 3],
        "context_window": ("0-200k", "200k-1M")[n % 4 == 0],
    }
    return row | more


def ant_bucket(day: int, *results: Any, **more: Any) -> dict[str, Any]:
    return {
        "starting_at": f"2025-08-{day:02d}T00:00:00Z",
        "ending_at": f"2025-08-{day + 1:02d}T00:00:00Z",
        "results": list(results),
    } | more


def ant_page(*buckets: Any) -> dict[str, Any]:
    return {"data": list(buckets), "has_more": False, "next_page": None}


def anthropic_lines() -> list[str]:
    """As `openai_lines`, for the Anthropic usage report."""
    odd_rows = [
        ant(1, output_tokens=-1),
        ant(2, cache_creation=None),
        ant(3, cache_creation={}),
        ant(4, server_tool_use=None, requests=12),
        ant(5, server_tool_use={"web_search_requests": -2}),
        {"amount": "12.5", "currency": "USD", "model": SONNET},
        ant(6, uncached_input_tokens=None, amount="1"),
        ant(7, service_tier=None, context_window=None, inference_geo="eu", speed="fast"),
        ant(8, model="claude-unknown"),
        ant(9, model=None, workspace_id='w"s\\x'),
    ]
    lines = [json.dumps(ant_page(ant_bucket(1, *[ant(n) for n in range(30)])))]
    for i, odd in enumerate(odd_rows):
        lines.append(json.dumps(ant_page(ant_bucket(2 + i, ant(100 + i), odd, ant(200 + i)))))
    lines += [
        json.dumps(ant_page(ant_bucket(15, ant(300, server_tool_use=3)))),
        json.dumps(ant_page(ant_bucket(16, ant(301)) | {"starting_at": "2025-08-16 00:00:00"})),
        json.dumps(ant_page(ant_bucket(17, ant(302)) | {"starting_at": "2025-08-17T02:00:00.5+02:00"})),
        json.dumps(ant_page(ant_bucket(18, ant(303)) | {"ending_at": "2025-08-01T00:00:00Z"})),
        json.dumps(ant_page(ant_bucket(19, ant(304)) | {"object": None})),
        json.dumps(ant_page(ant_bucket(20, ant(305), ant(306, output_tokens=1e3)))),
        json.dumps({"data": "none"}),
        "",
        json.dumps(ant_page(ant_bucket(21, *[ant(400 + n) for n in range(25)]))),
    ]
    return lines


SOURCES: dict[str, Any] = {"openai-usage": openai_lines, "anthropic-usage": anthropic_lines}


def imported(
    path: Path, source: str, *, columnar: bool, monkeypatch: pytest.MonkeyPatch, pricer: Pricer | None = None
) -> tuple[Any, ...]:
    """(report, stored rows, report of a second import) of one path, through one path or the other."""
    importer: Any = get_importer(source)
    if pricer is not None:
        importer = type(importer)(pricer=pricer)
    with monkeypatch.context() as patch:
        if not columnar:
            patch.setattr(usage_columns, "is_json_lines", lambda path: False)
        with DuckDBLedger(":memory:") as ledger:
            report = run_import(importer, [path], ledger)
            stored = ledger.query_rows("SELECT * FROM provider_usage ORDER BY usage_id")
            again = run_import(importer, [path], ledger)
    return report.as_dict(), stored, again.as_dict()


@pytest.mark.parametrize("source", sorted(SOURCES))
@pytest.mark.parametrize("chunk_bytes", [usage_columns.CHUNK_BYTES, 1_500])
def test_the_columnar_path_stores_and_rejects_exactly_what_the_row_path_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str, chunk_bytes: int
) -> None:
    path = tmp_path / "usage.jsonl"
    path.write_text("\n".join(SOURCES[source]()) + "\n")
    monkeypatch.setattr(usage_columns, "CHUNK_BYTES", chunk_bytes)
    fast = imported(path, source, columnar=True, monkeypatch=monkeypatch)
    slow = imported(path, source, columnar=False, monkeypatch=monkeypatch)
    assert fast == slow
    report, stored, again = fast
    assert report["rejected"] > 10 and len(stored) > 80
    assert (again["imported"], again["duplicates"]) == (0, report["rows"] - report["rejected"])


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_usual_rows_skip_the_row_path_and_bad_ones_keep_their_neighbours(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    module: Any = importlib.import_module(f"tokenops.ingest.{source.replace('-', '_')}")
    converted: list[str] = []
    convert = module.LAYOUT.convert

    def counting(result: Any, pricer: Any) -> Any:
        converted.append(result.where)
        return convert(result, pricer)

    monkeypatch.setattr(module, "LAYOUT", dataclasses.replace(module.LAYOUT, convert=counting))
    if source == "openai-usage":
        field, page = "input_tokens", oai_page(oai_bucket(0, *map(oai, range(25)), oai(99, input_tokens=-1),
                                                          *map(oai, range(25, 50))))  # fmt: skip
    else:
        field, page = "output_tokens", ant_page(ant_bucket(1, *map(ant, range(25)), ant(99, output_tokens=-1),
                                                           *map(ant, range(25, 50))))  # fmt: skip
    path = tmp_path / "usage.jsonl"
    path.write_text(json.dumps(page) + "\n" + json.dumps(page) + "\n")
    with DuckDBLedger(":memory:") as ledger:
        report = run_import(module.IMPORTER, [path], ledger)
    assert converted == ["data[0].results[25]", "data[0].results[25]"]  # only the bad row, on each line
    assert (report.rows, report.imported, report.duplicates, report.rejected) == (102, 50, 50, 2)
    assert [(e.line, e.reason) for e in report.errors] == [
        (line, f"data[0].results[25].{field} is -1, expected a whole number >= 0") for line in (1, 2)
    ]


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_gzip_crlf_and_lone_carriage_returns_are_numbered_as_the_row_path_numbers_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    lines = SOURCES[source]()
    text = "\r\n".join(lines[:6]) + "\r\n" + "\n".join(lines[6:12]) + "\r" + "\n".join(lines[12:]) + "\n"
    path = tmp_path / "usage.jsonl.gz"
    path.write_bytes(gzip.compress(text.encode()))
    monkeypatch.setattr(usage_columns, "CHUNK_BYTES", 4_000)
    fast = imported(path, source, columnar=True, monkeypatch=monkeypatch)
    assert fast == imported(path, source, columnar=False, monkeypatch=monkeypatch)


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_rates_that_are_not_whole_units_are_priced_by_the_row_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    pricer = Pricer(
        [
            PriceOverride(model=MINI, discount=Decimal("0.3333333")),
            PriceOverride(model=SONNET, discount=Decimal("0.1234567")),
            PriceOverride(model=HAIKU, input_mtok=Decimal("0.8"), output_mtok=Decimal("4")),
        ]
    )
    path = tmp_path / "usage.jsonl"
    path.write_text("\n".join(SOURCES[source]()) + "\n")
    fast = imported(path, source, columnar=True, monkeypatch=monkeypatch, pricer=pricer)
    assert fast == imported(path, source, columnar=False, monkeypatch=monkeypatch, pricer=pricer)
    costs = {r["cost_total"] for r in fast[1] if r["model"] in (MINI, SONNET)}
    assert any(c is not None and c != c.quantize(Decimal("1e-9")) for c in costs)  # odd discounts stayed exact


def test_a_pretty_printed_document_is_read_by_the_row_path(tmp_path: Path) -> None:
    path = tmp_path / "usage.json"
    path.write_text(json.dumps(oai_page(oai_bucket(0, oai(1), oai(2, input_tokens=-1))), indent=2))
    with DuckDBLedger(":memory:") as ledger:
        report = run_import(OpenAIUsageImporter(), [path], ledger)
    assert (report.rows, report.imported, report.rejected) == (2, 1, 1)
    lines = path.read_text().splitlines()
    opening = next(i for i, line in enumerate(lines) if '"input_tokens": -1' in line) - 1  # `{` above `"object"`
    assert [e.line for e in report.errors] == [opening]
    assert report.errors[0].reason.startswith("data[0].results[1].input_tokens is -1")


def test_an_empty_file_imports_nothing(tmp_path: Path) -> None:
    path = tmp_path / "usage.jsonl"
    path.write_text("\n\n")
    with DuckDBLedger(":memory:") as ledger:
        report = run_import(AnthropicUsageImporter(), [path], ledger)
    assert (report.rows, report.imported, report.rejected) == (0, 0, 0)
