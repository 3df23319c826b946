"""Put the in-process counters back where the ledger says they were, after a restart.

In-process counters live in memory: without this, restarting the server would hand every team a
fresh monthly quota. At start-up (and whenever the policy set changes) each quota's current period
is summed from the ledger, per scope value, over the calls the guard itself admitted (gateway and
SDK rows; imported usage was never admitted, so it does not count), and the counters are raised to
those totals. Redis counters survive restarts on their own and are left alone.
"""

from __future__ import annotations

import logging
from datetime import datetime

from tokenops.guard.counters import InProcessCounters
from tokenops.guard.policies import Policies, Quota, matches
from tokenops.guard.quotas import GRACE_S, period_window, quota_key
from tokenops.store import Ledger
from tokenops.store.rows import utc_naive

log = logging.getLogger(__name__)

_COLUMN = {"key": "api_key_id", "user": "user_id", "team": "team", "customer": "customer", "workflow": "workflow"}


def _scope_sql(quota: Quota) -> str:
    if quota.scope == "org":
        return "'*'"
    if quota.scope == "model":
        return "model"
    return _COLUMN[quota.scope]


def restore_quotas(counters: InProcessCounters, policies: Policies, ledger: Ledger, now: datetime) -> int:
    """Raise each quota's counters to the spend of its current period; returns how many were restored."""
    restored = 0
    for quota in policies.quotas:
        window = period_window(now, quota.period, policies.zone)
        rows = ledger.query_values(  # at start-up in the gateway: no Arrow
            f"SELECT {_scope_sql(quota)} AS value, workflow, "
            "sum(ceil(coalesce(cost_total, 0) * 1000000000)) AS nano, "
            "sum(input_tokens + output_tokens) AS tokens "
            "FROM usage_events WHERE ts >= ? AND ts < ? AND status NOT IN ('blocked', 'cached') "
            "AND source IN ('gateway', 'sdk') GROUP BY 1, 2",
            [utc_naive(window.start), utc_naive(window.end)],
        )
        totals: dict[str, tuple[int, int]] = {}
        for row in rows:
            value, workflow = row["value"], row["workflow"]
            if value is None or not quota.covers(workflow) or not matches(str(value), quota.match):  # type: ignore[arg-type]
                continue
            nano, tokens = totals.get(str(value), (0, 0))
            totals[str(value)] = (nano + int(row["nano"] or 0), tokens + int(row["tokens"] or 0))  # type: ignore[call-overload]
        ttl = max(int((window.end - now).total_seconds()), 0) + GRACE_S
        for value, (nano, tokens) in totals.items():
            base = quota_key(quota, value, window.label)
            if quota.max_usd is not None:
                counters.restore(f"{base}:usd", nano, ttl)
            if quota.max_tokens is not None:
                counters.restore(f"{base}:tokens", tokens, ttl)
            restored += 1
    if restored:
        log.info("tokenops guard: restored %d quota counters from the ledger", restored)
    return restored
