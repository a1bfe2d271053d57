"""Per-server log files: the stderr of every child, one timestamped line per line.

The gateway writes `<servers_dir>/<name>/stderr.log` (NFR-OPS-006/007): each line is
`<UTC ISO-8601 time> [<pid>] <text>`, plus one line per child exit with its code. The
control plane serves it at `GET /api/servers/{name}/logs` through `read_log`. Files
rotate once at `MAX_LOG_BYTES` (one `.1` generation kept) so a chatty server cannot
fill the disk. Stdlib only: the control plane imports this too.
"""

from __future__ import annotations

import asyncio
from collections import deque
from datetime import datetime, timezone
from pathlib import Path

LOG_NAME = "stderr.log"
MAX_LOG_BYTES = 10 * 1024 * 1024
MAX_TAIL_LINES = 10_000


def log_path(servers_dir: Path, name: str) -> Path:
    """Where the log of server `name` lives."""
    return servers_dir / name / LOG_NAME


def _stamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def append_line(path: Path, pid: int | None, text: str) -> None:
    """Append one timestamped line (rotating the file past `MAX_LOG_BYTES`)."""
    try:
        if path.stat().st_size > MAX_LOG_BYTES:
            path.replace(path.with_suffix(".log.1"))
    except FileNotFoundError:
        pass
    with open(path, "a", encoding="utf-8", errors="replace") as handle:
        handle.write(f"{_stamp()} [{pid}] {text.rstrip()}\n")


async def copy_stderr(stream: asyncio.StreamReader, path: Path, pid: int | None) -> None:
    """Copy a child's stderr to its server log line by line until EOF."""
    while line := await stream.readline():
        append_line(path, pid, line.decode("utf-8", errors="replace"))


def read_log(path: Path, tail: int = 100, since: datetime | None = None) -> list[str]:
    """The last `tail` lines (at most `MAX_TAIL_LINES`) written at or after `since`.

    `since` must be timezone-aware. A missing file reads as no lines.
    """
    tail = max(0, min(tail, MAX_TAIL_LINES))
    cutoff = since.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ") if since else ""
    lines: deque[str] = deque(maxlen=tail)
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                # ISO-8601 UTC stamps of one width compare correctly as strings.
                if line[:27] >= cutoff:
                    lines.append(line.rstrip("\n"))
    except FileNotFoundError:
        return []
    return list(lines)
