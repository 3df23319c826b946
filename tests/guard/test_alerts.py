"""Threshold alerts go to a webhook once per crossing (also across replicas), off the hot path."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest

from tests.guard.conftest import Webhook, facts, pricer, shared_counters
from tokenops.guard import Admission, Alert, Guard, Policies, Quota, TaskBudget, WebhookAlerts

T = datetime(2026, 11, 2, 10, tzinfo=UTC)


def _alert(policy: str = "p") -> Alert:
    return Alert("warning", "quota", policy, "team 'support'", "usd", Decimal("4"), Decimal("5"), "day", None, T)


def _spend(guard: Guard, task: str | None = "t1", **kw: Any) -> None:
    decision = guard.admit(facts(task=task, **kw))
    if isinstance(decision, Admission):
        guard.settle(decision, Decimal("0.02"), 2_000)


def test_each_crossing_of_a_task_budget_is_alerted_once(webhook: Webhook) -> None:
    budget = TaskBudget(name="run", max_usd=Decimal("0.10"), warn_at=Decimal("0.5"))
    guard = Guard(Policies(task_budgets=[budget]), pricer(), alerts=WebhookAlerts(webhook.url))
    for _ in range(10):  # settles $0.02 five times, then is refused five times
        _spend(guard)
    for _ in range(3):
        _spend(guard, task="t2")
    guard.close()  # sends what is queued
    posts = webhook.wait_for(3)
    assert [p["text"] for p in posts] == [
        "tokenops: task budget 'run' for task run 't1' at 60% ($0.06 of $0.10)",
        "tokenops: task budget 'run' for task run 't1' reached ($0.10 of $0.10)",
        "tokenops: task budget 'run' for task run 't2' at 60% ($0.06 of $0.10)",
    ]
    fields = posts[1]["tokenops"]
    assert {k: fields[k] for k in ("level", "kind", "policy", "unit", "spent", "limit", "share")} == {
        "level": "exhausted",
        "kind": "task_budget",
        "policy": "run",
        "unit": "usd",
        "spent": "0.1",
        "limit": "0.1",
        "share": "1.000",
    }


def test_two_replicas_on_one_redis_alert_each_crossing_once(
    webhook: Webhook, redis_url: str, redis_prefix: str
) -> None:
    quota = Quota(name="team-day", scope="team", period="day", max_usd=Decimal("0.10"), warn_at=Decimal("0.5"))
    guards = [
        Guard(
            Policies(quotas=[quota]),
            pricer(),
            counters=shared_counters(redis_url, redis_prefix),
            alerts=WebhookAlerts(webhook.url),
        )
        for _ in range(2)
    ]
    for i in range(12):
        _spend(guards[i % 2], task=None, team="support")
    for guard in guards:
        guard.close()
    posts = webhook.wait_for(2)
    assert sorted((p["tokenops"]["level"], p["tokenops"]["period"]) for p in posts) == [
        ("exhausted", "day 2026-11-02 (UTC)"),
        ("warning", "day 2026-11-02 (UTC)"),
    ]
    assert posts[0]["tokenops"]["resets_at"] == "2026-11-03T00:00:00+00:00"


def test_a_full_alert_queue_drops_and_logs_instead_of_blocking(caplog: pytest.LogCaptureFixture) -> None:
    entered, release = threading.Event(), threading.Event()
    posted: list[str] = []

    def slow_webhook(request: httpx.Request) -> httpx.Response:
        entered.set()
        release.wait(10)
        posted.append(request.read().decode())
        return httpx.Response(200)

    sink = WebhookAlerts("http://127.0.0.1:9/hook", queue_size=1, transport=httpx.MockTransport(slow_webhook))
    sink.emit(_alert("first"))
    assert entered.wait(10)  # the sender is busy with the first alert
    sink.emit(_alert("second"))  # waits in the queue
    with caplog.at_level(logging.WARNING, logger="tokenops.guard.alerts"):
        sink.emit(_alert("third"))  # the queue is full: dropped at once
    release.set()
    sink.close()
    assert ["'first'" in p for p in posted] == [True, False] and "'second'" in posted[1]
    assert "alert queue full (1); dropped: tokenops: quota 'third'" in caplog.text


def test_a_failing_webhook_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    sink = WebhookAlerts("http://127.0.0.1:9/hook", transport=httpx.MockTransport(lambda _: httpx.Response(500)))
    with caplog.at_level(logging.ERROR, logger="tokenops.guard.alerts"):
        sink.emit(_alert())
        sink.close()
    assert "alert webhook http://127.0.0.1:9/hook failed" in caplog.text and "alert lost" in caplog.text
