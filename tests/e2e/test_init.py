"""`mcpaas init` end to end (issue 13 item 1 acceptance): a project scaffolded for each
language deploys with `mcpaas deploy -f mcpaas.yaml` as generated (its directory packed
as a code bundle, docs/bundles.md), lists through the gateway exactly the tools its
committed contract snapshot holds, and answers `tools/call echo` with the official `mcp`
client. The Node project's dependencies are installed by the spec's own `install` step
(`npm install --omit=dev`) on the gateway, from the npm registry."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.e2e.conftest import REPO
from tests.e2e.helpers import mcp_client, wait_status

CONTRACT_KEYS = ("name", "description", "inputSchema", "outputSchema")  # what the projects' snapshots keep


def mcpaas(platform, *args: str) -> subprocess.CompletedProcess:
    """The real CLI in a process of its own, pointed at `platform` with an Admin token."""
    env = {**platform.env(), "MCPAAS_TOKEN": platform.token()}
    return subprocess.run([sys.executable, "-m", "cli", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.parametrize("lang", ["python", "node"])
async def test_an_initialised_project_deploys_and_answers_echo_through_the_gateway(platform, tmp_path, lang):
    name = f"hello-{lang}"
    project = tmp_path / name
    created = mcpaas(platform, "init", name, "--lang", lang, "--dir", str(project))
    assert created.returncode == 0, created.stderr

    deployed = mcpaas(platform, "deploy", "-f", str(project / "mcpaas.yaml"))
    assert deployed.returncode == 0, deployed.stderr
    assert "Uploaded bundle sha256:" in deployed.stderr
    server = wait_status(platform.api, name, {"Running"}, timeout=180, revision=1)
    assert server["spec"]["package"]["bundle"].startswith("sha256:")

    snapshot = json.loads((project / "tests" / "tools.snapshot.json").read_text())
    async with mcp_client(f"{platform.gateway}/servers/{name}/mcp", platform.headers) as client:
        listed = await client.list_tools()
        result = await client.call_tool("echo", {"message": "through the gateway"})
    tools = [tool.model_dump(mode="json", by_alias=True, exclude_none=True) for tool in listed.tools]
    # the gateway passes the contract through unchanged
    assert [{key: tool[key] for key in CONTRACT_KEYS if key in tool} for tool in tools] == snapshot["tools"]
    assert not result.is_error, result
    assert [block.text for block in result.content] == ["through the gateway"]
    assert result.structured_content == {"result": "through the gateway"}
