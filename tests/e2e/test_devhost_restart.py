"""devhost killed while a deploy is in flight: the orchestration resumes, nothing doubles."""

from __future__ import annotations

import sys

import pytest

from tests.e2e.helpers import authed, lifecycle_events, mcp_client, stored, wait_status

pytestmark = pytest.mark.usefixtures("shell_launchers")  # clearance opt-ins (tests/e2e/conftest.py)

# a stdio server that takes a few seconds to start, so the deploy's probe is in flight
SLOW_ECHO = f"sleep 4; exec {sys.executable} -m catalog.echo.server"


async def test_deploy_survives_a_devhost_crash(platform):
    spec = {"name": "slow", "kind": "package", "package": {"command": "sh", "args": ["-c", SLOW_ECHO]}}
    response = authed.post(f"{platform.api}/api/servers", json=spec, timeout=30)
    assert response.status_code == 202
    wait_status(platform.api, "slow", {"Deploying"}, timeout=30)

    platform.kill("devhost")
    platform.start("devhost")

    server = wait_status(platform.api, "slow", {"Running", "Error"}, timeout=60)
    assert server["status"] == "Running", server
    operation = authed.get(response.headers["Location"], timeout=10).json()
    assert operation["runtimeStatus"] == "Completed"
    assert len(stored(platform.data_dir, "revisions")) == 1
    events = sorted((e["action"], e["result"]) for e in lifecycle_events(platform.data_dir))
    assert events == [("server.create", "accepted"), ("server.create", "succeeded")]
    async with mcp_client(f"{platform.gateway}/servers/slow/mcp", platform.headers) as client:
        assert (await client.call_tool("add", {"a": 2, "b": 3})).structured_content == {"result": 5.0}
