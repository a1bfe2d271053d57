"""Gateway benchmark (issue 3, "Measure"): server-everything's `echo` tool through this
gateway and its peers, all in one run, loopback only, bounded in time.

Targets (each a Streamable HTTP endpoint on 127.0.0.1, started by bench/targets.py):
  isolated     this gateway, session mode `isolated` (a child per session)
  shared       this gateway, session mode `shared` (one child for all sessions)
  production   this gateway on the production path (issue 10): session mode `isolated`,
               local-issuer token verified, access policy and rate limits (per caller,
               server and tool, far above the bench's load) evaluated on every call,
               invocation audit, and the default sandbox (bubblewrap) around each child
  supergateway `supergateway --stateful` from npm (a child per session)
  mcp-proxy    `mcp-proxy` from PyPI (one shared child)
  baseline     server-everything's own `streamableHttp` mode (no gateway)

Method. The load comes from wrk (bench/wrk_echo.lua), not from Python: a Python client
saturates a core by itself near 1000 calls/s and would measure itself. For concurrency
N (1 and 16) the harness opens N MCP sessions with httpx (initialize +
notifications/initialized), then runs `wrk -tN -cN`: one thread, one keep-alive
connection and one session per client, each calling `tools/call echo` back to back. A
discarded warm-up run (WARMUP_SECONDS) precedes each measured run (--seconds); then
every session is DELETEd, so the gateway's per-server session cap is never reached.
Every response must be 200 with a `result`: a run with any failure is flagged loudly
and left out of the medians.

Each round starts every target in turn (the gateway process serves both isolated and
shared), measures c=1 then c=16 and stops it, so targets never share the CPU and the
machine's noise is spread over all of them round by round. Printed per run:
throughput (calls/s), p50/p95/p99 latency (ms), and CPU per call (us) of the target's
process tree, root process vs its children (the stdio servers), from /proc. The summary
gives the median over rounds and the ratios the issue sets targets for (c=16:
isolated >= 1.5x supergateway, shared >= mcp-proxy and baseline; c=1: p50 within
0.5 ms of baseline). While isolated runs at c=16, a poller times
`GET /servers/everything/status` every 20 ms (FR-017: p95 under 200 ms under load).

`isolated` and `shared` run with auth off, no rate limits and no sandbox, as the peers
authenticate, limit and sandbox nothing; `production` has all of it on (target at c=16:
>= 1.5x supergateway too); bench/auth_overhead.py measures the guard's own cost.

Warm pool (issue 3: "an optional warm pool of pre-spawned children cuts first-call
latency"): the gateway is started with MCPAAS_GATEWAY_WARM_POOL_SIZE=0 and then =4;
each time, --pool-sessions new isolated sessions are opened one after another (the pool
refills in between) and `initialize` and the first `tools/call` are timed.

Needs: wrk (`apt-get install -y wrk`); `npm ci` (server-everything, supergateway).
mcp-proxy pins `mcp<2`, which conflicts with this project's `mcp>=2.3`, so it lives in
its own venv: `python3 -m venv .venv-peers && .venv-peers/bin/pip install
mcp-proxy==0.13.0` (or point MCPAAS_BENCH_MCP_PROXY at an mcp-proxy binary). A peer
that is missing or does not start is reported and skipped; the run goes on.

Run: `make bench-gateway`, or `.venv/bin/python bench/gateway.py [--rounds N] [--seconds S]` (defaults 3 and
8; about 2 minutes per round plus the warm-pool section).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from mcp_load import (WrkResult, delete_session, echo, open_session, poll_status, run_wrk,
                      tree_cpu, wrk_path)
from targets import EVERYTHING, PEERS, REPO, Target, start_gateway, start_peer

# importable once `targets` has put the repo on sys.path
from shared.models import SessionMode  # noqa: E402

TARGETS = ("isolated", "shared", "production", *PEERS)
CONCURRENCY = (1, 16)
WARMUP_SECONDS = 2
POOL_REFILL_SECONDS = 1.5


@dataclass
class Figure:
    """One measured run: wrk's figures and the target tree's CPU per call (us)."""

    wrk: WrkResult
    cpu_root_us: float
    cpu_children_us: float

    @property
    def valid(self) -> bool:
        """Every call answered with a result, and there were calls."""
        return self.wrk.requests > 0 and self.wrk.failed == 0


@dataclass
class Results:
    """Valid figures per (target, concurrency) over the rounds, and the rest."""

    figures: dict[tuple[str, int], list[Figure]] = field(default_factory=dict)
    invalid: int = 0
    status_timings: list[float] = field(default_factory=list)  # seconds


async def open_sessions(http: httpx.AsyncClient, url: str, n: int,
                        auth: dict[str, str] | None = None) -> list[str]:
    """`n` sessions on `url`, opened concurrently; on any failure the ones that did
    open are deleted and the first error is raised."""
    opened = await asyncio.gather(*(open_session(http, url, auth) for _ in range(n)),
                                  return_exceptions=True)
    sids = [s[1] for s in opened if isinstance(s, tuple)]
    errors = [e for e in opened if isinstance(e, BaseException)]
    if errors:
        await close_sessions(http, url, sids, auth)
        raise errors[0]
    return sids


async def close_sessions(http: httpx.AsyncClient, url: str, sids: list[str],
                         auth: dict[str, str] | None = None) -> None:
    """DELETE every session in `sids`; says so when a target refused any."""
    deleted = await asyncio.gather(*(delete_session(http, url, s, auth) for s in sids))
    if not all(deleted):
        print(f"  warning: {deleted.count(False)} of {len(sids)} DELETEs failed on {url}")


async def measure(http: httpx.AsyncClient, url: str, clients: int, seconds: int, pid: int,
                  status_url: str | None = None,
                  auth: dict[str, str] | None = None) -> tuple[Figure, list[float]]:
    """Warm-up then a measured wrk run of `clients` sessions on `url` for `seconds`,
    with the CPU of process tree `pid` around the measured run; every request carries
    the credential headers `auth`. Returns the figure and, when `status_url` is given,
    the status poll timings (seconds) during the run."""
    sids = await open_sessions(http, url, clients, auth)
    try:
        await run_wrk(url, sids, WARMUP_SECONDS, auth)
        stop_polling = asyncio.Event()
        poller = (asyncio.create_task(poll_status(http, status_url, stop_polling, auth))
                  if status_url else None)
        root_before, children_before = tree_cpu(pid)
        try:
            result = await run_wrk(url, sids, seconds, auth)
        finally:
            stop_polling.set()
            timings = await poller if poller else []
        root_after, children_after = tree_cpu(pid)
    finally:
        await close_sessions(http, url, sids, auth)
    per_call = 1e6 / max(result.requests, 1)
    return Figure(result, (root_after - root_before) * per_call,
                  (children_after - children_before) * per_call), timings


def print_figure(label: str, c: int, fig: Figure) -> None:
    """One line per run; a loud one more when it had failures."""
    w = fig.wrk
    print(f"  {label:13} c={c:<3} {w.throughput:8.1f} calls/s  p50 {w.p50 / 1000:6.2f}  "
          f"p95 {w.p95 / 1000:6.2f}  p99 {w.p99 / 1000:6.2f} ms  cpu/call "
          f"{fig.cpu_root_us:6.0f} root + {fig.cpu_children_us:6.0f} children us", flush=True)
    if not fig.valid:
        print(f"  !!!!! {label} c={c} FAILED: {w.failures} of {w.requests} calls with a bad "
              f"status or no result, {w.socket_errors} socket errors: NOT A VALID FIGURE, "
              "left out of the medians", flush=True)


async def measure_target(http: httpx.AsyncClient, label: str, url: str, target: Target,
                         args: argparse.Namespace, results: Results,
                         status_url: str | None = None) -> None:
    """c=1 then c=16 on one endpoint; figures go to `results`. Status polling (when
    `status_url` is given) runs during c=16 only."""
    for c in CONCURRENCY:
        fig, timings = await measure(http, url, c, args.seconds, target.proc.pid,
                                     status_url if c == 16 else None, target.auth)
        print_figure(label, c, fig)
        if fig.valid:
            results.figures.setdefault((label, c), []).append(fig)
        else:
            results.invalid += 1
        if timings:
            results.status_timings.extend(timings)
            print(f"  {'':13} status under this load: {describe_timings(timings)}")


async def run_round(http: httpx.AsyncClient, args: argparse.Namespace,
                    results: Results) -> None:
    """Every target once, one at a time; a target that cannot start or breaks under
    load is reported and skipped."""
    with tempfile.TemporaryDirectory(prefix="mcpaas-bench-") as tmp:
        await run_one(http, "gateway", args, results, lambda: start_gateway(Path(tmp), {
            "everything": SessionMode.ISOLATED, "everything-shared": SessionMode.SHARED}))
    with tempfile.TemporaryDirectory(prefix="mcpaas-bench-prod-") as tmp:
        await run_one(http, "production", args, results, lambda: start_gateway(
            Path(tmp), {"everything": SessionMode.ISOLATED}, production=True))
    for peer in PEERS:
        await run_one(http, peer, args, results, lambda p=peer: start_peer(p))


async def run_one(http: httpx.AsyncClient, name: str, args: argparse.Namespace,
                  results: Results, start: Callable[[], Awaitable[Target]]) -> None:
    """Start target `name` with `start()`, measure it, stop it."""
    try:
        target = await start()
    except RuntimeError as exc:
        print(f"  {name:13} skipped: {exc}", flush=True)
        return
    try:
        if name == "gateway":
            base = target.base
            await measure_target(http, "isolated", f"{base}/servers/everything/mcp", target,
                                 args, results, f"{base}/servers/everything/status")
            await measure_target(http, "shared", f"{base}/servers/everything-shared/mcp",
                                 target, args, results)
        elif name == "production":
            await measure_target(http, name, f"{target.base}/servers/everything/mcp", target,
                                 args, results)
        else:
            await measure_target(http, name, f"{target.base}/mcp", target, args, results)
    except Exception as exc:  # a target that breaks under load is reported, not fatal
        code = target.proc.poll()
        exited = "" if code is None else f" (it had exited, code {code})"
        print(f"  !!!!! {name} failed: {exc!r}{exited}", flush=True)
    finally:
        target.stop()


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile `q` (0-100) of `values`."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def describe_timings(timings: list[float]) -> str:
    """p50/p95/max of status poll timings (seconds) in ms."""
    return (f"{len(timings)} polls, p50 {pct(timings, 50) * 1000:.2f} ms, "
            f"p95 {pct(timings, 95) * 1000:.2f} ms, max {max(timings) * 1000:.2f} ms "
            "(target: p95 < 200 ms)")


def medians(results: Results) -> dict[tuple[str, int], dict[str, float]]:
    """Median over rounds of each figure per (target, concurrency); latencies in ms,
    throughput in calls/s, CPU in us per call."""
    out = {}
    for key, figs in results.figures.items():
        out[key] = {
            "tput": statistics.median(f.wrk.throughput for f in figs),
            "p50": statistics.median(f.wrk.p50 for f in figs) / 1000,
            "p95": statistics.median(f.wrk.p95 for f in figs) / 1000,
            "p99": statistics.median(f.wrk.p99 for f in figs) / 1000,
            "root": statistics.median(f.cpu_root_us for f in figs),
            "children": statistics.median(f.cpu_children_us for f in figs),
            "n": len(figs)}
    return out


def report(results: Results, rounds: int) -> None:
    """Medians over rounds per target and concurrency, then the issue's ratios."""
    med = medians(results)
    print(f"\n== summary: median over {rounds} round(s) (n = valid runs) ==")
    print(f"  {'target':13} {'c':>3} {'calls/s':>9} {'p50 ms':>7} {'p95 ms':>7} "
          f"{'p99 ms':>7}  cpu us/call root + children   n")
    for name in TARGETS:
        for c in CONCURRENCY:
            m = med.get((name, c))
            if m is None:
                print(f"  {name:13} {c:>3}  no valid figure")
                continue
            print(f"  {name:13} {c:>3} {m['tput']:9.1f} {m['p50']:7.2f} {m['p95']:7.2f} "
                  f"{m['p99']:7.2f}  {m['root']:11.0f} + {m['children']:8.0f}   {m['n']}")

    def ratio(a: str, b: str) -> str:
        """c=16 throughput of `a` over `b`, from the medians."""
        if (a, 16) not in med or (b, 16) not in med:
            return "n/a (no valid figure for a target)"
        return f"{med[(a, 16)]['tput'] / med[(b, 16)]['tput']:.2f}x"

    print("\nc=16 throughput ratios (targets: isolated and production >= 1.5x supergateway; "
          "shared >= 1x mcp-proxy and baseline)")
    for a, b in (("isolated", "supergateway"), ("production", "supergateway"),
                 ("production", "isolated"), ("shared", "mcp-proxy"),
                 ("shared", "baseline"), ("isolated", "baseline")):
        print(f"  {a + ' / ' + b:25} {ratio(a, b)}")
    if ("baseline", 1) in med:
        print("c=1 p50 minus baseline p50 (target: within 0.5 ms)")
        for name in TARGETS[:-1]:
            if (name, 1) in med:
                print(f"  {name:13} {med[(name, 1)]['p50'] - med[('baseline', 1)]['p50']:+7.2f} ms")
    if results.status_timings:
        print(f"status under isolated c=16 load, all rounds: "
              f"{describe_timings(results.status_timings)}")
    if results.invalid:
        print(f"!!!!! {results.invalid} run(s) had FAILURES and are left out (see above)")


async def first_calls(http: httpx.AsyncClient, url: str,
                      sessions: int) -> tuple[list[float], list[float]]:
    """Open `sessions` new sessions one after another, POOL_REFILL_SECONDS apart (so a
    warm pool has refilled); time `initialize` and the first `tools/call` of each
    (seconds); delete each session after."""
    inits, calls = [], []
    for _ in range(sessions):
        await asyncio.sleep(POOL_REFILL_SECONDS)
        init_s, sid = await open_session(http, url)
        try:
            calls.append(await echo(http, url, sid))
        finally:
            await delete_session(http, url, sid)
        inits.append(init_s)
    return inits, calls


async def pool_timings(http: httpx.AsyncClient, size: int,
                       sessions: int) -> tuple[list[float], list[float]]:
    """A gateway with warm pool `size` serving the isolated server only: `first_calls`
    timings (seconds) of `sessions` sessions, after one untimed session, since the pool
    only fills once a server's first session is mounted."""
    with tempfile.TemporaryDirectory(prefix="mcpaas-bench-pool-") as tmp:
        target = await start_gateway(Path(tmp), {"everything": SessionMode.ISOLATED},
                                     {"MCPAAS_GATEWAY_WARM_POOL_SIZE": str(size)})
        url = f"{target.base}/servers/everything/mcp"
        try:
            await first_calls(http, url, 1)
            return await first_calls(http, url, sessions)
        finally:
            target.stop()


async def warm_pool(http: httpx.AsyncClient, sessions: int) -> None:
    """Warm-pool section: `initialize` and first `tools/call` latency (ms) with pool
    size 0 vs 4; median, max, and the ratio of the medians."""
    print(f"\n== warm pool: {sessions} new isolated sessions per pool size, "
          f"one after another, {POOL_REFILL_SECONDS} s apart ==")
    med: dict[int, tuple[float, float]] = {}
    for size in (0, 4):
        try:
            inits, calls = await pool_timings(http, size, sessions)
        except Exception as exc:  # reported, so the rest of the output still counts
            print(f"  !!!!! pool {size} failed: {exc!r}", flush=True)
            continue
        med[size] = (statistics.median(inits) * 1000, statistics.median(calls) * 1000)
        print(f"  pool {size}: initialize median {med[size][0]:7.2f} ms, max "
              f"{max(inits) * 1000:7.2f} ms; first tools/call median {med[size][1]:7.2f} ms, "
              f"max {max(calls) * 1000:7.2f} ms", flush=True)
    if len(med) == 2:
        print(f"  pool 4 / pool 0, medians: initialize {med[4][0] / med[0][0]:.2f}x, "
              f"first tools/call {med[4][1] / med[0][1]:.2f}x")


async def main() -> None:
    """Rounds of every target, the summary, then the warm-pool section."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds over all targets")
    parser.add_argument("--seconds", type=int, default=8, help="measured seconds per run")
    parser.add_argument("--pool-sessions", type=int, default=10,
                        help="sessions timed per warm-pool size")
    args = parser.parse_args()
    wrk_path()
    if not EVERYTHING.exists():
        raise SystemExit(f"{EVERYTHING} missing: run `npm ci` in {REPO}")
    results = Results()
    async with httpx.AsyncClient(timeout=30) as http:
        for n in range(1, args.rounds + 1):
            print(f"== round {n} of {args.rounds} ({args.seconds} s per run, "
                  f"{WARMUP_SECONDS} s warm-up) ==", flush=True)
            await run_round(http, args, results)
        report(results, args.rounds)
        await warm_pool(http, args.pool_sessions)


if __name__ == "__main__":
    asyncio.run(main())
