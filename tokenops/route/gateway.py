"""Where the gateway applies routing: one call, after authentication and before the guardrails.

The router's choice is recorded on the call itself: the ledger row's `model_requested` is what the
caller asked for, `model` what served it, and the tag `route_reason` says why. The guardrails then
judge the routed call, so a model rule or budget still has the last word (a downgrade after routing
records the routed model as `model_requested`). Routed calls are not stored in the exact cache.

A cascade step sent through the gateway carries `X-Tokenops-Model-Requested` (the cascade's first
model), which is recorded as `model_requested` the same way. Cascade steps (tagged `cascade`) are not
routed by rules: the cascade chose their model. Cascades run by the gateway itself are in
`route.gateway_cascade`.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import orjson

from tokenops.gateway import anthropic, openai
from tokenops.gateway.errors import GatewayError
from tokenops.gateway.upstream import NoUpstream, Upstream, select
from tokenops.gateway.wire import RequestInfo
from tokenops.route.router import Router, request_of
from tokenops.route.rules import CASCADE_TAG, ROUTE_REASON

if TYPE_CHECKING:
    from tokenops.gateway.proxy import Call


def route_call(router: Router | None, upstreams: tuple[Upstream, ...], call: Call) -> None:
    """Serve the routed model (rewriting the body and upstream) and tag the call with the reason."""
    if router is None or not router.decides or call.operation == "embeddings":
        return
    if CASCADE_TAG in call.attribution.tags:  # a cascade step (SDK or gateway) names its model on purpose
        return
    request = request_of(call.data, call.attribution.workflow)
    decision = router.decide(request) if request is not None else None
    if decision is None:
        return
    tags = {**call.attribution.tags, ROUTE_REASON: decision.reason}
    call.attribution = dataclasses.replace(call.attribution, tags=tags)
    if decision.model == call.request.model:
        return
    try:
        upstream = select(upstreams, call.flavour, decision.model)
    except NoUpstream as exc:
        raise GatewayError(
            500, f"Routing chose {decision.model!r} ({decision.reason}) but no upstream serves it: {exc}"
        ) from exc
    data = {**call.data, "model": decision.model}
    call.requested_model = call.requested_model or call.request.model
    call.data, call.upstream = data, upstream
    call.request = prepared(call, data, orjson.dumps(data))


def prepared(call: Call, data: dict[str, Any], raw: bytes) -> RequestInfo:
    """The request info for a rewritten body, in the call's wire format."""
    if call.flavour == "anthropic":
        return anthropic.prepare(data, raw)
    return openai.prepare(data, raw, call.operation)
