"""Model allow-lists per team and workflow; escalation to frontier models by grant."""

from __future__ import annotations

from typing import Any

from tests.guard.conftest import CHEAP, MODEL, facts, pricer
from tokenops.guard import Admission, Escalation, Grant, Guard, ModelRule, Policies, Refusal


def test_the_first_allow_list_matching_team_and_workflow_decides() -> None:
    policies = Policies(
        model_rules=[
            ModelRule(team="support", workflow="escalation", allow=["guard-test*"]),
            ModelRule(team="support", allow=[CHEAP, "claude-haiku-*"]),
        ]
    )
    guard = Guard(policies, pricer())
    refused = guard.admit(facts(task=None, model=MODEL, team="support", workflow="triage"))
    assert isinstance(refused, Refusal) and (refused.status, refused.type) == (403, "tokenops_model_not_allowed")
    assert "allowed: guard-test-mini, claude-haiku-*" in refused.message
    assert isinstance(guard.admit(facts(task=None, model="claude-haiku-4-5", team="support")), Admission)
    assert isinstance(guard.admit(facts(task=None, model=MODEL, team="support", workflow="escalation")), Admission)
    assert isinstance(guard.admit(facts(task=None, model=MODEL, team="research")), Admission)


def test_frontier_models_need_a_grant_for_the_caller_the_workflow_and_the_iteration() -> None:
    frontier = Escalation(
        name="frontier",
        models=["guard-test"],
        grants=[
            Grant(team="research"),
            Grant(user="lead-*", workflow="legal_review"),
            Grant(workflow="support_agent", min_iteration=3),
        ],
    )
    guard = Guard(Policies(escalations=[frontier]), pricer())

    def admitted(**kw: Any) -> bool:
        return isinstance(guard.admit(facts(task=None, **kw)), Admission)

    assert admitted(team="research")
    assert admitted(user="lead-ana", workflow="legal_review")
    assert not admitted(user="ana", workflow="legal_review")
    assert not admitted(workflow="support_agent", iteration=2)
    assert admitted(workflow="support_agent", iteration=3)  # escalate after two cheaper attempts
    assert admitted(model=CHEAP, team="sales")  # other models are not governed
    refused = guard.admit(facts(task=None, workflow="support_agent", iteration=1))
    assert isinstance(refused, Refusal) and (refused.status, refused.policy) == (403, "frontier")
    assert "at iteration 1 (allowed from iteration 3)" in refused.message
