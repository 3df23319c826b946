"""Who and what a model call is charged to."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Attribution:
    """The dimensions spend is reported by; every field is optional because imports are partial."""

    api_key_id: str | None = None
    """Id of the virtual key used (never the key itself)."""
    user: str | None = None
    """Person or service account (`enduser.id` in OpenTelemetry)."""
    team: str | None = None
    """Team the spend is charged to."""
    feature: str | None = None
    """Product feature that made the call."""
    workflow: str | None = None
    """Workflow (task type) such as `support_ticket`; groups task runs."""
    task_run_id: str | None = None
    """One execution of a workflow; all its calls share this id."""
    step: str | None = None
    """Named agent step (`plan`, `retrieve`, `validate` ...)."""
    iteration: int | None = None
    """Agent loop iteration, counted from 1."""
    customer: str | None = None
    """External customer or account the call served."""
    tags: dict[str, str] = field(default_factory=dict)
    """Free-form labels, e.g. `{"env": "prod"}`."""

    @property
    def is_attributed(self) -> bool:
        """Whether the spend can be charged back to someone (a user or a team)."""
        return self.user is not None or self.team is not None
