"""The remote address policy at connect time (issue 10 item 5, `gateway.upstreams.proxy`): a real
gateway and a real upstream on loopback; name resolution is steered through
`socket.getaddrinfo` so a test name can point at loopback (or change its answer after
validation, as DNS rebinding would). Only loopback ever receives traffic."""

from __future__ import annotations

import socket
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from shared import clearance
from shared.settings import Settings
from tests.integration.gateway.helpers import INIT, JSON_ONLY, ThreadedServer, remote_spec

REAL_GETADDRINFO = socket.getaddrinfo


class Upstream:
    """A Streamable HTTP endpoint that answers `initialize` and records each request's Host."""

    def __init__(self) -> None:
        self.hosts: list[str] = []
        self.app = Starlette(routes=[Route("/mcp", self.mcp, methods=["POST"])])

    async def mcp(self, request: Request) -> JSONResponse:
        self.hosts.append(request.headers["host"])
        body = await request.json()
        return JSONResponse({"jsonrpc": "2.0", "id": body["id"], "result": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "serverInfo": {"name": "up", "version": "1"}}})


@pytest.fixture
def upstream():
    recorder = Upstream()
    with ThreadedServer(recorder.app) as server:
        yield recorder, server.port


@pytest.fixture
def dns(monkeypatch) -> dict[str, str]:
    """Test names (`*.test`) -> the address getaddrinfo answers for them; others resolve as usual."""
    answers: dict[str, str] = {}

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any):
        if isinstance(host, str) and host in answers:
            return REAL_GETADDRINFO(answers[host], port, *args, **kwargs)
        return REAL_GETADDRINFO(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return answers


def initialize(url: str) -> httpx.Response:
    return httpx.post(url, json=INIT, headers=JSON_ONLY, timeout=10)


def assert_refused(response: httpx.Response, fragment: str) -> None:
    assert response.status_code == 502, response.text
    error = response.json()["error"]
    assert error["code"] == -32603 and "refused by the remote network policy" in error["message"], error
    assert fragment in error["message"], error


def test_loopback_upstream_is_refused_when_the_opt_in_is_gone(make_gateway, upstream):
    """Validated while the deployment opted loopback in; the gateway no longer does."""
    recorder, port = upstream
    spec = remote_spec("far", f"http://127.0.0.1:{port}/mcp")
    assert clearance.problems(spec, Settings(remote_allowed_networks="127.0.0.0/8")) == []
    gw = make_gateway(remote_allowed_networks=[])
    gw.put(spec)
    assert_refused(initialize(gw.mcp_url("far")), "127.0.0.1 is a loopback address")
    assert recorder.hosts == []  # refused before connecting


def test_a_name_rebound_to_loopback_after_validation_is_refused(make_gateway, upstream, dns):
    recorder, port = upstream
    spec = remote_spec("rebound", f"http://mcp.rebind.test:{port}/mcp")
    dns["mcp.rebind.test"] = "8.8.8.8"  # validation only resolves; nothing connects to it
    assert clearance.problems(spec, Settings(clearance_remote_hosts="*.rebind.test")) == []
    dns["mcp.rebind.test"] = "127.0.0.1"
    gw = make_gateway(remote_allowed_networks=[])
    gw.put(spec)
    assert_refused(initialize(gw.mcp_url("rebound")), "host 'mcp.rebind.test': 127.0.0.1 is a loopback address")
    assert recorder.hosts == []


def test_the_platforms_own_port_is_refused_even_inside_an_opted_in_range(make_gateway, upstream):
    recorder, port = upstream
    gw = make_gateway(api_port=port)  # the upstream's port plays the control plane's
    gw.put(remote_spec("self", f"http://127.0.0.1:{port}/mcp"))
    assert_refused(initialize(gw.mcp_url("self")), f"127.0.0.1 port {port} is the control plane of this platform")
    assert recorder.hosts == []


def test_an_opted_in_name_connects_to_the_checked_address_and_keeps_its_host(make_gateway, upstream, dns):
    """The connection goes to the address the policy checked: the name exists only in the
    test resolver, so reaching the upstream proves the pinned address was used."""
    recorder, port = upstream
    dns["mcp.pinned.test"] = "127.0.0.1"
    gw = make_gateway()  # the fixture's loopback opt-in
    gw.put(remote_spec("pinned", f"http://mcp.pinned.test:{port}/mcp"))
    response = initialize(gw.mcp_url("pinned"))
    assert response.status_code == 200, response.text
    assert response.json()["result"]["serverInfo"]["name"] == "up"
    assert recorder.hosts == [f"mcp.pinned.test:{port}"]
