"""The README's `make run`: the platform comes up with the catalog's echo server deployed."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from mcp import Client
from mcp.client.streamable_http import create_mcp_http_client, streamable_http_client

from tests.e2e.conftest import REPO, free_port


def read_until(process: subprocess.Popen, marker: str, timeout: float) -> str:
    """Collect stdout lines until one contains `marker`; fail on exit or timeout."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line and process.poll() is not None:
            raise AssertionError(f"make run exited {process.returncode}:\n{''.join(seen)}")
        seen.append(line)
        if marker in line:
            return "".join(seen)
    raise AssertionError(f"no '{marker}' within {timeout} s:\n{''.join(seen)}")


def stop_within(process: subprocess.Popen, timeout: float, logs: Path) -> None:
    """Wait for `process` to exit, reading its output as a terminal would (a full pipe
    would block it); on timeout kill it and fail with that output and the logs' tails."""
    try:
        process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        rest, _ = process.communicate()
        tails = "\n".join(f"--- {log.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-15:])
                          for log in sorted(logs.glob("*.log")))
        pytest.fail(f"make run still running {timeout} s after Ctrl-C; its output:\n{rest[-3000:]}\n{tails}")


async def test_make_run_serves_the_echo_server(tmp_path):
    api_port, gateway_port = free_port(), free_port()
    # Started with SIGINT ignored, as a shell starts a background job when job control is
    # off (CI runners do): Ctrl-C must stop the platform all the same.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        process = subprocess.Popen(
            ["make", "--no-print-directory", "run", f"API_PORT={api_port}", f"GATEWAY_PORT={gateway_port}",
             f"DATA_DIR={tmp_path / 'data'}"],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
            env={**os.environ, "COLUMNS": "200"})
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        output = read_until(process, "MCPaaS is up", timeout=120)
        endpoint = f"http://127.0.0.1:{gateway_port}/servers/echo/mcp"
        assert endpoint in output and '"type": "http"' in output and "from mcp import Client" in output
        # the printed client config carries a usable token: call the server the way it says
        token = re.search(r'"Authorization": "Bearer ([^"]+)"', output).group(1)
        http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
        async with Client(streamable_http_client(endpoint, http_client=http)) as client:
            result = await client.call_tool("echo", {"message": "hello from make run"})
            assert result.content[0].text == "hello from make run"
    finally:
        os.killpg(process.pid, signal.SIGINT)  # Ctrl-C in the terminal signals the whole group
        stop_within(process, 30, tmp_path / "data" / "logs")
    with pytest.raises(httpx.ConnectError):  # Ctrl-C stopped the gateway too
        httpx.get(f"http://127.0.0.1:{gateway_port}/healthz", timeout=5)
