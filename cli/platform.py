"""`mcpaas up`: run the control plane (devhost) and the gateway as supervised children.

Children get their configuration only through the `MCPAAS_*` environment that
`shared.settings.Settings` reads, so what `up` starts is configured exactly like a
deployed process. Each child runs in its own process group: Ctrl-C reaches only this
supervisor, which then stops the children in order (SIGTERM, SIGKILL after a grace
period) instead of racing them to exit.

Before either child starts, `up` makes sure the data dir holds the keys of the
platform's own entry points (`shared.keyfiles`): devhost's host key (its `/runtime` and
`/admin` routes, and the CLI's local queue sender) and the gateway's `/metrics` scrape
token, unless `MCPAAS_HOST_KEY` / `MCPAAS_GATEWAY_METRICS_TOKEN` set them. Both
children and the CLI then read the same values; `up` announces where they are.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

from cli.errors import CliError
from shared import keyfiles
from shared.settings import get_settings, process_environment

READY_TIMEOUT = 60.0
STOP_GRACE = 10.0
POLL_INTERVAL = 0.25
LOG_TAIL_LINES = 20


@dataclass(frozen=True)
class PlatformOptions:
    """What `mcpaas up` was asked to run."""

    host: str = "127.0.0.1"
    port: int = 7071
    gateway_port: int = 8080
    data_dir: Path = Path(".mcpaas")


def connect_host(host: str) -> str:
    """Host clients should dial: a wildcard bind address is reached on loopback."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def api_url(options: PlatformOptions) -> str:
    """Base URL of the control plane started by `up`."""
    return f"http://{connect_host(options.host)}:{options.port}"


def gateway_url(options: PlatformOptions) -> str:
    """Base URL of the gateway started by `up`."""
    return f"http://{connect_host(options.host)}:{options.gateway_port}"


def child_env(options: PlatformOptions, base_env: dict[str, str]) -> dict[str, str]:
    """Environment of both children: `base_env` plus the `MCPAAS_*` settings for `options`.

    The data dir is made absolute so both children agree on it whatever their cwd.
    """
    env = dict(base_env)
    env.update({
        "MCPAAS_DATA_DIR": str(options.data_dir.expanduser().resolve()),
        "MCPAAS_API_HOST": options.host,
        "MCPAAS_API_PORT": str(options.port),
        "MCPAAS_GATEWAY_HOST": options.host,
        "MCPAAS_GATEWAY_PORT": str(options.gateway_port),
        "MCPAAS_GATEWAY_URL": gateway_url(options),
        "MCPAAS_API_URL": api_url(options),
        # `up` is the local platform: local auth unless the caller chose otherwise.
        "MCPAAS_AUTH_MODE": base_env.get("MCPAAS_AUTH_MODE", "local"),
        # Children write to log files; unbuffered output keeps the logs current.
        "PYTHONUNBUFFERED": "1",
    })
    return env


def ensure_keys(data_dir: Path) -> dict[str, str]:
    """Create the host key and the metrics token in `data_dir` unless set in the
    environment; returns where each comes from, for `announce`."""
    settings = get_settings().model_copy(update={"data_dir": data_dir})
    keyfiles.host_key(settings)
    keyfiles.metrics_token(settings)
    return {"host key": "MCPAAS_HOST_KEY" if settings.host_key else str(settings.host_key_path),
            "metrics token": "MCPAAS_GATEWAY_METRICS_TOKEN" if settings.gateway_metrics_token
            else str(settings.metrics_token_path)}


def default_commands() -> dict[str, list[str]]:
    """The two children, run with this interpreter so they share its venv."""
    return {"control plane": [sys.executable, "-m", "devhost"],
            "gateway": [sys.executable, "-m", "gateway"]}


@dataclass
class Child:
    """One supervised process and the file its output goes to."""

    name: str
    process: subprocess.Popen
    log_path: Path
    log_file: IO[bytes] = field(repr=False)

    def exited(self) -> int | None:
        """Exit code if the process has exited, else None."""
        return self.process.poll()

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """Last lines of the child's log, for explaining an early exit."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def start_children(commands: dict[str, list[str]], env: dict[str, str],
                   log_dir: Path) -> list[Child]:
    """Start each command with `env`, in the current directory, logging to `log_dir`."""
    log_dir.mkdir(parents=True, exist_ok=True)
    children: list[Child] = []
    for name, argv in commands.items():
        log_path = log_dir / f"{name.replace(' ', '')}.log"
        log_file = open(log_path, "ab")  # noqa: SIM115 - closed in stop_children
        process = subprocess.Popen(argv, env=env, cwd=os.getcwd(), stdin=subprocess.DEVNULL,
                                   stdout=log_file, stderr=subprocess.STDOUT, process_group=0)
        children.append(Child(name, process, log_path, log_file))
    return children


def stop_children(children: list[Child], grace: float = STOP_GRACE) -> None:
    """SIGTERM every child, SIGKILL what is left after `grace` seconds, close the logs."""
    for child in children:
        if child.exited() is None:
            child.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for child in children:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        # Kill the whole group: this also reaps grandchildren (e.g. the gateway's
        # stdio servers) that would otherwise outlive the platform.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.process.pid, signal.SIGKILL)
        child.process.wait()
        child.log_file.close()


def _died_error(child: Child) -> CliError:
    tail = child.log_tail()
    detail = f"\n--- last lines of {child.log_path} ---\n{tail}" if tail else ""
    return CliError(f"{child.name} exited early with exit code {child.exited()}{detail}")


def wait_ready(children: list[Child], probes: dict[str, str],
               timeout: float = READY_TIMEOUT, sleep: Callable[[float], None] = time.sleep) -> None:
    """Block until every URL in `probes` answers below 500; `CliError` if a child dies or time runs out."""
    pending = dict(probes)
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2.0) as http:
        while pending:
            for child in children:
                if child.exited() is not None:
                    raise _died_error(child)
            for label, url in list(pending.items()):
                try:
                    if http.get(url).status_code < 500:
                        del pending[label]
                except httpx.HTTPError:
                    pass  # not listening yet
            if pending and time.monotonic() >= deadline:
                raise CliError(f"timed out after {timeout:g}s waiting for {', '.join(pending)}")
            if pending:
                sleep(POLL_INTERVAL)


class _Stop(Exception):
    """Raised from the SIGTERM handler to unwind into the shutdown path."""


def _raise_stop(signum: int, frame: object) -> None:
    raise _Stop()


def supervise(children: list[Child], sleep: Callable[[float], None] = time.sleep) -> Child:
    """Block until a child exits and return it (Ctrl-C/SIGTERM propagate as exceptions)."""
    while True:
        for child in children:
            if child.exited() is not None:
                return child
        sleep(POLL_INTERVAL)


def start_platform(options: PlatformOptions,
                   commands: dict[str, list[str]] | None = None) -> tuple[list[Child], dict[str, str]]:
    """Start devhost and the gateway for `options` (the process environment plus
    `child_env`'s settings) and return them, once both answer, with `ensure_keys`'s
    answer. Stops them and raises `CliError` if the platform does not come up."""
    env = child_env(options, process_environment())
    data_dir = Path(env["MCPAAS_DATA_DIR"])
    keys = ensure_keys(data_dir)
    children = start_children(commands or default_commands(), env, data_dir / "logs")
    try:
        wait_ready(children, {"control plane": f"{api_url(options)}/api/servers",
                              "gateway": f"{gateway_url(options)}/healthz"})
    except BaseException:
        stop_children(children)
        raise
    return children, keys


def run_platform(options: PlatformOptions, announce: Callable[[dict[str, str]], None],
                 commands: dict[str, list[str]] | None = None) -> int:
    """Run the platform until Ctrl-C/SIGTERM (exit code 0) or a child dies (1).

    `announce` receives the endpoints once both children answer. Raises `CliError` if
    the platform does not come up.
    """
    data_dir = options.data_dir.expanduser().resolve()
    previous = signal.signal(signal.SIGTERM, _raise_stop)
    # Ctrl-C must stop the platform even when this process inherited SIGINT ignored (a
    # shell starts background jobs so when job control is off; Python then installs
    # no KeyboardInterrupt handler of its own).
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    children: list[Child] = []
    try:
        children, keys = start_platform(options, commands)
        announce({"control plane": api_url(options), "gateway": gateway_url(options),
                  "data dir": str(data_dir), "logs": str(data_dir / "logs"), **keys})
        dead = supervise(children)
        raise _died_error(dead)
    except (KeyboardInterrupt, _Stop):
        return 0
    finally:
        stop_children(children)
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)
