"""The gateway serves a deployed `container` server by proxying to its in-cluster Service.

An MCP server on loopback stands in for the Service: the server document's
`upstream_url` points at it, as `finish_operation` sets it after a good rollout.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from mcp import Client
from mcp.server.mcpserver import MCPServer

from shared.models import ContainerSource, Server, ServerSpec
from tests.integration.gateway.conftest import make_gateway, store  # noqa: F401  (fixtures)
from tests.integration.gateway.helpers import INIT, JSON_ONLY, ThreadedServer


@pytest.fixture
def service() -> Iterator[str]:
    """A Streamable HTTP MCP server standing in for the pods behind the Service; its URL."""
    server = MCPServer(name="weather")

    @server.tool()
    def forecast(city: str) -> str:
        """Tomorrow's weather in `city`."""
        return f"sunny in {city}"

    with ThreadedServer(server.streamable_http_app()) as running:
        yield f"{running.url}/mcp"


def put_container(store, upstream_url: str | None) -> None:  # noqa: F811 - `store` is the fixture's value
    spec = ServerSpec(name="weather", kind="container", container=ContainerSource(image="acme/weather:1", port=8080))
    doc = Server(name="weather", spec=spec, status="Running", upstream_url=upstream_url).model_dump(mode="json")
    store.upsert("servers", doc | {"id": "weather"})


async def test_container_server_is_proxied_to_its_service(make_gateway, store, service):  # noqa: F811
    put_container(store, service)
    gateway = make_gateway()
    async with Client(gateway.mcp_url("weather")) as client:
        assert [tool.name for tool in (await client.list_tools()).tools] == ["forecast"]
        result = await client.call_tool("forecast", {"city": "Oslo"})
        assert result.structured_content == {"result": "sunny in Oslo"}


async def test_container_server_without_upstream_is_still_422(make_gateway, store):  # noqa: F811
    put_container(store, None)
    gateway = make_gateway()
    async with httpx.AsyncClient() as http:
        reply = await http.post(gateway.mcp_url("weather"), json=INIT, headers=JSON_ONLY)
    assert reply.status_code == 422
    assert "no Kubernetes target configured" in reply.json()["detail"]


async def test_unreachable_service_is_a_502(make_gateway, store):  # noqa: F811
    put_container(store, "http://127.0.0.1:9/mcp")  # discard port: nothing listens
    gateway = make_gateway()
    async with httpx.AsyncClient() as http:
        reply = await http.post(gateway.mcp_url("weather"), json=INIT, headers=JSON_ONLY)
    assert reply.status_code == 502
    assert "upstream server unreachable" in reply.json()["error"]["message"]
