"""Server logs without a shared disk (issue 11 item 5): the gateway's admin route
`GET /admin/servers/{name}/logs` serves what its children wrote, to Admins only, and
the control plane's `GET /api/servers/{name}/logs` gets package-server logs from it
while its own data dir is a different one (as on Azure, where they share no disk)."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import azure.functions as func
import httpx
import pytest

from shared.auth.principal import Role
from shared.auth.service import service_headers
from shared.settings import Settings, get_settings
from shared.store import get_store

import triggers.http_api as http_api
from gateway.children.logs import log_path
from tests.e2e.helpers import mcp_client
from tests.integration.gateway.authn import AuthGateway, start_local
from tests.integration.gateway.helpers import GatewayUnderTest, put_server, script_spec

PROBE = Path(__file__).with_name("sandbox_probe.py")  # its `shout` tool prints to stderr


@pytest.fixture
def gw(make_gateway: Callable[..., GatewayUnderTest]) -> AuthGateway:
    auth = start_local(make_gateway)
    auth.gateway.put(script_spec("shouter", PROBE))
    return auth


async def shout(gw: AuthGateway, text: str) -> None:
    """Have the server print `text` to stderr, and wait until the gateway logged it."""
    async with mcp_client(gw.gateway.mcp_url("shouter"), gw.headers("op", Role.OPERATOR)) as client:
        assert not (await client.call_tool("shout", {"text": text})).is_error
    path = log_path(gw.gateway.app.state.gateway.servers_dir, "shouter")
    deadline = time.monotonic() + 10
    while not (path.exists() and text in path.read_text()):
        assert time.monotonic() < deadline, "the child's stderr never reached its log"
        time.sleep(0.05)


async def test_the_admin_logs_route_serves_admins_only(gw: AuthGateway) -> None:
    await shout(gw, "first")
    await shout(gw, "second")
    url = f"{gw.gateway.url}/admin/servers/shouter/logs"
    async with httpx.AsyncClient(timeout=10) as http:
        anonymous = await http.get(url)
        assert anonymous.status_code == 401 and "resource_metadata" in anonymous.headers["www-authenticate"]
        assert "shouting" not in anonymous.text
        for role in (Role.READER, Role.OPERATOR, Role.DEVELOPER):
            refused = await http.get(url, headers=gw.headers("someone", role))
            assert refused.status_code == 403, role
            assert refused.headers["content-type"] == "application/problem+json"
            assert "shouting" not in refused.text
        # the control plane's service credential (an Admin service principal) may
        service = service_headers(gw.gateway.settings)
        served = await http.get(url, headers=service)
        assert served.status_code == 200
        body = served.json()
        assert body["name"] == "shouter"
        assert [line.split("] ", 1)[1] for line in body["lines"] if "shouting" in line] == \
            ["shouting: first", "shouting: second"]
        last = await http.get(url, params={"tail": "1"}, headers=gw.headers("root", Role.ADMIN))
        assert last.json()["lines"] == body["lines"][-1:]
        future = await http.get(url, params={"since": "2999-01-01T00:00:00Z"}, headers=service)
        assert future.json() == {"name": "shouter", "lines": []}
        for bad in ({"tail": "many"}, {"since": "yesterday"}):
            reply = await http.get(url, params=bad, headers=service)
            assert reply.status_code == 400 and reply.json()["errors"][0]["field"] in bad
        unknown = await http.get(f"{gw.gateway.url}/admin/servers/nosuch/logs", headers=service)
        assert unknown.json() == {"name": "nosuch", "lines": []}


@pytest.fixture
def control_plane(gw: AuthGateway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """Control-plane settings on a data dir of its own, reaching the gateway over HTTP.

    Only the local issuer's signing key is copied over (on Azure both sides trust Entra
    ID instead); the server document is written to the control plane's own store."""
    data_dir = tmp_path / "controlplane"
    (data_dir / "auth").mkdir(parents=True)
    shutil.copy2(gw.gateway.settings.auth_key_path, data_dir / "auth" / "signing-key.pem")
    monkeypatch.setenv("MCPAAS_DATA_DIR", str(data_dir))
    monkeypatch.setenv("MCPAAS_AUTH_MODE", "local")
    monkeypatch.setenv("MCPAAS_GATEWAY_URL", gw.gateway.url)
    get_settings.cache_clear()
    get_store.cache_clear()
    put_server(get_store(), script_spec("shouter", PROBE))
    yield get_settings()
    get_settings.cache_clear()
    get_store.cache_clear()


async def api_logs(gw: AuthGateway, name: str, params: dict[str, str]) -> func.HttpResponse:
    request = func.HttpRequest("GET", f"/api/servers/{name}/logs", params=params, route_params={"name": name},
                               headers=gw.headers("rita", Role.READER), body=b"")
    return await http_api.server_logs._function.get_user_function()(request)


async def test_the_control_plane_reads_package_logs_from_the_gateway_without_a_shared_disk(
        gw: AuthGateway, control_plane: Settings) -> None:
    assert not control_plane.data_dir.resolve().is_relative_to(gw.gateway.settings.data_dir.resolve())
    await shout(gw, "over http")
    reply = await api_logs(gw, "shouter", {"tail": "5"})
    assert reply.status_code == 200, reply.get_body()
    body = json.loads(reply.get_body())
    assert body["name"] == "shouter" and 0 < len(body["lines"]) <= 5
    assert any(line.endswith("shouting: over http") for line in body["lines"])
    assert json.loads((await api_logs(gw, "shouter", {"since": "2999-01-01T00:00:00"})).get_body())["lines"] == []
    # nothing was read from, or written to, the control plane's own disk
    assert not (control_plane.servers_dir).exists()
    bad = await api_logs(gw, "shouter", {"tail": "many"})
    assert bad.status_code == 400 and json.loads(bad.get_body())["errors"][0]["field"] == "tail"
    assert (await api_logs(gw, "ghost", {})).status_code == 404


async def test_an_unreachable_gateway_is_a_502(gw: AuthGateway, control_plane: Settings,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCPAAS_GATEWAY_URL", "http://127.0.0.1:9")  # discard port: nothing listens
    get_settings.cache_clear()
    reply = await api_logs(gw, "shouter", {})
    assert reply.status_code == 502
    problem = json.loads(reply.get_body())
    assert problem["title"] == "Bad Gateway" and "/admin/servers/shouter/logs" in problem["detail"]
