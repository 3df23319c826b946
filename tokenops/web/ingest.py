"""`POST /api/ingest`: events, task runs and outcomes shipped by SDKs running elsewhere.

Authenticated with a tokenops virtual key (its user and team fill in rows that have none),
validated at the boundary, and idempotent: a batch shipped twice (a retry after a timeout) is
written once.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.routing import Route

from tokenops.gateway.keys import KeyInfo, KeyStore
from tokenops.store import Ledger
from tokenops.store.rows import to_arrow
from tokenops.web.responses import JSON, error


class _Row(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EventIn(_Row):
    """A usage event row as `tokenops.store.rows.event_row` writes it."""

    request_id: str = Field(min_length=1)
    ts: datetime
    provider: str
    model: str
    model_requested: str | None = None
    operation: str = "chat"
    input_tokens: int = Field(ge=0)
    cache_read_tokens: int = Field(0, ge=0)
    cache_write_tokens: int = Field(0, ge=0)
    cache_write_1h_tokens: int = Field(0, ge=0)
    output_tokens: int = Field(ge=0)
    reasoning_tokens: int = Field(0, ge=0)
    batch: bool = False
    status: str = "ok"
    error_type: str | None = None
    latency_ms: float | None = None
    ttft_ms: float | None = None
    cost_input: Decimal | None = None
    cost_cache_read: Decimal | None = None
    cost_cache_write: Decimal | None = None
    cost_output: Decimal | None = None
    cost_other: Decimal | None = None
    cost_total: Decimal | None = None
    unpriced: bool
    price_source: str
    estimated: bool = False
    source: str = "sdk"
    api_key_id: str | None = None
    user_id: str | None = None
    team: str | None = None
    feature: str | None = None
    workflow: str | None = None
    task_run_id: str | None = None
    step: str | None = None
    iteration: int | None = None
    customer: str | None = None
    tags: str | None = None


class TaskRunIn(_Row):
    """A task run row."""

    task_run_id: str = Field(min_length=1)
    workflow: str
    status: str
    started_at: datetime
    ended_at: datetime | None = None
    user_id: str | None = None
    team: str | None = None
    customer: str | None = None
    tags: str | None = None


class OutcomeIn(_Row):
    """An outcome row with the task runs it links to."""

    outcome_id: str = Field(min_length=1)
    ts: datetime
    outcome_type: str
    value: Decimal | None = None
    workflow: str | None = None
    person_id: str | None = None
    team: str | None = None
    task_run_ids: list[str] = Field(default_factory=list)


class Batch(_Row):
    """One shipment."""

    events: list[EventIn] = Field(default_factory=list)
    task_runs: list[TaskRunIn] = Field(default_factory=list)
    outcomes: list[OutcomeIn] = Field(default_factory=list)


def _naive(row: dict[str, Any]) -> dict[str, Any]:
    for name, value in row.items():
        if isinstance(value, datetime):
            row[name] = (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC).replace(tzinfo=None)
    return row


def _write(ledger: Ledger, batch: Batch, key: KeyInfo) -> dict[str, int]:
    events = []
    for event in batch.events:
        row = _naive(event.model_dump())
        row["api_key_id"] = row["api_key_id"] or key.key_id
        row["user_id"] = row["user_id"] or key.user
        row["team"] = row["team"] or key.team
        events.append(row)
    runs = [_naive(run.model_dump()) for run in batch.task_runs]
    outcomes, links = [], []
    for outcome in batch.outcomes:
        row = _naive(outcome.model_dump())
        links += [{"outcome_id": row["outcome_id"], "task_run_id": t} for t in row.pop("task_run_ids")]
        outcomes.append(row)
    written = {"events": 0, "task_runs": 0, "outcomes": 0}
    if events:
        written["events"] = ledger.append("usage_events", to_arrow("usage_events", events))
    if runs:
        written["task_runs"] = ledger.append("task_runs", to_arrow("task_runs", runs))
    if outcomes:
        written["outcomes"] = ledger.append("outcomes", to_arrow("outcomes", outcomes))
        ledger.append("outcome_task_runs", to_arrow("outcome_task_runs", links))
    return written


async def ingest(request: Request) -> JSON:
    """Write a shipped batch; 401 without a valid key, 422 naming the bad field."""
    keys: KeyStore = request.app.state.gateway.keys
    header = request.headers.get("authorization", "")
    key = keys.lookup(header[7:].strip()) if header[:7].lower() == "bearer " else None
    if key is None:
        return error(401, "Invalid or missing tokenops key; create one with `tokenops keys create`")
    try:
        batch = Batch.model_validate_json(await request.body())
    except ValidationError as exc:
        return error(422, f"Invalid batch: {exc}")
    written = await run_in_threadpool(_write, request.app.state.ledger, batch, key)
    return JSON({"written": written})


routes = [Route("/api/ingest", ingest, methods=["POST"])]
