"""The gateway at scale (issue 15): how session setup, memory, descriptors and the
per-request server lookup change with the number of sessions and servers.

Every figure is taken on the production path: local-issuer token verified on each
request, access policy, rate limits (per caller, server and tool, raised far above the
load so none refuses), invocation audit and the default sandbox (bubblewrap) around
each child. The hosted server is server-everything (npm) over stdio.

Sections (each starts its own gateway, `python -m gateway`, and stops it after):
1. Session setup. N new sessions at once (N = 10, 100, 1,000), each `initialize` +
   `notifications/initialized` + a first `tools/call echo`, then DELETE. The load is
   wrk (bench/wrk_session_setup.lua: one connection per session, wall clock from
   CLOCK_MONOTONIC), not a Python client, which would measure itself. Printed per run:
   sessions/s (finished sessions over the span from the first `initialize` sent to
   the last first call answered), setup seconds (initialize sent -> first call
   answered) p50/p99, the first `tools/call` alone p50/p99, the gateway process's CPU
   per session (utime + stime from /proc: the figure least moved by other load on the
   machine; 1,000 / it is the rate one free core would allow), refusals by status (a
   503 must carry Retry-After) and socket errors (resets). Shared mode runs every N with
   the session cap above N; isolated mode (a sandboxed child per session) runs 10 and
   100 under a cap of --isolated-cap and 1,000 against that cap with every session left
   open, so every session beyond the cap must be a 503 with Retry-After. Ratio: each N's rate over N = 10's, in
   the same round.
2. Memory and descriptors per idle session. --idle sessions are opened (httpx, off
   the clock, then the client closes its connections) and left idle; the gateway's
   RSS (/proc/<pid>/status VmRSS) and open descriptors (/proc/<pid>/fd) are read
   before, with them open, and after they were all DELETEd, twice over, so what a
   cycle leaves behind shows as growth from cycle 1 to cycle 2. Isolated sessions
   also report their children's RSS (the process tree under the gateway).
3. Server lookup. N servers registered (N = 10, 100, 1,000), wrk sends POSTs without a
   session to a random one of them (bench/wrk_lookup.lua, answered 400 after
   authentication, lookup and the guard, never reaching a child); calls/s and p50/p99,
   ratio vs N = 10 in the same round.

Run: `make bench-scale-gateway`, or `.venv/bin/python bench/scale_gateway.py
[--rounds N] [--sizes 10,100,1000]`. Needs wrk and `npm ci` (server-everything).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import tempfile
from pathlib import Path

import httpx
from mcp_load import delete_session, open_session, tree_cpu, wrk_path
from targets import EVERYTHING, REPO, Target, start_gateway

from shared.models import SessionMode  # noqa: E402  (importable once `targets` ran)

BENCH = Path(__file__).resolve().parent
SETUP_SCRIPT = BENCH / "wrk_session_setup.lua"
LOOKUP_SCRIPT = BENCH / "wrk_lookup.lua"
SERVER = "everything"
ECHO_CALL = '"method":"tools/call","params":{"name":"echo","arguments":{"message":"hi"}}}'
WRK_THREADS = 2  # the machine's cores; every N here is a multiple
SETUP_TIMEOUT = "60s"  # a session slower than this is a failure worth seeing
LOOKUP_SECONDS = 5


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile `q` (0-100) of `values` (nan when empty)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


async def wrk(script: Path, url: str, connections: int, seconds: int, env: dict[str, str],
              timeout: str = "10s") -> dict:
    """One wrk run; the `BENCH_JSON` object its script printed. RuntimeError otherwise.
    A script that marks its threads done in $MCP_DONE_DIR ends the run early (SIGINT:
    wrk then prints its summary as at the end of -d)."""
    threads = min(WRK_THREADS, connections)
    with tempfile.TemporaryDirectory(prefix="mcpaas-wrk-") as done_dir:
        proc = await asyncio.create_subprocess_exec(
            wrk_path(), "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s",
            "--timeout", timeout, "-s", str(script), url,
            env={**os.environ, "MCP_THREADS": str(threads), "MCP_DONE_DIR": done_dir, **env},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        finished = asyncio.create_task(proc.communicate())
        while not finished.done() and len(os.listdir(done_dir)) < threads:
            await asyncio.wait([finished], timeout=0.05)
        if not finished.done():
            proc.send_signal(signal.SIGINT)
        out, err = await finished
    for line in out.decode().splitlines():
        if line.startswith("BENCH_JSON "):
            return json.loads(line.removeprefix("BENCH_JSON "))
    raise RuntimeError(f"wrk exited {proc.returncode} without figures: {err.decode()[-500:]}")


async def gateway(tmp: Path, servers: dict[str, SessionMode], cap: int) -> Target:
    """A production-path gateway serving `servers`, `cap` sessions per server."""
    return await start_gateway(tmp, servers, {"MCPAAS_GATEWAY_MAX_SESSIONS_PER_SERVER": str(cap)},
                               production=True)


# -- 1. session setup ----------------------------------------------------------------
async def setup_run(target: Target, n: int, keep: bool = False) -> dict:
    """N sessions at once on the target's server (left open with `keep`); the figures."""
    url = f"{target.base}/servers/{SERVER}/mcp"
    cpu_before = tree_cpu(target.proc.pid)[0]
    result = await wrk(SETUP_SCRIPT, url, n, 120, {
        "MCP_SETUP_SESSIONS": str(n), "MCP_TOOL_CALL": ECHO_CALL, "MCP_KEEP": "1" if keep else "0",
        "MCP_AUTHORIZATION": target.auth.get("Authorization", "")}, SETUP_TIMEOUT)
    cpu = tree_cpu(target.proc.pid)[0] - cpu_before
    setup, call = result["setup"], result["call"]
    span = result["span"]
    return {"n": n, "ok": len(setup), "cpu_ms": cpu * 1000 / max(len(setup), 1),
            "rate": len(setup) / span if span else 0.0,
            "setup50": pct(setup, 50), "setup99": pct(setup, 99),
            "call50": pct(call, 50), "call99": pct(call, 99), "refused": result["refused"],
            "no_retry_after": result["no_retry_after"],
            "socket": sum(result["socket_errors"].values()),
            "socket_kinds": {k: v for k, v in result["socket_errors"].items() if v}}


def print_setup(mode: str, fig: dict, base_rate: float | None) -> None:
    """One line per run; refusals and socket errors spelled out."""
    ratio = f"{fig['rate'] / base_rate:5.2f}x" if base_rate else "   - "
    print(f"  {mode:8} N={fig['n']:<5} ok {fig['ok']:5}  {fig['rate']:8.1f} sessions/s ({ratio} of N=10)  "
          f"setup p50 {fig['setup50'] * 1000:8.1f} p99 {fig['setup99'] * 1000:8.1f} ms  "
          f"first call p50 {fig['call50'] * 1000:7.1f} p99 {fig['call99'] * 1000:7.1f} ms  "
          f"gateway CPU {fig['cpu_ms']:5.2f} ms/session  "
          f"refused {fig['refused'] or '-'}  socket errors {fig['socket_kinds'] or 0}", flush=True)
    if fig["no_retry_after"]:
        print(f"  !!!!! {fig['no_retry_after']} 503 answers without Retry-After", flush=True)


async def setup_curves(args: argparse.Namespace) -> dict[tuple[str, int], list[dict]]:
    """Section 1, every round: shared then isolated, each N in turn."""
    figures: dict[tuple[str, int], list[dict]] = {}
    plans = (("shared", SessionMode.SHARED, max(args.sizes) + 1, args.sizes),
             ("isolated", SessionMode.ISOLATED, args.isolated_cap, args.sizes))
    for round_no in range(1, args.rounds + 1):
        print(f"== session setup, round {round_no} of {args.rounds} ==", flush=True)
        for mode, session_mode, cap, sizes in plans:
            if mode not in args.modes:
                continue
            with tempfile.TemporaryDirectory(prefix="mcpaas-scale-") as tmp:
                target = await gateway(Path(tmp), {SERVER: session_mode}, cap)
                try:
                    await setup_run(target, WRK_THREADS)  # warm-up, discarded: the first child starts
                    base = None
                    for n in sizes:
                        # beyond the isolated cap the sessions stay open, so the cap holds
                        fig = await setup_run(target, n, keep=n > cap)
                        base = base or fig["rate"]
                        print_setup(mode, fig, base if n != sizes[0] else None)
                        figures.setdefault((mode, n), []).append(fig)
                        await asyncio.sleep(1)  # children of DELETEd sessions end
                finally:
                    target.stop()
    return figures


def summarize_setup(figures: dict[tuple[str, int], list[dict]]) -> None:
    """Medians over rounds, with the ratio of each N's rate to N = 10's."""
    print("\n== session setup: medians over rounds ==")
    print(f"  {'mode':8} {'N':>5} {'ok':>5} {'sessions/s':>10} {'vs N=10':>7} {'setup p50':>9} "
          f"{'p99 ms':>8} {'call p50':>8} {'p99 ms':>8} {'CPU ms/session':>14}  refused")
    for (mode, n), figs in figures.items():
        med = {k: statistics.median(f[k] for f in figs)
               for k in ("ok", "rate", "setup50", "setup99", "call50", "call99", "cpu_ms")}
        base = figures.get((mode, min(k[1] for k in figures if k[0] == mode)))
        ratio = med["rate"] / statistics.median(f["rate"] for f in base) if base else float("nan")
        refused = figs[-1]["refused"] or "-"
        print(f"  {mode:8} {n:5} {med['ok']:5.0f} {med['rate']:10.1f} {ratio:6.2f}x "
              f"{med['setup50'] * 1000:9.1f} {med['setup99'] * 1000:8.1f} {med['call50'] * 1000:8.1f} "
              f"{med['call99'] * 1000:8.1f} {med['cpu_ms']:14.2f}  {refused}")


# -- 2. memory and descriptors -----------------------------------------------------
def rss_kib(pid: int) -> int:
    """Resident set size of `pid` in KiB (0 once it exited)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def fds(pid: int) -> int:
    """Open descriptors of `pid`."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def descendants(root: int) -> list[int]:
    """Pids of every live process under `root`."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents.setdefault(int(stat[stat.rindex(")") + 2:].split()[1]), []).append(int(entry))
    found, todo = [], list(parents.get(root, []))
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(parents.get(pid, []))
    return found


async def open_idle(target: Target, n: int) -> list[str]:
    """`n` sessions with one `tools/call` each, opened 50 at a time; the client's
    connections are closed before this returns."""
    url = f"{target.base}/servers/{SERVER}/mcp"
    limits = httpx.Limits(max_connections=50)
    async with httpx.AsyncClient(timeout=120, limits=limits) as http:
        opened = await asyncio.gather(*(open_session(http, url, target.auth) for _ in range(n)))
    return [sid for _, sid in opened]


async def close_all(target: Target, sids: list[str]) -> None:
    """DELETE every session in `sids`."""
    url = f"{target.base}/servers/{SERVER}/mcp"
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=50)) as http:
        await asyncio.gather(*(delete_session(http, url, sid, target.auth) for sid in sids))


async def idle_cost(mode: str, session_mode: SessionMode, n: int) -> None:
    """Section 2 for one mode: two open/idle/close cycles of `n` sessions."""
    with tempfile.TemporaryDirectory(prefix="mcpaas-scale-mem-") as tmp:
        target = await gateway(Path(tmp), {SERVER: session_mode}, n + 1)
        pid = target.proc.pid
        try:
            await close_all(target, await open_idle(target, 10))  # warm: first child, caches
            await asyncio.sleep(1)
            before = (rss_kib(pid), fds(pid))
            for cycle in (1, 2):
                sids = await open_idle(target, n)
                await asyncio.sleep(0.5)
                held = (rss_kib(pid), fds(pid))
                kids = sum(rss_kib(p) for p in descendants(pid))
                await close_all(target, sids)
                await asyncio.sleep(2)  # ended children are reaped
                after = (rss_kib(pid), fds(pid))
                print(f"  {mode:8} cycle {cycle}: {n} idle sessions: gateway RSS "
                      f"{(held[0] - before[0]) / n:7.1f} KiB/session, "
                      f"fds {(held[1] - before[1]) / n:5.2f}/session"
                      + (f", children {kids / n / 1024:6.1f} MiB/session" if session_mode is SessionMode.ISOLATED
                         else "")
                      + f"; after all ended: RSS {after[0] - before[0]:+6d} KiB, fds {after[1] - before[1]:+d} "
                      f"vs before, {len(descendants(pid))} processes under the gateway", flush=True)
        finally:
            target.stop()


# -- 3. server lookup ----------------------------------------------------------------
async def lookup_curves(args: argparse.Namespace) -> None:
    """Section 3: calls/s and latency of the lookup path with N registered servers."""
    figures: dict[int, list[dict]] = {}
    for round_no in range(1, args.rounds + 1):
        print(f"== server lookup, round {round_no} of {args.rounds} ==", flush=True)
        for n in args.sizes:
            with tempfile.TemporaryDirectory(prefix="mcpaas-scale-lookup-") as tmp:
                target = await gateway(Path(tmp), {f"s{i}": SessionMode.SHARED for i in range(n)}, 64)
                try:
                    env = {"MCP_SERVERS": str(n), "MCP_AUTHORIZATION": target.auth["Authorization"]}
                    await wrk(LOOKUP_SCRIPT, target.base, 16, 2, env)  # warm-up, discarded
                    fig = await wrk(LOOKUP_SCRIPT, target.base, 16, LOOKUP_SECONDS, env)
                finally:
                    target.stop()
            rate = fig["requests"] / fig["seconds"]
            bad = fig["failures"] + fig["socket_errors"]
            print(f"  {n:5} servers: {rate:8.1f} req/s  p50 {fig['p50'] / 1000:6.2f}  "
                  f"p99 {fig['p99'] / 1000:6.2f} ms" + (f"  !!!!! {bad} failures" if bad else ""), flush=True)
            if not bad:
                figures.setdefault(n, []).append({"rate": rate, **fig})
    print("\n== server lookup: medians over rounds (c=16) ==")
    base = statistics.median(f["rate"] for f in figures[args.sizes[0]]) if args.sizes[0] in figures else None
    for n, figs in figures.items():
        rate = statistics.median(f["rate"] for f in figs)
        print(f"  {n:5} servers: {rate:8.1f} req/s ({rate / base if base else float('nan'):4.2f}x of "
              f"{args.sizes[0]})  p50 {statistics.median(f['p50'] for f in figs) / 1000:6.2f}  "
              f"p99 {statistics.median(f['p99'] for f in figs) / 1000:6.2f} ms")


async def main() -> None:
    """Every section in turn (or those named by --only)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sizes", default="10,100,1000",
                        type=lambda s: [int(x) for x in s.split(",")],
                        help="session and server counts (multiples of 2)")
    parser.add_argument("--isolated-cap", type=int, default=100,
                        help="session cap of the isolated server (children are real processes)")
    parser.add_argument("--idle", type=int, default=1000, help="idle shared sessions (section 2)")
    parser.add_argument("--idle-isolated", type=int, default=50, help="idle isolated sessions")
    parser.add_argument("--only", default="setup,memory,lookup", help="sections to run")
    parser.add_argument("--modes", default="shared,isolated", help="session modes of section 1")
    args = parser.parse_args()
    wrk_path()
    if not EVERYTHING.exists():
        raise SystemExit(f"{EVERYTHING} missing: run `npm ci` in {REPO}")
    sections = args.only.split(",")
    if "setup" in sections:
        summarize_setup(await setup_curves(args))
    if "memory" in sections:
        print("\n== memory and descriptors per idle session ==", flush=True)
        await idle_cost("shared", SessionMode.SHARED, args.idle)
        await idle_cost("isolated", SessionMode.ISOLATED, args.idle_isolated)
    if "lookup" in sections:
        print(flush=True)
        await lookup_curves(args)


if __name__ == "__main__":
    asyncio.run(main())
