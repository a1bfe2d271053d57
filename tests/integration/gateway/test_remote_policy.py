"""Per-tool policy on `remote` servers (issue 4, item 3): proxied `tools/list` answers,
JSON or SSE, list only the tools the caller may call; other traffic is untouched."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from mcp.server.mcpserver import MCPServer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from shared.auth.principal import Role
from shared.models import AccessPolicy

from tests.e2e.helpers import mcp_client
from tests.integration.gateway.authn import start_local
from tests.integration.gateway.helpers import ThreadedServer, remote_spec

pytestmark = pytest.mark.asyncio

POLICY = AccessPolicy(tools={"shout": [Role.OPERATOR]})
TOOLS = [{"name": "shout", "inputSchema": {"type": "object"}}, {"name": "whisper", "inputSchema": {"type": "object"}}]


@pytest.fixture
def sdk_upstream() -> Iterator[str]:
    """A loopback MCP server (the SDK's Streamable HTTP app, SSE replies) with two tools."""
    server = MCPServer(name="upstream")

    @server.tool()
    def shout(text: str) -> str:
        """Upper-case `text`."""
        return text.upper()

    @server.tool()
    def whisper(text: str) -> str:
        """Lower-case `text`."""
        return text.lower()

    with ThreadedServer(server.streamable_http_app()) as running:
        yield f"{running.url}/mcp"


@pytest.fixture
def raw_upstream() -> Iterator[str]:
    """Answers every POST with `tools/list`-shaped results: `/json` as one JSON body, `/sse`
    as a notification event and then the response event (CRLF line ends)."""
    def listing(request_id: object) -> dict:
        return {"jsonrpc": "2.0", "id": request_id, "result": {"tools": TOOLS}}

    async def as_json(request: Request) -> JSONResponse:
        return JSONResponse(listing((await request.json())["id"]))

    async def as_sse(request: Request) -> StreamingResponse:
        request_id = (await request.json())["id"]

        async def events() -> AsyncIterator[bytes]:
            yield b'event: message\r\ndata: {"jsonrpc":"2.0","method":"notifications/message",'
            yield b'"params":{"tools":"untouched"}}\r\n\r\nevent: message\r\nid: 7\r\n'
            yield f"data: {json.dumps(listing(request_id))}\r\n\r\n".encode()
        return StreamingResponse(events(), media_type="text/event-stream")

    app = Starlette(routes=[Route("/json", as_json, methods=["POST"]), Route("/sse", as_sse, methods=["POST"])])
    with ThreadedServer(app) as running:
        yield running.url


async def test_official_client_sees_only_allowed_tools_of_a_remote_server(make_gateway, sdk_upstream) -> None:
    auth = start_local(make_gateway)
    gw = auth.gateway
    gw.put(remote_spec("far", sdk_upstream).model_copy(update={"access": POLICY}))
    async with mcp_client(gw.mcp_url("far"), auth.headers("reader", Role.READER)) as client:
        assert [tool.name for tool in (await client.list_tools()).tools] == ["whisper"]
        assert (await client.call_tool("whisper", {"text": "HI"})).structured_content == {"result": "hi"}
    async with mcp_client(gw.mcp_url("far"), auth.headers("op", Role.OPERATOR)) as client:
        assert {tool.name for tool in (await client.list_tools()).tools} == {"shout", "whisper"}


@pytest.mark.parametrize("path", ["json", "sse"])
async def test_proxied_listing_is_filtered_in_json_and_sse(make_gateway, raw_upstream, path) -> None:
    auth = start_local(make_gateway)
    gw = auth.gateway
    gw.put(remote_spec("raw", f"{raw_upstream}/{path}").model_copy(update={"access": POLICY}))
    headers = {**auth.headers("reader", Role.READER), "accept": "application/json, text/event-stream"}
    async with httpx.AsyncClient(timeout=10) as http:
        listed = await http.post(gw.mcp_url("raw"), json={"jsonrpc": "2.0", "id": 3, "method": "tools/list"},
                                 headers=headers)
        other = await http.post(gw.mcp_url("raw"), json={"jsonrpc": "2.0", "id": 4, "method": "ping"},
                                headers=headers)
    assert listed.status_code == 200
    if path == "json":
        assert [tool["name"] for tool in listed.json()["result"]["tools"]] == ["whisper"]
        assert [tool["name"] for tool in other.json()["result"]["tools"]] == ["shout", "whisper"]
    else:
        events = [event for event in listed.text.replace("\r\n", "\n").split("\n\n") if event]
        assert '"params":{"tools":"untouched"}' in events[0]  # other events keep their bytes
        assert "id: 7" in events[1]
        data = json.loads(events[1].split("data: ", 1)[1])
        assert data["id"] == 3 and [tool["name"] for tool in data["result"]["tools"]] == ["whisper"]
        assert '"name": "shout"' in other.text  # a reply to anything but tools/list is not filtered
