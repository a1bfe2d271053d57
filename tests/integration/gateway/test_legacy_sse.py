"""Legacy HTTP+SSE transport (MCP 2024-11-05) at `/servers/{name}/sse` + `/messages`,
driven by the official client (`mcp.client.sse.sse_client`) and by raw HTTP."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from mcp import Client
from mcp.client.sse import sse_client

from shared.models import ServerSpec, SessionMode

from tests.integration.gateway.helpers import (GatewayUnderTest, echo_spec, remote_spec, status,
                                               wait_gone)

pytestmark = pytest.mark.asyncio


def _shared_echo(name: str) -> ServerSpec:
    spec = echo_spec(name)
    assert spec.package is not None
    spec.package.session_mode = SessionMode.SHARED
    return spec


def sse_url(gateway: GatewayUnderTest, name: str) -> str:
    return f"{gateway.url}/servers/{name}/sse"


async def test_official_sse_client_calls_tools_isolated(gateway: GatewayUnderTest) -> None:
    gateway.put(echo_spec())
    async with httpx.AsyncClient() as http:
        async with Client(sse_client(sse_url(gateway, "echo"))) as client:
            tools = await client.list_tools()
            assert "echo" in [tool.name for tool in tools.tools]
            reply = await client.call_tool("echo", {"message": "over legacy sse"})
            assert reply.content[0].text == "over legacy sse"
            state = await status(http, gateway.url, "echo")
            assert state["sessions"] == 1 and len(state["pids"]) == 1
            [pid] = state["pids"]
        # Closing the SSE stream ends the session and its own child.
        assert await wait_gone(pid)
        for _ in range(100):
            if (await status(http, gateway.url, "echo"))["sessions"] == 0:
                break
            await asyncio.sleep(0.05)
        assert (await status(http, gateway.url, "echo"))["sessions"] == 0


async def test_official_sse_clients_share_one_child(gateway: GatewayUnderTest) -> None:
    gateway.put(_shared_echo("sharedsse"))

    async def one_client(i: int) -> list[str]:
        async with Client(sse_client(sse_url(gateway, "sharedsse"))) as client:
            # Every session uses the same JSON-RPC ids; the gateway keeps them apart.
            replies = await asyncio.gather(*(client.call_tool("echo", {"message": f"{i}-{j}"})
                                             for j in range(4)))
            return [r.content[0].text for r in replies]

    results = await asyncio.gather(*(one_client(i) for i in range(3)))
    assert results == [[f"{i}-{j}" for j in range(4)] for i in range(3)]


async def test_first_event_is_the_messages_endpoint(gateway: GatewayUnderTest) -> None:
    gateway.put(echo_spec())
    async with httpx.AsyncClient(timeout=10) as http:
        async with http.stream("GET", sse_url(gateway, "echo"),
                               headers={"accept": "text/event-stream"}) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            lines = stream.aiter_lines()
            event = await anext(lines)
            data = await anext(lines)
        assert event == "event: endpoint"
        assert data.startswith("data: /servers/echo/messages?session_id=")
        endpoint = data.removeprefix("data: ")
        # The stream is closed, so that session is gone: its endpoint answers 404.
        for _ in range(100):
            gone = await http.post(gateway.url + endpoint, json={"jsonrpc": "2.0", "method": "ping",
                                                                  "id": 1})
            if gone.status_code == 404:
                break
            await asyncio.sleep(0.05)
        assert gone.status_code == 404
        assert gone.json()["error"]["code"] == -32001


async def test_message_errors(gateway: GatewayUnderTest) -> None:
    gateway.put(echo_spec())
    messages = f"{gateway.url}/servers/echo/messages"
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    async with httpx.AsyncClient(timeout=10) as http:
        missing = await http.post(messages, json=ping)
        assert missing.status_code == 400 and missing.json()["error"]["code"] == -32600
        unknown = await http.post(messages, params={"session_id": "nope"}, json=ping)
        assert unknown.status_code == 404
        wrong_type = await http.post(messages, params={"session_id": "nope"},
                                     content=json.dumps(ping), headers={"content-type": "text/plain"})
        assert wrong_type.status_code == 415
        malformed = await http.post(messages, params={"session_id": "nope"}, content=b"{",
                                    headers={"content-type": "application/json"})
        assert malformed.status_code == 400 and malformed.json()["error"]["code"] == -32700
        no_accept = await http.get(sse_url(gateway, "echo"), headers={"accept": "application/json"})
        assert no_accept.status_code == 406
        head = await http.head(sse_url(gateway, "echo"))
        assert head.status_code == 405
        assert (await status(http, gateway.url, "echo"))["sessions"] == 0


async def test_batch_items_are_answered_on_the_stream(gateway: GatewayUnderTest) -> None:
    gateway.put(echo_spec())
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2024-11-05", "capabilities": {},
                       "clientInfo": {"name": "raw", "version": "0"}}}
    async with httpx.AsyncClient(timeout=10) as http:
        async with http.stream("GET", sse_url(gateway, "echo"),
                               headers={"accept": "text/event-stream"}) as stream:
            lines = stream.aiter_lines()
            await anext(lines)
            endpoint = (await anext(lines)).removeprefix("data: ")
            accepted = await http.post(gateway.url + endpoint, json=init)
            assert accepted.status_code == 202
            batch = [{"jsonrpc": "2.0", "method": "notifications/initialized"},
                     {"jsonrpc": "2.0", "id": 2, "method": "ping"},
                     {"jsonrpc": "2.0", "id": 3, "method": "tools/list"}]
            assert (await http.post(gateway.url + endpoint, json=batch)).status_code == 202
            seen: dict[int, dict] = {}
            async for line in lines:
                if line.startswith("data: "):
                    message = json.loads(line.removeprefix("data: "))
                    seen[message["id"]] = message
                if len(seen) == 3:
                    break
        assert seen[1]["result"]["serverInfo"]["name"] == "echo"
        assert seen[2]["result"] == {}
        assert "echo" in [tool["name"] for tool in seen[3]["result"]["tools"]]


async def test_remote_servers_are_refused(gateway: GatewayUnderTest) -> None:
    gateway.put(remote_spec("far", "http://127.0.0.1:9/mcp"))
    async with httpx.AsyncClient(timeout=10) as http:
        reply = await http.get(sse_url(gateway, "far"), headers={"accept": "text/event-stream"})
        assert reply.status_code == 422
        assert reply.headers["content-type"].startswith("application/problem+json")


async def test_disallowed_origin_is_refused(gateway: GatewayUnderTest) -> None:
    gateway.put(echo_spec())
    async with httpx.AsyncClient(timeout=10) as http:
        reply = await http.get(sse_url(gateway, "echo"), headers={
            "accept": "text/event-stream", "origin": "http://evil.example"})
        assert reply.status_code == 403
        assert (await status(http, gateway.url, "echo"))["sessions"] == 0
