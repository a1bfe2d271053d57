"""Routing of child messages to SSE streams, and shutdown of children with the app."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest

from shared.settings import Settings
from shared.store import SQLiteDocumentStore

from gateway.app import create_app
from tests.integration.gateway.conftest import PROTOCOL_RIG_AUTH, shown_to_children
from tests.integration.gateway.helpers import (BOTH, GatewayUnderTest, ThreadedServer, alive,
                                               echo_spec, open_session, put_server, script_spec,
                                               session_headers, status, wait_gone)

pytestmark = pytest.mark.asyncio

# On tools/call: progress + log notification, a server->client request, then (after the
# client answered it) the result. On ping: a list_changed notification, then the result.
# On tools/list: the result after 0.6 s.
CHATTY = '''
import json, sys, time
def send(msg):
    print(json.dumps(msg), flush=True)
call = None
for line in sys.stdin:
    msg = json.loads(line)
    method = msg.get("method")
    if method == "initialize":
        send({"jsonrpc": "2.0", "id": msg["id"], "result": {
            "protocolVersion": msg["params"]["protocolVersion"], "capabilities": {},
            "serverInfo": {"name": "chatty", "version": "0"}}})
    elif method == "tools/call":
        call = msg
        token = msg["params"]["_meta"]["progressToken"]
        send({"jsonrpc": "2.0", "method": "notifications/progress",
              "params": {"progressToken": token, "progress": 1}})
        send({"jsonrpc": "2.0", "method": "notifications/message",
              "params": {"level": "info", "data": "working"}})
        send({"jsonrpc": "2.0", "id": "s1", "method": "roots/list"})
    elif msg.get("id") == "s1" and call is not None:
        roots = msg["result"]["roots"]
        send({"jsonrpc": "2.0", "id": call["id"], "result": {"roots_seen": len(roots)}})
    elif method == "ping":
        send({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"})
        send({"jsonrpc": "2.0", "id": msg["id"], "result": {}})
    elif method == "tools/list":  # slow, and nothing related before the answer
        time.sleep(0.6)
        send({"jsonrpc": "2.0", "id": msg["id"], "result": {"tools": []}})
'''


def _events(lines: list[str]) -> list[dict]:
    return [json.loads(line[5:]) for line in lines if line.startswith("data:")]


@pytest.fixture
def chatty(gateway: GatewayUnderTest, tmp_path: Path) -> str:
    script = tmp_path / "chatty.py"
    script.write_text(CHATTY)
    gateway.put(script_spec("chatty", script))
    return gateway.mcp_url("chatty")


async def test_related_messages_flow_on_the_request_stream(chatty: str) -> None:
    async with httpx.AsyncClient() as http:
        session_id = await open_session(http, chatty)
        headers = {**session_headers(session_id), **BOTH}
        call = {"jsonrpc": "2.0", "id": 10, "method": "tools/call",
                "params": {"name": "x", "arguments": {}, "_meta": {"progressToken": "p1"}}}
        seen: list[dict] = []
        async with http.stream("POST", chatty, json=call, headers=headers) as reply:
            assert reply.headers["content-type"].startswith("text/event-stream")
            async with asyncio.timeout(5):
                async for line in reply.aiter_lines():
                    seen += _events([line])
                    if seen and seen[-1].get("method") == "roots/list":
                        answer = {"jsonrpc": "2.0", "id": "s1", "result": {"roots": [{"uri": "file:///"}]}}
                        posted = await http.post(chatty, json=answer, headers=headers)
                        assert posted.status_code == 202
    assert [m.get("method") for m in seen[:3]] == [
        "notifications/progress", "notifications/message", "roots/list"]
    assert seen[-1] == {"jsonrpc": "2.0", "id": 10, "result": {"roots_seen": 1}}


async def test_unrelated_notifications_go_to_the_get_stream(chatty: str) -> None:
    async with httpx.AsyncClient() as http:
        session_id = await open_session(http, chatty)
        headers = {**session_headers(session_id), "accept": "text/event-stream"}
        async with http.stream("GET", chatty, headers=headers) as stream:
            assert stream.status_code == 200
            second = await http.get(chatty, headers=headers)
            assert second.status_code == 409
            ping = {"jsonrpc": "2.0", "id": 3, "method": "ping"}
            reply = await http.post(chatty, json=ping, headers={**headers, **BOTH})
            # the list_changed is no part of the ping: the ping is answered as plain JSON
            assert reply.json() == {"jsonrpc": "2.0", "id": 3, "result": {}}
            lines = stream.aiter_lines()
            async with asyncio.timeout(5):
                while not (line := await anext(lines)).startswith("data:"):
                    pass
            assert json.loads(line[5:])["method"] == "notifications/tools/list_changed"
            deleted = await http.delete(chatty, headers=session_headers(session_id))
            assert deleted.status_code == 204
            async with asyncio.timeout(5):  # the GET stream ends with the session
                rest = [line async for line in lines]
            assert not any(line.startswith("data:") for line in rest)


async def test_a_slow_answer_gets_a_resumable_stream(make_gateway, tmp_path: Path) -> None:
    gateway = make_gateway(gateway_stream_after_seconds=0.1)
    script = tmp_path / "chatty.py"
    script.write_text(CHATTY)
    gateway.put(script_spec("chatty", script))
    url = gateway.mcp_url("chatty")
    async with httpx.AsyncClient() as http:
        session_id = await open_session(http, url)
        headers = {**session_headers(session_id), **BOTH}
        listing = {"jsonrpc": "2.0", "id": 4, "method": "tools/list"}
        async with http.stream("POST", url, json=listing, headers=headers) as reply:
            # the headers come after stream_after, long before the answer
            assert reply.headers["content-type"].startswith("text/event-stream")
            lines = [line async for line in reply.aiter_lines()]
        ids = [line[3:].strip() for line in lines if line.startswith("id:")]
        assert _events(lines) == [{"jsonrpc": "2.0", "id": 4, "result": {"tools": []}}]
        assert len(ids) == 1
        # resumable: the event is in the session's event store under its id's stream
        stream = ids[0].rpartition(":")[0]
        replay = await http.get(url, headers={**headers, "last-event-id": f"{stream}:0"})
        assert _events(replay.text.splitlines()) == _events(lines)


async def test_shutdown_ends_every_child(tmp_path: Path) -> None:
    store = SQLiteDocumentStore(tmp_path / "store.sqlite")
    put_server(store, echo_spec())
    app = create_app(Settings(data_dir=tmp_path / "data", auth_mode=PROTOCOL_RIG_AUTH,
                              sandbox_read_paths=shown_to_children(tmp_path)), store)
    server = ThreadedServer(app)
    with server:
        async with httpx.AsyncClient() as http:
            url = f"{server.url}/servers/echo/mcp"
            await open_session(http, url)
            await open_session(http, url)
            pids = (await status(http, server.url, "echo"))["pids"]
            assert len(pids) == 2 and all(alive(pid) for pid in pids)
    for pid in pids:
        assert await wait_gone(pid, timeout=1)
