"""Route templates, payload decoding and the durable client binding."""

from __future__ import annotations

import json

import pytest
from azure.durable_functions import DurableOrchestrationClient

from devhost.durable.management import client_binding, payload_json
from devhost.http_functions import compile_route


@pytest.mark.parametrize(("template", "path", "params"), [
    ("servers/{name}", "servers/echo", {"name": "echo"}),
    ("servers/{name}", "servers/echo/", {"name": "echo"}),
    ("servers/{name}/revisions", "SERVERS/echo/revisions", {"name": "echo"}),
    ("items/{id:int}", "items/42", {"id": "42"}),
    ("items/{id?}", "items", {"id": None}),
    ("items/{id?}", "items/7", {"id": "7"}),
    ("files/{*rest}", "files/a/b/c.txt", {"rest": "a/b/c.txt"}),
    ("v{version}/ping", "v2/ping", {"version": "2"}),
])
def test_route_matches(template: str, path: str, params: dict) -> None:
    match = compile_route(template).match(path)
    assert match is not None
    assert match.groupdict() == params


@pytest.mark.parametrize(("template", "path"), [
    ("servers/{name}", "servers"),
    ("servers/{name}", "servers/a/b"),
    ("items/{id:int}", "items/abc"),
    ("items/{name:alpha}", "items/a1"),
])
def test_route_rejects(template: str, path: str) -> None:
    assert compile_route(template).match(path) is None


@pytest.mark.parametrize(("body", "expected"), [
    (b"", None),
    (b"null", None),
    (json.dumps(json.dumps({"a": 1})).encode(), '{"a": 1}'),  # the SDK's double encoding
    (b'{"a": 1}', '{"a": 1}'),
    (b'"plain words"', '"plain words"'),
    (b"[1, 2]", "[1, 2]"),
])
def test_payload_json(body: bytes, expected: str | None) -> None:
    assert payload_json(body) == expected


def test_payload_json_rejects_garbage() -> None:
    with pytest.raises(ValueError):
        payload_json(b"{not json")


def test_sdk_client_accepts_binding_and_builds_urls() -> None:
    binding = client_binding("http://127.0.0.1:7071/", "hub", "k/ey+1")
    client = DurableOrchestrationClient(json.dumps(binding))
    # the SDK appends nothing to its RPC calls: the host key rides in the userinfo
    assert client._orchestration_bindings.rpc_base_url == \
        "http://functions:k%2Fey%2B1@127.0.0.1:7071/runtime/webhooks/durabletask/"
    links = client.create_http_management_payload("abc")
    assert links["id"] == "abc"
    assert links["statusQueryGetUri"] == ("http://127.0.0.1:7071/runtime/webhooks/durabletask/instances/abc"
                                          "?taskHub=hub&connection=Storage&code=k%2Fey%2B1")
    assert client._get_start_new_url("i1", "orch") == \
        "http://functions:k%2Fey%2B1@127.0.0.1:7071/runtime/webhooks/durabletask/orchestrators/orch/i1"


async def test_devhost_keeps_idle_connections_longer_than_the_durable_clients_pool() -> None:
    """The durable client (aiohttp) reuses an idle connection for up to its keep-alive;
    a server closing it sooner resets the next `start_new` (seen in tests/e2e/test_soak.py)."""
    import aiohttp

    from devhost.__main__ import KEEP_ALIVE_SECONDS

    connector = aiohttp.TCPConnector()
    try:
        assert KEEP_ALIVE_SECONDS > connector._keepalive_timeout  # 15 s in aiohttp 3.x
    finally:
        await connector.close()
