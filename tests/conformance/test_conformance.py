"""The official MCP conformance suite (`@modelcontextprotocol/conformance`, pinned in
package.json at 0.1.13: later releases import `fs.globSync`, which Node 20 lacks) run
against `/servers/everything/mcp`, with `@modelcontextprotocol/server-everything` over
stdio behind the gateway, in both session modes.

Acceptance (issue 3): every scenario that passes against the server's own
`streamableHttp` mode passes through the gateway too; the failures left are exactly the
baseline in `expected-failures.yaml` (the suite's own `--expected-failures` check, which
also fails on stale entries); and the gateway passes `dns-rebinding-protection` itself.
The npm packages are required: without them these tests fail, they never skip.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from shared.models import PackageSource, ServerSpec, SessionMode
from shared.settings import Settings
from shared.store import SQLiteDocumentStore

from gateway.app import create_app
from tests.integration.gateway.helpers import REPO_ROOT, ThreadedServer, put_server

BASELINE = Path(__file__).with_name("expected-failures.yaml")
DNS_REBINDING = "dns-rebinding-protection"
# Bounds for one suite run (about 10 s here) and for the server's own mode to listen.
SUITE_TIMEOUT_SECONDS = 240
LISTEN_TIMEOUT_SECONDS = 20
_SUMMARY = re.compile(r"^([✓✗]) ([\w/.-]+): (\d+) passed, (\d+) failed")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def npm_bin(name: str) -> Path:
    """A binary of the repo's npm packages; fails the test (never skips) when absent."""
    path = REPO_ROOT / "node_modules" / ".bin" / name
    if not path.exists():
        pytest.fail(f"{path} is missing: run `npm ci` in {REPO_ROOT} (package.json pins it)")
    return path


@dataclass
class SuiteRun:
    """Outcome of one `conformance server` run: exit code, scenario verdicts, output."""

    returncode: int
    passed: set[str]
    failed: set[str]
    output: str


def run_suite(url: str, out_dir: Path, baseline: Path | None = None) -> SuiteRun:
    """Run the active server suite against `url`; verdicts come from its summary."""
    argv = [str(npm_bin("conformance")), "server", "--url", url, "-o", str(out_dir)]
    if baseline is not None:
        argv += ["--expected-failures", str(baseline)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=SUITE_TIMEOUT_SECONDS,
                          cwd=REPO_ROOT)
    output = _ANSI.sub("", done.stdout + done.stderr)
    passed, failed = set(), set()
    for line in output.splitlines():
        if match := _SUMMARY.match(line.strip()):
            (passed if match[1] == "✓" else failed).add(match[2])
    assert passed or failed, f"no scenario summary in the suite's output:\n{output[-3000:]}"
    return SuiteRun(done.returncode, passed, failed, output)


def baseline_failures() -> set[str]:
    return set(yaml.safe_load(BASELINE.read_text())["server"])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_listening(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + LISTEN_TIMEOUT_SECONDS
    while True:
        assert proc.poll() is None, "server-everything streamableHttp exited at start"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            assert time.monotonic() < deadline, "server-everything did not listen in time"
            time.sleep(0.1)


@pytest.fixture(scope="module")
def own_mode(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SuiteRun]:
    """The suite run against server-everything's own `streamableHttp` mode."""
    port = _free_port()
    proc = subprocess.Popen([str(npm_bin("mcp-server-everything")), "streamableHttp"],
                            env={**os.environ, "PORT": str(port)}, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_listening(port, proc)
        yield run_suite(f"http://127.0.0.1:{port}/mcp", tmp_path_factory.mktemp("own"))
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # its own group: npm shims may fork
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_baseline_is_what_the_server_itself_fails(own_mode: SuiteRun) -> None:
    # The baseline must describe the server, not excuse the gateway: its entries are
    # exactly the server's own failures, less the one the gateway must pass itself.
    assert own_mode.failed - {DNS_REBINDING} == baseline_failures(), own_mode.output[-3000:]


@pytest.mark.parametrize("mode", [SessionMode.ISOLATED, SessionMode.SHARED])
def test_gateway_adds_no_failure(mode: SessionMode, own_mode: SuiteRun, tmp_path: Path) -> None:
    store = SQLiteDocumentStore(tmp_path / "store.sqlite")
    put_server(store, ServerSpec(name="everything", kind="package", package=PackageSource(
        command=str(npm_bin("mcp-server-everything")), args=["stdio"], session_mode=mode)))
    # a protocol rig: authentication and rate limits are not under test here
    app = create_app(Settings(data_dir=tmp_path / "data", auth_mode="none", gateway_rate_limit_identity="",
                              gateway_rate_limit_server=""), store)
    with ThreadedServer(app) as server:
        run = run_suite(f"{server.url}/servers/everything/mcp", tmp_path / "out", BASELINE)
    assert run.returncode == 0, run.output[-4000:]  # no unexpected failure, no stale entry
    assert own_mode.passed <= run.passed, own_mode.passed - run.passed
    assert DNS_REBINDING in run.passed
    assert run.failed == baseline_failures()
