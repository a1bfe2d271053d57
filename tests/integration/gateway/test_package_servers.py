"""End to end: the official `mcp` client talks to stdio servers through the gateway."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from mcp import Client

from shared.models import PackageSource, ServerSpec

from gateway.children.logs import log_path
from tests.integration.gateway.helpers import (BOTH, INIT, JSON_ONLY, GatewayUnderTest, alive,
                                               echo_spec, open_session, session_headers, status,
                                               tools_list, wait_gone)

pytestmark = pytest.mark.asyncio


async def test_echo_lists_tools_and_echoes(gateway: GatewayUnderTest) -> None:
    gateway.put(echo_spec())
    async with Client(gateway.mcp_url("echo")) as client:
        tools = await client.list_tools()
        assert {tool.name for tool in tools.tools} == {"echo", "add"}
        result = await client.call_tool("echo", {"message": "hello gateway"})
        assert not result.is_error
        assert result.structured_content == {"result": "hello gateway"}
    assert log_path(gateway.settings.servers_dir, "echo").exists()


async def test_mcp_server_time_from_pypi(gateway: GatewayUnderTest) -> None:
    gateway.put(ServerSpec(name="time", kind="package",
                           package=PackageSource(command="mcp-server-time")))
    async with Client(gateway.mcp_url("time")) as client:
        result = await client.call_tool("get_current_time", {"timezone": "UTC"})
        assert not result.is_error
        payload = json.loads(result.content[0].text)
        assert payload["timezone"] == "UTC"
        assert payload["datetime"].endswith("+00:00")


async def test_two_sessions_get_two_children(gateway: GatewayUnderTest) -> None:
    gateway.put(echo_spec())
    url = gateway.mcp_url("echo")
    async with Client(url) as first, Client(url) as second:
        await first.list_tools()
        await second.list_tools()
        async with httpx.AsyncClient() as http:
            status = (await http.get(f"{gateway.url}/servers/echo/status")).json()
        assert status["status"] == "mounted"
        assert status["sessions"] == 2
        assert len(set(status["pids"])) == 2
        assert all(alive(pid) for pid in status["pids"])
    for pid in status["pids"]:  # the client's DELETE on close ended each child
        assert await wait_gone(pid)


async def test_delete_session_kills_child(gateway: GatewayUnderTest) -> None:
    gateway.put(echo_spec())
    url = gateway.mcp_url("echo")
    async with httpx.AsyncClient() as http:
        session_id = await open_session(http, url)
        [pid] = (await status(http, gateway.url, "echo"))["pids"]
        assert alive(pid)
        reply = await http.delete(url, headers=session_headers(session_id))
        assert reply.status_code == 204
        assert await wait_gone(pid)
        again = await http.post(url, json=tools_list(), headers=session_headers(session_id))
        assert again.status_code == 404
        assert again.json()["error"]["code"] == -32001
        assert (await http.delete(url, headers=session_headers(session_id))).status_code == 404
        assert (await status(http, gateway.url, "echo"))["status"] == "idle"


async def test_admin_route_stops_every_child(gateway: GatewayUnderTest) -> None:
    gateway.put(echo_spec())
    url = gateway.mcp_url("echo")
    async with httpx.AsyncClient() as http:
        first = await open_session(http, url)
        await open_session(http, url)
        pids = (await status(http, gateway.url, "echo"))["pids"]
        assert len(pids) == 2
        reply = await http.delete(f"{gateway.url}/admin/servers/echo/sessions")
        assert reply.status_code == 200
        assert reply.json() == {"stopped": 2}
        for pid in pids:
            assert await wait_gone(pid)
        gone = await http.post(url, json=tools_list(), headers=session_headers(first))
        assert gone.status_code == 404
        assert (await http.delete(f"{gateway.url}/admin/servers/echo/sessions")).json() == {
            "stopped": 0}


async def test_server_added_after_start_is_served(gateway: GatewayUnderTest) -> None:
    url = gateway.mcp_url("late")
    async with httpx.AsyncClient() as http:
        missing = await http.post(url, json=INIT, headers=JSON_ONLY)
        assert missing.status_code == 404
        gateway.put(echo_spec("late"))
        # A negative read may be cached for up to 1 s; then the new doc is served.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 3
        while (reply := await http.post(url, json=INIT, headers=JSON_ONLY)).status_code == 404:
            assert loop.time() < deadline, "new server not served without a restart"
            await asyncio.sleep(0.05)
        assert reply.status_code == 200
        assert reply.json()["result"]["serverInfo"]["name"] == "echo"


async def test_deleted_server_answers_404_and_its_sessions_end(gateway: GatewayUnderTest) -> None:
    gateway.put(echo_spec())
    url = gateway.mcp_url("echo")
    async with httpx.AsyncClient() as http:
        session_id = await open_session(http, url)
        [pid] = (await status(http, gateway.url, "echo"))["pids"]
        gateway.store.delete("servers", "echo", "echo")
        # The control plane calls the admin route after deleting; it also drops the cache.
        await http.delete(f"{gateway.url}/admin/servers/echo/sessions")
        assert await wait_gone(pid)
        for headers in (JSON_ONLY, session_headers(session_id)):
            reply = await http.post(url, json=INIT if headers is JSON_ONLY else tools_list(),
                                    headers=headers)
            assert reply.status_code == 404
            assert reply.headers["content-type"] == "application/problem+json"
        assert (await status(http, gateway.url, "echo"))["status"] == "unknown"


async def test_json_answer_mode_and_notifications(gateway: GatewayUnderTest) -> None:
    gateway.put(echo_spec())
    url = gateway.mcp_url("echo")
    async with httpx.AsyncClient() as http:
        session_id = await open_session(http, url)
        call = {"jsonrpc": "2.0", "id": "c-1", "method": "tools/call",
                "params": {"name": "add", "arguments": {"a": 2, "b": 3}}}
        reply = await http.post(url, json=call, headers=session_headers(session_id))
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("application/json")
        body = reply.json()
        assert body["id"] == "c-1"
        assert body["result"]["structuredContent"] == {"result": 5.0}
        await http.delete(url, headers=session_headers(session_id))


async def _list_tools_accepting_both(gateway: GatewayUnderTest) -> httpx.Response:
    """`tools/list` (id 7) on a new echo session from a client that accepts JSON and SSE."""
    gateway.put(echo_spec())
    url = gateway.mcp_url("echo")
    async with httpx.AsyncClient() as http:
        session_id = await open_session(http, url)
        reply = await http.post(url, json=tools_list(7), headers={**session_headers(session_id), **BOTH})
        await http.delete(url, headers=session_headers(session_id))
    return reply


async def test_a_fast_answer_is_plain_json_even_when_sse_is_accepted(gateway: GatewayUnderTest) -> None:
    reply = await _list_tools_accepting_both(gateway)
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("application/json")
    assert reply.json()["id"] == 7 and reply.json()["result"]["tools"]


async def test_sse_answer_mode(make_gateway) -> None:
    reply = await _list_tools_accepting_both(make_gateway(gateway_stream_after_seconds=0))
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/event-stream")
    data = [line[5:].strip() for line in reply.text.splitlines() if line.startswith("data:")]
    assert json.loads(data[-1])["id"] == 7
