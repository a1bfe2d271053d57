"""`mcpaas dev` end to end (issue 13 acceptance): it starts the embedded platform, serves the
project, and after an edit the next call answers from the new code without restarting the
command; Ctrl-C leaves nothing running."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time

import psutil

from tests.e2e.conftest import REPO, free_port
from tests.e2e.helpers import mcp_client
from tests.e2e.test_bundles import set_prefix, write_project


class Lines:
    """The stdout of a process, line by line, readable with a deadline."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.seen: list[str] = []
        self._queue: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, args=(process,), daemon=True).start()

    def _pump(self, process: subprocess.Popen) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self._queue.put(line.rstrip("\n"))

    def until(self, pattern: str, timeout: float = 120.0) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=0.5)
            except queue.Empty:
                continue
            self.seen.append(line)
            if match := re.search(pattern, line):
                return match
        raise TimeoutError(f"no line matched {pattern!r} in {timeout} s:\n" + "\n".join(self.seen[-40:]))

    def block_after(self, heading: str) -> str:
        """The lines after `heading` up to the next blank line (a printed config)."""
        block: list[str] = []
        while not block or block[-1] != "":
            block.append(self._queue.get(timeout=30))
        self.seen += block
        return "\n".join(block)


async def call_echo(endpoint: str, headers: dict[str, str]) -> str:
    async with mcp_client(endpoint, headers) as client:
        return (await client.call_tool("echo", {"message": "hi"})).content[0].text


async def test_dev_serves_the_project_and_redeploys_it_on_every_edit(tmp_path):
    project = write_project(tmp_path / "hello", "hello", "v1: ")
    api_port, gateway_port = free_port(), free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("MCPAAS_")}
    env["PATH"] = f"{os.path.dirname(sys.executable)}{os.pathsep}{env.get('PATH', '')}"
    command = [sys.executable, "-m", "cli", "--api-url", f"http://127.0.0.1:{api_port}", "dev", str(project),
               "--gateway-port", str(gateway_port), "--data-dir", str(tmp_path / "devdata")]
    # started as a shell starts a background job: SIGINT ignored, which Ctrl-C handling must undo
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    lines = Lines(process)
    try:
        lines.until("starting the embedded platform")
        assert lines.until(r"revision (\d+) of hello-dev is Running")[1] == "1"
        endpoint = lines.until(r"hello-dev is served at (\S+)")[1]
        assert endpoint == f"http://127.0.0.1:{gateway_port}/servers/hello-dev/mcp"
        lines.until("VS Code")
        config = json.loads(lines.block_after("VS Code"))["servers"]["hello-dev"]
        assert config["type"] == "http" and config["url"] == endpoint
        lines.until("Watching")
        assert await call_echo(endpoint, config["headers"]) == "v1: hi"

        set_prefix(project, "v2: ")
        assert lines.until(r"revision (\d+) of hello-dev is Running")[1] == "2"
        assert await call_echo(endpoint, config["headers"]) == "v2: hi"
        (project / "notes" / "later.txt").write_text("ignored: no redeploy")
        set_prefix(project, "v3: ")
        assert lines.until(r"revision (\d+) of hello-dev is Running")[1] == "3"
        assert await call_echo(endpoint, config["headers"]) == "v3: hi"

        started = psutil.Process(process.pid).children(recursive=True)
        assert len(started) >= 3  # devhost, the gateway, the project's stdio server (sandboxed)
        os.killpg(process.pid, signal.SIGINT)  # Ctrl-C in the terminal reaches the foreground group
        assert process.wait(60) == 0
        lines.until("mcpaas dev stopped")
        gone, alive = psutil.wait_procs(started, timeout=10)
        assert alive == [], [p.info if hasattr(p, "info") else p for p in alive]
        assert not {conn.laddr.port for conn in psutil.net_connections("tcp") if conn.status == "LISTEN"} \
            & {api_port, gateway_port}
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
