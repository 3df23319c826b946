"""Policies are validated where they enter (tokenops.toml, the admin API), with reasons that say how to fix them."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from tokenops.guard import IterationCap, Policies, Quota, RateLimit, TaskBudget


def test_inconsistent_policies_are_refused_with_a_reason() -> None:
    with pytest.raises(ValidationError, match="task budget 'task-budget' needs max_usd or max_tokens"):
        TaskBudget()
    with pytest.raises(ValidationError, match="needs downgrade_to"):
        TaskBudget(max_usd=Decimal(1), on_exceed="downgrade")
    with pytest.raises(ValidationError, match="needs requests_per_minute or tokens_per_minute"):
        RateLimit(name="r")
    with pytest.raises(ValidationError, match="needs max_calls or max_iterations"):
        IterationCap()
    with pytest.raises(ValidationError, match="less than or equal to 9000000"):
        Quota(name="q", scope="org", period="month", max_usd=Decimal(10_000_000))


def test_unknown_fields_timezones_and_duplicate_names_are_refused() -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        Policies.model_validate({"task_budgets": [{"max_usd": "1", "max_dollars": "2"}]})
    with pytest.raises(ValidationError, match="unknown timezone 'Mars/Olympus'"):
        Policies(timezone="Mars/Olympus")
    quota = {"name": "team-day", "scope": "team", "period": "day", "max_usd": "5"}
    with pytest.raises(ValidationError, match="quota names must be unique .* 'team-day'"):
        Policies.model_validate({"quotas": [quota, quota]})


def test_a_policy_set_loads_from_toml_shaped_data() -> None:
    policies = Policies.model_validate(
        {
            "timezone": "Europe/Paris",
            "quotas": [{"name": "team-day", "scope": "team", "match": "support*", "period": "day", "max_usd": "5"}],
            "rate_limits": [{"name": "rpm", "requests_per_minute": 60}],
            "escalations": [{"models": ["gpt-5*"], "grants": [{"team": "research", "min_iteration": 2}]}],
        }
    )
    assert policies.zone.key == "Europe/Paris"
    assert policies.quotas[0].max_usd == Decimal(5) and policies.rate_limits[0].scope == "key"
    assert policies.escalations[0].grants[0].min_iteration == 2
