"""Anthropic Admin API usage and cost report pages, saved as files, imported into a ledger.

Samples follow the API reference for `/v1/organizations/usage_report/messages` and
`/v1/organizations/cost_report`: `{data: [{starting_at, ending_at, results}], has_more, next_page}`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from tokenops.events import TokenUsage
from tokenops.ingest import get_importer, run_import
from tokenops.pricing import Priced, Pricer
from tokenops.store import DuckDBLedger

SONNET = "claude-sonnet-4-5-20250929"
HAIKU = "claude-3-5-haiku-20241022"


def usage_row(model: str | None, uncached: Any, output: Any, *, read: Any = 0, write_5m: Any = 0, write_1h: Any = 0,
              **more: Any) -> dict[str, Any]:  # fmt: skip
    row = {
        "uncached_input_tokens": uncached,
        "cache_creation": {"ephemeral_1h_input_tokens": write_1h, "ephemeral_5m_input_tokens": write_5m},
        "cache_read_input_tokens": read,
        "output_tokens": output,
        "server_tool_use": {"web_search_requests": 0},
        "api_key_id": None,
        "workspace_id": "wrkspc_support",
        "model": model,
        "service_tier": "standard",
        "context_window": "0-200k",
    }
    return row | more


def bucket(day: int, *results: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {
        "starting_at": f"2025-08-{day:02d}T00:00:00Z",
        "ending_at": f"2025-08-{day + 1:02d}T00:00:00Z",
        "results": list(results),
    } | more


def page(*buckets: dict[str, Any], has_more: bool = False) -> dict[str, Any]:
    return {"data": list(buckets), "has_more": has_more, "next_page": "page_MjAyNS0wOC0wMw==" if has_more else None}


def usage_pages() -> list[dict[str, Any]]:
    """Five rows: input 10,271,300 (uncached + writes + reads), output 105,400."""
    return [
        page(
            bucket(
                1,
                usage_row(SONNET, 1_000, 800, read=4_000, write_5m=2_000, write_1h=500),
                usage_row(HAIKU, 3_000, 300, service_tier="batch"),
                usage_row(
                    SONNET, 250_000, 1_000, context_window="200k-1M", server_tool_use={"web_search_requests": 3}
                ),  # fmt: skip
            ),
            has_more=True,
        ),
        page(
            bucket(2, usage_row(SONNET, 10_000_000, 100_000)),
            bucket(3, usage_row(None, 10_300, 3_300, workspace_id=None)),
        ),
    ]


def test_usage_report_gives_the_known_totals_with_cache_traffic_inside_input(tmp_path: Path) -> None:
    first, second = usage_pages()
    (tmp_path / "usage-1.json").write_text(json.dumps(first, indent=2))
    (tmp_path / "usage-2.json").write_text(json.dumps(second, indent=2))
    with DuckDBLedger(tmp_path / "ledger.duckdb") as ledger:
        report = run_import(get_importer("anthropic-usage"), [tmp_path], ledger)
        assert (report.rows, report.imported, report.rejected) == (5, 5, 0)
        got = ledger.query_rows(
            """SELECT sum(input_tokens) AS input, sum(output_tokens) AS output, sum(cache_read_tokens) AS read,
                      sum(cache_write_tokens) AS written, sum(cache_write_1h_tokens) AS written_1h,
                      count(*) FILTER (WHERE batch) AS batch, count(*) FILTER (WHERE unpriced) AS unpriced,
                      count(DISTINCT project_id) AS workspaces
               FROM provider_usage"""
        )[0]
        assert got == {
            "input": 7_500 + 3_000 + 250_000 + 10_000_000 + 10_300,
            "output": 105_400,
            "read": 4_000,
            "written": 2_500,
            "written_1h": 500,
            "batch": 1,
            "unpriced": 1,  # no model: a report exported without group_by=model cannot be priced
            "workspaces": 1,
        }
        tags = ledger.query_rows("SELECT tags FROM provider_usage WHERE input_tokens = 250000")[0]["tags"]
        assert json.loads(str(tags)) == {"service_tier": "standard", "context_window": "200k-1M",
                                         "web_search_requests": "3"}  # fmt: skip


def price(usage: TokenUsage, day: int, **variant: Any) -> Decimal:
    priced = Pricer().price(SONNET, usage, provider="anthropic", ts=datetime(2025, 8, day, tzinfo=UTC), **variant)
    assert isinstance(priced, Priced)
    return priced.cost.total


def test_a_days_bucket_is_priced_call_by_call_not_as_one_giant_call(tmp_path: Path) -> None:
    first, second = usage_pages()
    (tmp_path / "usage.jsonl").write_text(json.dumps(first) + "\n" + json.dumps(second) + "\n")
    with DuckDBLedger(tmp_path / "ledger.duckdb") as ledger:
        run_import(get_importer("anthropic-usage"), [tmp_path], ledger)
        costs = {
            (r["input_tokens"], r["start_ts"].day): r["cost_total"]  # type: ignore[attr-defined]
            for r in ledger.query_rows("SELECT input_tokens, start_ts, cost_total FROM provider_usage")
        }
    # 10M input over a day is many calls under 200k each: the base rate, not the >200k rate
    one_hundredth = price(TokenUsage(input_tokens=100_000, output_tokens=1_000), 2)
    assert costs[(10_000_000, 2)] == one_hundredth * 100
    assert Decimal(str(costs[(10_000_000, 2)])) < price(TokenUsage(input_tokens=10_000_000, output_tokens=100_000), 2)
    # the 200k-1M context window bucket is at the long-context rate, as that one call would be
    assert costs[(250_000, 1)] == price(TokenUsage(input_tokens=250_000, output_tokens=1_000), 1)
    cached = TokenUsage(input_tokens=7_500, cache_read_tokens=4_000, cache_write_tokens=2_500,
                        cache_write_1h_tokens=500, output_tokens=800)  # fmt: skip
    assert costs[(7_500, 1)] == price(cached, 1)
    assert costs[(10_300, 3)] is None


def test_reimporting_the_usage_report_changes_nothing(tmp_path: Path) -> None:
    first, second = usage_pages()
    (tmp_path / "usage.jsonl").write_text(json.dumps(first) + "\n" + json.dumps(second) + "\n")
    with DuckDBLedger(tmp_path / "ledger.duckdb") as ledger:
        run_import(get_importer("anthropic-usage"), [tmp_path], ledger)
        before = ledger.query_rows("SELECT usage_id, input_tokens FROM provider_usage ORDER BY usage_id")
        again = run_import(get_importer("anthropic-usage"), [tmp_path], ledger)
        assert (again.imported, again.duplicates) == (0, 5)
        assert ledger.query_rows("SELECT usage_id, input_tokens FROM provider_usage ORDER BY usage_id") == before


def opening_line(text: str, marker: str) -> int:
    """1-based line of the `{` that opens the object whose own key line contains `marker` (indent=2)."""
    lines = text.splitlines()
    index = next(i for i, line in enumerate(lines) if marker in line)
    indent = len(lines[index]) - len(lines[index].lstrip()) - 2
    while lines[index] != " " * indent + "{":
        index -= 1
    return index + 1


def test_bad_usage_rows_are_named_by_line_and_path(tmp_path: Path) -> None:
    doc = page(
        bucket(1, usage_row(SONNET, 100, 10), usage_row("bad-output", 100, "ten")),
        {"ending_at": "2025-08-03T00:00:00Z", "results": [usage_row(SONNET, 1, 1, workspace_id="no-start")]},
        bucket(3, usage_row("bad-creation", 5, 5) | {"cache_creation": None}, usage_row(HAIKU, 50, 5)),
        {
            "starting_at": "2025-08-04 00:00:00",
            "ending_at": "2025-08-05T00:00:00Z",
            "results": [],
            "note": "naive",
        },  # fmt: skip
    )
    text = json.dumps(doc, indent=2)
    file = tmp_path / "usage.json"
    file.write_text(text)
    with DuckDBLedger(tmp_path / "ledger.duckdb") as ledger:
        report = run_import(get_importer("anthropic-usage"), [file], ledger)
        assert ledger.query_rows("SELECT sum(input_tokens) AS n FROM provider_usage") == [{"n": 150}]
    assert [str(e) for e in report.errors] == [
        f"{file}:{opening_line(text, 'bad-output')}: data[0].results[1].output_tokens is 'ten', "
        "expected a whole number",
        f"{file}:{opening_line(text, '2025-08-03T00:00:00Z')}: data[1].starting_at is missing, expected an RFC 3339 "
        "timestamp such as '2025-08-01T00:00:00Z' (1 result rows in it skipped)",
        f"{file}:{opening_line(text, 'bad-creation')}: data[2].results[0].cache_creation is missing; expected "
        "{ephemeral_5m_input_tokens, ephemeral_1h_input_tokens}",
        f"{file}:{opening_line(text, 'naive')}: data[3].starting_at is '2025-08-04 00:00:00' without a zone; "
        "reports are in UTC, e.g. '2025-08-01T00:00:00Z'",
    ]
    assert (report.rows, report.imported, report.rejected) == (6, 2, 4)


def cost_row(amount: Any, description: str | None, **more: Any) -> dict[str, Any]:
    row = {
        "currency": "USD",
        "amount": amount,
        "workspace_id": "wrkspc_support",
        "description": description,
        "cost_type": "tokens",
        "context_window": "0-200k",
        "model": SONNET,
        "service_tier": "standard",
        "token_type": "uncached_input_tokens",
    }
    return row | more


def cost_pages() -> list[dict[str, Any]]:
    """Cents: 123.45 + 0.1 + 0.2 + 1000 on day 1 ($11.2375); 1 on day 2 (web search, no model)."""
    return [
        page(
            bucket(
                1,
                cost_row("123.45", "Claude Sonnet 4.5 Usage - Input Tokens"),
                cost_row("0.1", "Claude Sonnet 4.5 Usage - Output Tokens", token_type="output_tokens"),
                cost_row(
                    "0.2", "Claude Sonnet 4.5 Usage - Input Tokens, Cache Hit", token_type="cache_read_input_tokens"
                ),
                cost_row("1000", "Claude 3.5 Haiku Usage - Input Tokens", model=HAIKU, service_tier="batch"),
            ),
            has_more=True,
        ),
        page(
            bucket(
                2,
                cost_row(
                    "1",
                    "Web Search",
                    cost_type="web_search",
                    model=None,
                    token_type=None,
                    context_window=None,
                    service_tier=None,
                ),
            )
        ),  # fmt: skip
    ]


def test_cost_report_cents_become_exact_dollars(tmp_path: Path) -> None:
    first, second = cost_pages()
    (tmp_path / "costs.jsonl").write_text(json.dumps(first) + "\n" + json.dumps(second) + "\n")
    with DuckDBLedger(tmp_path / "ledger.duckdb") as ledger:
        report = run_import(get_importer("anthropic-costs"), [tmp_path], ledger)
        assert (report.rows, report.imported, report.rejected) == (5, 5, 0)
        by_model = ledger.query_rows(
            "SELECT model, sum(billed) AS billed, min(currency) AS currency, min(project_id) AS workspace "
            "FROM billed_costs GROUP BY 1 ORDER BY 1"
        )
        assert by_model == [
            {"model": HAIKU, "billed": Decimal("10"), "currency": "USD", "workspace": "wrkspc_support"},
            {"model": SONNET, "billed": Decimal("1.2375"), "currency": "USD", "workspace": "wrkspc_support"},
            {"model": None, "billed": Decimal("0.01"), "currency": "USD", "workspace": "wrkspc_support"},
        ]
        line = ledger.query_rows("SELECT line_item, tags FROM billed_costs WHERE billed = 0.001")[0]
        assert line["line_item"] == "Claude Sonnet 4.5 Usage - Output Tokens"
        assert json.loads(str(line["tags"]))["token_type"] == "output_tokens"
        again = run_import(get_importer("anthropic-costs"), [tmp_path], ledger)
        assert (again.imported, again.duplicates) == (0, 5)


def test_bad_cost_rows_are_named_and_good_ones_kept(tmp_path: Path) -> None:
    doc = page(
        bucket(1, cost_row("250", "good"), cost_row("-12.5", "negative"), cost_row("12,50", "comma")),
        bucket(2, cost_row(None, "no-amount"), cost_row("5", "euro", currency="EUR"), cost_row("NaN", "nan")),
    )
    text = json.dumps(doc, indent=2)
    file = tmp_path / "costs.json"
    file.write_text(text)
    lines = {name: opening_line(text, f'"description": "{name}"') for name in
             ("negative", "comma", "no-amount", "euro", "nan")}  # fmt: skip
    with DuckDBLedger(tmp_path / "ledger.duckdb") as ledger:
        report = run_import(get_importer("anthropic-costs"), [file], ledger)
        assert ledger.query_rows("SELECT sum(billed) AS b FROM billed_costs") == [{"b": Decimal("2.5")}]
    assert [(e.line, e.reason) for e in report.errors] == [
        (lines["negative"], "data[0].results[1].amount is '-12.5'; a report amount is never negative "
         "(credits are not in this report)"),
        (lines["comma"], "data[0].results[2].amount is '12,50', expected a decimal amount such as '123.45'"),
        (lines["no-amount"], "data[1].results[0].amount is missing, expected a decimal string in cents such as "
         "'123.45'"),
        (lines["euro"], "data[1].results[1].currency is 'EUR'; the cost report is in 'USD' (amounts in cents)"),
        (lines["nan"], "data[1].results[2].amount is 'NaN', expected a finite decimal amount"),
    ]  # fmt: skip
    assert (report.rows, report.imported, report.rejected) == (6, 1, 5)


def test_a_usage_report_given_to_the_cost_importer_says_which_importer_to_use(tmp_path: Path) -> None:
    file = tmp_path / "usage.json"
    file.write_text(json.dumps(usage_pages()[1]))
    with DuckDBLedger(tmp_path / "ledger.duckdb") as ledger:
        report = run_import(get_importer("anthropic-costs"), [file], ledger)
    assert report.rejected == 2
    assert "import this file with `tokenops import anthropic-usage`" in str(report.errors[0])
