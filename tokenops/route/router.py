"""The router the gateway asks before its guardrails: rules, then the learned model, never an error.

`Router.decide` is pure and fast (rules are glob and regex checks; the learned model is one sparse
dot product), so it runs inline on the event loop. `request_of` reads what routing needs from an
OpenAI (chat / responses) or Anthropic (messages) request body.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tokenops.errors import ConfigError
from tokenops.route.rules import CascadeSpec, LearnedRoute, RouteDecision, RouteRequest, RouteSettings, first_rule

if TYPE_CHECKING:
    from tokenops.route.learned import LearnedRouter  # numpy: loaded only when a learned router is configured


@dataclass(frozen=True, slots=True)
class Router:
    """Configured rules plus an optional learned model, loaded once at start-up."""

    settings: RouteSettings
    """The `[route]` section."""
    model: LearnedRouter | None = None
    """The learned router's artefact, when `[route.learned]` is set."""
    decides: bool = field(init=False)
    """Some rule or the learned router may choose a model (False: `route_call` has nothing to do)."""
    cascades: Mapping[str, CascadeSpec] = field(init=False)
    """Configured cascades by name, for `X-Tokenops-Cascade` (empty: the gateway runs no cascades)."""
    cascade_workflows: Mapping[str, CascadeSpec] = field(init=False)
    """Gateway cascades by workflow: the one lookup a call pays when cascades are configured."""

    def __post_init__(self) -> None:
        # indexes built once, so the gateway's per-call cost is a dict lookup (docs/routing.md)
        specs = self.settings.cascades
        object.__setattr__(self, "decides", bool(self.settings.rules) or self.settings.learned is not None)
        object.__setattr__(self, "cascades", {c.name: c for c in specs})
        object.__setattr__(self, "cascade_workflows", {w: c for c in specs for w in c.workflows})

    @classmethod
    def open(cls, settings: RouteSettings, data_dir: Path) -> Router | None:
        """The router for these settings (None when routing is off); a missing artefact is a config error."""
        if not settings.enabled:
            return None
        model = None
        if settings.learned is not None:
            path = settings.learned.path if settings.learned.path.is_absolute() else data_dir / settings.learned.path
            if not path.exists():
                raise ConfigError(
                    f"[route.learned] path {str(path)!r} not found; train one with "
                    "tokenops.route.train_from_ledger(...).save(path) or remove [route.learned]"
                )
            from tokenops.route.learned import LearnedRouter

            model = LearnedRouter.load(path)
        return cls(settings, model)

    def decide(self, request: RouteRequest) -> RouteDecision | None:
        """The model to serve and why (None: no rule or learned router covers the call; serve what was asked)."""
        decision = first_rule(self.settings.rules, request)
        learned = self.settings.learned
        if decision is None and learned is not None and self.model is not None and learned.applies(request):
            decision = _learned(learned, self.model, request)
        return decision


def _learned(config: LearnedRoute, model: LearnedRouter, request: RouteRequest) -> RouteDecision:
    from tokenops.route.features import context_tokens

    score = model.score(request.prompt, (*context_tokens(request.workflow, request.input_tokens), *request.context))
    cut = config.threshold if config.threshold is not None else model.threshold
    if score >= cut:
        return RouteDecision(config.strong, f"learned:strong ({score:.2f} >= {cut:.2f})", score)
    return RouteDecision(config.weak, f"learned:weak ({score:.2f} < {cut:.2f})", score)


def _text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text") for p in content if isinstance(p, Mapping)]
        return "\n".join(p for p in parts if isinstance(p, str))
    return ""


def _messages(data: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    raw = data.get("messages")
    if raw is None:  # the Responses API: `input` is a string or a list of items
        raw = data.get("input")
        if isinstance(raw, str):
            raw = [{"role": "user", "content": raw}]
    return [m for m in raw if isinstance(m, Mapping)] if isinstance(raw, list) else []


def _json_mode(data: Mapping[str, Any]) -> bool:
    fmt = data.get("response_format")
    if isinstance(fmt, Mapping) and fmt.get("type") in ("json_object", "json_schema"):
        return True
    text = data.get("text")  # Responses API: text.format
    fmt = text.get("format") if isinstance(text, Mapping) else None
    if isinstance(fmt, Mapping) and fmt.get("type") in ("json_object", "json_schema"):
        return True
    config = data.get("output_config")  # Anthropic structured outputs
    return isinstance(config, Mapping) and isinstance(config.get("format"), Mapping)


def request_of(data: Mapping[str, Any], workflow: str | None) -> RouteRequest | None:
    """What routing needs from a request body (None: no model named, so nothing to route)."""
    model = data.get("model")
    if not isinstance(model, str):
        return None
    messages = _messages(data)
    users = [_text(m.get("content")) for m in messages if m.get("role") == "user"]
    chars = sum(len(_text(m.get("content"))) for m in messages)
    chars += len(_text(data.get("system"))) + len(_text(data.get("instructions")))
    return RouteRequest(
        model=model,
        prompt=users[-1] if users else "",
        input_tokens=chars // 4,
        workflow=workflow,
        tools=bool(data.get("tools") or data.get("functions")),
        json_mode=_json_mode(data),
    )
