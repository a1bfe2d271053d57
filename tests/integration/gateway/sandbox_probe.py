"""A stdio MCP server (and install step) that probes its own sandbox.

As a server (`python sandbox_probe.py`): tools `probe` (try to list/read each path),
`environ` (its environment), `whoami` (uid, gid), `connect` (open a TCP connection),
`hog` (hold ever more resident memory), `shout` (print a text to stderr).
As an install step (`python sandbox_probe.py --install REPORT PATH...`): writes what
`probe` would answer for the paths, plus its environment, to REPORT in its cwd.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time

from mcp.server.mcpserver import MCPServer


def probe_paths(paths: list[str]) -> dict[str, str]:
    """For each path: what could be read (`listed: ...`, `read: ...`) or the error."""
    found: dict[str, str] = {}
    for path in paths:
        try:
            if os.path.isdir(path):
                found[path] = "listed: " + ",".join(sorted(os.listdir(path)))
            else:
                with open(path, "rb") as handle:
                    found[path] = "read: " + handle.read(200).decode("utf-8", "replace")
        except OSError as exc:
            found[path] = f"error: {type(exc).__name__}"
    return found


mcp = MCPServer(name="sandbox-probe")


@mcp.tool()
def probe(paths: list[str]) -> dict[str, str]:
    """Try to read each path."""
    return probe_paths(paths)


@mcp.tool()
def environ() -> dict[str, str]:
    """The process environment."""
    return dict(os.environ)


@mcp.tool()
def whoami() -> dict[str, int]:
    """Real uid and gid."""
    return {"uid": os.getuid(), "gid": os.getgid()}


@mcp.tool()
def connect(host: str, port: int) -> str:
    """`connected` or the error of a TCP connection attempt."""
    try:
        with socket.create_connection((host, port), timeout=3):
            return "connected"
    except OSError as exc:
        return f"error: {type(exc).__name__}"


_held: list[bytearray] = []


@mcp.tool()
def hog(megabytes: int) -> int:
    """Hold `megabytes` more of touched memory, 16 MiB at a time; returns MiB held."""
    for _ in range(megabytes // 16):
        _held.append(bytearray(os.urandom(1024)) * (16 * 1024))
        time.sleep(0.02)
    return len(_held) * 16


@mcp.tool()
def shout(text: str) -> str:
    """Print `text` to stderr."""
    print(f"shouting: {text}", file=sys.stderr, flush=True)
    return "ok"


if __name__ == "__main__":
    if sys.argv[1:2] == ["--install"]:
        report = {"paths": probe_paths(sys.argv[3:]), "environ": dict(os.environ),
                  "uid": os.getuid()}
        with open(sys.argv[2], "w", encoding="utf-8") as handle:
            json.dump(report, handle)
    else:
        mcp.run("stdio")
