"""The sandbox's cost (issue 10): child start median and `tools/call` p50 through the
gateway, with the bubblewrap sandbox and without it, same run, ratio printed.

Two gateways (`python -m gateway`, auth off, no rate limits: bench/auth_overhead.py
measures the guard) serve server-everything (node, over stdio) in `isolated` mode with
no warm pool, so every `initialize` starts a child. Start time = `initialize` round
trip of a new session (spawn + node start + handshake); the two gateways alternate
so drift hits both. Targets: p50 within 5%, start within +50 ms.

Run: `make bench-sandbox` (or `.venv/bin/python bench/sandbox.py [--starts N] [--calls N]`).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from targets import Target, start_gateway  # noqa: E402

from shared.models import SessionMode  # noqa: E402

HEADERS = {"accept": "application/json", "mcp-protocol-version": "2025-11-25"}
INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                   "clientInfo": {"name": "bench", "version": "0"}}}
CALL = {"jsonrpc": "2.0", "method": "tools/call", "params": {"name": "echo", "arguments": {"message": "hi"}}}


async def open_session(http: httpx.AsyncClient, url: str) -> tuple[str, float]:
    """A new session (a new child); returns its id and the initialize time in seconds."""
    started = time.perf_counter()
    reply = await http.post(url, json=INIT, headers=HEADERS)
    elapsed = time.perf_counter() - started
    reply.raise_for_status()
    session = reply.headers["mcp-session-id"]
    await http.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"},
                    headers={**HEADERS, "mcp-session-id": session})
    return session, elapsed


async def close(http: httpx.AsyncClient, url: str, session: str) -> None:
    await http.delete(url, headers={**HEADERS, "mcp-session-id": session})


async def call_times(http: httpx.AsyncClient, url: str, session: str, calls: int) -> list[float]:
    """Seconds per sequential `tools/call` echo on one session."""
    times = []
    for i in range(calls):
        started = time.perf_counter()
        reply = await http.post(url, json={**CALL, "id": i + 2},
                                headers={**HEADERS, "mcp-session-id": session})
        times.append(time.perf_counter() - started)
        assert "result" in reply.json(), reply.text
    return times


async def measure(targets: dict[str, Target], starts: int, calls: int) -> dict[str, dict[str, float]]:
    urls = {name: f"{t.base}/servers/everything/mcp" for name, t in targets.items()}
    start_times: dict[str, list[float]] = {name: [] for name in targets}
    call_p50: dict[str, list[float]] = {name: [] for name in targets}
    async with httpx.AsyncClient(timeout=60) as http:
        for url in urls.values():  # warm-up: npm/node caches, first imports
            session, _ = await open_session(http, url)
            await call_times(http, url, session, 50)
            await close(http, url, session)
        for _ in range(starts):
            for name, url in urls.items():
                session, elapsed = await open_session(http, url)
                start_times[name].append(elapsed)
                await close(http, url, session)
        # calls alternate between the gateways one by one, so load drift hits both alike
        sessions = {name: (await open_session(http, url))[0] for name, url in urls.items()}
        for _ in range(calls):
            for name, url in urls.items():
                call_p50[name] += await call_times(http, url, sessions[name], 1)
        for name, url in urls.items():
            await close(http, url, sessions[name])
    return {name: {"start_ms": statistics.median(start_times[name]) * 1000,
                   "p50_ms": statistics.median(call_p50[name]) * 1000} for name in targets}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=30)
    parser.add_argument("--calls", type=int, default=1000)
    args = parser.parse_args()
    targets: dict[str, Target] = {}
    with tempfile.TemporaryDirectory() as tmp:
        try:
            for mode in ("bwrap", "none"):
                targets[mode] = await start_gateway(
                    Path(tmp) / mode, {"everything": SessionMode.ISOLATED},
                    {"MCPAAS_GATEWAY_SANDBOX": mode, "MCPAAS_GATEWAY_WARM_POOL_SIZE": "0"})
            results = await measure(targets, args.starts, args.calls)
        finally:
            for target in targets.values():
                target.stop()
    sandboxed, bare = results["bwrap"], results["none"]
    print(f"{'':10} {'start median ms':>16} {'tools/call p50 ms':>18}")
    for name, row in (("sandbox", sandboxed), ("none", bare)):
        print(f"{name:10} {row['start_ms']:16.1f} {row['p50_ms']:18.3f}")
    print(f"start: +{sandboxed['start_ms'] - bare['start_ms']:.1f} ms "
          f"(ratio {sandboxed['start_ms'] / bare['start_ms']:.2f}; target +50 ms)")
    print(f"tools/call p50 ratio: {sandboxed['p50_ms'] / bare['p50_ms']:.3f} (target <= 1.05)")


if __name__ == "__main__":
    asyncio.run(main())
