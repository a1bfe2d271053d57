"""One stdio MCP server child process (MCP stdio transport,
https://modelcontextprotocol.io/specification/2025-11-25/basic/transports#stdio).

Messages are newline-delimited JSON on the child's stdin/stdout; stderr lines are
appended, timestamped, to the server's log (`gateway.logs`), followed by the exit code. The child leads its own process group so that terminating it also ends
anything it started (e.g. `npx` -> `node`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from shared.models import PackageSource
from shared.telemetry import child_trace_env

from gateway.jsonrpc import Message, RawMessage, dumps
from gateway.logs import LOG_NAME, append_line, copy_stderr

log = logging.getLogger(__name__)

# Largest single stdout line (one JSON-RPC message) accepted from a child, in bytes.
MAX_LINE_BYTES = 16 * 1024 * 1024
# Seconds between SIGTERM and SIGKILL when stopping a child's process group.
TERMINATE_GRACE_SECONDS = 2.0

OnMessage = Callable[[Message], Awaitable[None]]
OnExit = Callable[[int | None, str], Awaitable[None]]


def child_env(package: PackageSource) -> dict[str, str]:
    """Environment of a child: the gateway's, plus `package.env`, plus the gateway's
    interpreter directory first on PATH so commands installed in its venv resolve, plus
    the current W3C trace context as `TRACEPARENT`."""
    # the child joins the trace of the request that started it (TRACEPARENT env carrier)
    env = {**os.environ, **package.env, **child_trace_env()}
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join(p for p in (bin_dir, env.get("PATH", "")) if p)
    return env


class StdioChild:
    """A running stdio MCP server.

    Args:
        package: command, args and env of the server.
        workdir: working directory (created if missing); `stderr.log` is appended there.
        on_message: awaited with every JSON object the child writes to stdout; may be
            replaced after start (`.on_message`), as `gateway.warm_pool` does on hand-over.
        on_exit: awaited once when stdout closes, with the exit code (None if unknown)
            and a human-readable reason; may be set after construction (`.on_exit`).

    Use `await start()` (raises `OSError` when the command cannot be started), `send()`,
    and `await terminate()`.
    """

    def __init__(self, package: PackageSource, workdir: Path,
                 on_message: OnMessage, on_exit: OnExit | None) -> None:
        self.package = package
        self.workdir = workdir
        self.on_message = on_message
        self.on_exit = on_exit
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._stderr: asyncio.Task[None] | None = None
        self.log_file = self.workdir / LOG_NAME

    @property
    def pid(self) -> int | None:
        """Process id (also the process group id), or None before start."""
        return self._proc.pid if self._proc else None

    @property
    def returncode(self) -> int | None:
        """Exit code once the child has exited, else None."""
        return self._proc.returncode if self._proc else None

    async def start(self) -> None:
        """Spawn the child and start relaying its stdout. Raises OSError on failure."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        argv = [self.package.command, *self.package.args]
        self._proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, cwd=self.workdir, env=child_env(self.package),
            start_new_session=True, limit=MAX_LINE_BYTES)
        log.info("started %s (pid %s) in %s", argv, self._proc.pid, self.workdir)
        assert self._proc.stderr is not None
        self._stderr = asyncio.create_task(
            copy_stderr(self._proc.stderr, self.log_file, self._proc.pid),
            name=f"stderr-{self._proc.pid}")
        self._reader = asyncio.create_task(self._read_stdout(), name=f"stdio-{self._proc.pid}")

    async def send(self, message: Message) -> None:
        """Write one message as a line to the child's stdin.

        Raises:
            ConnectionError: the child's stdin is closed (the child is exiting).
        """
        assert self._proc is not None and self._proc.stdin is not None
        stdin = self._proc.stdin
        if stdin.is_closing():
            raise ConnectionError("server process stdin is closed")
        # One write() per line: the transport buffers it whole, so concurrent senders
        # cannot interleave lines and need no lock; drain() only waits out backpressure.
        stdin.write((dumps(message) + "\n").encode())
        await stdin.drain()

    async def _read_stdout(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        reason = "stdout closed"
        try:
            while line := await self._proc.stdout.readline():
                await self._dispatch_line(line)
        except ValueError:  # a line over MAX_LINE_BYTES: the stream cannot be resynced
            reason = f"a stdout line exceeded {MAX_LINE_BYTES} bytes"
            self._signal_group(signal.SIGKILL)
        except Exception:  # a failing callback must not leave the session half-open
            log.exception("relaying stdout of pid %s failed", self._proc.pid)
            reason = "relaying stdout failed"
            self._signal_group(signal.SIGKILL)
        code = await self._wait(TERMINATE_GRACE_SECONDS)
        # Stdout closed: whatever is left in the group (grandchildren) has no one to talk to.
        self._signal_group(signal.SIGTERM)
        log.info("pid %s ended (%s), exit code %s", self._proc.pid, reason, code)
        if self._stderr is not None:  # flush the last stderr lines before the exit line
            await asyncio.wait([self._stderr], timeout=TERMINATE_GRACE_SECONDS)
        append_line(self.log_file, self._proc.pid, f"exited with code {code} ({reason})")
        if self.on_exit is not None:
            await self.on_exit(code, reason)

    async def _dispatch_line(self, line: bytes) -> None:
        text = line.strip()
        if not text:
            return
        try:
            message = json.loads(text)
        except ValueError:
            # Servers sometimes print banners to stdout; that is a server bug, not fatal.
            log.warning("pid %s wrote a non-JSON stdout line: %.200r", self.pid, text)
            return
        if isinstance(message, dict):
            await self.on_message(RawMessage(message, text))
        else:
            log.warning("pid %s wrote a non-object JSON message (batch?); dropped", self.pid)

    async def _wait(self, timeout: float) -> int | None:
        assert self._proc is not None
        try:
            return await asyncio.wait_for(self._proc.wait(), timeout)
        except asyncio.TimeoutError:
            return None

    def _signal_group(self, sig: int) -> None:
        if self._proc is None:
            return
        try:
            os.killpg(self._proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass  # the whole group is gone already

    async def terminate(self) -> int | None:
        """End the child's process group: SIGTERM, then SIGKILL after 2 s.

        Returns the exit code (negative signal number when killed by a signal). Waits
        for the stdout relay to finish, so `on_exit` has run when this returns.
        """
        if self._proc is None:
            return None
        if self._proc.stdin is not None and not self._proc.stdin.is_closing():
            self._proc.stdin.close()
        self._signal_group(signal.SIGTERM)
        code = await self._wait(TERMINATE_GRACE_SECONDS)
        if code is None:
            log.warning("pid %s ignored SIGTERM; sending SIGKILL", self._proc.pid)
            self._signal_group(signal.SIGKILL)
            code = await self._proc.wait()
        else:
            self._signal_group(signal.SIGKILL)  # grandchildren that outlived the leader
        if self._reader is not None and self._reader is not asyncio.current_task():
            await asyncio.gather(self._reader, return_exceptions=True)
        return code
