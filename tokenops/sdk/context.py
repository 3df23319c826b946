"""The task run a piece of code is working for, carried by contextvars across await and threads."""

from __future__ import annotations

import threading
from contextvars import ContextVar
from dataclasses import dataclass, field
from decimal import Decimal


@dataclass
class TaskState:
    """A task run in progress (mutable: calls and spend accumulate)."""

    task_run_id: str
    """Id shared by every call of the run."""
    workflow: str
    """Workflow (task type)."""
    user: str | None = None
    """Person the run is for."""
    team: str | None = None
    """Team charged."""
    customer: str | None = None
    """Customer served."""
    feature: str | None = None
    """Product feature."""
    tags: dict[str, str] = field(default_factory=dict)
    """Free-form labels."""
    calls: int = 0
    """Model calls made so far."""
    spent: Decimal = Decimal(0)
    """Priced spend so far (USD)."""
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    """Guards the counters when threads share the task."""

    def next_iteration(self) -> int:
        """Count a call and return its iteration number (from 1)."""
        with self.lock:
            self.calls += 1
            return self.calls

    def add_cost(self, cost: Decimal) -> None:
        """Add a priced call."""
        with self.lock:
            self.spent += cost

    def headers(self, iteration: int) -> dict[str, str]:
        """The gateway's attribution headers for one call of this task."""
        out = {
            "x-tokenops-workflow": self.workflow,
            "x-tokenops-task": self.task_run_id,
            "x-tokenops-iteration": str(iteration),
        }
        for name, value in (
            ("user", self.user),
            ("team", self.team),
            ("customer", self.customer),
            ("feature", self.feature),
        ):
            if value:
                out[f"x-tokenops-{name}"] = value
        if self.tags:
            out["x-tokenops-tags"] = ",".join(f"{k}={v}" for k, v in sorted(self.tags.items()))
        return out


current_task: ContextVar[TaskState | None] = ContextVar("tokenops_task", default=None)
