"""OpenAI Costs API pages (`/v1/organization/costs`) -> `BilledCost`.

Buckets (`start_time`, `end_time`, one day each) hold `organization.costs.result` rows:
`amount {value, currency}` (dollars, currency lowercase ISO 4217) and, when grouped, `line_item`,
`project_id`, `api_key_id`, `user_id`, `quantity`, `quantity_unit`. Amounts are read from the
JSON text as exact decimals (never through float).

A `line_item` such as `"gpt-4o-2024-08-06, input"` names the model before the comma; that part
becomes `BilledCost.model` so reconciliation can compare per model. Export with
`group_by=line_item` to get per-model lines.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

from tokenops.events import BilledCost
from tokenops.ingest._provider_reports import Bad, Result, amount, label, read_report
from tokenops.ingest._rows import Batch, stable_id
from tokenops.ingest.openai_usage import openai_span

NAME = "openai-costs"
COSTS = "organization.costs.result"


class OpenAICostsImporter:
    """Saved OpenAI Costs API pages: JSON (one page, or a list of pages) or JSON Lines of pages."""

    name = NAME
    description = "OpenAI Costs API pages (billed amounts per day, line item, project) as JSON or JSON Lines"
    patterns = ("*.json", "*.jsonl", "*.json.gz", "*.jsonl.gz")

    def read(self, path: Path) -> Iterator[Batch]:
        """Stream one saved file; a bad bucket or row is named, the others kept."""
        yield from read_report(path, openai_span, cost_record)


def cost_record(result: Result) -> BilledCost:
    """One costs result row as a billed cost line."""
    row, where = result.fields, result.where
    kind = row.get("object")
    if isinstance(kind, str) and kind.startswith("organization.usage."):
        raise Bad(f"{where} is a Usage API row; import this file with `tokenops import openai-usage`")
    if kind != COSTS:
        raise Bad(f"{where}.object is {kind!r}, expected {COSTS!r}")
    money = row.get("amount")
    if not isinstance(money, dict):
        raise Bad(f"{where}.amount is missing, expected an object {{value, currency}}")
    if money.get("value") is None:
        raise Bad(f"{where}.amount.value is missing, expected the amount in dollars")
    value = amount(money["value"], f"{where}.amount.value")
    currency = label(money, "currency", f"{where}.amount") or "usd"
    line_item = label(row, "line_item", where)
    project_id = label(row, "project_id", where)
    api_key_id = label(row, "api_key_id", where)
    user_id = label(row, "user_id", where)
    api_source = label(row, "api_source", where)
    unit = label(row, "quantity_unit", where)
    quantity = _quantity(row, where)
    tags = _tags(api_key_id=api_key_id, user_id=user_id, api_source=api_source)
    return BilledCost(
        cost_id=stable_id(NAME, *result.span, line_item, project_id, api_key_id, user_id, api_source),
        source=f"import:{NAME}",
        provider="openai",
        start=result.start,
        end=result.end,
        billed=value,
        currency=currency.upper(),
        service="OpenAI API",
        model=model_of(line_item),
        line_item=line_item,
        project_id=project_id,
        quantity=quantity,
        unit=unit,
        tags=tags,
    )


def model_of(line_item: str | None) -> str | None:
    """The model a line item is for: `"gpt-4o-2024-08-06, input"` -> `gpt-4o-2024-08-06`."""
    if line_item is None or ", " not in line_item:
        return None
    model = line_item.split(", ", 1)[0].strip()
    return model or None


def _tags(**values: str | None) -> dict[str, str]:
    return {key: value for key, value in values.items() if value is not None}


def _quantity(row: Mapping[str, Any], where: str) -> Decimal | None:
    value = row.get("quantity")
    return None if value is None else amount(value, f"{where}.quantity")


IMPORTER = OpenAICostsImporter()
