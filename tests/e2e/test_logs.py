"""`GET /api/servers/{name}/logs` with no disk shared between the control plane and the
gateway (issue 11 item 5): real devhost and gateway processes on separate data dirs,
sharing only the Cosmos emulator (the store they share on Azure) and the local issuer's
signing key (on Azure both trust Entra ID instead)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from shared.auth.principal import Role
from tests.e2e.conftest import REPO, Platform, free_port, wait_http
from tests.e2e.helpers import authed, mcp_client, register_auth, register_store, wait_status

pytestmark = pytest.mark.usefixtures("checkout_launchers")  # the probe runs on this venv's python
PROBE = REPO / "tests" / "integration" / "gateway" / "sandbox_probe.py"  # `shout` prints to stderr


@pytest.fixture
def split(tmp_path: Path, cosmos_emulator) -> Iterator[tuple[Platform, Path]]:
    """The platform with the gateway on a data dir of its own; yields it and that dir."""
    running = Platform(tmp_path / "controlplane", free_port(), free_port())
    running.store_env = cosmos_emulator.env(f"e2e-{uuid.uuid4().hex[:12]}")
    running.data_dir.mkdir()
    register_store(running.data_dir, running.store_env)
    register_auth(running.api, running.headers)  # creates the signing key
    gateway_dir = tmp_path / "gateway"
    (gateway_dir / "auth").mkdir(parents=True)
    shutil.copy2(running.data_dir / "auth" / "signing-key.pem", gateway_dir / "auth" / "signing-key.pem")
    try:
        with open(gateway_dir / "gateway.log", "ab") as log:
            process = subprocess.Popen([sys.executable, "-m", "gateway"], cwd=REPO,
                                       env={**running.env(), "MCPAAS_DATA_DIR": str(gateway_dir)},
                                       stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        running.processes["gateway"] = process
        wait_http(f"{running.gateway}/healthz", process)
        running.start("devhost")
        yield running, gateway_dir
    finally:
        running.stop()


async def test_package_logs_come_from_the_gateway_without_a_shared_disk(split) -> None:
    platform, gateway_dir = split
    spec = {"name": "shouter", "kind": "package", "package": {"command": sys.executable, "args": [str(PROBE)]}}
    created = authed.post(f"{platform.api}/api/servers", json=spec, timeout=30)
    assert created.status_code == 202, created.text
    server = wait_status(platform.api, "shouter", {"Running", "Error"}, timeout=90)
    assert server["status"] == "Running", server
    async with mcp_client(f"{platform.gateway}/servers/shouter/mcp", platform.headers) as client:
        assert not (await client.call_tool("shout", {"text": "no shared disk"})).is_error
    reader = {"Authorization": f"Bearer {platform.token('rita', Role.READER)}"}
    deadline = time.monotonic() + 15
    while True:
        reply = httpx.get(f"{platform.api}/api/servers/shouter/logs", params={"tail": 50}, headers=reader,
                          timeout=10)
        assert reply.status_code == 200, reply.text
        if any(line.endswith("shouting: no shared disk") for line in reply.json()["lines"]):
            break
        assert time.monotonic() < deadline, reply.json()
        time.sleep(0.2)
    # the log is on the gateway's disk only
    assert list(gateway_dir.rglob("shouter.log"))
    assert not list(platform.data_dir.rglob("shouter.log"))
    since = httpx.get(f"{platform.api}/api/servers/shouter/logs", params={"since": "2999-01-01T00:00:00Z"},
                      headers=reader, timeout=10)
    assert since.json() == {"name": "shouter", "lines": []}
    # the gateway's admin route is not open to the reader itself
    direct = httpx.get(f"{platform.gateway}/admin/servers/shouter/logs", headers=reader, timeout=10)
    assert direct.status_code == 403
