"""Policies as configured (`[guard]` in tokenops.toml, or the admin API): validated at the trust boundary.

Every policy names the workflows it covers with a glob (`workflow = "agent*"`, default all). Counters
are keyed by policy name, so two quotas or rate limits may not share a name.
"""

from __future__ import annotations

import fnmatch
from decimal import Decimal
from typing import ClassVar, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Scope = Literal["org", "key", "user", "team", "customer", "workflow", "model"]
"""What a quota or rate limit is counted per (`org`: one counter for every call)."""
Period = Literal["day", "week", "month"]
"""Quota periods; they reset at local midnight in `Policies.timezone` (weeks start on Monday)."""

MAX_USD = Decimal(9_000_000)
"""Largest dollar limit: counters hold nano-dollars, exact in Redis' Lua numbers up to 2**53."""


def matches(value: str | None, pattern: str) -> bool:
    """Case-insensitive glob match; a missing value matches only `*`."""
    if pattern == "*":
        return True
    return fnmatch.fnmatchcase((value or "").lower(), pattern.lower())


class _Policy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    workflow: str = "*"
    """Workflow name or glob the policy covers."""

    def covers(self, workflow: str | None) -> bool:
        """Whether a call of `workflow` falls under this policy."""
        return matches(workflow, self.workflow)


class _Limit(_Policy):
    _kind: ClassVar[str] = "limit"

    max_usd: Decimal | None = Field(default=None, gt=0, le=MAX_USD)
    """Dollar limit."""
    max_tokens: int | None = Field(default=None, gt=0)
    """Token limit (input + output)."""
    warn_at: Decimal = Field(default=Decimal("0.8"), gt=0, le=1)
    """Share of the limit that raises a soft warning (and one alert)."""

    @model_validator(mode="after")
    def _has_a_limit(self) -> _Limit:
        if self.max_usd is None and self.max_tokens is None:
            raise ValueError(f"{self._kind} {getattr(self, 'name', '')!r} needs max_usd or max_tokens")
        return self


class TaskBudget(_Limit):
    """Spend cap across every call of one task run (planning, retrieval, loops, retries)."""

    _kind: ClassVar[str] = "task budget"

    name: str = Field(default="task-budget", min_length=1)
    """Shown in refusals and alerts."""
    on_exceed: Literal["block", "downgrade", "alert"] = "block"
    """Refuse further calls, switch them to `downgrade_to`, or only alert."""
    downgrade_to: str | None = None
    """Cheaper model used once `downgrade_at` of the budget is spent."""
    downgrade_at: Decimal = Field(default=Decimal("0.8"), gt=0, le=1)
    """Share of the budget after which calls are downgraded."""

    @model_validator(mode="after")
    def _downgrade_target(self) -> TaskBudget:
        if self.on_exceed == "downgrade" and not self.downgrade_to:
            raise ValueError(f"task budget {self.name!r}: on_exceed = 'downgrade' needs downgrade_to")
        return self


class Quota(_Limit):
    """Spend per key, user, team, customer, workflow or model over a day, week or month."""

    _kind: ClassVar[str] = "quota"

    name: str = Field(min_length=1)
    """Unique; shown in refusals and alerts, and part of the counter's key."""
    scope: Scope
    """What the quota is counted per; every value (each team, each user ...) gets its own."""
    match: str = "*"
    """Glob of the scope values covered (`team-*`); a call without a value for the scope is not covered."""
    period: Period
    """When the quota resets (local midnight in `Policies.timezone`)."""
    on_exceed: Literal["block", "alert"] = "block"
    """Refuse calls once the quota is spent, or only alert."""


class RateLimit(_Policy):
    """Requests and tokens per minute (fixed windows on UTC minutes)."""

    name: str = Field(min_length=1)
    """Unique; shown in refusals and part of the counter's key."""
    scope: Scope = "key"
    """What the limit is counted per."""
    match: str = "*"
    """Glob of the scope values covered."""
    requests_per_minute: int | None = Field(default=None, gt=0)
    """Calls started per minute."""
    tokens_per_minute: int | None = Field(default=None, gt=0)
    """Tokens (input + worst-case output, settled to the actual count) per minute."""

    @model_validator(mode="after")
    def _has_a_limit(self) -> RateLimit:
        if self.requests_per_minute is None and self.tokens_per_minute is None:
            raise ValueError(f"rate limit {self.name!r} needs requests_per_minute or tokens_per_minute")
        return self


class IterationCap(_Policy):
    """Agent loops: at most this many model calls, or loop iterations, per task run."""

    max_calls: int | None = Field(default=None, gt=0)
    """Calls allowed per task run (counted, shared across replicas)."""
    max_iterations: int | None = Field(default=None, gt=0)
    """Highest loop iteration (as the caller reports it, counted from 1) allowed to call a model."""

    @model_validator(mode="after")
    def _has_a_limit(self) -> IterationCap:
        if self.max_calls is None and self.max_iterations is None:
            raise ValueError(f"iteration cap for {self.workflow!r} needs max_calls or max_iterations")
        return self


class OutputCap(_Policy):
    """Longest answer a call may ask for."""

    max_output_tokens: int = Field(gt=0)
    """Ceiling on max_tokens / max_output_tokens / max_completion_tokens."""
    mode: Literal["clamp", "reject"] = "clamp"
    """Lower a larger (or missing) request to the ceiling, or refuse one above it."""


class InputCap(_Policy):
    """Largest prompt a call may send (context and retrieval limit)."""

    max_input_tokens: int = Field(gt=0)
    """Ceiling on the caller's input-token estimate."""


class ModelRule(_Policy):
    """Which models a team may use for a workflow; the first rule matching team and workflow decides."""

    team: str = "*"
    """Team name or glob."""
    allow: list[str] = Field(min_length=1)
    """Model names or globs allowed."""

    def applies(self, team: str | None, workflow: str | None) -> bool:
        """Whether the rule governs this team and workflow."""
        return self.covers(workflow) and matches(team, self.team)

    def allows(self, model: str) -> bool:
        """Whether `model` is on the list."""
        return any(matches(model, pattern) for pattern in self.allow)


class Grant(BaseModel):
    """Who may use an escalation's models, for which workflows, from which loop iteration."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    team: str = "*"
    """Team name or glob."""
    user: str = "*"
    """User name or glob."""
    workflow: str = "*"
    """Workflow name or glob."""
    min_iteration: int | None = Field(default=None, gt=0)
    """Only from this agent-loop iteration on (escalate after cheaper attempts), if set."""


class Escalation(BaseModel):
    """Frontier models are refused unless a grant covers the caller, the workflow and the iteration."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(default="frontier", min_length=1)
    """Shown in refusals."""
    models: list[str] = Field(min_length=1)
    """Model names or globs this escalation governs (`gpt-5*`, `claude-opus-*`)."""
    grants: list[Grant] = Field(default_factory=list)
    """Who may use them; empty: nobody."""


class Policies(BaseModel):
    """The whole policy set; `Guard.update` replaces it atomically."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timezone: str = "UTC"
    """IANA zone whose local midnight resets day, week and month quotas."""
    default_max_output_tokens: int = Field(default=4096, gt=0)
    """Output assumed for the worst case of a call that sets no limit (an output cap makes it a real bound)."""
    task_budgets: list[TaskBudget] = Field(default_factory=list)
    quotas: list[Quota] = Field(default_factory=list)
    rate_limits: list[RateLimit] = Field(default_factory=list)
    iteration_caps: list[IterationCap] = Field(default_factory=list)
    output_caps: list[OutputCap] = Field(default_factory=list)
    input_caps: list[InputCap] = Field(default_factory=list)
    model_rules: list[ModelRule] = Field(default_factory=list)
    escalations: list[Escalation] = Field(default_factory=list)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown timezone {value!r}; use an IANA name such as 'Europe/Paris'") from exc
        return value

    @model_validator(mode="after")
    def _unique_names(self) -> Policies:
        for kind, names in (
            ("quota", [q.name for q in self.quotas]),
            ("rate limit", [r.name for r in self.rate_limits]),
        ):
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"{kind} names must be unique (they key the counters): {', '.join(map(repr, dupes))}")
        return self

    @property
    def zone(self) -> ZoneInfo:
        """`timezone` as a ZoneInfo (cached by zoneinfo)."""
        return ZoneInfo(self.timezone)


class GuardBackend(BaseModel):
    """Where the guard keeps its counters and sends alerts: deployment settings, not changed at runtime."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    redis_url: str | None = None
    """`redis://host:6379/0` to share budgets across gateway replicas; None keeps counters in-process."""
    key_prefix: str = "{tokenops}:guard:"
    """Prefix of every Redis key; the `{...}` hash tag keeps them in one Redis Cluster slot."""
    redis_timeout_s: float = Field(default=0.5, gt=0)
    """Longest wait for a Redis reply before the counters count as unavailable."""
    redis_connect_timeout_s: float = Field(default=1.0, gt=0)
    """Longest wait to open a Redis connection (a refused connection fails at once)."""
    redis_max_connections: int = Field(default=32, gt=0)
    """Connections per replica (and per event loop); calls beyond wait up to 1 s for a free one."""
    fail_open: bool = True
    """When Redis cannot be reached: let calls through unguarded (True) or refuse them with 503 (False)."""
    reservation_ttl_s: int = Field(default=900, gt=0)
    """A reservation not settled within this time (its replica died mid-call) is released."""
    alert_webhook: str | None = None
    """Slack-compatible incoming-webhook URL for threshold alerts."""
    alert_queue: int = Field(default=1000, gt=0)
    """Alerts waiting to be sent; more are dropped (and logged)."""
