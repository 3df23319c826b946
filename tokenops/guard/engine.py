"""`Guard`: before a call is forwarded, decide whether it may go and in what form; settle it after.

    decision = guard.admit(facts)            # or: await guard.admit_async(facts) on an event loop
    if isinstance(decision, Refusal): answer decision.status / decision.type, record `blocked` at $0
    else: forward with decision.model and decision.max_output_tokens (when not None), then
          guard.settle(decision, actual_cost, actual_tokens)   # always, also when the call failed

The stateless checks (model rules, escalation, input and output caps, loop iteration) come first
and cost no I/O. Then every counter the call touches (task budget, quotas, rate limits, call
cap) is checked and reserved in one atomic step on the counters, at the call's worst case:
input estimate x input price + output limit x output price.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from tokenops.events import TokenUsage
from tokenops.guard import budgets, caps, quotas, rules
from tokenops.guard.alerts import AlertSink, Candidate, WebhookAlerts, alert_for
from tokenops.guard.counters import (
    Counters,
    Exceeded,
    GuardUnavailable,
    InProcessCounters,
    Reserved,
    from_nano,
    to_nano,
)
from tokenops.guard.decisions import Admission, CallFacts, Metered, Refusal, Reservation, amount, describe, refusal_for
from tokenops.guard.policies import GuardBackend, Policies, TaskBudget
from tokenops.pricing import Priced, Pricer

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Screened:
    """A call past the stateless checks."""

    policies: Policies
    clamp: int | None
    budget: TaskBudget | None
    peek: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Plan:
    """The counters a call will reserve on."""

    model: str
    clamp: int | None
    downgraded_from: str | None
    metered: tuple[Metered, ...]
    warnings: tuple[str, ...]


class Guard:
    """Evaluates the policy set against the counters; one instance per gateway or SDK runtime.

    Args:
        policies: The policy set; replace it with `update`.
        pricer: Prices each call's worst case.
        counters: `InProcessCounters` (default) or `RedisCounters` to share budgets across replicas.
        alerts: Where threshold alerts go (e.g. `WebhookAlerts`); None sends none.
        fail_open: When the counters are unreachable, admit calls unchecked (True, logged as an error
            each time) or refuse them with 503 `tokenops_guard_unavailable` (False).
        reservation_ttl_s: A reservation never settled (its process died mid-call) is released after this.
    """

    def __init__(
        self,
        policies: Policies,
        pricer: Pricer,
        *,
        counters: Counters | None = None,
        alerts: AlertSink | None = None,
        fail_open: bool = True,
        reservation_ttl_s: int = 900,
    ) -> None:
        self._policies = policies
        self._pricer = pricer
        self.counters: Counters = counters if counters is not None else InProcessCounters()
        self.alerts = alerts
        self.fail_open = fail_open
        self._ttl = reservation_ttl_s
        self._lock = threading.Lock()
        self._alerted: OrderedDict[str, None] = OrderedDict()  # markers this process already tried

    @property
    def policies(self) -> Policies:
        """The policy set in force."""
        return self._policies

    def update(self, policies: Policies) -> None:
        """Swap the policy set atomically: each call is judged by the old set or the new one, never a mix."""
        self._policies = policies

    def close(self) -> None:
        """Close the counters and the alert sink (sending queued alerts)."""
        self.counters.close()
        if self.alerts is not None:
            self.alerts.close()

    def admit(self, facts: CallFacts) -> Admission | Refusal:
        """Allow, trim or refuse a call; an allowed call holds a reservation until `settle`."""
        screened = _screen(facts, self._policies)
        if isinstance(screened, Refusal):
            return screened
        try:
            peeked = self.counters.peek(screened.peek) if screened.peek else ()
            plan = self._plan(facts, screened, peeked)
            if not plan.metered:
                return Admission(plan.model, plan.clamp, None, plan.warnings, None, plan.downgraded_from)
            rid = uuid.uuid4().hex
            result = self.counters.reserve(rid, [m.charge for m in plan.metered], self._ttl)
        except GuardUnavailable as exc:
            return self._unavailable(facts, screened, exc)
        decision, due = _conclude(facts, plan, rid, result)
        self._deliver(due)
        return decision

    async def admit_async(self, facts: CallFacts) -> Admission | Refusal:
        """`admit` for an event loop: the counters' I/O does not block it."""
        screened = _screen(facts, self._policies)
        if isinstance(screened, Refusal):
            return screened
        try:
            peeked = await self.counters.apeek(screened.peek) if screened.peek else ()
            plan = self._plan(facts, screened, peeked)
            if not plan.metered:
                return Admission(plan.model, plan.clamp, None, plan.warnings, None, plan.downgraded_from)
            rid = uuid.uuid4().hex
            result = await self.counters.areserve(rid, [m.charge for m in plan.metered], self._ttl)
        except GuardUnavailable as exc:
            return self._unavailable(facts, screened, exc)
        decision, due = _conclude(facts, plan, rid, result)
        await self._adeliver(due)
        return decision

    def settle(self, admission: Admission, cost: Decimal | None, tokens: int) -> None:
        """Replace the reservation by what the call really cost.

        Args:
            admission: What `admit` returned.
            cost: The call's actual cost; None if it is unknown (the worst case stays counted when
                tokens were billed) or the call failed unbilled.
            tokens: Tokens billed (input + output); 0 releases the whole reservation of a failed call.
        """
        reservation = admission.reservation
        if reservation is None:
            return
        try:
            values = self.counters.settle(reservation.id, _finals(reservation, cost, tokens))
        except GuardUnavailable as exc:
            self._outage(exc, "settle")
            return
        if values is not None:
            self._deliver(self._crossings(reservation, values))

    async def settle_async(self, admission: Admission, cost: Decimal | None, tokens: int) -> None:
        """`settle` for an event loop."""
        reservation = admission.reservation
        if reservation is None:
            return
        try:
            values = await self.counters.asettle(reservation.id, _finals(reservation, cost, tokens))
        except GuardUnavailable as exc:
            self._outage(exc, "settle")
            return
        if values is not None:
            await self._adeliver(self._crossings(reservation, values))

    def _plan(self, facts: CallFacts, screened: _Screened, peeked: Sequence[int]) -> _Plan:
        policies, budget = screened.policies, screened.budget
        model, downgraded_from, warnings = facts.model, None, []
        if budget is not None and peeked and budgets.downgrade_due(budget, peeked[0], peeked[1]):
            assert budget.downgrade_to is not None
            model, downgraded_from = budget.downgrade_to, facts.model
            warnings.append(f"downgraded to {model!r}: task budget {budget.name!r} is {budget.downgrade_at:.0%} spent")
        max_output = screened.clamp if screened.clamp is not None else facts.max_output_tokens
        output = policies.default_max_output_tokens if max_output is None else max_output
        tokens = max(facts.input_tokens, 0) + output
        usd_nano = 0
        if policies.task_budgets or policies.quotas:  # only dollar limits need the worst case priced
            usage = TokenUsage(max(facts.input_tokens, 0), output_tokens=output)
            priced = self._pricer.price(model, usage, provider=facts.provider, ts=facts.ts)
            if isinstance(priced, Priced):
                usd_nano = to_nano(priced.cost.total)
            else:
                warnings.append(f"no price for {model!r}: dollar limits cannot hold it ({priced.reason})")
        metered = budgets.task_counters(facts, budget, usd_nano, tokens)
        metered += quotas.quota_counters(facts, policies.quotas, policies.zone, model, usd_nano, tokens)
        metered += quotas.rate_counters(facts, policies.rate_limits, model, tokens)
        if (calls := caps.call_counter(facts, policies.iteration_caps)) is not None:
            metered.append(calls)
        return _Plan(model, screened.clamp, downgraded_from, tuple(metered), tuple(warnings))

    def _unavailable(self, facts: CallFacts, screened: _Screened, exc: GuardUnavailable) -> Admission | Refusal:
        self._outage(exc, "admit")
        if self.fail_open:
            note = f"guard counters unavailable, limits not enforced: {exc}"
            return Admission(facts.model, screened.clamp, warnings=(note,), enforced=False)
        return Refusal(
            503,
            "tokenops_guard_unavailable",
            f"The budget counters cannot be reached ({exc}), and the guard fails closed, so no call is let "
            "through unchecked. Retry shortly; an operator should check Redis (or set fail_open)",
        )

    def _outage(self, exc: GuardUnavailable, during: str) -> None:
        # Every affected call is logged: an outage of the budget counters must not go unnoticed.
        action = "letting calls through UNCHECKED" if self.fail_open else "refusing calls (fail closed)"
        log.error("tokenops guard: counters unavailable during %s, %s: %s", during, action, exc)

    def _crossings(self, reservation: Reservation, values: Sequence[int]) -> list[Candidate]:
        if self.alerts is None:
            return []
        now = datetime.now(UTC)
        due: list[Candidate] = []
        for metered, value in zip(reservation.metered, values, strict=True):
            if metered.budget is None or metered.warn_at is None:
                continue
            if value >= metered.budget:
                due.append(alert_for(metered, value, "exhausted", now))
            elif value >= metered.warn_at * metered.budget:
                due.append(alert_for(metered, value, "warning", now))
        return due

    def _fresh(self, due: Sequence[Candidate]) -> list[Candidate]:
        """Candidates this process has not tried yet (the counters' markers decide across processes)."""
        if self.alerts is None or not due:
            return []
        fresh = []
        with self._lock:
            for candidate in due:
                if candidate[0] not in self._alerted:
                    self._alerted[candidate[0]] = None
                    fresh.append(candidate)
            while len(self._alerted) > 100_000:
                self._alerted.popitem(last=False)
        return fresh

    def _deliver(self, due: Sequence[Candidate]) -> None:
        for marker, ttl, alert in self._fresh(due):
            try:
                first = self.counters.mark_once(marker, ttl)
            except GuardUnavailable as exc:
                self._outage(exc, "alert dedupe")
                continue
            if first and self.alerts is not None:
                self.alerts.emit(alert)

    async def _adeliver(self, due: Sequence[Candidate]) -> None:
        for marker, ttl, alert in self._fresh(due):
            try:
                first = await self.counters.amark_once(marker, ttl)
            except GuardUnavailable as exc:
                self._outage(exc, "alert dedupe")
                continue
            if first and self.alerts is not None:
                self.alerts.emit(alert)


def _screen(facts: CallFacts, policies: Policies) -> _Screened | Refusal:
    """The checks that need no counters: model rules, escalation, input, output and iteration caps."""
    refusal = (
        rules.check_model(facts, policies.model_rules, policies.escalations)
        or caps.check_input(facts, policies.input_caps)
        or caps.check_iteration(facts, policies.iteration_caps)
    )
    if refusal is not None:
        return refusal
    clamp = caps.cap_output(facts, policies.output_caps)
    if isinstance(clamp, Refusal):
        return clamp
    budget = budgets.task_budget(facts, policies.task_budgets)
    peek: tuple[str, ...] = ()
    if budget is not None and budget.on_exceed == "downgrade" and facts.task_run_id is not None:
        peek = budgets.task_keys(facts.task_run_id)
    return _Screened(policies, clamp, budget, peek)


def _conclude(
    facts: CallFacts, plan: _Plan, rid: str, result: Reserved | Exceeded
) -> tuple[Admission | Refusal, list[Candidate]]:
    if isinstance(result, Exceeded):
        metered = plan.metered[result.index]
        due = []
        if metered.budget is not None and metered.warn_at is not None:
            due.append(alert_for(metered, result.value, "exhausted", datetime.now(UTC)))
        return refusal_for(facts, metered, result.value), due
    warnings = list(plan.warnings)
    task_usd: Decimal | None = None
    for metered, value in zip(plan.metered, result.values, strict=True):
        if metered.kind == "task_budget" and metered.unit == "usd":
            task_usd = from_nano(value)
        if metered.budget is not None and metered.warn_at is not None and value >= metered.warn_at * metered.budget:
            warnings.append(
                f"{describe(metered)} for {metered.subject} is at {Decimal(value) / metered.budget:.0%} "
                f"(spent or reserved: {amount(metered, value)} of {amount(metered, metered.budget)})"
            )
    reservation = Reservation(rid, plan.metered)
    return Admission(plan.model, plan.clamp, reservation, tuple(warnings), task_usd, plan.downgraded_from), []


def _finals(reservation: Reservation, cost: Decimal | None, tokens: int) -> list[tuple[str, int]]:
    out = []
    for metered in reservation.metered:
        charge = metered.charge
        if metered.unit == "usd":
            final = to_nano(cost) if cost is not None else (charge.amount if tokens > 0 else 0)
        elif metered.unit == "tokens":
            final = max(tokens, 0)
        else:  # calls and requests count attempts, billed or not
            final = charge.amount
        out.append((charge.key, final))
    return out


def open_guard(policies: Policies, pricer: Pricer, backend: GuardBackend | None = None) -> Guard:
    """A `Guard` with the counters and alert sink that `backend` describes; close it with `Guard.close`."""
    backend = backend or GuardBackend()
    counters: Counters = InProcessCounters()
    if backend.redis_url:
        # imported here: the redis client is needed only when budgets are shared across replicas
        from tokenops.guard.redis_counters import RedisCounters

        counters = RedisCounters(
            backend.redis_url,
            prefix=backend.key_prefix,
            timeout_s=backend.redis_timeout_s,
            connect_timeout_s=backend.redis_connect_timeout_s,
            max_connections=backend.redis_max_connections,
        )
    alerts = WebhookAlerts(backend.alert_webhook, queue_size=backend.alert_queue) if backend.alert_webhook else None
    return Guard(
        policies,
        pricer,
        counters=counters,
        alerts=alerts,
        fail_open=backend.fail_open,
        reservation_ttl_s=backend.reservation_ttl_s,
    )
