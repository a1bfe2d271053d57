"""`gateway.upstreams.replicas`: which requests hop, what a hop carries, and the refusals.
(Two real gateway replicas over Redis: tests/e2e/test_production_shaped.py.)"""

from __future__ import annotations

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.upstreams.replicas import HOP_HEADER, LocalDirectory, Replicas


def request(headers: dict[str, str] | None = None, query: str = "", method: str = "POST",
            body: bytes = b"") -> Request:
    sent = False

    async def receive() -> dict:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    scope = {"type": "http", "method": method, "path": "/servers/echo/mcp", "query_string": query.encode(),
             "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
             "scheme": "http", "server": ("127.0.0.1", 8080), "root_path": ""}
    return Request(scope, receive)


class Peer:
    """A replica's HTTP surface (ASGI, in process): records what reached it."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, str], bytes, str]] = []

    async def endpoint(self, request: Request) -> Response:
        self.seen.append((request.method, dict(request.headers), await request.body(), request.url.query))
        return JSONResponse({"stopped": 2}, headers={"mcp-session-id": "kept"})

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/{path:path}", self.endpoint, methods=["GET", "POST", "DELETE"])])


async def replicas_with(peer: Peer | None = None) -> tuple[Replicas, LocalDirectory]:
    directory = LocalDirectory()
    transport = httpx.ASGITransport(app=peer.app()) if peer else None
    mine = Replicas("http://10.0.0.1:8080/", directory, httpx.AsyncClient(transport=transport))
    return mine, directory


async def test_only_a_session_of_another_replica_has_an_owner() -> None:
    mine, _ = await replicas_with()
    other = "a" * len(mine.id)
    assert mine.owner(request()) is None  # no session: initialize stays here
    assert mine.owner(request({"mcp-session-id": f"{mine.id}.xyz"})) is None  # ours
    assert mine.owner(request({"mcp-session-id": f"{other}.xyz"})) == other
    assert mine.owner(request(query=f"session_id={other}.xyz")) == other  # legacy HTTP+SSE
    assert mine.owner(request({"mcp-session-id": "no-replica-prefix"})) is None  # e.g. an old id
    assert mine.owner(request({"mcp-session-id": "short.xyz"})) is None
    # Security: a request that says it was forwarded is never forwarded again (no loops)
    assert mine.owner(request({"mcp-session-id": f"{other}.xyz", HOP_HEADER: mine.id})) is None


async def test_a_session_of_a_replica_that_is_gone_answers_404_session_not_found() -> None:
    mine, _ = await replicas_with()
    answer = await mine.forward(request({"mcp-session-id": "b" * 12 + ".xyz"}), "b" * 12)
    assert answer.status_code == 404
    assert b"Session not found" in answer.body


async def test_an_unreachable_owner_answers_404() -> None:
    mine, directory = await replicas_with()
    directory._own["c" * 12] = "http://127.0.0.1:9"  # discard port: nothing listens
    answer = await mine.forward(request({"mcp-session-id": "c" * 12 + ".xyz"}), "c" * 12)
    assert answer.status_code == 404


async def test_a_hop_carries_method_path_query_body_and_credential_and_marks_itself() -> None:
    peer = Peer()
    mine, directory = await replicas_with(peer)
    directory._own["d" * 12] = "http://10.0.0.2:8080"
    incoming = request({"mcp-session-id": "d" * 12 + ".xyz", "authorization": "Bearer t",
                        "content-type": "application/json", "connection": "keep-alive"},
                       query="a=1", body=b'{"jsonrpc":"2.0"}')
    answer = await mine.forward(incoming, "d" * 12)
    chunks = [chunk async for chunk in answer.body_iterator]
    assert answer.status_code == 200 and b"".join(chunks) == b'{"stopped":2}'
    assert answer.headers["mcp-session-id"] == "kept"
    method, headers, body, query = peer.seen[0]
    assert (method, body, query) == ("POST", b'{"jsonrpc":"2.0"}', "a=1")
    assert headers["authorization"] == "Bearer t"  # the owner checks the caller again
    assert headers[HOP_HEADER] == mine.id
    assert headers["host"] == "10.0.0.2:8080"


async def test_broadcast_asks_every_other_replica_once_and_never_for_a_hop() -> None:
    peer = Peer()
    mine, directory = await replicas_with(peer)
    await directory.register(mine.id, mine.url)
    directory._own["e" * 12] = "http://10.0.0.3:8080"
    answers = await mine.broadcast(request({"authorization": "Bearer t"}, method="DELETE"))
    assert [a.json() for a in answers if a is not None] == [{"stopped": 2}]
    assert len(peer.seen) == 1 and peer.seen[0][1][HOP_HEADER] == mine.id
    assert await mine.broadcast(request({HOP_HEADER: "x"}, method="DELETE")) == []
    assert len(peer.seen) == 1
