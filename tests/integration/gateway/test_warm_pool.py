"""The optional warm pool (`gateway_warm_pool_size`, `gateway.sessions.warm_pool`): sessions of an
`isolated` server take pre-spawned children, the pool refills, and pooled children end
with the server; size 0 spawns nothing extra."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.integration.gateway.helpers import (GatewayUnderTest, alive, echo_spec, open_session,
                                               session_headers, status, wait_gone)

pytestmark = pytest.mark.asyncio

ECHO = {"jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"message": "warm"}}}


def pooled(gateway: GatewayUnderTest, name: str = "echo") -> list[int]:
    """Pids of the server's ready (pooled) children."""
    return gateway.app.state.gateway.sessions.warm.pids(name)


async def wait_pooled(gateway: GatewayUnderTest, count: int, timeout: float = 20.0) -> list[int]:
    """Poll until `count` children are ready; fails the test on timeout."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while len(pids := pooled(gateway)) < count:
        assert loop.time() < deadline, f"pool holds {pids}, expected {count} children"
        await asyncio.sleep(0.05)
    return pids


def live_children() -> set[int]:
    """Live (non-zombie) child processes of this test process: the in-thread gateway's."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2:].split()
        if int(fields[1]) == os.getpid() and fields[0] != "Z":
            found.add(int(entry))
    return found


async def echo_works(http: httpx.AsyncClient, url: str, session_id: str) -> None:
    reply = await http.post(url, json=ECHO, headers=session_headers(session_id))
    assert reply.status_code == 200, reply.text
    assert reply.json()["result"]["structuredContent"] == {"result": "warm"}


async def test_second_session_takes_a_pooled_child_and_pool_refills(
        make_gateway: Callable[..., GatewayUnderTest]) -> None:
    gateway = make_gateway(gateway_warm_pool_size=2)
    gateway.put(echo_spec())
    url = gateway.mcp_url("echo")
    async with httpx.AsyncClient(timeout=30) as http:
        first = await open_session(http, url)
        ready_before = await wait_pooled(gateway, 2)
        first_pid = (await status(http, gateway.url, "echo"))["pids"]
        second = await open_session(http, url)
        pids = (await status(http, gateway.url, "echo"))["pids"]
        taken = set(pids) - set(first_pid)
        assert len(taken) == 1 and taken <= set(ready_before), (ready_before, pids)
        assert (await status(http, gateway.url, "echo"))["sessions"] == 2  # pool not counted
        await echo_works(http, url, first)
        await echo_works(http, url, second)

        refilled = await wait_pooled(gateway, 2)
        assert not set(refilled) & taken  # the handed-out child left the pool
        assert all(alive(pid) for pid in refilled)

        stopped = await http.delete(f"{gateway.url}/admin/servers/echo/sessions")
        assert stopped.status_code == 200
        for pid in [*refilled, *pids]:
            assert await wait_gone(pid), f"pid {pid} survived stop_server"
        assert pooled(gateway) == []


async def test_a_dead_pooled_child_is_never_handed_out(
        make_gateway: Callable[..., GatewayUnderTest]) -> None:
    gateway = make_gateway(gateway_warm_pool_size=1)
    gateway.put(echo_spec())
    url = gateway.mcp_url("echo")
    async with httpx.AsyncClient(timeout=30) as http:
        await open_session(http, url)
        [victim] = await wait_pooled(gateway, 1)
        os.kill(victim, 9)
        assert await wait_gone(victim)
        second = await open_session(http, url)
        assert victim not in (await status(http, gateway.url, "echo"))["pids"]
        await echo_works(http, url, second)


async def test_changed_spec_gets_a_fresh_pool(
        make_gateway: Callable[..., GatewayUnderTest]) -> None:
    gateway = make_gateway(gateway_warm_pool_size=1)
    gateway.put(echo_spec())
    url = gateway.mcp_url("echo")
    async with httpx.AsyncClient(timeout=30) as http:
        await open_session(http, url)
        [old] = await wait_pooled(gateway, 1)
        spec = echo_spec()
        assert spec.package is not None
        spec.package.env["REVISION"] = "2"
        gateway.put(spec)
        gateway.app.state.gateway.registry.invalidate("echo")
        session = await open_session(http, url)
        assert old not in (await status(http, gateway.url, "echo"))["pids"]
        assert await wait_gone(old), "the old revision's pooled child was not ended"
        await echo_works(http, url, session)


async def test_pool_size_zero_spawns_nothing_extra(
        make_gateway: Callable[..., GatewayUnderTest]) -> None:
    gateway = make_gateway()
    assert gateway.settings.gateway_warm_pool_size == 0
    gateway.put(echo_spec())
    url = gateway.mcp_url("echo")
    async with httpx.AsyncClient(timeout=30) as http:
        before = live_children()
        for _ in range(2):
            await open_session(http, url)
        await asyncio.sleep(0.5)  # time for any (unwanted) background spawn
        pids = set((await status(http, gateway.url, "echo"))["pids"])
        assert len(pids) == 2
        assert live_children() - before == pids
        assert pooled(gateway) == []
