"""A restore interrupted by a devhost crash completes without applying anything twice.

devhost runs as a subprocess (`tests.integration.apim.app`) whose `FakeApim` keeps its
state in a file; the fake blocks right after applying one API's PUT, the test kills
devhost with SIGKILL there, starts it again, and the orchestration resumes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from activities import apim
from shared.auth.principal import Role
from shared.auth.tokens import LocalIssuer
from shared.keyfiles import read_or_create_key
from shared.settings import Settings
from tests.fakes.apim import SERVICE_ID, FakeApim, fake_connect, seed
from tests.integration.apim.test_restore import WEBHOOK, entries, service_write
from tests.integration.devhost.conftest import free_port
from tests.tooling import REPO
from triggers.apim import tier_change_instance


class ApimDevhost:
    """`python -m devhost --app tests.integration.apim.app:app` on a fixed port and data dir."""

    def __init__(self, tmp_path: Path, env: dict[str, str]) -> None:
        self.data_dir, self.port, self.log = tmp_path / "data", free_port(), tmp_path / "devhost.log"
        self.env = {**os.environ, **env, "MCPAAS_DATA_DIR": str(self.data_dir), "MCPAAS_API_PORT": str(self.port)}
        settings = Settings(data_dir=self.data_dir)
        token = LocalIssuer(settings.auth_key_path).mint("ops-admin", [Role.ADMIN])
        self.api = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=30,
                                headers={"Authorization": f"Bearer {token}"})
        self.runtime = {"x-functions-key": read_or_create_key(settings.host_key_path)}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "devhost", "--app", "tests.integration.apim.app:app",
                                          "--log-level", "warning"], cwd=REPO, env=self.env, stdout=out,
                                         stderr=subprocess.STDOUT)
        wait_for(lambda: self._answers(), f"devhost did not start: {self.log}")

    def _answers(self) -> bool:
        assert self.proc is not None and self.proc.poll() is None, self.log.read_text()
        try:
            return self.api.get("/api/apim/snapshots").status_code == 200
        except httpx.TransportError:
            return False

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.api.close()


def wait_for(condition: Callable[[], object], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_restore_interrupted_by_a_crash_applies_nothing_twice(tmp_path):
    state, release = tmp_path / "apim.json", tmp_path / "release"
    fake = FakeApim(state_path=state)
    seed(fake, apis=5)
    expected = entries(apim.export(fake_connect(fake)(SERVICE_ID)))
    host = ApimDevhost(tmp_path, {"MCPAAS_APIM_SERVICE_ID": SERVICE_ID, "MCPAAS_APIM_POLL_SECONDS": "0.05",
                                  "APIM_FAKE_STATE": str(state), "APIM_FAKE_HANG": f"apis/api-02={release}"})
    operation = tier_change_instance("event:crash")
    try:
        host.start()
        assert host.api.post("/admin/functions/apim_export", headers=host.runtime).status_code == 202
        wait_for(lambda: host.api.get("/api/apim/snapshots").json()["items"], "no snapshot taken")
        fake.change_tier("Premium", updating_polls=2)

        assert host.api.post(WEBHOOK, params={"functionName": "apim_changed"}, headers=host.runtime,
                             json=[service_write("crash")]).status_code == 200
        wait_for(release.with_suffix(".hung").exists, "the restore never reached apis/api-02")
        host.kill()  # apis/api-02 is written; its answer never arrived
        assert FakeApim(state_path=state).writes["apis/api-02"] == 1
        host.start()
        wait_for(lambda: host.api.get(f"/api/operations/{operation}").json().get("runtimeStatus")
                 in {"Completed", "Failed"}, "the restore did not finish after the restart")
        done = host.api.get(f"/api/operations/{operation}").json()
    finally:
        host.stop()
    assert done["output"]["status"] == "Succeeded", done
    after = FakeApim(state_path=state)
    assert set(after.writes.values()) == {1}, after.writes  # no entry applied twice
    assert entries(apim.export(fake_connect(after)(SERVICE_ID))) == expected  # every item back
