"""End to end over real HTTP: deploy real stdio MCP servers and call them through the gateway."""

from __future__ import annotations

import os
import sys

import httpx
import pytest

from tests.e2e.conftest import REPO
from tests.e2e.helpers import authed, lifecycle_events, mcp_client, wait_gone, wait_status

pytestmark = pytest.mark.usefixtures("checkout_launchers")  # clearance opt-ins (tests/e2e/conftest.py)

EVERYTHING = str(REPO / "node_modules" / ".bin" / "mcp-server-everything")


def create(api: str, spec: dict) -> httpx.Response:
    return authed.post(f"{api}/api/servers", json=spec, timeout=30)


async def test_time_server_reaches_running_and_answers_tools(platform):
    response = create(platform.api, {"name": "time", "kind": "package", "package": {"command": "mcp-server-time"}})
    assert response.status_code == 202, response.text
    assert response.headers["Location"].endswith(f"/api/operations/{response.json()['operation_id']}")
    server = wait_status(platform.api, "time", {"Running", "Error"}, timeout=30)
    assert server["status"] == "Running", server
    assert server["endpoint"] == f"{platform.gateway}/servers/time/mcp" and server["revision"] == 1

    async with mcp_client(f"{platform.gateway}/servers/time/mcp", platform.headers) as client:
        tools = {tool.name for tool in (await client.list_tools()).tools}
        assert "get_current_time" in tools
        result = await client.call_tool("get_current_time", {"timezone": "UTC"})
        assert not result.is_error and '"timezone": "UTC"' in result.content[0].text

    operation = authed.get(response.headers["Location"], timeout=10).json()
    assert operation["runtimeStatus"] == "Completed" and operation["output"]["status"] == "Running"


async def test_everything_server_over_npm_stdio(platform):
    assert os.path.exists(EVERYTHING), "run `npm install` (make test does) for server-everything"
    spec = {"name": "everything", "kind": "package", "package": {"command": EVERYTHING, "args": ["stdio"]}}
    assert create(platform.api, spec).status_code == 202
    assert wait_status(platform.api, "everything", {"Running", "Error"})["status"] == "Running"
    async with mcp_client(f"{platform.gateway}/servers/everything/mcp", platform.headers) as client:
        result = await client.call_tool("echo", {"message": "through the gateway"})
        assert result.content[0].text == "Echo: through the gateway"


async def test_update_creates_revision_two_and_delete_stops_everything(platform):
    spec = {"name": "echo", "kind": "package",
            "package": {"command": sys.executable, "args": ["-m", "catalog.echo.server"]}}
    assert create(platform.api, spec).status_code == 202
    wait_status(platform.api, "echo", {"Running"})

    spec["package"]["env"] = {"ECHO_MODE": "v2"}
    spec["description"] = "second"
    response = authed.put(f"{platform.api}/api/servers/echo", json=spec, timeout=30)
    assert response.status_code == 202, response.text
    assert wait_status(platform.api, "echo", {"Running"}, revision=2)["spec"]["description"] == "second"
    revisions = authed.get(f"{platform.api}/api/servers/echo/revisions", timeout=10).json()["items"]
    assert [r["number"] for r in revisions] == [2, 1]
    assert revisions[0]["diff"] == {"description": {"from": "", "to": "second"},
                                    "package.env.ECHO_MODE": {"from": None, "to": "v2"}}

    async with mcp_client(f"{platform.gateway}/servers/echo/mcp", platform.headers) as client:
        assert (await client.call_tool("echo", {"message": "hi"})).content[0].text == "hi"
        status = authed.get(f"{platform.gateway}/servers/echo/status", timeout=5).json()
        pids = status["pids"]
        assert pids
        assert authed.delete(f"{platform.api}/api/servers/echo", timeout=30).status_code == 202
        wait_gone(platform.api, "echo")
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    probe = authed.post(f"{platform.gateway}/servers/echo/mcp", timeout=10,
                       json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}},
                       headers={"Accept": "application/json, text/event-stream"})
    assert probe.status_code == 404
    actions = sorted((e["action"], e["result"]) for e in lifecycle_events(platform.data_dir))
    assert actions == sorted([("server.create", "accepted"), ("server.create", "succeeded"),
                              ("server.update", "accepted"), ("server.update", "succeeded"),
                              ("server.delete", "accepted"), ("server.delete", "succeeded")])


def test_a_server_that_cannot_start_ends_in_error_with_a_reason(platform):
    spec = {"name": "broken", "kind": "package", "package": {"command": "mcp-server-nonexistent"}}
    assert create(platform.api, spec).status_code == 202
    server = wait_status(platform.api, "broken", {"Running", "Error"}, timeout=60)
    assert server["status"] == "Error" and server["status_reason"]
