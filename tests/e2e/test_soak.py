"""A bounded soak of the gateway (issue 15, docs/scale.md): about a minute per document
store of steady mixed traffic against the running platform, with the gateway's memory,
descriptors and children sampled from /proc.

Traffic, all at once: sessions of a `shared` server opened, called three times and
ended with DELETE (four loops); sessions of an `isolated` server (a child each) opened,
called and ended (one loop); a server deployed through the control plane, called, and
deleted while its session is still open (one loop). Every request must succeed.

Bounds, measured after a warm-up of the same traffic and once the traffic stopped:
- the gateway's RSS grew by less than RSS_GROWTH_MIB;
- its open descriptors are back to the warm baseline within FD_SLACK;
- its only child is the shared server's (every isolated session and every deleted
  server took its child with it), and no process that ever ran under the gateway is
  alive outside it (no orphan).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.e2e.helpers import authed, wait_gone, wait_status

pytestmark = [pytest.mark.usefixtures("checkout_launchers", "soak_limits"), pytest.mark.asyncio]

WARMUP_SECONDS = 15
SOAK_SECONDS = 60
RSS_GROWTH_MIB = 24  # after warm-up: caches are full, so real growth is a leak
FD_SLACK = 8  # keep-alive connections of the control plane and store handles come and go
SAMPLE_SECONDS = 2
SHARED_LOOPS = 4
ECHO = {"command": sys.executable, "args": ["-m", "catalog.echo.server"]}


@pytest.fixture
def soak_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    """One identity sends all the soak's traffic: its rate limits must admit it."""
    monkeypatch.setenv("MCPAAS_GATEWAY_RATE_LIMIT_IDENTITY", "100000/minute")
    monkeypatch.setenv("MCPAAS_GATEWAY_RATE_LIMIT_SERVER", "100000/minute")


def _stats() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, start time in clock ticks) of every live process."""
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                raw = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = raw[raw.rindex(")") + 2:].split()
            found[int(entry)] = (int(fields[1]), int(fields[19]))
    return found


@dataclass
class Sample:
    """The gateway process at one moment."""

    rss_kib: int
    fds: int
    children: list[int]
    descendants: set[tuple[int, int]]  # (pid, start time): a reused pid is another process


def sample(pid: int) -> Sample:
    """Read the gateway's RSS, descriptors and process tree from /proc."""
    rss = next(int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
               if line.startswith("VmRSS:"))
    stats = _stats()
    tree, todo = set(), [pid]
    while todo:
        parent = todo.pop()
        for child, (ppid, started) in stats.items():
            if ppid == parent:
                tree.add((child, started))
                todo.append(child)
    children = [child for child, (ppid, _) in stats.items() if ppid == pid]
    return Sample(rss, len(os.listdir(f"/proc/{pid}/fd")), children, tree)


@dataclass
class Traffic:
    """The mixed traffic's counters and first failures."""

    gateway: str
    api: str
    headers: dict[str, str]
    done: int = 0
    failures: list[str] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    def check(self, what: str, reply: httpx.Response, status: int) -> None:
        if reply.status_code != status:
            self.failures.append(f"{what}: {reply.status_code} {reply.text[:200]}")
            raise AssertionError(self.failures[-1])
        self.done += 1

    async def session(self, http: httpx.AsyncClient, server: str, calls: int, end: bool = True) -> str:
        """Open a session of `server`, call `echo` `calls` times, DELETE it when `end`."""
        url = f"{self.gateway}/servers/{server}/mcp"
        headers = {**self.headers, "accept": "application/json", "mcp-protocol-version": "2025-11-25"}
        opened = await http.post(url, headers=headers, json={
            "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "soak", "version": "1"}}})
        self.check(f"initialize {server}", opened, 200)
        headers["mcp-session-id"] = opened.headers["mcp-session-id"]
        self.check("initialized", await http.post(url, headers=headers, json={
            "jsonrpc": "2.0", "method": "notifications/initialized"}), 202)
        for n in range(calls):
            reply = await http.post(url, headers=headers, json={
                "jsonrpc": "2.0", "id": 2 + n, "method": "tools/call",
                "params": {"name": "echo", "arguments": {"message": f"soak {n}"}}})
            self.check(f"call {server}", reply, 200)
            assert f"soak {n}" in reply.text, reply.text
        if end:
            self.check("DELETE session", await http.delete(url, headers=headers), 204)
        return headers["mcp-session-id"]

    async def sessions(self, server: str, calls: int) -> None:
        async with httpx.AsyncClient(timeout=60) as http:
            while not self.stop.is_set():
                await self.session(http, server, calls)

    async def deploys(self) -> None:
        """Deploy, use and delete servers until stopped (a session left open on each)."""
        async with httpx.AsyncClient(timeout=60) as http:
            for n in itertools.count():
                if self.stop.is_set():
                    return
                name = f"churn-{n}"
                spec = {"name": name, "kind": "package", "package": {**ECHO, "session_mode": "shared"}}
                self.check(f"create {name}", await asyncio.to_thread(
                    authed.post, f"{self.api}/api/servers", json=spec, timeout=30), 202)
                await asyncio.to_thread(wait_status, self.api, name, {"Running"}, 60)
                await self.session(http, name, 1, end=False)
                self.check(f"delete {name}", await asyncio.to_thread(
                    authed.delete, f"{self.api}/api/servers/{name}", timeout=30), 202)
                await asyncio.to_thread(wait_gone, self.api, name, 60)


async def run_for(traffic: Traffic, seconds: float, pid: int) -> list[Sample]:
    """Run every traffic loop for `seconds`, sampling the gateway; raises the first failure."""
    traffic.stop.clear()
    loops = [asyncio.create_task(traffic.sessions("steady", 3)) for _ in range(SHARED_LOOPS)]
    loops += [asyncio.create_task(traffic.sessions("steady-isolated", 1)),
              asyncio.create_task(traffic.deploys())]
    samples, deadline = [], time.monotonic() + seconds
    try:
        while time.monotonic() < deadline and not any(loop.done() for loop in loops):
            samples.append(sample(pid))
            await asyncio.sleep(SAMPLE_SECONDS)
    finally:
        traffic.stop.set()
        await asyncio.gather(*loops)  # each loop ends its round; a failure is raised here
    return samples


async def test_mixed_traffic_leaves_no_growth_and_no_orphans(platform) -> None:
    for name, mode in (("steady", "shared"), ("steady-isolated", "isolated")):
        spec = {"name": name, "kind": "package", "package": {**ECHO, "session_mode": mode}}
        assert authed.post(f"{platform.api}/api/servers", json=spec, timeout=30).status_code == 202
        wait_status(platform.api, name, {"Running"}, timeout=60)
    pid = platform.processes["gateway"].pid
    traffic = Traffic(platform.gateway, platform.api, platform.headers)

    await run_for(traffic, WARMUP_SECONDS, pid)
    await asyncio.sleep(3)  # ended isolated children are reaped
    warm = sample(pid)
    samples = await run_for(traffic, SOAK_SECONDS, pid)
    await asyncio.sleep(3)
    final = sample(pid)

    assert traffic.failures == [] and traffic.done > 100
    peak = max(s.rss_kib for s in samples)
    assert final.rss_kib - warm.rss_kib < RSS_GROWTH_MIB * 1024, (warm.rss_kib, peak, final.rss_kib)
    assert abs(final.fds - warm.fds) <= FD_SLACK, (warm.fds, final.fds)
    status = authed.get(f"{platform.gateway}/servers/steady/status", timeout=10).json()
    assert len(final.children) == 1 and status["sessions"] == 0, (final.children, status)
    seen = set().union(*(s.descendants for s in samples), warm.descendants)
    alive = {(p, started) for p, (_, started) in _stats().items()}
    orphans = (seen & alive) - final.descendants
    assert not orphans, f"processes that ran under the gateway outlived it: {sorted(orphans)}"
