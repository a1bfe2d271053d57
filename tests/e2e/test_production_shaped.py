"""The production-shaped run end to end (issue 11 item 7, `tests.production_shaped`): the
control plane and two gateway replicas behind a round-robin proxy, on the Cosmos
emulator, Redis and Entra-mode auth against a local OIDC issuer, no disk shared.

The production shape (`run`): each package server is a separate single-server process
the control plane starts (`shared.package_processes`), which both replicas proxy to.
Deploy, call through either replica, keep a session across replicas, recover from a
killed server child and from a killed server process, read the logs, update, roll back,
delete (and the process is gone).

The replicas' own children (`hosted`, `package_processes=False`): a session owned by one
replica while its requests hop replicas (POST, the GET SSE stream, DELETE, and the
legacy HTTP+SSE messages); and the refusals: a session of a replica that is gone, a
forged replica prefix, a request that claims to be a hop already.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import httpx
import psutil
import pytest

from tests.e2e.helpers import mcp_client
from tests.integration.gateway.helpers import INIT, INITIALIZED, session_headers
from tests.production_shaped import ProductionShaped

T = TypeVar("T")
SPEC = {"name": "echo", "kind": "package", "description": "one",
        "package": {"command": "python", "args": ["-m", "catalog.echo.server"], "session_mode": "isolated"}}


@pytest.fixture
def run(tmp_path: Path) -> Iterator[ProductionShaped]:
    with ProductionShaped(tmp_path / "prod") as running:
        yield running


@pytest.fixture
def hosted(tmp_path: Path) -> Iterator[ProductionShaped]:
    with ProductionShaped(tmp_path / "prod", package_processes=False) as running:
        yield running


def wait_running(run: ProductionShaped, revision: int) -> dict:
    """Poll `GET /api/servers/echo` until it is Running at `revision` (60 s)."""
    with httpx.Client(headers=run.headers, timeout=10) as http:
        for _ in range(600):
            body = http.get(f"{run.api}/api/servers/echo").json()
            if body.get("status") == "Running" and body.get("revision") == revision:
                return body
            assert body.get("status") != "Error", body
            time.sleep(0.1)
    raise TimeoutError(f"echo not Running at revision {revision}: {body}")


def call(http: httpx.Client, base: str, session: str, text: str, request_id: int) -> httpx.Response:
    message = {"jsonrpc": "2.0", "id": request_id, "method": "tools/call",
               "params": {"name": "echo", "arguments": {"message": text}}}
    return http.post(f"{base}/servers/echo/mcp", json=message, headers=session_headers(session))


def open_session(http: httpx.Client, base: str) -> str:
    reply = http.post(f"{base}/servers/echo/mcp", json=INIT, headers={"accept": "application/json"})
    assert reply.status_code == 200, reply.text
    session = reply.headers["mcp-session-id"]
    assert http.post(f"{base}/servers/echo/mcp", json=INITIALIZED,
                     headers=session_headers(session)).status_code == 202
    return session


def echoed(reply: httpx.Response) -> str:
    assert reply.status_code == 200, reply.text
    return reply.json()["result"]["content"][0]["text"]


def pids_of(http: httpx.Client, replica: str) -> list[int]:
    return http.get(f"{replica}/servers/echo/status").json()["pids"]


async def test_a_session_hops_replicas_and_survives_a_killed_server(hosted: ProductionShaped) -> None:
    run = hosted
    admin = httpx.Client(headers=run.headers, timeout=30)
    assert admin.post(f"{run.api}/api/servers", json=SPEC).status_code == 202
    wait_running(run, 1)

    # the official client through the proxy: every request lands on the next replica
    async with mcp_client(f"{run.proxy}/servers/echo/mcp", run.headers) as client:
        for number in range(4):
            result = await client.call_tool("echo", {"message": f"hop {number}"})
            assert result.content[0].text == f"hop {number}"

    # one session, called on each replica directly: the owner serves it, the other forwards
    session = open_session(admin, run.replicas[0])
    assert [echoed(call(admin, base, session, f"via {i}", 10 + i)) for i, base in enumerate(run.replicas)] \
        == ["via 0", "via 1"]
    # the GET SSE stream through the replica that does not own the session
    with admin.stream("GET", f"{run.replicas[1]}/servers/echo/mcp",
                      headers={**session_headers(session), "accept": "text/event-stream"}) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")

    # legacy HTTP+SSE: the stream on one replica, the messages posted to the other
    with admin.stream("GET", f"{run.replicas[0]}/servers/echo/sse", headers={"accept": "text/event-stream"}) as sse:
        lines = sse.iter_lines()
        endpoint = next(line for line in lines if line.startswith("data: /servers/echo/messages"))[6:]
        posted = admin.post(f"{run.replicas[1]}{endpoint}", json=INIT)
        assert posted.status_code == 202, posted.text
        assert "protocolVersion" in next(line for line in lines if line.startswith("data: {"))

    # the owner's child killed mid-session: the next request, through the other replica, works
    owner_pids = pids_of(admin, run.replicas[0])
    assert owner_pids and not pids_of(admin, run.replicas[1])
    for pid in owner_pids:
        os.kill(pid, signal.SIGKILL)
    for _ in range(100):  # the next request after the owner noticed the crash
        if not set(owner_pids) & set(pids_of(admin, run.replicas[0])):
            break
        time.sleep(0.05)
    assert echoed(call(admin, run.replicas[1], session, "after the kill", 20)) == "after the kill"

    # no affinity needed, no forwarding to addresses a client picks
    forged = "0123456789ab." + session.partition(".")[2]
    assert call(admin, run.replicas[1], forged, "forged", 21).status_code == 404
    claimed_hop = admin.post(f"{run.replicas[1]}/servers/echo/mcp", json=INITIALIZED,
                             headers={**session_headers(session), "x-mcpaas-hop": "x"})
    assert claimed_hop.status_code == 404  # a "hop" is served locally only, never forwarded on
    # the credential is checked on the hop too: none, no answer
    anonymous = httpx.post(f"{run.replicas[1]}/servers/echo/mcp", json=INITIALIZED,
                           headers=session_headers(session), timeout=10)
    assert anonymous.status_code == 401

    # logs of both replicas' children, through the control plane (no shared disk)
    lines = admin.get(f"{run.api}/api/servers/echo/logs", params={"tail": 200}).json()["lines"]
    assert any("exited with code -9" in line for line in lines), lines

    # DELETE through the other replica ends the session on its owner
    assert admin.delete(f"{run.replicas[1]}/servers/echo/mcp", headers=session_headers(session)).status_code == 204
    assert call(admin, run.replicas[0], session, "gone", 22).status_code == 404
    admin.close()


async def test_update_rollback_delete_and_a_lost_replica(hosted: ProductionShaped) -> None:
    run = hosted
    admin = httpx.Client(headers=run.headers, timeout=30)
    assert admin.post(f"{run.api}/api/servers", json=SPEC).status_code == 202
    wait_running(run, 1)
    on_second = open_session(admin, run.replicas[1])
    assert admin.put(f"{run.api}/api/servers/echo", json={**SPEC, "description": "two"}).status_code == 202
    wait_running(run, 2)
    # the update ended the server's sessions on every replica, not only the one reached
    assert call(admin, run.proxy, on_second, "stale", 1).status_code == 404
    rolled = admin.post(f"{run.api}/api/servers/echo/rollback", json={"revision": 1})
    assert rolled.status_code == 202, rolled.text
    assert wait_running(run, 3)["spec"]["description"] == "one"

    # a replica that is gone takes its sessions with it: 404, and the client re-initializes
    session = open_session(admin, run.replicas[1])
    run.kill("gateway-1")
    assert call(admin, run.replicas[0], session, "lost", 2).status_code == 404
    fresh = open_session(admin, run.replicas[0])
    assert echoed(call(admin, run.replicas[0], fresh, "again", 3)) == "again"

    assert admin.delete(f"{run.api}/api/servers/echo").status_code in (202, 204)
    for _ in range(300):
        if admin.get(f"{run.api}/api/servers/echo").status_code == 404:
            break
        time.sleep(0.1)
    assert admin.get(f"{run.api}/api/servers/echo").status_code == 404
    assert call(admin, run.replicas[0], fresh, "deleted", 4).status_code == 404
    admin.close()


def wait_for(condition: Callable[[], T | None], what: str, seconds: float = 30) -> T:
    """Poll `condition` every 50 ms until it returns a truthy value."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise TimeoutError(what)


def ready(upstream_url: str) -> bool:
    """Whether the single-server process behind `upstream_url` answers `/readyz`."""
    try:
        return httpx.get(upstream_url.removesuffix("/mcp") + "/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def replica_children(run: ProductionShaped) -> list[psutil.Process]:
    """Every process the gateway replicas started (none: package servers run apart)."""
    return [child for index in range(len(run.replicas))
            for child in psutil.Process(run.processes[f"gateway-{index}"].pid).children(recursive=True)]


async def test_a_package_server_is_a_process_of_its_own_behind_both_replicas(run: ProductionShaped) -> None:
    admin = httpx.Client(headers=run.headers, timeout=30)
    assert admin.post(f"{run.api}/api/servers", json=SPEC).status_code == 202
    server = wait_running(run, 1)
    bridge = run.package_process("echo")
    assert bridge is not None and server["upstream_url"].endswith(":8080/mcp")

    # the official client through the proxy, every request on the next replica
    async with mcp_client(f"{run.proxy}/servers/echo/mcp", run.headers) as client:
        for number in range(4):
            assert (await client.call_tool("echo", {"message": f"hop {number}"})).content[0].text == f"hop {number}"
    # one session, called on each replica directly, and its GET stream on the other one
    session = open_session(admin, run.replicas[0])
    assert [echoed(call(admin, base, session, f"via {i}", 10 + i)) for i, base in enumerate(run.replicas)] \
        == ["via 0", "via 1"]
    with admin.stream("GET", f"{run.replicas[1]}/servers/echo/mcp",
                      headers={**session_headers(session), "accept": "text/event-stream"}) as stream:
        assert stream.status_code == 200
    # tenant code runs in the server's own process tree, never under a replica
    children = bridge.children(recursive=True)
    assert children and not replica_children(run)

    # the server's child killed mid-session: the bridge starts a new one, the session goes on
    for child in children:
        child.kill()
    wait_for(lambda: not {c.pid for c in children} & {c.pid for c in bridge.children(recursive=True)},
             "the killed child is still there")
    assert echoed(call(admin, run.replicas[1], session, "after the child", 20)) == "after the child"

    # the server's process (its "pod") killed: the control plane restarts it at the same address;
    # its sessions died with it (404: the client re-initializes, as after a pod restart)
    bridge.kill()
    restarted = wait_for(lambda: (p := run.package_process("echo")) and p.pid != bridge.pid and p,
                         "the package process was not restarted")
    wait_for(lambda: ready(server["upstream_url"]), "the restarted process is not ready")
    assert call(admin, run.proxy, session, "old session", 21).status_code == 404
    fresh = open_session(admin, run.proxy)
    assert echoed(call(admin, run.proxy, fresh, "after the process", 22)) == "after the process"

    # logs through the control plane: the process's output, no disk shared with a replica
    lines = admin.get(f"{run.api}/api/servers/echo/logs", params={"tail": 200}).json()["lines"]
    assert any("exited with code -9" in line for line in lines), lines
    assert restarted.is_running()
    admin.close()


async def test_package_process_update_rollback_and_delete_leave_no_process(run: ProductionShaped) -> None:
    admin = httpx.Client(headers=run.headers, timeout=30)
    assert admin.post(f"{run.api}/api/servers", json=SPEC).status_code == 202
    wait_running(run, 1)
    first = run.package_process("echo")
    session = open_session(admin, run.proxy)

    # a new revision is a new process at the same address; the old one and its sessions end
    assert admin.put(f"{run.api}/api/servers/echo", json={**SPEC, "description": "two"}).status_code == 202
    wait_running(run, 2)
    second = run.package_process("echo")
    assert first is not None and second is not None and second.pid != first.pid and not first.is_running()
    assert call(admin, run.proxy, session, "stale", 1).status_code == 404
    rolled = admin.post(f"{run.api}/api/servers/echo/rollback", json={"revision": 1})
    assert rolled.status_code == 202, rolled.text
    assert wait_running(run, 3)["spec"]["description"] == "one"
    third = run.package_process("echo")
    assert third is not None and not second.is_running()
    fresh = open_session(admin, run.replicas[1])
    assert echoed(call(admin, run.replicas[0], fresh, "again", 2)) == "again"

    # delete stops the process tree: no orphan, no directory left
    tree = [third, *third.children(recursive=True)]
    assert admin.delete(f"{run.api}/api/servers/echo").status_code in (202, 204)
    wait_for(lambda: admin.get(f"{run.api}/api/servers/echo").status_code == 404, "echo was not deleted")
    assert not [p for p in tree if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert run.package_process("echo") is None
    assert not (run.root / "controlplane" / "package-processes" / "echo").exists()
    assert call(admin, run.proxy, fresh, "deleted", 3).status_code == 404
    admin.close()
