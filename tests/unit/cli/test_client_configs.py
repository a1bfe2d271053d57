"""Client configuration files of `mcpaas connect --client` (issue 13 item 4): formats and
merging that never loses what was in the file. Real calls with them: tests/e2e/test_connect.py."""

from __future__ import annotations

import json
import tomllib

import pytest

from cli.connect import Client, client_config, merge
from cli.errors import CliError

URL = "http://127.0.0.1:8080/servers/echo/mcp"


@pytest.mark.parametrize("client", list(Client))
def test_every_client_gets_a_parseable_document_with_url_and_header(client):
    config = client_config(client, "echo", URL, "tok")
    text = config.text()
    document = tomllib.loads(text) if client is Client.CODEX else json.loads(text)
    entry = document[config.root]["echo"]
    flat = json.dumps(entry)
    assert URL in flat and "Bearer tok" in flat


def test_without_a_credential_no_header_is_written():
    assert "headers" not in client_config(Client.VSCODE, "echo", URL, None).entry


def test_codex_merge_keeps_comments_and_other_servers(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('# mine\nmodel = "o3"  # keep\n\n[mcp_servers.other]\ncommand = "x"\n')
    assert merge(client_config(Client.CODEX, "echo", URL, "tok", path)) is False
    text = path.read_text()
    assert text.startswith('# mine\nmodel = "o3"  # keep') and "[mcp_servers.other]" in text
    assert tomllib.loads(text)["mcp_servers"]["echo"] == {"url": URL, "http_headers": {"Authorization": "Bearer tok"}}
    assert merge(client_config(Client.CODEX, "echo", URL, "new", path)) is True
    assert tomllib.loads(path.read_text())["mcp_servers"]["echo"]["http_headers"]["Authorization"] == "Bearer new"


@pytest.mark.parametrize(("content", "client"), [
    ('{"servers": ["not", "a", "table"]}', Client.VSCODE),
    ("[1, 2]", Client.CURSOR),
    ("mcp_servers = 3\n", Client.CODEX),
    ("[mcp_servers\n", Client.CODEX),
])
def test_a_file_of_another_shape_is_left_unchanged(tmp_path, content, client):
    path = tmp_path / "config"
    path.write_text(content)
    with pytest.raises(CliError, match="unchanged"):
        merge(client_config(client, "echo", URL, "tok", path))
    assert path.read_text() == content


def test_a_new_file_is_private_and_an_existing_one_keeps_its_mode(tmp_path):
    new = tmp_path / "dir" / "mcp.json"
    merge(client_config(Client.CLAUDE_CODE, "echo", URL, "tok", new))
    assert new.stat().st_mode & 0o777 == 0o600
    shared = tmp_path / "shared.json"
    shared.write_text("{}")
    shared.chmod(0o640)
    merge(client_config(Client.CURSOR, "echo", URL, "tok", shared))
    assert shared.stat().st_mode & 0o777 == 0o640 and not list(tmp_path.glob("*.mcpaas-tmp"))
