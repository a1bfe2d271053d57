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
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from shared.auth.principal import Role  # noqa: E402
from shared.auth.tokens import LocalIssuer  # noqa: E402
from shared.models import PackageSource, Server, ServerSpec, SessionMode  # noqa: E402
from shared.settings import Settings  # noqa: E402
from shared.store import open_store  # noqa: E402

EVERYTHING = REPO / "node_modules" / ".bin" / "mcp-server-everything"
SUPERGATEWAY = REPO / "node_modules" / ".bin" / "supergateway"
MCP_PROXY = Path(os.environ.get("MCPAAS_BENCH_MCP_PROXY", REPO / ".venv-peers/bin/mcp-proxy"))
PEERS = ("supergateway", "mcp-proxy", "baseline")
START_TIMEOUT_SECONDS = 30
# The peers authenticate nobody, limit nothing and sandbox nothing: the `isolated` and
# `shared` targets run so too (the relay alone; bench/auth_overhead.py measures the
# guard's own cost). The invocation audit is always on.
GATEWAY_ENV = {"MCPAAS_STORE": "sqlite", "MCPAAS_AUTH_MODE": "none", "MCPAAS_GATEWAY_SANDBOX": "none",
               "MCPAAS_GATEWAY_RATE_LIMIT_IDENTITY": "", "MCPAAS_GATEWAY_RATE_LIMIT_SERVER": ""}
# The production path (`production` target): local-issuer tokens verified, access and
# rate limits evaluated on every call (limits far above the bench's load, so none
# refuses), audit on, and the default sandbox (bubblewrap on Linux) around each child.
PRODUCTION_LIMIT = "100000000/minute"
PRODUCTION_ENV = {"MCPAAS_STORE": "sqlite", "MCPAAS_AUTH_MODE": "local",
                  "MCPAAS_GATEWAY_RATE_LIMIT_IDENTITY": PRODUCTION_LIMIT,
                  "MCPAAS_GATEWAY_RATE_LIMIT_SERVER": PRODUCTION_LIMIT,
                  "MCPAAS_GATEWAY_RATE_LIMIT_TOOL": PRODUCTION_LIMIT}


@dataclass
class Target:
    """A running endpoint under test: `base` URL and the process (group) `proc`."""

    name: str
    base: str
    proc: subprocess.Popen[bytes]
    # credential headers every request to the target carries (production path)
    auth: dict[str, str] = field(default_factory=dict)

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
                        env: dict[str, str] | None = None, production: bool = False) -> Target:
    """This gateway (`python -m gateway`) over a SQLite store in `data_dir` holding
    `servers` (name -> session mode); `env` adds to GATEWAY_ENV, or to PRODUCTION_ENV
    when `production` (the target then carries a Reader's local token). Endpoints are
    `{base}/servers/<name>/mcp`."""
    store = open_store(Settings(data_dir=data_dir))
    for name, mode in servers.items():
        store.upsert("servers", everything_spec(name, mode))
    port = free_port()
    base_env = PRODUCTION_ENV if production else GATEWAY_ENV
    auth = {}
    if production:  # the key file is created here, before the gateway reads it
        token = LocalIssuer(Settings(data_dir=data_dir).auth_key_path).mint("bench", [Role.READER])
        auth = {"Authorization": f"Bearer {token}"}
    proc = spawn([sys.executable, "-m", "gateway"], {
        **base_env, **(env or {}), "MCPAAS_DATA_DIR": str(data_dir),
        "MCPAAS_GATEWAY_HOST": "127.0.0.1", "MCPAAS_GATEWAY_PORT": str(port)})
    target = await started("gateway", proc, port, f"http://127.0.0.1:{port}")
    target.auth = auth
    return target


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
