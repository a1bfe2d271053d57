"""Issue 14 acceptance on a live embedded platform: the "deploy a package server" runbook,
fetched with `mcpaas runbook` and executed block by block, deploys the server it describes
and every expected-output block matches; checklists and feedback through the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from shared.auth.principal import Role
from shared.runbooks import code_blocks, expected_missing
from tests.e2e.helpers import authed, wait_status

MCPAAS = str(Path(sys.executable).parent / "mcpaas")


def cli(platform, *args: str, token: str | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**platform.env(), "MCPAAS_TOKEN": token or platform.token(), "COLUMNS": "200"}
    return subprocess.run([MCPAAS, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=180)


def test_the_deploy_runbook_executed_block_by_block_deploys_its_server(platform, tmp_path):
    fetched = cli(platform, "runbook", "--role", "developer", "--scenario", "first-deploy",
                  "--id", "deploy-package-server")
    assert fetched.returncode == 0, fetched.stderr
    markdown = fetched.stdout
    assert f"export MCPAAS_API_URL={platform.api}" in markdown and "| 1.0.0 |" in markdown
    blocks = code_blocks(markdown)
    setup = "\n".join(block.code for block in blocks if block.setup)
    steps = [block for block in blocks if not block.setup]
    assert len(steps) >= 5 and all(block.expected for block in steps)
    env = {**platform.env(), "MCPAAS_TOKEN": platform.token("runbook-reader", Role.DEVELOPER), "COLUMNS": "200"}
    for block in steps:
        done = subprocess.run(["bash", "-e", "-c", f"{setup}\n{block.code}"], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=180)
        output = done.stdout + done.stderr
        assert done.returncode == 0, f"block failed:\n{block.code}\n---\n{output[-3000:]}"
        assert expected_missing(block.expected, output) == [], f"{block.code}\n---\n{output[-3000:]}"
    server = wait_status(platform.api, "hello-mcp", {"Running"})
    assert server["endpoint"] == f"{platform.gateway}/servers/hello-mcp/mcp"
    assert server["spec"]["package"]["command"] == "mcp-server-time"
    # rendered again for the server it deployed: its real values, and the runbook fits its kind
    again = cli(platform, "runbook", "--role", "developer", "--scenario", "first-deploy", "--server", "hello-mcp")
    assert again.returncode == 0, again.stderr
    assert "| server `hello-mcp` |" in again.stdout and "example server" not in again.stdout
    assert "`hello-mcp` exists (revision 1)" in again.stdout
    assert "# Put an existing remote server behind the gateway" not in again.stdout


def test_checklist_and_feedback_through_the_cli(platform):
    spec = {"name": "notes", "kind": "package", "owner_team": "shop",
            "package": {"command": "mcp-server-time", "env": {"NOTES_API_KEY": "k-123-secret"}}}
    assert authed.post(f"{platform.api}/api/servers", json=spec, timeout=30).status_code == 202
    wait_status(platform.api, "notes", {"Running"})
    shown = json.loads(cli(platform, "checklist", "notes", "--json").stdout)
    items = {item["id"]: item for item in shown["items"]}
    assert not items["secrets-not-in-env"]["checked"] and "NOTES_API_KEY" in items["secrets-not-in-env"]["detail"]
    assert items["owner-set"]["checked"] and "k-123-secret" not in json.dumps(shown)
    # the owner goes away in a new revision: "owner set" unchecks, "rollback target" checks, both audited
    spec["owner_team"] = ""
    assert authed.put(f"{platform.api}/api/servers/notes", json=spec, timeout=30).status_code == 202
    wait_status(platform.api, "notes", {"Running"}, revision=2)
    marked = cli(platform, "checklist", "notes", "--check", "data-classified", "--note", "no personal data")
    assert marked.returncode == 0 and "readiness" in marked.stdout, marked.stderr
    after = {item["id"]: item for item in json.loads(cli(platform, "checklist", "notes", "--json").stdout)["items"]}
    assert not after["owner-set"]["checked"] and after["rollback-target"]["checked"]
    assert after["data-classified"]["checked"] and after["data-classified"]["by"] == "e2e-admin"
    audit = authed.get(f"{platform.api}/api/audit", params={"server": "notes", "limit": 200}, timeout=10).json()
    flips = {(next(iter(event["diff"])), event["actor"]) for event in audit["items"]
             if event["action"] == "checklist.flip" and event["diff"]}
    assert {("owner-set", "mcpaas-platform"), ("rollback-target", "mcpaas-platform")} <= flips
    assert any(event["action"] == "checklist.mark" for event in audit["items"])

    reader = platform.token("rita", Role.READER)
    added = cli(platform, "feedback", "add", "--kind", "runbook", "--id", "harden-server", "--rating", "5",
                "--text", "clear", token=reader)
    assert added.returncode == 0, added.stderr
    [entry] = json.loads(cli(platform, "feedback", "list", "--json", token=reader).stdout)["items"]
    assert entry["author"] == "rita" and entry["status"] == "new"
    refused = cli(platform, "feedback", "status", entry["id"], "triaged", token=reader)
    assert refused.returncode == 1 and "Forbidden" in refused.stderr
    operator = platform.token("olga", Role.OPERATOR)
    assert cli(platform, "feedback", "status", entry["id"], "resolved", token=operator).returncode == 0
    listed = json.loads(cli(platform, "runbook", "--json", "--id", "harden-server").stdout)["items"]
    assert listed[0]["feedback"] == {"count": 1, "average": 5.0}
