"""People, their seats and their time: what turns token spend into hours saved and yield."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class Person:
    """An employee with the loaded cost used to value their time."""

    person_id: str
    """Stable id (email or HR id); matches `Attribution.user`."""
    team: str
    """Team the person belongs to."""
    loaded_hourly_cost: Decimal
    """Salary plus overheads per hour, in USD."""
    name: str | None = None
    """Display name."""
    role: str | None = None
    """Job role."""
    start_date: date | None = None
    """First day of employment."""


@dataclass(frozen=True, slots=True)
class SeatLicense:
    """A per-seat AI tool licence (Copilot, ChatGPT Team ...), part of the cost per person."""

    person_id: str
    """Who holds the seat."""
    tool: str
    """Tool name, e.g. `github-copilot`."""
    monthly_cost: Decimal
    """USD per month."""
    start_date: date
    """First day the seat is paid for."""
    end_date: date | None = None
    """Last day, or None while active."""


@dataclass(frozen=True, slots=True)
class TimeEntry:
    """A block of work from time tracking; before/after durations give hours saved."""

    entry_id: str
    """Unique id; re-importing is a no-op."""
    person_id: str
    """Who did the work."""
    activity: str
    """Task category, mapped to a workflow where possible."""
    start: datetime
    """Start (tz-aware UTC)."""
    duration_hours: Decimal
    """Length of the block in hours."""
    tool: str | None = None
    """AI tool used for it, None when done without AI."""
    workflow: str | None = None
    """Workflow the activity maps to."""
