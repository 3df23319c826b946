"""Did tokenops see all the spend? Metered usage events against the providers' own reports.

Per day, provider and model it sets what the gateway, SDK and imports metered (`usage_events`)
beside what the provider reported (`provider_usage`: tokens, requests, tokens at list price)
and billed (`billed_costs`, usage charges in USD). The gap is what the provider charged that
tokenops did not meter: billed - metered, or, for a day and model with no billed line, the
provider's usage at list price - metered (`basis` says which).

Blocked and cache-served calls never reached the provider and are left out of the metered side.
Unpriced metered calls are counted (their cost is unknown, not zero), as is metered spend with
neither a user nor a team (unattributed). Provider rows with no model (a report exported without
`group_by=model` / `line_item`) are shown under the model `(no model)`.

The SQL is written once, for the ledger's query interface; it runs on DuckDB today.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

import pyarrow as pa

from tokenops.store import Ledger
from tokenops.store.rows import utc_naive

NO_MODEL = "(no model)"
"""Model shown for provider rows that do not name one."""


@dataclass(frozen=True, slots=True)
class Window:
    """Which days and provider a reconciliation covers; every field narrows it."""

    start: datetime | None = None
    """Inclusive start (tz-aware); compared with event time and bucket start."""
    end: datetime | None = None
    """Exclusive end (tz-aware)."""
    provider: str | None = None
    """Only this provider (`openai`, `anthropic` ...)."""

    def where(self, ts: str) -> tuple[str, list[object]]:
        """SQL condition on the time column `ts` (a fixed column name, never user input)."""
        clauses = ["TRUE"]
        params: list[object] = []
        if self.start is not None:
            clauses.append(f"{ts} >= ?")
            params.append(utc_naive(self.start))
        if self.end is not None:
            clauses.append(f"{ts} < ?")
            params.append(utc_naive(self.end))
        if self.provider is not None:
            clauses.append("provider = ?")
            params.append(self.provider)
        return " AND ".join(clauses), params


@dataclass(frozen=True, slots=True)
class Gap:
    """One day, provider and model: what was metered beside what the provider reported and billed."""

    day: date
    """UTC day."""
    provider: str
    """Provider."""
    model: str
    """Model (`(no model)` for provider rows without one)."""
    metered_calls: int
    """Calls tokenops metered that reached the provider."""
    metered_tokens: int
    """Their input + output tokens."""
    metered_cost: Decimal
    """Their priced cost, USD (unpriced calls excluded, counted below)."""
    unpriced_calls: int
    """Metered calls without a known price."""
    unpriced_tokens: int
    """Their tokens."""
    unattributed_cost: Decimal
    """Metered cost with neither a user nor a team."""
    reported_requests: int
    """Requests in the provider's usage report (0 when it does not count them)."""
    reported_tokens: int
    """Input + output tokens in the provider's usage report."""
    reported_cost: Decimal | None
    """The reported tokens at list price; None without a usage report (or when none of it could be priced)."""
    unpriced_buckets: int
    """Usage report rows tokenops could not price (their tokens are not in `reported_cost`)."""
    billed: Decimal | None
    """Usage charges billed, USD; None without a cost report line."""
    provider_cost: Decimal | None
    """What the gap is measured against: `billed`, else `reported_cost`."""
    basis: str | None
    """`billed`, `usage` (list price of the usage report) or None when the provider reported nothing."""
    gap: Decimal | None
    """Provider figure - metered cost, USD: spend tokenops did not capture (negative: metered more)."""
    gap_pct: Decimal | None
    """`gap` as a percentage of the provider figure."""
    captured_pct: Decimal | None
    """Metered cost as a percentage of the provider figure."""
    token_gap: int
    """Reported tokens - metered tokens."""


def reconcile_table(ledger: Ledger, window: Window = Window()) -> pa.Table:
    """The reconciliation, one row per day, provider and model, as Arrow (for `emit`)."""
    events_where, events_params = window.where("ts")
    usage_where, usage_params = window.where("start_ts")
    billed_where, billed_params = window.where("start_ts")
    sql = f"""
        WITH metered AS (
            SELECT CAST(ts AS DATE) AS day, provider, model,
                   count(*) AS calls,
                   sum(input_tokens + output_tokens)::BIGINT AS tokens,
                   coalesce(sum(cost_total), 0) AS cost,
                   count(*) FILTER (WHERE unpriced) AS unpriced_calls,
                   coalesce(sum(input_tokens + output_tokens) FILTER (WHERE unpriced), 0)::BIGINT AS unpriced_tokens,
                   coalesce(sum(cost_total) FILTER (WHERE user_id IS NULL AND team IS NULL), 0) AS unattributed
            FROM usage_events
            WHERE status NOT IN ('blocked', 'cached') AND {events_where}
            GROUP BY 1, 2, 3
        ), reported AS (
            SELECT CAST(start_ts AS DATE) AS day, provider, coalesce(model, '{NO_MODEL}') AS model,
                   sum(requests)::BIGINT AS requests,
                   sum(input_tokens + output_tokens)::BIGINT AS tokens,
                   sum(cost_total) AS cost,
                   count(*) FILTER (WHERE unpriced) AS unpriced_buckets
            FROM provider_usage WHERE {usage_where}
            GROUP BY 1, 2, 3
        ), billed AS (
            SELECT CAST(start_ts AS DATE) AS day, provider, coalesce(model, '{NO_MODEL}') AS model,
                   sum(billed) AS billed
            FROM billed_costs
            WHERE upper(currency) = 'USD' AND charge_category = 'Usage' AND {billed_where}
            GROUP BY 1, 2, 3
        ), keys AS (
            SELECT day, provider, model FROM metered
            UNION SELECT day, provider, model FROM reported
            UNION SELECT day, provider, model FROM billed
        ), joined AS (
            SELECT k.day, k.provider, k.model,
                   coalesce(m.calls, 0) AS metered_calls,
                   coalesce(m.tokens, 0) AS metered_tokens,
                   coalesce(m.cost, 0)::DECIMAL(38,12) AS metered_cost,
                   coalesce(m.unpriced_calls, 0) AS unpriced_calls,
                   coalesce(m.unpriced_tokens, 0) AS unpriced_tokens,
                   coalesce(m.unattributed, 0)::DECIMAL(38,12) AS unattributed_cost,
                   coalesce(r.requests, 0) AS reported_requests,
                   coalesce(r.tokens, 0) AS reported_tokens,
                   r.cost::DECIMAL(38,12) AS reported_cost,
                   coalesce(r.unpriced_buckets, 0) AS unpriced_buckets,
                   b.billed::DECIMAL(38,12) AS billed,
                   coalesce(b.billed, r.cost)::DECIMAL(38,12) AS provider_cost,
                   CASE WHEN b.billed IS NOT NULL THEN 'billed' WHEN r.cost IS NOT NULL THEN 'usage' END AS basis
            FROM keys k
            LEFT JOIN metered m ON m.day = k.day AND m.provider = k.provider AND m.model = k.model
            LEFT JOIN reported r ON r.day = k.day AND r.provider = k.provider AND r.model = k.model
            LEFT JOIN billed b ON b.day = k.day AND b.provider = k.provider AND b.model = k.model
        )
        SELECT day, provider, model, metered_calls, metered_tokens, metered_cost, unpriced_calls, unpriced_tokens,
               unattributed_cost, reported_requests, reported_tokens, reported_cost, unpriced_buckets, billed,
               provider_cost, basis,
               (provider_cost - metered_cost)::DECIMAL(38,12) AS gap,
               CASE WHEN provider_cost <> 0
                    THEN round((provider_cost - metered_cost) * 100 / provider_cost, 2)::DECIMAL(12,2) END AS gap_pct,
               CASE WHEN provider_cost <> 0
                    THEN round(metered_cost * 100 / provider_cost, 2)::DECIMAL(12,2) END AS captured_pct,
               (reported_tokens - metered_tokens)::BIGINT AS token_gap
        FROM joined
        ORDER BY day, provider, model
    """
    return ledger.query(sql, [*events_params, *usage_params, *billed_params])


def reconcile(ledger: Ledger, window: Window = Window()) -> list[Gap]:
    """The reconciliation as typed rows, oldest day first."""
    return [_gap(row) for row in reconcile_table(ledger, window).to_pylist()]


@dataclass(frozen=True, slots=True)
class Totals:
    """A reconciliation summed over its days and models."""

    metered_cost: Decimal
    """Priced metered spend, USD."""
    provider_cost: Decimal
    """What the providers billed (or, where no bill was imported, reported at list price), USD."""
    gap: Decimal
    """provider_cost - metered_cost over the rows with a provider figure."""
    captured_pct: Decimal | None
    """Metered as a percentage of the provider figure; None when the providers reported nothing."""
    unpriced_calls: int
    """Metered calls without a price."""
    unattributed_cost: Decimal
    """Metered spend with neither a user nor a team."""


def totals(gaps: list[Gap]) -> Totals:
    """Sum a reconciliation; rows the providers did not report are left out of the gap."""
    compared = [g for g in gaps if g.basis is not None]
    metered = sum((g.metered_cost for g in compared), Decimal(0))
    provider = sum((g.provider_cost or Decimal(0) for g in compared), Decimal(0))
    return Totals(
        metered_cost=sum((g.metered_cost for g in gaps), Decimal(0)),
        provider_cost=provider,
        gap=provider - metered,
        captured_pct=round(metered * 100 / provider, 2) if provider else None,
        unpriced_calls=sum(g.unpriced_calls for g in gaps),
        unattributed_cost=sum((g.unattributed_cost for g in gaps), Decimal(0)),
    )


def _gap(row: dict[str, object]) -> Gap:
    def money(key: str) -> Decimal | None:
        value = row[key]
        return None if value is None else Decimal(str(value))

    def count(key: str) -> int:
        return int(str(row[key]))

    day = row["day"]
    assert isinstance(day, date)
    return Gap(
        day=day,
        provider=str(row["provider"]),
        model=str(row["model"]),
        metered_calls=count("metered_calls"),
        metered_tokens=count("metered_tokens"),
        metered_cost=money("metered_cost") or Decimal(0),
        unpriced_calls=count("unpriced_calls"),
        unpriced_tokens=count("unpriced_tokens"),
        unattributed_cost=money("unattributed_cost") or Decimal(0),
        reported_requests=count("reported_requests"),
        reported_tokens=count("reported_tokens"),
        reported_cost=money("reported_cost"),
        unpriced_buckets=count("unpriced_buckets"),
        billed=money("billed"),
        provider_cost=money("provider_cost"),
        basis=None if row["basis"] is None else str(row["basis"]),
        gap=money("gap"),
        gap_pct=money("gap_pct"),
        captured_pct=money("captured_pct"),
        token_gap=count("token_gap"),
    )
