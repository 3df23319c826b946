"""Routing: which model serves a call (rules, a learned router) and cascades that escalate on failure.

Owns the `[route]` settings, the rules and learned router the gateway asks before its guardrails
(`route.gateway.route_call`), the SDK's `cascade` and the cascades the gateway runs itself
(`route.gateway_cascade`), training the learned router (`fit`, `train_from_ledger`) and
`tokenops eval routing` (`route.evaluate`). It does not own the guardrails (which still judge a
routed call and every cascade attempt) nor the response cache.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from tokenops.route.router import Router, request_of
from tokenops.route.rules import (
    ROUTE_REASON,
    CascadeSpec,
    LearnedRoute,
    RouteDecision,
    RouteRequest,
    RouteRule,
    RouteSettings,
)

if TYPE_CHECKING:
    from tokenops.route.cascade import (
        Attempt,
        CascadeResult,
        Check,
        Verdict,
        acascade,
        cascade,
        json_schema,
        min_logprob,
        response_text,
        verifier,
    )
    from tokenops.route.learned import LearnedRouter, TrainConfig, fit, fit_texts
    from tokenops.route.training import train_from_ledger

# the learned router and its training need numpy and the ledger's readers: a gateway that only
# applies rules should not carry them, so these names are imported on first use
_LAZY = {
    **dict.fromkeys(
        [
            "Attempt",
            "CascadeResult",
            "Check",
            "Verdict",
            "acascade",
            "cascade",
            "json_schema",
            "min_logprob",
            "response_text",
            "verifier",
        ],
        "tokenops.route.cascade",
    ),
    **dict.fromkeys(["LearnedRouter", "TrainConfig", "fit", "fit_texts"], "tokenops.route.learned"),
    "train_from_ledger": "tokenops.route.training",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tokenops.route' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "ROUTE_REASON",
    "Attempt",
    "CascadeResult",
    "CascadeSpec",
    "Check",
    "LearnedRoute",
    "LearnedRouter",
    "RouteDecision",
    "RouteRequest",
    "RouteRule",
    "RouteSettings",
    "Router",
    "TrainConfig",
    "Verdict",
    "acascade",
    "cascade",
    "fit",
    "fit_texts",
    "json_schema",
    "min_logprob",
    "request_of",
    "response_text",
    "train_from_ledger",
    "verifier",
]
