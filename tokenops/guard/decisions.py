"""What the guard is asked (`CallFacts`) and what it answers (`Admission` or `Refusal`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal, TypedDict
from zoneinfo import ZoneInfo

from tokenops.guard.counters import Charge, from_nano

Unit = Literal["usd", "tokens", "calls", "requests"]
"""What a counter counts."""
Kind = Literal["task_budget", "quota", "rate_limit", "iteration_cap"]
"""Which kind of policy a counter enforces."""


@dataclass(frozen=True, slots=True)
class CallFacts:
    """What the guard needs to know about a call before it is made."""

    ts: datetime
    """When the call is made (tz-aware); picks the quota period and the rate-limit minute."""
    model: str
    """Model the caller asked for."""
    provider: str | None
    """genai-prices provider id used to price the worst case."""
    input_tokens: int
    """Estimate of the prompt size (an upper bound is fine)."""
    max_output_tokens: int | None
    """The request's own output limit, if it has one (0 for routes that generate nothing, e.g. embeddings)."""
    workflow: str | None = None
    """Workflow (task type)."""
    team: str | None = None
    """Team charged."""
    task_run_id: str | None = None
    """Task run the call belongs to; task budgets and call caps count per task run."""
    key_id: str | None = None
    """Virtual key id (never the secret)."""
    user: str | None = None
    """Person or service account."""
    customer: str | None = None
    """External customer served."""
    iteration: int | None = None
    """Agent loop iteration, counted from 1 (iteration caps, escalation grants)."""


@dataclass(frozen=True, slots=True)
class Metered:
    """One counter a call is charged to, and the policy behind it."""

    charge: Charge
    """Key, worst-case amount, enforced limit (None when the policy only alerts) and TTL."""
    kind: Kind
    """Policy kind: names the refusal type."""
    policy: str
    """Policy name."""
    unit: Unit
    """What is counted."""
    subject: str
    """Who or what is counted, for messages: `task run 'r-1'`, `team 'support'`."""
    budget: int | None = None
    """The policy's limit in counter units, enforced or not (shares and alerts refer to it)."""
    warn_at: Decimal | None = None
    """Share that raises a soft warning and one alert; None: no warnings (rate limits, call caps)."""
    period: str | None = None
    """`day 2026-03-08 (America/New_York)`, `minute`: shown in messages and alerts."""
    resets_at: datetime | None = None
    """When the counter starts afresh (UTC); None for task runs."""
    zone: str = "UTC"
    """Timezone `resets_at` is shown in."""
    hint: str = ""
    """How to get unstuck, appended to refusals (after "wait for the reset" where there is one)."""


@dataclass(frozen=True, slots=True)
class Reservation:
    """What `settle` needs to undo or finalise a reservation."""

    id: str
    """Reservation id in the counters."""
    metered: tuple[Metered, ...]
    """The counters reserved on."""


@dataclass(frozen=True, slots=True)
class Admission:
    """The call may go, possibly changed; settle it afterwards (also when it fails)."""

    model: str
    """Model to call (a downgrade changes it)."""
    max_output_tokens: int | None
    """Output limit to send (a clamp changes it); None leaves the request as it is."""
    reservation: Reservation | None = None
    """Held on the counters until `Guard.settle`; None when nothing is counted for this call."""
    warnings: tuple[str, ...] = ()
    """Soft-threshold warnings and downgrade notes, for a response header or a log line."""
    task_spent_usd: Decimal | None = None
    """The task run's spend so far, this call's worst case and other calls in flight included."""
    downgraded_from: str | None = None
    """The model asked for, when a task budget switched it to a cheaper one."""
    enforced: bool = True
    """False when the counters were unreachable and the guard failed open: the call went unchecked."""


class RefusalDetail(TypedDict):
    """A refusal's machine-readable part, JSON-ready (decimals and datetimes as strings)."""

    type: str
    policy: str | None
    unit: str | None
    limit: str | None
    spent: str | None
    resets_at: str | None
    retry_after_s: int | None


@dataclass(frozen=True, slots=True)
class Refusal:
    """The call must not be made: everything the gateway needs to answer in the provider's format."""

    status: int
    """HTTP status: 429 for exhausted budgets and limits, 403 for model rules, 400 for size caps, 503 when
    the counters are unreachable and the guard fails closed."""
    type: str
    """`tokenops_task_budget_exceeded`, `tokenops_quota_exceeded`, `tokenops_rate_limited`,
    `tokenops_iteration_cap`, `tokenops_model_not_allowed`, `tokenops_output_cap`,
    `tokenops_input_too_large` or `tokenops_guard_unavailable`."""
    message: str
    """What was exhausted and how to fix it."""
    limit: Decimal | int | None = None
    """The limit hit (USD as Decimal; tokens, calls, requests as int)."""
    spent: Decimal | int | None = None
    """What was spent or reserved against it when the call was refused."""
    policy: str | None = None
    """Name of the policy that refused."""
    unit: Unit | None = None
    """Unit of `limit` and `spent`."""
    resets_at: datetime | None = None
    """When a periodic quota or rate window resets (UTC); None otherwise."""
    retry_after_s: int | None = None
    """Seconds until a retry can succeed (rate limits and quotas): a `Retry-After` header."""

    @property
    def retryable(self) -> bool:
        """Whether waiting helps (rate limits): only then should SDKs retry."""
        return self.type == "tokenops_rate_limited"

    def detail(self) -> RefusalDetail:
        """The structured fields, for the error body and the ledger."""
        return RefusalDetail(
            type=self.type,
            policy=self.policy,
            unit=self.unit,
            limit=None if self.limit is None else str(self.limit),
            spent=None if self.spent is None else str(self.spent),
            resets_at=None if self.resets_at is None else self.resets_at.isoformat(),
            retry_after_s=self.retry_after_s,
        )


_TYPES: dict[Kind, str] = {
    "task_budget": "tokenops_task_budget_exceeded",
    "quota": "tokenops_quota_exceeded",
    "rate_limit": "tokenops_rate_limited",
    "iteration_cap": "tokenops_iteration_cap",
}


def refusal_for(facts: CallFacts, metered: Metered, value: int) -> Refusal:
    """The 429 for a call that does not fit `metered` (its counter holds `value`)."""
    limit = metered.charge.limit
    assert limit is not None
    retry = None
    if metered.resets_at is not None:
        retry = max(1, math.ceil((metered.resets_at - facts.ts).total_seconds()))
    this_call = amount(metered, metered.charge.amount)
    if metered.kind == "iteration_cap":
        message = f"{_upper(metered.subject)} reached its cap of {limit} model calls ({metered.policy})"
    elif metered.kind == "rate_limit":
        message = (
            f"Rate limit {metered.policy!r} for {metered.subject}: {amount(metered, value)} of "
            f"{amount(metered, limit)} this {metered.period}; this call needs {this_call} more"
        )
    else:
        period = f" for the {metered.period}" if metered.period else ""
        message = (
            f"{_upper(describe(metered))} for {metered.subject} would be exceeded{period}: "
            f"{amount(metered, value)} of {amount(metered, limit)} spent or reserved; this call could use up to "
            f"{this_call}"
        )
    hint = metered.hint
    if metered.resets_at is not None:
        local = metered.resets_at.astimezone(ZoneInfo(metered.zone))
        hint = f"wait for the reset at {local:%Y-%m-%d %H:%M} {metered.zone}, or {hint}"
    return Refusal(
        429,
        _TYPES[metered.kind],
        f"{message}; {hint}",
        limit=from_nano(limit) if metered.unit == "usd" else limit,
        spent=from_nano(value) if metered.unit == "usd" else value,
        policy=metered.policy,
        unit=metered.unit,
        resets_at=metered.resets_at,
        retry_after_s=retry,
    )


def describe(metered: Metered) -> str:
    """`task budget 'x'` or `quota 'y'`."""
    return f"{'task budget' if metered.kind == 'task_budget' else 'quota'} {metered.policy!r}"


def amount(metered: Metered, value: int) -> str:
    """A counter value in its unit, for messages: `$0.05`, `1200 tokens`."""
    return format_usd(from_nano(value)) if metered.unit == "usd" else f"{value} {metered.unit}"


def format_usd(usd: Decimal) -> str:
    """`$0.10`, `$0.0125`: cents always shown, smaller amounts to the last significant digit."""
    return f"${usd:.2f}" if usd == usd.quantize(Decimal("0.01")) else f"${usd.normalize()}"


def _upper(text: str) -> str:
    return text[:1].upper() + text[1:]
