"""After the gateway stops, no process it started survives (issue 3: "After a test run,
no child process of the gateway is left alive"; NFR-OPS-007).

The gateway runs as its own process (`python -m gateway`), so its descendants can be
told apart from the test's. Sessions are opened in both session modes and over both
transports, with a server that forks a grandchild (as `npx` shims do); then every
descendant of the gateway and every member of their process groups is recorded from
/proc, the gateway gets SIGTERM, and /proc is walked again.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from shared.models import PackageSource, ServerSpec, SessionMode
from shared.settings import Settings
from shared.store import open_store

from tests.integration.gateway.conftest import shown_to_children
from tests.integration.gateway.helpers import REPO_ROOT, open_session, put_server

pytestmark = pytest.mark.asyncio

# A stdio server that first forks a long-lived grandchild into its process group.
FORKING_SERVER = """
import subprocess, sys, runpy
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
runpy.run_module("catalog.echo.server", run_name="__main__")
"""
STOP_TIMEOUT_SECONDS = 30

Identity = tuple[int, int]  # (pid, start time in clock ticks): survives no pid reuse


def _stat(pid: int) -> tuple[int, int, int, str] | None:
    """(ppid, pgid, starttime, state) of a live pid from /proc/<pid>/stat, else None."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = raw[raw.rindex(")") + 2:].split()  # the command name may contain spaces
    return int(fields[1]), int(fields[2]), int(fields[19]), fields[0]


def _processes() -> dict[int, tuple[int, int, int, str]]:
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := _stat(int(entry))) is not None:
            found[int(entry)] = stat
    return found


def descendants_and_groups(root: int) -> tuple[set[Identity], set[int]]:
    """Every live descendant of `root` and the process groups they lead or belong to."""
    table = _processes()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found: set[Identity] = set()
    stack = list(children.get(root, []))
    while stack:
        pid = stack.pop()
        found.add((pid, table[pid][2]))
        stack.extend(children.get(pid, []))
    groups = {table[pid][1] for pid, _ in found} - {table[root][1]}
    return found, groups


def survivors(recorded: set[Identity], groups: set[int]) -> list[str]:
    """Recorded processes still running, and anything alive in a recorded group."""
    left = []
    for pid, (_, pgid, start, state) in _processes().items():
        if state == "Z":
            continue  # exited; only its (test-side) parent's reaping is pending
        if (pid, start) in recorded or pgid in groups:
            left.append(f"pid {pid} pgid {pgid}: {Path(f'/proc/{pid}/cmdline').read_bytes()!r}")
    return left


def _spec(name: str, mode: SessionMode, script: Path | None = None) -> ServerSpec:
    args = [str(script)] if script else ["-m", "catalog.echo.server"]
    return ServerSpec(name=name, kind="package", package=PackageSource(
        command=sys.executable, args=args, session_mode=mode,
        env={"PYTHONPATH": str(REPO_ROOT)}))


async def _wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    async with httpx.AsyncClient() as http:
        for _ in range(300):
            assert proc.poll() is None, "the gateway exited at start"
            try:
                if (await http.get(f"{url}/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.05)
    raise AssertionError("the gateway did not start")


async def _open_sessions(url: str) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        for name in ("iso", "fork", "shared", "sharedfork"):
            for _ in range(2):
                await open_session(http, f"{url}/servers/{name}/mcp")


async def test_stopping_the_gateway_leaves_no_process(tmp_path: Path) -> None:
    script = tmp_path / "forking_server.py"
    script.write_text(FORKING_SERVER)
    settings = Settings(data_dir=tmp_path / "data")
    store = open_store(settings)
    put_server(store, _spec("iso", SessionMode.ISOLATED))
    put_server(store, _spec("fork", SessionMode.ISOLATED, script))
    put_server(store, _spec("shared", SessionMode.SHARED))
    put_server(store, _spec("sharedfork", SessionMode.SHARED, script))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "MCPAAS_DATA_DIR": str(settings.data_dir), "MCPAAS_STORE": "sqlite",
           "MCPAAS_GATEWAY_HOST": "127.0.0.1", "MCPAAS_GATEWAY_PORT": str(port),
           "MCPAAS_AUTH_MODE": "none",  # a process-lifecycle rig: authentication is not under test
           "MCPAAS_SANDBOX_READ_PATHS": ",".join(shown_to_children(tmp_path))}
    gateway = subprocess.Popen([sys.executable, "-m", "gateway"], cwd=REPO_ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    recorded: set[Identity] = set()
    groups: set[int] = set()
    try:
        await _wait_ready(url, gateway)
        await _open_sessions(url)
        # A legacy SSE session held open while the gateway stops.
        async with httpx.AsyncClient(timeout=30) as http:
            async with http.stream("GET", f"{url}/servers/iso/sse",
                                   headers={"accept": "text/event-stream"}) as stream:
                assert stream.status_code == 200
                recorded, groups = descendants_and_groups(gateway.pid)
                # 4 isolated + 1 legacy children, 2 shared ones, 3 forked grandchildren.
                assert len(recorded) >= 10, recorded
                gateway.send_signal(signal.SIGTERM)
                code = await asyncio.to_thread(gateway.wait, STOP_TIMEOUT_SECONDS)
        # uvicorn re-raises the signal it handled once its shutdown is complete.
        assert code in (0, -signal.SIGTERM)
    finally:
        if gateway.poll() is None:  # only on a failed assertion above: never leak it
            gateway.kill()
            gateway.wait()
    assert survivors(recorded, groups) == []
