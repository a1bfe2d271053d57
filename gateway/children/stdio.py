"""One stdio MCP server child process (MCP stdio transport,
https://modelcontextprotocol.io/specification/2025-11-25/basic/transports#stdio).

Messages are newline-delimited JSON on the child's stdin/stdout; stderr lines are
appended, timestamped and with the server's secret values redacted, to the server's
log (`gateway.children.logs`), followed by the exit code. The child leads its own process group
so that terminating it also ends anything it started (e.g. `npx` -> `node`); under the
sandbox (`gateway.children.sandbox`) the group is bwrap's, and everything inside dies with it.

`Launcher` says how any process of a server starts (a child here, an install step in
`gateway.children.provision`): the sandboxed argv, the allowlisted environment (`child_env`)
with the resolved secrets, the server's own directory as cwd, and its log file.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import signal
import sys
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import anyio.to_thread

from shared.models import PackageSource, ServerSpec
from shared.secrets import SecretNotFoundError, SecretStore, resolve_env
from shared.settings import host_environment
from shared.telemetry import child_trace_env

from gateway.wire.jsonrpc import Message, RawMessage, dumps
from gateway.children.logs import append_line, copy_stderr, log_path, redactor
from gateway.children.sandbox import Sandbox, allocation_failed, tree_rss

log = logging.getLogger(__name__)

# Largest single stdout line (one JSON-RPC message) accepted from a child, in bytes.
MAX_LINE_BYTES = 16 * 1024 * 1024
# Seconds between SIGTERM and SIGKILL when stopping a child's process group.
TERMINATE_GRACE_SECONDS = 2.0
# Seconds between two looks at a sandboxed child's resident memory.
MEMORY_CHECK_SECONDS = 0.5
STDERR_TAIL_LINES = 20
MIB = 1024 * 1024
# Variables of the gateway's own environment a child may see (plus LC_*): neutral
# locale and lookup settings only. Everything else (MCPAAS_*, AZURE_*, IDENTITY_*,
# MSI_*, APPLICATIONINSIGHTS_*, Redis/Cosmos settings, proxies with credentials) stays out.
NEUTRAL_ENV = frozenset({"PATH", "LANG", "LANGUAGE", "TZ"})

OnMessage = Callable[[Message], Awaitable[None]]
OnExit = Callable[[int | None, str], Awaitable[None]]


def child_env(package: PackageSource, home: Path,
              secrets: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment of a child or install step (issue 10 item 2), by allowlist.

    `NEUTRAL_ENV` and `LC_*` from the gateway's environment; HOME and the caches of
    npm, uv, pip (XDG) inside `home`, the server's own directory; `package.env` (with
    tenancy scope values, `gateway.access.tenancy`); the resolved `secrets`; the current W3C
    trace context as `TRACEPARENT`. The gateway's interpreter directory comes first on
    PATH so commands installed in its venv resolve.
    """
    env = host_environment(NEUTRAL_ENV, ("LC_",))
    cache = home / ".cache"
    env |= {"HOME": str(home), "XDG_CACHE_HOME": str(cache), "npm_config_cache": str(cache / "npm"),
            "UV_CACHE_DIR": str(cache / "uv"), "PIP_CACHE_DIR": str(cache / "pip")}
    # the child joins the trace of the request that started it (TRACEPARENT env carrier)
    env |= {**package.env, **(secrets or {}), **child_trace_env()}
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join(p for p in (bin_dir, env.get("PATH", "")) if p)
    return env


def _check_command(command: str, package: PackageSource) -> None:
    """Raise FileNotFoundError when `command` resolves to nothing on the child's PATH:
    inside the sandbox a missing command would only show as an exit code."""
    path = os.pathsep.join([str(Path(sys.executable).parent),
                            package.env.get("PATH", host_environment(frozenset({"PATH"})).get("PATH", ""))])
    if shutil.which(command, path=path) is None:
        raise FileNotFoundError(f"command not found: {command}")


class ChildStartError(OSError):
    """A server process could not be prepared (e.g. a secret did not resolve); `str()`
    names the variable, never a value."""


@dataclass(frozen=True)
class Launch:
    """Everything needed to start one process of a server: sandboxed `argv`, `env`,
    `cwd` (its own directory), `log_file`, `redact` (hides its secret values) and the
    resident-memory limit of its process tree in bytes (None without the sandbox)."""

    argv: list[str]
    env: dict[str, str]
    cwd: Path
    log_file: Path
    redact: Callable[[str], str]
    memory_bytes: int | None


class Launcher:
    """Prepares the processes of servers: sandbox, environment, secrets.

    Args:
        sandbox: the argv builder (`gateway.children.sandbox.Sandbox`).
        secrets: the secret store that resolves `package.secrets` references.
    """

    def __init__(self, sandbox: Sandbox, secrets: SecretStore) -> None:
        self.sandbox = sandbox
        self.secrets = secrets

    @property
    def servers_dir(self) -> Path:
        """Parent of the servers' own directories and of their logs."""
        return self.sandbox.servers_dir

    async def launch(self, name: str, spec: ServerSpec, argv: list[str]) -> Launch:
        """How server `name` (a server or dedicated instance of `spec`) runs `argv`.

        Raises SandboxRefusedError (an OSError) when it may not run unsandboxed, and
        ChildStartError when one of its secrets does not resolve.
        """
        package = spec.package
        assert package is not None
        self.sandbox.admit(spec)
        _check_command(argv[0], package)
        try:
            # Key Vault is network I/O: off the event loop (a thread hop only when needed)
            secrets = (await anyio.to_thread.run_sync(resolve_env, self.secrets, package.secrets)
                       if package.secrets else {})
        except SecretNotFoundError as exc:
            raise ChildStartError(f"could not resolve secrets: {exc}") from None
        except Exception as exc:  # a store outage: name its kind, not its (unknown) text
            raise ChildStartError(f"could not resolve secrets: secret store failed "
                                  f"({type(exc).__name__})") from None
        own = await anyio.to_thread.run_sync(self.sandbox.prepare, name)
        memory = self.sandbox.limits(package).memory_mb * MIB if self.sandbox.enabled else None
        return Launch(self.sandbox.wrap(name, package, argv), child_env(package, own, secrets),
                      own, log_path(self.servers_dir, name), redactor(secrets.values()), memory)


class StdioChild:
    """A running stdio MCP server.

    Args:
        launcher: prepares the sandboxed process (`Launcher`).
        name: the server (or dedicated instance) it belongs to. spec: its spec.
        on_message: awaited with every JSON object the child writes to stdout; may be
            replaced after start (`.on_message`), as `gateway.sessions.warm_pool` does on hand-over.
        on_exit: awaited once when stdout closes, with the exit code (None if unknown)
            and a human-readable reason (which names the memory limit when the child
            was stopped for it); may be set after construction (`.on_exit`).

    Use `await start()` (raises `OSError` when the command cannot be started), `send()`,
    and `await terminate()`.
    """

    def __init__(self, launcher: Launcher, name: str, spec: ServerSpec,
                 on_message: OnMessage, on_exit: OnExit | None) -> None:
        self.launcher = launcher
        self.name = name
        self.spec = spec
        self.on_message = on_message
        self.on_exit = on_exit
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._stderr: asyncio.Task[None] | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self._stopped_for: str | None = None  # why the gateway killed it, if it did
        self._tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
        self.log_file = log_path(launcher.servers_dir, name)

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
        package = self.spec.package
        assert package is not None
        launch = await self.launcher.launch(self.name, self.spec, [package.command, *package.args])
        self._proc = await asyncio.create_subprocess_exec(
            *launch.argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, cwd=launch.cwd, env=launch.env,
            start_new_session=True, limit=MAX_LINE_BYTES)
        pid = self._proc.pid
        log.info("started %s (pid %s) in %s", [package.command, *package.args], pid, launch.cwd)
        assert self._proc.stderr is not None
        self._stderr = asyncio.create_task(
            copy_stderr(self._proc.stderr, launch.log_file, pid, launch.redact, self._tail),
            name=f"stderr-{pid}")
        if launch.memory_bytes is not None:
            self._watchdog = asyncio.create_task(self._watch_memory(launch.memory_bytes),
                                                 name=f"memory-{pid}")
        self._reader = asyncio.create_task(self._read_stdout(), name=f"stdio-{pid}")

    async def _watch_memory(self, limit: int) -> None:
        """Kill the process tree once its resident memory passes `limit` bytes."""
        assert self._proc is not None
        while self._proc.returncode is None:
            await asyncio.sleep(MEMORY_CHECK_SECONDS)
            rss = tree_rss(self._proc.pid)
            if rss > limit:
                self._stopped_for = (f"stopped: memory limit of {limit // MIB} MiB exceeded "
                                     f"({rss // MIB} MiB resident)")
                log.warning("server %s pid %s %s", self.name, self._proc.pid, self._stopped_for)
                self._signal_group(signal.SIGKILL)
                return

    def _exit_reason(self, code: int | None, reason: str) -> str:
        if self._stopped_for is not None:
            return self._stopped_for
        if code and self._watchdog is not None and allocation_failed(list(self._tail)):
            package = self.spec.package
            assert package is not None
            limit = self.launcher.sandbox.limits(package).memory_mb
            return f"memory limit of {limit} MiB reached: an allocation failed ({reason})"
        return reason

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
        if self._watchdog is not None:
            self._watchdog.cancel()
        if self._stderr is not None:  # flush the last stderr lines before the exit line
            await asyncio.wait([self._stderr], timeout=TERMINATE_GRACE_SECONDS)
        reason = self._exit_reason(code, reason)
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
