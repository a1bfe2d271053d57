"""HTTP-level contract of `/servers/{name}/mcp`: status codes and error bodies."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio

from shared.models import ContainerSource, ServerSpec

from tests.integration.gateway.helpers import (INIT, JSON_ONLY, GatewayUnderTest, echo_spec,
                                               open_session, session_headers, status, tools_list)

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


async def test_unknown_server_is_404_problem(gateway: GatewayUnderTest,
                                             http: httpx.AsyncClient) -> None:
    reply = await http.post(gateway.mcp_url("nope"), json=INIT, headers=JSON_ONLY)
    assert reply.status_code == 404
    assert reply.headers["content-type"] == "application/problem+json"
    body = reply.json()
    assert body["status"] == 404 and "nope" in body["detail"]
    assert body["instance"] == "/servers/nope/mcp"


@pytest.mark.parametrize("enabled,state", [(False, "Running"), (True, "Stopped")])
async def test_disabled_or_stopped_server_is_404(gateway: GatewayUnderTest, http: httpx.AsyncClient,
                                                 enabled: bool, state: str) -> None:
    gateway.put(echo_spec().model_copy(update={"enabled": enabled}), status=state)
    reply = await http.post(gateway.mcp_url("echo"), json=INIT, headers=JSON_ONLY)
    assert reply.status_code == 404
    assert reply.headers["content-type"] == "application/problem+json"


async def test_container_server_is_422(gateway: GatewayUnderTest, http: httpx.AsyncClient) -> None:
    gateway.put(ServerSpec(name="box", kind="container", container=ContainerSource(image="x:1")))
    reply = await http.post(gateway.mcp_url("box"), json=INIT, headers=JSON_ONLY)
    assert reply.status_code == 422
    assert reply.headers["content-type"] == "application/problem+json"
    assert "no Kubernetes target configured" in reply.json()["detail"]


async def test_request_without_session_is_400(gateway: GatewayUnderTest,
                                              http: httpx.AsyncClient) -> None:
    gateway.put(echo_spec())
    reply = await http.post(gateway.mcp_url("echo"), json=tools_list(), headers=JSON_ONLY)
    assert reply.status_code == 400
    assert reply.json()["error"]["code"] == -32600
    assert reply.json()["id"] == 2


async def test_unknown_session_is_404(gateway: GatewayUnderTest, http: httpx.AsyncClient) -> None:
    gateway.put(echo_spec())
    reply = await http.post(gateway.mcp_url("echo"), json=tools_list(),
                            headers=session_headers("no-such-session"))
    assert reply.status_code == 404
    assert reply.json()["error"]["code"] == -32001


async def test_session_of_another_server_is_404(gateway: GatewayUnderTest,
                                                http: httpx.AsyncClient) -> None:
    gateway.put(echo_spec("one"))
    gateway.put(echo_spec("two"))
    session_id = await open_session(http, gateway.mcp_url("one"))
    reply = await http.post(gateway.mcp_url("two"), json=tools_list(),
                            headers=session_headers(session_id))
    assert reply.status_code == 404


@pytest.mark.parametrize("version", ["2026-07-28", "1999-01-01", "garbage"])
async def test_unsupported_protocol_version_is_400(gateway: GatewayUnderTest,
                                                   http: httpx.AsyncClient, version: str) -> None:
    gateway.put(echo_spec())
    reply = await http.post(gateway.mcp_url("echo"), json=INIT,
                            headers={**JSON_ONLY, "mcp-protocol-version": version})
    assert reply.status_code == 400
    assert version in reply.json()["error"]["message"]
    assert (await status(http, gateway.url, "echo"))["sessions"] == 0


@pytest.mark.parametrize("version", ["2025-03-26", "2025-06-18", "2025-11-25"])
async def test_supported_protocol_versions_are_accepted(gateway: GatewayUnderTest,
                                                        http: httpx.AsyncClient,
                                                        version: str) -> None:
    gateway.put(echo_spec())
    reply = await http.post(gateway.mcp_url("echo"), json=INIT,
                            headers={**JSON_ONLY, "mcp-protocol-version": version})
    assert reply.status_code == 200


async def test_malformed_json_is_parse_error(gateway: GatewayUnderTest,
                                             http: httpx.AsyncClient) -> None:
    gateway.put(echo_spec())
    reply = await http.post(gateway.mcp_url("echo"), content=b"{not json",
                            headers={**JSON_ONLY, "content-type": "application/json"})
    assert reply.status_code == 400
    body = reply.json()
    assert body["error"]["code"] == -32700
    assert body["id"] is None


@pytest.mark.parametrize("payload", [b'"hello"', b'{"id": 1}', b'{"jsonrpc": "1.0", "id": 1}',
                                     b'[{"jsonrpc": "2.0", "id": 1, "method": "ping"}]'])
async def test_non_jsonrpc_body_is_invalid_request(gateway: GatewayUnderTest,
                                                   http: httpx.AsyncClient, payload: bytes) -> None:
    gateway.put(echo_spec())
    reply = await http.post(gateway.mcp_url("echo"), content=payload,
                            headers={**JSON_ONLY, "content-type": "application/json"})
    assert reply.status_code == 400
    assert reply.json()["error"]["code"] == -32600


async def test_body_over_default_limit_is_413(gateway: GatewayUnderTest,
                                             http: httpx.AsyncClient) -> None:
    gateway.put(echo_spec())
    url = gateway.mcp_url("echo")
    big = b'{"jsonrpc":"2.0","id":1,"method":"x","params":{"p":"' + b"a" * (4 * 1024 * 1024) + b'"}}'
    reply = await http.post(url, content=big,
                            headers={**JSON_ONLY, "content-type": "application/json"})
    assert reply.status_code == 413
    assert reply.json()["error"]["code"] == -32600
    # Just under the limit is parsed (and then needs a session): the limit is 4 MiB.
    small = b'{"jsonrpc":"2.0","id":1,"method":"x","params":{"p":"' + b"a" * (3 * 1024 * 1024) + b'"}}'
    reply = await http.post(url, content=small,
                            headers={**JSON_ONLY, "content-type": "application/json"})
    assert reply.status_code == 400 and "Mcp-Session-Id" in reply.json()["error"]["message"]
    assert (await http.get(f"{gateway.url}/healthz")).status_code == 200


async def test_get_needs_event_stream_accept(gateway: GatewayUnderTest,
                                             http: httpx.AsyncClient) -> None:
    gateway.put(echo_spec())
    session_id = await open_session(http, gateway.mcp_url("echo"))
    reply = await http.get(gateway.mcp_url("echo"), headers=session_headers(session_id))
    assert reply.status_code == 406


async def test_delete_without_session_is_400(gateway: GatewayUnderTest,
                                             http: httpx.AsyncClient) -> None:
    gateway.put(echo_spec())
    assert (await http.delete(gateway.mcp_url("echo"))).status_code == 400


async def test_health_ready_and_status(gateway: GatewayUnderTest, http: httpx.AsyncClient) -> None:
    assert (await http.get(f"{gateway.url}/healthz")).json() == {"status": "ok"}
    assert (await http.get(f"{gateway.url}/readyz")).status_code == 200
    gateway.put(echo_spec())
    idle = await status(http, gateway.url, "echo")
    assert idle == {"name": "echo", "status": "idle", "sessions": 0, "pids": [],
                    "mounted_at": None, "restarts": 0, "last_error": None}
    await open_session(http, gateway.mcp_url("echo"))
    mounted = await status(http, gateway.url, "echo")
    assert mounted["status"] == "mounted" and mounted["mounted_at"]
    assert (await status(http, gateway.url, "ghost"))["status"] == "unknown"
