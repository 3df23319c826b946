"""`POST /api/outcomes`: business outcomes reported by the systems where they happen.

A CRM marking a lead qualified, a helpdesk closing a ticket: they post outcomes with a tokenops
virtual key, linked to the task runs that produced them or to the person credited. The body is
validated at the boundary (unknown fields refused) and every error names the item and field.
A key scoped to a team may only post outcomes for that team: an outcome naming another team, or
linked to another team's task runs, is refused. Posting is idempotent on `outcome_id`, so a
retry after a timeout records nothing twice.

    POST /api/outcomes
    Authorization: Bearer tok-...
    {"outcomes": [{"outcome_id": "crm-881", "ts": "2026-03-02T14:05:00Z", "outcome_type": "lead_qualified",
                   "value": "120.00", "task_run_ids": ["task-1"], "workflow": "lead_scoring"}]}

    200 {"received": 1, "written": 1, "duplicates": 0}
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.routing import Route

from tokenops.events import Outcome
from tokenops.gateway.keys import KeyInfo, KeyStore
from tokenops.ingest._time import person_key
from tokenops.store import Ledger
from tokenops.web.responses import JSON, error

MAX_OUTCOMES = 10_000
"""Outcomes per request; send more in several requests."""

Id = Annotated[str, Field(min_length=1, max_length=256)]


class OutcomeIn(BaseModel):
    """One outcome as posted."""

    model_config = ConfigDict(extra="forbid")

    outcome_id: Id
    ts: datetime
    outcome_type: Id
    value: Annotated[Decimal, Field(allow_inf_nan=False)] | None = None
    task_run_ids: list[Id] = Field(default_factory=list, max_length=1_000)
    workflow: Id | None = None
    person: Id | None = None
    team: Id | None = None

    def record(self, team: str | None) -> Outcome:
        """The ledger record (a time without an offset is UTC)."""
        ts = self.ts if self.ts.tzinfo else self.ts.replace(tzinfo=UTC)
        return Outcome(
            outcome_id=self.outcome_id,
            ts=ts.astimezone(UTC),
            outcome_type=self.outcome_type,
            value=self.value,
            task_run_ids=tuple(dict.fromkeys(self.task_run_ids)),
            workflow=self.workflow,
            person=person_key(self.person) if self.person else None,
            team=team,
        )


class OutcomesIn(BaseModel):
    """The request body."""

    model_config = ConfigDict(extra="forbid")

    outcomes: list[OutcomeIn] = Field(min_length=1, max_length=MAX_OUTCOMES)


class Refused(Exception):
    """A request that validated but may not be written: (status, message)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _key(request: Request) -> KeyInfo | None:
    keys: KeyStore = request.app.state.gateway.keys
    header = request.headers.get("authorization", "")
    return keys.lookup(header[7:].strip()) if header[:7].lower() == "bearer " else None


def _invalid(exc: ValidationError) -> JSON:
    """422 naming each bad item and field: `outcomes[2].value: Input should be a valid decimal`."""
    problems: list[dict[str, object]] = []
    messages: list[str] = []
    for err in exc.errors(include_url=False):
        loc = list(err["loc"])
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".") or "body"
        index = loc[1] if len(loc) > 1 and loc[0] == "outcomes" and isinstance(loc[1], int) else None
        field = ".".join(str(p) for p in (loc[2:] if index is not None else loc))
        messages.append(f"{where}: {err['msg']}")
        problems.append({"index": index, "field": field or None, "message": messages[-1]})
    shown = "; ".join(messages[:5]) + (f" (and {len(messages) - 5} more)" if len(messages) > 5 else "")
    return JSON({"error": {"message": f"Invalid outcomes: {shown}", "status": 422, "problems": problems}}, 422)


def _check(ledger: Ledger, body: OutcomesIn, key: KeyInfo) -> list[Outcome]:
    """Records to write; Refused for an outcome that links nothing or reaches outside the key's team."""
    for i, item in enumerate(body.outcomes):
        if not item.task_run_ids and not item.person:
            raise Refused(422, f"outcomes[{i}].task_run_ids: empty and no person; link the outcome to something")
        if key.team is not None and item.team not in (None, key.team):
            raise Refused(403, f"outcomes[{i}].team is {item.team!r} but this key may only post for {key.team!r}")
    if key.team is not None:
        _check_runs(ledger, body, key.team)
    return [item.record(item.team or key.team) for item in body.outcomes]


def _check_runs(ledger: Ledger, body: OutcomesIn, team: str) -> None:
    """Linked task runs already in the ledger must be the key's team's."""
    ids = sorted({t for item in body.outcomes for t in item.task_run_ids})
    if not ids:
        return
    rows = ledger.query_rows(
        "SELECT task_run_id, team FROM task_runs WHERE task_run_id IN (SELECT unnest(?)) AND team IS NOT NULL "
        "AND team <> ?",
        [ids, team],
    )
    foreign = {str(r["task_run_id"]): r["team"] for r in rows}
    for i, item in enumerate(body.outcomes):
        for run in item.task_run_ids:
            if run in foreign:
                raise Refused(
                    403,
                    f"outcomes[{i}].task_run_ids: task run {run!r} belongs to team {foreign[run]!r}; "
                    f"this key may only post for {team!r}",
                )


def _write(ledger: Ledger, body: OutcomesIn, key: KeyInfo) -> dict[str, int]:
    records = _check(ledger, body, key)
    written = ledger.record_outcomes(records)
    return {"received": len(records), "written": written, "duplicates": len(records) - written}


async def post_outcomes(request: Request) -> JSON:
    """Record posted outcomes: 401 without a valid key, 422 naming the bad item and field, 403 outside the team."""
    key = _key(request)
    if key is None:
        return error(
            401, "Invalid or missing tokenops key; send `Authorization: Bearer tok-...` (tokenops keys create)"
        )
    raw = await request.body()
    try:
        body = OutcomesIn.model_validate_json(raw)
    except ValidationError as exc:
        if any(e["type"] == "json_invalid" for e in exc.errors()):
            return error(400, 'The body is not valid JSON; send {"outcomes": [...]}')
        return _invalid(exc)
    try:
        counts = await run_in_threadpool(_write, request.app.state.ledger, body, key)
    except Refused as exc:
        return error(exc.status, exc.message)
    return JSON(counts)


routes = [Route("/api/outcomes", post_outcomes, methods=["POST"])]
