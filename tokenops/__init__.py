"""tokenops: know what your LLM spend buys, and keep it under control.

The SDK in three calls::

    import tokenops
    tokenops.configure(ledger="app.duckdb")
    client = tokenops.instrument(openai.OpenAI())
    with tokenops.task("support_ticket", user="ana") as t:
        client.chat.completions.create(...)
        t.outcome("ticket_resolved", value=Decimal("42"))
"""

from typing import TypeVar

from tokenops.route.cascade import acascade, cascade
from tokenops.sdk.runtime import Runtime, configure
from tokenops.sdk.task import Task, outcome, task

C = TypeVar("C")


def instrument(client: C, *, provider: str | None = None, runtime: Runtime | None = None) -> C:
    """Meter every model call an OpenAI or Anthropic client makes (see `tokenops.sdk.instrument`)."""
    # imported on use: it needs the SDKs' HTTP library, which only instrumented apps have
    from tokenops.sdk.instrument import instrument as _instrument

    return _instrument(client, provider=provider, runtime=runtime)


__all__ = ["Runtime", "Task", "acascade", "cascade", "configure", "instrument", "outcome", "task"]
