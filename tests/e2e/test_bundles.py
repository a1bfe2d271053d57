"""Code bundles end to end (issue 13 item 2, docs/bundles.md): a Python MCP project written
here is deployed with `mcpaas deploy -f`, called through the gateway with the official
`mcp` client, changed, redeployed and rolled back; bad uploads are refused and store nothing."""

from __future__ import annotations

import gzip
import io
import random
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from shared.auth.principal import Role
from tests.e2e.conftest import REPO
from tests.e2e.helpers import authed, mcp_client, stored, wait_status

SERVER = '''from mcp.server.mcpserver import MCPServer

server = MCPServer(name="hello")


@server.tool()
def echo(message: str) -> str:
    """Echo `message` back."""
    return {prefix!r} + message


if __name__ == "__main__":
    server.run("stdio")
'''

SPEC = '''name: {name}
description: a bundled test project
package:
  command: python
  args: [server.py]
  bundle: .
  session_mode: shared
'''


def write_project(root: Path, name: str, prefix: str) -> Path:
    """A Python MCP project (what `mcpaas init --lang python` makes, minus the extras)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "mcpaas.yaml").write_text(SPEC.format(name=name))
    set_prefix(root, prefix)
    (root / ".mcpaasignore").write_text("notes/\n")
    (root / "notes").mkdir(exist_ok=True)
    (root / "notes" / "todo.txt").write_text("not part of the bundle")
    return root


def set_prefix(root: Path, prefix: str) -> None:
    (root / "server.py").write_text(SERVER.format(prefix=prefix))


def mcpaas(platform, *args: str) -> subprocess.CompletedProcess:
    """The real CLI in a process of its own, pointed at `platform` with an Admin token."""
    env = {**platform.env(), "MCPAAS_TOKEN": platform.token()}
    return subprocess.run([sys.executable, "-m", "cli", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=180)


async def echo(platform, name: str, message: str) -> str:
    async with mcp_client(f"{platform.gateway}/servers/{name}/mcp", platform.headers) as client:
        result = await client.call_tool("echo", {"message": message})
        assert not result.is_error, result
        return result.content[0].text


def bundles_stored(platform) -> list[Path]:
    return sorted((platform.data_dir / "artifacts" / "bundles").glob("*"))


async def test_deploy_change_and_roll_back_a_bundled_project(platform, tmp_path):
    project = write_project(tmp_path / "hello", "hello", "v1: ")
    done = mcpaas(platform, "deploy", "-f", str(project / "mcpaas.yaml"))
    assert done.returncode == 0, done.stderr
    assert "Uploaded bundle sha256:" in done.stderr
    first = wait_status(platform.api, "hello", {"Running"}, revision=1)
    digest = first["spec"]["package"]["bundle"]
    assert digest.startswith("sha256:") and len(digest) == 71
    assert await echo(platform, "hello", "hi") == "v1: hi"
    # only the bundle's own files reached the server's directory; .mcpaasignore held notes/ back
    own = platform.data_dir / "servers" / "hello"
    assert (own / "server.py").is_file() and not (own / "notes").exists()

    again = mcpaas(platform, "deploy", "-f", str(project / "mcpaas.yaml"))  # same content: no revision
    assert again.returncode == 0 and "No change" in again.stderr, again.stderr
    assert wait_status(platform.api, "hello", {"Running"})["latest_revision"] == 1

    set_prefix(project, "v2: ")
    done = mcpaas(platform, "deploy", "-f", str(project / "mcpaas.yaml"))
    assert done.returncode == 0, done.stderr
    second = wait_status(platform.api, "hello", {"Running"}, revision=2)
    assert second["spec"]["package"]["bundle"] != digest
    assert await echo(platform, "hello", "hi") == "v2: hi"
    assert len(bundles_stored(platform)) == 2

    done = mcpaas(platform, "rollback", "hello", "--to", "1")
    assert done.returncode == 0, done.stderr
    third = wait_status(platform.api, "hello", {"Running"}, revision=3)
    assert third["spec"]["package"]["bundle"] == digest
    assert await echo(platform, "hello", "hi") == "v1: hi"
    provisioned = [e for e in stored(platform.data_dir, "audit") if e["action"] == "provision.bundle"]
    assert len(provisioned) == 3 and {e["result"] for e in provisioned} == {"succeeded"}


def tar_slip() -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name in ("server.py", "../../escape.py"):
            info = tarfile.TarInfo(name)
            info.size = 5
            tar.addfile(info, io.BytesIO(b"print"))
    return gzip.compress(raw.getvalue())


@pytest.fixture
def small_bundles(monkeypatch) -> None:
    """A 4 KiB upload limit (request it before `platform`)."""
    monkeypatch.setenv("MCPAAS_BUNDLE_MAX_BYTES", "4096")


def test_bad_uploads_get_problems_and_store_nothing(small_bundles, platform):
    url = f"{platform.api}/api/bundles"
    too_large = authed.post(url, content=gzip.compress(random.Random(7).randbytes(8192)), timeout=30)
    assert too_large.status_code == 413 and "4096" in too_large.json()["detail"]
    assert too_large.headers["Content-Type"].startswith("application/problem+json")
    response = authed.post(url, content=tar_slip(), timeout=30)
    assert response.status_code == 400, response.text
    assert response.headers["Content-Type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["title"] == "Invalid Bundle" and "'..'" in problem["detail"]
    assert problem["errors"] == [{"field": "../../escape.py", "message": problem["detail"]}]
    assert authed.post(url, content=b"plain text", timeout=30).status_code == 400
    reader = {"Authorization": f"Bearer {platform.token('reader', Role.READER)}"}
    assert authed.post(url, content=tar_slip(), headers=reader, timeout=30).status_code == 403
    assert bundles_stored(platform) == []
    spec = {"name": "ghost", "kind": "package",
            "package": {"command": "python", "args": ["server.py"], "bundle": "sha256:" + "0" * 64}}
    refused = authed.post(f"{platform.api}/api/servers", json=spec, timeout=30)
    assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "package.bundle"

