"""Gateway benchmark (issue 3, "Measure"): server-everything's `echo` tool through the
gateway and its peers, all in one run, loopback only, bounded request counts.

Targets (each a Streamable HTTP endpoint on 127.0.0.1):
  isolated     this gateway, session mode `isolated` (a child per session)
  shared       this gateway, session mode `shared` (one child for all sessions)
  supergateway `supergateway --stateful` from npm (a child per session)
  mcp-proxy    `mcp-proxy` from PyPI (one shared child)
  baseline     server-everything's own `streamableHttp` mode (no gateway)

For each target and concurrency (1 and 16), every client opens its own session
(initialize + initialized), warms up, then times `tools/call echo` one after another;
printed: p50/p95/p99 latency (ms) and throughput (calls/s), then the ratios the issue
sets targets for. While the `isolated` target runs at concurrency 16, a poller times
`GET /servers/everything/status` (FR-017: P95 under 200 ms under load).

The client is a thin raw-HTTP JSON-RPC client (httpx), so client overhead is small and
the same for every target. A peer that is not installed or does not start is reported
with the reason and skipped; the run goes on.

Peers: `npm ci` installs supergateway (package.json devDependencies). mcp-proxy pins
`mcp<2`, which conflicts with this project's `mcp>=2.3`, so it lives in its own venv:
`python3 -m venv .venv-peers && .venv-peers/bin/pip install mcp-proxy==0.13.0`
(or point MCPAAS_BENCH_MCP_PROXY at an mcp-proxy binary).

Run: `.venv/bin/python bench/gateway.py [--calls N]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from shared.models import PackageSource, Server, ServerSpec, SessionMode  # noqa: E402
from shared.settings import Settings  # noqa: E402
from shared.store import open_store  # noqa: E402

EVERYTHING = REPO / "node_modules" / ".bin" / "mcp-server-everything"
SUPERGATEWAY = REPO / "node_modules" / ".bin" / "supergateway"
MCP_PROXY = Path(os.environ.get("MCPAAS_BENCH_MCP_PROXY", REPO / ".venv-peers/bin/mcp-proxy"))
HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
WARMUP_CALLS = 10
START_TIMEOUT_SECONDS = 30
STATUS_POLL_SECONDS = 0.02


@dataclass
class Target:
    """A running endpoint under test: `url` of its MCP endpoint, `procs` to stop."""

    name: str
    url: str
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    status_url: str | None = None


@dataclass
class Result:
    """Latencies (seconds) of timed calls and the wall time they took together."""

    latencies: list[float]
    wall: float

    def pct(self, q: float) -> float:
        """Latency percentile `q` (0-100) in milliseconds."""
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))] * 1000

    @property
    def throughput(self) -> float:
        """Calls per second."""
        return len(self.latencies) / self.wall


class McpClient:
    """One MCP session over Streamable HTTP with its own connection (raw JSON-RPC)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=1))
        self.headers = dict(HEADERS)
        self.next_id = 0

    async def request(self, method: str, params: dict | None = None) -> dict:
        """Send a request; return its response (JSON or from an SSE stream)."""
        self.next_id += 1
        body = {"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params or {}}
        reply = await self.http.post(self.url, content=json.dumps(body), headers=self.headers)
        reply.raise_for_status()
        if "mcp-session-id" not in self.headers and "mcp-session-id" in reply.headers:
            self.headers["mcp-session-id"] = reply.headers["mcp-session-id"]
        if reply.headers.get("content-type", "").startswith("text/event-stream"):
            for line in reply.text.splitlines():
                if line.startswith("data:") and line[5:].strip():
                    message = json.loads(line[5:])
                    if message.get("id") == self.next_id:
                        return message
            raise RuntimeError(f"no response to {method} in the SSE stream")
        return reply.json()

    async def open(self) -> None:
        """initialize + notifications/initialized."""
        await self.request("initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                          "clientInfo": {"name": "bench", "version": "1"}})
        self.headers["mcp-protocol-version"] = "2025-06-18"
        note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        await self.http.post(self.url, content=json.dumps(note), headers=self.headers)

    async def echo(self) -> float:
        """One timed `tools/call echo`; seconds."""
        started = time.perf_counter()
        reply = await self.request("tools/call", {"name": "echo", "arguments": {"message": "hi"}})
        elapsed = time.perf_counter() - started
        if "result" not in reply:
            raise RuntimeError(f"echo failed: {reply}")
        return elapsed

    async def close(self) -> None:
        """End the session (DELETE) and the connection."""
        if "mcp-session-id" in self.headers:
            try:
                await self.http.delete(self.url, headers=self.headers)
            except httpx.HTTPError:
                pass
        await self.http.aclose()


async def load(url: str, clients: int, calls: int) -> Result:
    """`clients` sessions, each warmed up, then `calls` timed echo calls each."""
    sessions = [McpClient(url) for _ in range(clients)]
    try:
        await asyncio.gather(*(s.open() for s in sessions))
        for s in sessions:
            for _ in range(WARMUP_CALLS):
                await s.echo()

        async def run(session: McpClient) -> list[float]:
            return [await session.echo() for _ in range(calls)]

        started = time.perf_counter()
        per_client = await asyncio.gather(*(run(s) for s in sessions))
        wall = time.perf_counter() - started
    finally:
        await asyncio.gather(*(s.close() for s in sessions))
    return Result([x for lat in per_client for x in lat], wall)


async def poll_status(url: str, stop: asyncio.Event) -> list[float]:
    """Time `GET status` every STATUS_POLL_SECONDS until `stop`; seconds each."""
    timings = []
    async with httpx.AsyncClient(timeout=30) as http:
        while not stop.is_set():
            started = time.perf_counter()
            (await http.get(url)).raise_for_status()
            timings.append(time.perf_counter() - started)
            await asyncio.sleep(STATUS_POLL_SECONDS)
    return timings


# -- targets -----------------------------------------------------------------------
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


def everything_spec(name: str, mode: SessionMode) -> dict:
    spec = ServerSpec(name=name, kind="package", package=PackageSource(
        command=str(EVERYTHING), args=["stdio"], session_mode=mode))
    return Server(name=name, spec=spec, status="Running").model_dump(mode="json") | {"id": name}


async def start_gateway(data_dir: Path) -> Target:
    """This gateway (`python -m gateway`) serving `everything` and `everything-shared`."""
    settings = Settings(data_dir=data_dir)
    store = open_store(settings)
    store.upsert("servers", everything_spec("everything", SessionMode.ISOLATED))
    store.upsert("servers", everything_spec("everything-shared", SessionMode.SHARED))
    port = free_port()
    proc = spawn([sys.executable, "-m", "gateway"], {
        "MCPAAS_DATA_DIR": str(data_dir), "MCPAAS_STORE": "sqlite", "MCPAAS_AUTH_MODE": "none",
        "MCPAAS_GATEWAY_RATE_LIMIT_IDENTITY": "", "MCPAAS_GATEWAY_RATE_LIMIT_SERVER": "",
        "MCPAAS_GATEWAY_HOST": "127.0.0.1", "MCPAAS_GATEWAY_PORT": str(port)})
    await wait_port(port, proc)
    base = f"http://127.0.0.1:{port}"
    return Target("gateway", base, [proc], f"{base}/servers/everything/status")


async def start_peer(name: str) -> Target:
    """Start one peer bridge or the baseline; RuntimeError says why it cannot run."""
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
            raise RuntimeError(f"{MCP_PROXY} missing (see this module's docstring)")
        proc = spawn([str(MCP_PROXY), "--host", "127.0.0.1", "--port", str(port), "--",
                      str(EVERYTHING), "stdio"])
    else:
        raise ValueError(name)
    try:
        await wait_port(port, proc)
    except RuntimeError:
        stop(proc)
        raise
    return Target(name, f"http://127.0.0.1:{port}/mcp", [proc])


# -- run ---------------------------------------------------------------------------
Row = dict[int, Result]


async def measure(name: str, url: str, calls: int, status_url: str | None = None,
                  status_timings: list[float] | None = None) -> Row:
    """Concurrency 1 (`calls` x 4 calls) and 16 (`calls` per client) on one endpoint."""
    row = {1: await load(url, 1, calls * 4)}
    stop_polling = asyncio.Event()
    poller = (asyncio.create_task(poll_status(status_url, stop_polling))
              if status_url is not None else None)
    try:
        row[16] = await load(url, 16, calls)
    finally:
        stop_polling.set()
        if poller is not None and status_timings is not None:
            status_timings.extend(await poller)
    for c, result in row.items():
        print(f"{name:13} c={c:<3} p50 {result.pct(50):7.2f}  p95 {result.pct(95):7.2f}  "
              f"p99 {result.pct(99):7.2f} ms   {result.throughput:8.1f} calls/s", flush=True)
    return row


async def run_gateway(data_dir: Path, calls: int, rows: dict[str, Row],
                      status_timings: list[float]) -> None:
    target = await start_gateway(data_dir)
    try:
        rows["isolated"] = await measure("isolated", f"{target.url}/servers/everything/mcp",
                                         calls, target.status_url, status_timings)
        rows["shared"] = await measure("shared", f"{target.url}/servers/everything-shared/mcp",
                                       calls)
    finally:
        for proc in target.procs:
            stop(proc)


async def run_peer(name: str, calls: int, rows: dict[str, Row]) -> None:
    try:
        target = await start_peer(name)
    except RuntimeError as exc:
        print(f"{name:13} skipped: {exc}", flush=True)
        return
    try:
        rows[name] = await measure(name, target.url, calls)
    except Exception as exc:  # a peer that breaks under load is reported, not fatal
        print(f"{name:13} failed: {exc!r}", flush=True)
    finally:
        for proc in target.procs:
            stop(proc)


def ratio(rows: dict[str, Row], a: str, b: str, c: int,
          metric: Callable[[Result], float]) -> str:
    if a not in rows or b not in rows:
        return "n/a (a target did not run)"
    return f"{metric(rows[a][c]) / metric(rows[b][c]):.2f}x"


def report(rows: dict[str, Row], status_timings: list[float]) -> None:
    """Ratios against the issue's targets, and the status endpoint under load."""
    tput: Callable[[Result], float] = lambda r: r.throughput  # noqa: E731
    print("\nc=16 throughput ratios (targets: isolated >= 1.5x supergateway; "
          "shared >= 1x mcp-proxy and baseline)")
    print(f"  isolated / supergateway  {ratio(rows, 'isolated', 'supergateway', 16, tput)}")
    print(f"  shared / mcp-proxy       {ratio(rows, 'shared', 'mcp-proxy', 16, tput)}")
    print(f"  shared / baseline        {ratio(rows, 'shared', 'baseline', 16, tput)}")
    print(f"  isolated / baseline      {ratio(rows, 'isolated', 'baseline', 16, tput)}")
    if "baseline" in rows:
        base = rows["baseline"][1].pct(50)
        print("c=1 p50 minus baseline p50 (target: within 0.5 ms)")
        for name in ("isolated", "shared", "supergateway", "mcp-proxy"):
            if name in rows:
                print(f"  {name:13} {rows[name][1].pct(50) - base:+7.2f} ms")
    if status_timings:
        ordered = sorted(status_timings)
        p95 = ordered[int(0.95 * (len(ordered) - 1))] * 1000
        print(f"status under c=16 load: {len(ordered)} polls, p50 "
              f"{statistics.median(ordered) * 1000:.2f} ms, p95 {p95:.2f} ms, "
              f"max {ordered[-1] * 1000:.2f} ms (target: p95 < 200 ms)")


async def main() -> None:
    """Run every target in turn (one at a time, so they do not share the CPU)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100,
                        help="timed calls per client at c=16 (c=1 makes 4x as many)")
    args = parser.parse_args()
    if not EVERYTHING.exists():
        sys.exit(f"{EVERYTHING} missing: run `npm ci` in {REPO}")
    rows: dict[str, Row] = {}
    status_timings: list[float] = []
    with tempfile.TemporaryDirectory(prefix="mcpaas-bench-") as tmp:
        await run_gateway(Path(tmp), args.calls, rows, status_timings)
    for peer in ("supergateway", "mcp-proxy", "baseline"):
        await run_peer(peer, args.calls, rows)
    report(rows, status_timings)


if __name__ == "__main__":
    asyncio.run(main())
