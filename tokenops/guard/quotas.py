"""Periodic quotas (day, week, month in a configured timezone) and per-minute rate limits.

A quota's period starts at local midnight in `Policies.timezone`, so a day across a DST change
is 23 or 25 hours long; weeks start on Monday. Each period has its own counter key (the period's
local start date is part of it), so a reset needs no job: the next period simply starts at 0 and
the old counter expires a day after its period ended. Rate limits use fixed UTC-minute windows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from tokenops.guard.counters import Charge, key_part, to_nano
from tokenops.guard.decisions import CallFacts, Metered
from tokenops.guard.policies import Period, Quota, RateLimit, Scope, matches

GRACE_S = 24 * 3600
"""A finished period's counter lingers this long (late settlements still land on it)."""


@dataclass(frozen=True, slots=True)
class Window:
    """One period of a quota."""

    start: datetime
    """Local midnight the period began (UTC)."""
    end: datetime
    """Local midnight it resets (UTC)."""
    label: str
    """`2026-03-08`, `2026-W10`, `2026-03`: part of the counter key."""


def period_window(ts: datetime, period: Period, zone: ZoneInfo) -> Window:
    """The quota period `ts` falls in, with its resets at local midnight in `zone`."""
    day = ts.astimezone(zone).date()
    if period == "day":
        first, after = day, day + timedelta(days=1)
        label = day.isoformat()
    elif period == "week":
        first = day - timedelta(days=day.weekday())
        after = first + timedelta(days=7)
        year, week, _ = first.isocalendar()
        label = f"{year}-W{week:02d}"
    else:
        first = day.replace(day=1)
        after = (first + timedelta(days=32)).replace(day=1)
        label = f"{first.year}-{first.month:02d}"
    return Window(_midnight(first, zone), _midnight(after, zone), label)


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    # A midnight skipped by DST resolves (fold=0) to the instant of the jump: the day's first instant.
    return datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)


def scope_value(facts: CallFacts, scope: Scope, model: str) -> str | None:
    """The value a call has for a quota's scope (None: the call is not covered)."""
    if scope == "org":
        return "*"
    if scope == "key":
        return facts.key_id
    if scope == "model":
        return model
    value: str | None = getattr(facts, scope)
    return value


def quota_key(quota: Quota, value: str, label: str) -> str:
    """Counter key of a quota for one scope value and period (the unit, `:usd` or `:tokens`, is appended)."""
    return f"q:{key_part(quota.name)}:{key_part(value)}:{label}"


def _subject(scope: Scope, value: str) -> str:
    return "the organisation" if scope == "org" else f"{scope} {value!r}"


def quota_counters(
    facts: CallFacts, quotas: Sequence[Quota], zone: ZoneInfo, model: str, usd_nano: int, tokens: int
) -> list[Metered]:
    """Counters of every quota covering the call, in the current period."""
    out: list[Metered] = []
    for quota in quotas:
        value = scope_value(facts, quota.scope, model)
        if value is None or not quota.covers(facts.workflow) or not matches(value, quota.match):
            continue
        window = period_window(facts.ts, quota.period, zone)
        ttl = max(int((window.end - facts.ts).total_seconds()), 0) + GRACE_S
        block = quota.on_exceed == "block"
        period = f"{quota.period} {window.label} ({zone.key})"
        hint = f"raise the limit of [[guard.quotas]] {quota.name!r}"
        base = quota_key(quota, value, window.label)
        for unit, amount, limit in (
            ("usd", usd_nano, None if quota.max_usd is None else to_nano(quota.max_usd)),
            ("tokens", tokens, quota.max_tokens),
        ):
            if limit is None:
                continue
            out.append(
                Metered(
                    Charge(f"{base}:{unit}", amount, limit if block else None, ttl),
                    "quota",
                    quota.name,
                    "usd" if unit == "usd" else "tokens",
                    _subject(quota.scope, value),
                    budget=limit,
                    warn_at=quota.warn_at,
                    period=period,
                    resets_at=window.end,
                    zone=zone.key,
                    hint=hint,
                )
            )
    return out


def rate_counters(facts: CallFacts, limits: Sequence[RateLimit], model: str, tokens: int) -> list[Metered]:
    """Counters of every rate limit covering the call, in the current UTC minute."""
    out: list[Metered] = []
    minute = int(facts.ts.timestamp()) // 60
    resets_at = datetime.fromtimestamp((minute + 1) * 60, UTC)
    for limit in limits:
        value = scope_value(facts, limit.scope, model)
        if value is None or not limit.covers(facts.workflow) or not matches(value, limit.match):
            continue
        base = f"rl:{key_part(limit.name)}:{key_part(value)}:{minute}"
        hint = f"raise the limit of [[guard.rate_limits]] {limit.name!r}"
        for unit, amount, cap in (
            ("requests", 1, limit.requests_per_minute),
            ("tokens", tokens, limit.tokens_per_minute),
        ):
            if cap is None:
                continue
            out.append(
                Metered(
                    Charge(f"{base}:{unit}", amount, cap, 120),
                    "rate_limit",
                    limit.name,
                    "requests" if unit == "requests" else "tokens",
                    _subject(limit.scope, value),
                    budget=cap,
                    period="minute",
                    resets_at=resets_at,
                    hint=hint,
                )
            )
    return out
