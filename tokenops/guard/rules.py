"""Which models a caller may use: allow-lists per team and workflow, escalation to frontier models."""

from __future__ import annotations

from collections.abc import Sequence

from tokenops.guard.decisions import CallFacts, Refusal
from tokenops.guard.policies import Escalation, Grant, ModelRule, matches


def check_model(facts: CallFacts, rules: Sequence[ModelRule], escalations: Sequence[Escalation]) -> Refusal | None:
    """Refuse (403) a model the first matching allow-list leaves out, or a frontier model nobody granted."""
    for rule in rules:
        if rule.applies(facts.team, facts.workflow):
            if not rule.allows(facts.model):
                return Refusal(
                    403,
                    "tokenops_model_not_allowed",
                    f"Model {facts.model!r} is not allowed for team {facts.team!r} in workflow {facts.workflow!r}; "
                    f"allowed: {', '.join(rule.allow)}. Use one of those, or add it to the [[guard.model_rules]] "
                    f"entry for team {rule.team!r}, workflow {rule.workflow!r}",
                    policy=f"model rule {rule.team}/{rule.workflow}",
                )
            break
    for escalation in escalations:
        if any(matches(facts.model, pattern) for pattern in escalation.models):
            if not any(_granted(grant, facts) for grant in escalation.grants):
                return Refusal(
                    403,
                    "tokenops_model_not_allowed",
                    f"Model {facts.model!r} is a frontier model (escalation {escalation.name!r}) and no grant covers "
                    f"user {facts.user!r}, team {facts.team!r}, workflow {facts.workflow!r}"
                    f"{_iteration_note(escalation, facts)}. Use a cheaper model, or add a grant to "
                    f"[[guard.escalations]] {escalation.name!r}",
                    policy=escalation.name,
                )
    return None


def _granted(grant: Grant, facts: CallFacts) -> bool:
    if not (
        matches(facts.team, grant.team) and matches(facts.user, grant.user) and matches(facts.workflow, grant.workflow)
    ):
        return False
    return grant.min_iteration is None or (facts.iteration or 0) >= grant.min_iteration


def _iteration_note(escalation: Escalation, facts: CallFacts) -> str:
    later = [
        g.min_iteration
        for g in escalation.grants
        if g.min_iteration is not None
        and matches(facts.team, g.team)
        and matches(facts.user, g.user)
        and matches(facts.workflow, g.workflow)
    ]
    return f" at iteration {facts.iteration or 0} (allowed from iteration {min(later)})" if later else ""
