"""Just-in-time provisioning: install once across replicas (Redis lock and ready flag),
audit events, retry then `Error` on failure, and the session cap during a cold start."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis

from shared.models import PackageSource, ServerSpec

from gateway.children.provision import install_location
from tests.integration.gateway.helpers import INIT, JSON_ONLY, REPO_ROOT, GatewayUnderTest

pytestmark = pytest.mark.asyncio


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """A real redis-server on a free port; fails (never skips) when it is not installed."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed (apt-get install -y redis-server)")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(tmp_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def installing_echo(name: str, counter: Path, fail: bool = False) -> ServerSpec:
    """The echo server with an install step that counts its runs (and maybe fails)."""
    script = (f"import sys, time; open({str(counter)!r}, 'a').write('x\\n'); time.sleep(0.5); "
              + ("print('pip says boom'); sys.exit(2)" if fail else "print('installed')"))
    return ServerSpec(name=name, kind="package", package=PackageSource(
        command=sys.executable, args=["-m", "catalog.echo.server"],
        env={"PYTHONPATH": str(REPO_ROOT)}, install=[sys.executable, "-c", script]))


def audit_actions(gateway: GatewayUnderTest, name: str) -> list[str]:
    return sorted(doc["action"] for doc in gateway.store.query("audit", {"entity": name}))


async def test_cold_burst_across_two_replicas_installs_once(
        make_gateway: Callable[..., GatewayUnderTest], redis_url: str, tmp_path: Path) -> None:
    replicas = [make_gateway(redis_url=redis_url, gateway_max_sessions_per_server=8)
                for _ in range(2)]
    counter = replicas[0].settings.servers_dir / "cold" / "installs.txt"  # its own dir
    replicas[0].put(installing_echo("cold", counter))
    async with httpx.AsyncClient(timeout=60) as http:
        replies = await asyncio.gather(*(
            http.post(replicas[i % 2].mcp_url("cold"), json=INIT, headers=JSON_ONLY)
            for i in range(20)))
    codes = sorted(r.status_code for r in replies)
    assert counter.read_text().count("x") == 1  # one install between both replicas
    assert codes == [200] * 16 + [503] * 4  # 8 sessions per replica, the rest refused
    for reply in replies:
        if reply.status_code == 503:
            assert int(reply.headers["retry-after"]) >= 1
        else:
            assert "result" in reply.json() and reply.headers["mcp-session-id"]
    assert audit_actions(replicas[0], "cold") == [
        "provision.install_begin", "provision.install_complete", "provision.mounted",
        "provision.start"]
    flag = redis.Redis.from_url(redis_url, decode_responses=True)
    # both replicas share one disk here: one install location, one flag naming it
    key = f"cold@{install_location(replicas[0].settings.servers_dir)}"
    assert flag.keys("mcp-ready:*") == [f"mcp-ready:{key}"] and 600 <= flag.ttl(f"mcp-ready:{key}") <= 3600
    assert flag.keys("mcp-lock:*") == []


async def test_replicas_on_their_own_disks_each_install_and_flag_their_own_location(
        make_gateway: Callable[..., GatewayUnderTest], redis_url: str, tmp_path: Path) -> None:
    """Two pods with per-pod install directories: a ready flag of one says nothing about
    the other's disk, so each installs once on its own (issue 11 item 3)."""
    replicas = [make_gateway(redis_url=redis_url, data_dir=tmp_path / f"pod-{i}") for i in range(2)]
    counters = [gw.settings.servers_dir / "own" / "installs.txt" for gw in replicas]
    replicas[0].put(installing_echo("own", Path("installs.txt")))  # relative: the step's cwd is its own dir
    async with httpx.AsyncClient(timeout=60) as http:
        for gw in (replicas[0], replicas[1], replicas[0], replicas[1]):
            assert (await http.post(gw.mcp_url("own"), json=INIT, headers=JSON_ONLY)).status_code == 200
    assert [counter.read_text().count("x") for counter in counters] == [1, 1]  # once per disk
    flags = redis.Redis.from_url(redis_url, decode_responses=True).keys("mcp-ready:own@*")
    assert sorted(flags) == sorted(f"mcp-ready:own@{install_location(gw.settings.servers_dir)}" for gw in replicas)


async def test_embedded_mode_installs_once(gateway: GatewayUnderTest, tmp_path: Path) -> None:
    counter = gateway.settings.servers_dir / "local" / "installs.txt"  # its own dir
    gateway.put(installing_echo("local", counter))
    async with httpx.AsyncClient(timeout=60) as http:
        replies = await asyncio.gather(*(
            http.post(gateway.mcp_url("local"), json=INIT, headers=JSON_ONLY) for _ in range(5)))
    assert [r.status_code for r in replies] == [200] * 5
    assert counter.read_text().count("x") == 1


async def test_install_failure_retries_once_then_sets_error(gateway: GatewayUnderTest,
                                                            tmp_path: Path) -> None:
    counter = gateway.settings.servers_dir / "broken" / "installs.txt"  # its own dir
    gateway.put(installing_echo("broken", counter, fail=True))
    async with httpx.AsyncClient(timeout=60) as http:
        reply = await http.post(gateway.mcp_url("broken"), json=INIT, headers=JSON_ONLY)
        again = await http.post(gateway.mcp_url("broken"), json=INIT, headers=JSON_ONLY)
    assert reply.status_code == 502 and "pip says boom" in reply.json()["error"]["message"]
    assert again.status_code == 502
    assert counter.read_text().count("x") == 2  # the attempt and its one retry, not more
    doc = gateway.store.read("servers", "broken", "broken")
    assert doc["status"] == "Error" and "pip says boom" in doc["status_reason"]
    results = [(d["action"], d["result"]) for d in gateway.store.query("audit", {"entity": "broken"})]
    assert results.count(("provision.install_complete", "failed")) == 2
    assert ("provision.mounted", "succeeded") not in results
