"""The admin API: read and change the guardrail policies of a running deployment, without a restart.

    GET    /api/admin/policies                 the set in force, its version and where it came from
    PUT    /api/admin/policies                 replace the whole set (validated first)
    DELETE /api/admin/policies                 drop the admin's set: the config file's applies again
    PUT    /api/admin/policies/{kind}/{name}   add or replace one named policy (task_budgets, quotas,
                                               rate_limits, escalations)
    DELETE /api/admin/policies/{kind}/{name}   remove it

Every call needs an admin key (`tokenops keys create --admin`) as `Authorization: Bearer`; a missing
or unknown key gets 401, an app key 403. Changes are stored (Redis or the data directory) and every
replica picks them up within a second (`PolicySync`).
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.routing import Route

from tokenops.gateway.keys import KeyInfo, KeyStore
from tokenops.guard.policies import Escalation, Policies, Quota, RateLimit, TaskBudget
from tokenops.guard.policy_store import PolicyStoreError, PolicySync, StoredPolicies
from tokenops.web.responses import JSON, error

NAMED: dict[str, type[TaskBudget | Quota | RateLimit | Escalation]] = {
    "task_budgets": TaskBudget,
    "quotas": Quota,
    "rate_limits": RateLimit,
    "escalations": Escalation,
}
"""Policy lists whose entries have unique names, so one can be changed on its own."""


class _Denied(Exception):
    def __init__(self, response: JSON) -> None:
        self.response = response


def _admin(request: Request) -> KeyInfo:
    keys: KeyStore = request.app.state.gateway.keys
    auth = request.headers.get("authorization", "")
    secret = auth[7:].strip() if auth[:7].lower() == "bearer " else request.headers.get("x-api-key", "")
    key = keys.lookup(secret) if secret else None
    if key is None:
        raise _Denied(error(401, "Missing or unknown key; pass an admin key as 'Authorization: Bearer tok-...'"))
    if key.role != "admin":
        raise _Denied(
            error(403, f"Key {key.key_id!r} is not an admin key; create one with `tokenops keys create --admin`")
        )
    return key


def _sync(request: Request) -> PolicySync:
    sync: PolicySync = request.app.state.policy_sync
    return sync


def _view(sync: PolicySync) -> dict[str, Any]:
    stored = sync.current
    return {
        "origin": "admin" if stored is not None else "config",
        "version": stored.version if stored else None,
        "saved_at": stored.saved_at if stored else None,
        "saved_by": stored.saved_by if stored else None,
        "policies": sync.guard.policies.model_dump(mode="json"),
    }


async def _body(request: Request) -> Any:
    try:
        return orjson.loads(await request.body())
    except orjson.JSONDecodeError as exc:
        raise _Denied(error(400, f"Body is not valid JSON: {exc}")) from exc


def _invalid(exc: ValidationError) -> JSON:
    problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors())
    return error(422, f"Invalid policy: {problems}")


async def _save(sync: PolicySync, policies: Policies, key: KeyInfo) -> JSON:
    try:
        stored: StoredPolicies = await run_in_threadpool(sync.store.save, policies, key.key_id)
    except PolicyStoreError as exc:
        return error(503, f"The policy store is unavailable, nothing was changed: {exc}")
    sync.apply(stored)
    return JSON(_view(sync))


async def policies(request: Request) -> JSON:
    """GET, PUT or DELETE the whole policy set."""
    try:
        key = _admin(request)
        sync = _sync(request)
        if request.method == "GET":
            return JSON(_view(sync))
        if request.method == "DELETE":
            try:
                await run_in_threadpool(sync.store.clear)
            except PolicyStoreError as exc:
                return error(503, f"The policy store is unavailable, nothing was changed: {exc}")
            sync.apply(None)
            return JSON(_view(sync))
        body = await _body(request)
        try:
            new = Policies.model_validate(body)
        except ValidationError as exc:
            return _invalid(exc)
        return await _save(sync, new, key)
    except _Denied as denied:
        return denied.response


async def one_policy(request: Request) -> JSON:
    """PUT or DELETE one named task budget, quota, rate limit or escalation."""
    try:
        key = _admin(request)
        sync = _sync(request)
        kind, name = request.path_params["kind"], request.path_params["name"]
        if kind not in NAMED:
            return error(404, f"No policy kind {kind!r}; named kinds are {', '.join(NAMED)}")
        current = sync.guard.policies.model_dump(mode="json")
        entries = [p for p in current[kind] if p.get("name") != name]
        if request.method == "DELETE":
            if len(entries) == len(current[kind]):
                return error(404, f"No {kind} entry named {name!r}")
        else:
            body = await _body(request)
            if not isinstance(body, dict):
                return error(422, "Invalid policy: body must be a JSON object")
            if body.setdefault("name", name) != name:
                return error(422, f"Invalid policy: name {body['name']!r} in the body differs from {name!r} in the URL")
            try:
                entries.append(NAMED[kind].model_validate(body).model_dump(mode="json"))
            except ValidationError as exc:
                return _invalid(exc)
        try:
            new = Policies.model_validate({**current, kind: entries})
        except ValidationError as exc:
            return _invalid(exc)
        return await _save(sync, new, key)
    except _Denied as denied:
        return denied.response


routes = [
    Route("/api/admin/policies", policies, methods=["GET", "PUT", "DELETE"]),
    Route("/api/admin/policies/{kind}/{name}", one_policy, methods=["PUT", "DELETE"]),
]
