"""tokenops: know what your LLM spend buys, and keep it under control.

The SDK in three calls::

    import tokenops
    tokenops.configure(ledger="app.duckdb")
    client = tokenops.instrument(openai.OpenAI())
    with tokenops.task("support_ticket", user="ana") as t:
        client.chat.completions.create(...)
        t.outcome("ticket_resolved", value=Decimal("42"))

The names below are imported on first use: `import tokenops` stays cheap for the gateway and the
CLI, which load only the parts they run (a gateway replica's memory is mostly its imports).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from tokenops.route.cascade import acascade, cascade
    from tokenops.sdk.runtime import Runtime, configure
    from tokenops.sdk.task import Task, outcome, task

C = TypeVar("C")

_LAZY = {
    "acascade": "tokenops.route.cascade",
    "cascade": "tokenops.route.cascade",
    "Runtime": "tokenops.sdk.runtime",
    "configure": "tokenops.sdk.runtime",
    "Task": "tokenops.sdk.task",
    "outcome": "tokenops.sdk.task",
    "task": "tokenops.sdk.task",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tokenops' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def instrument(client: C, *, provider: str | None = None, runtime: Runtime | None = None) -> C:
    """Meter every model call an OpenAI or Anthropic client makes (see `tokenops.sdk.instrument`)."""
    # imported on use: it needs the SDKs' HTTP library, which only instrumented apps have
    from tokenops.sdk.instrument import instrument as _instrument

    return _instrument(client, provider=provider, runtime=runtime)


__all__ = ["Runtime", "Task", "acascade", "cascade", "configure", "instrument", "outcome", "task"]
