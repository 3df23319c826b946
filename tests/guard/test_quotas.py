"""Quotas reset at local midnight in the configured timezone (DST included); rate limits per minute."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from tests.guard.conftest import CHEAP, MODEL, facts, pricer
from tokenops.guard import Admission, Guard, Policies, Quota, RateLimit, Refusal
from tokenops.guard.quotas import period_window

NEW_YORK, PARIS = ZoneInfo("America/New_York"), ZoneInfo("Europe/Paris")


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def test_days_are_23_and_25_hours_long_across_dst_changes() -> None:
    spring = period_window(utc(2026, 3, 8, 12), "day", NEW_YORK)
    assert (spring.start, spring.end, spring.label) == (utc(2026, 3, 8, 5), utc(2026, 3, 9, 4), "2026-03-08")
    autumn = period_window(utc(2026, 11, 1, 12), "day", NEW_YORK)
    assert autumn.end - autumn.start == timedelta(hours=25)
    late_evening = period_window(utc(2026, 3, 9, 3, 59), "day", NEW_YORK)  # 23:59 EDT on March 8
    assert late_evening.label == "2026-03-08"


def test_weeks_start_on_local_monday_and_months_on_the_first() -> None:
    week = period_window(utc(2026, 3, 29, 12), "week", PARIS)  # Sunday, the day clocks go forward
    assert (week.start, week.end, week.label) == (utc(2026, 3, 22, 23), utc(2026, 3, 29, 22), "2026-W13")
    month = period_window(utc(2026, 3, 15), "month", PARIS)
    assert (month.start, month.end, month.label) == (utc(2026, 2, 28, 23), utc(2026, 3, 31, 22), "2026-03")
    december = period_window(utc(2026, 12, 31, 23, 30), "month", PARIS)  # already January in Paris
    assert december.label == "2027-01"


def _spend(guard: Guard, at: datetime, **kw: Any) -> Admission | Refusal:
    decision = guard.admit(facts(task=None, ts=at, **kw))
    if isinstance(decision, Admission):
        guard.settle(decision, Decimal("0.02"), 2_000)
    return decision


def test_a_daily_quota_resets_at_local_midnight_around_a_dst_change() -> None:
    quota = Quota(name="team-day", scope="team", period="day", max_usd=Decimal("0.04"))
    guard = Guard(Policies(timezone="America/New_York", quotas=[quota]), pricer())
    before_midnight = utc(2026, 3, 8, 4, 59)  # 23:59 EST on Saturday March 7
    assert all(isinstance(_spend(guard, before_midnight, team="support"), Admission) for _ in range(2))
    refused = _spend(guard, before_midnight + timedelta(seconds=30), team="support")
    assert isinstance(refused, Refusal)
    assert (refused.status, refused.type, refused.spent, refused.limit) == (
        429,
        "tokenops_quota_exceeded",
        Decimal("0.04"),
        Decimal("0.04"),
    )
    assert (refused.resets_at, refused.retry_after_s) == (utc(2026, 3, 8, 5), 30)
    assert "team 'support'" in refused.message and "2026-03-08 00:00 America/New_York" in refused.message
    assert isinstance(_spend(guard, utc(2026, 3, 8, 5), team="support"), Admission)  # midnight EST: a new day
    assert isinstance(_spend(guard, utc(2026, 3, 8, 6), team="support"), Admission)
    # March 8 has 23 hours: it ends at 04:00 UTC (midnight EDT), not 05:00
    still_sunday = _spend(guard, utc(2026, 3, 9, 3, 59), team="support")
    assert isinstance(still_sunday, Refusal) and still_sunday.resets_at == utc(2026, 3, 9, 4)
    assert isinstance(_spend(guard, utc(2026, 3, 9, 4), team="support"), Admission)
    assert isinstance(_spend(guard, before_midnight, team="research"), Admission)  # each team has its own


def test_quotas_count_per_scope_value_in_tokens_or_dollars() -> None:
    policies = Policies(
        quotas=[
            Quota(name="frontier-month", scope="model", match="guard-test", period="month", max_tokens=5_000),
            Quota(name="acme-week", scope="customer", match="acme", period="week", max_usd=Decimal(5)),
        ]
    )
    guard = Guard(policies, pricer())
    t = utc(2026, 11, 2, 10)
    assert all(isinstance(_spend(guard, t), Admission) for _ in range(2))
    refused = _spend(guard, t)
    assert isinstance(refused, Refusal) and (refused.policy, refused.unit, refused.spent) == (
        "frontier-month",
        "tokens",
        4_000,
    )
    assert isinstance(_spend(guard, t, model=CHEAP), Admission)  # the quota covers one model only
    assert refused.resets_at == utc(2026, 12, 1)


def test_an_alert_only_quota_warns_but_never_blocks() -> None:
    quota = Quota(name="org-day", scope="org", period="day", max_usd=Decimal("0.05"), on_exceed="alert")
    guard = Guard(Policies(quotas=[quota]), pricer())
    decisions = [_spend(guard, utc(2026, 11, 2, 10)) for _ in range(4)]
    assert all(isinstance(d, Admission) for d in decisions)
    last = decisions[-1]
    assert isinstance(last, Admission)
    assert last.warnings == ("quota 'org-day' for the organisation is at 160% (spent or reserved: $0.08 of $0.05)",)


def test_rate_limits_count_requests_and_tokens_per_minute() -> None:
    policies = Policies(
        rate_limits=[
            RateLimit(name="per-user", scope="user", requests_per_minute=3),
            RateLimit(name="tpm", scope="key", tokens_per_minute=5_000),
        ]
    )
    guard = Guard(policies, pricer())
    t = utc(2026, 11, 2, 10, 0, 5)
    assert all(isinstance(_spend(guard, t, user="ana"), Admission) for _ in range(3))
    limited = _spend(guard, t, user="ana")
    assert isinstance(limited, Refusal)
    assert (limited.status, limited.type, limited.unit, limited.spent, limited.limit) == (
        429,
        "tokenops_rate_limited",
        "requests",
        3,
        3,
    )
    assert (limited.resets_at, limited.retry_after_s, limited.retryable) == (utc(2026, 11, 2, 10, 1), 55, True)
    assert isinstance(_spend(guard, t, user="bo"), Admission)
    assert isinstance(_spend(guard, utc(2026, 11, 2, 10, 1), user="ana"), Admission)  # the next minute

    # tokens: each call reserves 2,000 (1,000 in + 1,000 out) and settles to what it really used
    first = guard.admit(facts(task=None, ts=t, key_id="k1", model=MODEL))
    second = guard.admit(facts(task=None, ts=t, key_id="k1", model=MODEL))
    assert isinstance(first, Admission) and isinstance(second, Admission)
    assert isinstance(guard.admit(facts(task=None, ts=t, key_id="k1")), Refusal)  # 4,000 + 2,000 > 5,000
    guard.settle(first, Decimal("0.008"), 800)
    assert isinstance(guard.admit(facts(task=None, ts=t, key_id="k1")), Admission)  # 800 + 2,000 + 2,000 fits
