"""Streamable HTTP rules beyond the basics: Origin allowlist, content types, configurable
body limit, batches per protocol version, SSE event ids and `Last-Event-ID` resumption,
the session cap, the idle reaper, and `/metrics`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from shared.keyfiles import metrics_token
from tests.integration.gateway.helpers import (BOTH, INIT, JSON_ONLY, GatewayUnderTest,
                                               echo_spec, open_session, script_spec,
                                               session_headers, status, tools_list, wait_gone)
from tests.integration.gateway.test_streams import CHATTY

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


@pytest.mark.parametrize("origin", ["http://evil.example", "null", "http://localhost.evil.example"])
async def test_foreign_origin_is_403(gateway: GatewayUnderTest, http: httpx.AsyncClient,
                                     origin: str) -> None:
    gateway.put(echo_spec())
    reply = await http.post(gateway.mcp_url("echo"), json=INIT,
                            headers={**JSON_ONLY, "origin": origin})
    assert reply.status_code == 403
    assert reply.json()["error"]["code"] == -32600
    assert "mcp-session-id" not in reply.headers


@pytest.mark.parametrize("origin", ["http://localhost:6274", "http://127.0.0.1", "http://[::1]:80"])
async def test_local_origins_are_allowed_by_default(gateway: GatewayUnderTest,
                                                    http: httpx.AsyncClient, origin: str) -> None:
    gateway.put(echo_spec())
    reply = await http.post(gateway.mcp_url("echo"), json=INIT,
                            headers={**JSON_ONLY, "origin": origin})
    assert reply.status_code == 200


async def test_origin_allowlist_is_configurable(make_gateway: Callable[..., GatewayUnderTest],
                                                http: httpx.AsyncClient) -> None:
    gateway = make_gateway(gateway_allowed_origins="https://app.example.com:8443")
    gateway.put(echo_spec())
    url = gateway.mcp_url("echo")
    ok = await http.post(url, json=INIT, headers={**JSON_ONLY, "origin": "https://app.example.com:8443"})
    assert ok.status_code == 200
    wrong_port = await http.post(url, json=INIT, headers={**JSON_ONLY, "origin": "https://app.example.com"})
    local = await http.post(url, json=INIT, headers={**JSON_ONLY, "origin": "http://localhost"})
    assert wrong_port.status_code == 403 and local.status_code == 403


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
async def test_wrong_content_type_is_415(gateway: GatewayUnderTest, http: httpx.AsyncClient,
                                         content_type: str | None) -> None:
    gateway.put(echo_spec())
    headers = {**JSON_ONLY} | ({"content-type": content_type} if content_type else {})
    reply = await http.post(gateway.mcp_url("echo"), content=json.dumps(INIT).encode(),
                            headers=headers)
    assert reply.status_code == 415
    assert reply.json()["error"]["code"] == -32600


async def test_body_limit_is_configurable(make_gateway: Callable[..., GatewayUnderTest],
                                          http: httpx.AsyncClient) -> None:
    gateway = make_gateway(gateway_max_body_bytes=1000)
    gateway.put(echo_spec())
    padded = {**INIT, "params": {**INIT["params"], "pad": "x" * 1000}}
    reply = await http.post(gateway.mcp_url("echo"), json=padded, headers=JSON_ONLY)
    assert reply.status_code == 413 and reply.json()["error"]["code"] == -32600
    assert (await http.post(gateway.mcp_url("echo"), json=INIT, headers=JSON_ONLY)).status_code == 200


async def test_batch_is_refused_from_2025_06_18(gateway: GatewayUnderTest,
                                                http: httpx.AsyncClient) -> None:
    gateway.put(echo_spec())
    url = gateway.mcp_url("echo")
    session_id = await open_session(http, url)
    for version in ("2025-06-18", "2025-11-25"):
        reply = await http.post(url, json=[tools_list(2), tools_list(3)],
                                headers={**session_headers(session_id),
                                         "mcp-protocol-version": version})
        assert reply.status_code == 400
        assert reply.json()["error"]["code"] == -32600 and "batch" in reply.json()["error"]["message"]


async def test_batch_is_served_under_2025_03_26(gateway: GatewayUnderTest,
                                                http: httpx.AsyncClient) -> None:
    gateway.put(echo_spec())
    url = gateway.mcp_url("echo")
    init = {**INIT, "params": {**INIT["params"], "protocolVersion": "2025-03-26"}}
    reply = await http.post(url, json=init, headers=JSON_ONLY)  # no version header: 2025-03-26
    session_id = reply.headers["mcp-session-id"]
    headers = {**JSON_ONLY, "mcp-session-id": session_id}
    notes = await http.post(url, json=[{"jsonrpc": "2.0", "method": "notifications/initialized"}],
                            headers=headers)
    assert notes.status_code == 202
    call = {"jsonrpc": "2.0", "id": "c", "method": "tools/call",
            "params": {"name": "echo", "arguments": {"message": "hi"}}}
    batch = await http.post(url, json=[tools_list(2), call], headers=headers)
    assert batch.status_code == 200
    replies = {r["id"]: r for r in batch.json()}
    assert {t["name"] for t in replies[2]["result"]["tools"]} >= {"echo", "add"}
    assert "hi" in json.dumps(replies["c"]["result"])
    in_batch_init = await http.post(url, json=[init], headers=headers)
    assert in_batch_init.status_code == 400


async def _read_events(lines: AsyncIterator[str], count: int) -> list[tuple[str, dict]]:
    """The next `count` SSE events of a response's line iterator as (id, message)."""
    events: list[tuple[str, dict]] = []
    event_id = ""
    async for line in lines:
        if line.startswith("id:"):
            event_id = line[3:].strip()
        elif line.startswith("data:"):
            events.append((event_id, json.loads(line[5:])))
            if len(events) == count:
                break
    return events


@pytest.fixture
def chatty(gateway: GatewayUnderTest, tmp_path: Path) -> str:
    script = tmp_path / "chatty.py"
    script.write_text(CHATTY)
    gateway.put(script_spec("chatty", script))
    return gateway.mcp_url("chatty")


async def test_resume_request_stream_with_last_event_id(chatty: str, http: httpx.AsyncClient) -> None:
    session_id = await open_session(http, chatty)
    headers = {**session_headers(session_id), **BOTH}
    call = {"jsonrpc": "2.0", "id": 9, "method": "tools/call",
            "params": {"name": "t", "arguments": {}, "_meta": {"progressToken": "p"}}}
    # Read the progress event only, then drop the connection mid-stream.
    async with http.stream("POST", chatty, json=call, headers=headers) as response:
        [(first_id, first)] = await _read_events(response.aiter_lines(), 1)
    assert first["method"] == "notifications/progress" and first_id
    # Resume: everything after the first event is replayed (log message, roots/list).
    resume = {**headers, "last-event-id": first_id}
    async with http.stream("GET", chatty, headers=resume) as response:
        assert response.status_code == 200
        lines = response.aiter_lines()
        replayed = await _read_events(lines, 2)
        assert [m.get("method") for _, m in replayed] == ["notifications/message", "roots/list"]
        answer = {"jsonrpc": "2.0", "id": "s1", "result": {"roots": [{"uri": "file:///a"}]}}
        sent = await http.post(chatty, json=answer, headers=headers)
        assert sent.status_code == 202
        [(last_id, final)] = await _read_events(lines, 1)
    assert final == {"jsonrpc": "2.0", "id": 9, "result": {"roots_seen": 1}}
    ids = [first_id, *(i for i, _ in replayed), last_id]
    assert len(set(ids)) == 4  # every event has its own id


async def test_unknown_last_event_id_is_400(chatty: str, http: httpx.AsyncClient) -> None:
    session_id = await open_session(http, chatty)
    reply = await http.get(chatty, headers={**session_headers(session_id), **BOTH,
                                            "last-event-id": "garbage"})
    assert reply.status_code == 400


async def test_session_cap_answers_503_with_retry_after(
        make_gateway: Callable[..., GatewayUnderTest], http: httpx.AsyncClient) -> None:
    gateway = make_gateway(gateway_max_sessions_per_server=2)
    gateway.put(echo_spec())
    url = gateway.mcp_url("echo")
    first = await open_session(http, url)
    await open_session(http, url)
    refused = await http.post(url, json=INIT, headers=JSON_ONLY)
    assert refused.status_code == 503
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.json()["error"]["code"] == -32603
    assert (await http.delete(url, headers=session_headers(first))).status_code == 204
    assert (await http.post(url, json=INIT, headers=JSON_ONLY)).status_code == 200


async def test_idle_sessions_are_reaped(make_gateway: Callable[..., GatewayUnderTest],
                                        http: httpx.AsyncClient) -> None:
    gateway = make_gateway(gateway_session_idle_seconds=0.4)
    gateway.put(echo_spec())
    url = gateway.mcp_url("echo")
    session_id = await open_session(http, url)
    [pid] = (await status(http, gateway.url, "echo"))["pids"]
    assert await wait_gone(pid, timeout=10)
    reply = await http.post(url, json=tools_list(), headers=session_headers(session_id))
    assert reply.status_code == 404


async def test_metrics_count_requests_by_server_method_and_tool(gateway: GatewayUnderTest,
                                                                http: httpx.AsyncClient) -> None:
    gateway.put(echo_spec("metered"))
    url = gateway.mcp_url("metered")
    session_id = await open_session(http, url)
    call = {"jsonrpc": "2.0", "id": 3, "method": "tools/call",
            "params": {"name": "echo", "arguments": {"message": "m"}}}
    assert (await http.post(url, json=call, headers=session_headers(session_id))).status_code == 200
    scrape = {"Authorization": f"Bearer {metrics_token(gateway.settings)}"}
    text = (await http.get(f"{gateway.url}/metrics", headers=scrape)).text
    assert ('mcpaas_gateway_requests_total{method="tools/call",outcome="ok",server="metered",'
            'tool="echo"} 1.0') in text
    assert 'mcpaas_gateway_request_seconds_bucket{le="+Inf",method="initialize",server="metered",tool=""}' in text
    assert 'mcpaas_gateway_active_sessions{server="metered"} 1.0' in text
    await asyncio.sleep(0)
