"""How long waits show themselves (issue 13 item 5, cli/wait.py): a rich spinner on a real
terminal (a pseudo-terminal here), status lines when stdout is not a terminal, nothing
besides the document with `--output json|yaml`."""

from __future__ import annotations

import json
import os
import re
import select
import time

import httpx
import pytest
import yaml

from cli.api import ControlPlane
from cli.wait import Poller, wait_for_deploy
from tests.unit.cli.conftest import server_doc

ECHO = {"name": "echo", "kind": "package", "package": {"command": "python", "args": ["-m", "catalog.echo.server"]}}
STEPS = [{"status": "Pending"}, {"status": "Deploying"}, {"status": "Deploying"}, {"status": "Deploying"},
         {"status": "Running", "revision": 1, "endpoint": "http://gw/servers/echo/mcp"}]


def _scripted(steps: list[dict]) -> httpx.MockTransport:
    doc = server_doc("echo", ECHO)
    remaining = list(steps)

    def handle(request: httpx.Request) -> httpx.Response:
        if remaining:
            doc.update(remaining.pop(0))
        return httpx.Response(200, json=doc)
    return httpx.MockTransport(handle)


def _drain(fd: int) -> bytes:
    chunks = []
    while select.select([fd], [], [], 0.2)[0]:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # the slave side is closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def test_a_terminal_gets_a_spinner_with_the_status_and_a_line_per_change(monkeypatch):
    master, slave = os.openpty()
    terminal = os.fdopen(slave, "w", encoding="utf-8", buffering=1)
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.setattr("sys.stdout", terminal)
    monkeypatch.setattr("sys.stderr", terminal)
    try:
        # real sleeps, so rich's refresh thread draws frames between polls
        with ControlPlane("http://cp", transport=_scripted(STEPS)) as client:
            final = wait_for_deploy(client, {"name": "echo", "status": "Pending", "latest_revision": 1},
                                    Poller(time.sleep, time.monotonic, timeout=30))
        terminal.flush()
        shown = _drain(master).decode("utf-8", errors="replace")
    finally:
        terminal.close()
        os.close(master)
    assert final["status"] == "Running"
    assert "\x1b[?25l" in shown  # the spinner hides the cursor while it spins ...
    assert "\x1b[?25h" in shown  # ... and gives it back when the wait ends
    assert "deploying echo revision 1: Deploying" in shown
    assert any(frame in shown for frame in "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏")  # the `dots` spinner
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "\n", shown)
    changes = [line.strip() for line in plain.splitlines() if line.strip() in ("Pending", "Deploying", "Running")]
    assert changes == ["Pending", "Deploying", "Running"], shown  # one line per change, above the spinner


def test_without_a_terminal_each_status_change_is_one_plain_line(plane, invoke):
    plane.script["echo"] = [{"status": "Deploying"}, {"status": "Deploying"}, {"status": "Running", "revision": 1}]
    result = invoke("deploy", "--name", "echo", "--command", "python")
    assert result.exit_code == 0, result.output
    assert [line.strip() for line in result.stderr.splitlines()[1:]] == ["Deploying", "Running"]
    assert "\x1b[" not in result.stderr


@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_machine_output_waits_quietly(plane, invoke, fmt):
    plane.script["echo"] = [{"status": "Deploying"}, {"status": "Running", "revision": 1}]
    result = invoke("deploy", "--name", "echo", "--command", "python", "-o", fmt)
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout) if fmt == "json" else yaml.safe_load(result.stdout)
    assert body["status"] == "Running"
    assert "Deploying" not in result.stderr and "Running" not in result.stderr
