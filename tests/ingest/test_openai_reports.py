"""OpenAI Usage and Costs API pages, saved as files, imported into a ledger.

Samples are built from the field names of the API reference and the `openai` SDK types
(`UsageCompletionsResponse`, `UsageCostsResponse`): pages of buckets of result rows.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from tokenops.cli import app
from tokenops.events import TokenUsage
from tokenops.ingest import get_importer, run_import
from tokenops.pricing import Priced, Pricer
from tokenops.store import DuckDBLedger

DAY1, DAY2, DAY3 = 1754006400, 1754092800, 1754179200  # 2025-08-01 .. 03 UTC
DAY = 86_400
MINI = "gpt-4o-mini-2024-07-18"
GPT4O = "gpt-4o-2024-08-06"


def completions(model: str | None, input_tokens: Any, output_tokens: Any, requests: int, **more: Any) -> dict[str, Any]:
    row = {
        "object": "organization.usage.completions.result",
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "input_cached_tokens": 0,
        "input_audio_tokens": 0,
        "output_audio_tokens": 0,
        "num_model_requests": requests,
        "project_id": "proj_support",
        "user_id": None,
        "api_key_id": None,
        "model": model,
        "batch": False,
        "service_tier": "default",
    }
    return row | more


def bucket(start: int, *results: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {"object": "bucket", "start_time": start, "end_time": start + DAY, "results": list(results)} | more


def page(*buckets: dict[str, Any], has_more: bool = False) -> dict[str, Any]:
    return {
        "object": "page",
        "data": list(buckets),
        "has_more": has_more,
        "next_page": "page_AAA" if has_more else None,
    }


def cost(value: Any, line_item: str | None, project_id: str | None = "proj_support") -> dict[str, Any]:
    return {
        "object": "organization.costs.result",
        "amount": {"value": value, "currency": "usd"},
        "line_item": line_item,
        "project_id": project_id,
    }


def usage_pages() -> list[dict[str, Any]]:
    """Two pages over three days: 6 rows, 119,000 input and 12,100 output tokens, 50 requests."""
    first = page(
        bucket(
            DAY1,
            completions(MINI, 10_000, 2_000, 10, input_cached_tokens=4_000),
            completions(GPT4O, 50_000, 5_000, 20, user_id="user-ana", input_audio_tokens=300),
            completions("acme-private-llm", 1_000, 100, 1),
        ),
        bucket(
            DAY2,
            completions(MINI, 20_000, 4_000, 12),
            {
                "object": "organization.usage.embeddings.result",
                "input_tokens": 30_000,
                "num_model_requests": 3,
                "model": "text-embedding-3-small",
                "project_id": "proj_search",
                "user_id": None,
                "api_key_id": None,
            },
        ),
        has_more=True,
    )
    second = page(bucket(DAY3, completions(GPT4O, 8_000, 1_000, 4, input_cached_tokens=2_000, batch=True)))
    return [first, second]


def totals(ledger: DuckDBLedger, table: str = "provider_usage") -> dict[str, object]:
    return ledger.query_rows(
        f"""SELECT count(*) AS n, sum(input_tokens) AS input, sum(output_tokens) AS output, sum(requests) AS requests,
                   sum(cache_read_tokens) AS cached, count(*) FILTER (WHERE unpriced) AS unpriced,
                   sum(cost_total) AS cost FROM {table}"""
    )[0]


def test_usage_pages_as_json_lines_and_pretty_json_give_the_known_totals(tmp_path: Path) -> None:
    first, second = usage_pages()
    (tmp_path / "usage.jsonl").write_text(json.dumps(first) + "\n")
    (tmp_path / "usage-page2.json").write_text(json.dumps(second, indent=2))
    with DuckDBLedger(tmp_path / "ledger.duckdb") as ledger:
        report = run_import(get_importer("openai-usage"), [tmp_path], ledger)
        assert (report.rows, report.imported, report.rejected) == (6, 6, 0)
        got = totals(ledger)
        assert (got["n"], got["input"], got["output"], got["requests"], got["cached"], got["unpriced"]) == (
            6, 119_000, 12_100, 50, 6_000, 1,
        )  # fmt: skip
        mini = ledger.query_rows(
            "SELECT cost_total, price_source, project_id, start_ts, end_ts FROM provider_usage "
            "WHERE model = ? AND start_ts = ?",
            [MINI, datetime(2025, 8, 1)],
        )[0]
        # 6,000 uncached x $0.15 + 4,000 cached x $0.075 + 2,000 output x $0.60 per million tokens
        assert mini["cost_total"] == Decimal("0.0024")
        assert mini["price_source"] == "genai-prices:openai/gpt-4o-mini"
        assert mini["end_ts"] == datetime(2025, 8, 2)
        unknown = ledger.query_rows("SELECT cost_total, unpriced FROM provider_usage WHERE model = 'acme-private-llm'")
        assert unknown == [{"cost_total": None, "unpriced": True}]  # flagged, never $0
        batch = ledger.query_rows("SELECT batch, tags FROM provider_usage WHERE batch")
        assert len(batch) == 1 and json.loads(str(batch[0]["tags"]))["service_tier"] == "default"


def test_each_priced_row_costs_what_the_pricer_says_at_its_bucket_start(tmp_path: Path) -> None:
    first, second = usage_pages()
    (tmp_path / "usage.jsonl").write_text(json.dumps(first) + "\n" + json.dumps(second) + "\n")
    pricer = Pricer()
    expected = Decimal(0)
    for p in (first, second):
        for b in p["data"]:
            for r in b["results"]:
                usage = TokenUsage(
                    input_tokens=r["input_tokens"],
                    cache_read_tokens=r.get("input_cached_tokens", 0),
                    output_tokens=r.get("output_tokens", 0),
                )
                ts = datetime.fromtimestamp(b["start_time"], UTC)
                priced = pricer.price(r["model"], usage, provider="openai", ts=ts, batch=bool(r.get("batch")))
                if isinstance(priced, Priced):
                    expected += priced.cost.total
    with DuckDBLedger(tmp_path / "ledger.duckdb") as ledger:
        run_import(get_importer("openai-usage"), [tmp_path / "usage.jsonl"], ledger)
        assert totals(ledger)["cost"] == expected


def test_reimporting_usage_pages_changes_nothing(tmp_path: Path) -> None:
    first, second = usage_pages()
    (tmp_path / "usage.jsonl").write_text(json.dumps(first) + "\n" + json.dumps(second) + "\n")
    with DuckDBLedger(tmp_path / "ledger.duckdb") as ledger:
        run_import(get_importer("openai-usage"), [tmp_path], ledger)
        before = totals(ledger)
        again = run_import(get_importer("openai-usage"), [tmp_path], ledger)
        assert (again.imported, again.duplicates, again.rejected) == (0, 6, 0)
        assert totals(ledger) == before


def start_line(text: str, marker: str) -> int:
    """1-based line of the `{` that opens the object containing `marker` (an indent=2 dump)."""
    lines = text.splitlines()
    index = next(i for i, line in enumerate(lines) if marker in line)
    indent = len(lines[index]) - len(lines[index].lstrip()) - 2
    while lines[index] != " " * indent + "{":
        index -= 1
    return index + 1


def test_bad_rows_in_a_pretty_printed_page_are_named_by_line_and_path(tmp_path: Path) -> None:
    doc = page(
        bucket(DAY1, completions(MINI, 1_000, 100, 1), completions("bad-output", 1_000, "abc", 1)),
        {"object": "bucket", "end_time": DAY2 + DAY, "results": [completions(MINI, 5, 5, 1)], "note": "no-start"},
        bucket(
            DAY3,
            completions("bad-input", Decimal("12.5"), 1, 1),
            completions("bad-cache", 100, 1, 1, input_cached_tokens=500),
            completions(GPT4O, 2_000, 200, 2),
            completions("bad-requests", 10, 1, -3),
        ),
    )
    text = json.dumps(doc, indent=2, default=str).replace('"12.5"', "12.5")
    file = tmp_path / "usage.json"
    file.write_text(text)
    with DuckDBLedger(tmp_path / "ledger.duckdb") as ledger:
        report = run_import(get_importer("openai-usage"), [file], ledger)
        assert (report.rows, report.imported, report.rejected) == (7, 2, 5)
        assert ledger.query_rows("SELECT sum(input_tokens) AS n FROM provider_usage") == [{"n": 3_000}]
    errors = [str(e) for e in report.errors]
    assert errors == [
        f"{file}:{start_line(text, 'bad-output')}: data[0].results[1].output_tokens is 'abc', expected a whole number",
        f"{file}:{start_line(text, 'no-start')}: data[1].start_time is missing, expected a whole number "
        "(1 result rows in it skipped)",
        f"{file}:{start_line(text, 'bad-input')}: data[2].results[0].input_tokens is 12.5, expected a whole number",
        f"{file}:{start_line(text, 'bad-cache')}: data[2].results[1]: cache_read_tokens + cache_write_tokens "
        "(500 + 0) exceed input_tokens (100); input_tokens must include cached tokens",
        f"{file}:{start_line(text, 'bad-requests')}: data[2].results[3].num_model_requests is -3, "
        "expected a whole number >= 0",
    ]
    assert start_line(text, "bad-output") > 10  # a real line number, not the line-1 fallback


def test_a_truncated_json_line_is_named_and_the_pages_around_it_kept(tmp_path: Path) -> None:
    first, second = usage_pages()
    broken = json.dumps(second)[:70]
    file = tmp_path / "usage.jsonl"
    file.write_text(json.dumps(first) + "\n" + broken + "\n\n" + json.dumps(second) + "\n" + "[1, 2]\n")
    with DuckDBLedger(tmp_path / "ledger.duckdb") as ledger:
        report = run_import(get_importer("openai-usage"), [file], ledger)
        assert (report.imported, report.rejected) == (6, 2)
    assert str(report.errors[0]).startswith(f"{file}:2: not valid JSON: ")
    assert str(report.errors[1]) == (f"{file}:5: the page is a list, expected a report page object with a 'data' list")


def test_a_compact_one_line_page_names_the_json_path_on_line_1(tmp_path: Path) -> None:
    file = tmp_path / "usage.json"
    file.write_text(json.dumps(page(bucket(DAY1, completions(MINI, 10, 1, 1), completions(MINI, 10, None, 1)))))
    with DuckDBLedger(tmp_path / "ledger.duckdb") as ledger:
        report = run_import(get_importer("openai-usage"), [file], ledger)
    assert [str(e) for e in report.errors] == [
        f"{file}:1: data[0].results[1].output_tokens is missing, expected a whole number"
    ]


def test_a_costs_page_given_to_the_usage_importer_says_which_importer_to_use(tmp_path: Path) -> None:
    file = tmp_path / "costs.json"
    file.write_text(json.dumps(page(bucket(DAY1, cost(1.5, None)))))
    with DuckDBLedger(tmp_path / "ledger.duckdb") as ledger:
        report = run_import(get_importer("openai-usage"), [file], ledger)
    assert "import this file with `tokenops import openai-costs`" in str(report.errors[0])


def cost_pages() -> list[dict[str, Any]]:
    """$0.1 + $0.2 + $1.25 + $0.000125 on day 1 (exact: 1.550125), $3 on day 2."""
    return [
        page(
            bucket(
                DAY1,
                cost(Decimal("0.1"), f"{MINI}, input"),
                cost(Decimal("0.2"), f"{MINI}, output"),
                cost(Decimal("1.25"), f"{GPT4O}, cached input", project_id="proj_search"),
                cost(Decimal("0.000125"), "web search tool calls", project_id=None),
            ),
            has_more=True,
        ),
        page(bucket(DAY2, cost(3, f"{GPT4O}, output"))),
    ]


def test_cost_pages_keep_amounts_exact_and_name_the_model_of_each_line_item(tmp_path: Path) -> None:
    first, second = cost_pages()
    text = "\n".join(json.dumps(p, default=str).replace('"0.1"', "0.1") for p in (first, second))
    text = text.replace('"0.2"', "0.2").replace('"1.25"', "1.25").replace('"0.000125"', "0.000125")
    (tmp_path / "costs.jsonl").write_text(text + "\n")
    with DuckDBLedger(tmp_path / "ledger.duckdb") as ledger:
        report = run_import(get_importer("openai-costs"), [tmp_path], ledger)
        assert (report.rows, report.imported, report.rejected) == (5, 5, 0)
        by_day = ledger.query_rows(
            "SELECT CAST(start_ts AS DATE) AS day, sum(billed) AS billed FROM billed_costs GROUP BY 1 ORDER BY 1"
        )
        assert [r["billed"] for r in by_day] == [Decimal("1.550125"), Decimal("3")]
        models = ledger.query_rows(
            "SELECT model, sum(billed) AS billed, min(currency) AS currency FROM billed_costs GROUP BY 1 ORDER BY 1"
        )
        assert models == [
            {"model": GPT4O, "billed": Decimal("4.25"), "currency": "USD"},
            {"model": MINI, "billed": Decimal("0.3"), "currency": "USD"},
            {"model": None, "billed": Decimal("0.000125"), "currency": "USD"},
        ]
        again = run_import(get_importer("openai-costs"), [tmp_path], ledger)
        assert (again.imported, again.duplicates) == (0, 5)


def test_bad_cost_rows_are_named_and_good_ones_kept(tmp_path: Path) -> None:
    doc = page(
        bucket(DAY1, cost(Decimal("0.5"), f"{MINI}, input"), cost(-2, f"{MINI}, output")),
        bucket(DAY2, cost("lots", f"{GPT4O}, input"), {"object": "organization.costs.result", "line_item": "x"}),
        {"object": "bucket", "start_time": DAY3, "end_time": DAY3 - 1, "results": []},
    )
    text = json.dumps(doc, indent=2, default=str).replace('"0.5"', "0.5")
    file = tmp_path / "costs.json"
    file.write_text(text)
    with DuckDBLedger(tmp_path / "ledger.duckdb") as ledger:
        report = run_import(get_importer("openai-costs"), [file], ledger)
        assert ledger.query_rows("SELECT sum(billed) AS b FROM billed_costs") == [{"b": Decimal("0.5")}]
    reasons = [(e.line, e.reason) for e in report.errors]
    assert reasons == [
        (start_line(text, f'"line_item": "{MINI}, output"'), "data[0].results[1].amount.value is -2; a report amount "
         "is never negative (credits are not in this report)"),
        (start_line(text, f'"line_item": "{GPT4O}, input"'), "data[1].results[0].amount.value is 'lots', expected a "
         "decimal amount such as '123.45'"),
        (start_line(text, '"line_item": "x"'), "data[1].results[1].amount is missing, expected an object "
         "{value, currency}"),
        (start_line(text, f'"start_time": {DAY3}'),
         "data[2] ends (2025-08-02T23:59:59+00:00) before it starts (2025-08-03T00:00:00+00:00)"),
    ]  # fmt: skip


def test_import_command_reports_bad_rows_and_exits_1(tmp_path: Path) -> None:
    first, _ = usage_pages()
    first["data"][0]["results"][0]["output_tokens"] = "many"
    (tmp_path / "usage.jsonl").write_text(json.dumps(first) + "\n")
    ledger = tmp_path / "ledger.duckdb"
    result = CliRunner(env={"COLUMNS": "400"}).invoke(
        app, ["import", "openai-usage", str(tmp_path), "--ledger", str(ledger), "-q"]
    )
    assert result.exit_code == 1, result.output
    assert f"{tmp_path / 'usage.jsonl'}:1: data[0].results[0].output_tokens is 'many'" in result.output
    assert "5 rows read from 1 file(s): 4 imported, 0 already in the ledger, 1 rejected" in result.output


def test_the_import_command_prices_with_the_organisations_overrides(tmp_path: Path) -> None:
    """Negotiated prices in tokenops.toml apply to imported buckets as they do to gateway calls."""
    pages = tmp_path / "pages"
    pages.mkdir()
    (pages / "usage.jsonl").write_text(
        json.dumps({"object": "page", "data": [bucket(DAY1, completions(MINI, 1_000_000, 1_000_000, 10))]}) + "\n"
    )
    config = tmp_path / "tokenops.toml"
    config.write_text(
        f'ledger = "{tmp_path / "ledger.duckdb"}"\n'
        f'[[pricing.overrides]]\nmodel = "{MINI}"\ninput_mtok = "1"\noutput_mtok = "2"\n'
    )
    result = CliRunner().invoke(app, ["import", "openai-usage", str(pages), "-c", str(config), "-q"])
    assert result.exit_code == 0, result.output
    with DuckDBLedger(tmp_path / "ledger.duckdb", read_only=True) as ledger:
        assert ledger.query_rows("SELECT cost_total FROM provider_usage") == [{"cost_total": Decimal(3)}]
