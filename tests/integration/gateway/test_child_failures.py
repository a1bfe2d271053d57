"""A stdio child that dies, or cannot start, fails requests with JSON-RPC errors."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import httpx
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from shared.models import PackageSource, ServerSpec

from tests.integration.gateway.helpers import (BOTH, INIT, JSON_ONLY, GatewayUnderTest,
                                               open_session, script_spec, session_headers, status,
                                               tools_list, wait_gone)

pytestmark = pytest.mark.asyncio

# Answers initialize, then exits with code 3 on the first request after it.
CRASHER = '''
import json, sys
for line in sys.stdin:
    msg = json.loads(line)
    if msg.get("method") == "initialize":
        print(json.dumps({"jsonrpc": "2.0", "id": msg["id"], "result": {
            "protocolVersion": msg["params"]["protocolVersion"],
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "crasher", "version": "0"}}}), flush=True)
    elif "id" in msg and "method" in msg:
        sys.exit(3)
'''


@pytest.fixture
def crasher(tmp_path: Path) -> ServerSpec:
    script = tmp_path / "crasher.py"
    script.write_text(CRASHER)
    return script_spec("crasher", script)


async def test_crash_fails_request_through_official_client(gateway: GatewayUnderTest,
                                                           crasher: ServerSpec) -> None:
    gateway.put(crasher)
    async with Client(gateway.mcp_url("crasher")) as client:
        with pytest.raises(MCPError) as caught:
            await client.list_tools()
    assert caught.value.code == -32603
    assert "exited with code 3" in str(caught.value)


@pytest.mark.parametrize("accept", [JSON_ONLY, BOTH])
async def test_crash_loop_restarts_then_ends_session(gateway: GatewayUnderTest,
                                                     crasher: ServerSpec,
                                                     accept: dict[str, str]) -> None:
    gateway.put(crasher)
    url = gateway.mcp_url("crasher")
    async with httpx.AsyncClient() as http:
        session_id = await open_session(http, url)
        [pid] = (await status(http, gateway.url, "crasher"))["pids"]
        for request_id in (5, 6, 7):  # each request: a new child replays the handshake, crashes
            reply = await http.post(url, json=tools_list(request_id),
                                    headers={**session_headers(session_id), **accept})
            assert reply.status_code == 200
            text = reply.text
            assert '"code":-32603' in text and "exited with code 3" in text
            assert f'"id":{request_id}' in text
        assert await wait_gone(pid)
        # Three crashes without one good answer: a crash loop ends the session.
        after = await http.post(url, json=tools_list(8), headers=session_headers(session_id))
        assert after.status_code == 404
        state = await status(http, gateway.url, "crasher")
        assert state["sessions"] == 0 and state["restarts"] == 3
        assert "exited with code 3" in state["last_error"]


async def test_command_not_found_fails_initialize(gateway: GatewayUnderTest) -> None:
    gateway.put(ServerSpec(name="missing", kind="package",
                           package=PackageSource(command="no-such-command-mcpaas")))
    async with httpx.AsyncClient() as http:
        reply = await http.post(gateway.mcp_url("missing"), json=INIT, headers=JSON_ONLY)
        assert reply.status_code == 502
        assert reply.json()["error"]["code"] == -32603
        assert "mcp-session-id" not in reply.headers
        assert "could not start" in (await status(http, gateway.url, "missing"))["last_error"]


async def test_child_exiting_during_initialize(gateway: GatewayUnderTest, tmp_path: Path) -> None:
    script = tmp_path / "quitter.py"
    script.write_text("import sys\nsys.stdin.readline()\nsys.exit(7)\n")
    gateway.put(script_spec("quitter", script))
    async with httpx.AsyncClient() as http:
        reply = await http.post(gateway.mcp_url("quitter"), json=INIT, headers=JSON_ONLY)
        assert reply.json()["error"]["code"] == -32603
        assert "exited with code 7" in reply.json()["error"]["message"]
        assert "mcp-session-id" not in reply.headers
        assert (await status(http, gateway.url, "quitter"))["sessions"] == 0


# tools/call "slow" never answers; anything else answers at once with the child's pid.
SLOW = '''
import json, os, sys
for line in sys.stdin:
    msg = json.loads(line)
    method = msg.get("method")
    if method == "initialize":
        result = {"protocolVersion": msg["params"]["protocolVersion"],
                  "capabilities": {"tools": {}}, "serverInfo": {"name": "slow", "version": "0"}}
    elif method == "tools/list":
        result = {"tools": [{"name": n, "inputSchema": {"type": "object"}} for n in ("fast", "slow")]}
    elif method == "tools/call" and msg["params"]["name"] == "slow":
        continue
    elif "id" in msg and "method" in msg:
        result = {"content": [{"type": "text", "text": str(os.getpid())}]}
    else:
        continue
    print(json.dumps({"jsonrpc": "2.0", "id": msg["id"], "result": result}), flush=True)
'''


async def test_sigkill_mid_call_errors_and_next_call_succeeds(gateway: GatewayUnderTest,
                                                               tmp_path: Path) -> None:
    script = tmp_path / "slow.py"
    script.write_text(SLOW)
    gateway.put(script_spec("slow", script))
    async with Client(gateway.mcp_url("slow")) as client, httpx.AsyncClient() as http:
        await client.call_tool("fast", {})
        # the gateway's view of the child (under the sandbox the child's own pid is one
        # of its PID namespace)
        [first_pid] = (await status(http, gateway.url, "slow"))["pids"]
        call = asyncio.create_task(client.call_tool("slow", {}))
        await asyncio.sleep(0.2)  # let the request reach the child
        os.kill(first_pid, signal.SIGKILL)
        with pytest.raises(MCPError) as caught:
            await asyncio.wait_for(call, timeout=10)
        assert caught.value.code == -32603 and "exited with code -9" in str(caught.value)
        # The next call on the same session is served by a new child within a bounded wait.
        await asyncio.wait_for(client.call_tool("fast", {}), timeout=5)
        state = await status(http, gateway.url, "slow")
        [second_pid] = state["pids"]
        assert second_pid != first_pid
        assert state["pids"] == [second_pid] and state["restarts"] == 1
