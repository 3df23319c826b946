"""Who a gateway call is for: the virtual key, `X-Tokenops-*` headers, then the body's user field."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tokenops.events import Attribution
from tokenops.gateway.keys import KeyInfo

HEADER_PREFIX = "x-tokenops-"


def parse_tags(value: str | None) -> dict[str, str]:
    """`env=prod,tier=gold` (or bare words, which become `word=true`)."""
    tags: dict[str, str] = {}
    for part in (value or "").split(","):
        part = part.strip()
        if not part:
            continue
        key, sep, val = part.partition("=")
        tags[key.strip()] = val.strip() if sep else "true"
    return tags


def _iteration(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


def attribute(headers: Mapping[str, str], key: KeyInfo | None, body: Mapping[str, Any]) -> Attribution:
    """Combine the sources; a key's user/team wins over anything the caller claims."""
    body_user = body.get("user")
    if not isinstance(body_user, str):
        metadata = body.get("metadata")
        body_user = metadata.get("user_id") if isinstance(metadata, Mapping) else None
    step = headers.get("x-tokenops-step")
    return Attribution(
        api_key_id=key.key_id if key else None,
        user=(key.user if key and key.user else None) or headers.get("x-tokenops-user") or body_user,
        team=(key.team if key and key.team else None) or headers.get("x-tokenops-team"),
        feature=headers.get("x-tokenops-feature"),
        workflow=headers.get("x-tokenops-workflow"),
        task_run_id=headers.get("x-tokenops-task"),
        step=step,
        iteration=_iteration(headers.get("x-tokenops-iteration") or step),
        customer=headers.get("x-tokenops-customer"),
        tags=parse_tags(headers.get("x-tokenops-tags")),
    )
