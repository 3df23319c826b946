"""Threshold alerts (soft warning share, budget exhausted), sent to a webhook off the hot path.

The guard decides *that* an alert is due, once per crossing (deduplicated on the counters, so
across replicas too); an `AlertSink` only delivers it and must never block the caller.
`WebhookAlerts` posts Slack-compatible JSON (`{"text": ...}`, plus the structured fields under
`"tokenops"`) from one background thread fed by a bounded queue: when the queue is full, the
alert is dropped and logged rather than slowing calls down.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Literal, Protocol, TypedDict

from tokenops.guard.counters import from_nano
from tokenops.guard.decisions import Kind, Metered, Unit, format_usd

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)


class AlertFields(TypedDict):
    """An alert's structured part."""

    level: str
    kind: str
    policy: str
    subject: str
    unit: str
    spent: str
    limit: str
    share: str
    period: str | None
    resets_at: str | None
    ts: str


class AlertPayload(TypedDict):
    """The webhook body: Slack shows `text`, machines read `tokenops`."""

    text: str
    tokenops: AlertFields


@dataclass(frozen=True, slots=True)
class Alert:
    """A budget or quota crossed a threshold."""

    level: Literal["warning", "exhausted"]
    """`warning`: the soft share was reached; `exhausted`: 100% (calls are now refused if the policy blocks)."""
    kind: Kind
    """Task budget or quota."""
    policy: str
    """Policy name."""
    subject: str
    """Who or what: `task run 'r-1'`, `team 'support'`."""
    unit: Unit
    """What `spent` and `limit` count."""
    spent: Decimal | int
    """Spent or reserved when the threshold was crossed."""
    limit: Decimal | int
    """The policy's limit."""
    period: str | None
    """Quota period, if any."""
    resets_at: datetime | None
    """When the quota resets (UTC)."""
    ts: datetime
    """When the crossing was seen."""

    @property
    def share(self) -> Decimal:
        """Spent over limit."""
        return (Decimal(self.spent) / Decimal(self.limit)).quantize(Decimal("0.001"))

    @property
    def text(self) -> str:
        """One line for a chat channel."""
        what = "task budget" if self.kind == "task_budget" else "quota"
        head = "reached" if self.level == "exhausted" else f"at {self.share:.0%}"
        amounts = (
            f"{format_usd(Decimal(self.spent))} of {format_usd(Decimal(self.limit))}"
            if self.unit == "usd"
            else f"{self.spent} of {self.limit} {self.unit}"
        )
        period = f", {self.period}" if self.period else ""
        return f"tokenops: {what} {self.policy!r} for {self.subject} {head} ({amounts}{period})"

    def payload(self) -> AlertPayload:
        """The webhook body."""
        return AlertPayload(
            text=self.text,
            tokenops=AlertFields(
                level=self.level,
                kind=self.kind,
                policy=self.policy,
                subject=self.subject,
                unit=self.unit,
                spent=str(self.spent),
                limit=str(self.limit),
                share=str(self.share),
                period=self.period,
                resets_at=None if self.resets_at is None else self.resets_at.isoformat(),
                ts=self.ts.isoformat(),
            ),
        )


Candidate = tuple[str, int, Alert]
"""(dedupe marker, its TTL, the alert to send if the marker is new)."""


def alert_for(metered: Metered, value: int, level: str, now: datetime) -> Candidate:
    """The alert for `metered` at `value`, with the marker that makes it once per crossing."""
    assert metered.budget is not None and metered.kind in ("task_budget", "quota")
    usd = metered.unit == "usd"
    alert = Alert(
        level="exhausted" if level == "exhausted" else "warning",
        kind=metered.kind,
        policy=metered.policy,
        subject=metered.subject,
        unit=metered.unit,
        spent=from_nano(value) if usd else value,
        limit=from_nano(metered.budget) if usd else metered.budget,
        period=metered.period,
        resets_at=metered.resets_at,
        ts=now,
    )
    marker = f"{metered.charge.key}:{'100' if level == 'exhausted' else 'warn'}"
    return marker, metered.charge.ttl_s, alert


class AlertSink(Protocol):
    """Delivers alerts; `emit` must return at once."""

    def emit(self, alert: Alert) -> None:
        """Hand over an alert for delivery."""
        ...

    def close(self) -> None:
        """Deliver what is queued, then stop."""
        ...


_STOP = object()


class WebhookAlerts:
    """Posts alerts to a Slack-compatible incoming webhook from a background thread."""

    def __init__(
        self, url: str, *, queue_size: int = 1000, timeout_s: float = 5.0, transport: httpx.BaseTransport | None = None
    ) -> None:
        import httpx  # imported on use: only a deployment with a webhook pays for it

        self.url = url
        self._queue: queue.Queue[object] = queue.Queue(maxsize=queue_size)
        self._client = httpx.Client(timeout=timeout_s, transport=transport)
        self._thread = threading.Thread(target=self._run, name="tokenops-guard-alerts", daemon=True)
        self._thread.start()

    def emit(self, alert: Alert) -> None:
        """Queue an alert; drop it (logged) when the queue is full."""
        try:
            self._queue.put_nowait(alert)
        except queue.Full:
            log.warning("alert queue full (%d); dropped: %s", self._queue.maxsize, alert.text)

    def _run(self) -> None:
        import httpx

        while (item := self._queue.get()) is not _STOP:
            assert isinstance(item, Alert)
            try:
                response = self._client.post(self.url, json=item.payload())
                response.raise_for_status()
            except httpx.HTTPError as exc:
                log.error("alert webhook %s failed (%s); alert lost: %s", self.url, exc, item.text)

    def close(self, timeout_s: float = 10.0) -> None:
        """Send what is queued, then stop the thread and close the connection."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join(timeout_s)
        self._client.close()
