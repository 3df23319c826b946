"""`tokenops.cascade`: ask the cheap model first, escalate only when its answer fails a check.

    spec = settings.route.cascade("extract-invoice")     # or a plain list: ["gpt-4o-mini", "gpt-4o"]
    result = tokenops.cascade(client, spec, messages=[...], response_format={"type": "json_object"})
    result.response, result.model, result.attempts

Checks see the provider's response object (OpenAI chat or Anthropic messages, or their JSON as a
dict): `json_schema(schema)`, `verifier(fn)` on the answer's text, `min_logprob(x)` on the mean token
log-probability. Every attempt is a normal call, so it lands in the ledger (through the gateway or
`tokenops.instrument`) with tags `route_reason` (`cascade:first`, `cascade:escalated:<why>`),
`cascade` (one id per cascade run), `cascade_step`, and `model_requested` = the cascade's first model.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from tokenops.route.rules import CASCADE_TAG, ROUTE_REASON, CascadeSpec
from tokenops.route.schema import check_schema, errors

TAGS_HEADER = "x-tokenops-tags"
MODEL_REQUESTED_HEADER = "x-tokenops-model-requested"
"""Tells the gateway (and `tokenops.instrument`) which model the application asked for first."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """A check's result."""

    passed: bool
    """The answer is good enough to keep."""
    reason: str = "ok"
    """Short code recorded in the ledger (`json_invalid`, `schema_mismatch`, `verifier_failed`, `low_confidence`)."""
    detail: str = ""
    """Human-readable explanation (not recorded)."""


Check = Callable[[Any], "Verdict | bool"]
Step = str | tuple[str, Mapping[str, Any]]
"""A model, or a model with request overrides for its attempt (e.g. `("gpt-4o", {"max_tokens": 2000})`)."""


@dataclass(frozen=True, slots=True)
class Attempt:
    """One model's try within a cascade."""

    model: str
    """Model called."""
    verdict: Verdict
    """What the checks said."""


@dataclass(frozen=True, slots=True)
class CascadeResult:
    """The kept answer and how it was reached."""

    response: Any
    """The provider response object of the kept attempt."""
    model: str
    """Model whose answer was kept."""
    attempts: tuple[Attempt, ...]
    """Every attempt, in order."""

    @property
    def escalated(self) -> bool:
        """Whether the first model's answer was rejected."""
        return len(self.attempts) > 1


def _get(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)


def response_text(response: Any) -> str:
    """The answer's text: OpenAI chat (`choices[0].message.content`), Responses, or Anthropic `content`.

    Works on the SDKs' objects and on the providers' JSON (what the gateway sees).
    """
    choices = _get(response, "choices")
    if choices:
        return str(_get(_get(choices[0], "message"), "content") or "")
    if isinstance(text := _get(response, "output_text"), str):
        return text
    output = _get(response, "output")
    if isinstance(output, list):  # the Responses API's JSON: message items holding output_text parts
        parts = [p for item in output if _get(item, "type") == "message" for p in _get(item, "content") or []]
        return "".join(str(_get(p, "text") or "") for p in parts if _get(p, "type") == "output_text")
    content = _get(response, "content")
    if isinstance(content, list):
        return "".join(str(_get(block, "text") or "") for block in content if _get(block, "type") == "text")
    return ""


_FENCE = re.compile(r"^\s*```(?:json)?\s*\n(.*?)\n?```\s*$", re.DOTALL)


def json_schema(schema: Mapping[str, Any]) -> Check:
    """Pass when the answer is JSON (optionally in a ```json fence) valid against `schema`."""
    check_schema(schema)

    def check(response: Any) -> Verdict:
        text = response_text(response)
        fenced = _FENCE.match(text)
        try:
            value = orjson.loads(fenced.group(1) if fenced else text)
        except orjson.JSONDecodeError as exc:
            return Verdict(False, "json_invalid", f"answer is not JSON: {exc}")
        problems = errors(value, schema)
        return Verdict(not problems, "schema_mismatch" if problems else "ok", "; ".join(problems[:5]))

    return check


def verifier(fn: Callable[[str], bool], reason: str = "verifier_failed") -> Check:
    """Pass when `fn(answer_text)` is true (a unit test, a regex, a grader model ...)."""

    def check(response: Any) -> Verdict:
        return Verdict(True) if fn(response_text(response)) else Verdict(False, reason)

    return check


def min_logprob(threshold: float) -> Check:
    """Pass when the mean token log-probability reaches `threshold`; answers without logprobs pass."""

    def check(response: Any) -> Verdict:
        choices = _get(response, "choices") or []
        content = _get(_get(choices[0], "logprobs"), "content") if choices else None
        values = [float(v) for t in content or [] if isinstance(v := _get(t, "logprob"), int | float)]
        if not values:
            return Verdict(True, "ok", "no logprobs in the answer")
        mean = sum(values) / len(values)
        return Verdict(mean >= threshold, "ok" if mean >= threshold else "low_confidence", f"mean logprob {mean:.3f}")

    return check


def _checks(spec: CascadeSpec | None, check: Check | Sequence[Check]) -> list[Check]:
    out: list[Check] = [check] if callable(check) else list(check)
    if spec is not None and spec.json_schema is not None:
        out.insert(0, json_schema(spec.json_schema))
    elif spec is not None and spec.require_json:
        out.insert(0, json_schema({}))  # the empty schema accepts any JSON value
    if spec is not None and spec.min_mean_logprob is not None:
        out.append(min_logprob(spec.min_mean_logprob))
    return out


def judge(checks: Sequence[Check], response: Any) -> Verdict:
    """The first failing check's verdict, or a pass (shared by the SDK's and the gateway's cascades)."""
    for check in checks:
        verdict = check(response)
        if not isinstance(verdict, Verdict):
            verdict = Verdict(True) if verdict else Verdict(False, "check_failed")
        if not verdict.passed:
            return verdict
    return Verdict(True)


def _create(client: Any) -> Callable[..., Any]:
    chat = getattr(client, "chat", None)
    if chat is not None:
        return chat.completions.create  # type: ignore[no-any-return]
    messages = getattr(client, "messages", None)
    if messages is not None:
        return messages.create  # type: ignore[no-any-return]
    raise TypeError(f"tokenops.cascade() needs an OpenAI or Anthropic client, not {type(client).__name__}")


@dataclass(slots=True)
class _Plan:
    models: list[str]
    overrides: list[Mapping[str, Any]]
    checks: list[Check]
    request: dict[str, Any]
    tags: dict[str, str]
    attempts: list[Attempt]

    def kwargs(self, step: int) -> dict[str, Any]:
        reason = "cascade:first" if step == 0 else f"cascade:escalated:{self.attempts[-1].verdict.reason}"
        tags = {**self.tags, ROUTE_REASON: reason, "cascade_step": str(step + 1)}
        headers = dict(self.request.get("extra_headers") or {})
        caller = headers.pop(TAGS_HEADER, "")
        header = ",".join(f"{k}={v.replace(',', ';')}" for k, v in tags.items())
        headers[TAGS_HEADER] = f"{caller},{header}" if caller else header
        headers[MODEL_REQUESTED_HEADER] = self.models[0]
        return {**self.request, **self.overrides[step], "model": self.models[step], "extra_headers": headers}

    def judge(self, step: int, response: Any) -> CascadeResult | None:
        self.attempts.append(Attempt(self.models[step], judge(self.checks, response)))
        if self.attempts[-1].verdict.passed or step == len(self.models) - 1:
            return CascadeResult(response, self.models[step], tuple(self.attempts))
        return None


def _plan(models: Sequence[Step] | CascadeSpec, check: Check | Sequence[Check], request: dict[str, Any]) -> _Plan:
    if isinstance(models, str):
        raise TypeError(f"a cascade needs a list of models (cheapest first), not the single model {models!r}")
    spec = models if isinstance(models, CascadeSpec) else None
    steps: list[Step] = list(spec.models) if spec is not None else list(models)
    names = [s if isinstance(s, str) else s[0] for s in steps]
    if not names or any(not isinstance(m, str) or not m for m in names):
        raise ValueError(f"a cascade needs at least one model name, got {names!r}")
    overrides: list[Mapping[str, Any]] = [{} if isinstance(s, str) else dict(s[1]) for s in steps]
    if spec is not None:
        overrides = [spec.overrides.get(m, {}) for m in names]
    tags = {CASCADE_TAG: uuid.uuid4().hex[:16]}
    if spec is not None:
        tags["cascade_name"] = spec.name
    return _Plan(names, overrides, _checks(spec, check), request, tags, [])


def cascade(
    client: Any, models: Sequence[Step] | CascadeSpec, *, check: Check | Sequence[Check] = (), **request: Any
) -> CascadeResult:
    """Call `models` in order with the same request until an answer passes every check."""
    plan, create = _plan(models, check, request), _create(client)
    for step in range(len(plan.models)):
        result = plan.judge(step, create(**plan.kwargs(step)))
        if result is not None:
            return result
    raise AssertionError("unreachable: the last attempt always ends the cascade")


async def acascade(
    client: Any, models: Sequence[Step] | CascadeSpec, *, check: Check | Sequence[Check] = (), **request: Any
) -> CascadeResult:
    """`cascade` for async clients (`AsyncOpenAI`, `AsyncAnthropic`)."""
    plan, create = _plan(models, check, request), _create(client)
    for step in range(len(plan.models)):
        pending: Awaitable[Any] = create(**plan.kwargs(step))
        result = plan.judge(step, await pending)
        if result is not None:
            return result
    raise AssertionError("unreachable: the last attempt always ends the cascade")
