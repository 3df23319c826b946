"""Reference: the thinnest useful proxy (uvicorn + aiohttp), to compare the gateway against.

python bench/passthrough.py UPSTREAM_URL PORT
"""

from __future__ import annotations

import sys

import aiohttp
import uvicorn
from starlette.types import Receive, Scope, Send

UPSTREAM, PORT = sys.argv[1], int(sys.argv[2])
_session: list[aiohttp.ClientSession] = []


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                _session.append(aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)))
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await _session[0].close()
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    async with _session[0].post(
        UPSTREAM + scope["path"], data=body, headers={"content-type": "application/json"}
    ) as response:
        headers = [(b"content-type", response.headers.get("content-type", "application/json").encode())]
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        async for chunk in response.content.iter_any():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=PORT, log_level="warning", access_log=False)
