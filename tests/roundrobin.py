"""A small streaming round-robin reverse proxy: the load balancer in front of the gateway
replicas of the production-shaped run (issue 11 item 7). Each request goes to the next
upstream in turn, with no affinity of any kind (the worst case for sessions); bodies
stream both ways, so SSE passes through as it is written.

`python -m tests.roundrobin PORT UPSTREAM [UPSTREAM ...]` serves it on 127.0.0.1:PORT.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import AsyncIterator

import httpx
import uvicorn
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

_HOP_BY_HOP = frozenset({"host", "connection", "keep-alive", "transfer-encoding", "te", "trailer",
                         "upgrade", "content-length"})


class RoundRobin:
    """ASGI app relaying each HTTP request to the next of `upstreams` (base URLs)."""

    def __init__(self, upstreams: list[str]) -> None:
        self._next = itertools.cycle([url.rstrip("/") for url in upstreams])
        self._count = len(upstreams)
        # read=None: an SSE stream may stay quiet as long as the client keeps it open
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(30.0, read=None), follow_redirects=False)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await self._http.aclose()
            await send({"type": "lifespan.shutdown.complete"})
            return
        request = Request(scope, receive)
        for _ in range(self._count):  # like a Service: a dead endpoint is skipped
            response = await self.relay(request, next(self._next))
            if response.status_code != 502:
                break
        await response(scope, receive, send)

    async def relay(self, request: Request, base: str) -> Response:
        """The upstream's answer to `request`, streamed; 502 when it cannot be reached."""
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        url = httpx.URL(base + request.url.path, query=request.url.query.encode())
        body = request.stream() if request.method in ("POST", "PUT", "PATCH") else None
        try:
            answer = await self._http.send(self._http.build_request(request.method, url, headers=headers,
                                                                    content=body), stream=True)
        except httpx.ConnectError as exc:  # nothing was sent: safe to try the next one
            return Response(f"upstream {base} unreachable: {type(exc).__name__}", 502)
        kept = {k: v for k, v in answer.headers.items() if k.lower() not in _HOP_BY_HOP}
        return StreamingResponse(_chunks(answer), status_code=answer.status_code, headers=kept)


async def _chunks(answer: httpx.Response) -> AsyncIterator[bytes]:
    try:
        async for chunk in answer.aiter_raw():
            yield chunk
    finally:
        await answer.aclose()


def main(argv: list[str]) -> None:
    """Serve `RoundRobin(argv[1:])` on 127.0.0.1:argv[0]."""
    uvicorn.run(RoundRobin(argv[1:]), host="127.0.0.1", port=int(argv[0]), log_level="warning")


if __name__ == "__main__":
    main(sys.argv[1:])
