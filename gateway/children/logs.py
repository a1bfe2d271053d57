"""Per-server log files: the stderr of every child, one timestamped line per line.

The gateway writes `<servers_dir>/.logs/<name>.log` (NFR-OPS-006/007): each line is
`<UTC ISO-8601 time> [<pid>] <text>`, plus one line per child exit with its code. The
log lives outside the server's own directory (`<servers_dir>/<name>`, which its
sandboxed children may write) so a child cannot rewrite or forge its own log; `.logs`
is no valid server name (DNS-1123 labels start with a letter or digit). Secret values
of the server are replaced by `REDACTED` before a line is written. The gateway's admin
route `GET /admin/servers/{name}/logs` reads the file through `read_log`; the control
plane's `GET /api/servers/{name}/logs` asks that route (`shared.gateway_client.server_logs`)
and never opens the file. Files rotate once at `MAX_LOG_BYTES` (one `.1` generation kept)
so a chatty server cannot fill the disk.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import TextIO

LOGS_DIR = ".logs"
REDACTED = "[REDACTED]"
# shorter values would blank ordinary text; no real credential is that short
MIN_REDACTED_CHARS = 4
MAX_LOG_BYTES = 10 * 1024 * 1024
MAX_TAIL_LINES = 10_000


def log_path(servers_dir: Path, name: str) -> Path:
    """Where the log of server `name` lives."""
    return servers_dir / LOGS_DIR / f"{name}.log"


def redactor(secrets: Iterable[str]) -> Callable[[str], str]:
    """A function that replaces every value of `secrets` (longest first) in a text."""
    values = sorted({v for v in secrets if len(v) >= MIN_REDACTED_CHARS}, key=len, reverse=True)

    def redact(text: str) -> str:
        for value in values:
            text = text.replace(value, REDACTED)
        return text
    return redact


def _stamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# where every log line is copied too: a package-server pod's stdout (`gateway.upstreams.single`),
# which is how the control plane reads it there (pod logs); None in the shared gateway
_echo: TextIO | None = None


def echo_to(stream: TextIO | None) -> None:
    """Copy every line `append_line` writes to `stream` as well (None: stop)."""
    global _echo  # one process, one log destination: set once at start-up
    _echo = stream


def append_line(path: Path, pid: int | None, text: str) -> None:
    """Append one timestamped line (rotating the file past `MAX_LOG_BYTES`)."""
    try:
        if path.stat().st_size > MAX_LOG_BYTES:
            path.replace(path.with_suffix(".log.1"))
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
    line = f"{_stamp()} [{pid}] {text.rstrip()}\n"
    with open(path, "a", encoding="utf-8", errors="replace") as handle:
        handle.write(line)
    if _echo is not None:
        _echo.write(line)
        _echo.flush()


async def copy_stderr(stream: asyncio.StreamReader, path: Path, pid: int | None,
                      redact: Callable[[str], str], tail: deque[str]) -> None:
    """Copy a child's stderr to its server log line by line until EOF, redacted; the
    last lines are also kept in `tail` (a bounded deque) for exit diagnostics."""
    while line := await stream.readline():
        text = redact(line.decode("utf-8", errors="replace"))
        tail.append(text)
        append_line(path, pid, text)


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
