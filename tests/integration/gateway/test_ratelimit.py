"""Gateway rate limits (FR-025): 429 with `Retry-After` and `X-RateLimit-*`, per tool,
per identity, in memory and in Redis shared by two gateways; hits logged with the identity."""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

import httpx
import pytest

from shared.auth.principal import Role
from shared.auth.service import SERVICE_SUBJECT
from tests.integration.gateway.authn import AuthGateway, start_local
from tests.integration.gateway.helpers import INIT, INITIALIZED, JSON_ONLY, echo_spec


async def _session(http: httpx.AsyncClient, url: str, headers: dict[str, str]) -> dict[str, str]:
    opened = await http.post(url, json=INIT, headers={**JSON_ONLY, **headers})
    assert opened.status_code == 200, opened.text
    session = {**JSON_ONLY, **headers, "mcp-session-id": opened.headers["mcp-session-id"],
               "mcp-protocol-version": "2025-11-25"}
    assert (await http.post(url, json=INITIALIZED, headers=session)).status_code == 202
    return session


def _call(request_id: int, tool: str = "echo") -> dict:
    arguments = {"message": "x"} if tool == "echo" else {"a": 1, "b": 2}
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call",
            "params": {"name": tool, "arguments": arguments}}


async def test_tool_burst_gets_429_with_retry_after(make_gateway, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="mcpaas.ratelimit")
    auth = start_local(make_gateway, gateway_rate_limit_tool="5/minute")
    auth.gateway.put(echo_spec())
    url = auth.gateway.mcp_url("echo")
    async with httpx.AsyncClient(timeout=10) as http:
        session = await _session(http, url, auth.headers("ann"))
        statuses = [(await http.post(url, json=_call(i), headers=session)) for i in range(10, 17)]
        other_tool = await http.post(url, json=_call(30, "add"), headers=session)
    codes = [reply.status_code for reply in statuses]
    assert codes[:5] == [200] * 5 and codes[5] == 429  # the first request over the limit
    refused = statuses[5]
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.headers["x-ratelimit-limit"] == "5" and refused.headers["x-ratelimit-remaining"] == "0"
    assert refused.json()["error"]["message"].startswith("Too Many Requests")
    assert other_tool.status_code == 200  # the limit is per tool
    assert any("identity=ann" in record.getMessage() and "scope=tool" in record.getMessage()
               for record in caplog.records)


async def test_identity_limit_counts_every_request_of_the_caller(make_gateway) -> None:
    auth = start_local(make_gateway, gateway_rate_limit_identity="3/minute")
    auth.gateway.put(echo_spec())
    url = auth.gateway.mcp_url("echo")
    async with httpx.AsyncClient(timeout=10) as http:
        ann = [await http.post(url, json=INIT, headers={**JSON_ONLY, **auth.headers("ann")}) for _ in range(4)]
        bob = await http.post(url, json=INIT, headers={**JSON_ONLY, **auth.headers("bob")})
    assert [reply.status_code for reply in ann] == [200, 200, 200, 429]
    assert bob.status_code == 200
    # admitted responses advertise the limit too, counting down
    assert [reply.headers.get("x-ratelimit-remaining") for reply in ann[:3]] == ["2", "1", "0"]
    assert all(reply.headers["x-ratelimit-limit"] == "3" and int(reply.headers["x-ratelimit-reset"]) >= 0
               for reply in ann[:3])


async def test_the_control_planes_probes_are_not_limited(make_gateway) -> None:
    """A burst of deploys probes as the control plane: its limit would fail its own deploys."""
    auth = start_local(make_gateway, gateway_rate_limit_identity="2/minute")
    auth.gateway.put(echo_spec())
    url = auth.gateway.mcp_url("echo")
    service = {**JSON_ONLY, **auth.headers(SERVICE_SUBJECT, Role.ADMIN)}
    admin = {**JSON_ONLY, **auth.headers("ada", Role.ADMIN)}
    async with httpx.AsyncClient(timeout=10) as http:
        probes = [await http.post(url, json=INIT, headers=service) for _ in range(5)]
        user = [await http.post(url, json=INIT, headers=admin) for _ in range(3)]
    assert [reply.status_code for reply in probes] == [200] * 5
    assert "x-ratelimit-limit" not in probes[0].headers
    assert [reply.status_code for reply in user] == [200, 200, 429]  # an Admin user is limited


async def test_no_ratelimit_headers_where_no_limit_applies(make_gateway) -> None:
    auth = start_local(make_gateway, gateway_rate_limit_identity="", gateway_rate_limit_server="",
                       gateway_rate_limit_tool="5/minute")
    auth.gateway.put(echo_spec())
    async with httpx.AsyncClient(timeout=10) as http:
        opened = await http.post(auth.gateway.mcp_url("echo"), json=INIT, headers={**JSON_ONLY, **auth.headers("ann")})
    assert opened.status_code == 200 and "x-ratelimit-limit" not in opened.headers  # not a tool call


@pytest.fixture
def redis_url() -> Iterator[str]:
    if shutil.which("redis-server") is None:
        raise RuntimeError("redis-server is required (apt-get install redis-server)")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"],
                              stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.terminate()
        server.wait(10)


async def test_replicas_share_limits_through_redis(make_gateway, redis_url: str) -> None:
    first = start_local(make_gateway, redis_url=redis_url, gateway_rate_limit_identity="4/minute")
    second = AuthGateway(make_gateway(auth_mode="local", redis_url=redis_url,
                                      gateway_rate_limit_identity="4/minute"))
    first.gateway.put(echo_spec())
    headers = {**JSON_ONLY, **first.headers("ann")}  # both gateways share the data dir's key
    async with httpx.AsyncClient(timeout=10) as http:
        codes = [(await http.post(gw.gateway.mcp_url("echo"), json=INIT, headers=headers)).status_code
                 for gw in (first, second, first, second, first)]
    assert codes == [200, 200, 200, 200, 429]
