"""Benchmark: deploy time to `Running`, and gateway `tools/call` latency against direct stdio.

Starts the platform with `mcpaas up` on free ports and a temporary data dir, then
1. creates the `mcp-server-time` server 5 times (a new name each run) and reports the
   median seconds from `POST /api/servers` to `Running`;
2. calls `get_current_time` N times through the gateway (one MCP session) and N times
   on the same stdio server started directly by the `mcp` client, and reports p50/p95
   in milliseconds and the gateway/direct ratio of the medians.
Usage: `python bench/deploy_and_call.py [--runs 5] [--calls 200]`. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise TimeoutError(url)


def deploy_seconds(api: str, name: str, headers: dict[str, str]) -> float:
    """Seconds from POST to status Running for one `mcp-server-time` server."""
    spec = {"name": name, "kind": "package", "package": {"command": "mcp-server-time"}}
    start = time.perf_counter()
    httpx.post(f"{api}/api/servers", json=spec, timeout=30, headers=headers).raise_for_status()
    while True:
        status = httpx.get(f"{api}/api/servers/{name}", timeout=10, headers=headers).json()["status"]
        if status == "Running":
            return time.perf_counter() - start
        if status == "Error":
            raise RuntimeError(f"{name} failed to deploy")
        time.sleep(0.02)


async def call_latencies_ms(target, calls: int, headers: dict[str, str] | None = None) -> list[float]:
    """Latency of each `get_current_time` call in ms over one session to `target`
    (a stdio server, or a gateway URL called with `headers`)."""
    if isinstance(target, str):
        async with create_mcp_http_client(headers=headers) as http:
            return await call_latencies_ms(streamable_http_client(target, http_client=http), calls)
    async with Client(target) as client:
        await client.call_tool("get_current_time", {"timezone": "UTC"})  # warm up
        samples = []
        for _ in range(calls):
            start = time.perf_counter()
            await client.call_tool("get_current_time", {"timezone": "UTC"})
            samples.append((time.perf_counter() - start) * 1000)
        return samples


def _summary(label: str, samples: list[float]) -> float:
    p50 = statistics.median(samples)
    p95 = statistics.quantiles(samples, n=20)[18]
    print(f"{label:<28} p50 {p50:7.2f} ms   p95 {p95:7.2f} ms   (n={len(samples)})")
    return p50


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    api_port, gateway_port = _free_port(), _free_port()
    data_dir = tempfile.mkdtemp(prefix="mcpaas-bench-")
    up = subprocess.Popen([str(BIN / "mcpaas"), "up", "--port", str(api_port), "--gateway-port",
                           str(gateway_port), "--data-dir", data_dir], stdout=subprocess.DEVNULL,
                          start_new_session=True)
    api, gateway = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{gateway_port}"
    try:
        _wait(f"{api}/api/servers")
        _wait(f"{gateway}/healthz")
        token_file = Path(data_dir) / "cli-token"  # the admin token `mcpaas up` mints
        while not token_file.exists():
            time.sleep(0.1)
        headers = {"Authorization": f"Bearer {token_file.read_text().strip()}"}
        runs = [deploy_seconds(api, f"time-{i}", headers) for i in range(args.runs)]
        print(f"POST -> Running (mcp-server-time)  median {statistics.median(runs):.2f} s  "
              f"runs {', '.join(f'{r:.2f}' for r in runs)}")
        direct = asyncio.run(call_latencies_ms(StdioServerParameters(command=str(BIN / "mcp-server-time")),
                                               args.calls))
        through = asyncio.run(call_latencies_ms(f"{gateway}/servers/time-0/mcp", args.calls, headers))
        ratio = _summary("tools/call via gateway", through) / _summary("tools/call direct stdio", direct)
        print(f"gateway/direct p50 ratio {ratio:.2f}")
    finally:
        os.killpg(up.pid, signal.SIGTERM)
        up.wait(30)


if __name__ == "__main__":
    main()
