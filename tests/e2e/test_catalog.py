"""The catalog end to end (issue 13 item 3): `mcpaas catalog list|search|show|install|import`
against the running platform, then real MCP calls through the gateway to what was installed."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from cli.main import app
from tests.e2e.conftest import REPO, free_port, wait_http
from tests.e2e.helpers import mcp_client

CURATED = {"echo", "time", "fetch", "git", "filesystem", "memory", "everything", "sqlite", "sequential-thinking"}


def mcpaas(platform, *args: str, stdin: str | None = None):
    """Run the CLI in-process against `platform` as its Admin."""
    result = CliRunner(env={"COLUMNS": "250"}).invoke(
        app, ["--api-url", platform.api, "--token", platform.token(), *args], input=stdin)
    assert result.exit_code == 0, result.output
    return result


async def test_list_search_show_agree_with_the_api_and_install_time_answers(platform):
    listed = json.loads(mcpaas(platform, "catalog", "list", "-o", "json").stdout)
    assert CURATED <= {item["name"] for item in listed}
    table = mcpaas(platform, "catalog", "list").stdout
    for item in listed:  # the table carries the same facts as the JSON
        assert item["name"] in table and item["last_updated"] in table and item["transport"] in table

    found = json.loads(mcpaas(platform, "catalog", "search", "timezone", "-o", "json").stdout)
    assert [item["name"] for item in found] == ["time"]
    api = httpx.get(f"{platform.api}/api/catalog", params={"q": "TIMEZONE clock"}, headers=platform.headers)
    assert [item["name"] for item in api.json()["items"]] == ["time"]
    assert httpx.get(f"{platform.api}/api/catalog", params={"q": "x" * 201},
                     headers=platform.headers).status_code == 400
    assert httpx.get(f"{platform.api}/api/catalog").status_code == 401
    assert httpx.get(f"{platform.api}/api/catalog/ghost", headers=platform.headers).status_code == 404

    shown = yaml.safe_load(mcpaas(platform, "catalog", "show", "time", "-o", "yaml").stdout)
    assert shown["spec"]["package"]["command"] == "mcp-server-time"
    assert shown["server_json"]["packages"][0]["identifier"] == "mcp-server-time"

    installed = json.loads(mcpaas(platform, "catalog", "install", "time", "-o", "json").stdout)
    assert installed["status"] == "Running" and installed["endpoint"].endswith("/servers/time/mcp")
    async with mcp_client(installed["endpoint"], platform.headers) as client:
        result = await client.call_tool("get_current_time", {"timezone": "UTC"})
    assert not result.is_error and json.loads(result.content[0].text)["timezone"] == "UTC"


@pytest.fixture
def everything_http():
    """server-everything over Streamable HTTP on a loopback port: a remote MCP server."""
    port = free_port()
    process = subprocess.Popen([str(REPO / "node_modules" / ".bin" / "mcp-server-everything"), "streamableHttp"],
                               env={**os.environ, "PORT": str(port)}, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/mcp", process, timeout=30)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture
def registry(tmp_path):
    """A loopback registry serving files from a directory as `/v0.1/servers/...`."""
    root = tmp_path / "registry"
    (root / "v0.1" / "servers").mkdir(parents=True)
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(SimpleHTTPRequestHandler, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def registry_answer(url: str) -> dict:
    """A `/v0.1/servers` list answer holding one remote server, as the official registry shapes it."""
    server = {"$schema": "https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json",
              "name": "io.github.example/Everything-Remote", "title": "Everything (remote)",
              "description": "The reference server over Streamable HTTP.", "version": "2026.8.31",
              "repository": {"url": "https://github.com/modelcontextprotocol/servers", "source": "github"},
              "remotes": [{"type": "streamable-http", "url": url}]}
    meta = {"io.modelcontextprotocol.registry/official": {"status": "active", "isLatest": True}}
    return {"servers": [{"server": server, "_meta": meta}], "metadata": {"count": 1}}


@pytest.mark.usefixtures("checkout_launchers")  # remote servers on loopback
async def test_an_imported_registry_entry_installs_and_answers(platform, everything_http, registry):
    root, base = registry
    (root / "v0.1" / "servers" / "index.json").write_text(json.dumps(registry_answer(everything_http)))
    outside = mcpaas_failure(platform, "catalog", "import", f"{base}/etc/passwd", "--registry", base)
    assert "not a registry API URL" in outside

    imported = json.loads(mcpaas(platform, "catalog", "import", f"{base}/v0.1/servers/index.json",
                                 "--registry", base, "--data-dir", str(platform.data_dir), "-o", "json").stdout)
    assert [row["name"] for row in imported] == ["everything-remote"]
    entry = json.loads(mcpaas(platform, "catalog", "show", "everything-remote", "-o", "json").stdout)
    assert entry["source"] == "imported" and entry["spec"]["remote"]["url"] == everything_http

    installed = json.loads(mcpaas(platform, "catalog", "install", "everything-remote", "-o", "json").stdout)
    async with mcp_client(installed["endpoint"], platform.headers) as client:
        result = await client.call_tool("echo", {"message": "imported"})
    assert result.content[0].text == "Echo: imported"


def mcpaas_failure(platform, *args: str) -> str:
    result = CliRunner().invoke(app, ["--api-url", platform.api, "--token", platform.token(), *args])
    assert result.exit_code != 0
    return result.output


def test_install_asks_for_a_required_secret_and_sends_it_write_only(platform, tmp_path: Path):
    spec = yaml.safe_dump({"name": "probe", "kind": "package", "description": "needs a key",
                           "package": {"command": "mcp-server-time"}})
    meta = yaml.safe_dump({"title": "Probe", "core": False, "last_updated": "2026-12-01",
                           "secrets": [{"name": "PROBE_KEY", "description": "the key"}]})
    folder = platform.data_dir / "catalog" / "probe"
    folder.mkdir(parents=True)
    (folder / "server.yaml").write_text(spec)
    (folder / "catalog.yaml").write_text(meta)

    mcpaas(platform, "catalog", "install", "probe", stdin="s3cret-value\n")
    stored = httpx.get(f"{platform.api}/api/servers/probe", headers=platform.headers).json()
    secret = stored["spec"]["package"]["secrets"]["PROBE_KEY"]
    assert secret["ref"] and secret.get("value") is None  # a reference, never the value
    assert "s3cret-value" not in json.dumps(stored)
