"""Benchmark: what emitting cost events adds to a gateway `tools/call` (issue 12
"Measure"; target under 0.5 ms p50 per call, FR-026).

Two gateways run in this process over one SQLite store, each on uvicorn in a thread,
serving the repo's echo server through the real guard (`local` auth, access and tool
policy, rate limits, invocation audit): `costs` with cost events on, `plain` with them
off (settings `cost_events`). Calls alternate between the two (one MCP session each,
JSON answer mode), so both see the same machine load. Reported: p50/p99 round trips of
each and their difference; the guard's own CPU time in each (`TimedGuard` of
bench/auth_overhead.py: authentication, checks, audit and cost capture, handler
excluded); and the CPU time the costs writer spends per event off the request path
(`shared.costs.prepare`: parsing and estimating, in its worker thread).
Usage: `python bench/cost_events.py [--calls 2000] [--text-bytes 200]`. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
import tempfile
import timeit
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.auth_overhead import TimedGuard, empty_loop_ns, ms, open_session, serve  # noqa: E402
from shared import costs  # noqa: E402
from shared.auth.principal import AuthMode, Role  # noqa: E402
from shared.auth.tokens import LocalIssuer  # noqa: E402
from shared.models import AccessPolicy, PackageSource, Server, ServerSpec  # noqa: E402
from shared.settings import Settings  # noqa: E402
from shared.store import SQLiteDocumentStore  # noqa: E402

from gateway.app import create_app  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def _gateway(data: Path, store: SQLiteDocumentStore, emit: bool) -> tuple[str, object, TimedGuard]:
    settings = Settings(data_dir=data, auth_mode=AuthMode.LOCAL, cost_events=emit,
                        gateway_rate_limit_identity="1000000/minute", gateway_rate_limit_server="1000000/minute",
                        gateway_rate_limit_tool="1000000/minute")
    app = create_app(settings, store)
    timed = TimedGuard(app.state.gateway.guard)
    app.state.gateway.guard = timed
    url, server = serve(app)
    return url, server, timed


def _prepare_us(message: str) -> float:
    """Microseconds of CPU the costs writer spends on one event like the bench's."""
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "echo", "arguments": {"message": message}}}
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "result": {"content": [{"type": "text", "text": message}]}}).encode()

    def once() -> None:
        costs.prepare(costs.capture(server="echo", actor="bench", scope="", model="gpt-4o", message=call,
                                    status=200, latency_ms=1.0, bytes_in=len(body), bytes_out=len(body), body=body))
    return min(timeit.repeat(once, number=2000, repeat=5)) / 2000 * 1e6


async def _run(calls: int, text_bytes: int, data: Path) -> None:
    store = SQLiteDocumentStore(data / "store.sqlite")
    spec = ServerSpec(name="echo", kind="package", model="gpt-4o", package=PackageSource(
        command=sys.executable, args=["-m", "catalog.echo.server"], env={"PYTHONPATH": str(REPO)}),
        access=AccessPolicy(roles=[Role.READER], tools={"add": [Role.ADMIN]}))
    store.upsert("servers", {"id": "echo", **Server(name="echo", spec=spec, status="Running").model_dump(mode="json")})
    gateways = {"costs": _gateway(data, store, True), "plain": _gateway(data, store, False)}
    token = LocalIssuer(data / "auth" / "signing-key.pem").mint("bench", [Role.READER])
    rounds: dict[str, list[float]] = {name: [] for name in gateways}
    message = "x" * text_bytes
    try:
        nodelay = httpx.AsyncHTTPTransport(socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])
        async with httpx.AsyncClient(timeout=30, transport=nodelay) as http:
            targets = {}
            for name, (url, _, _) in gateways.items():
                endpoint = f"{url}/servers/echo/mcp"
                targets[name] = endpoint, await open_session(http, endpoint, {"authorization": f"Bearer {token}"})
            for i in range(1, calls + 1):
                for name, (url, headers) in targets.items():
                    call = {"jsonrpc": "2.0", "id": i, "method": "tools/call",
                            "params": {"name": "echo", "arguments": {"message": message}}}
                    started = asyncio.get_running_loop().time()
                    reply = await http.post(url, json=call, headers=headers)
                    rounds[name].append(asyncio.get_running_loop().time() - started)
                    assert reply.status_code == 200 and "result" in reply.json(), reply.text
        await asyncio.sleep(1.0)  # let the writers catch up before counting
    finally:
        for _, server, _ in gateways.values():
            server.should_exit = True  # type: ignore[attr-defined]
        await asyncio.sleep(1.0)
    print(f"tools/call round trips, {calls} each, alternating, {text_bytes}-character argument and result (ms):")
    for name, values in rounds.items():
        print(f"  {name:6s} p50 {ms(values, 0.5):7.3f}  p99 {ms(values, 0.99):7.3f}")
    print(f"  added  p50 {ms(rounds['costs'], 0.5) - ms(rounds['plain'], 0.5):7.3f}  "
          f"p99 {ms(rounds['costs'], 0.99) - ms(rounds['plain'], 0.99):7.3f}")
    cpu = {name: timed.cpu_samples[-calls:] for name, (_, _, timed) in gateways.items()}
    print("guard's own CPU time on the loop thread (ms): " + "  ".join(
        f"{name} p50 {ms(values, 0.5):.3f}" for name, values in cpu.items())
        + f"  added p50 {ms(cpu['costs'], 0.5) - ms(cpu['plain'], 0.5):.3f}")
    print(f"costs writer, off the request path: {_prepare_us(message):.1f} us CPU per event (parse + estimate)")
    print(f"machine speed now: {empty_loop_ns():.1f} ns per empty Python loop step")
    print(f"cost events recorded: {len(store.query('cost_events'))} (expected {calls})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--text-bytes", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data:
        asyncio.run(_run(args.calls, args.text_bytes, Path(data)))


if __name__ == "__main__":
    main()
