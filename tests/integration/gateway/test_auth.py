"""Gateway authentication (issue 4, item 3): 401 + RFC 9728 challenge, protected resource
metadata, tokens and API keys accepted, credentials never forwarded nor logged, sessions
bound to their principal."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from pathlib import Path

import httpx
import pytest
from mcp import Client
from mcp.client.sse import sse_client
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from shared.auth.api_keys import create_key, revoke_key
from shared.auth.principal import Role
from shared.auth.tokens import LocalIssuer
from shared.models import AccessPolicy, PackageSource, ServerSpec
from shared.settings import Settings

from gateway.access.auth import metadata_document
from tests.e2e.helpers import mcp_client
from tests.integration.gateway.authn import bearer, start_local
from tests.integration.gateway.helpers import (INIT, INITIALIZED, JSON_ONLY, REPO_ROOT, ThreadedServer,
                                               echo_spec, remote_spec)

def _challenge(gateway_url: str, name: str) -> str:
    return f'resource_metadata="{gateway_url}/.well-known/oauth-protected-resource/servers/{name}/mcp"'


async def test_requests_without_credentials_get_401_with_the_metadata_challenge(make_gateway) -> None:
    auth = start_local(make_gateway)
    gw = auth.gateway
    gw.put(echo_spec())
    async with httpx.AsyncClient(timeout=10) as http:
        for method, path in [("POST", "/servers/echo/mcp"), ("GET", "/servers/echo/mcp"),
                             ("DELETE", "/servers/echo/mcp"), ("GET", "/servers/echo/sse"),
                             ("POST", "/servers/echo/messages?session_id=x"),
                             ("POST", "/servers/unknown/mcp")]:
            reply = await http.request(method, gw.url + path, json=INIT,
                                       headers={"accept": "application/json, text/event-stream"})
            assert reply.status_code == 401, (method, path, reply.text)
            challenge = reply.headers["www-authenticate"]
            name = path.split("/")[2]
            assert challenge.startswith("Bearer ") and _challenge(gw.url, name) in challenge
            assert "error=" not in challenge  # no credential was presented


@pytest.mark.parametrize("credential", ["garbage", "eyJhbGciOiJub25lIn0.e30.", "mcpk_0123456789abcdef_" + "x" * 30])
async def test_bad_credentials_get_401_invalid_token(make_gateway, credential: str) -> None:
    auth = start_local(make_gateway)
    auth.gateway.put(echo_spec())
    async with httpx.AsyncClient(timeout=10) as http:
        reply = await http.post(auth.gateway.mcp_url("echo"), json=INIT, headers={**JSON_ONLY, **bearer(credential)})
    assert reply.status_code == 401
    assert 'error="invalid_token"' in reply.headers["www-authenticate"]


async def test_expired_or_foreign_tokens_get_401(make_gateway, tmp_path: Path) -> None:
    auth = start_local(make_gateway)
    auth.gateway.put(echo_spec())
    expired = auth.issuer.mint("ann", [Role.ADMIN], lifetime_s=-120)
    foreign = LocalIssuer(tmp_path / "other-key.pem").mint("ann", [Role.ADMIN])
    async with httpx.AsyncClient(timeout=10) as http:
        for token in (expired, foreign):
            reply = await http.post(auth.gateway.mcp_url("echo"), json=INIT, headers={**JSON_ONLY, **bearer(token)})
            assert reply.status_code == 401


async def test_protected_resource_metadata(make_gateway) -> None:
    auth = start_local(make_gateway, auth_scopes_supported="mcp.tools")
    gw = auth.gateway
    gw.put(echo_spec())
    async with httpx.AsyncClient(timeout=10) as http:
        reply = await http.get(f"{gw.url}/.well-known/oauth-protected-resource/servers/echo/mcp")
        unknown = await http.get(f"{gw.url}/.well-known/oauth-protected-resource/servers/nope/mcp")
    assert reply.status_code == 200
    assert reply.json() == {"resource": f"{gw.url}/servers/echo/mcp",
                            "authorization_servers": [gw.settings.api_url],
                            "bearer_methods_supported": ["header"],
                            "resource_name": "MCPaaS server echo",
                            "scopes_supported": ["mcp.tools"]}
    assert unknown.status_code == 404


def test_entra_metadata_names_the_tenant_issuer() -> None:
    issuer = "https://login.microsoftonline.com/0000-tenant/v2.0"
    settings = Settings(auth_mode="entra", entra_issuers=issuer, entra_audiences="api://mcpaas",
                        entra_jwks_url="https://login.microsoftonline.com/0000-tenant/discovery/v2.0/keys",
                        MCPAAS_GATEWAY_URL="https://gw.example.com/")
    document = metadata_document(settings, None, "echo")  # type: ignore[arg-type]
    assert document["resource"] == "https://gw.example.com/servers/echo/mcp"
    assert document["authorization_servers"] == [issuer]


async def test_tokens_and_api_keys_reach_the_server(make_gateway) -> None:
    auth = start_local(make_gateway, auth_api_key_cache_seconds=0.3)
    gw = auth.gateway
    gw.put(echo_spec())
    key, record = create_key(gw.store, name="ci", roles=[Role.READER], created_by="test")
    for headers in (auth.headers("ann"), {"X-API-Key": key}, bearer(key)):
        async with mcp_client(gw.mcp_url("echo"), headers) as client:
            result = await client.call_tool("echo", {"message": "hi"})
            assert result.content[0].text == "hi"
    revoke_key(gw.store, record.id)
    await asyncio.sleep(0.4)  # a revoked key stops working within auth_api_key_cache_seconds
    async with httpx.AsyncClient(timeout=10) as http:
        reply = await http.post(gw.mcp_url("echo"), json=INIT, headers={**JSON_ONLY, "X-API-Key": key})
    assert reply.status_code == 401


async def test_session_is_bound_to_its_principal(make_gateway) -> None:
    auth = start_local(make_gateway)
    gw = auth.gateway
    gw.put(echo_spec())
    ann, bob = auth.headers("ann"), auth.headers("bob")
    async with httpx.AsyncClient(timeout=10) as http:
        opened = await http.post(gw.mcp_url("echo"), json=INIT, headers={**JSON_ONLY, **ann})
        session = {"mcp-session-id": opened.headers["mcp-session-id"], "mcp-protocol-version": "2025-11-25"}
        assert (await http.post(gw.mcp_url("echo"), json=INITIALIZED,
                                headers={**JSON_ONLY, **session, **ann})).status_code == 202
        listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
        stolen = await http.post(gw.mcp_url("echo"), json=listing, headers={**JSON_ONLY, **session, **bob})
        ended = await http.delete(gw.mcp_url("echo"), headers={**session, **bob})
        own = await http.post(gw.mcp_url("echo"), json=listing, headers={**JSON_ONLY, **session, **ann})
    assert stolen.status_code == 404 and ended.status_code == 404
    assert own.status_code == 200 and own.json()["result"]["tools"]


async def test_credentials_never_reach_a_stdio_child(make_gateway) -> None:
    auth = start_local(make_gateway)
    gw = auth.gateway
    # The child dumps its environment before becoming the echo server.
    gw.put(ServerSpec(name="envdump", kind="package", package=PackageSource(
        command="sh", args=["-c", f'env > env.txt; exec "{sys.executable}" -m catalog.echo.server'],
        env={"PYTHONPATH": str(REPO_ROOT)})))
    token = auth.token("ann")
    key, _ = create_key(gw.store, name="ci", roles=[Role.READER], created_by="test")
    for headers in (bearer(token), {"X-API-Key": key}):
        async with mcp_client(gw.mcp_url("envdump"), headers) as client:
            await client.call_tool("echo", {"message": "hi"})
        dumped = (gw.settings.servers_dir / "envdump" / "env.txt").read_text()
        assert "PYTHONPATH=" in dumped  # the dump is real
        assert token not in dumped and key not in dumped and key[len("mcpk_0123456789abcdef_"):] not in dumped


async def test_credentials_never_reach_a_remote_upstream(make_gateway) -> None:
    seen: list[dict[str, str]] = []

    async def upstream(request: Request) -> JSONResponse:
        seen.append(dict(request.headers))
        body = await request.json()
        return JSONResponse({"jsonrpc": "2.0", "id": body.get("id"),
                             "result": {"protocolVersion": "2025-11-25", "capabilities": {},
                                        "serverInfo": {"name": "up", "version": "1"}}},
                            headers={"mcp-session-id": "up-1"})

    auth = start_local(make_gateway)
    gw = auth.gateway
    token = auth.token("ann")
    key, _ = create_key(gw.store, name="ci", roles=[Role.READER], created_by="test")
    with ThreadedServer(Starlette(routes=[Route("/mcp", upstream, methods=["POST"])])) as remote:
        gw.put(remote_spec("up", f"{remote.url}/mcp"))
        async with httpx.AsyncClient(timeout=10) as http:
            for headers in (bearer(token), {"X-API-Key": key}, bearer(key)):
                reply = await http.post(gw.mcp_url("up"), json=INIT,
                                        headers={**JSON_ONLY, **headers, "cookie": "sid=secret"})
                assert reply.status_code == 200
    assert len(seen) == 3
    for headers in seen:
        assert not {"authorization", "x-api-key", "cookie"} & set(headers)
        assert not any(token in value or key in value for value in headers.values())


async def test_no_credential_in_any_log_line(make_gateway, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    auth = start_local(make_gateway, gateway_rate_limit_identity="2/minute")
    gw = auth.gateway
    gw.put(echo_spec())
    token = auth.token("ann")
    expired = auth.issuer.mint("ann", [Role.READER], lifetime_s=-120)
    key, _ = create_key(gw.store, name="ci", roles=[Role.READER], created_by="test")
    async with httpx.AsyncClient(timeout=10) as http:
        for headers in (bearer(token), bearer(expired), {"X-API-Key": key}, bearer(key + "x"),
                        bearer(token), bearer(token)):  # the last ones hit the rate limit
            await http.post(gw.mcp_url("echo"), json=INIT, headers={**JSON_ONLY, **headers})
    time.sleep(0.2)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "rate limit hit" in logged and "unauthenticated request" in logged  # logs were captured
    for secret in (token, expired, key, key[len("mcpk_0123456789abcdef_"):], token.split(".")[2]):
        assert secret not in logged and secret not in caplog.text


async def test_legacy_sse_with_a_token_is_bound_and_filtered(make_gateway) -> None:
    auth = start_local(make_gateway)
    gw = auth.gateway
    gw.put(echo_spec().model_copy(update={"access": AccessPolicy(tools={"add": [Role.ADMIN]})}))
    url = f"{gw.url}/servers/echo/sse"
    async with Client(sse_client(url, headers=auth.headers("ann"))) as client:
        assert {tool.name for tool in (await client.list_tools()).tools} == {"echo"}
        assert (await client.call_tool("echo", {"message": "legacy"})).content[0].text == "legacy"
        session_id = gw.app.state.gateway.sessions.of_server("echo")[0].id
        async with httpx.AsyncClient(timeout=10) as http:
            stolen = await http.post(f"{gw.url}/servers/echo/messages?session_id={session_id}",
                                     json={"jsonrpc": "2.0", "id": 9, "method": "tools/list"},
                                     headers=auth.headers("bob"))
        assert stolen.status_code == 404


async def test_admin_stop_route_needs_an_admin(make_gateway) -> None:
    from shared.auth.service import service_headers

    auth = start_local(make_gateway)
    gw = auth.gateway
    gw.put(echo_spec())
    url = f"{gw.url}/admin/servers/echo/sessions"
    async with httpx.AsyncClient(timeout=10) as http:
        opened = await http.post(gw.mcp_url("echo"), json=INIT,
                                 headers={**JSON_ONLY, **auth.headers("op", Role.OPERATOR)})
        assert opened.status_code == 200
        anonymous = await http.delete(url)
        assert anonymous.status_code == 401 and "resource_metadata" in anonymous.headers["www-authenticate"]
        assert (await http.delete(url, headers=auth.headers("op", Role.OPERATOR))).status_code == 403
        status = await http.get(f"{gw.url}/servers/echo/status", headers=auth.headers("op", Role.OPERATOR))
        assert status.json()["sessions"] == 1  # nothing ended
        # the control plane's own service token (an Admin service principal) may
        stopped = await http.delete(url, headers=service_headers(gw.settings))
        assert stopped.status_code == 200 and stopped.json() == {"stopped": 1}
