"""Targets of bench/gateway.py: start and stop this gateway and its peers, each a
Streamable HTTP endpoint on 127.0.0.1 serving server-everything.

Every target runs in its own process group, so `stop` ends it with every child it
spawned (a bridge may leave children behind when it exits itself).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from shared.models import PackageSource, Server, ServerSpec, SessionMode  # noqa: E402
from shared.settings import Settings  # noqa: E402
from shared.store import open_store  # noqa: E402

EVERYTHING = REPO / "node_modules" / ".bin" / "mcp-server-everything"
SUPERGATEWAY = REPO / "node_modules" / ".bin" / "supergateway"
MCP_PROXY = Path(os.environ.get("MCPAAS_BENCH_MCP_PROXY", REPO / ".venv-peers/bin/mcp-proxy"))
PEERS = ("supergateway", "mcp-proxy", "baseline")
START_TIMEOUT_SECONDS = 30
# the peers authenticate nobody and limit nothing; bench/auth_overhead.py measures the
# guard's own cost, so here it runs with auth off and no rate limits
GATEWAY_ENV = {"MCPAAS_STORE": "sqlite", "MCPAAS_AUTH_MODE": "none",
               "MCPAAS_GATEWAY_RATE_LIMIT_IDENTITY": "", "MCPAAS_GATEWAY_RATE_LIMIT_SERVER": ""}


@dataclass
class Target:
    """A running endpoint under test: `base` URL and the process (group) `proc`."""

    name: str
    base: str
    proc: subprocess.Popen[bytes]

    def stop(self) -> None:
        """End the target and every process in its group."""
        stop(self.proc)


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def spawn(argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start a process in its own group (stopped with its children by `stop`)."""
    return subprocess.Popen(argv, env={**os.environ, **(env or {})}, cwd=REPO,
                            start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group, SIGKILL it after 10 s."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass
    # A bridge may leave children in its group after it exits itself.
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


async def wait_port(port: int, proc: subprocess.Popen[bytes]) -> None:
    """Until `port` accepts connections; RuntimeError if the process exits or times out."""
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with code {proc.returncode} at start")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.1)
    raise RuntimeError("did not listen in time")


async def started(name: str, proc: subprocess.Popen[bytes], port: int, base: str) -> Target:
    """`proc` as a Target once it listens on `port`; stopped again if it never does."""
    try:
        await wait_port(port, proc)
    except RuntimeError:
        stop(proc)
        raise
    return Target(name, base, proc)


def everything_spec(name: str, mode: SessionMode) -> dict:
    """Store document of a package server `name` running server-everything over stdio."""
    spec = ServerSpec(name=name, kind="package", package=PackageSource(
        command=str(EVERYTHING), args=["stdio"], session_mode=mode))
    return Server(name=name, spec=spec, status="Running").model_dump(mode="json") | {"id": name}


async def start_gateway(data_dir: Path, servers: dict[str, SessionMode],
                        env: dict[str, str] | None = None) -> Target:
    """This gateway (`python -m gateway`) over a SQLite store in `data_dir` holding
    `servers` (name -> session mode); `env` adds to GATEWAY_ENV. Endpoints are
    `{base}/servers/<name>/mcp`."""
    store = open_store(Settings(data_dir=data_dir))
    for name, mode in servers.items():
        store.upsert("servers", everything_spec(name, mode))
    port = free_port()
    proc = spawn([sys.executable, "-m", "gateway"], {
        **GATEWAY_ENV, **(env or {}), "MCPAAS_DATA_DIR": str(data_dir),
        "MCPAAS_GATEWAY_HOST": "127.0.0.1", "MCPAAS_GATEWAY_PORT": str(port)})
    return await started("gateway", proc, port, f"http://127.0.0.1:{port}")


async def start_peer(name: str) -> Target:
    """Start one peer bridge or the baseline (endpoint `{base}/mcp`); RuntimeError says
    why it cannot run."""
    port = free_port()
    if name == "baseline":
        proc = spawn([str(EVERYTHING), "streamableHttp"], {"PORT": str(port)})
    elif name == "supergateway":
        if not SUPERGATEWAY.exists():
            raise RuntimeError(f"{SUPERGATEWAY} missing (npm ci)")
        proc = spawn([str(SUPERGATEWAY), "--stdio", f"{EVERYTHING} stdio", "--outputTransport",
                      "streamableHttp", "--stateful", "--port", str(port), "--logLevel", "none"])
    elif name == "mcp-proxy":
        if not MCP_PROXY.exists():
            raise RuntimeError(f"{MCP_PROXY} missing (see bench/gateway.py's docstring)")
        proc = spawn([str(MCP_PROXY), "--host", "127.0.0.1", "--port", str(port), "--",
                      str(EVERYTHING), "stdio"])
    else:
        raise ValueError(name)
    return await started(name, proc, port, f"http://127.0.0.1:{port}")
