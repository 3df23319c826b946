"""Prometheus metrics of the gateway, in a registry owned by the app (no module globals)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response

from tokenops.events import UsageEvent


class Metrics:
    """Requests, tokens and cost by model and team, plus upstream latency."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "tokenops_requests",
            "Model calls through the gateway",
            ["route", "model", "status"],
            registry=self.registry,
        )
        self.tokens = Counter(
            "tokenops_tokens", "Tokens billed", ["model", "team", "direction"], registry=self.registry
        )
        self.cost = Counter("tokenops_cost_usd", "Priced spend in USD", ["model", "team"], registry=self.registry)
        self.unpriced = Counter(
            "tokenops_unpriced_calls", "Calls without a known price", ["model"], registry=self.registry
        )
        self.latency = Histogram(
            "tokenops_upstream_seconds",
            "Wall time of upstream calls",
            ["route"],
            registry=self.registry,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
        )

    def observe(self, route: str, event: UsageEvent) -> None:
        """Count one metered call."""
        team = event.attribution.team or ""
        self.requests.labels(route, event.model, event.status).inc()
        if event.usage.input_tokens:
            self.tokens.labels(event.model, team, "input").inc(event.usage.input_tokens)
        if event.usage.output_tokens:
            self.tokens.labels(event.model, team, "output").inc(event.usage.output_tokens)
        if event.cost is None:
            self.unpriced.labels(event.model).inc()
        elif event.cost.total:
            self.cost.labels(event.model, team).inc(float(event.cost.total))
        if event.latency_ms is not None:
            self.latency.labels(route).observe(event.latency_ms / 1000)

    async def endpoint(self, request: Request) -> Response:
        """`GET /metrics` in the Prometheus text format."""
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)
