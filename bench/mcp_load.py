"""Load-side helpers of bench/gateway.py: MCP sessions over raw HTTP (httpx), wrk runs
of `tools/call echo` on them (bench/wrk_echo.lua), CPU time of a process tree from
/proc, and the status-endpoint poller.

The harness opens sessions with httpx (a handful of requests, off the clock) and wrk
sends the timed load: wrk is C and needs a few microseconds per request, so the figures
are the target's, not the client's.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

WRK_SCRIPT = Path(__file__).resolve().parent / "wrk_echo.lua"
PROTOCOL_VERSION = "2025-06-18"
HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
# the same call as bench/wrk_echo.lua's
ECHO = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                   "params": {"name": "echo", "arguments": {"message": "hi"}}})
STATUS_POLL_SECONDS = 0.02
# generous: a request stuck longer than this is a failure worth seeing, not a latency
WRK_TIMEOUT = "10s"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def wrk_path() -> str:
    """Path of the wrk binary; SystemExit with the install hint when it is missing."""
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit("wrk is missing: `apt-get install -y wrk` (Debian) and run again")
    return path


@dataclass
class WrkResult:
    """One wrk run: `requests` in `seconds`; latency percentiles in microseconds."""

    requests: int
    seconds: float
    failures: int
    socket_errors: int
    status_errors: int
    p50: int
    p95: int
    p99: int

    @property
    def throughput(self) -> float:
        """Calls per second."""
        return self.requests / self.seconds

    @property
    def failed(self) -> int:
        """Failed calls: bad status or no `result`, plus socket errors (connect, read,
        write, timeout), which never reach the response callback."""
        return self.failures + self.socket_errors


async def open_session(http: httpx.AsyncClient, url: str,
                       auth: dict[str, str] | None = None) -> tuple[float, str]:
    """initialize + notifications/initialized on `url` (with credential headers `auth`).
    Returns the seconds from sending `initialize` to its whole response, and the session id."""
    init = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": PROTOCOL_VERSION, "capabilities": {},
        "clientInfo": {"name": "bench", "version": "1"}}}
    started = time.perf_counter()
    reply = await http.post(url, content=json.dumps(init), headers={**HEADERS, **(auth or {})})
    elapsed = time.perf_counter() - started
    reply.raise_for_status()
    sid = reply.headers.get("mcp-session-id")
    if not sid:
        raise RuntimeError(f"initialize on {url} returned no mcp-session-id")
    note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    (await http.post(url, content=json.dumps(note), headers=session_headers(sid, auth))
     ).raise_for_status()
    return elapsed, sid


async def echo(http: httpx.AsyncClient, url: str, sid: str, auth: dict[str, str] | None = None) -> float:
    """One `tools/call echo` on session `sid`; seconds from sending to the whole
    response. RuntimeError when the answer holds no result."""
    started = time.perf_counter()
    reply = await http.post(url, content=ECHO, headers=session_headers(sid, auth))
    elapsed = time.perf_counter() - started
    if reply.status_code != 200 or '"result"' not in reply.text:
        raise RuntimeError(f"echo failed: {reply.status_code} {reply.text[:200]}")
    return elapsed


def session_headers(sid: str, auth: dict[str, str] | None = None) -> dict[str, str]:
    """Request headers of an initialized session `sid`, plus credential headers `auth`."""
    return {**HEADERS, **(auth or {}), "mcp-session-id": sid, "mcp-protocol-version": PROTOCOL_VERSION}


async def delete_session(http: httpx.AsyncClient, url: str, sid: str,
                         auth: dict[str, str] | None = None) -> bool:
    """DELETE session `sid`; True when the target answered 2xx."""
    try:
        reply = await http.delete(url, headers=session_headers(sid, auth))
    except httpx.HTTPError:
        return False
    return reply.is_success


async def run_wrk(url: str, sids: list[str], seconds: int,
                  auth: dict[str, str] | None = None) -> WrkResult:
    """`wrk -tN -cN` for `seconds` (whole seconds: wrk's -d takes integers), one thread,
    one connection and one session of `sids` each, sending the `Authorization` of `auth`
    when given; RuntimeError when wrk fails."""
    with tempfile.NamedTemporaryFile("w", prefix="mcp-sessions-", suffix=".txt") as ids:
        ids.write("\n".join(sids) + "\n")
        ids.flush()
        n = str(len(sids))
        proc = await asyncio.create_subprocess_exec(
            wrk_path(), "-t", n, "-c", n, "-d", f"{seconds}s", "--timeout", WRK_TIMEOUT,
            "-s", str(WRK_SCRIPT), url,
            env={**os.environ, "MCP_SESSIONS": ids.name,
                 "MCP_AUTHORIZATION": (auth or {}).get("Authorization", "")},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate()
    for line in out.decode().splitlines():
        if line.startswith("BENCH_JSON "):
            return WrkResult(**json.loads(line.removeprefix("BENCH_JSON ")))
    raise RuntimeError(f"wrk exited {proc.returncode} without figures: {err.decode()[-500:]}")


def tree_cpu(root: int) -> tuple[float, float]:
    """CPU seconds (utime + stime) of `root` and of all its live descendants, from
    /proc/<pid>/stat. Children that already exited are not counted, so take both
    snapshots of a measurement while its session children are alive."""
    stats: dict[int, tuple[int, float]] = {}  # pid -> (parent pid, CPU seconds)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_text()
        except OSError:  # exited while we listed
            continue
        # fields after the command name, which may itself hold spaces and parentheses
        fields = raw[raw.rindex(")") + 2:].split()
        stats[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / CLOCK_TICKS)
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    descendants, todo = 0.0, list(children.get(root, []))
    while todo:
        pid = todo.pop()
        descendants += stats[pid][1]
        todo.extend(children.get(pid, []))
    return stats.get(root, (0, 0.0))[1], descendants


async def poll_status(http: httpx.AsyncClient, url: str, stop: asyncio.Event,
                      auth: dict[str, str] | None = None) -> list[float]:
    """Time `GET url` every STATUS_POLL_SECONDS until `stop`; seconds each."""
    timings = []
    while not stop.is_set():
        started = time.perf_counter()
        (await http.get(url, headers=auth)).raise_for_status()
        timings.append(time.perf_counter() - started)
        await asyncio.sleep(STATUS_POLL_SECONDS)
    return timings
