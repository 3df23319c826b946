"""Guard fixtures: a priced test model, call facts, a real Redis (or a clear skip), a webhook receiver."""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tokenops.guard import CallFacts
from tokenops.guard.redis_counters import RedisCounters
from tokenops.pricing import PriceOverride, Pricer
from tokenops.testing import serve_in_thread

try:
    import redis
except ImportError:  # the Redis tests say so below (and fail under CI)
    redis = None  # type: ignore[assignment]

T = datetime(2026, 11, 2, 10, tzinfo=UTC)
MODEL = "guard-test"
"""$10 per million tokens in and out: 1,000 in + 1,000 out costs $0.02."""
CHEAP = "guard-test-mini"
"""$1 per million tokens in and out."""


def pricer() -> Pricer:
    """Prices the two test models exactly (no list prices involved)."""
    return Pricer(
        [
            PriceOverride(model=CHEAP, input_mtok=Decimal(1), output_mtok=Decimal(1)),
            PriceOverride(model=MODEL, input_mtok=Decimal(10), output_mtok=Decimal(10)),
        ]
    )


def facts(
    task: str | None = "t1", model: str = MODEL, max_out: int | None = 1_000, ts: datetime = T, **kw: Any
) -> CallFacts:
    """A call of 1,000 input tokens (worst case $0.02 on MODEL with the default max_out)."""
    return CallFacts(ts, model, None, 1_000, max_out, task_run_id=task, **kw)


def shared_counters(url: str, prefix: str) -> RedisCounters:
    """Counters on the test Redis, with timeouts generous enough that a loaded CI machine never fails open."""
    return RedisCounters(url, prefix=prefix, timeout_s=5, connect_timeout_s=5)


def unused_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture(scope="session")
def redis_url() -> str:
    """A reachable Redis; skipped locally without one, a failure when CI=true."""
    url = os.environ.get("TOKENOPS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    reason = None
    if redis is None:
        reason = "the `redis` package is not installed"
    else:
        client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
        try:
            client.ping()
        except (redis.RedisError, OSError) as exc:
            reason = f"{type(exc).__name__}: {exc}"
        finally:
            client.close()
    if reason is not None:
        where = f"Redis at {url} (set TOKENOPS_TEST_REDIS_URL, or run `redis-server`)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but {where} is unusable: {reason}")
        pytest.skip(f"{where} is unusable: {reason}")
    return url


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    prefix = f"{{tokenops-test-{uuid.uuid4().hex}}}:guard:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@dataclass
class Webhook:
    """A Slack-like receiver on 127.0.0.1 recording every alert posted to it."""

    url: str
    posts: list[dict[str, Any]] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Block until `count` posts arrived (or fail after `timeout`)."""
        with self.arrived:
            assert self.arrived.wait_for(lambda: len(self.posts) >= count, timeout), self.posts
            return list(self.posts)


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    """A webhook receiver served by uvicorn in a thread."""
    hook = Webhook("")

    async def receive(request: Request) -> Response:
        body = await request.json()
        with hook.arrived:
            hook.posts.append(body)
            hook.arrived.notify_all()
        return Response("ok")

    with serve_in_thread(Starlette(routes=[Route("/hook", receive, methods=["POST"])])) as base:
        hook.url = f"{base}/hook"
        yield hook
