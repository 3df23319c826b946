"""Guardrails that act before money is spent: allow, trim (downgrade, clamp) or refuse a call.

Owns the policies (task budgets, periodic quotas, rate limits, iteration, input and output caps,
model allow-lists and escalation), the counters they are checked against (in-process, or Redis
shared by gateway replicas), the reserve-then-settle admission that keeps concurrent calls from
overshooting a limit, and threshold alerts to a webhook. It does not talk HTTP to callers: the
gateway and the SDK call `Guard.admit` / `Guard.settle` and answer a `Refusal` in their own
provider formats; nor does it write the ledger, load configuration or serve the admin API.
"""

from tokenops.guard.alerts import Alert, AlertSink, WebhookAlerts
from tokenops.guard.counters import Counters, GuardUnavailable, InProcessCounters
from tokenops.guard.decisions import Admission, CallFacts, Refusal, RefusalDetail, Reservation
from tokenops.guard.engine import Guard, open_guard
from tokenops.guard.policies import (
    Escalation,
    Grant,
    GuardBackend,
    InputCap,
    IterationCap,
    ModelRule,
    OutputCap,
    Policies,
    Quota,
    RateLimit,
    TaskBudget,
)

__all__ = [
    "Admission",
    "Alert",
    "AlertSink",
    "CallFacts",
    "Counters",
    "Escalation",
    "Grant",
    "Guard",
    "GuardBackend",
    "GuardUnavailable",
    "InProcessCounters",
    "InputCap",
    "IterationCap",
    "ModelRule",
    "OutputCap",
    "Policies",
    "Quota",
    "RateLimit",
    "Refusal",
    "RefusalDetail",
    "Reservation",
    "TaskBudget",
    "WebhookAlerts",
    "open_guard",
]
