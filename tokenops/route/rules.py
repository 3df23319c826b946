"""Routing as configured (`[route]` in tokenops.toml): validated at the trust boundary, decided purely.

A rule matches a call by workflow, the model the caller asked for, prompt size, tool use, JSON mode
and keywords, and names the model to serve instead. The first matching rule wins; when none does
and a learned router is configured for the call, it chooses between its weak and strong model.

```toml
[route]
enabled = true

[[route.rules]]
name = "long-context"
min_input_tokens = 20000
target = "gpt-4.1-mini"

[[route.rules]]
name = "triage-cheap"
workflow = "support_*"
models = ["gpt-4o"]
tools = false
target = "gpt-4o-mini"

[route.learned]
path = "router.npz"          # relative to data_dir; written by `train_from_ledger` / `fit`
models = ["auto"]             # the caller asks for model "auto"
weak = "gpt-4o-mini"
strong = "gpt-4o"

[[route.cascades]]            # run by the gateway for these workflows or `X-Tokenops-Cascade: extract`
name = "extract"
models = ["gpt-4o-mini", "gpt-4o"]
require_json = true
workflows = ["extract_invoice"]
```
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tokenops.guard.policies import matches
from tokenops.route.schema import check_schema

ROUTE_REASON = "route_reason"
"""Ledger tag holding why a call was served by the model it was (`rule:...`, `learned:...`, `cascade:...`)."""
CASCADE_TAG = "cascade"
"""Ledger tag holding one id per cascade run (every attempt of the run carries it)."""


@dataclass(frozen=True, slots=True)
class RouteRequest:
    """What a routing decision looks at, whatever the wire format."""

    model: str
    """Model the caller asked for."""
    prompt: str
    """Text of the last user message (what RouteLLM-style routers score)."""
    input_tokens: int = 0
    """Estimate of the whole prompt's tokens (all messages, about 4 characters each)."""
    workflow: str | None = None
    """`X-Tokenops-Workflow`."""
    tools: bool = False
    """The request offers tools (or functions)."""
    json_mode: bool = False
    """The request asks for JSON output (`response_format` json_object / json_schema)."""
    context: tuple[str, ...] = field(default_factory=tuple)
    """Extra tokens for the learned router (`workflow=...`)."""


@dataclass(frozen=True, slots=True)
class RouteDecision:
    """Which model serves a call and why (the `route_reason` tag in the ledger)."""

    model: str
    """Model to serve."""
    reason: str
    """`rule:<name>` or `learned:strong (0.71 >= 0.50)`."""
    score: float | None = None
    """Learned router's score, when it decided."""


class RouteRule(BaseModel):
    """Serve `target` for calls matching every condition that is set."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    """Shown in the ledger's `route_reason` tag as `rule:<name>`."""
    target: str = Field(min_length=1)
    """Model served instead of the one asked for."""
    workflow: str = "*"
    """Workflow name or glob."""
    models: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    """Globs of the requested models this rule may replace."""
    min_input_tokens: int | None = Field(default=None, ge=0)
    """Only prompts of at least this many (estimated) tokens."""
    max_input_tokens: int | None = Field(default=None, ge=0)
    """Only prompts of at most this many (estimated) tokens."""
    tools: bool | None = None
    """Only calls that offer tools (true) or that do not (false)."""
    json_mode: bool | None = None
    """Only calls that ask for JSON output (true) or that do not (false)."""
    keywords: list[str] = Field(default_factory=list)
    """Any of these words or phrases in the last user message (case-insensitive, whole words)."""

    @model_validator(mode="after")
    def _sizes(self) -> RouteRule:
        low, high = self.min_input_tokens, self.max_input_tokens
        if low is not None and high is not None and low > high:
            raise ValueError(f"route rule {self.name!r}: min_input_tokens {low} > max_input_tokens {high}")
        return self

    def applies(self, request: RouteRequest) -> bool:
        """Whether every condition holds for this call."""
        if not matches(request.workflow, self.workflow) or not any(matches(request.model, m) for m in self.models):
            return False
        if self.min_input_tokens is not None and request.input_tokens < self.min_input_tokens:
            return False
        if self.max_input_tokens is not None and request.input_tokens > self.max_input_tokens:
            return False
        if self.tools is not None and request.tools != self.tools:
            return False
        if self.json_mode is not None and request.json_mode != self.json_mode:
            return False
        return not self.keywords or _keyword_pattern(tuple(self.keywords)).search(request.prompt) is not None


@functools.lru_cache(maxsize=256)
def _keyword_pattern(words: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile("|".join(rf"\b{re.escape(w)}\b" for w in words), re.IGNORECASE)


class LearnedRoute(BaseModel):
    """Between a weak and a strong model, by a learned router's score."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: Path
    """The `.npz` artefact (relative paths are under `data_dir`)."""
    weak: str = Field(min_length=1)
    """Model served when the score is below the threshold."""
    strong: str = Field(min_length=1)
    """Model served when the score reaches the threshold."""
    workflow: str = "*"
    """Workflow name or glob the learned router decides for."""
    models: list[str] = Field(default_factory=lambda: ["auto"], min_length=1)
    """Globs of the requested models it may replace (`auto`: the caller leaves the choice to us)."""
    threshold: float | None = Field(default=None, ge=0, le=1)
    """Overrides the artefact's own threshold (higher: fewer strong calls)."""

    def applies(self, request: RouteRequest) -> bool:
        """Whether this call is the learned router's to decide."""
        return matches(request.workflow, self.workflow) and any(matches(request.model, m) for m in self.models)


_NOT_OVERRIDABLE = frozenset({"model", "stream", "messages", "input", "system"})


class CascadeSpec(BaseModel):
    """A named cascade: models cheapest first, and the checks between them.

    The SDK runs it with `tokenops.cascade(client, settings.route.cascade(name))`; the gateway runs it
    itself for calls of `workflows` or naming it in `X-Tokenops-Cascade` (docs/routing.md).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    """Looked up with `RouteSettings.cascade(name)` or `X-Tokenops-Cascade`; recorded in the `cascade_name` tag."""
    models: list[str] = Field(min_length=2)
    """Tried in order until one passes the checks (the last one's answer is kept either way)."""
    json_schema: dict[str, Any] | None = None
    """The answer must be JSON valid against this schema (inline TOML table)."""
    require_json: bool = False
    """The answer must be JSON (any shape); implied by a schema, or by a request asking for JSON output."""
    min_mean_logprob: float | None = Field(default=None, le=0)
    """Escalate when the answer's mean token log-probability is lower (needs `logprobs=True`)."""
    overrides: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Request fields replaced on one model's attempt, e.g. `{ "o3" = { reasoning_effort = "high" } }`."""
    workflows: list[str] = Field(default_factory=list)
    """The gateway cascades every call of these workflows (`X-Tokenops-Workflow`, exact names, no globs)."""
    stream: Literal["first", "last"] = "last"
    """Which model serves a streamed call at the gateway, where no answer can be checked before it is sent."""

    @field_validator("json_schema")
    @classmethod
    def _supported(cls, schema: dict[str, Any] | None) -> dict[str, Any] | None:
        if schema is not None:
            check_schema(schema)
        return schema

    @model_validator(mode="after")
    def _overrides(self) -> CascadeSpec:
        for model, fields in self.overrides.items():
            if model not in self.models:
                raise ValueError(
                    f"cascade {self.name!r}: overrides for {model!r}, which is not in models {self.models}"
                )
            if bad := sorted(_NOT_OVERRIDABLE & fields.keys()):
                raise ValueError(f"cascade {self.name!r}: overrides for {model!r} may not replace {bad}")
        return self


class RouteSettings(BaseModel):
    """`[route]`: off unless enabled; rules first, then the learned router."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    """Route calls at the gateway (SDK cascades work either way)."""
    rules: list[RouteRule] = Field(default_factory=list)
    """First match wins."""
    learned: LearnedRoute | None = None
    """Decides the calls no rule matched."""
    cascades: list[CascadeSpec] = Field(default_factory=list)
    """Named cascades: run by the SDK (`tokenops.cascade`) or, when routing is enabled, by the gateway."""

    def cascade(self, name: str) -> CascadeSpec:
        """The cascade called `name`."""
        for spec in self.cascades:
            if spec.name == name:
                return spec
        known = ", ".join(repr(c.name) for c in self.cascades) or "none"
        raise KeyError(f"No cascade {name!r} in [route]; configured: {known}")

    @field_validator("rules")
    @classmethod
    def _unique(cls, rules: list[RouteRule]) -> list[RouteRule]:
        names = [r.name for r in rules]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"route rule names must be unique (they are the ledger's reason): {dupes}")
        return rules

    @field_validator("cascades")
    @classmethod
    def _one_cascade_each(cls, cascades: list[CascadeSpec]) -> list[CascadeSpec]:
        names = [c.name for c in cascades]
        workflows = [w for c in cascades for w in c.workflows]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"cascade names must be unique: {dupes}")
        shared = sorted({w for w in workflows if workflows.count(w) > 1})
        if shared:
            raise ValueError(f"a workflow may belong to one gateway cascade only: {shared}")
        return cascades


def first_rule(rules: list[RouteRule], request: RouteRequest) -> RouteDecision | None:
    """The first rule that applies, as a decision (None: no rule applies)."""
    for rule in rules:
        if rule.applies(request):
            return RouteDecision(model=rule.target, reason=f"rule:{rule.name}")
    return None
