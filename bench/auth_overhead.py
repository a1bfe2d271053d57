"""Benchmark: latency that authentication + authorization + rate limit + audit add to a
gateway `tools/call` (issue 4, "Measure"; target under 1 ms p50).

Two gateways run in this process over one SQLite store, each on uvicorn in a thread,
serving the repo's echo server:
- `guarded`: the real `gateway.access.guard` in `local` auth mode (RS256 token validation,
  access and tool policy, per-identity/server/tool rate limits in memory, invocation
  audit), with an access policy and a tool policy on the server;
- `bare`: the same app with the guard replaced by a pass-through.
The calls alternate between the two (one MCP session each, JSON answer mode), so both
see the same machine load. Reported: p50/p99 of the round trips of each, their
difference, and the guard's own time measured inside the guarded gateway (its time in
`dispatch` minus the time of the request handler, plus authentication), as wall time
and as the loop thread's CPU time. The request body is read before the clock starts:
waiting for the client's bytes is not the guard's cost, and the bare gateway waits for
them too. The CPU figure also leaves out what the GIL hands to the other threads of
this process (the client, the other gateway) in the middle of a guard call.
Usage: `python bench/auth_overhead.py [--calls 2000]`. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import sys
import tempfile
import threading
import time
import timeit
from pathlib import Path
from typing import Any

import httpx
import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shared.auth.authenticator import ANONYMOUS_ADMIN  # noqa: E402
from shared.auth.principal import AuthMode, Role  # noqa: E402
from shared.auth.tokens import LocalIssuer  # noqa: E402
from shared.models import AccessPolicy, PackageSource, Server, ServerSpec  # noqa: E402
from shared.settings import Settings  # noqa: E402
from shared.store import SQLiteDocumentStore  # noqa: E402

from gateway.app import create_app  # noqa: E402
from gateway.access.guard import Guard  # noqa: E402
from gateway.access.policy import bind_caller  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
HEADERS = {"accept": "application/json", "content-type": "application/json"}


class TimedGuard:
    """Wraps the real guard; records its own seconds per request (handler excluded)."""

    def __init__(self, guard: Guard) -> None:
        self.guard, self.samples, self.cpu_samples = guard, [], []
        self.auth = self
        self._auth = guard.auth

    async def authenticate(self, request: Any, name: str) -> Any:
        await request.body()  # the client's bytes arrive before the clock starts
        started, cpu = time.perf_counter(), time.thread_time()
        principal = await self._auth.authenticate(request, name)
        request.state.auth_s = (time.perf_counter() - started, time.thread_time() - cpu)
        return principal

    async def dispatch(self, request: Any, server: Server, handler: Any) -> Any:
        handled = (0.0, 0.0)

        async def timed(bound: Server) -> Any:
            nonlocal handled
            started, cpu = time.perf_counter(), time.thread_time()
            try:
                return await handler(bound)
            finally:
                handled = (time.perf_counter() - started, time.thread_time() - cpu)

        started, cpu = time.perf_counter(), time.thread_time()
        response = await self.guard.dispatch(request, server, timed)
        auth_s, auth_cpu = request.state.auth_s
        self.samples.append(time.perf_counter() - started - handled[0] + auth_s)
        self.cpu_samples.append(time.thread_time() - cpu - handled[1] + auth_cpu)
        return response

    def start(self) -> None:
        self.guard.start()

    async def stop(self) -> None:
        await self.guard.stop()


class _NoGuard:
    """Pass-through: every caller is anonymous, nothing checked, limited or recorded."""

    def __init__(self) -> None:
        self.auth = self

    async def authenticate(self, request: Any, name: str) -> Any:
        return ANONYMOUS_ADMIN

    async def dispatch(self, request: Any, server: Server, handler: Any) -> Any:
        with bind_caller(ANONYMOUS_ADMIN, server.spec):  # sessions still need an owner
            return await handler(server)

    def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass


def serve(app: Any) -> tuple[str, uvicorn.Server]:
    """Serve `app` on uvicorn in a daemon thread; its base URL and server."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="error", lifespan="on"))
    threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
    while not server.started:
        time.sleep(0.01)
    return f"http://127.0.0.1:{sock.getsockname()[1]}", server


async def open_session(http: httpx.AsyncClient, url: str, headers: dict[str, str]) -> dict[str, str]:
    """Open an initialized MCP session; the headers that address it."""
    init = {"jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                       "clientInfo": {"name": "bench", "version": "0"}}}
    reply = await http.post(url, json=init, headers={**HEADERS, **headers})
    reply.raise_for_status()
    session = {**HEADERS, **headers, "mcp-session-id": reply.headers["mcp-session-id"],
               "mcp-protocol-version": "2025-11-25"}
    await http.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=session)
    return session


def ms(values: list[float], q: float) -> float:
    """The `q` quantile of `values` (seconds) in milliseconds."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def _run(calls: int, data: Path) -> None:
    store = SQLiteDocumentStore(data / "store.sqlite")
    spec = ServerSpec(name="echo", kind="package", package=PackageSource(
        command=sys.executable, args=["-m", "catalog.echo.server"], env={"PYTHONPATH": str(REPO)}),
        access=AccessPolicy(roles=[Role.READER], tools={"add": [Role.ADMIN]}))
    store.upsert("servers", {"id": "echo", **Server(name="echo", spec=spec, status="Running").model_dump(mode="json")})
    settings = Settings(data_dir=data, auth_mode=AuthMode.LOCAL, gateway_rate_limit_identity="1000000/minute",
                        gateway_rate_limit_server="1000000/minute", gateway_rate_limit_tool="1000000/minute")
    guarded_app, bare_app = create_app(settings, store), create_app(settings, store)
    timed = TimedGuard(guarded_app.state.gateway.guard)
    guarded_app.state.gateway.guard = timed
    bare_app.state.gateway.guard = _NoGuard()
    (guarded_url, guarded), (bare_url, bare) = serve(guarded_app), serve(bare_app)
    token = LocalIssuer(settings.auth_key_path).mint("bench", [Role.READER])
    rounds: dict[str, list[float]] = {"guarded": [], "bare": []}
    try:
        # TCP_NODELAY: httpx writes headers and body separately; without it Nagle plus the
        # peer's delayed ACK adds ~40 ms to random requests and drowns the figures.
        nodelay = httpx.AsyncHTTPTransport(socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])
        async with httpx.AsyncClient(timeout=30, transport=nodelay) as http:
            targets = {"guarded": (f"{guarded_url}/servers/echo/mcp",
                                   await open_session(http, f"{guarded_url}/servers/echo/mcp",
                                                  {"authorization": f"Bearer {token}"})),
                       "bare": (f"{bare_url}/servers/echo/mcp",
                                await open_session(http, f"{bare_url}/servers/echo/mcp", {}))}
            for i in range(1, calls + 1):
                for name, (url, headers) in targets.items():
                    call = {"jsonrpc": "2.0", "id": i, "method": "tools/call",
                            "params": {"name": "echo", "arguments": {"message": "x"}}}
                    started = time.perf_counter()
                    reply = await http.post(url, json=call, headers=headers)
                    rounds[name].append(time.perf_counter() - started)
                    assert reply.status_code == 200 and "result" in reply.json(), reply.text
        await asyncio.sleep(0.5)  # let the audit writer catch up before counting
    finally:
        guarded.should_exit = bare.should_exit = True
        await asyncio.sleep(1.0)
    guard, guard_cpu = timed.samples[-calls:], timed.cpu_samples[-calls:]
    print(f"tools/call round trips, {calls} each, alternating (ms):")
    for name, values in rounds.items():
        print(f"  {name:8s} p50 {ms(values, 0.5):7.3f}  p99 {ms(values, 0.99):7.3f}")
    print(f"  added    p50 {ms(rounds['guarded'], 0.5) - ms(rounds['bare'], 0.5):7.3f}  "
          f"p99 {ms(rounds['guarded'], 0.99) - ms(rounds['bare'], 0.99):7.3f}")
    print(f"guard's own time inside the gateway (ms): p50 {ms(guard, 0.5):.3f}  p99 {ms(guard, 0.99):.3f}  "
          f"mean {statistics.fmean(guard) * 1000:.3f}")
    print(f"guard's own CPU time (ms, loop thread): p50 {ms(guard_cpu, 0.5):.3f}  "
          f"p99 {ms(guard_cpu, 0.99):.3f}  mean {statistics.fmean(guard_cpu) * 1000:.3f}")
    print(f"machine speed now: {empty_loop_ns():.1f} ns per empty Python loop step (lower is faster; "
          "compare runs only at similar speeds)")
    print(f"invocations recorded: {len(store.query('invocations'))}")


def empty_loop_ns() -> float:
    """Nanoseconds per step of an empty loop: how loaded the (shared) machine is."""
    return min(timeit.repeat("pass", number=200_000, repeat=5)) / 200_000 * 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data:
        asyncio.run(_run(args.calls, Path(data)))


if __name__ == "__main__":
    main()
