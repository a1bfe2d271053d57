"""A restore interrupted by a devhost crash completes without applying anything twice.

devhost runs as a subprocess (`tests.integration.apim.app`) whose `FakeApim` keeps its
state in a file; the fake blocks right after applying one API's PUT, the test kills
devhost with SIGKILL there, starts it again, and the orchestration resumes.
"""

from __future__ import annotations

from pathlib import Path

from activities import apim
from shared.auth.principal import Role
from shared.auth.tokens import LocalIssuer
from shared.keyfiles import read_or_create_key
from shared.settings import Settings
from tests.fakes.apim import SERVICE_ID, FakeApim, fake_connect, seed
from tests.integration.apim.test_restore import WEBHOOK, entries, service_write
from tests.integration.devhost.process import DevhostProcess, wait_for
from triggers.apim import tier_change_instance


class ApimDevhost(DevhostProcess):
    """`tests.integration.apim.app:app` under devhost, called by an Admin (`client`);
    `runtime` holds the host key the Functions runtime routes need."""

    def __init__(self, tmp_path: Path, env: dict[str, str]) -> None:
        settings = Settings(data_dir=tmp_path / "data")
        token = LocalIssuer(settings.auth_key_path).mint("ops-admin", [Role.ADMIN])
        super().__init__("tests.integration.apim.app:app", settings.data_dir, tmp_path / "devhost.log",
                         ready="/api/apim/snapshots", env=env, headers={"Authorization": f"Bearer {token}"})
        self.runtime = {"x-functions-key": read_or_create_key(settings.host_key_path)}


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
        assert host.client.post("/admin/functions/apim_export", headers=host.runtime).status_code == 202
        wait_for(lambda: host.client.get("/api/apim/snapshots").json()["items"], "no snapshot taken")
        fake.change_tier("Premium", updating_polls=2)

        assert host.client.post(WEBHOOK, params={"functionName": "apim_changed"}, headers=host.runtime,
                             json=[service_write("crash")]).status_code == 200
        wait_for(release.with_suffix(".hung").exists, "the restore never reached apis/api-02")
        host.kill()  # apis/api-02 is written; its answer never arrived
        assert FakeApim(state_path=state).writes["apis/api-02"] == 1
        host.start()
        wait_for(lambda: host.client.get(f"/api/operations/{operation}").json().get("runtimeStatus")
                 in {"Completed", "Failed"}, "the restore did not finish after the restart")
        done = host.client.get(f"/api/operations/{operation}").json()
    finally:
        host.stop()
    assert done["output"]["status"] == "Succeeded", done
    after = FakeApim(state_path=state)
    assert set(after.writes.values()) == {1}, after.writes  # no entry applied twice
    assert entries(apim.export(fake_connect(after)(SERVICE_ID))) == expected  # every item back
