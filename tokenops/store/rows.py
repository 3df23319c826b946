"""Records to Arrow tables and back: the only place that knows both shapes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast

import orjson

from tokenops.events import (
    Attribution,
    BilledCost,
    Cost,
    Outcome,
    Person,
    ProviderUsage,
    SeatLicense,
    TaskRun,
    TimeEntry,
    TokenUsage,
    UsageEvent,
)
from tokenops.events.usage import EventStatus
from tokenops.store.schema import MONEY_QUANTUM, TABLES

if TYPE_CHECKING:
    import pyarrow as pa

ARROW_SLICE = 256
"""Rows converted to Arrow per call: the conversion holds the GIL, so a server's event loop waits on it."""


def utc_naive(ts: datetime) -> datetime:
    """Stored form of a timestamp: UTC, zone dropped."""
    if ts.tzinfo is None:
        raise ValueError(f"timestamp {ts!r} has no time zone; tokenops stores tz-aware UTC times")
    return ts.astimezone(UTC).replace(tzinfo=None)


def utc_aware(ts: datetime) -> datetime:
    """Read form of a stored timestamp."""
    return ts.replace(tzinfo=UTC)


def money(value: Decimal | None) -> Decimal | None:
    """Quantise to the store's 12 decimal places."""
    return None if value is None else value.quantize(MONEY_QUANTUM)


def _tags(tags: Mapping[str, str]) -> str | None:
    return orjson.dumps(dict(tags), option=orjson.OPT_SORT_KEYS).decode() if tags else None


def event_row(event: UsageEvent) -> dict[str, object]:
    """One usage event as a ledger row."""
    u, a, c = event.usage, event.attribution, event.cost
    return {
        "request_id": event.request_id,
        "ts": utc_naive(event.ts),
        "provider": event.provider,
        "model": event.model,
        "model_requested": event.model_requested,
        "operation": event.operation,
        "input_tokens": u.input_tokens,
        "cache_read_tokens": u.cache_read_tokens,
        "cache_write_tokens": u.cache_write_tokens,
        "cache_write_1h_tokens": u.cache_write_1h_tokens,
        "output_tokens": u.output_tokens,
        "reasoning_tokens": u.reasoning_tokens,
        "batch": event.batch,
        "status": event.status,
        "error_type": event.error_type,
        "latency_ms": event.latency_ms,
        "ttft_ms": event.ttft_ms,
        "cost_input": money(c.input) if c else None,
        "cost_cache_read": money(c.cache_read) if c else None,
        "cost_cache_write": money(c.cache_write) if c else None,
        "cost_output": money(c.output) if c else None,
        "cost_other": money(c.other) if c else None,
        "cost_total": money(c.total) if c else None,
        "unpriced": c is None,
        "price_source": event.price_source,
        "estimated": event.estimated,
        "source": event.source,
        "api_key_id": a.api_key_id,
        "user_id": a.user,
        "team": a.team,
        "feature": a.feature,
        "workflow": a.workflow,
        "task_run_id": a.task_run_id,
        "step": a.step,
        "iteration": a.iteration,
        "customer": a.customer,
        "tags": _tags(a.tags),
    }


def event_from_row(row: Mapping[str, Any]) -> UsageEvent:
    """Rebuild a usage event from a ledger row."""
    cost = None
    if not row["unpriced"]:
        cost = Cost(
            input=row["cost_input"],
            cache_read=row["cost_cache_read"],
            cache_write=row["cost_cache_write"],
            output=row["cost_output"],
            other=row["cost_other"],
        )
    return UsageEvent(
        request_id=row["request_id"],
        ts=utc_aware(row["ts"]),
        provider=row["provider"],
        model=row["model"],
        model_requested=row["model_requested"],
        operation=row["operation"],
        usage=TokenUsage(
            input_tokens=row["input_tokens"],
            cache_read_tokens=row["cache_read_tokens"],
            cache_write_tokens=row["cache_write_tokens"],
            cache_write_1h_tokens=row["cache_write_1h_tokens"],
            output_tokens=row["output_tokens"],
            reasoning_tokens=row["reasoning_tokens"],
        ),
        cost=cost,
        price_source=row["price_source"],
        batch=row["batch"],
        status=cast(EventStatus, row["status"]),
        error_type=row["error_type"],
        latency_ms=row["latency_ms"],
        ttft_ms=row["ttft_ms"],
        estimated=row["estimated"],
        source=row["source"],
        attribution=Attribution(
            api_key_id=row["api_key_id"],
            user=row["user_id"],
            team=row["team"],
            feature=row["feature"],
            workflow=row["workflow"],
            task_run_id=row["task_run_id"],
            step=row["step"],
            iteration=row["iteration"],
            customer=row["customer"],
            tags=orjson.loads(row["tags"]) if row["tags"] else {},
        ),
    )


def task_run_row(run: TaskRun) -> dict[str, object]:
    """One task run as a ledger row."""
    return {
        "task_run_id": run.task_run_id,
        "workflow": run.workflow,
        "status": run.status,
        "started_at": utc_naive(run.started_at),
        "ended_at": utc_naive(run.ended_at) if run.ended_at else None,
        "user_id": run.user,
        "team": run.team,
        "customer": run.customer,
        "tags": _tags(run.tags),
    }


def outcome_rows(outcome: Outcome) -> tuple[dict[str, object], list[dict[str, object]]]:
    """An outcome row and its links to task runs."""
    row: dict[str, object] = {
        "outcome_id": outcome.outcome_id,
        "ts": utc_naive(outcome.ts),
        "outcome_type": outcome.outcome_type,
        "value": money(outcome.value),
        "workflow": outcome.workflow,
        "person_id": outcome.person,
        "team": outcome.team,
    }
    links: list[dict[str, object]] = [
        {"outcome_id": outcome.outcome_id, "task_run_id": t} for t in outcome.task_run_ids
    ]
    return row, links


def person_row(person: Person) -> dict[str, object]:
    """One person as a ledger row."""
    return {
        "person_id": person.person_id,
        "team": person.team,
        "loaded_hourly_cost": money(person.loaded_hourly_cost),
        "name": person.name,
        "role": person.role,
        "start_date": person.start_date,
    }


def seat_row(seat: SeatLicense) -> dict[str, object]:
    """One seat licence as a ledger row."""
    return {
        "person_id": seat.person_id,
        "tool": seat.tool,
        "monthly_cost": money(seat.monthly_cost),
        "start_date": seat.start_date,
        "end_date": seat.end_date,
    }


def time_entry_row(entry: TimeEntry) -> dict[str, object]:
    """One time entry as a ledger row."""
    return {
        "entry_id": entry.entry_id,
        "person_id": entry.person_id,
        "activity": entry.activity,
        "start": utc_naive(entry.start),
        "duration_hours": entry.duration_hours.quantize(Decimal("1e-6")),
        "tool": entry.tool,
        "workflow": entry.workflow,
    }


def provider_usage_row(report: ProviderUsage) -> dict[str, object]:
    """One provider usage bucket as a ledger row."""
    u = report.usage
    return {
        "usage_id": report.usage_id,
        "source": report.source,
        "provider": report.provider,
        "start_ts": utc_naive(report.start),
        "end_ts": utc_naive(report.end),
        "model": report.model,
        "requests": report.requests,
        "input_tokens": u.input_tokens,
        "cache_read_tokens": u.cache_read_tokens,
        "cache_write_tokens": u.cache_write_tokens,
        "cache_write_1h_tokens": u.cache_write_1h_tokens,
        "output_tokens": u.output_tokens,
        "reasoning_tokens": u.reasoning_tokens,
        "batch": report.batch,
        "project_id": report.project_id,
        "user_id": report.user_id,
        "api_key_id": report.api_key_id,
        "cost_total": money(report.cost.total) if report.cost is not None else None,
        "unpriced": report.cost is None,
        "price_source": report.price_source,
        "tags": _tags(report.tags),
    }


def billed_cost_row(line: BilledCost) -> dict[str, object]:
    """One billed cost line as a ledger row."""
    return {
        "cost_id": line.cost_id,
        "source": line.source,
        "provider": line.provider,
        "start_ts": utc_naive(line.start),
        "end_ts": utc_naive(line.end),
        "billed": money(line.billed),
        "currency": line.currency,
        "effective": money(line.effective),
        "list_cost": money(line.list_cost),
        "service": line.service,
        "model": line.model,
        "line_item": line.line_item,
        "charge_category": line.charge_category,
        "project_id": line.project_id,
        "account_id": line.account_id,
        "quantity": line.quantity.quantize(Decimal("1e-6")) if line.quantity is not None else None,
        "unit": line.unit,
        "tags": _tags(line.tags),
    }


def to_arrow(table: str, rows: Iterable[Mapping[str, object]] | Sequence[Mapping[str, object]]) -> pa.Table:
    """Rows of a ledger table as an Arrow table with the store's exact types.

    Converted `ARROW_SLICE` rows at a time: between slices a server's event loop gets the
    interpreter back instead of stalling for a whole batch (~3 us a row).
    """
    import pyarrow as pa

    data = list(rows)
    schema = TABLES[table].arrow_schema
    if len(data) <= ARROW_SLICE:
        return pa.Table.from_pylist(data, schema=schema)
    return pa.concat_tables(
        [pa.Table.from_pylist(data[i : i + ARROW_SLICE], schema=schema) for i in range(0, len(data), ARROW_SLICE)]
    )
