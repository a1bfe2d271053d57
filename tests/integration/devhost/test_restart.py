"""Crash recovery: SIGKILL a ``python -m devhost`` process and resume on the same data dir."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.devhost.conftest import TERMINAL
from tests.integration.devhost.process import DevhostProcess

APP = "tests.integration.devhost.sample_app:app"


class Process(DevhostProcess):
    """The sample app's devhost subprocess, with a poll for an orchestration's end."""

    def __init__(self, data_dir: Path, log: Path) -> None:
        super().__init__(APP, data_dir, log, ready="/api/hello/ready")

    def wait(self, instance_id: str, timeout: float = 20) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            body = self.client.get(f"/api/status/{instance_id}", params={"history": "1"}).json()
            if body.get("runtimeStatus") in TERMINAL or time.monotonic() > deadline:
                return body
            time.sleep(0.1)


@pytest.fixture
def devhost_process(tmp_path: Path) -> Iterator[Process]:
    proc = Process(tmp_path / "data", tmp_path / "devhost.log")
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
