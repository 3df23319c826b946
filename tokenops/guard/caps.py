"""Size and loop caps: output length (clamp or reject), input size, agent iterations per task run."""

from __future__ import annotations

from collections.abc import Sequence

from tokenops.guard.counters import Charge, key_part
from tokenops.guard.decisions import CallFacts, Metered, Refusal
from tokenops.guard.policies import InputCap, IterationCap, OutputCap

TASK_TTL_S = 2 * 24 * 3600
"""Task-run counters are forgotten two days after the run's last call."""


def cap_output(facts: CallFacts, caps: Sequence[OutputCap]) -> Refusal | int | None:
    """The output limit to send instead of the request's (None: leave it), or a 400 refusal above a ceiling."""
    asked = facts.max_output_tokens
    cap = next((c for c in caps if c.covers(facts.workflow)), None)
    if cap is None or (asked is not None and asked <= cap.max_output_tokens):
        return None
    if cap.mode == "reject" and asked is not None:
        return Refusal(
            400,
            "tokenops_output_cap",
            f"max output {asked} tokens exceeds the {cap.max_output_tokens}-token cap of workflow "
            f"{facts.workflow!r}; ask for at most {cap.max_output_tokens} (max_tokens / max_output_tokens)",
            limit=cap.max_output_tokens,
            spent=asked,
            policy=f"output cap {cap.workflow}",
            unit="tokens",
        )
    return cap.max_output_tokens


def check_input(facts: CallFacts, caps: Sequence[InputCap]) -> Refusal | None:
    """Refuse (400) a prompt larger than the workflow's context limit."""
    cap = next((c for c in caps if c.covers(facts.workflow)), None)
    if cap is None or facts.input_tokens <= cap.max_input_tokens:
        return None
    return Refusal(
        400,
        "tokenops_input_too_large",
        f"Input of about {facts.input_tokens} tokens exceeds the {cap.max_input_tokens}-token input cap of workflow "
        f"{facts.workflow!r}; send less context (fewer retrieved chunks, a summarised history)",
        limit=cap.max_input_tokens,
        spent=facts.input_tokens,
        policy=f"input cap {cap.workflow}",
        unit="tokens",
    )


def _cap(facts: CallFacts, caps: Sequence[IterationCap]) -> IterationCap | None:
    return next((c for c in caps if c.covers(facts.workflow)), None)


def check_iteration(facts: CallFacts, caps: Sequence[IterationCap]) -> Refusal | None:
    """Refuse (429) a call from a loop iteration past the workflow's `max_iterations`."""
    cap = _cap(facts, caps)
    if cap is None or cap.max_iterations is None or facts.iteration is None or facts.iteration <= cap.max_iterations:
        return None
    return Refusal(
        429,
        "tokenops_iteration_cap",
        f"Task run {facts.task_run_id!r} is at loop iteration {facts.iteration}, past the cap of "
        f"{cap.max_iterations} for workflow {facts.workflow!r}; end the loop, or raise max_iterations in "
        f"[[guard.iteration_caps]] workflow {cap.workflow!r}",
        limit=cap.max_iterations,
        spent=facts.iteration,
        policy=f"iteration cap {cap.workflow}",
        unit="calls",
    )


def call_counter(facts: CallFacts, caps: Sequence[IterationCap]) -> Metered | None:
    """The task run's call counter, when an iteration cap limits calls."""
    cap = _cap(facts, caps)
    if cap is None or cap.max_calls is None or facts.task_run_id is None:
        return None
    return Metered(
        Charge(f"t:{key_part(facts.task_run_id)}:calls", 1, cap.max_calls, TASK_TTL_S),
        kind="iteration_cap",
        policy=f"iteration cap {cap.workflow}",
        unit="calls",
        subject=f"task run {facts.task_run_id!r}",
        budget=cap.max_calls,
        hint=f"end the loop, or raise max_calls in [[guard.iteration_caps]] workflow {cap.workflow!r}",
    )
