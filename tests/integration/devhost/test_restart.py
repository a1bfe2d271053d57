"""Crash recovery: SIGKILL a ``python -m devhost`` process and resume on the same data dir."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.devhost.conftest import TERMINAL, free_port

REPO = Path(__file__).resolve().parents[3]
APP = "tests.integration.devhost.sample_app:app"


class Process:
    """A devhost subprocess on a fixed port and data dir."""

    def __init__(self, data_dir: Path, port: int, log: Path) -> None:
        self.data_dir, self.port, self.log = data_dir, port, log
        self.proc: subprocess.Popen[bytes] | None = None
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)

    def start(self) -> None:
        env = {**os.environ, "MCPAAS_DATA_DIR": str(self.data_dir),
               "MCPAAS_API_PORT": str(self.port), "MCPAAS_API_HOST": "127.0.0.1"}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "devhost", "--app", APP, "--log-level", "warning"],
                cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while True:
            assert self.proc.poll() is None, self.log.read_text()
            try:
                if self.client.get("/api/hello/ready").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "devhost subprocess did not start"
            time.sleep(0.1)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.client.close()

    def wait(self, instance_id: str, timeout: float = 20) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            body = self.client.get(f"/api/status/{instance_id}", params={"history": "1"}).json()
            if body.get("runtimeStatus") in TERMINAL or time.monotonic() > deadline:
                return body
            time.sleep(0.1)


@pytest.fixture
def devhost_process(tmp_path: Path) -> Iterator[Process]:
    proc = Process(tmp_path / "data", free_port(), tmp_path / "devhost.log")
    yield proc
    proc.stop()


def _wait_for_line(path: Path, line: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not (path.exists() and line in path.read_text().splitlines()):
        assert time.monotonic() < deadline, f"{line!r} never appeared in {path}"
        time.sleep(0.05)


def _assert_no_duplicates(history: list[dict]) -> None:
    kinds = Counter(e["EventType"] for e in history)
    assert kinds[0] == 1 and kinds[1] == 1  # one ExecutionStarted, one ExecutionCompleted
    scheduled = [e["EventId"] for e in history if e["EventType"] in (4, 10)]
    assert len(scheduled) == len(set(scheduled))
    finished = [e.get("TaskScheduledId", e.get("TimerId")) for e in history
                if e["EventType"] in (5, 6, 11)]
    assert len(finished) == len(set(finished))


def test_kill_during_activity_resumes_and_reruns_only_that_activity(
        devhost_process: Process, tmp_path: Path) -> None:
    log, release = tmp_path / "side-effects.txt", tmp_path / "release"
    devhost_process.start()
    resp = devhost_process.client.post("/api/orchestrators/blocking",
                                       json={"log": str(log), "release": str(release)})
    assert resp.status_code == 202
    instance_id = resp.json()["id"]
    _wait_for_line(log, "two-started")
    devhost_process.kill()

    devhost_process.start()
    # The unfinished activity is re-run by the new process (a second start line) ...
    deadline = time.monotonic() + 15
    while log.read_text().splitlines().count("two-started") < 2:
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)
    release.touch()
    done = devhost_process.wait(instance_id)
    assert done["runtimeStatus"] == "Completed", done
    assert done["output"] == ["one", "two", "three"]
    # ... while the finished one is not: "one" ran exactly once.
    assert log.read_text().splitlines() == ["one", "two-started", "two-started", "three"]
    _assert_no_duplicates(done["history"])


def test_kill_while_waiting_on_timer_fires_it_after_restart(
        devhost_process: Process, tmp_path: Path) -> None:
    log = tmp_path / "timer.txt"
    devhost_process.start()
    resp = devhost_process.client.post("/api/orchestrators/timer_orch",
                                       json={"path": str(log), "seconds": 1})
    instance_id = resp.json()["id"]
    deadline = time.monotonic() + 15
    while not any(e["EventType"] == 10 for e in devhost_process.client.get(
            f"/api/status/{instance_id}", params={"history": "1"}).json()["history"] or []):
        assert time.monotonic() < deadline, "timer never created"
        time.sleep(0.05)
    devhost_process.kill()
    time.sleep(1.5)  # the timer is now overdue

    devhost_process.start()
    done = devhost_process.wait(instance_id)
    assert done["runtimeStatus"] == "Completed", done
    assert done["output"] == "timer done"
    assert log.read_text().splitlines() == ["before", "after"]
    _assert_no_duplicates(done["history"])
