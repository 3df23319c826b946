"""What the demo organisation really is, so analytics run on it can be checked against the answer.

The generator draws the data from these parameters; nothing here is estimated from the tables
except the incidents' call counts and costs, which are summed from the generated rows so a
detector can be held to them exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Literal

IncidentKind = Literal["runaway_loop", "prompt_change", "user_spike"]


@dataclass(frozen=True, slots=True)
class Incident:
    """An anomaly injected into the usage data on purpose."""

    kind: IncidentKind
    """`runaway_loop`, `prompt_change` or `user_spike`."""
    start: datetime
    """First affected call (tz-aware UTC)."""
    end: datetime | None
    """When it stopped; None when it is still going on at the end of the data."""
    workflow: str
    """Workflow affected."""
    team: str
    """Team charged for it."""
    user_id: str | None
    """Person whose calls it is, when it is one person's."""
    task_run_id: str | None
    """The one task run it is, for a runaway loop."""
    magnitude: float
    """Size of the anomaly: loop iterations, the input-token multiplier, or the spike day's calls
    over the person's usual calls on a working day."""
    calls: int
    """Calls that belong to the incident (all calls after the change for `prompt_change`)."""
    cost: Decimal
    """Their priced cost in USD."""
    description: str
    """One sentence for people reading a report."""


@dataclass(frozen=True, slots=True)
class WorkflowTruth:
    """The parameters one workflow's data was drawn from."""

    name: str
    """Workflow name, as in `usage_events.workflow`."""
    team: str | None
    """Owning team; None when every team uses it."""
    saving_factor: float
    """Share of task time saved when the task is done with AI (0.3 = 30% shorter)."""
    conversion_rate: float
    """Probability that a completed task run yields an outcome."""
    outcome_type: str | None
    """Outcome it produces, None for workflows without a business outcome."""
    outcome_value: Decimal | None
    """USD value of one outcome."""
    failure_rate: float
    """Probability that a task run fails."""
    abandon_rate: float
    """Probability that a task run is abandoned."""


@dataclass(frozen=True, slots=True)
class IdleSeat:
    """A paid seat licence held by someone who never uses AI."""

    person_id: str
    """Seat holder."""
    tool: str
    """Tool the seat is for."""
    monthly_cost: Decimal
    """USD per month."""
    start_date: date
    """First day paid for."""
    end_date: date | None
    """Last day paid for, None while active."""


@dataclass(frozen=True, slots=True)
class Savings:
    """True hours saved by AI, counterfactual minus actual time of every AI-assisted time entry.

    Per-month figures are totals over the AI period scaled to 30 days.
    """

    by_person_month: Mapping[str, float]
    """Hours saved per person per 30 days (0.0 for non-adopters)."""
    by_team_month: Mapping[str, float]
    """Hours saved per team per 30 days."""
    by_workflow_month: Mapping[str, float]
    """Hours saved per workflow per 30 days."""
    total_hours: float
    """Hours saved over the whole AI period."""
    value_usd: Decimal
    """Hours saved over the AI period valued at each person's loaded hourly cost."""
    time_trend: float
    """Common drift in task durations over baseline + AI period, for everyone (0.15 = 15% longer
    at the end than at the start): why a naive before/after differs from difference-in-differences."""
    ai_use_rate: float
    """Probability that an adopter uses AI for a task after adopting."""


@dataclass(frozen=True, slots=True)
class GroundTruth:
    """Everything the demo organisation was built from."""

    seed: int
    """Random seed."""
    baseline_start: date
    """First day of the baseline period (time entries only, no AI usage)."""
    ai_start: date
    """First day of AI usage."""
    end: date
    """Last day of data."""
    adopters: tuple[str, ...]
    """People who use AI, by person_id."""
    non_adopters: tuple[str, ...]
    """People who never use AI (the control group)."""
    adoption_dates: Mapping[str, date]
    """First day each adopter used AI."""
    workflows: Mapping[str, WorkflowTruth]
    """Per-workflow parameters."""
    idle_seats: tuple[IdleSeat, ...]
    """Seat licences nobody uses."""
    savings: Savings
    """True hours saved."""
    incidents: tuple[Incident, ...]
    """Injected anomalies."""
    events: int
    """Usage events generated."""
    unpriced_events: int
    """Events on a model genai-prices does not know (cost NULL)."""
    total_cost: Decimal
    """Sum of cost_total over priced events, USD."""
