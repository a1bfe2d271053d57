"""`remote` servers: the gateway proxies to another Streamable HTTP endpoint."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from mcp import Client
from mcp.server.mcpserver import MCPServer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from tests.integration.gateway.helpers import (INIT, JSON_ONLY, GatewayUnderTest, ThreadedServer,
                                               remote_spec)

pytestmark = pytest.mark.asyncio


@pytest.fixture
def sdk_upstream() -> Iterator[str]:
    """An MCP server on the SDK's own Streamable HTTP app; yields its endpoint URL."""
    server = MCPServer(name="upstream")

    @server.tool()
    def shout(text: str) -> str:
        """Upper-case `text`."""
        return text.upper()

    with ThreadedServer(server.streamable_http_app()) as running:
        yield f"{running.url}/mcp"


class Inspector:
    """A plain HTTP upstream that records request headers and streams on demand."""

    def __init__(self) -> None:
        self.seen: list[dict[str, str]] = []
        self.release = threading.Event()

    def app(self) -> Starlette:
        async def mcp(request: Request) -> JSONResponse:
            self.seen.append(dict(request.headers))
            return JSONResponse({"jsonrpc": "2.0", "id": 1, "result": {}}, status_code=200,
                                headers={"mcp-session-id": "up-1", "x-internal": "secret",
                                         "set-cookie": "a=b"})

        async def stream(request: Request) -> StreamingResponse:
            async def events() -> AsyncIterator[bytes]:
                yield b'event: message\ndata: {"jsonrpc":"2.0","method":"first"}\n\n'
                # Wait until the test saw the first event: a buffering proxy would hang here.
                while not self.release.is_set():
                    await asyncio.sleep(0.01)
                yield b'event: message\ndata: {"jsonrpc":"2.0","id":1,"result":{}}\n\n'
            return StreamingResponse(events(), media_type="text/event-stream")

        return Starlette(routes=[Route("/mcp", mcp, methods=["POST", "GET", "DELETE"]),
                                 Route("/stream", stream, methods=["POST"])])


async def test_official_client_through_remote_proxy(gateway: GatewayUnderTest,
                                                    sdk_upstream: str) -> None:
    gateway.put(remote_spec("far", sdk_upstream))
    async with Client(gateway.mcp_url("far")) as client:
        tools = await client.list_tools()
        assert [tool.name for tool in tools.tools] == ["shout"]
        result = await client.call_tool("shout", {"text": "hi"})
        assert result.structured_content == {"result": "HI"}


async def test_proxy_allowlists_headers(gateway: GatewayUnderTest) -> None:
    inspector = Inspector()
    with ThreadedServer(inspector.app()) as upstream:
        gateway.put(remote_spec("insp", f"{upstream.url}/mcp"))
        async with httpx.AsyncClient() as http:
            reply = await http.post(gateway.mcp_url("insp"), json=INIT, headers={
                **JSON_ONLY, "authorization": "Bearer caller-token", "cookie": "sid=1",
                "mcp-session-id": "abc", "mcp-protocol-version": "2025-06-18",
                "last-event-id": "e-9", "x-other": "1"})
            deleted = await http.delete(gateway.mcp_url("insp"),
                                        headers={"mcp-session-id": "abc"})
    assert reply.status_code == 200
    assert reply.json()["result"] == {}
    assert reply.headers["mcp-session-id"] == "up-1"
    assert "x-internal" not in reply.headers and "set-cookie" not in reply.headers
    sent = inspector.seen[0]
    assert "authorization" not in sent and "cookie" not in sent and "x-other" not in sent
    assert sent["mcp-session-id"] == "abc"
    assert sent["mcp-protocol-version"] == "2025-06-18"
    assert sent["last-event-id"] == "e-9"
    assert sent["accept"] == "application/json"
    assert deleted.status_code == 200
    assert inspector.seen[1]["mcp-session-id"] == "abc"


async def test_proxy_streams_sse_without_buffering(gateway: GatewayUnderTest) -> None:
    inspector = Inspector()
    with ThreadedServer(inspector.app()) as upstream:
        gateway.put(remote_spec("live", f"{upstream.url}/stream"))
        async with httpx.AsyncClient() as http:
            async with http.stream("POST", gateway.mcp_url("live"), json=INIT,
                                   headers={"accept": "text/event-stream"}) as reply:
                assert reply.headers["content-type"].startswith("text/event-stream")
                lines = reply.aiter_lines()
                async with asyncio.timeout(5):
                    while "first" not in await anext(lines):
                        pass
                inspector.release.set()
                rest = [line async for line in lines]
    assert any('"id":1' in line for line in rest)


async def test_unreachable_upstream_is_502(gateway: GatewayUnderTest) -> None:
    gateway.put(remote_spec("down", "http://127.0.0.1:9/mcp"))
    async with httpx.AsyncClient() as http:
        reply = await http.post(gateway.mcp_url("down"), json=INIT, headers=JSON_ONLY)
    assert reply.status_code == 502
    assert reply.json()["error"]["code"] == -32603


async def test_remote_rejects_unsupported_protocol_version(gateway: GatewayUnderTest) -> None:
    gateway.put(remote_spec("far", "http://127.0.0.1:9/mcp"))
    async with httpx.AsyncClient() as http:
        reply = await http.post(gateway.mcp_url("far"), json=INIT,
                                headers={**JSON_ONLY, "mcp-protocol-version": "2026-07-28"})
    assert reply.status_code == 400
