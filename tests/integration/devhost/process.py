"""`python -m devhost` as a subprocess to SIGKILL and start again on the same data dir:
the crash-recovery tests of devhost itself and of the APIM restore share it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.integration.devhost.conftest import free_port
from tests.tooling import REPO


def wait_for(condition: Callable[[], object], what: str, timeout: float = 30) -> None:
    """Poll `condition` every 50 ms until it is truthy; AssertionError `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


class DevhostProcess:
    """`python -m devhost --app {app}` on a fixed free port with `data_dir`, output in `log`.

    `ready` is a GET path answering 200 once the app serves; `client` (httpx, `headers`
    on every request) talks to it; `env` adds to this process's environment.
    """

    def __init__(self, app: str, data_dir: Path, log: Path, ready: str, env: dict[str, str] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        self.app, self.data_dir, self.log, self.ready, self.port = app, data_dir, log, ready, free_port()
        self.env = {**os.environ, **(env or {}), "MCPAAS_DATA_DIR": str(data_dir),
                    "MCPAAS_API_PORT": str(self.port), "MCPAAS_API_HOST": "127.0.0.1"}
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=30, headers=headers or {})
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30) -> None:
        """Start the process and wait until `ready` answers 200 (AssertionError with the log
        if the process exits first, or after `timeout` s)."""
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "devhost", "--app", self.app, "--log-level", "warning"],
                                         cwd=REPO, env=self.env, stdout=out, stderr=subprocess.STDOUT)
        wait_for(self._answers, f"devhost did not start: {self.log}", timeout)

    def _answers(self) -> bool:
        assert self.proc is not None and self.proc.poll() is None, self.log.read_text()
        try:
            return self.client.get(self.ready).status_code == 200
        except httpx.TransportError:
            return False

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as in a crash."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        """Terminate the process if it runs (kill it after 10 s) and close the client."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.client.close()
