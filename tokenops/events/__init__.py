"""The ledger's records: what one model call, one task run, one outcome or one person is.

Owns the frozen dataclasses every other capability exchanges. It does not know how they are
priced (`tokenops.pricing`) or stored (`tokenops.store`).
"""

from tokenops.events.attribution import Attribution
from tokenops.events.billing import BilledCost, ProviderUsage
from tokenops.events.business import Outcome, TaskRun, TaskStatus
from tokenops.events.people import Person, SeatLicense, TimeEntry
from tokenops.events.usage import Cost, EventStatus, Provider, TokenUsage, UsageEvent

__all__ = [
    "Attribution",
    "BilledCost",
    "Cost",
    "EventStatus",
    "Outcome",
    "Person",
    "Provider",
    "ProviderUsage",
    "SeatLicense",
    "TaskRun",
    "TaskStatus",
    "TimeEntry",
    "TokenUsage",
    "UsageEvent",
]
