"""The ledger as a FOCUS 1.2 cost and usage file, for chargeback in FinOps tools.

Grain: one row per UTC day x provider x model x team x user x workflow x customer x price source,
with priced and unpriced calls apart. Only calls that reached a provider are exported (status
`ok` and `error`); `blocked` and `cached` calls cost nothing and consumed no provider tokens.

Costs. The ledger holds one price per call (list price with the organisation's overrides), so
BilledCost, EffectiveCost, ContractedCost and ListCost all carry it. Unpriced usage cannot be
NULL (FOCUS forbids a null BilledCost) and must not pass for free: its rows have cost 0 with
`x_Unpriced` = true and a ChargeDescription starting `UNPRICED`, and the report counts them so
the command can warn. FOCUS 1.2 columns come first (alphabetical, as the spec lists them), then
the 1.3 names ServiceProviderName and HostProviderName, then tokenops' own `x_` columns.
"""

from __future__ import annotations

import csv
import gzip
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, Final

import pyarrow as pa
import pyarrow.parquet as pq

from tokenops.errors import TokenopsError
from tokenops.store import Ledger
from tokenops.store.rows import utc_naive

_MONEY = pa.decimal128(38, 12)
_TIME = pa.timestamp("us", tz="UTC")

FOCUS_COLUMNS: Final[tuple[tuple[str, pa.DataType], ...]] = (
    ("BilledCost", _MONEY),
    ("BillingAccountId", pa.string()),
    ("BillingAccountName", pa.string()),
    ("BillingCurrency", pa.string()),
    ("BillingPeriodEnd", _TIME),
    ("BillingPeriodStart", _TIME),
    ("ChargeCategory", pa.string()),
    ("ChargeClass", pa.string()),
    ("ChargeDescription", pa.string()),
    ("ChargeFrequency", pa.string()),
    ("ChargePeriodEnd", _TIME),
    ("ChargePeriodStart", _TIME),
    ("ConsumedQuantity", pa.int64()),
    ("ConsumedUnit", pa.string()),
    ("ContractedCost", _MONEY),
    ("EffectiveCost", _MONEY),
    ("InvoiceIssuerName", pa.string()),
    ("ListCost", _MONEY),
    ("PricingCategory", pa.string()),
    ("PricingQuantity", pa.int64()),
    ("PricingUnit", pa.string()),
    ("ProviderName", pa.string()),
    ("PublisherName", pa.string()),
    ("ServiceCategory", pa.string()),
    ("ServiceName", pa.string()),
    ("ServiceSubcategory", pa.string()),
    ("SkuId", pa.string()),
    ("SkuPriceId", pa.string()),
    ("SubAccountId", pa.string()),
    ("SubAccountName", pa.string()),
    ("Tags", pa.string()),
    ("ServiceProviderName", pa.string()),
    ("HostProviderName", pa.string()),
    ("x_Provider", pa.string()),
    ("x_Model", pa.string()),
    ("x_Team", pa.string()),
    ("x_User", pa.string()),
    ("x_Workflow", pa.string()),
    ("x_Customer", pa.string()),
    ("x_Calls", pa.int64()),
    ("x_TaskRuns", pa.int64()),
    ("x_InputTokens", pa.int64()),
    ("x_CachedTokens", pa.int64()),
    ("x_CacheWriteTokens", pa.int64()),
    ("x_OutputTokens", pa.int64()),
    ("x_ReasoningTokens", pa.int64()),
    ("x_Unpriced", pa.bool_()),
)
"""Every exported column and its Parquet type, in file order."""

_SCHEMA = pa.schema([pa.field(name, kind) for name, kind in FOCUS_COLUMNS])

_VENDORS: Final = {
    "openai": ("OpenAI", "OpenAI API"),
    "anthropic": ("Anthropic", "Anthropic API"),
    "azure": ("Microsoft", "Azure OpenAI"),
    "aws": ("AWS", "Amazon Bedrock"),
    "bedrock": ("AWS", "Amazon Bedrock"),
    "google": ("Google", "Gemini API"),
    "google-vertex": ("Google", "Vertex AI"),
    "mistral": ("Mistral AI", "Mistral API"),
    "cohere": ("Cohere", "Cohere API"),
    "deepseek": ("DeepSeek", "DeepSeek API"),
    "x-ai": ("xAI", "xAI API"),
    "groq": ("Groq", "GroqCloud"),
}
"""tokenops provider id -> (FOCUS ProviderName, ServiceName); others use the id for both."""

_SQL = """
    SELECT date_trunc('day', ts) AS day, provider, model, team, user_id, workflow, customer, unpriced, price_source,
        count(*) AS calls, count(DISTINCT task_run_id) AS task_runs,
        sum(input_tokens) AS input_tokens, sum(cache_read_tokens) AS cache_read_tokens,
        sum(cache_write_tokens) AS cache_write_tokens, sum(output_tokens) AS output_tokens,
        sum(reasoning_tokens) AS reasoning_tokens, coalesce(sum(cost_total), 0)::DECIMAL(38,12) AS cost
    FROM usage_events
    WHERE ts >= ? AND ts < ? AND status IN ('ok', 'error')
    GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9
    ORDER BY 1, 2, 3, 4, 5, 6, 7, 8, 9
"""


class UnsupportedFormat(TokenopsError):
    """The output file name does not end in .csv, .csv.gz or .parquet."""


@dataclass(frozen=True, slots=True)
class ExportReport:
    """What an export wrote, for the command's summary and warnings."""

    path: Path
    """File written."""
    rows: int
    """FOCUS rows written."""
    calls: int
    """Model calls they cover."""
    billed: Decimal
    """Sum of BilledCost (priced usage only)."""
    unpriced_rows: int
    """Rows of usage without a price (cost 0 as a placeholder, x_Unpriced = true)."""
    unpriced_calls: int
    """Calls in those rows."""
    unpriced_tokens: int
    """Tokens in those rows."""


def export_focus(
    ledger: Ledger,
    out: Path,
    *,
    start: datetime,
    end: datetime,
    account_id: str = "tokenops",
    account_name: str = "tokenops",
) -> ExportReport:
    """Write the ledger's usage in [start, end) as FOCUS 1.2 rows to `out` (.csv, .csv.gz or .parquet).

    Args:
        ledger: Ledger to read.
        out: File to write; its suffix chooses the format.
        start: Inclusive start (tz-aware).
        end: Exclusive end (tz-aware).
        account_id: FOCUS BillingAccountId of every row (who receives the chargeback).
        account_name: FOCUS BillingAccountName.
    """
    name = out.name.lower()
    if not name.endswith((".csv", ".csv.gz", ".parquet")):
        raise UnsupportedFormat(f"cannot tell the format of {str(out)!r}; name it .csv, .csv.gz or .parquet")
    groups = ledger.query(_SQL, [utc_naive(start), utc_naive(end)]).to_pylist()
    rows = [_row(g, account_id, account_name) for g in groups]
    out.parent.mkdir(parents=True, exist_ok=True)
    if name.endswith(".parquet"):
        pq.write_table(pa.Table.from_pylist(rows, schema=_SCHEMA), out)
    else:
        with _open_text(out) as handle:
            _write_csv(handle, rows)
    unpriced = [g for g in groups if g["unpriced"]]
    return ExportReport(
        path=out,
        rows=len(rows),
        calls=sum(int(g["calls"]) for g in groups),
        billed=sum((g["cost"] for g in groups if not g["unpriced"]), Decimal(0)),
        unpriced_rows=len(unpriced),
        unpriced_calls=sum(int(g["calls"]) for g in unpriced),
        unpriced_tokens=sum(int(g["input_tokens"]) + int(g["output_tokens"]) for g in unpriced),
    )


def _row(group: Mapping[str, Any], account_id: str, account_name: str) -> dict[str, object]:
    """One FOCUS row from one ledger group."""
    start = group["day"].replace(tzinfo=UTC)  # date_trunc of a TIMESTAMP: a naive UTC datetime
    period_start = start.replace(day=1)
    period_end = (period_start + timedelta(days=32)).replace(day=1)
    provider, model = str(group["provider"]), str(group["model"])
    vendor, service = _VENDORS.get(provider, (provider, provider))
    tokens = int(group["input_tokens"]) + int(group["output_tokens"])
    unpriced = bool(group["unpriced"])
    cost = Decimal(0) if unpriced else group["cost"]
    team, user, workflow, customer = (group[k] for k in ("team", "user_id", "workflow", "customer"))
    dims = {"team": team, "user": user, "workflow": workflow, "customer": customer}
    return {
        "BilledCost": cost,
        "BillingAccountId": account_id,
        "BillingAccountName": account_name,
        "BillingCurrency": "USD",
        "BillingPeriodEnd": period_end,
        "BillingPeriodStart": period_start,
        "ChargeCategory": "Usage",
        "ChargeClass": None,
        "ChargeDescription": _description(group, provider, model, tokens),
        "ChargeFrequency": "Usage-Based",
        "ChargePeriodEnd": start + timedelta(days=1),
        "ChargePeriodStart": start,
        "ConsumedQuantity": tokens,
        "ConsumedUnit": "Tokens",
        "ContractedCost": cost,
        "EffectiveCost": cost,
        "InvoiceIssuerName": vendor,
        "ListCost": cost,
        "PricingCategory": "Standard",
        "PricingQuantity": tokens,
        "PricingUnit": "Tokens",
        "ProviderName": vendor,
        "PublisherName": vendor,
        "ServiceCategory": "AI and Machine Learning",
        "ServiceName": service,
        "ServiceSubcategory": "Generative AI",
        "SkuId": f"{provider}/{model}",
        "SkuPriceId": None if unpriced else group["price_source"],
        "SubAccountId": team,
        "SubAccountName": team,
        "Tags": json.dumps({k: v for k, v in dims.items() if v is not None}, sort_keys=True),
        "ServiceProviderName": vendor,
        "HostProviderName": vendor,
        "x_Provider": provider,
        "x_Model": model,
        "x_Team": team,
        "x_User": user,
        "x_Workflow": workflow,
        "x_Customer": customer,
        "x_Calls": group["calls"],
        "x_TaskRuns": group["task_runs"],
        "x_InputTokens": group["input_tokens"],
        "x_CachedTokens": group["cache_read_tokens"],
        "x_CacheWriteTokens": group["cache_write_tokens"],
        "x_OutputTokens": group["output_tokens"],
        "x_ReasoningTokens": group["reasoning_tokens"],
        "x_Unpriced": unpriced,
    }


def _description(group: Mapping[str, Any], provider: str, model: str, tokens: int) -> str:
    calls = f"{group['calls']:,} calls, {tokens:,} tokens"
    if group["unpriced"]:
        return (
            f"UNPRICED: {model} via {provider}, {calls}; no price is known, so the cost is unknown "
            "(0 is a placeholder, not a price); add a price override in tokenops.toml [pricing]"
        )
    return f"{model} via {provider}: {calls}"


def _open_text(out: Path) -> IO[str]:
    if out.name.lower().endswith(".gz"):
        return gzip.open(out, "wt", encoding="utf-8", newline="")
    return out.open("w", encoding="utf-8", newline="")


def _write_csv(handle: IO[str], rows: list[dict[str, object]]) -> None:
    writer = csv.writer(handle)
    writer.writerow(name for name, _ in FOCUS_COLUMNS)
    for row in rows:
        writer.writerow(_cells(row))


def _cells(row: dict[str, object]) -> Iterator[str]:
    """CSV text: NULL as an empty field, datetimes as ISO 8601 UTC with Z, money exact, booleans lower-case."""
    for name, _ in FOCUS_COLUMNS:
        value = row[name]
        if value is None:
            yield ""
        elif isinstance(value, bool):
            yield "true" if value else "false"
        elif isinstance(value, Decimal):
            yield format(value.normalize(), "f")
        elif isinstance(value, datetime):
            yield value.strftime("%Y-%m-%dT%H:%M:%SZ")
        else:
            yield str(value)
