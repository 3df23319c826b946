"""Anthropic Admin API cost report (`/v1/organizations/cost_report`) -> `BilledCost`.

Buckets (`starting_at`, `ending_at`, one day each) hold rows whose `amount` is a decimal
STRING in the currency's lowest units: `"123.45"` with `currency: "USD"` is $1.2345. It is
divided by 100 exactly (Decimal, never float). When grouped by `description` a row also names
`cost_type` (tokens, web_search, code_execution), `model`, `token_type`, `service_tier` and
`context_window`; when grouped by `workspace_id`, the workspace (kept as `project_id`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from tokenops.events import BilledCost
from tokenops.ingest._provider_reports import Bad, Result, amount, label, read_report
from tokenops.ingest._rows import Batch, stable_id
from tokenops.ingest.anthropic_usage import anthropic_span

NAME = "anthropic-costs"
CENTS = 100
"""Lowest units per dollar: the report's only currency is USD."""
_GROUPS = ("workspace_id", "description", "cost_type", "model", "token_type", "service_tier", "context_window")
_TAGGED = ("cost_type", "token_type", "service_tier", "context_window", "inference_geo", "speed")


class AnthropicCostsImporter:
    """Saved Anthropic cost report pages: JSON (one page, or a list of pages) or JSON Lines of pages."""

    name = NAME
    description = "Anthropic Admin API cost report pages (amounts in cents) as JSON or JSON Lines"
    patterns = ("*.json", "*.jsonl", "*.json.gz", "*.jsonl.gz")

    def read(self, path: Path) -> Iterator[Batch]:
        """Stream one saved file; a bad bucket or row is named, the others kept."""
        yield from read_report(path, anthropic_span, cost_record)


def cost_record(result: Result) -> BilledCost:
    """One cost report row as a billed cost line in dollars."""
    row, where = result.fields, result.where
    if "uncached_input_tokens" in row and "amount" not in row:
        raise Bad(f"{where} is a usage report row; import this file with `tokenops import anthropic-usage`")
    if row.get("amount") is None:
        raise Bad(f"{where}.amount is missing, expected a decimal string in cents such as '123.45'")
    cents = amount(row["amount"], f"{where}.amount")
    currency = label(row, "currency", where)
    if currency is None:
        raise Bad(f"{where}.currency is missing, expected 'USD'")
    if currency.upper() != "USD":
        raise Bad(f"{where}.currency is {currency!r}; the cost report is in 'USD' (amounts in cents)")
    list_cents = amount(row["list_amount"], f"{where}.list_amount") if row.get("list_amount") is not None else None
    groups = {key: label(row, key, where) for key in _GROUPS}
    tags = {key: value for key in _TAGGED if (value := label(row, key, where)) is not None}
    return BilledCost(
        cost_id=stable_id(NAME, *result.span, *groups.values(), tags.get("inference_geo"), tags.get("speed")),
        source=f"import:{NAME}",
        provider="anthropic",
        start=result.start,
        end=result.end,
        billed=cents / CENTS,
        currency="USD",
        list_cost=list_cents / CENTS if list_cents is not None else None,
        service="Claude API",
        model=groups["model"],
        line_item=groups["description"],
        project_id=groups["workspace_id"],
        tags=tags,
    )


IMPORTER = AnthropicCostsImporter()
