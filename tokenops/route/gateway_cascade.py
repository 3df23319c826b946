"""Cascades run by the gateway itself, for applications that only changed their `base_url`.

A call of one of a cascade's `workflows`, or naming a cascade in `X-Tokenops-Cascade`, goes to the
cascade's first model. Its answer is checked; when a check fails, or the upstream fails, the same
request goes to the next model. Only the kept answer reaches the client. Each attempt is a call of its
own: the guardrails admit it (`ProxyEndpoint._guard`, so budgets and quotas see every attempt), the
meter prices it, and the ledger records it with the SDK cascade's tags (`route_reason`, `cascade`,
`cascade_step`, `cascade_name`; `model_requested` is the first model). `X-Tokenops-Cost-USD` is the
total over the attempts.

Streamed calls are not cascaded: their first bytes reach the client before the answer can be
checked. They go straight to one model (`stream = "last"` by default, or `"first"`), tagged
`cascade:streamed:last`. Cascaded calls neither read nor fill the exact cache, because the cache's
key is the request and a cascade's answer also depends on the checks.
"""

from __future__ import annotations

import dataclasses
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson
from starlette.types import Scope, Send

from tokenops.events import UsageEvent
from tokenops.gateway import anthropic, openai
from tokenops.gateway.errors import GatewayError, error_body
from tokenops.gateway.upstream import NoUpstream, Upstream, select
from tokenops.gateway.wire import ResponseInfo
from tokenops.route.cascade import Check, Verdict, json_schema, judge, min_logprob
from tokenops.route.gateway import prepared
from tokenops.route.router import Router
from tokenops.route.rules import CASCADE_TAG, ROUTE_REASON, CascadeSpec

if TYPE_CHECKING:
    from tokenops.gateway.proxy import Call, ProxyEndpoint

CASCADE_HEADER = b"x-tokenops-cascade"
"""Names the configured cascade the gateway runs for this call (any cascade, whatever its workflows)."""
_OPERATIONS = frozenset({"chat", "responses", "messages"})


def cascade_of(router: Router | None, call: Call, scope: Scope) -> CascadeSpec | None:
    """The cascade the gateway runs for `call` (None: none); without configured cascades, one attribute test."""
    if router is None or not router.cascades:
        return None
    spec = None
    for name, value in scope["headers"]:
        if name == CASCADE_HEADER:
            wanted = value.decode("latin-1").strip()
            spec = router.cascades.get(wanted)
            if spec is None:
                known = ", ".join(repr(n) for n in router.cascades)
                raise GatewayError(
                    400, f"No cascade {wanted!r} in tokenops.toml [[route.cascades]]; configured: {known}"
                )
            break
    else:
        workflow = call.attribution.workflow
        spec = router.cascade_workflows.get(workflow) if workflow is not None else None
    if spec is None or call.operation not in _OPERATIONS or CASCADE_TAG in call.attribution.tags:
        return None  # an SDK cascade's step is not cascaded again
    return spec


@dataclass(frozen=True, slots=True)
class _Outcome:
    """One attempt's answer, as it would go back to the client."""

    status: int
    """HTTP status (the upstream's, or 502/504 when it could not be reached)."""
    body: bytes
    """Response body."""
    headers: list[tuple[bytes, bytes]]
    """Response headers (without content-length and the cost headers)."""
    event: UsageEvent
    """The attempt's ledger row."""
    verdict: Verdict
    """What the checks said (an upstream failure fails as `upstream_<status>`)."""


async def run_cascade(endpoint: ProxyEndpoint, spec: CascadeSpec, call: Call, scope: Scope, send: Send) -> bool:
    """Run `spec` for `call` and answer the client (True), or point a streamed call at one model (False).

    A guardrail refusing an attempt raises its `GatewayError` (recorded as blocked, like any refusal).
    """
    upstreams = _upstreams(endpoint.gateway.upstreams, spec, call)  # all before any money is spent
    run_id = uuid.uuid4().hex[:16]
    call.cache, call.cache_header = None, b""
    if call.request.stream:
        step = 0 if spec.stream == "first" else len(spec.models) - 1
        _point(call, _step(call, spec, step, upstreams[step], run_id, f"cascade:streamed:{spec.stream}"))
        return False
    checks = gateway_checks(spec, call.data)
    outcomes: list[_Outcome] = []
    for step, upstream in enumerate(upstreams):
        reason = "cascade:first" if step == 0 else f"cascade:escalated:{outcomes[-1].verdict.reason}"
        outcome = await _attempt(endpoint, _step(call, spec, step, upstream, run_id, reason), scope, checks)
        outcomes.append(outcome)
        if outcome.verdict.passed:
            break
    await _answer(endpoint, call, outcomes, send)
    return True


def gateway_checks(spec: CascadeSpec, data: Mapping[str, Any]) -> list[Check]:
    """The configured schema, the request's own JSON schema, JSON validity, then the log-probability floor."""
    out: list[Check] = []
    if spec.json_schema is not None:
        out.append(json_schema(spec.json_schema))
    asked, schema = requested_json(data)
    if schema is not None:
        try:
            out.append(_lenient(json_schema(schema)))
        except ValueError:  # e.g. $ref: the answer must still be JSON
            asked = True
    if not out and (asked or spec.require_json):
        out.append(json_schema({}))  # the empty schema accepts any JSON value
    if spec.min_mean_logprob is not None:
        out.append(min_logprob(spec.min_mean_logprob))  # answers carry logprobs only when the client asked
    return out


def requested_json(data: Mapping[str, Any]) -> tuple[bool, Mapping[str, Any] | None]:
    """Whether the request asks for JSON output, and its JSON schema when it gives one.

    OpenAI chat `response_format`, Responses `text.format`, Anthropic `output_config.format`.
    """
    text, config = data.get("text"), data.get("output_config")
    for fmt in (
        data.get("response_format"),
        text.get("format") if isinstance(text, Mapping) else None,
        config.get("format") if isinstance(config, Mapping) else None,
    ):
        if not isinstance(fmt, Mapping) or fmt.get("type") not in ("json_object", "json_schema"):
            continue
        holder = fmt.get("json_schema") if "json_schema" in fmt else fmt  # chat nests it one level deeper
        schema = holder.get("schema") if isinstance(holder, Mapping) else None
        return True, schema if isinstance(schema, Mapping) else None
    return False, None


def _lenient(check: Check) -> Check:
    """A client's schema the validator cannot apply (a bad `pattern`, a non-numeric bound) does not fail the call."""

    def guarded(response: Any) -> Verdict | bool:
        try:
            return check(response)
        except (TypeError, ValueError, re.error):
            return Verdict(True, "ok", "the request's schema could not be applied")

    return guarded


def _upstreams(upstreams: tuple[Upstream, ...], spec: CascadeSpec, call: Call) -> list[Upstream]:
    try:
        return [select(upstreams, call.flavour, model) for model in spec.models]
    except NoUpstream as exc:
        raise GatewayError(500, f"Cascade {spec.name!r} names a model no upstream serves: {exc}") from exc


def _step(base: Call, spec: CascadeSpec, step: int, upstream: Upstream, run_id: str, reason: str) -> Call:
    """The call for one attempt: the same request with the step's model (and overrides), tagged."""
    model = spec.models[step]
    data = {**base.data, **spec.overrides.get(model, {}), "model": model}
    raw = orjson.dumps(data)
    tags = {
        **base.attribution.tags,
        ROUTE_REASON: reason,
        CASCADE_TAG: run_id,
        "cascade_step": str(step + 1),
        "cascade_name": spec.name,
    }
    fresh = step > 0  # the first attempt is the call as received; later ones start now
    return dataclasses.replace(
        base,
        call_id="gw-" + uuid.uuid4().hex if fresh else base.call_id,
        ts=datetime.now(UTC) if fresh else base.ts,
        started=time.perf_counter() if fresh else base.started,
        upstream=upstream,
        request=prepared(base, data, raw),
        data=data,
        attribution=dataclasses.replace(base.attribution, tags=tags),
        admission=None,
        recorded=False,
        requested_model=spec.models[0] if model != spec.models[0] else None,
        body_bytes=len(raw),
        cache=None,
        cache_header=b"",
    )


def _point(call: Call, step: Call) -> None:
    """Make `call` the streamed step's call in place (the proxy goes on with the same object)."""
    call.upstream, call.request, call.data = step.upstream, step.request, step.data
    call.attribution, call.requested_model, call.body_bytes = step.attribution, step.requested_model, step.body_bytes


async def _attempt(endpoint: ProxyEndpoint, call: Call, scope: Scope, checks: Sequence[Check]) -> _Outcome:
    call = await endpoint._guard(call)  # refuses (raising) or admits this attempt, like any call
    with endpoint.recording(call):
        return await _exchange(endpoint, call, scope, checks)


async def _exchange(endpoint: ProxyEndpoint, call: Call, scope: Scope, checks: Sequence[Check]) -> _Outcome:
    url = call.upstream.url(endpoint.path, call.request.model)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=call.upstream.timeout_s)
    headers = endpoint._upstream_headers(scope, call.upstream)
    try:
        async with endpoint.gateway.session.post(url, data=call.request.body, headers=headers, timeout=timeout) as resp:
            body = await resp.read()
            status, is_json = resp.status, resp.content_type == "application/json"
            reply_headers = endpoint._response_headers(call, resp)
    except TimeoutError:
        return _failed(endpoint, call, 504, "timeout", f"Upstream {call.upstream.name!r} timed out")
    except aiohttp.ClientError as exc:
        message = f"Upstream {call.upstream.name!r} is unreachable: {exc}"
        return _failed(endpoint, call, 502, "unreachable", message)
    data = _json(body) if is_json else None
    info = ResponseInfo()
    if data is not None:
        info = anthropic.parse_response(data) if call.flavour == "anthropic" else openai.parse_response(data)
    event = endpoint._record(call, info, status=status, ttft_ms=None, data=data)
    if status >= 400 or data is None or info.error_type is not None:
        verdict = Verdict(False, f"upstream_{status}" if status >= 400 else "upstream_error")
    else:
        verdict = judge(checks, data)
    return _Outcome(status, body, reply_headers, event, verdict)


def _failed(endpoint: ProxyEndpoint, call: Call, status: int, kind: str, message: str) -> _Outcome:
    error_type = "upstream_unreachable" if kind == "unreachable" else kind
    event = endpoint._record(call, ResponseInfo(error_type=error_type), status=status, ttft_ms=None, data=None)
    headers = [(b"content-type", b"application/json"), (b"x-tokenops-gateway", b"1")]
    return _Outcome(
        status, error_body(call.flavour, status, message), headers, event, Verdict(False, f"upstream_{kind}")
    )


def _json(body: bytes) -> dict[str, Any] | None:
    try:
        loaded = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return None
    return loaded if isinstance(loaded, dict) else None


async def _answer(endpoint: ProxyEndpoint, call: Call, outcomes: list[_Outcome], send: Send) -> None:
    """Send the kept attempt's response, with the cost of every attempt in the cost headers."""
    gw, kept = endpoint.gateway, outcomes[-1]
    headers = [*kept.headers, (b"x-tokenops-cascade-attempts", str(len(outcomes)).encode())]
    costs = [o.event.cost.total for o in outcomes if o.event.cost is not None]
    if gw.settings.cost_headers and len(costs) == len(outcomes):  # an unpriced attempt leaves the total unknown
        headers.append((b"x-tokenops-cost-usd", _usd(sum(costs, Decimal(0))).encode()))
        task = call.attribution.task_run_id
        if task:
            headers.append((b"x-tokenops-task-cost-usd", _usd(gw.task_spend.get(task)).encode()))
    headers.append((b"content-length", str(len(kept.body)).encode()))
    await send({"type": "http.response.start", "status": kept.status, "headers": headers})
    await send({"type": "http.response.body", "body": kept.body, "more_body": False})


def _usd(value: Decimal) -> str:
    return format(value.quantize(Decimal("1e-9")).normalize(), "f")
