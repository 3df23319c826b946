"""Which requests may be cached, and the key an answer is stored under.

The key is a SHA-256 of the *normalised* request: the scope (whose answers these are), the
route, the upstream, the few request headers that change a provider's behaviour, and the body
as canonical JSON (sorted keys, integral floats written as integers so `0` and `0.0` agree).

Fields dropped from the key on purpose, because they do not change the answer:

- `stream`, `stream_options`: an answer is stored complete and replayed in whichever form
  (JSON or server-sent events) the caller asks for, with the usage chunk only if it asked.
- `user`, `metadata`, `safety_identifier`: attribution, not content; who may share an answer is
  the scope's job (`user` scope keeps users apart).
- `service_tier`, `prompt_cache_key`, chat's `store`: price and provider-side storage, not content
  (the Responses API's `store` is kept: a stored response can be continued, a non-stored one not).
- Anthropic `cache_control` markers anywhere in the body: prompt-cache hints only.
- OpenAI chat `n: 1`, the default.

Everything else (model, messages, system, tools, tool_choice, response_format, every sampling
parameter, max tokens, seed, unknown vendor fields) is part of the key.
"""

from __future__ import annotations

import fnmatch
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from tokenops.config import CacheScope, CacheSettings
from tokenops.events import Attribution

Operation = Literal["chat", "responses", "embeddings", "messages"]
Mode = Literal["use", "refresh", "bypass"]
"""`use`: look up, store on a miss; `refresh`: skip the lookup, store the fresh answer; `bypass`: neither."""

_OPENAI_DROPPED = frozenset(
    {"stream", "stream_options", "user", "metadata", "service_tier", "prompt_cache_key", "safety_identifier"}
)
_DROPPED: dict[str, frozenset[str]] = {
    "chat": _OPENAI_DROPPED | {"store"},
    "responses": _OPENAI_DROPPED,
    "embeddings": frozenset({"user"}),
    "messages": frozenset({"stream", "metadata", "service_tier"}),
}
_BEHAVIOUR_HEADERS = ("anthropic-version", "anthropic-beta", "openai-beta")
_STATEFUL = ("conversation", "background", "mcp_servers", "container")
"""Request fields that make a call act on provider-side state or run server-side tools."""


@dataclass(frozen=True, slots=True)
class Ticket:
    """What the cache will do for one call."""

    mode: Mode
    """Whether to look up and/or store."""
    key: str | None = None
    """The entry key (None when bypassing)."""
    reason: str | None = None
    """Why the call bypasses the cache (for logs and the docs' table)."""

    @property
    def header(self) -> bytes:
        """`x-tokenops-cache` before the lookup: a refresh is a miss, anything else not looked up a bypass."""
        return b"miss" if self.mode == "refresh" else b"bypass"


def opt_out(headers: Mapping[str, str]) -> Mode | None:
    """The caller's own cache directive: `Cache-Control: no-store` / `X-Tokenops-Cache: off` bypass,
    `Cache-Control: no-cache` / `X-Tokenops-Cache: refresh` skip the lookup but store the answer."""
    control = {part.strip().lower() for part in headers.get("cache-control", "").split(",")}
    ours = headers.get("x-tokenops-cache", "").strip().lower()
    if "no-store" in control or ours in ("off", "no", "false", "0", "bypass"):
        return "bypass"
    if "no-cache" in control or ours == "refresh":
        return "refresh"
    return None


def ineligible(
    settings: CacheSettings, operation: Operation, data: Mapping[str, Any], stream: bool, workflow: str | None
) -> str | None:
    """Why a request must not be answered from (or stored in) the cache, or None if it may."""
    if operation == "responses" and stream:
        return "responses_stream"  # its typed event stream is not replayed (yet): pass through
    if operation != "embeddings":
        if settings.deterministic_only and not _is_zero(data.get("temperature")) and not _sampled(settings, workflow):
            return "nondeterministic"
        n = data.get("n")
        if isinstance(n, int) and n > 1:
            return "n>1"
        if any(data.get(name) is not None for name in _STATEFUL):
            return "stateful"
        if _server_tools(data.get("tools")):
            return "server_tools"
    return None


def workflow_allowed(settings: CacheSettings, workflow: str | None) -> bool:
    """Included by `workflows` and not excluded by `exclude_workflows` (globs; '' is no workflow)."""
    name = workflow or ""
    if any(fnmatch.fnmatchcase(name, glob) for glob in settings.exclude_workflows):
        return False
    return any(fnmatch.fnmatchcase(name, glob) for glob in settings.workflows)


def _sampled(settings: CacheSettings, workflow: str | None) -> bool:
    return any(fnmatch.fnmatchcase(workflow or "", glob) for glob in settings.sampled_workflows)


def scope_of(scope: CacheScope, attribution: Attribution) -> str | None:
    """The tenant an answer belongs to; None when the call names none (then it is not cached)."""
    if scope == "org":
        return "org"
    if scope == "team":
        if attribution.team:
            return f"team={attribution.team}"
        # no team: keep the answer to the key that asked, never to everybody
        return f"key={attribution.api_key_id}" if attribution.api_key_id else None
    value = attribution.api_key_id if scope == "key" else attribution.user
    return f"{scope}={value}" if value else None


def cache_key(
    scope: str, route: str, upstream: str, headers: Mapping[str, str], operation: Operation, data: Mapping[str, Any]
) -> str:
    """SHA-256 (hex) of the normalised request."""
    dropped = _DROPPED[operation]
    body = {k: _canonical(v, operation == "messages") for k, v in data.items() if k not in dropped}
    if operation == "chat" and body.get("n") == 1:
        del body["n"]
    behaviour = {name: headers[name] for name in _BEHAVIOUR_HEADERS if name in headers}
    material = orjson.dumps(
        {"v": 1, "scope": scope, "route": route, "upstream": upstream, "headers": behaviour, "body": body},
        option=orjson.OPT_SORT_KEYS,
    )
    return hashlib.sha256(material).hexdigest()


def _canonical(value: Any, strip_cache_control: bool) -> Any:
    if isinstance(value, dict):
        return {
            k: _canonical(v, strip_cache_control)
            for k, v in value.items()
            if not (strip_cache_control and k == "cache_control")
        }
    if isinstance(value, list):
        return [_canonical(v, strip_cache_control) for v in value]
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def _is_zero(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == 0


def _server_tools(tools: object) -> bool:
    """Tools the provider runs itself (web search, code execution, MCP ...): live data or side effects."""
    if not isinstance(tools, list):
        return False
    for tool in tools:
        if not isinstance(tool, Mapping):
            continue
        kind = tool.get("type")
        # OpenAI: function/custom tools run on the client; Anthropic: client tools have no type (or "custom")
        if kind is not None and kind not in ("function", "custom"):
            return True
    return False
