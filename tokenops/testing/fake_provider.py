"""A fake OpenAI + Anthropic server speaking the real wire protocols, for tests and benchmarks.

The only thing faked anywhere in tokenops' tests is the model provider. The official SDKs work
against it unchanged by `base_url` (`http://HOST:PORT/v1` for OpenAI, `http://HOST:PORT` for
Anthropic): JSON and SSE streaming with usage, errors in each provider's format, and latency
injection. Replies and token counts are deterministic (rules in `fake_state`).

Per-request controls (headers):

    x-fake-error: 429            answer with this status in the provider's error format
    x-fake-latency-ms: 50        wait before a non-streamed reply
    x-fake-ttft-ms / x-fake-chunk-delay-ms   streaming delays
    x-fake-no-usage: 1           omit usage (to test token estimation)
    x-fake-fail-after-chunks: 3  break the stream after N content chunks
    x-fake-output-tokens: 40     reply length
    x-fake-cache-write: 500      Anthropic: bill N prompt tokens as cache writes

Introspection: `app.state.fake.requests` (what arrived), `app.state.fake.billed` (usage per
response id), also over HTTP as `GET /_fake/requests` and `GET /_fake/billed`;
`POST /_fake/reset` forgets both.

Run standalone (e.g. for benchmarks): `python -m tokenops.testing.fake_provider --port 9999`.
"""

from __future__ import annotations

import argparse
import dataclasses

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tokenops.testing import fake_anthropic, fake_openai
from tokenops.testing.fake_state import FakeConfig, FakeState


async def _requests(request: Request) -> Response:
    fake: FakeState = request.app.state.fake
    return Response(orjson.dumps([dataclasses.asdict(r) for r in fake.requests]), media_type="application/json")


async def _billed(request: Request) -> Response:
    fake: FakeState = request.app.state.fake
    return Response(orjson.dumps(fake.billed), media_type="application/json")


async def _reset(request: Request) -> Response:
    request.app.state.fake.reset()
    return Response(b"{}", media_type="application/json")


def create_fake_provider(config: FakeConfig | None = None) -> Starlette:
    """The fake provider as an ASGI app; its state is `app.state.fake`."""
    app = Starlette(
        routes=[
            Route("/v1/chat/completions", fake_openai.chat_completions, methods=["POST"]),
            Route("/v1/responses", fake_openai.responses, methods=["POST"]),
            Route("/v1/embeddings", fake_openai.embeddings, methods=["POST"]),
            Route("/v1/models", fake_openai.models, methods=["GET"]),
            Route("/v1/messages", fake_anthropic.messages, methods=["POST"]),
            Route("/v1/messages/count_tokens", fake_anthropic.count_tokens, methods=["POST"]),
            Route("/_fake/requests", _requests, methods=["GET"]),
            Route("/_fake/billed", _billed, methods=["GET"]),
            Route("/_fake/reset", _reset, methods=["POST"]),
        ]
    )
    app.state.fake = FakeState(config or FakeConfig())
    return app


def main() -> None:
    """`python -m tokenops.testing.fake_provider`."""
    import uvicorn

    parser = argparse.ArgumentParser(description="Fake OpenAI + Anthropic provider")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9999)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    args = parser.parse_args()
    app = create_fake_provider(FakeConfig(latency_ms=args.latency_ms, log_limit=1000))
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
