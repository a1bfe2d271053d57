"""Per-server access and per-tool policy at the gateway (issue 4, item 3), and the
invocation audit (FR-022)."""

from __future__ import annotations

import asyncio
import sys

import httpx
import pytest
from mcp import MCPError

from shared.auth.api_keys import create_key
from shared.auth.principal import Role
from shared.models import AccessPolicy, PackageSource, ServerSpec

from tests.e2e.helpers import mcp_client
from tests.integration.gateway.authn import allowed_and_denied_calls, start_local
from tests.integration.gateway.helpers import INIT, JSON_ONLY, REPO_ROOT, echo_spec


def _recording_echo(name: str, access: AccessPolicy) -> ServerSpec:
    """The echo server behind `tee`: every message it receives lands in `stdin.log`."""
    return ServerSpec(name=name, kind="package", access=access, package=PackageSource(
        command="sh", args=["-c", f'tee -a stdin.log | "{sys.executable}" -m catalog.echo.server'],
        env={"PYTHONPATH": str(REPO_ROOT)}))


async def test_caller_without_the_tools_role_neither_sees_nor_calls_it(make_gateway) -> None:
    auth = start_local(make_gateway)
    gw = auth.gateway
    gw.put(_recording_echo("guarded", AccessPolicy(tools={"echo": [Role.OPERATOR, Role.ADMIN]})))
    async with mcp_client(gw.mcp_url("guarded"), auth.headers("reader", Role.READER)) as client:
        assert {tool.name for tool in (await client.list_tools()).tools} == {"add"}
        with pytest.raises(MCPError, match="not allowed"):
            await client.call_tool("echo", {"message": "secret"})
        assert (await client.call_tool("add", {"a": 1, "b": 2})).structured_content == {"result": 3.0}
    received = (gw.settings.servers_dir / "guarded" / "stdin.log").read_text()
    assert '"tools/list"' in received and '"add"' in received
    assert "secret" not in received  # the denied call never reached the child
    async with mcp_client(gw.mcp_url("guarded"), auth.headers("op", Role.OPERATOR)) as client:
        assert {tool.name for tool in (await client.list_tools()).tools} == {"echo", "add"}
        assert (await client.call_tool("echo", {"message": "ok"})).content[0].text == "ok"


async def test_wildcard_tool_entry_denies_unlisted_tools(make_gateway) -> None:
    auth = start_local(make_gateway)
    gw = auth.gateway
    gw.put(echo_spec("wild").model_copy(update={"access": AccessPolicy(
        tools={"*": [Role.ADMIN], "echo": [Role.READER]})}))
    async with mcp_client(gw.mcp_url("wild"), auth.headers("reader", Role.READER)) as client:
        assert {tool.name for tool in (await client.list_tools()).tools} == {"echo"}
        with pytest.raises(MCPError):
            await client.call_tool("add", {"a": 1, "b": 2})


async def test_server_access_by_role_user_or_group(make_gateway) -> None:
    auth = start_local(make_gateway)
    gw = auth.gateway
    gw.put(echo_spec("ops").model_copy(update={"access": AccessPolicy(
        roles=[Role.OPERATOR], users=["carol"], groups=["sre"])}))
    allowed = [auth.headers("op", Role.OPERATOR), auth.headers("carol"),
               auth.headers("dan", groups=("sre",))]
    async with httpx.AsyncClient(timeout=10) as http:
        denied = await http.post(gw.mcp_url("ops"), json=INIT, headers={**JSON_ONLY, **auth.headers("eve")})
        assert denied.status_code == 403 and "error" in denied.json()
        for headers in allowed:
            reply = await http.post(gw.mcp_url("ops"), json=INIT, headers={**JSON_ONLY, **headers})
            assert reply.status_code == 200, reply.text


async def test_api_key_scoped_to_other_servers_is_refused(make_gateway) -> None:
    auth = start_local(make_gateway)
    gw = auth.gateway
    gw.put(echo_spec())
    key, _ = create_key(gw.store, name="ci", roles=[Role.ADMIN], created_by="t", servers=["other"])
    async with httpx.AsyncClient(timeout=10) as http:
        reply = await http.post(gw.mcp_url("echo"), json=INIT, headers={**JSON_ONLY, "X-API-Key": key})
    assert reply.status_code == 403


async def test_invocations_are_recorded(make_gateway) -> None:
    auth = start_local(make_gateway)
    gw = auth.gateway
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    await allowed_and_denied_calls(auth, trace_id)
    for _ in range(50):
        calls = [doc for doc in gw.store.query("invocations", partition_key="echo")
                 if doc["method"] == "tools/call"]
        if len(calls) == 2:
            break
        await asyncio.sleep(0.05)
    by_tool = {doc["tool"]: doc for doc in calls}
    assert by_tool["echo"]["actor"] == "ann" and by_tool["echo"]["result"] == "200"
    assert by_tool["add"]["result"] == "denied"
    assert all(doc["latency_ms"] >= 0 and doc["server"] == "echo" for doc in calls)
    assert {doc["trace_id"] for doc in calls} == {trace_id}  # joins the call to its trace
    assert {"initialize", "tools/call"} <= {doc["method"] for doc in gw.store.query("invocations")}
