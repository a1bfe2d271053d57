"""`mcpaas connect --client X --write` for every client (issue 13 item 4): each written file
parses in its client's format, keeps the entries that were there, and a real MCP call made
with exactly what it holds (URL and auth header, or for Claude Desktop its stdio command)
succeeds through the gateway."""

from __future__ import annotations

import json
import tomllib

from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from typer.testing import CliRunner

from cli.main import app
from tests.e2e.conftest import REPO
from tests.e2e.helpers import mcp_client

# client -> (file name, its format, what was in it before, where our entry lands)
CLIENTS = {
    "vscode": ("mcp.json", {"servers": {"other": {"type": "stdio", "command": "x"}}, "inputs": []}, "servers"),
    "cursor": ("mcp.json", {"mcpServers": {"other": {"url": "https://other.example/mcp"}}}, "mcpServers"),
    "claude-code": (".mcp.json", {"mcpServers": {"other": {"type": "http", "url": "https://o.example"}}}, "mcpServers"),
    "inspector": ("config.json", {"mcpServers": {"other": {"type": "sse", "url": "https://o.example/sse"}}},
                  "mcpServers"),
    "claude-desktop": ("claude_desktop_config.json", {"mcpServers": {"other": {"command": "uvx", "args": ["x"]}},
                                                      "globalShortcut": "Ctrl+Space"}, "mcpServers"),
    "codex": ("config.toml", None, "mcp_servers"),
}
CODEX_BEFORE = '# my settings\nmodel = "o3"\n\n[mcp_servers.other]\ncommand = "npx"\nargs = ["-y", "x"]\n'


def cli(platform, *args: str):
    """Run the CLI in-process as the platform's Admin, with one token per platform (so
    printed and written configs carry the same credential)."""
    token = platform.__dict__.setdefault("cli_token", platform.token())
    result = CliRunner(env={"COLUMNS": "250"}).invoke(app, ["--api-url", platform.api, "--token", token, *args])
    assert result.exit_code == 0, result.output
    return result


async def call_echo_with(client: str, entry: dict) -> str:
    """Call tool `echo` using only what a client's config entry says."""
    if client == "claude-desktop":
        params = StdioServerParameters(command=entry["command"], args=entry["args"], cwd=str(REPO))
        # Claude Desktop opens with the initialize handshake; through the bridge a client's
        # `server/discover` probe would be answered on a session the bridge then reuses
        async with Client(stdio_client(params), mode="legacy") as session:
            result = await session.call_tool("echo", {"message": client})
    else:
        headers = entry.get("http_headers") if client == "codex" else entry.get("headers")
        async with mcp_client(entry["url"], headers or {}) as session:
            result = await session.call_tool("echo", {"message": client})
    return result.content[0].text


async def test_every_client_config_parses_keeps_other_entries_and_works(platform, tmp_path):
    cli(platform, "catalog", "install", "echo")
    for client, (file_name, before, root) in CLIENTS.items():
        path = tmp_path / client / file_name
        path.parent.mkdir()
        path.write_text(CODEX_BEFORE if before is None else json.dumps(before))

        printed = cli(platform, "connect", "echo", "--client", client).stdout
        written = json.loads(cli(platform, "connect", "echo", "--client", client, "--write", "--path", str(path),
                                 "-o", "json").stdout)
        assert written == {"server": "echo", "client": client, "url": f"{platform.gateway}/servers/echo/mcp",
                           "path": str(path), "replaced": False}
        document = tomllib.loads(path.read_text()) if client == "codex" else json.loads(path.read_text())
        assert (tomllib.loads(printed) if client == "codex" else json.loads(printed))[root]["echo"] \
            == document[root]["echo"]
        if client == "codex":
            assert path.read_text().startswith("# my settings") and document["model"] == "o3"
            assert document["mcp_servers"]["other"] == {"command": "npx", "args": ["-y", "x"]}
        else:
            assert {key: value for key, value in document.items() if key != root} == \
                {key: value for key, value in before.items() if key != root}
            assert document[root]["other"] == before[root]["other"]
        assert await call_echo_with(client, document[root]["echo"]) == client, client
        # a second write replaces our entry only
        again = json.loads(cli(platform, "connect", "echo", "--client", client, "--write", "--path", str(path),
                               "-o", "json").stdout)
        assert again["replaced"] is True and len(document[root]) == 2


async def test_new_key_config_works_and_a_broken_file_is_left_alone(platform, tmp_path):
    cli(platform, "catalog", "install", "echo")
    path = tmp_path / "mcp.json"
    cli(platform, "connect", "echo", "--client", "vscode", "--new-key", "--write", "--path", str(path))
    entry = json.loads(path.read_text())["servers"]["echo"]
    assert entry["headers"]["Authorization"].startswith("Bearer mcpk_")
    assert oct(path.stat().st_mode & 0o777) == "0o600"  # it holds a credential
    async with mcp_client(entry["url"], entry["headers"]) as session:
        assert (await session.call_tool("echo", {"message": "key"})).content[0].text == "key"

    broken = tmp_path / "broken.json"
    broken.write_text('{"servers": {"mine": 1},')  # e.g. a file being edited
    result = CliRunner().invoke(app, ["--api-url", platform.api, "--token", platform.token(), "connect", "echo",
                                      "--client", "vscode", "--write", "--path", str(broken)])
    assert result.exit_code == 1 and "left unchanged" in " ".join(result.output.split())
    assert broken.read_text() == '{"servers": {"mine": 1},'
