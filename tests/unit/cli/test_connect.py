"""`mcpaas connect`: client snippets for a running server."""

from __future__ import annotations

import json

from cli.render import connect_snippets
from tests.unit.cli.conftest import server_doc

ECHO = {"name": "echo", "kind": "package", "package": {"command": "python"}}


def test_snippets_hold_a_valid_vscode_entry_and_python_client():
    text = connect_snippets("echo", "http://127.0.0.1:8080/servers/echo/mcp")
    vscode = json.loads(text[text.index("{"):text.index("\n}\n") + 2])
    assert vscode == {"servers": {"echo": {"type": "http", "url": "http://127.0.0.1:8080/servers/echo/mcp"}}}
    assert "Client('http://127.0.0.1:8080/servers/echo/mcp')" in text


def test_connect_prints_snippets_for_a_running_server(plane, invoke):
    plane.servers["echo"] = server_doc("echo", ECHO, status="Running", endpoint="http://gw/servers/echo/mcp")
    result = invoke("connect", "echo")
    assert result.exit_code == 0, result.output
    assert '"url": "http://gw/servers/echo/mcp"' in result.stdout


def test_connect_without_endpoint_or_server_fails(plane, invoke):
    plane.servers["echo"] = server_doc("echo", ECHO, status="Deploying")
    assert invoke("connect", "echo").exit_code == 1
    assert invoke("connect", "ghost").exit_code == 1
