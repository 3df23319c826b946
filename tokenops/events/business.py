"""Task runs and the business outcomes they produce: the denominators of unit economics."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Literal

TaskStatus = Literal["running", "completed", "failed", "abandoned"]


@dataclass(frozen=True, slots=True)
class TaskRun:
    """One execution of a workflow, spanning every model call made for it."""

    task_run_id: str
    """Unique id; model calls carry it in their attribution."""
    workflow: str
    """Workflow (task type) this run belongs to."""
    started_at: datetime
    """When the run started (tz-aware UTC)."""
    status: TaskStatus = "running"
    """`completed`, `failed`, `abandoned` or still `running`."""
    ended_at: datetime | None = None
    """When the run ended; None while running."""
    user: str | None = None
    """Person who ran it."""
    team: str | None = None
    """Team charged."""
    customer: str | None = None
    """Customer served."""
    tags: dict[str, str] = field(default_factory=dict)
    """Free-form labels."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """A business result (ticket resolved, lead qualified) linked to the task runs that produced it."""

    outcome_id: str
    """Unique id; re-importing the same outcome is a no-op."""
    ts: datetime
    """When the outcome happened (tz-aware UTC)."""
    outcome_type: str
    """Kind of result, e.g. `ticket_resolved`."""
    value: Decimal | None = None
    """Business value in USD, when known."""
    task_run_ids: tuple[str, ...] = ()
    """Task runs that produced it (may be several, or none when linked to a person)."""
    workflow: str | None = None
    """Workflow the outcome belongs to."""
    person: str | None = None
    """Person credited, when not linked to a task run."""
    team: str | None = None
    """Team credited."""
